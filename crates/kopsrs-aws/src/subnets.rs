//! Subnets: one paginated DescribeSubnets by the cluster tag. Shared subnets (`id:` in the
//! spec) are not the cluster's: they carry the `shared` value and are never deleted.

use aws_sdk_ec2::types as ec2t;
use kopsrs_model::Existing;

use crate::handler::{
    ec2_tags, mismatches, outputs, tag_spec, Handler, Item, Op, Out, Scan, Tagging, R,
};
use crate::kind::Kind;
use crate::resolve::{self, bool_of, str_of};
use crate::{Aws, Error};

/// `aws_subnet`.
pub(crate) struct Subnet;

impl Handler for Subnet {
    const TAGGING: Tagging = Tagging::Ec2;

    fn key(r: &R) -> Option<String> {
        resolve::tags(r).get("Name").cloned()
    }

    async fn discover(scan: &Scan<'_>) -> Result<Vec<Item>, Error> {
        let subnets = scan
            .aws
            .cluster_tagged(
                scan.cluster,
                "ec2:DescribeSubnets",
                |aws, filter| async move {
                    let request = aws.ec2.describe_subnets().max_results(1000).filters(filter);
                    Ok(all_pages!(aws, request, subnets))
                },
            )
            .await?;
        Ok(subnets
            .iter()
            .map(|subnet| {
                let id = subnet.subnet_id().unwrap_or_default();
                Item::tagged(Kind::Subnet, id, &ec2_tags(subnet.tags()), scan.cluster)
                    .with(&[("arn", subnet.subnet_arn().unwrap_or_default())])
            })
            .collect())
    }

    async fn create(op: &Op<'_>) -> Result<Out, Error> {
        let r = op.r;
        let subnet = op
            .aws
            .ec2
            .create_subnet()
            .vpc_id(op.s("vpc_id"))
            .set_cidr_block(str_of(r, "cidr_block").map(str::to_string))
            .set_ipv6_cidr_block(str_of(r, "ipv6_cidr_block").map(str::to_string))
            .set_ipv6_native(bool_of(r, "ipv6_native"))
            .availability_zone(op.s("availability_zone"))
            .tag_specifications(tag_spec(ec2t::ResourceType::Subnet, &op.tags()))
            .send()
            .await?
            .subnet
            .ok_or_else(|| Error::permanent("CreateSubnet returned no subnet"))?;
        Ok(outputs(&[
            ("id", subnet.subnet_id().unwrap_or_default()),
            ("arn", subnet.subnet_arn().unwrap_or_default()),
        ]))
    }

    async fn delete(aws: &Aws, id: &str, _found: &Out) -> Result<(), Error> {
        aws.ec2.delete_subnet().subnet_id(id).send().await?;
        Ok(())
    }

    /// Shared subnets exist, in the spec's zone, with its block, in its VPC.
    async fn verify(aws: &Aws, existing: &[&Existing]) -> Result<Vec<String>, Error> {
        let ids: Vec<String> = existing.iter().map(|e| e.id.clone()).collect();
        // By filter, so an unknown ID is missing from the answer, not an error.
        let request = aws.ec2.describe_subnets().filters(
            ec2t::Filter::builder()
                .name("subnet-id")
                .set_values(Some(ids))
                .build(),
        );
        let subnets = all_pages!(aws, request, subnets);
        Ok(existing
            .iter()
            .flat_map(|e| {
                let found = subnets
                    .iter()
                    .find(|s| s.subnet_id() == Some(e.id.as_str()))
                    .map(|s| {
                        outputs(&[
                            (
                                "availability_zone",
                                s.availability_zone().unwrap_or_default(),
                            ),
                            ("cidr_block", s.cidr_block().unwrap_or_default()),
                            ("vpc_id", s.vpc_id().unwrap_or_default()),
                        ])
                    });
                mismatches(e, "subnet", &aws.region, found.as_ref())
            })
            .collect())
    }
}

/// Before any change: the subnets the plan creates inside a VPC that already exists (one
/// the cluster shares, or its own from an earlier run) must not overlap the subnets already
/// there, whoever made them; EC2 would refuse the second one half-way through an apply
/// (`InvalidSubnet.Conflict`). One DescribeSubnets per such VPC; none when the plan creates
/// no subnet in an existing VPC.
pub(crate) async fn check_free_ranges(
    aws: &Aws,
    discovery: &crate::handler::Discovery,
    plan: &kopsrs_engine::Plan,
    desired: &kopsrs_model::DesiredSet,
) -> Result<(), Error> {
    use std::collections::BTreeMap;
    // VPC ID -> (address, IPv4 block) of each subnet to create in it.
    let mut new: BTreeMap<String, Vec<(String, ipnet::IpNet)>> = BTreeMap::new();
    for change in &plan.changes {
        let creates = matches!(
            change.action,
            kopsrs_engine::Action::Create | kopsrs_engine::Action::Replace
        );
        if change.address.kind != Kind::Subnet.as_str() || !creates {
            continue;
        }
        let Some(resource) = desired.get(&change.address) else {
            continue;
        };
        // A VPC still to be made resolves to nothing: it has no other subnets.
        let Ok(resolved) = resolve::attrs(&resource.attrs, &discovery.outputs) else {
            continue;
        };
        let (Some(vpc), Some(cidr)) =
            (str_of(&resolved, "vpc_id"), str_of(&resolved, "cidr_block"))
        else {
            continue;
        };
        if let Ok(block) = cidr.parse::<ipnet::IpNet>() {
            new.entry(vpc.to_string())
                .or_default()
                .push((change.address.to_string(), block));
        }
    }
    let mut problems = Vec::new();
    for (vpc, creating) in &new {
        let request = aws
            .ec2
            .describe_subnets()
            .max_results(1000)
            .filters(ec2t::Filter::builder().name("vpc-id").values(vpc).build());
        let present = all_pages!(aws, request, subnets);
        for (address, block) in creating {
            for subnet in &present {
                let Some(theirs) = subnet
                    .cidr_block()
                    .and_then(|c| c.parse::<ipnet::IpNet>().ok())
                else {
                    continue;
                };
                if block.contains(&theirs.network()) || theirs.contains(&block.network()) {
                    problems.push(format!(
                        "{address}: {block} overlaps {} ({theirs}{}) already in {vpc}; give the spec's subnet a free range",
                        subnet.subnet_id().unwrap_or_default(),
                        ec2_tags(subnet.tags())
                            .get("Name")
                            .map(|n| format!(", {n:?}"))
                            .unwrap_or_default(),
                    ));
                }
            }
        }
    }
    match problems.is_empty() {
        true => Ok(()),
        false => Err(Error::existing(problems.join("\n  "))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_and_schema() {
        let r: R = serde_json::from_value(serde_json::json!({
            "tags": {"Name": "us-east-1a.x.c"}, "cidr_block": "10.0.0.0/19"
        }))
        .unwrap();
        assert_eq!(Subnet::key(&r).as_deref(), Some("us-east-1a.x.c"));
        // A subnet's block or zone cannot change in place; its tags can.
        assert!(Subnet::forces_replacement("cidr_block"));
        assert!(Subnet::forces_replacement("availability_zone"));
        assert_eq!(Subnet::TAGGING, Tagging::Ec2);
    }
}
