//! `validate network`'s checks as a pure function: what the spec wants of the network
//! ([`Wanted`]) and what AWS reports of the VPC ([`Network`]) in, one [`Check`] per check
//! and resource out, passed ones included. The command reads AWS in a few batched calls
//! and calls [`check`]; nothing here does I/O.

use std::collections::BTreeMap;

use ipnet::Ipv4Net;
use kopsrs_api::cidr::overlaps;

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

fn net(cidr: &str) -> Option<Ipv4Net> {
    cidr.parse().ok()
}

struct Out(Vec<Check>);

impl Out {
    fn push(
        &mut self,
        check: &'static str,
        status: Status,
        resource: &str,
        message: String,
        hint: &str,
    ) {
        self.0.push(Check {
            check,
            status,
            resource: resource.to_string(),
            message,
            hint: hint.to_string(),
        });
    }
    fn pass(&mut self, check: &'static str, resource: &str, message: String) {
        self.push(check, Status::Passed, resource, message, "");
    }
    fn fail(&mut self, check: &'static str, resource: &str, message: String, hint: &str) {
        self.push(check, Status::Failed, resource, message, hint);
    }
    fn warn(&mut self, check: &'static str, resource: &str, message: String, hint: &str) {
        self.push(check, Status::Warning, resource, message, hint);
    }
}

/// The route table a subnet uses: its explicit association, else the main one.
fn table_of<'a>(net: &'a Network, subnet: &str) -> Option<&'a RouteTable> {
    net.route_tables
        .iter()
        .find(|t| t.subnets.iter().any(|s| s == subnet))
        .or_else(|| net.route_tables.iter().find(|t| t.main))
}

/// Every check, passed ones included: each identifier of [`CHECKS`] appears at least once.
pub fn check(wanted: &Wanted, network: &Network) -> Vec<Check> {
    let mut out = Out(Vec::new());
    let Some(vpc) = &network.vpc else {
        out.fail(
            "vpc-exists",
            "",
            "the cluster's VPC was not found".into(),
            "check spec.networkID and the region; without networkID, `kopsrs update cluster --yes` creates the VPC",
        );
        for id in &CHECKS[1..] {
            out.warn(id, "", "not checked: no VPC".into(), "");
        }
        return out.0;
    };
    out.pass("vpc-exists", &vpc.id, format!("{} exists", vpc.id));

    // vpc-cidr
    let vpc_nets: Vec<Ipv4Net> = vpc.cidrs.iter().filter_map(|c| net(c)).collect();
    let covered = |c: &Ipv4Net| vpc_nets.iter().any(|v| v.contains(c));
    for cidr in &wanted.cidrs {
        match net(cidr) {
            Some(c) if covered(&c) => out.pass("vpc-cidr", &vpc.id, format!("{cidr} is a CIDR block of {}", vpc.id)),
            _ => out.fail(
                "vpc-cidr",
                &vpc.id,
                format!("{cidr} (networkCIDR/additionalNetworkCIDRs) is not within {}'s CIDR blocks {}", vpc.id, vpc.cidrs.join(", ")),
                "associate the CIDR block with the VPC, or write the VPC's CIDR in spec.networkCIDR",
            ),
        }
    }
    if wanted.cidrs.is_empty() {
        out.pass("vpc-cidr", &vpc.id, "no networkCIDR to compare".into());
    }

    // vpc-dns
    match (vpc.dns_support, vpc.dns_hostnames) {
        (true, true) => out.pass("vpc-dns", &vpc.id, "DNS support and DNS hostnames are on".into()),
        (support, hostnames) => out.fail(
            "vpc-dns",
            &vpc.id,
            format!("enableDnsSupport {support}, enableDnsHostnames {hostnames}: nodes need both (their names are EC2's)"),
            "aws ec2 modify-vpc-attribute --vpc-id VPC --enable-dns-hostnames (and --enable-dns-support)",
        ),
    }

    // dhcp-options
    match vpc.domain_name.as_deref() {
        Some(d) if !d.trim().is_empty() && !d.contains(' ') => {
            out.pass("dhcp-options", &vpc.id, format!("domain-name {d}"))
        }
        Some(d) => out.fail(
            "dhcp-options",
            &vpc.id,
            format!("domain-name {d:?} is not one domain: node names would not resolve"),
            "give the VPC DHCP options with one domain-name (REGION.compute.internal)",
        ),
        None => out.warn(
            "dhcp-options",
            &vpc.id,
            "no domain-name in the VPC's DHCP options".into(),
            "set domain-name to REGION.compute.internal (ec2.internal in us-east-1)",
        ),
    }

    // The spec's subnets as they exist (by ID, else by CIDR), or will.
    let found: Vec<(&WantedSubnet, Option<&Subnet>)> = wanted
        .subnets
        .iter()
        .map(|w| {
            let s = network.subnets.iter().find(|s| match (&w.id, &w.cidr) {
                (Some(id), _) => &s.id == id,
                (None, Some(cidr)) => &s.cidr == cidr,
                _ => false,
            });
            (w, s)
        })
        .collect();

    // subnet-overlap: every pair of the VPC's subnets, and planned ones against all.
    let mut all: Vec<(String, String)> = network
        .subnets
        .iter()
        .map(|s| (s.id.clone(), s.cidr.clone()))
        .collect();
    for (w, s) in &found {
        if let (None, Some(cidr)) = (s, &w.cidr) {
            all.push((format!("{} (to be created)", w.name), cidr.clone()));
        }
    }
    let mut overlapping = 0;
    for (i, (a, ac)) in all.iter().enumerate() {
        for (b, bc) in &all[i + 1..] {
            if let (Some(x), Some(y)) = (net(ac), net(bc)) {
                if overlaps(&x, &y) {
                    overlapping += 1;
                    out.fail(
                        "subnet-overlap",
                        a,
                        format!("{a} ({ac}) overlaps {b} ({bc})"),
                        "give the cluster's subnet a CIDR of its own (spec.subnets[].cidr)",
                    );
                }
            }
        }
    }
    if overlapping == 0 {
        out.pass(
            "subnet-overlap",
            &vpc.id,
            format!("{} subnets, no two overlap", all.len()),
        );
    }

    // subnet-outside-vpc, subnet-zone, subnet-cluster-cidr
    let cluster_nets: Vec<(String, Ipv4Net)> = wanted
        .cluster_cidrs
        .iter()
        .filter_map(|c| Some((c.clone(), net(c)?)))
        .collect();
    for (w, s) in &found {
        let cidr = s.map(|s| s.cidr.clone()).or_else(|| w.cidr.clone());
        let Some(c) = cidr.as_deref().and_then(net) else {
            out.pass(
                "subnet-outside-vpc",
                &w.name,
                "no CIDR yet: kopsrs allocates one inside the VPC".into(),
            );
            continue;
        };
        match covered(&c) {
            true => out.pass("subnet-outside-vpc", &w.name, format!("{c} is inside {}", vpc.id)),
            false => out.fail(
                "subnet-outside-vpc",
                &w.name,
                format!("{c} is outside {}'s CIDR blocks {}", vpc.id, vpc.cidrs.join(", ")),
                "use a CIDR inside the VPC for this subnet, or associate a CIDR block that holds it",
            ),
        }
        match s {
            Some(s) if s.zone != w.zone => out.fail(
                "subnet-zone",
                &w.name,
                format!("{} is in {}, the spec says {}", s.id, s.zone, w.zone),
                "fix spec.subnets[].zone (or the subnet ID)",
            ),
            _ => out.pass("subnet-zone", &w.name, format!("in {}", w.zone)),
        }
        let clash: Vec<&String> = cluster_nets
            .iter()
            .filter(|(_, n)| overlaps(n, &c))
            .map(|(s, _)| s)
            .collect();
        match clash.as_slice() {
            [] => out.pass("subnet-cluster-cidr", &w.name, format!("{c} is clear of the pod and service CIDRs")),
            clash => out.fail(
                "subnet-cluster-cidr",
                &w.name,
                format!("{c} overlaps the cluster's pod/service CIDR {}", clash.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")),
                "move spec.podCIDR / spec.serviceClusterIPRange (or the networking's cluster CIDR) out of the VPC's address space",
            ),
        }
    }
    if found.is_empty() {
        for id in ["subnet-outside-vpc", "subnet-zone", "subnet-cluster-cidr"] {
            out.pass(id, &vpc.id, "the spec has no subnets".into());
        }
    }

    // Routes: for the spec's subnets that exist; new ones get kopsrs's own route tables.
    let igws = &network.internet_gateways;
    let mut igw_checked = false;
    let mut nat_checked = false;
    for (w, s) in &found {
        let Some(s) = s else { continue };
        let table = table_of(network, &s.id);
        let default = |dest: &str| {
            table.and_then(|t| {
                t.routes
                    .iter()
                    .find(|r| r.destination == dest && r.state != "blackhole")
            })
        };
        match w.kind {
            SubnetKind::Public | SubnetKind::Utility => {
                igw_checked = true;
                let mut dests = vec!["0.0.0.0/0"];
                if wanted.ipv6 {
                    dests.push("::/0");
                }
                for dest in dests {
                    match default(dest) {
                        Some(r) if igws.contains(&r.target) => out.pass("igw-route", &s.id, format!("{dest} -> {} (attached)", r.target)),
                        Some(r) => out.fail(
                            "igw-route",
                            &s.id,
                            format!("{dest} goes to {}, not to an internet gateway attached to {}", r.target, vpc.id),
                            "route 0.0.0.0/0 of the subnet's route table to the VPC's internet gateway",
                        ),
                        None => out.fail(
                            "igw-route",
                            &s.id,
                            format!("no {dest} route in {}", table.map_or("any route table", |t| t.id.as_str())),
                            "route 0.0.0.0/0 of the subnet's route table to the VPC's internet gateway",
                        ),
                    }
                }
            }
            SubnetKind::Private => {
                nat_checked = true;
                match default("0.0.0.0/0") {
                    Some(r) if r.target.starts_with("nat-") => {
                        let nat = network.nat_gateways.iter().find(|n| n.id == r.target);
                        match nat {
                            Some(n) if n.state == "available" => out.pass("nat-route", &s.id, format!("0.0.0.0/0 -> {}", n.id)),
                            _ => out.fail(
                                "nat-route",
                                &s.id,
                                format!("0.0.0.0/0 -> {}, which is not an available NAT gateway of {}", r.target, vpc.id),
                                "point the route at an available NAT gateway",
                            ),
                        }
                        if let Some(n) = nat {
                            let zone = network.subnets.iter().find(|x| x.id == n.subnet).map(|x| x.zone.as_str());
                            match zone {
                                Some(z) if z != s.zone => out.warn(
                                    "nat-zone",
                                    &s.id,
                                    format!("egress through {} in {z}, the subnet is in {}: cross-zone traffic costs, and one zone's failure takes the other's egress", n.id, s.zone),
                                    "give each zone its own NAT gateway",
                                ),
                                _ => out.pass("nat-zone", &s.id, format!("{} is in the subnet's zone", n.id)),
                            }
                        }
                    }
                    Some(r) if w.egress.as_deref().is_some_and(|e| e == r.target) => {
                        out.pass("nat-route", &s.id, format!("0.0.0.0/0 -> {} (spec egress)", r.target))
                    }
                    Some(r) if w.egress.as_deref() == Some("External") => {
                        out.pass("nat-route", &s.id, format!("0.0.0.0/0 -> {} (egress External)", r.target))
                    }
                    Some(r) => out.fail(
                        "nat-route",
                        &s.id,
                        format!("0.0.0.0/0 goes to {}, not to a NAT gateway", r.target),
                        "route 0.0.0.0/0 of the private subnet to a NAT gateway, or name the egress in spec.subnets[].egress",
                    ),
                    None if w.egress.as_deref() == Some("External") => {
                        out.pass("nat-route", &s.id, "egress External: routing is managed outside".into())
                    }
                    None => out.fail(
                        "nat-route",
                        &s.id,
                        "a private subnet without a 0.0.0.0/0 route: nodes cannot pull images".into(),
                        "route 0.0.0.0/0 to a NAT gateway in a public subnet",
                    ),
                }
            }
        }
    }
    if !igw_checked {
        out.pass(
            "igw-route",
            &vpc.id,
            "no existing public or utility subnet to check".into(),
        );
    }
    if !nat_checked {
        out.pass(
            "nat-route",
            &vpc.id,
            "no existing private subnet to check".into(),
        );
    }
    if !out.0.iter().any(|c| c.check == "nat-zone") {
        out.pass("nat-zone", &vpc.id, "no NAT gateway in use".into());
    }

    // nat-placement: the NAT gateways the cluster egresses through (its private subnets'
    // default routes, and the egress the spec names) sit in a public subnet with a public IP.
    // Other NAT gateways of the VPC are other teams' business (some are private on purpose).
    let used: Vec<&str> = found
        .iter()
        .filter(|(w, _)| w.kind == SubnetKind::Private)
        .flat_map(|(w, s)| {
            let routed = s
                .and_then(|s| table_of(network, &s.id))
                .into_iter()
                .flat_map(|t| &t.routes)
                .filter(|r| r.destination == "0.0.0.0/0")
                .map(|r| r.target.as_str());
            routed.chain(w.egress.as_deref())
        })
        .collect();
    for n in &network.nat_gateways {
        if n.state != "available" && n.state != "pending" || !used.contains(&n.id.as_str()) {
            continue;
        }
        let public = table_of(network, &n.subnet).is_some_and(|t| {
            t.routes
                .iter()
                .any(|r| r.destination == "0.0.0.0/0" && igws.contains(&r.target))
        });
        match (public, n.public_ip) {
            (true, true) => out.pass("nat-placement", &n.id, format!("in public subnet {} with an elastic IP", n.subnet)),
            (false, _) => out.fail(
                "nat-placement",
                &n.id,
                format!("sits in {}, whose route table has no 0.0.0.0/0 route to an internet gateway: it cannot reach the internet", n.subnet),
                "create the NAT gateway in a public subnet",
            ),
            (true, false) => out.fail(
                "nat-placement",
                &n.id,
                "has no elastic IP".into(),
                "allocate an elastic IP and create the NAT gateway with it",
            ),
        }
    }
    if !out.0.iter().any(|c| c.check == "nat-placement") {
        out.pass(
            "nat-placement",
            &vpc.id,
            "the cluster egresses through no existing NAT gateway".into(),
        );
    }

    // Peerings.
    let cluster_subnets: Vec<(String, Ipv4Net)> = found
        .iter()
        .filter_map(|(w, s)| {
            let cidr = s.map(|s| s.cidr.clone()).or_else(|| w.cidr.clone())?;
            Some((s.map_or(w.name.clone(), |s| s.id.clone()), net(&cidr)?))
        })
        .collect();
    // Deleted, rejected and expired connections stay listed for a while; they carry nothing.
    let live = network.peerings.iter().filter(|p| {
        !matches!(
            p.status.as_str(),
            "deleted" | "deleting" | "rejected" | "expired"
        )
    });
    for p in live {
        match p.status.as_str() {
            "active" => out.pass("peering-active", &p.id, "active".into()),
            other => out.fail(
                "peering-active",
                &p.id,
                format!("status {other}"),
                "accept the peering connection on the other side",
            ),
        }
        for peer in &p.peer_cidrs {
            let Some(pn) = net(peer) else { continue };
            // Routes: every existing cluster subnet's table routes the peer's CIDR to it.
            for (w, s) in &found {
                let Some(s) = s else { continue };
                let routed = table_of(network, &s.id).is_some_and(|t| {
                    t.routes.iter().any(|r| {
                        r.target == p.id
                            && net(&r.destination)
                                .is_some_and(|d| d.contains(&pn) || pn.contains(&d))
                    })
                });
                match routed {
                    true => out.pass("peering-route", &s.id, format!("{peer} -> {}", p.id)),
                    false => out.fail(
                        "peering-route",
                        &s.id,
                        format!("no route for {peer} through {} ({})", p.id, w.name),
                        "add a route for the peer's CIDR through the peering connection to the subnet's route table",
                    ),
                }
            }
            let mine = vpc_nets
                .iter()
                .map(|n| (vpc.id.clone(), *n))
                .chain(cluster_subnets.iter().cloned());
            let clash: Vec<String> = mine
                .filter(|(_, n)| overlaps(n, &pn))
                .map(|(r, n)| format!("{r} ({n})"))
                .collect();
            match clash.as_slice() {
                [] => out.pass(
                    "peering-overlap",
                    &p.id,
                    format!("{peer} is clear of the cluster's addresses"),
                ),
                clash => out.fail(
                    "peering-overlap",
                    &p.id,
                    format!("the peer's {peer} overlaps {}", clash.join(", ")),
                    "peer only VPCs whose CIDRs do not collide with the cluster's",
                ),
            }
        }
    }
    for id in ["peering-active", "peering-route", "peering-overlap"] {
        if !out.0.iter().any(|c| c.check == id) {
            out.pass(id, &vpc.id, "no peering connection to check".into());
        }
    }

    // nacl: the first matching rule (lowest number) decides, as AWS evaluates them. From
    // anywhere: HTTPS in (the API) and out, and the ephemeral return ports. Between the
    // cluster's subnets (node to node): the kubelet (TCP 10250), and DNS (UDP 53, CoreDNS runs
    // on other nodes). A rule counts when its CIDR holds the whole peer range: a deny of part
    // of it is not a total denial, and an allow of part of it is not enough.
    let anywhere = Ipv4Net::new(std::net::Ipv4Addr::UNSPECIFIED, 0).expect("prefix 0 is valid");
    for (w, s) in &found {
        let Some(s) = s else { continue };
        let Some(acl) = network.acls.iter().find(|a| a.subnets.contains(&s.id)) else {
            out.pass(
                "nacl",
                &s.id,
                "no network ACL (the default allows all)".into(),
            );
            continue;
        };
        let allowed = |egress: bool, protocol: &str, port: i32, peer: &Ipv4Net| {
            let mut rules: Vec<&AclEntry> =
                acl.entries.iter().filter(|e| e.egress == egress).collect();
            rules.sort_by_key(|e| e.number);
            rules
                .into_iter()
                .find(|e| {
                    (e.protocol == "-1" || e.protocol == protocol)
                        && e.ports.is_none_or(|(a, b)| a <= port && port <= b)
                        && net(&e.cidr).is_some_and(|n| n.contains(peer))
                })
                .is_some_and(|e| e.allow)
        };
        let mut denied: Vec<String> = Vec::new();
        if !allowed(false, "6", 443, &anywhere) {
            denied.push("inbound TCP 443 (the API)".into());
        }
        if !allowed(false, "6", 32768, &anywhere) || !allowed(true, "6", 32768, &anywhere) {
            denied.push("TCP 1024-65535 (return traffic)".into());
        }
        if !allowed(true, "6", 443, &anywhere) {
            denied.push("outbound TCP 443".into());
        }
        // A network ACL filters traffic that crosses the subnet's edge, not inside it.
        let own = net(&s.cidr);
        for (peer_name, peer) in cluster_subnets.iter().filter(|(_, n)| Some(*n) != own) {
            let mut node = Vec::new();
            for (protocol, port, what) in [
                ("6", 10250, "TCP 10250 (kubelet)"),
                ("17", 53, "UDP 53 (DNS)"),
            ] {
                if !allowed(false, protocol, port, peer) || !allowed(true, protocol, port, peer) {
                    node.push(what);
                }
            }
            if !node.is_empty() {
                denied.push(format!(
                    "{} with {peer_name} ({peer}, node to node)",
                    node.join(" and ")
                ));
            }
        }
        match denied.as_slice() {
            [] => out.pass(
                "nacl",
                &s.id,
                format!("{} allows the API, node and return traffic", acl.id),
            ),
            d => out.fail(
                "nacl",
                &s.id,
                format!("{} ({}) denies {}", acl.id, w.name, d.join(", ")),
                "allow TCP 443 and 1024-65535 in and out, and all traffic between the cluster's subnets, in the subnet's network ACL",
            ),
        }
    }
    if !out.0.iter().any(|c| c.check == "nacl") {
        out.pass(
            "nacl",
            &vpc.id,
            "no existing cluster subnet to check".into(),
        );
    }

    // subnet-tags: shared subnets carry the cluster tag and the load-balancer role tag.
    let cluster_tag = format!("kubernetes.io/cluster/{}", wanted.cluster);
    let mut tags_checked = false;
    for (w, s) in &found {
        let (Some(s), Some(_)) = (s, &w.id) else {
            continue;
        };
        tags_checked = true;
        let role = match w.kind {
            SubnetKind::Private => "kubernetes.io/role/internal-elb",
            _ => "kubernetes.io/role/elb",
        };
        let mut missing = Vec::new();
        match s.tags.get(&cluster_tag).map(String::as_str) {
            Some("shared") => {}
            Some(other) => missing.push(format!("{cluster_tag} is {other:?}, not \"shared\"")),
            None => missing.push(format!("no {cluster_tag}=shared")),
        }
        if !s.tags.contains_key(role) {
            missing.push(format!("no {role}"));
        }
        // Clusters share a subnet side by side, each with its own `shared` tag. One that tags
        // it `owned` claims it: deleting that cluster would delete the subnet under this one.
        for (key, value) in &s.tags {
            if key.starts_with("kubernetes.io/cluster/") && *key != cluster_tag && value == "owned"
            {
                missing.push(format!(
                    "{key}=owned: cluster {} claims the subnet and would delete it with itself",
                    &key["kubernetes.io/cluster/".len()..]
                ));
            }
        }
        match missing.as_slice() {
            [] => out.pass("subnet-tags", &s.id, format!("{cluster_tag}=shared and {role}")),
            m => out.fail(
                "subnet-tags",
                &s.id,
                format!("{}: {}", w.name, m.join("; ")),
                "tag the shared subnet (each cluster adds its own kubernetes.io/cluster/NAME=shared, none owned; load balancers find subnets by these tags)",
            ),
        }
    }
    if !tags_checked {
        out.pass(
            "subnet-tags",
            &vpc.id,
            "no shared subnet: kopsrs tags the subnets it makes".into(),
        );
    }

    let order = |c: &Check| {
        CHECKS
            .iter()
            .position(|id| *id == c.check)
            .unwrap_or(usize::MAX)
    };
    out.0.sort_by_key(order);
    out.0
}

#[cfg(test)]
#[path = "network_tests.rs"]
mod tests;
