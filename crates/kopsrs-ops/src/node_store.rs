//! Whether the cluster's nodes can read its state store. A node's boot script downloads the
//! cluster's configuration, keysets and join token from the state store, and only an S3
//! store is reachable from an instance: a `file://` folder lives on the machine that ran
//! kopsrs, a `memory://` store in its process. A cloud apply with such a store would create
//! every resource and no node would ever join, so it is refused before anything is read or
//! written; a plan and Terraform output are warned about. Everything offline (create
//! without `--yes`, get, edit, toolbox) works with any store.

use anyhow::Result;
use kopsrs_state::StateStore;

use crate::problems::Problems;
use crate::Session;

/// Whether instances can read a state store at `url` (`s3://bucket/prefix`).
pub fn nodes_can_read(url: &str) -> bool {
    url.starts_with("s3://")
}

/// Why the nodes cannot read `url`, in one clause.
fn why(url: &str) -> String {
    format!(
        "the cluster's state store {url} is not on S3, and nodes read the cluster's configuration, keys and join token from the state store on S3 when they boot"
    )
}

/// The fix, the same for every verb.
const FIX: &str = "use an S3 state store: export KOPS_STATE_STORE=s3://BUCKET/PREFIX (or pass --state s3://BUCKET/PREFIX) and create the cluster there; the local store stays fine for offline work (create without --yes, get, edit, toolbox template)";

/// Refuses `verb` (a run that creates or changes instances in AWS: `update cluster --yes`,
/// `create cluster --yes`, `reconcile cluster --yes`) when the session's state store is not
/// one the nodes can read. Called before the store is opened or AWS is asked anything.
pub fn require(session: &Session, verb: &str) -> Result<()> {
    let url = crate::session::state_url(session)?;
    if nodes_can_read(&url) {
        return Ok(());
    }
    Err(Problems::one(
        format!(
            "{verb} refused: {}; the instances it would create could never join the cluster; nothing was changed",
            why(&url)
        ),
        FIX,
    )
    .into())
}

/// The cluster's `spec.configBase` (the state store's folder of the cluster unless the spec
/// says otherwise: a spec made in another store carries that store's folder) is where its
/// nodes read from. `apply` names the verb that would create instances from it: refused
/// when nodes cannot read it. Otherwise (a plan, Terraform output: `what`) a warning. One
/// read of the spec, before the cluster lock is taken, so a refusal writes nothing.
pub async fn check_cluster(
    session: &Session,
    store: &StateStore,
    name: &str,
    apply: Option<&str>,
    what: &str,
) -> Result<()> {
    // No cluster: the operation says so itself, with its hint.
    let Some(cluster) = store.read_cluster(name).await? else {
        return Ok(());
    };
    let default = store.config_base(name);
    let url = cluster
        .value
        .spec
        .config_base
        .as_deref()
        .unwrap_or(&default);
    if nodes_can_read(url) {
        return Ok(());
    }
    let (source, fix) = match url.trim_end_matches('/') == default.trim_end_matches('/') {
        true => (why(url), FIX.to_string()),
        false => (
            format!("spec.configBase {url}: {}", why(url)),
            match nodes_can_read(store.url()) {
                true => format!("remove spec.configBase (`kopsrs edit cluster {name} --unset spec.configBase`): it then defaults to the cluster's folder in {}", store.url()),
                false => FIX.to_string(),
            },
        ),
    };
    match apply {
        Some(verb) => Err(Problems::one(
            format!("{verb} refused: {source}; the instances it would create could never join the cluster; nothing was changed"),
            fix,
        )
        .into()),
        None => {
            session
                .reporter
                .warn(&format!("{what} cannot boot nodes: {source}"), Some(&fix));
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_s3_is_reachable_from_an_instance() {
        for (url, reachable) in [
            ("s3://bucket/prefix", true),
            ("s3://bucket", true),
            ("file:///tmp/state", false),
            ("memory://", false),
            ("S3://bucket", false),
            ("gs://bucket", false),
        ] {
            assert_eq!(nodes_can_read(url), reachable, "{url}");
        }
    }
}
