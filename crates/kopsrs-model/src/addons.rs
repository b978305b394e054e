//! What the spec says about the addons it turns on: which of the channel's optional addons
//! run, and the Helm values the spec gives them (merged over the channel's own values by the
//! operations layer): the cluster autoscaler (`spec.clusterAutoscaler`), external-dns
//! (`spec.externalDns.provider: external-dns`), the AWS Load Balancer Controller
//! (`spec.awsLoadBalancerController`) and cert-manager (`spec.certManager`).

use std::collections::BTreeMap;

use kopsrs_api::{InstanceGroup, Role};
use serde_json::{json, Value};

impl crate::build::Builder<'_> {
    /// The channel's optional addons the spec turns on, each with the values it gives.
    pub(crate) fn optional_addons(&self) -> BTreeMap<String, Value> {
        let mut out = BTreeMap::new();
        if let Some(values) = self.cluster_autoscaler() {
            out.insert("cluster-autoscaler".to_string(), values);
        }
        if let Some(values) = self.external_dns() {
            out.insert("external-dns".to_string(), values);
        }
        if let Some(values) = self.load_balancer_controller() {
            out.insert("aws-load-balancer-controller".to_string(), values);
        }
        if let Some(values) = self.cert_manager() {
            out.insert("cert-manager".to_string(), values);
        }
        out
    }

    /// Whether kopsrs installs cert-manager: `spec.certManager.enabled`, unless `managed:
    /// false` says the user runs their own.
    pub(crate) fn cert_manager_enabled(&self) -> bool {
        let cm = self.spec.cert_manager.as_ref();
        cm.and_then(|c| c.enabled) == Some(true) && cm.and_then(|c| c.managed) != Some(false)
    }

    /// cert-manager with its CRDs, its three deployments on the control plane (whose role
    /// may answer DNS-01 challenges in `hostedZoneIDs`), the spec's feature gates, image and
    /// recursive nameservers.
    fn cert_manager(&self) -> Option<Value> {
        if !self.cert_manager_enabled() {
            return None;
        }
        let cm = self.spec.cert_manager.clone().unwrap_or_default();
        let selector = json!({"node-role.kubernetes.io/control-plane": ""});
        let tolerations = json!([{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}]);
        let mut values = json!({
            "crds": {"enabled": true},
            // A Job that waits for the API: nothing waits for it when applied from a template.
            "startupapicheck": {"enabled": false},
            "nodeSelector": selector,
            "tolerations": tolerations,
            "webhook": {"nodeSelector": selector, "tolerations": tolerations},
            "cainjector": {"nodeSelector": selector, "tolerations": tolerations},
        });
        if let Some(image) = &cm.image {
            let (repository, tag) = split_image(image);
            values["image"] = json!({"repository": repository, "tag": tag});
        }
        if let Some(gates) = cm.feature_gates.as_ref().filter(|g| !g.is_empty()) {
            let text: Vec<String> = gates.iter().map(|(k, v)| format!("{k}={v}")).collect();
            values["featureGates"] = json!(text.join(","));
        }
        if let Some(servers) = cm.nameservers.as_ref().filter(|n| !n.is_empty()) {
            values["extraArgs"] = json!([
                "--dns01-recursive-nameservers-only",
                format!("--dns01-recursive-nameservers={}", servers.join(",")),
            ]);
        }
        Some(values)
    }

    /// Whether `spec.awsLoadBalancerController.enabled`.
    pub(crate) fn load_balancer_controller_enabled(&self) -> bool {
        self.spec
            .aws_load_balancer_controller
            .as_ref()
            .and_then(|c| c.enabled)
            == Some(true)
    }

    /// The AWS Load Balancer Controller for the cluster's Services of type LoadBalancer and
    /// Ingresses, on the control plane with its instance role (also with IRSA: the chart
    /// takes its role only through the pod identity webhook, which kopsrs does not run yet),
    /// with the spec's WAF and Shield settings; it finds the VPC from the metadata service.
    fn load_balancer_controller(&self) -> Option<Value> {
        if !self.load_balancer_controller_enabled() {
            return None;
        }
        let lbc = self
            .spec
            .aws_load_balancer_controller
            .clone()
            .unwrap_or_default();
        let mut values = json!({
            "clusterName": self.name,
            "region": self.region,
            "serviceAccount": {"name": "aws-load-balancer-controller"},
            "nodeSelector": {"node-role.kubernetes.io/control-plane": ""},
            "tolerations": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}],
            "enableShield": lbc.enable_shield.unwrap_or(false),
            "enableWaf": lbc.enable_waf.unwrap_or(false),
            "enableWafv2": lbc.enable_wa_fv2.unwrap_or(false),
        });
        let mut requests = serde_json::Map::new();
        let mut limits = serde_json::Map::new();
        if let Some(v) = &lbc.cpu_request {
            requests.insert("cpu".into(), json!(v));
        }
        if let Some(v) = &lbc.memory_request {
            requests.insert("memory".into(), json!(v));
        }
        if let Some(v) = &lbc.cpu_limit {
            limits.insert("cpu".into(), json!(v));
        }
        if let Some(v) = &lbc.memory_limit {
            limits.insert("memory".into(), json!(v));
        }
        if !requests.is_empty() || !limits.is_empty() {
            values["resources"] = json!({"requests": requests, "limits": limits});
        }
        Some(values)
    }

    /// Whether `spec.externalDns.provider` is `external-dns` (kops's default is its own
    /// dns-controller, which kopsrs does not run: it keeps the API's records itself).
    pub(crate) fn external_dns_enabled(&self) -> bool {
        let dns = self.spec.external_dns.as_ref();
        dns.and_then(|d| d.provider.as_deref()) == Some("external-dns")
            && dns.and_then(|d| d.disable) != Some(true)
    }

    /// external-dns for the Services (and with `watchIngress` the Ingresses) that ask for
    /// records, on the control plane with its role (or its own with IRSA), in the cluster's
    /// zone only, owning the records it makes by the cluster's name and never deleting others'
    /// (`upsert-only`).
    fn external_dns(&self) -> Option<Value> {
        if !self.external_dns_enabled() {
            return None;
        }
        let dns = self.spec.external_dns.clone().unwrap_or_default();
        let mut sources = vec!["service"];
        if dns.watch_ingress == Some(true) {
            sources.push("ingress");
        }
        let mut values = json!({
            "provider": {"name": "aws"},
            "sources": sources,
            "policy": "upsert-only",
            "registry": "txt",
            "txtOwnerId": self.name,
            "serviceAccount": {"name": "external-dns"},
            "env": [{"name": "AWS_REGION", "value": self.region}],
            "nodeSelector": {"node-role.kubernetes.io/control-plane": ""},
            "tolerations": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}],
        });
        // The zone by name (a zone ID names no domain).
        if let Some(zone) = self.spec.dns_zone.as_deref().filter(|z| z.contains('.')) {
            values["domainFilters"] = json!([zone.trim_end_matches('.')]);
        }
        if let Some(namespace) = &dns.watch_namespace {
            values["namespaced"] = json!(true);
            values["extraArgs"] = json!([format!("--namespace={namespace}")]);
        }
        if let Some(class) = &dns.priority_class_name {
            values["priorityClassName"] = json!(class);
        }
        if self.service_account_roles_for_addons() {
            let pod = self.service_account_role_pod("external-dns");
            let env = values["env"].as_array_mut().expect("env is a list");
            for (name, value) in pod.env {
                env.push(json!({"name": name, "value": value}));
            }
            values["extraVolumes"] = json!([pod.volume]);
            values["extraVolumeMounts"] = json!([pod.mount]);
        }
        Some(values)
    }

    /// The cluster autoscaler of a completed spec, as kops runs it: on the control plane
    /// (with its instance role, or with service-account roles for addons its own role,
    /// irsa.rs), scaling each worker group kopsrs made an auto scaling group for (not
    /// `autoscale: false`, not Karpenter's) between its sizes, with the spec's expander and
    /// scale-down settings and the image of the Kubernetes minor.
    fn cluster_autoscaler(&self) -> Option<Value> {
        let cas = self.spec.cluster_autoscaler.as_ref()?;
        if cas.enabled != Some(true) {
            return None;
        }
        let name = &self.name;
        let groups = &self.groups;
        let scaled: Vec<&InstanceGroup> = groups
            .iter()
            .copied()
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
            "awsRegion": self.region,
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
            resources.insert("cpu".into(), json!(cpu));
        }
        if let Some(memory) = &cas.memory_request {
            resources.insert("memory".into(), json!(memory));
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
        if self.service_account_roles_for_addons() {
            // Its own role through a projected token for IAM's audience (irsa.rs).
            let pod = self.service_account_role_pod("cluster-autoscaler");
            values["extraEnv"] = json!(pod.env.into_iter().collect::<BTreeMap<_, _>>());
            values["extraVolumes"] = json!([pod.volume]);
            values["extraVolumeMounts"] = json!([pod.mount]);
        }
        Some(values)
    }
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
