//! `rolling-update cluster`: replaces, group by group, the instances that need it. The
//! decisions (which instances, in which order, how many at once) are
//! `kopsrs_engine::rolling`'s; this drives AWS (`kopsrs_aws` rolling steps) and Kubernetes
//! (`kopsrs_kube` marking and draining), validating the cluster (`validate::pass`) before
//! each group and after every round. Every round starts from a fresh read of AWS and the
//! Nodes, so a run that was interrupted (Ctrl-C, SIGKILL, a failed validation) resumes where
//! the cloud is: detached instances first, then the rest.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::Result;
use kopsrs_api::{Role, RollingUpdate};
use kopsrs_aws::{Aws, RollingGroup};
use kopsrs_engine::rolling::{self, Group, Instance};
use kopsrs_kube::Kube;

use crate::cli::{GlobalArgs, RollingUpdateClusterArgs};
use crate::problems::Problems;
use crate::{context, pipeline};

use super::get::{print_table, table};
use super::validate;

/// How long a deregistered target may take to leave its target group.
const DEREGISTRATION_TIMEOUT: Duration = Duration::from_secs(300);
/// How often AWS is read while waiting for a group to be back at its desired capacity.
const CAPACITY_POLL: Duration = Duration::from_secs(2);

pub async fn run(global: &GlobalArgs, args: RollingUpdateClusterArgs) -> Result<()> {
    let store = context::open_store(global).await?;
    let name = context::cluster_name(global, args.cluster.as_deref())?;
    let prepared = pipeline::prepare(&store, &name, &global.settings, false).await?;
    let roles_filter = parse_roles(&args.instance_group_roles)?;
    let specs: BTreeMap<String, (Role, Option<RollingUpdate>)> = prepared
        .groups
        .iter()
        .map(|g| {
            (
                g.metadata.name.clone(),
                (
                    g.role().unwrap_or(Role::Node),
                    g.spec.rolling_update.clone(),
                ),
            )
        })
        .collect();
    let unknown: Vec<&String> = args
        .instance_group
        .iter()
        .filter(|g| !specs.contains_key(*g))
        .collect();
    if !unknown.is_empty() {
        return Err(Problems::one(
            format!("--instance-group: no instance group {unknown:?} in cluster {name}"),
            format!(
                "the cluster's instance groups are {}",
                specs.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        )
        .into());
    }
    let aws = Aws::connect(&prepared.set.region).await;
    let kube = match args.cloudonly {
        true => None,
        false => Some(
            Kube::connect(&name, args.kubeconfig.as_deref())
                .await
                .map_err(|e| cloudonly_hint(validate::kube_problem(&name, &e)))?,
        ),
    };
    let roller = Roller {
        aws: &aws,
        kube: kube.as_ref(),
        name: &name,
        args: &args,
        specs,
        cluster_rolling: prepared.cluster.spec.rolling_update.clone(),
    };

    let state = roller.read().await?;
    let groups: Vec<Group> = state.groups.values().cloned().collect();
    let selected = rolling::order(&groups, &args.instance_group, &roles_filter);
    let mut t = table(&[
        "NAME",
        "STATUS",
        "NEEDUPDATE",
        "READY",
        "MIN",
        "TARGET",
        "MAX",
        "NODES",
    ]);
    for group in &selected {
        let s = group.status(args.force);
        t.add_row(vec![
            s.name,
            s.status.to_string(),
            s.need_update.to_string(),
            s.ready.to_string(),
            s.min.to_string(),
            s.target.to_string(),
            s.max.to_string(),
            s.nodes.to_string(),
        ]);
    }
    print_table(&t);
    if selected.iter().all(|g| g.to_update(args.force).is_empty()) {
        println!("\nNo rolling-update required.");
        return Ok(());
    }
    if !args.yes {
        println!("\nMust specify --yes to rolling-update.");
        return Ok(());
    }
    let order: Vec<String> = selected.iter().map(|g| g.name.clone()).collect();
    pipeline::locked(&store, &name, Some("rolling-update cluster --yes"), async {
        for group in &order {
            roller.roll_group(group).await?;
        }
        println!("\nRolling update completed for cluster {name}!");
        Ok(())
    })
    .await
}

/// `--instance-group-roles`, in kops's spellings (case does not matter).
fn parse_roles(values: &[String]) -> Result<Vec<Role>> {
    values
        .iter()
        .map(|v| match v.to_ascii_lowercase().as_str() {
            "master" | "control-plane" | "controlplane" => Ok(Role::ControlPlane),
            "node" => Ok(Role::Node),
            "bastion" => Ok(Role::Bastion),
            "apiserver" | "api-server" => Ok(Role::ApiServer),
            _ => Err(Problems::one(
                format!("--instance-group-roles: {v:?} is not a role"),
                "use control-plane (or master), apiserver, node or bastion",
            )
            .into()),
        })
        .collect()
}

fn cloudonly_hint(mut problems: Problems) -> Problems {
    for p in &mut problems.0 {
        let hint = p.hint.take().unwrap_or_default();
        p.hint = Some(format!(
            "{hint}; or, when the API cannot answer, replace the instances without it: --cloudonly"
        ));
    }
    problems
}

/// The cluster as one read sees it.
struct State {
    /// The engine's view of each group, by instance group.
    groups: BTreeMap<String, Group>,
    /// AWS's view (auto scaling group, target groups, whether each instance is in it).
    aws: BTreeMap<String, RollingGroup>,
    /// The control-plane instances the cluster should have (desired capacities).
    control_planes: usize,
}

struct Roller<'a> {
    aws: &'a Aws,
    kube: Option<&'a Kube>,
    name: &'a str,
    args: &'a RollingUpdateClusterArgs,
    specs: BTreeMap<String, (Role, Option<RollingUpdate>)>,
    cluster_rolling: Option<RollingUpdate>,
}

impl Roller<'_> {
    fn say(&self, message: impl AsRef<str>) {
        eprintln!("{}", message.as_ref());
    }

    fn aws_problem(&self, doing: &str, e: &kopsrs_aws::Error) -> anyhow::Error {
        crate::problems::aws(
            &format!("{doing} ({})", self.name),
            e,
            "run `kopsrs rolling-update cluster --yes` again once AWS answers: it resumes where it stopped",
        )
        .into()
    }

    fn kube_problem(&self, e: &kopsrs_kube::KubeError) -> anyhow::Error {
        cloudonly_hint(validate::kube_problem(self.name, e)).into()
    }

    fn role_of(&self, group: &str, tag: &str) -> Role {
        self.specs.get(group).map(|(r, _)| *r).unwrap_or(match tag {
            "control-plane" | "master" => Role::ControlPlane,
            "bastion" => Role::Bastion,
            "apiserver" | "api-server" => Role::ApiServer,
            _ => Role::Node,
        })
    }

    fn interval(&self, role: Role) -> Duration {
        match role {
            Role::Bastion => self.args.bastion_interval,
            Role::ControlPlane => self.args.control_plane_interval,
            Role::ApiServer | Role::Node => self.args.node_interval,
        }
    }

    /// The cluster's groups, instances and Nodes: three AWS calls and one Node list.
    async fn read(&self) -> Result<State> {
        let nodes = async {
            match self.kube {
                Some(kube) => kube.node_states().await.map(Some),
                None => Ok(None),
            }
        };
        let (groups, nodes) = tokio::join!(self.aws.rolling_groups(self.name), nodes);
        let groups = groups.map_err(|e| self.aws_problem("reading the auto scaling groups", &e))?;
        let nodes = nodes
            .map_err(|e| self.kube_problem(&e))?
            .unwrap_or_default();
        let mut state = State {
            groups: BTreeMap::new(),
            aws: BTreeMap::new(),
            control_planes: 0,
        };
        for g in groups {
            let role = self.role_of(&g.instance_group, &g.role);
            if role == Role::ControlPlane {
                state.control_planes += g.desired as usize;
            }
            let group = Group {
                name: g.instance_group.clone(),
                role,
                template_version: g.template_version.clone(),
                min: g.min,
                target: g.desired,
                max: g.max,
                instances: g
                    .instances
                    .iter()
                    .map(|i| Instance {
                        id: i.id.clone(),
                        template_version: i.template_version.clone(),
                        detached: i.detached,
                        node: nodes.get(&i.id).cloned(),
                    })
                    .collect(),
                rolling_update: self
                    .specs
                    .get(&g.instance_group)
                    .and_then(|(_, r)| r.clone()),
            };
            state.groups.insert(g.instance_group.clone(), group);
            state.aws.insert(g.instance_group.clone(), g);
        }
        Ok(state)
    }

    async fn read_group(&self, name: &str) -> Result<(State, Group, RollingGroup)> {
        let state = self.read().await?;
        let (Some(group), Some(aws)) = (state.groups.get(name), state.aws.get(name)) else {
            return Err(Problems::one(
                format!("instance group {name:?} has no auto scaling group in AWS"),
                "run `kopsrs update cluster --yes` first",
            )
            .into());
        };
        let (group, aws) = (group.clone(), aws.clone());
        Ok((state, group, aws))
    }

    /// Replaces the instances of one group that need it, a round at a time.
    async fn roll_group(&self, name: &str) -> Result<()> {
        let force = self.args.force;
        let (_, group, _) = self.read_group(name).await?;
        // With --force, the instances there now: their replacements are current.
        let initial: BTreeSet<String> = group
            .to_update(force)
            .iter()
            .map(|i| i.id.clone())
            .collect();
        if initial.is_empty() {
            return Ok(());
        }
        let live = group.instances.iter().filter(|i| !i.detached).count();
        let settings = rolling::resolve_settings(&group, self.cluster_rolling.as_ref(), live)
            .map_err(|e| {
                Problems::one(
                    format!("instance group {name}: {e}"),
                    format!(
                        "fix it with `kopsrs edit instancegroup {name}` or `kopsrs edit cluster`"
                    ),
                )
            })?;
        if settings.max_surge + settings.max_unavailable == 0 {
            return Err(Problems::one(
                format!("instance group {name}: maxSurge and maxUnavailable are both 0, so no instance can be replaced"),
                format!("set spec.rollingUpdate.maxSurge or maxUnavailable with `kopsrs edit instancegroup {name}`"),
            )
            .into());
        }
        self.say(format!(
            "group {name}: {} instance(s) to replace, {} surged and {} unavailable at most at once",
            initial.len(),
            settings.max_surge,
            settings.max_unavailable
        ));
        self.validate(&group, "before its update").await?;
        loop {
            let (_, group, aws_group) = self.read_group(name).await?;
            let todo: Vec<&Instance> = group
                .to_update(force)
                .into_iter()
                .filter(|i| i.detached || initial.contains(&i.id))
                .collect();
            let Some(round) = rolling::rounds(&todo, settings).into_iter().next() else {
                break;
            };
            let detach: Vec<String> = round
                .surge
                .iter()
                .filter(|id| {
                    aws_group
                        .instances
                        .iter()
                        .any(|i| &i.id == *id && i.in_group)
                })
                .cloned()
                .collect();
            if !detach.is_empty() {
                self.say(format!(
                    "group {name}: detaching {} for a surge (the group launches their replacements first)",
                    detach.join(", ")
                ));
                self.aws
                    .detach_for_surge(&aws_group.asg, &detach)
                    .await
                    .map_err(|e| self.aws_problem("detaching instances", &e))?;
            }
            let (group, aws_group) = if round.surge.is_empty() {
                (group, aws_group)
            } else {
                self.wait_for_capacity(name, &[]).await?;
                let (_, group, _) = self.read_group(name).await?;
                self.validate(&group, "with the surged instances' replacements")
                    .await?;
                let (_, group, aws_group) = self.read_group(name).await?;
                (group, aws_group)
            };
            let ids: Vec<String> = round
                .surge
                .iter()
                .chain(&round.unavailable)
                .cloned()
                .collect();
            let replaced = futures::future::join_all(
                ids.iter().map(|id| self.replace(&group, &aws_group, id)),
            )
            .await;
            replaced.into_iter().collect::<Result<Vec<()>>>()?;
            tokio::time::sleep(self.interval(group.role)).await;
            self.wait_for_capacity(name, &ids).await?;
            let (_, group, _) = self.read_group(name).await?;
            self.validate(&group, &format!("after replacing {}", ids.join(", ")))
                .await?;
        }
        self.say(format!("group {name}: every instance is current"));
        Ok(())
    }

    /// One instance: mark its Node, take it out of its group's target groups, drain it,
    /// wait the post-drain delay, terminate it.
    async fn replace(&self, group: &Group, aws_group: &RollingGroup, id: &str) -> Result<()> {
        let name = &group.name;
        let Some(instance) = aws_group.instances.iter().find(|i| i.id == id) else {
            return Ok(()); // gone since the round was planned
        };
        let node = group
            .instances
            .iter()
            .find(|i| i.id == id)
            .and_then(|i| i.node.clone());
        let kube_node = self.kube.zip(node.as_ref());
        if let Some((kube, node)) = kube_node {
            self.say(format!(
                "group {name}: {id} (node {}): tainting, cordoning, excluding from load balancers",
                node.name
            ));
            kube.mark_for_update(&node.name)
                .await
                .map_err(|e| self.kube_problem(&e))?;
        }
        self.aws
            .deregister_targets(&aws_group.target_groups, id, DEREGISTRATION_TIMEOUT)
            .await
            .map_err(|e| self.aws_problem("deregistering from the target groups", &e))?;
        if let Some((kube, node)) = kube_node {
            self.say(format!("group {name}: {id}: draining node {}", node.name));
            let log = |line: String| self.say(format!("group {name}: {line}"));
            match kube.drain(&node.name, self.args.drain_timeout, &log).await {
                Ok(drained) => self.say(format!(
                    "group {name}: {id}: {} pod(s) evicted{}",
                    drained.evicted.len(),
                    match drained.budget_waits {
                        0 => String::new(),
                        n => format!(" ({n} eviction(s) waited on a disruption budget)"),
                    }
                )),
                Err(e) if self.args.fail_on_drain_error => {
                    return Err(Problems::one(
                        e.to_string(),
                        "the node stays cordoned; make room in the disruption budget (or let the pods terminate) and run again, or pass --fail-on-drain-error=false to terminate it anyway",
                    )
                    .into())
                }
                Err(e) => self.say(format!("group {name}: {e}; terminating anyway (--fail-on-drain-error=false)")),
            }
            tokio::time::sleep(self.args.post_drain_delay).await;
        }
        self.say(format!("group {name}: terminating {id}"));
        self.aws
            .terminate(instance)
            .await
            .map_err(|e| self.aws_problem(&format!("terminating {id}"), &e))
    }

    /// Waits until no instance of `gone` is in the group any more and the group has its
    /// desired number of instances in service (detached ones not counted).
    async fn wait_for_capacity(&self, name: &str, gone: &[String]) -> Result<()> {
        let deadline = Instant::now() + self.args.validation_timeout;
        loop {
            let (_, _, g) = self.read_group(name).await?;
            let live: Vec<_> = g
                .instances
                .iter()
                .filter(|i| i.in_group && !i.detached)
                .collect();
            let lingering = live.iter().any(|i| gone.contains(&i.id));
            let in_service = live.iter().filter(|i| i.lifecycle == "InService").count();
            if !lingering && in_service >= g.desired as usize {
                return Ok(());
            }
            if Instant::now() > deadline {
                return self.give_up(
                    name,
                    format!(
                        "group {name} is not back at {} instances in service within {} ({in_service} now)",
                        g.desired,
                        humantime::format_duration(self.args.validation_timeout)
                    ),
                );
            }
            tokio::time::sleep(CAPACITY_POLL).await;
        }
    }

    /// Validates until `--validate-count` consecutive passes have no failure that concerns
    /// `group` (its own, the control plane's, the cluster's); for a control-plane group,
    /// etcd must also have settled (`rolling::control_plane_unsettled`).
    async fn validate(&self, group: &Group, when: &str) -> Result<()> {
        let Some(kube) = self.kube else {
            return Ok(());
        };
        if self.args.validate_count == 0 {
            self.say("skipping validation: --validate-count is 0");
            return Ok(());
        }
        let roles: BTreeMap<&str, Role> = self
            .specs
            .iter()
            .map(|(name, (role, _))| (name.as_str(), *role))
            .collect();
        let tick = self.interval(group.role).max(Duration::from_millis(250));
        let deadline = Instant::now() + self.args.validation_timeout;
        let mut passed = 0;
        let mut last = Vec::new();
        loop {
            let pass = validate::pass(self.aws, kube, self.name, &roles, 0).await?;
            let mut problems: Vec<String> = pass
                .validation
                .failures
                .iter()
                .filter(|f| {
                    let failing = f.instance_group.as_deref();
                    let role = failing.and_then(|g| roles.get(g).copied());
                    rolling::failure_concerns(group, failing, role)
                })
                .map(|f| f.message.clone())
                .collect();
            // Once the cluster validates, etcd must have settled too (its own checks
            // would only repeat the validation's failures before).
            if problems.is_empty() && group.role == Role::ControlPlane {
                let state = self.read().await?;
                problems.extend(rolling::control_plane_unsettled(
                    &pass.nodes,
                    &pass.pods,
                    state.control_planes,
                ));
            }
            if problems.is_empty() {
                passed += 1;
                if passed >= self.args.validate_count {
                    return Ok(());
                }
            } else {
                passed = 0;
                if problems != last {
                    self.say(format!(
                        "group {}: waiting for the cluster to validate {when}: {}",
                        group.name,
                        problems.join("; ")
                    ));
                }
            }
            if Instant::now() + tick > deadline {
                return self.give_up(
                    &group.name,
                    format!(
                        "cluster {} did not validate {when} within {}: {}",
                        self.name,
                        humantime::format_duration(self.args.validation_timeout),
                        problems.join("; ")
                    ),
                );
            }
            last = problems;
            tokio::time::sleep(tick).await;
        }
    }

    /// A validation that did not pass in time: an error, or with
    /// `--fail-on-validate-error=false` a warning.
    fn give_up(&self, group: &str, message: String) -> Result<()> {
        if self.args.fail_on_validate_error {
            return Err(Problems::one(
                message,
                "find the cause with `kopsrs validate cluster`, then run `kopsrs rolling-update cluster --yes` again: it resumes where it stopped (or pass --fail-on-validate-error=false to go on regardless)",
            )
            .into());
        }
        self.say(format!(
            "group {group}: {message}; going on (--fail-on-validate-error=false)"
        ));
        Ok(())
    }
}
