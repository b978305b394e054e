//! `update cluster`: the plan against the cloud (direct target, `--yes` applies it) or
//! Terraform files (terraform target), both through the cluster pipeline.

use anyhow::Result;

use crate::cli::{GlobalArgs, PlanFormat, Target, UpdateArgs, UpdateClusterArgs, UpdateCommand};
use crate::context;
use crate::pipeline::{self, DirectOptions};

pub async fn run(global: &GlobalArgs, args: UpdateArgs) -> Result<()> {
    match args.what {
        UpdateCommand::Cluster(args) => update_cluster(global, args).await,
    }
}

async fn update_cluster(global: &GlobalArgs, args: UpdateClusterArgs) -> Result<()> {
    let name = context::cluster_name(global, args.cluster.as_deref())?;
    let store = context::open_store(global).await?;
    match args.target {
        Target::Terraform => {
            pipeline::write_terraform(
                &store,
                &name,
                &global.settings,
                &args.out,
                args.pins.options(),
            )
            .await
        }
        Target::Direct => {
            if args.skip_network_checks {
                eprintln!("Network checks skipped (--skip-network-checks).");
            }
            let options = DirectOptions {
                yes: args.yes,
                detailed_exitcode: args.detailed_exitcode,
                json: args.output == PlanFormat::Json,
                concurrency: args.concurrency,
                export: args
                    .create_kube_config
                    .then(|| crate::cli::ExportKubeconfigArgs {
                        admin: args.admin.clone(),
                        ..Default::default()
                    }),
                pins: args.pins.options(),
                network_checks: !args.skip_network_checks,
            };
            pipeline::update_direct(&store, &name, &global.settings, &options).await
        }
    }
}
