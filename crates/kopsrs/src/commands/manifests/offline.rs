//! The verbs that need no cluster: show, tree, check.

use anyhow::Result;
use kopsrs_manifests::{check, jsonnet, schema, tree};
use serde_json::Value;

use super::{load, CheckArgs, ObjectFormat, ReportFormat, ShowArgs, TreeArgs};
use crate::render::ExitWith;
use kopsrs_ops::session as context;
use kopsrs_ops::Problems;
use kopsrs_ops::Session;

pub(super) fn show(settings: &kopsrs_ops::Settings, args: ShowArgs) -> Result<()> {
    let objects = load(settings, &args.config)?;
    let values: Vec<&Value> = objects.iter().map(|o| &o.value).collect();
    match args.output {
        ObjectFormat::Json => println!(
            "{}",
            jsonnet::to_cpp_json(&serde_json::json!({
                "apiVersion": "v1", "kind": "List", "items": values,
            }))
        ),
        ObjectFormat::Yaml => {
            for v in values {
                print!("---\n{}", serde_yaml_ng::to_string(v)?);
            }
        }
    }
    Ok(())
}

pub(super) fn tree(settings: &kopsrs_ops::Settings, args: TreeArgs) -> Result<()> {
    let objects = load(settings, &args.config)?;
    let rendered = tree::render(&objects, &args.path_template).map_err(Problems::from_messages)?;
    let on_disk = tree::read_tree(&args.out)?;
    let drift = tree::compare(&rendered, &on_disk);
    if args.check {
        for (path, how) in &drift {
            let how = serde_json::to_value(how)?;
            println!(
                "{}: {}",
                args.out.join(path).display(),
                how.as_str().unwrap_or_default()
            );
        }
        if drift.is_empty() {
            eprintln!(
                "{}: {} files, up to date",
                args.out.display(),
                rendered.len()
            );
            return Ok(());
        }
        eprintln!(
            "{}: {} of {} files out of date: regenerate with `kopsrs manifests tree ... --out {}`",
            args.out.display(),
            drift.len(),
            rendered.len(),
            args.out.display()
        );
        return Err(ExitWith(1).into());
    }
    for (path, how) in &drift {
        let full = args.out.join(path);
        match how {
            tree::Drift::Extra => std::fs::remove_file(&full)?,
            _ => {
                if let Some(dir) = full.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                std::fs::write(&full, &rendered[path])?;
            }
        }
    }
    eprintln!(
        "{}: {} files, {} written or removed",
        args.out.display(),
        rendered.len(),
        drift.len()
    );
    Ok(())
}

/// The minor to check against: the flag, else the cluster's, else the channel's.
async fn target_minor(global: &Session, flag: Option<&str>) -> Result<String> {
    let version = match (flag, &global.name) {
        (Some(v), _) => v.to_string(),
        (None, Some(name)) => {
            let store = context::open_store(global).await?;
            let cluster = kopsrs_ops::load_cluster(&store, name).await?.cluster;
            cluster
                .value
                .spec
                .kubernetes_version
                .clone()
                .unwrap_or_default()
        }
        (None, None) => {
            kopsrs_bootstrap::channel::Channel::stable()
                .kubernetes
                .recommended
        }
    };
    let parsed = kopsrs_api::versions::KubernetesVersion::parse(&version)
        .or_else(|| kopsrs_api::versions::KubernetesVersion::parse(&format!("{version}.0")));
    let minor = parsed.map(|v| format!("{}.{}", v.major, v.minor));
    match minor {
        Some(m) if schema::minors().contains(&m) => Ok(m),
        _ => Err(Problems::one(
            format!("--kubernetes-version {version:?}: no schemas for it"),
            format!(
                "kopsrs carries the API of Kubernetes {}",
                schema::minors().join(", ")
            ),
        )
        .into()),
    }
}

pub(super) async fn check(global: &Session, args: CheckArgs) -> Result<()> {
    let minor = target_minor(global, args.kubernetes_version.as_deref()).await?;
    let objects = load(&global.settings, &args.config)?;
    let mut api = schema::Api::load(&minor).expect("an embedded minor");
    let mut problems = check::check(&objects, &mut api);
    // Evaluated twice, the same objects: no time, randomness or environment leaks in.
    let again = load(&global.settings, &args.config)?;
    if again != objects {
        let first = objects
            .iter()
            .zip(&again)
            .find(|(a, b)| a != b)
            .map_or_else(|| "the number of objects".to_string(), |(a, _)| a.address());
        problems.push(check::Problem {
            check: "deterministic",
            severity: "error",
            object: first,
            source: String::new(),
            field: String::new(),
            message: "two evaluations of the configuration differ".into(),
            hint: "remove what changes between runs (time, random values, environment)".into(),
        });
    }
    let errors = problems.iter().filter(|p| p.severity == "error").count();
    match args.output {
        ReportFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "kubernetesVersion": minor,
                "objects": objects.len(),
                "problems": problems,
            }))?
        ),
        ReportFormat::Text => {
            for p in &problems {
                let field = match p.field.is_empty() {
                    true => String::new(),
                    false => format!(" {}:", p.field),
                };
                println!(
                    "{}: {} ({}):{field} {}",
                    p.severity, p.object, p.source, p.message
                );
                println!("  hint: {}", p.hint);
            }
            eprintln!(
                "{} objects checked against Kubernetes {minor}: {errors} errors, {} warnings",
                objects.len(),
                problems.len() - errors
            );
        }
    }
    if errors > 0 {
        return Err(ExitWith(1).into());
    }
    Ok(())
}
