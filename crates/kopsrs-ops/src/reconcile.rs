//! `reconcile cluster`: an update in the order the version skew policy needs, as kops's
//! `reconcile cluster`: the cloud changes of the control-plane and API-server groups (and
//! of everything shared), their roll, the cloud changes of the other groups, their roll,
//! then the deletions kept for the roll (`--prune`). One cluster lock for the whole run.
//! Every step starts from a fresh read of the cloud and the Nodes, so a run stopped at any
//! point (Ctrl-C, SIGKILL, a failed validation) is resumed by running it again: what was
//! done plans as nothing, the roll goes on where the instances are.

use std::time::{Duration, Instant};

use anyhow::Result;
use kopsrs_api::Role;
use kopsrs_engine::{Hold, Plan};

use crate::cluster::{locked, prepare};
use crate::rolling::{self, RollOptions};
use crate::update::{self, DirectOptions, Scope};
use crate::Session;

/// What `reconcile cluster` does.
#[derive(Debug, Clone)]
pub struct ReconcileOptions {
    /// Change the cloud and roll (without it: print every step's plan).
    pub yes: bool,
    /// The updates' options (their `yes` and `scope` are the reconcile's).
    pub update: DirectOptions,
    /// The rolls' options (their roles are the reconcile's).
    pub roll: RollOptions,
    /// How long the Kubernetes API may take to answer before the control plane's roll.
    pub api_wait: Duration,
}

/// The roles of the first half: the groups that run API servers.
pub const CONTROL_PLANE: [Role; 2] = [Role::ControlPlane, Role::ApiServer];

/// One step of a reconcile, as the dry run shows it.
#[derive(Debug)]
pub struct Step {
    /// What it does.
    pub title: String,
    /// Its cloud changes (a roll: none).
    pub plan: Option<Plan>,
    /// The groups whose launch template the step changes (a roll: those it replaces).
    pub groups: Vec<String>,
}

/// What a reconcile did, or (dry run) would do.
#[derive(Debug, Default)]
pub struct ReconcileReport {
    /// The steps, in order.
    pub steps: Vec<Step>,
}

/// Reconciles `name`: with `yes`, the five steps under the cluster lock; without, the plan
/// of each step (one read of the cloud; the rolls replace the instances of the groups whose
/// launch template changes, and any instance not on its group's current template).
pub async fn reconcile(
    session: &Session,
    name: &str,
    options: &ReconcileOptions,
) -> Result<ReconcileReport> {
    const VERB: &str = "reconcile cluster --yes";
    if options.yes {
        crate::node_store::require(session, VERB)?;
    }
    let store = crate::session::open_store(session).await?;
    if !options.yes {
        crate::kops_built::warn(
            session,
            &store,
            name,
            "`reconcile cluster --yes` is refused",
        )
        .await?;
        return dry_run(session, &store, name, options).await;
    }
    crate::kops_built::refuse(&store, name, VERB).await?;
    crate::managed::refuse(&store, name, VERB, options.update.force).await?;
    crate::node_store::check_cluster(session, &store, name, Some(VERB), "").await?;
    locked(&*session.reporter, &store, name, Some(VERB), async {
        let prepared = prepare(&store, name, session, true).await?;
        let aws = crate::cluster::aws(session, &prepared.set.region).await;
        if options.update.network_checks {
            crate::network::preflight(session, &aws, &prepared, true).await?;
        }
        let mut report = ReconcileReport::default();
        let say = |line: &str| session.reporter.say(line);
        // One update of the cloud with `scope`, as `update cluster --yes` makes it.
        let update = |title: &'static str, scope: Scope| {
            let options = DirectOptions {
                yes: true,
                saved: None,
                scope,
                ..options.update.clone()
            };
            let (aws, store, prepared) = (&aws, &store, &prepared);
            async move {
                let done = Box::pin(update::plan_and_apply(
                    session, aws, store, prepared, &options,
                ))
                .await?;
                anyhow::Ok(applied(title, done.plan))
            }
        };
        let control_plane = Scope {
            roles: CONTROL_PLANE.to_vec(),
            ..Scope::default()
        };
        let after_roll = Scope {
            in_order: true,
            ..Scope::default()
        };

        say("Step 1 of 5: updating the control plane's configuration");
        let step = update("control plane: cloud changes", control_plane).await?;
        report.steps.push(step);
        if let Some(export) = &options.update.export {
            crate::pki::export_cluster(session, &store, name, export).await?;
        }

        say("Step 2 of 5: rolling the control plane");
        wait_for_api(session, name, options).await?;
        let rolled = Box::pin(roll(session, name, options, &CONTROL_PLANE)).await?;
        report
            .steps
            .push(rolled_step("control plane: roll", rolled));

        say("Step 3 of 5: updating the other instance groups' configuration");
        let step = update("nodes: cloud changes", after_roll.clone()).await?;
        report.steps.push(step);

        say("Step 4 of 5: rolling the other instance groups");
        let rolled = Box::pin(roll(session, name, options, &[])).await?;
        report.steps.push(rolled_step("nodes: roll", rolled));

        say("Step 5 of 5: deleting what the roll no longer needs");
        let prune = Scope {
            prune: true,
            ..after_roll
        };
        report.steps.push(update("prune", prune).await?);
        say(&format!("Cluster {name} is reconciled."));
        Ok(report)
    })
    .await
}

fn applied(title: &str, plan: Plan) -> Step {
    Step {
        title: title.into(),
        groups: Vec::new(),
        plan: Some(plan),
    }
}

fn rolled_step(title: &str, groups: Vec<String>) -> Step {
    Step {
        title: title.into(),
        plan: None,
        groups,
    }
}

/// Rolls the groups of `roles` (all: empty) that need it, under the reconcile's lock; the
/// names of the groups it replaced instances in.
async fn roll(
    session: &Session,
    name: &str,
    options: &ReconcileOptions,
    roles: &[Role],
) -> Result<Vec<String>> {
    let options = RollOptions {
        roles: roles.iter().map(|r| r.as_str().to_string()).collect(),
        ..options.roll.clone()
    };
    let mut roll = rolling::prepare(session, Some(name), options).await?;
    roll.under_held_lock();
    let groups: Vec<String> = roll
        .statuses()
        .iter()
        .filter(|s| s.need_update > 0)
        .map(|s| s.name.clone())
        .collect();
    if !groups.is_empty() {
        roll.run().await?;
    }
    Ok(groups)
}

/// Before the control plane's roll the API must answer (a new cluster's control plane is
/// still booting): read it until it does, up to `api_wait`. A missing kubeconfig context is
/// an error at once.
async fn wait_for_api(session: &Session, name: &str, options: &ReconcileOptions) -> Result<()> {
    if options.roll.cloudonly {
        return Ok(());
    }
    let kube = crate::validate::connect(session, name, options.roll.kubeconfig.as_deref()).await?;
    let deadline = Instant::now() + options.api_wait;
    let mut said = false;
    loop {
        match kube.versions().await {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() < deadline => {
                if !said {
                    session
                        .reporter
                        .say(&format!("waiting for the Kubernetes API of {name}: {e}"));
                    said = true;
                }
                tokio::time::sleep(Duration::from_secs(5).min(options.api_wait)).await;
            }
            Err(e) => {
                return Err(crate::validate::kube_problem(name, &e).into());
            }
        }
    }
}

/// The plan of each step from one read: the control plane's changes, the other groups'
/// (held back from the first), and the deletions kept for the roll.
async fn dry_run(
    session: &Session,
    store: &kopsrs_state::StateStore,
    name: &str,
    options: &ReconcileOptions,
) -> Result<ReconcileReport> {
    let prepared = prepare(store, name, session, true).await?;
    crate::node_store::check_cluster(session, store, name, None, "this reconcile").await?;
    let aws = crate::cluster::aws(session, &prepared.set.region).await;
    if options.update.network_checks {
        crate::network::preflight(session, &aws, &prepared, false).await?;
    }
    let scope = Scope {
        roles: CONTROL_PLANE.to_vec(),
        ..Scope::default()
    };
    let (mut first, _) =
        update::plan(session, &aws, store, &prepared, options.update.pins, &scope).await?;
    let (mut nodes, mut prune) = (Plan::default(), Plan::default());
    for held in std::mem::take(&mut first.held) {
        match held.hold {
            Hold::AfterRoll => prune.changes.push(held.change),
            _ => nodes.changes.push(held.change),
        }
    }
    first.fingerprint = None;
    let templates = |plan: &Plan| -> Vec<String> {
        plan.changes
            .iter()
            .filter(|c| c.address.kind == "aws_launch_template")
            .filter_map(|c| prepared.set.instance_groups.get(&c.address).cloned())
            .collect()
    };
    let steps = vec![
        Step {
            title: "1. control plane: cloud changes".into(),
            groups: templates(&first),
            plan: Some(first.clone()),
        },
        rolled_step("2. control plane: roll", templates(&first)),
        Step {
            title: "3. nodes: cloud changes".into(),
            groups: templates(&nodes),
            plan: Some(nodes.clone()),
        },
        rolled_step("4. nodes: roll", templates(&nodes)),
        applied("5. prune", prune),
    ];
    Ok(ReconcileReport { steps })
}
