//! What `validate network` reads of a VPC: the VPC, its DNS attributes and DHCP options, every
//! subnet, route table, attached internet gateway, NAT gateway, peering connection and network
//! ACL. One batched (paginated) call per resource type, at once: the count does not grow with
//! the number of subnets. The checks are `kopsrs_checks::network`'s.

use aws_sdk_ec2::types::{self as ec2t, Filter, VpcAttributeName};
use kopsrs_checks::network::{
    Acl, AclEntry, NatGateway, Network, Peering, Route, RouteTable, Subnet, Vpc,
};

use crate::handler::ec2_tags;
use crate::{Aws, Error};

fn filter(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

impl Aws {
    /// The network of VPC `vpc_id`, else of the VPC tagged as the cluster's
    /// (`kubernetes.io/cluster/CLUSTER`); `Network::default()` (no VPC) when there is none.
    pub async fn network(&self, vpc_id: Option<&str>, cluster: &str) -> Result<Network, Error> {
        self.call();
        let vpcs = match vpc_id {
            Some(id) => self.ec2.describe_vpcs().vpc_ids(id).send().await,
            None => {
                self.ec2
                    .describe_vpcs()
                    .filters(filter("tag-key", &Self::cluster_tag(cluster)))
                    .send()
                    .await
            }
        };
        let vpcs = match vpcs {
            Ok(v) => v,
            // A VPC ID that does not exist is an answer, not an error.
            Err(e) if vpc_id.is_some() && format!("{e:?}").contains("InvalidVpcID.NotFound") => {
                return Ok(Network::default())
            }
            Err(e) => return Err(e.into()),
        };
        let Some(vpc) = vpcs.vpcs().first().cloned() else {
            return Ok(Network::default());
        };
        let id = vpc.vpc_id().unwrap_or_default().to_string();
        let attribute = |name: VpcAttributeName| {
            let id = id.clone();
            async move {
                self.call();
                let a = self
                    .ec2
                    .describe_vpc_attribute()
                    .vpc_id(id)
                    .attribute(name)
                    .send()
                    .await?;
                Ok::<_, Error>(a)
            }
        };
        let dhcp = async {
            let Some(options) = vpc.dhcp_options_id().filter(|d| *d != "default") else {
                return Ok::<_, Error>(None);
            };
            self.call();
            let out = self
                .ec2
                .describe_dhcp_options()
                .dhcp_options_ids(options)
                .send()
                .await?;
            Ok(out
                .dhcp_options()
                .iter()
                .flat_map(|o| o.dhcp_configurations())
                .find(|c| c.key() == Some("domain-name"))
                .map(|c| {
                    c.values()
                        .iter()
                        .filter_map(|v| v.value())
                        .collect::<Vec<_>>()
                        .join(" ")
                }))
        };
        let subnets = async {
            let request = self
                .ec2
                .describe_subnets()
                .filters(filter("vpc-id", &id))
                .max_results(1000);
            Ok::<_, Error>(all_pages!(self, request, subnets))
        };
        let tables = async {
            let request = self
                .ec2
                .describe_route_tables()
                .filters(filter("vpc-id", &id))
                .max_results(100);
            Ok::<_, Error>(all_pages!(self, request, route_tables))
        };
        let igws = async {
            let request = self
                .ec2
                .describe_internet_gateways()
                .filters(filter("attachment.vpc-id", &id))
                .max_results(1000);
            Ok::<_, Error>(all_pages!(self, request, internet_gateways))
        };
        let nats = async {
            let request = self
                .ec2
                .describe_nat_gateways()
                .filter(filter("vpc-id", &id))
                .max_results(1000);
            Ok::<_, Error>(all_pages!(self, request, nat_gateways))
        };
        let peerings = async {
            let mut all = Vec::new();
            for side in ["requester-vpc-info.vpc-id", "accepter-vpc-info.vpc-id"] {
                let request = self
                    .ec2
                    .describe_vpc_peering_connections()
                    .filters(filter(side, &id))
                    .max_results(1000);
                all.extend(all_pages!(self, request, vpc_peering_connections));
            }
            // A connection may answer both filters (moto ignores the side); once each.
            all.sort_by(|a: &ec2t::VpcPeeringConnection, b| {
                a.vpc_peering_connection_id()
                    .cmp(&b.vpc_peering_connection_id())
            });
            all.dedup_by(|a, b| a.vpc_peering_connection_id() == b.vpc_peering_connection_id());
            Ok::<_, Error>(all)
        };
        let acls = async {
            let request = self
                .ec2
                .describe_network_acls()
                .filters(filter("vpc-id", &id))
                .max_results(1000);
            Ok::<_, Error>(all_pages!(self, request, network_acls))
        };
        let (support, hostnames, domain, subnets, tables, igws, nats, peerings, acls) = tokio::try_join!(
            attribute(VpcAttributeName::EnableDnsSupport),
            attribute(VpcAttributeName::EnableDnsHostnames),
            dhcp,
            subnets,
            tables,
            igws,
            nats,
            peerings,
            acls
        )?;
        let value =
            |b: Option<&ec2t::AttributeBooleanValue>| b.and_then(|v| v.value()).unwrap_or(false);
        Ok(Network {
            vpc: Some(Vpc {
                cidrs: vpc
                    .cidr_block_association_set()
                    .iter()
                    .filter(|a| {
                        a.cidr_block_state()
                            .and_then(|s| s.state())
                            .is_none_or(|s| s.as_str() == "associated")
                    })
                    .filter_map(|a| a.cidr_block().map(str::to_string))
                    .collect(),
                dns_support: value(support.enable_dns_support()),
                dns_hostnames: value(hostnames.enable_dns_hostnames()),
                domain_name: domain,
                id: id.clone(),
            }),
            subnets: subnets
                .iter()
                .map(|s| Subnet {
                    id: s.subnet_id().unwrap_or_default().into(),
                    cidr: s.cidr_block().unwrap_or_default().into(),
                    zone: s.availability_zone().unwrap_or_default().into(),
                    tags: ec2_tags(s.tags()),
                })
                .collect(),
            route_tables: tables
                .iter()
                .map(|t| RouteTable {
                    id: t.route_table_id().unwrap_or_default().into(),
                    main: t.associations().iter().any(|a| a.main() == Some(true)),
                    subnets: t
                        .associations()
                        .iter()
                        .filter_map(|a| a.subnet_id().map(str::to_string))
                        .collect(),
                    routes: t
                        .routes()
                        .iter()
                        .map(|r| Route {
                            destination: r
                                .destination_cidr_block()
                                .or(r.destination_ipv6_cidr_block())
                                .unwrap_or_default()
                                .into(),
                            target: r
                                .gateway_id()
                                .or(r.nat_gateway_id())
                                .or(r.vpc_peering_connection_id())
                                .or(r.transit_gateway_id())
                                .or(r.instance_id())
                                .or(r.egress_only_internet_gateway_id())
                                .unwrap_or_default()
                                .into(),
                            state: r
                                .state()
                                .map(|s| s.as_str().to_string())
                                .unwrap_or_default(),
                        })
                        .collect(),
                })
                .collect(),
            internet_gateways: igws
                .iter()
                .filter_map(|g| g.internet_gateway_id().map(str::to_string))
                .collect(),
            nat_gateways: nats
                .iter()
                .map(|n| NatGateway {
                    id: n.nat_gateway_id().unwrap_or_default().into(),
                    subnet: n.subnet_id().unwrap_or_default().into(),
                    state: n
                        .state()
                        .map(|s| s.as_str().to_string())
                        .unwrap_or_default(),
                    public_ip: n
                        .nat_gateway_addresses()
                        .iter()
                        .any(|a| a.public_ip().is_some() || a.allocation_id().is_some()),
                })
                .collect(),
            peerings: peerings
                .iter()
                .map(|p| {
                    // The other side's CIDRs, whichever side this VPC is.
                    let (requester, accepter) = (p.requester_vpc_info(), p.accepter_vpc_info());
                    let other = match requester.and_then(|r| r.vpc_id()) == Some(id.as_str()) {
                        true => accepter,
                        false => requester,
                    };
                    let mut cidrs: Vec<String> = other
                        .map(|o| {
                            o.cidr_block_set()
                                .iter()
                                .filter_map(|c| c.cidr_block().map(str::to_string))
                                .collect()
                        })
                        .unwrap_or_default();
                    if cidrs.is_empty() {
                        cidrs.extend(other.and_then(|o| o.cidr_block()).map(str::to_string));
                    }
                    Peering {
                        id: p.vpc_peering_connection_id().unwrap_or_default().into(),
                        status: p
                            .status()
                            .and_then(|s| s.code())
                            .map(|c| c.as_str().to_string())
                            .unwrap_or_default(),
                        peer_cidrs: cidrs,
                    }
                })
                .collect(),
            acls: acls
                .iter()
                .map(|a| Acl {
                    id: a.network_acl_id().unwrap_or_default().into(),
                    subnets: a
                        .associations()
                        .iter()
                        .filter_map(|s| s.subnet_id().map(str::to_string))
                        .collect(),
                    entries: a
                        .entries()
                        .iter()
                        .map(|e| AclEntry {
                            number: e.rule_number().unwrap_or(32767),
                            egress: e.egress().unwrap_or(false),
                            protocol: e.protocol().unwrap_or("-1").into(),
                            ports: e
                                .port_range()
                                .map(|p| (p.from().unwrap_or(0), p.to().unwrap_or(65535))),
                            cidr: e.cidr_block().unwrap_or_default().into(),
                            allow: e.rule_action().map(|r| r.as_str()) == Some("allow"),
                        })
                        .collect(),
                })
                .collect(),
        })
    }
}
