//! etcd volumes: one paginated DescribeVolumes by the cluster tag. Created with a
//! ClientToken, so a create retried after a crash returns the volume the first one made.

use aws_sdk_ec2::types as ec2t;

use crate::handler::{
    client_token, ec2_tags, outputs, tag_spec, Handler, Item, Op, Out, Scan, Tagging, R,
};
use crate::kind::Kind;
use crate::resolve::{self, bool_of, int_of, str_of};
use crate::{Aws, Error};

/// `aws_ebs_volume`.
pub(crate) struct Volume;

impl Handler for Volume {
    const TAGGING: Tagging = Tagging::Ec2;

    fn key(r: &R) -> Option<String> {
        resolve::tags(r).get("Name").cloned()
    }

    async fn discover(scan: &Scan<'_>) -> Result<Vec<Item>, Error> {
        let volumes = scan
            .aws
            .cluster_tagged(
                scan.cluster,
                "ec2:DescribeVolumes",
                |aws, filter| async move {
                    let request = aws.ec2.describe_volumes().max_results(500).filters(filter);
                    Ok(all_pages!(aws, request, volumes))
                },
            )
            .await?;
        Ok(volumes
            .iter()
            .map(|v| {
                let id = v.volume_id().unwrap_or_default();
                Item::tagged(Kind::EbsVolume, id, &ec2_tags(v.tags()), scan.cluster)
            })
            .collect())
    }

    async fn create(op: &Op<'_>) -> Result<Out, Error> {
        let r = op.r;
        let volume = op
            .aws
            .ec2
            .create_volume()
            .availability_zone(op.s("availability_zone"))
            .set_size(int_of(r, "size").map(|v| v as i32))
            .set_iops(int_of(r, "iops").map(|v| v as i32))
            .set_throughput(int_of(r, "throughput").map(|v| v as i32))
            .set_encrypted(bool_of(r, "encrypted"))
            .set_kms_key_id(str_of(r, "kms_key_id").map(str::to_string))
            .set_volume_type(str_of(r, "type").map(ec2t::VolumeType::from))
            .client_token(client_token(op.address, r))
            .tag_specifications(tag_spec(ec2t::ResourceType::Volume, &op.tags()))
            .send()
            .await?;
        Ok(outputs(&[("id", volume.volume_id().unwrap_or_default())]))
    }

    async fn delete(aws: &Aws, id: &str, _found: &Out) -> Result<(), Error> {
        aws.ec2.delete_volume().volume_id(id).send().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_and_schema() {
        let r: R = serde_json::from_value(serde_json::json!({
            "tags": {"Name": "a.etcd-main.x.c"}, "size": 20
        }))
        .unwrap();
        assert_eq!(Volume::key(&r).as_deref(), Some("a.etcd-main.x.c"));
        // etcd's data lives on it: a size or type change is a replacement, shown as such.
        assert!(Volume::forces_replacement("size"));
        assert!(Volume::gone("InvalidVolume.NotFound"));
    }
}
