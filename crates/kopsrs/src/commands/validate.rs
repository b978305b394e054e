//! `validate cluster`: one read of the cluster's auto scaling groups (AWS) and one list each
//! of Nodes and pods (Kubernetes) per pass, whatever the size of the cluster; the checks are
//! `kopsrs_checks::validation`'s.

use std::time::Instant;

use anyhow::Result;
use comfy_table::Table;
use kopsrs_api::Role;
use kopsrs_checks::validation::{self, GroupInstances, Validation};

use crate::cli::{GlobalArgs, ListFormat, ValidateClusterArgs};
use crate::context;
use crate::problems::{ExitWith, Problems};

use super::get::table;

pub async fn run(global: &GlobalArgs, args: ValidateClusterArgs) -> Result<()> {
    let store = context::open_store(global).await?;
    let name = context::cluster_name(global, args.cluster.as_deref())?;
    let prepared = crate::pipeline::prepare(&store, &name, &global.settings, false).await?;
    let aws = kopsrs_aws::Aws::connect(&prepared.set.region).await;
    let kube = kopsrs_kube::Kube::connect(&name, args.kubeconfig.as_deref())
        .await
        .map_err(|e| kube_problem(&name, &e))?;
    let roles: std::collections::BTreeMap<&str, Role> = prepared
        .groups
        .iter()
        .map(|g| (g.metadata.name.as_str(), g.role().unwrap_or(Role::Node)))
        .collect();

    let deadline = Instant::now() + args.wait;
    let needed = args.count.max(1);
    let mut passed = 0;
    loop {
        let result = pass(&aws, &kube, &name, &roles, args.max_unready_nodes)
            .await?
            .validation;
        passed = if result.failures.is_empty() {
            passed + 1
        } else {
            0
        };
        let done = passed >= needed || Instant::now() + args.interval > deadline;
        if done {
            print(&name, &prepared.groups, &result, args.output)?;
            if result.failures.is_empty() {
                return Ok(());
            }
            return Err(ExitWith(1).into());
        }
        if !result.failures.is_empty() && args.output == ListFormat::Table {
            eprintln!(
                "{name} did not validate ({} failures); trying again in {}",
                result.failures.len(),
                humantime::format_duration(args.interval)
            );
        }
        tokio::time::sleep(args.interval).await;
    }
}

/// One validation pass and the Nodes and pods it read.
pub(crate) struct Pass {
    pub validation: Validation,
    pub nodes: Vec<validation::Node>,
    pub pods: Vec<validation::Pod>,
}

/// One pass: the auto scaling groups (one AWS call), Nodes and pods (one list each).
pub(crate) async fn pass(
    aws: &kopsrs_aws::Aws,
    kube: &kopsrs_kube::Kube,
    name: &str,
    roles: &std::collections::BTreeMap<&str, Role>,
    max_unready_nodes: usize,
) -> Result<Pass> {
    let (groups, snapshot) = tokio::join!(aws.group_sizes(name), kube.snapshot());
    let groups = groups.map_err(|e| {
        crate::problems::aws(
            &format!("reading the auto scaling groups of {name} from AWS"),
            &e,
            "check the AWS credentials and region",
        )
    })?;
    let (nodes, pods) = snapshot.map_err(|e| kube_problem(name, &e))?;
    let groups: Vec<GroupInstances> = groups
        .into_iter()
        .map(|g| GroupInstances {
            role: roles
                .get(g.instance_group.as_str())
                .copied()
                .unwrap_or_else(|| Role::from_tag(&g.role).unwrap_or(Role::Node)),
            name: g.instance_group,
            target: g.desired,
            instances: g.instances.into_iter().map(|i| (i, false)).collect(),
        })
        .collect();
    Ok(Pass {
        validation: validation::validate(&groups, &nodes, &pods, max_unready_nodes),
        nodes,
        pods,
    })
}

pub(crate) fn kube_problem(name: &str, e: &kopsrs_kube::KubeError) -> Problems {
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

fn print_table(title: &str, table: &Table) {
    println!("{title}");
    super::get::print_table(table);
    println!();
}

fn print(
    name: &str,
    groups: &[kopsrs_api::InstanceGroup],
    result: &Validation,
    output: ListFormat,
) -> Result<()> {
    match output {
        ListFormat::Json => println!("{}", serde_json::to_string_pretty(result)?),
        ListFormat::Yaml => print!("{}", serde_yaml_ng::to_string(result)?),
        ListFormat::Table => {
            println!("Validating cluster {name}\n");
            let mut t = table(&["NAME", "ROLE", "MACHINETYPE", "MIN", "MAX", "SUBNETS"]);
            for g in groups {
                t.add_row(vec![
                    g.metadata.name.clone(),
                    g.spec.role.clone().unwrap_or_default(),
                    g.spec.machine_type.clone().unwrap_or_default(),
                    g.spec.min_size.map(|n| n.to_string()).unwrap_or_default(),
                    g.spec.max_size.map(|n| n.to_string()).unwrap_or_default(),
                    g.spec.subnets.clone().unwrap_or_default().join(","),
                ]);
            }
            print_table("INSTANCE GROUPS", &t);
            let mut t = table(&["NAME", "ROLE", "READY"]);
            for n in &result.nodes {
                t.add_row(vec![n.name.as_str(), n.role.as_str(), n.status]);
            }
            print_table("NODE STATUS", &t);
            if result.failures.is_empty() {
                println!("Your cluster {name} is ready");
            } else {
                let mut t = table(&["KIND", "NAME", "MESSAGE"]);
                for f in &result.failures {
                    t.add_row(vec![f.kind, f.name.as_str(), f.message.as_str()]);
                }
                print_table("VALIDATION ERRORS", &t);
                println!("Validation Failed");
            }
        }
    }
    Ok(())
}
