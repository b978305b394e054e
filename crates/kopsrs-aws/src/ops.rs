//! Applying a plan: create, update and delete calls per kind, run through the engine's
//! executor (dependency order, bounded concurrency, retries).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_sdk_ec2::types as ec2t;
use kopsrs_engine::{execute, Action, Change, Event, ExecError, ExecOptions, Plan, Task};
use kopsrs_model::{Address, DesiredSet};
use serde_json::{Map, Value as Json};

use crate::discover::{
    attachment_tag, desired_key, digest, Discovery, DIGEST_TAG, HOOK_TAG_PREFIX, KIND_ORDER,
    TARGET_MARK,
};
use crate::resolve::{self, block, blocks, bool_of, int_of, str_of, strs_of};
use crate::{Aws, Error, Outputs};

type R = Map<String, Json>;

/// What an apply did.
#[derive(Debug, Default)]
pub struct ApplyReport {
    pub done: usize,
    pub attempts: u32,
    /// Changes on the longest chain (dependency graph, then one per deletion wave): with a
    /// fixed latency per change no schedule is faster; benchmarks compare wall time with it.
    pub critical_path: usize,
    /// The same chain weighted by how long each change took: the wall time an unlimited
    /// concurrency would have needed for these changes.
    pub critical_path_time: std::time::Duration,
}

fn rank(kind: &str) -> usize {
    KIND_ORDER
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(KIND_ORDER.len())
}

fn ec2_tags(
    resource_type: ec2t::ResourceType,
    tags: &BTreeMap<String, String>,
) -> ec2t::TagSpecification {
    ec2t::TagSpecification::builder()
        .resource_type(resource_type)
        .set_tags(Some(
            tags.iter()
                .map(|(k, v)| ec2t::Tag::builder().key(k).value(v).build())
                .collect(),
        ))
        .build()
}

fn out(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Applies `plan` (from [`kopsrs_engine::diff`] and [`Discovery::complete_plan`]): creations
/// and updates in dependency order, then deletions in reverse dependency order.
pub async fn apply(
    aws: &Aws,
    desired: &DesiredSet,
    discovery: &Discovery,
    plan: &Plan,
    options: &ExecOptions,
    mut progress: impl FnMut(&Change, Event),
) -> Result<ApplyReport, ExecError<Error>> {
    let outputs = Arc::new(Mutex::new(discovery.outputs.clone()));
    let by_address: BTreeMap<&Address, &kopsrs_model::Resource> =
        desired.resources.iter().map(|r| (&r.address, r)).collect();
    let forward: Vec<&Change> = plan
        .changes
        .iter()
        .filter(|c| c.action != Action::Delete)
        .collect();
    let index: BTreeMap<&Address, usize> = forward
        .iter()
        .enumerate()
        .map(|(i, c)| (&c.address, i))
        .collect();
    let tasks: Vec<Task<usize>> = forward
        .iter()
        .enumerate()
        .map(|(i, change)| Task {
            key: i,
            deps: by_address
                .get(&change.address)
                .map(|r| {
                    r.dependencies()
                        .into_iter()
                        .filter_map(|d| index.get(d).copied())
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect();
    let mut report = ApplyReport {
        critical_path: kopsrs_engine::critical_path(&tasks),
        ..ApplyReport::default()
    };
    let cluster = desired.cluster_name.as_str();
    let run = |i: &usize, _attempt: u32| {
        let change = forward[*i];
        let resource = by_address.get(&change.address).copied();
        let outputs = outputs.clone();
        async move {
            let resource = resource
                .ok_or_else(|| Error::permanent(format!("{} is not desired", change.address)))?;
            let snapshot = outputs.lock().unwrap().clone();
            let resolved = resolve::attrs(&resource.attrs, &snapshot)?;
            let kind = change.address.kind.as_str();
            let new = match change.action {
                Action::Create => {
                    aws.create(cluster, kind, &change.address, &resolved, &snapshot)
                        .await?
                }
                Action::Replace => {
                    if let Some(id) = &change.id {
                        let item = discovery.items.get(&change.address);
                        aws.delete(kind, id, item.map(|i| &i.outputs)).await?;
                    }
                    aws.create(cluster, kind, &change.address, &resolved, &snapshot)
                        .await?
                }
                Action::Update => {
                    let id = change.id.clone().unwrap_or_default();
                    aws.update(kind, &id, change, &resolved, &snapshot).await?
                }
                Action::Delete => unreachable!(),
            };
            let mut all = outputs.lock().unwrap();
            let entry = all.entry(change.address.clone()).or_default();
            entry.extend(new);
            Ok::<(), Error>(())
        }
    };
    let run = |i: &usize, attempt: u32| {
        let address = &forward[*i].address;
        let fut = run(i, attempt);
        async move { fut.await.map_err(|e| e.at(address)) }
    };
    let summary = execute(&tasks, options, run, |e| {
        let task = match &e {
            Event::Started { task }
            | Event::Retrying { task, .. }
            | Event::Done { task, .. }
            | Event::Failed { task, .. } => *task,
        };
        progress(forward[task], e);
    })
    .await?;
    report.done += summary.done;
    report.attempts += summary.attempts;
    report.critical_path_time = kopsrs_engine::critical_path_time(&tasks, &summary.elapsed);

    // Deletions, children before parents: one wave per kind, in reverse creation order.
    let mut deletions: Vec<&Change> = plan
        .changes
        .iter()
        .filter(|c| c.action == Action::Delete)
        .collect();
    deletions.sort_by_key(|c| std::cmp::Reverse(rank(&c.address.kind)));
    let mut start = 0;
    while start < deletions.len() {
        let kind_rank = rank(&deletions[start].address.kind);
        let end = deletions[start..]
            .iter()
            .position(|c| rank(&c.address.kind) != kind_rank)
            .map(|p| start + p)
            .unwrap_or(deletions.len());
        let wave = &deletions[start..end];
        let tasks: Vec<Task<usize>> = (0..wave.len())
            .map(|i| Task {
                key: i,
                deps: vec![],
            })
            .collect();
        let run = |i: &usize, _attempt: u32| {
            let change = wave[*i];
            async move {
                let item = discovery.items.get(&change.address);
                aws.delete(
                    &change.address.kind,
                    change.id.as_deref().unwrap_or_default(),
                    item.map(|i| &i.outputs),
                )
                .await
                .map_err(|e| e.at(&change.address))
            }
        };
        let summary = execute(&tasks, options, run, |e| {
            let task = match &e {
                Event::Started { task }
                | Event::Retrying { task, .. }
                | Event::Done { task, .. }
                | Event::Failed { task, .. } => *task,
            };
            progress(wave[task], e);
        })
        .await?;
        report.done += summary.done;
        report.attempts += summary.attempts;
        report.critical_path += 1;
        report.critical_path_time += summary.elapsed.iter().max().copied().unwrap_or_default();
        start = end;
    }
    Ok(report)
}

/// Deletes everything the cluster owns (what `discover` finds with an empty desired set).
pub async fn destroy(
    aws: &Aws,
    discovery: &Discovery,
    options: &ExecOptions,
    progress: impl FnMut(&Change, Event),
) -> Result<ApplyReport, ExecError<Error>> {
    let plan = Plan {
        left: Vec::new(),
        changes: discovery
            .observed
            .iter()
            .map(|o| Change {
                address: o.resource.address.clone(),
                action: Action::Delete,
                id: Some(o.id.clone()),
                fields: vec![],
            })
            .collect(),
    };
    apply(
        aws,
        &DesiredSet::default(),
        discovery,
        &plan,
        options,
        progress,
    )
    .await
}

impl Aws {
    async fn create(
        &self,
        cluster: &str,
        kind: &str,
        address: &Address,
        r: &R,
        outputs: &Outputs,
    ) -> Result<BTreeMap<String, String>, Error> {
        let tags = resolve::tags(r);
        let s = |k: &str| str_of(r, k).unwrap_or_default().to_string();
        self.call();
        match kind {
            "aws_vpc" => {
                let vpc = self
                    .ec2
                    .create_vpc()
                    .cidr_block(s("cidr_block"))
                    .set_amazon_provided_ipv6_cidr_block(bool_of(
                        r,
                        "assign_generated_ipv6_cidr_block",
                    ))
                    .tag_specifications(ec2_tags(ec2t::ResourceType::Vpc, &tags))
                    .send()
                    .await?
                    .vpc
                    .ok_or_else(|| Error::permanent("CreateVpc returned no VPC"))?;
                let id = vpc.vpc_id().unwrap_or_default().to_string();
                // One attribute per call (an EC2 rule); both at once.
                let attribute = |hostnames: bool| {
                    let id = &id;
                    async move {
                        let attr = match hostnames {
                            true => "enable_dns_hostnames",
                            false => "enable_dns_support",
                        };
                        if bool_of(r, attr) != Some(true) {
                            return Ok::<_, Error>(());
                        }
                        self.call();
                        let value = ec2t::AttributeBooleanValue::builder().value(true).build();
                        let request = self.ec2.modify_vpc_attribute().vpc_id(id);
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
                Ok(out(&[
                    ("id", &id),
                    ("cidr_block", &s("cidr_block")),
                    ("ipv6_cidr_block", &ipv6),
                ]))
            }
            "aws_vpc_dhcp_options" => {
                let mut configs = Vec::new();
                if let Some(domain) = str_of(r, "domain_name") {
                    configs.push(
                        ec2t::NewDhcpConfiguration::builder()
                            .key("domain-name")
                            .values(domain)
                            .build(),
                    );
                }
                let servers = strs_of(r, "domain_name_servers");
                if !servers.is_empty() {
                    configs.push(
                        ec2t::NewDhcpConfiguration::builder()
                            .key("domain-name-servers")
                            .set_values(Some(servers))
                            .build(),
                    );
                }
                let options = self
                    .ec2
                    .create_dhcp_options()
                    .set_dhcp_configurations(Some(configs))
                    .tag_specifications(ec2_tags(ec2t::ResourceType::DhcpOptions, &tags))
                    .send()
                    .await?;
                let id = options
                    .dhcp_options()
                    .and_then(|d| d.dhcp_options_id())
                    .unwrap_or_default();
                // AWS applies TagSpecifications here; moto does not, so tag again (idempotent).
                self.tag_ec2(id, &tags, &[]).await?;
                Ok(out(&[("id", id)]))
            }
            "aws_vpc_dhcp_options_association" => {
                self.ec2
                    .associate_dhcp_options()
                    .vpc_id(s("vpc_id"))
                    .dhcp_options_id(s("dhcp_options_id"))
                    .send()
                    .await?;
                Ok(out(&[(
                    "id",
                    &format!("{}|{}", s("vpc_id"), s("dhcp_options_id")),
                )]))
            }
            "aws_internet_gateway" => {
                let igw = self
                    .ec2
                    .create_internet_gateway()
                    .tag_specifications(ec2_tags(ec2t::ResourceType::InternetGateway, &tags))
                    .send()
                    .await?;
                let id = igw
                    .internet_gateway()
                    .and_then(|g| g.internet_gateway_id())
                    .unwrap_or_default()
                    .to_string();
                if let Some(vpc) = str_of(r, "vpc_id") {
                    self.call();
                    self.ec2
                        .attach_internet_gateway()
                        .internet_gateway_id(&id)
                        .vpc_id(vpc)
                        .send()
                        .await?;
                }
                Ok(out(&[("id", &id)]))
            }
            "aws_egress_only_internet_gateway" => {
                let igw = self
                    .ec2
                    .create_egress_only_internet_gateway()
                    .vpc_id(s("vpc_id"))
                    .tag_specifications(ec2_tags(
                        ec2t::ResourceType::EgressOnlyInternetGateway,
                        &tags,
                    ))
                    .send()
                    .await?;
                let id = igw
                    .egress_only_internet_gateway()
                    .and_then(|g| g.egress_only_internet_gateway_id())
                    .unwrap_or_default();
                Ok(out(&[("id", id)]))
            }
            "aws_subnet" => {
                let subnet = self
                    .ec2
                    .create_subnet()
                    .vpc_id(s("vpc_id"))
                    .set_cidr_block(str_of(r, "cidr_block").map(str::to_string))
                    .set_ipv6_cidr_block(str_of(r, "ipv6_cidr_block").map(str::to_string))
                    .set_ipv6_native(bool_of(r, "ipv6_native"))
                    .availability_zone(s("availability_zone"))
                    .tag_specifications(ec2_tags(ec2t::ResourceType::Subnet, &tags))
                    .send()
                    .await?
                    .subnet
                    .ok_or_else(|| Error::permanent("CreateSubnet returned no subnet"))?;
                Ok(out(&[
                    ("id", subnet.subnet_id().unwrap_or_default()),
                    ("arn", subnet.subnet_arn().unwrap_or_default()),
                ]))
            }
            "aws_route_table" => {
                let table = self
                    .ec2
                    .create_route_table()
                    .vpc_id(s("vpc_id"))
                    .tag_specifications(ec2_tags(ec2t::ResourceType::RouteTable, &tags))
                    .send()
                    .await?;
                Ok(out(&[(
                    "id",
                    table
                        .route_table()
                        .and_then(|t| t.route_table_id())
                        .unwrap_or_default(),
                )]))
            }
            "aws_route" => {
                let mut request = self
                    .ec2
                    .create_route()
                    .route_table_id(s("route_table_id"))
                    .set_destination_cidr_block(
                        str_of(r, "destination_cidr_block").map(str::to_string),
                    )
                    .set_destination_ipv6_cidr_block(
                        str_of(r, "destination_ipv6_cidr_block").map(str::to_string),
                    )
                    .set_nat_gateway_id(str_of(r, "nat_gateway_id").map(str::to_string))
                    .set_transit_gateway_id(str_of(r, "transit_gateway_id").map(str::to_string))
                    .set_egress_only_internet_gateway_id(
                        str_of(r, "egress_only_gateway_id").map(str::to_string),
                    );
                if let Some(gw) = str_of(r, "gateway_id") {
                    request = request.gateway_id(gw);
                }
                match request.send().await {
                    Ok(_) => {}
                    // A route created by a run that was killed before it recorded it.
                    Err(e) => {
                        let e = Error::from(e);
                        if !e.is("RouteAlreadyExists") {
                            return Err(e);
                        }
                    }
                }
                let dest = str_of(r, "destination_cidr_block")
                    .or(str_of(r, "destination_ipv6_cidr_block"))
                    .unwrap_or_default();
                Ok(out(&[("id", &format!("{}|{dest}", s("route_table_id")))]))
            }
            "aws_route_table_association" => {
                let assoc = self
                    .ec2
                    .associate_route_table()
                    .route_table_id(s("route_table_id"))
                    .subnet_id(s("subnet_id"))
                    .send()
                    .await?;
                Ok(out(&[("id", assoc.association_id().unwrap_or_default())]))
            }
            "aws_eip" => {
                let eip = self
                    .ec2
                    .allocate_address()
                    .domain(ec2t::DomainType::Vpc)
                    .tag_specifications(ec2_tags(ec2t::ResourceType::ElasticIp, &tags))
                    .send()
                    .await?;
                Ok(out(&[
                    ("id", eip.allocation_id().unwrap_or_default()),
                    ("public_ip", eip.public_ip().unwrap_or_default()),
                ]))
            }
            "aws_nat_gateway" => {
                let nat = self
                    .ec2
                    .create_nat_gateway()
                    .subnet_id(s("subnet_id"))
                    .allocation_id(s("allocation_id"))
                    .client_token(client_token(address, r))
                    .tag_specifications(ec2_tags(ec2t::ResourceType::Natgateway, &tags))
                    .send()
                    .await?;
                Ok(out(&[(
                    "id",
                    nat.nat_gateway()
                        .and_then(|n| n.nat_gateway_id())
                        .unwrap_or_default(),
                )]))
            }
            "aws_security_group" => {
                let group = self
                    .ec2
                    .create_security_group()
                    .group_name(s("name"))
                    .description(s("description"))
                    .vpc_id(s("vpc_id"))
                    .tag_specifications(ec2_tags(ec2t::ResourceType::SecurityGroup, &tags))
                    .send()
                    .await?;
                Ok(out(&[
                    ("id", group.group_id().unwrap_or_default()),
                    ("name", &s("name")),
                ]))
            }
            "aws_security_group_rule" => {
                let protocol = s("protocol");
                let mut permission = ec2t::IpPermission::builder().ip_protocol(&protocol);
                // Ports are ignored by EC2 for protocols without them (IPIP is "4"), but sent
                // as kops writes them (0-0) for every protocol except "all".
                if !matches!(protocol.as_str(), "-1" | "all") {
                    permission = permission
                        .from_port(int_of(r, "from_port").unwrap_or(0) as i32)
                        .to_port(int_of(r, "to_port").unwrap_or(0) as i32);
                }
                for cidr in strs_of(r, "cidr_blocks") {
                    permission =
                        permission.ip_ranges(ec2t::IpRange::builder().cidr_ip(cidr).build());
                }
                for cidr in strs_of(r, "ipv6_cidr_blocks") {
                    permission =
                        permission.ipv6_ranges(ec2t::Ipv6Range::builder().cidr_ipv6(cidr).build());
                }
                for list in strs_of(r, "prefix_list_ids") {
                    permission = permission.prefix_list_ids(
                        ec2t::PrefixListId::builder().prefix_list_id(list).build(),
                    );
                }
                if let Some(source) = str_of(r, "source_security_group_id") {
                    permission = permission.user_id_group_pairs(
                        ec2t::UserIdGroupPair::builder().group_id(source).build(),
                    );
                }
                let permission = permission.build();
                // Tagged as the cluster's: only tagged rules are ever revoked, so rules the
                // cloud controller or a person adds to the cluster's groups stay.
                let owner = ec2_tags(ec2t::ResourceType::SecurityGroupRule, &owner_tags(cluster));
                let result = if s("type") == "egress" {
                    self.ec2
                        .authorize_security_group_egress()
                        .group_id(s("security_group_id"))
                        .ip_permissions(permission)
                        .tag_specifications(owner)
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(Error::from)
                } else {
                    self.ec2
                        .authorize_security_group_ingress()
                        .group_id(s("security_group_id"))
                        .ip_permissions(permission)
                        .tag_specifications(owner)
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(Error::from)
                };
                match result {
                    // AWS's default egress rule, or one a killed run created: the rule exists.
                    Err(e) if e.is("InvalidPermission.Duplicate") => {}
                    other => other?,
                }
                Ok(out(&[("id", &desired_key(kind, r).unwrap_or_default())]))
            }
            "aws_key_pair" => {
                let key = self
                    .ec2
                    .import_key_pair()
                    .key_name(s("key_name"))
                    .public_key_material(aws_smithy_types::Blob::new(s("public_key").into_bytes()))
                    .tag_specifications(ec2_tags(ec2t::ResourceType::KeyPair, &tags))
                    .send()
                    .await?;
                Ok(out(&[
                    ("id", key.key_name().unwrap_or_default()),
                    ("key_pair_id", key.key_pair_id().unwrap_or_default()),
                ]))
            }
            "aws_ebs_volume" => {
                let volume = self
                    .ec2
                    .create_volume()
                    .availability_zone(s("availability_zone"))
                    .set_size(int_of(r, "size").map(|v| v as i32))
                    .set_iops(int_of(r, "iops").map(|v| v as i32))
                    .set_throughput(int_of(r, "throughput").map(|v| v as i32))
                    .set_encrypted(bool_of(r, "encrypted"))
                    .set_kms_key_id(str_of(r, "kms_key_id").map(str::to_string))
                    .set_volume_type(str_of(r, "type").map(ec2t::VolumeType::from))
                    .client_token(client_token(address, r))
                    .tag_specifications(ec2_tags(ec2t::ResourceType::Volume, &tags))
                    .send()
                    .await?;
                Ok(out(&[("id", volume.volume_id().unwrap_or_default())]))
            }
            "aws_launch_template" => {
                let data = launch_template_data(r);
                let mut all_tags = tags.clone();
                all_tags.insert(DIGEST_TAG.into(), digest(r));
                let lt = self
                    .ec2
                    .create_launch_template()
                    .launch_template_name(s("name"))
                    .launch_template_data(data)
                    .client_token(client_token(address, r))
                    .tag_specifications(ec2_tags(ec2t::ResourceType::LaunchTemplate, &all_tags))
                    .send()
                    .await?
                    .launch_template
                    .ok_or_else(|| Error::permanent("CreateLaunchTemplate returned no template"))?;
                Ok(out(&[
                    ("id", lt.launch_template_id().unwrap_or_default()),
                    (
                        "latest_version",
                        &lt.latest_version_number().unwrap_or(1).to_string(),
                    ),
                    ("name", &s("name")),
                ]))
            }
            "aws_iam_role" => {
                let role = self
                    .iam
                    .create_role()
                    .role_name(s("name"))
                    .assume_role_policy_document(s("assume_role_policy"))
                    .set_permissions_boundary(str_of(r, "permissions_boundary").map(str::to_string))
                    .set_tags(Some(iam_tags(&tags)?))
                    .send()
                    .await;
                let role = match role {
                    Ok(created) => created
                        .role
                        .ok_or_else(|| Error::permanent("CreateRole returned no role"))?,
                    Err(e) => {
                        let e = Error::from(e);
                        if !e.is("EntityAlreadyExists") {
                            return Err(e);
                        }
                        self.call();
                        self.iam
                            .get_role()
                            .role_name(s("name"))
                            .send()
                            .await?
                            .role
                            .ok_or_else(|| Error::permanent("GetRole returned no role"))?
                    }
                };
                Ok(out(&[
                    ("id", role.role_name()),
                    ("name", role.role_name()),
                    ("arn", role.arn()),
                ]))
            }
            "aws_iam_role_policy" => {
                self.iam
                    .put_role_policy()
                    .role_name(s("role"))
                    .policy_name(s("name"))
                    .policy_document(s("policy"))
                    .send()
                    .await?;
                Ok(out(&[("id", &format!("{}:{}", s("role"), s("name")))]))
            }
            "aws_iam_role_policy_attachment" => {
                self.iam
                    .attach_role_policy()
                    .role_name(s("role"))
                    .policy_arn(s("policy_arn"))
                    .send()
                    .await?;
                // Recorded on the role after it exists (attachments have no tags): only
                // recorded attachments are ever detached.
                self.call();
                self.iam
                    .tag_role()
                    .role_name(s("role"))
                    .tags(
                        aws_sdk_iam::types::Tag::builder()
                            .key(attachment_tag(&s("policy_arn")))
                            .value(s("policy_arn"))
                            .build()?,
                    )
                    .send()
                    .await?;
                Ok(out(&[(
                    "id",
                    &format!("{}|{}", s("role"), s("policy_arn")),
                )]))
            }
            "aws_iam_instance_profile" => {
                let created = self
                    .iam
                    .create_instance_profile()
                    .instance_profile_name(s("name"))
                    .set_tags(Some(iam_tags(&tags)?))
                    .send()
                    .await;
                let arn = match created {
                    Ok(p) => p
                        .instance_profile
                        .map(|p| p.arn().to_string())
                        .unwrap_or_default(),
                    Err(e) => {
                        let e = Error::from(e);
                        if !e.is("EntityAlreadyExists") {
                            return Err(e);
                        }
                        String::new()
                    }
                };
                if let Some(role) = str_of(r, "role") {
                    self.call();
                    match self
                        .iam
                        .add_role_to_instance_profile()
                        .instance_profile_name(s("name"))
                        .role_name(role)
                        .send()
                        .await
                    {
                        Ok(_) => {}
                        Err(e) => {
                            let e = Error::from(e);
                            if !e.is("LimitExceeded") {
                                return Err(e);
                            }
                        }
                    }
                }
                Ok(out(&[
                    ("id", &s("name")),
                    ("name", &s("name")),
                    ("arn", &arn),
                ]))
            }
            "aws_iam_openid_connect_provider" => {
                let provider = self
                    .iam
                    .create_open_id_connect_provider()
                    .url(s("url"))
                    .set_client_id_list(Some(strs_of(r, "client_id_list")))
                    .set_thumbprint_list(Some(strs_of(r, "thumbprint_list")))
                    .set_tags(Some(iam_tags(&tags)?))
                    .send()
                    .await?;
                let arn = provider.open_id_connect_provider_arn().unwrap_or_default();
                Ok(out(&[("id", arn), ("arn", arn)]))
            }
            "aws_autoscaling_group" => {
                let lt = block(r, "launch_template");
                let mut request = self
                    .autoscaling
                    .create_auto_scaling_group()
                    .auto_scaling_group_name(s("name"))
                    .min_size(int_of(r, "min_size").unwrap_or(0) as i32)
                    .max_size(int_of(r, "max_size").unwrap_or(0) as i32)
                    .vpc_zone_identifier(strs_of(r, "vpc_zone_identifier").join(","))
                    .set_target_group_arns(
                        Some(strs_of(r, "target_group_arns")).filter(|v| !v.is_empty()),
                    )
                    .set_max_instance_lifetime(
                        int_of(r, "max_instance_lifetime")
                            .filter(|v| *v > 0)
                            .map(|v| v as i32),
                    )
                    .set_new_instances_protected_from_scale_in(bool_of(r, "protect_from_scale_in"));
                if let Some(lt) = lt {
                    request = request.launch_template(launch_template_spec(lt, "id", "version"));
                }
                request = request
                    .set_mixed_instances_policy(mixed_instances_policy(r))
                    .set_capacity_rebalance(bool_of(r, "capacity_rebalance"));
                for tag in blocks(r, "tag") {
                    request = request.tags(
                        aws_sdk_autoscaling::types::Tag::builder()
                            .key(str_of(tag, "key").unwrap_or_default())
                            .value(str_of(tag, "value").unwrap_or_default())
                            .propagate_at_launch(
                                bool_of(tag, "propagate_at_launch").unwrap_or(true),
                            )
                            .resource_id(s("name"))
                            .resource_type("auto-scaling-group")
                            .build(),
                    );
                }
                match request.send().await {
                    Ok(_) => {}
                    Err(e) => {
                        let e = Error::from(e);
                        // Created by a run that was killed before it recorded it.
                        if !e.is("AlreadyExists") {
                            return Err(e);
                        }
                    }
                }
                self.group_settings(&s("name"), r).await?;
                Ok(out(&[("id", &s("name")), ("name", &s("name"))]))
            }
            "aws_autoscaling_lifecycle_hook" => {
                let group = s("autoscaling_group_name");
                self.autoscaling
                    .put_lifecycle_hook()
                    .auto_scaling_group_name(&group)
                    .lifecycle_hook_name(s("name"))
                    .set_lifecycle_transition(str_of(r, "lifecycle_transition").map(str::to_string))
                    .set_default_result(str_of(r, "default_result").map(str::to_string))
                    .set_heartbeat_timeout(int_of(r, "heartbeat_timeout").map(|v| v as i32))
                    .send()
                    .await?;
                self.record_hook(&group, &s("name"), true).await?;
                Ok(out(&[("id", &format!("{group}|{}", s("name")))]))
            }
            "aws_lb" => {
                let mut request = self
                    .elb
                    .create_load_balancer()
                    .name(s("name"))
                    .r#type(aws_sdk_elasticloadbalancingv2::types::LoadBalancerTypeEnum::from(
                        str_of(r, "load_balancer_type").unwrap_or("network"),
                    ))
                    .scheme(if bool_of(r, "internal") == Some(true) {
                        aws_sdk_elasticloadbalancingv2::types::LoadBalancerSchemeEnum::Internal
                    } else {
                        aws_sdk_elasticloadbalancingv2::types::LoadBalancerSchemeEnum::InternetFacing
                    })
                    .set_security_groups(Some(strs_of(r, "security_groups")).filter(|v| !v.is_empty()))
                    .set_ip_address_type(
                        str_of(r, "ip_address_type")
                            .map(aws_sdk_elasticloadbalancingv2::types::IpAddressType::from),
                    );
                for mapping in blocks(r, "subnet_mapping") {
                    request = request.subnet_mappings(
                        aws_sdk_elasticloadbalancingv2::types::SubnetMapping::builder()
                            .set_subnet_id(str_of(mapping, "subnet_id").map(str::to_string))
                            .set_allocation_id(str_of(mapping, "allocation_id").map(str::to_string))
                            .set_private_ipv4_address(
                                str_of(mapping, "private_ipv4_address").map(str::to_string),
                            )
                            .build(),
                    );
                }
                for (k, v) in &tags {
                    request = request.tags(
                        aws_sdk_elasticloadbalancingv2::types::Tag::builder()
                            .key(k)
                            .value(v)
                            .build(),
                    );
                }
                let lb = request.send().await?;
                let lb = lb
                    .load_balancers()
                    .first()
                    .ok_or_else(|| Error::permanent("CreateLoadBalancer returned nothing"))?;
                let arn = lb.load_balancer_arn().unwrap_or_default();
                Ok(out(&[
                    ("id", arn),
                    ("arn", arn),
                    ("dns_name", lb.dns_name().unwrap_or_default()),
                    ("zone_id", lb.canonical_hosted_zone_id().unwrap_or_default()),
                ]))
            }
            "aws_lb_target_group" => {
                use aws_sdk_elasticloadbalancingv2::types as elbt;
                let health = block(r, "health_check");
                let mut request = self
                    .elb
                    .create_target_group()
                    .name(s("name"))
                    .protocol(elbt::ProtocolEnum::from(
                        str_of(r, "protocol").unwrap_or("TCP"),
                    ))
                    .set_port(int_of(r, "port").map(|v| v as i32))
                    .set_vpc_id(str_of(r, "vpc_id").map(str::to_string))
                    .target_type(elbt::TargetTypeEnum::Instance);
                if let Some(h) = health {
                    request = request
                        .set_health_check_protocol(
                            str_of(h, "protocol").map(elbt::ProtocolEnum::from),
                        )
                        .set_health_check_interval_seconds(int_of(h, "interval").map(|v| v as i32))
                        .set_healthy_threshold_count(
                            int_of(h, "healthy_threshold").map(|v| v as i32),
                        )
                        .set_unhealthy_threshold_count(
                            int_of(h, "unhealthy_threshold").map(|v| v as i32),
                        );
                }
                for (k, v) in &tags {
                    request = request.tags(elbt::Tag::builder().key(k).value(v).build());
                }
                let tg = request.send().await?;
                let arn = tg
                    .target_groups()
                    .first()
                    .and_then(|t| t.target_group_arn())
                    .unwrap_or_default();
                Ok(out(&[("id", arn), ("arn", arn)]))
            }
            "aws_lb_listener" => {
                use aws_sdk_elasticloadbalancingv2::types as elbt;
                let mut request = self
                    .elb
                    .create_listener()
                    .load_balancer_arn(s("load_balancer_arn"))
                    .set_port(int_of(r, "port").map(|v| v as i32))
                    .protocol(elbt::ProtocolEnum::from(
                        str_of(r, "protocol").unwrap_or("TCP"),
                    ))
                    .set_certificates(
                        str_of(r, "certificate_arn")
                            .map(|c| vec![elbt::Certificate::builder().certificate_arn(c).build()]),
                    )
                    .set_ssl_policy(str_of(r, "ssl_policy").map(str::to_string));
                for action in blocks(r, "default_action") {
                    request = request.default_actions(
                        elbt::Action::builder()
                            .r#type(elbt::ActionTypeEnum::Forward)
                            .set_target_group_arn(
                                str_of(action, "target_group_arn").map(str::to_string),
                            )
                            .build(),
                    );
                }
                let listener = request.send().await?;
                let arn = listener
                    .listeners()
                    .first()
                    .and_then(|l| l.listener_arn())
                    .unwrap_or_default();
                Ok(out(&[("id", arn), ("arn", arn)]))
            }
            "aws_sqs_queue" => {
                let mut request = self.sqs.create_queue().queue_name(s("name"));
                if let Some(retention) = int_of(r, "message_retention_seconds") {
                    request = request.attributes(
                        aws_sdk_sqs::types::QueueAttributeName::MessageRetentionPeriod,
                        retention.to_string(),
                    );
                }
                if let Some(policy) = str_of(r, "policy") {
                    request =
                        request.attributes(aws_sdk_sqs::types::QueueAttributeName::Policy, policy);
                }
                for (k, v) in &tags {
                    request = request.tags(k, v);
                }
                let url = request.send().await?.queue_url.unwrap_or_default();
                let arn = self.queue_arn(&url).await?;
                Ok(out(&[
                    ("id", &url),
                    ("url", &url),
                    ("arn", &arn),
                    ("name", &s("name")),
                ]))
            }
            "aws_cloudwatch_event_rule" => {
                let mut request = self
                    .events
                    .put_rule()
                    .name(s("name"))
                    .set_event_pattern(str_of(r, "event_pattern").map(str::to_string));
                for (k, v) in &tags {
                    request = request.tags(
                        aws_sdk_eventbridge::types::Tag::builder()
                            .key(k)
                            .value(v)
                            .build()?,
                    );
                }
                let rule = request.send().await?;
                Ok(out(&[
                    ("id", &s("name")),
                    ("arn", rule.rule_arn().unwrap_or_default()),
                ]))
            }
            "aws_cloudwatch_event_target" => {
                let target_id = address.name.chars().take(64).collect::<String>();
                let put = async {
                    self.events
                        .put_targets()
                        .rule(s("rule"))
                        .targets(
                            aws_sdk_eventbridge::types::Target::builder()
                                .id(&target_id)
                                .arn(s("arn"))
                                .build()?,
                        )
                        .send()
                        .await?;
                    Ok::<_, Error>(())
                };
                let describe = async {
                    self.call();
                    Ok::<_, Error>(self.events.describe_rule().name(s("rule")).send().await?)
                };
                let ((), rule) = tokio::try_join!(put, describe)?;
                // Record the target in the rule's description, which ListRules returns, so
                // a plan needs no ListTargetsByRule per rule. After the target exists: a crash
                // in between leaves an unrecorded target, which discovery then lists.
                self.call();
                self.events
                    .put_rule()
                    .name(s("rule"))
                    .set_event_pattern(rule.event_pattern)
                    .set_state(rule.state)
                    .description(format!("{TARGET_MARK}{target_id} {}", s("arn")))
                    .send()
                    .await?;
                Ok(out(&[
                    ("id", &format!("{}|{target_id}", s("rule"))),
                    ("target_id", &target_id),
                ]))
            }
            "aws_route53_record" => {
                use aws_sdk_route53::types as r53;
                let mut set = r53::ResourceRecordSet::builder()
                    .name(s("name"))
                    .r#type(r53::RrType::from(s("type").as_str()));
                if let Some(alias) = block(r, "alias") {
                    set = set.alias_target(
                        r53::AliasTarget::builder()
                            .dns_name(str_of(alias, "name").unwrap_or_default())
                            .hosted_zone_id(str_of(alias, "zone_id").unwrap_or_default())
                            .evaluate_target_health(
                                bool_of(alias, "evaluate_target_health").unwrap_or(false),
                            )
                            .build()?,
                    );
                } else {
                    set = set.set_ttl(int_of(r, "ttl"));
                    for record in strs_of(r, "records") {
                        set = set.resource_records(
                            r53::ResourceRecord::builder().value(record).build()?,
                        );
                    }
                }
                self.route53
                    .change_resource_record_sets()
                    .hosted_zone_id(s("zone_id"))
                    .change_batch(
                        r53::ChangeBatch::builder()
                            .changes(
                                r53::Change::builder()
                                    .action(r53::ChangeAction::Upsert)
                                    .resource_record_set(set.build()?)
                                    .build()?,
                            )
                            .build()?,
                    )
                    .send()
                    .await?;
                let _ = outputs;
                Ok(out(&[(
                    "id",
                    &format!("{}|{}|{}", s("zone_id"), s("name"), s("type")),
                )]))
            }
            other => Err(Error::permanent(format!(
                "{address}: the AWS target cannot create {other} yet; use --target terraform"
            ))),
        }
    }

    async fn update(
        &self,
        kind: &str,
        id: &str,
        change: &Change,
        r: &R,
        outputs: &Outputs,
    ) -> Result<BTreeMap<String, String>, Error> {
        let tags = resolve::tags(r);
        let tag_paths = change
            .fields
            .iter()
            .filter(|f| f.path.starts_with("tags."))
            .count();
        match kind {
            "aws_launch_template" => {
                self.call();
                let version = self
                    .ec2
                    .create_launch_template_version()
                    .launch_template_id(id)
                    .launch_template_data(launch_template_data(r))
                    .send()
                    .await?
                    .launch_template_version
                    .and_then(|v| v.version_number)
                    .unwrap_or(1);
                self.call();
                self.ec2
                    .modify_launch_template()
                    .launch_template_id(id)
                    .default_version(version.to_string())
                    .send()
                    .await?;
                let mut all = tags.clone();
                all.insert(DIGEST_TAG.into(), digest(r));
                self.tag_ec2(id, &all, &[]).await?;
                Ok(out(&[("latest_version", &version.to_string())]))
            }
            "aws_autoscaling_group" => {
                let lt = block(r, "launch_template");
                self.call();
                let mut request = self
                    .autoscaling
                    .update_auto_scaling_group()
                    .auto_scaling_group_name(id)
                    .min_size(int_of(r, "min_size").unwrap_or(0) as i32)
                    .max_size(int_of(r, "max_size").unwrap_or(0) as i32)
                    .set_mixed_instances_policy(mixed_instances_policy(r));
                if let Some(lt) = lt {
                    request = request.launch_template(launch_template_spec(lt, "id", "version"));
                }
                request.send().await?;
                if change.fields.iter().any(|f| f.path.starts_with("tag[")) {
                    self.call();
                    let mut request = self.autoscaling.create_or_update_tags();
                    for tag in blocks(r, "tag") {
                        request = request.tags(
                            aws_sdk_autoscaling::types::Tag::builder()
                                .key(str_of(tag, "key").unwrap_or_default())
                                .value(str_of(tag, "value").unwrap_or_default())
                                .propagate_at_launch(
                                    bool_of(tag, "propagate_at_launch").unwrap_or(true),
                                )
                                .resource_id(id)
                                .resource_type("auto-scaling-group")
                                .build(),
                        );
                    }
                    request.send().await?;
                }
                Ok(BTreeMap::new())
            }
            "aws_iam_role_policy" => self.create("", kind, &change.address, r, outputs).await,
            _ if tag_paths == change.fields.len() => {
                let removed: Vec<String> = change
                    .fields
                    .iter()
                    .filter(|f| f.after.is_none())
                    .filter_map(|f| f.path.strip_prefix("tags.").map(str::to_string))
                    .collect();
                match kind {
                    "aws_lb" | "aws_lb_target_group" => {
                        self.call();
                        let mut request = self.elb.add_tags().resource_arns(id);
                        for (k, v) in &tags {
                            request = request.tags(
                                aws_sdk_elasticloadbalancingv2::types::Tag::builder()
                                    .key(k)
                                    .value(v)
                                    .build(),
                            );
                        }
                        request.send().await?;
                        if !removed.is_empty() {
                            self.call();
                            self.elb
                                .remove_tags()
                                .resource_arns(id)
                                .set_tag_keys(Some(removed))
                                .send()
                                .await?;
                        }
                    }
                    _ => self.tag_ec2(id, &tags, &removed).await?,
                }
                Ok(BTreeMap::new())
            }
            other => Err(Error::permanent(format!(
                "{}: the AWS target cannot change {other} in place",
                change.address
            ))),
        }
    }

    async fn tag_ec2(
        &self,
        id: &str,
        tags: &BTreeMap<String, String>,
        removed: &[String],
    ) -> Result<(), Error> {
        self.call();
        self.ec2
            .create_tags()
            .resources(id)
            .set_tags(Some(
                tags.iter()
                    .map(|(k, v)| ec2t::Tag::builder().key(k).value(v).build())
                    .collect(),
            ))
            .send()
            .await?;
        if !removed.is_empty() {
            self.call();
            self.ec2
                .delete_tags()
                .resources(id)
                .set_tags(Some(
                    removed
                        .iter()
                        .map(|k| ec2t::Tag::builder().key(k).build())
                        .collect(),
                ))
                .send()
                .await?;
        }
        Ok(())
    }

    /// Records (or forgets) a lifecycle hook in the group's hooks tag.
    async fn record_hook(&self, group: &str, hook: &str, add: bool) -> Result<(), Error> {
        // One tag per hook: no read-modify-write, so hooks of one group can be recorded at
        // once. Recorded after the hook is made and forgotten after it is deleted, so a crash
        // in between leaves a hook the next plan puts again (PutLifecycleHook is an upsert).
        let tag = aws_sdk_autoscaling::types::Tag::builder()
            .key(format!("{HOOK_TAG_PREFIX}{hook}"))
            .value("owned")
            .propagate_at_launch(false)
            .resource_id(group)
            .resource_type("auto-scaling-group")
            .build();
        self.call();
        if add {
            self.autoscaling
                .create_or_update_tags()
                .tags(tag)
                .send()
                .await?;
        } else {
            self.autoscaling.delete_tags().tags(tag).send().await?;
        }
        Ok(())
    }

    /// Deletes one resource; "already gone" counts as done.
    async fn delete(
        &self,
        kind: &str,
        id: &str,
        outputs: Option<&BTreeMap<String, String>>,
    ) -> Result<(), Error> {
        let o = |k: &str| outputs.and_then(|o| o.get(k)).cloned().unwrap_or_default();
        self.call();
        let result: Result<(), Error> = match kind {
            "aws_vpc" => self
                .ec2
                .delete_vpc()
                .vpc_id(id)
                .send()
                .await
                .map(|_| ())
                .map_err(Error::from),
            "aws_vpc_dhcp_options" => self
                .ec2
                .delete_dhcp_options()
                .dhcp_options_id(id)
                .send()
                .await
                .map(|_| ())
                .map_err(Error::from),
            // Back to the region's default options, so the cluster's can be deleted.
            "aws_vpc_dhcp_options_association" => {
                let vpc = id.split('|').next().unwrap_or_default();
                self.ec2
                    .associate_dhcp_options()
                    .vpc_id(vpc)
                    .dhcp_options_id("default")
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(Error::from)
            }
            "aws_internet_gateway" => {
                let found = self
                    .ec2
                    .describe_internet_gateways()
                    .internet_gateway_ids(id)
                    .send()
                    .await
                    .map_err(Error::from);
                if let Ok(found) = found {
                    for gw in found.internet_gateways() {
                        for attachment in gw.attachments() {
                            if let Some(vpc) = attachment.vpc_id() {
                                self.call();
                                self.ec2
                                    .detach_internet_gateway()
                                    .internet_gateway_id(id)
                                    .vpc_id(vpc)
                                    .send()
                                    .await?;
                            }
                        }
                    }
                }
                self.call();
                self.ec2
                    .delete_internet_gateway()
                    .internet_gateway_id(id)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(Error::from)
            }
            "aws_subnet" => self
                .ec2
                .delete_subnet()
                .subnet_id(id)
                .send()
                .await
                .map(|_| ())
                .map_err(Error::from),
            "aws_route_table" => self
                .ec2
                .delete_route_table()
                .route_table_id(id)
                .send()
                .await
                .map(|_| ())
                .map_err(Error::from),
            "aws_route" => {
                let (table, dest) = id.split_once('|').unwrap_or((id, ""));
                let mut request = self.ec2.delete_route().route_table_id(table);
                request = if dest.contains(':') {
                    request.destination_ipv6_cidr_block(dest)
                } else {
                    request.destination_cidr_block(dest)
                };
                request.send().await.map(|_| ()).map_err(Error::from)
            }
            "aws_route_table_association" => self
                .ec2
                .disassociate_route_table()
                .association_id(id)
                .send()
                .await
                .map(|_| ())
                .map_err(Error::from),
            "aws_eip" => self
                .ec2
                .release_address()
                .allocation_id(id)
                .send()
                .await
                .map(|_| ())
                .map_err(Error::from),
            "aws_nat_gateway" => self
                .ec2
                .delete_nat_gateway()
                .nat_gateway_id(id)
                .send()
                .await
                .map(|_| ())
                .map_err(Error::from),
            "aws_security_group" => self
                .ec2
                .delete_security_group()
                .group_id(id)
                .send()
                .await
                .map(|_| ())
                .map_err(Error::from),
            "aws_security_group_rule" => {
                let group = o("security_group_id");
                if o("egress") == "true" {
                    self.ec2
                        .revoke_security_group_egress()
                        .group_id(group)
                        .security_group_rule_ids(id)
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(Error::from)
                } else {
                    self.ec2
                        .revoke_security_group_ingress()
                        .group_id(group)
                        .security_group_rule_ids(id)
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(Error::from)
                }
            }
            "aws_key_pair" => self
                .ec2
                .delete_key_pair()
                .key_name(id)
                .send()
                .await
                .map(|_| ())
                .map_err(Error::from),
            "aws_ebs_volume" => self
                .ec2
                .delete_volume()
                .volume_id(id)
                .send()
                .await
                .map(|_| ())
                .map_err(Error::from),
            "aws_launch_template" => self
                .ec2
                .delete_launch_template()
                .launch_template_id(id)
                .send()
                .await
                .map(|_| ())
                .map_err(Error::from),
            "aws_iam_role" => {
                let Err(e) = self.iam.delete_role().role_name(id).send().await else {
                    return Ok(());
                };
                let e = Error::from(e);
                if !e.is("DeleteConflict") {
                    return Err(e);
                }
                // Still on the role: policies kopsrs did not make (its own went in an earlier
                // wave). The role itself is going and IAM deletes no role with policies, so
                // they go with it, as a security group's rules go with the group.
                self.call();
                let attached = self
                    .iam
                    .list_attached_role_policies()
                    .role_name(id)
                    .send()
                    .await?;
                for policy in attached.attached_policies() {
                    self.call();
                    self.iam
                        .detach_role_policy()
                        .role_name(id)
                        .set_policy_arn(policy.policy_arn().map(str::to_string))
                        .send()
                        .await?;
                }
                self.call();
                let inline = self.iam.list_role_policies().role_name(id).send().await?;
                for name in inline.policy_names() {
                    self.call();
                    self.iam
                        .delete_role_policy()
                        .role_name(id)
                        .policy_name(name)
                        .send()
                        .await?;
                }
                self.call();
                self.iam
                    .delete_role()
                    .role_name(id)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(Error::from)
            }
            "aws_iam_role_policy" => {
                let (role, name) = id.split_once(':').unwrap_or((id, ""));
                self.iam
                    .delete_role_policy()
                    .role_name(role)
                    .policy_name(name)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(Error::from)
            }
            "aws_iam_role_policy_attachment" => {
                let (role, arn) = id.split_once('|').unwrap_or((id, ""));
                self.iam
                    .detach_role_policy()
                    .role_name(role)
                    .policy_arn(arn)
                    .send()
                    .await?;
                self.call();
                self.iam
                    .untag_role()
                    .role_name(role)
                    .tag_keys(attachment_tag(arn))
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(Error::from)
            }
            "aws_iam_instance_profile" => {
                let role = o("role");
                if !role.is_empty() {
                    if let Err(e) = self
                        .iam
                        .remove_role_from_instance_profile()
                        .instance_profile_name(id)
                        .role_name(role)
                        .send()
                        .await
                    {
                        let e = Error::from(e);
                        if !e.is("NoSuchEntity") {
                            return Err(e);
                        }
                    }
                    self.call();
                }
                self.iam
                    .delete_instance_profile()
                    .instance_profile_name(id)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(Error::from)
            }
            "aws_iam_openid_connect_provider" => self
                .iam
                .delete_open_id_connect_provider()
                .open_id_connect_provider_arn(id)
                .send()
                .await
                .map(|_| ())
                .map_err(Error::from),
            "aws_autoscaling_group" => self
                .autoscaling
                .delete_auto_scaling_group()
                .auto_scaling_group_name(id)
                .force_delete(true)
                .send()
                .await
                .map(|_| ())
                .map_err(Error::from),
            "aws_autoscaling_lifecycle_hook" => {
                let (group, hook) = id.split_once('|').unwrap_or((id, ""));
                let deleted = self
                    .autoscaling
                    .delete_lifecycle_hook()
                    .auto_scaling_group_name(group)
                    .lifecycle_hook_name(hook)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(Error::from);
                if deleted.is_ok() {
                    self.record_hook(group, hook, false).await?;
                }
                deleted
            }
            "aws_lb" => self
                .elb
                .delete_load_balancer()
                .load_balancer_arn(id)
                .send()
                .await
                .map(|_| ())
                .map_err(Error::from),
            "aws_lb_target_group" => self
                .elb
                .delete_target_group()
                .target_group_arn(id)
                .send()
                .await
                .map(|_| ())
                .map_err(Error::from),
            "aws_lb_listener" => self
                .elb
                .delete_listener()
                .listener_arn(id)
                .send()
                .await
                .map(|_| ())
                .map_err(Error::from),
            "aws_sqs_queue" => self
                .sqs
                .delete_queue()
                .queue_url(id)
                .send()
                .await
                .map(|_| ())
                .map_err(Error::from),
            "aws_cloudwatch_event_rule" => self
                .events
                .delete_rule()
                .name(id)
                .send()
                .await
                .map(|_| ())
                .map_err(Error::from),
            "aws_cloudwatch_event_target" => {
                let (rule, target) = id.split_once('|').unwrap_or((id, ""));
                self.events
                    .remove_targets()
                    .rule(rule)
                    .ids(target)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(Error::from)
            }
            // The cluster's own records (the API name), fetched to delete the exact set.
            "aws_route53_record" => {
                use aws_sdk_route53::types as r53;
                let mut parts = id.splitn(3, '|');
                let (Some(zone), Some(name), Some(kind)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    return Ok(());
                };
                let sets = self
                    .route53
                    .list_resource_record_sets()
                    .hosted_zone_id(zone)
                    .start_record_name(name)
                    .start_record_type(r53::RrType::from(kind))
                    .max_items(1)
                    .send()
                    .await?;
                let Some(set) = sets.resource_record_sets().iter().find(|s| {
                    s.name().trim_end_matches('.') == name.trim_end_matches('.')
                        && s.r#type().as_str() == kind
                }) else {
                    return Ok(());
                };
                self.call();
                self.route53
                    .change_resource_record_sets()
                    .hosted_zone_id(zone)
                    .change_batch(
                        r53::ChangeBatch::builder()
                            .changes(
                                r53::Change::builder()
                                    .action(r53::ChangeAction::Delete)
                                    .resource_record_set(set.clone())
                                    .build()?,
                            )
                            .build()?,
                    )
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(Error::from)
            }
            other => Err(Error::permanent(format!(
                "the AWS target cannot delete {other} yet"
            ))),
        };
        match result {
            Err(e)
                if e.code.as_deref().is_some_and(|c| {
                    c.ends_with(".NotFound") && kind != "aws_vpc"
                        || c == "NoSuchEntity" && kind.starts_with("aws_iam")
                        || c == "ResourceNotFoundException"
                        || c == "AWS.SimpleQueueService.NonExistentQueue"
                }) =>
            {
                Ok(())
            }
            other => other,
        }
    }
}

/// A ClientToken for creates AWS makes idempotent: stable per address and content, so a
/// create retried after a crash returns the resource the first attempt made.
fn client_token(address: &Address, r: &R) -> String {
    format!("kopsrs-{}", &digest(r)[..16])
        .chars()
        .chain(address.name.chars())
        .take(64)
        .collect()
}

/// The tags that make a resource the cluster's (see `discover::owned_by`), for resources the
/// model gives no tags of their own (security group rules).
fn owner_tags(cluster: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("KubernetesCluster".to_string(), cluster.to_string()),
        (
            format!("kubernetes.io/cluster/{cluster}"),
            "owned".to_string(),
        ),
    ])
}

fn iam_tags(tags: &BTreeMap<String, String>) -> Result<Vec<aws_sdk_iam::types::Tag>, Error> {
    tags.iter()
        .map(|(k, v)| {
            aws_sdk_iam::types::Tag::builder()
                .key(k)
                .value(v)
                .build()
                .map_err(Error::from)
        })
        .collect()
}

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

fn launch_template_spec(
    lt: &Map<String, Json>,
    id: &str,
    version: &str,
) -> aws_sdk_autoscaling::types::LaunchTemplateSpecification {
    aws_sdk_autoscaling::types::LaunchTemplateSpecification::builder()
        .set_launch_template_id(str_of(lt, id).map(str::to_string))
        .set_version(str_of(lt, version).map(str::to_string))
        .build()
}

/// A group's `mixed_instances_policy` block as the Auto Scaling API takes it.
fn mixed_instances_policy(
    r: &Map<String, Json>,
) -> Option<aws_sdk_autoscaling::types::MixedInstancesPolicy> {
    use aws_sdk_autoscaling::types::{
        InstancesDistribution, LaunchTemplate, LaunchTemplateOverrides, MixedInstancesPolicy,
    };
    let policy = block(r, "mixed_instances_policy")?;
    let lt = block(policy, "launch_template")?;
    let spec = block(lt, "launch_template_specification")?;
    let overrides = blocks(lt, "override")
        .into_iter()
        .map(|o| {
            LaunchTemplateOverrides::builder()
                .set_instance_type(str_of(o, "instance_type").map(str::to_string))
                .build()
        })
        .collect();
    let distribution = block(policy, "instances_distribution").map(|d| {
        InstancesDistribution::builder()
            .set_on_demand_base_capacity(int_of(d, "on_demand_base_capacity").map(|v| v as i32))
            .set_on_demand_percentage_above_base_capacity(
                int_of(d, "on_demand_percentage_above_base_capacity").map(|v| v as i32),
            )
            .set_spot_allocation_strategy(str_of(d, "spot_allocation_strategy").map(str::to_string))
            .set_spot_instance_pools(int_of(d, "spot_instance_pools").map(|v| v as i32))
            // Empty: capped at the on-demand price (the API's default when left out).
            .set_spot_max_price(
                str_of(d, "spot_max_price")
                    .filter(|p| !p.is_empty())
                    .map(str::to_string),
            )
            .build()
    });
    Some(
        MixedInstancesPolicy::builder()
            .launch_template(
                LaunchTemplate::builder()
                    .launch_template_specification(launch_template_spec(
                        spec,
                        "launch_template_id",
                        "version",
                    ))
                    .set_overrides(Some(overrides))
                    .build(),
            )
            .set_instances_distribution(distribution)
            .build(),
    )
}

impl Aws {
    /// What CreateAutoScalingGroup does not take: metrics collection, suspended processes
    /// and the warm pool. Each call is idempotent, so a rerun after a kill repeats them safely.
    async fn group_settings(&self, name: &str, r: &Map<String, Json>) -> Result<(), Error> {
        let metrics = strs_of(r, "enabled_metrics");
        if !metrics.is_empty() {
            self.call();
            self.autoscaling
                .enable_metrics_collection()
                .auto_scaling_group_name(name)
                .granularity(str_of(r, "metrics_granularity").unwrap_or("1Minute"))
                .set_metrics(Some(metrics))
                .send()
                .await?;
        }
        let suspended = strs_of(r, "suspended_processes");
        if !suspended.is_empty() {
            self.call();
            self.autoscaling
                .suspend_processes()
                .auto_scaling_group_name(name)
                .set_scaling_processes(Some(suspended))
                .send()
                .await?;
        }
        if let Some(pool) = block(r, "warm_pool") {
            self.call();
            self.autoscaling
                .put_warm_pool()
                .auto_scaling_group_name(name)
                .set_min_size(int_of(pool, "min_size").map(|v| v as i32))
                .set_max_group_prepared_capacity(
                    int_of(pool, "max_group_prepared_capacity").map(|v| v as i32),
                )
                .send()
                .await?;
        }
        Ok(())
    }
}
