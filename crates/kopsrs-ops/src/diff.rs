//! `diff -f PATH...`: the specs in git against the state store, field by field, per cluster
//! and instance group; objects only on one side listed. `diff cluster NAME [-f PATH]` adds
//! the cloud: the plan of `update cluster`, counted per action. Both sides are decoded into
//! the same types and compared as JSON, so formatting, key order and comments never show as
//! changes.

use std::path::PathBuf;

use anyhow::Result;
use serde::Serialize;
use serde_json::Value;

use kopsrs_engine::Action;
use kopsrs_state::StateStore;

use crate::problems::Problems;
use crate::session as context;
use crate::specs::group_by_cluster;
use crate::Session;

/// One difference: a field, or a whole object on one side only (`path` empty).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Difference {
    /// The cluster.
    pub cluster: String,
    /// `Cluster/NAME` or `InstanceGroup/NAME`.
    pub object: String,
    /// The field (`spec.kubernetesVersion`, `spec.subnets[0].cidr`); empty for a whole object.
    pub path: String,
    /// The value in the files (`null`: absent).
    pub file: Value,
    /// The value in the state store (`null`: absent).
    pub store: Value,
}

/// An object that differs, whole on each side (`null`: absent), for a YAML diff.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObjectDiff {
    /// The cluster.
    pub cluster: String,
    /// `Cluster/NAME` or `InstanceGroup/NAME`.
    pub object: String,
    /// The object in the files.
    pub file: Value,
    /// The object in the state store.
    pub store: Value,
}

impl ObjectDiff {
    /// A unified diff of the object as YAML, the state store's before the files' (as
    /// `diff -u`, three lines of context).
    pub fn unified(&self) -> String {
        let yaml = |v: &Value| match v {
            Value::Null => String::new(),
            v => serde_yaml_ng::to_string(v).unwrap_or_default(),
        };
        let (old, new) = (yaml(&self.store), yaml(&self.file));
        similar::TextDiff::from_lines(&old, &new)
            .unified_diff()
            .context_radius(3)
            .header(
                &format!("{} ({}, state store)", self.object, self.cluster),
                &format!("{} ({}, files)", self.object, self.cluster),
            )
            .to_string()
    }
}

/// `diff -f`: the files against the state store, for every cluster in them: each field
/// that differs, and each object that does whole.
pub async fn diff_files(
    session: &Session,
    files: &[PathBuf],
) -> Result<(Vec<Difference>, Vec<ObjectDiff>)> {
    if files.is_empty() {
        return Err(Problems::one(
            "diff needs the spec files: -f PATH",
            "`kopsrs diff -f clusters/` compares them with the state store; `kopsrs diff cluster NAME` adds the cloud",
        )
        .into());
    }
    let store = context::open_store(session).await?;
    file_differences(&store, files, session, session.name.as_deref()).await
}

/// The files against the state store, for every cluster in them (`only`: that one).
async fn file_differences(
    store: &StateStore,
    files: &[PathBuf],
    session: &Session,
    only: Option<&str>,
) -> Result<(Vec<Difference>, Vec<ObjectDiff>)> {
    let documents = context::read_sourced(session, files)?;
    let sets = group_by_cluster(session.name.as_deref(), documents)?;
    let mut out = Vec::new();
    let mut objects = Vec::new();
    for (name, set) in sets {
        if only.is_some_and(|n| n != name) {
            continue;
        }
        let stored = store.read_cluster(&name).await?;
        let stored_groups = store.read_instance_groups(&name).await?;
        let mut compare = |object: String, file: Option<Value>, stored: Option<Value>| {
            let (file, stored) = (file.unwrap_or(Value::Null), stored.unwrap_or(Value::Null));
            if file != stored {
                objects.push(ObjectDiff {
                    cluster: name.clone(),
                    object: object.clone(),
                    file: file.clone(),
                    store: stored.clone(),
                });
            }
            if file.is_null() || stored.is_null() {
                if file != stored {
                    out.push(Difference {
                        cluster: name.clone(),
                        object,
                        path: String::new(),
                        file,
                        store: stored,
                    });
                }
                return;
            }
            let mut fields = Vec::new();
            differences(&file, &stored, String::new(), &mut fields);
            out.extend(fields.into_iter().map(|(path, file, store)| Difference {
                cluster: name.clone(),
                object: object.clone(),
                path,
                file,
                store,
            }));
        };
        if let Some(cluster) = &set.cluster {
            compare(
                format!("Cluster/{name}"),
                Some(serde_json::to_value(cluster)?),
                stored
                    .as_ref()
                    .map(|c| serde_json::to_value(&c.value))
                    .transpose()?,
            );
        }
        for group in &set.groups {
            let object = format!("InstanceGroup/{}", group.metadata.name);
            let stored = stored_groups
                .iter()
                .find(|g| g.value.metadata.name == group.metadata.name)
                .map(|g| serde_json::to_value(&g.value))
                .transpose()?;
            compare(object, Some(serde_json::to_value(group)?), stored);
        }
        // With its Cluster the files are the whole spec: groups they lack are drift too.
        if set.cluster.is_some() {
            for g in &stored_groups {
                if !set
                    .groups
                    .iter()
                    .any(|f| f.metadata.name == g.value.metadata.name)
                {
                    compare(
                        format!("InstanceGroup/{}", g.value.metadata.name),
                        None,
                        Some(serde_json::to_value(&g.value)?),
                    );
                }
            }
        }
    }
    // Objects equal as values differ in no field.
    objects.retain(|o| {
        out.iter()
            .any(|d| d.cluster == o.cluster && d.object == o.object)
    });
    Ok((out, objects))
}

/// What `update cluster` would do, counted per action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloudChanges {
    /// Resources to create.
    pub create: usize,
    /// Resources to change in place.
    pub update: usize,
    /// Resources to replace.
    pub replace: usize,
    /// Resources to destroy.
    pub delete: usize,
    /// Addon changes.
    pub addons: usize,
}

impl CloudChanges {
    /// Nothing to change, resources or addons.
    pub fn is_empty(&self) -> bool {
        self.create + self.update + self.replace + self.delete + self.addons == 0
    }
}

/// `diff cluster`: files vs state store (when files are given), state store vs cloud.
#[derive(Debug, Clone)]
pub struct ClusterDiff {
    /// The cluster.
    pub name: String,
    /// The files against the state store; `None`: no files given.
    pub files: Option<Vec<Difference>>,
    /// The state store against the cloud.
    pub cloud: CloudChanges,
    /// Anything differs, on either side.
    pub differs: bool,
}

/// `diff cluster NAME [-f PATH]`: files vs state store (with files), state store vs cloud
/// (the plan of `update cluster`, counted per action). `cluster`: the name given, else the
/// session's.
pub async fn diff_cluster(
    session: &Session,
    cluster: Option<&str>,
    files: &[PathBuf],
    pins: crate::addons::PinOptions,
) -> Result<ClusterDiff> {
    let store = context::open_store(session).await?;
    let name = context::cluster_name(session, cluster)?;
    let files = match files.is_empty() {
        true => None,
        false => Some(
            file_differences(&store, files, session, Some(&name))
                .await?
                .0,
        ),
    };
    let prepared = crate::cluster::prepare(&store, &name, session, true).await?;
    let aws = crate::cluster::aws(session, &prepared.set.region).await;
    let (plan, _) = crate::update::plan(
        session,
        &aws,
        &store,
        &prepared,
        pins,
        &crate::update::Scope::default(),
    )
    .await?;
    let count = |a: Action| plan.count(a);
    let cloud = CloudChanges {
        create: count(Action::Create),
        update: count(Action::Update),
        replace: count(Action::Replace),
        delete: count(Action::Delete),
        addons: plan.addons.len(),
    };
    let differs = files.as_ref().is_some_and(|f| !f.is_empty()) || !cloud.is_empty();
    Ok(ClusterDiff {
        name,
        files,
        cloud,
        differs,
    })
}

/// Every leaf where `a` (files) and `b` (store) differ: objects by key, lists by index;
/// a field absent on one side is `null` there.
fn differences(a: &Value, b: &Value, path: String, out: &mut Vec<(String, Value, Value)>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let sub = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                differences(
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                    sub,
                    out,
                );
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            for i in 0..x.len().max(y.len()) {
                differences(
                    x.get(i).unwrap_or(&Value::Null),
                    y.get(i).unwrap_or(&Value::Null),
                    format!("{path}[{i}]"),
                    out,
                );
            }
        }
        (a, b) if a != b => out.push((path, a.clone(), b.clone())),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::differences;
    use serde_json::json;

    #[test]
    fn differences_name_each_field_once() {
        let files =
            json!({"spec": {"a": 1, "list": [{"x": 1}, {"x": 2}], "same": true, "new": "n"}});
        let store = json!({"spec": {"a": 2, "list": [{"x": 1}], "same": true, "old": "o"}});
        let mut out = Vec::new();
        differences(&files, &store, String::new(), &mut out);
        assert_eq!(
            out,
            vec![
                ("spec.a".to_string(), json!(1), json!(2)),
                ("spec.list[1]".to_string(), json!({"x": 2}), json!(null)),
                ("spec.new".to_string(), json!("n"), json!(null)),
                ("spec.old".to_string(), json!(null), json!("o")),
            ]
        );
    }
}
