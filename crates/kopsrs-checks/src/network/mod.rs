//! `validate network`'s checks as pure functions: what the spec wants of the network
//! ([`Wanted`]) and what AWS reports of the VPC ([`Network`]) in, one [`Check`] per check
//! and resource out, passed ones included. Each rule is a function of its own in
//! `rules.rs`; [`check`] runs them all. The caller reads AWS in a few batched calls;
//! nothing here does I/O.

use std::collections::BTreeMap;

/// The check identifiers, in the order they are reported.
pub const CHECKS: [&str; 17] = [
    "vpc-exists",
    "vpc-cidr",
    "vpc-dns",
    "dhcp-options",
    "subnet-overlap",
    "subnet-outside-vpc",
    "subnet-zone",
    "subnet-cluster-cidr",
    "igw-route",
    "nat-route",
    "nat-placement",
    "nat-zone",
    "peering-active",
    "peering-route",
    "peering-overlap",
    "nacl",
    "subnet-tags",
];

/// A subnet type as the spec writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubnetKind {
    /// Instances with public addresses, default route to the internet gateway.
    Public,
    /// Load balancers and NAT gateways of a private topology: like `Public`.
    Utility,
    /// No public addresses, default route to a NAT gateway (or the named egress).
    Private,
}

/// A subnet of the spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WantedSubnet {
    /// Its name in the spec.
    pub name: String,
    /// An existing subnet's ID (shared), if the spec names one.
    pub id: Option<String>,
    /// Its CIDR, if the spec gives one.
    pub cidr: Option<String>,
    /// Its zone.
    pub zone: String,
    /// Its type.
    pub kind: SubnetKind,
    /// `egress`: a NAT gateway (`nat-...`), an instance, or `External`.
    pub egress: Option<String>,
}

/// What the spec wants of the network.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Wanted {
    /// The cluster.
    pub cluster: String,
    /// `networkCIDR` and `additionalNetworkCIDRs`.
    pub cidrs: Vec<String>,
    /// The pod and service CIDRs (must not collide with the VPC's subnets).
    pub cluster_cidrs: Vec<String>,
    /// The spec's subnets.
    pub subnets: Vec<WantedSubnet>,
    /// The cluster runs IPv6 too (public subnets need a `::/0` route).
    pub ipv6: bool,
    /// kopsrs adds the cluster's tag to shared subnets (not `spec.DisableSubnetTags`).
    pub tags_shared_subnets: bool,
}

/// A VPC as AWS reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Vpc {
    /// Its ID.
    pub id: String,
    /// Its associated IPv4 CIDR blocks.
    pub cidrs: Vec<String>,
    /// `enableDnsSupport`.
    pub dns_support: bool,
    /// `enableDnsHostnames`.
    pub dns_hostnames: bool,
    /// The DHCP options' `domain-name`, when set.
    pub domain_name: Option<String>,
}

/// A subnet of the VPC.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Subnet {
    /// Its ID.
    pub id: String,
    /// Its IPv4 CIDR.
    pub cidr: String,
    /// Its zone.
    pub zone: String,
    /// Its tags.
    pub tags: BTreeMap<String, String>,
}

/// A route of a route table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Route {
    /// Destination CIDR (IPv4 or IPv6).
    pub destination: String,
    /// Target: `igw-...`, `nat-...`, `pcx-...`, `i-...`, `tgw-...`.
    pub target: String,
    /// `active` or `blackhole`.
    pub state: String,
}

/// A route table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RouteTable {
    /// Its ID.
    pub id: String,
    /// The VPC's main route table (used by subnets without an association).
    pub main: bool,
    /// Subnets explicitly associated.
    pub subnets: Vec<String>,
    /// Its routes.
    pub routes: Vec<Route>,
}

/// A NAT gateway.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NatGateway {
    /// Its ID.
    pub id: String,
    /// The subnet it sits in.
    pub subnet: String,
    /// `available`, `pending`, `failed`...
    pub state: String,
    /// It has a public (elastic) IP.
    pub public_ip: bool,
}

/// A peering connection of the VPC.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Peering {
    /// Its ID.
    pub id: String,
    /// `active`, `pending-acceptance`...
    pub status: String,
    /// The other VPC's CIDRs.
    pub peer_cidrs: Vec<String>,
}

/// A network ACL rule.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AclEntry {
    /// Rule number (lowest first).
    pub number: i32,
    /// Outbound rule.
    pub egress: bool,
    /// `-1` (all), `6` (TCP), `17` (UDP)...
    pub protocol: String,
    /// Port range (TCP/UDP), inclusive.
    pub ports: Option<(i32, i32)>,
    /// The CIDR it matches.
    pub cidr: String,
    /// `allow` or `deny`.
    pub allow: bool,
}

/// A network ACL.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Acl {
    /// Its ID.
    pub id: String,
    /// The subnets it applies to.
    pub subnets: Vec<String>,
    /// Its rules.
    pub entries: Vec<AclEntry>,
}

/// The VPC and what is in it, as AWS reports them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Network {
    /// The VPC (`None`: not found).
    pub vpc: Option<Vpc>,
    /// Every subnet of the VPC, the cluster's or not.
    pub subnets: Vec<Subnet>,
    /// Its route tables.
    pub route_tables: Vec<RouteTable>,
    /// Internet gateways attached to it.
    pub internet_gateways: Vec<String>,
    /// Its NAT gateways.
    pub nat_gateways: Vec<NatGateway>,
    /// Its peering connections.
    pub peerings: Vec<Peering>,
    /// Its network ACLs.
    pub acls: Vec<Acl>,
}

/// `passed`, `warning` or `failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Nothing wrong.
    Passed,
    /// Works, but costs or risks something.
    Warning,
    /// The cluster would not work.
    Failed,
}

/// One check of one resource.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Check {
    /// One of [`CHECKS`].
    pub check: &'static str,
    /// The outcome.
    pub status: Status,
    /// The resource checked (a VPC, subnet, route table, NAT gateway, peering ID, or a spec
    /// subnet's name).
    pub resource: String,
    /// What was found.
    pub message: String,
    /// How to fix it (empty when passed).
    pub hint: String,
}

mod rules;

pub use rules::check;

#[cfg(test)]
mod tests;
