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
    let derived = Derived::of(cluster, groups, config_base)?;
    let spec = &cluster.spec;
    let mut value = serde_json::to_value(cluster).map_err(|e| e.to_string())?;
    let mut subnets = spec.subnets.clone().unwrap_or_default();
    if let Some(network) = spec
        .network_cidr
        .as_deref()
        .and_then(|n| n.parse::<Ipv4Net>().ok())
    {
        crate::cidr::allocate_subnets(network, &mut subnets, derived.ipv6)
            .map_err(|e| format!("spec.subnets: {e}"))?;
    }
    value["spec"]["subnets"] = serde_json::to_value(&subnets).map_err(|e| e.to_string())?;
    // Kops stores the version without its `v`.
    value["spec"]["kubernetesVersion"] = json!(derived.version.without_v());
    fill(&mut value["spec"], cluster_defaults(cluster, &derived));
    complete_etcd_clusters(&mut value["spec"], &derived);
    let completed: Cluster =
        serde_json::from_value(value).map_err(|e| format!("completed spec: {e}"))?;

    let mut completed_groups = Vec::new();
    for group in groups {
        completed_groups.push(complete_group(group, &derived)?);
    }
    Ok((completed, completed_groups))
}

/// What completion derives from the user's spec before writing any default.
struct Derived {
    /// The cluster name.
    name: String,
    /// `spec.kubernetesVersion`, parsed.
    version: KubernetesVersion,
    /// The tag of the Kubernetes component images: `v1.34.1`.
    image_tag: String,
    /// Whether the cluster is IPv6 (`nonMasqueradeCIDR: ::/0`).
    ipv6: bool,
    /// The service range, given or derived.
    service_range: String,
    /// The pod range, given or derived (none for IPv6 unless given).
    pod_cidr: Option<String>,
    /// The cluster DNS service IP: the tenth address of the service range.
    dns_ip: String,
    /// The number of control planes (at least one): `apiServerCount`.
    control_planes: usize,
    /// `spec.configBase`, else the caller's.
    config_base: String,
    /// `api.internal.<name>`, the service-account issuer's host.
    internal_api: String,
    /// `spec.masterPublicName`, else `api.<name>`.
    public_name: String,
    /// `spec.topology.dns.type`, given or derived.
    dns_type: &'static str,
}

impl Derived {
    /// Derives the values from the cluster and its groups; fails on a missing or unreadable
    /// Kubernetes version or an unreadable `nonMasqueradeCIDR`.
    fn of(cluster: &Cluster, groups: &[InstanceGroup], config_base: &str) -> Result<Self, String> {
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
        let non_masquerade = non_masquerade_cidr(spec)?;
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
        let dns_type = dns_type(spec, &name);
        Ok(Derived {
            name,
            version,
            image_tag,
            ipv6,
            service_range,
            pod_cidr,
            dns_ip,
            control_planes,
            config_base,
            internal_api,
            public_name,
            dns_type,
        })
    }
}

/// `spec.nonMasqueradeCIDR` as an IPv4 network: `100.64.0.0/10` when not given, none for IPv6
/// (`::/0`).
fn non_masquerade_cidr(spec: &crate::ClusterSpec) -> Result<Option<Ipv4Net>, String> {
    Ok(match spec.non_masquerade_cidr.as_deref() {
        Some("::/0") => None,
        Some(text) => Some(
            text.parse()
                .map_err(|_| format!("spec.nonMasqueradeCIDR: {text:?} is not a CIDR"))?,
        ),
        None => Some("100.64.0.0/10".parse().expect("static CIDR")),
    })
}

/// The DNS type: `None` and `Private` as given, any other given type `Public`; not given,
/// `None` for a gossip name (`.k8s.local`), else `Public`.
fn dns_type(spec: &crate::ClusterSpec, name: &str) -> &'static str {
    let given_dns = spec
        .topology
        .as_ref()
        .and_then(|t| t.dns.as_ref())
        .and_then(|d| d.r#type.clone());
    match given_dns.as_deref() {
        Some("None") => "None",
        Some("Private") => "Private",
        Some(_) => "Public",
        None if name.ends_with(".k8s.local") => "None",
        None => "Public",
    }
}

/// kops's defaults for the cluster spec, to be merged under the user's.
fn cluster_defaults(cluster: &Cluster, d: &Derived) -> Value {
    let spec = &cluster.spec;
    let kubelet = kubelet_defaults(d);
    let mut defaults = json!({
        // kops: without an `api` section, DNS names the API, unless there is no DNS.
        "api": match (&spec.api, d.dns_type) {
            (Some(_), _) => json!({}),
            (None, "None") => json!({"loadBalancer": {"class": "Network", "type": "Public"}}),
            (None, _) => json!({"dns": {}}),
        },
        "authorization": {"rbac": {}},
        "channel": "stable",
        "cloudConfig": {"manageStorageClasses": true},
        "cloudControllerManager": {
            "allocateNodeCIDRs": !d.ipv6,
            "clusterName": d.name,
            "configureCloudRoutes": false,
            "image": "registry.k8s.io/provider-aws/cloud-controller-manager:v1.34.1",
            "leaderElection": {"leaderElect": true},
        },
        "cloudProvider": "aws",
        "clusterDNSDomain": "cluster.local",
        "configBase": d.config_base,
        "iam": {"legacy": false},
        "keyStore": format!("{}/pki", d.config_base),
        "kubeAPIServer": kube_api_server_defaults(d),
        "kubeControllerManager": {
            "allocateNodeCIDRs": !d.ipv6,
            "attachDetachReconcileSyncPeriod": "1m0s",
            "cloudProvider": "external",
            "clusterName": d.name,
            "configureCloudRoutes": false,
            "image": format!("registry.k8s.io/kube-controller-manager:{}", d.image_tag),
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
            "serverIP": d.dns_ip,
        },
        "kubeProxy": {
            "cpuRequest": "100m",
            "image": format!("registry.k8s.io/kube-proxy:{}", d.image_tag),
            "logLevel": 2,
        },
        "kubeScheduler": {
            "image": format!("registry.k8s.io/kube-scheduler:{}", d.image_tag),
            "leaderElection": {"leaderElect": true},
            "logLevel": 2,
        },
        "kubelet": kubelet.clone(),
        "kubernetesApiAccess": ["0.0.0.0/0", "::/0"],
        "masterKubelet": kubelet,
        "masterPublicName": d.public_name,
        "nonMasqueradeCIDR": "100.64.0.0/10",
        "secretStore": format!("{}/secrets", d.config_base),
        "serviceClusterIPRange": d.service_range,
        "sshAccess": ["0.0.0.0/0", "::/0"],
        "topology": {"dns": {"type": d.dns_type}},
    });
    let networking_set = spec.networking.as_ref().is_some_and(|n| {
        serde_json::to_value(n).is_ok_and(|v| v.as_object().is_some_and(|o| !o.is_empty()))
    });
    if !networking_set {
        defaults["networking"] = json!({"cilium": {"enableNodePort": true}});
    }
    // kops runs the termination handler by default, unless Karpenter (which handles
    // interruptions itself) is on.
    if spec.karpenter.as_ref().and_then(|k| k.enabled) != Some(true) {
        defaults["nodeTerminationHandler"] = json!({
            "cpuRequest": "50m",
            "deleteSQSMsgIfNodeNotFound": false,
            "enableOutOfServiceTaint": false,
            "enableRebalanceDraining": false,
            "enableRebalanceMonitoring": false,
            "enableScheduledEventDraining": true,
            "enableSpotInterruptionDraining": true,
            "enabled": true,
            "excludeFromLoadBalancers": true,
            "managedASGTag": "aws-node-termination-handler/managed",
            "memoryRequest": "64Mi",
            "podTerminationGracePeriod": -1,
            "prometheusEnable": false,
            "taintNode": false,
            "version": "v1.25.5",
        });
    }
    if spec.cluster_autoscaler.as_ref().and_then(|c| c.enabled) == Some(true) {
        defaults["clusterAutoscaler"] = cluster_autoscaler_defaults(d);
        if spec
            .cluster_autoscaler
            .as_ref()
            .and_then(|c| c.expander.as_deref())
            == Some("priority")
        {
            defaults["clusterAutoscaler"]["createPriorityExpanderConfig"] = json!(true);
        }
    }
    if let Some(pod_cidr) = &d.pod_cidr {
        defaults["podCIDR"] = json!(pod_cidr);
        defaults["kubeControllerManager"]["clusterCIDR"] = json!(pod_cidr);
        defaults["cloudControllerManager"]["clusterCIDR"] = json!(pod_cidr);
        defaults["kubeProxy"]["clusterCIDR"] = json!(pod_cidr);
    }
    defaults
}

/// kops's cluster-autoscaler defaults: the release that goes with the Kubernetes minor, the
/// random expander, and the autoscaler's own defaults written out.
fn cluster_autoscaler_defaults(d: &Derived) -> Value {
    let tag = match d.version.minor {
        ..=32 => "v1.32.7",
        33 => "v1.33.5",
        34 => "v1.34.4",
        35 => "v1.35.1",
        _ => "v1.36.0",
    };
    json!({
        "awsUseStaticInstanceList": false,
        "balanceSimilarNodeGroups": false,
        "emitPerNodegroupMetrics": false,
        "expander": "random",
        "ignoreDaemonSetsUtilization": false,
        "image": format!("registry.k8s.io/autoscaling/cluster-autoscaler:{tag}"),
        "maxNodeProvisionTime": "15m0s",
        "newPodScaleUpDelay": "0s",
        "scaleDownDelayAfterAdd": "10m0s",
        "scaleDownUnneededTime": "10m0s",
        "scaleDownUnreadyTime": "20m0s",
        "scaleDownUtilizationThreshold": "0.5",
        "skipNodesWithCustomControllerPods": true,
        "skipNodesWithLocalStorage": true,
        "skipNodesWithSystemPods": true,
    })
}

/// kops's kubelet defaults, the same for control planes and nodes.
fn kubelet_defaults(d: &Derived) -> Value {
    json!({
        "anonymousAuth": false,
        "cgroupDriver": "systemd",
        "cgroupRoot": "/",
        "cloudProvider": "external",
        "clusterDNS": d.dns_ip,
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
    })
}

/// kops's API server defaults: one per control plane, the service-account issuer at the
/// internal API name.
fn kube_api_server_defaults(d: &Derived) -> Value {
    json!({
        "allowPrivileged": true,
        "anonymousAuth": false,
        "apiAudiences": ["kubernetes.svc.default"],
        "apiServerCount": d.control_planes,
        "authorizationMode": "Node,RBAC",
        "bindAddress": "0.0.0.0",
        "cloudProvider": "external",
        "image": format!("registry.k8s.io/kube-apiserver:{}", d.image_tag),
        "logLevel": 2,
        "securePort": 443,
        "serviceAccountIssuer": format!("https://{}", d.internal_api),
        "serviceAccountJWKSURI": format!("https://{}/openid/v1/jwks", d.internal_api),
        "serviceClusterIPRange": d.service_range,
        "storageBackend": "etcd3",
    })
}

/// etcd: backups in the state store, a version per Kubernetes minor.
fn complete_etcd_clusters(spec: &mut Value, d: &Derived) {
    if let Some(clusters) = spec["etcdClusters"].as_array_mut() {
        for etcd in clusters {
            let etcd_name = etcd["name"].as_str().unwrap_or_default().to_string();
            fill(
                etcd,
                json!({
                    "backups": {"backupStore": format!("{}/backups/etcd/{etcd_name}", d.config_base)},
                    "manager": {"backupRetentionDays": 90},
                    "version": versions::etcd_version(&d.version),
                }),
            );
        }
    }
}

/// Completes an instance group: its role's machine type (not for Karpenter), size and root
/// volume, the default image for the machine's architecture, and the cluster label.
fn complete_group(group: &InstanceGroup, d: &Derived) -> Result<InstanceGroup, String> {
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
        "image": versions::default_image(&d.version, versions::architecture(&machine_type)),
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
        json!({"labels": {crate::LABEL_CLUSTER: d.name}}),
    );
    serde_json::from_value(value).map_err(|e| format!("completed instance group: {e}"))
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
