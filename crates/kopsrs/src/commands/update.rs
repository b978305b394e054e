//! `update cluster`: maps the flags to `kopsrs_ops::update`'s options and renders its report.

use anyhow::Result;
use kopsrs_ops::session as context;
use kopsrs_ops::update::{self, DirectOptions};
use kopsrs_ops::Session;

use crate::cli::{PlanFormat, Target, UpdateArgs, UpdateClusterArgs, UpdateCommand};
use crate::render::ExitWith;

pub async fn run(global: &Session, args: UpdateArgs) -> Result<()> {
    match args.what {
        UpdateCommand::Cluster(args) => update_cluster(global, args).await,
    }
}

async fn update_cluster(global: &Session, args: UpdateClusterArgs) -> Result<()> {
    let name = context::cluster_name(global, args.cluster.as_deref())?;
    match args.target {
        Target::Terraform if !args.instance_group_roles.is_empty() || args.prune => {
            Err(kopsrs_ops::Problems::one(
                "--instance-group-roles and --prune are for the direct target: Terraform output always holds the whole cluster",
                "drop them with --target terraform",
            )
            .into())
        }
        Target::Terraform if args.plan.is_some() || args.out_plan.is_some() => {
            Err(kopsrs_ops::Problems::one(
                "--plan and --out-plan are plans of the direct target; --target terraform writes files that `terraform plan` reviews",
                "drop --target terraform, or use `terraform plan -out` on the files",
            )
            .into())
        }
        Target::Terraform => {
            update::write_terraform(global, &name, &args.out, args.pins.options()).await
        }
        Target::Direct => {
            let session =
                crate::terminal::with_plan_format(
                global,
                args.output == PlanFormat::Json,
                args.summary,
            );
            let options = DirectOptions {
                yes: args.yes,
                concurrency: args.concurrency,
                export: args
                    .create_kube_config
                    .then(|| kopsrs_ops::pki::ExportOptions {
                        admin: args.admin.clone(),
                        user: args.user.clone(),
                        keep_existing: true,
                        ..Default::default()
                    }),
                pins: args.pins.options(),
                network_checks: !args.skip_network_checks,
                saved: match &args.plan {
                    Some(path) => Some(update::read_saved_plan(path, &name)?),
                    None => None,
                },
                scope: update::Scope {
                    roles: kopsrs_ops::rolling::parse_roles(&args.instance_group_roles)?,
                    prune: args.prune,
                    in_order: false,
                },
                force: args.force,
                spec: None,
            };
            let report = update::update_direct(&session, &name, &options).await?;
            if let Some(path) = &args.out_plan {
                update::save_plan(&report.plan, &name, path)?;
                global.reporter.say(&format!(
                    "Plan saved to {}; apply exactly it with `kopsrs update cluster {name} --plan {} --yes`.",
                    path.display(),
                    path.display()
                ));
            }
            crate::render::update_report(&name, &report);
            if !args.yes && !report.plan.is_empty() && args.detailed_exitcode {
                return Err(ExitWith(2).into());
            }
            Ok(())
        }
    }
}
