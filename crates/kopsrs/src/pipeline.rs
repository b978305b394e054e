//! The one cluster pipeline every command goes through: load the spec from the state store,
//! validate it, complete it with kops's defaults, build the model's desired set; take the
//! cluster lock with interrupt handling around whatever changes the cloud; plan against AWS
//! (or render Terraform) and apply; write the completed spec and the addon channel back.
//!
//! Commands parse their flags and call these steps; no command calls another command.

use std::path::Path;

use anyhow::{Context as _, Result};
use kopsrs_api::{encode_documents, Cluster, Document, InstanceGroup, OutputFormat};
use kopsrs_engine::Plan;
use kopsrs_model::{DesiredSet, ModelInput};
use kopsrs_state::{layout, StateStore, Version, Versioned};

use crate::problems::{check, ExitWith, Problems};

/// What the pipeline takes from the environment, read once when the process starts
/// (`main`), never in the middle of a run.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// `AWS_ENDPOINT_URL`: a local AWS API (moto); nodes are pointed at it too.
    pub aws_endpoint: Option<String>,
}

impl Settings {
    /// The settings of this process's environment.
    pub fn from_env() -> Settings {
        let aws_endpoint = std::env::var("AWS_ENDPOINT_URL")
            .ok()
            .filter(|e| !e.is_empty());
        Settings { aws_endpoint }
    }
}

/// A cluster as stored: its spec and instance groups, each with the version read.
pub struct StoredCluster {
    /// The Cluster object.
    pub cluster: Versioned<Cluster>,
    /// Its instance groups.
    pub groups: Vec<Versioned<InstanceGroup>>,
}

impl StoredCluster {
    /// The instance groups without their versions.
    pub fn group_values(&self) -> Vec<InstanceGroup> {
        self.groups.iter().map(|g| g.value.clone()).collect()
    }

    /// The completed spec (`get --full`), with kops's defaults filled in.
    pub fn completed(&self, store: &StateStore) -> Result<(Cluster, Vec<InstanceGroup>)> {
        let name = &self.cluster.value.metadata.name;
        kopsrs_api::complete(
            &self.cluster.value,
            &self.group_values(),
            &store.config_base(name),
        )
        .map_err(|e| Problems::one(e, "fix the spec with `kopsrs edit cluster`").into())
    }

    /// The version of instance group `name` as read.
    pub fn group_version(&self, name: &str) -> Option<&Version> {
        self.groups
            .iter()
            .find(|g| g.value.metadata.name == name)
            .map(|g| &g.version)
    }
}

/// Reads a cluster and its groups, or fails naming the state store.
pub async fn load_cluster(store: &StateStore, name: &str) -> Result<StoredCluster> {
    let (cluster, groups) =
        tokio::try_join!(store.read_cluster(name), store.read_instance_groups(name))?;
    let Some(cluster) = cluster else {
        return Err(Problems::one(
            format!("cluster {name:?} not found in state store {}", store.url()),
            "check --name and --state (or KOPS_STATE_STORE); `kopsrs get clusters` lists what is there",
        )
        .into());
    };
    Ok(StoredCluster { cluster, groups })
}

/// Validates, printing warnings; errors become [`Problems`].
pub fn validate(cluster: &Cluster, groups: &[InstanceGroup]) -> Result<()> {
    check(&kopsrs_api::validate(cluster, groups, false))?;
    Ok(())
}

/// A cluster ready for a target: its completed spec and its desired set.
pub struct Prepared {
    /// The completed Cluster.
    pub cluster: Cluster,
    /// Its completed instance groups.
    pub groups: Vec<InstanceGroup>,
    /// The resources it consists of.
    pub set: DesiredSet,
}

/// Reads, validates and completes a cluster, then builds its desired set.
/// `strict`: refuse a spec nodes could not bootstrap from (the AWS target); the Terraform
/// target writes it with user-data that stops with the reason, as a warning.
pub async fn prepare(
    store: &StateStore,
    name: &str,
    settings: &Settings,
    strict: bool,
) -> Result<Prepared> {
    let stored = load_cluster(store, name).await?;
    validate(&stored.cluster.value, &stored.group_values())?;
    let (cluster, groups) = stored.completed(store)?;
    validate(&cluster, &groups)?;
    let ssh_key = read_ssh_key(store, name).await?;
    let input = ModelInput {
        ssh_public_key: ssh_key.as_deref(),
        aws_endpoint: settings.aws_endpoint.clone(),
        // The bucket's own region, as the state store resolved it for itself.
        state_region: store.s3_region().map(str::to_string),
        strict_bootstrap: strict,
        ..ModelInput::default()
    };
    let set = kopsrs_model::build(&cluster, &groups, &input).map_err(|e| {
        Problems::one(
            format!("cannot build the resources of {name}: {e}"),
            "fix the spec with `kopsrs edit cluster` or `kopsrs edit instancegroup`",
        )
    })?;
    Ok(Prepared {
        cluster,
        groups,
        set,
    })
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

/// Runs `work` holding the cluster lock (when `purpose` is given: the runs that change
/// something), stopping at Ctrl-C or SIGTERM with status 130. The lock is released whether
/// the work succeeded, failed or was interrupted.
pub async fn locked<T>(
    store: &StateStore,
    name: &str,
    purpose: Option<&str>,
    work: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    let lock = match purpose {
        Some(purpose) => Some(store.lock(name, purpose).await?),
        None => None,
    };
    let result = crate::interrupt::until_interrupted(work).await;
    if let Some(lock) = lock {
        lock.release().await?;
    }
    result.unwrap_or_else(|| Err(ExitWith(130).into()))
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
    /// Print the plan as JSON on stdout instead of text.
    pub json: bool,
    /// How many AWS changes run at once.
    pub concurrency: u16,
    /// After an apply, export a kubeconfig with these settings.
    pub export: Option<crate::cli::ExportKubeconfigArgs>,
    /// How addon downloads are pinned.
    pub pins: crate::addons::PinOptions,
    /// For a cluster in an existing VPC, check the network first (`validate network`).
    pub network_checks: bool,
}

/// The direct target: plan, and with `--yes` apply. With `--yes` the cluster lock is taken
/// before the spec and AWS are read, so what is applied is the spec as it is now (not as it
/// was before another run finished) against what exists.
pub async fn update_direct(
    store: &StateStore,
    name: &str,
    settings: &Settings,
    options: &DirectOptions,
) -> Result<()> {
    let purpose = options.yes.then_some("update cluster --yes");
    locked(store, name, purpose, async {
        let prepared = prepare(store, name, settings, true).await?;
        if options.network_checks {
            crate::commands::network::preflight(&prepared, options.yes).await?;
        }
        plan_and_apply(store, name, &prepared, options).await
    })
    .await?;
    if let (true, Some(export)) = (options.yes, &options.export) {
        crate::commands::pki::export_cluster(store, name, export).await?;
    }
    Ok(())
}

/// The cluster's plan: the provider's (resources) with the addon changes, and the pinned
/// addon selection `--yes` publishes. Addons are resolved first: a pin that does not match
/// its download stops the run before AWS is read.
pub async fn plan(
    aws: &kopsrs_aws::Aws,
    store: &StateStore,
    prepared: &Prepared,
    pins: crate::addons::PinOptions,
) -> Result<(Plan, crate::addons::Resolved)> {
    let name = &prepared.cluster.metadata.name;
    let addons = crate::addons::resolve(store, &prepared.cluster, &prepared.groups, pins).await?;
    let mut plan =
        aws.plan(&prepared.set)
            .await
            .map_err(|e| match e.is(kopsrs_aws::EXISTING_MISMATCH) {
                true => Problems::one(
                    format!(
                        "{name} uses resources that are not as its spec says:\n  {}",
                        e.message
                    ),
                    "fix the spec (`kopsrs edit cluster`) or the resources; nothing was changed",
                ),
                false => crate::problems::aws(
                    &format!("reading {name} from AWS"),
                    &e,
                    "check the AWS credentials and region; nothing was changed",
                ),
            })?;
    plan.addons = addons.changes.clone();
    Ok((plan, addons))
}

async fn plan_and_apply(
    store: &StateStore,
    name: &str,
    prepared: &Prepared,
    options: &DirectOptions,
) -> Result<()> {
    let aws = kopsrs_aws::Aws::connect(&prepared.set.region).await;
    let (plan, addons) = plan(&aws, store, prepared, options.pins).await?;
    if options.json {
        println!("{}", serde_json::to_string_pretty(&plan.to_json())?);
    } else if options.yes && !plan.is_empty() {
        // The plan was reviewed with the dry run; here, what is about to happen.
        println!(
            "Applying to {name} (the full plan: `kopsrs update cluster {name}`):\n{}",
            plan.summary()
        );
    } else {
        print!("{plan}");
    }
    eprintln!("({} AWS API calls to read the cluster)", plan.reads);
    if !options.yes {
        if !plan.is_empty() {
            eprintln!("\nMust specify --yes to apply changes");
            if options.detailed_exitcode {
                return Err(ExitWith(2).into());
            }
        }
        return Ok(());
    }
    // Only now, with the plan made (and the addons' pins checked), is anything written.
    crate::commands::pki::ensure_keysets(store, name).await?;
    if plan.is_empty() {
        return publish(store, prepared, &addons).await;
    }
    let started = std::time::Instant::now();
    let result = kopsrs_aws::apply(
        &aws,
        name,
        &plan,
        &exec_options(options.concurrency),
        crate::progress::reporter(plan.changes.len()),
    )
    .await;
    match result {
        Ok(report) => {
            publish(store, prepared, &addons).await?;
            eprintln!(
                "Applied {} change(s) to {name} in {:.2} s ({} attempts, {} AWS API calls; \
                 critical path {} dependent call(s), taking {:.2} s).",
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
                e.failed
                    .iter()
                    .map(|(_, error)| error.to_string())
                    .collect::<Vec<_>>()
                    .join("\n  ")
            ),
            "fix the cause and run `kopsrs update cluster --yes` again: it continues from what exists",
        )
        .into()),
    }
}

/// After a successful apply: the completed spec and the addon channel to the state store.
async fn publish(
    store: &StateStore,
    prepared: &Prepared,
    addons: &crate::addons::Resolved,
) -> Result<()> {
    write_completed(store, prepared).await?;
    crate::addons::publish(store, &prepared.cluster, addons).await
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

/// `--target terraform`: renders the cluster into `out` and stores the completed spec.
pub async fn write_terraform(
    store: &StateStore,
    name: &str,
    settings: &Settings,
    out: &Path,
    pins: crate::addons::PinOptions,
) -> Result<()> {
    let prepared = prepare(store, name, settings, false).await?;
    // Addons are resolved before anything is written: a wrong pin stops the run. A
    // Kubernetes version outside the channel is a warning here: the Terraform user-data
    // stops with the reason (see `prepare`).
    let addons =
        match crate::addons::resolve(store, &prepared.cluster, &prepared.groups, pins).await {
            Ok(addons) => Some(addons),
            Err(e) => match e.downcast_ref::<kopsrs_bootstrap::channel::ChannelError>() {
                Some(unsupported) => {
                    eprintln!("warning: {unsupported}; no addons published");
                    None
                }
                None => return Err(e),
            },
        };
    crate::commands::pki::ensure_keysets(store, name).await?;
    if let Some(addons) = addons {
        for change in &addons.changes {
            if let Some(integrity) = &change.integrity {
                eprintln!("addon {}: {integrity}", change.name);
            }
        }
        crate::addons::publish(store, &prepared.cluster, &addons).await?;
    }
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
