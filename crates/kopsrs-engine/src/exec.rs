//! Runs tasks in dependency order: at most `concurrency` at a time, a timeout per attempt,
//! retryable failures retried with exponential backoff. A task whose failure is permanent
//! stops new tasks from starting; running ones finish; the error names what failed and what
//! never ran.

use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};

/// One unit of work: `deps` are indexes of tasks that must succeed first.
#[derive(Debug, Clone)]
pub struct Task<K> {
    /// What the runner is given to identify the work.
    pub key: K,
    /// Indexes (into the task list) of the tasks this one waits for.
    pub deps: Vec<usize>,
}

/// Errors that may succeed when tried again (throttling, 5xx, eventual consistency).
pub trait Retryable {
    /// Whether another attempt may succeed.
    fn retryable(&self) -> bool;
}

/// How [`execute`] runs tasks.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// Tasks running at once, at most.
    pub concurrency: usize,
    /// Time allowed for one attempt; a timed-out attempt is retried.
    pub timeout: Duration,
    /// Attempts per task, the first included.
    pub max_attempts: u32,
    /// Backoff before the second attempt; it doubles with each attempt after.
    pub base_delay: Duration,
    /// Longest backoff.
    pub max_delay: Duration,
}

impl Default for ExecOptions {
    fn default() -> Self {
        ExecOptions {
            concurrency: 10,
            timeout: Duration::from_secs(600),
            max_attempts: 8,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(20),
        }
    }
}

/// Progress, for a bar on a terminal or plain lines in CI logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A task started.
    Started {
        /// Its index.
        task: usize,
    },
    /// A task failed in a way worth retrying; attempt `attempt` follows.
    Retrying {
        /// Its index.
        task: usize,
        /// The attempt about to run (2, 3, ...).
        attempt: u32,
        /// What went wrong.
        error: String,
    },
    /// A task succeeded.
    Done {
        /// Its index.
        task: usize,
        /// Tasks done so far.
        done: usize,
        /// Tasks in the run.
        total: usize,
        /// How long the task took, all attempts included.
        elapsed: Duration,
    },
    /// A task failed for good.
    Failed {
        /// Its index.
        task: usize,
        /// What went wrong.
        error: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
/// A run that succeeded.
pub struct Summary {
    /// Tasks done (all of them).
    pub done: usize,
    /// Attempts made, retries included.
    pub attempts: u32,
    /// How long each task took (all its attempts), by task index.
    pub elapsed: Vec<Duration>,
}

#[derive(Debug)]
/// A run that did not finish: what failed, what never ran.
pub struct ExecError<E> {
    /// The tasks that failed, with their last error.
    pub failed: Vec<(usize, E)>,
    /// Tasks that never started because a dependency failed or the run stopped.
    pub not_run: Vec<usize>,
    /// Tasks that succeeded before the run stopped.
    pub done: usize,
}

impl<E: fmt::Display> fmt::Display for ExecError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} task(s) failed, {} not run, {} done",
            self.failed.len(),
            self.not_run.len(),
            self.done
        )?;
        for (task, error) in &self.failed {
            write!(f, "; task {task}: {error}")?;
        }
        Ok(())
    }
}

/// The failure of one attempt: the task's own error or the timeout.
enum Attempt<E> {
    Error(E),
    Timeout,
}

/// The backoff before attempt `attempt` (2, 3, ...): base × 2^(attempt-2), capped, with
/// a deterministic spread per task so retries of many tasks do not arrive together.
fn backoff(options: &ExecOptions, task: usize, attempt: u32) -> Duration {
    let exp = options
        .base_delay
        .saturating_mul(1u32 << (attempt.saturating_sub(2)).min(16));
    let capped = exp.min(options.max_delay);
    let spread = (task as u64 * 2654435761 % 1000) as f64 / 1000.0; // 0..1
    capped.mul_f64(0.5 + spread / 2.0)
}

/// Runs `tasks`; `run(key, attempt)` performs one attempt.
pub async fn execute<K, E, F, Fut>(
    tasks: &[Task<K>],
    options: &ExecOptions,
    run: F,
    mut progress: impl FnMut(Event),
) -> Result<Summary, ExecError<E>>
where
    F: Fn(&K, u32) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Retryable + fmt::Display + From<TimedOut>,
{
    let total = tasks.len();
    let mut remaining_deps: Vec<usize> = tasks.iter().map(|t| t.deps.len()).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); total];
    for (i, task) in tasks.iter().enumerate() {
        for &d in &task.deps {
            dependents[d].push(i);
        }
    }
    // Ready tasks start longest-chain first (list scheduling by height): when the
    // concurrency limit binds, the tasks that hold up the most work go first.
    let height = heights(tasks, &dependents);
    let mut ready: Vec<usize> = (0..total).filter(|&i| remaining_deps[i] == 0).collect();
    let mut elapsed = vec![Duration::ZERO; total];
    let mut running = FuturesUnordered::new();
    let mut done = 0usize;
    let mut attempts_total = 0u32;
    let mut failed: Vec<(usize, E)> = Vec::new();
    let mut finished: BTreeSet<usize> = BTreeSet::new();
    let concurrency = options.concurrency.max(1);

    let one = |index: usize| {
        let key = &tasks[index].key;
        let run = &run;
        async move {
            let started = tokio::time::Instant::now();
            let mut attempt = 1u32;
            let mut retries: Vec<(u32, String)> = Vec::new();
            loop {
                let result = match tokio::time::timeout(options.timeout, run(key, attempt)).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(Attempt::Error(e)),
                    Err(_) => Err(Attempt::Timeout),
                };
                match result {
                    Ok(()) => return (index, attempt, retries, started.elapsed(), Ok(())),
                    Err(failure) => {
                        let (retryable, error) = match failure {
                            Attempt::Error(e) => (e.retryable(), e),
                            Attempt::Timeout => (true, E::from(TimedOut(options.timeout))),
                        };
                        if !retryable || attempt >= options.max_attempts {
                            return (index, attempt, retries, started.elapsed(), Err(error));
                        }
                        attempt += 1;
                        retries.push((attempt, error.to_string()));
                        tokio::time::sleep(backoff(options, index, attempt)).await;
                    }
                }
            }
        }
    };

    loop {
        while failed.is_empty() && running.len() < concurrency {
            let Some(position) =
                (0..ready.len()).max_by_key(|&p| (height[ready[p]], usize::MAX - ready[p]))
            else {
                break;
            };
            let next = ready.swap_remove(position);
            progress(Event::Started { task: next });
            running.push(one(next));
        }
        let Some((index, attempts, retries, took, result)) = running.next().await else {
            break;
        };
        attempts_total += attempts;
        elapsed[index] = took;
        for (attempt, error) in retries {
            progress(Event::Retrying {
                task: index,
                attempt,
                error,
            });
        }
        finished.insert(index);
        match result {
            Ok(()) => {
                done += 1;
                progress(Event::Done {
                    task: index,
                    done,
                    total,
                    elapsed: took,
                });
                for &dependent in &dependents[index] {
                    remaining_deps[dependent] -= 1;
                    if remaining_deps[dependent] == 0 {
                        ready.push(dependent);
                    }
                }
            }
            Err(error) => {
                progress(Event::Failed {
                    task: index,
                    error: error.to_string(),
                });
                failed.push((index, error));
            }
        }
    }
    if failed.is_empty() && done == total {
        return Ok(Summary {
            done,
            attempts: attempts_total,
            elapsed,
        });
    }
    let not_run = (0..total).filter(|i| !finished.contains(i)).collect();
    Err(ExecError {
        failed,
        not_run,
        done,
    })
}

/// An attempt that ran longer than [`ExecOptions::timeout`].
#[derive(Debug, Clone, Copy)]
pub struct TimedOut(pub Duration);

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "timed out after {:?}", self.0)
    }
}

/// For each task, the number of tasks on the longest chain that starts with it.
fn heights<K>(tasks: &[Task<K>], dependents: &[Vec<usize>]) -> Vec<usize> {
    let mut height = vec![1usize; tasks.len()];
    // Relax until stable, as in `critical_path` (acyclic, small).
    let mut changed = true;
    while changed {
        changed = false;
        for i in 0..tasks.len() {
            let h = 1 + dependents[i].iter().map(|&d| height[d]).max().unwrap_or(0);
            if h > height[i] {
                height[i] = h;
                changed = true;
            }
        }
    }
    height
}

/// The longest dependency chain weighted by how long each task took: no schedule of tasks
/// with these durations finishes sooner, whatever the concurrency.
pub fn critical_path_time<K>(tasks: &[Task<K>], elapsed: &[Duration]) -> Duration {
    let mut finish = vec![Duration::ZERO; tasks.len()];
    let mut changed = true;
    while changed {
        changed = false;
        for (i, task) in tasks.iter().enumerate() {
            let start = task
                .deps
                .iter()
                .map(|&p| finish[p])
                .max()
                .unwrap_or_default();
            let end = start + elapsed.get(i).copied().unwrap_or_default();
            if end > finish[i] {
                finish[i] = end;
                changed = true;
            }
        }
    }
    finish.into_iter().max().unwrap_or_default()
}

/// The number of tasks on the longest dependency chain: with one unit of latency per task,
/// no schedule can finish faster.
pub fn critical_path<K>(tasks: &[Task<K>]) -> usize {
    critical_path_weighted(tasks, &vec![1; tasks.len()])
}

/// The longest dependency chain, each task counting `weights[i]` units (the dependent API
/// calls a change makes): with one unit of latency per call, no schedule can finish faster.
pub fn critical_path_weighted<K>(tasks: &[Task<K>], weights: &[usize]) -> usize {
    let weight = |i: usize| weights.get(i).copied().unwrap_or(1);
    let mut depth = vec![0usize; tasks.len()];
    // Tasks may be in any order; relax until stable (graphs here are small and acyclic).
    let mut changed = true;
    while changed {
        changed = false;
        for (i, task) in tasks.iter().enumerate() {
            let d = weight(i) + task.deps.iter().map(|&p| depth[p]).max().unwrap_or(0);
            if d > depth[i] {
                depth[i] = d;
                changed = true;
            }
        }
    }
    depth.into_iter().max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    #[derive(Debug)]
    enum TestError {
        Throttled,
        Fatal,
        Timeout,
    }

    impl fmt::Display for TestError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{self:?}")
        }
    }
    impl Retryable for TestError {
        fn retryable(&self) -> bool {
            matches!(self, TestError::Throttled | TestError::Timeout)
        }
    }
    impl From<TimedOut> for TestError {
        fn from(_: TimedOut) -> Self {
            TestError::Timeout
        }
    }

    fn fast() -> ExecOptions {
        ExecOptions {
            concurrency: 3,
            timeout: Duration::from_millis(200),
            max_attempts: 4,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
        }
    }

    /// A diamond plus a chain: 0 -> {1,2} -> 3 -> 4, and 5..10 independent.
    fn graph() -> Vec<Task<usize>> {
        let mut tasks = vec![
            Task {
                key: 0,
                deps: vec![],
            },
            Task {
                key: 1,
                deps: vec![0],
            },
            Task {
                key: 2,
                deps: vec![0],
            },
            Task {
                key: 3,
                deps: vec![1, 2],
            },
            Task {
                key: 4,
                deps: vec![3],
            },
        ];
        for k in 5..10 {
            tasks.push(Task {
                key: k,
                deps: vec![],
            });
        }
        tasks
    }

    #[tokio::test]
    async fn dependencies_first_and_concurrency_bounded() {
        let order = Arc::new(Mutex::new(Vec::new()));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let tasks = graph();
        let summary = execute(
            &tasks,
            &fast(),
            |key, _| {
                let (order, in_flight, peak) = (order.clone(), in_flight.clone(), peak.clone());
                let key = *key;
                async move {
                    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    order.lock().unwrap().push(key);
                    Ok::<(), TestError>(())
                }
            },
            |_| {},
        )
        .await
        .unwrap();
        assert_eq!(summary.done, 10);
        let order = order.lock().unwrap().clone();
        let pos = |k| order.iter().position(|&x| x == k).unwrap();
        assert!(pos(0) < pos(1) && pos(0) < pos(2));
        assert!(pos(1) < pos(3) && pos(2) < pos(3) && pos(3) < pos(4));
        assert_eq!(
            peak.load(Ordering::SeqCst),
            3,
            "never more than --concurrency at once"
        );
        assert_eq!(critical_path(&tasks), 4);
    }

    #[tokio::test]
    async fn throttling_and_timeouts_are_retried() {
        let calls = Arc::new(AtomicUsize::new(0));
        let tasks = graph();
        let events = Arc::new(Mutex::new(Vec::new()));
        let summary = execute(
            &tasks,
            &fast(),
            |key, attempt| {
                let calls = calls.clone();
                let key = *key;
                async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    match (key, attempt) {
                        (1, 1 | 2) => Err(TestError::Throttled),
                        (2, 1) => {
                            tokio::time::sleep(Duration::from_secs(5)).await; // times out
                            Ok(())
                        }
                        _ => Ok(()),
                    }
                }
            },
            |e| events.lock().unwrap().push(e),
        )
        .await
        .unwrap();
        assert_eq!(summary.done, 10);
        assert_eq!(summary.attempts, 13, "10 tasks + 2 throttled + 1 timed out");
        let retries = events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| matches!(e, Event::Retrying { .. }))
            .count();
        assert_eq!(retries, 3);
    }

    #[tokio::test]
    async fn a_permanent_failure_stops_dependents() {
        let tasks = graph();
        let err = execute(
            &tasks,
            &fast(),
            |key, _| {
                let key = *key;
                async move {
                    if key == 2 {
                        Err(TestError::Fatal)
                    } else {
                        Ok(())
                    }
                }
            },
            |_| {},
        )
        .await
        .unwrap_err();
        assert_eq!(err.failed.len(), 1);
        assert_eq!(err.failed[0].0, 2);
        assert!(err.not_run.contains(&3) && err.not_run.contains(&4));
        assert!(err.to_string().contains("task 2: Fatal"), "{err}");
    }

    #[tokio::test]
    async fn gives_up_after_max_attempts() {
        let tasks = vec![Task {
            key: 0,
            deps: vec![],
        }];
        let err = execute(
            &tasks,
            &fast(),
            |_, _| async { Err::<(), _>(TestError::Throttled) },
            |_| {},
        )
        .await
        .unwrap_err();
        assert_eq!(err.failed.len(), 1);
    }
}
