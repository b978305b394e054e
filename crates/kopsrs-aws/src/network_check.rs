//! What `validate network` reads of a VPC: the VPC, its DNS attributes and DHCP options, every
//! subnet, route table, attached internet gateway, NAT gateway, peering connection and network
//! ACL. One batched (paginated) call per resource type, at once: the count does not grow with
//! the number of subnets. The checks are `kopsrs_checks::network`'s.

use aws_sdk_ec2::operation::describe_vpc_attribute::DescribeVpcAttributeOutput;
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
        let Some(vpc) = self.find_vpc(vpc_id, cluster).await? else {
            return Ok(Network::default());
        };
        let id = vpc.vpc_id().unwrap_or_default().to_string();
        let (support, hostnames, domain, subnets, tables, igws, nats, peerings, acls) = tokio::try_join!(
            self.vpc_attribute(&id, VpcAttributeName::EnableDnsSupport),
            self.vpc_attribute(&id, VpcAttributeName::EnableDnsHostnames),
            self.dhcp_domain_name(&vpc),
            self.vpc_subnets(&id),
            self.vpc_route_tables(&id),
            self.vpc_internet_gateways(&id),
            self.vpc_nat_gateways(&id),
            self.vpc_peerings(&id),
            self.vpc_network_acls(&id)
        )?;
        let value =
            |b: Option<&ec2t::AttributeBooleanValue>| b.and_then(|v| v.value()).unwrap_or(false);
        Ok(Network {
            vpc: Some(Vpc {
                cidrs: vpc_cidrs(&vpc),
                dns_support: value(support.enable_dns_support()),
                dns_hostnames: value(hostnames.enable_dns_hostnames()),
                domain_name: domain,
                id: id.clone(),
            }),
            subnets: subnets.iter().map(subnet).collect(),
            route_tables: tables.iter().map(route_table).collect(),
            internet_gateways: igws
                .iter()
                .filter_map(|g| g.internet_gateway_id().map(str::to_string))
                .collect(),
            nat_gateways: nats.iter().map(nat_gateway).collect(),
            peerings: peerings.iter().map(|p| peering(p, &id)).collect(),
            acls: acls.iter().map(acl).collect(),
        })
    }

    /// VPC `vpc_id` (none when AWS does not know it), else the first VPC tagged as the
    /// cluster's.
    async fn find_vpc(
        &self,
        vpc_id: Option<&str>,
        cluster: &str,
    ) -> Result<Option<ec2t::Vpc>, Error> {
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
                return Ok(None)
            }
            Err(e) => return Err(e.into()),
        };
        Ok(vpcs.vpcs().first().cloned())
    }

    /// One attribute of the VPC (DNS support, DNS hostnames).
    async fn vpc_attribute(
        &self,
        id: &str,
        name: VpcAttributeName,
    ) -> Result<DescribeVpcAttributeOutput, Error> {
        self.call();
        let a = self
            .ec2
            .describe_vpc_attribute()
            .vpc_id(id)
            .attribute(name)
            .send()
            .await?;
        Ok(a)
    }

    /// The `domain-name` of the VPC's DHCP options (its values joined by spaces); none with the
    /// default options.
    async fn dhcp_domain_name(&self, vpc: &ec2t::Vpc) -> Result<Option<String>, Error> {
        let Some(options) = vpc.dhcp_options_id().filter(|d| *d != "default") else {
            return Ok(None);
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
    }

    /// Every subnet of the VPC.
    async fn vpc_subnets(&self, id: &str) -> Result<Vec<ec2t::Subnet>, Error> {
        let request = self
            .ec2
            .describe_subnets()
            .filters(filter("vpc-id", id))
            .max_results(1000);
        Ok(all_pages!(self, request, subnets))
    }

    /// Every route table of the VPC.
    async fn vpc_route_tables(&self, id: &str) -> Result<Vec<ec2t::RouteTable>, Error> {
        let request = self
            .ec2
            .describe_route_tables()
            .filters(filter("vpc-id", id))
            .max_results(100);
        Ok(all_pages!(self, request, route_tables))
    }

    /// The internet gateways attached to the VPC.
    async fn vpc_internet_gateways(&self, id: &str) -> Result<Vec<ec2t::InternetGateway>, Error> {
        let request = self
            .ec2
            .describe_internet_gateways()
            .filters(filter("attachment.vpc-id", id))
            .max_results(1000);
        Ok(all_pages!(self, request, internet_gateways))
    }

    /// Every NAT gateway in the VPC.
    async fn vpc_nat_gateways(&self, id: &str) -> Result<Vec<ec2t::NatGateway>, Error> {
        let request = self
            .ec2
            .describe_nat_gateways()
            .filter(filter("vpc-id", id))
            .max_results(1000);
        Ok(all_pages!(self, request, nat_gateways))
    }

    /// The peering connections the VPC requested or accepted, each once.
    async fn vpc_peerings(&self, id: &str) -> Result<Vec<ec2t::VpcPeeringConnection>, Error> {
        let mut all = Vec::new();
        for side in ["requester-vpc-info.vpc-id", "accepter-vpc-info.vpc-id"] {
            let request = self
                .ec2
                .describe_vpc_peering_connections()
                .filters(filter(side, id))
                .max_results(1000);
            all.extend(all_pages!(self, request, vpc_peering_connections));
        }
        // A connection may answer both filters (moto ignores the side); once each.
        all.sort_by(|a: &ec2t::VpcPeeringConnection, b| {
            a.vpc_peering_connection_id()
                .cmp(&b.vpc_peering_connection_id())
        });
        all.dedup_by(|a, b| a.vpc_peering_connection_id() == b.vpc_peering_connection_id());
        Ok(all)
    }

    /// Every network ACL of the VPC.
    async fn vpc_network_acls(&self, id: &str) -> Result<Vec<ec2t::NetworkAcl>, Error> {
        let request = self
            .ec2
            .describe_network_acls()
            .filters(filter("vpc-id", id))
            .max_results(1000);
        Ok(all_pages!(self, request, network_acls))
    }
}

/// The VPC's IPv4 CIDR blocks that are associated (or whose state is not reported).
fn vpc_cidrs(vpc: &ec2t::Vpc) -> Vec<String> {
    vpc.cidr_block_association_set()
        .iter()
        .filter(|a| {
            a.cidr_block_state()
                .and_then(|s| s.state())
                .is_none_or(|s| s.as_str() == "associated")
        })
        .filter_map(|a| a.cidr_block().map(str::to_string))
        .collect()
}

/// A subnet as the checks see it.
fn subnet(s: &ec2t::Subnet) -> Subnet {
    Subnet {
        id: s.subnet_id().unwrap_or_default().into(),
        cidr: s.cidr_block().unwrap_or_default().into(),
        zone: s.availability_zone().unwrap_or_default().into(),
        tags: ec2_tags(s.tags()),
    }
}

/// A route table as the checks see it: whether it is the main one, its subnets, its routes.
fn route_table(t: &ec2t::RouteTable) -> RouteTable {
    RouteTable {
        id: t.route_table_id().unwrap_or_default().into(),
        main: t.associations().iter().any(|a| a.main() == Some(true)),
        subnets: t
            .associations()
            .iter()
            .filter_map(|a| a.subnet_id().map(str::to_string))
            .collect(),
        routes: t.routes().iter().map(route).collect(),
    }
}

/// A route: its IPv4 (else IPv6) destination, whichever target it has, its state.
fn route(r: &ec2t::Route) -> Route {
    Route {
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
    }
}

/// A NAT gateway: its subnet, state, and whether it has a public address.
fn nat_gateway(n: &ec2t::NatGateway) -> NatGateway {
    NatGateway {
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
    }
}

/// A peering connection of VPC `id`: its status and the other side's CIDRs, whichever side
/// this VPC is.
fn peering(p: &ec2t::VpcPeeringConnection, id: &str) -> Peering {
    let (requester, accepter) = (p.requester_vpc_info(), p.accepter_vpc_info());
    let other = match requester.and_then(|r| r.vpc_id()) == Some(id) {
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
}

/// A network ACL: its subnets and entries.
fn acl(a: &ec2t::NetworkAcl) -> Acl {
    Acl {
        id: a.network_acl_id().unwrap_or_default().into(),
        subnets: a
            .associations()
            .iter()
            .filter_map(|s| s.subnet_id().map(str::to_string))
            .collect(),
        entries: a.entries().iter().map(acl_entry).collect(),
    }
}

/// A network ACL entry: rule number, direction, protocol, ports, CIDR, allow or deny.
fn acl_entry(e: &ec2t::NetworkAclEntry) -> AclEntry {
    AclEntry {
        number: e.rule_number().unwrap_or(32767),
        egress: e.egress().unwrap_or(false),
        protocol: e.protocol().unwrap_or("-1").into(),
        ports: e
            .port_range()
            .map(|p| (p.from().unwrap_or(0), p.to().unwrap_or(65535))),
        cidr: e.cidr_block().unwrap_or_default().into(),
        allow: e.rule_action().map(|r| r.as_str()) == Some("allow"),
    }
}
