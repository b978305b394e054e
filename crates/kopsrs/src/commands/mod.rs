//! One module per verb; [`run`] dispatches.

mod create;
mod delete;
mod edit;
mod get;
pub(crate) mod pki;
mod replace;
mod toolbox;
mod update;
mod upgrade;

use std::io::IsTerminal;

use anyhow::Result;
use clap::CommandFactory;

use crate::cli::{Cli, Command};
use crate::context;
pub use crate::pipeline::{load_cluster, validate, StoredCluster};

pub async fn run(cli: Cli) -> Result<()> {
    let global = cli.global;
    match cli.command {
        Command::Create(args) => create::run(&global, args).await,
        Command::Get(args) => get::run(&global, args).await,
        Command::Edit(args) => edit::run(&global, args).await,
        Command::Replace(args) => replace::run(&global, args).await,
        Command::Delete(args) => delete::run(&global, args).await,
        Command::Update(args) => update::run(&global, args).await,
        Command::Toolbox(args) => toolbox::run(args),
        Command::ForceUnlock(args) => {
            let name = context::cluster_name(&global, args.cluster.as_deref())?;
            let store = context::open_store(&global)?;
            let info = store.force_unlock(&name, &args.lock_id).await?;
            eprintln!("Removed the lock of {name} held by {}", info.describe());
            Ok(())
        }
        Command::Promote(crate::cli::PromoteCommand::Keypair(args)) => {
            pki::rotate(&global, &args.keyset, pki::Rotation::Promote).await
        }
        Command::Distrust(crate::cli::DistrustCommand::Keypair(args)) => {
            pki::rotate(&global, &args.keyset, pki::Rotation::Distrust(args.ids)).await
        }
        Command::Trust(crate::cli::TrustCommand::Keypair(args)) => {
            pki::rotate(&global, &args.keyset, pki::Rotation::Trust(args.ids)).await
        }
        Command::Export(crate::cli::ExportCommand::Kubeconfig(args)) => {
            pki::export_kubeconfig(&global, args).await
        }
        Command::Upgrade(crate::cli::UpgradeCommand::Cluster(args)) => {
            upgrade::run(&global, args).await
        }
        Command::Version => {
            println!("kopsrs {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Completion { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "kopsrs", &mut std::io::stdout());
            Ok(())
        }
    }
}

/// Whether prompts and editors may be used.
pub fn interactive() -> bool {
    std::io::stdin().is_terminal()
}
