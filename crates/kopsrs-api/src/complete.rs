//! Completion: from a user spec to the completed spec stored as `cluster-completed.spec`.
//!
//! Defaults are written as JSON and merged *under* the user's spec: a field the user set is
//! never changed. Derived values (pod and service ranges, the DNS service IP, subnet CIDRs, etcd
//! backup stores) are computed from what the user gave.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde_json::{json, Value};

use crate::document::{Cluster, InstanceGroup};
use crate::versions::{self, KubernetesVersion};
use crate::Role;

/// The pod range kops derives from `nonMasqueradeCIDR`: the second half of it.
pub fn default_pod_cidr(non_masquerade: Ipv4Net) -> Ipv4Net {
    let halves: Vec<Ipv4Net> = non_masquerade
        .subnets(non_masquerade.prefix_len() + 1)
        .map(Iterator::collect)
        .unwrap_or_default();
    halves.get(1).copied().unwrap_or(non_masquerade)
}

/// The service range kops derives from `nonMasqueradeCIDR`: the first eighth of the first half.
pub fn default_service_cidr(non_masquerade: Ipv4Net) -> Ipv4Net {
    let prefix = (non_masquerade.prefix_len() + 3).min(32);
    non_masquerade
        .subnets(prefix)
        .ok()
        .and_then(|mut s| s.next())
        .unwrap_or(non_masquerade)
}

/// Whether the cluster uses kops's legacy layout where `nonMasqueradeCIDR` covers the VPC
/// (pods take the upper half of the VPC range). Services then default to 100.64.0.0/13, as
/// in kops.
pub fn legacy_non_masquerade(non_masquerade: Ipv4Net, network: Option<&str>) -> bool {
    network
        .and_then(|n| n.parse::<Ipv4Net>().ok())
        .is_some_and(|n| crate::cidr::overlaps(&n, &non_masquerade))
}

/// The default service range, taking the legacy layout into account.
pub fn default_service_cidr_for(non_masquerade: Ipv4Net, network: Option<&str>) -> Ipv4Net {
    if legacy_non_masquerade(non_masquerade, network) {
        "100.64.0.0/13".parse().expect("static CIDR")
    } else {
        default_service_cidr(non_masquerade)
    }
}

/// Merges `defaults` under `value`: keys missing from `value` are taken from `defaults`, objects
/// are merged recursively, and anything the user set (including lists) is kept as is.
fn fill(value: &mut Value, defaults: Value) {
    if let (Value::Object(target), Value::Object(defaults)) = (value, defaults) {
        for (key, default) in defaults {
            match target.get_mut(&key) {
                Some(existing) => fill(existing, default),
                None => {
                    target.insert(key, default);
                }
            }
        }
    }
}

/// Completes a cluster and its instance groups with kops's defaults.
///
/// `config_base` is where the cluster lives in the state store (`s3://bucket/name`).
pub fn complete(
    cluster: &Cluster,
    groups: &[InstanceGroup],
    config_base: &str,
) -> Result<(Cluster, Vec<InstanceGroup>), String> {
    let name = cluster.metadata.name.clone();
    let spec = &cluster.spec;
    let version_text = spec
        .kubernetes_version
        .clone()
        .ok_or("spec.kubernetesVersion: missing")?;
    let version = KubernetesVersion::parse(&version_text).ok_or_else(|| {
        format!("spec.kubernetesVersion: {version_text:?} is not a Kubernetes version")
    })?;
    let image_tag = format!("v{}", version.without_v());
    let ipv6 = spec.non_masquerade_cidr.as_deref() == Some("::/0");
    let non_masquerade: Option<Ipv4Net> = match spec.non_masquerade_cidr.as_deref() {
        Some("::/0") => None,
        Some(text) => Some(
            text.parse()
                .map_err(|_| format!("spec.nonMasqueradeCIDR: {text:?} is not a CIDR"))?,
        ),
        None => Some("100.64.0.0/10".parse().expect("static CIDR")),
    };
    let service_range = match spec.service_cluster_ip_range.clone() {
        Some(range) => range,
        None if ipv6 => "fd00:5e4f:ce::/108".to_string(),
        None => default_service_cidr_for(
            non_masquerade.expect("IPv4 when not IPv6"),
            spec.network_cidr.as_deref(),
        )
        .to_string(),
    };
    let pod_cidr = spec
        .pod_cidr
        .clone()
        .or_else(|| non_masquerade.map(|n| default_pod_cidr(n).to_string()));
    let dns_ip = match service_range.parse::<Ipv4Net>() {
        Ok(net) => Ipv4Addr::from(u32::from(net.network()) + 10).to_string(),
        Err(_) => service_range.trim_end_matches(|c| c != ':').to_string() + "a",
    };
    let control_planes = groups
        .iter()
        .filter(|g| g.role() == Some(Role::ControlPlane))
        .count()
        .max(1);
    let config_base = spec
        .config_base
        .clone()
        .unwrap_or_else(|| config_base.to_string());
    let internal_api = format!("api.internal.{name}");
    let public_name = spec
        .master_public_name
        .clone()
        .unwrap_or_else(|| format!("api.{name}"));
    let given_dns = spec
        .topology
        .as_ref()
        .and_then(|t| t.dns.as_ref())
        .and_then(|d| d.r#type.clone());
    let dns_type = match given_dns.as_deref() {
        Some("None") => "None",
        Some("Private") => "Private",
        Some(_) => "Public",
        None if name.ends_with(".k8s.local") => "None",
        None => "Public",
    };

    let mut value = serde_json::to_value(cluster).map_err(|e| e.to_string())?;
    let user_subnets = spec.subnets.clone().unwrap_or_default();
    let mut subnets = user_subnets;
    if let Some(network) = spec
        .network_cidr
        .as_deref()
        .and_then(|n| n.parse::<Ipv4Net>().ok())
    {
        crate::cidr::allocate_subnets(network, &mut subnets, ipv6)
            .map_err(|e| format!("spec.subnets: {e}"))?;
    }
    value["spec"]["subnets"] = serde_json::to_value(&subnets).map_err(|e| e.to_string())?;
    // Kops stores the version without its `v`.
    value["spec"]["kubernetesVersion"] = json!(version.without_v());

    let kubelet = json!({
        "anonymousAuth": false,
        "cgroupDriver": "systemd",
        "cgroupRoot": "/",
        "cloudProvider": "external",
        "clusterDNS": dns_ip,
        "clusterDomain": "cluster.local",
        "enableDebuggingHandlers": true,
        "evictionHard": "memory.available<100Mi,nodefs.available<10%,nodefs.inodesFree<5%,imagefs.available<10%,imagefs.inodesFree<5%",
        "kubeconfigPath": "/var/lib/kubelet/kubeconfig",
        "logLevel": 2,
        "podManifestPath": "/etc/kubernetes/manifests",
        "protectKernelDefaults": true,
        "registerSchedulable": true,
        "shutdownGracePeriod": "30s",
        "shutdownGracePeriodCriticalPods": "10s",
    });
    let mut defaults = json!({
        // kops: without an `api` section, DNS names the API, unless there is no DNS.
        "api": match (&spec.api, dns_type) {
            (Some(_), _) => json!({}),
            (None, "None") => json!({"loadBalancer": {"class": "Network", "type": "Public"}}),
            (None, _) => json!({"dns": {}}),
        },
        "authorization": {"rbac": {}},
        "channel": "stable",
        "cloudConfig": {"manageStorageClasses": true},
        "cloudControllerManager": {
            "allocateNodeCIDRs": !ipv6,
            "clusterName": name,
            "configureCloudRoutes": false,
            "image": "registry.k8s.io/provider-aws/cloud-controller-manager:v1.34.1",
            "leaderElection": {"leaderElect": true},
        },
        "cloudProvider": "aws",
        "clusterDNSDomain": "cluster.local",
        "configBase": config_base,
        "iam": {"legacy": false},
        "keyStore": format!("{config_base}/pki"),
        "kubeAPIServer": {
            "allowPrivileged": true,
            "anonymousAuth": false,
            "apiAudiences": ["kubernetes.svc.default"],
            "apiServerCount": control_planes,
            "authorizationMode": "Node,RBAC",
            "bindAddress": "0.0.0.0",
            "cloudProvider": "external",
            "image": format!("registry.k8s.io/kube-apiserver:{image_tag}"),
            "logLevel": 2,
            "securePort": 443,
            "serviceAccountIssuer": format!("https://{internal_api}"),
            "serviceAccountJWKSURI": format!("https://{internal_api}/openid/v1/jwks"),
            "serviceClusterIPRange": service_range,
            "storageBackend": "etcd3",
        },
        "kubeControllerManager": {
            "allocateNodeCIDRs": !ipv6,
            "attachDetachReconcileSyncPeriod": "1m0s",
            "cloudProvider": "external",
            "clusterName": name,
            "configureCloudRoutes": false,
            "image": format!("registry.k8s.io/kube-controller-manager:{image_tag}"),
            "leaderElection": {"leaderElect": true},
            "logLevel": 2,
            "useServiceAccountCredentials": true,
        },
        "kubeDNS": {
            "cacheMaxConcurrent": 150,
            "cacheMaxSize": 1000,
            "cpuRequest": "100m",
            "domain": "cluster.local",
            "memoryLimit": "170Mi",
            "memoryRequest": "70Mi",
            "provider": "CoreDNS",
            "serverIP": dns_ip,
        },
        "kubeProxy": {
            "cpuRequest": "100m",
            "image": format!("registry.k8s.io/kube-proxy:{image_tag}"),
            "logLevel": 2,
        },
        "kubeScheduler": {
            "image": format!("registry.k8s.io/kube-scheduler:{image_tag}"),
            "leaderElection": {"leaderElect": true},
            "logLevel": 2,
        },
        "kubelet": kubelet.clone(),
        "kubernetesApiAccess": ["0.0.0.0/0", "::/0"],
        "masterKubelet": kubelet,
        "masterPublicName": public_name,
        "nonMasqueradeCIDR": "100.64.0.0/10",
        "secretStore": format!("{config_base}/secrets"),
        "serviceClusterIPRange": service_range,
        "sshAccess": ["0.0.0.0/0", "::/0"],
        "topology": {"dns": {"type": dns_type}},
    });
    let networking_set = spec.networking.as_ref().is_some_and(|n| {
        serde_json::to_value(n).is_ok_and(|v| v.as_object().is_some_and(|o| !o.is_empty()))
    });
    if !networking_set {
        defaults["networking"] = json!({"cilium": {"enableNodePort": true}});
    }
    if let Some(pod_cidr) = &pod_cidr {
        defaults["podCIDR"] = json!(pod_cidr);
        defaults["kubeControllerManager"]["clusterCIDR"] = json!(pod_cidr);
        defaults["cloudControllerManager"]["clusterCIDR"] = json!(pod_cidr);
        defaults["kubeProxy"]["clusterCIDR"] = json!(pod_cidr);
    }
    fill(&mut value["spec"], defaults);

    // etcd: backups in the state store, a version per Kubernetes minor.
    if let Some(clusters) = value["spec"]["etcdClusters"].as_array_mut() {
        for etcd in clusters {
            let etcd_name = etcd["name"].as_str().unwrap_or_default().to_string();
            fill(
                etcd,
                json!({
                    "backups": {"backupStore": format!("{config_base}/backups/etcd/{etcd_name}")},
                    "manager": {"backupRetentionDays": 90},
                    "version": versions::etcd_version(&version),
                }),
            );
        }
    }
    let completed: Cluster =
        serde_json::from_value(value).map_err(|e| format!("completed spec: {e}"))?;

    let mut completed_groups = Vec::new();
    for group in groups {
        let role = group.role();
        let machine_type = group.spec.machine_type.clone().unwrap_or_else(|| {
            match role {
                Some(Role::Bastion) => versions::DEFAULT_BASTION_MACHINE_TYPE,
                Some(Role::ControlPlane | Role::ApiServer) => {
                    versions::DEFAULT_CONTROL_PLANE_MACHINE_TYPE
                }
                _ => versions::DEFAULT_NODE_MACHINE_TYPE,
            }
            .to_string()
        });
        let (size, volume) = match role {
            Some(Role::ControlPlane) => (1, 64),
            Some(Role::Bastion) => (1, 32),
            _ => (2, 128),
        };
        let min = group.spec.min_size.unwrap_or(size);
        let mut value = serde_json::to_value(group).map_err(|e| e.to_string())?;
        let karpenter = group.spec.manager.as_deref() == Some("Karpenter");
        let mut defaults = json!({
            "image": versions::default_image(&version, versions::architecture(&machine_type)),
            "minSize": min,
            "maxSize": group.spec.max_size.unwrap_or(min.max(size)),
            "rootVolumeSize": volume,
            "rootVolumeType": "gp3",
            "rootVolumeEncryption": true,
        });
        if !karpenter {
            defaults["machineType"] = json!(machine_type);
        }
        fill(&mut value["spec"], defaults);
        fill(
            &mut value["metadata"],
            json!({"labels": {crate::LABEL_CLUSTER: name}}),
        );
        completed_groups.push(
            serde_json::from_value(value).map_err(|e| format!("completed instance group: {e}"))?,
        );
    }
    Ok((completed, completed_groups))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ranges() {
        let nm: Ipv4Net = "100.64.0.0/10".parse().unwrap();
        assert_eq!(default_pod_cidr(nm).to_string(), "100.96.0.0/11");
        assert_eq!(default_service_cidr(nm).to_string(), "100.64.0.0/13");
    }

    #[test]
    fn fill_keeps_user_values() {
        let mut user = json!({"a": 1, "b": {"c": [1]}, "d": null});
        fill(&mut user, json!({"a": 2, "b": {"c": [2], "e": 3}, "f": 4}));
        assert_eq!(
            user,
            json!({"a": 1, "b": {"c": [1], "e": 3}, "d": null, "f": 4})
        );
    }
}
