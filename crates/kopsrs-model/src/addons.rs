//! What the spec says about the addons it turns on: which of the channel's optional addons
//! run, and the Helm values the spec gives them (merged over the channel's own values by the
//! operations layer). Today: the cluster autoscaler (`spec.clusterAutoscaler`). Also the
//! termination handler, an addon the model writes itself (`GeneratedAddon`).

use std::collections::BTreeMap;

use kopsrs_api::{Cluster, InstanceGroup, Role};
use serde_json::{json, Value};

/// The channel's optional addons the spec turns on, each with the values it gives.
pub fn optional_addons(cluster: &Cluster, groups: &[InstanceGroup]) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    if let Some(values) = cluster_autoscaler(cluster, groups) {
        out.insert("cluster-autoscaler".to_string(), values);
    }
    out
}

/// The cluster autoscaler of a completed spec, as kops runs it: on the control plane (its
/// instance role carries the permissions, iam.rs), scaling each worker group kopsrs made an
/// auto scaling group for (not `autoscale: false`, not Karpenter's) between its sizes, with
/// the spec's expander and scale-down settings and the image of the Kubernetes minor.
fn cluster_autoscaler(cluster: &Cluster, groups: &[InstanceGroup]) -> Option<Value> {
    let spec = &cluster.spec;
    let cas = spec.cluster_autoscaler.as_ref()?;
    if cas.enabled != Some(true) {
        return None;
    }
    let name = &cluster.metadata.name;
    let scaled: Vec<&InstanceGroup> = groups
        .iter()
        .filter(|g| g.role() == Some(Role::Node))
        .filter(|g| g.spec.manager.as_deref() != Some("Karpenter"))
        .filter(|g| g.spec.autoscale != Some(false))
        .collect();
    let asg = |g: &InstanceGroup| format!("{}.{name}", g.metadata.name);
    let autoscaling_groups: Vec<Value> = scaled
        .iter()
        .map(|g| {
            json!({
                "name": asg(g),
                "minSize": g.spec.min_size.unwrap_or(0),
                "maxSize": g.spec.max_size.unwrap_or(0),
            })
        })
        .collect();
    let mut args = serde_json::Map::new();
    let mut arg = |key: &str, value: Value| {
        args.insert(key.to_string(), value);
    };
    arg(
        "expander",
        json!(cas.expander.as_deref().unwrap_or("random")),
    );
    for (key, value) in [
        (
            "balance-similar-node-groups",
            cas.balance_similar_node_groups,
        ),
        ("emit-per-nodegroup-metrics", cas.emit_per_nodegroup_metrics),
        (
            "aws-use-static-instance-list",
            cas.aws_use_static_instance_list,
        ),
        (
            "skip-nodes-with-local-storage",
            cas.skip_nodes_with_local_storage,
        ),
        (
            "skip-nodes-with-system-pods",
            cas.skip_nodes_with_system_pods,
        ),
        (
            "skip-nodes-with-custom-controller-pods",
            cas.skip_nodes_with_custom_controller_pods,
        ),
        (
            "ignore-daemonsets-utilization",
            cas.ignore_daemon_sets_utilization,
        ),
        (
            "cordon-node-before-terminating",
            cas.cordon_node_before_terminating,
        ),
    ] {
        if let Some(v) = value {
            arg(key, json!(v));
        }
    }
    for (key, value) in [
        (
            "scale-down-utilization-threshold",
            &cas.scale_down_utilization_threshold,
        ),
        ("new-pod-scale-up-delay", &cas.new_pod_scale_up_delay),
        (
            "scale-down-delay-after-add",
            &cas.scale_down_delay_after_add,
        ),
        ("scale-down-unneeded-time", &cas.scale_down_unneeded_time),
        ("scale-down-unready-time", &cas.scale_down_unready_time),
        ("max-node-provision-time", &cas.max_node_provision_time),
    ] {
        if let Some(v) = value {
            arg(key, json!(v));
        }
    }
    let image = cas
        .image
        .as_deref()
        .unwrap_or("registry.k8s.io/autoscaling/cluster-autoscaler:v1.34.4");
    let (repository, tag) = split_image(image);
    let mut values = json!({
        "autoscalingGroups": autoscaling_groups,
        "awsRegion": region(cluster),
        "cloudProvider": "aws",
        "extraArgs": args,
        "fullnameOverride": "cluster-autoscaler",
        "image": {"repository": repository, "tag": tag},
        "rbac": {"serviceAccount": {"name": "cluster-autoscaler"}},
        "nodeSelector": {"node-role.kubernetes.io/control-plane": ""},
        "tolerations": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}],
    });
    let mut resources = serde_json::Map::new();
    if let Some(cpu) = &cas.cpu_request {
        resources.insert("cpu".into(), serde_json::to_value(cpu).unwrap_or_default());
    }
    if let Some(memory) = &cas.memory_request {
        resources.insert(
            "memory".into(),
            serde_json::to_value(memory).unwrap_or_default(),
        );
    }
    if !resources.is_empty() {
        values["resources"] = json!({ "requests": resources });
    }
    if let Some(annotations) = &cas.pod_annotations {
        values["podAnnotations"] = json!(annotations);
    }
    if cas.expander.as_deref() == Some("priority")
        && cas.create_priority_expander_config != Some(false)
    {
        values["expanderPriorities"] = match &cas.custom_priority_expander_config {
            Some(custom) => json!(custom),
            None => {
                // kops's mapping: each group's `autoscalePriority` (0 when unset) names its
                // auto scaling group, as an anchored pattern.
                let mut by_priority: BTreeMap<i64, Vec<String>> = BTreeMap::new();
                for g in &scaled {
                    by_priority
                        .entry(g.spec.autoscale_priority.unwrap_or(0))
                        .or_default()
                        .push(format!("^{}$", asg(g).replace('.', "\\.")));
                }
                json!(by_priority
                    .into_iter()
                    .map(|(p, names)| (p.to_string(), names))
                    .collect::<BTreeMap<_, _>>())
            }
        };
    }
    Some(values)
}

/// `registry/repository:tag` as the repository and the tag (`latest` when none); a digest
/// stays with the tag (`v1.34.4@sha256:...`), which the chart writes after a `:`.
fn split_image(image: &str) -> (String, String) {
    if let Some((named, digest)) = image.split_once('@') {
        let (repository, tag) = split_image(named);
        return (repository, format!("{tag}@{digest}"));
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.rsplit_once(':') {
        Some((_, tag)) => (
            image[..image.len() - tag.len() - 1].to_string(),
            tag.to_string(),
        ),
        None => (image.to_string(), "latest".to_string()),
    }
}

/// The cluster's region, from its first zone.
fn region(cluster: &Cluster) -> String {
    cluster
        .spec
        .subnets
        .iter()
        .flatten()
        .find_map(|s| s.zone.as_deref())
        .and_then(kopsrs_api::validate::region_of_zone)
        .unwrap_or_default()
}

/// The termination handler's image registry, as kops runs it.
const NTH_IMAGE: &str = "public.ecr.aws/aws-ec2/aws-node-termination-handler";

impl crate::build::Builder<'_> {
    /// The AWS node termination handler (on unless Karpenter, which handles interruptions
    /// itself, is on, or `spec.nodeTerminationHandler.enabled: false`), as an addon kopsrs
    /// writes (no upstream manifest takes the queue's address): with the queue
    /// (`enableSQSTerminationDraining`, the default) one Deployment on the control plane
    /// reading the cluster's queue with the control plane's role; without it a DaemonSet on
    /// every node watching its own metadata service. The queue's address needs the account,
    /// which the model does not know: it is written `@ACCOUNT_ID@`, which the control plane
    /// fills in from its instance identity when it applies the manifest.
    pub(crate) fn termination_handler_addon(&self) -> Option<crate::GeneratedAddon> {
        let karpenter = self.spec.karpenter.as_ref().and_then(|k| k.enabled) == Some(true);
        let nth = self
            .spec
            .node_termination_handler
            .clone()
            .unwrap_or_default();
        if karpenter || nth.enabled == Some(false) {
            return None;
        }
        let queue = self.nth_queue_enabled();
        let flag = |v: Option<bool>, default: bool| v.unwrap_or(default).to_string();
        let mut env = vec![
            json!({"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}),
            json!({"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}),
            json!({"name": "NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}),
            json!({"name": "AWS_REGION", "value": self.region}),
            json!({"name": "ENABLE_SPOT_INTERRUPTION_DRAINING", "value": flag(nth.enable_spot_interruption_draining, true)}),
            json!({"name": "ENABLE_SCHEDULED_EVENT_DRAINING", "value": flag(nth.enable_scheduled_event_draining, true)}),
            json!({"name": "ENABLE_REBALANCE_MONITORING", "value": flag(nth.enable_rebalance_monitoring, false)}),
            json!({"name": "ENABLE_REBALANCE_DRAINING", "value": flag(nth.enable_rebalance_draining, false)}),
            json!({"name": "EXCLUDE_FROM_LOAD_BALANCERS", "value": flag(nth.exclude_from_load_balancers, true)}),
            json!({"name": "TAINT_NODE", "value": flag(nth.taint_node, false)}),
            json!({"name": "ENABLE_OUT_OF_SERVICE_TAINT", "value": flag(nth.enable_out_of_service_taint, false)}),
            json!({"name": "ENABLE_PROMETHEUS_SERVER", "value": flag(nth.prometheus_enable, false)}),
            json!({"name": "POD_TERMINATION_GRACE_PERIOD", "value": nth.pod_termination_grace_period.unwrap_or(-1).to_string()}),
            json!({"name": "ENABLE_PROBES_SERVER", "value": "true"}),
            json!({"name": "PROBES_SERVER_PORT", "value": "8080"}),
            json!({"name": "JSON_LOGGING", "value": "true"}),
        ];
        if let Some(url) = &nth.webhook_url {
            env.push(json!({"name": "WEBHOOK_URL", "value": url}));
        }
        if let Some(template) = &nth.webhook_template {
            env.push(json!({"name": "WEBHOOK_TEMPLATE", "value": template}));
        }
        if queue {
            let url = format!(
                "https://sqs.{}.{}/@ACCOUNT_ID@/{}",
                self.region,
                crate::bootstrap::dns_suffix(&self.region),
                self.queue_name()
            );
            env.extend([
                json!({"name": "ENABLE_SQS_TERMINATION_DRAINING", "value": "true"}),
                json!({"name": "QUEUE_URL", "value": url}),
                json!({"name": "DELETE_SQS_MSG_IF_NODE_NOT_FOUND", "value": flag(nth.delete_sqs_msg_if_node_not_found, false)}),
                json!({"name": "CHECK_TAG_BEFORE_DRAINING", "value": "true"}),
                json!({"name": "MANAGED_TAG", "value": nth.managed_asg_tag.as_deref().unwrap_or("aws-node-termination-handler/managed")}),
            ]);
        }
        let mut requests = serde_json::Map::new();
        requests.insert(
            "cpu".into(),
            nth.cpu_request.as_ref().map_or(json!("50m"), |v| json!(v)),
        );
        requests.insert(
            "memory".into(),
            nth.memory_request
                .as_ref()
                .map_or(json!("64Mi"), |v| json!(v)),
        );
        let mut resources = json!({ "requests": requests });
        if let Some(limit) = &nth.memory_limit {
            resources["limits"] = json!({ "memory": limit });
        }
        let name = "aws-node-termination-handler";
        let labels =
            json!({"app.kubernetes.io/name": name, "app.kubernetes.io/managed-by": "kopsrs"});
        let selector = json!({"app.kubernetes.io/name": name});
        let container = json!({
            "name": name,
            "image": format!("{NTH_IMAGE}:{}", nth.version.as_deref().unwrap_or("v1.25.5")),
            "env": env,
            "resources": resources,
            "ports": [{"name": "liveness-probe", "containerPort": 8080, "protocol": "TCP"}],
            "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "initialDelaySeconds": 5, "periodSeconds": 5},
            "securityContext": {
                "allowPrivilegeEscalation": false,
                "readOnlyRootFilesystem": true,
                "runAsNonRoot": true,
                "runAsUser": 1000,
                "runAsGroup": 1000,
            },
        });
        let mut pod = json!({
            "serviceAccountName": name,
            "priorityClassName": "system-node-critical",
            "containers": [container],
            "nodeSelector": {"kubernetes.io/os": "linux"},
        });
        let workload = if queue {
            // One reader of the queue, on the control plane, with its instance role.
            pod["nodeSelector"]["node-role.kubernetes.io/control-plane"] = json!("");
            pod["tolerations"] = json!([{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}]);
            json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": name, "namespace": "kube-system", "labels": labels},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": selector},
                    "template": {"metadata": {"labels": labels}, "spec": pod},
                },
            })
        } else {
            // Each node watches its own metadata service: host network, any taint.
            pod["hostNetwork"] = json!(true);
            pod["dnsPolicy"] = json!("ClusterFirstWithHostNet");
            pod["tolerations"] = json!([{"operator": "Exists"}]);
            json!({
                "apiVersion": "apps/v1", "kind": "DaemonSet",
                "metadata": {"name": name, "namespace": "kube-system", "labels": labels},
                "spec": {
                    "selector": {"matchLabels": selector},
                    "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%"}},
                    "template": {"metadata": {"labels": labels}, "spec": pod},
                },
            })
        };
        let objects = vec![
            json!({
                "apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": name, "namespace": "kube-system", "labels": labels},
            }),
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": name, "labels": labels},
                "rules": [
                    {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "patch", "update"]},
                    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
                    {"apiGroups": [""], "resources": ["pods/eviction"], "verbs": ["create"]},
                    {"apiGroups": ["apps"], "resources": ["daemonsets"], "verbs": ["get"]},
                    {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
                ],
            }),
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": name, "labels": labels},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
                "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": "kube-system"}],
            }),
            workload,
        ];
        Some(crate::GeneratedAddon {
            name: "node-termination-handler",
            // kops's folder for this addon.
            key: "addons/node-termination-handler.aws/manifest.yaml",
            objects,
            files: BTreeMap::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_split_at_the_tag_not_the_port() {
        assert_eq!(
            split_image("registry.k8s.io/autoscaling/cluster-autoscaler:v1.34.4"),
            (
                "registry.k8s.io/autoscaling/cluster-autoscaler".into(),
                "v1.34.4".into()
            )
        );
        assert_eq!(
            split_image("r.example.com/ca:v1@sha256:ab"),
            ("r.example.com/ca".into(), "v1@sha256:ab".into())
        );
        assert_eq!(
            split_image("mirror:5000/cluster-autoscaler"),
            ("mirror:5000/cluster-autoscaler".into(), "latest".into())
        );
    }
}
