//! Each instance group's user-data, from kopsrs-bootstrap with the facts the model knows
//! (names, the API load balancer, the etcd volume tags, the networking).

use kopsrs_api::{InstanceGroup, Role};
use kopsrs_bootstrap::{NodeBootstrap, Role as NodeRole, WarmPoolBoot};

use crate::build::{err, Builder};
use crate::ModelError;

/// The networking addon of a spec (`cilium`, ..., or `none` for `cni`/none/others).
pub fn cni(spec: &kopsrs_api::ClusterSpec) -> &'static str {
    let Some(n) = spec.networking.as_ref() else {
        return "cilium";
    };
    if n.cilium.is_some() {
        "cilium"
    } else if n.calico.is_some() {
        "calico"
    } else if n.flannel.is_some() {
        "flannel"
    } else if n.kindnet.is_some() {
        "kindnet"
    } else if n.amazonvpc.is_some() {
        "amazonvpc"
    } else {
        "none"
    }
}

impl Builder<'_> {
    /// The bucket and the cluster's prefix of an S3 state store (`spec.configBase`); `None`
    /// for other stores. IAM scopes the instance roles to it; nodes read it.
    pub(crate) fn s3_state_store(&self) -> Option<(&str, &str)> {
        let rest = self.spec.config_base.as_deref()?.strip_prefix("s3://")?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        Some((bucket, prefix.trim_end_matches('/')))
    }

    /// `https://s3.REGION.SUFFIX/bucket/prefix` for `s3://bucket/prefix`: the bucket's
    /// regional endpoint, path style, so a bucket name with dots still matches the endpoint's
    /// TLS certificate (a virtual-hosted `my.bucket.s3...` name does not) and other
    /// partitions get their own domain. Under an overridden endpoint, path style on it.
    /// Empty for stores nodes cannot read.
    fn state_url(&self) -> String {
        let Some((bucket, prefix)) = self.s3_state_store() else {
            return String::new();
        };
        let base = match self.input.aws_endpoint.as_deref() {
            Some(endpoint) => format!("{}/{bucket}", endpoint.trim_end_matches('/')),
            None => {
                let region = self.input.state_region.as_deref().unwrap_or(&self.region);
                format!("https://s3.{region}.{}/{bucket}", dns_suffix(region))
            }
        };
        if prefix.is_empty() {
            base
        } else {
            format!("{base}/{prefix}")
        }
    }

    /// `spec.assets`, checked: a mirrored registry needs kubeadm's image tags of the
    /// cluster's minor version (pinned in kubeadm's configuration, copied by `get assets`).
    pub(crate) fn mirrors(&self) -> Result<kopsrs_bootstrap::assets::Mirrors, ModelError> {
        let assets = self.spec.assets.as_ref();
        let mirrors = kopsrs_bootstrap::assets::Mirrors::from_spec(
            assets.and_then(|a| a.file_repository.as_deref()),
            assets.and_then(|a| a.container_registry.as_deref()),
            assets.and_then(|a| a.container_proxy.as_deref()),
        )
        .map_err(|e| {
            err(
                format!("Cluster spec.assets.{}", e.field),
                format!("{:?} {}; {}", e.value, e.why, e.fix),
            )
        })?;
        let version = self.spec.kubernetes_version.as_deref().unwrap_or_default();
        let minor = kopsrs_bootstrap::parse_version(version).map(|(a, b, _)| (a, b));
        if mirrors.kubeadm_repositories().is_some()
            && minor
                .and_then(kopsrs_bootstrap::assets::control_plane_images)
                .is_none()
        {
            return Err(err(
                "Cluster spec.kubernetesVersion",
                format!("{version:?}: kopsrs knows kubeadm's images (etcd, CoreDNS, pause) of 1.31 to 1.34 only, and spec.assets mirrors them; use one of those versions or drop spec.assets.containerRegistry/containerProxy"),
            ));
        }
        Ok(mirrors)
    }

    fn aws_url(&self, service: &str) -> String {
        match self.input.aws_endpoint.as_deref() {
            Some(endpoint) => endpoint.trim_end_matches('/').to_string(),
            None => format!(
                "https://{service}.{}.{}",
                self.region,
                dns_suffix(&self.region)
            ),
        }
    }

    /// What a worker of a group with a warm pool needs at boot: the group's name, the launch
    /// hook the model gives the group (`kops-warmpool`, with `enableLifecycleHook`), and the
    /// Auto Scaling endpoint. Control planes never get one (validation refuses it).
    fn warm_pool_boot(&self, group: &InstanceGroup) -> Option<WarmPoolBoot> {
        let role = group
            .role()
            .filter(|r| matches!(r, Role::Node | Role::ApiServer))?;
        let pool = self.group_warm_pool(group, role)?;
        Some(WarmPoolBoot {
            asg: self.group_object_name(group),
            hook: (pool.enable_lifecycle_hook == Some(true)).then(|| "kops-warmpool".to_string()),
            autoscaling_url: self.aws_url("autoscaling"),
        })
    }

    pub(crate) fn node_bootstrap(
        &self,
        group: &InstanceGroup,
    ) -> Result<NodeBootstrap, ModelError> {
        let role = match group.role() {
            Some(Role::ControlPlane) => NodeRole::ControlPlane,
            Some(Role::Bastion) => NodeRole::Bastion,
            _ => NodeRole::Node,
        };
        let api_dns_name = (!self.dns_none()).then(|| {
            self.spec
                .master_public_name
                .clone()
                .unwrap_or_else(|| self.scoped("api"))
        });
        let api_lb_name = self
            .api_load_balancer_enabled()
            .then(|| self.lb_name("api"));
        let template = self.node_template(group)?;
        let mut labels = vec![(
            "kops.k8s.io/instancegroup".to_string(),
            group.metadata.name.clone(),
        )];
        // The kubelet may not set node-role labels itself (NodeRestriction); kubeadm sets
        // them, and the control plane's exclude-from-external-load-balancers label.
        labels.extend(template.labels.into_iter().filter(|(k, _)| {
            !k.starts_with("node-role.kubernetes.io/")
                && k != "node.kubernetes.io/exclude-from-external-load-balancers"
                && k != "kops.k8s.io/instancegroup"
        }));
        let mut taints = template.taints;
        // Karpenter (v1) accepts a node of a custom image only if it registers with this
        // taint, which Karpenter then removes.
        if group.spec.manager.as_deref() == Some("Karpenter") {
            taints.push(kopsrs_bootstrap::kubeadm::Taint {
                key: "karpenter.sh/unregistered".into(),
                value: None,
                effect: "NoExecute".into(),
            });
        }
        let mut sans = Vec::new();
        if let Some(extra) = self.spec.additional_sans.as_ref() {
            sans.extend(extra.iter().cloned());
        }
        // Validation refused a bad policy before any model was built.
        let backups = kopsrs_api::backups::main_policy(self.spec).unwrap_or_default();
        Ok(NodeBootstrap {
            cluster_name: self.name.clone(),
            group: group.metadata.name.clone(),
            role,
            kubernetes_version: self
                .spec
                .kubernetes_version
                .clone()
                .unwrap_or_default()
                .trim_start_matches('v')
                .to_string(),
            region: self.region.clone(),
            state_url: self.state_url(),
            state_region: self.input.state_region.clone(),
            state_owner: self.input.state_owner.clone(),
            ec2_url: self.aws_url("ec2"),
            elb_url: self.aws_url("elasticloadbalancing"),
            sts_url: self.aws_url("sts"),
            api_dns_name,
            api_lb_name,
            api_cert_sans: sans,
            etcd_volume_tag: (role == NodeRole::ControlPlane).then(|| "k8s.io/etcd/main".into()),
            etcd_members: self
                .spec
                .etcd_clusters
                .iter()
                .flatten()
                .find(|e| e.name.as_deref() == Some("main"))
                .and_then(|e| e.etcd_members.as_ref())
                .map_or(0, Vec::len),
            etcd_backup_interval: backups.interval,
            etcd_backup_retention_days: backups.retention_days,
            pod_cidr: self
                .spec
                .pod_cidr
                .clone()
                .unwrap_or_else(|| "100.96.0.0/11".into()),
            service_cidr: self
                .spec
                .service_cluster_ip_range
                .clone()
                .unwrap_or_else(|| "100.64.0.0/13".into()),
            dns_domain: self
                .spec
                .cluster_dns_domain
                .clone()
                .unwrap_or_else(|| "cluster.local".into()),
            kube_proxy_disabled: self.spec.kube_proxy.as_ref().and_then(|k| k.enabled)
                == Some(false),
            service_node_port_range: self
                .spec
                .kube_api_server
                .as_ref()
                .and_then(|a| a.service_node_port_range.as_ref())
                .map(|_| self.node_port_range().map(|(a, b)| format!("{a}-{b}")))
                .transpose()?,
            node_labels: labels,
            taints,
            mirrors: self.mirrors()?,
            service_account_issuer: crate::irsa::discovery_issuer(self.spec, &self.region)
                .map(|issuer| format!("https://{issuer}")),
            warm_pool: self.warm_pool_boot(group),
        })
    }

    /// The group's user-data: the input's override, else the kubeadm bootstrap. A spec the
    /// bootstrap cannot serve is an error when `input.strict_bootstrap` (the AWS target);
    /// the Terraform target writes a script that stops with the same message.
    pub fn user_data(&self, group: &InstanceGroup) -> Result<String, ModelError> {
        if let Some(text) = self.input.user_data.get(&group.metadata.name) {
            return Ok(text.clone());
        }
        let node = self.node_bootstrap(group)?;
        match node.render() {
            Ok(text) => Ok(text),
            Err(e) if !self.input.strict_bootstrap => Ok(format!(
                "#!/bin/bash\necho 'kopsrs: this instance cannot bootstrap: {}' >&2\nexit 1\n",
                e.to_string().replace('\'', "")
            )),
            Err(e) => Err(err(
                format!("InstanceGroup {}", group.metadata.name),
                e.to_string(),
            )),
        }
    }
}

/// The domain of AWS endpoints in the partition of `region`.
pub(crate) fn dns_suffix(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else if region.starts_with("us-isob-") {
        "sc2s.sgov.gov"
    } else if region.starts_with("us-iso-") {
        "c2s.ic.gov"
    } else {
        "amazonaws.com"
    }
}

#[cfg(test)]
mod tests {
    /// Validation accepts the providers the channel installs a plugin for, no fewer and no
    /// more: the two lists live in crates that do not know each other.
    #[test]
    fn validation_and_the_channel_agree_on_the_network_plugins() {
        assert_eq!(
            kopsrs_api::validate::NETWORKING_INSTALLED,
            kopsrs_bootstrap::channel::CNI_ADDONS
        );
    }
}
