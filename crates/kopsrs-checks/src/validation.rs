//! `validate cluster`'s checks as a pure function: the cluster's instance groups (with their
//! auto scaling groups' instances), its Nodes and the pods that matter in, kops's failures
//! (kind, name, message, instance group) and node rows out. The command reads AWS and
//! Kubernetes once per pass and calls [`validate`]; nothing here does I/O.

use kopsrs_api::Role;

/// An instance group and the instances its auto scaling group reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInstances {
    /// The instance group's name.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// The auto scaling group's desired capacity.
    pub target: u32,
    /// Its instances: (instance ID, detached).
    pub instances: Vec<(String, bool)>,
}

/// A Node as validation reads it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    /// The Node's name.
    pub name: String,
    /// The EC2 instance ID from `spec.providerID` (`aws:///zone/i-...`).
    pub instance_id: Option<String>,
    /// `control-plane`, `node`, `api-server` (from the role labels).
    pub role: String,
    /// `topology.kubernetes.io/zone`.
    pub zone: String,
    /// The `Hostname` address.
    pub hostname: String,
    /// The Ready condition is true.
    pub ready: bool,
    /// The NetworkUnavailable condition is true.
    pub network_unavailable: bool,
    /// The Karpenter NodePool that made it (label `karpenter.sh/nodepool`): the instance
    /// group of that name when Karpenter manages it (kopsrs names each pool after its group).
    #[serde(skip)]
    pub karpenter_pool: Option<String>,
}

/// A pod of kube-system or with a critical priority class.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Pod {
    /// `namespace/name`.
    pub name: String,
    /// The Node it runs on.
    pub node: Option<String>,
    /// `spec.priorityClassName`.
    pub priority_class: Option<String>,
    /// The `component` label (static control-plane pods carry it).
    pub component: Option<String>,
    /// `status.phase`.
    pub phase: String,
    /// Containers that are not ready.
    pub unready_containers: Vec<String>,
}

/// One validation failure, as kops's `-o json` names its fields.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Failure {
    /// `InstanceGroup`, `Machine`, `Node` or `Pod`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// What failed: a group, an instance ID, a Node or a pod.
    pub name: String,
    /// The sentence kops prints.
    pub message: String,
    /// The instance group the failure concerns, when one does.
    #[serde(rename = "instanceGroup", skip_serializing_if = "Option::is_none")]
    pub instance_group: Option<String>,
}

/// A row of NODE STATUS.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NodeRow {
    /// The Node's name.
    pub name: String,
    /// Its zone.
    pub zone: String,
    /// Its role.
    pub role: String,
    /// Its hostname.
    pub hostname: String,
    /// `True` when Ready, else `False`.
    pub status: &'static str,
}

/// The result of one pass.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Validation {
    /// Everything that is not as it should be; empty when the cluster is valid.
    pub failures: Vec<Failure>,
    /// The Nodes that belong to the cluster's instances.
    pub nodes: Vec<NodeRow>,
}

const CRITICAL: [&str; 2] = ["system-cluster-critical", "system-node-critical"];
const CONTROL_PLANE_PODS: [&str; 3] = [
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
];

/// One validation pass. Up to `max_unready_nodes` worker Nodes may be not Ready without a
/// failure (control planes never).
pub fn validate(
    groups: &[GroupInstances],
    nodes: &[Node],
    pods: &[Pod],
    max_unready_nodes: usize,
) -> Validation {
    let mut out = Validation::default();
    let by_instance: std::collections::BTreeMap<&str, &Node> = nodes
        .iter()
        .filter_map(|n| Some((n.instance_id.as_deref()?, n)))
        .collect();
    let mut unready_workers = Vec::new();
    for group in groups {
        let live = group
            .instances
            .iter()
            .filter(|(_, detached)| !detached)
            .count();
        if live < group.target as usize {
            out.failures.push(Failure {
                kind: "InstanceGroup",
                name: group.name.clone(),
                message: format!(
                    "InstanceGroup {:?} did not have enough nodes {live} vs {}",
                    group.name, group.target
                ),
                instance_group: Some(group.name.clone()),
            });
        }
        for (id, detached) in &group.instances {
            let Some(node) = by_instance.get(id.as_str()) else {
                if group.role != Role::Bastion && !detached {
                    out.failures.push(Failure {
                        kind: "Machine",
                        name: id.clone(),
                        message: format!("machine {id:?} has not yet joined cluster"),
                        instance_group: Some(group.name.clone()),
                    });
                }
                continue;
            };
            let ready = node.ready && !node.network_unavailable;
            out.nodes.push(NodeRow {
                name: node.name.clone(),
                zone: node.zone.clone(),
                role: node.role.clone(),
                hostname: node.hostname.clone(),
                status: if ready { "True" } else { "False" },
            });
            let failure = Failure {
                kind: "Node",
                name: node.name.clone(),
                message: format!("node {:?} of role {:?} is not ready", node.name, node.role),
                instance_group: Some(group.name.clone()),
            };
            if !ready {
                if group.role == Role::ControlPlane {
                    out.failures.push(failure);
                } else {
                    unready_workers.push(failure);
                }
                continue;
            }
            if group.role == Role::ControlPlane {
                for component in CONTROL_PLANE_PODS {
                    let running = pods.iter().any(|p| {
                        p.node.as_deref() == Some(node.name.as_str())
                            && p.component.as_deref() == Some(component)
                    });
                    if !running {
                        out.failures.push(Failure {
                            kind: "Node",
                            name: node.name.clone(),
                            message: format!(
                                "control-plane node {:?} is missing {component} pod",
                                node.name
                            ),
                            instance_group: Some(group.name.clone()),
                        });
                    }
                }
            }
        }
    }
    if unready_workers.len() > max_unready_nodes {
        out.failures.extend(unready_workers);
    }
    for pod in pods {
        let Some(class) = pod
            .priority_class
            .as_deref()
            .filter(|c| CRITICAL.contains(c))
        else {
            continue;
        };
        let message = match pod.phase.as_str() {
            "Succeeded" => continue,
            "Pending" | "Unknown" => format!("{class} pod {:?} is pending", pod.name),
            _ if !pod.unready_containers.is_empty() => format!(
                "{class} pod {:?} is not ready ({})",
                pod.name,
                pod.unready_containers.join(",")
            ),
            _ => continue,
        };
        out.failures.push(Failure {
            kind: "Pod",
            name: pod.name.clone(),
            message,
            instance_group: None,
        });
    }
    out.nodes.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

#[cfg(test)]
#[path = "validation_tests.rs"]
mod tests;
