//! The labels and taints of an instance group's nodes: one list, read both by the cluster
//! autoscaler's node-template tags (on the launch template and the auto scaling group) and by
//! the node bootstrap (the kubelet's labels and taints), so the template the autoscaler scales
//! from always matches the nodes it gets.

use std::collections::BTreeMap;

use kopsrs_api::{InstanceGroup, Role};
use kopsrs_bootstrap::kubeadm::Taint;

use crate::build::{err, Builder};
use crate::ModelError;

/// An instance group's node labels and taints, as the kubelet registers them.
pub(crate) struct NodeTemplate {
    /// Node labels, by key.
    pub labels: BTreeMap<String, String>,
    /// Node taints.
    pub taints: Vec<Taint>,
}

/// EC2's instance families with NVIDIA GPUs. kops asks EC2 (`DescribeInstanceTypes`) while
/// rendering; the model does no I/O, so it keeps the list (AMD `g4ad`, Inferentia,
/// Trainium and Gaudi families are not NVIDIA and are left out on purpose).
const NVIDIA_FAMILIES: &[&str] = &[
    "g3",
    "g3s",
    "g4dn",
    "g5",
    "g5g",
    "g6",
    "g6e",
    "g6f",
    "gr6",
    "gr6f",
    "p2",
    "p3",
    "p3dn",
    "p4d",
    "p4de",
    "p5",
    "p5e",
    "p5en",
    "p6-b200",
    "p6-b300",
    "p6e-gb200",
];

pub(crate) fn nvidia_gpu(machine_type: &str) -> bool {
    let family = machine_type.split('.').next().unwrap_or_default();
    NVIDIA_FAMILIES.contains(&family)
}

/// A taint as kops writes it (`kopsrs_api::validate::parse_taint`), in kubeadm's type.
fn parse_taint(text: &str) -> Option<Taint> {
    let (key, value, effect) = kopsrs_api::validate::parse_taint(text)?;
    Some(Taint {
        key: key.into(),
        value: value.map(str::to_string),
        effect: effect.into(),
    })
}

impl Builder<'_> {
    fn nvidia_enabled(&self, group: &InstanceGroup) -> bool {
        let enabled = |c: Option<&kopsrs_api::Containerd>| {
            c.and_then(|c| c.nvidia_gpu.as_ref())
                .and_then(|n| n.enabled)
        };
        enabled(group.spec.containerd.as_ref())
            .or_else(|| enabled(self.spec.containerd.as_ref()))
            .unwrap_or(false)
    }

    /// The group's labels (its own `nodeLabels`, the role's, `kops.k8s.io/gpu` on NVIDIA
    /// instance types when `nvidiaGPU` is enabled) and taints (its own, `nvidia.com/gpu` on
    /// those GPU nodes). Bastions carry none.
    pub(crate) fn node_template(&self, group: &InstanceGroup) -> Result<NodeTemplate, ModelError> {
        let mut labels = group.spec.node_labels.clone().unwrap_or_default();
        let mut taints = Vec::new();
        for (i, text) in group.spec.taints.iter().flatten().enumerate() {
            let taint = parse_taint(text).ok_or_else(|| {
                err(
                    format!("InstanceGroup {}: spec.taints[{i}]", group.metadata.name),
                    format!(
                        "{text:?} is not a taint; write key=value:Effect or key:Effect \
                         (Effect: NoSchedule, PreferNoSchedule or NoExecute)"
                    ),
                )
            })?;
            taints.push(taint);
        }
        let role_label = |name: &str| (format!("node-role.kubernetes.io/{name}"), String::new());
        match group.role() {
            Some(Role::ControlPlane) => {
                labels.extend([
                    role_label("control-plane"),
                    (
                        "node.kubernetes.io/exclude-from-external-load-balancers".into(),
                        String::new(),
                    ),
                ]);
                // Control planes run an API server too: with dedicated API-server groups,
                // workloads selecting API-server nodes find them as well (as kops labels them).
                if self
                    .groups
                    .iter()
                    .any(|g| g.role() == Some(Role::ApiServer))
                {
                    labels.extend([role_label("api-server")]);
                }
            }
            Some(Role::Node) => labels.extend([role_label("node")]),
            Some(Role::ApiServer) => labels.extend([role_label("api-server")]),
            Some(Role::Bastion) | None => {
                return Ok(NodeTemplate {
                    labels: BTreeMap::new(),
                    taints: Vec::new(),
                })
            }
        }
        let machine_type = group.spec.machine_type.as_deref().unwrap_or_default();
        if self.nvidia_enabled(group) && nvidia_gpu(machine_type) {
            labels.insert("kops.k8s.io/gpu".into(), "1".into());
            if !taints.iter().any(|t| t.key == "nvidia.com/gpu") {
                taints.push(Taint {
                    key: "nvidia.com/gpu".into(),
                    value: None,
                    effect: "NoSchedule".into(),
                });
            }
        }
        Ok(NodeTemplate { labels, taints })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nvidia_families_are_told_apart_from_other_accelerators() {
        for gpu in [
            "g4dn.xlarge",
            "p5.48xlarge",
            "g5g.2xlarge",
            "p6-b200.48xlarge",
        ] {
            assert!(nvidia_gpu(gpu), "{gpu}");
        }
        for other in [
            "g4ad.xlarge",
            "inf2.xlarge",
            "trn1.2xlarge",
            "m5.large",
            "dl1.24xlarge",
            "",
        ] {
            assert!(!nvidia_gpu(other), "{other}");
        }
    }

    #[test]
    fn taints_parse_as_kops_writes_them() {
        let t = parse_taint("dedicated=gpu:NoSchedule").unwrap();
        assert_eq!(
            (t.key.as_str(), t.value.as_deref(), t.effect.as_str()),
            ("dedicated", Some("gpu"), "NoSchedule")
        );
        let t = parse_taint("spot:PreferNoSchedule").unwrap();
        assert_eq!(
            (t.key.as_str(), t.value, t.effect.as_str()),
            ("spot", None, "PreferNoSchedule")
        );
        assert!(parse_taint("dedicated=gpu").is_none());
        assert!(parse_taint("dedicated:NoScheduled").is_none());
        assert!(parse_taint(":NoSchedule").is_none());
    }
}
