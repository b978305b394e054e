//! The SSH key pair: one DescribeKeyPairs by the cluster tag (not paginated by AWS).

use aws_sdk_ec2::types as ec2t;

use crate::handler::{ec2_tags, outputs, tag_spec, Handler, Item, Op, Out, Scan, Tagging, R};
use crate::kind::Kind;
use crate::resolve::str_of;
use crate::{Aws, Error};

/// `aws_key_pair`, found and deleted by name.
pub(crate) struct KeyPair;

impl Handler for KeyPair {
    const TAGGING: Tagging = Tagging::Ec2;

    fn key(r: &R) -> Option<String> {
        str_of(r, "key_name").map(str::to_string)
    }

    /// EC2 returns a fingerprint, not the key: the name carries the fingerprint instead
    /// (kops's `kubernetes.<cluster>-<fingerprint>`), so a new key is a new name.
    fn write_only(attr: &str) -> bool {
        attr == "public_key"
    }

    async fn discover(scan: &Scan<'_>) -> Result<Vec<Item>, Error> {
        let found = scan
            .aws
            .cluster_tagged(
                scan.cluster,
                "ec2:DescribeKeyPairs",
                |aws, filter| async move {
                    aws.call();
                    let found = aws.ec2.describe_key_pairs().filters(filter).send().await?;
                    Ok(found.key_pairs.unwrap_or_default())
                },
            )
            .await?;
        Ok(found
            .iter()
            .map(|key| {
                let name = key.key_name().unwrap_or_default();
                Item::new(Kind::KeyPair, name, name)
                    .with_tags(&ec2_tags(key.tags()), scan.cluster)
                    .with(&[("key_pair_id", key.key_pair_id().unwrap_or_default())])
            })
            .collect())
    }

    async fn create(op: &Op<'_>) -> Result<Out, Error> {
        let key = op
            .aws
            .ec2
            .import_key_pair()
            .key_name(op.s("key_name"))
            .public_key_material(aws_smithy_types::Blob::new(op.s("public_key").into_bytes()))
            .tag_specifications(tag_spec(ec2t::ResourceType::KeyPair, &op.tags()))
            .send()
            .await?;
        Ok(outputs(&[
            ("id", key.key_name().unwrap_or_default()),
            ("key_pair_id", key.key_pair_id().unwrap_or_default()),
        ]))
    }

    async fn delete(aws: &Aws, id: &str, _found: &Out) -> Result<(), Error> {
        aws.ec2.delete_key_pair().key_name(id).send().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_and_schema() {
        let r: R =
            serde_json::from_value(serde_json::json!({"key_name": "kubernetes.x.c-ab"})).unwrap();
        assert_eq!(KeyPair::key(&r).as_deref(), Some("kubernetes.x.c-ab"));
        assert!(KeyPair::write_only("public_key"));
        assert!(!KeyPair::write_only("tags"));
    }
}
