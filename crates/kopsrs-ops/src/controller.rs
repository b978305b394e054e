//! `kopsrs controller run`: kops's `Cluster` and `InstanceGroup` custom resources
//! (`kops.k8s.io/v1alpha2`, namespaced) reconciled continuously with the operations the CLI
//! runs. Each reconcile of a cluster is `update cluster --yes` on the spec its resources
//! hold: the spec is written to the cluster's state store (where nodes and the CLI read it),
//! then planned and applied under the store's cluster lock. docs/controller.md says what a
//! user sees; the watches, the work queue and the Kubernetes writes are
//! `kopsrs_kube::controller`'s.
//!
//! Intent is read from the `Cluster`'s annotations ([`Intent`]): paused, plan-only with an
//! approval by hash, a quiet period after edits, the deletion policy.

pub mod adopt;
pub mod install;
pub mod metrics;
pub mod roll;
mod status;

use status::{plan_hash, Status};

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use kopsrs_api::{Cluster, Document, InstanceGroup, Validation};
use kopsrs_kube::controller::{ClusterObject, GroupObject, LoopOptions, Next, ReconcileError};
use kopsrs_kube::Kube;
use kopsrs_state::{layout, StateStore};
use serde_json::{json, Value};

use crate::managed::{self, Claim, Manager};
use crate::problems::Problems;
use crate::reporter::Recorded;
use crate::update::{DirectOptions, UpdateReport};
use crate::Session;

/// `kopsrs.io/paused: "true"`: no AWS call at all, no write to the state store.
pub const PAUSED: &str = "kopsrs.io/paused";
/// `kopsrs.io/mode: plan`: the plan is made and shown in status; nothing is applied but
/// the plan whose hash [`APPROVE_PLAN`] names.
pub const MODE: &str = "kopsrs.io/mode";
/// `kopsrs.io/approve-plan: <hash>`: with [`MODE`] `plan`, apply exactly the plan with this
/// hash (`status.plan.hash`); refused when the plan made now has another.
pub const APPROVE_PLAN: &str = "kopsrs.io/approve-plan";
/// `kopsrs.io/quiet-period: 30s`: how long the spec must stay unchanged before it is
/// applied, so a burst of edits gives one plan and one apply.
pub const QUIET_PERIOD: &str = "kopsrs.io/quiet-period";
/// `kopsrs.io/deletion-policy: Retain|Delete`: what deleting the `Cluster` does to the
/// cluster (Retain: nothing, the store is handed back to the CLI; Delete: `delete cluster
/// --yes`).
pub const DELETION_POLICY: &str = "kopsrs.io/deletion-policy";

/// On an `InstanceGroup`: the group's name when it is not the resource's (two clusters in
/// one namespace each with a group `nodes`).
pub const GROUP_NAME: &str = "kopsrs.io/instance-group";

/// On a namespace: the IAM role the controller assumes for its clusters' cloud (the state
/// store excepted). Only on the namespace, which a platform team controls: a `Cluster`
/// cannot name another team's role.
pub const AWS_ROLE_ARN: &str = "kopsrs.io/aws-role-arn";
/// On a namespace: the external ID the role's trust policy requires.
pub const AWS_EXTERNAL_ID: &str = "kopsrs.io/aws-external-id";

/// The quiet period when the annotation does not set one.
pub const DEFAULT_QUIET_PERIOD: Duration = Duration::from_secs(30);

/// What the controller does, from its flags.
#[derive(Debug, Clone)]
pub struct ControllerOptions {
    /// The management cluster's kubeconfig files (none: the pod's service account).
    pub kubeconfig: Vec<PathBuf>,
    /// The kubeconfig context (none: the current one).
    pub context: Option<String>,
    /// Watch only this namespace (none: all).
    pub namespace: Option<String>,
    /// Clusters reconciled at once.
    pub workers: u16,
    /// AWS changes at once within one cluster's apply.
    pub aws_concurrency: u16,
    /// How often an unchanged cluster is planned again (drift).
    pub resync: Duration,
    /// How long one read of an account and region's resources serves its clusters' plans
    /// (at most; any change the controller makes there drops it).
    pub shared_reads: Duration,
    /// Leader election: the Lease's namespace and name, none to run without one.
    pub lease: Option<(String, String)>,
    /// How long a leader's Lease lasts without renewal.
    pub lease_duration: Duration,
    /// This replica's name in the Lease (the pod's name; none: the host name and process ID).
    pub identity: Option<String>,
    /// How addon downloads are pinned.
    pub pins: crate::addons::PinOptions,
    /// Check the network of clusters in an existing VPC before applying.
    pub network_checks: bool,
    /// Where `/metrics`, `/healthz` and `/readyz` are served (none: not served).
    pub metrics_address: Option<std::net::SocketAddr>,
    /// Kubeconfig files with a context per workload cluster, named after it, for rolls
    /// (none: a kubeconfig exported from each cluster's state store).
    pub workload_kubeconfig: Vec<PathBuf>,
}

/// What a `Cluster`'s annotations ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intent {
    /// [`PAUSED`].
    pub paused: bool,
    /// [`MODE`] is `plan`.
    pub plan_only: bool,
    /// [`APPROVE_PLAN`].
    pub approved: Option<String>,
    /// [`QUIET_PERIOD`].
    pub quiet: Duration,
    /// [`DELETION_POLICY`] is `Delete`.
    pub delete_cloud: bool,
    /// [`roll::ROLL`]: the roll token.
    pub roll: Option<String>,
    /// [`roll::AUTO_ROLL`] is `true`.
    pub auto_roll: bool,
}

impl Intent {
    /// The intent of `annotations`; a value that is not one of the accepted ones is an
    /// error naming the annotation, the value and what it accepts.
    pub fn parse(annotations: &BTreeMap<String, String>) -> Result<Intent, Vec<String>> {
        let mut problems = Vec::new();
        let mut bad = |key: &str, value: &str, accepted: &str| {
            problems.push(format!(
                "metadata.annotations[{key}]: {value:?} is not accepted; use {accepted}"
            ))
        };
        let get = |key: &str| annotations.get(key).map(|v| v.trim());
        let paused = match get(PAUSED) {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                bad(PAUSED, other, "\"true\" or \"false\"");
                false
            }
        };
        let plan_only = match get(MODE) {
            None | Some("apply") => false,
            Some("plan") => true,
            Some(other) => {
                bad(MODE, other, "\"plan\" or \"apply\"");
                false
            }
        };
        let quiet = match get(QUIET_PERIOD) {
            None => DEFAULT_QUIET_PERIOD,
            Some(text) => humantime::parse_duration(text).unwrap_or_else(|_| {
                bad(QUIET_PERIOD, text, "a duration such as \"30s\" or \"2m\"");
                DEFAULT_QUIET_PERIOD
            }),
        };
        let delete_cloud = match get(DELETION_POLICY) {
            None | Some("Retain") => false,
            Some("Delete") => true,
            Some(other) => {
                bad(DELETION_POLICY, other, "\"Retain\" or \"Delete\"");
                false
            }
        };
        let auto_roll = match get(roll::AUTO_ROLL) {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                bad(roll::AUTO_ROLL, other, "\"true\" or \"false\"");
                false
            }
        };
        match problems.is_empty() {
            true => Ok(Intent {
                paused,
                plan_only,
                approved: get(APPROVE_PLAN)
                    .filter(|v| !v.is_empty())
                    .map(str::to_string),
                quiet,
                delete_cloud,
                roll: get(roll::ROLL)
                    .filter(|v| !v.is_empty())
                    .map(str::to_string),
                auto_roll,
            }),
            false => Err(problems),
        }
    }
}

/// What every reconcile shares.
struct Shared {
    kube: Kube,
    session: Session,
    options: ControllerOptions,
    /// The spec digest of each cluster (by UID) and when it was first seen, for the quiet
    /// period.
    seen: Mutex<HashMap<String, (String, Instant)>>,
    /// Each cluster's (by UID) last reconcile.
    done: Mutex<HashMap<String, Last>>,
    metrics: Arc<metrics::Metrics>,
    /// This replica's name (its locks' owner is `kopsrs-controller/<identity>`).
    identity: String,
    /// Whether replicas elect a leader: then a lock another replica left is taken over.
    elected: bool,
}

/// The owner written into the cluster locks the controller takes, before its identity.
const LOCK_OWNER: &str = "kopsrs-controller/";

/// Runs the controller until SIGTERM or Ctrl-C (or, with leader election, until this replica
/// loses its Lease: an error, so the pod restarts and waits its turn).
pub async fn run(session: &Session, options: &ControllerOptions) -> Result<()> {
    let metrics = Arc::new(metrics::Metrics::default());
    if let Some(address) = options.metrics_address {
        let listener = metrics::bind(address).await?;
        tokio::spawn(metrics::serve(listener, metrics.clone()));
    }
    let identity = options.identity.clone().unwrap_or_else(|| {
        format!(
            "{}-{}",
            gethostname::gethostname().to_string_lossy(),
            std::process::id()
        )
    });
    let kube = Kube::management(&options.kubeconfig, options.context.as_deref()).await?;
    metrics.set_ready(true);
    let counted = metrics.clone();
    // A resync reads what is there at most half a resync ago: drift made outside the
    // controller is seen within a resync and a half.
    let aws_fleet = Arc::new(crate::session::AwsFleet::new(
        options.shared_reads.min(options.resync / 2),
        Some(Arc::new(move |service: &str, operation: &str| {
            counted.aws_call(service, operation)
        })),
    ));
    let shared = Arc::new(Shared {
        kube: Kube::management(&options.kubeconfig, options.context.as_deref()).await?,
        session: Session {
            settings: crate::Settings {
                user: Some(format!("{LOCK_OWNER}{identity}")),
                ..session.settings.clone()
            },
            aws_fleet: Some(aws_fleet),
            stores: Some(Default::default()),
            ..session.clone()
        },
        options: options.clone(),
        seen: Mutex::new(HashMap::new()),
        done: Mutex::new(HashMap::new()),
        metrics: metrics.clone(),
        identity: identity.clone(),
        elected: options.lease.is_some(),
    });
    let loop_options = LoopOptions {
        namespace: options.namespace.clone(),
        concurrency: options.workers.max(1),
        max_backoff: Duration::from_secs(300),
    };
    let reporter = session.reporter.clone();
    let failures = session.reporter.clone();
    let work = async move {
        let stop = async {
            let _ = crate::interrupt::until_interrupted(std::future::pending::<()>()).await;
        };
        let reconciler = shared.clone();
        shared
            .kube
            .run_controller(
                &loop_options,
                move |namespace, name| {
                    let shared = reconciler.clone();
                    async move {
                        reconcile(&shared, &namespace, &name)
                            .await
                            .map_err(|e| ReconcileError(format!("{e:#}")))
                    }
                },
                stop,
                |error: &str| failures.warn(error, None),
            )
            .await;
    };
    match &options.lease {
        None => {
            reporter.say("Controller running (no leader election).");
            work.await;
            Ok(())
        }
        Some((namespace, name)) => {
            reporter.say(&format!(
                "Waiting to lead through the Lease {namespace}/{name} as {identity}."
            ));
            let waiting = |taken: &kopsrs_kube::LeaseTaken| {
                reporter.say(&format!("{} leads (until {}).", taken.holder, taken.until))
            };
            let leading = async {
                reporter.say(&format!("{identity} leads now."));
                metrics.leader.set(1);
                work.await
            };
            kube.lead(
                namespace,
                name,
                &identity,
                options.lease_duration,
                waiting,
                leading,
            )
            .await?;
            Ok(())
        }
    }
}

/// The longest a failing cluster waits before its next attempt.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// How long a cluster that failed `failures` times in a row waits: 2, 4, 8 ... seconds.
fn backoff(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.clamp(1, 9)).min(MAX_BACKOFF)
}

/// What a cluster's last reconcile acted on, and how it ended.
#[derive(Debug, Clone)]
struct Last {
    /// [`input_digest`] of what it acted on.
    input: String,
    /// When it ended.
    at: Instant,
    /// Failures in a row (0: it succeeded).
    failures: u32,
}

/// One reconcile of `namespace/name`. A failure once the resource has been read is written
/// to its status (Degraded, the problems) with a Warning Event, and backs off: the status
/// write wakes the cluster again at once, and that wake-up waits out the back-off instead of
/// planning again.
async fn reconcile(shared: &Shared, namespace: &str, name: &str) -> Result<Next> {
    let kube = &shared.kube;
    let Some(object) = kube.cluster_object(namespace, name).await? else {
        return Ok(Next::Wait);
    };
    let groups = kube.cluster_groups(namespace, name).await?;
    let spec = spec_digest(&object, &groups);
    let input = input_digest(&spec, &object.annotations);
    let last = shared.done.lock().expect("done").get(&object.uid).cloned();
    if let Some(last) = &last {
        let wait = match last.failures {
            0 => shared.options.resync,
            n => backoff(n),
        };
        if last.input == input && last.at.elapsed() < wait && !object.deleting {
            shared.metrics.reconciled(match last.failures {
                0 => "unchanged",
                _ => "backing_off",
            });
            return Ok(Next::After(wait - last.at.elapsed()));
        }
    }
    match attempt(shared, &object, &groups, &spec, &input).await {
        Ok(next) => Ok(next),
        Err(e) => {
            let failures = last
                .filter(|l| l.input == input)
                .map_or(0, |l| l.failures)
                .saturating_add(1);
            shared.done.lock().expect("done").insert(
                object.uid.clone(),
                Last {
                    input,
                    at: Instant::now(),
                    failures,
                },
            );
            let problems = crate::problems::lines(&e);
            let message = problems.join("; ");
            let mut status = Status::from_object(&object);
            status.condition("Degraded", true, "ReconcileFailed", &message);
            status.condition("Ready", false, "ReconcileFailed", &message);
            status.condition("Applied", false, "ReconcileFailed", &message);
            status.problems = Some(problems);
            if let Err(event) = kube
                .cluster_event(&object, true, "ReconcileFailed", &message)
                .await
            {
                shared.session.reporter.warn(&format!("{event}"), None);
            }
            let _ = finish(shared, &object, status, Next::After(backoff(failures))).await;
            Err(e)
        }
    }
}

/// [`reconcile`] once the resource is read.
async fn attempt(
    shared: &Shared,
    object: &ClusterObject,
    groups: &[GroupObject],
    spec: &str,
    input: &str,
) -> Result<Next> {
    let kube = &shared.kube;
    let (namespace, name) = (object.namespace.as_str(), object.name.as_str());
    let mut status = Status::from_object(object);
    let intent = match Intent::parse(&object.annotations) {
        Ok(intent) => intent,
        Err(problems) => {
            status.invalid("InvalidAnnotation", &problems);
            return done(shared, object, status, Next::Wait, input).await;
        }
    };
    if object.deleting {
        return finalize(shared, object, &intent).await;
    }
    if !object
        .finalizers
        .iter()
        .any(|f| f == kopsrs_kube::controller::FINALIZER)
    {
        // The change wakes this cluster again, with the finalizer in place.
        kube.set_finalizer(object, true).await?;
        return Ok(Next::Wait);
    }
    if intent.paused {
        status.condition(
            "Paused",
            true,
            "Paused",
            &format!("{PAUSED} is \"true\": nothing is read or changed"),
        );
        status.condition("Ready", false, "Paused", "paused");
        return done(shared, object, status, Next::Wait, input).await;
    }
    status.condition("Paused", false, "Running", "");
    let (cluster, groups) = match decode(object, groups) {
        Ok(decoded) => decoded,
        Err(problems) => {
            status.invalid("InvalidSpec", &problems);
            return done(shared, object, status, Next::Wait, input).await;
        }
    };
    let recorded = Arc::new(Recorded::default());
    if let Err(e) = crate::cluster::validate(&*recorded, &cluster, &groups) {
        status.invalid("InvalidSpec", &crate::problems::lines(&e));
        return done(shared, object, status, Next::Wait, input).await;
    }
    // The quiet period: a spec not applied before waits until it has been left alone that
    // long, so a burst of edits gives one apply.
    let applied_before = object.status.get("specDigest").and_then(Value::as_str) == Some(spec);
    if !applied_before {
        let first_seen = {
            let mut seen = shared.seen.lock().expect("seen");
            let entry = seen
                .entry(object.uid.clone())
                .or_insert_with(|| (spec.to_string(), Instant::now()));
            if entry.0 != spec {
                *entry = (spec.to_string(), Instant::now());
            }
            entry.1
        };
        let quiet_for = first_seen.elapsed();
        if quiet_for < intent.quiet {
            shared.metrics.reconciled("quiet_period");
            return Ok(Next::After(intent.quiet - quiet_for));
        }
    }
    let url = match store_url(shared, &cluster) {
        Ok(url) => url,
        Err(e) => {
            status.invalid("InvalidSpec", &crate::problems::lines(&e));
            return done(shared, object, status, Next::Wait, input).await;
        }
    };
    status.spec_digest = Some(spec.to_string());
    let session = Session {
        state: Some(url),
        name: Some(name.to_string()),
        reporter: recorded.clone(),
        aws_role: namespace_role(kube, namespace).await?,
        ..shared.session.clone()
    };
    let store = crate::session::open_or_create_store(&session).await?;
    let me = Manager {
        namespace: namespace.to_string(),
        name: name.to_string(),
        uid: object.uid.clone(),
    };
    let claimed = claim(&store, name, &me).await?;
    if let Claimed::Refused(problem) = &claimed {
        return not_managed(shared, object, status, problem, input).await;
    }
    take_over_lock(shared, object, &store).await?;
    let spec = Arc::new((cluster.clone(), groups));
    let options = DirectOptions {
        yes: false,
        concurrency: shared.options.aws_concurrency,
        export: None,
        pins: shared.options.pins,
        network_checks: shared.options.network_checks,
        saved: None,
        scope: Default::default(),
        force: true,
        spec: Some(spec),
    };
    if claimed == Claimed::New {
        // A cluster claimed now must be new to the cloud too: what carries its name's tags
        // already belongs to a cluster made elsewhere (another store, another controller),
        // which this resource may not take over. Checked on a dry plan, before any change.
        let first = crate::update::update_direct(&session, name, &options).await?;
        if let Some(found) = first
            .plan
            .changes
            .iter()
            .find(|c| c.action != kopsrs_engine::Action::Create)
        {
            store.delete_cluster(name).await?;
            let problem = format!(
                "resources of a cluster named {name} exist in the cloud already ({} is one) and no state store this controller uses records them: the controller does not take over a cluster it did not make; the claim is withdrawn",
                found.id.clone().unwrap_or_else(|| found.address.to_string())
            );
            return not_managed(shared, object, status, &problem, input).await;
        }
    }
    let started = Instant::now();
    let outcome = apply(&session, name, &intent, options, object).await?;
    if let Outcome::Applied(report) = &outcome {
        roll_if_wanted(shared, object, &session, &intent, report, &mut status).await?;
    }
    shared
        .metrics
        .duration
        .observe(started.elapsed().as_secs_f64());
    let (Outcome::Applied(report) | Outcome::Planned(report, _)) = &outcome;
    shared
        .metrics
        .plan_changes
        .observe(report.plan.changes.len() as f64);
    for line in recorded
        .lines()
        .iter()
        .filter(|l| l.starts_with("warning: "))
    {
        event(
            shared,
            object,
            true,
            "Warning",
            line.trim_start_matches("warning: "),
        )
        .await;
    }
    record(shared, object, status, outcome, &cluster, input).await
}

/// The status and Events of a plan or apply that ran.
async fn record(
    shared: &Shared,
    object: &ClusterObject,
    mut status: Status,
    outcome: Outcome,
    cluster: &Cluster,
    input: &str,
) -> Result<Next> {
    let next = Next::After(shared.options.resync);
    match outcome {
        Outcome::Applied(report) => {
            let summary = status.plan(&report, cluster);
            if report.applied.is_some() {
                event(
                    shared,
                    object,
                    false,
                    "Applied",
                    &format!("applied {summary}"),
                )
                .await;
                status.applied_hash = plan_hash(&report).or(status.applied_hash.take());
            }
            status.condition(
                "Planned",
                true,
                "Planned",
                &format!("the last plan had {summary}"),
            );
            status.condition("Applied", true, "Applied", "the cloud matches the spec");
            status.condition("Degraded", false, "Applied", "");
            status.condition("Ready", true, "Applied", "the cloud matches the spec");
            done(shared, object, status, next, input).await
        }
        Outcome::Planned(report, refused) => {
            let summary = status.plan(&report, cluster);
            status.condition(
                "Planned",
                true,
                "Planned",
                &format!(
                    "the plan has {summary}; approve it with {APPROVE_PLAN}: {}",
                    status.hash.clone().unwrap_or_default()
                ),
            );
            match (report.plan.is_empty(), refused) {
                (_, Some(stale)) => {
                    status.condition("Applied", false, "ApprovalStale", &stale);
                    event(shared, object, true, "ApprovalStale", &stale).await;
                }
                (true, None) => {
                    status.condition("Applied", true, "NoChanges", "the cloud matches the spec")
                }
                (false, None) => status.condition(
                    "Applied",
                    false,
                    "AwaitingApproval",
                    "the plan waits for its approval",
                ),
            }
            status.condition("Degraded", false, "Planned", "");
            let ready = report.plan.is_empty();
            status.condition(
                "Ready",
                ready,
                if ready {
                    "NoChanges"
                } else {
                    "AwaitingApproval"
                },
                "",
            );
            done(shared, object, status, next, input).await
        }
    }
}

/// The roll the intent asks for after this apply, if any ([`roll::wanted`]): `Rolling` is
/// written before it starts, and its outcome goes into `status` with an Event.
async fn roll_if_wanted(
    shared: &Shared,
    object: &ClusterObject,
    session: &Session,
    intent: &Intent,
    report: &UpdateReport,
    status: &mut Status,
) -> Result<()> {
    let Some(reason) = roll::wanted(intent.roll.as_deref(), intent.auto_roll, object, report)
    else {
        return Ok(());
    };
    let token = intent.roll.as_deref();
    let started = kopsrs_state::now_rfc3339();
    let rolling_status = |progress: &str| {
        let mut rolling = Status::from_object(object);
        rolling.condition("Rolling", true, "Rolling", &reason);
        rolling.rolling = Some(roll::running(token, &reason, &started, progress));
        rolling.to_value()
    };
    shared
        .kube
        .write_cluster_status(&object.namespace, &object.name, rolling_status("starting"))
        .await?;
    event(shared, object, false, "RollStarted", &reason).await;
    let workload = &shared.options.workload_kubeconfig;
    let rolled = roll::run(session, &object.name, workload, |line| {
        let value = rolling_status(&line);
        async move {
            // Progress is shown when it can be: a failed write does not stop the roll (the
            // next line is written again, and the roll's end is written as any status).
            let _ = shared
                .kube
                .write_cluster_status(&object.namespace, &object.name, value)
                .await;
        }
    })
    .await;
    let outcome = match rolled.ok {
        true => "RollSucceeded",
        false => "RollFailed",
    };
    shared.metrics.reconciled(match rolled.ok {
        true => "rolled",
        false => "roll_failed",
    });
    status.condition("Rolling", false, outcome, &rolled.message);
    status.roll = Some(roll::status(token, &reason, &rolled));
    status.rolling = None;
    event(shared, object, !rolled.ok, outcome, &rolled.message).await;
    Ok(())
}

/// With leader election, a cluster lock another replica of the controller left (killed, or
/// cut off until its Lease ran out) is taken over: this replica leads now, so the other
/// does not act any more. Locks of the CLI or of other tools are never taken over.
async fn take_over_lock(shared: &Shared, object: &ClusterObject, store: &StateStore) -> Result<()> {
    if !shared.elected {
        return Ok(());
    }
    let Some(lock) = store.read_lock(&object.name).await? else {
        return Ok(());
    };
    let Some(other) = lock.owner.strip_prefix(LOCK_OWNER) else {
        return Ok(());
    };
    if other == shared.identity {
        return Ok(());
    }
    store.force_unlock(&object.name, &lock.id).await?;
    event(
        shared,
        object,
        true,
        "LockTakenOver",
        &format!(
            "took over the cluster lock replica {other} left ({}): this replica leads now",
            lock.describe()
        ),
    )
    .await;
    Ok(())
}

/// An Event on the `Cluster`; a failure to record it is said, not fatal.
async fn event(
    shared: &Shared,
    object: &ClusterObject,
    warning: bool,
    reason: &str,
    message: &str,
) {
    if let Err(e) = shared
        .kube
        .cluster_event(object, warning, reason, message)
        .await
    {
        shared.session.reporter.warn(&format!("{e}"), None);
    }
}

/// The resource may not manage the cluster: said in status and in an Event.
async fn not_managed(
    shared: &Shared,
    object: &ClusterObject,
    mut status: Status,
    problem: &str,
    input: &str,
) -> Result<Next> {
    status.condition("Ready", false, "NotManaged", problem);
    status.condition("Applied", false, "NotManaged", problem);
    status.condition("Degraded", true, "NotManaged", problem);
    event(shared, object, true, "NotManaged", problem).await;
    done(shared, object, status, Next::Wait, input).await
}

/// What an apply step did.
enum Outcome {
    /// Applied (the report of the apply).
    Applied(UpdateReport),
    /// Only planned (plan mode), with why an approval was refused.
    Planned(UpdateReport, Option<String>),
}

/// Plans, and applies as the intent says.
async fn apply(
    session: &Session,
    name: &str,
    intent: &Intent,
    options: DirectOptions,
    object: &ClusterObject,
) -> Result<Outcome> {
    if !intent.plan_only {
        let options = DirectOptions {
            yes: true,
            ..options
        };
        return Ok(Outcome::Applied(
            crate::update::update_direct(session, name, &options).await?,
        ));
    }
    let planned = crate::update::update_direct(session, name, &options).await?;
    let hash = plan_hash(&planned);
    let Some(approved) = &intent.approved else {
        return Ok(Outcome::Planned(planned, None));
    };
    // An approval is spent once applied: the same changes found again (the same drift) wait
    // for a new one.
    let spent = object
        .status
        .pointer("/plan/appliedHash")
        .and_then(Value::as_str)
        == Some(approved.as_str());
    if spent && !planned.plan.is_empty() {
        let stale = format!(
            "{APPROVE_PLAN} is {approved}, which was applied already; review the plan in status and approve it again"
        );
        return Ok(Outcome::Planned(planned, Some(stale)));
    }
    if planned.plan.is_empty() || hash.as_deref() != Some(approved.as_str()) {
        let stale = (!planned.plan.is_empty()).then(|| {
            format!(
                "{APPROVE_PLAN} is {approved}, the plan made now is {}: review the new plan in status and approve its hash",
                hash.clone().unwrap_or_default()
            )
        });
        return Ok(Outcome::Planned(planned, stale));
    }
    // Exactly the approved plan: refused if the spec or the cloud moved since it was made.
    let options = DirectOptions {
        yes: true,
        saved: Some(planned.plan.document(Some(name))),
        ..options
    };
    Ok(Outcome::Applied(
        crate::update::update_direct(session, name, &options).await?,
    ))
}

/// A `Cluster` being deleted: carries out its deletion policy, then lets it go. Only a
/// cluster whose state-store record names this very resource is acted on; a paused one with
/// the `Delete` policy keeps its finalizer (and its cloud) until the pause is lifted.
async fn finalize(shared: &Shared, object: &ClusterObject, intent: &Intent) -> Result<Next> {
    if !object
        .finalizers
        .iter()
        .any(|f| f == kopsrs_kube::controller::FINALIZER)
    {
        return Ok(Next::Wait);
    }
    if intent.paused && intent.delete_cloud {
        let mut status = Status::from_object(object);
        let message = format!(
            "deletion policy Delete waits: {PAUSED} is \"true\", and a paused cluster is not changed; lift the pause to delete it, or set {DELETION_POLICY}: Retain to keep it"
        );
        status.condition("Ready", false, "DeletionBlocked", &message);
        return finish(shared, object, status, Next::Wait).await;
    }
    let me = Manager {
        namespace: object.namespace.clone(),
        name: object.name.clone(),
        uid: object.uid.clone(),
    };
    // The store as the resource names it, read from the raw spec: a spec edited into one
    // that no longer decodes still names its store.
    let config_base = object.spec.get("configBase").and_then(Value::as_str);
    // A store the controller never used (refused) holds nothing of this resource.
    let Ok(url) = store_of(shared, &object.name, config_base) else {
        shared.kube.set_finalizer(object, false).await?;
        return Ok(Next::Wait);
    };
    let session = Session {
        state: Some(url),
        name: Some(object.name.clone()),
        reporter: Arc::new(Recorded::default()),
        aws_role: namespace_role(&shared.kube, &object.namespace).await?,
        ..shared.session.clone()
    };
    // A store that does not exist holds no record of this resource.
    let opened = crate::session::open_store(&session).await.ok();
    let store = match opened {
        Some(store) if managed::manager(&store, &object.name).await? == Some(me) => Some(store),
        _ => None,
    };
    // A claim whose spec was never written (plan mode never approved, a first plan that
    // failed) has nothing in the cloud either: the spec is the first thing an apply writes.
    let store = match store {
        Some(store) if intent.delete_cloud && store.read_cluster(&object.name).await?.is_none() => {
            managed::release(&store, &object.name).await?;
            None
        }
        other => other,
    };
    match (store, intent.delete_cloud) {
        (Some(_), true) => {
            event(
                shared,
                object,
                false,
                "Deleting",
                "deletion policy Delete: deleting the cluster's cloud resources and state",
            )
            .await;
            crate::delete::delete_cluster(&session, Some(&object.name), false, true, true).await?;
            event(
                shared,
                object,
                false,
                "Deleted",
                "the cluster's cloud resources and state are deleted",
            )
            .await;
        }
        (Some(store), false) => managed::release(&store, &object.name).await?,
        (None, _) => {}
    }
    shared.kube.set_finalizer(object, false).await?;
    shared.seen.lock().expect("seen").remove(&object.uid);
    shared.done.lock().expect("done").remove(&object.uid);
    shared.metrics.reconciled("deleted");
    Ok(Next::Wait)
}

/// Whether this resource may manage the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Claimed {
    /// The record named it already.
    Held,
    /// The record was made now.
    New,
    /// It may not, and why.
    Refused(String),
}

async fn claim(store: &StateStore, name: &str, me: &Manager) -> Result<Claimed> {
    let before = managed::manager(store, name).await?;
    if before.as_ref() == Some(me) {
        return Ok(Claimed::Held);
    }
    if before.is_none()
        && store
            .get(&format!("{name}/{}", layout::CONFIG))
            .await?
            .is_some()
    {
        return Ok(Claimed::Refused(format!(
            "{name} exists in the state store {} and the CLI manages it: the controller does not take over a cluster it did not make; delete this resource, or hand the cluster over with `kopsrs controller adopt {name}`",
            store.url()
        )));
    }
    Ok(match managed::claim(store, name, me).await? {
        Claim::Held if before.is_none() => Claimed::New,
        Claim::Held => Claimed::Held,
        Claim::Other(other) => Claimed::Refused(format!(
            "{name} is managed from Cluster {}/{} (uid {}) already; two resources cannot manage one cluster",
            other.namespace, other.name, other.uid
        )),
    })
}

/// The role the namespace names for its clusters' cloud, if any.
async fn namespace_role(kube: &Kube, namespace: &str) -> Result<Option<kopsrs_aws::AssumeRole>> {
    let annotations = kube.namespace_annotations(namespace).await?;
    let Some(arn) = annotations
        .get(AWS_ROLE_ARN)
        .map(|a| a.trim())
        .filter(|a| !a.is_empty())
    else {
        return Ok(None);
    };
    if !arn.starts_with("arn:") || !arn.contains(":role/") {
        return Err(Problems::one(
            format!("namespace {namespace}: metadata.annotations[{AWS_ROLE_ARN}]: {arn:?} is not an IAM role ARN"),
            "set it to arn:aws:iam::ACCOUNT:role/NAME",
        )
        .into());
    }
    // STS: 2 to 64 characters of [\w+=,.@-].
    let session_name: String = format!("kopsrs-{namespace}").chars().take(64).collect();
    Ok(Some(kopsrs_aws::AssumeRole {
        role_arn: arn.to_string(),
        external_id: annotations
            .get(AWS_EXTERNAL_ID)
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty()),
        session_name,
    }))
}

/// The state store of a cluster: the parent of `spec.configBase` when it names one, else
/// the controller's own (`--state`).
fn store_url(shared: &Shared, cluster: &Cluster) -> Result<String> {
    store_of(
        shared,
        &cluster.metadata.name,
        cluster.spec.config_base.as_deref(),
    )
}

/// [`store_url`] from the name and the raw `configBase`. A `configBase` must end with the
/// cluster's name (as kops writes it) and lie in the controller's own store: a resource may
/// not point the controller at another store, where another cluster of the same name may be
/// recorded, or none is, and take it over.
fn store_of(shared: &Shared, name: &str, config_base: Option<&str>) -> Result<String> {
    let own = default_store(shared)?;
    let Some(base) = config_base
        .map(|b| b.trim_end_matches('/'))
        .filter(|b| !b.is_empty())
    else {
        return Ok(own);
    };
    let Some(parent) = base.strip_suffix(&format!("/{name}")) else {
        return Err(Problems::one(
            format!("spec.configBase: {base:?} does not end with /{name}"),
            format!(
                "set it to {}/{name}, or leave it out",
                own.trim_end_matches('/')
            ),
        )
        .into());
    };
    if parent != own.trim_end_matches('/') {
        return Err(Problems::one(
            format!("spec.configBase: {base:?} is outside the controller's state store {own}"),
            format!(
                "set it to {}/{name}, or leave it out",
                own.trim_end_matches('/')
            ),
        )
        .into());
    }
    Ok(parent.to_string())
}

/// The controller's own state store (`--state`).
fn default_store(shared: &Shared) -> Result<String> {
    crate::session::state_url(&shared.session)
}

/// The custom resources as kops documents, decoded as the CLI decodes files (strict).
fn decode(
    object: &ClusterObject,
    groups: &[GroupObject],
) -> Result<(Cluster, Vec<InstanceGroup>), Vec<String>> {
    let mut texts = vec![json!({
        "apiVersion": kopsrs_api::API_VERSION,
        "kind": "Cluster",
        "metadata": {"name": object.name},
        "spec": object.spec,
    })];
    let mut names: BTreeMap<&str, &str> = BTreeMap::new();
    let mut clashes = Vec::new();
    for group in groups {
        let name = group.annotations.get(GROUP_NAME).unwrap_or(&group.name);
        if let Some(other) = names.insert(name, &group.name) {
            clashes.push(format!(
                "InstanceGroup {}/{} and {}/{}: both are the group {name:?} of {}; rename one (the annotation {GROUP_NAME} sets the group's name)",
                object.namespace, other, object.namespace, group.name, object.name
            ));
        }
        texts.push(json!({
            "apiVersion": kopsrs_api::API_VERSION,
            "kind": "InstanceGroup",
            "metadata": {"name": name, "labels": group.labels},
            "spec": group.spec,
        }));
    }
    if !clashes.is_empty() {
        return Err(clashes);
    }
    // Several documents as a JSON array, as `get -o json` writes them.
    let text = serde_json::to_string(&texts).expect("JSON");
    let source = format!("Cluster {}/{}", object.namespace, object.name);
    let decoded = kopsrs_api::decode_documents_with(&text, &source, Validation::Strict)
        .map_err(|errors| errors.iter().map(|e| e.to_string()).collect::<Vec<_>>())?;
    let mut cluster = None;
    let mut out = Vec::new();
    for document in decoded.documents {
        match document {
            Document::Cluster(c) => cluster = Some(*c),
            Document::InstanceGroup(g) => out.push(*g),
            _ => {}
        }
    }
    let cluster = cluster.ok_or_else(|| vec![format!("{source}: no spec")])?;
    if out.is_empty() {
        return Err(vec![format!(
            "{source}: no InstanceGroup in namespace {} is labelled kops.k8s.io/cluster={}; a cluster needs at least a control-plane group",
            object.namespace, object.name
        )]);
    }
    Ok((cluster, out))
}

/// A digest of the spec the resources hold, as stored in the API.
fn spec_digest(object: &ClusterObject, groups: &[GroupObject]) -> String {
    use sha2::{Digest, Sha256};
    let groups: Vec<Value> = groups
        .iter()
        .map(|g| json!([g.name, g.labels, g.spec]))
        .collect();
    let text = serde_json::to_string(&json!([object.spec, groups])).expect("JSON");
    format!("sha256:{:x}", Sha256::digest(text.as_bytes()))
}

/// [`spec_digest`] with the controller's annotations: what a reconcile acts on.
fn input_digest(spec: &str, annotations: &BTreeMap<String, String>) -> String {
    use sha2::{Digest, Sha256};
    let ours: Vec<(&String, &String)> = annotations
        .iter()
        .filter(|(k, _)| k.starts_with("kopsrs.io/"))
        .collect();
    let text = serde_json::to_string(&json!([spec, ours])).expect("JSON");
    format!("sha256:{:x}", Sha256::digest(text.as_bytes()))
}

/// [`finish`], and records that `input` has been acted on.
async fn done(
    shared: &Shared,
    object: &ClusterObject,
    status: Status,
    next: Next,
    input: &str,
) -> Result<Next> {
    let next = finish(shared, object, status, next).await?;
    shared.done.lock().expect("done").insert(
        object.uid.clone(),
        Last {
            input: input.to_string(),
            at: Instant::now(),
            failures: 0,
        },
    );
    Ok(next)
}

/// Writes the status and returns `next`.
async fn finish(
    shared: &Shared,
    object: &ClusterObject,
    status: Status,
    next: Next,
) -> Result<Next> {
    let ready = status.conditions.iter().find(|c| c["type"] == "Ready");
    let outcome = match ready.and_then(|c| c["reason"].as_str()).unwrap_or("") {
        "Applied" => "applied",
        "NoChanges" | "AwaitingApproval" => "planned",
        "InvalidSpec" | "InvalidAnnotation" => "invalid",
        "Paused" => "paused",
        "NotManaged" => "not_managed",
        _ => "failed",
    };
    shared.metrics.reconciled(outcome);
    if let (Some(problems), "invalid") = (&status.problems, outcome) {
        let reason = ready
            .and_then(|c| c["reason"].as_str())
            .unwrap_or("InvalidSpec")
            .to_string();
        event(shared, object, true, &reason, &problems.join("; ")).await;
    }
    shared
        .kube
        .write_cluster_status(&object.namespace, &object.name, status.to_value())
        .await?;
    Ok(next)
}
