//! `rolling-update cluster`: replaces, group by group, the instances that need it. The
//! decisions (which instances, in which order, how many at once) are
//! `kopsrs_engine::rolling`'s; this drives the cloud ([`CloudGroups`]) and the Nodes
//! ([`ClusterNodes`]), validating the cluster before each group and after every round. Every
//! round starts from a fresh read of the groups and the Nodes, so a run that was interrupted
//! (Ctrl-C, SIGKILL, a failed validation) resumes where the cloud is: detached instances
//! first, then the rest.
//!
//! The driver ([`Roll`]) is generic over the two sides: AWS and Kubernetes in production,
//! in-memory doubles in its unit tests.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use kopsrs_api::{Role, RollingUpdate};
use kopsrs_checks::validation::{self, GroupInstances};
use kopsrs_engine::rolling::{
    self, CloudGroups, ClusterNodes, Group, Instance, RollingGroup, Status,
};

use crate::problems::{Problem, Problems};
use crate::session::{self, Session};
use crate::Reporter;

/// What `rolling-update cluster` does.
#[derive(Debug, Clone)]
pub struct RollOptions {
    /// Replace every instance, current or not.
    pub force: bool,
    /// Without the Kubernetes API: no drain, no validation.
    pub cloudonly: bool,
    /// Only these instance groups.
    pub instance_groups: Vec<String>,
    /// Only groups of these roles (kops's spellings).
    pub roles: Vec<String>,
    /// How long a drain may take.
    pub drain_timeout: Duration,
    /// The wait after a drain before the Node goes.
    pub post_drain_delay: Duration,
    /// How long the cluster may take to validate.
    pub validation_timeout: Duration,
    /// Consecutive passes a validation needs (0: none, except etcd's for control planes).
    pub validate_count: u32,
    /// The wait after a round of bastions.
    pub bastion_interval: Duration,
    /// The wait after a round of control planes.
    pub control_plane_interval: Duration,
    /// The wait after a round of nodes.
    pub node_interval: Duration,
    /// A drain that fails stops the run (else the instance is terminated anyway).
    pub fail_on_drain_error: bool,
    /// A validation that fails stops the run (else a warning; never for etcd's settling).
    pub fail_on_validate_error: bool,
    /// The kubeconfig (else the settings' files).
    pub kubeconfig: Option<PathBuf>,
    /// How often the groups are read while waiting for capacity.
    pub capacity_poll: Duration,
    /// How long a deregistered target may take to leave its target group.
    pub deregistration_timeout: Duration,
    /// The least time between two validation passes (so a Node that turns Ready is seen
    /// soon, without hammering the API).
    pub least_pass_interval: Duration,
    /// Only these instances, by EC2 instance ID or Node name, replaced whether current or
    /// not (`delete instance`); each must be in one of the cluster's groups.
    pub instances: Vec<String>,
    /// For [`RollOptions::instances`]: surge (detach first, the replacement launched before
    /// the instance goes; kops's `--surge`, its default) or not, whatever the group's
    /// `maxSurge`. Control planes and bastions never surge.
    pub surge: Option<bool>,
}

impl Default for RollOptions {
    /// kops's defaults.
    fn default() -> RollOptions {
        RollOptions {
            force: false,
            cloudonly: false,
            instance_groups: Vec::new(),
            roles: Vec::new(),
            drain_timeout: Duration::from_secs(15 * 60),
            post_drain_delay: Duration::from_secs(5),
            validation_timeout: Duration::from_secs(15 * 60),
            validate_count: 2,
            bastion_interval: Duration::from_secs(15),
            control_plane_interval: Duration::from_secs(15),
            node_interval: Duration::from_secs(15),
            fail_on_drain_error: true,
            fail_on_validate_error: true,
            kubeconfig: None,
            capacity_poll: Duration::from_secs(2),
            deregistration_timeout: Duration::from_secs(300),
            least_pass_interval: Duration::from_millis(250),
            instances: Vec::new(),
            surge: None,
        }
    }
}

/// A roll of one cluster in AWS.
pub type AwsRoll = Roll<kopsrs_aws::ClusterGroups, kopsrs_kube::Kube>;

/// Reads the cluster (spec, groups, Nodes) and resolves every selected group's settings,
/// all problems at once, before anything changes.
pub async fn prepare(
    session: &Session,
    cluster: Option<&str>,
    options: RollOptions,
) -> Result<AwsRoll> {
    if !options.instances.is_empty() && options.cloudonly {
        // Narrowing a run to instances forces their replacement, which must not stand in
        // for the explicit --force a blind control-plane replacement needs.
        return Err(Problems::one(
            "delete instance --cloudonly is not offered: without the Kubernetes API nothing drains the Node or holds etcd's gate",
            "delete it with the API (without --cloudonly); for a cluster whose API is down, `kopsrs rolling-update cluster --cloudonly --instance-group GROUP --force` replaces the group's instances",
        )
        .into());
    }
    let store = session::open_store(session).await?;
    let name = session::cluster_name(session, cluster)?;
    let refused = match options.instances.is_empty() {
        true => "`rolling-update cluster --yes` is refused",
        false => "`delete instance --yes` is refused",
    };
    crate::kops_built::warn(session, &store, &name, refused).await?;
    let prepared = crate::cluster::prepare(&store, &name, session, false).await?;
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
    let unknown: Vec<&String> = options
        .instance_groups
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
    // Karpenter replaces its own nodes when their node class or pool changes (its drift
    // handling), as kops leaves them to it: there is no auto scaling group to roll.
    let karpenter: Vec<&str> = prepared
        .groups
        .iter()
        .filter(|g| g.spec.manager.as_deref() == Some("Karpenter"))
        .map(|g| g.metadata.name.as_str())
        .filter(|g| options.instance_groups.iter().any(|o| o == g))
        .collect();
    if !karpenter.is_empty() {
        return Err(Problems::one(
            format!(
                "--instance-group: {} managed by Karpenter (spec.manager), which replaces its nodes itself when their EC2NodeClass or NodePool changes",
                karpenter.join(", ")
            ),
            "run `kopsrs update cluster --yes` to publish the change; Karpenter's drift handling rolls those nodes",
        )
        .into());
    }
    let roles = parse_roles(&options.roles)?;
    let aws = crate::cluster::aws(session, &prepared.set.region).await;
    let nodes = match options.cloudonly {
        true => None,
        false => Some(
            crate::validate::connect(session, &name, options.kubeconfig.as_deref())
                .await
                .map_err(cloudonly_hint)?,
        ),
    };
    let cloud = kopsrs_aws::ClusterGroups {
        aws,
        cluster: name.clone(),
    };
    let context = Context {
        name,
        specs,
        cluster_rolling: prepared.cluster.spec.rolling_update.clone(),
        kubernetes_version: prepared.cluster.spec.kubernetes_version.clone(),
        settings: session.settings.clone(),
        reporter: session.reporter.clone(),
    };
    let mut roll = Roll::new(cloud, nodes, context, options);
    roll.plan(&roles).await?;
    roll.store = Some(store);
    Ok(roll)
}

/// `--instance-group-roles`, in kops's spellings (case does not matter).
pub fn parse_roles(values: &[String]) -> Result<Vec<Role>> {
    values
        .iter()
        .map(|v| {
            Role::from_tag(v).ok_or_else(|| {
                Problems::one(
                    format!("--instance-group-roles: {v:?} is not a role"),
                    "use control-plane (or master), apiserver, node or bastion",
                )
                .into()
            })
        })
        .collect()
}

/// Before anything changes, a missing or unreachable API can be worked around.
fn cloudonly_hint(mut problems: Problems) -> Problems {
    const CLOUDONLY: &str =
        "when the API cannot answer, replace the instances without it: --cloudonly";
    for p in &mut problems.0 {
        p.hint = Some(match p.hint.take() {
            Some(hint) => format!("{hint}; or, {CLOUDONLY}"),
            None => CLOUDONLY.into(),
        });
    }
    problems
}

fn no_group(name: &str) -> anyhow::Error {
    Problems::one(
        format!("instance group {name:?} has no auto scaling group in AWS"),
        "run `kopsrs update cluster --yes` first",
    )
    .into()
}

/// The cluster as one read sees it.
struct State {
    /// The engine's view of each group, by instance group.
    groups: BTreeMap<String, Group>,
    /// The cloud's view (auto scaling group, target groups, whether each instance is in it).
    cloud: BTreeMap<String, RollingGroup>,
    /// The control-plane instances the cluster should have (desired capacities).
    control_planes: usize,
    /// Every running instance of every group, detached ones included.
    running: BTreeSet<String>,
}

/// What a roll knows of its cluster: the spec's side.
pub struct Context {
    /// The cluster.
    pub name: String,
    /// Each instance group's role and `spec.rollingUpdate`.
    pub specs: BTreeMap<String, (Role, Option<RollingUpdate>)>,
    /// The Cluster's `spec.rollingUpdate`.
    pub cluster_rolling: Option<RollingUpdate>,
    /// `spec.kubernetesVersion`: what the replacements run (the skew policy's target).
    pub kubernetes_version: Option<String>,
    /// The settings (for the hints of cloud errors).
    pub settings: crate::Settings,
    /// Where progress goes.
    pub reporter: Arc<dyn Reporter>,
}

/// One `rolling-update cluster` run: what it reads once (the spec, each group's settings)
/// and the two sides it works through.
pub struct Roll<C, N> {
    cloud: C,
    nodes: Option<N>,
    cx: Context,
    options: RollOptions,
    /// Each selected group's maxSurge / maxUnavailable, resolved before anything changed.
    settings: BTreeMap<String, rolling::Settings>,
    /// The control-plane instances the cluster should have (desired capacities).
    control_planes: usize,
    /// The selected groups, in the order they go.
    order: Vec<String>,
    /// Each selected group's state before the roll.
    statuses: Vec<Status>,
    /// The state store whose cluster lock a run takes (none in tests).
    store: Option<kopsrs_state::StateStore>,
    /// The instances [`RollOptions::instances`] names, as found.
    chosen: Vec<ChosenInstance>,
}

/// An instance `delete instance` named, as the cluster's groups hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChosenInstance {
    /// The EC2 instance ID.
    pub id: String,
    /// Its instance group.
    pub group: String,
    /// Its Node, when it has one.
    pub node: Option<String>,
}

impl<C: CloudGroups, N: ClusterNodes> Roll<C, N> {
    /// A roll through `cloud` and `nodes` (none: `--cloudonly`); [`Roll::plan`] reads.
    pub fn new(cloud: C, nodes: Option<N>, cx: Context, options: RollOptions) -> Self {
        Roll {
            cloud,
            nodes,
            cx,
            options,
            settings: BTreeMap::new(),
            control_planes: 0,
            order: Vec::new(),
            statuses: Vec::new(),
            store: None,
            chosen: Vec::new(),
        }
    }

    /// Reads the cluster once: the groups that go (those named, of the roles named, in
    /// kops's order), their state, and each one's settings; every bad setting is a problem,
    /// all reported together before anything changes.
    pub async fn plan(&mut self, roles: &[Role]) -> Result<()> {
        let state = self.read().await?;
        self.control_planes = state.control_planes;
        let groups: Vec<Group> = state.groups.values().cloned().collect();
        if !self.options.instances.is_empty() {
            self.choose_instances(&groups)?;
        }
        let selected = rolling::order(&groups, &self.options.instance_groups, roles);
        let mut problems = Vec::new();
        for group in &selected {
            let live = group.instances.iter().filter(|i| !i.detached).count();
            let resolved = rolling::resolve_settings(group, self.cx.cluster_rolling.as_ref(), live);
            let resolved = match (self.options.surge, group.role) {
                (Some(_), Role::ControlPlane | Role::Bastion) | (None, _) => resolved,
                (Some(surge), _) => Ok(rolling::Settings {
                    max_surge: u32::from(surge),
                    max_unavailable: u32::from(!surge),
                }),
            };
            match resolved {
                Ok(s) if s.max_surge + s.max_unavailable == 0 => problems.push(Problem {
                    message: format!(
                        "InstanceGroup/{} spec.rollingUpdate: maxSurge and maxUnavailable are both 0, so no instance can be replaced",
                        group.name
                    ),
                    hint: Some(format!(
                        "set maxSurge or maxUnavailable with `kopsrs edit instancegroup {} --name {}`",
                        group.name, self.cx.name
                    )),
                }),
                Ok(s) => {
                    self.settings.insert(group.name.clone(), s);
                }
                Err(e) => problems.push(Problem {
                    message: e.to_string(),
                    hint: Some("fix it with `kopsrs edit instancegroup` or `kopsrs edit cluster`".into()),
                }),
            }
        }
        if !problems.is_empty() {
            return Err(Problems(problems).into());
        }
        self.statuses = selected
            .iter()
            .map(|g| g.status(self.options.force))
            .collect();
        self.order = selected.iter().map(|g| g.name.clone()).collect();
        self.blind_control_planes()
    }

    /// Finds each instance [`RollOptions::instances`] names (an EC2 instance ID or a Node
    /// name) among the cluster's groups, and narrows the run to them and their groups. An
    /// instance no group of the cluster holds is refused: ownership is the group's, which
    /// is the cluster's by its tags, never by a name.
    fn choose_instances(&mut self, groups: &[Group]) -> Result<()> {
        let mut chosen = Vec::new();
        let mut problems = Vec::new();
        for wanted in &self.options.instances {
            let found = groups.iter().find_map(|g| {
                g.instances
                    .iter()
                    .find(|i| &i.id == wanted || i.node.as_ref().is_some_and(|n| &n.name == wanted))
                    .map(|i| ChosenInstance {
                        id: i.id.clone(),
                        group: g.name.clone(),
                        node: i.node.as_ref().map(|n| n.name.clone()),
                    })
            });
            match found {
                Some(instance) => chosen.push(instance),
                None => problems.push(Problem {
                    message: format!(
                        "no instance {wanted:?} (an EC2 instance ID or a Node name) in the auto scaling groups of cluster {}; nothing was changed",
                        self.cx.name
                    ),
                    hint: Some(format!(
                        "`kopsrs get instances {}` lists the cluster's instances",
                        self.cx.name
                    )),
                }),
            }
        }
        if !problems.is_empty() {
            return Err(Problems(problems).into());
        }
        self.options.instances = chosen.iter().map(|c| c.id.clone()).collect();
        self.options.instance_groups = chosen.iter().map(|c| c.group.clone()).collect();
        self.options.force = true;
        self.chosen = chosen;
        Ok(())
    }

    /// The instances [`RollOptions::instances`] named, as found by [`Roll::plan`].
    pub fn chosen(&self) -> &[ChosenInstance] {
        &self.chosen
    }

    /// The selected groups' state before the roll, in the order they go.
    pub fn statuses(&self) -> &[Status] {
        &self.statuses
    }

    /// The cluster rolled.
    pub fn cluster(&self) -> &str {
        &self.cx.name
    }

    /// Whether any selected group has an instance to replace.
    pub fn needed(&self) -> bool {
        self.statuses.iter().any(|s| s.need_update > 0)
    }

    /// Rolls every selected group in order, holding the cluster lock (when there is a
    /// state store).
    ///
    /// Refused, before the lock is taken, for a cluster kops built ([`crate::kops_built`]).
    pub async fn run(&self) -> Result<()> {
        let verb = match self.chosen.is_empty() {
            true => "rolling-update cluster --yes",
            false => "delete instance --yes",
        };
        if let Some(store) = &self.store {
            crate::kops_built::refuse(store, &self.cx.name, verb).await?;
        }
        let work = async {
            for group in &self.order {
                self.roll_group(group).await?;
            }
            Ok(())
        };
        match &self.store {
            Some(store) => {
                crate::cluster::locked(&*self.cx.reporter, store, &self.cx.name, Some(verb), work)
                    .await
            }
            None => work.await,
        }
    }

    fn say(&self, message: impl AsRef<str>) {
        self.cx.reporter.say(message.as_ref());
    }

    /// A cloud error: AWS's with the hint that fits it, any other as it is.
    fn cloud_problem(&self, doing: &str, e: &C::Error) -> anyhow::Error {
        let again = "run `kopsrs rolling-update cluster --yes` again once the cloud answers: it resumes where it stopped";
        let doing = format!("{doing} ({})", self.cx.name);
        match (e as &dyn std::any::Any).downcast_ref::<kopsrs_aws::Error>() {
            Some(e) => crate::problems::aws(&self.cx.settings, &doing, e, again).into(),
            None => Problems::one(format!("{doing}: {e}"), again).into(),
        }
    }

    /// A Kubernetes error with the hint that fits it.
    fn kube_problem(&self, e: &N::Error) -> anyhow::Error {
        match (e as &dyn std::any::Any).downcast_ref::<kopsrs_kube::KubeError>() {
            Some(e) => crate::validate::kube_problem(&self.cx.name, e).into(),
            None => Problems::one(e.to_string(), "see the API's answer").into(),
        }
    }

    fn interval(&self, role: Role) -> Duration {
        match role {
            Role::Bastion => self.options.bastion_interval,
            Role::ControlPlane => self.options.control_plane_interval,
            Role::ApiServer | Role::Node => self.options.node_interval,
        }
    }

    /// The cluster's groups, instances and Nodes: three AWS calls and one Node list.
    async fn read(&self) -> Result<State> {
        let nodes = async {
            match &self.nodes {
                Some(kube) => kube.node_states().await.map(Some),
                None => Ok(None),
            }
        };
        let (groups, nodes) = tokio::join!(self.cloud.groups(), nodes);
        let groups =
            groups.map_err(|e| self.cloud_problem("reading the auto scaling groups", &e))?;
        let nodes = nodes
            .map_err(|e| self.kube_problem(&e))?
            .unwrap_or_default();
        let mut state = State {
            groups: BTreeMap::new(),
            cloud: BTreeMap::new(),
            control_planes: 0,
            running: groups
                .iter()
                .flat_map(|g| &g.instances)
                .map(|i| i.id.clone())
                .collect(),
        };
        // The API must be this cluster's: a kubeconfig context pointing at another cluster
        // would otherwise have its Nodes drained and its control-plane Nodes deleted. Some
        // Node runs on an instance of this cluster's groups, or there are no Nodes at all.
        if !nodes.is_empty() && !nodes.keys().any(|id| state.running.contains(id)) {
            let names: Vec<&str> = nodes.values().take(3).map(|n| n.name.as_str()).collect();
            return Err(Problems::one(
                format!(
                    "the Kubernetes API the kubeconfig names for {} is not this cluster's: none of its {} Node(s) ({}{}) runs on an instance of the cluster's auto scaling groups; nothing was changed",
                    self.cx.name,
                    nodes.len(),
                    names.join(", "),
                    if nodes.len() > 3 { ", ..." } else { "" }
                ),
                "check the kubeconfig context named after the cluster (`kopsrs export kubeconfig` writes it), or pass --kubeconfig",
            )
            .into());
        }
        // Auto scaling groups without an instance group in the spec are not kopsrs's to roll.
        for g in groups {
            let Some(&(role, _)) = self.cx.specs.get(&g.instance_group) else {
                continue;
            };
            if role == Role::ControlPlane {
                state.control_planes += g.desired as usize;
            }
            let instance = |i: &kopsrs_engine::rolling::RollingInstance| Instance {
                id: i.id.clone(),
                template_version: i.template_version.clone(),
                detached: i.detached,
                node: nodes.get(&i.id).cloned(),
            };
            let group = Group {
                name: g.instance_group.clone(),
                role,
                template_version: g.template_version.clone(),
                min: g.min,
                target: g.desired,
                max: g.max,
                // Instances already terminating (a lifecycle hook holds them, or a run was
                // stopped right after terminating them) are not replaced again.
                instances: g
                    .instances
                    .iter()
                    .filter(|i| !i.lifecycle.starts_with("Terminating"))
                    .map(instance)
                    .collect(),
                // Warm instances on their way out (`Warmed:Terminating...`) likewise.
                warm: g
                    .warm
                    .iter()
                    .filter(|i| !i.lifecycle.contains("Terminat"))
                    .map(instance)
                    .collect(),
                rolling_update: self
                    .cx
                    .specs
                    .get(&g.instance_group)
                    .and_then(|(_, r)| r.clone()),
            };
            state.groups.insert(g.instance_group.clone(), group);
            state.cloud.insert(g.instance_group.clone(), g);
        }
        Ok(state)
    }

    async fn read_group(&self, name: &str) -> Result<(Group, RollingGroup)> {
        let (group, aws, _) = self.read_round(name).await?;
        Ok((group, aws))
    }

    /// [`Self::read_group`], with every running instance of the cluster from the same read.
    async fn read_round(&self, name: &str) -> Result<(Group, RollingGroup, BTreeSet<String>)> {
        let mut state = self.read().await?;
        match (state.groups.remove(name), state.cloud.remove(name)) {
            (Some(group), Some(aws)) => Ok((group, aws, state.running)),
            _ => Err(no_group(name)),
        }
    }

    /// Replaces the instances of one group that need it, a round at a time.
    async fn roll_group(&self, name: &str) -> Result<()> {
        let force = self.options.force;
        let (group, aws_group) = self.read_group(name).await?;
        // With --force, the instances there now: their replacements are current.
        let only = &self.options.instances;
        let initial: BTreeSet<String> = group
            .to_update(force)
            .iter()
            .filter(|i| only.is_empty() || only.contains(&i.id))
            .map(|i| i.id.clone())
            .collect();
        // Warm-pool instances never joined: terminated directly (the pool refills from the
        // current template), unless the run is narrowed to chosen instances.
        let warm: Vec<String> = match only.is_empty() {
            true => group
                .warm_to_update(force)
                .iter()
                .map(|i| i.id.clone())
                .collect(),
            false => Vec::new(),
        };
        if initial.is_empty() && warm.is_empty() {
            return Ok(());
        }
        if !rolling::drain_and_terminate(&group, self.cx.cluster_rolling.as_ref()) {
            // kops's meaning: taint the Nodes, leave their removal to the cluster autoscaler.
            self.say(format!(
                "group {name}: spec.rollingUpdate.drainAndTerminate is false: tainting its {} Node(s) for replacement, not draining or terminating them",
                initial.len()
            ));
            self.taint_all(&group, &initial).await?;
            return Ok(());
        }
        let settings = self
            .settings
            .get(name)
            .copied()
            .ok_or_else(|| no_group(name))?;
        self.check_skew(&group).await?;
        if !initial.is_empty() {
            self.say(format!(
                "group {name}: {} instance(s) to replace, {} surged and {} unavailable at most at once",
                initial.len(),
                settings.max_surge,
                settings.max_unavailable
            ));
        }
        // Instances a stopped run tagged but did not detach: detached now, before any round
        // counts them (their replacements launch now).
        let tagged: Vec<String> = aws_group
            .instances
            .iter()
            .filter(|i| i.detached && i.in_group)
            .filter(|i| only.is_empty() || initial.contains(&i.id))
            .map(|i| i.id.clone())
            .collect();
        self.detach(name, &aws_group, &tagged).await?;
        self.validate(&group, "before its update").await?;
        self.terminate_warm(name, &aws_group, &warm).await?;
        // Pods evicted from the first Nodes avoid the others still to go (PreferNoSchedule).
        self.taint_all(&group, &initial).await?;
        loop {
            let (group, aws_group, running) = self.read_round(name).await?;
            let todo: Vec<&Instance> = group
                .to_update(force)
                .into_iter()
                .filter(|i| (i.detached && only.is_empty()) || initial.contains(&i.id))
                .collect();
            let Some(round) = rolling::rounds(&todo, settings).into_iter().next() else {
                break;
            };
            if group.role == Role::ControlPlane {
                self.remove_stale_control_plane_nodes(name, &running)
                    .await?;
            }
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
            self.detach(name, &aws_group, &detach).await?;
            let (group, aws_group) = if round.surge.is_empty() {
                (group, aws_group)
            } else {
                self.wait_for_capacity(name, &aws_group.asg, &[]).await?;
                self.validate(&group, "with the surged instances' replacements")
                    .await?;
                // The surged instances are out of the group now (terminated directly).
                let mut aws_group = aws_group;
                for i in &mut aws_group.instances {
                    if round.surge.contains(&i.id) {
                        i.in_group = false;
                    }
                }
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
            self.wait_for_capacity(name, &aws_group.asg, &ids).await?;
            self.validate(&group, &format!("after replacing {}", ids.join(", ")))
                .await?;
        }
        self.say(format!("group {name}: every instance is current"));
        Ok(())
    }

    /// Terminates the warm-pool instances `ids` of a group, together: they never joined,
    /// so there is nothing to drain and nothing to validate after them (kops's way).
    async fn terminate_warm(
        &self,
        name: &str,
        aws_group: &RollingGroup,
        ids: &[String],
    ) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        self.say(format!(
            "group {name}: terminating {} warm-pool instance(s) launched from an old template: {}",
            ids.len(),
            ids.join(", ")
        ));
        let done = futures::future::join_all(
            aws_group
                .warm
                .iter()
                .filter(|i| ids.contains(&i.id))
                .map(|i| self.cloud.terminate(i)),
        )
        .await;
        for result in done {
            result.map_err(|e| self.cloud_problem("terminating warm-pool instances", &e))?;
        }
        Ok(())
    }

    /// Tags and detaches `ids` from the group (a surge).
    async fn detach(&self, name: &str, aws_group: &RollingGroup, ids: &[String]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        self.say(format!(
            "group {name}: detaching {} for a surge (the group launches their replacements first)",
            ids.join(", ")
        ));
        self.cloud
            .detach(&aws_group.asg, ids)
            .await
            .map_err(|e| self.cloud_problem("detaching instances", &e))
    }

    /// Taints the Nodes of `ids` scheduled-for-update (PreferNoSchedule), as kops does to
    /// a whole group before its first drain.
    async fn taint_all(&self, group: &Group, ids: &BTreeSet<String>) -> Result<()> {
        let Some(kube) = &self.nodes else {
            return Ok(());
        };
        use futures::stream::{self, StreamExt, TryStreamExt};
        let nodes = group
            .instances
            .iter()
            .filter(|i| ids.contains(&i.id))
            .filter_map(|i| i.node.as_ref());
        // Eight at a time: a read and a patch each, a whole group at once.
        stream::iter(nodes)
            .map(|node| kube.mark_for_update(&node.name, false))
            .buffer_unordered(8)
            .try_collect::<Vec<()>>()
            .await
            .map_err(|e| self.kube_problem(&e))?;
        Ok(())
    }

    /// Deletes control-plane Nodes whose instance no longer runs: a run stopped between
    /// terminating a control plane and deleting its Node left it, and etcd's member pruning
    /// on the next replacement must not find it.
    async fn remove_stale_control_plane_nodes(
        &self,
        group: &str,
        running: &BTreeSet<String>,
    ) -> Result<()> {
        let Some(kube) = &self.nodes else {
            return Ok(());
        };
        for (node, instance) in kube
            .control_plane_nodes()
            .await
            .map_err(|e| self.kube_problem(&e))?
        {
            if instance.is_some_and(|id| !running.contains(&id)) {
                self.say(format!(
                    "group {group}: deleting Node {node}: its instance no longer runs"
                ));
                kube.delete_node(&node)
                    .await
                    .map_err(|e| self.kube_problem(&e))?;
            }
        }
        Ok(())
    }

    /// One instance: cordon its Node and take it out of load balancers, take the instance
    /// out of its group's target groups, drain the Node, wait the post-drain delay, delete
    /// the Node (not a bastion's), terminate the instance.
    async fn replace(&self, group: &Group, aws_group: &RollingGroup, id: &str) -> Result<()> {
        let name = &group.name;
        let Some(instance) = aws_group.instances.iter().find(|i| i.id == id) else {
            self.say(format!("group {name}: {id} is gone already"));
            return Ok(());
        };
        let node = group
            .instances
            .iter()
            .find(|i| i.id == id)
            .and_then(|i| i.node.clone());
        let kube_node = self.nodes.as_ref().zip(node.as_ref());
        if let Some((kube, node)) = kube_node {
            self.say(format!(
                "group {name}: {id} (node {}): cordoning, excluding from load balancers",
                node.name
            ));
            kube.mark_for_update(&node.name, true)
                .await
                .map_err(|e| self.kube_problem(&e))?;
        } else if self.nodes.is_some() && group.role != Role::Bastion {
            self.say(format!("group {name}: {id} has no Node: nothing to drain"));
        }
        self.cloud
            .deregister(
                &aws_group.target_groups,
                id,
                self.options.deregistration_timeout,
            )
            .await
            .map_err(|e| self.cloud_problem("deregistering from the target groups", &e))?;
        if let Some((kube, node)) = kube_node {
            self.say(format!("group {name}: {id}: draining node {}", node.name));
            let reporter = self.cx.reporter.clone();
            let log = move |line: String| reporter.say(&format!("group {name}: {line}"));
            match kube.drain(&node.name, self.options.drain_timeout, &log).await {
                Ok(drained) => self.say(format!(
                    "group {name}: {id}: {} pod(s) evicted{}",
                    drained.evicted.len(),
                    match drained.budget_waits {
                        0 => String::new(),
                        n => format!(" ({n} eviction(s) waited on a disruption budget)"),
                    }
                )),
                Err(e) if self.options.fail_on_drain_error => {
                    return Err(Problems::one(
                        e.to_string(),
                        "the node stays cordoned; make room in the disruption budget (or let the pods terminate) and run again, or pass --fail-on-drain-error=false to terminate it anyway",
                    )
                    .into())
                }
                Err(e) => self.say(format!(
                    "group {name}: {e}; terminating anyway (--fail-on-drain-error=false)"
                )),
            }
            tokio::time::sleep(self.options.post_drain_delay).await;
            // A control plane's replacement removes the etcd member whose address no
            // control-plane Node has: this Node must be gone first.
            if group.role != Role::Bastion {
                kube.delete_node(&node.name)
                    .await
                    .map_err(|e| self.kube_problem(&e))?;
            }
        }
        self.say(format!("group {name}: terminating {id}"));
        self.cloud
            .terminate(instance)
            .await
            .map_err(|e| self.cloud_problem(&format!("terminating {id}"), &e))
    }

    /// Waits until no instance of `gone` is in the group any more and the group has its
    /// desired number of instances in service (detached ones are out of the group). Reads
    /// AWS only, one call per poll (the group's own description): the Kubernetes API may be
    /// down while a control plane is replaced.
    async fn wait_for_capacity(&self, name: &str, asg: &str, gone: &[String]) -> Result<()> {
        let deadline = Instant::now() + self.options.validation_timeout;
        loop {
            let g = self
                .cloud
                .capacity(asg)
                .await
                .map_err(|e| self.cloud_problem("reading the auto scaling group", &e))?;
            let lingering = g.instances.iter().any(|(id, _)| gone.contains(id));
            let in_service = g
                .instances
                .iter()
                .filter(|(_, state)| state == "InService")
                .count();
            if !lingering && in_service >= g.desired as usize {
                return Ok(());
            }
            if Instant::now() > deadline {
                return self.give_up(
                    name,
                    format!(
                        "group {name} is not back at {} instances in service within --validation-timeout {} ({in_service} now)",
                        g.desired,
                        humantime::format_duration(self.options.validation_timeout)
                    ),
                );
            }
            tokio::time::sleep(self.options.capacity_poll).await;
        }
    }

    /// Validates until `--validate-count` consecutive passes have no failure that concerns
    /// `group` (its own, the control plane's, the cluster's). For a control-plane group etcd
    /// must also have settled (`rolling::control_plane_unsettled`), whatever
    /// `--validate-count` and `--fail-on-validate-error` say: the next control plane must not
    /// go before. A failed read (the API restarting with its control plane) is a failed pass.
    /// Bastions are not validated (kops neither: a broken cluster may need the bastion).
    async fn validate(&self, group: &Group, when: &str) -> Result<()> {
        let Some(kube) = &self.nodes else {
            return Ok(());
        };
        let control_plane = group.role == Role::ControlPlane;
        if group.role == Role::Bastion || (self.options.validate_count == 0 && !control_plane) {
            return Ok(());
        }
        let needed = self.options.validate_count.max(1);
        let roles: BTreeMap<&str, Role> = self
            .cx
            .specs
            .iter()
            .map(|(g, (r, _))| (g.as_str(), *r))
            .collect();
        // Between passes that succeed, the interval; after a failure, a quarter of it (at
        // least 250 ms), so a Node that turns Ready is seen soon after.
        let least = self.options.least_pass_interval;
        let interval = self.interval(group.role).max(least);
        let retry = (interval / 4).max(least);
        let deadline = Instant::now() + self.options.validation_timeout;
        let mut passed = 0;
        let mut last = Vec::new();
        loop {
            let (problems, settled) = match self.pass(kube, &roles).await {
                Err(e) => (vec![format!("{e:#}")], !control_plane),
                Ok((pass, orphans)) => {
                    let failures: Vec<String> = pass
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
                    // etcd's settling is checked on every pass of a control-plane group,
                    // whatever else failed and whatever --validate-count says: it is the
                    // one gate no flag opens.
                    let unsettled = match control_plane {
                        true => {
                            let mut unsettled = rolling::control_plane_unsettled(
                                &pass.nodes,
                                &pass.pods,
                                self.control_planes.saturating_sub(orphans),
                            );
                            unsettled.extend(self.etcd_gate(kube, &pass.nodes, orphans).await);
                            unsettled
                        }
                        false => Vec::new(),
                    };
                    let settled = unsettled.is_empty();
                    let problems = match self.options.validate_count {
                        0 => unsettled,
                        _ => failures.into_iter().chain(unsettled).collect(),
                    };
                    (problems, settled)
                }
            };
            if problems.is_empty() {
                passed += 1;
                if passed >= needed {
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
            let tick = if problems.is_empty() { interval } else { retry };
            if Instant::now() + tick > deadline {
                let message = format!(
                    "cluster {} did not validate {when} within --validation-timeout {}: {}",
                    self.cx.name,
                    humantime::format_duration(self.options.validation_timeout),
                    problems.join("; ")
                );
                if !settled {
                    return Err(Problems::one(
                        message,
                        "a control plane goes only once etcd has its members back, whatever --fail-on-validate-error says; find the cause with `kopsrs validate cluster`, then run `kopsrs rolling-update cluster --yes` again: it resumes where it stopped",
                    )
                    .into());
                }
                return self.give_up(&group.name, message);
            }
            last = problems;
            tokio::time::sleep(tick).await;
        }
    }

    /// One validation pass: the groups as the cloud has them, the Nodes and pods; and how
    /// many control planes are orphans (see below).
    ///
    /// An instance on an old launch template without a Node is one a stopped run was
    /// replacing (its Node deleted, the instance not yet terminated): this roll terminates it
    /// anyway, so it is not "not joined", and a control plane of that kind is not waited for
    /// by the etcd gate.
    async fn pass(
        &self,
        kube: &N,
        roles: &BTreeMap<&str, Role>,
    ) -> Result<(crate::validate::Pass, usize)> {
        let (groups, snapshot) = tokio::join!(self.cloud.groups(), kube.snapshot());
        let groups =
            groups.map_err(|e| self.cloud_problem("reading the auto scaling groups", &e))?;
        let (nodes, pods) = snapshot.map_err(|e| self.kube_problem(&e))?;
        let joined: BTreeSet<&str> = nodes
            .iter()
            .filter_map(|n| n.instance_id.as_deref())
            .collect();
        let mut orphaned_control_planes = 0;
        let mut orphans = BTreeSet::new();
        let groups: Vec<GroupInstances> = groups
            .into_iter()
            .map(|g| {
                let orphaned: Vec<String> = g
                    .instances
                    .iter()
                    .filter(|i| i.in_group && !joined.contains(i.id.as_str()))
                    .filter(|i| i.template_version.as_deref() != Some(&g.template_version))
                    .map(|i| i.id.clone())
                    .collect();
                // The instances in the auto scaling group, as `validate cluster` counts them.
                let inside = g.instances.into_iter().filter(|i| i.in_group);
                let ids = inside.map(|i| i.id).collect();
                let counted =
                    crate::validate::counted(roles, g.instance_group, &g.role, g.desired, ids);
                if counted.role == Role::ControlPlane {
                    orphaned_control_planes += orphaned.len();
                }
                orphans.extend(orphaned);
                counted
            })
            .collect();
        let mut validation = validation::validate(&groups, &nodes, &pods, 0);
        validation
            .failures
            .retain(|f| !(f.kind == "Machine" && orphans.contains(&f.name)));
        let pass = crate::validate::Pass {
            validation,
            nodes,
            pods,
        };
        Ok((pass, orphaned_control_planes))
    }

    /// A validation that did not pass in time: an error, or with
    /// `--fail-on-validate-error=false` a warning.
    fn give_up(&self, group: &str, message: String) -> Result<()> {
        if self.options.fail_on_validate_error {
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

#[path = "rolling_gates.rs"]
mod gates;

#[cfg(test)]
#[path = "rolling_tests.rs"]
mod tests;
