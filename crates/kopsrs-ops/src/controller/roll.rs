//! `kopsrs.io/roll` and `kopsrs.io/auto-roll`: after an apply, the controller runs the
//! rolling-update driver `rolling-update cluster --yes` runs ([`crate::rolling`]), with the
//! groups' own settings and every gate it holds (etcd's quorum, version skew, validation),
//! under the cluster's lock. The roll replaces only the instances whose launch template
//! version is not the current one, as the CLI's does without `--force`.
//!
//! The workload cluster's API is reached through `--workload-kubeconfig` (contexts named
//! after the clusters, as the CLI finds them), else through a kubeconfig exported from the
//! cluster's state store with an admin certificate valid for [`ADMIN_VALIDITY`].

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use kopsrs_engine::Action;
use kopsrs_kube::controller::ClusterObject;
use serde_json::{json, Value};

use crate::update::UpdateReport;
use crate::{Reporter, Session};

/// `kopsrs.io/roll: <token>`: a token the status has not rolled yet starts a roll.
pub const ROLL: &str = "kopsrs.io/roll";
/// `kopsrs.io/auto-roll: "true"`: a roll after every apply that changed launch templates.
pub const AUTO_ROLL: &str = "kopsrs.io/auto-roll";

/// The stack of a roll's thread.
const ROLL_STACK: usize = 32 << 20;

/// How long the admin certificate of an exported kubeconfig is valid.
pub const ADMIN_VALIDITY: &str = "2h";

/// Why a roll starts after this apply, if one does: a token not rolled yet, or, with
/// auto-roll, an apply that changed existing launch templates (a new cluster's first apply
/// has nothing to roll).
pub(super) fn wanted(
    token: Option<&str>,
    auto: bool,
    object: &ClusterObject,
    report: &UpdateReport,
) -> Option<String> {
    if let Some(token) = token {
        if object.status.pointer("/roll/token").and_then(Value::as_str) != Some(token) {
            return Some(format!("{ROLL} is {token}"));
        }
    }
    // A roll the controller stopped during (killed, restarted) goes on where it was: the
    // driver replaces only what still runs an older launch template.
    if let Some(started) = object.status.pointer("/rolling/startedAt") {
        return Some(format!(
            "the roll started at {} did not finish",
            started.as_str().unwrap_or("?")
        ));
    }
    let templates_changed = report.applied.is_some()
        && report
            .plan
            .changes
            .iter()
            .any(|c| c.address.kind == "aws_launch_template" && c.action != Action::Create);
    (auto && templates_changed)
        .then(|| format!("{AUTO_ROLL} is \"true\" and the apply changed launch templates"))
}

/// What a roll did: whether it finished, what it says, the instances it had to replace.
pub(super) struct Rolled {
    pub ok: bool,
    pub message: String,
    pub replaced: usize,
}

/// Rolls `name` with `session` (the reconcile's: its store, its AWS clients, its lock
/// owner). `workload`: kubeconfig files naming the cluster's context; none: one exported
/// from the store.
pub(super) async fn run<F: Future<Output = ()>>(
    session: &Session,
    name: &str,
    workload: &[PathBuf],
    mut progress: impl FnMut(String) -> F,
) -> Rolled {
    let fleet = session.aws_fleet.clone();
    let (lines, mut said) = tokio::sync::mpsc::unbounded_channel();
    let session = Session {
        reporter: Arc::new(Said {
            lines,
            inner: session.reporter.clone(),
        }),
        ..session.clone()
    };
    let (name, workload) = (name.to_string(), workload.to_vec());
    // The rolling driver's future is not `Send` (the CLI awaits it on its main thread) and
    // is large: it runs on a thread of its own with a large stack, boxed, on this runtime.
    let runtime = tokio::runtime::Handle::current();
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name(format!("roll {name}"))
        .stack_size(ROLL_STACK)
        .spawn(move || {
            let rolled = runtime.block_on(Box::pin(async {
                roll(&session, &name, &workload)
                    .await
                    .map_err(|e| crate::problems::lines(&e).join("; "))
            }));
            let _ = sender.send(rolled);
        });
    let done = match spawned {
        Ok(_) => {
            // What the roll says is passed on (to the status) at most every PROGRESS_EVERY,
            // the last line said, until the roll ends.
            let mut receiver = std::pin::pin!(receiver);
            let mut last: Option<String> = None;
            let mut told = tokio::time::Instant::now();
            loop {
                tokio::select! {
                    ended = &mut receiver => break ended.unwrap_or_else(|_| {
                        Err("the roll's thread stopped before it ended".to_string())
                    }),
                    Some(line) = said.recv() => last = Some(line),
                    _ = tokio::time::sleep_until(told + PROGRESS_EVERY), if last.is_some() => {
                        progress(last.take().unwrap_or_default()).await;
                        told = tokio::time::Instant::now();
                    }
                }
            }
        }
        Err(e) => Err(format!("the roll's thread could not start: {e}")),
    };
    // The roll changed the cloud through clients of its own: the plans that follow read anew.
    if let Some(fleet) = fleet {
        fleet.forget().await;
    }
    match done {
        Ok(replaced) => Rolled {
            ok: true,
            message: match replaced {
                0 => "every instance runs its group's current launch template".to_string(),
                n => format!("replaced {n} instance(s) that ran an older launch template"),
            },
            replaced,
        },
        Err(message) => Rolled {
            ok: false,
            message,
            replaced: 0,
        },
    }
}

/// How often a running roll's status is written.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The roll's reporter: each line passed on to the controller, and to the reconcile's.
struct Said {
    lines: tokio::sync::mpsc::UnboundedSender<String>,
    inner: Arc<dyn Reporter>,
}

impl Reporter for Said {
    fn say(&self, line: &str) {
        let _ = self.lines.send(line.to_string());
        self.inner.say(line);
    }

    fn warn(&self, warning: &str, hint: Option<&str>) {
        let _ = self.lines.send(format!("warning: {warning}"));
        self.inner.warn(warning, hint);
    }
}

/// The status's `rolling` while a roll runs: why, since when, and its last line.
pub(super) fn running(token: Option<&str>, reason: &str, started: &str, progress: &str) -> Value {
    json!({
        "token": token,
        "reason": reason,
        "startedAt": started,
        "progress": progress,
        "updatedAt": kopsrs_state::now_rfc3339(),
    })
}

async fn roll(session: &Session, name: &str, workload: &[PathBuf]) -> Result<usize> {
    // Kept until the roll ends: the exported kubeconfig lives in it.
    let exported = tempfile::tempdir()?;
    let kubeconfig = match workload.is_empty() {
        false => workload.to_vec(),
        true => {
            let store = crate::session::open_store(session).await?;
            let options = crate::pki::ExportOptions {
                admin: Some(ADMIN_VALIDITY.to_string()),
                kubeconfig: Some(exported.path().join("kubeconfig")),
                ..Default::default()
            };
            vec![crate::pki::export_cluster(session, &store, name, &options).await?]
        }
    };
    // The roll reads what is there now, not a snapshot shared with other clusters' plans
    // (its validation passes must each see the cloud anew): clients of its own.
    let session = Session {
        settings: crate::Settings {
            kubeconfig,
            ..session.settings.clone()
        },
        aws_fleet: None,
        ..session.clone()
    };
    let roll = crate::rolling::prepare(&session, Some(name), Default::default()).await?;
    let replaced = roll.statuses().iter().map(|s| s.need_update).sum();
    roll.run().await?;
    Ok(replaced)
}

/// The status's `roll`.
pub(super) fn status(token: Option<&str>, reason: &str, rolled: &Rolled) -> Value {
    json!({
        "token": token,
        "reason": reason,
        "result": if rolled.ok { "Succeeded" } else { "Failed" },
        "message": rolled.message,
        "replaced": rolled.replaced,
        "finishedAt": kopsrs_state::now_rfc3339(),
    })
}
