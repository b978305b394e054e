//! The VPC, its additional IPv4 blocks, its DHCP options and their association; the
//! `aws_vpc` data source of a shared VPC.
//!
//! One paginated DescribeVpcs (by the cluster tag) finds the VPC with its blocks and its
//! DHCP options association; one DescribeDhcpOptions the options.

use aws_sdk_ec2::types as ec2t;
use kopsrs_model::{Address, Existing};

use crate::handler::{
    ec2_tags, mismatches, outputs, tag_spec, Handler, Item, Op, Out, Scan, Tagging, R,
};
use crate::kind::Kind;
use crate::resolve::{self, bool_of, str_of, strs_of};
use crate::{Aws, Error};

/// `aws_vpc`.
pub(crate) struct Vpc;

impl Handler for Vpc {
    const TAGGING: Tagging = Tagging::Ec2;
    /// CreateVpc, then both DNS attributes at once.
    const CREATE_CALLS: usize = 2;

    fn key(r: &R) -> Option<String> {
        resolve::tags(r).get("Name").cloned()
    }

    /// Unlike other kinds, a `*.NotFound` answer is not taken as done: the delete is
    /// retried, and `delete cluster` then checks that nothing of the cluster is left.
    fn gone(code: &str) -> bool {
        code == "ResourceNotFoundException"
    }

    async fn discover(scan: &Scan<'_>) -> Result<Vec<Item>, Error> {
        let aws = scan.aws;
        let mut items = Vec::new();
        let vpcs = aws
            .cluster_tagged(scan.cluster, "ec2:DescribeVpcs", |aws, filter| async move {
                let request = aws.ec2.describe_vpcs().max_results(1000).filters(filter);
                Ok(all_pages!(aws, request, vpcs))
            })
            .await?;
        for vpc in &vpcs {
            let tags = ec2_tags(vpc.tags());
            let id = vpc.vpc_id().unwrap_or_default();
            let owned = crate::handler::owned_by(&tags, scan.cluster);
            let ipv6 = vpc
                .ipv6_cidr_block_association_set()
                .iter()
                .find_map(|a| a.ipv6_cidr_block())
                .unwrap_or_default();
            if let Some(dhcp) = vpc.dhcp_options_id() {
                let key = format!("{id}|{dhcp}");
                items.push(Item::new(Kind::VpcDhcpOptionsAssociation, &key, &key));
            }
            let primary = vpc.cidr_block().unwrap_or_default();
            for block in vpc.cidr_block_association_set() {
                let cidr = block.cidr_block().unwrap_or_default();
                let state = block.cidr_block_state().and_then(|s| s.state());
                let live = matches!(
                    state,
                    Some(ec2t::VpcCidrBlockStateCode::Associated)
                        | Some(ec2t::VpcCidrBlockStateCode::Associating)
                );
                if cidr == primary || !live {
                    continue;
                }
                items.push(
                    Item::new(
                        Kind::VpcCidrBlock,
                        block.association_id().unwrap_or_default(),
                        format!("{id}|{cidr}"),
                    )
                    .owned(owned)
                    .child_of(owned),
                );
            }
            items.push(
                Item::tagged(Kind::Vpc, id, &tags, scan.cluster)
                    .with(&[("cidr_block", primary), ("ipv6_cidr_block", ipv6)]),
            );
        }
        Ok(items)
    }

    async fn create(op: &Op<'_>) -> Result<Out, Error> {
        let vpc = op
            .aws
            .ec2
            .create_vpc()
            .cidr_block(op.s("cidr_block"))
            .set_amazon_provided_ipv6_cidr_block(bool_of(op.r, "assign_generated_ipv6_cidr_block"))
            .tag_specifications(tag_spec(ec2t::ResourceType::Vpc, &op.tags()))
            .send()
            .await?
            .vpc
            .ok_or_else(|| Error::permanent("CreateVpc returned no VPC"))?;
        let id = vpc.vpc_id().unwrap_or_default().to_string();
        // EC2 takes one attribute per call; both at once.
        let attribute = |hostnames: bool| {
            let id = &id;
            async move {
                let attr = match hostnames {
                    true => "enable_dns_hostnames",
                    false => "enable_dns_support",
                };
                if bool_of(op.r, attr) != Some(true) {
                    return Ok::<_, Error>(());
                }
                op.aws.call();
                let value = ec2t::AttributeBooleanValue::builder().value(true).build();
                let request = op.aws.ec2.modify_vpc_attribute().vpc_id(id);
                let request = match hostnames {
                    true => request.enable_dns_hostnames(value),
                    false => request.enable_dns_support(value),
                };
                request.send().await?;
                Ok(())
            }
        };
        tokio::try_join!(attribute(true), attribute(false))?;
        let ipv6 = vpc
            .ipv6_cidr_block_association_set()
            .iter()
            .find_map(|a| a.ipv6_cidr_block())
            .unwrap_or_default()
            .to_string();
        Ok(outputs(&[
            ("id", &id),
            ("cidr_block", &op.s("cidr_block")),
            ("ipv6_cidr_block", &ipv6),
        ]))
    }

    async fn delete(aws: &Aws, id: &str, _found: &Out) -> Result<(), Error> {
        aws.ec2.delete_vpc().vpc_id(id).send().await?;
        Ok(())
    }

    /// A shared VPC exists and has the spec's `networkCIDR` among its blocks.
    async fn verify(aws: &Aws, existing: &[&Existing]) -> Result<Vec<String>, Error> {
        let ids: Vec<String> = existing.iter().map(|e| e.id.clone()).collect();
        aws.call();
        // By filter, not by ID: an unknown ID is then missing from the answer rather than
        // an error for the whole call.
        let vpcs = aws
            .ec2
            .describe_vpcs()
            .filters(
                ec2t::Filter::builder()
                    .name("vpc-id")
                    .set_values(Some(ids))
                    .build(),
            )
            .send()
            .await?
            .vpcs
            .unwrap_or_default();
        Ok(existing
            .iter()
            .flat_map(|e| {
                let vpc = vpcs.iter().find(|v| v.vpc_id() == Some(e.id.as_str()));
                let found = vpc.map(|vpc| {
                    let blocks: Vec<&str> = vpc
                        .cidr_block_association_set()
                        .iter()
                        .filter_map(|b| b.cidr_block())
                        .collect();
                    let wanted = e.expect.iter().find(|x| x.attr == "cidr_block");
                    // Any of the VPC's blocks will do; the primary one is what a mismatch shows.
                    let cidr = match wanted {
                        Some(x) if blocks.contains(&x.value.as_str()) => x.value.clone(),
                        _ => vpc.cidr_block().unwrap_or_default().to_string(),
                    };
                    outputs(&[("cidr_block", &cidr)])
                });
                mismatches(e, "VPC", &aws.region, found.as_ref())
            })
            .collect())
    }
}

/// `aws_vpc_ipv4_cidr_block_association`: an additional IPv4 block of the VPC.
pub(crate) struct CidrBlock;

impl Handler for CidrBlock {
    fn key(r: &R) -> Option<String> {
        Some(format!(
            "{}|{}",
            str_of(r, "vpc_id")?,
            str_of(r, "cidr_block")?
        ))
    }

    async fn create(op: &Op<'_>) -> Result<Out, Error> {
        let created = op
            .aws
            .ec2
            .associate_vpc_cidr_block()
            .vpc_id(op.s("vpc_id"))
            .cidr_block(op.s("cidr_block"))
            .send()
            .await?;
        let id = created
            .cidr_block_association()
            .and_then(|a| a.association_id())
            .unwrap_or_default();
        Ok(outputs(&[("id", id)]))
    }

    async fn delete(aws: &Aws, id: &str, _found: &Out) -> Result<(), Error> {
        aws.ec2
            .disassociate_vpc_cidr_block()
            .association_id(id)
            .send()
            .await?;
        Ok(())
    }
}

/// `aws_vpc_dhcp_options`.
pub(crate) struct DhcpOptions;

impl Handler for DhcpOptions {
    const TAGGING: Tagging = Tagging::Ec2;
    /// CreateDhcpOptions, then CreateTags (see `create`).
    const CREATE_CALLS: usize = 2;

    fn key(r: &R) -> Option<String> {
        resolve::tags(r).get("Name").cloned()
    }

    async fn discover(scan: &Scan<'_>) -> Result<Vec<Item>, Error> {
        let aws = scan.aws;
        let mut items = Vec::new();
        let all = aws
            .cluster_tagged(
                scan.cluster,
                "ec2:DescribeDhcpOptions",
                |aws, filter| async move {
                    let request = aws
                        .ec2
                        .describe_dhcp_options()
                        .max_results(1000)
                        .filters(filter);
                    Ok(all_pages!(aws, request, dhcp_options))
                },
            )
            .await?;
        for options in &all {
            let tags = ec2_tags(options.tags());
            let id = options.dhcp_options_id().unwrap_or_default();
            items.push(Item::tagged(Kind::VpcDhcpOptions, id, &tags, scan.cluster));
        }
        Ok(items)
    }

    async fn create(op: &Op<'_>) -> Result<Out, Error> {
        let mut configs = Vec::new();
        if let Some(domain) = str_of(op.r, "domain_name") {
            configs.push(
                ec2t::NewDhcpConfiguration::builder()
                    .key("domain-name")
                    .values(domain)
                    .build(),
            );
        }
        let servers = strs_of(op.r, "domain_name_servers");
        if !servers.is_empty() {
            configs.push(
                ec2t::NewDhcpConfiguration::builder()
                    .key("domain-name-servers")
                    .set_values(Some(servers))
                    .build(),
            );
        }
        let tags = op.tags();
        let options = op
            .aws
            .ec2
            .create_dhcp_options()
            .set_dhcp_configurations(Some(configs))
            .tag_specifications(tag_spec(ec2t::ResourceType::DhcpOptions, &tags))
            .send()
            .await?;
        let id = options
            .dhcp_options()
            .and_then(|d| d.dhcp_options_id())
            .unwrap_or_default();
        // AWS applies TagSpecifications here; moto does not, so tag again (idempotent).
        op.aws.tag_ec2(id, &tags, &[]).await?;
        Ok(outputs(&[("id", id)]))
    }

    async fn delete(aws: &Aws, id: &str, _found: &Out) -> Result<(), Error> {
        aws.ec2
            .delete_dhcp_options()
            .dhcp_options_id(id)
            .send()
            .await?;
        Ok(())
    }
}

/// `aws_vpc_dhcp_options_association`: found with its VPC, never owned on its own (it goes
/// with the VPC).
pub(crate) struct DhcpAssociation;

impl Handler for DhcpAssociation {
    fn key(r: &R) -> Option<String> {
        Some(format!(
            "{}|{}",
            str_of(r, "vpc_id")?,
            str_of(r, "dhcp_options_id")?
        ))
    }

    async fn create(op: &Op<'_>) -> Result<Out, Error> {
        op.aws
            .ec2
            .associate_dhcp_options()
            .vpc_id(op.s("vpc_id"))
            .dhcp_options_id(op.s("dhcp_options_id"))
            .send()
            .await?;
        Ok(outputs(&[(
            "id",
            &format!("{}|{}", op.s("vpc_id"), op.s("dhcp_options_id")),
        )]))
    }

    /// Back to the region's default options, so the cluster's can be deleted.
    async fn delete(aws: &Aws, id: &str, _found: &Out) -> Result<(), Error> {
        let vpc = id.split('|').next().unwrap_or_default();
        aws.ec2
            .associate_dhcp_options()
            .vpc_id(vpc)
            .dhcp_options_id("default")
            .send()
            .await?;
        Ok(())
    }
}

/// The `aws_vpc` data source: a shared VPC's blocks, by ID.
pub(crate) async fn read_vpc(aws: &Aws, address: &Address, r: &R) -> Result<Out, Error> {
    let id = str_of(r, "id").unwrap_or_default().to_string();
    aws.call();
    let vpcs = aws
        .ec2
        .describe_vpcs()
        .vpc_ids(&id)
        .send()
        .await?
        .vpcs
        .unwrap_or_default();
    let vpc = vpcs.first().ok_or_else(|| {
        Error::permanent(format!("{address}: no VPC {id:?}; check spec.networkID"))
    })?;
    let ipv6 = vpc
        .ipv6_cidr_block_association_set()
        .iter()
        .find(|a| {
            a.ipv6_cidr_block_state().and_then(|s| s.state())
                == Some(&ec2t::VpcCidrBlockStateCode::Associated)
        })
        .and_then(|a| a.ipv6_cidr_block())
        .unwrap_or_default();
    Ok(outputs(&[
        ("id", &id),
        ("cidr_block", vpc.cidr_block().unwrap_or_default()),
        ("ipv6_cidr_block", ipv6),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_and_schema() {
        let r: R = serde_json::from_value(serde_json::json!({
            "tags": {"Name": "x.c"}, "vpc_id": "vpc-1", "dhcp_options_id": "dopt-1",
            "cidr_block": "10.1.0.0/16"
        }))
        .unwrap();
        assert_eq!(Vpc::key(&r).as_deref(), Some("x.c"));
        assert_eq!(DhcpOptions::key(&r).as_deref(), Some("x.c"));
        assert_eq!(DhcpAssociation::key(&r).as_deref(), Some("vpc-1|dopt-1"));
        assert_eq!(CidrBlock::key(&r).as_deref(), Some("vpc-1|10.1.0.0/16"));
        assert!(Vpc::forces_replacement("cidr_block"));
        assert!(!Vpc::gone("InvalidVpcID.NotFound"));
        assert!(CidrBlock::gone("InvalidCidrBlock.NotFound"));
        assert_eq!(Vpc::TAGGING, Tagging::Ec2);
    }
}
