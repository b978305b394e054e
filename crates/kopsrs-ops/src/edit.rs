//! `edit cluster` and `edit instancegroup`: `--set` / `--unset` field assignments by path,
//! checked against the object's schema and retried on a conflict; and the steps of an edit in
//! an editor (the object to edit, the edited text checked, the write), the editor itself
//! being the caller's.

use anyhow::Result;
use kopsrs_api::{decode_documents_with, Cluster, Document, InstanceGroup};
use kopsrs_state::{StateStore, StateStoreError};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::cluster::{load_cluster, StoredCluster};
use crate::problems::{Problem, Problems};
use crate::Session;

/// Applies `--set path=value` assignments and `--unset path`s to `object`, each path
/// checked against `T`'s schema (`prefix`, e.g. `instancegroup.`, may lead a path); every
/// bad one is a problem, all reported together.
pub fn apply_assignments<T: Serialize + DeserializeOwned + schemars::JsonSchema>(
    object: &T,
    sets: &[String],
    unsets: &[String],
    prefix: &str,
) -> Result<T> {
    let schema = serde_json::to_value(schemars::schema_for!(T))?;
    let mut value = serde_json::to_value(object)?;
    let mut problems = Vec::new();
    for assignment in sets {
        let result = assignment
            .split_once('=')
            .ok_or_else(|| "expected path=value".to_string())
            .and_then(|(path, raw)| {
                kopsrs_api::paths::set(
                    &mut value,
                    &schema,
                    path.strip_prefix(prefix).unwrap_or(path),
                    raw,
                )
            });
        if let Err(e) = result {
            problems.push(format!("--set {assignment}: {e}"));
        }
    }
    for path in unsets {
        if let Err(e) =
            kopsrs_api::paths::unset(&mut value, path.strip_prefix(prefix).unwrap_or(path))
        {
            problems.push(format!("--unset {path}: {e}"));
        }
    }
    if !problems.is_empty() {
        return Err(Problems::from_messages(problems).into());
    }
    serde_json::from_value(value).map_err(|e| {
        Problems::one(
            format!("the edited object is not valid: {e}"),
            "check the --set values",
        )
        .into()
    })
}

/// What an edit changes: the Cluster, or one of its instance groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EditTarget {
    /// The Cluster.
    Cluster,
    /// The instance group of this name.
    Group(String),
}

/// How many times a `--set` edit is re-applied after losing a race.
const SET_ATTEMPTS: u32 = 100;

/// `edit --set/--unset`: the assignments applied to the stored object, validated with the
/// rest of the cluster, written only if something changed. On a conflict the change is
/// re-applied to the fresh object (as `kubectl patch` does), with backoff.
pub async fn set_fields(
    session: &Session,
    store: &StateStore,
    name: &str,
    target: &EditTarget,
    sets: &[String],
    unsets: &[String],
) -> Result<()> {
    for attempt in 1..=SET_ATTEMPTS {
        match edit_with_flags(session, store, name, target, sets, unsets).await {
            Err(e)
                if attempt < SET_ATTEMPTS
                    && matches!(
                        e.downcast_ref::<StateStoreError>(),
                        Some(StateStoreError::Conflict(_))
                    ) =>
            {
                tokio::time::sleep(backoff(attempt)).await;
            }
            result => return result,
        }
    }
    unreachable!("the last attempt returns");
}

/// Exponential backoff (5 ms doubling, capped at 250 ms) with full jitter, so racing writers
/// spread out instead of colliding again.
fn backoff(attempt: u32) -> std::time::Duration {
    let cap = 5u64.saturating_mul(1 << attempt.min(6)).min(250);
    let noise = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
        ^ std::process::id().wrapping_mul(2_654_435_761);
    std::time::Duration::from_millis(1 + u64::from(noise) % cap)
}

async fn edit_with_flags(
    session: &Session,
    store: &StateStore,
    name: &str,
    target: &EditTarget,
    sets: &[String],
    unsets: &[String],
) -> Result<()> {
    crate::managed::refuse_spec_change(store, name, "edit").await?;
    let stored = load_cluster(store, name).await?;
    let mut groups = stored.group_values();
    match target {
        EditTarget::Cluster => {
            let cluster: Cluster =
                apply_assignments(&stored.cluster.value, sets, unsets, "cluster.")?;
            crate::cluster::validate(&*session.reporter, &cluster, &groups)?;
            crate::upgrade::check_version_change(&stored.cluster.value, &cluster).await?;
            if cluster != stored.cluster.value {
                store
                    .write_cluster(&cluster, Some(&stored.cluster.version))
                    .await?;
            }
        }
        EditTarget::Group(group_name) => {
            let index = group_index(&groups, group_name)?;
            let group: InstanceGroup =
                apply_assignments(&groups[index], sets, unsets, "instancegroup.")?;
            let changed = group != groups[index];
            groups[index] = group.clone();
            crate::cluster::validate(&*session.reporter, &stored.cluster.value, &groups)?;
            if changed {
                store
                    .write_instance_group(name, &group, stored.group_version(group_name))
                    .await?;
            }
        }
    }
    Ok(())
}

/// The index of group `name`, or a problem naming it.
fn group_index(groups: &[InstanceGroup], name: &str) -> Result<usize> {
    groups
        .iter()
        .position(|g| g.metadata.name == name)
        .ok_or_else(|| {
            Problems::one(
                format!("instance group {name:?} not found"),
                "`kopsrs get instancegroups` lists them",
            )
            .into()
        })
}

/// The stored object an editor starts from, and the cluster it was read with (the versions
/// the edit is written against).
pub async fn editable(
    store: &StateStore,
    name: &str,
    target: &EditTarget,
) -> Result<(StoredCluster, Document)> {
    crate::managed::refuse_spec_change(store, name, "edit").await?;
    let stored = load_cluster(store, name).await?;
    let original = match target {
        EditTarget::Cluster => Document::Cluster(Box::new(stored.cluster.value.clone())),
        EditTarget::Group(group) => Document::InstanceGroup(Box::new(
            stored.group_values()[group_index(&stored.group_values(), group)?].clone(),
        )),
    };
    Ok((stored, original))
}

/// Writes an edited document ([`check_edit`]'s), conditional on the versions in `stored`:
/// another writer meanwhile is a conflict, never overwritten.
pub async fn save_edit(
    store: &StateStore,
    name: &str,
    stored: &StoredCluster,
    document: &Document,
) -> Result<(), StateStoreError> {
    let written = match document {
        Document::Cluster(c) => store.write_cluster(c, Some(&stored.cluster.version)).await,
        Document::InstanceGroup(g) => {
            store
                .write_instance_group(name, g, stored.group_version(&g.metadata.name))
                .await
        }
        _ => unreachable!("check_edit returns a cluster or group"),
    };
    written.map(|_| ())
}

/// Decodes and validates an edited document; it must stay the same kind and name, and a
/// Cluster's Kubernetes version may move only as the channel allows
/// ([`crate::upgrade::check_version_change`]).
pub async fn check_edit(
    reporter: &dyn crate::Reporter,
    body: &str,
    original: &Document,
    stored: &StoredCluster,
    validation: kopsrs_api::Validation,
) -> Result<Document, Vec<Problem>> {
    let problem = |m: String| {
        vec![Problem {
            message: m,
            hint: None,
        }]
    };
    let decoded = decode_documents_with(body, "edit", validation).map_err(|errors| {
        errors
            .into_iter()
            .map(|e| Problem {
                message: e.to_string(),
                hint: None,
            })
            .collect::<Vec<_>>()
    })?;
    for dropped in &decoded.dropped {
        crate::session::warn_dropped(reporter, dropped, validation);
    }
    let mut documents = decoded.documents;
    if documents.len() != 1 {
        return Err(problem(format!(
            "expected one document, found {}",
            documents.len()
        )));
    }
    let document = documents.remove(0);
    if document.describe() != original.describe() {
        return Err(problem(format!(
            "{} cannot become {}: kind and name cannot change in an edit",
            original.describe(),
            document.describe()
        )));
    }
    let mut groups = stored.group_values();
    let cluster = match &document {
        Document::Cluster(c) => (**c).clone(),
        Document::InstanceGroup(g) => {
            if let Some(slot) = groups
                .iter_mut()
                .find(|x| x.metadata.name == g.metadata.name)
            {
                *slot = (**g).clone();
            }
            stored.cluster.value.clone()
        }
        _ => {
            return Err(problem(
                "only clusters and instance groups can be edited".into(),
            ))
        }
    };
    let report = kopsrs_api::validate(&cluster, &groups, false);
    let errors: Vec<Problem> = report
        .errors()
        .map(|i| Problem {
            message: i.to_string(),
            hint: i.hint.clone(),
        })
        .collect();
    if !errors.is_empty() {
        return Err(errors);
    }
    if let Document::Cluster(edited) = &document {
        if let Err(e) = crate::upgrade::check_version_change(&stored.cluster.value, edited).await {
            return Err(match e.downcast::<Problems>() {
                Ok(problems) => problems.0,
                Err(e) => problem(format!("{e:#}")),
            });
        }
    }
    Ok(document)
}
