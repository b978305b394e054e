//! Discovery: what exists, read per kind with a few paginated calls, mapped back to the
//! model's addresses.

use std::collections::{BTreeMap, BTreeSet};

use kopsrs_engine::{Action, Change, FieldChange, Observed, Plan};
use kopsrs_model::{Address, Attrs, DesiredSet, Resource, Value};
use serde_json::Value as Json;
use sha2::{Digest, Sha256};

use crate::resolve::{self, str_of};
use crate::{Aws, Error, Outputs};

/// Tag on launch templates: the digest of the content kopsrs last wrote, so a no-op plan
/// needs no per-template DescribeLaunchTemplateVersions call.
pub(crate) const DIGEST_TAG: &str = "kopsrs.k8s.io/content-digest";
/// Tag on auto scaling groups: the lifecycle hooks kopsrs put on it (DescribeLifecycleHooks
/// takes one group per call).
/// An auto scaling group records each lifecycle hook kopsrs made in a tag
/// `<HOOK_TAG_PREFIX><hook name>`, so a no-op plan needs no DescribeLifecycleHooks per group.
/// An EventBridge rule's description records its target: `<TARGET_MARK><target id> <arn>`.
pub(crate) const TARGET_MARK: &str = "kopsrs target ";

pub(crate) const HOOK_TAG_PREFIX: &str = "kopsrs.k8s.io/lifecycle-hook/";

/// An IAM role records each managed policy kopsrs attached to it in a tag
/// `<ATTACHMENT_TAG_PREFIX><fnv1a32 of the ARN, hex>` = ARN: IAM attachments carry no tags of
/// their own, and only the ones kopsrs made may be detached.
pub(crate) const ATTACHMENT_TAG_PREFIX: &str = "kopsrs.k8s.io/attached-policy/";

/// The record tag of an attached policy (see [`ATTACHMENT_TAG_PREFIX`]).
pub(crate) fn attachment_tag(arn: &str) -> String {
    format!(
        "{ATTACHMENT_TAG_PREFIX}{:08x}",
        kopsrs_model::names::fnv1a32(arn)
    )
}

/// Whether `tags` say the resource belongs to `cluster`: `kubernetes.io/cluster/<name>` is
/// `owned`, or `KubernetesCluster` is exactly the name. Never by a name prefix or suffix:
/// `a.x.c` and `x.co` are other clusters than `x.c`.
pub(crate) fn owned_by(tags: &BTreeMap<String, String>, cluster: &str) -> bool {
    tags.get(&format!("kubernetes.io/cluster/{cluster}"))
        .is_some_and(|v| v == "owned")
        || tags.get("KubernetesCluster").is_some_and(|v| v == cluster)
}

/// The order in which kinds are matched (parents before children) and created.
pub(crate) const KIND_ORDER: &[&str] = &[
    "aws_vpc_dhcp_options",
    "aws_vpc",
    "aws_vpc_dhcp_options_association",
    "aws_internet_gateway",
    "aws_subnet",
    "aws_route_table",
    "aws_eip",
    "aws_nat_gateway",
    "aws_route",
    "aws_route_table_association",
    "aws_security_group",
    "aws_security_group_rule",
    "aws_key_pair",
    "aws_iam_role",
    "aws_iam_role_policy",
    "aws_iam_role_policy_attachment",
    "aws_iam_instance_profile",
    "aws_iam_openid_connect_provider",
    "aws_ebs_volume",
    "aws_launch_template",
    "aws_lb_target_group",
    "aws_lb",
    "aws_lb_listener",
    "aws_sqs_queue",
    "aws_cloudwatch_event_rule",
    "aws_cloudwatch_event_target",
    "aws_autoscaling_group",
    "aws_autoscaling_lifecycle_hook",
    "aws_route53_record",
];

/// One resource found in the cloud.
#[derive(Debug, Clone, Default)]
pub(crate) struct Item {
    pub kind: &'static str,
    pub id: String,
    /// What identifies it among its kind (see [`desired_key`]).
    pub key: String,
    /// Attributes reported for diffing, in the model's vocabulary.
    pub attrs: Attrs,
    /// `id`, `arn`, `name`, ... for references.
    pub outputs: BTreeMap<String, String>,
    /// Whether it carries the cluster's ownership tag (only owned resources are deleted).
    pub owned: bool,
    /// For a child (a rule, a route, a policy, a listener): whether its parent is the
    /// cluster's. A child that is neither desired nor made by kopsrs inside an owned parent
    /// is listed as left in place, never deleted.
    pub parent_owned: bool,
}

/// What exists, in the engine's terms.
#[derive(Debug, Default)]
pub struct Discovery {
    pub observed: Vec<Observed>,
    pub outputs: Outputs,
    /// Launch-template content digests as last written.
    pub(crate) digests: BTreeMap<Address, String>,
    /// Lifecycle hooks recorded on each group.
    pub(crate) items: BTreeMap<Address, Item>,
    /// Children of the cluster's resources that kopsrs did not make and leaves alone.
    pub left: Vec<kopsrs_engine::Left>,
    pub calls: u64,
}

pub(crate) fn digest(resolved: &serde_json::Map<String, Json>) -> String {
    let mut content = resolved.clone();
    if let Some(Json::Object(tags)) = content.get_mut("tags") {
        tags.remove(DIGEST_TAG);
    }
    let text = serde_json::to_string(&content).expect("JSON serializes");
    let hash = Sha256::digest(text.as_bytes());
    hash.iter().take(12).map(|b| format!("{b:02x}")).collect()
}

fn norm_dns(name: &str) -> String {
    format!("{}.", name.trim_end_matches('.')).to_lowercase()
}

fn rule_key(sg: &str, egress: bool, protocol: &str, from: i64, to: i64, peer: &str) -> String {
    let protocol = match protocol {
        "all" | "-1" => "-1".to_string(),
        "6" => "tcp".to_string(),
        "17" => "udp".to_string(),
        "1" => "icmp".to_string(),
        p => p.to_string(),
    };
    let ports = match protocol.as_str() {
        "tcp" | "udp" | "icmp" | "icmpv6" | "58" => format!("{from}-{to}"),
        _ => "any".to_string(),
    };
    let direction = if egress { "egress" } else { "ingress" };
    format!("{sg}|{direction}|{protocol}|{ports}|{peer}")
}

/// The key a desired resource is found by, once the references it needs resolve.
pub(crate) fn desired_key(kind: &str, r: &serde_json::Map<String, Json>) -> Option<String> {
    let s = |k: &str| str_of(r, k).map(str::to_string);
    match kind {
        "aws_vpc"
        | "aws_vpc_dhcp_options"
        | "aws_internet_gateway"
        | "aws_subnet"
        | "aws_route_table"
        | "aws_eip"
        | "aws_nat_gateway"
        | "aws_ebs_volume" => resolve::tags(r).get("Name").cloned(),
        "aws_security_group"
        | "aws_launch_template"
        | "aws_autoscaling_group"
        | "aws_iam_role"
        | "aws_iam_instance_profile"
        | "aws_lb"
        | "aws_lb_target_group"
        | "aws_sqs_queue"
        | "aws_cloudwatch_event_rule" => s("name"),
        "aws_key_pair" => s("key_name"),
        "aws_iam_openid_connect_provider" => s("url"),
        "aws_vpc_dhcp_options_association" => {
            Some(format!("{}|{}", s("vpc_id")?, s("dhcp_options_id")?))
        }
        "aws_route" => {
            let dest = s("destination_cidr_block").or_else(|| s("destination_ipv6_cidr_block"))?;
            Some(format!("{}|{dest}", s("route_table_id")?))
        }
        "aws_route_table_association" => {
            Some(format!("{}|{}", s("route_table_id")?, s("subnet_id")?))
        }
        "aws_security_group_rule" => {
            let peer = resolve::strs_of(r, "cidr_blocks")
                .into_iter()
                .chain(resolve::strs_of(r, "ipv6_cidr_blocks"))
                .next()
                .or_else(|| s("source_security_group_id"))
                .or_else(|| resolve::strs_of(r, "prefix_list_ids").into_iter().next())?;
            Some(rule_key(
                &s("security_group_id")?,
                s("type")? == "egress",
                &s("protocol")?,
                resolve::int_of(r, "from_port").unwrap_or(0),
                resolve::int_of(r, "to_port").unwrap_or(0),
                &peer,
            ))
        }
        "aws_iam_role_policy" => Some(format!("{}|{}", s("role")?, s("name")?)),
        "aws_iam_role_policy_attachment" => Some(format!("{}|{}", s("role")?, s("policy_arn")?)),
        "aws_lb_listener" => Some(format!(
            "{}|{}",
            s("load_balancer_arn")?,
            resolve::int_of(r, "port")?
        )),
        "aws_cloudwatch_event_target" => Some(format!("{}|{}", s("rule")?, s("arn")?)),
        "aws_autoscaling_lifecycle_hook" => {
            Some(format!("{}|{}", s("autoscaling_group_name")?, s("name")?))
        }
        "aws_route53_record" => Some(format!(
            "{}|{}|{}",
            s("zone_id")?,
            norm_dns(&s("name")?),
            s("type")?
        )),
        _ => None,
    }
}

fn tag_map<'a>(tags: impl IntoIterator<Item = (&'a str, &'a str)>) -> BTreeMap<String, String> {
    tags.into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Tags of an EC2 resource, as pairs.
fn ec2_tags(tags: &[aws_sdk_ec2::types::Tag]) -> BTreeMap<String, String> {
    tag_map(
        tags.iter()
            .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default())),
    )
}

fn tags_value(tags: &BTreeMap<String, String>) -> Value {
    Value::Map(
        tags.iter()
            .filter(|(k, _)| !k.starts_with("kopsrs.k8s.io/") && !k.starts_with("aws:"))
            .map(|(k, v)| (k.clone(), Value::str(v)))
            .collect(),
    )
}

fn outputs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl Aws {
    pub(crate) fn cluster_tag(cluster: &str) -> String {
        format!("kubernetes.io/cluster/{cluster}")
    }

    pub(crate) fn ec2_filter(cluster: &str) -> aws_sdk_ec2::types::Filter {
        aws_sdk_ec2::types::Filter::builder()
            .name("tag-key")
            .values(Self::cluster_tag(cluster))
            .build()
    }

    /// Everything of the cluster that exists, matched against `desired` (pass an empty set
    /// to find everything owned, for deletion).
    pub async fn discover(&self, desired: &DesiredSet) -> Result<Discovery, Error> {
        let start = self.calls();
        let cluster = desired.cluster_name.as_str();
        let (mut outputs, ec2, iam, asg, elb, misc) = tokio::try_join!(
            self.data_sources(desired),
            self.ec2_items(cluster),
            self.iam_items(cluster, desired),
            self.asg_items(cluster),
            self.elb_items(cluster),
            self.misc_items(cluster, desired),
        )?;
        let mut all: Vec<Item> = ec2
            .into_iter()
            .chain(iam)
            .chain(asg)
            .chain(elb)
            .chain(misc)
            .collect();
        settle_route_ownership(&mut all);
        let mut by_kind: BTreeMap<&str, Vec<Item>> = BTreeMap::new();
        for item in all {
            by_kind.entry(item.kind).or_default().push(item);
        }
        let mut discovery = Discovery::default();
        let desired_by_kind: BTreeMap<&str, Vec<&Resource>> =
            desired.resources.iter().fold(BTreeMap::new(), |mut m, r| {
                m.entry(r.address.kind.as_str())
                    .or_insert_with(Vec::new)
                    .push(r);
                m
            });
        // Children (routes, rules, policies) of parents we found, then resolved lazily: kinds
        // are matched in dependency order so references resolve against found parents.
        let mut route53_wanted = Vec::new();
        for kind in KIND_ORDER {
            let mut items = by_kind.remove(kind).unwrap_or_default();
            if *kind == "aws_route53_record" {
                // Records are looked up by name, one call per desired record (a handful).
                for r in desired_by_kind.get(kind).into_iter().flatten() {
                    if let Ok(resolved) = resolve::attrs(&r.attrs, &outputs) {
                        route53_wanted.push(resolved);
                    }
                }
                items = self.route53_items(&route53_wanted).await?;
            }
            let mut matched = BTreeSet::new();
            for resource in desired_by_kind.get(kind).into_iter().flatten() {
                let Ok(resolved) = resolve::attrs(&resource.attrs, &outputs) else {
                    continue;
                };
                let Some(key) = desired_key(kind, &resolved) else {
                    continue;
                };
                let Some(index) = items
                    .iter()
                    .enumerate()
                    .position(|(i, item)| item.key == key && !matched.contains(&i))
                else {
                    continue;
                };
                matched.insert(index);
                let item = &items[index];
                self.observe(&mut discovery, &mut outputs, resource.address.clone(), item);
            }
            for (i, item) in items.iter().enumerate() {
                if matched.contains(&i) {
                    continue;
                }
                if !item.owned {
                    if item.parent_owned {
                        discovery.left.push(kopsrs_engine::Left {
                            kind: item.kind.to_string(),
                            id: item.id.clone(),
                        });
                    }
                    continue;
                }
                let address = Address::new(kind, &kopsrs_model::names::tf_name(&item.key));
                self.observe(&mut discovery, &mut outputs, address, item);
            }
        }
        // Launch-template versions of groups: a reference when it is the latest.
        for observed in &mut discovery.observed {
            if observed.resource.address.kind != "aws_autoscaling_group" {
                continue;
            }
            let attrs = &mut observed.resource.attrs;
            if let Some(Value::Blocks(blocks)) = attrs.get_mut("launch_template") {
                for block in blocks {
                    latest_version_as_reference(block, "id", &outputs);
                }
            }
            if let Some(spec) = mixed_policy_spec(attrs) {
                latest_version_as_reference(spec, "launch_template_id", &outputs);
            }
        }
        discovery.outputs = outputs;
        discovery.calls = self.calls() - start;
        Ok(discovery)
    }

    fn observe(
        &self,
        discovery: &mut Discovery,
        outputs: &mut Outputs,
        address: Address,
        item: &Item,
    ) {
        let mut out = item.outputs.clone();
        out.entry("id".into()).or_insert_with(|| item.id.clone());
        outputs.insert(address.clone(), out);
        if item.kind == "aws_launch_template" {
            if let Some(d) = item.outputs.get("digest") {
                discovery.digests.insert(address.clone(), d.clone());
            }
        }
        discovery.items.insert(address.clone(), item.clone());
        discovery.observed.push(Observed {
            resource: Resource {
                address,
                attrs: item.attrs.clone(),
            },
            id: item.id.clone(),
        });
    }

    /// Data sources: the AMI by name and owner, the hosted zone by name, a shared VPC's
    /// internet gateway and blocks. Ones no resource refers to (a shared VPC's blocks, read only for
    /// the Terraform outputs) cost no call.
    async fn data_sources(&self, desired: &DesiredSet) -> Result<Outputs, Error> {
        let referenced: std::collections::BTreeSet<&kopsrs_model::Address> = desired
            .resources
            .iter()
            .chain(&desired.data_sources)
            .flat_map(|r| r.dependencies())
            .collect();
        let mut out = Outputs::new();
        for data in desired
            .data_sources
            .iter()
            .filter(|d| referenced.contains(&d.address))
        {
            let resolved = resolve::attrs(&data.attrs, &out)?;
            match data.address.kind.as_str() {
                "aws_ami" => {
                    let mut request = self.ec2.describe_images();
                    for owner in resolve::strs_of(&resolved, "owners") {
                        request = request.owners(owner);
                    }
                    for filter in resolve::blocks(&resolved, "filter") {
                        request = request.filters(
                            aws_sdk_ec2::types::Filter::builder()
                                .name(str_of(filter, "name").unwrap_or_default())
                                .set_values(Some(resolve::strs_of(filter, "values")))
                                .build(),
                        );
                    }
                    self.call();
                    let images = request.send().await?.images.unwrap_or_default();
                    let image = images
                        .iter()
                        .max_by_key(|i| i.creation_date.clone().unwrap_or_default())
                        .ok_or_else(|| {
                            Error::permanent(format!(
                                "{}: no AMI matches {:?} (owners {:?}); set the instance group's spec.image to an existing AMI name or ID",
                                data.address,
                                resolve::blocks(&resolved, "filter").first().map(|f| resolve::strs_of(f, "values")),
                                resolve::strs_of(&resolved, "owners"),
                            ))
                        })?;
                    out.insert(
                        data.address.clone(),
                        outputs(&[
                            ("id", image.image_id().unwrap_or_default()),
                            (
                                "root_device_name",
                                image.root_device_name().unwrap_or("/dev/xvda"),
                            ),
                        ]),
                    );
                }
                "aws_route53_zone" => {
                    let name = str_of(&resolved, "name").unwrap_or_default().to_string();
                    let private = resolve::bool_of(&resolved, "private_zone").unwrap_or(false);
                    self.call();
                    let zones = self
                        .route53
                        .list_hosted_zones_by_name()
                        .dns_name(&name)
                        .send()
                        .await?
                        .hosted_zones;
                    let zone = zones
                        .iter()
                        .find(|z| {
                            norm_dns(z.name()) == norm_dns(&name)
                                && z.config().is_some_and(|c| c.private_zone()) == private
                        })
                        .ok_or_else(|| {
                            Error::permanent(format!(
                                "{}: no {} hosted zone named {name:?}; create it, or set spec.dnsZone to its ID",
                                data.address,
                                if private { "private" } else { "public" }
                            ))
                        })?;
                    let id = zone.id().trim_start_matches("/hostedzone/").to_string();
                    out.insert(
                        data.address.clone(),
                        outputs(&[("id", &id), ("zone_id", &id)]),
                    );
                }
                "aws_internet_gateway" => {
                    let mut request = self.ec2.describe_internet_gateways();
                    for filter in resolve::blocks(&resolved, "filter") {
                        request = request.filters(
                            aws_sdk_ec2::types::Filter::builder()
                                .name(str_of(filter, "name").unwrap_or_default())
                                .set_values(Some(resolve::strs_of(filter, "values")))
                                .build(),
                        );
                    }
                    self.call();
                    let gateways = request.send().await?.internet_gateways.unwrap_or_default();
                    let id = gateways
                        .first()
                        .and_then(|g| g.internet_gateway_id())
                        .ok_or_else(|| {
                            Error::permanent(format!(
                                "{}: the shared VPC has no internet gateway attached",
                                data.address
                            ))
                        })?;
                    out.insert(
                        data.address.clone(),
                        outputs(&[("id", id), ("internet_gateway_id", id)]),
                    );
                }
                "aws_vpc" => {
                    let id = str_of(&resolved, "id").unwrap_or_default().to_string();
                    self.call();
                    let vpcs = self
                        .ec2
                        .describe_vpcs()
                        .vpc_ids(&id)
                        .send()
                        .await?
                        .vpcs
                        .unwrap_or_default();
                    let vpc = vpcs.first().ok_or_else(|| {
                        Error::permanent(format!(
                            "{}: no VPC {id:?}; check spec.networkID",
                            data.address
                        ))
                    })?;
                    let ipv6 = vpc
                        .ipv6_cidr_block_association_set()
                        .iter()
                        .find(|a| {
                            a.ipv6_cidr_block_state().and_then(|s| s.state())
                                == Some(&aws_sdk_ec2::types::VpcCidrBlockStateCode::Associated)
                        })
                        .and_then(|a| a.ipv6_cidr_block())
                        .unwrap_or_default();
                    out.insert(
                        data.address.clone(),
                        outputs(&[
                            ("id", &id),
                            ("cidr_block", vpc.cidr_block().unwrap_or_default()),
                            ("ipv6_cidr_block", ipv6),
                        ]),
                    );
                }
                other => {
                    return Err(Error::permanent(format!(
                        "data source {other} is not supported by the AWS target"
                    )))
                }
            }
        }
        Ok(out)
    }

    async fn ec2_items(&self, cluster: &str) -> Result<Vec<Item>, Error> {
        let owned = |tags: &BTreeMap<String, String>| owned_by(tags, cluster);
        let filter = Self::ec2_filter(cluster);
        // One future per kind, run together: the calls of a kind follow each other (pages),
        // the kinds do not wait for each other.

        // VPCs (with their DHCP options association).
        let vpcs = async {
            let mut items = Vec::new();
            let mut token = None;
            loop {
                self.call();
                let page = self
                    .ec2
                    .describe_vpcs()
                    .max_results(1000)
                    .filters(filter.clone())
                    .set_next_token(token)
                    .send()
                    .await?;
                for vpc in page.vpcs() {
                    let tags = ec2_tags(vpc.tags());
                    let id = vpc.vpc_id().unwrap_or_default().to_string();
                    let ipv6 = vpc
                        .ipv6_cidr_block_association_set()
                        .iter()
                        .find_map(|a| a.ipv6_cidr_block())
                        .unwrap_or_default()
                        .to_string();
                    if let Some(dhcp) = vpc.dhcp_options_id() {
                        items.push(Item {
                            kind: "aws_vpc_dhcp_options_association",
                            id: format!("{id}|{dhcp}"),
                            key: format!("{id}|{dhcp}"),
                            owned: false,
                            ..Item::default()
                        });
                    }
                    items.push(Item {
                        kind: "aws_vpc",
                        key: tags.get("Name").cloned().unwrap_or_else(|| id.clone()),
                        owned: owned(&tags),
                        attrs: [("tags".to_string(), tags_value(&tags))].into(),
                        outputs: outputs(&[
                            ("cidr_block", vpc.cidr_block().unwrap_or_default()),
                            ("ipv6_cidr_block", &ipv6),
                        ]),
                        id,
                        parent_owned: false,
                    });
                }
                token = page.next_token;
                if token.is_none() {
                    break;
                }
            }
            Ok::<_, Error>(items)
        };

        macro_rules! tagged {
            ($call:ident, $filters:ident, $list:ident, $kind:literal, $id:ident, $max:literal, |$x:ident| $extra:expr) => {
                async {
                    let mut items = Vec::new();
                    let mut token = None;
                    loop {
                        self.call();
                        let page = self
                            .ec2
                            .$call()
                            .$filters(filter.clone())
                            .max_results($max)
                            .set_next_token(token)
                            .send()
                            .await?;
                        for $x in page.$list() {
                            let tags = ec2_tags($x.tags());
                            let id = $x.$id().unwrap_or_default().to_string();
                            let (skip, extra): (bool, BTreeMap<String, String>) = $extra;
                            if skip {
                                continue;
                            }
                            items.push(Item {
                                kind: $kind,
                                key: tags.get("Name").cloned().unwrap_or_else(|| id.clone()),
                                owned: owned(&tags),
                                attrs: [("tags".to_string(), tags_value(&tags))].into(),
                                outputs: extra,
                                id,
                                parent_owned: false,
                            });
                        }
                        token = page.next_token;
                        if token.is_none() {
                            break;
                        }
                    }
                    Ok::<_, Error>(items)
                }
            };
        }
        let dhcp = tagged!(
            describe_dhcp_options,
            filters,
            dhcp_options,
            "aws_vpc_dhcp_options",
            dhcp_options_id,
            1000,
            |x| (false, BTreeMap::new())
        );
        let gateways = tagged!(
            describe_internet_gateways,
            filters,
            internet_gateways,
            "aws_internet_gateway",
            internet_gateway_id,
            1000,
            |x| (false, BTreeMap::new())
        );
        let subnets = tagged!(
            describe_subnets,
            filters,
            subnets,
            "aws_subnet",
            subnet_id,
            1000,
            |x| (
                false,
                outputs(&[("arn", x.subnet_arn().unwrap_or_default())])
            )
        );
        let nats = tagged!(
            describe_nat_gateways,
            filter,
            nat_gateways,
            "aws_nat_gateway",
            nat_gateway_id,
            1000,
            |x| (
                matches!(
                    x.state(),
                    Some(aws_sdk_ec2::types::NatGatewayState::Deleted)
                        | Some(aws_sdk_ec2::types::NatGatewayState::Deleting)
                        | Some(aws_sdk_ec2::types::NatGatewayState::Failed)
                ),
                BTreeMap::new()
            )
        );
        let volumes = tagged!(
            describe_volumes,
            filters,
            volumes,
            "aws_ebs_volume",
            volume_id,
            500,
            |x| (false, BTreeMap::new())
        );

        // Elastic IPs: not paginated.
        let eips = async {
            let mut items = Vec::new();
            self.call();
            for address in self
                .ec2
                .describe_addresses()
                .filters(filter.clone())
                .send()
                .await?
                .addresses()
            {
                let tags = ec2_tags(address.tags());
                let id = address.allocation_id().unwrap_or_default().to_string();
                items.push(Item {
                    kind: "aws_eip",
                    key: tags.get("Name").cloned().unwrap_or_else(|| id.clone()),
                    owned: owned(&tags),
                    attrs: [("tags".to_string(), tags_value(&tags))].into(),
                    outputs: outputs(&[("public_ip", address.public_ip().unwrap_or_default())]),
                    id,
                    parent_owned: false,
                });
            }
            Ok::<_, Error>(items)
        };

        // Route tables, with their routes and associations.
        let tables = async {
            let mut items = Vec::new();
            let mut token = None;
            loop {
                self.call();
                let page = self
                    .ec2
                    .describe_route_tables()
                    .max_results(100)
                    .filters(filter.clone())
                    .set_next_token(token)
                    .send()
                    .await?;
                for table in page.route_tables() {
                    let tags = ec2_tags(table.tags());
                    let id = table.route_table_id().unwrap_or_default().to_string();
                    let is_owned = owned(&tags);
                    for route in table.routes() {
                        if route.gateway_id() == Some("local") {
                            continue;
                        }
                        let Some(dest) = route
                            .destination_cidr_block()
                            .or(route.destination_ipv6_cidr_block())
                        else {
                            continue;
                        };
                        let target = route
                            .gateway_id()
                            .or(route.nat_gateway_id())
                            .or(route.egress_only_internet_gateway_id())
                            .or(route.transit_gateway_id())
                            .or(route.vpc_peering_connection_id())
                            .or(route.network_interface_id())
                            .or(route.instance_id())
                            .unwrap_or_default();
                        // Ownership settled in `discover` once the gateways are known: a
                        // route is the cluster's only if it leads to one of them.
                        items.push(Item {
                            kind: "aws_route",
                            id: format!("{id}|{dest}"),
                            key: format!("{id}|{dest}"),
                            owned: is_owned,
                            parent_owned: is_owned,
                            outputs: outputs(&[("target", target)]),
                            ..Item::default()
                        });
                    }
                    for assoc in table.associations() {
                        if assoc.main() == Some(true) {
                            continue;
                        }
                        let Some(subnet) = assoc.subnet_id() else {
                            continue;
                        };
                        items.push(Item {
                            kind: "aws_route_table_association",
                            id: assoc
                                .route_table_association_id()
                                .unwrap_or_default()
                                .to_string(),
                            key: format!("{id}|{subnet}"),
                            owned: is_owned,
                            parent_owned: is_owned,
                            outputs: outputs(&[("subnet", subnet)]),
                            ..Item::default()
                        });
                    }
                    items.push(Item {
                        kind: "aws_route_table",
                        key: tags.get("Name").cloned().unwrap_or_else(|| id.clone()),
                        owned: is_owned,
                        attrs: [("tags".to_string(), tags_value(&tags))].into(),
                        id,
                        ..Item::default()
                    });
                }
                token = page.next_token;
                if token.is_none() {
                    break;
                }
            }
            Ok::<_, Error>(items)
        };

        // Security groups, then all their rules in one paginated call.
        let groups = async {
            let mut items = Vec::new();
            let mut groups = Vec::new();
            let mut token = None;
            loop {
                self.call();
                let page = self
                    .ec2
                    .describe_security_groups()
                    .max_results(1000)
                    .filters(filter.clone())
                    .set_next_token(token)
                    .send()
                    .await?;
                for sg in page.security_groups() {
                    let tags = ec2_tags(sg.tags());
                    let id = sg.group_id().unwrap_or_default().to_string();
                    if owned(&tags) {
                        groups.push(id.clone());
                    }
                    items.push(Item {
                        kind: "aws_security_group",
                        key: sg.group_name().unwrap_or_default().to_string(),
                        owned: owned(&tags),
                        attrs: [("tags".to_string(), tags_value(&tags))].into(),
                        outputs: outputs(&[("name", sg.group_name().unwrap_or_default())]),
                        id,
                        parent_owned: false,
                    });
                }
                token = page.next_token;
                if token.is_none() {
                    break;
                }
            }
            for chunk in groups.chunks(200) {
                let mut token = None;
                loop {
                    self.call();
                    let page = self
                        .ec2
                        .describe_security_group_rules()
                        .max_results(1000)
                        .filters(
                            aws_sdk_ec2::types::Filter::builder()
                                .name("group-id")
                                .set_values(Some(chunk.to_vec()))
                                .build(),
                        )
                        .set_next_token(token)
                        .send()
                        .await?;
                    for rule in page.security_group_rules() {
                        let peer = rule
                            .cidr_ipv4()
                            .or(rule.cidr_ipv6())
                            .or(rule.prefix_list_id())
                            .map(str::to_string)
                            .or_else(|| {
                                rule.referenced_group_info()
                                    .and_then(|g| g.group_id())
                                    .map(str::to_string)
                            })
                            .unwrap_or_default();
                        let sg = rule.group_id().unwrap_or_default();
                        let egress = rule.is_egress().unwrap_or(false);
                        let key = rule_key(
                            sg,
                            egress,
                            rule.ip_protocol().unwrap_or("-1"),
                            i64::from(rule.from_port().unwrap_or(0)),
                            i64::from(rule.to_port().unwrap_or(0)),
                            &peer,
                        );
                        // Rules kopsrs makes carry the cluster's tag (TagSpecifications at
                        // creation); others in the cluster's groups (the cloud controller's,
                        // a person's) are left alone.
                        items.push(Item {
                            kind: "aws_security_group_rule",
                            id: rule
                                .security_group_rule_id()
                                .unwrap_or_default()
                                .to_string(),
                            outputs: outputs(&[
                                ("security_group_id", sg),
                                ("egress", if egress { "true" } else { "false" }),
                            ]),
                            key,
                            owned: owned(&ec2_tags(rule.tags())),
                            parent_owned: true,
                            ..Item::default()
                        });
                    }
                    token = page.next_token;
                    if token.is_none() {
                        break;
                    }
                }
            }
            Ok::<_, Error>(items)
        };

        // Key pairs and launch templates: not paginated / paginated.
        let keys = async {
            let mut items = Vec::new();
            self.call();
            for key in self
                .ec2
                .describe_key_pairs()
                .filters(filter.clone())
                .send()
                .await?
                .key_pairs()
            {
                let tags = ec2_tags(key.tags());
                let name = key.key_name().unwrap_or_default().to_string();
                items.push(Item {
                    kind: "aws_key_pair",
                    key: name.clone(),
                    owned: owned(&tags),
                    attrs: [("tags".to_string(), tags_value(&tags))].into(),
                    outputs: outputs(&[("key_pair_id", key.key_pair_id().unwrap_or_default())]),
                    id: name,
                    parent_owned: false,
                });
            }
            Ok::<_, Error>(items)
        };
        let templates = async {
            let mut items = Vec::new();
            for lt in &self.cluster_launch_templates(cluster).await? {
                let tags = ec2_tags(lt.tags());
                let id = lt.launch_template_id().unwrap_or_default().to_string();
                let latest = lt.latest_version_number().unwrap_or(1).to_string();
                let mut out = outputs(&[
                    ("latest_version", &latest),
                    ("name", lt.launch_template_name().unwrap_or_default()),
                ]);
                if let Some(d) = tags.get(DIGEST_TAG) {
                    out.insert("digest".into(), d.clone());
                }
                items.push(Item {
                    kind: "aws_launch_template",
                    key: lt.launch_template_name().unwrap_or_default().to_string(),
                    owned: owned(&tags),
                    attrs: [("tags".to_string(), tags_value(&tags))].into(),
                    outputs: out,
                    id,
                    parent_owned: false,
                });
            }
            Ok::<_, Error>(items)
        };
        let parts = tokio::try_join!(
            vpcs, dhcp, gateways, subnets, nats, volumes, eips, tables, groups, keys, templates
        )?;
        Ok([
            parts.0, parts.1, parts.2, parts.3, parts.4, parts.5, parts.6, parts.7, parts.8,
            parts.9, parts.10,
        ]
        .concat())
    }

    async fn iam_items(&self, cluster: &str, desired: &DesiredSet) -> Result<Vec<Item>, Error> {
        // IAM has no tag filter: list (paginated) and keep what is the cluster's: roles and
        // profiles carrying its ownership tag, or named exactly as the desired set names them
        // (never by a suffix: `masters.a.x.c` is not `x.c`'s).
        let wanted: BTreeSet<String> = desired
            .resources
            .iter()
            .filter(|r| r.address.kind.starts_with("aws_iam_"))
            .filter_map(|r| {
                r.attrs
                    .get("name")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .collect();
        let iam_tags =
            |tags: &[aws_sdk_iam::types::Tag]| tag_map(tags.iter().map(|t| (t.key(), t.value())));
        let ours = |name: &str, tags: &BTreeMap<String, String>| {
            wanted.contains(name) || owned_by(tags, cluster)
        };
        // Inline policies and attachments the desired set names, as `role|name`.
        let wanted_children: BTreeSet<String> = desired
            .resources
            .iter()
            .filter_map(|r| {
                let name = match r.address.kind.as_str() {
                    "aws_iam_role_policy" => r.attrs.get("name")?.as_str()?.to_string(),
                    "aws_iam_role_policy_attachment" => {
                        r.attrs.get("policy_arn")?.as_str()?.to_string()
                    }
                    _ => return None,
                };
                let role = match r.attrs.get("role")? {
                    Value::Ref(reference) => desired
                        .get(&reference.address)?
                        .attrs
                        .get("name")?
                        .as_str()?
                        .to_string(),
                    other => other.as_str()?.to_string(),
                };
                Some(format!("{role}|{name}"))
            })
            .collect();
        // Roles with their inline policies, attached policies and instance profiles, in one
        // paginated GetAccountAuthorizationDetails: one call instead of four or more per role
        // (roles grow with service-account roles, not only with the cluster).
        let mut items = Vec::new();
        let mut seen_profiles = BTreeSet::new();
        let mut marker = None;
        loop {
            self.call();
            let page = self
                .iam
                .get_account_authorization_details()
                .filter(aws_sdk_iam::types::EntityType::Role)
                .max_items(1000)
                .set_marker(marker)
                .send()
                .await?;
            for role in page.role_detail_list() {
                let name = role.role_name().unwrap_or_default();
                let role_tags = iam_tags(role.tags());
                if !ours(name, &role_tags) {
                    continue;
                }
                let made_here = |policy: &str| {
                    wanted_children.contains(&format!("{name}|{policy}"))
                        || kopsrs_model::names::inline_policies(name).contains(&policy.to_string())
                };
                items.push(Item {
                    kind: "aws_iam_role",
                    id: name.to_string(),
                    key: name.to_string(),
                    owned: true,
                    outputs: outputs(&[("arn", role.arn().unwrap_or_default()), ("name", name)]),
                    ..Item::default()
                });
                for policy in role.role_policy_list() {
                    let policy_name = policy.policy_name().unwrap_or_default();
                    let document = urlencoding_decode(policy.policy_document().unwrap_or_default());
                    let normalized = serde_json::from_str::<Json>(&document)
                        .map(|j| serde_json::to_string_pretty(&j).unwrap_or_default() + "\n")
                        .unwrap_or(document);
                    items.push(Item {
                        kind: "aws_iam_role_policy",
                        id: format!("{name}:{policy_name}"),
                        key: format!("{name}|{policy_name}"),
                        owned: made_here(policy_name),
                        parent_owned: true,
                        attrs: [(
                            "policy".to_string(),
                            Value::File(kopsrs_model::FileValue::new(
                                policy_name.to_string(),
                                normalized,
                            )),
                        )]
                        .into(),
                        ..Item::default()
                    });
                }
                for attached in role.attached_managed_policies() {
                    let arn = attached.policy_arn().unwrap_or_default();
                    let recorded = role_tags
                        .get(&attachment_tag(arn))
                        .is_some_and(|v| v == arn);
                    items.push(Item {
                        kind: "aws_iam_role_policy_attachment",
                        id: format!("{name}|{arn}"),
                        key: format!("{name}|{arn}"),
                        owned: recorded,
                        parent_owned: true,
                        ..Item::default()
                    });
                }
                for profile in role.instance_profile_list() {
                    let profile_name = profile.instance_profile_name();
                    // kopsrs names a role's profile after the role; AWS may not list a
                    // profile's tags here, so that name (of a role that is ours) counts too.
                    if (profile_name == name || ours(profile_name, &iam_tags(profile.tags())))
                        && seen_profiles.insert(profile_name.to_string())
                    {
                        items.push(profile_item(profile, name));
                    }
                }
            }
            if !page.is_truncated {
                break;
            }
            marker = page.marker;
        }
        // For deletion, also profiles that lost their role (a run killed between making the
        // profile and adding the role); a plan adopts those when it makes them again.
        if desired.resources.is_empty() {
            let mut marker = None;
            loop {
                self.call();
                let page = self
                    .iam
                    .list_instance_profiles()
                    .max_items(1000)
                    .set_marker(marker)
                    .send()
                    .await?;
                for profile in page.instance_profiles() {
                    let name = profile.instance_profile_name();
                    if ours(name, &iam_tags(profile.tags()))
                        && seen_profiles.insert(name.to_string())
                    {
                        items.push(profile_item(profile, ""));
                    }
                }
                if !page.is_truncated {
                    break;
                }
                marker = page.marker;
            }
        }
        let wanted_urls: BTreeSet<String> = desired
            .resources
            .iter()
            .filter(|r| r.address.kind == "aws_iam_openid_connect_provider")
            .filter_map(|r| {
                r.attrs
                    .get("url")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .collect();
        if !wanted_urls.is_empty() || desired.resources.is_empty() {
            self.call();
            for provider in self
                .iam
                .list_open_id_connect_providers()
                .send()
                .await?
                .open_id_connect_provider_list()
            {
                let arn = provider.arn().unwrap_or_default();
                let url = format!(
                    "https://{}",
                    arn.split_once(":oidc-provider/")
                        .map(|(_, u)| u)
                        .unwrap_or(arn)
                );
                if wanted_urls.contains(&url) {
                    items.push(Item {
                        kind: "aws_iam_openid_connect_provider",
                        id: arn.to_string(),
                        key: url,
                        owned: true,
                        outputs: outputs(&[("arn", arn)]),
                        ..Item::default()
                    });
                }
            }
        }
        Ok(items)
    }

    /// The cluster's launch templates: DescribeLaunchTemplates filtered by the cluster tag, every
    /// page at the largest page size (used by discovery and by `get instances`).
    pub(crate) async fn cluster_launch_templates(
        &self,
        cluster: &str,
    ) -> Result<Vec<aws_sdk_ec2::types::LaunchTemplate>, Error> {
        let mut templates = Vec::new();
        let mut token = None;
        loop {
            self.call();
            let page = self
                .ec2
                .describe_launch_templates()
                .max_results(200)
                .filters(Self::ec2_filter(cluster))
                .set_next_token(token)
                .send()
                .await?;
            templates.extend(page.launch_templates.unwrap_or_default());
            token = page.next_token;
            if token.is_none() {
                return Ok(templates);
            }
        }
    }

    /// The cluster's auto scaling groups: DescribeAutoScalingGroups filtered by the cluster
    /// tag, every page (used by discovery and by `get instances`).
    pub(crate) async fn cluster_groups(
        &self,
        cluster: &str,
    ) -> Result<Vec<aws_sdk_autoscaling::types::AutoScalingGroup>, Error> {
        let tag = Self::cluster_tag(cluster);
        let mut groups = Vec::new();
        let mut token = None;
        loop {
            self.call();
            let page = self
                .autoscaling
                .describe_auto_scaling_groups()
                .max_records(100)
                .filters(
                    aws_sdk_autoscaling::types::Filter::builder()
                        .name("tag-key")
                        .values(&tag)
                        .build(),
                )
                .set_next_token(token)
                .send()
                .await?;
            groups.extend(page.auto_scaling_groups.unwrap_or_default());
            token = page.next_token;
            if token.is_none() {
                return Ok(groups);
            }
        }
    }

    async fn asg_items(&self, cluster: &str) -> Result<Vec<Item>, Error> {
        let mut items = Vec::new();
        for group in &self.cluster_groups(cluster).await? {
            let name = group
                .auto_scaling_group_name()
                .unwrap_or_default()
                .to_string();
            let group_owned = owned_by(
                &tag_map(
                    group
                        .tags()
                        .iter()
                        .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default())),
                ),
                cluster,
            );
            let mut tag_blocks: Vec<Attrs> = Vec::new();
            let mut hooks = Vec::new();
            for t in group.tags() {
                let key = t.key().unwrap_or_default();
                if let Some(hook) = key.strip_prefix(HOOK_TAG_PREFIX) {
                    hooks.push(hook.to_string());
                    continue;
                }
                tag_blocks.push(kopsrs_model::attrs! {
                    "key" => key,
                    "propagate_at_launch" => t.propagate_at_launch().unwrap_or(false),
                    "value" => t.value().unwrap_or_default(),
                });
            }
            tag_blocks.sort_by(|a, b| a["key"].as_str().cmp(&b["key"].as_str()));
            for hook in hooks {
                items.push(Item {
                    kind: "aws_autoscaling_lifecycle_hook",
                    id: format!("{name}|{hook}"),
                    key: format!("{name}|{hook}"),
                    owned: group_owned,
                    ..Item::default()
                });
            }
            let mut attrs = kopsrs_model::attrs! {
                "max_size" => i64::from(group.max_size().unwrap_or(0)),
                "min_size" => i64::from(group.min_size().unwrap_or(0)),
                "tag" => Value::Blocks(tag_blocks),
            };
            if let Some(lt) = group.launch_template() {
                attrs.insert(
                    "launch_template".into(),
                    Value::block(kopsrs_model::attrs! {
                        "id" => lt.launch_template_id().unwrap_or_default(),
                        "version" => lt.version().unwrap_or_default(),
                    }),
                );
            }
            if let Some(policy) = group.mixed_instances_policy() {
                attrs.insert("mixed_instances_policy".into(), mixed_policy_attrs(policy));
            }
            items.push(Item {
                kind: "aws_autoscaling_group",
                id: name.clone(),
                key: name.clone(),
                owned: group_owned,
                attrs,
                outputs: outputs(&[
                    ("arn", group.auto_scaling_group_arn().unwrap_or_default()),
                    ("name", &name),
                ]),
                parent_owned: false,
            });
        }
        Ok(items)
    }

    async fn elb_items(&self, cluster: &str) -> Result<Vec<Item>, Error> {
        let tag = Self::cluster_tag(cluster);
        let owned = |tags: &BTreeMap<String, String>| owned_by(tags, cluster);
        let lbs = async {
            let mut lbs = Vec::new();
            let mut marker = None;
            loop {
                self.call();
                let page = self
                    .elb
                    .describe_load_balancers()
                    .page_size(400)
                    .set_marker(marker)
                    .send()
                    .await?;
                lbs.extend(page.load_balancers().iter().cloned());
                marker = page.next_marker;
                if marker.is_none() {
                    break Ok::<_, Error>(lbs);
                }
            }
        };
        let tgs = async {
            let mut tgs = Vec::new();
            let mut marker = None;
            loop {
                self.call();
                let page = self
                    .elb
                    .describe_target_groups()
                    .page_size(400)
                    .set_marker(marker)
                    .send()
                    .await?;
                tgs.extend(page.target_groups().iter().cloned());
                marker = page.next_marker;
                if marker.is_none() {
                    break Ok::<_, Error>(tgs);
                }
            }
        };
        let (lbs, tgs) = tokio::try_join!(lbs, tgs)?;
        let arns: Vec<String> = lbs
            .iter()
            .filter_map(|l| l.load_balancer_arn().map(str::to_string))
            .chain(
                tgs.iter()
                    .filter_map(|t| t.target_group_arn().map(str::to_string)),
            )
            .collect();
        let mut tags_by_arn: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for chunk in arns.chunks(20) {
            self.call();
            for description in self
                .elb
                .describe_tags()
                .set_resource_arns(Some(chunk.to_vec()))
                .send()
                .await?
                .tag_descriptions()
            {
                tags_by_arn.insert(
                    description.resource_arn().unwrap_or_default().to_string(),
                    tag_map(
                        description
                            .tags()
                            .iter()
                            .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default())),
                    ),
                );
            }
        }
        let mut items = Vec::new();
        for lb in &lbs {
            let arn = lb.load_balancer_arn().unwrap_or_default();
            let tags = tags_by_arn.get(arn).cloned().unwrap_or_default();
            if !tags.contains_key(&tag) {
                continue;
            }
            // A shared load balancer's listeners are not the cluster's to delete.
            let lb_owned = owned(&tags);
            self.call();
            for listener in self
                .elb
                .describe_listeners()
                .load_balancer_arn(arn)
                .send()
                .await?
                .listeners()
            {
                let port = listener.port().unwrap_or(0);
                items.push(Item {
                    kind: "aws_lb_listener",
                    id: listener.listener_arn().unwrap_or_default().to_string(),
                    key: format!("{arn}|{port}"),
                    owned: lb_owned,
                    parent_owned: lb_owned,
                    ..Item::default()
                });
            }
            items.push(Item {
                kind: "aws_lb",
                id: arn.to_string(),
                key: lb.load_balancer_name().unwrap_or_default().to_string(),
                owned: lb_owned,
                attrs: [("tags".to_string(), tags_value(&tags))].into(),
                outputs: outputs(&[
                    ("arn", arn),
                    ("dns_name", lb.dns_name().unwrap_or_default()),
                    ("zone_id", lb.canonical_hosted_zone_id().unwrap_or_default()),
                ]),
                parent_owned: false,
            });
        }
        for tg in &tgs {
            let arn = tg.target_group_arn().unwrap_or_default();
            let tags = tags_by_arn.get(arn).cloned().unwrap_or_default();
            if !tags.contains_key(&tag) {
                continue;
            }
            items.push(Item {
                kind: "aws_lb_target_group",
                id: arn.to_string(),
                key: tg.target_group_name().unwrap_or_default().to_string(),
                owned: owned(&tags),
                attrs: [("tags".to_string(), tags_value(&tags))].into(),
                outputs: outputs(&[("arn", arn)]),
                parent_owned: false,
            });
        }
        Ok(items)
    }

    /// SQS queues and EventBridge rules (with their targets), by the cluster's name prefix.
    /// A queue's ARN: built from its URL (`.../<account>/<name>`) and the region's partition,
    /// asking SQS only when the URL does not have that form.
    pub(crate) async fn queue_arn(&self, url: &str) -> Result<String, Error> {
        let mut parts = url.rsplit('/');
        if let (Some(name), Some(account)) = (parts.next(), parts.next()) {
            if account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()) {
                let partition = match self.region.as_str() {
                    r if r.starts_with("cn-") => "aws-cn",
                    r if r.starts_with("us-gov-") => "aws-us-gov",
                    _ => "aws",
                };
                return Ok(format!(
                    "arn:{partition}:sqs:{}:{account}:{name}",
                    self.region
                ));
            }
        }
        self.call();
        let attributes = self
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await?;
        Ok(attributes
            .attributes()
            .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
            .cloned()
            .unwrap_or_default())
    }

    async fn misc_items(&self, cluster: &str, desired: &DesiredSet) -> Result<Vec<Item>, Error> {
        // The queue has exactly the name the model gives it; SQS lists by prefix, so names
        // that only start with it (`x-co-nth` for `x.c`) are dropped, and the tag decides
        // between clusters whose names differ only in `.` and `-`.
        let queue_name = kopsrs_model::names::termination_queue(cluster);
        let mut items = Vec::new();
        self.call();
        let queues = self
            .sqs
            .list_queues()
            .queue_name_prefix(&queue_name)
            .send()
            .await?;
        for url in queues.queue_urls() {
            let name = url.rsplit('/').next().unwrap_or_default();
            if name != queue_name {
                continue;
            }
            self.call();
            let tags = self.sqs.list_queue_tags().queue_url(url).send().await?;
            let tags: BTreeMap<String, String> = tags
                .tags()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .collect();
            if !owned_by(&tags, cluster) {
                continue;
            }
            let arn = self.queue_arn(url).await?;
            items.push(Item {
                kind: "aws_sqs_queue",
                id: url.to_string(),
                key: name.to_string(),
                owned: true,
                outputs: outputs(&[("arn", &arn), ("url", url), ("name", name)]),
                ..Item::default()
            });
        }
        let wants_rules = desired.resources.is_empty()
            || desired
                .resources
                .iter()
                .any(|r| r.address.kind == "aws_cloudwatch_event_rule");
        if wants_rules {
            self.call();
            let rules = self
                .events
                .list_rules()
                .name_prefix(format!("{cluster}-"))
                .send()
                .await?;
            // Only the exact names the cluster's rules have (`x.co-...` starts with `x.c`).
            let names = kopsrs_model::names::termination_rules(cluster);
            let per_rule = rules
                .rules()
                .iter()
                .filter(|rule| names.iter().any(|n| Some(n.as_str()) == rule.name()))
                .map(|rule| async move {
                    let name = rule.name().unwrap_or_default();
                    let target = |id: &str, arn: &str| Item {
                        kind: "aws_cloudwatch_event_target",
                        id: format!("{name}|{id}"),
                        key: format!("{name}|{arn}"),
                        owned: true,
                        outputs: outputs(&[("target_id", id)]),
                        ..Item::default()
                    };
                    let recorded = rule
                        .description()
                        .and_then(|d| d.strip_prefix(TARGET_MARK))
                        .and_then(|d| d.split_once(' '));
                    let mut items: Vec<Item> = match recorded {
                        Some((id, arn)) => vec![target(id, arn)],
                        None => {
                            self.call();
                            let targets =
                                self.events.list_targets_by_rule().rule(name).send().await?;
                            targets
                                .targets()
                                .iter()
                                .map(|t| target(t.id(), t.arn()))
                                .collect()
                        }
                    };
                    items.push(Item {
                        kind: "aws_cloudwatch_event_rule",
                        id: name.to_string(),
                        key: name.to_string(),
                        owned: true,
                        outputs: outputs(&[("arn", rule.arn().unwrap_or_default())]),
                        ..Item::default()
                    });
                    Ok::<_, Error>(items)
                });
            items.extend(
                futures::future::try_join_all(per_rule)
                    .await?
                    .into_iter()
                    .flatten(),
            );
        }
        Ok(items)
    }

    async fn route53_items(
        &self,
        wanted: &[serde_json::Map<String, Json>],
    ) -> Result<Vec<Item>, Error> {
        // One call per (zone, name): the A and AAAA records of a name come in one page.
        let mut names: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
        for record in wanted {
            if let (Some(zone), Some(name), Some(kind)) = (
                str_of(record, "zone_id"),
                str_of(record, "name"),
                str_of(record, "type"),
            ) {
                names
                    .entry((zone.to_string(), name.to_string()))
                    .or_default()
                    .insert(kind.to_string());
            }
        }
        let mut items = Vec::new();
        for ((zone, name), kinds) in names {
            self.call();
            let sets = self
                .route53
                .list_resource_record_sets()
                .hosted_zone_id(&zone)
                .start_record_name(&name)
                .max_items(10)
                .send()
                .await?;
            for set in sets.resource_record_sets() {
                let kind = set.r#type().as_str();
                if norm_dns(set.name()) == norm_dns(&name) && kinds.contains(kind) {
                    let key = format!("{zone}|{}|{kind}", norm_dns(&name));
                    items.push(Item {
                        kind: "aws_route53_record",
                        id: key.clone(),
                        key,
                        owned: false,
                        ..Item::default()
                    });
                }
            }
        }
        Ok(items)
    }
}

/// Routes and subnet associations of an owned route table are the cluster's only when they
/// lead to a gateway it owns or attach a subnet it owns. A peering or VPN route a person added
/// to the table, or a subnet of theirs associated with it, is left alone.
fn settle_route_ownership(items: &mut [Item]) {
    let owned_ids: BTreeSet<String> = items
        .iter()
        .filter(|i| i.owned && !matches!(i.kind, "aws_route" | "aws_route_table_association"))
        .map(|i| i.id.clone())
        .collect();
    for item in items.iter_mut() {
        let via = match item.kind {
            "aws_route" => "target",
            "aws_route_table_association" => "subnet",
            _ => continue,
        };
        let leads_to_ours = item
            .outputs
            .get(via)
            .is_some_and(|id| owned_ids.contains(id));
        item.owned = item.owned && leads_to_ours;
        item.outputs.remove(via);
    }
}

fn profile_item(profile: &aws_sdk_iam::types::InstanceProfile, role: &str) -> Item {
    let name = profile.instance_profile_name();
    let role = profile
        .roles()
        .first()
        .map(|r| r.role_name())
        .unwrap_or(role);
    Item {
        kind: "aws_iam_instance_profile",
        id: name.to_string(),
        key: name.to_string(),
        owned: true,
        outputs: outputs(&[("arn", profile.arn()), ("name", name), ("role", role)]),
        ..Item::default()
    }
}

/// IAM returns policy documents URL-encoded (RFC 3986); a few lines rather than a crate.
fn urlencoding_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Discovery {
    /// Adds what field diffs cannot see: launch templates whose content digest differs from
    /// the desired one (a new version), and the groups that must move to that version.
    pub fn complete_plan(&self, plan: &mut Plan, desired: &DesiredSet) {
        let mut changed_templates = Vec::new();
        for resource in &desired.resources {
            if resource.address.kind != "aws_launch_template" {
                continue;
            }
            let Some(before) = self.digests.get(&resource.address) else {
                continue;
            };
            let after = resolve::attrs(&resource.attrs, &self.outputs)
                .map(|r| digest(&r))
                .unwrap_or_else(|_| "(known after apply)".into());
            if &after == before {
                continue;
            }
            changed_templates.push(resource.address.clone());
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
                    address: resource.address.clone(),
                    action: Action::Update,
                    id: self
                        .outputs
                        .get(&resource.address)
                        .and_then(|o| o.get("id"))
                        .cloned(),
                    fields: vec![field],
                }),
            }
        }
        for resource in &desired.resources {
            if resource.address.kind != "aws_autoscaling_group" {
                continue;
            }
            let uses_changed = resource
                .dependencies()
                .iter()
                .any(|d| changed_templates.contains(d));
            if !uses_changed || !self.outputs.contains_key(&resource.address) {
                continue;
            }
            if plan.changes.iter().any(|c| c.address == resource.address) {
                continue;
            }
            plan.changes.push(Change {
                address: resource.address.clone(),
                action: Action::Update,
                id: self
                    .outputs
                    .get(&resource.address)
                    .and_then(|o| o.get("id"))
                    .cloned(),
                fields: vec![FieldChange {
                    path: "launch_template[0].version".into(),
                    before: None,
                    after: Some("(new version)".into()),
                    forces_replacement: false,
                }],
            });
        }
        plan.changes.sort_by(|a, b| a.address.cmp(&b.address));
        plan.left = self.left.clone();
        plan.left.sort();
    }
}

/// A group's mixed-instances policy in the model's shape (what the plan compares: the
/// launch template and its version, the instance types, the distribution).
fn mixed_policy_attrs(policy: &aws_sdk_autoscaling::types::MixedInstancesPolicy) -> Value {
    let lt = policy.launch_template();
    let spec = lt.and_then(|l| l.launch_template_specification());
    let overrides: Vec<Attrs> = lt
        .map(|l| l.overrides())
        .unwrap_or_default()
        .iter()
        .map(|o| kopsrs_model::attrs! { "instance_type" => o.instance_type().unwrap_or_default() })
        .collect();
    let mut distribution = Attrs::new();
    if let Some(d) = policy.instances_distribution() {
        let mut put = |k: &str, v: Value| {
            distribution.insert(k.to_string(), v);
        };
        put(
            "on_demand_base_capacity",
            Value::Int(d.on_demand_base_capacity().unwrap_or(0).into()),
        );
        if let Some(v) = d.on_demand_percentage_above_base_capacity() {
            put(
                "on_demand_percentage_above_base_capacity",
                Value::Int(v.into()),
            );
        }
        if let Some(v) = d.spot_allocation_strategy() {
            put("spot_allocation_strategy", Value::str(v));
        }
        if let Some(v) = d.spot_instance_pools() {
            put("spot_instance_pools", Value::Int(v.into()));
        }
        // Left out: capped at the on-demand price, which the model writes as "".
        put(
            "spot_max_price",
            Value::str(d.spot_max_price().unwrap_or_default()),
        );
    }
    Value::block(kopsrs_model::attrs! {
        "instances_distribution" => Value::block(distribution),
        "launch_template" => Value::block(kopsrs_model::attrs! {
            "launch_template_specification" => Value::block(kopsrs_model::attrs! {
                "launch_template_id" => spec.and_then(|s| s.launch_template_id()).unwrap_or_default(),
                "version" => spec.and_then(|s| s.version()).unwrap_or_default(),
            }),
            "override" => Value::Blocks(overrides),
        }),
    })
}

/// The launch-template specification inside an observed `mixed_instances_policy`.
fn mixed_policy_spec(attrs: &mut Attrs) -> Option<&mut Attrs> {
    fn first(v: &mut Value) -> Option<&mut Attrs> {
        match v {
            Value::Blocks(b) => b.first_mut(),
            _ => None,
        }
    }
    let policy = first(attrs.get_mut("mixed_instances_policy")?)?;
    let lt = first(policy.get_mut("launch_template")?)?;
    first(lt.get_mut("launch_template_specification")?)
}

/// A group's launch-template version, as the reference the model writes when it is the
/// template's latest (so a group on the latest version shows no change).
fn latest_version_as_reference(block: &mut Attrs, id_key: &str, outputs: &Outputs) {
    let (Some(Value::Str(lt_id)), Some(Value::Str(version))) =
        (block.get(id_key).cloned(), block.get("version").cloned())
    else {
        return;
    };
    let lt = outputs
        .iter()
        .find(|(a, o)| a.kind == "aws_launch_template" && o.get("id") == Some(&lt_id));
    if let Some((address, o)) = lt {
        if o.get("latest_version") == Some(&version) {
            block.insert("version".into(), address.attr("latest_version"));
        }
    }
}
