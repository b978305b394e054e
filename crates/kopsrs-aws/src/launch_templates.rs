//! Launch templates: one paginated DescribeLaunchTemplates by the cluster tag, and the
//! `aws_ami` data source they launch.
//!
//! A template's content is not read back (that would be one DescribeLaunchTemplateVersions
//! per template): kopsrs tags each template with the digest of the content it last wrote
//! ([`crate::handler::DIGEST_TAG`]), and a different digest is a change, a new version.

use aws_sdk_ec2::types as ec2t;
use kopsrs_engine::{Action, Change, FieldChange, Plan};
use kopsrs_model::{Address, DesiredSet};

use crate::handler::{
    client_token, digest, ec2_tags, outputs, tag_spec, Discovery, Handler, Item, Op, Out, Scan,
    DIGEST_TAG, R,
};
use crate::kind::Kind;
use crate::resolve::{self, block, blocks, bool_of, int_of, str_of, strs_of};
use crate::{Aws, Error};

/// `aws_launch_template`.
pub(crate) struct LaunchTemplate;

impl Handler for LaunchTemplate {
    /// A new version, made the default, then the digest tag.
    const UPDATE_CALLS: usize = 3;

    fn key(r: &R) -> Option<String> {
        str_of(r, "name").map(str::to_string)
    }

    fn forces_replacement(attr: &str) -> bool {
        attr == "name"
    }

    /// Content is compared through the digest (see the module), not field by field.
    fn write_only(attr: &str) -> bool {
        attr != "tags" && attr != "name"
    }

    async fn discover(scan: &Scan<'_>) -> Result<Vec<Item>, Error> {
        let mut items = Vec::new();
        for lt in scan.aws.cluster_launch_templates(scan.cluster).await? {
            let tags = ec2_tags(lt.tags());
            let name = lt.launch_template_name().unwrap_or_default();
            let latest = lt.latest_version_number().unwrap_or(1).to_string();
            let mut item = Item::new(
                Kind::LaunchTemplate,
                lt.launch_template_id().unwrap_or_default(),
                name,
            )
            .with_tags(&tags, scan.cluster)
            .with(&[("latest_version", &latest), ("name", name)]);
            if let Some(d) = tags.get(DIGEST_TAG) {
                item.outputs.insert("digest".into(), d.clone());
            }
            items.push(item);
        }
        Ok(items)
    }

    async fn create(op: &Op<'_>) -> Result<Out, Error> {
        let mut tags = op.tags();
        tags.insert(DIGEST_TAG.into(), digest(op.r));
        let lt = op
            .aws
            .ec2
            .create_launch_template()
            .launch_template_name(op.s("name"))
            .launch_template_data(launch_template_data(op.r))
            .client_token(client_token(op.address, op.r))
            .tag_specifications(tag_spec(ec2t::ResourceType::LaunchTemplate, &tags))
            .send()
            .await?
            .launch_template
            .ok_or_else(|| Error::permanent("CreateLaunchTemplate returned no template"))?;
        Ok(outputs(&[
            ("id", lt.launch_template_id().unwrap_or_default()),
            (
                "latest_version",
                &lt.latest_version_number().unwrap_or(1).to_string(),
            ),
            ("name", &op.s("name")),
        ]))
    }

    async fn update(op: &Op<'_>, id: &str, _change: &Change) -> Result<Out, Error> {
        let version = op
            .aws
            .ec2
            .create_launch_template_version()
            .launch_template_id(id)
            .launch_template_data(launch_template_data(op.r))
            .send()
            .await?
            .launch_template_version
            .and_then(|v| v.version_number)
            .unwrap_or(1);
        op.aws.call();
        op.aws
            .ec2
            .modify_launch_template()
            .launch_template_id(id)
            .default_version(version.to_string())
            .send()
            .await?;
        // The digest last, so a run killed before it makes the version again.
        let mut tags = op.tags();
        tags.insert(DIGEST_TAG.into(), digest(op.r));
        op.aws.tag_ec2(id, &tags, &[]).await?;
        Ok(outputs(&[("latest_version", &version.to_string())]))
    }

    async fn delete(aws: &Aws, id: &str, _found: &Out) -> Result<(), Error> {
        aws.ec2
            .delete_launch_template()
            .launch_template_id(id)
            .send()
            .await?;
        Ok(())
    }
}

impl Aws {
    /// The cluster's launch templates: DescribeLaunchTemplates filtered by the cluster tag,
    /// every page at the largest page size (used by discovery and by `get instances`).
    pub(crate) async fn cluster_launch_templates(
        &self,
        cluster: &str,
    ) -> Result<Vec<ec2t::LaunchTemplate>, Error> {
        let operation = "ec2:DescribeLaunchTemplates";
        self.cluster_tagged(cluster, operation, |aws, filter| async move {
            let request = aws
                .ec2
                .describe_launch_templates()
                .max_results(200)
                .filters(filter);
            Ok(all_pages!(aws, request, launch_templates))
        })
        .await
    }
}

/// Adds to `plan` what field diffs cannot see: launch templates whose content digest differs
/// from the desired one (a new version), and the groups that must move to that version.
pub(crate) fn complete_plan(discovery: &Discovery, plan: &mut Plan, desired: &DesiredSet) {
    let id_of = |address: &Address| {
        discovery
            .outputs
            .get(address)
            .and_then(|o| o.get("id"))
            .cloned()
    };
    let mut changed = Vec::new();
    for resource in desired.of_kind(Kind::LaunchTemplate.as_str()) {
        let Some(before) = discovery
            .items
            .get(&resource.address)
            .and_then(|i| i.outputs.get("digest"))
        else {
            continue;
        };
        let after = resolve::attrs(&resource.attrs, &discovery.outputs)
            .map(|r| digest(&r))
            .unwrap_or_else(|_| "(known after apply)".into());
        if &after == before {
            continue;
        }
        changed.push(resource.address.clone());
        let field = FieldChange {
            path: "(content digest)".into(),
            before: Some(before.clone()),
            after: Some(after),
            forces_replacement: false,
        };
        match plan
            .changes
            .iter_mut()
            .find(|c| c.address == resource.address)
        {
            Some(change) => change.fields.push(field),
            None => plan.changes.push(Change {
                action: Action::Update,
                id: id_of(&resource.address),
                fields: vec![field],
                ..Change::new(resource)
            }),
        }
    }
    for resource in desired.of_kind(Kind::AutoscalingGroup.as_str()) {
        let uses_changed = resource.dependencies().iter().any(|d| changed.contains(d));
        if !uses_changed || !discovery.outputs.contains_key(&resource.address) {
            continue;
        }
        if plan.changes.iter().any(|c| c.address == resource.address) {
            continue;
        }
        plan.changes.push(Change {
            action: Action::Update,
            id: id_of(&resource.address),
            fields: vec![FieldChange {
                path: "launch_template[0].version".into(),
                before: None,
                after: Some("(new version)".into()),
                forces_replacement: false,
            }],
            ..Change::new(resource)
        });
    }
}

/// The fields a reviewer reads in a template's content, flattened to text: what the plan
/// shows when the content changes (user-data as the decompressed script).
fn reviewable(r: &R) -> std::collections::BTreeMap<String, String> {
    let mut fields = std::collections::BTreeMap::new();
    let mut put = |key: String, value: Option<String>| {
        if let Some(value) = value {
            fields.insert(key, value);
        }
    };
    put("image_id".into(), str_of(r, "image_id").map(str::to_string));
    put(
        "instance_type".into(),
        str_of(r, "instance_type").map(str::to_string),
    );
    put("key_name".into(), str_of(r, "key_name").map(str::to_string));
    put(
        "iam_instance_profile".into(),
        block(r, "iam_instance_profile").and_then(|p| str_of(p, "name").map(str::to_string)),
    );
    put(
        "user_data".into(),
        str_of(r, "user_data").map(kopsrs_bootstrap::user_data_text),
    );
    for nic in blocks(r, "network_interfaces") {
        let mut groups = strs_of(nic, "security_groups");
        groups.sort();
        put("security_groups".into(), Some(groups.join(", ")));
        put(
            "associate_public_ip_address".into(),
            bool_of(nic, "associate_public_ip_address").map(|b| b.to_string()),
        );
    }
    for mapping in blocks(r, "block_device_mappings") {
        let device = str_of(mapping, "device_name").unwrap_or_default();
        if let Some(ebs) = block(mapping, "ebs") {
            for key in ["volume_size", "iops", "throughput"] {
                put(
                    format!("{device}.{key}"),
                    int_of(ebs, key).map(|v| v.to_string()),
                );
            }
            put(
                format!("{device}.volume_type"),
                str_of(ebs, "volume_type").map(str::to_string),
            );
            put(
                format!("{device}.encrypted"),
                bool_of(ebs, "encrypted").map(|b| b.to_string()),
            );
        }
    }
    if let Some(meta) = block(r, "metadata_options") {
        put(
            "metadata.http_tokens".into(),
            str_of(meta, "http_tokens").map(str::to_string),
        );
        put(
            "metadata.hop_limit".into(),
            int_of(meta, "http_put_response_hop_limit").map(|v| v.to_string()),
        );
    }
    fields
}

/// [`reviewable`] of a template version as EC2 returns it.
fn reviewable_version(
    data: &ec2t::ResponseLaunchTemplateData,
) -> std::collections::BTreeMap<String, String> {
    let mut fields = std::collections::BTreeMap::new();
    let mut put = |key: String, value: Option<String>| {
        if let Some(value) = value {
            fields.insert(key, value);
        }
    };
    put("image_id".into(), data.image_id().map(str::to_string));
    put(
        "instance_type".into(),
        data.instance_type().map(|t| t.as_str().to_string()),
    );
    put("key_name".into(), data.key_name().map(str::to_string));
    put(
        "iam_instance_profile".into(),
        data.iam_instance_profile()
            .and_then(|p| p.name())
            .map(str::to_string),
    );
    put(
        "user_data".into(),
        data.user_data().map(kopsrs_bootstrap::user_data_text),
    );
    for nic in data.network_interfaces() {
        let mut groups: Vec<String> = nic.groups().to_vec();
        groups.sort();
        put("security_groups".into(), Some(groups.join(", ")));
        put(
            "associate_public_ip_address".into(),
            nic.associate_public_ip_address().map(|b| b.to_string()),
        );
    }
    for mapping in data.block_device_mappings() {
        let device = mapping.device_name().unwrap_or_default();
        if let Some(ebs) = mapping.ebs() {
            put(
                format!("{device}.volume_size"),
                ebs.volume_size().map(|v| v.to_string()),
            );
            put(format!("{device}.iops"), ebs.iops().map(|v| v.to_string()));
            put(
                format!("{device}.throughput"),
                ebs.throughput().map(|v| v.to_string()),
            );
            put(
                format!("{device}.volume_type"),
                ebs.volume_type().map(|t| t.as_str().to_string()),
            );
            put(
                format!("{device}.encrypted"),
                ebs.encrypted().map(|b| b.to_string()),
            );
        }
    }
    if let Some(meta) = data.metadata_options() {
        put(
            "metadata.http_tokens".into(),
            meta.http_tokens().map(|t| t.as_str().to_string()),
        );
        put(
            "metadata.hop_limit".into(),
            meta.http_put_response_hop_limit().map(|v| v.to_string()),
        );
    }
    fields
}

/// Explains each launch-template content change in `plan` field by field: the template's
/// current default version is read back (one DescribeLaunchTemplateVersions per changed
/// template, concurrently; a plan without template changes makes no call) and compared with
/// the desired content. The digest line stays last, so a change outside these fields is
/// still shown.
pub(crate) async fn explain_changes(
    aws: &Aws,
    discovery: &Discovery,
    plan: &mut Plan,
    desired: &DesiredSet,
) -> Result<(), Error> {
    let changed: Vec<(usize, String, std::collections::BTreeMap<String, String>)> = plan
        .changes
        .iter()
        .enumerate()
        .filter(|(_, c)| c.address.kind == Kind::LaunchTemplate.as_str())
        .filter(|(_, c)| c.fields.iter().any(|f| f.path == "(content digest)"))
        .filter_map(|(i, c)| {
            let id = c.id.clone()?;
            let resource = desired.get(&c.address)?;
            let resolved = resolve::attrs(&resource.attrs, &discovery.outputs).ok()?;
            Some((i, id, reviewable(&resolved)))
        })
        .collect();
    let reads = changed.iter().map(|(_, id, _)| async move {
        aws.call();
        aws.ec2
            .describe_launch_template_versions()
            .launch_template_id(id)
            .versions("$Default")
            .send()
            .await
            .map_err(Error::from)
    });
    let versions = futures::future::try_join_all(reads).await?;
    for ((index, _, after), response) in changed.into_iter().zip(versions) {
        let Some(data) = response
            .launch_template_versions()
            .first()
            .and_then(|v| v.launch_template_data())
        else {
            continue;
        };
        let before = reviewable_version(data);
        let keys: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
        let fields: Vec<FieldChange> = keys
            .into_iter()
            .filter(|k| before.get(*k) != after.get(*k))
            .map(|k| FieldChange {
                path: k.clone(),
                before: before.get(k).cloned(),
                after: after.get(k).cloned(),
                forces_replacement: false,
            })
            .collect();
        let change = &mut plan.changes[index];
        let at = change
            .fields
            .iter()
            .position(|f| f.path == "(content digest)")
            .unwrap_or(change.fields.len());
        change.fields.splice(at..at, fields);
    }
    Ok(())
}

/// A template's content as the EC2 API takes it.
fn launch_template_data(r: &R) -> ec2t::RequestLaunchTemplateData {
    let mut data = ec2t::RequestLaunchTemplateData::builder()
        .set_image_id(str_of(r, "image_id").map(str::to_string))
        .set_instance_type(str_of(r, "instance_type").map(ec2t::InstanceType::from))
        .set_key_name(str_of(r, "key_name").map(str::to_string))
        // Already base64 (and gzip) from the model's file value, see resolve.rs.
        .set_user_data(str_of(r, "user_data").map(str::to_string));
    if let Some(profile) = block(r, "iam_instance_profile") {
        data = data.iam_instance_profile(
            ec2t::LaunchTemplateIamInstanceProfileSpecificationRequest::builder()
                .set_name(str_of(profile, "name").map(str::to_string))
                .build(),
        );
    }
    for mapping in blocks(r, "block_device_mappings") {
        let mut device = ec2t::LaunchTemplateBlockDeviceMappingRequest::builder()
            .set_device_name(str_of(mapping, "device_name").map(str::to_string))
            .set_virtual_name(str_of(mapping, "virtual_name").map(str::to_string));
        if let Some(ebs) = block(mapping, "ebs") {
            device = device.ebs(
                ec2t::LaunchTemplateEbsBlockDeviceRequest::builder()
                    .set_delete_on_termination(bool_of(ebs, "delete_on_termination"))
                    .set_encrypted(bool_of(ebs, "encrypted"))
                    .set_iops(int_of(ebs, "iops").map(|v| v as i32))
                    .set_throughput(int_of(ebs, "throughput").map(|v| v as i32))
                    .set_volume_size(int_of(ebs, "volume_size").map(|v| v as i32))
                    .set_volume_type(str_of(ebs, "volume_type").map(ec2t::VolumeType::from))
                    .set_kms_key_id(str_of(ebs, "kms_key_id").map(str::to_string))
                    .build(),
            );
        }
        data = data.block_device_mappings(device.build());
    }
    if let Some(meta) = block(r, "metadata_options") {
        data = data.metadata_options(
            ec2t::LaunchTemplateInstanceMetadataOptionsRequest::builder()
                .set_http_tokens(
                    str_of(meta, "http_tokens").map(ec2t::LaunchTemplateHttpTokensState::from),
                )
                .set_http_put_response_hop_limit(
                    int_of(meta, "http_put_response_hop_limit").map(|v| v as i32),
                )
                .set_http_endpoint(
                    str_of(meta, "http_endpoint")
                        .map(ec2t::LaunchTemplateInstanceMetadataEndpointState::from),
                )
                .build(),
        );
    }
    if let Some(monitoring) = block(r, "monitoring") {
        data = data.monitoring(
            ec2t::LaunchTemplatesMonitoringRequest::builder()
                .set_enabled(bool_of(monitoring, "enabled"))
                .build(),
        );
    }
    for nic in blocks(r, "network_interfaces") {
        data = data.network_interfaces(
            ec2t::LaunchTemplateInstanceNetworkInterfaceSpecificationRequest::builder()
                .device_index(0)
                .set_associate_public_ip_address(bool_of(nic, "associate_public_ip_address"))
                .set_delete_on_termination(bool_of(nic, "delete_on_termination"))
                .set_ipv6_address_count(int_of(nic, "ipv6_address_count").map(|v| v as i32))
                .set_groups(Some(strs_of(nic, "security_groups")))
                .build(),
        );
    }
    for spec in blocks(r, "tag_specifications") {
        let tags = resolve::tags(spec);
        data = data.tag_specifications(
            ec2t::LaunchTemplateTagSpecificationRequest::builder()
                .set_resource_type(str_of(spec, "resource_type").map(ec2t::ResourceType::from))
                .set_tags(Some(
                    tags.iter()
                        .map(|(k, v)| ec2t::Tag::builder().key(k).value(v).build())
                        .collect(),
                ))
                .build(),
        );
    }
    data.build()
}

/// The `aws_ami` data source: the newest image matching the filters and owners.
pub(crate) async fn read_ami(aws: &Aws, address: &Address, r: &R) -> Result<Out, Error> {
    let owners = strs_of(r, "owners");
    aws.call();
    let images = aws
        .ec2
        .describe_images()
        .set_owners(Some(owners.clone()).filter(|o| !o.is_empty()))
        .set_filters(Some(crate::gateways::data_filters(r)))
        .send()
        .await?
        .images
        .unwrap_or_default();
    let image = images
        .iter()
        .max_by_key(|i| i.creation_date.clone().unwrap_or_default())
        .ok_or_else(|| {
            Error::existing(format!(
                "{address}: no AMI matches {:?} (owners {owners:?}); set the instance group's \
                 spec.image to an existing AMI name or ID",
                blocks(r, "filter").first().map(|f| strs_of(f, "values")),
            ))
        })?;
    Ok(outputs(&[
        ("id", image.image_id().unwrap_or_default()),
        (
            "root_device_name",
            image.root_device_name().unwrap_or("/dev/xvda"),
        ),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_ignores_its_own_tag_and_sees_content() {
        let r = |data: &str, tag: &str| -> R {
            serde_json::from_value(serde_json::json!({
                "name": "nodes.x.c", "user_data": data,
                "tags": {"Name": "nodes.x.c", crate::handler::DIGEST_TAG: tag}
            }))
            .unwrap()
        };
        assert_eq!(digest(&r("a", "1")), digest(&r("a", "2")));
        assert_ne!(digest(&r("a", "1")), digest(&r("b", "1")));
        assert_eq!(digest(&r("a", "1")).len(), 24);
    }

    #[test]
    fn identity_and_schema() {
        let r: R = serde_json::from_value(serde_json::json!({"name": "nodes.x.c"})).unwrap();
        assert_eq!(LaunchTemplate::key(&r).as_deref(), Some("nodes.x.c"));
        assert!(LaunchTemplate::write_only("user_data"));
        assert!(!LaunchTemplate::write_only("tags"));
        assert!(!LaunchTemplate::forces_replacement("image_id"));
        assert!(LaunchTemplate::forces_replacement("name"));
    }
}
