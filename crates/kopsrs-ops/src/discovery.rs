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

/// How the discovery store is opened: to publish (a `file://` folder is made) or to remove
/// (nothing is made).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Publish,
    Remove,
}

/// The discovery store of `cluster` opened, with the issuer (without scheme); `None` when
/// the cluster publishes none. Refused: a store IAM cannot read (not `s3://`, unless
/// `trial` allows a `file://` or `memory://` one), and a bucket in another region than the
/// issuer's address names (the cluster's: S3 would redirect IAM, which does not follow).
async fn open(
    session: &Session,
    cluster: &Cluster,
    region: &str,
    purpose: Purpose,
    trial: bool,
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
    let field = "spec.serviceAccountIssuerDiscovery.discoveryStore";
    if !url.starts_with("s3://") && !trial {
        return Err(Problems::one(
            format!("{field}: {url} is not an s3:// URL IAM can read the issuer's documents at"),
            "use s3://BUCKET/PATH (create cluster --discovery-store s3://BUCKET)",
        )
        .into());
    }
    let access = context::store_access(&session.settings);
    let opened = match purpose {
        Purpose::Publish => StateStore::open_or_create(&url, &access).await,
        Purpose::Remove => StateStore::open(&url, &access).await,
    };
    let store = opened.map_err(|e| {
        Problems::one(
            format!("{field}: {url}: {e}"),
            "give an s3://BUCKET/PATH that exists and that these credentials may write",
        )
    })?;
    if let Some(bucket_region) = store.s3_region().filter(|r| *r != region) {
        return Err(Problems::one(
            format!(
                "{field}: the bucket of {url} is in {bucket_region}, but the issuer's address names the cluster's region {region} (https://{issuer})"
            ),
            format!("use a bucket in {region}: IAM does not follow S3's redirect to another region"),
        )
        .into());
    }
    Ok(Some((store, issuer)))
}

/// Writes the discovery document and the JWKS of the cluster's trusted service-account keys
/// where they differ from what is published. Returns whether anything was written.
/// `trial`: a `file://` or `memory://` store is accepted (the Terraform target's output is
/// for review; IAM reads only S3).
pub async fn publish(
    session: &Session,
    state: &StateStore,
    cluster: &Cluster,
    region: &str,
    trial: bool,
) -> Result<bool> {
    let Some((store, issuer)) = open(session, cluster, region, Purpose::Publish, trial).await?
    else {
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
/// A store that is gone has nothing to remove; one that cannot be read is a warning, so
/// `delete cluster` still forgets the cluster.
pub async fn remove(session: &Session, cluster: &Cluster, region: &str) -> Result<usize> {
    let opened = open(session, cluster, region, Purpose::Remove, true).await;
    let store = match opened {
        Ok(Some((store, _))) => store,
        Ok(None) => return Ok(0),
        Err(e) => {
            session.reporter.warn(
                &format!("the service-account issuer's documents were not removed: {e:#}"),
                Some("remove .well-known/openid-configuration and openid/v1/jwks under the discovery store by hand"),
            );
            return Ok(0);
        }
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
