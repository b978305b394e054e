//! `validate cluster`: flags to `kopsrs_ops::validate`, the result as tables, YAML or JSON;
//! exit 1 when the cluster did not validate.

use anyhow::Result;
use comfy_table::Table;
use kopsrs_checks::validation::Validation;
use kopsrs_ops::validate::{validate_cluster, ValidateOptions};
use kopsrs_ops::Session;

use crate::cli::{ListFormat, ValidateClusterArgs};
use crate::render::{table, ExitWith};
use kopsrs_ops::session as context;

pub async fn run(global: &Session, args: ValidateClusterArgs) -> Result<()> {
    let name = context::cluster_name(global, args.cluster.as_deref())?;
    let options = ValidateOptions {
        kubeconfig: args.kubeconfig.clone(),
        wait: args.wait,
        count: args.count as usize,
        interval: args.interval,
        max_unready_nodes: args.max_unready_nodes,
    };
    let report = validate_cluster(global, Some(&name), &options).await?;
    print(&name, &report.groups, &report.validation, args.output)?;
    if report.validation.failures.is_empty() {
        return Ok(());
    }
    Err(ExitWith(1).into())
}

fn print_table(title: &str, table: &Table) {
    println!("{title}");
    crate::render::print_table(table);
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
