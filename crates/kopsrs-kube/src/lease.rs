//! A lock in the cluster: a `coordination.k8s.io/v1` Lease with a holder and an expiry, as
//! Kubernetes's own leader election uses them. `manifests apply --gc-tag` holds one per tag,
//! so two runs of different revisions cannot collect each other's new objects.
//!
//! Taking it is a create (409 when it exists) or, when the holder's lease ran out, a replace
//! guarded by the `resourceVersion` read; so of two runs racing for an expired lease, one
//! wins. Releasing deletes it with the same precondition, only while this run holds it.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, PostParams, Preconditions};
use kube::Api;

use crate::{Kube, KubeError};

/// A Lease this run holds.
#[derive(Debug, Clone)]
pub struct HeldLease {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Who holds it (this run).
    pub holder: String,
    resource_version: Option<String>,
}

/// Another holder has the Lease and its time has not run out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseTaken {
    /// Who holds it.
    pub holder: String,
    /// When its lease runs out (RFC 3339).
    pub until: String,
}

impl Kube {
    /// Takes the Lease `namespace/name` for `holder` for `duration`: made when missing, taken
    /// over when its holder's time ran out, renewed when `holder` has it already. `Ok(Err)`
    /// names who holds it now.
    pub async fn acquire_lease(
        &self,
        namespace: &str,
        name: &str,
        holder: &str,
        duration: Duration,
    ) -> Result<Result<HeldLease, LeaseTaken>, KubeError> {
        let api: Api<Lease> = Api::namespaced(self.client.clone(), namespace);
        let what = format!("taking the lease {namespace}/{name}");
        let now = Timestamp::now();
        let spec = LeaseSpec {
            holder_identity: Some(holder.to_string()),
            lease_duration_seconds: Some(duration.as_secs().clamp(1, i32::MAX as u64) as i32),
            acquire_time: Some(MicroTime(now)),
            renew_time: Some(MicroTime(now)),
            ..LeaseSpec::default()
        };
        for _ in 0..3 {
            let existing = api
                .get_opt(name)
                .await
                .map_err(|e| self.api_error(&what, e))?;
            let Some(mut lease) = existing else {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(name.to_string()),
                        namespace: Some(namespace.to_string()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(spec.clone()),
                };
                match api.create(&PostParams::default(), &lease).await {
                    Ok(made) => return Ok(Ok(self.held(namespace, name, holder, made))),
                    // Made by another run since the read: read it again.
                    Err(kube::Error::Api(e)) if e.code == 409 => continue,
                    Err(e) => return Err(self.api_error(&what, e)),
                }
            };
            let current = lease.spec.clone().unwrap_or_default();
            let theirs = current.holder_identity.clone().unwrap_or_default();
            let until = expiry(&current);
            if theirs != holder && until.is_some_and(|until| until > now) {
                return Ok(Err(LeaseTaken {
                    holder: theirs,
                    until: until.map(|t| t.to_string()).unwrap_or_default(),
                }));
            }
            lease.spec = Some(LeaseSpec {
                // A renewal keeps the time it was first taken.
                acquire_time: match theirs == holder {
                    true => current.acquire_time.or(spec.acquire_time.clone()),
                    false => spec.acquire_time.clone(),
                },
                lease_transitions: Some(
                    current.lease_transitions.unwrap_or(0) + i32::from(theirs != holder),
                ),
                ..spec.clone()
            });
            // The resourceVersion read makes this a compare-and-swap.
            match api.replace(name, &PostParams::default(), &lease).await {
                Ok(taken) => return Ok(Ok(self.held(namespace, name, holder, taken))),
                Err(kube::Error::Api(e)) if e.code == 409 => continue,
                Err(e) => return Err(self.api_error(&what, e)),
            }
        }
        Err(KubeError::Api {
            cluster: self.cluster.clone(),
            what,
            reason: "the lease changed under every attempt (another run is taking it)".into(),
        })
    }

    /// Leader election: waits until `holder` holds the Lease `namespace/name`, then runs
    /// `work` while renewing it every third of `duration`. Returns when `work` ends (the
    /// Lease is released) or, with an error, when a renewal fails or finds another holder:
    /// the caller must then stop acting, since another replica may lead from the Lease's
    /// expiry on. `waiting` is told who leads while this replica waits.
    pub async fn lead<W>(
        &self,
        namespace: &str,
        name: &str,
        holder: &str,
        duration: Duration,
        waiting: impl Fn(&LeaseTaken),
        work: W,
    ) -> Result<(), KubeError>
    where
        W: std::future::Future<Output = ()>,
    {
        let every = duration / 3;
        let held = loop {
            match self.acquire_lease(namespace, name, holder, duration).await {
                Ok(Ok(held)) => break held,
                Ok(Err(taken)) => waiting(&taken),
                // The API may be restarting: try again.
                Err(_) => {}
            }
            tokio::time::sleep(every).await;
        };
        // The latest renewal's resourceVersion is what the release is conditional on.
        let latest = std::sync::Mutex::new(held);
        let renew = async {
            let mut renewed = tokio::time::Instant::now();
            loop {
                tokio::time::sleep(every).await;
                // Each renewal bounded: a replica cut off from the API must notice before its
                // Lease runs out, not after a long read timeout.
                let attempt = tokio::time::timeout(
                    every,
                    self.acquire_lease(namespace, name, holder, duration),
                )
                .await;
                match attempt {
                    Ok(Ok(Ok(held))) => {
                        renewed = tokio::time::Instant::now();
                        *latest.lock().expect("lease") = held;
                    }
                    Ok(Ok(Err(taken))) => {
                        return KubeError::Api {
                            cluster: self.cluster.clone(),
                            what: format!("renewing the lease {namespace}/{name}"),
                            reason: format!("{} holds it now", taken.holder),
                        }
                    }
                    // A failed renewal is retried while the Lease is still this replica's.
                    _ if renewed.elapsed() + every < duration => {}
                    Ok(Err(e)) => return e,
                    Err(_) => {
                        return KubeError::Api {
                            cluster: self.cluster.clone(),
                            what: format!("renewing the lease {namespace}/{name}"),
                            reason: "the API did not answer before the lease ran out".into(),
                        }
                    }
                }
            }
        };
        tokio::select! {
            () = work => {
                let held = latest.lock().expect("lease").clone();
                self.release_lease(&held).await?;
                Ok(())
            }
            lost = renew => Err(lost),
        }
    }

    /// Gives the Lease back: deleted while it is still the one this run took (a run that lost
    /// it, its time having run out, leaves the new holder's alone).
    pub async fn release_lease(&self, held: &HeldLease) -> Result<(), KubeError> {
        let api: Api<Lease> = Api::namespaced(self.client.clone(), &held.namespace);
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                resource_version: held.resource_version.clone(),
                uid: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(&held.name, &params).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
            Err(e) => Err(self.api_error(
                &format!("releasing the lease {}/{}", held.namespace, held.name),
                e,
            )),
        }
    }

    fn held(&self, namespace: &str, name: &str, holder: &str, lease: Lease) -> HeldLease {
        HeldLease {
            namespace: namespace.to_string(),
            name: name.to_string(),
            holder: holder.to_string(),
            resource_version: lease.metadata.resource_version,
        }
    }

    fn api_error(&self, what: &str, e: kube::Error) -> KubeError {
        KubeError::Api {
            cluster: self.cluster.clone(),
            what: what.to_string(),
            reason: e.to_string(),
        }
    }
}

/// When a Lease's time runs out: its renewal (or acquisition) plus its duration.
fn expiry(spec: &LeaseSpec) -> Option<Timestamp> {
    let renewed = spec.renew_time.as_ref().or(spec.acquire_time.as_ref())?.0;
    let seconds = i64::from(spec.lease_duration_seconds.unwrap_or(0));
    renewed
        .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(seconds))
        .ok()
}
