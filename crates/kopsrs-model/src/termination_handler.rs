//! The AWS node termination handler, as kops runs it: an addon kopsrs writes itself
//! (`GeneratedAddon`), because no upstream manifest takes the address of the cluster's queue.

use std::collections::BTreeMap;

use serde_json::json;

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
            // Probes only for the one queue reader: a DaemonSet's, on every node's host
            // network, would hold the port on every node.
            json!({"name": "ENABLE_PROBES_SERVER", "value": queue.to_string()}),
            json!({"name": "JSON_LOGGING", "value": "true"}),
        ];
        if queue {
            env.push(json!({"name": "PROBES_SERVER_PORT", "value": "8080"}));
        }
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
                json!({"name": "MANAGED_TAG", "value": self.nth_managed_tag()}),
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
        let mut container = json!({
            "name": name,
            "image": format!("{NTH_IMAGE}:{}", nth.version.as_deref().unwrap_or("v1.25.5")),
            "env": env,
            "resources": resources,
            "securityContext": {
                "allowPrivilegeEscalation": false,
                "readOnlyRootFilesystem": true,
                "runAsNonRoot": true,
                "runAsUser": 1000,
                "runAsGroup": 1000,
            },
        });
        if queue {
            container["ports"] =
                json!([{"name": "liveness-probe", "containerPort": 8080, "protocol": "TCP"}]);
            container["livenessProbe"] = json!({"httpGet": {"path": "/healthz", "port": 8080}, "initialDelaySeconds": 5, "periodSeconds": 5});
        }
        let mut pod = json!({
            "serviceAccountName": name,
            // The instance role's credentials come from the metadata service, which a pod
            // reaches only from the host's network where launch templates allow one hop.
            "hostNetwork": true,
            "dnsPolicy": "ClusterFirstWithHostNet",
            "priorityClassName": "system-node-critical",
            "containers": [container],
            "nodeSelector": {"kubernetes.io/os": "linux"},
        });
        // With service-account roles for addons (IRSA), the queue reader uses its own role
        // (irsa.rs makes it) through a projected token for IAM's audience, not the control
        // plane's: the role's ARN names the account, which the control plane fills in.
        if queue && self.service_account_roles_for_addons() {
            let role = self.service_account_role_pod(name);
            let container = &mut pod["containers"][0];
            let env = container["env"].as_array_mut().expect("env is a list");
            for (name, value) in role.env {
                env.push(json!({"name": name, "value": value}));
            }
            container["volumeMounts"] = json!([role.mount]);
            pod["volumes"] = json!([role.volume]);
        }
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
            // Each node watches its own metadata service, whatever its taints.
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
