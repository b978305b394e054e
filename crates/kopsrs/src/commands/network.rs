//! `validate network [NAME]`, and the same checks as `update cluster`'s pre-flight for a
//! cluster in an existing VPC. What the spec wants is read from the completed spec, what AWS
//! has with `kopsrs_aws::Aws::network` (one batched call per resource type); the checks are
//! `kopsrs_checks::network`'s.

use crate::cli::{DiffFormat, GlobalArgs, ValidateNetworkArgs};
use crate::context;
use crate::pipeline::Prepared;
use crate::problems::{ExitWith, Problems};
use anyhow::Result;
use kopsrs_api::Cluster;
use kopsrs_checks::network::{self, Check, Status, SubnetKind, WantedSubnet};

use super::get::{print_table, table};

pub async fn run(global: &GlobalArgs, args: ValidateNetworkArgs) -> Result<()> {
    let store = context::open_store(global).await?;
    let name = context::cluster_name(global, args.cluster.as_deref())?;
    let prepared = crate::pipeline::prepare(&store, &name, &global.settings, false).await?;
    let checks = checks(&prepared).await?;
    match args.output {
        DiffFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "checks": checks }))?
        ),
        DiffFormat::Text => {
            let mut t = table(&["CHECK", "STATUS", "RESOURCE", "MESSAGE"]);
            for c in &checks {
                let status = serde_json::to_value(c.status)?;
                let message = match c.hint.is_empty() {
                    true => c.message.clone(),
                    false => format!("{} (hint: {})", c.message, c.hint),
                };
                t.add_row(vec![
                    c.check.to_string(),
                    status.as_str().unwrap_or_default().to_string(),
                    c.resource.clone(),
                    message,
                ]);
            }
            print_table(&t);
        }
    }
    if checks.iter().any(|c| c.status == Status::Failed) {
        return Err(ExitWith(1).into());
    }
    Ok(())
}

/// `update cluster`'s pre-flight for a cluster in an existing VPC (`spec.networkID`): with
/// `--yes` a failed check stops it before anything changes, naming the check; a dry run
/// prints failed checks as warnings (it changes nothing) and goes on to its plan.
pub async fn preflight(prepared: &Prepared, yes: bool) -> Result<()> {
    if prepared.cluster.spec.network_id.is_none() {
        return Ok(());
    }
    let name = &prepared.cluster.metadata.name;
    let checks = checks(prepared).await?;
    for c in checks.iter().filter(|c| c.status == Status::Warning) {
        eprintln!(
            "warning: network check {} ({}): {}",
            c.check, c.resource, c.message
        );
    }
    let failed: Vec<&Check> = checks
        .iter()
        .filter(|c| c.status == Status::Failed)
        .collect();
    if !yes {
        for c in &failed {
            eprintln!(
                "warning: network check {} failed ({}): {}; `update cluster --yes` would stop here",
                c.check, c.resource, c.message
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

async fn checks(prepared: &Prepared) -> Result<Vec<Check>> {
    let name = &prepared.cluster.metadata.name;
    let wanted = wanted(&prepared.cluster);
    let aws = kopsrs_aws::Aws::connect(&prepared.set.region).await;
    let network = aws
        .network(prepared.cluster.spec.network_id.as_deref(), name)
        .await
        .map_err(|e| {
            crate::problems::aws(
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
