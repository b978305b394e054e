//! `export kubeconfig` and the keypair rotation verbs: flags to `kopsrs_ops::pki`.

use anyhow::Result;
use kopsrs_ops::pki::{self, ExportOptions, Rotation};
use kopsrs_ops::session as context;
use kopsrs_ops::Session;

use crate::cli::ExportKubeconfigArgs;

pub async fn export_kubeconfig(global: &Session, args: ExportKubeconfigArgs) -> Result<()> {
    let clusters = match args.all {
        true => None,
        false => Some(vec![context::cluster_name(
            global,
            args.cluster.as_deref(),
        )?]),
    };
    let options = ExportOptions {
        admin: args.admin,
        kubeconfig: args.kubeconfig,
        internal: args.internal,
        api_server: args.api_server,
        user: args.user,
        keep_existing: false,
    };
    pki::export_kubeconfig(global, clusters, &options).await?;
    Ok(())
}

pub async fn rotate(global: &Session, keyset: &str, rotation: Rotation) -> Result<()> {
    pki::rotate(global, keyset, rotation).await
}
