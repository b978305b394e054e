//! Validation of a cluster and its instance groups: every problem at once, with field paths.
//!
//! Messages follow one shape: `<path>: <value> <what is wrong>`, with a hint saying what to do,
//! e.g. `spec.subnets[1].cidr: 10.1.0.0/24 is not inside spec.networkCIDR 172.20.0.0/16`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use ipnet::{IpNet, Ipv4Net};

use crate::cidr::overlaps;
use crate::complete::default_pod_cidr;
use crate::document::{Cluster, InstanceGroup};
use crate::versions::{KubernetesVersion, SUPPORTED_MINORS};
use crate::{ClusterSpec, ClusterSubnetSpec, EtcdMemberSpec, Role};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Worth telling the user; the spec can still be used.
    Warning,
    /// The spec is invalid and must not be used.
    Error,
}

/// One finding, with the object and field it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationIssue {
    /// Whether this finding makes the spec invalid.
    pub severity: Severity,
    /// `Cluster/name` or `InstanceGroup/name`.
    pub object: String,
    /// Field path inside the object, e.g. `spec.subnets[1].cidr`.
    pub path: String,
    /// What is wrong, usually starting with the value: `10.1.0.0/24 is not inside ...`.
    pub message: String,
    /// What to do about it; [`validate`] always sets one.
    pub hint: Option<String>,
}

impl fmt::Display for ValidationIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.object, self.path, self.message)
    }
}

/// Everything validation found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidationReport {
    /// The findings, errors and warnings together, in the order they were found.
    pub issues: Vec<ValidationIssue>,
}

impl ValidationReport {
    /// The findings of [`Severity::Error`].
    pub fn errors(&self) -> impl Iterator<Item = &ValidationIssue> {
        self.issues.iter().filter(|i| i.severity == Severity::Error)
    }

    /// The findings of [`Severity::Warning`].
    pub fn warnings(&self) -> impl Iterator<Item = &ValidationIssue> {
        self.issues
            .iter()
            .filter(|i| i.severity == Severity::Warning)
    }

    /// Whether any finding is an error, i.e. the spec must be refused.
    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }
}

struct Checker<'a> {
    object: String,
    report: &'a mut ValidationReport,
}

impl Checker<'_> {
    fn push(
        &mut self,
        severity: Severity,
        path: impl Into<String>,
        message: impl Into<String>,
        hint: Option<&str>,
    ) {
        self.report.issues.push(ValidationIssue {
            severity,
            object: self.object.clone(),
            path: path.into(),
            message: message.into(),
            hint: hint.map(str::to_string),
        });
    }

    fn error(&mut self, path: impl Into<String>, message: impl Into<String>, hint: &str) {
        self.push(Severity::Error, path, message, Some(hint));
    }

    fn warn(&mut self, path: impl Into<String>, message: impl Into<String>, hint: &str) {
        self.push(Severity::Warning, path, message, Some(hint));
    }
}

/// Whether `name` is a valid DNS subdomain (RFC 1123): lowercase labels of letters, digits and
/// `-`, each at most 63 characters, 253 in all.
pub fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Kubernetes's label value rule: at most 63 characters, empty or alphanumeric at both ends
/// with `-`, `_` and `.` between (apimachinery's `IsValidLabelValue`).
pub fn is_label_value(value: &str) -> bool {
    value.is_empty() || is_name_part(value)
}

fn is_name_part(text: &str) -> bool {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    text.len() <= 63
        && edge(text.chars().next())
        && edge(text.chars().last())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Kubernetes's qualified name rule for label and taint keys: `[prefix/]name`, the prefix a
/// DNS subdomain, the name as [`is_label_value`] but not empty (`IsQualifiedName`).
pub fn is_qualified_name(key: &str) -> bool {
    match key.split_once('/') {
        Some((prefix, name)) => is_dns_subdomain(prefix) && is_name_part(name),
        None => is_name_part(key),
    }
}

/// An availability zone name as AWS writes them (`us-east-1a`, `us-west-2-lax-1a`): lower
/// case letters, digits and `-`, ending in the zone letter, in a region [`region_of_zone`]
/// knows how to read. The zone reaches AWS calls and node scripts, so nothing else passes.
pub fn is_zone(zone: &str) -> bool {
    zone.ends_with(|c: char| c.is_ascii_lowercase())
        && zone
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && region_of_zone(zone).is_some()
}

/// The region of an availability zone: `us-east-1a` → `us-east-1`,
/// `us-west-2-lax-1a` → `us-west-2`.
pub fn region_of_zone(zone: &str) -> Option<String> {
    let mut parts = Vec::new();
    for part in zone.split('-') {
        if part.starts_with(|c: char| c.is_ascii_digit()) {
            let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
            let letter = &part[digits.len()..];
            if letter.len() != 1 && parts.len() < 2 {
                return None;
            }
            parts.push(digits);
            return (parts.len() >= 3).then(|| parts.join("-"));
        }
        parts.push(part.to_string());
    }
    None
}

fn parse_v4(text: &str) -> Result<Ipv4Net, String> {
    let net: Ipv4Net = text
        .parse()
        .map_err(|_| "is not an IPv4 CIDR".to_string())?;
    if net.trunc() != net {
        return Err(format!("has host bits set; did you mean {}?", net.trunc()));
    }
    Ok(net)
}

/// Validates a cluster with its instance groups. `complete_set` says the groups are all of the
/// cluster's (as for `update`), so a missing control plane is an error rather than a warning.
pub fn validate(
    cluster: &Cluster,
    groups: &[InstanceGroup],
    complete_set: bool,
) -> ValidationReport {
    let mut report = ValidationReport::default();
    let name = &cluster.metadata.name;
    let mut c = Checker {
        object: format!("Cluster/{name}"),
        report: &mut report,
    };
    let spec = &cluster.spec;

    check_cluster_name(&mut c, name);
    check_cloud_provider(&mut c, spec);
    check_kubernetes_version(&mut c, spec);
    let ranges = check_network_ranges(&mut c, spec);
    let subnet_names = check_subnets(&mut c, spec, &ranges);
    check_node_port_range(&mut c, spec);
    check_access_lists(&mut c, spec);
    check_additional_sans(&mut c, spec);
    check_service_accounts(&mut c, spec);
    check_dns_type(&mut c, spec);
    check_api_load_balancer(&mut c, spec);
    check_networking(&mut c, spec);
    check_group_names_unique(&mut c, groups);
    check_etcd_clusters(&mut c, spec, groups);
    check_control_plane_present(&mut c, groups, complete_set);

    for group in groups {
        validate_group(cluster, group, &subnet_names, &mut report);
    }
    report
}

/// The cluster's name is a fully-qualified DNS name.
fn check_cluster_name(c: &mut Checker<'_>, name: &str) {
    if !is_dns_subdomain(name) || !name.contains('.') {
        c.error(
            "metadata.name",
            format!("{name:?} is not a fully-qualified DNS name"),
            "use a name such as mycluster.example.com (or mycluster.k8s.local without DNS)",
        );
    }
}

/// The cloud provider, when given, is AWS.
fn check_cloud_provider(c: &mut Checker<'_>, spec: &ClusterSpec) {
    match spec.cloud_provider.as_deref() {
        Some("aws") | None => {}
        Some(other) => c.error(
            "spec.cloudProvider",
            format!("{other:?} is not supported"),
            "set cloudProvider: aws",
        ),
    }
}

/// The Kubernetes version is given, parses, and is a supported 1.x minor.
fn check_kubernetes_version(c: &mut Checker<'_>, spec: &ClusterSpec) {
    match spec.kubernetes_version.as_deref() {
        None => c.error(
            "spec.kubernetesVersion",
            "missing",
            "set a version such as v1.34.1",
        ),
        Some(text) => match KubernetesVersion::parse(text) {
            None => c.error(
                "spec.kubernetesVersion",
                format!("{text:?} is not a Kubernetes version"),
                "use the form v1.34.1",
            ),
            Some(v) if v.major != 1 || !SUPPORTED_MINORS.contains(&v.minor) => c.error(
                "spec.kubernetesVersion",
                format!("{text} is not supported"),
                &format!(
                    "use a 1.{}..1.{} version",
                    SUPPORTED_MINORS.start(),
                    SUPPORTED_MINORS.end()
                ),
            ),
            Some(_) => {}
        },
    }
}

/// The cluster's IPv4 ranges that parsed, each with the field it came from.
struct NetworkRanges {
    /// `spec.networkCIDR` and `spec.additionalNetworkCIDRs`.
    networks: Vec<(String, Ipv4Net)>,
    /// The pod and service ranges, given or defaulted from `spec.nonMasqueradeCIDR`.
    reserved: Vec<(String, Ipv4Net)>,
}

/// The network, non-masquerade, pod and service ranges parse, and the networks stay clear of
/// the pod and service ranges (unless the legacy layout puts them inside).
fn check_network_ranges(c: &mut Checker<'_>, spec: &ClusterSpec) -> NetworkRanges {
    let networks = check_network_cidrs(c, spec);
    let non_masquerade = check_non_masquerade_cidr(c, spec);
    let reserved = check_reserved_ranges(c, spec, non_masquerade);
    let legacy = non_masquerade
        .is_some_and(|n| crate::complete::legacy_non_masquerade(n, spec.network_cidr.as_deref()));
    for (path, net) in networks.iter().filter(|_| !legacy) {
        for (reserved_path, range) in &reserved {
            if overlaps(net, range) {
                c.error(path.clone(), format!("{net} overlaps {reserved_path} {range}"), "pick a network CIDR outside the pod and service ranges, or change spec.nonMasqueradeCIDR");
            }
        }
    }
    NetworkRanges { networks, reserved }
}

/// `spec.networkCIDR` is an IPv4 network (required unless the VPC or every subnet is
/// shared), and so is each of `spec.additionalNetworkCIDRs`; returns those that parse.
fn check_network_cidrs(c: &mut Checker<'_>, spec: &ClusterSpec) -> Vec<(String, Ipv4Net)> {
    let mut networks: Vec<(String, Ipv4Net)> = Vec::new();
    match spec.network_cidr.as_deref() {
        Some(text) => match parse_v4(text) {
            Ok(net) => networks.push(("spec.networkCIDR".into(), net)),
            Err(e) => c.error(
                "spec.networkCIDR",
                format!("{text} {e}"),
                "use a private range such as 172.20.0.0/16",
            ),
        },
        // With an existing VPC, or only shared subnets, the cloud supplies the network CIDR.
        None if spec.network_id.is_none()
            && !spec.subnets.iter().flatten().all(|s| s.id.is_some()) =>
        {
            c.error(
                "spec.networkCIDR",
                "missing",
                "set networkCIDR (e.g. 172.20.0.0/16), or networkID to use an existing VPC",
            )
        }
        None => {}
    }
    for (i, text) in spec.additional_network_cidrs.iter().flatten().enumerate() {
        let path = format!("spec.additionalNetworkCIDRs[{i}]");
        match parse_v4(text) {
            Ok(net) => networks.push((path, net)),
            Err(e) => c.error(
                path,
                format!("{text} {e}"),
                "use an IPv4 CIDR such as 10.1.0.0/16",
            ),
        }
    }
    networks
}

/// `spec.nonMasqueradeCIDR` is an IPv4 network or `::/0` (IPv6); returns the IPv4 one.
fn check_non_masquerade_cidr(c: &mut Checker<'_>, spec: &ClusterSpec) -> Option<Ipv4Net> {
    match spec.non_masquerade_cidr.as_deref() {
        Some("::/0") | None => None,
        Some(text) => match parse_v4(text) {
            Ok(net) => Some(net),
            Err(e) => {
                c.error(
                    "spec.nonMasqueradeCIDR",
                    format!("{text} {e}"),
                    "use 100.64.0.0/10 unless you need another range",
                );
                None
            }
        },
    }
}

/// `spec.podCIDR` and `spec.serviceClusterIPRange` are IPv4 networks (IPv6 ranges pass in an
/// IPv6 cluster); returns them, or their defaults from the non-masquerade range.
fn check_reserved_ranges(
    c: &mut Checker<'_>,
    spec: &ClusterSpec,
    non_masquerade: Option<Ipv4Net>,
) -> Vec<(String, Ipv4Net)> {
    let ipv6 = spec.non_masquerade_cidr.as_deref() == Some("::/0");
    let mut reserved: Vec<(String, Ipv4Net)> = Vec::new();
    for (path, given, default) in [
        (
            "spec.podCIDR",
            spec.pod_cidr.as_deref(),
            non_masquerade.map(default_pod_cidr),
        ),
        (
            "spec.serviceClusterIPRange",
            spec.service_cluster_ip_range.as_deref(),
            non_masquerade.map(|n| {
                crate::complete::default_service_cidr_for(n, spec.network_cidr.as_deref())
            }),
        ),
    ] {
        match given {
            Some(text) if !ipv6 || !text.contains(':') => match parse_v4(text) {
                Ok(net) => reserved.push((path.into(), net)),
                Err(e) => c.error(
                    path,
                    format!("{text} {e}"),
                    "use an IPv4 CIDR inside spec.nonMasqueradeCIDR",
                ),
            },
            Some(_) => {}
            None => reserved.extend(default.map(|net| (format!("{path} (default)"), net))),
        }
    }
    reserved
}

/// There is at least one subnet, and each is sound (see [`check_subnet`]); returns the
/// subnets' names.
fn check_subnets(
    c: &mut Checker<'_>,
    spec: &ClusterSpec,
    ranges: &NetworkRanges,
) -> BTreeSet<String> {
    let subnets = spec.subnets.as_deref().unwrap_or_default();
    if subnets.is_empty() {
        c.error(
            "spec.subnets",
            "no subnets",
            "add at least one subnet with name, zone and type (or use create cluster --zones)",
        );
    }
    let mut seen = SeenSubnets::default();
    for (i, subnet) in subnets.iter().enumerate() {
        check_subnet(c, &format!("spec.subnets[{i}]"), subnet, ranges, &mut seen);
    }
    seen.names
}

/// What the subnets checked so far have claimed.
#[derive(Default)]
struct SeenSubnets {
    /// Their names.
    names: BTreeSet<String>,
    /// Region to the path of the first zone in it.
    regions: BTreeMap<String, String>,
    /// Their CIDRs that parsed, with their paths.
    nets: Vec<(String, Ipv4Net)>,
}

/// One subnet: a unique name, a known type, a zone in the cluster's one region, a CIDR inside
/// the network and clear of the other subnets and the pod and service ranges, and a known
/// kind of egress.
fn check_subnet(
    c: &mut Checker<'_>,
    path: &str,
    subnet: &ClusterSubnetSpec,
    ranges: &NetworkRanges,
    seen: &mut SeenSubnets,
) {
    check_subnet_name(c, path, subnet, &mut seen.names);
    check_subnet_type(c, path, subnet);
    check_subnet_zone(c, path, subnet, &mut seen.regions);
    if let Some(text) = subnet.cidr.as_deref() {
        check_subnet_cidr(c, format!("{path}.cidr"), text, ranges, &mut seen.nets);
    }
    if let Some(egress) = subnet.egress.as_deref() {
        let ok = egress == "External"
            || ["nat-", "eipalloc-", "i-", "tgw-", "vpce-"]
                .iter()
                .any(|p| egress.starts_with(p));
        if !ok {
            c.error(format!("{path}.egress"), format!("{egress:?} is not an egress"), "use a NAT gateway (nat-…), an elastic IP (eipalloc-…), an instance (i-…) or External");
        }
    }
}

/// A subnet has a name no other subnet uses.
fn check_subnet_name(
    c: &mut Checker<'_>,
    path: &str,
    subnet: &ClusterSubnetSpec,
    names: &mut BTreeSet<String>,
) {
    match subnet.name.as_deref() {
        None | Some("") => c.error(
            format!("{path}.name"),
            "missing",
            "name every subnet (kops names them after their zone)",
        ),
        Some(n) if !names.insert(n.to_string()) => c.error(
            format!("{path}.name"),
            format!("{n:?} is used by another subnet"),
            "give each subnet a unique name",
        ),
        Some(_) => {}
    }
}

/// A subnet's type is Public, Private, Utility or DualStack.
fn check_subnet_type(c: &mut Checker<'_>, path: &str, subnet: &ClusterSubnetSpec) {
    match subnet.r#type.as_deref() {
        Some("Public" | "Private" | "Utility" | "DualStack") => {}
        Some(other) => c.error(
            format!("{path}.type"),
            format!("{other:?} is not a subnet type"),
            "use Public, Private, Utility or DualStack",
        ),
        None => c.error(
            format!("{path}.type"),
            "missing",
            "set type: Public, Private, Utility or DualStack",
        ),
    }
}

/// A subnet's zone is an availability zone in the same region as the first subnet's (a
/// shared subnet may leave it to AWS).
fn check_subnet_zone(
    c: &mut Checker<'_>,
    path: &str,
    subnet: &ClusterSubnetSpec,
    regions: &mut BTreeMap<String, String>,
) {
    match subnet.zone.as_deref() {
        // A shared subnet's zone is AWS's to know.
        None if subnet.id.is_some() => {}
        None => c.error(
            format!("{path}.zone"),
            "missing",
            "set the availability zone, e.g. us-east-1a",
        ),
        Some(zone) => match region_of_zone(zone).filter(|_| is_zone(zone)) {
            None => c.error(
                format!("{path}.zone"),
                format!("{zone:?} is not an availability zone"),
                "use a zone name such as us-east-1a",
            ),
            Some(region) => {
                if let Some((first_region, first_path)) =
                    regions.iter().next().map(|(r, p)| (r.clone(), p.clone()))
                {
                    if first_region != region {
                        c.error(
                            format!("{path}.zone"),
                            format!("{zone} is in region {region}, but {first_path} is in {first_region}"),
                            "put every subnet of a cluster in one region",
                        );
                    }
                }
                regions.entry(region).or_insert(format!("{path}.zone"));
            }
        },
    }
}

/// A subnet's CIDR is an IPv4 network inside one of the cluster's networks, overlapping no
/// earlier subnet and neither the pod nor the service range; a sound one joins `subnet_nets`.
fn check_subnet_cidr(
    c: &mut Checker<'_>,
    cidr_path: String,
    text: &str,
    ranges: &NetworkRanges,
    subnet_nets: &mut Vec<(String, Ipv4Net)>,
) {
    let networks = &ranges.networks;
    match parse_v4(text) {
        Err(e) => c.error(
            cidr_path,
            format!("{text} {e}"),
            "use an IPv4 CIDR inside spec.networkCIDR",
        ),
        Ok(net) => {
            if !networks.is_empty() && !networks.iter().any(|(_, n)| n.contains(&net)) {
                let (network_path, network) = &networks[0];
                c.error(
                    cidr_path.clone(),
                    format!("{net} is not inside {network_path} {network}"),
                    "pick a subnet CIDR inside the network CIDR, or change networkCIDR",
                );
            }
            for (other_path, other) in subnet_nets.iter() {
                if overlaps(&net, other) {
                    c.error(
                        cidr_path.clone(),
                        format!("{net} overlaps {other_path} {other}"),
                        "give each subnet its own range",
                    );
                }
            }
            for (reserved_path, range) in &ranges.reserved {
                if overlaps(&net, range) {
                    c.error(
                        cidr_path.clone(),
                        format!("{net} overlaps {reserved_path} {range}"),
                        "keep subnets outside the pod and service ranges",
                    );
                }
            }
            subnet_nets.push((cidr_path, net));
        }
    }
}

/// `spec.kubeAPIServer.serviceNodePortRange`, when given, is a `FIRST-LAST` port range.
fn check_node_port_range(c: &mut Checker<'_>, spec: &ClusterSpec) {
    if let Some(range) = spec
        .kube_api_server
        .as_ref()
        .and_then(|a| a.service_node_port_range.as_deref())
    {
        if parse_port_range(range).is_none() {
            c.error(
                "spec.kubeAPIServer.serviceNodePortRange",
                format!("{range:?} is not a port range"),
                "write FIRST-LAST, e.g. 30000-32767",
            );
        }
    }
}

/// Every entry of the SSH, API and node-port access lists is a CIDR or a prefix list.
fn check_access_lists(c: &mut Checker<'_>, spec: &ClusterSpec) {
    for (field, list) in [
        ("sshAccess", &spec.ssh_access),
        ("kubernetesApiAccess", &spec.kubernetes_api_access),
        ("nodePortAccess", &spec.node_port_access),
    ] {
        for (i, text) in list.iter().flatten().enumerate() {
            if text.starts_with("pl-") {
                continue;
            }
            if text.parse::<IpNet>().is_err() {
                c.error(
                    format!("spec.{field}[{i}]"),
                    format!("{text:?} is not a CIDR"),
                    "use a CIDR such as 203.0.113.0/24 or a prefix list (pl-…)",
                );
            }
        }
    }
}

/// `spec.additionalSans` are DNS names (a leading `*.` allowed) or IP addresses: they go into
/// the API server's certificate and kubeadm's configuration, where anything else (a
/// placeholder such as `@JOIN_TOKEN@`, YAML) has no business.
fn check_additional_sans(c: &mut Checker<'_>, spec: &ClusterSpec) {
    for (i, san) in spec.additional_sans.iter().flatten().enumerate() {
        let dns = san.strip_prefix("*.").unwrap_or(san);
        if san.parse::<std::net::IpAddr>().is_ok() || is_dns_subdomain(dns) {
            continue;
        }
        c.error(
            format!("spec.additionalSans[{i}]"),
            format!("{san:?} is neither a DNS name nor an IP address"),
            "use names such as api.internal.example.com or *.example.com, or addresses such as 10.0.0.10",
        );
    }
}

/// `spec.iam.serviceAccountExternalPermissions`: each a ServiceAccount's name (a DNS
/// subdomain) in a namespace (a DNS label, or a pattern of one with `*`): they name IAM roles
/// and go into trust policies.
fn check_service_accounts(c: &mut Checker<'_>, spec: &ClusterSpec) {
    let accounts = spec
        .iam
        .as_ref()
        .and_then(|i| i.service_account_external_permissions.as_ref());
    for (i, account) in accounts.into_iter().flatten().enumerate() {
        let path = format!("spec.iam.serviceAccountExternalPermissions[{i}]");
        let name = account.name.as_deref().unwrap_or_default();
        if !is_dns_subdomain(name) {
            c.error(
                format!("{path}.name"),
                format!("{name:?} is not a ServiceAccount name"),
                "use lowercase letters, digits, `-` and `.`, as Kubernetes names ServiceAccounts",
            );
        }
        let namespace = account.namespace.as_deref().unwrap_or_default();
        let pattern = namespace.replace('*', "x");
        if !is_dns_subdomain(&pattern) || pattern.contains('.') {
            c.error(
                format!("{path}.namespace"),
                format!("{namespace:?} is not a namespace"),
                "use lowercase letters, digits and `-` (and `*` as a wildcard)",
            );
        }
    }
}

/// `spec.topology.dns.type`, when given, is Public, Private or None.
fn check_dns_type(c: &mut Checker<'_>, spec: &ClusterSpec) {
    if let Some(kind) = spec
        .topology
        .as_ref()
        .and_then(|t| t.dns.as_ref())
        .and_then(|d| d.r#type.as_deref())
    {
        if !matches!(kind, "Public" | "Private" | "None") {
            c.error(
                "spec.topology.dns.type",
                format!("{kind:?} is not a DNS type"),
                "use Public, Private or None",
            );
        }
    }
}

/// The API load balancer's type, when given, is Public or Internal, and its class Network or
/// Classic.
fn check_api_load_balancer(c: &mut Checker<'_>, spec: &ClusterSpec) {
    let Some(lb) = spec.api.as_ref().and_then(|a| a.load_balancer.as_ref()) else {
        return;
    };
    if let Some(kind) = lb
        .r#type
        .as_deref()
        .filter(|k| !matches!(*k, "Public" | "Internal"))
    {
        c.error(
            "spec.api.loadBalancer.type",
            format!("{kind:?} is not a load balancer type"),
            "use Public or Internal",
        );
    }
    if let Some(class) = lb
        .class
        .as_deref()
        .filter(|k| !matches!(*k, "Network" | "Classic"))
    {
        c.error(
            "spec.api.loadBalancer.class",
            format!("{class:?} is not a load balancer class"),
            "use Network",
        );
    }
}

/// The network plugins kopsrs installs (the channel's CNI addons), as `spec.networking`
/// names them.
pub const NETWORKING_INSTALLED: [&str; 5] = ["cilium", "calico", "flannel", "kindnet", "amazonvpc"];

/// Providers kops knows that kopsrs installs nothing for (no entry in its channel): a
/// cluster with one would boot nodes that never turn Ready. `cni` (a plugin the user
/// installs), `kubenet` and `external` are the user's own choice and stay accepted.
const NETWORKING_NOT_INSTALLED: [&str; 8] = [
    "canal",
    "kuberouter",
    "weave",
    "romana",
    "kopeio",
    "lyftvpc",
    "gce",
    "classic",
];

/// At most one networking provider is set, and not one kopsrs installs nothing for.
fn check_networking(c: &mut Checker<'_>, spec: &ClusterSpec) {
    if let Some(networking) = &spec.networking {
        let chosen: Vec<String> = serde_json::to_value(networking)
            .ok()
            .and_then(|v| v.as_object().map(|m| m.keys().cloned().collect()))
            .unwrap_or_default();
        if chosen.len() > 1 {
            c.error(
                "spec.networking",
                format!("{} networking providers are set", chosen.len()),
                "set exactly one, e.g. cilium: {}",
            );
        }
        for provider in chosen
            .iter()
            .filter(|p| NETWORKING_NOT_INSTALLED.contains(&p.as_str()))
        {
            c.error(
                format!("spec.networking.{provider}"),
                format!("kopsrs installs no network plugin for {provider}, so the nodes would never be Ready"),
                &format!(
                    "use one kopsrs installs: {} (`--networking` takes the same names); or `cni: {{}}` and install the plugin yourself",
                    NETWORKING_INSTALLED.join(", ")
                ),
            );
        }
    }
}

/// No two instance groups share a name.
fn check_group_names_unique(c: &mut Checker<'_>, groups: &[InstanceGroup]) {
    let mut group_names = BTreeSet::new();
    for group in groups {
        if !group_names.insert(group.metadata.name.as_str()) {
            c.error(
                "",
                format!("instance group {:?} is defined twice", group.metadata.name),
                "give each instance group a unique name",
            );
        }
    }
}

/// Each etcd cluster has a unique name and members (an odd number of them, else a warning),
/// each member as [`check_etcd_member`] wants it.
fn check_etcd_clusters(c: &mut Checker<'_>, spec: &ClusterSpec, groups: &[InstanceGroup]) {
    let roles: BTreeMap<&str, Option<Role>> = groups
        .iter()
        .map(|g| (g.metadata.name.as_str(), g.role()))
        .collect();
    let mut etcd_names = BTreeSet::new();
    for (i, etcd) in spec.etcd_clusters.iter().flatten().enumerate() {
        let path = format!("spec.etcdClusters[{i}]");
        let etcd_name = etcd.name.clone().unwrap_or_default();
        if etcd_name.is_empty() {
            c.error(
                format!("{path}.name"),
                "missing",
                "name etcd clusters main and events",
            );
        } else if !etcd_names.insert(etcd_name.clone()) {
            c.error(
                format!("{path}.name"),
                format!("{etcd_name:?} is defined twice"),
                "give each etcd cluster a unique name",
            );
        }
        let store = etcd
            .backups
            .as_ref()
            .and_then(|b| b.backup_store.as_deref());
        if let (Some(store), Some(base)) = (store, spec.config_base.as_deref()) {
            let kept = format!("{}/backups/etcd/{etcd_name}", base.trim_end_matches('/'));
            if store.trim_end_matches('/') != kept {
                c.warn(
                    format!("{path}.backups.backupStore"),
                    format!("{store:?}: kopsrs keeps etcd backups in the state store, at {kept}, and does not write here"),
                    "remove the field, or copy the backups there with an S3 replication rule",
                );
            }
        }
        if let Err(bad) = crate::backups::policy(etcd) {
            c.error(
                format!("{path}.{}", bad.field),
                format!("{:?}: {}", bad.value, bad.message),
                "fix the value or remove it for kops's default (15m, 90 days)",
            );
        }
        let members = etcd.etcd_members.as_deref().unwrap_or_default();
        if members.is_empty() {
            c.error(
                format!("{path}.etcdMembers"),
                "no members",
                "add one member per control-plane instance group",
            );
        } else if members.len() % 2 == 0 {
            c.warn(
                format!("{path}.etcdMembers"),
                format!(
                    "{} members: an even number tolerates no more failures than one fewer",
                    members.len()
                ),
                "use 1, 3 or 5 control-plane instance groups",
            );
        }
        let mut member_names = BTreeSet::new();
        for (j, member) in members.iter().enumerate() {
            let member_path = format!("{path}.etcdMembers[{j}]");
            check_etcd_member(c, &member_path, member, &mut member_names, groups, &roles);
        }
    }
}

/// An etcd member has a name unique in its etcd cluster and names its instance group, which
/// (when the groups are known) is a control-plane group of this cluster.
fn check_etcd_member<'m>(
    c: &mut Checker<'_>,
    member_path: &str,
    member: &'m EtcdMemberSpec,
    member_names: &mut BTreeSet<&'m str>,
    groups: &[InstanceGroup],
    roles: &BTreeMap<&str, Option<Role>>,
) {
    if let Some(n) = member.name.as_deref() {
        if !member_names.insert(n) {
            c.error(
                format!("{member_path}.name"),
                format!("{n:?} is used by another member"),
                "give each member a unique name",
            );
        }
    }
    match member.instance_group.as_deref() {
        None => c.error(
            format!("{member_path}.instanceGroup"),
            "missing",
            "name the control-plane instance group this member runs on",
        ),
        Some(group) if !groups.is_empty() => match roles.get(group) {
            None => c.error(
                format!("{member_path}.instanceGroup"),
                format!("{group:?} is not an instance group of this cluster"),
                "create that instance group or fix the name",
            ),
            Some(Some(Role::ControlPlane)) => {}
            Some(_) => c.error(
                format!("{member_path}.instanceGroup"),
                format!("{group:?} is not a control-plane instance group"),
                "etcd members run on role: Master instance groups",
            ),
        },
        Some(_) => {}
    }
}

/// There is a control-plane group: an error when the groups are the complete set, a warning
/// when only some are given (none given and not complete: nothing to say).
fn check_control_plane_present(c: &mut Checker<'_>, groups: &[InstanceGroup], complete_set: bool) {
    let control_planes = groups
        .iter()
        .filter(|g| g.role() == Some(Role::ControlPlane))
        .count();
    if control_planes == 0 && (complete_set || !groups.is_empty()) {
        let severity = if complete_set {
            Severity::Error
        } else {
            Severity::Warning
        };
        c.push(severity, "instancegroups", "no control-plane instance group", Some("create one with role: Master (create instancegroup NAME --role ControlPlane --subnet ZONE)"));
    }
}

fn validate_group(
    cluster: &Cluster,
    group: &InstanceGroup,
    subnet_names: &BTreeSet<String>,
    report: &mut ValidationReport,
) {
    let name = &group.metadata.name;
    let mut c = Checker {
        object: format!("InstanceGroup/{name}"),
        report,
    };
    if !is_dns_subdomain(name) {
        c.error(
            "metadata.name",
            format!("{name:?} is not a valid name"),
            "use lowercase letters, digits, '-' and '.'",
        );
    }
    // Labels and taints reach the kubelet's flags: Kubernetes's own rules, so no value can
    // carry a space or a quote into them.
    for (i, taint) in group.spec.taints.iter().flatten().enumerate() {
        let valid = parse_taint(taint).is_some_and(|(key, value, _)| {
            is_qualified_name(key) && value.is_none_or(is_label_value)
        });
        if !valid {
            c.error(
                format!("spec.taints[{i}]"),
                format!("{taint:?} is not a taint"),
                "write key=value:Effect or key:Effect (key a label name such as example.com/dedicated, value letters, digits, '-', '_', '.'), Effect one of NoSchedule, PreferNoSchedule, NoExecute",
            );
        }
    }
    for (key, value) in group.spec.node_labels.iter().flatten() {
        if !is_qualified_name(key) {
            c.error(
                format!("spec.nodeLabels[{key}]"),
                format!("{key:?} is not a label name"),
                "use [prefix/]name: the prefix a DNS subdomain, the name up to 63 letters, digits, '-', '_', '.', alphanumeric at both ends",
            );
        }
        if !is_label_value(value) {
            c.error(
                format!("spec.nodeLabels[{key}]"),
                format!("{value:?} is not a label value"),
                "use up to 63 letters, digits, '-', '_', '.', alphanumeric at both ends (or empty)",
            );
        }
    }
    if let Some(label) = group.cluster_label() {
        if label != cluster.metadata.name {
            c.error(
                "metadata.labels[kops.k8s.io/cluster]",
                format!(
                    "{label:?} does not match the cluster {:?}",
                    cluster.metadata.name
                ),
                "set the label to the cluster's name, or create the group in the right cluster",
            );
        }
    }
    let spec = &group.spec;
    match spec.role.as_deref() {
        None => c.error(
            "spec.role",
            "missing",
            &format!("set one of {}", Role::ACCEPTED),
        ),
        Some(role) if Role::parse(role).is_none() => c.error(
            "spec.role",
            format!("{role:?} is not a role"),
            &format!("use one of {}", Role::ACCEPTED),
        ),
        Some(_) => {}
    }
    for (field, value) in [("minSize", spec.min_size), ("maxSize", spec.max_size)] {
        if let Some(v) = value.filter(|v| *v < 0) {
            c.error(
                format!("spec.{field}"),
                format!("{v} is negative"),
                "use 0 or more",
            );
        }
    }
    if let (Some(min), Some(max)) = (spec.min_size, spec.max_size) {
        if min > max {
            c.error(
                "spec.minSize",
                format!("{min} is greater than spec.maxSize {max}"),
                "raise maxSize or lower minSize",
            );
        }
    }
    // kops's rules: warm instances are workers that boot, install and stop; they join only
    // when they go into service. `maxSize: 0` turns the pool off.
    if let Some(pool) = spec.warm_pool.as_ref().filter(|p| p.max_size != Some(0)) {
        if let Some(role) = spec
            .role
            .as_deref()
            .filter(|r| !matches!(*r, "Node" | "APIServer"))
        {
            c.error(
                "spec.warmPool",
                format!("a warm pool on a group of role {role}"),
                "warm pools are for Node and APIServer groups only: remove spec.warmPool",
            );
        }
        if spec.mixed_instances_policy.is_some() {
            c.error(
                "spec.warmPool",
                "a warm pool with spec.mixedInstancesPolicy",
                "AWS does not combine them: remove one of the two",
            );
        }
        if spec.max_price.is_some() {
            c.error(
                "spec.warmPool",
                "a warm pool with spot instances (spec.maxPrice)",
                "AWS keeps no spot instances warm: remove one of the two",
            );
        }
        for (field, value) in [("minSize", pool.min_size), ("maxSize", pool.max_size)] {
            if let Some(v) = value.filter(|v| *v < 0) {
                c.error(
                    format!("spec.warmPool.{field}"),
                    format!("{v} is negative"),
                    "use 0 or more",
                );
            }
        }
        if let (Some(min), Some(max)) = (pool.min_size, pool.max_size) {
            if max < min {
                c.error(
                    "spec.warmPool.maxSize",
                    format!("{max} is less than spec.warmPool.minSize {min}"),
                    "raise maxSize or lower minSize",
                );
            }
        }
    }
    match spec.manager.as_deref() {
        None | Some("CloudGroup") => {}
        Some("Karpenter") => {
            if spec.role.as_deref() != Some("Node") {
                c.error(
                    "spec.manager",
                    format!(
                        "Karpenter on a group of role {}",
                        spec.role.as_deref().unwrap_or("(none)")
                    ),
                    "Karpenter provisions workers only: use role Node, or remove spec.manager",
                );
            }
            if cluster.spec.karpenter.as_ref().and_then(|k| k.enabled) != Some(true) {
                c.error(
                    "spec.manager",
                    "Karpenter, but the cluster's spec.karpenter.enabled is not true",
                    "set spec.karpenter.enabled: true on the Cluster, or remove spec.manager",
                );
            }
        }
        Some(other) => c.error(
            "spec.manager",
            format!("{other:?} is not an instance manager"),
            "use CloudGroup (an auto scaling group, the default) or Karpenter",
        ),
    }
    if let Some(size) = spec.root_volume_size.filter(|s| *s <= 0) {
        c.error(
            "spec.rootVolumeSize",
            format!("{size} is not a size"),
            "give the size in GB, e.g. 64",
        );
    }
    let subnets = spec.subnets.as_deref().unwrap_or_default();
    if subnets.is_empty() && spec.manager.as_deref() != Some("Karpenter") {
        c.error(
            "spec.subnets",
            "no subnets",
            "list the cluster subnets this group runs in",
        );
    }
    for (i, subnet) in subnets.iter().enumerate() {
        if !subnet_names.contains(subnet) {
            let known: Vec<&str> = subnet_names.iter().map(String::as_str).collect();
            c.error(
                format!("spec.subnets[{i}]"),
                format!("{subnet:?} is not a subnet of the cluster"),
                &format!("use one of: {}", known.join(", ")),
            );
        }
    }
}

/// `FIRST-LAST` (`30000-32767`), kops's spelling of a port range: both ports 1-65535,
/// FIRST not above LAST.
pub fn parse_port_range(text: &str) -> Option<(u16, u16)> {
    let (first, last) = text.split_once('-')?;
    let (first, last) = (
        first.trim().parse::<u16>().ok()?,
        last.trim().parse::<u16>().ok()?,
    );
    (first > 0 && first <= last).then_some((first, last))
}

/// A taint as kops writes it, `key=value:Effect` or `key:Effect`: (key, value, effect).
pub fn parse_taint(text: &str) -> Option<(&str, Option<&str>, &str)> {
    let (kv, effect) = text.rsplit_once(':')?;
    if !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
        return None;
    }
    let (key, value) = match kv.split_once('=') {
        Some((k, v)) => (k, Some(v)),
        None => (kv, None),
    };
    (!key.is_empty()).then_some((key, value, effect))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions() {
        assert_eq!(region_of_zone("us-east-1a").as_deref(), Some("us-east-1"));
        assert_eq!(
            region_of_zone("us-gov-west-1b").as_deref(),
            Some("us-gov-west-1")
        );
        assert_eq!(
            region_of_zone("us-west-2-lax-1a").as_deref(),
            Some("us-west-2")
        );
        assert_eq!(region_of_zone("us-test-1a").as_deref(), Some("us-test-1"));
        assert_eq!(region_of_zone("nowhere"), None);
    }

    #[test]
    fn kubernetes_names_and_zones() {
        for good in [
            "a",
            "kops.k8s.io/instancegroup",
            "node-role.kubernetes.io/control-plane",
            "A_b.c",
        ] {
            assert!(is_qualified_name(good), "{good}");
        }
        for bad in [
            "",
            "a --anonymous-auth=true",
            "a b",
            "-a",
            "a/",
            "/a",
            "Bad_/x",
            "a\"b",
            &"x".repeat(64),
        ] {
            assert!(!is_qualified_name(bad), "{bad}");
        }
        assert!(is_label_value("") && is_label_value("v1.2_3"));
        assert!(!is_label_value("a,b=c") && !is_label_value("x y"));
        for good in ["us-east-1a", "us-gov-west-1b", "us-west-2-lax-1a"] {
            assert!(is_zone(good), "{good}");
        }
        for bad in [
            "eu-west-1a'$(reboot)'",
            "eu-west-1a;x",
            "EU-west-1a",
            "eu-west-1",
            "eu-west-1a ",
        ] {
            assert!(!is_zone(bad), "{bad}");
        }
    }

    /// kops's rules: warm pools on Node and APIServer groups only, not with a
    /// mixed-instances policy or spot, sizes not negative nor crossed; `maxSize: 0` is off.
    #[test]
    fn warm_pools_follow_kops_rules() {
        let cluster: Cluster = serde_yaml_ng::from_str(
            "apiVersion: kops.k8s.io/v1alpha2\nkind: Cluster\nmetadata:\n  name: a.example.com\nspec: {}\n",
        )
        .unwrap();
        let group = |name: &str, spec: &str| -> InstanceGroup {
            serde_yaml_ng::from_str(&format!(
                "apiVersion: kops.k8s.io/v1alpha2\nkind: InstanceGroup\nmetadata:\n  name: {name}\nspec:\n{spec}"
            ))
            .unwrap()
        };
        let groups = [
            group("ok", "  role: Node\n  warmPool: {minSize: 1, maxSize: 3}\n"),
            group("api", "  role: APIServer\n  warmPool: {minSize: 0}\n"),
            group("off", "  role: Master\n  warmPool: {maxSize: 0}\n"),
            group("cp", "  role: Master\n  warmPool: {minSize: 1}\n"),
            group(
                "mixed",
                "  role: Node\n  mixedInstancesPolicy: {instances: [m5.large]}\n  warmPool: {}\n",
            ),
            group(
                "spot",
                "  role: Node\n  maxPrice: \"0.1\"\n  warmPool: {}\n",
            ),
            group(
                "crossed",
                "  role: Node\n  warmPool: {minSize: 3, maxSize: 2}\n",
            ),
            group("negative", "  role: Node\n  warmPool: {minSize: -1}\n"),
        ];
        let report = validate(&cluster, &groups, false);
        let mut bad: Vec<(String, String)> = report
            .errors()
            .filter(|e| e.path.starts_with("spec.warmPool"))
            .map(|e| (e.object.clone(), e.path.clone()))
            .collect();
        bad.sort();
        let expected: Vec<(String, String)> = [
            ("InstanceGroup/cp", "spec.warmPool"),
            ("InstanceGroup/crossed", "spec.warmPool.maxSize"),
            ("InstanceGroup/mixed", "spec.warmPool"),
            ("InstanceGroup/negative", "spec.warmPool.minSize"),
            ("InstanceGroup/spot", "spec.warmPool"),
        ]
        .iter()
        .map(|(o, p)| (o.to_string(), p.to_string()))
        .collect();
        assert_eq!(bad, expected);
    }

    #[test]
    fn additional_sans_are_names_or_addresses() {
        let mut cluster: Cluster = serde_yaml_ng::from_str(
            "apiVersion: kops.k8s.io/v1alpha2\nkind: Cluster\nmetadata:\n  name: a.example.com\nspec: {}\n",
        )
        .unwrap();
        cluster.spec.additional_sans = Some(vec![
            "api.internal.example.com".into(),
            "*.example.com".into(),
            "10.0.0.10".into(),
            "fd00::1".into(),
            "@JOIN_TOKEN@".into(),
            "a b".into(),
        ]);
        let report = validate(&cluster, &[], false);
        let bad: Vec<&str> = report
            .errors()
            .filter(|e| e.path.starts_with("spec.additionalSans"))
            .map(|e| e.path.as_str())
            .collect();
        assert_eq!(bad, ["spec.additionalSans[4]", "spec.additionalSans[5]"]);
    }

    #[test]
    fn service_accounts_are_kubernetes_names() {
        let cluster: Cluster = serde_yaml_ng::from_str(
            "apiVersion: kops.k8s.io/v1alpha2\nkind: Cluster\nmetadata:\n  name: a.example.com\nspec:\n  iam:\n    serviceAccountExternalPermissions:\n    - name: ok\n      namespace: team-*\n    - name: ключ\n      namespace: default\n    - name: fine\n      namespace: Bad_NS\n",
        )
        .unwrap();
        let report = validate(&cluster, &[], false);
        let bad: Vec<&str> = report
            .errors()
            .filter(|e| e.path.starts_with("spec.iam"))
            .map(|e| e.path.as_str())
            .collect();
        assert_eq!(
            bad,
            [
                "spec.iam.serviceAccountExternalPermissions[1].name",
                "spec.iam.serviceAccountExternalPermissions[2].namespace"
            ]
        );
    }

    #[test]
    fn dns_names() {
        assert!(is_dns_subdomain("a.example.com"));
        assert!(!is_dns_subdomain("A.example.com"));
        assert!(!is_dns_subdomain("a..example.com"));
        assert!(!is_dns_subdomain("-a.example.com"));
    }
}
