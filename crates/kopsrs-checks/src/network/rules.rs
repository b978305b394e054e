//! The rules of `validate network`, one function each (named after the check it reports),
//! over a [`Context`] built once: the VPC, the spec's subnets matched to what exists, the
//! cluster's address ranges.

use ipnet::Ipv4Net;
use kopsrs_api::cidr::overlaps;

use super::{AclEntry, Check, Network, RouteTable, Status, Subnet, SubnetKind, Vpc, Wanted};
use super::{WantedSubnet, CHECKS};

fn net(cidr: &str) -> Option<Ipv4Net> {
    cidr.parse().ok()
}

/// The checks reported so far.
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
    fn has(&self, check: &str) -> bool {
        self.0.iter().any(|c| c.check == check)
    }
    /// `check` passed on the VPC as a whole when no resource was checked for it.
    fn pass_if_none(&mut self, check: &'static str, vpc: &Vpc, message: &str) {
        if !self.has(check) {
            self.pass(check, &vpc.id, message.into());
        }
    }
}

/// What every rule reads, worked out once.
struct Context<'a> {
    wanted: &'a Wanted,
    network: &'a Network,
    vpc: &'a Vpc,
    /// The VPC's IPv4 blocks.
    vpc_nets: Vec<Ipv4Net>,
    /// The spec's subnets as they exist (by ID, else by CIDR), or will.
    found: Vec<(&'a WantedSubnet, Option<&'a Subnet>)>,
    /// The cluster's subnets (existing: by ID; to be created: by name) with their ranges.
    cluster_subnets: Vec<(String, Ipv4Net)>,
}

impl<'a> Context<'a> {
    fn new(wanted: &'a Wanted, network: &'a Network, vpc: &'a Vpc) -> Context<'a> {
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
        let cluster_subnets = found
            .iter()
            .filter_map(|(w, s)| {
                let cidr = s.map(|s| s.cidr.clone()).or_else(|| w.cidr.clone())?;
                Some((s.map_or(w.name.clone(), |s| s.id.clone()), net(&cidr)?))
            })
            .collect();
        Context {
            wanted,
            network,
            vpc,
            vpc_nets: vpc.cidrs.iter().filter_map(|c| net(c)).collect(),
            found,
            cluster_subnets,
        }
    }

    fn covered(&self, c: &Ipv4Net) -> bool {
        self.vpc_nets.iter().any(|v| v.contains(c))
    }

    /// The spec's subnets that exist, with what AWS reports of each.
    fn existing(&self) -> impl Iterator<Item = (&'a WantedSubnet, &'a Subnet)> + '_ {
        self.found.iter().filter_map(|(w, s)| Some((*w, (*s)?)))
    }

    /// The route table a subnet uses: its explicit association, else the main one.
    fn table_of(&self, subnet: &str) -> Option<&'a RouteTable> {
        table_of(self.network, subnet)
    }
}

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
    let cx = Context::new(wanted, network, vpc);
    let rules: [fn(&Context, &mut Out); 13] = [
        vpc_cidr,
        vpc_dns,
        dhcp_options,
        subnet_overlap,
        subnet_placement,
        igw_route,
        nat_route,
        nat_placement,
        peerings,
        nacl,
        subnet_tags,
        // The rules that report only when something was checked say so once otherwise.
        |cx, out| out.pass_if_none("nat-zone", cx.vpc, "no NAT gateway in use"),
        |cx, out| {
            for id in ["peering-active", "peering-route", "peering-overlap"] {
                out.pass_if_none(id, cx.vpc, "no peering connection to check");
            }
        },
    ];
    for rule in rules {
        rule(&cx, &mut out);
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

/// `vpc-cidr`: `networkCIDR` and `additionalNetworkCIDRs` are blocks of the VPC.
fn vpc_cidr(cx: &Context, out: &mut Out) {
    let vpc = cx.vpc;
    for cidr in &cx.wanted.cidrs {
        match net(cidr) {
            Some(c) if cx.covered(&c) => out.pass("vpc-cidr", &vpc.id, format!("{cidr} is a CIDR block of {}", vpc.id)),
            _ => out.fail(
                "vpc-cidr",
                &vpc.id,
                format!("{cidr} (networkCIDR/additionalNetworkCIDRs) is not within {}'s CIDR blocks {}", vpc.id, vpc.cidrs.join(", ")),
                "associate the CIDR block with the VPC, or write the VPC's CIDR in spec.networkCIDR",
            ),
        }
    }
    if cx.wanted.cidrs.is_empty() {
        out.pass("vpc-cidr", &vpc.id, "no networkCIDR to compare".into());
    }
}

/// `vpc-dns`: DNS support and DNS hostnames are on.
fn vpc_dns(cx: &Context, out: &mut Out) {
    let vpc = cx.vpc;
    match (vpc.dns_support, vpc.dns_hostnames) {
        (true, true) => out.pass("vpc-dns", &vpc.id, "DNS support and DNS hostnames are on".into()),
        (support, hostnames) => out.fail(
            "vpc-dns",
            &vpc.id,
            format!("enableDnsSupport {support}, enableDnsHostnames {hostnames}: nodes need both (their names are EC2's)"),
            "aws ec2 modify-vpc-attribute --vpc-id VPC --enable-dns-hostnames (and --enable-dns-support)",
        ),
    }
}

/// `dhcp-options`: the DHCP options give one domain name.
fn dhcp_options(cx: &Context, out: &mut Out) {
    let vpc = cx.vpc;
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
}

/// `subnet-overlap`: no two of the VPC's subnets overlap, planned ones included.
fn subnet_overlap(cx: &Context, out: &mut Out) {
    let mut all: Vec<(String, String)> = cx
        .network
        .subnets
        .iter()
        .map(|s| (s.id.clone(), s.cidr.clone()))
        .collect();
    for (w, s) in &cx.found {
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
            &cx.vpc.id,
            format!("{} subnets, no two overlap", all.len()),
        );
    }
}

/// `subnet-outside-vpc`, `subnet-zone`, `subnet-cluster-cidr`: each of the spec's subnets
/// lies inside the VPC, in the zone the spec says, clear of the pod and service ranges.
fn subnet_placement(cx: &Context, out: &mut Out) {
    let vpc = cx.vpc;
    let cluster_nets: Vec<(String, Ipv4Net)> = cx
        .wanted
        .cluster_cidrs
        .iter()
        .filter_map(|c| Some((c.clone(), net(c)?)))
        .collect();
    for (w, s) in &cx.found {
        let cidr = s.map(|s| s.cidr.clone()).or_else(|| w.cidr.clone());
        let Some(c) = cidr.as_deref().and_then(net) else {
            out.pass(
                "subnet-outside-vpc",
                &w.name,
                "no CIDR yet: kopsrs allocates one inside the VPC".into(),
            );
            continue;
        };
        match cx.covered(&c) {
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
        let clash: Vec<&str> = cluster_nets
            .iter()
            .filter(|(_, n)| overlaps(n, &c))
            .map(|(s, _)| s.as_str())
            .collect();
        match clash.as_slice() {
            [] => out.pass("subnet-cluster-cidr", &w.name, format!("{c} is clear of the pod and service CIDRs")),
            clash => out.fail(
                "subnet-cluster-cidr",
                &w.name,
                format!("{c} overlaps the cluster's pod/service CIDR {}", clash.join(", ")),
                "move spec.podCIDR / spec.serviceClusterIPRange (or the networking's cluster CIDR) out of the VPC's address space",
            ),
        }
    }
    if cx.found.is_empty() {
        for id in ["subnet-outside-vpc", "subnet-zone", "subnet-cluster-cidr"] {
            out.pass(id, &vpc.id, "the spec has no subnets".into());
        }
    }
}

/// The default route for `dest` of the table `subnet` uses, unless it is a blackhole.
fn default_route<'a>(cx: &Context<'a>, subnet: &str, dest: &str) -> Option<&'a super::Route> {
    cx.table_of(subnet).and_then(|t| {
        t.routes
            .iter()
            .find(|r| r.destination == dest && r.state != "blackhole")
    })
}

/// `igw-route`: existing public and utility subnets route the default (IPv6 too when the
/// cluster uses it) to an internet gateway attached to the VPC.
fn igw_route(cx: &Context, out: &mut Out) {
    let igws = &cx.network.internet_gateways;
    for (w, s) in cx.existing() {
        if w.kind == SubnetKind::Private {
            continue;
        }
        let mut dests = vec!["0.0.0.0/0"];
        if cx.wanted.ipv6 {
            dests.push("::/0");
        }
        for dest in dests {
            match default_route(cx, &s.id, dest) {
                Some(r) if igws.contains(&r.target) => out.pass(
                    "igw-route",
                    &s.id,
                    format!("{dest} -> {} (attached)", r.target),
                ),
                Some(r) => out.fail(
                    "igw-route",
                    &s.id,
                    format!(
                        "{dest} goes to {}, not to an internet gateway attached to {}",
                        r.target, cx.vpc.id
                    ),
                    "route 0.0.0.0/0 of the subnet's route table to the VPC's internet gateway",
                ),
                None => out.fail(
                    "igw-route",
                    &s.id,
                    format!(
                        "no {dest} route in {}",
                        cx.table_of(&s.id)
                            .map_or("any route table", |t| t.id.as_str())
                    ),
                    "route 0.0.0.0/0 of the subnet's route table to the VPC's internet gateway",
                ),
            }
        }
    }
    out.pass_if_none(
        "igw-route",
        cx.vpc,
        "no existing public or utility subnet to check",
    );
}

/// `nat-route` and `nat-zone`: existing private subnets route the default to an available
/// NAT gateway (or the egress the spec names), in their own zone.
fn nat_route(cx: &Context, out: &mut Out) {
    let network = cx.network;
    for (w, s) in cx.existing() {
        if w.kind != SubnetKind::Private {
            continue;
        }
        match default_route(cx, &s.id, "0.0.0.0/0") {
            Some(r) if r.target.starts_with("nat-") => {
                let nat = network.nat_gateways.iter().find(|n| n.id == r.target);
                match nat {
                    Some(n) if n.state == "available" => out.pass("nat-route", &s.id, format!("0.0.0.0/0 -> {}", n.id)),
                    _ => out.fail(
                        "nat-route",
                        &s.id,
                        format!("0.0.0.0/0 -> {}, which is not an available NAT gateway of {}", r.target, cx.vpc.id),
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
    out.pass_if_none("nat-route", cx.vpc, "no existing private subnet to check");
}

/// `nat-placement`: the NAT gateways the cluster egresses through (its private subnets'
/// default routes, and the egress the spec names) sit in a public subnet with a public IP.
/// Other NAT gateways of the VPC are other teams' business (some are private on purpose).
fn nat_placement(cx: &Context, out: &mut Out) {
    let used: Vec<&str> = cx
        .found
        .iter()
        .filter(|(w, _)| w.kind == SubnetKind::Private)
        .flat_map(|(w, s)| {
            let routed = s
                .and_then(|s| cx.table_of(&s.id))
                .into_iter()
                .flat_map(|t| &t.routes)
                .filter(|r| r.destination == "0.0.0.0/0")
                .map(|r| r.target.as_str());
            routed.chain(w.egress.as_deref())
        })
        .collect();
    let igws = &cx.network.internet_gateways;
    for n in &cx.network.nat_gateways {
        if n.state != "available" && n.state != "pending" || !used.contains(&n.id.as_str()) {
            continue;
        }
        let public = cx.table_of(&n.subnet).is_some_and(|t| {
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
    out.pass_if_none(
        "nat-placement",
        cx.vpc,
        "the cluster egresses through no existing NAT gateway",
    );
}

/// `peering-active`, `peering-route`, `peering-overlap`: each live peering connection is
/// active, routed from every existing cluster subnet, and clear of the cluster's addresses.
fn peerings(cx: &Context, out: &mut Out) {
    // Deleted, rejected and expired connections stay listed for a while; they carry nothing.
    let live = cx.network.peerings.iter().filter(|p| {
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
            peering_route(cx, out, &p.id, peer, &pn);
            peering_overlap(cx, out, &p.id, peer, &pn);
        }
    }
}

/// `peering-route`: every existing cluster subnet's table routes the peer's CIDR to it.
fn peering_route(cx: &Context, out: &mut Out, peering: &str, peer: &str, pn: &Ipv4Net) {
    for (w, s) in cx.existing() {
        let routed = cx.table_of(&s.id).is_some_and(|t| {
            t.routes.iter().any(|r| {
                r.target == peering
                    && net(&r.destination).is_some_and(|d| d.contains(pn) || pn.contains(&d))
            })
        });
        match routed {
            true => out.pass("peering-route", &s.id, format!("{peer} -> {peering}")),
            false => out.fail(
                "peering-route",
                &s.id,
                format!("no route for {peer} through {peering} ({})", w.name),
                "add a route for the peer's CIDR through the peering connection to the subnet's route table",
            ),
        }
    }
}

/// `peering-overlap`: the peer's CIDR collides with neither the VPC nor the cluster's
/// subnets.
fn peering_overlap(cx: &Context, out: &mut Out, peering: &str, peer: &str, pn: &Ipv4Net) {
    let mine = cx
        .vpc_nets
        .iter()
        .map(|n| (cx.vpc.id.clone(), *n))
        .chain(cx.cluster_subnets.iter().cloned());
    let clash: Vec<String> = mine
        .filter(|(_, n)| overlaps(n, pn))
        .map(|(r, n)| format!("{r} ({n})"))
        .collect();
    match clash.as_slice() {
        [] => out.pass(
            "peering-overlap",
            peering,
            format!("{peer} is clear of the cluster's addresses"),
        ),
        clash => out.fail(
            "peering-overlap",
            peering,
            format!("the peer's {peer} overlaps {}", clash.join(", ")),
            "peer only VPCs whose CIDRs do not collide with the cluster's",
        ),
    }
}

/// Whether the first matching rule (lowest number) of `entries` in one direction allows
/// `protocol`/`port` to or from all of `peer`, as AWS evaluates them. A rule counts when its
/// CIDR holds the whole peer range: a deny of part of it is not a total denial, and an allow
/// of part of it is not enough.
fn acl_allows(
    entries: &[AclEntry],
    egress: bool,
    protocol: &str,
    port: i32,
    peer: &Ipv4Net,
) -> bool {
    let mut rules: Vec<&AclEntry> = entries.iter().filter(|e| e.egress == egress).collect();
    rules.sort_by_key(|e| e.number);
    rules
        .into_iter()
        .find(|e| {
            (e.protocol == "-1" || e.protocol == protocol)
                && e.ports.is_none_or(|(a, b)| a <= port && port <= b)
                && net(&e.cidr).is_some_and(|n| n.contains(peer))
        })
        .is_some_and(|e| e.allow)
}

/// `nacl`: each existing cluster subnet's network ACL lets through, from anywhere, HTTPS in
/// (the API) and out and the ephemeral return ports; between the cluster's subnets (node to
/// node), the kubelet (TCP 10250) and DNS (UDP 53, CoreDNS runs on other nodes).
fn nacl(cx: &Context, out: &mut Out) {
    let anywhere = Ipv4Net::new(std::net::Ipv4Addr::UNSPECIFIED, 0).expect("prefix 0 is valid");
    for (w, s) in cx.existing() {
        let Some(acl) = cx.network.acls.iter().find(|a| a.subnets.contains(&s.id)) else {
            out.pass(
                "nacl",
                &s.id,
                "no network ACL (the default allows all)".into(),
            );
            continue;
        };
        let allowed = |egress, protocol, port, peer: &Ipv4Net| {
            acl_allows(&acl.entries, egress, protocol, port, peer)
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
        for (peer_name, peer) in cx.cluster_subnets.iter().filter(|(_, n)| Some(*n) != own) {
            let node: Vec<&str> = [
                ("6", 10250, "TCP 10250 (kubelet)"),
                ("17", 53, "UDP 53 (DNS)"),
            ]
            .into_iter()
            .filter(|(protocol, port, _)| {
                !allowed(false, protocol, *port, peer) || !allowed(true, protocol, *port, peer)
            })
            .map(|(_, _, what)| what)
            .collect();
            if !node.is_empty() {
                denied.push(format!(
                    "{} with {peer_name} ({peer}, node to node)",
                    node.join(" and ")
                ));
            }
        }
        match denied.as_slice() {
            [] => out.pass("nacl", &s.id, format!("{} allows the API, node and return traffic", acl.id)),
            d => out.fail(
                "nacl",
                &s.id,
                format!("{} ({}) denies {}", acl.id, w.name, d.join(", ")),
                "allow TCP 443 and 1024-65535 in and out, and all traffic between the cluster's subnets, in the subnet's network ACL",
            ),
        }
    }
    out.pass_if_none("nacl", cx.vpc, "no existing cluster subnet to check");
}

/// `subnet-tags`: shared subnets carry the cluster tag (or kopsrs adds it: an update adds the
/// cluster's own key, as kops does, unless `spec.DisableSubnetTags`, and then the hint is the
/// command that adds it), no other cluster claims them `owned`, and (a warning) they carry
/// the load-balancer role tag load balancers are placed by.
fn subnet_tags(cx: &Context, out: &mut Out) {
    let cluster_tag = format!("kubernetes.io/cluster/{}", cx.wanted.cluster);
    let mut untagged = Vec::new();
    for (w, s) in cx.existing() {
        if w.id.is_none() {
            continue;
        }
        let role = match w.kind {
            SubnetKind::Private => "kubernetes.io/role/internal-elb",
            _ => "kubernetes.io/role/elb",
        };
        let mut missing = Vec::new();
        let mut added = false;
        match s.tags.get(&cluster_tag).map(String::as_str) {
            Some("shared") => {}
            Some(_) if cx.wanted.tags_shared_subnets => added = true,
            Some(other) => missing.push(format!("{cluster_tag} is {other:?}, not \"shared\"")),
            None if cx.wanted.tags_shared_subnets => added = true,
            None => {
                missing.push(format!("no {cluster_tag}=shared"));
                untagged.push(s.id.clone());
            }
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
            [] if added => out.pass(
                "subnet-tags",
                &s.id,
                format!("{cluster_tag}=shared is added by `update cluster --yes`"),
            ),
            [] => out.pass("subnet-tags", &s.id, format!("{cluster_tag}=shared")),
            m => {
                let fix = match untagged.last() == Some(&s.id) {
                    true => format!(
                        "tag it: aws ec2 create-tags --resources {} --tags Key={cluster_tag},Value=shared (spec.DisableSubnetTags keeps kopsrs from doing it)",
                        s.id
                    ),
                    false => "each cluster tags a shared subnet with its own kubernetes.io/cluster/NAME=shared, none owned".to_string(),
                };
                out.fail(
                    "subnet-tags",
                    &s.id,
                    format!("{}: {}", w.name, m.join("; ")),
                    &fix,
                );
            }
        }
        if !s.tags.contains_key(role) {
            out.warn(
                "subnet-tags",
                &s.id,
                format!("{}: no {role}", w.name),
                &format!("load balancers are placed in subnets tagged {role}=1: aws ec2 create-tags --resources {} --tags Key={role},Value=1", s.id),
            );
        }
    }
    out.pass_if_none(
        "subnet-tags",
        cx.vpc,
        "no shared subnet: kopsrs tags the subnets it makes",
    );
}
