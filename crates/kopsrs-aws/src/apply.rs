//! Applying a plan: creations and updates in dependency order, then deletions children
//! first, run through the engine's executor (bounded concurrency, retries). This file only
//! schedules; each kind's calls are in its own file, reached through [`Kind`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use kopsrs_engine::{execute, Action, Change, Event, ExecError, ExecOptions, Plan, Task};
use kopsrs_model::Address;

use crate::handler::{Op, Out};
use crate::kind::Kind;
use crate::resolve;
use crate::{Aws, Error};

/// What an apply did.
#[derive(Debug, Default)]
pub struct ApplyReport {
    /// Changes made.
    pub done: usize,
    /// Attempts made, retries included.
    pub attempts: u32,
    /// Dependent API calls on the longest chain of changes (a VPC and then its DNS
    /// attributes count two; then the slowest deletion of each wave): with a fixed latency
    /// per call, no schedule is faster. Benchmarks compare wall time with it.
    pub critical_path: usize,
    /// The same chain weighted by how long each change took: the wall time an unlimited
    /// concurrency would have needed for these changes.
    pub critical_path_time: std::time::Duration,
}

/// The kind of a change, which the plan checked ([`crate::plan`] refuses unknown kinds).
fn kind_of(change: &Change) -> Result<Kind, Error> {
    Kind::parse(&change.address.kind).ok_or_else(|| {
        Error::permanent(format!(
            "{}: the AWS target does not manage {}; use --target terraform",
            change.address, change.address.kind
        ))
    })
}

/// Dependent API round trips of a change (the critical path's unit).
fn calls_of(change: &Change) -> usize {
    let Ok(kind) = kind_of(change) else {
        return 1;
    };
    match change.action {
        Action::Create => kind.create_calls(),
        Action::Replace => kind.delete_calls() + kind.create_calls(),
        Action::Update => kind.update_calls(),
        Action::Delete => kind.delete_calls(),
    }
}

/// Applies `plan` (from [`Aws::plan`], or [`Aws::destroy_plan`] to delete the cluster):
/// creations and updates in dependency order, then deletions in reverse dependency order.
/// Reads a fleet shares are read again after it: the cloud changed (see [`crate::fleet`]).
pub async fn apply(
    aws: &Aws,
    cluster: &str,
    plan: &Plan,
    options: &ExecOptions,
    progress: impl FnMut(&Change, Event),
) -> Result<ApplyReport, ExecError<Error>> {
    if plan.changes.is_empty() {
        return Ok(ApplyReport::default());
    }
    aws.changed();
    let result = apply_changes(aws, cluster, plan, options, progress).await;
    aws.changed();
    result
}

async fn apply_changes(
    aws: &Aws,
    cluster: &str,
    plan: &Plan,
    options: &ExecOptions,
    mut progress: impl FnMut(&Change, Event),
) -> Result<ApplyReport, ExecError<Error>> {
    let outputs = Arc::new(Mutex::new(plan.known.clone()));
    let forward: Vec<&Change> = plan
        .changes
        .iter()
        .filter(|c| c.action != Action::Delete)
        .collect();
    let index: BTreeMap<&Address, usize> = forward
        .iter()
        .enumerate()
        .map(|(i, c)| (&c.address, i))
        .collect();
    let tasks: Vec<Task<usize>> = forward
        .iter()
        .enumerate()
        .map(|(i, change)| Task {
            key: i,
            deps: change
                .desired
                .iter()
                .flat_map(|r| r.dependencies())
                .filter_map(|d| index.get(d).copied())
                .collect(),
        })
        .collect();
    let weights: Vec<usize> = forward.iter().map(|c| calls_of(c)).collect();
    let mut report = ApplyReport {
        critical_path: kopsrs_engine::critical_path_weighted(&tasks, &weights),
        ..ApplyReport::default()
    };
    let run = |i: &usize, _attempt: u32| {
        let change = forward[*i];
        let outputs = outputs.clone();
        async move {
            let kind = kind_of(change)?;
            let resource = change
                .desired
                .as_ref()
                .ok_or_else(|| Error::permanent(format!("{} is not desired", change.address)))?;
            // References resolve against what exists now, including what this apply made.
            let snapshot = outputs.lock().unwrap().clone();
            let resolved = resolve::attrs(&resource.attrs, &snapshot)?;
            let op = Op {
                aws,
                cluster,
                address: &change.address,
                r: &resolved,
            };
            let new = match change.action {
                Action::Create => create(kind, &op).await?,
                Action::Replace => {
                    if let Some(id) = &change.id {
                        delete(aws, kind, id, &change.found).await?;
                    }
                    create(kind, &op).await?
                }
                Action::Update => {
                    let id = change.id.clone().unwrap_or_default();
                    aws.call();
                    kind.update(&op, &id, change).await?
                }
                Action::Delete => unreachable!("deletions run in waves below"),
            };
            let mut all = outputs.lock().unwrap();
            all.entry(change.address.clone()).or_default().extend(new);
            Ok::<(), Error>(())
        }
    };
    let run = |i: &usize, attempt: u32| {
        let address = &forward[*i].address;
        let fut = run(i, attempt);
        async move { fut.await.map_err(|e| e.at(address)) }
    };
    let summary = execute(&tasks, options, run, |e| progress(forward[task_of(&e)], e)).await?;
    report.done += summary.done;
    report.attempts += summary.attempts;
    report.critical_path_time = kopsrs_engine::critical_path_time(&tasks, &summary.elapsed);

    // Deletions, children before parents: one wave per kind, in reverse dependency order.
    let mut deletions: Vec<&Change> = plan
        .changes
        .iter()
        .filter(|c| c.action == Action::Delete)
        .collect();
    let rank = |c: &Change| Kind::parse(&c.address.kind);
    deletions.sort_by_key(|c| std::cmp::Reverse(rank(c)));
    for wave in deletions.chunk_by(|a, b| rank(a) == rank(b)) {
        let tasks: Vec<Task<usize>> = (0..wave.len())
            .map(|i| Task {
                key: i,
                deps: vec![],
            })
            .collect();
        let run = |i: &usize, _attempt: u32| {
            let change = wave[*i];
            async move {
                let kind = kind_of(change)?;
                let id = change.id.as_deref().unwrap_or_default();
                delete(aws, kind, id, &change.found)
                    .await
                    .map_err(|e| e.at(&change.address))
            }
        };
        let summary = execute(&tasks, options, run, |e| progress(wave[task_of(&e)], e)).await?;
        report.done += summary.done;
        report.attempts += summary.attempts;
        report.critical_path += wave.iter().map(|c| calls_of(c)).max().unwrap_or(0);
        report.critical_path_time += summary.elapsed.iter().max().copied().unwrap_or_default();
    }
    Ok(report)
}

fn task_of(event: &Event) -> usize {
    match event {
        Event::Started { task }
        | Event::Retrying { task, .. }
        | Event::Done { task, .. }
        | Event::Failed { task, .. } => *task,
    }
}

/// Creates one resource, counting its first call (kinds count the calls that follow).
async fn create(kind: Kind, op: &Op<'_>) -> Result<Out, Error> {
    op.aws.call();
    kind.create(op).await
}

/// Deletes one resource; "already gone" (by the kind's own codes) counts as done.
async fn delete(aws: &Aws, kind: Kind, id: &str, found: &Out) -> Result<(), Error> {
    aws.call();
    match kind.delete(aws, id, found).await {
        Err(e) if e.code.as_deref().is_some_and(|c| kind.gone(c)) => Ok(()),
        other => other,
    }
}
