//! `edit cluster` and `edit instancegroup`: in `$EDITOR`, or with `--set`/`--unset`.
//!
//! With `--set`/`--unset` the read-modify-write is retried on a conflict (the change is
//! re-applied to the fresh object, as `kubectl patch` does). In an editor, an invalid edit is
//! reopened with the errors as comments at the top, as `kubectl edit` does; a conflict is
//! reported and the edited file kept, never overwritten.

use anyhow::{Context as _, Result};
use kopsrs_api::{
    decode_documents_with, encode_documents, Cluster, Document, InstanceGroup, OutputFormat,
};
use kopsrs_state::{StateStore, StateStoreError};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::cli::{EditArgs, EditCommand, EditFlags};
use crate::terminal::interactive;
use kopsrs_ops::load_cluster;
use kopsrs_ops::problems::{Problem, Problems};
use kopsrs_ops::session as context;
use kopsrs_ops::Session;

/// How many times a `--set` edit is re-applied after losing a race.
const SET_ATTEMPTS: u32 = 100;

enum Target {
    Cluster,
    Group(String),
}

pub async fn run(global: &Session, args: EditArgs) -> Result<()> {
    let (name, target, flags) = match args.what {
        EditCommand::Cluster { cluster, flags } => (
            context::cluster_name(global, cluster.as_deref())?,
            Target::Cluster,
            flags,
        ),
        EditCommand::Instancegroup { group, flags } => (
            context::cluster_name(global, None)?,
            Target::Group(group),
            flags,
        ),
    };
    let store = context::open_store(global).await?;
    if !flags.sets.is_empty() || !flags.unsets.is_empty() {
        for attempt in 1..=SET_ATTEMPTS {
            match edit_with_flags(global, &store, &name, &target, &flags).await {
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
    edit_in_editor(global, &store, &name, &target).await
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

/// `--set` / `--unset` applied to `object`.
pub(super) fn apply_flags<T: Serialize + DeserializeOwned + schemars::JsonSchema>(
    object: &T,
    flags: &EditFlags,
    prefix: &str,
) -> Result<T> {
    kopsrs_ops::edit::apply_assignments(object, &flags.sets, &flags.unsets, prefix)
}

async fn edit_with_flags(
    global: &Session,
    store: &StateStore,
    name: &str,
    target: &Target,
    flags: &EditFlags,
) -> Result<()> {
    let stored = load_cluster(store, name).await?;
    let mut groups = stored.group_values();
    match target {
        Target::Cluster => {
            let cluster: Cluster = apply_flags(&stored.cluster.value, flags, "cluster.")?;
            kopsrs_ops::cluster::validate(&*global.reporter, &cluster, &groups)?;
            if cluster != stored.cluster.value {
                store
                    .write_cluster(&cluster, Some(&stored.cluster.version))
                    .await?;
            }
        }
        Target::Group(group_name) => {
            let index = group_index(&groups, group_name)?;
            let group: InstanceGroup = apply_flags(&groups[index], flags, "instancegroup.")?;
            let changed = group != groups[index];
            groups[index] = group.clone();
            kopsrs_ops::cluster::validate(&*global.reporter, &stored.cluster.value, &groups)?;
            if changed {
                store
                    .write_instance_group(name, &group, stored.group_version(group_name))
                    .await?;
            }
        }
    }
    Ok(())
}

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

async fn edit_in_editor(
    global: &Session,
    store: &StateStore,
    name: &str,
    target: &Target,
) -> Result<()> {
    let validation = global.validate;
    let editor = match global.settings.editor.clone() {
        Some(editor) => editor,
        None if interactive() => "vi".to_string(),
        None => {
            return Err(Problems::one(
                "edit needs an editor, and stdin is not a terminal",
                "set EDITOR, or use --set/--unset, or `kopsrs replace -f FILE`",
            )
            .into())
        }
    };
    let stored = load_cluster(store, name).await?;
    let original = match target {
        Target::Cluster => Document::Cluster(Box::new(stored.cluster.value.clone())),
        Target::Group(group) => Document::InstanceGroup(Box::new(
            stored.group_values()[group_index(&stored.group_values(), group)?].clone(),
        )),
    };
    let original_text = encode_documents(std::slice::from_ref(&original), OutputFormat::Yaml);
    let file = tempfile::Builder::new()
        .prefix("kopsrs-edit-")
        .suffix(".yaml")
        .tempfile()?;
    let path = file.path().to_path_buf();
    let header = "# Please edit the object below. Lines beginning with a '#' will be ignored,\n# and an empty file will abort the edit.\n";
    std::fs::write(&path, format!("{header}{original_text}"))?;
    let mut previous_attempt: Option<String> = None;
    loop {
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{editor} \"$1\""))
            .arg("kopsrs-editor")
            .arg(&path)
            .status()
            .with_context(|| format!("starting the editor {editor:?}"))?;
        if !status.success() {
            return Err(Problems::one(
                format!("the editor {editor:?} exited with {status}"),
                "nothing was changed",
            )
            .into());
        }
        let edited = std::fs::read_to_string(&path)?;
        let body: String = edited
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect();
        if body.trim().is_empty() {
            eprintln!("Edit cancelled: the file is empty; no changes made.");
            return Ok(());
        }
        if body == original_text {
            eprintln!("Edit cancelled, no changes made.");
            return Ok(());
        }
        if previous_attempt.as_deref() == Some(body.as_str()) {
            let kept = keep(&path)?;
            return Err(Problems::one(
                "the edit still has the errors above",
                format!("your edit is kept in {kept}; fix it and run `kopsrs replace -f {kept}`"),
            )
            .into());
        }
        match check_edit(&*global.reporter, &body, &original, &stored, validation) {
            Ok(document) => {
                let result = match &document {
                    Document::Cluster(c) => {
                        store.write_cluster(c, Some(&stored.cluster.version)).await
                    }
                    Document::InstanceGroup(g) => {
                        store
                            .write_instance_group(name, g, stored.group_version(&g.metadata.name))
                            .await
                    }
                    _ => unreachable!("check_edit returns a cluster or group"),
                };
                if let Err(e) = result {
                    let kept = keep(&path)?;
                    eprintln!("Your edit is kept in {kept}");
                    return Err(e.into());
                }
                eprintln!("Edited {}", document.describe());
                return Ok(());
            }
            Err(problems) => {
                let comments: String = problems
                    .iter()
                    .flat_map(|p| {
                        std::iter::once(format!("# error: {}", p.message))
                            .chain(p.hint.iter().map(|h| format!("#   hint: {h}")))
                    })
                    .map(|l| format!("{l}\n"))
                    .collect();
                std::fs::write(
                    &path,
                    format!("{header}#\n# The edit was not saved:\n{comments}#\n{body}"),
                )?;
                previous_attempt = Some(body);
            }
        }
    }
}

/// A copy of a failed edit, for the user to start from: a new file only the user can read
/// (0600, a random name, created exclusively), never a predictable path another user could
/// have placed a link at.
fn keep(path: &std::path::Path) -> Result<String> {
    let kept = tempfile::Builder::new()
        .prefix("kopsrs-edit-")
        .suffix(".yaml")
        .tempfile()?;
    std::fs::write(kept.path(), std::fs::read(path)?)?;
    let (_, kept) = kept.keep()?;
    Ok(kept.display().to_string())
}

/// Decodes and validates an edited document; it must stay the same kind and name.
fn check_edit(
    reporter: &dyn kopsrs_ops::Reporter,
    body: &str,
    original: &Document,
    stored: &kopsrs_ops::StoredCluster,
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
        kopsrs_ops::session::warn_dropped(reporter, dropped, validation);
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
    if errors.is_empty() {
        Ok(document)
    } else {
        Err(errors)
    }
}
