//! The service-account issuer's discovery documents (IRSA): published by `update cluster`
//! (both targets) to `spec.serviceAccountIssuerDiscovery.discoveryStore` in kops's layout
//! (`.well-known/openid-configuration`, `openid/v1/jwks`), from the `service-account` keyset's
//! trusted keys, and removed by `delete cluster`. IAM's OIDC provider for the cluster reads
//! them there (kopsrs-model's `irsa.rs` makes the provider; the API server's flags name the
//! same issuer, kopsrs-bootstrap).

use anyhow::Result;
use kopsrs_api::Cluster;
use kopsrs_pki::discovery::{discovery_document, DISCOVERY_PATH, JWKS_PATH};
use kopsrs_state::StateStore;

use crate::problems::Problems;
use crate::session::{self as context, Session};

/// The discovery store of `cluster` opened, with the issuer (without scheme); `None` when
/// the cluster publishes none.
async fn open(
    session: &Session,
    cluster: &Cluster,
    region: &str,
) -> Result<Option<(StateStore, String)>> {
    let Some(issuer) = kopsrs_model::discovery_issuer(&cluster.spec, region) else {
        return Ok(None);
    };
    let url = cluster
        .spec
        .service_account_issuer_discovery
        .as_ref()
        .and_then(|d| d.discovery_store.clone())
        .unwrap_or_default();
    let store = StateStore::open_or_create(&url, &context::store_access(&session.settings))
        .await
        .map_err(|e| {
            Problems::one(
                format!("spec.serviceAccountIssuerDiscovery.discoveryStore: {url}: {e}"),
                "give an s3://BUCKET/PATH the cluster's IAM OIDC provider can read (file:// for trials)",
            )
        })?;
    Ok(Some((store, issuer)))
}

/// Opens the cluster's discovery store, if it has one: an apply checks this before anything
/// changes, so a store it cannot write stops it there.
pub async fn check(session: &Session, cluster: &Cluster, region: &str) -> Result<()> {
    open(session, cluster, region).await.map(|_| ())
}

/// Writes the discovery document and the JWKS of the cluster's trusted service-account keys
/// where they differ from what is published. Returns whether anything was written.
pub async fn publish(
    session: &Session,
    state: &StateStore,
    cluster: &Cluster,
    region: &str,
) -> Result<bool> {
    let Some((store, issuer)) = open(session, cluster, region).await? else {
        return Ok(false);
    };
    let name = &cluster.metadata.name;
    let keyset = crate::pki::read(state, name, "service-account")
        .await?
        .ok_or_else(|| {
            Problems::one(
                format!("{name}: the service-account keyset is not in the state store"),
                "run `kopsrs update cluster --yes`, which creates it",
            )
        })?;
    let documents = [
        (DISCOVERY_PATH, discovery_document(&issuer)),
        (JWKS_PATH, keyset.value.jwks()?),
    ];
    let mut written = false;
    for (key, text) in documents {
        let current = store.get(key).await?;
        if current.as_ref().map(|c| c.value.as_ref()) != Some(text.as_bytes()) {
            store.overwrite(key, text.into_bytes().into()).await?;
            written = true;
        }
    }
    if written {
        session.reporter.say(&format!(
            "Published the service-account issuer's documents to {} (IAM reads https://{issuer}/{JWKS_PATH}: the two objects must be publicly readable).",
            store.url()
        ));
    }
    Ok(written)
}

/// Removes the two documents `publish` writes (those exact keys, nothing else of the store).
pub async fn remove(session: &Session, cluster: &Cluster, region: &str) -> Result<usize> {
    let Some((store, _)) = open(session, cluster, region).await? else {
        return Ok(0);
    };
    let mut removed = 0;
    for key in [DISCOVERY_PATH, JWKS_PATH] {
        if store.get(key).await?.is_some() {
            store.delete(key).await?;
            removed += 1;
        }
    }
    Ok(removed)
}
