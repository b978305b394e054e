//! Instance groups Karpenter manages (`spec.manager: Karpenter`): no launch template or auto
//! scaling group of kopsrs's; instead an `EC2NodeClass` and a `NodePool` per group, which the
//! control plane applies with the addons, and the group's bootstrap script, which the node
//! class's user-data reads from the state store (EC2NodeClass user-data is not compressed,
//! and the script is over EC2's 16 KB). The objects carry what kops puts in them (image,
//! instance types and capacity type, subnets and security groups by tag or ID, the instance
//! profile, tags, labels, taints, the kubelet's reservations, the group's sizes).

use std::collections::BTreeMap;

use kopsrs_api::{ClusterSubnetSpec, InstanceGroup, Role};
use serde_json::{json, Value as Json};
use sha2::{Digest, Sha256};

use crate::build::{err, Builder};
use crate::{ModelError, Value};

impl crate::build::KarpenterGroups {
    /// The addon that carries them (none without Karpenter groups).
    pub(crate) fn addon(self) -> Option<crate::GeneratedAddon> {
        (!self.objects.is_empty()).then(|| crate::GeneratedAddon {
            name: "karpenter-instancegroups",
            // Beside kops's own Karpenter addon folder.
            key: "addons/karpenter.sh/instancegroups.yaml",
            objects: self.objects,
            files: self.scripts,
        })
    }
}

/// The API groups of Karpenter's AWS provider and of Karpenter itself.
const NODE_CLASS_GROUP: &str = "karpenter.k8s.aws";
const NODE_POOL_GROUP: &str = "karpenter.sh";

/// Tags Karpenter sets itself and refuses in a node class.
fn reserved_tag(key: &str) -> bool {
    key.starts_with("kubernetes.io/cluster")
        || matches!(
            key,
            "eks:eks-cluster-name"
                | "karpenter.sh/nodepool"
                | "karpenter.sh/nodeclaim"
                | "karpenter.k8s.aws/ec2nodeclass"
        )
}

/// Labels a NodePool's template may not carry: Karpenter's own (the capacity type is allowed:
/// it narrows the pool), and, as the NodePool's validation rules say, those of the
/// `kubernetes.io` and `k8s.io` domains other than `node.kubernetes.io`,
/// `node-restriction.kubernetes.io` and `kops.k8s.io` (so not the node-role labels, which the
/// kubelet may not set either).
fn reserved_label(key: &str) -> bool {
    if key == "karpenter.sh/capacity-type" {
        return false;
    }
    let Some((domain, _)) = key.split_once('/') else {
        return false;
    };
    let within = |d: &str| domain == d || domain.ends_with(&format!(".{d}"));
    if within("karpenter.sh") || within("karpenter.k8s.aws") {
        return true;
    }
    if within("kubernetes.io") {
        return !within("node.kubernetes.io") && !within("node-restriction.kubernetes.io");
    }
    within("k8s.io") && domain != "kops.k8s.io"
}

impl Builder<'_> {
    /// Whether `spec.karpenter.featureGates` turns `StaticCapacity` on.
    fn karpenter_static_capacity(&self) -> bool {
        let gates = self
            .spec
            .karpenter
            .as_ref()
            .and_then(|k| k.feature_gates.as_deref());
        gates.unwrap_or_default().split(',').any(|gate| {
            gate.split_once('=')
                .is_some_and(|(k, v)| k.trim() == "StaticCapacity" && v.trim() == "true")
        })
    }

    /// The node class, node pool and bootstrap script of a Karpenter-managed group.
    pub(crate) fn karpenter_group(
        &mut self,
        group: &InstanceGroup,
        subnets: &[&ClusterSubnetSpec],
        tags: &BTreeMap<String, Value>,
    ) -> Result<(), ModelError> {
        let name = &group.metadata.name;
        let spec = &group.spec;
        let field = |f: &str| format!("InstanceGroup {name}: {f}");
        let script = self.user_data(group)?;
        let sha256: String = Sha256::digest(script.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let key = format!("igconfig/node/{name}/bootstrap-{}.sh", &sha256[..16]);
        let user_data = self.node_bootstrap(group)?.render_fetcher(&key, &sha256);
        self.karpenter.scripts.insert(key, script);

        let image = spec.image.as_deref().unwrap_or_default();
        let ami = ami_selector(image)
            .map_err(|message| err(field("spec.image"), format!("{image:?} {message}")))?;
        let first = subnets.first().ok_or_else(|| {
            err(
                field("spec.subnets"),
                "no subnets; Karpenter finds them by the group's tag",
            )
        })?;
        let public = matches!(Self::subnet_type(first), "Public" | "Utility");
        let node_tags: BTreeMap<&str, &str> = tags
            .iter()
            .filter(|(k, _)| !reserved_tag(k))
            .filter_map(|(k, v)| Some((k.as_str(), v.as_str()?)))
            .collect();
        let mut security_groups = vec![match &spec.security_group_override {
            Some(id) => json!({"id": id}),
            None => json!({"tags": {"KubernetesCluster": self.name, "Name": self.scoped("nodes")}}),
        }];
        for id in spec.additional_security_groups.iter().flatten() {
            security_groups.push(json!({"id": id}));
        }
        let profile = match spec.iam.as_ref().and_then(|i| i.profile.as_deref()) {
            Some(p) => p.rsplit('/').next().unwrap_or(p).to_string(),
            None => self.role_name(Role::Node),
        };
        let mut class = json!({
            "apiVersion": format!("{NODE_CLASS_GROUP}/v1"),
            "kind": "EC2NodeClass",
            "metadata": {"name": name},
            "spec": {
                "amiFamily": "Custom",
                "amiSelectorTerms": [ami],
                "associatePublicIPAddress": public && spec.associate_public_ip.unwrap_or(true),
                "instanceProfile": profile,
                "securityGroupSelectorTerms": security_groups,
                "subnetSelectorTerms": [{"tags": {
                    "KubernetesCluster": self.name,
                    format!("kops.k8s.io/instance-group/{name}"): "true",
                }}],
                "tags": node_tags,
                "userData": user_data,
            },
        });
        class["spec"]["blockDeviceMappings"] = json!([root_volume(group)]);
        if let Some(kubelet) = &spec.kubelet {
            let mut k = serde_json::Map::new();
            if let Some(n) = kubelet.max_pods {
                k.insert("maxPods".into(), json!(n));
            }
            for (key, value) in [
                ("systemReserved", &kubelet.system_reserved),
                ("kubeReserved", &kubelet.kube_reserved),
            ] {
                if let Some(v) = value.as_ref().filter(|v| !v.is_empty()) {
                    k.insert(key.into(), json!(v));
                }
            }
            if !k.is_empty() {
                class["spec"]["kubelet"] = Json::Object(k);
            }
        }

        let template = self.node_template(group)?;
        let mut labels: BTreeMap<String, String> = template
            .labels
            .into_iter()
            .filter(|(k, _)| !reserved_label(k))
            .collect();
        labels.insert("kops.k8s.io/instancegroup".into(), name.clone());
        let taints: Vec<Json> = template
            .taints
            .iter()
            .map(|t| match &t.value {
                Some(v) => json!({"key": t.key, "value": v, "effect": t.effect}),
                None => json!({"key": t.key, "effect": t.effect}),
            })
            .collect();
        let mut requirements = vec![json!({
            "key": "kubernetes.io/os", "operator": "In", "values": ["linux"],
        })];
        let types = instance_types(group);
        if !types.is_empty() {
            requirements.push(json!({
                "key": "node.kubernetes.io/instance-type", "operator": "In", "values": types,
            }));
        }
        requirements.push(json!({
            "key": "karpenter.sh/capacity-type", "operator": "In", "values": capacity_types(group),
        }));
        let mut claim = json!({
            "spec": {
                "nodeClassRef": {"group": NODE_CLASS_GROUP, "kind": "EC2NodeClass", "name": name},
                "requirements": requirements,
            },
        });
        if !labels.is_empty() {
            claim["metadata"] = json!({ "labels": labels });
        }
        if !taints.is_empty() {
            claim["spec"]["taints"] = Json::Array(taints);
        }
        let mut pool = json!({
            "apiVersion": format!("{NODE_POOL_GROUP}/v1"),
            "kind": "NodePool",
            "metadata": {"name": name},
            "spec": {"template": claim},
        });
        // kops's mapping of the group's sizes: a static pool of minSize nodes, at most
        // maxSize. `spec.replicas` exists only in the NodePool of Karpenter releases with
        // static capacity, behind its StaticCapacity gate (a v1 NodePool without it refuses
        // the field): written only when the cluster turns that gate on.
        if let Some(min) = spec
            .min_size
            .filter(|m| *m > 0 && self.karpenter_static_capacity())
        {
            pool["spec"]["replicas"] = json!(min);
        }
        if let Some(max) = spec.max_size {
            pool["spec"]["limits"] = json!({"nodes": max.to_string()});
        }
        self.karpenter.objects.push(class);
        self.karpenter.objects.push(pool);
        Ok(())
    }
}

/// The root volume as the group's launch template would have it (128 GB encrypted gp3 by
/// default), for a custom image, which names no root device of its own to Karpenter:
/// `/dev/sda1`, Ubuntu's (the image kopsrs's bootstrap runs on), else `/dev/xvda`.
fn root_volume(group: &InstanceGroup) -> Json {
    let spec = &group.spec;
    let volume_type = spec
        .root_volume_type
        .clone()
        .unwrap_or_else(|| "gp3".into());
    let mut ebs = json!({
        "deleteOnTermination": spec.root_volume_delete_on_termination.unwrap_or(true),
        "encrypted": spec.root_volume_encryption.unwrap_or(true),
        "volumeSize": format!("{}Gi", spec.root_volume_size.unwrap_or(128)),
        "volumeType": volume_type,
    });
    if matches!(volume_type.as_str(), "gp3" | "io1" | "io2") {
        ebs["iops"] = json!(spec.root_volume_iops.unwrap_or(3000));
    }
    if volume_type == "gp3" {
        ebs["throughput"] = json!(spec.root_volume_throughput.unwrap_or(125));
    }
    if let Some(key) = &spec.root_volume_encryption_key {
        ebs["kmsKeyID"] = json!(key);
    }
    let image = spec.image.as_deref().unwrap_or_default();
    let device = match image.contains("ubuntu") || image.starts_with("099720109477/") {
        true => "/dev/sda1",
        false => "/dev/xvda",
    };
    json!({"deviceName": device, "rootVolume": true, "ebs": ebs})
}

/// The node class's image term: an AMI ID, an SSM parameter (`ssm:<name>`), a name the
/// account owns, or `<owner>/<name>` with kops's owner aliases (the launch templates' rule).
fn ami_selector(image: &str) -> Result<Json, &'static str> {
    let image = image.trim();
    if image.is_empty() {
        return Err("is empty: give ami-..., ssm:<parameter>, <name> or <owner>/<name>");
    }
    if image.contains("://") {
        return Err("is a URL: give ami-..., ssm:<parameter>, <name> or <owner>/<name>");
    }
    if image.starts_with("ami-") {
        return Ok(json!({"id": image}));
    }
    if let Some(parameter) = image.strip_prefix("ssm:") {
        if parameter.is_empty() {
            return Err("names no SSM parameter after ssm:");
        }
        return Ok(json!({"ssmParameter": parameter}));
    }
    let (owner, name) = crate::nodes::image_owner_and_name(image);
    Ok(json!({"name": name, "owner": owner}))
}

/// The instance types a pool may launch: the mixed policy's and the machine type(s), sorted,
/// each once.
fn instance_types(group: &InstanceGroup) -> Vec<String> {
    let spec = &group.spec;
    let mut types: Vec<String> = spec
        .mixed_instances_policy
        .as_ref()
        .and_then(|m| m.instances.clone())
        .unwrap_or_default()
        .into_iter()
        .chain(
            spec.machine_type
                .as_deref()
                .unwrap_or_default()
                .split(',')
                .map(str::to_string),
        )
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect();
    types.sort();
    types.dedup();
    types
}

/// Spot when the group bids (`maxPrice`); both when a mixed policy keeps less than all of
/// its capacity above the base on demand; else on-demand.
fn capacity_types(group: &InstanceGroup) -> Vec<&'static str> {
    let spec = &group.spec;
    if spec.max_price.is_some() || spec.spot_duration_in_minutes.is_some() {
        return vec!["spot"];
    }
    let above_base = spec
        .mixed_instances_policy
        .as_ref()
        .and_then(|m| m.on_demand_above_base);
    if above_base.is_some_and(|p| p < 100) {
        return vec!["on-demand", "spot"];
    }
    vec!["on-demand"]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_terms_follow_the_launch_templates_rule() {
        assert_eq!(ami_selector("ami-123").unwrap(), json!({"id": "ami-123"}));
        assert_eq!(
            ami_selector("ssm:/aws/service/canonical/ubuntu").unwrap(),
            json!({"ssmParameter": "/aws/service/canonical/ubuntu"})
        );
        assert_eq!(
            ami_selector("my-image").unwrap(),
            json!({"name": "my-image", "owner": "self"})
        );
        assert_eq!(
            ami_selector("123456789012/team/image").unwrap(),
            json!({"name": "team/image", "owner": "123456789012"})
        );
        assert!(ami_selector("https://example.com/x").is_err());
        assert!(ami_selector("ssm:").is_err());
        assert!(ami_selector(" ").is_err());
    }

    #[test]
    fn reserved_keys_are_left_to_karpenter() {
        assert!(reserved_tag("kubernetes.io/cluster/k.example.com"));
        assert!(!reserved_tag("KubernetesCluster"));
        assert!(reserved_label("karpenter.sh/nodepool"));
        assert!(reserved_label("node.karpenter.k8s.aws/x"));
        assert!(!reserved_label("karpenter.sh/capacity-type"));
        assert!(reserved_label("kubernetes.io/hostname"));
        assert!(reserved_label("node-role.kubernetes.io/node"));
        assert!(!reserved_label(
            "node.kubernetes.io/exclude-from-external-load-balancers"
        ));
        assert!(!reserved_label("node-restriction.kubernetes.io/team"));
        assert!(reserved_label("k8s.io/x"));
        assert!(!reserved_label("kops.k8s.io/instancegroup"));
        assert!(!reserved_label("example.com/team"));
        assert!(!reserved_label("plain"));
    }
}
