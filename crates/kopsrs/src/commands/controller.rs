//! `controller run` and `controller install`.

use anyhow::Result;
use kopsrs_ops::controller::{self, install, ControllerOptions};
use kopsrs_ops::session as context;
use kopsrs_ops::Session;

use crate::cli::{ControllerCommand, DocumentFormat};

pub async fn run(global: &Session, command: ControllerCommand) -> Result<()> {
    match command {
        ControllerCommand::Run(args) => {
            // The default state store must be known now: a cluster whose spec names none
            // is refused at its first reconcile otherwise.
            context::state_url(global)?;
            let management = management(global, args.management);
            let options = ControllerOptions {
                kubeconfig: management.kubeconfig,
                context: management.context,
                namespace: args.namespace,
                workers: args.workers,
                aws_concurrency: args.concurrency,
                resync: args.resync,
                shared_reads: args.shared_reads,
                lease: (!args.lease_name.is_empty())
                    .then(|| (args.lease_namespace.clone(), args.lease_name.clone())),
                lease_duration: args.lease_duration,
                identity: args.identity,
                pins: args.pins.options(),
                network_checks: !args.skip_network_checks,
                metrics_address: args.metrics_address,
                workload_kubeconfig: args.workload_kubeconfig,
            };
            controller::run(global, &options).await
        }
        ControllerCommand::Adopt(args) => {
            let name = context::cluster_name(global, args.cluster.as_deref())?;
            let management = management(global, args.management);
            for made in
                controller::adopt::adopt(global, &name, &args.namespace, &management).await?
            {
                global.reporter.say(&format!("Created {made}"));
            }
            global.reporter.say(&format!(
                "{name} is managed by kopsrs controller from Cluster {}/{name}; its next reconcile should plan no change.",
                args.namespace
            ));
            Ok(())
        }
        ControllerCommand::Release(args) => {
            let name = context::cluster_name(global, args.cluster.as_deref())?;
            let management = management(global, args.management);
            let manager = controller::adopt::release(global, &name, &management).await?;
            global.reporter.say(&format!(
                "{name} is managed by the CLI again; Cluster {}/{} and its instance groups are deleted (the cloud and the state store are unchanged).",
                manager.namespace, manager.name
            ));
            Ok(())
        }
        ControllerCommand::Install(args) => {
            let options = install::InstallOptions {
                namespace: args.namespace,
                image: args.image,
                replicas: args.replicas,
                state: context::state_url(global)?,
                role_arn: args.role_arn,
            };
            let objects = install::objects(&options);
            match args.output {
                DocumentFormat::Json => {
                    let list =
                        serde_json::json!({"apiVersion": "v1", "kind": "List", "items": objects});
                    println!("{}", serde_json::to_string_pretty(&list)?);
                }
                DocumentFormat::Yaml => {
                    for object in &objects {
                        print!("---\n{}", serde_yaml_ng::to_string(object)?);
                    }
                }
            }
            Ok(())
        }
    }
}

fn management(global: &Session, args: crate::cli::ManagementArgs) -> controller::adopt::Management {
    controller::adopt::Management {
        kubeconfig: match args.kubeconfig {
            Some(path) => vec![path],
            None => global.settings.kubeconfig.clone(),
        },
        context: args.context,
    }
}
