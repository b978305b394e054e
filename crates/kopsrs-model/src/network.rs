//! VPC, DHCP options, gateways, subnets, route tables, routes and NAT.

use std::collections::{BTreeMap, BTreeSet};

use crate::build::{err, Builder};
use crate::names::tf_name;
use crate::{attrs, Address, Existing, ModelError, Value};
use kopsrs_api::ClusterSubnetSpec;

impl<'a> Builder<'a> {
    pub(crate) fn network(&mut self) -> Result<(), ModelError> {
        match self.spec.network_id.clone() {
            Some(id) => {
                let vpc = Existing::new("aws_vpc", &id, "spec.networkID").expect(
                    "cidr_block",
                    self.spec.network_cidr.as_deref(),
                    "spec.networkCIDR",
                );
                self.existing(vpc);
            }
            None => self.vpc(),
        }

        // Subnets we create (those without an `id:`) need route tables; shared subnets come
        // with theirs.
        let owned: Vec<_> = self
            .subnets
            .iter()
            .copied()
            .filter(|s| s.id.is_none())
            .collect();
        self.shared_subnet_checks();
        if owned.is_empty() {
            return Ok(());
        }
        for subnet in &owned {
            self.owned_subnet(subnet)?;
        }
        self.public_route_table(&owned);
        self.private_route_tables(&owned)
    }

    /// Our own VPC: its CIDR blocks, and DHCP options naming the region's internal domain.
    fn vpc(&mut self) {
        let cluster = self.name.clone();
        let mut vpc = attrs! {
            "assign_generated_ipv6_cidr_block" => true,
            "enable_dns_hostnames" => true,
            "enable_dns_support" => true,
            "tags" => self.tags(&cluster),
        };
        if let Some(cidr) = &self.spec.network_cidr {
            vpc.insert("cidr_block".into(), Value::str(cidr));
        }
        self.add("aws_vpc", &cluster, vpc);
        for cidr in self.spec.additional_network_cidrs.iter().flatten() {
            self.add(
                "aws_vpc_ipv4_cidr_block_association",
                cidr,
                attrs! { "cidr_block" => cidr, "vpc_id" => self.vpc_id() },
            );
        }
        let domain = if self.region == "us-east-1" {
            "ec2.internal".to_string()
        } else {
            format!("{}.compute.internal", self.region)
        };
        let dhcp = self.add(
            "aws_vpc_dhcp_options",
            &cluster,
            attrs! {
                "domain_name" => domain,
                "domain_name_servers" => Value::strs(["AmazonProvidedDNS"]),
                "tags" => self.tags(&cluster),
            },
        );
        self.add(
            "aws_vpc_dhcp_options_association",
            &cluster,
            attrs! { "dhcp_options_id" => dhcp.id(), "vpc_id" => self.vpc_id() },
        );
    }

    /// Each shared subnet (with an `id:`) must exist with the zone and CIDR the spec gives,
    /// in the shared VPC; as kops does, the cluster adds its own tag to it
    /// (`kubernetes.io/cluster/<name>=shared`, which load balancer controllers find subnets
    /// by) unless `spec.DisableSubnetTags`, and only that key is ever removed.
    fn shared_subnet_checks(&mut self) {
        for subnet in self.subnets.clone() {
            if let Some(id) = &subnet.id {
                let name = subnet.name.clone().unwrap_or_default();
                if self.spec.disable_subnet_tags != Some(true) {
                    let tag_name = format!("{name}-{}", self.name);
                    self.add(
                        "aws_ec2_tag",
                        &tag_name,
                        attrs! {
                            "key" => format!("kubernetes.io/cluster/{}", self.name),
                            "resource_id" => id.as_str(),
                            "value" => "shared",
                        },
                    );
                }
                let field = |f: &str| format!("spec.subnets[{name}].{f}");
                let mut subnet_check = Existing::new("aws_subnet", id, field("id"))
                    .expect("availability_zone", subnet.zone.as_deref(), field("zone"))
                    .expect("cidr_block", subnet.cidr.as_deref(), field("cidr"));
                if let Some(vpc) = &self.spec.network_id {
                    subnet_check = subnet_check.expect("vpc_id", Some(vpc), "spec.networkID");
                }
                self.existing(subnet_check);
            }
        }
    }

    /// A subnet we create: in its zone, with its IPv4 and IPv6 blocks (IPv6-only when private
    /// in an IPv6 cluster) and the tags of [`Self::subnet_tags`].
    fn owned_subnet(&mut self, subnet: &ClusterSubnetSpec) -> Result<(), ModelError> {
        let name = subnet.name.clone().unwrap_or_default();
        let kind = Self::subnet_type(subnet).to_string();
        let full = self.scoped(&name);
        let tags = self.subnet_tags(&name, &kind, &full);
        let zone = subnet
            .zone
            .clone()
            .ok_or_else(|| err(format!("spec.subnets[{name}].zone"), "missing"))?;
        let mut a = attrs! {
            "availability_zone" => zone,
            "private_dns_hostname_type_on_launch" => "resource-name",
            "tags" => tags,
            "vpc_id" => self.vpc_id(),
        };
        let ipv6_only = self.ipv6 && kind == "Private";
        if let Some(cidr) = &subnet.cidr {
            a.insert("cidr_block".into(), Value::str(cidr));
        }
        if ipv6_only {
            a.insert("ipv6_native".into(), Value::Bool(true));
            a.insert("enable_dns64".into(), Value::Bool(true));
        } else {
            a.insert(
                "enable_resource_name_dns_a_record_on_launch".into(),
                Value::Bool(true),
            );
        }
        if let Some(ipv6) = &subnet.ipv6_cidr {
            a.insert("ipv6_cidr_block".into(), self.ipv6_subnet_cidr(ipv6)?);
            a.insert("assign_ipv6_address_on_creation".into(), Value::Bool(true));
            a.insert(
                "enable_resource_name_dns_aaaa_record_on_launch".into(),
                Value::Bool(true),
            );
        }
        self.add("aws_subnet", &full, a);
        Ok(())
    }

    /// A subnet's tags: the cluster's, its type, where load balancers may go (unless
    /// `disableSubnetTags`), and the Karpenter-managed groups that use it.
    fn subnet_tags(&self, name: &str, kind: &str, full: &str) -> BTreeMap<String, Value> {
        let mut tags = self.tags(full);
        tags.insert("SubnetType".into(), Value::str(kind));
        if self.spec.disable_subnet_tags != Some(true) {
            if let Some(roles) = self.load_balancer_roles(kind) {
                for role in roles {
                    tags.insert(role.into(), Value::str("1"));
                }
            }
        }
        // Karpenter finds the subnets of the groups it manages by this tag (its
        // EC2NodeClass selects `kops.k8s.io/instance-group/<group>`).
        for group in &self.groups {
            let karpenter = group.spec.manager.as_deref() == Some("Karpenter");
            if karpenter && group.spec.subnets.iter().flatten().any(|s| *s == name) {
                tags.insert(
                    format!("kops.k8s.io/instance-group/{}", group.metadata.name),
                    Value::str("true"),
                );
            }
        }
        tags
    }

    /// The load-balancer role tags of a subnet of type `kind`: public load balancers go in
    /// public and utility subnets, internal ones in private subnets (dual-stack ones in an
    /// IPv6 cluster), or in public subnets when there is nowhere else.
    fn load_balancer_roles(&self, kind: &str) -> Option<Vec<&'static str>> {
        const ELB: &str = "kubernetes.io/role/elb";
        const INTERNAL_ELB: &str = "kubernetes.io/role/internal-elb";
        let has_private = self
            .subnets
            .iter()
            .any(|s| Self::subnet_type(s) == "Private");
        match kind {
            "Public" => {
                let mut roles = vec![ELB];
                if !has_private
                    || self
                        .subnets
                        .iter()
                        .all(|s| Self::subnet_type(s) != "Utility")
                {
                    roles.push(INTERNAL_ELB);
                }
                Some(roles)
            }
            "Utility" => Some(vec![ELB]),
            "Private" if !self.ipv6 => Some(vec![INTERNAL_ELB]),
            // In IPv6 clusters, internal load balancers go in the dual-stack subnets.
            "DualStack" => Some(vec![INTERNAL_ELB]),
            _ => None,
        }
    }

    /// The internet gateway (ours, or the shared VPC's), and when any subnet we create is
    /// public, utility or dual-stack, the public route table: default routes to the gateway,
    /// associated with the public and utility subnets.
    fn public_route_table(&mut self, owned: &[&ClusterSubnetSpec]) {
        let cluster = self.name.clone();
        let gateway = if self.shared_vpc() {
            let vpc = self.vpc_id();
            let data = self.add_data(
                "aws_internet_gateway",
                &cluster,
                attrs! { "filter" => Value::Blocks(vec![attrs! {
                    "name" => "attachment.vpc-id",
                    "values" => Value::List(vec![vpc]),
                }]) },
            );
            data.attr("internet_gateway_id")
        } else {
            self.add(
                "aws_internet_gateway",
                &cluster,
                attrs! { "tags" => self.tags(&cluster), "vpc_id" => self.vpc_id() },
            )
            .id()
        };
        let needs_public = owned
            .iter()
            .any(|s| matches!(Self::subnet_type(s), "Public" | "Utility" | "DualStack"));
        if !needs_public {
            return;
        }
        let mut tags = self.tags(&cluster);
        tags.insert("kubernetes.io/kops/role".into(), Value::str("public"));
        let table = self.add(
            "aws_route_table",
            &cluster,
            attrs! { "tags" => tags, "vpc_id" => self.vpc_id() },
        );
        self.add(
            "aws_route",
            "route-0.0.0.0/0",
            attrs! {
                "destination_cidr_block" => "0.0.0.0/0",
                "gateway_id" => gateway.clone(),
                "route_table_id" => table.id(),
            },
        );
        self.add(
            "aws_route",
            "route-::/0",
            attrs! {
                "destination_ipv6_cidr_block" => "::/0",
                "gateway_id" => gateway.clone(),
                "route_table_id" => table.id(),
            },
        );
        for subnet in owned
            .iter()
            .filter(|s| matches!(Self::subnet_type(s), "Public" | "Utility"))
        {
            let full = self.scoped(subnet.name.as_deref().unwrap_or_default());
            self.add(
                "aws_route_table_association",
                &full,
                attrs! { "route_table_id" => table.id(), "subnet_id" => self.subnet_id(subnet) },
            );
        }
    }

    /// Private and dual-stack subnets we create: one route table and one egress per zone, and
    /// in an IPv6 cluster with our own VPC an egress-only internet gateway.
    fn private_route_tables(&mut self, owned: &[&'a ClusterSubnetSpec]) -> Result<(), ModelError> {
        let private: Vec<_> = owned
            .iter()
            .copied()
            .filter(|s| matches!(Self::subnet_type(s), "Private" | "DualStack"))
            .collect();
        if private.is_empty() {
            return Ok(());
        }
        let cluster = self.name.clone();
        let egress_only = if self.ipv6 && !self.shared_vpc() {
            Some(self.add(
                "aws_egress_only_internet_gateway",
                &cluster,
                attrs! { "tags" => self.tags(&cluster), "vpc_id" => self.vpc_id() },
            ))
        } else {
            None
        };
        let zones: BTreeSet<String> = private.iter().filter_map(|s| s.zone.clone()).collect();
        for zone in zones {
            let in_zone: Vec<_> = private
                .iter()
                .copied()
                .filter(|s| s.zone.as_deref() == Some(zone.as_str()))
                .collect();
            self.private_zone_routes(&zone, &in_zone, egress_only.as_ref())?;
        }
        Ok(())
    }

    /// One zone's private route table: a default route through the zone's egress (none for
    /// `External`), in IPv6 clusters also NAT64 and the egress-only gateway, associated with
    /// the zone's private subnets.
    fn private_zone_routes(
        &mut self,
        zone: &str,
        in_zone: &[&'a ClusterSubnetSpec],
        egress_only: Option<&Address>,
    ) -> Result<(), ModelError> {
        let table_name = self.scoped(&format!("private-{zone}"));
        let mut tags = self.tags(&table_name);
        tags.insert(
            "kubernetes.io/kops/role".into(),
            Value::str(format!("private-{zone}")),
        );
        let table = self.add(
            "aws_route_table",
            &table_name,
            attrs! { "tags" => tags, "vpc_id" => self.vpc_id() },
        );
        let Some(target) = self.private_egress(zone, in_zone)? else {
            return Ok(());
        };
        self.add(
            "aws_route",
            &format!("route-private-{zone}-0.0.0.0/0"),
            attrs! {
                "destination_cidr_block" => "0.0.0.0/0",
                target.0 => target.1.clone(),
                "route_table_id" => table.id(),
            },
        );
        if self.ipv6 {
            self.add(
                "aws_route",
                &format!("route-private-{zone}-64:ff9b::/96"),
                attrs! {
                    "destination_ipv6_cidr_block" => "64:ff9b::/96",
                    target.0 => target.1.clone(),
                    "route_table_id" => table.id(),
                },
            );
            if let Some(gw) = egress_only {
                self.add(
                    "aws_route",
                    &format!("route-private-{zone}-::/0"),
                    attrs! {
                        "destination_ipv6_cidr_block" => "::/0",
                        "egress_only_gateway_id" => gw.id(),
                        "route_table_id" => table.id(),
                    },
                );
            }
        }
        for subnet in in_zone {
            let full = self.scoped(&format!(
                "private-{}",
                subnet.name.as_deref().unwrap_or_default()
            ));
            self.add(
                "aws_route_table_association",
                &full,
                attrs! { "route_table_id" => table.id(), "subnet_id" => self.subnet_id(subnet) },
            );
        }
        Ok(())
    }

    /// The target of a zone's private default route, from the first `egress` of its subnets:
    /// an existing NAT gateway (which must be available), an instance, none for `External`,
    /// else a NAT gateway of ours (see [`Self::zone_nat_gateway`]).
    fn private_egress(
        &mut self,
        zone: &str,
        in_zone: &[&'a ClusterSubnetSpec],
    ) -> Result<Option<(&'static str, Value)>, ModelError> {
        let egress = in_zone.iter().find_map(|s| s.egress.clone());
        Ok(Some(match egress.as_deref() {
            Some(nat) if nat.starts_with("nat-") => {
                let name = in_zone
                    .iter()
                    .find(|s| s.egress.as_deref() == Some(nat))
                    .and_then(|s| s.name.clone())
                    .unwrap_or_default();
                self.existing(
                    Existing::new(
                        "aws_nat_gateway",
                        nat,
                        format!("spec.subnets[{name}].egress"),
                    )
                    .expect(
                        "state",
                        Some("available"),
                        format!("spec.subnets[{name}].egress"),
                    ),
                );
                ("nat_gateway_id", Value::str(nat))
            }
            Some(instance) if instance.starts_with("i-") => {
                ("network_interface_id", Value::str(instance))
            }
            Some("External") => return Ok(None),
            other => ("nat_gateway_id", self.zone_nat_gateway(zone, other)?),
        }))
    }

    /// A NAT gateway of ours in the zone's utility subnet (which must exist), with the given
    /// elastic IP (`eipalloc-…`) or one of ours.
    fn zone_nat_gateway(&mut self, zone: &str, egress: Option<&str>) -> Result<Value, ModelError> {
        let utility = self
            .subnets
            .iter()
            .copied()
            .find(|s| s.zone.as_deref() == Some(zone) && Self::subnet_type(s) == "Utility")
            .ok_or_else(|| {
                err(
                    "spec.subnets",
                    format!("private subnets in {zone} need a Utility subnet in the same zone for their NAT gateway"),
                )
            })?;
        let zone_name = self.scoped(zone);
        let allocation = match egress {
            Some(eip) if eip.starts_with("eipalloc-") => Value::str(eip),
            _ => self
                .add(
                    "aws_eip",
                    &zone_name,
                    attrs! { "domain" => "vpc", "tags" => self.tags(&zone_name) },
                )
                .id(),
        };
        let nat = self.add(
            "aws_nat_gateway",
            &zone_name,
            attrs! {
                "allocation_id" => allocation,
                "subnet_id" => self.subnet_id(utility),
                "tags" => self.tags(&zone_name),
            },
        );
        Ok(nat.id())
    }

    /// kops writes IPv6 subnet CIDRs relative to the VPC's Amazon-provided block
    /// (`/64#0x111`); the concrete block is only known once the VPC exists (or, for a
    /// shared VPC, from a data source).
    fn ipv6_subnet_cidr(&mut self, spec: &str) -> Result<Value, ModelError> {
        let Some((prefix, index)) = spec.split_once('#') else {
            return Ok(Value::str(spec));
        };
        let bad = || {
            err(
                "spec.subnets[].ipv6CIDR",
                format!("{spec:?} is neither a block nor /PREFIX#INDEX (e.g. /64#0x1)"),
            )
        };
        let prefix: u8 = prefix
            .strip_prefix('/')
            .and_then(|p| p.parse().ok())
            .filter(|p| *p <= 128)
            .ok_or_else(bad)?;
        let index = index.trim_start_matches("0x");
        let index = u64::from_str_radix(index, 16).map_err(|_| bad())?;
        let base = match &self.spec.network_id {
            Some(id) => self
                .add_data("aws_vpc", &self.name.clone(), attrs! { "id" => id.clone() })
                .attr("ipv6_cidr_block"),
            None => Address::new("aws_vpc", &tf_name(&self.name)).attr("ipv6_cidr_block"),
        };
        let Value::Ref(base) = base else {
            unreachable!("Address::attr is a reference")
        };
        Ok(Value::CidrSubnet {
            base,
            prefix,
            index,
        })
    }
}
