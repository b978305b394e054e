//! What `kopsrs controller run` asks of the management cluster's API: kops's `Cluster` and
//! `InstanceGroup` custom resources watched (kube's runtime: a reflector, a work queue, a
//! back-off per object), read, their status written through the status subresource, the
//! controller's finalizer, core/v1 Events, and leadership through a Lease.
//!
//! The decisions are the caller's (`kopsrs_ops::controller`): this module hands it plain
//! values ([`ClusterObject`], [`GroupObject`]) and does what it returns.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{
    ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams,
};
use kube::config::KubeConfigOptions;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, Config};

use crate::{Kube, KubeError};

/// The finalizer the controller puts on each `Cluster` it manages: the custom resource
/// stays until the deletion policy has been carried out.
pub const FINALIZER: &str = "kopsrs.io/deletion-policy";
/// The field manager of the controller's writes.
pub const FIELD_MANAGER: &str = "kopsrs-controller";
/// The Events' source component.
const COMPONENT: &str = "kopsrs-controller";

fn resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("kops.k8s.io", "v1alpha2", kind),
        plural,
    )
}

fn clusters() -> ApiResource {
    resource("Cluster", "clusters")
}

fn groups() -> ApiResource {
    resource("InstanceGroup", "instancegroups")
}

/// A `Cluster` custom resource as the controller reads it.
#[derive(Debug, Clone)]
pub struct ClusterObject {
    /// Its namespace.
    pub namespace: String,
    /// Its name: the cluster's name.
    pub name: String,
    /// Its UID.
    pub uid: String,
    /// The `resourceVersion` read.
    pub resource_version: String,
    /// `metadata.generation`.
    pub generation: i64,
    /// Its annotations.
    pub annotations: BTreeMap<String, String>,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its finalizers.
    pub finalizers: Vec<String>,
    /// Whether it is being deleted (`deletionTimestamp` set).
    pub deleting: bool,
    /// `spec`, as stored.
    pub spec: serde_json::Value,
    /// `status`, as stored.
    pub status: serde_json::Value,
}

/// An `InstanceGroup` custom resource.
#[derive(Debug, Clone)]
pub struct GroupObject {
    /// Its name.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its annotations.
    pub annotations: BTreeMap<String, String>,
    /// `spec`, as stored.
    pub spec: serde_json::Value,
}

fn cluster_object(o: &DynamicObject) -> ClusterObject {
    let m = &o.metadata;
    ClusterObject {
        namespace: m.namespace.clone().unwrap_or_default(),
        name: m.name.clone().unwrap_or_default(),
        uid: m.uid.clone().unwrap_or_default(),
        resource_version: m.resource_version.clone().unwrap_or_default(),
        generation: m.generation.unwrap_or(0),
        annotations: m.annotations.clone().unwrap_or_default(),
        labels: m.labels.clone().unwrap_or_default(),
        finalizers: m.finalizers.clone().unwrap_or_default(),
        deleting: m.deletion_timestamp.is_some(),
        spec: o.data.get("spec").cloned().unwrap_or_default(),
        status: o.data.get("status").cloned().unwrap_or_default(),
    }
}

/// What to do after a reconcile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Nothing until the object changes.
    Wait,
    /// Again after this long (drift checks, a quiet period running out).
    After(Duration),
}

/// A reconcile that failed: retried with back-off.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ReconcileError(pub String);

/// How the loop runs.
#[derive(Debug, Clone)]
pub struct LoopOptions {
    /// Only this namespace (`None`: every namespace).
    pub namespace: Option<String>,
    /// Reconciles at once.
    pub concurrency: u16,
    /// The longest back-off after failures.
    pub max_backoff: Duration,
}

impl Kube {
    /// The client of the management cluster: the context named (else the current one) of
    /// `kubeconfig`, or the pod's service account when no kubeconfig file exists.
    pub async fn management(
        kubeconfig: &[PathBuf],
        context: Option<&str>,
    ) -> Result<Kube, KubeError> {
        let name = context.unwrap_or("management cluster").to_string();
        let config_err = |reason: String| KubeError::Config {
            cluster: name.clone(),
            reason,
        };
        let mut config = match crate::merged_kubeconfig(kubeconfig).map_err(config_err)? {
            Some(file) => {
                let options = KubeConfigOptions {
                    context: context.map(str::to_string),
                    ..Default::default()
                };
                Config::from_custom_kubeconfig(file, &options)
                    .await
                    .map_err(|e| config_err(e.to_string()))?
            }
            None => Config::incluster().map_err(|e| config_err(e.to_string()))?,
        };
        // Watches are held open by the server for up to `timeoutSeconds` (kube's watcher
        // asks for 290 s); a read timeout must outlast them.
        config.read_timeout = Some(Duration::from_secs(330));
        let server = config.cluster_url.to_string();
        let client = Client::try_from(config).map_err(|e| config_err(e.to_string()))?;
        Ok(Kube {
            evict_client: client.clone(),
            client,
            cluster: name,
            server,
            exec_timeout: crate::EXEC_TIMEOUT,
        })
    }

    fn cluster_api(&self, namespace: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), namespace, &clusters())
    }

    /// The `Cluster` `namespace/name`, `None` once it is gone.
    pub async fn cluster_object(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<ClusterObject>, KubeError> {
        let found = self
            .cluster_api(namespace)
            .get_opt(name)
            .await
            .map_err(|e| self.failed(format!("reading Cluster {namespace}/{name}"), e))?;
        Ok(found.as_ref().map(cluster_object))
    }

    /// The `InstanceGroup`s of `namespace` labelled with the cluster's name
    /// (`kops.k8s.io/cluster`, as kops labels them), by name.
    pub async fn cluster_groups(
        &self,
        namespace: &str,
        cluster: &str,
    ) -> Result<Vec<GroupObject>, KubeError> {
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), namespace, &groups());
        let params = ListParams::default().labels(&format!("kops.k8s.io/cluster={cluster}"));
        let list = api
            .list(&params)
            .await
            .map_err(|e| self.failed(format!("listing InstanceGroups in {namespace}"), e))?;
        let mut out: Vec<GroupObject> = list
            .items
            .iter()
            .map(|o| GroupObject {
                name: o.metadata.name.clone().unwrap_or_default(),
                labels: o.metadata.labels.clone().unwrap_or_default(),
                annotations: o.metadata.annotations.clone().unwrap_or_default(),
                spec: o.data.get("spec").cloned().unwrap_or_default(),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// The annotations of the namespace `name` (empty when it has none).
    pub async fn namespace_annotations(
        &self,
        name: &str,
    ) -> Result<BTreeMap<String, String>, KubeError> {
        let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(self.client.clone());
        let found = api
            .get_opt(name)
            .await
            .map_err(|e| self.failed(format!("reading namespace {name}"), e))?;
        Ok(found
            .and_then(|n| n.metadata.annotations)
            .unwrap_or_default())
    }

    /// Writes the `Cluster`'s status (the whole of it, through the status subresource).
    pub async fn write_cluster_status(
        &self,
        namespace: &str,
        name: &str,
        status: serde_json::Value,
    ) -> Result<(), KubeError> {
        let patch = serde_json::json!({"status": status});
        self.cluster_api(namespace)
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| {
                self.failed(
                    format!("writing the status of Cluster {namespace}/{name}"),
                    e,
                )
            })?;
        Ok(())
    }

    /// Adds or removes [`FINALIZER`], guarded by the finalizers read: another writer's change
    /// in between makes it fail (and the reconcile is retried), never lost.
    pub async fn set_finalizer(
        &self,
        object: &ClusterObject,
        present: bool,
    ) -> Result<(), KubeError> {
        let mut finalizers: Vec<String> = object
            .finalizers
            .iter()
            .filter(|f| f.as_str() != FINALIZER)
            .cloned()
            .collect();
        if present {
            finalizers.push(FINALIZER.to_string());
        }
        // The resourceVersion read makes the patch conditional (409 when it moved).
        let patch = serde_json::json!({"metadata": {
            "finalizers": finalizers,
            "resourceVersion": object.resource_version,
        }});
        self.cluster_api(&object.namespace)
            .patch(&object.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| {
                self.failed(
                    format!(
                        "updating the finalizers of Cluster {}/{}",
                        object.namespace, object.name
                    ),
                    e,
                )
            })?;
        Ok(())
    }

    /// Removes [`FINALIZER`] from the `Cluster` `namespace/name`, reading it again when
    /// another writer (the controller's status) moved it in between.
    pub async fn drop_finalizer(&self, namespace: &str, name: &str) -> Result<(), KubeError> {
        let mut last = None;
        for _ in 0..5 {
            let Some(object) = self.cluster_object(namespace, name).await? else {
                return Ok(());
            };
            if !object.finalizers.iter().any(|f| f == FINALIZER) {
                return Ok(());
            }
            match self.set_finalizer(&object, false).await {
                Ok(()) => return Ok(()),
                Err(e @ KubeError::Api { .. }) if e.to_string().contains("409") => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.expect("five conflicts"))
    }

    /// A core/v1 Event about the `Cluster` (`warning`: type Warning, else Normal).
    pub async fn cluster_event(
        &self,
        object: &ClusterObject,
        warning: bool,
        reason: &str,
        message: &str,
    ) -> Result<(), KubeError> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), &object.namespace);
        let now = Time(Timestamp::now());
        // The API server caps a message at 1 KiB.
        let message: String = message.chars().take(1000).collect();
        let event = Event {
            metadata: ObjectMeta {
                generate_name: Some(format!("{}.", object.name)),
                namespace: Some(object.namespace.clone()),
                ..ObjectMeta::default()
            },
            involved_object: ObjectReference {
                api_version: Some("kops.k8s.io/v1alpha2".into()),
                kind: Some("Cluster".into()),
                name: Some(object.name.clone()),
                namespace: Some(object.namespace.clone()),
                uid: Some(object.uid.clone()),
                ..ObjectReference::default()
            },
            reason: Some(reason.to_string()),
            message: Some(message),
            type_: Some(if warning { "Warning" } else { "Normal" }.into()),
            source: Some(EventSource {
                component: Some(COMPONENT.into()),
                host: None,
            }),
            reporting_component: Some(COMPONENT.into()),
            count: Some(1),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now),
            ..Event::default()
        };
        api.create(&PostParams::default(), &event)
            .await
            .map_err(|e| {
                self.failed(
                    format!(
                        "recording an Event on Cluster {}/{}",
                        object.namespace, object.name
                    ),
                    e,
                )
            })?;
        Ok(())
    }

    /// Creates a `Cluster` (`kind` "Cluster") or `InstanceGroup` resource in `namespace`
    /// from its JSON; an existing one of the same name is an error (409), never overwritten.
    /// Returns its UID.
    pub async fn create_resource(
        &self,
        namespace: &str,
        object: serde_json::Value,
    ) -> Result<String, KubeError> {
        let resource = match object["kind"].as_str() {
            Some("Cluster") => clusters(),
            _ => groups(),
        };
        let what = format!(
            "creating {} {namespace}/{}",
            resource.kind,
            object["metadata"]["name"].as_str().unwrap_or_default()
        );
        let object: DynamicObject =
            serde_json::from_value(object).map_err(|e| KubeError::Config {
                cluster: self.cluster.clone(),
                reason: e.to_string(),
            })?;
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), namespace, &resource);
        let made = api
            .create(&PostParams::default(), &object)
            .await
            .map_err(|e| self.failed(what, e))?;
        Ok(made.metadata.uid.unwrap_or_default())
    }

    /// Sets (or with `None` removes) one annotation of the `Cluster`.
    pub async fn annotate_cluster(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
        value: Option<&str>,
    ) -> Result<(), KubeError> {
        let patch = serde_json::json!({"metadata": {"annotations": {key: value}}});
        self.cluster_api(namespace)
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| self.failed(format!("annotating Cluster {namespace}/{name}"), e))?;
        Ok(())
    }

    /// Deletes one `InstanceGroup` resource (gone already: fine).
    pub async fn delete_group(&self, namespace: &str, name: &str) -> Result<(), KubeError> {
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), namespace, &groups());
        match api.delete(name, &Default::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(self.failed(format!("deleting InstanceGroup {namespace}/{name}"), e)),
        }
    }

    /// Deletes the `Cluster` resource alone (gone already: fine).
    pub async fn delete_cluster_resource(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<(), KubeError> {
        match self
            .cluster_api(namespace)
            .delete(name, &Default::default())
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(self.failed(format!("deleting Cluster {namespace}/{name}"), e)),
        }
    }

    /// Deletes the `Cluster` and the `InstanceGroup`s labelled with its name.
    pub async fn delete_resources(&self, namespace: &str, name: &str) -> Result<(), KubeError> {
        for group in self.cluster_groups(namespace, name).await? {
            self.delete_group(namespace, &group.name).await?;
        }
        self.delete_cluster_resource(namespace, name).await
    }

    /// Watches `Cluster`s (and `InstanceGroup`s, each waking its cluster by its
    /// `kops.k8s.io/cluster` label) and calls `reconcile` with each cluster's namespace and
    /// name, at most `options.concurrency` at once and never twice at once for one cluster.
    /// A failure is retried after 2, 4, 8 ... seconds (up to `options.max_backoff`); a
    /// success resets it. Runs until `stop` completes; each failure goes to `report`.
    pub async fn run_controller<F, Fut>(
        &self,
        options: &LoopOptions,
        reconcile: F,
        stop: impl Future<Output = ()> + Send + Sync + 'static,
        report: impl Fn(&str),
    ) where
        F: Fn(String, String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Next, ReconcileError>> + Send + 'static,
    {
        let (cluster_api, group_api) = match &options.namespace {
            Some(ns) => (
                Api::namespaced_with(self.client.clone(), ns, &clusters()),
                Api::namespaced_with(self.client.clone(), ns, &groups()),
            ),
            None => (
                Api::all_with(self.client.clone(), &clusters()),
                Api::all_with(self.client.clone(), &groups()),
            ),
        };
        struct Context<F> {
            reconcile: F,
            failures: Mutex<HashMap<(String, String), u32>>,
            max_backoff: Duration,
        }
        let context = Arc::new(Context {
            reconcile,
            failures: Mutex::new(HashMap::new()),
            max_backoff: options.max_backoff,
        });
        let key = |o: &DynamicObject| {
            (
                o.metadata.namespace.clone().unwrap_or_default(),
                o.metadata.name.clone().unwrap_or_default(),
            )
        };
        Controller::new_with(cluster_api, watcher::Config::default(), clusters())
            .watches_with(
                group_api,
                groups(),
                watcher::Config::default(),
                |group: DynamicObject| {
                    let cluster = group
                        .metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get("kops.k8s.io/cluster"))
                        .cloned();
                    let namespace = group.metadata.namespace.clone().unwrap_or_default();
                    cluster.map(|name| ObjectRef::new_with(&name, clusters()).within(&namespace))
                },
            )
            .with_config(ControllerConfig::default().concurrency(options.concurrency))
            .graceful_shutdown_on(stop)
            .run(
                move |object: Arc<DynamicObject>, context: Arc<Context<F>>| {
                    let (namespace, name) = key(&object);
                    let run = (context.reconcile)(namespace.clone(), name.clone());
                    async move {
                        let next = run.await?;
                        context.failures.lock().unwrap().remove(&(namespace, name));
                        Ok::<_, ReconcileError>(match next {
                            Next::Wait => Action::await_change(),
                            Next::After(after) => Action::requeue(after),
                        })
                    }
                },
                |object: Arc<DynamicObject>, _error: &ReconcileError, context: Arc<Context<F>>| {
                    let mut failures = context.failures.lock().unwrap();
                    let count = failures.entry(key(&object)).or_insert(0);
                    *count = count.saturating_add(1);
                    let backoff = Duration::from_secs(1u64 << (*count).min(16));
                    Action::requeue(backoff.min(context.max_backoff))
                },
                context,
            )
            .for_each(|result| {
                // A failed reconcile (retried with back-off) or watch (retried by the
                // watcher): said, never dropped.
                if let Err(e) = result {
                    report(&format!("{e}"));
                }
                async {}
            })
            .await;
    }
}
