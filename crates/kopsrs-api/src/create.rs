//! `create cluster`: from command-line options to a user spec (Cluster + InstanceGroups).
//!
//! This is the inference kops does when a user names only zones: subnets per zone and topology,
//! one control plane per control-plane zone, nodes spread over the zones, etcd members per
//! control plane, images per architecture. Works offline: zones are taken as given.

use std::collections::BTreeMap;

use ipnet::Ipv4Net;
use serde_json::{json, Value};

use crate::document::{Cluster, InstanceGroup};
use crate::versions::{self, KubernetesVersion};
use crate::{cidr, paths, LABEL_CLUSTER, LABEL_INSTANCE_GROUP};

/// The options of `create cluster`, one field per kops flag.
#[derive(Debug, Clone, Default)]
pub struct CreateClusterOptions {
    /// The cluster's DNS name (`--name` or the positional argument); required.
    pub name: String,
    /// `--zones`: the availability zones the cluster runs in; at least one.
    pub zones: Vec<String>,
    /// `--control-plane-zones`; each must be one of `zones`. Empty: the first
    /// `control_plane_count` zones (at least one).
    pub control_plane_zones: Vec<String>,
    /// `--control-plane-count`; `None`: one per control-plane zone.
    pub control_plane_count: Option<u32>,
    /// `--node-count`: worker nodes in all, spread evenly over the zones; `None`: one per zone.
    pub node_count: Option<u32>,
    /// `--node-size`: the worker instance type; `None`: [`versions::DEFAULT_NODE_MACHINE_TYPE`].
    pub node_size: Option<String>,
    /// `--control-plane-size`: the control-plane instance type; `None`: the default for the
    /// role ([`versions::DEFAULT_CONTROL_PLANE_MACHINE_TYPE`]).
    pub control_plane_size: Option<String>,
    /// `--cloud`; only `aws` (the default) is accepted.
    pub cloud: Option<String>,
    /// `--networking`: one of [`NETWORKING_CHOICES`]; `None`: `cilium`.
    pub networking: Option<String>,
    /// `--topology`: `public` (the default) or `private`, any case.
    pub topology: Option<String>,
    /// `--bastion`: add a `bastions` instance group; needs the private topology.
    pub bastion: bool,
    /// `--dns`: `public`, `private` or `none`. `None`: public when `dns_zone` is given and the name
    /// does not end in `.k8s.local`, else none.
    pub dns: Option<String>,
    /// `--dns-zone`: the Route 53 hosted zone (`spec.dnsZone`).
    pub dns_zone: Option<String>,
    /// The first is `networkCIDR`; the rest become `additionalNetworkCIDRs`.
    pub network_cidrs: Vec<String>,
    /// `--network-id`: an existing VPC (`spec.networkID`).
    pub network_id: Option<String>,
    /// `--subnets`: existing subnet IDs, in the order of `zones`; given, no CIDRs are allocated.
    pub subnet_ids: Vec<String>,
    /// `--utility-subnets`: existing utility subnet IDs, in the order of `zones`.
    pub utility_subnet_ids: Vec<String>,
    /// `--kubernetes-version`, e.g. `v1.34.1`; `None`: [`versions::DEFAULT_KUBERNETES_VERSION`].
    pub kubernetes_version: Option<String>,
    /// `--channel` (`spec.channel`); `None`: `stable`.
    pub channel: Option<String>,
    /// `--image`: the image of every group without a more specific one; `None`: Ubuntu 24.04 for
    /// the group's architecture.
    pub image: Option<String>,
    /// `--node-image`: the worker image, ahead of `image`.
    pub node_image: Option<String>,
    /// `--control-plane-image`: the control-plane image, ahead of `image`.
    pub control_plane_image: Option<String>,
    /// `--ssh-access`: CIDRs allowed to SSH (`spec.sshAccess`); empty: as `admin_access`.
    pub ssh_access: Vec<String>,
    /// `--admin-access`: CIDRs allowed to reach the API (`spec.kubernetesApiAccess`); empty:
    /// anywhere (`0.0.0.0/0` and `::/0`).
    pub admin_access: Vec<String>,
    /// `--api-loadbalancer-type`: `public` (the default) or `internal`.
    pub api_loadbalancer_type: Option<String>,
    /// `--etcd-clusters`: the etcd cluster names; empty: `main` and `events`.
    pub etcd_clusters: Vec<String>,
    /// `--encrypt-etcd-storage`: `encryptedVolume` on every etcd member; `None`: on, as kops
    /// does on AWS.
    pub encrypt_etcd_storage: Option<bool>,
    /// `--etcd-storage-type`: the etcd volumes' EBS type (`volumeType`); `None`: the default.
    pub etcd_storage_type: Option<String>,
    /// `--ipv6`: IPv6 networking: private, dual-stack and utility subnets, each with a `/64`.
    pub ipv6: bool,
    /// `--node-volume-size`: worker root volume size in GB (`rootVolumeSize`).
    pub node_volume_size: Option<i32>,
    /// `--control-plane-volume-size`: control-plane root volume size in GB (`rootVolumeSize`).
    pub control_plane_volume_size: Option<i32>,
    /// `--node-security-groups`: existing security groups added to worker groups.
    pub node_security_groups: Vec<String>,
    /// `--control-plane-security-groups`: existing security groups added to control-plane groups.
    pub control_plane_security_groups: Vec<String>,
    /// `--kubernetes-feature-gates`: `Name` or `+Name` (on), `-Name` (off), set on every component.
    pub kubernetes_feature_gates: Vec<String>,
    /// `--cloud-labels`: tags for every resource, as [`parse_cloud_labels`] reads them.
    pub cloud_labels: Option<String>,
    /// `--instance-manager`: `cloudgroups` (the default) or `karpenter`, which needs
    /// `discovery_store`.
    pub instance_manager: Option<String>,
    /// `--discovery-store`: where the service-account issuer documents are published (IRSA).
    pub discovery_store: Option<String>,
    /// `--set path=value` (paths start with `cluster.spec.` or `spec.`).
    pub sets: Vec<String>,
    /// `--unset path`.
    pub unsets: Vec<String>,
    /// `<state store>/<name>`, set by the caller.
    pub config_base: Option<String>,
    /// RFC 3339 creation time, set by the caller.
    pub creation_timestamp: Option<String>,
}

/// The networking choices of `--networking`.
pub const NETWORKING_CHOICES: &[&str] = &[
    "cilium",
    "cilium-eni",
    "calico",
    "flannel",
    "flannel-vxlan",
    "kindnet",
    "amazonvpc",
    "amazon-vpc-routed-eni",
    "kubenet",
    "cni",
    "external",
    "canal",
    "kube-router",
    "none",
];

/// Builds the user spec. Every problem with the options is returned at once.
pub fn create_cluster(
    options: &CreateClusterOptions,
) -> Result<(Cluster, Vec<InstanceGroup>), Vec<String>> {
    let mut errors = Vec::new();
    let name = options.name.trim().to_string();
    if name.is_empty() {
        errors.push(
            "cluster name: missing; pass --name (or a positional name, or set KOPS_CLUSTER_NAME)"
                .into(),
        );
    }
    if options.zones.is_empty() {
        errors.push("--zones: missing; name at least one zone, e.g. --zones us-east-1a".into());
    }
    let cloud = options.cloud.as_deref().unwrap_or("aws");
    if cloud != "aws" {
        errors.push(format!(
            "--cloud {cloud}: not supported; kopsrs supports aws"
        ));
    }
    let topology = options
        .topology
        .as_deref()
        .unwrap_or("public")
        .to_ascii_lowercase();
    if topology != "public" && topology != "private" {
        errors.push(format!("--topology {topology}: must be public or private"));
    }
    if options.bastion && topology != "private" {
        errors.push("--bastion: a bastion needs --topology private".into());
    }
    let networking = options.networking.as_deref().unwrap_or("cilium");
    if !NETWORKING_CHOICES.contains(&networking) {
        errors.push(format!(
            "--networking {networking}: unknown; choose one of {}",
            NETWORKING_CHOICES.join(", ")
        ));
    }
    let dns = match options.dns.as_deref().map(str::to_ascii_lowercase) {
        Some(d) if d == "public" => "Public",
        Some(d) if d == "private" => "Private",
        Some(d) if d == "none" => "None",
        Some(d) => {
            errors.push(format!("--dns {d}: must be public, private or none"));
            "None"
        }
        None if options.dns_zone.is_some() && !name.ends_with(".k8s.local") => "Public",
        None => "None",
    };
    let api_lb_type = match options
        .api_loadbalancer_type
        .as_deref()
        .map(str::to_ascii_lowercase)
    {
        None => "Public",
        Some(t) if t == "public" => "Public",
        Some(t) if t == "internal" => "Internal",
        Some(t) => {
            errors.push(format!(
                "--api-loadbalancer-type {t}: must be public or internal"
            ));
            "Public"
        }
    };
    let version_text = options
        .kubernetes_version
        .clone()
        .unwrap_or_else(|| versions::DEFAULT_KUBERNETES_VERSION.to_string());
    let version = KubernetesVersion::parse(&version_text);
    if version.is_none() {
        errors.push(format!(
            "--kubernetes-version {version_text}: not a Kubernetes version; use the form v1.34.1"
        ));
    }
    let network_cidrs: Vec<String> = if options.network_cidrs.is_empty()
        && options.network_id.is_none()
        && options.subnet_ids.is_empty()
    {
        vec!["172.20.0.0/16".into()]
    } else {
        options.network_cidrs.clone()
    };
    let mut networks = Vec::new();
    for text in &network_cidrs {
        match text.parse::<Ipv4Net>() {
            Ok(net) if net.trunc() == net => networks.push(net),
            Ok(net) => errors.push(format!(
                "--network-cidr {text}: host bits are set; did you mean {}?",
                net.trunc()
            )),
            Err(_) => errors.push(format!(
                "--network-cidr {text}: not an IPv4 CIDR; use the form 172.20.0.0/16"
            )),
        }
    }
    let control_plane_zones = if options.control_plane_zones.is_empty() {
        let count = options.control_plane_count.unwrap_or(1) as usize;
        options
            .zones
            .iter()
            .take(count.max(1))
            .cloned()
            .collect::<Vec<_>>()
    } else {
        options.control_plane_zones.clone()
    };
    for zone in &control_plane_zones {
        if !options.zones.contains(zone) && !options.zones.is_empty() {
            errors.push(format!(
                "--control-plane-zones {zone}: not one of --zones {}",
                options.zones.join(",")
            ));
        }
    }
    let cloud_labels = match options
        .cloud_labels
        .as_deref()
        .map(parse_cloud_labels)
        .transpose()
    {
        Ok(labels) => labels,
        Err(e) => {
            errors.push(format!("--cloud-labels: {e}"));
            None
        }
    };
    let mut feature_gates = BTreeMap::new();
    for gate in &options.kubernetes_feature_gates {
        let (name, enabled) = match gate.strip_prefix('-') {
            Some(name) => (name, "false"),
            None => (gate.strip_prefix('+').unwrap_or(gate), "true"),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
            errors.push(format!("--kubernetes-feature-gates {gate}: a gate is a name, optionally prefixed with + or -"));
        }
        feature_gates.insert(name.to_string(), Value::String(enabled.into()));
    }
    let instance_manager = options.instance_manager.as_deref().unwrap_or("cloudgroups");
    if instance_manager != "cloudgroups" && instance_manager != "karpenter" {
        errors.push(format!(
            "--instance-manager {instance_manager}: must be cloudgroups or karpenter"
        ));
    }
    if instance_manager == "karpenter" && options.discovery_store.is_none() {
        errors.push("--instance-manager karpenter: needs --discovery-store (Karpenter uses IAM roles for service accounts)".into());
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let version = version.expect("checked above");

    // Subnets: per zone, in kops's order (primary subnets, then dual-stack, then utility).
    let mut subnets: Vec<crate::ClusterSubnetSpec> = Vec::new();
    let primary_type = if options.ipv6 || topology == "private" {
        "Private"
    } else {
        "Public"
    };
    for (i, zone) in options.zones.iter().enumerate() {
        let mut subnet = subnet_spec(zone, zone, primary_type);
        if let Some(id) = options.subnet_ids.get(i) {
            subnet.id = Some(id.clone());
        }
        // One zone in an existing VPC: the subnet takes the whole network, as kops does,
        // unless utility subnets need a share of it.
        if options.network_id.is_some()
            && options.subnet_ids.is_empty()
            && networks.len() == 1
            && options.zones.len() == 1
            && primary_type == "Public"
        {
            subnet.cidr = Some(networks[0].to_string());
        }
        subnets.push(subnet);
    }
    if options.ipv6 {
        for zone in &options.zones {
            subnets.push(subnet_spec(&format!("dualstack-{zone}"), zone, "DualStack"));
        }
    }
    if options.ipv6 || topology == "private" {
        for (i, zone) in options.zones.iter().enumerate() {
            let mut subnet = subnet_spec(&format!("utility-{zone}"), zone, "Utility");
            subnet.id = options.utility_subnet_ids.get(i).cloned();
            subnets.push(subnet);
        }
    }
    if let Some(network) = networks.first() {
        if options.subnet_ids.is_empty() {
            if let Err(e) = cidr::allocate_subnets(*network, &mut subnets, options.ipv6) {
                return Err(vec![format!("--network-cidr {network}: {e}")]);
            }
        }
    }
    // Each additional network CIDR becomes one more subnet, round-robin over the zones.
    let mut extra_subnets: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (i, network) in networks.iter().enumerate().skip(1) {
        let zone = &options.zones[(i - 1) % options.zones.len()];
        let name = format!("{zone}-{i}");
        let mut subnet = subnet_spec(&name, zone, primary_type);
        subnet.cidr = Some(network.to_string());
        subnets.push(subnet);
        extra_subnets.entry(zone.clone()).or_default().push(name);
    }
    if options.ipv6 {
        for (i, subnet) in subnets.iter_mut().enumerate() {
            subnet.ipv6_cidr = Some(format!("/64#{i:x}"));
        }
    }
    let control_plane_subnet = |zone: &str| {
        if options.ipv6 {
            format!("dualstack-{zone}")
        } else {
            zone.to_string()
        }
    };

    // Instance groups.
    let timestamp = options.creation_timestamp.clone();
    let mut groups = Vec::new();
    let control_plane_count = options
        .control_plane_count
        .map(|c| c as usize)
        .unwrap_or(control_plane_zones.len());
    let control_plane_type = options
        .control_plane_size
        .clone()
        .unwrap_or_else(|| versions::DEFAULT_CONTROL_PLANE_MACHINE_TYPE.into());
    let node_type = options
        .node_size
        .clone()
        .unwrap_or_else(|| versions::DEFAULT_NODE_MACHINE_TYPE.into());
    let image_for = |specific: &Option<String>, machine_type: &str| {
        specific
            .clone()
            .or_else(|| options.image.clone())
            .unwrap_or_else(|| {
                versions::default_image(&version, versions::architecture(machine_type))
            })
    };
    let mut per_zone: BTreeMap<&str, usize> = BTreeMap::new();
    let control_plane_assignments: Vec<&str> = (0..control_plane_count)
        .map(|i| control_plane_zones[i % control_plane_zones.len()].as_str())
        .collect();
    for zone in &control_plane_assignments {
        *per_zone.entry(zone).or_default() += 1;
    }
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    let group_names: Vec<String> = control_plane_assignments
        .iter()
        .map(|zone| {
            let n = seen.entry(zone).or_default();
            *n += 1;
            match per_zone[zone] > 1 {
                true => format!("control-plane-{zone}-{n}"),
                false => format!("control-plane-{zone}"),
            }
        })
        .collect();
    let etcd_members: Vec<serde_json::Value> = group_names
        .iter()
        .zip(etcd_member_names(&group_names))
        .map(|(group, name)| {
            let mut member = json!({"instanceGroup": group, "name": name});
            if options.encrypt_etcd_storage.unwrap_or(true) {
                member["encryptedVolume"] = json!(true);
            }
            if let Some(volume_type) = &options.etcd_storage_type {
                member["volumeType"] = json!(volume_type);
            }
            member
        })
        .collect();
    for (zone, group_name) in control_plane_assignments.iter().zip(&group_names) {
        let mut spec = json!({
            "image": image_for(&options.control_plane_image, &control_plane_type),
            "machineType": control_plane_type,
            "maxSize": 1, "minSize": 1,
            "role": "Master",
            "subnets": [control_plane_subnet(zone)],
        });
        if !options.control_plane_security_groups.is_empty() {
            spec["additionalSecurityGroups"] = json!(options.control_plane_security_groups);
        }
        if let Some(size) = options.control_plane_volume_size {
            spec["rootVolumeSize"] = json!(size);
        }
        groups.push(instance_group(&name, group_name, spec, &timestamp));
    }
    if options.bastion {
        let bastion_type = versions::DEFAULT_BASTION_MACHINE_TYPE;
        let spec = json!({
            "image": image_for(&None, bastion_type),
            "machineType": bastion_type,
            "maxSize": 1, "minSize": 1,
            "role": "Bastion",
            "subnets": options.zones,
        });
        groups.push(instance_group(&name, "bastions", spec, &timestamp));
    }
    let node_count = options
        .node_count
        .map(|c| c as usize)
        .unwrap_or(options.zones.len());
    let node_security_groups = |spec: &mut Value| {
        if !options.node_security_groups.is_empty() {
            spec["additionalSecurityGroups"] = json!(options.node_security_groups);
        }
        if let Some(size) = options.node_volume_size {
            spec["rootVolumeSize"] = json!(size);
        }
    };
    if instance_manager == "karpenter" {
        let mut spec = json!({
            "image": image_for(&options.node_image, &node_type),
            "manager": "Karpenter",
            "minSize": node_count,
            "role": "Node",
            "subnets": options.zones,
        });
        node_security_groups(&mut spec);
        groups.push(instance_group(&name, "nodes", spec, &timestamp));
    } else {
        let zones = options.zones.len();
        for (i, zone) in options.zones.iter().enumerate() {
            let count = node_count / zones + usize::from(i < node_count % zones);
            if count == 0 {
                continue;
            }
            let subnets = extra_subnets
                .get(zone)
                .cloned()
                .unwrap_or_else(|| vec![zone.clone()]);
            let mut spec = json!({
                "image": image_for(&options.node_image, &node_type),
                "machineType": node_type,
                "maxSize": count, "minSize": count,
                "role": "Node",
                "subnets": subnets,
            });
            node_security_groups(&mut spec);
            groups.push(instance_group(
                &name,
                &format!("nodes-{zone}"),
                spec,
                &timestamp,
            ));
        }
    }

    // The cluster.
    let etcd_names = if options.etcd_clusters.is_empty() {
        vec!["main".to_string(), "events".to_string()]
    } else {
        options.etcd_clusters.clone()
    };
    let etcd_clusters: Vec<Value> = etcd_names
        .iter()
        .map(|etcd| {
            json!({
                "cpuRequest": if etcd == "main" { "200m" } else { "100m" },
                "etcdMembers": etcd_members,
                "manager": {"backupRetentionDays": 90},
                "memoryRequest": "100Mi",
                "name": etcd,
            })
        })
        .collect();
    let any_access = || json!(["0.0.0.0/0", "::/0"]);
    let access = |given: &Vec<String>| {
        if given.is_empty() {
            any_access()
        } else {
            json!(given)
        }
    };
    let mut spec = json!({
        "api": {"loadBalancer": {"class": "Network", "type": api_lb_type}},
        "authorization": {"rbac": {}},
        "channel": options.channel.clone().unwrap_or_else(|| "stable".into()),
        "cloudProvider": "aws",
        "etcdClusters": etcd_clusters,
        "iam": {"allowContainerRegistry": true, "legacy": false},
        "kubelet": {"anonymousAuth": false},
        "kubernetesApiAccess": access(&options.admin_access),
        "kubernetesVersion": version_text,
        "networking": networking_spec(networking),
        "nonMasqueradeCIDR": if options.ipv6 { "::/0" } else { "100.64.0.0/10" },
        // As kops: `--admin-access` restricts SSH too, unless `--ssh-access` says otherwise.
        "sshAccess": access(if options.ssh_access.is_empty() {
            &options.admin_access
        } else {
            &options.ssh_access
        }),
        "subnets": serde_json::to_value(&subnets).expect("subnets serialize"),
        "topology": {"dns": {"type": dns}},
    });
    if let Some(network) = networks.first() {
        spec["networkCIDR"] = json!(network.to_string());
    }
    if networks.len() > 1 {
        spec["additionalNetworkCIDRs"] = json!(networks[1..]
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>());
    }
    if let Some(id) = &options.network_id {
        spec["networkID"] = json!(id);
    }
    if let Some(zone) = &options.dns_zone {
        spec["dnsZone"] = json!(zone);
    }
    if let Some(base) = &options.config_base {
        spec["configBase"] = json!(base);
    }
    if let Some(labels) = cloud_labels {
        spec["cloudLabels"] = json!(labels);
    }
    if options.bastion && dns != "None" {
        spec["topology"]["bastion"] = json!({"bastionPublicName": format!("bastion.{name}")});
    }
    if networking.starts_with("cilium") {
        spec["kubeProxy"] = json!({"enabled": false});
    }
    if options.ipv6 {
        spec["cloudControllerManager"] = json!({});
    }
    if !feature_gates.is_empty() {
        for component in [
            "kubeAPIServer",
            "kubeControllerManager",
            "kubeProxy",
            "kubeScheduler",
            "kubelet",
        ] {
            if spec.get(component).is_none() {
                spec[component] = json!({});
            }
            spec[component]["featureGates"] = json!(feature_gates);
        }
    }
    if let Some(store) = &options.discovery_store {
        spec["serviceAccountIssuerDiscovery"] = json!({
            "discoveryStore": format!("{}/{name}", store.trim_end_matches('/')),
            "enableAWSOIDCProvider": true,
        });
        spec["iam"]["useServiceAccountExternalPermissions"] = json!(true);
    }
    if instance_manager == "karpenter" {
        spec["karpenter"] = json!({"enabled": true});
    }
    let mut metadata = json!({"name": name});
    if let Some(ts) = &timestamp {
        metadata["creationTimestamp"] = json!(ts);
    }
    let mut cluster_value = json!({"apiVersion": crate::API_VERSION, "kind": "Cluster", "metadata": metadata, "spec": spec});

    // --set / --unset apply to the cluster document (`cluster.spec.…` or `spec.…`).
    let schema = serde_json::to_value(schemars::schema_for!(Cluster)).expect("schema serializes");
    for assignment in &options.sets {
        let result = assignment
            .split_once('=')
            .ok_or_else(|| format!("--set {assignment}: expected path=value"))
            .and_then(|(path, value)| {
                let path = path.strip_prefix("cluster.").unwrap_or(path);
                paths::set(&mut cluster_value, &schema, path, value)
            });
        if let Err(e) = result {
            errors.push(format!("--set {assignment}: {e}"));
        }
    }
    for path in &options.unsets {
        let trimmed = path.strip_prefix("cluster.").unwrap_or(path);
        if let Err(e) = paths::unset(&mut cluster_value, trimmed) {
            errors.push(format!("--unset {path}: {e}"));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let cluster: Cluster =
        serde_json::from_value(cluster_value).map_err(|e| vec![format!("--set: {e}")])?;
    Ok((cluster, groups))
}

fn subnet_spec(name: &str, zone: &str, kind: &str) -> crate::ClusterSubnetSpec {
    crate::ClusterSubnetSpec {
        name: Some(name.into()),
        zone: Some(zone.into()),
        r#type: Some(kind.into()),
        ..Default::default()
    }
}

/// etcd member names as kops gives them, since they reach volume names and tags: the control
/// plane groups' names without their `control-plane-` (or `master-`) prefix, less the leading
/// characters they all share (at least one character stays in the first), and `etcd-` before
/// a name that starts with a digit. Three zones: `a`, `b`, `c`; three groups in one zone:
/// `etcd-1`..`etcd-3`; five over two zones: `a-1`, `b-1`, `a-2`, `b-2`, `a-3`.
fn etcd_member_names(groups: &[String]) -> Vec<String> {
    let mut names: Vec<&str> = groups
        .iter()
        .map(|g| {
            g.strip_prefix("control-plane-")
                .or_else(|| g.strip_prefix("master-"))
                .unwrap_or(g)
        })
        .collect();
    while let Some(first) = names.first().filter(|n| n.chars().count() > 1) {
        let shared = first.chars().next().expect("not empty");
        if !names.iter().all(|n| n.starts_with(shared)) {
            break;
        }
        for name in &mut names {
            *name = &name[shared.len_utf8()..];
        }
    }
    names
        .into_iter()
        .map(|n| match n.starts_with(|c: char| c.is_ascii_digit()) {
            true => format!("etcd-{n}"),
            false => n.to_string(),
        })
        .collect()
}

fn instance_group(
    cluster: &str,
    name: &str,
    mut spec: Value,
    timestamp: &Option<String>,
) -> InstanceGroup {
    spec["nodeLabels"] = json!({LABEL_INSTANCE_GROUP: name});
    let mut metadata = json!({"name": name, "labels": {LABEL_CLUSTER: cluster}});
    if let Some(ts) = timestamp {
        metadata["creationTimestamp"] = json!(ts);
    }
    serde_json::from_value(json!({"apiVersion": crate::API_VERSION, "kind": "InstanceGroup", "metadata": metadata, "spec": spec}))
        .expect("instance group built from known fields")
}

fn networking_spec(networking: &str) -> Value {
    match networking {
        "cilium" => json!({"cilium": {"enableNodePort": true}}),
        "cilium-eni" => json!({"cilium": {"enableNodePort": true, "ipam": "eni"}}),
        "calico" => json!({"calico": {}}),
        "flannel" | "flannel-vxlan" => json!({"flannel": {"backend": "vxlan"}}),
        "kindnet" => json!({"kindnet": {}}),
        "amazonvpc" | "amazon-vpc-routed-eni" => json!({"amazonvpc": {}}),
        "kubenet" => json!({"kubenet": {}}),
        "external" => json!({"external": {}}),
        "canal" => json!({"canal": {}}),
        "kube-router" => json!({"kuberouter": {}}),
        _ => json!({"cni": {}}),
    }
}

/// Parses `--cloud-labels`: comma-separated `key=value` pairs; a value may be double-quoted to
/// hold commas (`dn="cn=a, dc=b"`), and spaces around pairs are dropped.
pub fn parse_cloud_labels(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut labels = BTreeMap::new();
    let mut fields = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    if quoted {
        return Err(format!("{text:?}: unterminated double quote"));
    }
    fields.push(current);
    for field in fields.iter().map(|f| f.trim()).filter(|f| !f.is_empty()) {
        let (key, value) = field
            .split_once('=')
            .ok_or_else(|| format!("{field:?} is not key=value"))?;
        labels.insert(key.trim().to_string(), value.trim().to_string());
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(zones: &[&str]) -> CreateClusterOptions {
        CreateClusterOptions {
            name: "a.example.com".into(),
            zones: zones.iter().map(|z| z.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn cloud_labels_with_quotes() {
        let labels = parse_cloud_labels(
            "Owner=John Doe,dn=\"cn=John Doe: dc=example dc=com\", foo/bar=fib+baz",
        )
        .unwrap();
        assert_eq!(labels["Owner"], "John Doe");
        assert_eq!(labels["dn"], "cn=John Doe: dc=example dc=com");
        assert_eq!(labels["foo/bar"], "fib+baz");
        assert!(parse_cloud_labels("a=\"b").is_err());
    }

    #[test]
    fn admin_access_restricts_ssh_unless_ssh_access_is_given() {
        let mut o = options(&["eu-west-1a"]);
        o.admin_access = vec!["10.0.0.0/8".into()];
        let (cluster, _) = create_cluster(&o).unwrap();
        assert_eq!(
            cluster.spec.ssh_access,
            Some(vec!["10.0.0.0/8".to_string()])
        );
        assert_eq!(
            cluster.spec.kubernetes_api_access,
            Some(vec!["10.0.0.0/8".to_string()])
        );
        o.ssh_access = vec!["192.168.0.0/16".into()];
        let (cluster, _) = create_cluster(&o).unwrap();
        assert_eq!(
            cluster.spec.ssh_access,
            Some(vec!["192.168.0.0/16".to_string()])
        );
        // Neither given: both open, as kops.
        let (cluster, _) = create_cluster(&options(&["eu-west-1a"])).unwrap();
        assert_eq!(cluster.spec.ssh_access, cluster.spec.kubernetes_api_access);
    }

    #[test]
    fn nodes_are_spread_over_zones() {
        let mut o = options(&["eu-west-1a", "eu-west-1b", "eu-west-1c"]);
        o.node_count = Some(10);
        let (_, groups) = create_cluster(&o).unwrap();
        let sizes: Vec<_> = groups
            .iter()
            .filter(|g| g.spec.role.as_deref() == Some("Node"))
            .map(|g| g.spec.min_size.unwrap())
            .collect();
        assert_eq!(sizes, vec![4, 3, 3]);
    }

    #[test]
    fn control_planes_sharing_a_zone_are_numbered() {
        let mut o = options(&["eu-west-1a"]);
        o.control_plane_count = Some(3);
        let (cluster, groups) = create_cluster(&o).unwrap();
        let names: Vec<_> = groups.iter().map(|g| g.metadata.name.as_str()).collect();
        assert_eq!(
            names[..3],
            [
                "control-plane-eu-west-1a-1",
                "control-plane-eu-west-1a-2",
                "control-plane-eu-west-1a-3"
            ]
        );
        let members = cluster.spec.etcd_clusters.unwrap()[0]
            .etcd_members
            .clone()
            .unwrap();
        assert_eq!(members[2].name.as_deref(), Some("etcd-3"));
    }

    #[test]
    fn etcd_members_are_named_by_zone_letter_and_index() {
        let mut o = options(&["eu-west-1a", "eu-west-1b"]);
        o.control_plane_count = Some(5);
        o.encrypt_etcd_storage = Some(false);
        o.etcd_storage_type = Some("io1".into());
        let (cluster, _) = create_cluster(&o).unwrap();
        for etcd in cluster.spec.etcd_clusters.unwrap() {
            let members = etcd.etcd_members.unwrap();
            let names: Vec<_> = members.iter().map(|m| m.name.as_deref().unwrap()).collect();
            assert_eq!(names, ["a-1", "b-1", "a-2", "b-2", "a-3"]);
            assert_eq!(
                members[1].instance_group.as_deref(),
                Some("control-plane-eu-west-1b-1")
            );
            assert!(members.iter().all(|m| m.encrypted_volume.is_none()));
            assert!(members
                .iter()
                .all(|m| m.volume_type.as_deref() == Some("io1")));
        }
        let groups = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        assert_eq!(
            etcd_member_names(&groups(&[
                "control-plane-us-east-1a",
                "control-plane-us-east-1b"
            ])),
            ["a", "b"]
        );
        assert_eq!(etcd_member_names(&groups(&["master-us-east-1a"])), ["a"]);
    }

    #[test]
    fn option_errors_are_all_reported() {
        let o = CreateClusterOptions {
            networking: Some("weave2".into()),
            topology: Some("mesh".into()),
            network_cidrs: vec!["10.0.0.1/16".into()],
            ..Default::default()
        };
        let errors = create_cluster(&o).unwrap_err();
        assert_eq!(errors.len(), 5, "{errors:#?}");
        assert!(errors
            .iter()
            .any(|e| e.contains("did you mean 10.0.0.0/16")));
    }
}
