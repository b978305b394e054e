//! `validate cluster`'s passes: one read of the cluster's auto scaling groups (AWS) and one list each
//! of Nodes and pods (Kubernetes) per pass, whatever the size of the cluster; the checks are
//! `kopsrs_checks::validation`'s.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;
use kopsrs_api::Role;
use kopsrs_checks::validation::{self, GroupInstances, Validation};
use kopsrs_kube::Kube;

use crate::problems::Problems;
use crate::session::{self, Session};

/// What `validate cluster` waits for.
#[derive(Debug, Clone)]
pub struct ValidateOptions {
    /// The kubeconfig (else the settings' kubeconfig files).
    pub kubeconfig: Option<PathBuf>,
    /// How long to retry a failing validation.
    pub wait: Duration,
    /// Consecutive passes needed.
    pub count: usize,
    /// Time between passes.
    pub interval: Duration,
    /// Nodes that may be not Ready without failing.
    pub max_unready_nodes: usize,
}

/// What `validate cluster` found: the instance groups and the last pass.
#[derive(Debug)]
pub struct ValidateReport {
    /// The cluster's completed instance groups.
    pub groups: Vec<kopsrs_api::InstanceGroup>,
    /// The last validation (no failures: the cluster validated).
    pub validation: Validation,
}

/// Validates until `count` consecutive passes succeed or `wait` is up.
pub async fn validate_cluster(
    session: &Session,
    cluster: Option<&str>,
    options: &ValidateOptions,
) -> Result<ValidateReport> {
    let store = session::open_store(session).await?;
    let name = session::cluster_name(session, cluster)?;
    let prepared = crate::cluster::prepare(&store, &name, session, false).await?;
    let aws = crate::cluster::aws(session, &prepared.set.region).await;
    let kube = connect(session, &name, options.kubeconfig.as_deref()).await?;
    let roles: BTreeMap<&str, Role> = prepared
        .groups
        .iter()
        .map(|g| (g.metadata.name.as_str(), g.role().unwrap_or(Role::Node)))
        .collect();
    let karpenter: Vec<&str> = prepared
        .groups
        .iter()
        .filter(|g| g.spec.manager.as_deref() == Some("Karpenter"))
        .map(|g| g.metadata.name.as_str())
        .collect();

    let deadline = Instant::now() + options.wait;
    let needed = options.count.max(1);
    let mut passed = 0;
    loop {
        let validation = pass(
            session,
            &aws,
            &kube,
            &name,
            &roles,
            &karpenter,
            options.max_unready_nodes,
        )
        .await?
        .validation;
        passed = match validation.failures.is_empty() {
            true => passed + 1,
            false => 0,
        };
        if passed >= needed || Instant::now() + options.interval > deadline {
            let interval = kopsrs_api::backups::main_policy(&prepared.cluster.spec)
                .unwrap_or_default()
                .interval;
            // A store that cannot be read for this is no reason to fail validation.
            if let Ok(Some(warning)) =
                crate::etcd_backups::stale_backups_warning(&store, &name, interval).await
            {
                session.reporter.warn(
                    &warning,
                    Some("see the control planes' `kopsrs-backup-etcd` service logs; `kopsrs toolbox etcd list-backups` lists what there is"),
                );
            }
            return Ok(ValidateReport {
                groups: prepared.groups,
                validation,
            });
        }
        if !validation.failures.is_empty() {
            session.reporter.say(&format!(
                "{name} did not validate ({} failures); trying again in {}",
                validation.failures.len(),
                humantime::format_duration(options.interval)
            ));
        }
        tokio::time::sleep(options.interval).await;
    }
}

/// The Kubernetes client of `cluster`: `explicit`, else the settings' kubeconfig files.
pub async fn connect(
    session: &Session,
    cluster: &str,
    explicit: Option<&std::path::Path>,
) -> Result<Kube, Problems> {
    let files: Vec<PathBuf> = match explicit {
        Some(path) => vec![path.to_path_buf()],
        None => session.settings.kubeconfig.clone(),
    };
    Kube::connect(cluster, &files)
        .await
        .map_err(|e| kube_problem(cluster, &e))
}

/// One validation pass and the Nodes and pods it read.
pub struct Pass {
    /// The checks' result.
    pub validation: Validation,
    /// The Nodes read.
    pub nodes: Vec<validation::Node>,
    /// The pods read.
    pub pods: Vec<validation::Pod>,
}

/// A group as validation counts it: the role its spec gives (else its role tag), its target
/// size and the instances in it.
pub(crate) fn counted(
    roles: &BTreeMap<&str, Role>,
    name: String,
    role_tag: &str,
    target: u32,
    instances: Vec<String>,
) -> GroupInstances {
    GroupInstances {
        role: roles
            .get(name.as_str())
            .copied()
            .unwrap_or_else(|| Role::from_tag(role_tag).unwrap_or(Role::Node)),
        name,
        target,
        instances: instances.into_iter().map(|i| (i, false)).collect(),
    }
}

/// One pass: the auto scaling groups (one AWS call), Nodes and pods (one list each). A
/// group Karpenter manages (`karpenter`) has no size to meet: its Nodes are those of its
/// NodePool, listed and counted as workers (not Ready: unready workers).
pub async fn pass(
    session: &Session,
    aws: &kopsrs_aws::Aws,
    kube: &Kube,
    name: &str,
    roles: &BTreeMap<&str, Role>,
    karpenter: &[&str],
    max_unready_nodes: usize,
) -> Result<Pass> {
    let (groups, snapshot) = tokio::join!(aws.group_sizes(name), kube.snapshot());
    let groups = groups.map_err(|e| {
        crate::problems::aws(
            &session.settings,
            &format!("reading the auto scaling groups of {name} from AWS"),
            &e,
            "check the AWS credentials and region",
        )
    })?;
    let (nodes, pods) = snapshot.map_err(|e| kube_problem(name, &e))?;
    let mut groups: Vec<GroupInstances> = groups
        .into_iter()
        .map(|g| counted(roles, g.instance_group, &g.role, g.desired, g.instances))
        .collect();
    for group in karpenter {
        let instances = nodes
            .iter()
            .filter(|n| n.karpenter_pool.as_deref() == Some(*group))
            .filter_map(|n| Some((n.instance_id.clone()?, false)))
            .collect();
        groups.push(GroupInstances {
            name: group.to_string(),
            role: Role::Node,
            target: 0,
            instances,
        });
    }
    Ok(Pass {
        validation: validation::validate(&groups, &nodes, &pods, max_unready_nodes),
        nodes,
        pods,
    })
}

/// A Kubernetes error with the hint that fits it.
pub fn kube_problem(name: &str, e: &kopsrs_kube::KubeError) -> Problems {
    let hint = match e {
        kopsrs_kube::KubeError::NoContext { .. } => format!(
            "write one with `kopsrs export kubeconfig {name} --admin` (or pass --kubeconfig)"
        ),
        kopsrs_kube::KubeError::Config { .. } => format!(
            "export a fresh one with `kopsrs export kubeconfig {name} --admin`"
        ),
        kopsrs_kube::KubeError::Api { .. } => {
            "a 401/403 means the kubeconfig's credentials may not do this (`kopsrs export kubeconfig --admin` writes an admin certificate); otherwise see the API's answer above".to_string()
        }
        kopsrs_kube::KubeError::Drain { node, .. } => format!(
            "see which pods are left with `kubectl get pods -A --field-selector spec.nodeName={node}`"
        ),
        kopsrs_kube::KubeError::Unreachable { .. } => {
            "check that the cluster's API load balancer is up and reachable from here (`kopsrs get instances` shows the control plane); an expired admin certificate needs `kopsrs export kubeconfig --admin`".to_string()
        }
    };
    Problems::one(e.to_string(), hint)
}
