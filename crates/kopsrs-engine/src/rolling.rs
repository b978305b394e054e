//! Rolling-update decisions, as pure functions over plain data: which instances need
//! replacing and why, in which order the groups go, and how many instances of a group go at
//! once (`maxSurge` / `maxUnavailable`, resolved as kops resolves them); and the two sides
//! the driver (`kopsrs_ops::rolling`) works through, [`CloudGroups`] and [`ClusterNodes`],
//! which the AWS and Kubernetes crates implement. Nothing here does I/O.

use kopsrs_api::{IntOrString, Role, RollingUpdate};

/// Why an instance is to be replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Its launch-template version is not its group's.
    TemplateChanged,
    /// It carries the detached tag: a surged update detached it and did not finish.
    Detached,
    /// Its Node has the `kops.k8s.io/needs-update` annotation.
    Annotated,
    /// `--force`.
    Forced,
}

/// One instance of a group, as AWS and Kubernetes report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// The EC2 instance ID.
    pub id: String,
    /// The launch-template version it was launched from (`None`: unknown, treated as old).
    pub template_version: Option<String>,
    /// It carries `kops.k8s.io/detached-from-asg`.
    pub detached: bool,
    /// Its Node, once it has joined.
    pub node: Option<NodeState>,
}

/// What the rolling update reads of a Node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeState {
    /// The Node's name.
    pub name: String,
    /// Ready condition true.
    pub ready: bool,
    /// Annotated `kops.k8s.io/needs-update`.
    pub needs_update: bool,
}

/// An instance group with its auto scaling group's state.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// The instance group's name.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// The launch-template version the auto scaling group launches now.
    pub template_version: String,
    /// The auto scaling group's bounds and desired capacity.
    pub min: u32,
    /// Desired capacity.
    pub target: u32,
    /// Maximum size.
    pub max: u32,
    /// Its instances, detached ones included.
    pub instances: Vec<Instance>,
    /// The instances waiting in its warm pool (stopped or running, never joined): replaced
    /// by terminating them, before the group's other instances, with no drain and no
    /// validation of their own, as kops does; the pool refills from the current template.
    pub warm: Vec<Instance>,
    /// `spec.rollingUpdate` of the instance group.
    pub rolling_update: Option<RollingUpdate>,
}

impl Group {
    /// Why `instance` needs replacing, if it does.
    pub fn needs_update(&self, instance: &Instance, force: bool) -> Option<Reason> {
        if instance.detached {
            Some(Reason::Detached)
        } else if instance.template_version.as_deref() != Some(self.template_version.as_str()) {
            Some(Reason::TemplateChanged)
        } else if instance.node.as_ref().is_some_and(|n| n.needs_update) {
            Some(Reason::Annotated)
        } else if force {
            Some(Reason::Forced)
        } else {
            None
        }
    }

    /// The instances to replace, detached ones first (a run that was interrupted after
    /// detaching finishes them before it surges again), then in ID order.
    pub fn to_update(&self, force: bool) -> Vec<&Instance> {
        let mut out: Vec<&Instance> = self
            .instances
            .iter()
            .filter(|i| self.needs_update(i, force).is_some())
            .collect();
        out.sort_by(|a, b| b.detached.cmp(&a.detached).then(a.id.cmp(&b.id)));
        out
    }

    /// The warm-pool instances to replace: launched from another template version (or all
    /// of them with `force`), in ID order.
    pub fn warm_to_update(&self, force: bool) -> Vec<&Instance> {
        self.warm
            .iter()
            .filter(|i| force || i.template_version.as_deref() != Some(&self.template_version))
            .collect()
    }

    /// The row of `rolling-update cluster` without `--yes`; warm-pool instances count, as
    /// kops counts them.
    pub fn status(&self, force: bool) -> Status {
        let need = self.to_update(force).len() + self.warm_to_update(force).len();
        Status {
            name: self.name.clone(),
            status: if need > 0 { "NeedsUpdate" } else { "Ready" },
            need_update: need,
            ready: self.instances.len() + self.warm.len() - need,
            min: self.min,
            target: self.target,
            max: self.max,
            nodes: self.instances.iter().filter(|i| i.node.is_some()).count(),
        }
    }
}

/// A row of the NAME STATUS NEEDUPDATE READY MIN TARGET MAX NODES table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The instance group.
    pub name: String,
    /// `NeedsUpdate` or `Ready`, as kops prints it.
    pub status: &'static str,
    /// Instances to replace.
    pub need_update: usize,
    /// Instances that are current (kops's READY: nothing to replace).
    pub ready: usize,
    /// Minimum size.
    pub min: u32,
    /// Desired capacity.
    pub target: u32,
    /// Maximum size.
    pub max: u32,
    /// Instances that have joined as Nodes.
    pub nodes: usize,
}

/// How many instances of a group go at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Replacements launched before their old instances go (detached, capacity kept).
    pub max_surge: u32,
    /// Instances that may be gone at once without a replacement ready.
    pub max_unavailable: u32,
}

/// A `maxSurge` / `maxUnavailable` value that is neither a count nor a percentage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadAmount {
    /// Where it is written: `InstanceGroup/<name>` or `Cluster`.
    pub object: String,
    /// `maxSurge` or `maxUnavailable`.
    pub field: &'static str,
    /// The value as written.
    pub value: String,
}

impl std::fmt::Display for BadAmount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} spec.rollingUpdate.{}: {:?} is neither a count nor a percentage; write 1 or \"25%\"",
            self.object, self.field, self.value
        )
    }
}

/// `value` of `n` instances: a count as it is, a percentage rounded up (`up`) or down.
fn scaled(
    object: &str,
    field: &'static str,
    value: &IntOrString,
    n: usize,
    up: bool,
) -> Result<u32, BadAmount> {
    let bad = || BadAmount {
        object: object.to_string(),
        field,
        value: match value {
            IntOrString::Int(i) => i.to_string(),
            IntOrString::Float(f) => f.to_string(),
            IntOrString::String(s) => s.clone(),
        },
    };
    match value {
        IntOrString::Int(i) => u32::try_from(*i).map_err(|_| bad()),
        IntOrString::Float(_) => Err(bad()),
        IntOrString::String(s) => {
            let percent: u64 = s
                .strip_suffix('%')
                .and_then(|p| p.parse().ok())
                .ok_or_else(bad)?;
            let whole = percent * n as u64;
            let v = if up { whole.div_ceil(100) } else { whole / 100 };
            u32::try_from(v).map_err(|_| bad())
        }
    }
}

/// The group's settings from its `spec.rollingUpdate`, else the cluster's, else kops's
/// defaults on AWS (surge 1; unavailable 1 when there is no surge, else 0). A surge
/// percentage rounds up, an unavailable percentage down but to at least 1, as kops does.
/// Control planes never surge and go one at a time (etcd quorum); bastions one at a time.
pub fn resolve_settings(
    group: &Group,
    cluster: Option<&RollingUpdate>,
    instances: usize,
) -> Result<Settings, BadAmount> {
    if matches!(group.role, Role::ControlPlane | Role::Bastion) {
        return Ok(Settings {
            max_surge: 0,
            max_unavailable: 1,
        });
    }
    let own = group.rolling_update.as_ref();
    let group_object = format!("InstanceGroup/{}", group.name);
    // The value and the object it is written in.
    let pick = |f: fn(&RollingUpdate) -> Option<&IntOrString>| match own.and_then(f) {
        Some(v) => Some((v, group_object.as_str())),
        None => cluster.and_then(f).map(|v| (v, "Cluster")),
    };
    let max_surge = match pick(|r| r.max_surge.as_ref()) {
        Some((v, object)) => scaled(object, "maxSurge", v, instances, true)?,
        None => 1,
    };
    let max_unavailable = match pick(|r| r.max_unavailable.as_ref()) {
        Some((v @ IntOrString::String(_), object)) => {
            scaled(object, "maxUnavailable", v, instances, false)?.max(1)
        }
        Some((v, object)) => scaled(object, "maxUnavailable", v, instances, false)?,
        None => u32::from(max_surge == 0),
    };
    Ok(Settings {
        max_surge,
        max_unavailable,
    })
}

/// `spec.rollingUpdate.drainAndTerminate` of the group, else of the cluster, else true.
/// False: the group's Nodes are only tainted, their removal left to the cluster autoscaler.
pub fn drain_and_terminate(group: &Group, cluster: Option<&RollingUpdate>) -> bool {
    group
        .rolling_update
        .as_ref()
        .and_then(|r| r.drain_and_terminate)
        .or_else(|| cluster.and_then(|r| r.drain_and_terminate))
        .unwrap_or(true)
}

/// One round of a group's update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Round {
    /// Tagged detached, then detached keeping desired capacity: the group launches their
    /// replacements, which must be Ready before these are drained.
    pub surge: Vec<String>,
    /// Drained and terminated without waiting for a replacement (within maxUnavailable).
    pub unavailable: Vec<String>,
}

/// A group's rounds: each takes up to `max_surge + max_unavailable` instances, surging the
/// first `max_surge` of them. Instances already detached count as surged (their
/// replacements were launched when they were detached). With both settings 0 nothing can
/// move: no rounds, and the caller says so.
pub fn rounds(to_update: &[&Instance], settings: Settings) -> Vec<Round> {
    let per_round = (settings.max_surge + settings.max_unavailable) as usize;
    if per_round == 0 {
        return Vec::new();
    }
    to_update
        .chunks(per_round)
        .map(|chunk| {
            let mut round = Round {
                surge: Vec::new(),
                unavailable: Vec::new(),
            };
            for instance in chunk {
                if instance.detached || round.surge.len() < settings.max_surge as usize {
                    round.surge.push(instance.id.clone());
                } else {
                    round.unavailable.push(instance.id.clone());
                }
            }
            round
        })
        .collect()
}

/// The order groups are updated in: bastions, control planes, API servers, nodes; by name
/// within a role. `only` (`--instance-group`) and `roles` (`--instance-group-roles`) filter;
/// empty means all.
pub fn order<'a>(groups: &'a [Group], only: &[String], roles: &[Role]) -> Vec<&'a Group> {
    let rank = |r: Role| match r {
        Role::Bastion => 0,
        Role::ControlPlane => 1,
        Role::ApiServer => 2,
        Role::Node => 3,
    };
    let mut out: Vec<&Group> = groups
        .iter()
        .filter(|g| only.is_empty() || only.contains(&g.name))
        .filter(|g| roles.is_empty() || roles.contains(&g.role))
        .collect();
    out.sort_by(|a, b| {
        rank(a.role)
            .cmp(&rank(b.role))
            .then_with(|| a.name.cmp(&b.name))
    });
    out
}

/// Whether a validation failure about `instance_group` (`None`: the cluster as a whole, or
/// the control plane) stops the update of `group`: failures of other worker groups do not.
pub fn failure_concerns(
    group: &Group,
    failure_group: Option<&str>,
    failure_role: Option<Role>,
) -> bool {
    match (failure_group, failure_role) {
        (_, Some(Role::ControlPlane)) | (None, _) => true,
        (Some(name), _) => name == group.name,
    }
}

/// After a control-plane instance was replaced, what still keeps the next one from going
/// (empty: etcd can lose another member). Every control-plane Node is Ready and runs a
/// running, ready etcd pod, and there are exactly `expected` of them: the replaced
/// instance's Node is gone (with kubeadm, the new member removes the member whose address no
/// control-plane node has any more, docs/bootstrap.md), and its replacement has joined.
pub fn control_plane_unsettled(
    nodes: &[kopsrs_checks::validation::Node],
    pods: &[kopsrs_checks::validation::Pod],
    expected: usize,
) -> Vec<String> {
    let control_planes: Vec<_> = nodes.iter().filter(|n| n.role == "control-plane").collect();
    let mut out = Vec::new();
    if control_planes.len() != expected {
        out.push(format!(
            "{} control-plane nodes, {expected} expected",
            control_planes.len()
        ));
    }
    for node in control_planes {
        if !node.ready || node.network_unavailable {
            out.push(format!("control-plane node {:?} is not ready", node.name));
            continue;
        }
        let etcd = pods.iter().any(|p| {
            p.node.as_deref() == Some(node.name.as_str())
                && p.component.as_deref() == Some("etcd")
                && p.phase == "Running"
                && p.unready_containers.is_empty()
        });
        if !etcd {
            out.push(format!(
                "control-plane node {:?} has no ready etcd pod",
                node.name
            ));
        }
    }
    out
}

/// One etcd member as the roll reads it (through a control plane's etcd pod).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdMember {
    /// etcd's member ID.
    pub id: u64,
    /// Its name: the control plane's Node name (kubeadm names members after the node).
    pub name: String,
    /// Its client URL answered a health check.
    pub healthy: bool,
}

/// What etcd's membership says before the next control plane may go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EtcdGate {
    /// Why not yet (empty: the members are exactly the control planes, all healthy).
    pub unsettled: Vec<String>,
    /// Members to remove: unhealthy, and no control-plane Node has their name (their
    /// instance is gone). Removing them lets a replacement join.
    pub remove: Vec<EtcdMember>,
}

/// The etcd gate: the members must be exactly the control planes that exist, all healthy.
/// `control_planes` are the control-plane Nodes; `orphans` control planes run without a
/// Node (a stopped run deleted it; this roll terminates them), so as many healthy members
/// without a Node are theirs. A cluster of one control plane (`expected`) has one member,
/// which its replacement restores from the etcd volume under the old name: it must be the
/// only one and healthy, whatever its name.
pub fn etcd_gate(
    members: &[EtcdMember],
    control_planes: &[&str],
    orphans: usize,
    expected: usize,
) -> EtcdGate {
    let mut gate = EtcdGate::default();
    if expected <= 1 {
        match members {
            [only] if only.healthy => {}
            [only] => gate.unsettled.push(format!(
                "etcd member {} ({:x}) is not healthy",
                only.name, only.id
            )),
            _ => gate
                .unsettled
                .push(format!("etcd has {} members, 1 expected", members.len())),
        }
        return gate;
    }
    let mut nodeless_healthy = Vec::new();
    for member in members {
        let has_node = control_planes.contains(&member.name.as_str());
        match (member.healthy, has_node) {
            (true, true) => {}
            (true, false) => nodeless_healthy.push(member),
            (false, true) => gate.unsettled.push(format!(
                "etcd member {} ({:x}) is not healthy",
                member.name, member.id
            )),
            (false, false) => {
                gate.unsettled.push(format!(
                    "etcd member {} ({:x}) is unreachable and no control plane of that name exists: it is removed",
                    member.name, member.id
                ));
                gate.remove.push(member.clone());
            }
        }
    }
    if nodeless_healthy.len() > orphans {
        for member in nodeless_healthy {
            gate.unsettled.push(format!(
                "etcd member {} ({:x}) has no control-plane Node",
                member.name, member.id
            ));
        }
    }
    for node in control_planes {
        if !members.iter().any(|m| m.name == *node) {
            gate.unsettled
                .push(format!("control plane {node} is not an etcd member yet"));
        }
    }
    gate
}

#[cfg(test)]
#[path = "rolling_tests.rs"]
mod tests;

/// An auto scaling group of the cluster as `rolling-update` reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollingGroup {
    /// The auto scaling group's name.
    pub asg: String,
    /// The kops instance group.
    pub instance_group: String,
    /// The role tag (`control-plane`, `node`, `bastion`, `apiserver`).
    pub role: String,
    /// The launch-template version the group launches now (a number; `$Latest` and
    /// `$Default` resolved).
    pub template_version: String,
    /// Minimum size.
    pub min: u32,
    /// Desired capacity.
    pub desired: u32,
    /// Maximum size.
    pub max: u32,
    /// The target groups the group registers its instances in (the API load balancer's, for
    /// control planes).
    pub target_groups: Vec<String>,
    /// Its instances, and the running instances detached from it.
    pub instances: Vec<RollingInstance>,
    /// The instances in its warm pool (`in_group` false: they are terminated directly).
    pub warm: Vec<RollingInstance>,
}

/// An instance of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollingInstance {
    /// The EC2 instance ID.
    pub id: String,
    /// The launch-template version it was launched with, when known.
    pub template_version: Option<String>,
    /// It carries the detached tag (`kops.k8s.io/detached-from-asg`).
    pub detached: bool,
    /// It is still in the auto scaling group (a detached instance is not, unless the run
    /// that tagged it stopped before detaching it).
    pub in_group: bool,
    /// The auto scaling lifecycle state (`InService`, `Pending`...; empty once detached).
    pub lifecycle: String,
}

/// What a drain did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Drained {
    /// Pods evicted (`namespace/name`).
    pub evicted: Vec<String>,
    /// Evictions a disruption budget refused and that were retried.
    pub budget_waits: u32,
}

/// The cloud side of a rolling update: the cluster's groups and instances, and the steps of
/// a replacement. Implemented for AWS by `kopsrs_aws::ClusterGroups`.
#[allow(async_fn_in_trait)] // used generically by one driver, never as a trait object
pub trait CloudGroups {
    /// Why a call failed.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The cluster's groups with their instances, detached ones included.
    async fn groups(&self) -> Result<Vec<RollingGroup>, Self::Error>;

    /// Tags `ids` detached and takes them out of group `asg`, its desired capacity kept (a
    /// surge: the group launches their replacements).
    async fn detach(&self, asg: &str, ids: &[String]) -> Result<(), Self::Error>;

    /// Takes instance `id` out of `target_groups`, waiting up to `timeout` until it is out.
    async fn deregister(
        &self,
        target_groups: &[String],
        id: &str,
        timeout: std::time::Duration,
    ) -> Result<(), Self::Error>;

    /// Terminates the instance (in its group: without decrementing the desired capacity).
    async fn terminate(&self, instance: &RollingInstance) -> Result<(), Self::Error>;

    /// One group's desired capacity and the instances in it with their lifecycle states:
    /// what waiting for capacity polls (one call, not the three of [`CloudGroups::groups`]).
    async fn capacity(&self, asg: &str) -> Result<Capacity, Self::Error>;
}

/// An auto scaling group's capacity as its own description gives it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capacity {
    /// Desired capacity.
    pub desired: u32,
    /// The instances in the group: (ID, lifecycle state).
    pub instances: Vec<(String, String)>,
}

/// The Kubernetes side of a rolling update. Implemented by `kopsrs_kube::Kube`.
#[allow(async_fn_in_trait)] // used generically by one driver, never as a trait object
pub trait ClusterNodes {
    /// Why a call failed.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Every Node that names its instance, by instance ID.
    async fn node_states(
        &self,
    ) -> Result<std::collections::BTreeMap<String, NodeState>, Self::Error>;

    /// Taints the Node scheduled-for-update (PreferNoSchedule); with `cordon`, also cordons
    /// it and excludes it from load balancers.
    async fn mark_for_update(&self, node: &str, cordon: bool) -> Result<(), Self::Error>;

    /// Evicts the Node's pods (DaemonSet and mirror pods stay), within `timeout`.
    async fn drain(
        &self,
        node: &str,
        timeout: std::time::Duration,
        log: &(dyn Fn(String) + Sync),
    ) -> Result<Drained, Self::Error>;

    /// Deletes the Node object.
    async fn delete_node(&self, node: &str) -> Result<(), Self::Error>;

    /// The control-plane Nodes and the instance each names.
    async fn control_plane_nodes(&self) -> Result<Vec<(String, Option<String>)>, Self::Error>;

    /// The API server's version and every Node's kubelet version.
    async fn versions(&self) -> Result<crate::skew::Versions, Self::Error>;

    /// etcd's members with their health, read through the etcd pod of control-plane Node
    /// `via_node` (`kube-system/etcd-<node>`).
    async fn etcd_members(&self, via_node: &str) -> Result<Vec<EtcdMember>, Self::Error>;

    /// Removes etcd member `id` through the etcd pod of `via_node`.
    async fn etcd_remove_member(&self, via_node: &str, id: u64) -> Result<(), Self::Error>;

    /// Every Node and pod, as validation reads them (one list each).
    async fn snapshot(
        &self,
    ) -> Result<
        (
            Vec<kopsrs_checks::validation::Node>,
            Vec<kopsrs_checks::validation::Pod>,
        ),
        Self::Error,
    >;
}
