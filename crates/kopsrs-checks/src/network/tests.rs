use super::*;

/// A sound VPC as Terraform would make it for a private topology in two zones: a public
/// (utility) and a private subnet per zone, a NAT gateway in each public one, an active
/// peering with routes, default network ACLs, the shared subnets tagged.
fn sound() -> (Wanted, Network) {
    let tags = |role: &str| {
        BTreeMap::from([
            (
                "kubernetes.io/cluster/c.example.com".to_string(),
                "shared".to_string(),
            ),
            (role.to_string(), "1".to_string()),
        ])
    };
    let subnet = |id: &str, cidr: &str, zone: &str, role: &str| Subnet {
        id: id.into(),
        cidr: cidr.into(),
        zone: zone.into(),
        tags: tags(role),
    };
    let route = |dest: &str, target: &str| Route {
        destination: dest.into(),
        target: target.into(),
        state: "active".into(),
    };
    let wanted_subnet = |name: &str, id: &str, zone: &str, kind| WantedSubnet {
        name: name.into(),
        id: Some(id.into()),
        cidr: None,
        zone: zone.into(),
        kind,
        egress: None,
    };
    let wanted = Wanted {
        cluster: "c.example.com".into(),
        cidrs: vec!["10.0.0.0/16".into()],
        cluster_cidrs: vec!["100.64.0.0/10".into(), "100.96.0.0/11".into()],
        subnets: vec![
            wanted_subnet("utility-a", "subnet-ua", "eu-west-1a", SubnetKind::Utility),
            wanted_subnet("utility-b", "subnet-ub", "eu-west-1b", SubnetKind::Utility),
            wanted_subnet("a", "subnet-pa", "eu-west-1a", SubnetKind::Private),
            wanted_subnet("b", "subnet-pb", "eu-west-1b", SubnetKind::Private),
        ],
        ipv6: false,
        tags_shared_subnets: false,
    };
    let network = Network {
        vpc: Some(Vpc {
            id: "vpc-1".into(),
            cidrs: vec!["10.0.0.0/16".into()],
            dns_support: true,
            dns_hostnames: true,
            domain_name: Some("eu-west-1.compute.internal".into()),
        }),
        subnets: vec![
            subnet(
                "subnet-ua",
                "10.0.0.0/24",
                "eu-west-1a",
                "kubernetes.io/role/elb",
            ),
            subnet(
                "subnet-ub",
                "10.0.1.0/24",
                "eu-west-1b",
                "kubernetes.io/role/elb",
            ),
            subnet(
                "subnet-pa",
                "10.0.32.0/19",
                "eu-west-1a",
                "kubernetes.io/role/internal-elb",
            ),
            subnet(
                "subnet-pb",
                "10.0.64.0/19",
                "eu-west-1b",
                "kubernetes.io/role/internal-elb",
            ),
            // Another team's subnet in the same VPC.
            Subnet {
                id: "subnet-other".into(),
                cidr: "10.0.128.0/20".into(),
                zone: "eu-west-1a".into(),
                tags: BTreeMap::new(),
            },
        ],
        route_tables: vec![
            RouteTable {
                id: "rtb-public".into(),
                main: true,
                subnets: vec!["subnet-ua".into(), "subnet-ub".into()],
                routes: vec![
                    route("10.0.0.0/16", "local"),
                    route("0.0.0.0/0", "igw-1"),
                    route("172.16.0.0/16", "pcx-1"),
                ],
            },
            RouteTable {
                id: "rtb-a".into(),
                main: false,
                subnets: vec!["subnet-pa".into()],
                routes: vec![route("0.0.0.0/0", "nat-a"), route("172.16.0.0/16", "pcx-1")],
            },
            RouteTable {
                id: "rtb-b".into(),
                main: false,
                subnets: vec!["subnet-pb".into()],
                routes: vec![route("0.0.0.0/0", "nat-b"), route("172.16.0.0/16", "pcx-1")],
            },
        ],
        internet_gateways: vec!["igw-1".into()],
        nat_gateways: vec![
            NatGateway {
                id: "nat-a".into(),
                subnet: "subnet-ua".into(),
                state: "available".into(),
                public_ip: true,
            },
            NatGateway {
                id: "nat-b".into(),
                subnet: "subnet-ub".into(),
                state: "available".into(),
                public_ip: true,
            },
        ],
        peerings: vec![Peering {
            id: "pcx-1".into(),
            status: "active".into(),
            peer_cidrs: vec!["172.16.0.0/16".into()],
        }],
        acls: vec![Acl {
            id: "acl-default".into(),
            subnets: vec![
                "subnet-ua".into(),
                "subnet-ub".into(),
                "subnet-pa".into(),
                "subnet-pb".into(),
            ],
            entries: vec![
                AclEntry {
                    number: 100,
                    egress: false,
                    protocol: "-1".into(),
                    ports: None,
                    cidr: "0.0.0.0/0".into(),
                    allow: true,
                },
                AclEntry {
                    number: 100,
                    egress: true,
                    protocol: "-1".into(),
                    ports: None,
                    cidr: "0.0.0.0/0".into(),
                    allow: true,
                },
            ],
        }],
    };
    (wanted, network)
}

/// The checks that did not pass: (id, status).
fn problems(wanted: &Wanted, network: &Network) -> Vec<(&'static str, Status)> {
    let mut out: Vec<_> = check(wanted, network)
        .into_iter()
        .filter(|c| c.status != Status::Passed)
        .map(|c| (c.check, c.status))
        .collect();
    out.dedup();
    out
}

#[test]
fn a_sound_vpc_passes_every_check_and_reports_each() {
    let (wanted, network) = sound();
    let checks = check(&wanted, &network);
    assert!(
        checks.iter().all(|c| c.status == Status::Passed),
        "{checks:#?}"
    );
    for id in CHECKS {
        assert!(checks.iter().any(|c| c.check == id), "{id} missing");
    }
}

/// A broken VPC: its name, how it is broken, the checks that must not pass.
type Case = (
    &'static str,
    Box<dyn Fn(&mut Wanted, &mut Network)>,
    Vec<(&'static str, Status)>,
);

/// Breaks a sound VPC as each case says and asserts that exactly the case's checks do not
/// pass. Without a VPC nothing else can be checked: only the first must be `vpc-exists`.
fn assert_each_fails_its_own_checks(cases: Vec<Case>) {
    for (name, broken, expected) in cases {
        let (mut wanted, mut network) = sound();
        broken(&mut wanted, &mut network);
        let got = problems(&wanted, &network);
        if name == "no VPC" {
            assert_eq!(got[0], ("vpc-exists", Status::Failed), "{name}");
            continue;
        }
        assert_eq!(got, expected, "{name}");
    }
}

/// The VPC itself: missing, outside the network CIDR, without DNS, with odd DHCP options.
#[test]
fn a_broken_vpc_fails_its_own_vpc_check_and_nothing_else() {
    let failed = Status::Failed;
    let cases: Vec<Case> = vec![
        (
            "no VPC",
            Box::new(|_, n| n.vpc = None),
            vec![("vpc-exists", failed)],
        ),
        (
            "networkCIDR outside",
            Box::new(|w, _| w.cidrs = vec!["10.1.0.0/16".into()]),
            vec![("vpc-cidr", failed)],
        ),
        (
            "DNS hostnames off",
            Box::new(|_, n| n.vpc.as_mut().unwrap().dns_hostnames = false),
            vec![("vpc-dns", failed)],
        ),
        (
            "two domains in DHCP options",
            Box::new(|_, n| {
                n.vpc.as_mut().unwrap().domain_name = Some("a.internal b.internal".into())
            }),
            vec![("dhcp-options", failed)],
        ),
    ];
    assert_each_fails_its_own_checks(cases);
}

/// Subnets: overlapping, outside the VPC, in the wrong zone, under the pod range, mis-tagged.
#[test]
fn each_broken_subnet_fails_its_own_subnet_check_and_nothing_else() {
    let failed = Status::Failed;
    let cases: Vec<Case> = vec![
        (
            "overlapping subnets",
            Box::new(|_, n| n.subnets[4].cidr = "10.0.64.0/20".into()),
            vec![("subnet-overlap", failed)],
        ),
        (
            "a planned subnet outside the VPC",
            Box::new(|w, _| {
                w.subnets.push(WantedSubnet {
                    name: "c".into(),
                    id: None,
                    cidr: Some("10.9.0.0/20".into()),
                    zone: "eu-west-1c".into(),
                    kind: SubnetKind::Private,
                    egress: None,
                })
            }),
            vec![("subnet-outside-vpc", failed)],
        ),
        (
            "wrong zone",
            Box::new(|w, _| w.subnets[2].zone = "eu-west-1c".into()),
            vec![("subnet-zone", failed)],
        ),
        (
            "pod CIDR over the VPC",
            Box::new(|w, _| w.cluster_cidrs = vec!["10.0.32.0/19".into()]),
            vec![("subnet-cluster-cidr", failed)],
        ),
        (
            "another cluster claims a shared subnet",
            Box::new(|_, n| {
                n.subnets[2].tags.insert(
                    "kubernetes.io/cluster/xc.example.com".into(),
                    "owned".into(),
                );
                n.subnets[3].tags.insert(
                    "kubernetes.io/cluster/other.example.com".into(),
                    "shared".into(),
                );
            }),
            vec![("subnet-tags", failed)],
        ),
        (
            "missing load-balancer tag: a warning (kops does not require it)",
            Box::new(|_, n| {
                n.subnets[2].tags.remove("kubernetes.io/role/internal-elb");
            }),
            vec![("subnet-tags", Status::Warning)],
        ),
        (
            "missing cluster tag, with spec.DisableSubnetTags",
            Box::new(|_, n| {
                n.subnets[2]
                    .tags
                    .remove("kubernetes.io/cluster/c.example.com");
            }),
            vec![("subnet-tags", failed)],
        ),
        (
            "missing cluster tag, which kopsrs adds",
            Box::new(|w, n| {
                w.tags_shared_subnets = true;
                n.subnets[2]
                    .tags
                    .remove("kubernetes.io/cluster/c.example.com");
            }),
            vec![],
        ),
    ];
    assert_each_fails_its_own_checks(cases);
}

/// Default routes and NAT gateways.
#[test]
fn each_broken_route_or_nat_gateway_fails_its_own_check_and_nothing_else() {
    let failed = Status::Failed;
    let cases: Vec<Case> = vec![
        (
            "no default route",
            Box::new(|_, n| {
                n.route_tables[0]
                    .routes
                    .retain(|r| r.destination != "0.0.0.0/0")
            }),
            // The NAT gateways sit in those subnets: they lose the internet too.
            vec![("igw-route", failed), ("nat-placement", failed)],
        ),
        (
            "private subnet without NAT",
            Box::new(|_, n| {
                n.route_tables[1]
                    .routes
                    .retain(|r| r.destination != "0.0.0.0/0")
            }),
            vec![("nat-route", failed)],
        ),
        (
            "NAT gateway in a private subnet",
            Box::new(|_, n| n.nat_gateways[1].subnet = "subnet-pa".into()),
            // In the other zone's private subnet: misplaced, and cross-zone for zone b.
            vec![("nat-placement", failed), ("nat-zone", Status::Warning)],
        ),
        (
            "another team's private NAT gateway the cluster does not use: sound",
            Box::new(|_, n| {
                n.nat_gateways.push(NatGateway {
                    id: "nat-private".into(),
                    subnet: "subnet-other".into(),
                    state: "available".into(),
                    public_ip: false,
                })
            }),
            vec![],
        ),
    ];
    assert_each_fails_its_own_checks(cases);
}

/// Peering connections: pending, deleted, without routes, overlapping.
#[test]
fn each_broken_peering_fails_its_own_check_and_nothing_else() {
    let failed = Status::Failed;
    let cases: Vec<Case> = vec![
        (
            "pending peering",
            Box::new(|_, n| n.peerings[0].status = "pending-acceptance".into()),
            vec![("peering-active", failed)],
        ),
        (
            "a deleted peering is ignored",
            Box::new(|_, n| {
                n.peerings.push(Peering {
                    id: "pcx-old".into(),
                    status: "deleted".into(),
                    peer_cidrs: vec!["10.0.0.0/8".into()],
                })
            }),
            vec![],
        ),
        (
            "peering without routes",
            Box::new(|_, n| n.route_tables[2].routes.retain(|r| r.target != "pcx-1")),
            vec![("peering-route", failed)],
        ),
        (
            "peer CIDR overlaps",
            Box::new(|_, n| n.peerings[0].peer_cidrs = vec!["10.0.128.0/17".into()]),
            // Its routes (for 172.16/16) no longer cover the new CIDR either.
            vec![("peering-route", failed), ("peering-overlap", failed)],
        ),
    ];
    assert_each_fails_its_own_checks(cases);
}

/// Network ACLs: denying what nodes need, or only what they do not.
#[test]
fn each_denying_network_acl_fails_the_nacl_check_and_nothing_else() {
    let failed = Status::Failed;
    let cases: Vec<Case> = vec![
        (
            "NACL denies 443",
            Box::new(|_, n| {
                n.acls[0].entries.push(AclEntry {
                    number: 50,
                    egress: false,
                    protocol: "6".into(),
                    ports: Some((443, 443)),
                    cidr: "0.0.0.0/0".into(),
                    allow: false,
                })
            }),
            vec![("nacl", failed)],
        ),
        (
            "NACL denies the kubelet between the private subnets",
            Box::new(|_, n| {
                n.acls[0].entries.push(AclEntry {
                    number: 60,
                    egress: false,
                    protocol: "6".into(),
                    ports: Some((10250, 10250)),
                    cidr: "10.0.0.0/16".into(),
                    allow: false,
                })
            }),
            vec![("nacl", failed)],
        ),
        (
            "NACL denies DNS out to another zone's subnet",
            Box::new(|_, n| {
                n.acls[0].entries.push(AclEntry {
                    number: 60,
                    egress: true,
                    protocol: "17".into(),
                    ports: Some((53, 53)),
                    cidr: "10.0.64.0/19".into(),
                    allow: false,
                })
            }),
            vec![("nacl", failed)],
        ),
        (
            "NACL denying part of a peer range only, and traffic to the outside world on a port nodes do not need: sound",
            Box::new(|_, n| {
                for (cidr, port) in [("10.0.64.0/24", 10250), ("0.0.0.0/0", 22)] {
                    n.acls[0].entries.push(AclEntry {
                        number: 60 + port,
                        egress: false,
                        protocol: "6".into(),
                        ports: Some((port, port)),
                        cidr: cidr.into(),
                        allow: false,
                    })
                }
            }),
            vec![],
        ),
    ];
    assert_each_fails_its_own_checks(cases);
}

#[test]
fn a_nat_gateway_in_another_zone_is_a_warning() {
    let (wanted, mut network) = sound();
    network.route_tables[2].routes[0].target = "nat-a".into();
    let checks = check(&wanted, &network);
    let zone: Vec<&Check> = checks
        .iter()
        .filter(|c| c.status != Status::Passed)
        .collect();
    assert_eq!(zone.len(), 1, "{zone:#?}");
    assert_eq!(
        (zone[0].check, zone[0].status),
        ("nat-zone", Status::Warning)
    );
    assert_eq!(zone[0].resource, "subnet-pb");
}

#[test]
fn the_messages_name_what_is_denied_and_who_claims_a_subnet() {
    let (wanted, mut network) = sound();
    network.acls[0].entries.push(AclEntry {
        number: 60,
        egress: false,
        protocol: "6".into(),
        ports: Some((10000, 11000)),
        cidr: "10.0.0.0/8".into(),
        allow: false,
    });
    network.subnets[2].tags.insert(
        "kubernetes.io/cluster/xc.example.com".into(),
        "owned".into(),
    );
    let checks = check(&wanted, &network);
    let failed = |id: &str, resource: &str| {
        checks
            .iter()
            .find(|c| c.check == id && c.resource == resource && c.status == Status::Failed)
            .unwrap_or_else(|| panic!("{id} {resource}: {checks:#?}"))
            .message
            .clone()
    };
    // subnet-pa's ACL denies the kubelet from the other cluster subnets, not from itself.
    let nacl = failed("nacl", "subnet-pa");
    assert!(
        nacl.contains("TCP 10250 (kubelet) with subnet-pb (10.0.64.0/19, node to node)")
            && !nacl.contains("with subnet-pa"),
        "{nacl}"
    );
    let tags = failed("subnet-tags", "subnet-pa");
    assert!(
        tags.contains("cluster xc.example.com claims the subnet"),
        "{tags}"
    );
}

/// Without kopsrs tagging (spec.DisableSubnetTags), the hint is the exact command that tags
/// the subnet with this cluster's key; with it, the check says the update adds it.
#[test]
fn an_untagged_shared_subnet_gets_the_command_or_kopsrs_adds_the_tag() {
    let (wanted, mut network) = sound();
    network.subnets[2]
        .tags
        .remove("kubernetes.io/cluster/c.example.com");
    let checks = check(&wanted, &network);
    let tags = checks
        .iter()
        .find(|c| c.check == "subnet-tags" && c.resource == "subnet-pa")
        .unwrap();
    assert_eq!(tags.status, Status::Failed);
    assert_eq!(
        tags.hint,
        "tag it: aws ec2 create-tags --resources subnet-pa --tags Key=kubernetes.io/cluster/c.example.com,Value=shared (spec.DisableSubnetTags keeps kopsrs from doing it)"
    );
    let adding = Wanted {
        tags_shared_subnets: true,
        ..wanted
    };
    let checks = check(&adding, &network);
    let tags = checks
        .iter()
        .find(|c| c.check == "subnet-tags" && c.resource == "subnet-pa")
        .unwrap();
    assert_eq!(tags.status, Status::Passed);
    assert!(
        tags.message.contains("added by `update cluster --yes`"),
        "{}",
        tags.message
    );
}
