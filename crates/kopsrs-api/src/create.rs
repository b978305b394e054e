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
    let choices = read_options(options)?;
    let (subnets, extra_subnets) = cluster_subnets(options, &choices)?;
    let (groups, etcd_members) = instance_groups(options, &choices, &extra_subnets);
    let spec = cluster_spec(options, &choices, &subnets, &etcd_members);
    let mut cluster_value = cluster_document(&choices.name, &options.creation_timestamp, spec);
    let errors = apply_sets_and_unsets(options, &mut cluster_value);
    if !errors.is_empty() {
        return Err(errors);
    }
    let cluster: Cluster =
        serde_json::from_value(cluster_value).map_err(|e| vec![format!("--set: {e}")])?;
    Ok((cluster, groups))
}

/// The values `create cluster` builds on, read from its options once every option is checked.
struct Choices<'a> {
    /// The cluster name, trimmed.
    name: String,
    /// `public` or `private`, lower case.
    topology: String,
    /// The `--networking` choice, one of [`NETWORKING_CHOICES`].
    networking: &'a str,
    /// `spec.topology.dns.type`: `Public`, `Private` or `None`.
    dns: &'static str,
    /// `spec.api.loadBalancer.type`: `Public` or `Internal`.
    api_lb_type: &'static str,
    /// The Kubernetes version as given (or the default), for `spec.kubernetesVersion`.
    version_text: String,
    /// The same version, parsed.
    version: KubernetesVersion,
    /// `networkCIDR` first, then `additionalNetworkCIDRs`.
    networks: Vec<Ipv4Net>,
    /// The zones control planes are placed in, round-robin.
    control_plane_zones: Vec<String>,
    /// `spec.cloudLabels`, when given.
    cloud_labels: Option<BTreeMap<String, String>>,
    /// Feature gate name to `"true"` or `"false"`, for every component.
    feature_gates: BTreeMap<String, Value>,
    /// `cloudgroups` or `karpenter`.
    instance_manager: &'a str,
}

/// Checks every option, in flag order, and reads the values the spec is built from; every
/// problem is returned at once.
fn read_options(options: &CreateClusterOptions) -> Result<Choices<'_>, Vec<String>> {
    let mut errors = Vec::new();
    let name = read_name(options, &mut errors);
    check_zones_and_cloud(options, &mut errors);
    let topology = read_topology(options, &mut errors);
    let networking = read_networking(options, &mut errors);
    let dns = read_dns(options, &name, &mut errors);
    let api_lb_type = read_api_load_balancer_type(options, &mut errors);
    let (version_text, version) = read_kubernetes_version(options, &mut errors);
    let networks = read_network_cidrs(options, &mut errors);
    let control_plane_zones = read_control_plane_zones(options, &mut errors);
    let cloud_labels = read_cloud_labels(options, &mut errors);
    let feature_gates = read_feature_gates(options, &mut errors);
    let instance_manager = read_instance_manager(options, &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Choices {
        name,
        topology,
        networking,
        dns,
        api_lb_type,
        version_text,
        version: version.expect("checked above"),
        networks,
        control_plane_zones,
        cloud_labels,
        feature_gates,
        instance_manager,
    })
}

/// The cluster name, trimmed; it must not be empty.
fn read_name(options: &CreateClusterOptions, errors: &mut Vec<String>) -> String {
    let name = options.name.trim().to_string();
    if name.is_empty() {
        errors.push(
            "cluster name: missing; pass --name (or a positional name, or set KOPS_CLUSTER_NAME)"
                .into(),
        );
    }
    name
}

/// At least one zone is named, and the cloud is AWS.
fn check_zones_and_cloud(options: &CreateClusterOptions, errors: &mut Vec<String>) {
    if options.zones.is_empty() {
        errors.push("--zones: missing; name at least one zone, e.g. --zones us-east-1a".into());
    }
    let cloud = options.cloud.as_deref().unwrap_or("aws");
    if cloud != "aws" {
        errors.push(format!(
            "--cloud {cloud}: not supported; kopsrs supports aws"
        ));
    }
}

/// `--topology`, lower case: `public` (the default) or `private`, which a bastion needs.
fn read_topology(options: &CreateClusterOptions, errors: &mut Vec<String>) -> String {
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
    topology
}

/// `--networking`: one of [`NETWORKING_CHOICES`]; `cilium` by default.
fn read_networking<'a>(options: &'a CreateClusterOptions, errors: &mut Vec<String>) -> &'a str {
    let networking = options.networking.as_deref().unwrap_or("cilium");
    if !NETWORKING_CHOICES.contains(&networking) {
        errors.push(format!(
            "--networking {networking}: unknown; choose one of {}",
            NETWORKING_CHOICES.join(", ")
        ));
    }
    networking
}

/// The DNS type from `--dns`; without it, public when a DNS zone is given for a name that is
/// not gossip (`.k8s.local`), else none.
fn read_dns(options: &CreateClusterOptions, name: &str, errors: &mut Vec<String>) -> &'static str {
    match options.dns.as_deref().map(str::to_ascii_lowercase) {
        Some(d) if d == "public" => "Public",
        Some(d) if d == "private" => "Private",
        Some(d) if d == "none" => "None",
        Some(d) => {
            errors.push(format!("--dns {d}: must be public, private or none"));
            "None"
        }
        None if options.dns_zone.is_some() && !name.ends_with(".k8s.local") => "Public",
        None => "None",
    }
}

/// The API load balancer type from `--api-loadbalancer-type`: public (the default) or internal.
fn read_api_load_balancer_type(
    options: &CreateClusterOptions,
    errors: &mut Vec<String>,
) -> &'static str {
    match options
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
    }
}

/// `--kubernetes-version` (or the default) as given and parsed; `None` when it does not parse.
fn read_kubernetes_version(
    options: &CreateClusterOptions,
    errors: &mut Vec<String>,
) -> (String, Option<KubernetesVersion>) {
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
    (version_text, version)
}

/// The network CIDRs: those given, each an IPv4 network without host bits; none given and no
/// existing VPC or subnets, kops's `172.20.0.0/16`.
fn read_network_cidrs(options: &CreateClusterOptions, errors: &mut Vec<String>) -> Vec<Ipv4Net> {
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
    networks
}

/// The control-plane zones: those given, each one of `--zones`; else the first
/// `--control-plane-count` zones (at least one).
fn read_control_plane_zones(
    options: &CreateClusterOptions,
    errors: &mut Vec<String>,
) -> Vec<String> {
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
    control_plane_zones
}

/// `--cloud-labels`, as [`parse_cloud_labels`] reads them.
fn read_cloud_labels(
    options: &CreateClusterOptions,
    errors: &mut Vec<String>,
) -> Option<BTreeMap<String, String>> {
    match options
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
    }
}

/// `--kubernetes-feature-gates`: `Name` or `+Name` on, `-Name` off; a name is alphanumeric.
fn read_feature_gates(
    options: &CreateClusterOptions,
    errors: &mut Vec<String>,
) -> BTreeMap<String, Value> {
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
    feature_gates
}

/// `--instance-manager`: `cloudgroups` (the default) or `karpenter`, which needs a discovery
/// store.
fn read_instance_manager<'a>(
    options: &'a CreateClusterOptions,
    errors: &mut Vec<String>,
) -> &'a str {
    let instance_manager = options.instance_manager.as_deref().unwrap_or("cloudgroups");
    if instance_manager != "cloudgroups" && instance_manager != "karpenter" {
        errors.push(format!(
            "--instance-manager {instance_manager}: must be cloudgroups or karpenter"
        ));
    }
    if instance_manager == "karpenter" && options.discovery_store.is_none() {
        errors.push("--instance-manager karpenter: needs --discovery-store (Karpenter uses IAM roles for service accounts)".into());
    }
    instance_manager
}

/// Per zone, the names of the subnets taken from additional network CIDRs.
type ZoneSubnets = BTreeMap<String, Vec<String>>;

/// The cluster's subnets in kops's order, with their CIDRs allocated from the network CIDR
/// (unless existing subnets are used), and per zone the names of the subnets taken from
/// additional network CIDRs, where that zone's nodes go.
fn cluster_subnets(
    options: &CreateClusterOptions,
    choices: &Choices,
) -> Result<(Vec<crate::ClusterSubnetSpec>, ZoneSubnets), Vec<String>> {
    let primary_type = if options.ipv6 || choices.topology == "private" {
        "Private"
    } else {
        "Public"
    };
    let mut subnets = zone_subnets(options, choices, primary_type);
    if let Some(network) = choices.networks.first() {
        if options.subnet_ids.is_empty() {
            if let Err(e) = cidr::allocate_subnets(*network, &mut subnets, options.ipv6) {
                return Err(vec![format!("--network-cidr {network}: {e}")]);
            }
        }
    }
    let extra_subnets =
        additional_network_subnets(options, &choices.networks, primary_type, &mut subnets);
    if options.ipv6 {
        for (i, subnet) in subnets.iter_mut().enumerate() {
            subnet.ipv6_cidr = Some(format!("/64#{i:x}"));
        }
    }
    Ok((subnets, extra_subnets))
}

/// The subnets of the zones: each zone's primary subnet, then (IPv6) a dual-stack subnet per
/// zone, then (IPv6 or private topology) a utility subnet per zone.
fn zone_subnets(
    options: &CreateClusterOptions,
    choices: &Choices,
    primary_type: &str,
) -> Vec<crate::ClusterSubnetSpec> {
    let networks = &choices.networks;
    let mut subnets: Vec<crate::ClusterSubnetSpec> = Vec::new();
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
    if options.ipv6 || choices.topology == "private" {
        for (i, zone) in options.zones.iter().enumerate() {
            let mut subnet = subnet_spec(&format!("utility-{zone}"), zone, "Utility");
            subnet.id = options.utility_subnet_ids.get(i).cloned();
            subnets.push(subnet);
        }
    }
    subnets
}

/// Each additional network CIDR becomes one more subnet, round-robin over the zones; returns
/// the names of those subnets per zone.
fn additional_network_subnets(
    options: &CreateClusterOptions,
    networks: &[Ipv4Net],
    primary_type: &str,
    subnets: &mut Vec<crate::ClusterSubnetSpec>,
) -> ZoneSubnets {
    let mut extra_subnets: ZoneSubnets = BTreeMap::new();
    for (i, network) in networks.iter().enumerate().skip(1) {
        let zone = &options.zones[(i - 1) % options.zones.len()];
        let name = format!("{zone}-{i}");
        let mut subnet = subnet_spec(&name, zone, primary_type);
        subnet.cidr = Some(network.to_string());
        subnets.push(subnet);
        extra_subnets.entry(zone.clone()).or_default().push(name);
    }
    extra_subnets
}

/// The instance groups (control planes, the bastion when asked for, then nodes), with the etcd
/// members the control planes carry.
fn instance_groups(
    options: &CreateClusterOptions,
    choices: &Choices,
    extra_subnets: &ZoneSubnets,
) -> (Vec<InstanceGroup>, Vec<Value>) {
    let (zones, group_names) = control_plane_group_names(options, &choices.control_plane_zones);
    let etcd_members = etcd_members(options, &group_names);
    let mut groups = control_plane_groups(options, choices, &zones, &group_names);
    if options.bastion {
        groups.push(bastion_group(options, choices));
    }
    groups.extend(node_groups(options, choices, extra_subnets));
    (groups, etcd_members)
}

/// The image of a group: its role's image flag, else `--image`, else the default image for the
/// machine type's architecture.
fn group_image(
    options: &CreateClusterOptions,
    version: &KubernetesVersion,
    specific: &Option<String>,
    machine_type: &str,
) -> String {
    specific
        .clone()
        .or_else(|| options.image.clone())
        .unwrap_or_else(|| versions::default_image(version, versions::architecture(machine_type)))
}

/// The zone of each control plane (round-robin over the control-plane zones) and its group
/// name: `control-plane-<zone>`, numbered `-1`, `-2`, … when a zone has more than one.
fn control_plane_group_names<'z>(
    options: &CreateClusterOptions,
    control_plane_zones: &'z [String],
) -> (Vec<&'z str>, Vec<String>) {
    let control_plane_count = options
        .control_plane_count
        .map(|c| c as usize)
        .unwrap_or(control_plane_zones.len());
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
    (control_plane_assignments, group_names)
}

/// One etcd member per control-plane group, encrypted unless `--encrypt-etcd-storage=false`,
/// with `--etcd-storage-type` as its volume type.
fn etcd_members(options: &CreateClusterOptions, group_names: &[String]) -> Vec<Value> {
    group_names
        .iter()
        .zip(etcd_member_names(group_names))
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
        .collect()
}

/// One control-plane group per control plane, of size one, in its zone's subnet (the
/// dual-stack one with IPv6).
fn control_plane_groups(
    options: &CreateClusterOptions,
    choices: &Choices,
    zones: &[&str],
    group_names: &[String],
) -> Vec<InstanceGroup> {
    let control_plane_type = options
        .control_plane_size
        .clone()
        .unwrap_or_else(|| versions::DEFAULT_CONTROL_PLANE_MACHINE_TYPE.into());
    let control_plane_subnet = |zone: &str| {
        if options.ipv6 {
            format!("dualstack-{zone}")
        } else {
            zone.to_string()
        }
    };
    let mut groups = Vec::new();
    for (zone, group_name) in zones.iter().zip(group_names) {
        let mut spec = json!({
            "image": group_image(options, &choices.version, &options.control_plane_image, &control_plane_type),
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
        groups.push(instance_group(
            &choices.name,
            group_name,
            spec,
            &options.creation_timestamp,
        ));
    }
    groups
}

/// The `bastions` group: one bastion over all the zones.
fn bastion_group(options: &CreateClusterOptions, choices: &Choices) -> InstanceGroup {
    let bastion_type = versions::DEFAULT_BASTION_MACHINE_TYPE;
    let spec = json!({
        "image": group_image(options, &choices.version, &None, bastion_type),
        "machineType": bastion_type,
        "maxSize": 1, "minSize": 1,
        "role": "Bastion",
        "subnets": options.zones,
    });
    instance_group(&choices.name, "bastions", spec, &options.creation_timestamp)
}

/// The worker groups: with Karpenter one `nodes` group over all zones; else a `nodes-<zone>`
/// group per zone with its share of `--node-count` (zones with none get no group).
fn node_groups(
    options: &CreateClusterOptions,
    choices: &Choices,
    extra_subnets: &ZoneSubnets,
) -> Vec<InstanceGroup> {
    let node_type = options
        .node_size
        .clone()
        .unwrap_or_else(|| versions::DEFAULT_NODE_MACHINE_TYPE.into());
    let image = group_image(options, &choices.version, &options.node_image, &node_type);
    let node_count = options
        .node_count
        .map(|c| c as usize)
        .unwrap_or(options.zones.len());
    let mut groups = Vec::new();
    if choices.instance_manager == "karpenter" {
        let mut spec = json!({
            "image": image,
            "manager": "Karpenter",
            "minSize": node_count,
            "role": "Node",
            "subnets": options.zones,
        });
        add_node_options(options, &mut spec);
        groups.push(instance_group(
            &choices.name,
            "nodes",
            spec,
            &options.creation_timestamp,
        ));
        return groups;
    }
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
            "image": image,
            "machineType": node_type,
            "maxSize": count, "minSize": count,
            "role": "Node",
            "subnets": subnets,
        });
        add_node_options(options, &mut spec);
        groups.push(instance_group(
            &choices.name,
            &format!("nodes-{zone}"),
            spec,
            &options.creation_timestamp,
        ));
    }
    groups
}

/// `--node-security-groups` and `--node-volume-size` on a worker group's spec.
fn add_node_options(options: &CreateClusterOptions, spec: &mut Value) {
    if !options.node_security_groups.is_empty() {
        spec["additionalSecurityGroups"] = json!(options.node_security_groups);
    }
    if let Some(size) = options.node_volume_size {
        spec["rootVolumeSize"] = json!(size);
    }
}

/// The cluster's spec: kops's fixed choices, the options, then the optional sections.
fn cluster_spec(
    options: &CreateClusterOptions,
    choices: &Choices,
    subnets: &[crate::ClusterSubnetSpec],
    etcd_members: &[Value],
) -> Value {
    let access = |given: &Vec<String>| {
        if given.is_empty() {
            json!(["0.0.0.0/0", "::/0"])
        } else {
            json!(given)
        }
    };
    let mut spec = json!({
        "api": {"loadBalancer": {"class": "Network", "type": choices.api_lb_type}},
        "authorization": {"rbac": {}},
        "channel": options.channel.clone().unwrap_or_else(|| "stable".into()),
        "cloudProvider": "aws",
        "etcdClusters": etcd_clusters(options, etcd_members),
        "iam": {"allowContainerRegistry": true, "legacy": false},
        "kubelet": {"anonymousAuth": false},
        "kubernetesApiAccess": access(&options.admin_access),
        "kubernetesVersion": choices.version_text,
        "networking": networking_spec(choices.networking),
        "nonMasqueradeCIDR": if options.ipv6 { "::/0" } else { "100.64.0.0/10" },
        // As kops: `--admin-access` restricts SSH too, unless `--ssh-access` says otherwise.
        "sshAccess": access(if options.ssh_access.is_empty() {
            &options.admin_access
        } else {
            &options.ssh_access
        }),
        "subnets": serde_json::to_value(subnets).expect("subnets serialize"),
        "topology": {"dns": {"type": choices.dns}},
    });
    add_network_fields(options, &choices.networks, &mut spec);
    add_optional_fields(options, choices, &mut spec);
    add_feature_gates(&choices.feature_gates, &mut spec);
    add_service_account_issuer(options, choices, &mut spec);
    spec
}

/// The etcd clusters (`--etcd-clusters`, else `main` and `events`), each with every member.
fn etcd_clusters(options: &CreateClusterOptions, etcd_members: &[Value]) -> Vec<Value> {
    let etcd_names = if options.etcd_clusters.is_empty() {
        vec!["main".to_string(), "events".to_string()]
    } else {
        options.etcd_clusters.clone()
    };
    etcd_names
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
        .collect()
}

/// `networkCIDR`, `additionalNetworkCIDRs` and `networkID`, when there are any.
fn add_network_fields(options: &CreateClusterOptions, networks: &[Ipv4Net], spec: &mut Value) {
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
}

/// The sections only some clusters have: DNS zone, config base, cloud labels, the bastion's
/// public name (with DNS), no kube-proxy under Cilium, a cloud controller manager for IPv6.
fn add_optional_fields(options: &CreateClusterOptions, choices: &Choices, spec: &mut Value) {
    if let Some(zone) = &options.dns_zone {
        spec["dnsZone"] = json!(zone);
    }
    if let Some(base) = &options.config_base {
        spec["configBase"] = json!(base);
    }
    if let Some(labels) = &choices.cloud_labels {
        spec["cloudLabels"] = json!(labels);
    }
    if options.bastion && choices.dns != "None" {
        spec["topology"]["bastion"] =
            json!({"bastionPublicName": format!("bastion.{}", choices.name)});
    }
    if choices.networking.starts_with("cilium") {
        spec["kubeProxy"] = json!({"enabled": false});
    }
    if options.ipv6 {
        spec["cloudControllerManager"] = json!({});
    }
}

/// The feature gates, set on every Kubernetes component.
fn add_feature_gates(feature_gates: &BTreeMap<String, Value>, spec: &mut Value) {
    if feature_gates.is_empty() {
        return;
    }
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

/// With a discovery store, the service-account issuer published there (IRSA); with
/// Karpenter, Karpenter enabled.
fn add_service_account_issuer(options: &CreateClusterOptions, choices: &Choices, spec: &mut Value) {
    if let Some(store) = &options.discovery_store {
        spec["serviceAccountIssuerDiscovery"] = json!({
            "discoveryStore": format!("{}/{}", store.trim_end_matches('/'), choices.name),
            "enableAWSOIDCProvider": true,
        });
        spec["iam"]["useServiceAccountExternalPermissions"] = json!(true);
    }
    if choices.instance_manager == "karpenter" {
        spec["karpenter"] = json!({"enabled": true});
    }
}

/// The Cluster document around `spec`, with its creation time when the caller gave one.
fn cluster_document(name: &str, timestamp: &Option<String>, spec: Value) -> Value {
    let mut metadata = json!({"name": name});
    if let Some(ts) = timestamp {
        metadata["creationTimestamp"] = json!(ts);
    }
    json!({"apiVersion": crate::API_VERSION, "kind": "Cluster", "metadata": metadata, "spec": spec})
}

/// Applies `--set` then `--unset` to the cluster document (`cluster.spec.…` or `spec.…`);
/// returns every one that failed.
fn apply_sets_and_unsets(options: &CreateClusterOptions, cluster_value: &mut Value) -> Vec<String> {
    let mut errors = Vec::new();
    let schema = serde_json::to_value(schemars::schema_for!(Cluster)).expect("schema serializes");
    for assignment in &options.sets {
        let result = assignment
            .split_once('=')
            .ok_or_else(|| format!("--set {assignment}: expected path=value"))
            .and_then(|(path, value)| {
                let path = path.strip_prefix("cluster.").unwrap_or(path);
                paths::set(cluster_value, &schema, path, value)
            });
        if let Err(e) = result {
            errors.push(format!("--set {assignment}: {e}"));
        }
    }
    for path in &options.unsets {
        let trimmed = path.strip_prefix("cluster.").unwrap_or(path);
        if let Err(e) = paths::unset(cluster_value, trimmed) {
            errors.push(format!("--unset {path}: {e}"));
        }
    }
    errors
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
