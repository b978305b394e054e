//! A cluster as every operation reads it: load the spec from the state store, validate it,
//! complete it with kops's defaults, build the model's desired set; and the cluster lock,
//! with interrupt handling, around whatever changes the cloud.

use anyhow::Result;
use kopsrs_api::{Cluster, InstanceGroup};
use kopsrs_model::{DesiredSet, ModelInput};
use kopsrs_state::{layout, StateStore, Version, Versioned};

use crate::problems::{check, Interrupted, Problems};
use crate::{Reporter, Settings};

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
        completed(store, &self.cluster.value, &self.group_values())
    }

    /// The version of instance group `name` as read.
    pub fn group_version(&self, name: &str) -> Option<&Version> {
        self.groups
            .iter()
            .find(|g| g.value.metadata.name == name)
            .map(|g| &g.version)
    }
}

/// `cluster` and `groups` completed with kops's defaults, the cluster's folder in `store` as
/// its config base unless the spec names one.
fn completed(
    store: &StateStore,
    cluster: &Cluster,
    groups: &[InstanceGroup],
) -> Result<(Cluster, Vec<InstanceGroup>)> {
    let base = store.config_base(&cluster.metadata.name);
    kopsrs_api::complete(cluster, groups, &base)
        .map_err(|e| Problems::one(e, "fix the spec with `kopsrs edit cluster`").into())
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

/// Validates, reporting warnings; errors become [`Problems`].
pub fn validate(
    reporter: &dyn Reporter,
    cluster: &Cluster,
    groups: &[InstanceGroup],
) -> Result<()> {
    check(reporter, &kopsrs_api::validate(cluster, groups, false))?;
    // `spec.assets` by the rules nodes use (kopsrs-bootstrap), so a value no node could use is
    // never written.
    let mirrors = crate::assets::mirrors(cluster)?;
    if let Some(repo) = mirrors
        .file_repository
        .as_deref()
        .filter(|r| r.starts_with("http://"))
    {
        reporter.warn(
            &format!("spec.assets.fileRepository: {repo} is plain HTTP: nodes take the Kubernetes packages' signing key from it, so whoever can change what it serves can change the packages"),
            Some("serve it over https://, or bake the files into the image and use file:///"),
        );
    }
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
    session: &crate::Session,
    strict: bool,
) -> Result<Prepared> {
    prepare_spec(store, name, session, strict, None).await
}

/// [`prepare`] from `spec` when given instead of the store's (the controller plans a spec
/// it has not written: plan mode writes nothing).
pub async fn prepare_spec(
    store: &StateStore,
    name: &str,
    session: &crate::Session,
    strict: bool,
    spec: Option<&(Cluster, Vec<InstanceGroup>)>,
) -> Result<Prepared> {
    let settings: &Settings = &session.settings;
    let reporter = &*session.reporter;
    let ((given, given_groups), ssh_key) = match spec {
        // One round trip for both: each read of a distant bucket costs its latency.
        None => {
            let (stored, ssh_key) =
                tokio::try_join!(load_cluster(store, name), read_ssh_key(store, name))?;
            let groups = stored.group_values();
            ((stored.cluster.value, groups), ssh_key)
        }
        Some(spec) => (spec.clone(), read_ssh_key(store, name).await?),
    };
    validate(reporter, &given, &given_groups)?;
    let (cluster, groups) = completed(store, &given, &given_groups)?;
    validate(reporter, &cluster, &groups)?;
    let input = ModelInput {
        ssh_public_key: ssh_key.as_deref(),
        aws_endpoint: settings.aws_endpoint.clone(),
        // The bucket's own region, as the state store resolved it for itself.
        state_region: store.s3_region().map(str::to_string),
        // Nodes name the bucket's owner in their requests as kopsrs does.
        state_owner: store.s3_bucket_owner().map(str::to_string),
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
/// something), stopping at Ctrl-C or SIGTERM with [`Interrupted`]. The lock is released
/// whether the work succeeded, failed or was interrupted.
pub async fn locked<T>(
    reporter: &dyn Reporter,
    store: &StateStore,
    name: &str,
    purpose: Option<&str>,
    work: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    let lock = match purpose {
        Some(purpose) => Some(store.lock(name, purpose).await?),
        None => None,
    };
    if let Some(stale) = lock.as_ref().and_then(|l| l.taken_over.as_ref()) {
        reporter.warn(
            &format!(
                "took over the lock of {name} left by {}: that process no longer runs",
                stale.describe()
            ),
            Some("its run stopped part-way; this run goes on from what exists"),
        );
    }
    let result = crate::interrupt::until_interrupted(work).await;
    if let Some(lock) = lock {
        lock.release().await?;
    }
    result.unwrap_or_else(|signal| Err(Interrupted(signal).into()))
}

/// How many AWS changes run at once unless the caller says (`--concurrency`).
pub const DEFAULT_CONCURRENCY: u16 = 20;

/// The AWS clients of `region`, configured as the settings say; a fleet's shared ones when
/// the session has a fleet.
pub async fn aws(session: &crate::Session, region: &str) -> kopsrs_aws::Aws {
    match &session.aws_fleet {
        Some(fleet) => {
            fleet
                .clients(
                    session.aws_role.as_ref(),
                    session.settings.aws_retry_from_env,
                    region,
                )
                .await
        }
        None => {
            kopsrs_aws::Aws::connect_as(
                region,
                session.settings.aws_retry_from_env,
                session.aws_role.as_ref(),
            )
            .await
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
