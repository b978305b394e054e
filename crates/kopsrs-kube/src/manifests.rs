//! What `manifests diff/apply/delete` ask of the API, as untyped objects: discovery (which
//! kinds exist, their resource names and scope), one paginated list per kind and namespace,
//! server-side apply (optionally a dry run), delete, and waiting for a
//! CustomResourceDefinition to be established. The decisions (order, what changed, what is
//! garbage) are `kopsrs_manifests`'.

use std::time::{Duration, Instant};

use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use kube::discovery::{verbs, Discovery, Scope};
use kube::Api;
use serde_json::Value;

use crate::{Kube, KubeError};

/// A kind the API serves.
#[derive(Debug, Clone)]
pub struct Kind {
    resource: ApiResource,
    /// Namespaced (else cluster-scoped).
    pub namespaced: bool,
    /// The API lists and deletes it (garbage collection looks at these).
    pub collectable: bool,
}

impl Kind {
    /// `deployments.apps`, `configmaps`.
    pub fn plural(&self) -> String {
        match self.resource.group.as_str() {
            "" => self.resource.plural.clone(),
            g => format!("{}.{g}", self.resource.plural),
        }
    }

    /// `apps/v1`.
    pub fn api_version(&self) -> &str {
        &self.resource.api_version
    }

    /// `Deployment`.
    pub fn kind(&self) -> &str {
        &self.resource.kind
    }
}

/// The kinds the API serves, from one discovery.
pub struct Catalog {
    discovery: Discovery,
}

impl Catalog {
    /// The kind of `apiVersion` and `kind`, if served.
    pub fn resolve(&self, api_version: &str, kind: &str) -> Option<Kind> {
        let (group, version) = match api_version.rsplit_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let (resource, caps) = self.discovery.resolve_gvk(&gvk)?;
        Some(Kind {
            namespaced: caps.scope == Scope::Namespaced,
            collectable: caps.supports_operation(verbs::LIST)
                && caps.supports_operation(verbs::DELETE),
            resource,
        })
    }

    /// Every kind that can be listed and deleted, in each group's preferred version (what
    /// garbage collection lists, one call per kind).
    pub fn collectable(&self) -> Vec<Kind> {
        let mut out = Vec::new();
        for group in self.discovery.groups() {
            for (resource, caps) in group.recommended_resources() {
                // Subresources (pods/eviction) are not objects; events come and go.
                if resource.plural.contains('/') || resource.kind == "Event" {
                    continue;
                }
                if caps.supports_operation(verbs::LIST) && caps.supports_operation(verbs::DELETE) {
                    out.push(Kind {
                        namespaced: caps.scope == Scope::Namespaced,
                        collectable: true,
                        resource,
                    });
                }
            }
        }
        out
    }
}

impl Kube {
    /// Discovers the API's kinds (one call per group version).
    pub async fn catalog(&self) -> Result<Catalog, KubeError> {
        let discovery = Discovery::new(self.client.clone())
            .run()
            .await
            .map_err(|e| self.failed("discovering the API", e))?;
        Ok(Catalog { discovery })
    }

    /// The server's Kubernetes minor (`1.32`), from `/version`.
    pub async fn server_minor(&self) -> Result<String, KubeError> {
        let info = self
            .client
            .apiserver_version()
            .await
            .map_err(|e| self.failed("reading the server version", e))?;
        // Some distributions write the minor as `32+`.
        let minor: String = info
            .minor
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        Ok(format!("{}.{minor}", info.major))
    }

    fn api(&self, kind: &Kind, namespace: Option<&str>) -> Api<DynamicObject> {
        match namespace {
            Some(ns) if kind.namespaced => {
                Api::namespaced_with(self.client.clone(), ns, &kind.resource)
            }
            _ => Api::all_with(self.client.clone(), &kind.resource),
        }
    }

    /// Every object of `kind` in `namespace` (all namespaces when `None`), optionally by
    /// label: one call per 500 objects.
    pub async fn list_objects(
        &self,
        kind: &Kind,
        namespace: Option<&str>,
        labels: Option<&str>,
    ) -> Result<Vec<Value>, KubeError> {
        let api = self.api(kind, namespace);
        let mut params = ListParams::default().limit(500);
        if let Some(selector) = labels {
            params = params.labels(selector);
        }
        let mut out = Vec::new();
        loop {
            let page = api
                .list(&params)
                .await
                .map_err(|e| self.failed(format!("listing {}", kind.plural()), e))?;
            for item in page.items {
                let mut value = serde_json::to_value(item).unwrap_or_default();
                // Lists leave out each item's apiVersion and kind.
                value["apiVersion"] = Value::String(kind.api_version().to_string());
                value["kind"] = Value::String(kind.kind().to_string());
                out.push(value);
            }
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(token) => params.continue_token = Some(token),
                None => return Ok(out),
            }
        }
    }

    /// Server-side apply of `object` with field manager `manager`: the object as the API
    /// stores it (or would, with `dry_run`). `force` takes fields other managers own.
    pub async fn apply_object(
        &self,
        kind: &Kind,
        object: &Value,
        manager: &str,
        force: bool,
        dry_run: bool,
    ) -> Result<Value, KubeError> {
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        let namespace = object["metadata"]["namespace"].as_str();
        let mut params = PatchParams::apply(manager);
        params.force = force;
        params.dry_run = dry_run;
        let applied = self
            .api(kind, namespace)
            .patch(name, &params, &Patch::Apply(object))
            .await
            .map_err(|e| self.failed("applying", e))?;
        Ok(serde_json::to_value(applied).unwrap_or_default())
    }

    /// Deletes an object (in the background: its dependents are collected by the API's
    /// garbage collector). `false` when it did not exist.
    pub async fn delete_object(
        &self,
        kind: &Kind,
        namespace: Option<&str>,
        name: &str,
        dry_run: bool,
    ) -> Result<bool, KubeError> {
        let params = DeleteParams {
            dry_run,
            propagation_policy: Some(kube::api::PropagationPolicy::Background),
            ..DeleteParams::default()
        };
        match self.api(kind, namespace).delete(name, &params).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
            Err(e) => Err(self.failed("deleting", e)),
        }
    }

    /// Waits until each CustomResourceDefinition of `names` is Established.
    pub async fn wait_established(
        &self,
        catalog: &Catalog,
        names: &[String],
        timeout: Duration,
    ) -> Result<(), KubeError> {
        let Some(kind) = catalog.resolve("apiextensions.k8s.io/v1", "CustomResourceDefinition")
        else {
            return Ok(());
        };
        let api = self.api(&kind, None);
        let deadline = Instant::now() + timeout;
        for name in names {
            loop {
                let crd = api.get(name).await.map_err(|e| {
                    self.failed(format!("reading CustomResourceDefinition {name}"), e)
                })?;
                let established = crd.data["status"]["conditions"]
                    .as_array()
                    .is_some_and(|c| {
                        c.iter()
                            .any(|c| c["type"] == "Established" && c["status"] == "True")
                    });
                if established {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(KubeError::Api {
                        cluster: self.cluster.clone(),
                        what: format!("waiting for CustomResourceDefinition {name}"),
                        reason: format!(
                            "not Established after {}",
                            humantime::format_duration(timeout)
                        ),
                    });
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Ok(())
    }
}
