//! `update cluster`: the desired set from the spec, then a plan against the cloud (direct
//! target) or Terraform files (terraform target).

use std::path::Path;

use anyhow::{Context as _, Result};
use kopsrs_api::{encode_documents, Cluster, Document, OutputFormat};
use kopsrs_model::{DesiredSet, ModelInput};
use kopsrs_state::{layout, StateStore};

use super::{load_cluster, validate};
use crate::cli::{GlobalArgs, Target, UpdateArgs, UpdateClusterArgs, UpdateCommand};
use crate::context;
use crate::problems::Problems;

pub async fn run(global: &GlobalArgs, args: UpdateArgs) -> Result<()> {
    match args.what {
        UpdateCommand::Cluster(args) => update_cluster(global, args).await,
    }
}

/// A cluster ready for a target: its completed spec and its desired set.
pub struct Prepared {
    pub cluster: Cluster,
    pub set: DesiredSet,
}

/// Reads, validates and completes a cluster, then builds its desired set.
/// `strict`: refuse a spec nodes could not bootstrap from (the AWS target); the Terraform
/// target writes it with user-data that stops with the reason, as a warning.
pub async fn prepare(store: &StateStore, name: &str, strict: bool) -> Result<Prepared> {
    let stored = load_cluster(store, name).await?;
    validate(&stored.cluster.value, &stored.group_values())?;
    let (cluster, groups) = stored.completed(store)?;
    validate(&cluster, &groups)?;
    let ssh_key = read_ssh_key(store, name).await?;
    let input = ModelInput {
        ssh_public_key: ssh_key.as_deref(),
        aws_endpoint: std::env::var("AWS_ENDPOINT_URL")
            .ok()
            .filter(|e| !e.is_empty()),
        state_region: std::env::var("AWS_ENDPOINT_URL")
            .ok()
            .and_then(|_| std::env::var("AWS_REGION").ok()),
        strict_bootstrap: strict,
        ..ModelInput::default()
    };
    let set = kopsrs_model::build(&cluster, &groups, &input).map_err(|e| {
        Problems::one(
            format!("cannot build the resources of {name}: {e}"),
            "fix the spec with `kopsrs edit cluster` or `kopsrs edit instancegroup`",
        )
    })?;
    Ok(Prepared { cluster, set })
}

/// The first SSH public key registered for the cluster, as kops uses it.
async fn read_ssh_key(store: &StateStore, name: &str) -> Result<Option<String>> {
    let keys = store
        .list(&format!("{name}/{}", layout::SSH_PUBLIC_KEYS))
        .await?;
    let Some(first) = keys.into_iter().min() else {
        return Ok(None);
    };
    Ok(store
        .get(&first)
        .await?
        .map(|object| String::from_utf8_lossy(&object.value).trim().to_string()))
}

/// The addons the channel selects for a cluster (`addons/bootstrap-channel.yaml`).
fn selected_addons(cluster: &Cluster) -> Result<kopsrs_bootstrap::channel::Selected> {
    let channel = kopsrs_bootstrap::channel::Channel::stable();
    let version = cluster
        .spec
        .kubernetes_version
        .as_deref()
        .unwrap_or_default();
    Ok(channel.select(version, kopsrs_model::cni(&cluster.spec))?)
}

/// What `--yes` would change in the published addons, for the plan.
async fn addon_changes(store: &StateStore, cluster: &Cluster) -> Result<Option<String>> {
    let selected = selected_addons(cluster)?;
    let key = format!("{}/{}", cluster.metadata.name, layout::ADDONS_CHANNEL);
    let current = store.get(&key).await?.and_then(|o| {
        serde_yaml_ng::from_slice::<kopsrs_bootstrap::channel::Selected>(&o.value).ok()
    });
    let mut lines = Vec::new();
    for addon in &selected.addons {
        let old = current
            .as_ref()
            .and_then(|c| c.addons.iter().find(|a| a.name == addon.name));
        match old {
            Some(old) if old == addon => {}
            Some(old) => lines.push(format!(
                "  ~ addon {} {} -> {}",
                addon.name, old.version, addon.version
            )),
            None => lines.push(format!("  + addon {} {}", addon.name, addon.version)),
        }
    }
    for old in current.iter().flat_map(|c| &c.addons) {
        if !selected.addons.iter().any(|a| a.name == old.name) {
            lines.push(format!(
                "  - addon {} {} (no longer applied; remove it with kubectl)",
                old.name, old.version
            ));
        }
    }
    Ok((!lines.is_empty()).then(|| {
        format!(
            "\nAddons (applied by the control plane from {key}):\n{}",
            lines.join("\n")
        )
    }))
}

/// Writes the cluster's addon selection to the state store when it changed; control-plane
/// nodes apply new versions from there. `strict`: a Kubernetes version outside the channel
/// is an error (AWS target) rather than a warning (Terraform target).
async fn publish_addons(store: &StateStore, cluster: &Cluster, strict: bool) -> Result<()> {
    let selected = match selected_addons(cluster) {
        Ok(s) => s,
        Err(e) if !strict => {
            eprintln!("warning: {e}; no addons published");
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let text = selected.to_yaml();
    let key = format!("{}/{}", cluster.metadata.name, layout::ADDONS_CHANNEL);
    let current = store.get(&key).await?;
    if current.as_ref().map(|c| c.value.as_ref()) != Some(text.as_bytes()) {
        store.overwrite(&key, text.into_bytes().into()).await?;
        eprintln!("Published {} addon(s) to {key}.", selected.addons.len());
    }
    Ok(())
}

/// Stores the completed spec as `cluster-completed.spec` (what kops writes on update).
async fn write_completed(store: &StateStore, prepared: &Prepared) -> Result<()> {
    let name = &prepared.cluster.metadata.name;
    let text = encode_documents(
        &[Document::Cluster(Box::new(prepared.cluster.clone()))],
        OutputFormat::Yaml,
    );
    let key = format!("{name}/{}", layout::COMPLETED);
    let current = store.get(&key).await?;
    if current.as_ref().map(|c| c.value.as_ref()) != Some(text.as_bytes()) {
        store.overwrite(&key, text.into_bytes().into()).await?;
    }
    Ok(())
}

async fn update_cluster(global: &GlobalArgs, args: UpdateClusterArgs) -> Result<()> {
    let name = context::cluster_name(global, args.cluster.as_deref())?;
    let store = context::open_store(global)?;
    match args.target {
        Target::Terraform => write_terraform(&store, &name, &args.out).await,
        Target::Direct => {
            let options = DirectOptions {
                yes: args.yes,
                detailed_exitcode: args.detailed_exitcode,
                concurrency: args.concurrency,
                export: args
                    .create_kube_config
                    .then(|| crate::cli::ExportKubeconfigArgs {
                        admin: args.admin.clone(),
                        ..Default::default()
                    }),
            };
            update_direct(&store, &name, &options).await
        }
    }
}

/// Executor settings for AWS calls: the SDK already retries throttling (adaptive mode), the
/// engine retries eventual consistency ("not found" right after a create) on top.
pub fn exec_options(concurrency: u16) -> kopsrs_engine::ExecOptions {
    kopsrs_engine::ExecOptions {
        concurrency: usize::from(concurrency.max(1)),
        timeout: std::time::Duration::from_secs(300),
        max_attempts: 8,
        base_delay: std::time::Duration::from_millis(250),
        max_delay: std::time::Duration::from_secs(15),
    }
}

/// What `update cluster` does on the direct target.
pub struct DirectOptions {
    /// Apply (otherwise only print the plan).
    pub yes: bool,
    /// Exit 2 when the plan has changes.
    pub detailed_exitcode: bool,
    /// How many AWS changes run at once.
    pub concurrency: u16,
    /// After an apply, export a kubeconfig with these settings.
    pub export: Option<crate::cli::ExportKubeconfigArgs>,
}

/// The direct target: discover, plan, and with `--yes` apply. With `--yes` the cluster lock is
/// taken before the spec and AWS are read, so what is applied is the spec as it is now (not
/// as it was before another run finished) against what exists.
pub async fn update_direct(store: &StateStore, name: &str, options: &DirectOptions) -> Result<()> {
    let lock = match options.yes {
        true => Some(store.lock(name, "update cluster --yes").await?),
        false => None,
    };
    let result = crate::interrupt::until_interrupted(async {
        let prepared = prepare(store, name, true).await?;
        if options.yes {
            super::pki::ensure_keysets(store, name).await?;
        }
        plan_and_apply(store, name, &prepared, options).await
    })
    .await;
    if let Some(lock) = lock {
        lock.release().await?;
    }
    result.unwrap_or_else(|| Err(crate::problems::ExitWith(130).into()))?;
    if let (true, Some(export)) = (options.yes, &options.export) {
        super::pki::export_cluster(store, name, export).await?;
    }
    Ok(())
}

async fn plan_and_apply(
    store: &StateStore,
    name: &str,
    prepared: &Prepared,
    options: &DirectOptions,
) -> Result<()> {
    let aws = kopsrs_aws::Aws::connect(&prepared.set.region).await;
    let discovery = aws.discover(&prepared.set).await.map_err(|e| {
        Problems::one(
            format!("reading {name} from AWS: {e}"),
            "check the AWS credentials and region; nothing was changed",
        )
    })?;
    let mut plan = kopsrs_engine::diff(&prepared.set, &discovery.observed, &kopsrs_aws::AwsSchema);
    discovery.complete_plan(&mut plan, &prepared.set);
    print!("{plan}");
    if !options.yes {
        if let Some(changes) = addon_changes(store, &prepared.cluster).await? {
            println!("{changes}");
        }
    }
    eprintln!("({} AWS API calls to read the cluster)", discovery.calls);
    if !options.yes {
        if !plan.is_empty() {
            eprintln!("\nMust specify --yes to apply changes");
            if options.detailed_exitcode {
                return Err(crate::problems::ExitWith(2).into());
            }
        }
        return Ok(());
    }
    if plan.is_empty() {
        write_completed(store, prepared).await?;
        publish_addons(store, &prepared.cluster, true).await?;
        return Ok(());
    }
    let started = std::time::Instant::now();
    let result = kopsrs_aws::apply(
        &aws,
        &prepared.set,
        &discovery,
        &plan,
        &exec_options(options.concurrency),
        crate::progress::reporter(plan.changes.len()),
    )
    .await;
    match result {
        Ok(report) => {
            write_completed(store, prepared).await?;
            publish_addons(store, &prepared.cluster, true).await?;
            eprintln!(
                "Applied {} change(s) to {name} in {:.2} s ({} attempts, {} AWS API calls; \
                 critical path {} change(s) taking {:.2} s).",
                report.done,
                started.elapsed().as_secs_f64(),
                report.attempts,
                aws.calls(),
                report.critical_path,
                report.critical_path_time.as_secs_f64(),
            );
            Ok(())
        }
        Err(e) => Err(Problems::one(
            format!(
                "{} change(s) failed, {} done, {} not run:\n  {}",
                e.failed.len(),
                e.done,
                e.not_run.len(),
                e.failed.iter().map(|(_, error)| error.to_string()).collect::<Vec<_>>().join("\n  ")
            ),
            "fix the cause and run `kopsrs update cluster --yes` again: it continues from what exists",
        )
        .into()),
    }
}

/// `--target terraform`: renders the cluster into `out` and stores the completed spec.
pub async fn write_terraform(store: &StateStore, name: &str, out: &Path) -> Result<()> {
    let prepared = prepare(store, name, false).await?;
    super::pki::ensure_keysets(store, name).await?;
    publish_addons(store, &prepared.cluster, false).await?;
    let rendered = kopsrs_terraform::render(&prepared.set);
    let changed = write_output(out, &rendered.files)?;
    write_completed(store, &prepared).await?;
    eprintln!(
        "Terraform for {name}: {} resources in {} ({} file(s) changed).",
        prepared.set.resources.len(),
        out.join("kubernetes.tf").display(),
        changed
    );
    eprintln!(
        "Run `terraform init && terraform plan` in {} to review it.",
        out.display()
    );
    Ok(())
}

/// Writes files under `dir`, leaving those whose content did not change untouched, and
/// removes data files a previous run wrote that are no longer part of the output.
fn write_output(dir: &Path, files: &std::collections::BTreeMap<String, String>) -> Result<usize> {
    let mut changed = 0;
    for (path, content) in files {
        let target = dir.join(path);
        if std::fs::read(&target).ok().as_deref() == Some(content.as_bytes()) {
            continue;
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        // Write beside and rename, so a crash leaves the old file or the new one.
        let temp = target.with_extension("kopsrs-tmp");
        std::fs::write(&temp, content).with_context(|| format!("writing {}", temp.display()))?;
        std::fs::rename(&temp, &target).with_context(|| format!("writing {}", target.display()))?;
        changed += 1;
    }
    let data = dir.join("data");
    if let Ok(entries) = std::fs::read_dir(&data) {
        for entry in entries.flatten() {
            let relative = format!("data/{}", entry.file_name().to_string_lossy());
            if !files.contains_key(&relative) {
                std::fs::remove_file(entry.path())
                    .with_context(|| format!("removing {}", entry.path().display()))?;
                changed += 1;
            }
        }
    }
    Ok(changed)
}
