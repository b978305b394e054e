//! `toolbox template` and `toolbox schema`.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use kopsrs_api::{Cluster, InstanceGroup};
use kopsrs_template::{format_yaml, merge_values, render, set_value, Engine};

use crate::cli::{TemplateArgs, ToolboxArgs, ToolboxCommand};
use crate::context;
use crate::problems::Problems;

pub fn run(args: ToolboxArgs) -> Result<()> {
    match args.what {
        ToolboxCommand::Template(args) => template(args),
        ToolboxCommand::Schema { kind } => {
            let schema = match kind.to_ascii_lowercase().as_str() {
                "cluster" => serde_json::to_value(schemars::schema_for!(Cluster))?,
                "instancegroup" => serde_json::to_value(schemars::schema_for!(InstanceGroup))?,
                "all" => {
                    let mut generator = schemars::gen::SchemaSettings::draft07().into_generator();
                    let cluster = generator.subschema_for::<Cluster>();
                    let group = generator.subschema_for::<InstanceGroup>();
                    let definitions = generator.take_definitions();
                    serde_json::json!({
                        "$schema": "http://json-schema.org/draft-07/schema#",
                        "title": "kops.k8s.io/v1alpha2 document",
                        "oneOf": [cluster, group],
                        "definitions": definitions,
                    })
                }
                other => {
                    return Err(Problems::one(
                        format!("--kind {other}: unknown"),
                        "use cluster, instancegroup or all",
                    )
                    .into())
                }
            };
            println!("{}", serde_json::to_string_pretty(&schema)?);
            Ok(())
        }
    }
}

fn template_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut inner: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("reading {}", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect();
            inner.sort();
            files.extend(inner);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

fn template(args: TemplateArgs) -> Result<()> {
    let mut values = serde_json::Value::Object(Default::default());
    for path in &args.values {
        let text = context::read_input(path)?;
        if let Some((line, depth)) = kopsrs_api::too_deep(&text) {
            return Err(Problems::one(
                format!(
                    "{}:{line}: nests {depth} levels deep, more than the {} a values file may",
                    path.display(),
                    kopsrs_api::MAX_DEPTH
                ),
                "check that this is the values file you meant",
            )
            .into());
        }
        let parsed: serde_json::Value = serde_yaml_ng::from_str(&text).map_err(|e| {
            Problems::one(
                format!("{}: not YAML or JSON: {e}", path.display()),
                "fix the values file",
            )
        })?;
        merge_values(&mut values, parsed);
    }
    for assignment in &args.sets {
        set_value(&mut values, assignment, true)?;
    }
    for assignment in &args.set_strings {
        set_value(&mut values, assignment, false)?;
    }
    let mut outputs = Vec::new();
    for file in template_files(&args.templates)? {
        let text = context::read_input(&file)?;
        let name = file.display().to_string();
        let engine = Engine::for_file(&name);
        let mut rendered = render(&name, &text, &values, engine, args.fail_on_missing)?;
        if args.format_yaml {
            rendered = format_yaml(&name, &rendered)?;
        }
        outputs.push(rendered);
    }
    let mut joined = outputs
        .iter()
        .map(|o| o.trim_end_matches('\n'))
        .filter(|o| !o.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n---\n");
    joined.push('\n');
    match &args.out {
        Some(path) => write_out(path, &joined),
        None => {
            print!("{joined}");
            Ok(())
        }
    }
}

fn write_out(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    eprintln!("Wrote {}", path.display());
    Ok(())
}
