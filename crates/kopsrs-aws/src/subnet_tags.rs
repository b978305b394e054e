//! `aws_ec2_tag`: the cluster's own tag on a shared subnet, `kubernetes.io/cluster/<name>=shared`,
//! as kops adds it (load balancer controllers find the cluster's subnets by it). kopsrs owns
//! the tag, never the subnet: it adds that one key and, when the spec stops using the subnet
//! or the cluster is deleted, removes that one key with that value, and no other.

use aws_sdk_ec2::types as ec2t;

use crate::handler::{outputs, Handler, Item, Op, Out, Scan, R};
use crate::kind::Kind;
use crate::resolve::str_of;
use crate::{Aws, Error};

/// `aws_ec2_tag`.
pub(crate) struct SubnetTag;

/// The tag's identity: the subnet and the key, as Terraform's `aws_ec2_tag` writes its ID.
fn id(subnet: &str, key: &str) -> String {
    format!("{subnet},{key}")
}

/// The cluster's key; the value a shared subnet carries.
fn cluster_key(cluster: &str) -> String {
    format!("kubernetes.io/cluster/{cluster}")
}
const SHARED: &str = "shared";

impl Handler for SubnetTag {
    fn key(r: &R) -> Option<String> {
        Some(id(str_of(r, "resource_id")?, str_of(r, "key")?))
    }

    /// The subnets carrying the cluster's key with `shared`: one DescribeSubnets, made only
    /// when the spec has shared subnets to tag (with `spec.DisableSubnetTags` kopsrs leaves
    /// the tags alone, found or not).
    async fn discover(scan: &Scan<'_>) -> Result<Vec<Item>, Error> {
        if !scan
            .desired
            .resources
            .iter()
            .any(|r| r.address.kind == Kind::SubnetTag.as_str())
        {
            return Ok(Vec::new());
        }
        let key = cluster_key(scan.cluster);
        let request = scan.aws.ec2.describe_subnets().max_results(1000).filters(
            ec2t::Filter::builder()
                .name(format!("tag:{key}"))
                .values(SHARED)
                .build(),
        );
        let subnets = all_pages!(scan.aws, request, subnets);
        Ok(subnets
            .iter()
            .filter_map(|s| s.subnet_id())
            .map(|subnet| {
                let id = id(subnet, &key);
                // The key names this cluster exactly: the tag is the cluster's.
                Item::new(Kind::SubnetTag, &id, &id)
                    .owned(true)
                    .with(&[("resource_id", subnet)])
            })
            .collect())
    }

    async fn create(op: &Op<'_>) -> Result<Out, Error> {
        let (subnet, key) = (op.s("resource_id"), op.s("key"));
        op.aws
            .ec2
            .create_tags()
            .resources(&subnet)
            .tags(ec2t::Tag::builder().key(&key).value(op.s("value")).build())
            .send()
            .await?;
        Ok(outputs(&[("id", &id(&subnet, &key))]))
    }

    /// Removes the key only where it still says `shared` (EC2 deletes a tag given with a
    /// value only when the value matches).
    async fn delete(aws: &Aws, id: &str, _found: &Out) -> Result<(), Error> {
        let (subnet, key) = id
            .split_once(',')
            .ok_or_else(|| Error::permanent(format!("{id:?} is not SUBNET,KEY")))?;
        aws.ec2
            .delete_tags()
            .resources(subnet)
            .tags(ec2t::Tag::builder().key(key).value(SHARED).build())
            .send()
            .await?;
        Ok(())
    }
}
