//! `edit cluster` and `edit instancegroup`: in `$EDITOR`, or with `--set`/`--unset`
//! (`kopsrs_ops::edit`, retried on a conflict).
//!
//! In an editor, an invalid edit is reopened with the errors as comments at the top, as
//! `kubectl edit` does; a conflict is reported and the edited file kept, never overwritten.

use anyhow::{Context as _, Result};
use kopsrs_api::{encode_documents, OutputFormat};
use kopsrs_ops::edit::{self, EditTarget};
use kopsrs_state::StateStore;

use crate::cli::{EditArgs, EditCommand};
use crate::terminal::interactive;
use kopsrs_ops::problems::Problems;
use kopsrs_ops::session as context;
use kopsrs_ops::Session;

pub async fn run(global: &Session, args: EditArgs) -> Result<()> {
    let (name, target, flags) = match args.what {
        EditCommand::Cluster { cluster, flags } => (
            context::cluster_name(global, cluster.as_deref())?,
            EditTarget::Cluster,
            flags,
        ),
        EditCommand::Instancegroup { group, flags } => (
            context::cluster_name(global, None)?,
            EditTarget::Group(group),
            flags,
        ),
    };
    let store = context::open_store(global).await?;
    if !flags.sets.is_empty() || !flags.unsets.is_empty() {
        return edit::set_fields(global, &store, &name, &target, &flags.sets, &flags.unsets).await;
    }
    edit_in_editor(global, &store, &name, &target).await
}

async fn edit_in_editor(
    global: &Session,
    store: &StateStore,
    name: &str,
    target: &EditTarget,
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
    let (stored, original) = edit::editable(store, name, target).await?;
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
        match edit::check_edit(&*global.reporter, &body, &original, &stored, validation).await {
            Ok(document) => {
                let result = edit::save_edit(store, name, &stored, &document).await;
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
