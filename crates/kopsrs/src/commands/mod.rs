//! One module per verb; [`run`] dispatches.

mod controller;
mod create;
mod delete;
mod diff;
mod edit;
mod get;
pub(crate) mod jsonnet;
pub(crate) mod manifests;
pub(crate) mod network;
pub(crate) mod pki;
mod reconcile;
mod replace;
mod rolling_update;
mod toolbox;
mod update;
mod upgrade;
mod validate;

use anyhow::Result;
use clap::CommandFactory;

use kopsrs_ops::pki::Rotation;
use kopsrs_ops::session as context;
use kopsrs_ops::{Problems, Session};

use crate::cli::{Cli, Command};

pub async fn run(cli: Cli) -> Result<()> {
    let mut global = Session {
        state: cli.global.state,
        name: cli.global.name,
        validate: cli.global.validate,
        settings: cli.global.settings,
        reporter: std::sync::Arc::new(crate::terminal::Terminal::default()),
        aws_role: None,
        aws_fleet: None,
        stores: None,
    };
    context::read_config_file(&mut global, cli.global.config.as_deref())?;
    match cli.command {
        Command::Create(args) => create::run(&global, args).await,
        Command::Get(args) => get::run(&global, args).await,
        Command::Edit(args) => edit::run(&global, args).await,
        Command::Replace(args) => replace::run(&global, args).await,
        Command::Diff(args) => diff::run(&global, args).await,
        Command::Delete(args) => delete::run(&global, args).await,
        Command::Update(args) => update::run(&global, args).await,
        Command::Toolbox(args) => toolbox::run(&global, args).await,
        Command::Jsonnet(args) => jsonnet::run(&global.settings, args),
        Command::Manifests(command) => manifests::run(&global, command).await,
        Command::ForceUnlock(args) => {
            let name = context::cluster_name(&global, args.cluster.as_deref())?;
            let store = context::open_store(&global).await?;
            let info = store.force_unlock(&name, &args.lock_id).await?;
            eprintln!("Removed the lock of {name} held by {}", info.describe());
            Ok(())
        }
        Command::Promote(crate::cli::PromoteCommand::Keypair(args)) => {
            pki::rotate(&global, &args.keyset, Rotation::Promote).await
        }
        Command::Distrust(crate::cli::DistrustCommand::Keypair(args)) => {
            pki::rotate(&global, &args.keyset, Rotation::Distrust(args.ids)).await
        }
        Command::Trust(crate::cli::TrustCommand::Keypair(args)) => {
            pki::rotate(&global, &args.keyset, Rotation::Trust(args.ids)).await
        }
        Command::Export(crate::cli::ExportCommand::Kubeconfig(args)) => {
            pki::export_kubeconfig(&global, args).await
        }
        Command::Upgrade(crate::cli::UpgradeCommand::Cluster(args)) => {
            upgrade::run(&global, args).await
        }
        Command::RollingUpdate(crate::cli::RollingUpdateCommand::Cluster(args)) => {
            rolling_update::run(&global, args).await
        }
        Command::Reconcile(crate::cli::ReconcileCommand::Cluster(args)) => {
            reconcile::run(&global, args).await
        }
        Command::Controller(command) => controller::run(&global, command).await,
        Command::Validate(crate::cli::ValidateCommand::Cluster(args)) => {
            validate::run(&global, args).await
        }
        Command::Validate(crate::cli::ValidateCommand::Network(args)) => {
            network::run(&global, args).await
        }
        Command::Version { short: true } => {
            println!("{}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Version { short: false } => {
            println!("kopsrs {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Unsupported(argv) => Err(unsupported(&argv).into()),
        Command::Completion { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "kopsrs", &mut std::io::stdout());
            Ok(())
        }
    }
}

/// What kopsrs says to a verb it does not have: a kops verb it has not yet (and what to use
/// meanwhile), else the closest verb it has.
fn unsupported(argv: &[String]) -> Problems {
    let verb = argv.first().map(String::as_str).unwrap_or_default();
    let not_yet = |what: &str, instead: &str| {
        Problems::one(format!("kopsrs has no `{what}` yet"), instead.to_string())
    };
    match verb {
        "describe" => not_yet(
            "describe",
            "`kopsrs get` prints clusters, instance groups and keys",
        ),
        "set" | "unset" => not_yet(
            verb,
            &format!("use `kopsrs edit cluster --{verb} spec.PATH...` (or `edit instancegroup`)"),
        ),
        "helpers" | "gen-cli-docs" => not_yet(verb, "it is a kops development aid"),
        _ => {
            let command = Cli::command();
            let known = command.get_subcommands().map(|c| c.get_name());
            let hint = match kopsrs_api::closest(verb, known.filter(|name| *name != "help")) {
                Some(c) => format!("did you mean `{c}`?"),
                None => "`kopsrs --help` lists the commands".to_string(),
            };
            Problems::one(format!("unknown command {verb:?}"), hint)
        }
    }
}
