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
pub async fn prepare(store: &StateStore, name: &str) -> Result<Prepared> {
    let stored = load_cluster(store, name).await?;
    validate(&stored.cluster.value, &stored.group_values())?;
    let (cluster, groups) = stored.completed(store)?;
    validate(&cluster, &groups)?;
    let ssh_key = read_ssh_key(store, name).await?;
    let input = ModelInput {
        ssh_public_key: ssh_key.as_deref(),
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
/// taken before reading AWS, so the plan that is applied is the plan of what exists.
pub async fn update_direct(store: &StateStore, name: &str, options: &DirectOptions) -> Result<()> {
    let prepared = prepare(store, name).await?;
    if options.yes {
        super::pki::ensure_keysets(store, name).await?;
    }
    let lock = match options.yes {
        true => Some(store.lock(name, "update cluster --yes").await?),
        false => None,
    };
    let result =
        crate::interrupt::until_interrupted(plan_and_apply(store, name, &prepared, options)).await;
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
    let prepared = prepare(store, name).await?;
    super::pki::ensure_keysets(store, name).await?;
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
