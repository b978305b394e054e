//! `validate network [NAME]`'s checks, and the same checks as `update cluster`'s pre-flight for a
//! cluster in an existing VPC. What the spec wants is read from the completed spec, what AWS
//! has with `kopsrs_aws::Aws::network` (one batched call per resource type); the checks are
//! `kopsrs_checks::network`'s.

use anyhow::Result;
use kopsrs_api::Cluster;
use kopsrs_aws::Aws;
use kopsrs_checks::network::{self, Check, Status, SubnetKind, WantedSubnet};

use crate::cluster::Prepared;
use crate::problems::Problems;
use crate::session::{self, Session};

/// `validate network`: every check of the cluster's network, for the caller to render
/// (any [`Status::Failed`] is a failed validation).
pub async fn validate_network(session: &Session, cluster: Option<&str>) -> Result<Vec<Check>> {
    let store = session::open_store(session).await?;
    let name = session::cluster_name(session, cluster)?;
    let prepared = crate::cluster::prepare(&store, &name, session, false).await?;
    let aws = crate::cluster::aws(session, &prepared.set.region).await;
    checks(session, &aws, &prepared).await
}

/// `update cluster`'s pre-flight for a cluster in an existing VPC (`spec.networkID`): with
/// `--yes` a failed check stops it before anything changes, naming the check; a dry run
/// prints failed checks as warnings (it changes nothing) and goes on to its plan.
pub async fn preflight(session: &Session, aws: &Aws, prepared: &Prepared, yes: bool) -> Result<()> {
    if prepared.cluster.spec.network_id.is_none() {
        return Ok(());
    }
    let name = &prepared.cluster.metadata.name;
    let checks = checks(session, aws, prepared).await?;
    for c in checks.iter().filter(|c| c.status == Status::Warning) {
        session.reporter.warn(
            &format!("network check {} ({}): {}", c.check, c.resource, c.message),
            None,
        );
    }
    let failed: Vec<&Check> = checks
        .iter()
        .filter(|c| c.status == Status::Failed)
        .collect();
    if !yes {
        for c in &failed {
            session.reporter.warn(
                &format!(
                    "network check {} failed ({}): {}; `update cluster --yes` would stop here",
                    c.check, c.resource, c.message
                ),
                None,
            );
        }
        return Ok(());
    }
    if failed.is_empty() {
        return Ok(());
    }
    Err(Problems(
        failed
            .iter()
            .map(|c| crate::problems::Problem {
                message: format!(
                    "network check {} failed ({}): {}",
                    c.check, c.resource, c.message
                ),
                hint: Some(format!(
                    "{}; nothing was changed (`kopsrs validate network {name}` shows every check; --skip-network-checks overrides)",
                    c.hint
                )),
            })
            .collect(),
    )
    .into())
}

async fn checks(session: &Session, aws: &Aws, prepared: &Prepared) -> Result<Vec<Check>> {
    let name = &prepared.cluster.metadata.name;
    let wanted = wanted(&prepared.cluster);
    let network = aws
        .network(prepared.cluster.spec.network_id.as_deref(), name)
        .await
        .map_err(|e| {
            crate::problems::aws(
                &session.settings,
                &format!("reading the VPC of {name}"),
                &e,
                "check the AWS credentials and region",
            )
        })?;
    Ok(network::check(&wanted, &network))
}

/// What the completed spec wants of the network.
fn wanted(cluster: &Cluster) -> network::Wanted {
    let spec = &cluster.spec;
    let subnets = spec.subnets.clone().unwrap_or_default();
    network::Wanted {
        cluster: cluster.metadata.name.clone(),
        cidrs: spec
            .network_cidr
            .iter()
            .cloned()
            .chain(spec.additional_network_cidrs.clone().unwrap_or_default())
            .collect(),
        cluster_cidrs: [spec.pod_cidr.clone(), spec.service_cluster_ip_range.clone()]
            .into_iter()
            .flatten()
            .collect(),
        ipv6: subnets.iter().any(|s| s.ipv6_cidr.is_some()),
        tags_shared_subnets: spec.disable_subnet_tags != Some(true),
        subnets: subnets
            .into_iter()
            .map(|s| WantedSubnet {
                name: s.name.unwrap_or_default(),
                id: s.id,
                cidr: s.cidr,
                zone: s.zone.unwrap_or_default(),
                kind: match s.r#type.as_deref() {
                    Some("Utility") => SubnetKind::Utility,
                    Some("Public") => SubnetKind::Public,
                    _ => SubnetKind::Private,
                },
                egress: s.egress,
            })
            .collect(),
    }
}
