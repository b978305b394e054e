//! One module per verb; [`run`] dispatches.

mod create;
mod delete;
mod edit;
mod get;
mod pki;
mod replace;
mod toolbox;
mod update;
mod upgrade;

use std::io::IsTerminal;

use anyhow::Result;
use clap::CommandFactory;
use kopsrs_api::{Cluster, InstanceGroup};
use kopsrs_state::{StateStore, Version, Versioned};

use crate::cli::{Cli, Command};
use crate::context;
use crate::problems::{check, Problems};

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

/// A cluster as stored: its spec and instance groups, each with the version read.
pub struct StoredCluster {
    pub cluster: Versioned<Cluster>,
    pub groups: Vec<Versioned<InstanceGroup>>,
}

impl StoredCluster {
    pub fn group_values(&self) -> Vec<InstanceGroup> {
        self.groups.iter().map(|g| g.value.clone()).collect()
    }

    /// The completed spec (`get --full`), with kops's defaults filled in.
    pub fn completed(&self, store: &StateStore) -> Result<(Cluster, Vec<InstanceGroup>)> {
        let name = &self.cluster.value.metadata.name;
        kopsrs_api::complete(
            &self.cluster.value,
            &self.group_values(),
            &store.config_base(name),
        )
        .map_err(|e| Problems::one(e, "fix the spec with `kopsrs edit cluster`").into())
    }

    pub fn group_version(&self, name: &str) -> Option<&Version> {
        self.groups
            .iter()
            .find(|g| g.value.metadata.name == name)
            .map(|g| &g.version)
    }
}

/// Reads a cluster and its groups, or fails naming the state store.
pub async fn load_cluster(store: &StateStore, name: &str) -> Result<StoredCluster> {
    let (cluster, groups) =
        tokio::try_join!(store.read_cluster(name), store.read_instance_groups(name))?;
    let Some(cluster) = cluster else {
        return Err(Problems::one(
            format!("cluster {name:?} not found in state store {}", store.url()),
            "check --name and --state (or KOPS_STATE_STORE); `kopsrs get clusters` lists what is there",
        )
        .into());
    };
    Ok(StoredCluster { cluster, groups })
}

/// Validates, printing warnings; errors become [`Problems`].
pub fn validate(cluster: &Cluster, groups: &[InstanceGroup]) -> Result<()> {
    check(&kopsrs_api::validate(cluster, groups, false))?;
    Ok(())
}

/// Whether prompts and editors may be used.
pub fn interactive() -> bool {
    std::io::stdin().is_terminal()
}
