//! Internet gateways (IPv4 and egress-only IPv6), elastic IPs and NAT gateways; the
//! `aws_internet_gateway` data source of a shared VPC. Each kind is one paginated Describe
//! by the cluster tag (DescribeAddresses is not paginated).

use aws_sdk_ec2::types as ec2t;
use kopsrs_model::{Address, Existing};

use crate::handler::{
    client_token, ec2_tags, mismatches, outputs, tag_spec, Handler, Item, Op, Out, Scan, Tagging, R,
};
use crate::kind::Kind;
use crate::resolve::{self, str_of};
use crate::{Aws, Error};

fn name_tag(r: &R) -> Option<String> {
    resolve::tags(r).get("Name").cloned()
}

/// EC2 filters given as `filter { name, values }` blocks of a data source.
pub(crate) fn data_filters(r: &R) -> Vec<ec2t::Filter> {
    resolve::blocks(r, "filter")
        .into_iter()
        .map(|f| {
            ec2t::Filter::builder()
                .name(str_of(f, "name").unwrap_or_default())
                .set_values(Some(resolve::strs_of(f, "values")))
                .build()
        })
        .collect()
}

/// `aws_internet_gateway`.
pub(crate) struct InternetGateway;

impl Handler for InternetGateway {
    const TAGGING: Tagging = Tagging::Ec2;
    /// Create, then attach to the VPC.
    const CREATE_CALLS: usize = 2;
    /// Describe its attachments, detach, delete.
    const DELETE_CALLS: usize = 3;

    fn key(r: &R) -> Option<String> {
        name_tag(r)
    }

    async fn discover(scan: &Scan<'_>) -> Result<Vec<Item>, Error> {
        let gateways = scan
            .aws
            .cluster_tagged(
                scan.cluster,
                "ec2:DescribeInternetGateways",
                |aws, filter| async move {
                    let request = aws
                        .ec2
                        .describe_internet_gateways()
                        .max_results(1000)
                        .filters(filter);
                    Ok(all_pages!(aws, request, internet_gateways))
                },
            )
            .await?;
        Ok(gateways
            .iter()
            .map(|g| {
                let id = g.internet_gateway_id().unwrap_or_default();
                Item::tagged(Kind::InternetGateway, id, &ec2_tags(g.tags()), scan.cluster)
            })
            .collect())
    }

    async fn create(op: &Op<'_>) -> Result<Out, Error> {
        let igw = op
            .aws
            .ec2
            .create_internet_gateway()
            .tag_specifications(tag_spec(ec2t::ResourceType::InternetGateway, &op.tags()))
            .send()
            .await?;
        let id = igw
            .internet_gateway()
            .and_then(|g| g.internet_gateway_id())
            .unwrap_or_default()
            .to_string();
        if let Some(vpc) = str_of(op.r, "vpc_id") {
            op.aws.call();
            op.aws
                .ec2
                .attach_internet_gateway()
                .internet_gateway_id(&id)
                .vpc_id(vpc)
                .send()
                .await?;
        }
        Ok(outputs(&[("id", &id)]))
    }

    async fn delete(aws: &Aws, id: &str, _found: &Out) -> Result<(), Error> {
        // Detached first: EC2 deletes no attached gateway. A failed read is not fatal here:
        // the delete below reports what is wrong.
        let found = aws
            .ec2
            .describe_internet_gateways()
            .internet_gateway_ids(id)
            .send()
            .await;
        if let Ok(found) = found {
            for gw in found.internet_gateways() {
                for attachment in gw.attachments() {
                    if let Some(vpc) = attachment.vpc_id() {
                        aws.call();
                        aws.ec2
                            .detach_internet_gateway()
                            .internet_gateway_id(id)
                            .vpc_id(vpc)
                            .send()
                            .await?;
                    }
                }
            }
        }
        aws.call();
        aws.ec2
            .delete_internet_gateway()
            .internet_gateway_id(id)
            .send()
            .await?;
        Ok(())
    }
}

/// `aws_egress_only_internet_gateway`: IPv6 egress of private subnets.
pub(crate) struct EgressOnly;

impl Handler for EgressOnly {
    const TAGGING: Tagging = Tagging::Ec2;

    fn key(r: &R) -> Option<String> {
        name_tag(r)
    }

    async fn discover(scan: &Scan<'_>) -> Result<Vec<Item>, Error> {
        let operation = "ec2:DescribeEgressOnlyInternetGateways";
        let gateways = scan
            .aws
            .cluster_tagged(scan.cluster, operation, |aws, filter| async move {
                let request = aws
                    .ec2
                    .describe_egress_only_internet_gateways()
                    .max_results(255)
                    .filters(filter);
                Ok(all_pages!(aws, request, egress_only_internet_gateways))
            })
            .await?;
        Ok(gateways
            .iter()
            .map(|g| {
                let id = g.egress_only_internet_gateway_id().unwrap_or_default();
                let tags = ec2_tags(g.tags());
                Item::tagged(Kind::EgressOnlyInternetGateway, id, &tags, scan.cluster)
            })
            .collect())
    }

    async fn create(op: &Op<'_>) -> Result<Out, Error> {
        let igw = op
            .aws
            .ec2
            .create_egress_only_internet_gateway()
            .vpc_id(op.s("vpc_id"))
            .tag_specifications(tag_spec(
                ec2t::ResourceType::EgressOnlyInternetGateway,
                &op.tags(),
            ))
            .send()
            .await?;
        let id = igw
            .egress_only_internet_gateway()
            .and_then(|g| g.egress_only_internet_gateway_id())
            .unwrap_or_default();
        Ok(outputs(&[("id", id)]))
    }

    async fn delete(aws: &Aws, id: &str, _found: &Out) -> Result<(), Error> {
        aws.ec2
            .delete_egress_only_internet_gateway()
            .egress_only_internet_gateway_id(id)
            .send()
            .await?;
        Ok(())
    }
}

/// `aws_eip`.
pub(crate) struct Eip;

impl Handler for Eip {
    const TAGGING: Tagging = Tagging::Ec2;

    fn key(r: &R) -> Option<String> {
        name_tag(r)
    }

    async fn discover(scan: &Scan<'_>) -> Result<Vec<Item>, Error> {
        let found = scan
            .aws
            .cluster_tagged(
                scan.cluster,
                "ec2:DescribeAddresses",
                |aws, filter| async move {
                    aws.call();
                    let found = aws.ec2.describe_addresses().filters(filter).send().await?;
                    Ok(found.addresses.unwrap_or_default())
                },
            )
            .await?;
        Ok(found
            .iter()
            .map(|address| {
                let tags = ec2_tags(address.tags());
                let id = address.allocation_id().unwrap_or_default();
                Item::tagged(Kind::Eip, id, &tags, scan.cluster)
                    .with(&[("public_ip", address.public_ip().unwrap_or_default())])
            })
            .collect())
    }

    async fn create(op: &Op<'_>) -> Result<Out, Error> {
        let eip = op
            .aws
            .ec2
            .allocate_address()
            .domain(ec2t::DomainType::Vpc)
            .tag_specifications(tag_spec(ec2t::ResourceType::ElasticIp, &op.tags()))
            .send()
            .await?;
        Ok(outputs(&[
            ("id", eip.allocation_id().unwrap_or_default()),
            ("public_ip", eip.public_ip().unwrap_or_default()),
        ]))
    }

    async fn delete(aws: &Aws, id: &str, _found: &Out) -> Result<(), Error> {
        aws.ec2.release_address().allocation_id(id).send().await?;
        Ok(())
    }
}

/// `aws_nat_gateway`.
pub(crate) struct NatGateway;

impl Handler for NatGateway {
    const TAGGING: Tagging = Tagging::Ec2;

    fn key(r: &R) -> Option<String> {
        name_tag(r)
    }

    async fn discover(scan: &Scan<'_>) -> Result<Vec<Item>, Error> {
        let nats = scan
            .aws
            .cluster_tagged(
                scan.cluster,
                "ec2:DescribeNatGateways",
                |aws, filter| async move {
                    let request = aws
                        .ec2
                        .describe_nat_gateways()
                        .max_results(1000)
                        .filter(filter);
                    Ok(all_pages!(aws, request, nat_gateways))
                },
            )
            .await?;
        Ok(nats
            .iter()
            // Deleted ones stay listed for a while; they are not there any more.
            .filter(|nat| {
                !matches!(
                    nat.state(),
                    Some(ec2t::NatGatewayState::Deleted)
                        | Some(ec2t::NatGatewayState::Deleting)
                        | Some(ec2t::NatGatewayState::Failed)
                )
            })
            .map(|nat| {
                let id = nat.nat_gateway_id().unwrap_or_default();
                Item::tagged(Kind::NatGateway, id, &ec2_tags(nat.tags()), scan.cluster)
            })
            .collect())
    }

    async fn create(op: &Op<'_>) -> Result<Out, Error> {
        let nat = op
            .aws
            .ec2
            .create_nat_gateway()
            .subnet_id(op.s("subnet_id"))
            .allocation_id(op.s("allocation_id"))
            .client_token(client_token(op.address, op.r))
            .tag_specifications(tag_spec(ec2t::ResourceType::Natgateway, &op.tags()))
            .send()
            .await?;
        Ok(outputs(&[(
            "id",
            nat.nat_gateway()
                .and_then(|n| n.nat_gateway_id())
                .unwrap_or_default(),
        )]))
    }

    async fn delete(aws: &Aws, id: &str, _found: &Out) -> Result<(), Error> {
        aws.ec2
            .delete_nat_gateway()
            .nat_gateway_id(id)
            .send()
            .await?;
        Ok(())
    }

    /// NAT gateways a shared VPC's private subnets route through exist and are available.
    async fn verify(aws: &Aws, existing: &[&Existing]) -> Result<Vec<String>, Error> {
        let ids: Vec<String> = existing.iter().map(|e| e.id.clone()).collect();
        let request = aws.ec2.describe_nat_gateways().filter(
            ec2t::Filter::builder()
                .name("nat-gateway-id")
                .set_values(Some(ids))
                .build(),
        );
        let nats = all_pages!(aws, request, nat_gateways);
        Ok(existing
            .iter()
            .flat_map(|e| {
                let found = nats
                    .iter()
                    .find(|n| n.nat_gateway_id() == Some(e.id.as_str()))
                    .map(|n| outputs(&[("state", n.state().map(|s| s.as_str()).unwrap_or(""))]));
                mismatches(e, "NAT gateway", &aws.region, found.as_ref())
            })
            .collect())
    }
}

/// The `aws_internet_gateway` data source: a shared VPC's gateway, by filter.
pub(crate) async fn read_internet_gateway(
    aws: &Aws,
    address: &Address,
    r: &R,
) -> Result<Out, Error> {
    aws.call();
    let gateways = aws
        .ec2
        .describe_internet_gateways()
        .set_filters(Some(data_filters(r)))
        .send()
        .await?
        .internet_gateways
        .unwrap_or_default();
    let id = gateways
        .first()
        .and_then(|g| g.internet_gateway_id())
        .ok_or_else(|| {
            Error::permanent(format!(
                "{address}: the shared VPC has no internet gateway attached"
            ))
        })?;
    Ok(outputs(&[("id", id), ("internet_gateway_id", id)]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_and_schema() {
        let r: R = serde_json::from_value(serde_json::json!({"tags": {"Name": "a.x.c"}})).unwrap();
        assert_eq!(InternetGateway::key(&r).as_deref(), Some("a.x.c"));
        assert_eq!(EgressOnly::key(&r).as_deref(), Some("a.x.c"));
        assert_eq!(Eip::key(&r).as_deref(), Some("a.x.c"));
        assert_eq!(NatGateway::key(&r).as_deref(), Some("a.x.c"));
        assert!(NatGateway::forces_replacement("subnet_id"));
        assert!(!NatGateway::gone("NatGatewayNotFound"));
        assert!(Eip::gone("InvalidAllocationID.NotFound"));
        assert_eq!(InternetGateway::CREATE_CALLS, 2);
    }
}
