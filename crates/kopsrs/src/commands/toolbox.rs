//! `toolbox template`, `toolbox schema`, `toolbox etcd` and `toolbox dump`.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use kopsrs_api::{Cluster, InstanceGroup};
use kopsrs_bootstrap::channel::Channel;
use kopsrs_template::{
    format_yaml, merge_values, render, set_value, ChannelLookups, Engine, Setup,
};

use crate::cli::{
    DocumentFormat, EtcdCommand, ListFormat, TemplateArgs, ToolboxArgs, ToolboxCommand,
};
use kopsrs_ops::problems::Problems;
use kopsrs_ops::session as context;
use kopsrs_ops::Session;

pub async fn run(global: &Session, args: ToolboxArgs) -> Result<()> {
    match args.what {
        ToolboxCommand::Template(args) => template(global, args),
        ToolboxCommand::Etcd(command) => etcd(global, command).await,
        ToolboxCommand::Dump { output, kubeconfig } => {
            let store = context::open_store(global).await?;
            let options = kopsrs_ops::dump::DumpOptions {
                cluster: None,
                kubeconfig,
            };
            let dump = kopsrs_ops::dump::dump(global, &store, &options).await?;
            match output {
                DocumentFormat::Json => println!("{}", serde_json::to_string_pretty(&dump)?),
                DocumentFormat::Yaml => print!("{}", serde_yaml_ng::to_string(&dump)?),
            }
            Ok(())
        }
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

/// `toolbox etcd list-backups` and `restore-backup`.
async fn etcd(global: &Session, command: EtcdCommand) -> Result<()> {
    use kopsrs_ops::etcd_backups;
    use kopsrs_ops::etcd_restore::{self, RestoreOptions};
    let name = context::cluster_name(global, None)?;
    match command {
        EtcdCommand::ListBackups { output } => {
            let store = context::open_store(global).await?;
            kopsrs_ops::load_cluster(&store, &name).await?;
            let backups = etcd_backups::list_backups(&store, &name).await?;
            match output {
                ListFormat::Json => println!("{}", serde_json::to_string_pretty(&backups)?),
                ListFormat::Yaml => print!("{}", serde_yaml_ng::to_string(&backups)?),
                ListFormat::Table => {
                    let mut t = crate::render::table(&[
                        "NAME",
                        "TIME",
                        "REVISION",
                        "SIZE",
                        "ETCD",
                        "MEMBERS",
                        "KUBERNETES",
                    ]);
                    for b in &backups {
                        t.add_row(vec![
                            b.name.clone(),
                            humantime::format_rfc3339_seconds(
                                std::time::UNIX_EPOCH + std::time::Duration::from_secs(b.taken_at),
                            )
                            .to_string(),
                            b.revision.to_string(),
                            b.size.to_string(),
                            b.etcd_version.clone(),
                            b.members.to_string(),
                            b.kubernetes_version.clone(),
                        ]);
                    }
                    crate::render::print_table(&t);
                }
            }
            Ok(())
        }
        EtcdCommand::RestoreBackup {
            backup,
            yes,
            wait,
            kubeconfig,
        } => {
            let options = RestoreOptions {
                backup,
                yes,
                wait,
                poll: std::time::Duration::from_secs(2),
                kubeconfig,
            };
            let report = etcd_restore::restore_backup(global, &name, &options).await?;
            let b = &report.backup;
            match &report.command {
                None => eprintln!(
                    "Backup {} of {name} checked (sha256 {}, revision {}, {} bytes). With --yes, every control plane stops its API server and etcd and restarts them from it; writes after {} are lost.",
                    b.name, b.sha256, b.revision, b.size, b.name
                ),
                Some(command) if report.validated => println!(
                    "{name} restored from backup {} (restore {}): etcd is back at revision {} on {}, and the cluster validates",
                    b.name,
                    command.id,
                    b.revision,
                    report.restored.join(", ")
                ),
                Some(command) => println!(
                    "Restore {} of backup {} written; `kopsrs validate cluster {name} --wait 10m` shows when the cluster is back",
                    command.id, b.name
                ),
            }
            Ok(())
        }
    }
}

/// The files of `paths`: files as given, directories walked recursively in name order (as
/// kops expands `--template`, `--values` and `--snippets`).
fn template_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for entry in entries {
            match entry.is_dir() {
                true => walk(&entry, files)?,
                false => files.push(entry),
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    for path in paths {
        match path.is_dir() {
            true => walk(path, &mut files)?,
            false => files.push(path.clone()),
        }
    }
    Ok(files)
}

/// The channel's answers for kops's `Channel*` template functions. Versions are written as
/// kops writes them there, without a leading `v`.
struct ChannelFunctions(Channel);

impl ChannelLookups for ChannelFunctions {
    fn recommended_kubernetes(&self) -> String {
        self.0
            .kubernetes
            .recommended
            .trim_start_matches('v')
            .to_string()
    }

    /// The newest release of the version's minor, as kops's channel advises an upgrade.
    fn upgrade(&self, version: &str) -> Option<String> {
        self.0
            .recommended_patch(version)
            .map(|v| v.trim_start_matches('v').to_string())
    }

    fn image(&self, cloud: &str, kubernetes_version: &str, architecture: &str) -> Option<String> {
        let version = kopsrs_api::versions::KubernetesVersion::parse(kubernetes_version)?;
        let architecture = match architecture {
            "amd64" => kopsrs_api::versions::Architecture::Amd64,
            "arm64" => kopsrs_api::versions::Architecture::Arm64,
            _ => return None,
        };
        (cloud == "aws").then(|| kopsrs_api::versions::default_image(&version, architecture))
    }
}

fn channel(name: &str) -> Result<Channel> {
    if name == "stable" {
        return Ok(Channel::stable());
    }
    let text = context::read_input(Path::new(name))?;
    Channel::parse(&text).map_err(|e| {
        Problems::one(
            format!("--channel {name}: {e}"),
            "use `stable` (built in) or a channel file in kopsrs's format",
        )
        .into()
    })
}

fn template(global: &Session, args: TemplateArgs) -> Result<()> {
    let mut values = serde_json::Value::Object(Default::default());
    for path in &template_files(&args.values)? {
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
    // kops puts the cluster name in the values as `clusterName`.
    if let Some(name) = &global.name {
        values["clusterName"] = serde_json::Value::String(name.clone());
    }
    if let Some(key) = &args.config_value {
        match values.get(key) {
            Some(serde_json::Value::String(s)) => println!("{s}"),
            Some(value) => println!("{value}"),
            None => println!("null"),
        }
        return Ok(());
    }
    let mut snippets = std::collections::BTreeMap::new();
    for file in template_files(&args.snippets)? {
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        snippets.insert(name, context::read_input(&file)?);
    }
    let setup = Setup {
        fail_on_missing: args.fail_on_missing,
        snippets,
        channel: std::sync::Arc::new(ChannelFunctions(channel(&args.channel)?)),
    };
    let mut outputs = Vec::new();
    for file in template_files(&args.templates)? {
        let text = context::read_input(&file)?;
        let name = file.display().to_string();
        let engine = Engine::for_file(&name);
        let mut rendered = render(&name, &text, &values, engine, &setup)?;
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
