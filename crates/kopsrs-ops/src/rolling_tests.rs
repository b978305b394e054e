//! The rolling driver against in-memory doubles of the cloud and the Nodes: one shared
//! world where a detached or terminated instance is replaced by its group at once, every
//! instance's Node joins Ready, and each control plane runs etcd. Each test breaks one part
//! of that world and checks what the driver did to it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kopsrs_api::{IntOrString, Role, RollingUpdate};
use kopsrs_checks::validation;
use kopsrs_engine::rolling::{
    CloudGroups, ClusterNodes, Drained, EtcdMember, NodeState, RollingGroup, RollingInstance,
};

use super::{Context, Roll, RollOptions};
use crate::reporter::Recorded;
use crate::Problems;

#[derive(Debug)]
struct Fake(String);

impl std::fmt::Display for Fake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Fake {}

/// The cluster both doubles see.
#[derive(Default)]
struct World {
    groups: Vec<RollingGroup>,
    next_id: u32,
    /// Every change made, in order (`detach i-1`, `drain n-i-1`, `terminate i-1`...).
    log: Vec<String>,
    /// Group reads so far; the read numbered `fail_read` fails.
    reads: usize,
    fail_read: Option<usize>,
    /// Evictions never succeed (a disruption budget that never frees).
    budget_never_frees: bool,
    /// Replacement control planes never join etcd (their etcd pods look ready all the
    /// same: the gate must read etcd, not pods).
    etcd_never_ready: bool,
    /// etcd's members (ID, name), once first read: every control plane then.
    members: Vec<(u64, String)>,
    etcd_started: bool,
    /// Control planes waiting to join: etcd adds a member only when the healthy ones after
    /// the add are a quorum of the new size (its strict reconfiguration check).
    pending_joins: Vec<String>,
    /// The next removals that fail.
    fail_removes: usize,
    /// The fewest healthy members seen after a control plane was terminated.
    min_healthy_members: Option<usize>,
    /// Nodes deleted.
    deleted: BTreeSet<String>,
    /// Control-plane Nodes whose instance is gone (a run stopped in between).
    stale_control_planes: Vec<String>,
    /// The API is another cluster's: its Nodes run on instances none of these groups has.
    foreign_api: bool,
    /// The Kubernetes version instances of a launch-template version run (else v1.31.0).
    kubernetes: BTreeMap<String, String>,
    /// The run dies right after the first step of this kind (`detach`, `cordon`, `drain`,
    /// `delete`, `terminate`...): the step is done, then the call fails, as a SIGKILL
    /// between that step and the next would leave things.
    die_after: Option<&'static str>,
    /// A cluster autoscaler scales group 0 up by one right after each step of this kind:
    /// desired capacity + 1, an instance launched from the group's current template.
    scale_up_after: Option<&'static str>,
    /// Instances the autoscaler launched.
    autoscaled: Vec<String>,
    /// Cluster snapshots taken (each validation pass takes one).
    snapshots: usize,
}

impl World {
    /// Logs `line`; fails when the run is to die after this step.
    fn step(&mut self, line: String) -> Result<(), Fake> {
        let dies = self.die_after.is_some_and(|verb| line.starts_with(verb));
        if self
            .scale_up_after
            .is_some_and(|verb| line.starts_with(verb))
        {
            let group = &mut self.groups[0];
            group.desired += 1;
            group.max = group.max.max(group.desired);
            self.launch(0);
            let id = self.groups[0].instances.last().unwrap().id.clone();
            self.autoscaled.push(id);
        }
        self.log.push(line);
        if dies {
            self.die_after = None;
            return Err(Fake("killed".into()));
        }
        Ok(())
    }
}

impl World {
    fn launch(&mut self, group: usize) {
        self.next_id += 1;
        let id = format!("i-new{}", self.next_id);
        if self.groups[group].role == "control-plane" && !self.etcd_never_ready {
            self.pending_joins.push(node_name(&id));
        }
        let version = self.groups[group].template_version.clone();
        self.groups[group].instances.push(RollingInstance {
            id,
            template_version: Some(version),
            detached: false,
            in_group: true,
            lifecycle: "InService".into(),
        });
    }

    fn group_of(&self, id: &str) -> Option<(usize, usize)> {
        self.groups.iter().enumerate().find_map(|(g, group)| {
            group
                .instances
                .iter()
                .position(|i| i.id == id)
                .map(|i| (g, i))
        })
    }

    fn role_of(&self, group: usize) -> &str {
        &self.groups[group].role
    }

    /// A member is healthy while its instance runs.
    fn member_healthy(&self, name: &str) -> bool {
        self.groups
            .iter()
            .flat_map(|g| &g.instances)
            .any(|i| node_name(&i.id) == name)
    }

    fn healthy_members(&self) -> usize {
        self.members
            .iter()
            .filter(|(_, n)| self.member_healthy(n))
            .count()
    }

    /// etcd as it is now: started with the control planes there at the first read, then
    /// the joins its strict reconfiguration check lets in.
    fn etcd(&mut self) {
        if !self.etcd_started {
            self.etcd_started = true;
            let names: Vec<String> = self
                .groups
                .iter()
                .filter(|g| g.role == "control-plane")
                .flat_map(|g| &g.instances)
                .map(|i| node_name(&i.id))
                .collect();
            self.pending_joins.retain(|n| !names.contains(n));
            for name in names {
                self.members.push((self.members.len() as u64 + 0x10, name));
            }
        }
        for name in std::mem::take(&mut self.pending_joins) {
            let size = self.members.len() + 1;
            if !self.member_healthy(&name) {
                continue;
            }
            // One control plane: its replacement restores the member from the etcd volume.
            if self.members.len() == 1 && self.healthy_members() == 0 {
                self.members[0].1 = name;
                continue;
            }
            if self.healthy_members() + 1 > size / 2 {
                self.members.push((self.members.len() as u64 + 0x10, name));
            } else {
                self.pending_joins.push(name);
            }
        }
    }
}

fn node_name(id: &str) -> String {
    format!("n-{id}")
}

#[derive(Clone)]
struct Cloud(Arc<Mutex<World>>);

impl CloudGroups for Cloud {
    type Error = Fake;

    async fn capacity(&self, asg: &str) -> Result<kopsrs_engine::rolling::Capacity, Fake> {
        let w = self.0.lock().unwrap();
        let g = w.groups.iter().find(|g| g.asg == asg).unwrap();
        Ok(kopsrs_engine::rolling::Capacity {
            desired: g.desired,
            instances: g
                .instances
                .iter()
                .filter(|i| i.in_group)
                .map(|i| (i.id.clone(), i.lifecycle.clone()))
                .collect(),
        })
    }

    async fn groups(&self) -> Result<Vec<RollingGroup>, Fake> {
        let mut w = self.0.lock().unwrap();
        w.reads += 1;
        if w.fail_read == Some(w.reads) {
            return Err(Fake("throttled: Rate exceeded".into()));
        }
        Ok(w.groups.clone())
    }

    async fn detach(&self, asg: &str, ids: &[String]) -> Result<(), Fake> {
        let mut w = self.0.lock().unwrap();
        let g = w.groups.iter().position(|g| g.asg == asg).unwrap();
        for id in ids {
            let i = w.groups[g]
                .instances
                .iter_mut()
                .find(|i| &i.id == id)
                .unwrap();
            i.detached = true;
            i.in_group = false;
            i.lifecycle = String::new();
            // Desired capacity kept: the group launches a replacement.
            w.launch(g);
            w.step(format!("detach {id}"))?;
        }
        Ok(())
    }

    async fn deregister(&self, _: &[String], id: &str, _: Duration) -> Result<(), Fake> {
        self.0.lock().unwrap().step(format!("deregister {id}"))
    }

    async fn terminate(&self, instance: &RollingInstance) -> Result<(), Fake> {
        let mut w = self.0.lock().unwrap();
        // A warm-pool instance: the pool refills from the group's current template.
        if let Some(g) = w
            .groups
            .iter()
            .position(|g| g.warm.iter().any(|i| i.id == instance.id))
        {
            w.groups[g].warm.retain(|i| i.id != instance.id);
            w.next_id += 1;
            let warm = RollingInstance {
                id: format!("i-warm{}", w.next_id),
                template_version: Some(w.groups[g].template_version.clone()),
                ..instance.clone()
            };
            w.groups[g].warm.push(warm);
            return w.step(format!("terminate {}", instance.id));
        }
        let (g, i) = w.group_of(&instance.id).unwrap();
        let gone = w.groups[g].instances.remove(i);
        if w.etcd_started && w.groups[g].role == "control-plane" {
            let healthy = w.healthy_members();
            w.min_healthy_members = Some(w.min_healthy_members.map_or(healthy, |m| m.min(healthy)));
        }
        if gone.in_group {
            w.launch(g);
        }
        w.step(format!("terminate {}", instance.id))
    }
}

#[derive(Clone)]
struct Nodes(Arc<Mutex<World>>);

impl ClusterNodes for Nodes {
    type Error = Fake;

    async fn node_states(&self) -> Result<BTreeMap<String, NodeState>, Fake> {
        let w = self.0.lock().unwrap();
        if w.foreign_api {
            let state = NodeState {
                name: "other-cluster-node".into(),
                ready: true,
                needs_update: false,
            };
            return Ok(BTreeMap::from([("i-elsewhere".to_string(), state)]));
        }
        Ok(w.groups
            .iter()
            .flat_map(|g| &g.instances)
            .filter(|i| !w.deleted.contains(&node_name(&i.id)))
            .map(|i| {
                let state = NodeState {
                    name: node_name(&i.id),
                    ready: true,
                    needs_update: false,
                };
                (i.id.clone(), state)
            })
            .collect())
    }

    async fn mark_for_update(&self, node: &str, cordon: bool) -> Result<(), Fake> {
        let verb = if cordon { "cordon" } else { "taint" };
        self.0.lock().unwrap().step(format!("{verb} {node}"))
    }

    async fn drain(
        &self,
        node: &str,
        _: Duration,
        _: &(dyn Fn(String) + Sync),
    ) -> Result<Drained, Fake> {
        let mut w = self.0.lock().unwrap();
        if w.budget_never_frees {
            w.log.push(format!("drain {node} refused"));
            return Err(Fake(format!(
                "draining {node}: the disruption budget of default/web never allowed the eviction"
            )));
        }
        w.step(format!("drain {node}"))?;
        Ok(Drained {
            evicted: vec!["default/web-1".into()],
            budget_waits: 0,
        })
    }

    async fn delete_node(&self, node: &str) -> Result<(), Fake> {
        let mut w = self.0.lock().unwrap();
        w.deleted.insert(node.to_string());
        w.stale_control_planes.retain(|n| n != node);
        w.step(format!("delete {node}"))
    }

    async fn control_plane_nodes(&self) -> Result<Vec<(String, Option<String>)>, Fake> {
        let w = self.0.lock().unwrap();
        let live = w
            .groups
            .iter()
            .filter(|g| g.role == "control-plane")
            .flat_map(|g| &g.instances)
            .filter(|i| !w.deleted.contains(&node_name(&i.id)))
            .map(|i| (node_name(&i.id), Some(i.id.clone())));
        let stale = w
            .stale_control_planes
            .iter()
            .map(|n| (n.clone(), Some(n.trim_start_matches("n-").to_string())));
        Ok(live.chain(stale).collect())
    }

    async fn versions(&self) -> Result<kopsrs_engine::skew::Versions, Fake> {
        let w = self.0.lock().unwrap();
        let mut versions = kopsrs_engine::skew::Versions::default();
        for group in &w.groups {
            for i in &group.instances {
                if w.deleted.contains(&node_name(&i.id)) {
                    continue;
                }
                let template = i.template_version.clone().unwrap_or_default();
                let version = w.kubernetes.get(&template).cloned();
                versions.kubelets.push(kopsrs_engine::skew::Kubelet {
                    node: node_name(&i.id),
                    control_plane: group.role == "control-plane",
                    version: version.unwrap_or_else(|| "v1.31.0".into()),
                });
            }
        }
        // The API answers from the oldest control plane.
        versions.api_server = versions
            .kubelets
            .iter()
            .filter(|k| k.control_plane)
            .map(|k| k.version.clone())
            .min_by_key(|v| kopsrs_engine::skew::minor(v))
            .unwrap_or_else(|| "v1.31.0".into());
        Ok(versions)
    }

    async fn etcd_members(&self, via: &str) -> Result<Vec<EtcdMember>, Fake> {
        let mut w = self.0.lock().unwrap();
        w.etcd();
        if !w.member_healthy(via) {
            return Err(Fake(format!("pods \"etcd-{via}\" not found")));
        }
        if w.healthy_members() * 2 <= w.members.len() {
            return Err(Fake("context deadline exceeded".into()));
        }
        Ok(w.members
            .iter()
            .map(|(id, name)| EtcdMember {
                id: *id,
                name: name.clone(),
                healthy: w.member_healthy(name),
            })
            .collect())
    }

    async fn etcd_remove_member(&self, _: &str, id: u64) -> Result<(), Fake> {
        let mut w = self.0.lock().unwrap();
        if w.fail_removes > 0 {
            w.fail_removes -= 1;
            return Err(Fake("etcdserver: request timed out".into()));
        }
        let Some(at) = w.members.iter().position(|(m, _)| *m == id) else {
            return Ok(());
        };
        let (_, name) = w.members.remove(at);
        w.log.push(format!("etcd remove {name}"));
        Ok(())
    }

    async fn snapshot(&self) -> Result<(Vec<validation::Node>, Vec<validation::Pod>), Fake> {
        let mut w = self.0.lock().unwrap();
        w.snapshots += 1;
        let mut nodes = Vec::new();
        let mut pods = Vec::new();
        for (g, group) in w.groups.iter().enumerate() {
            for i in &group.instances {
                let name = node_name(&i.id);
                if w.deleted.contains(&name) {
                    continue;
                }
                let role = w.role_of(g).to_string();
                if role == "control-plane" {
                    let replacement = i.id.starts_with("i-new");
                    for component in [
                        "etcd",
                        "kube-apiserver",
                        "kube-controller-manager",
                        "kube-scheduler",
                    ] {
                        let _ = replacement;
                        let ready = true;
                        pods.push(validation::Pod {
                            name: format!("kube-system/{component}-{name}"),
                            node: Some(name.clone()),
                            priority_class: Some("system-node-critical".into()),
                            component: Some(component.into()),
                            phase: "Running".into(),
                            unready_containers: match ready {
                                true => Vec::new(),
                                false => vec![component.into()],
                            },
                        });
                    }
                }
                nodes.push(validation::Node {
                    name: name.clone(),
                    instance_id: Some(i.id.clone()),
                    role,
                    zone: "us-test-1a".into(),
                    hostname: name,
                    ready: true,
                    network_unavailable: false,
                    karpenter_pool: None,
                });
            }
        }
        Ok((nodes, pods))
    }
}

/// A group of `size` instances launched from template version 1, its group now at 2.
fn group(name: &str, role: &str, size: u32) -> RollingGroup {
    RollingGroup {
        asg: format!("{name}.c.example.com"),
        instance_group: name.into(),
        role: role.into(),
        template_version: "2".into(),
        min: size,
        desired: size,
        max: size,
        target_groups: Vec::new(),
        instances: (1..=size)
            .map(|n| RollingInstance {
                id: format!("i-{name}-{n}"),
                template_version: Some("1".into()),
                detached: false,
                in_group: true,
                lifecycle: "InService".into(),
            })
            .collect(),
        warm: Vec::new(),
    }
}

/// Options with every wait at zero, one validation pass, short deadlines.
fn fast() -> RollOptions {
    RollOptions {
        post_drain_delay: Duration::ZERO,
        validation_timeout: Duration::from_millis(100),
        validate_count: 1,
        bastion_interval: Duration::ZERO,
        control_plane_interval: Duration::ZERO,
        node_interval: Duration::ZERO,
        capacity_poll: Duration::from_millis(1),
        least_pass_interval: Duration::from_millis(1),
        ..RollOptions::default()
    }
}

struct Harness {
    world: Arc<Mutex<World>>,
    reporter: Arc<Recorded>,
    roll: Roll<Cloud, Nodes>,
}

async fn harness(world: World, options: RollOptions) -> anyhow::Result<Harness> {
    harness_with(world, options, true).await
}

/// The harness; `api`: whether the roll reads the Nodes (false: `--cloudonly`).
async fn harness_with(world: World, options: RollOptions, api: bool) -> anyhow::Result<Harness> {
    let specs = world
        .groups
        .iter()
        .map(|g| {
            let role = Role::from_tag(&g.role).unwrap();
            (g.instance_group.clone(), (role, None))
        })
        .collect();
    // The spec's version is what the groups' current template (2) runs.
    let kubernetes_version = world.kubernetes.get("2").cloned();
    let world = Arc::new(Mutex::new(world));
    let reporter = Arc::new(Recorded::default());
    let cx = Context {
        name: "c.example.com".into(),
        specs,
        cluster_rolling: None,
        kubernetes_version,
        settings: crate::Settings::default(),
        reporter: reporter.clone(),
    };
    let mut roll = Roll::new(
        Cloud(world.clone()),
        api.then(|| Nodes(world.clone())),
        cx,
        options,
    );
    roll.plan(&[]).await?;
    Ok(Harness {
        world,
        reporter,
        roll,
    })
}

impl Harness {
    fn log(&self) -> Vec<String> {
        self.world.lock().unwrap().log.clone()
    }

    fn current(&self) -> bool {
        let w = self.world.lock().unwrap();
        w.groups.iter().all(|g| {
            g.instances
                .iter()
                .all(|i| i.template_version.as_deref() == Some(g.template_version.as_str()))
        })
    }
}

fn problems(e: &anyhow::Error) -> String {
    match e.downcast_ref::<Problems>() {
        Some(p) => {
            p.0.iter()
                .map(|p| {
                    format!(
                        "{} (hint: {})",
                        p.message,
                        p.hint.clone().unwrap_or_default()
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        }
        None => format!("{e:#}"),
    }
}

#[tokio::test]
async fn plans_control_planes_first_then_rolls_every_instance_once() {
    let world = World {
        groups: vec![
            group("nodes", "node", 3),
            group("control-plane-a", "control-plane", 1),
        ],
        ..World::default()
    };
    let h = harness(world, fast()).await.unwrap();
    let order: Vec<&str> = h.roll.statuses().iter().map(|s| s.name.as_str()).collect();
    assert_eq!(order, ["control-plane-a", "nodes"]);
    assert!(h.roll.needed());
    if let Err(e) = h.roll.run().await {
        panic!("{}", problems(&e));
    }
    assert!(h.current(), "every instance replaced");
    let log = h.log();
    let terminated: Vec<&String> = log.iter().filter(|l| l.starts_with("terminate")).collect();
    assert_eq!(terminated.len(), 4, "{log:#?}");
    // Each old instance: cordoned, drained, its Node deleted, then terminated, in order.
    for id in ["i-control-plane-a-1", "i-nodes-1", "i-nodes-2", "i-nodes-3"] {
        let at = |what: &str| {
            log.iter()
                .position(|l| {
                    l == &format!(
                        "{what} {}",
                        if what == "terminate" {
                            id.to_string()
                        } else {
                            node_name(id)
                        }
                    )
                })
                .unwrap_or_else(|| panic!("no {what} of {id}: {log:#?}"))
        };
        assert!(at("cordon") < at("drain"));
        assert!(at("drain") < at("delete"));
        assert!(at("delete") < at("terminate"));
    }
    // The control plane went before any node.
    let first_node = log.iter().position(|l| l.contains("i-nodes")).unwrap();
    let last_cp = log
        .iter()
        .rposition(|l| l.contains("control-plane"))
        .unwrap();
    assert!(last_cp < first_node, "{log:#?}");
}

#[tokio::test]
async fn nothing_to_do_when_every_instance_is_current() {
    let mut nodes = group("nodes", "node", 2);
    for i in &mut nodes.instances {
        i.template_version = Some("2".into());
    }
    let h = harness(
        World {
            groups: vec![nodes],
            ..World::default()
        },
        fast(),
    )
    .await
    .unwrap();
    assert!(!h.roll.needed());
    h.roll.run().await.unwrap();
    assert!(h.log().is_empty(), "{:#?}", h.log());
}

#[tokio::test]
async fn a_surge_detaches_first_and_the_replacement_launches_before_the_old_one_goes() {
    let mut nodes = group("nodes", "node", 2);
    nodes.max = 3;
    let world = World {
        groups: vec![nodes],
        ..World::default()
    };
    let options = RollOptions {
        force: false,
        ..fast()
    };
    let h = harness(world, options).await.unwrap();
    h.roll.run().await.unwrap();
    assert!(h.current());
    let log = h.log();
    // kops's default for nodes is maxSurge 1: the first instance is detached (its
    // replacement launched) before it is drained and terminated.
    let detach = log
        .iter()
        .position(|l| l == "detach i-nodes-1")
        .expect("a surge");
    let terminate = log.iter().position(|l| l == "terminate i-nodes-1").unwrap();
    assert!(detach < terminate, "{log:#?}");
}

#[tokio::test]
async fn an_interrupted_run_resumes_with_the_detached_instance() {
    // A run stopped after tagging i-nodes-1 detached and before detaching it.
    let mut nodes = group("nodes", "node", 2);
    nodes.instances[0].detached = true;
    let h = harness(
        World {
            groups: vec![nodes],
            ..World::default()
        },
        fast(),
    )
    .await
    .unwrap();
    h.roll.run().await.unwrap();
    let log = h.log();
    assert_eq!(
        log.first().map(String::as_str),
        Some("detach i-nodes-1"),
        "{log:#?}"
    );
    assert!(h.current());
    // Each instance went once: no instance was terminated twice.
    let terminated: BTreeSet<&String> = log.iter().filter(|l| l.starts_with("terminate")).collect();
    assert_eq!(terminated.len(), 2, "{log:#?}");
}

#[tokio::test]
async fn a_disruption_budget_that_never_frees_stops_before_terminating() {
    let world = World {
        groups: vec![group("nodes", "node", 2)],
        budget_never_frees: true,
        ..World::default()
    };
    let h = harness(world, fast()).await.unwrap();
    let e = h.roll.run().await.unwrap_err();
    let text = problems(&e);
    assert!(text.contains("disruption budget"), "{text}");
    assert!(text.contains("--fail-on-drain-error=false"), "{text}");
    let log = h.log();
    assert!(
        !log.iter()
            .any(|l| l.starts_with("terminate") || l.starts_with("delete")),
        "nothing terminated or deleted after a failed drain: {log:#?}"
    );
}

#[tokio::test]
async fn a_budget_that_never_frees_is_overridden_only_by_fail_on_drain_error_false() {
    let world = World {
        groups: vec![group("nodes", "node", 1)],
        budget_never_frees: true,
        ..World::default()
    };
    let options = RollOptions {
        fail_on_drain_error: false,
        ..fast()
    };
    let h = harness(world, options).await.unwrap();
    h.roll.run().await.unwrap();
    assert!(h.current());
    assert!(h
        .reporter
        .lines()
        .iter()
        .any(|l| l.contains("terminating anyway")));
}

#[tokio::test]
async fn a_control_plane_that_never_settles_stops_the_roll_whatever_the_flags() {
    for (validate_count, fail_on_validate_error) in [(1, true), (0, false), (2, false)] {
        let world = World {
            groups: vec![
                group("control-plane-a", "control-plane", 1),
                group("control-plane-b", "control-plane", 1),
                group("control-plane-c", "control-plane", 1),
            ],
            etcd_never_ready: true,
            ..World::default()
        };
        let options = RollOptions {
            validate_count,
            fail_on_validate_error,
            ..fast()
        };
        let h = harness(world, options).await.unwrap();
        let e = h.roll.run().await.unwrap_err();
        let text = problems(&e);
        assert!(text.contains("etcd"), "{text}");
        let log = h.log();
        let terminated: Vec<&String> = log.iter().filter(|l| l.starts_with("terminate")).collect();
        assert_eq!(
            terminated.len(),
            1,
            "--validate-count {validate_count} --fail-on-validate-error={fail_on_validate_error}: \
             only the first control plane may go while etcd has not settled: {log:#?}"
        );
    }
}

/// A kubeconfig context that points at another cluster's API: nothing is drained,
/// deleted or terminated.
#[tokio::test]
async fn another_clusters_api_changes_nothing() {
    let world = World {
        groups: vec![
            group("control-plane-a", "control-plane", 1),
            group("nodes", "node", 2),
        ],
        foreign_api: true,
        ..World::default()
    };
    let e = harness(world, fast())
        .await
        .err()
        .expect("refused when planning");
    assert!(
        problems(&e).contains("is not this cluster's"),
        "{}",
        problems(&e)
    );
}

/// Without the API (`--cloudonly`) etcd cannot be seen: control planes are refused before
/// anything changes, whatever the other flags say, unless `--force` accepts the risk.
#[tokio::test]
async fn without_the_api_control_planes_need_force() {
    for (validate_count, fail_on_validate_error) in [(1, true), (0, false)] {
        let groups = || {
            vec![
                group("control-plane-a", "control-plane", 1),
                group("control-plane-b", "control-plane", 1),
                group("control-plane-c", "control-plane", 1),
                group("nodes", "node", 2),
            ]
        };
        let options = RollOptions {
            validate_count,
            fail_on_validate_error,
            ..fast()
        };
        let world = World {
            groups: groups(),
            ..World::default()
        };
        let e = harness_with(world, options.clone(), false)
            .await
            .err()
            .expect("refused when planning");
        let text = problems(&e);
        assert!(
            text.contains("quorum") && text.contains("--force"),
            "{text}"
        );
        // Only the nodes: no control plane goes, nothing refused.
        let world = World {
            groups: groups(),
            ..World::default()
        };
        let nodes_only = RollOptions {
            instance_groups: vec!["nodes".into()],
            ..options.clone()
        };
        let h = harness_with(world, nodes_only, false).await.unwrap();
        h.roll.run().await.unwrap();
        // With --force: every control plane, said as the risk it is.
        let world = World {
            groups: groups(),
            ..World::default()
        };
        let forced = RollOptions {
            force: true,
            ..options
        };
        let h = harness_with(world, forced, false).await.unwrap();
        h.roll.run().await.unwrap();
        assert!(h.current());
        assert!(
            h.reporter
                .lines()
                .iter()
                .any(|l| l.contains("may lose its quorum")),
            "{:?}",
            h.reporter.lines()
        );
    }
}

/// The gate reads etcd: each replaced control plane's member is removed by the roll (tried
/// again when etcd refuses), its replacement joins, and at least two of three members stay
/// healthy throughout, with every flag.
#[tokio::test]
async fn the_etcd_gate_removes_dead_members_and_keeps_the_quorum() {
    for (validate_count, fail_on_validate_error) in [(1, true), (0, false)] {
        let world = World {
            groups: vec![
                group("control-plane-a", "control-plane", 1),
                group("control-plane-b", "control-plane", 1),
                group("control-plane-c", "control-plane", 1),
            ],
            fail_removes: 2,
            ..World::default()
        };
        let options = RollOptions {
            validate_count,
            fail_on_validate_error,
            validation_timeout: Duration::from_secs(5),
            ..fast()
        };
        let h = harness(world, options).await.unwrap();
        h.roll.run().await.unwrap();
        assert!(h.current());
        let w = h.world.lock().unwrap();
        let removed: Vec<&String> = w
            .log
            .iter()
            .filter(|l| l.starts_with("etcd remove"))
            .collect();
        assert_eq!(removed.len(), 3, "{:?}", w.log);
        assert_eq!(w.min_healthy_members, Some(2), "{:?}", w.log);
        assert_eq!(w.members.len(), 3);
        assert!(
            w.members.iter().all(|(_, n)| n.starts_with("n-i-new")),
            "{:?}",
            w.members
        );
        // Each removal came after its instance was terminated, before the next went.
        let order: Vec<&String> = w
            .log
            .iter()
            .filter(|l| l.starts_with("etcd remove") || l.starts_with("terminate"))
            .collect();
        for pair in order.chunks(2) {
            assert!(
                pair[0].starts_with("terminate") && pair[1].starts_with("etcd remove"),
                "{order:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_failed_read_mid_round_stops_with_the_cloud_error_and_a_resume_finishes() {
    let world = World {
        groups: vec![group("nodes", "node", 3)],
        // The plan read is 1; the read of the group's first round is 2, the next rounds later.
        fail_read: Some(4),
        ..World::default()
    };
    let h = harness(world, fast()).await.unwrap();
    let e = h.roll.run().await.unwrap_err();
    let text = problems(&e);
    assert!(text.contains("Rate exceeded"), "{text}");
    assert!(text.contains("resumes where it stopped"), "{text}");
    assert!(!h.current(), "stopped part way");
    // Run again, as a user would: it resumes from the cloud as it is and finishes.
    h.roll.run().await.unwrap();
    assert!(h.current());
    let log = h.log();
    let terminated: Vec<&String> = log.iter().filter(|l| l.starts_with("terminate")).collect();
    let unique: BTreeSet<&&String> = terminated.iter().collect();
    assert_eq!(
        terminated.len(),
        unique.len(),
        "no instance terminated twice: {log:#?}"
    );
}

#[tokio::test]
async fn a_stale_control_plane_node_is_deleted_before_the_next_replacement() {
    let world = World {
        groups: vec![group("control-plane-a", "control-plane", 1)],
        stale_control_planes: vec!["n-i-gone".into()],
        ..World::default()
    };
    let h = harness(world, fast()).await.unwrap();
    h.roll.run().await.unwrap();
    let log = h.log();
    let stale = log
        .iter()
        .position(|l| l == "delete n-i-gone")
        .expect("stale Node deleted");
    let terminate = log.iter().position(|l| l.starts_with("terminate")).unwrap();
    assert!(stale < terminate, "{log:#?}");
}

#[tokio::test]
async fn both_amounts_zero_is_refused_before_anything_changes() {
    let world = World {
        groups: vec![group("nodes", "node", 2)],
        ..World::default()
    };
    let specs_zero = kopsrs_api::RollingUpdate {
        max_surge: Some(kopsrs_api::IntOrString::Int(0)),
        max_unavailable: Some(kopsrs_api::IntOrString::Int(0)),
        ..Default::default()
    };
    let world = Arc::new(Mutex::new(world));
    let cx = Context {
        name: "c.example.com".into(),
        specs: [("nodes".to_string(), (Role::Node, Some(specs_zero)))].into(),
        cluster_rolling: None,
        kubernetes_version: None,
        settings: crate::Settings::default(),
        reporter: Arc::new(Recorded::default()),
    };
    let mut roll = Roll::new(Cloud(world.clone()), Some(Nodes(world.clone())), cx, fast());
    let e = roll.plan(&[]).await.unwrap_err();
    assert!(problems(&e).contains("maxSurge and maxUnavailable are both 0"));
    assert!(world.lock().unwrap().log.is_empty());
}

/// An upgrade from 1.31 to 1.32: template 1 runs 1.31, template 2 (current) 1.32.
fn upgrading(groups: Vec<RollingGroup>) -> World {
    World {
        groups,
        kubernetes: [
            ("1".to_string(), "v1.31.4".to_string()),
            ("2".to_string(), "v1.32.1".to_string()),
        ]
        .into(),
        ..World::default()
    }
}

#[tokio::test]
async fn nodes_are_not_rolled_ahead_of_the_control_plane_whatever_the_flags() {
    for validate_count in [1, 0] {
        let world = upgrading(vec![
            group("nodes", "node", 2),
            group("control-plane-a", "control-plane", 1),
        ]);
        let options = RollOptions {
            instance_groups: vec!["nodes".into()],
            validate_count,
            fail_on_validate_error: false,
            ..fast()
        };
        let h = harness(world, options).await.unwrap();
        let e = h.roll.run().await.unwrap_err();
        let text = problems(&e);
        assert!(
            text.contains("newer than the API servers (1.31)")
                && text.contains("reconcile cluster"),
            "{text}"
        );
        assert!(h.log().is_empty(), "nothing may change: {:?}", h.log());
    }
}

#[tokio::test]
async fn an_upgrade_rolls_the_control_plane_then_the_nodes() {
    let world = upgrading(vec![
        group("nodes", "node", 2),
        group("control-plane-a", "control-plane", 1),
    ]);
    let h = harness(world, fast()).await.unwrap();
    h.roll.run().await.unwrap();
    assert!(h.current());
    let log = h.log();
    let first_node = log.iter().position(|l| l.contains("nodes")).unwrap();
    let last_control = log
        .iter()
        .rposition(|l| l.contains("control-plane"))
        .unwrap();
    assert!(last_control < first_node, "{log:?}");
}

#[tokio::test]
async fn a_control_plane_upgrade_that_skips_a_minor_version_is_refused() {
    let mut world = upgrading(vec![group("control-plane-a", "control-plane", 1)]);
    world.kubernetes.insert("2".into(), "v1.33.0".into());
    let h = harness(
        world,
        RollOptions {
            validate_count: 0,
            ..fast()
        },
    )
    .await
    .unwrap();
    let text = problems(&h.roll.run().await.unwrap_err());
    assert!(
        text.contains("one minor version at a time") && text.contains("1.32 first"),
        "{text}"
    );
    assert!(h.log().is_empty(), "{:?}", h.log());
}

/// A run killed right after each step of a round, then run again: the second run finishes
/// with no flag, replaces each original instance exactly once, and leaves no extra or
/// detached instance.
#[tokio::test]
async fn a_run_killed_after_any_step_resumes_without_a_flag() {
    for step in [
        "taint",
        "detach",
        "cordon",
        "deregister",
        "drain",
        "delete",
        "terminate",
    ] {
        for role in ["node", "control-plane"] {
            let world = World {
                groups: vec![group("g", role, 2)],
                die_after: Some(step),
                ..World::default()
            };
            let h = harness(world, fast()).await.unwrap();
            let first = h.roll.run().await;
            if role == "control-plane" && step == "detach" {
                // Control planes never surge: nothing to die after.
                first.unwrap();
                continue;
            }
            let e = first.expect_err(&format!("{step} {role}: the run dies"));
            assert!(
                problems(&e).contains("killed"),
                "{step} {role}: {}",
                problems(&e)
            );
            // Run again, as the user would: a new run plans from what is there.
            let world = h.world.clone();
            let reporter = h.reporter.clone();
            drop(h);
            let specs = [("g".to_string(), (Role::from_tag(role).unwrap(), None))].into();
            let cx = Context {
                name: "c.example.com".into(),
                specs,
                cluster_rolling: None,
                kubernetes_version: None,
                settings: crate::Settings::default(),
                reporter: reporter.clone(),
            };
            let mut again = Roll::new(Cloud(world.clone()), Some(Nodes(world.clone())), cx, fast());
            again.plan(&[]).await.unwrap();
            again.run().await.unwrap_or_else(|e| {
                panic!(
                    "{step} {role}: the rerun: {}\n{:?}",
                    problems(&e),
                    reporter.lines()
                )
            });
            let w = world.lock().unwrap();
            let g = &w.groups[0];
            assert_eq!(g.instances.len(), 2, "{step} {role}: {:?}", w.log);
            assert!(
                g.instances
                    .iter()
                    .all(|i| !i.detached && i.template_version.as_deref() == Some("2")),
                "{step} {role}: {:?}",
                g.instances
            );
            for original in ["i-g-1", "i-g-2"] {
                let terminated = w
                    .log
                    .iter()
                    .filter(|l| *l == &format!("terminate {original}"))
                    .count();
                assert_eq!(terminated, 1, "{step} {role}: {:?}", w.log);
            }
            assert!(
                !w.log.iter().any(|l| l.starts_with("terminate i-new")),
                "{step} {role}: a replacement was replaced: {:?}",
                w.log
            );
        }
    }
}

/// A cluster autoscaler adds nodes to the group while it rolls (from the new template): the
/// roll does not loop, never replaces them, counts them when it validates, and ends with the
/// group at its new size.
#[tokio::test]
async fn an_autoscaler_adding_nodes_during_the_roll_is_left_alone() {
    for settings in [(1, 0), (0, 1), (2, 1)] {
        let mut nodes = group("nodes", "node", 3);
        nodes.max = 10;
        let world = World {
            groups: vec![nodes],
            scale_up_after: Some("drain"),
            ..World::default()
        };
        let specs = RollingUpdate {
            max_surge: Some(IntOrString::Int(settings.0)),
            max_unavailable: Some(IntOrString::Int(settings.1)),
            ..Default::default()
        };
        let world = Arc::new(Mutex::new(world));
        let cx = Context {
            name: "c.example.com".into(),
            specs: [("nodes".to_string(), (Role::Node, Some(specs)))].into(),
            cluster_rolling: None,
            kubernetes_version: None,
            settings: crate::Settings::default(),
            reporter: Arc::new(Recorded::default()),
        };
        let mut roll = Roll::new(Cloud(world.clone()), Some(Nodes(world.clone())), cx, fast());
        roll.plan(&[]).await.unwrap();
        roll.run().await.unwrap();
        let w = world.lock().unwrap();
        let g = &w.groups[0];
        assert_eq!(w.autoscaled.len(), 3, "one per drain: {:?}", w.log);
        assert_eq!(g.desired, 6);
        assert_eq!(g.instances.len(), 6, "{settings:?}: {:?}", g.instances);
        assert!(g
            .instances
            .iter()
            .all(|i| !i.detached && i.template_version.as_deref() == Some("2")));
        for id in &w.autoscaled {
            assert!(
                g.instances.iter().any(|i| &i.id == id),
                "{id} replaced: {:?}",
                w.log
            );
            assert!(
                !w.log
                    .iter()
                    .any(|l| l.ends_with(id.as_str()) && !l.starts_with("taint")),
                "{id} touched: {:?}",
                w.log
            );
        }
        let terminated = w.log.iter().filter(|l| l.starts_with("terminate")).count();
        assert_eq!(
            terminated, 3,
            "{settings:?}: each original once: {:?}",
            w.log
        );
    }
}

/// A group whose warm pool holds `n` instances launched from template version 1.
fn with_warm(mut group: RollingGroup, n: u32) -> RollingGroup {
    group.warm = (1..=n)
        .map(|k| RollingInstance {
            id: format!("i-{}-warm-{k}", group.instance_group),
            template_version: Some("1".into()),
            detached: false,
            in_group: false,
            lifecycle: "Warmed:Stopped".into(),
        })
        .collect();
    group
}

/// kops's behaviour: warm-pool instances that need an update are terminated directly,
/// with no drain and no validation of their own; only the group's first validation runs.
#[tokio::test]
async fn only_warm_pool_instances_to_replace_are_terminated_after_one_validation() {
    let mut nodes = with_warm(group("nodes", "node", 2), 2);
    for i in &mut nodes.instances {
        i.template_version = Some("2".into());
    }
    let h = harness(
        World {
            groups: vec![nodes],
            ..World::default()
        },
        fast(),
    )
    .await
    .unwrap();
    let status = &h.roll.statuses()[0];
    assert_eq!(
        (status.status, status.need_update, status.ready),
        ("NeedsUpdate", 2, 2)
    );
    h.world.lock().unwrap().snapshots = 0;
    h.roll.run().await.unwrap();
    let groups = {
        let w = h.world.lock().unwrap();
        assert_eq!(
            w.log,
            ["terminate i-nodes-warm-1", "terminate i-nodes-warm-2"]
        );
        assert_eq!(w.snapshots, 1, "one validation, before the group's update");
        assert!(w.groups[0]
            .warm
            .iter()
            .all(|i| i.template_version.as_deref() == Some("2")));
        w.groups.clone()
    };
    // A second run finds nothing.
    let again = harness(
        World {
            groups,
            ..World::default()
        },
        fast(),
    )
    .await
    .unwrap();
    assert!(!again.roll.needed());
}

#[tokio::test]
async fn warm_pool_instances_go_first_then_the_joined_ones_are_drained_and_replaced() {
    let h = harness(
        World {
            groups: vec![with_warm(group("nodes", "node", 3), 3)],
            ..World::default()
        },
        fast(),
    )
    .await
    .unwrap();
    assert_eq!(h.roll.statuses()[0].need_update, 6);
    h.roll.run().await.unwrap();
    assert!(h.current());
    let log = h.log();
    let terminated: Vec<&String> = log.iter().filter(|l| l.starts_with("terminate")).collect();
    assert_eq!(terminated.len(), 6, "{log:#?}");
    assert!(
        terminated[..3].iter().all(|l| l.contains("-warm-")),
        "warm first: {log:#?}"
    );
    assert!(
        !log.iter()
            .any(|l| l.contains("warm") && !l.starts_with("terminate")),
        "warm instances are never detached, cordoned or drained: {log:#?}"
    );
}

/// `--instance` narrows the run to the chosen in-service instances: the warm pool stays.
#[tokio::test]
async fn a_chosen_instance_leaves_the_warm_pool_alone() {
    let options = RollOptions {
        instances: vec!["i-nodes-1".into()],
        ..fast()
    };
    let h = harness(
        World {
            groups: vec![with_warm(group("nodes", "node", 2), 1)],
            ..World::default()
        },
        options,
    )
    .await
    .unwrap();
    h.roll.run().await.unwrap();
    let log = h.log();
    assert!(log.iter().any(|l| l == "terminate i-nodes-1"), "{log:#?}");
    assert!(!log.iter().any(|l| l.contains("warm")), "{log:#?}");
}
