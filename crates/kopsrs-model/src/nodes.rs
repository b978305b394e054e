//! Instance groups (launch templates, auto scaling groups, lifecycle hooks), etcd volumes,
//! the API and bastion load balancers, DNS records and the termination-handler queue.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use crate::build::{err, Builder};
use crate::names::{tf_name, truncate};
use crate::{attrs, Address, Attrs, FileValue, ModelError, Value};
use kopsrs_api::{
    ClusterSubnetSpec, InstanceGroup, InstanceGroupSpec, MixedInstancesPolicy, Role, WarmPool,
};

const ENABLED_METRICS: [&str; 8] = [
    "GroupDesiredCapacity",
    "GroupInServiceInstances",
    "GroupMaxSize",
    "GroupMinSize",
    "GroupPendingInstances",
    "GroupStandbyInstances",
    "GroupTerminatingInstances",
    "GroupTotalInstances",
];

/// With a warm pool, the pool's own metrics too.
const WARM_POOL_METRICS: [&str; 8] = [
    "GroupAndWarmPoolDesiredCapacity",
    "GroupAndWarmPoolTotalCapacity",
    "WarmPoolDesiredCapacity",
    "WarmPoolMinSize",
    "WarmPoolPendingCapacity",
    "WarmPoolTerminatingCapacity",
    "WarmPoolTotalCapacity",
    "WarmPoolWarmedCapacity",
];

/// Owners of well-known image names, as kops resolves them.
fn image_owner(alias: &str) -> Option<&'static str> {
    Some(match alias {
        "ubuntu" => "099720109477",
        "debian" => "136693071363",
        "amazon" => "amazon",
        "redhat.com" | "redhat" => "309956199498",
        "flatcar" => "075585003325",
        "rocky" => "792107900819",
        _ => return None,
    })
}

/// The owner and name an image given by name is looked up with: `<account>/<name>`, an
/// owner alias (`ubuntu/...`, the whole text being the name, as the owners publish them), or
/// a name alone, which the account itself owns.
pub(crate) fn image_owner_and_name(image: &str) -> (String, String) {
    match image.split_once('/') {
        Some((first, rest)) if first.chars().all(|c| c.is_ascii_digit()) => {
            (first.to_string(), rest.to_string())
        }
        Some((first, _)) => match image_owner(first) {
            Some(owner) => (owner.to_string(), image.to_string()),
            None => (first.to_string(), image.to_string()),
        },
        None => ("self".to_string(), image.to_string()),
    }
}

fn json_file(name: String, value: serde_json::Value) -> Value {
    Value::File(FileValue::new(
        name,
        serde_json::to_string_pretty(&value).expect("JSON serializes") + "\n",
    ))
}

impl<'a> Builder<'a> {
    pub(crate) fn group_object_name(&self, group: &InstanceGroup) -> String {
        match group.role() {
            Some(Role::ControlPlane) => format!("{}.masters.{}", group.metadata.name, self.name),
            Some(Role::ApiServer) => format!("{}.apiservers.{}", group.metadata.name, self.name),
            _ => self.scoped(&group.metadata.name),
        }
    }

    fn group_subnets(
        &self,
        group: &InstanceGroup,
    ) -> Result<Vec<&'a ClusterSubnetSpec>, ModelError> {
        let names = group.spec.subnets.clone().unwrap_or_default();
        names
            .iter()
            .map(|n| {
                self.subnet(n).ok_or_else(|| {
                    err(
                        format!("InstanceGroup {}: spec.subnets", group.metadata.name),
                        format!("{n:?} is not a subnet of the cluster"),
                    )
                })
            })
            .collect()
    }

    pub(crate) fn nth_queue_enabled(&self) -> bool {
        let nth = self.spec.node_termination_handler.as_ref();
        // Karpenter handles interruptions itself; kops then runs no termination handler.
        let karpenter = self.spec.karpenter.as_ref().and_then(|k| k.enabled) == Some(true);
        !karpenter
            && nth.and_then(|n| n.enabled).unwrap_or(true)
            && nth
                .and_then(|n| n.enable_sqs_termination_draining)
                .unwrap_or(true)
    }

    /// `spec.nodeTerminationHandler.managedASGTag`, kops's default otherwise.
    pub(crate) fn nth_managed_tag(&self) -> String {
        self.spec
            .node_termination_handler
            .as_ref()
            .and_then(|n| n.managed_asg_tag.clone())
            .unwrap_or_else(|| "aws-node-termination-handler/managed".into())
    }

    pub(crate) fn queue_name(&self) -> String {
        crate::names::termination_queue(&self.name)
    }

    pub(crate) fn termination_handler_queue(&mut self) {
        if !self.nth_queue_enabled() {
            return;
        }
        let queue = self.queue_name();
        let arn = format!("arn:{}:sqs:{}:*:{queue}", self.partition(), self.region);
        let policy = json!({
            "Statement": [{
                "Action": "sqs:SendMessage",
                "Effect": "Allow",
                "Principal": {"Service": ["events.amazonaws.com", "sqs.amazonaws.com"]},
                "Resource": arn,
            }],
            "Version": "2012-10-17",
        });
        let queue_addr = self.add(
            "aws_sqs_queue",
            &queue,
            attrs! {
                "message_retention_seconds" => 300,
                "name" => queue.clone(),
                "policy" => json_file(format!("aws_sqs_queue_{queue}_policy"), policy),
                "tags" => self.tags(&queue),
            },
        );
        let patterns = [
            json!({"detail-type": ["EC2 Instance-terminate Lifecycle Action"], "source": ["aws.autoscaling"]}),
            json!({"detail-type": ["EC2 Spot Instance Interruption Warning"], "source": ["aws.ec2"]}),
            json!({"detail-type": ["EC2 Instance State-change Notification"], "source": ["aws.ec2"]}),
            json!({"detail": {"eventTypeCategory": ["scheduledChange"], "service": ["EC2"]}, "detail-type": ["AWS Health Event"], "source": ["aws.health"]}),
            json!({"detail-type": ["EC2 Instance Rebalance Recommendation"], "source": ["aws.ec2"]}),
        ];
        let rebalance = self
            .spec
            .node_termination_handler
            .as_ref()
            .and_then(|n| n.enable_rebalance_draining)
            == Some(true);
        // One rule per suffix of names::TERMINATION_RULE_SUFFIXES (the list discovery
        // matches exact names against); rebalance recommendations only when asked for.
        let count = if rebalance { 5 } else { 4 };
        let rules = crate::names::TERMINATION_RULE_SUFFIXES
            .into_iter()
            .zip(patterns)
            .take(count);
        for (suffix, pattern) in rules {
            let name = crate::names::termination_rule(&self.name, suffix);
            let rule = self.add(
                "aws_cloudwatch_event_rule",
                &name,
                attrs! {
                    "event_pattern" => json_file(format!("aws_cloudwatch_event_rule_{name}_event_pattern"), pattern),
                    "name" => name.clone(),
                    "tags" => self.tags(&name),
                },
            );
            self.add(
                "aws_cloudwatch_event_target",
                &format!("{name}-Target"),
                attrs! { "arn" => queue_addr.attr("arn"), "rule" => rule.id() },
            );
        }
    }

    pub(crate) fn etcd_volumes(&mut self) -> Result<(), ModelError> {
        for etcd in self.spec.etcd_clusters.iter().flatten() {
            let etcd_name = etcd.name.clone().unwrap_or_default();
            let members: Vec<_> = etcd.etcd_members.iter().flatten().collect();
            let all: Vec<String> = members.iter().filter_map(|m| m.name.clone()).collect();
            for member in &members {
                let member_name = member.name.clone().unwrap_or_default();
                let group_name = member.instance_group.clone().unwrap_or_default();
                let group = self
                    .groups
                    .iter()
                    .find(|g| g.metadata.name == group_name)
                    .ok_or_else(|| {
                        err(
                            format!("spec.etcdClusters[{etcd_name}].etcdMembers[{member_name}].instanceGroup"),
                            format!("{group_name:?} is not an instance group of the cluster"),
                        )
                    })?;
                let zone = self
                    .group_subnets(group)?
                    .first()
                    .and_then(|s| s.zone.clone())
                    .or_else(|| group.spec.zones.as_ref().and_then(|z| z.first().cloned()))
                    .ok_or_else(|| {
                        err(
                            format!("InstanceGroup {group_name}: spec.subnets"),
                            "no zone for the etcd volume",
                        )
                    })?;
                let name = format!("{member_name}.etcd-{etcd_name}.{}", self.name);
                let mut tags = self.tags(&name);
                tags.insert(
                    format!("k8s.io/etcd/{etcd_name}"),
                    Value::str(format!("{member_name}/{}", all.join(","))),
                );
                tags.insert("k8s.io/role/control-plane".into(), Value::str("1"));
                tags.insert("k8s.io/role/master".into(), Value::str("1"));
                let volume_type = member.volume_type.clone().unwrap_or_else(|| "gp3".into());
                let mut a = attrs! {
                    "availability_zone" => zone,
                    "encrypted" => member.encrypted_volume.unwrap_or(false),
                    "size" => member.volume_size.unwrap_or(20),
                    "tags" => tags,
                    "type" => volume_type.clone(),
                };
                volume_performance(
                    &mut a,
                    &volume_type,
                    member.volume_iops,
                    member.volume_throughput,
                );
                if let Some(key) = &member.kms_key_id {
                    a.insert("kms_key_id".into(), Value::str(key));
                }
                self.add("aws_ebs_volume", &name, a);
            }
        }
        Ok(())
    }

    /// Subnets a public-facing load balancer sits in: utility subnets if the cluster has
    /// them, else public ones; one per zone.
    fn load_balancer_subnets(&self, internal: bool) -> Vec<&'a ClusterSubnetSpec> {
        let wanted: &[&str] = if internal {
            &["Private"]
        } else if self
            .subnets
            .iter()
            .any(|s| Self::subnet_type(s) == "Utility")
        {
            &["Utility"]
        } else {
            &["Public"]
        };
        let mut seen = std::collections::BTreeSet::new();
        self.subnets
            .iter()
            .copied()
            .filter(|s| wanted.contains(&Self::subnet_type(s)))
            .filter(|s| seen.insert(s.zone.clone()))
            .collect()
    }

    fn bastion_internal(&self) -> bool {
        self.spec
            .topology
            .as_ref()
            .and_then(|t| t.bastion.as_ref())
            .and_then(|b| b.load_balancer.as_ref())
            .and_then(|l| l.r#type.as_deref())
            == Some("Internal")
    }

    pub(crate) fn bastion_subnets(&self) -> Vec<&'a ClusterSubnetSpec> {
        self.load_balancer_subnets(self.bastion_internal())
    }

    #[allow(clippy::too_many_arguments)]
    fn network_load_balancer(
        &mut self,
        object: &str,
        lb_name: &str,
        sg_role: &str,
        extra_security_groups: &[String],
        internal: bool,
        subnets: Vec<&ClusterSubnetSpec>,
        cross_zone: bool,
        dual_stack: bool,
    ) -> Address {
        let mappings: Vec<Attrs> = subnets
            .iter()
            .map(|s| attrs! { "subnet_id" => self.subnet_id(s) })
            .collect();
        let mut tags = self.tags(object);
        tags.insert("Name".into(), Value::str(object));
        // The spec's extra groups first, then the cluster's own (kops's order).
        let mut security_groups: Vec<Value> =
            extra_security_groups.iter().map(Value::str).collect();
        security_groups.push(self.sg_ref(sg_role));
        let mut lb = attrs! {
            "enable_cross_zone_load_balancing" => cross_zone,
            "internal" => internal,
            "load_balancer_type" => "network",
            "name" => lb_name,
            "security_groups" => Value::List(security_groups),
            "subnet_mapping" => Value::Blocks(mappings),
            "tags" => tags,
        };
        if dual_stack {
            lb.insert("ip_address_type".into(), Value::str("dualstack"));
        }
        self.add("aws_lb", object, lb)
    }

    fn target_group(&mut self, name: &str, port: i64) -> Address {
        let mut a = attrs! {
            "connection_termination" => "true",
            "deregistration_delay" => "30",
            "health_check" => Value::block(attrs! {
                "healthy_threshold" => 2,
                "interval" => 10,
                "protocol" => "TCP",
                "unhealthy_threshold" => 2,
            }),
            "name" => name,
            "port" => port,
            "protocol" => "TCP",
            "tags" => self.tags(name),
            "vpc_id" => self.vpc_id(),
        };
        a.insert("tags".into(), Value::Map(self.tags(name)));
        self.add("aws_lb_target_group", name, a)
    }

    fn listener(&mut self, object: &str, lb: &Address, tg: &Address, port: i64) {
        self.add(
            "aws_lb_listener",
            &format!("{object}-{port}"),
            attrs! {
                "default_action" => Value::block(attrs! { "target_group_arn" => tg.id(), "type" => "forward" }),
                "load_balancer_arn" => lb.id(),
                "port" => port,
                "protocol" => "TCP",
            },
        );
    }

    /// `<prefix>-<cluster with dashes>`, cut to AWS's 32 characters with kops's hash.
    pub(crate) fn lb_name(&self, prefix: &str) -> String {
        truncate(
            &format!("{prefix}-{}", self.name.replace('.', "-")),
            32,
            true,
        )
    }

    pub(crate) fn api_target_group(&self) -> Option<Address> {
        self.api_load_balancer_enabled()
            .then(|| Address::new("aws_lb_target_group", &tf_name(&self.lb_name("tcp"))))
    }

    pub(crate) fn api_load_balancer(&mut self) -> Result<(), ModelError> {
        let Some(lb) = self.spec.api.as_ref().and_then(|a| a.load_balancer.clone()) else {
            return Ok(());
        };
        if lb.class.as_deref() == Some("Classic") {
            return Err(err(
                "spec.api.loadBalancer.class",
                "\"Classic\" load balancers are not supported by kopsrs; use class: Network",
            ));
        }
        let internal = lb.r#type.as_deref() == Some("Internal");
        let object = self.scoped("api");
        let lb_name = self.lb_name("api");
        let subnets = match &lb.subnets {
            Some(chosen) if !chosen.is_empty() => chosen
                .iter()
                .filter_map(|s| s.name.as_deref().and_then(|n| self.subnet(n)))
                .collect(),
            _ => self.load_balancer_subnets(internal),
        };
        let cross_zone = lb.cross_zone_load_balancing.unwrap_or(self.dns_none());
        let extra = lb.additional_security_groups.clone().unwrap_or_default();
        let lb_addr = self.network_load_balancer(
            &object, &lb_name, "api-elb", &extra, internal, subnets, cross_zone, self.ipv6,
        );
        let tg = self.target_group(&self.lb_name("tcp"), 443);
        self.listener(&object, &lb_addr, &tg, 443);
        Ok(())
    }

    pub(crate) fn bastion_target_group(&self) -> Option<Address> {
        self.bastion_enabled()
            .then(|| Address::new("aws_lb_target_group", &tf_name(&self.lb_name("bastion"))))
    }

    pub(crate) fn bastion_load_balancer(&mut self) -> Result<(), ModelError> {
        if !self.bastion_enabled() {
            return Ok(());
        }
        let internal = self.bastion_internal();
        let object = self.scoped("bastion");
        let name = self.lb_name("bastion");
        let subnets = self.bastion_subnets();
        let lb = self.network_load_balancer(
            &object,
            &name,
            "bastion-elb",
            &[],
            internal,
            subnets,
            false,
            false,
        );
        let tg = self.target_group(&name, 22);
        self.listener(&object, &lb, &tg, 22);
        Ok(())
    }

    /// Alias records for the API load balancer in the cluster's hosted zone.
    pub(crate) fn dns(&mut self) {
        if !self.api_load_balancer_enabled() || self.dns_none() {
            return;
        }
        let lb = Address::new("aws_lb", &tf_name(&self.scoped("api")));
        let zone = self.hosted_zone();
        let public_name = self
            .spec
            .master_public_name
            .clone()
            .unwrap_or_else(|| self.scoped("api"));
        for (suffix, record_type) in [("", "A"), ("-AAAA", "AAAA")] {
            self.add(
                "aws_route53_record",
                &format!("{public_name}{suffix}"),
                attrs! {
                    "alias" => Value::block(attrs! {
                        "evaluate_target_health" => false,
                        "name" => lb.attr("dns_name"),
                        "zone_id" => lb.attr("zone_id"),
                    }),
                    "name" => public_name.clone(),
                    "type" => record_type,
                    "zone_id" => zone.clone(),
                },
            );
        }
    }

    /// The hosted zone: the ID in `spec.dnsZone`, or a lookup by name (the zone named in
    /// `spec.dnsZone`, else the cluster name's parent domain).
    fn hosted_zone(&mut self) -> Value {
        let zone = self.spec.dns_zone.clone();
        if let Some(id) = zone.as_deref().filter(|z| !z.contains('.')) {
            return Value::str(format!(
                "/hostedzone/{}",
                id.trim_start_matches("/hostedzone/")
            ));
        }
        let name = zone.unwrap_or_else(|| {
            self.name
                .split_once('.')
                .map(|(_, parent)| parent.to_string())
                .unwrap_or_else(|| self.name.clone())
        });
        let private = self
            .spec
            .topology
            .as_ref()
            .and_then(|t| t.dns.as_ref())
            .and_then(|d| d.r#type.as_deref())
            == Some("Private");
        let mut a = attrs! { "name" => name.clone() };
        if private {
            a.insert("private_zone".into(), Value::Bool(true));
        }
        self.add_data("aws_route53_zone", &name, a).attr("zone_id")
    }

    /// The AMI: an ID as given, or a lookup by owner and name.
    fn image(&mut self, group: &InstanceGroup) -> (Value, Value) {
        let image = group.spec.image.clone().unwrap_or_default();
        if image.starts_with("ami-") {
            return (Value::str(&image), Value::str("/dev/xvda"));
        }
        let (owner, name) = image_owner_and_name(&image);
        let data_name = format!("ami-{}", name.replace(['/', '.', ':'], "-"));
        let data = self.add_data(
            "aws_ami",
            &data_name,
            attrs! {
                "filter" => Value::Blocks(vec![attrs! { "name" => "name", "values" => Value::strs([name]) }]),
                "most_recent" => true,
                "owners" => Value::strs([owner]),
            },
        );
        (data.id(), data.attr("root_device_name"))
    }

    fn group_tags(
        &self,
        group: &InstanceGroup,
        object: &str,
    ) -> Result<BTreeMap<String, Value>, ModelError> {
        let mut tags = self.tags(object);
        if let Some(labels) = &group.spec.cloud_labels {
            for (k, v) in labels {
                tags.insert(k.clone(), Value::str(v));
            }
        }
        if self.nth_queue_enabled() {
            // The tag the termination handler drains only the instances of (MANAGED_TAG).
            tags.insert(self.nth_managed_tag(), Value::str(""));
        }
        let role_tag = match group.role() {
            Some(Role::ControlPlane) => {
                tags.insert("k8s.io/role/master".into(), Value::str("1"));
                "control-plane"
            }
            Some(Role::Node) => "node",
            Some(Role::ApiServer) => "apiserver",
            Some(Role::Bastion) | None => "bastion",
        };
        tags.insert(format!("k8s.io/role/{role_tag}"), Value::str("1"));
        let template = self.node_template(group)?;
        for (k, v) in template.labels {
            tags.insert(
                format!("k8s.io/cluster-autoscaler/node-template/label/{k}"),
                Value::str(v),
            );
        }
        for taint in template.taints {
            tags.insert(
                format!(
                    "k8s.io/cluster-autoscaler/node-template/taint/{}",
                    taint.key
                ),
                Value::str(format!(
                    "{}:{}",
                    taint.value.unwrap_or_default(),
                    taint.effect
                )),
            );
        }
        tags.insert(
            "kops.k8s.io/instancegroup".into(),
            Value::str(&group.metadata.name),
        );
        Ok(tags)
    }

    /// The security groups of a group's instances: the role's own (or the group's
    /// `securityGroupOverride`), then the group's `additionalSecurityGroups`; control planes
    /// also carry the API load balancer's `additionalSecurityGroups`, because the network
    /// load balancer passes clients' addresses through (as kops).
    fn group_security_groups(
        &self,
        group: &InstanceGroup,
        role: Role,
        sg_role: &str,
    ) -> Vec<Value> {
        let spec = &group.spec;
        let mut security_groups = match &spec.security_group_override {
            Some(id) => vec![Value::str(id)],
            None => vec![self.sg_address(sg_role).id()],
        };
        let mut extra: Vec<String> = spec.additional_security_groups.clone().unwrap_or_default();
        if role == Role::ControlPlane {
            extra.extend(
                self.spec
                    .api
                    .as_ref()
                    .and_then(|a| a.load_balancer.as_ref())
                    .and_then(|l| l.additional_security_groups.clone())
                    .unwrap_or_default(),
            );
        }
        for id in extra {
            let id = Value::str(id);
            if !security_groups.contains(&id) {
                security_groups.push(id);
            }
        }
        security_groups
    }

    pub(crate) fn instance_groups(&mut self) -> Result<(), ModelError> {
        let groups: Vec<&InstanceGroup> = self.groups.clone();
        for group in groups {
            self.instance_group(group)?;
        }
        Ok(())
    }

    /// One instance group: its launch template and auto scaling group with its lifecycle
    /// hooks, or, when Karpenter manages its nodes, its Karpenter objects (`karpenter.rs`).
    fn instance_group(&mut self, group: &InstanceGroup) -> Result<(), ModelError> {
        let role = group.role().ok_or_else(|| {
            err(
                format!("InstanceGroup {}: spec.role", group.metadata.name),
                "missing or unknown",
            )
        })?;
        let object = self.group_object_name(group);
        let subnets = self.group_subnets(group)?;
        let tags = self.group_tags(group, &object)?;
        // Karpenter provisions these nodes itself, with launch templates of its own (as kops).
        if group.spec.manager.as_deref() == Some("Karpenter") {
            return self.karpenter_group(group, &subnets, &tags);
        }
        let lt = self.launch_template(group, role, &object, &subnets, &tags)?;
        let lt_addr = self.add("aws_launch_template", &object, lt);
        let asg = self.autoscaling_group(group, role, &object, &subnets, &tags, &lt_addr)?;
        let asg_addr = self.add("aws_autoscaling_group", &object, asg);
        let hooks = self.lifecycle_hooks(group, role, &asg_addr);
        for address in [lt_addr, asg_addr].into_iter().chain(hooks) {
            self.group_of.insert(address, group.metadata.name.clone());
        }
        Ok(())
    }

    /// A group's launch template: image, volumes, instance profile, metadata options, network
    /// interface (a public address only in public or utility subnets), tags and user data,
    /// then the options of [`Self::launch_template_options`].
    fn launch_template(
        &mut self,
        group: &InstanceGroup,
        role: Role,
        object: &str,
        subnets: &[&ClusterSubnetSpec],
        tags: &BTreeMap<String, Value>,
    ) -> Result<Attrs, ModelError> {
        let spec = &group.spec;
        let sg_role = match role {
            Role::ControlPlane | Role::ApiServer => "masters",
            Role::Node => "nodes",
            Role::Bastion => "bastion",
        };
        let (image, root_device) = self.image(group);
        let devices = block_device_mappings(spec, role, root_device);
        let public = subnets
            .iter()
            .any(|s| matches!(Self::subnet_type(s), "Public" | "Utility"));
        let security_groups = self.group_security_groups(group, role, sg_role);
        let metadata = spec.instance_metadata.clone().unwrap_or_default();
        let tag_specs: Vec<Attrs> = ["instance", "volume", "network-interface"]
            .iter()
            .map(|kind| attrs! { "resource_type" => *kind, "tags" => tags.clone() })
            .collect();
        let mut lt = attrs! {
            "block_device_mappings" => Value::Blocks(devices),
            "iam_instance_profile" => Value::block(attrs! { "name" => self.instance_profile(role, group) }),
            "image_id" => image,
            "lifecycle" => Value::block(attrs! { "create_before_destroy" => true }),
            "metadata_options" => Value::block(attrs! {
                "http_endpoint" => "enabled",
                "http_protocol_ipv6" => if self.ipv6 { "enabled" } else { "disabled" },
                "http_put_response_hop_limit" => metadata.http_put_response_hop_limit.unwrap_or(1),
                "http_tokens" => metadata.http_tokens.clone().unwrap_or_else(|| "required".into()),
            }),
            "monitoring" => Value::block(attrs! { "enabled" => spec.detailed_instance_monitoring.unwrap_or(false) }),
            "name" => object.to_string(),
            "network_interfaces" => Value::block(attrs! {
                "associate_public_ip_address" => spec.associate_public_ip.unwrap_or(public) && public,
                "delete_on_termination" => true,
                "ipv6_address_count" => if self.ipv6 { 1 } else { 0 },
                "security_groups" => Value::List(security_groups),
            }),
            "tag_specifications" => Value::Blocks(tag_specs),
            "tags" => tags.clone(),
            "user_data" => Value::File(FileValue {
                base64: true,
                gzip: true,
                ..FileValue::new(
                    format!("aws_launch_template_{object}_user_data"),
                    self.user_data(group)?,
                )
            }),
        };
        self.launch_template_options(spec, &mut lt);
        Ok(lt)
    }

    /// The launch template's optional settings: the (first) machine type, the SSH key, CPU
    /// credits, spot bids (unless a mixed instances policy carries them) and tenancy.
    fn launch_template_options(&self, spec: &InstanceGroupSpec, lt: &mut Attrs) {
        if let Some(machine) = &spec.machine_type {
            lt.insert(
                "instance_type".into(),
                Value::str(machine.split(',').next().unwrap_or(machine)),
            );
        }
        if let Some(key) = self.key_pair_address() {
            lt.insert("key_name".into(), key.id());
        } else if let Some(name) = self.spec.ssh_key_name.as_ref().filter(|n| !n.is_empty()) {
            lt.insert("key_name".into(), Value::str(name));
        }
        if let Some(credits) = &spec.cpu_credits {
            lt.insert(
                "credit_specification".into(),
                Value::block(attrs! { "cpu_credits" => credits.clone() }),
            );
        }
        if let Some(price) = &spec.max_price {
            if spec.mixed_instances_policy.is_none() {
                lt.insert(
                    "instance_market_options".into(),
                    Value::block(attrs! {
                        "market_type" => "spot",
                        "spot_options" => Value::block(attrs! { "max_price" => price.clone() }),
                    }),
                );
            }
        }
        if let Some(tenancy) = &spec.tenancy {
            lt.insert(
                "placement".into(),
                Value::block(attrs! { "tenancy" => tenancy.clone() }),
            );
        }
    }

    /// A group's auto scaling group: sizes, metrics, tags propagated to instances, its
    /// subnets, the launch template (or a mixed instances policy over it), the role's load
    /// balancer target group and the warm pool.
    fn autoscaling_group(
        &self,
        group: &InstanceGroup,
        role: Role,
        object: &str,
        subnets: &[&ClusterSubnetSpec],
        tags: &BTreeMap<String, Value>,
        lt_addr: &Address,
    ) -> Result<Attrs, ModelError> {
        let spec = &group.spec;
        let mut asg_tags: Vec<Attrs> = tags
            .iter()
            .map(|(k, v)| attrs! { "key" => k.clone(), "propagate_at_launch" => true, "value" => v.clone() })
            .collect();
        asg_tags.sort_by(|a, b| a["key"].as_str().cmp(&b["key"].as_str()));
        let launch_template = Value::block(
            attrs! { "id" => lt_addr.id(), "version" => lt_addr.attr("latest_version") },
        );
        let lifetime = spec
            .max_instance_lifetime
            .as_deref()
            .map(parse_duration_seconds)
            .transpose()
            .map_err(|e| {
                err(
                    format!(
                        "InstanceGroup {}: spec.maxInstanceLifetime",
                        group.metadata.name
                    ),
                    e,
                )
            })?
            .unwrap_or(0);
        let mut asg = attrs! {
            "enabled_metrics" => Value::strs(ENABLED_METRICS),
            "max_instance_lifetime" => lifetime,
            "max_size" => spec.max_size.unwrap_or(1),
            "metrics_granularity" => "1Minute",
            "min_size" => spec.min_size.unwrap_or(1),
            "name" => object.to_string(),
            "protect_from_scale_in" => spec.instance_protection.unwrap_or(false),
            "tag" => Value::Blocks(asg_tags),
            "vpc_zone_identifier" => Value::List(subnets.iter().map(|s| self.subnet_id(s)).collect()),
        };
        match &spec.mixed_instances_policy {
            Some(mixed) => {
                asg.insert(
                    "mixed_instances_policy".into(),
                    mixed_instances_policy(spec, mixed, lt_addr),
                );
            }
            None => {
                asg.insert("launch_template".into(), launch_template);
            }
        }
        if spec.capacity_rebalance == Some(true) {
            asg.insert("capacity_rebalance".into(), Value::Bool(true));
        }
        if let Some(processes) = spec.suspend_processes.as_ref().filter(|p| !p.is_empty()) {
            // A set in AWS and in Terraform: sorted, so the plan compares it as one.
            let mut processes = processes.clone();
            processes.sort();
            processes.dedup();
            asg.insert("suspended_processes".into(), Value::strs(processes));
        }
        let target_group = match role {
            Role::ControlPlane => self.api_target_group(),
            Role::Bastion => self.bastion_target_group(),
            _ => None,
        };
        if let Some(tg) = target_group {
            asg.insert("target_group_arns".into(), Value::List(vec![tg.id()]));
        }
        if let Some(pool) = &self.group_warm_pool(group, role) {
            add_warm_pool(&mut asg, pool);
        }
        Ok(asg)
    }

    /// A group's warm pool: its own, else (for nodes) the cluster's; none when its
    /// `maxSize` is 0 (kops's way of turning the cluster's off for a group).
    pub(crate) fn group_warm_pool(&self, group: &InstanceGroup, role: Role) -> Option<WarmPool> {
        group
            .spec
            .warm_pool
            .clone()
            .or_else(|| {
                (role == Role::Node)
                    .then(|| self.spec.warm_pool.clone())
                    .flatten()
            })
            .filter(|pool| pool.max_size != Some(0))
    }

    /// The auto scaling group's lifecycle hooks: the termination handler's when its queue is
    /// enabled, and `kops-warmpool` when the warm pool asks for one.
    fn lifecycle_hooks(
        &mut self,
        group: &InstanceGroup,
        role: Role,
        asg_addr: &Address,
    ) -> Vec<Address> {
        let mut hooks = Vec::new();
        if self.nth_queue_enabled() {
            let hook = format!("{}-NTHLifecycleHook", group.metadata.name);
            hooks.push(self.add(
                "aws_autoscaling_lifecycle_hook",
                &hook,
                attrs! {
                    "autoscaling_group_name" => asg_addr.id(),
                    "default_result" => "CONTINUE",
                    "heartbeat_timeout" => 300,
                    "lifecycle_transition" => "autoscaling:EC2_INSTANCE_TERMINATING",
                    "name" => hook.clone(),
                },
            ));
        }
        if let Some(pool) = &self.group_warm_pool(group, role) {
            if pool.enable_lifecycle_hook == Some(true) {
                // The hook is named `kops-warmpool` in every group, as kops names it, so
                // instances complete it under the name they look for.
                hooks.push(self.add(
                    "aws_autoscaling_lifecycle_hook",
                    &format!("kops-warmpool-{}", group.metadata.name),
                    attrs! {
                        "autoscaling_group_name" => asg_addr.id(),
                        "default_result" => "ABANDON",
                        "heartbeat_timeout" => pool.lifecycle_hook_timeout.unwrap_or(600),
                        "lifecycle_transition" => "autoscaling:EC2_INSTANCE_LAUNCHING",
                        "name" => "kops-warmpool",
                    },
                ));
            }
        }
        hooks
    }

    pub(crate) fn cluster_outputs(&mut self) {
        let mut out = BTreeMap::new();
        out.insert("cluster_name".to_string(), Value::str(&self.name));
        out.insert("region".to_string(), Value::str(&self.region));
        out.insert("vpc_id".to_string(), self.vpc_id());
        let asgs = |b: &Self, role: Role| -> Value {
            Value::List(
                b.groups_with(role)
                    .filter(|g| g.spec.manager.as_deref() != Some("Karpenter"))
                    .map(|g| {
                        Address::new("aws_autoscaling_group", &tf_name(&b.group_object_name(g)))
                            .id()
                    })
                    .collect(),
            )
        };
        // Per role, as kops names them: the groups, the security groups and the role.
        for (role, asg_key, sg_key, sg_role, role_key) in [
            (Role::ControlPlane, "master", "master", "masters", "masters"),
            (Role::Node, "node", "node", "nodes", "nodes"),
            (
                Role::ApiServer,
                "apiserver",
                "apiserver",
                "masters",
                "apiservers",
            ),
            (Role::Bastion, "bastion", "bastion", "bastion", "bastions"),
        ] {
            let always = matches!(role, Role::ControlPlane | Role::Node);
            if !always && self.groups_with(role).next().is_none() {
                continue;
            }
            out.insert(format!("{asg_key}_autoscaling_group_ids"), asgs(self, role));
            // Every group of the role's: IDs given in the spec first, then the cluster's.
            let mut given = BTreeSet::new();
            let mut own = vec![self.sg_address(sg_role).id()];
            for group in self.groups_with(role) {
                for sg in self.group_security_groups(group, role, sg_role) {
                    match sg.as_str() {
                        Some(id) => {
                            given.insert(id.to_string());
                        }
                        None if !own.contains(&sg) => own.push(sg),
                        None => {}
                    }
                }
            }
            let mut ids: Vec<Value> = given.into_iter().map(Value::Str).collect();
            ids.extend(own);
            out.insert(format!("{sg_key}_security_group_ids"), Value::List(ids));
            let addr = self.role_address(role);
            if self.has(&addr) {
                out.insert(format!("{role_key}_role_arn"), addr.attr("arn"));
                out.insert(format!("{role_key}_role_name"), addr.attr("name"));
            }
        }
        let mut node_subnets = Vec::new();
        for group in self.groups_with(Role::Node) {
            for name in group.spec.subnets.iter().flatten() {
                if let Some(subnet) = self.subnet(name) {
                    let id = self.subnet_id(subnet);
                    if !node_subnets.contains(&id) {
                        node_subnets.push(id);
                    }
                }
            }
        }
        out.insert("node_subnet_ids".into(), Value::List(node_subnets));
        for subnet in &self.subnets {
            let name = subnet.name.clone().unwrap_or_default();
            out.insert(format!("subnet_{name}_id"), self.subnet_id(subnet));
        }
        let mut shared_subnets: Vec<&str> = self
            .subnets
            .iter()
            .filter_map(|s| s.id.as_deref())
            .collect();
        shared_subnets.sort_unstable();
        if !shared_subnets.is_empty() {
            out.insert("subnet_ids".into(), Value::strs(shared_subnets));
        }
        let public_table = Address::new("aws_route_table", &tf_name(&self.name));
        if self.has(&public_table) {
            out.insert("route_table_public_id".into(), public_table.id());
        }
        let zones: BTreeSet<&str> = self
            .subnets
            .iter()
            .filter_map(|s| s.zone.as_deref())
            .collect();
        for zone in zones {
            let table = Address::new(
                "aws_route_table",
                &tf_name(&self.scoped(&format!("private-{zone}"))),
            );
            if self.has(&table) {
                out.insert(format!("route_table_private-{zone}_id"), table.id());
            }
        }
        let vpc = match &self.spec.network_id {
            // Read, never managed: a data source gives its blocks without a live lookup.
            Some(id) => self.add_data("aws_vpc", &self.name.clone(), attrs! { "id" => id.clone() }),
            None => Address::new("aws_vpc", &tf_name(&self.name)),
        };
        out.insert("vpc_cidr_block".into(), vpc.attr("cidr_block"));
        out.insert("vpc_ipv6_cidr_block".into(), vpc.attr("ipv6_cidr_block"));
        out.insert(
            "vpc_ipv6_cidr_length".into(),
            Value::Expr(
                r#"local.vpc_ipv6_cidr_block == "" ? null : tonumber(regex(".*/(\\d+)", local.vpc_ipv6_cidr_block)[0])"#
                    .into(),
            ),
        );
        self.outputs.extend(out);
    }
}

/// A group's block devices: the root volume with kops's defaults (encrypted, gp3, sized by
/// role), then the group's extra volumes.
fn block_device_mappings(spec: &InstanceGroupSpec, role: Role, root_device: Value) -> Vec<Attrs> {
    let volume_type = spec
        .root_volume_type
        .clone()
        .unwrap_or_else(|| "gp3".into());
    let mut ebs = attrs! {
        "delete_on_termination" => spec.root_volume_delete_on_termination.unwrap_or(true),
        "encrypted" => spec.root_volume_encryption.unwrap_or(true),
        "volume_size" => spec.root_volume_size.unwrap_or(match role { Role::ControlPlane => 64, Role::Bastion => 32, _ => 128 }),
        "volume_type" => volume_type.clone(),
    };
    volume_performance(
        &mut ebs,
        &volume_type,
        spec.root_volume_iops,
        spec.root_volume_throughput,
    );
    if let Some(key) = &spec.root_volume_encryption_key {
        ebs.insert("kms_key_id".into(), Value::str(key));
    }
    let mut devices = vec![attrs! { "device_name" => root_device, "ebs" => Value::block(ebs) }];
    for volume in spec.volumes.iter().flatten() {
        let mut ebs = attrs! {
            "delete_on_termination" => volume.delete_on_termination.unwrap_or(true),
            "encrypted" => volume.encrypted.unwrap_or(false),
            "volume_size" => volume.size.unwrap_or(0),
            "volume_type" => volume.r#type.clone().unwrap_or_else(|| "gp3".into()),
        };
        if let Some(iops) = volume.iops {
            ebs.insert("iops".into(), Value::Int(iops));
        }
        if let Some(t) = volume.throughput {
            ebs.insert("throughput".into(), Value::Int(t));
        }
        devices.push(attrs! { "device_name" => volume.device.clone().unwrap_or_default(), "ebs" => Value::block(ebs) });
    }
    devices
}

/// The auto scaling group's mixed instances policy: the on-demand and spot distribution, and
/// the launch template with one override per instance type.
fn mixed_instances_policy(
    spec: &InstanceGroupSpec,
    mixed: &MixedInstancesPolicy,
    lt_addr: &Address,
) -> Value {
    let overrides: Vec<Attrs> = mixed
        .instances
        .iter()
        .flatten()
        .map(|t| attrs! { "instance_type" => t.clone() })
        .collect();
    let mut distribution = attrs! {
        "on_demand_percentage_above_base_capacity" => mixed.on_demand_above_base.unwrap_or(100),
        // Empty: the on-demand price caps spot bids.
        "spot_max_price" => spec.max_price.clone().unwrap_or_default(),
    };
    if let Some(base) = mixed.on_demand_base {
        distribution.insert("on_demand_base_capacity".into(), Value::Int(base));
    }
    if let Some(strategy) = &mixed.spot_allocation_strategy {
        distribution.insert("spot_allocation_strategy".into(), Value::str(strategy));
    }
    if let Some(pools) = mixed.spot_instance_pools {
        distribution.insert("spot_instance_pools".into(), Value::Int(pools));
    }
    Value::block(attrs! {
        "instances_distribution" => Value::block(distribution),
        "launch_template" => Value::block(attrs! {
            "launch_template_specification" => Value::block(attrs! {
                "launch_template_id" => lt_addr.id(),
                "version" => lt_addr.attr("latest_version"),
            }),
            "override" => Value::Blocks(overrides),
        }),
    })
}

/// A warm pool on the auto scaling group: its sizes, and its metrics with the group's.
fn add_warm_pool(asg: &mut Attrs, pool: &WarmPool) {
    // Sorted, as the provider reads them back.
    let mut metrics: Vec<&str> = ENABLED_METRICS
        .iter()
        .chain(&WARM_POOL_METRICS)
        .copied()
        .collect();
    metrics.sort_unstable();
    asg.insert("enabled_metrics".into(), Value::strs(metrics));
    let mut w = attrs! { "min_size" => pool.min_size.unwrap_or(0) };
    if let Some(max) = pool.max_size {
        w.insert("max_group_prepared_capacity".into(), Value::Int(max));
    }
    asg.insert("warm_pool".into(), Value::block(w));
}

/// IOPS and throughput of an EBS volume: kops's gp3 baseline (3000 IOPS, 125 MiB/s) unless
/// the spec sets them; IOPS only for types that take it, throughput only for gp3.
fn volume_performance(
    attrs: &mut Attrs,
    volume_type: &str,
    iops: Option<i32>,
    throughput: Option<i32>,
) {
    if matches!(volume_type, "gp3" | "io1" | "io2") {
        attrs.insert("iops".into(), Value::Int(iops.map_or(3000, i64::from)));
    }
    if volume_type == "gp3" {
        attrs.insert(
            "throughput".into(),
            Value::Int(throughput.map_or(125, i64::from)),
        );
    }
}

/// Parses kops's duration strings (`168h`, `90m`, `3600s`, `1h30m`) into seconds.
fn parse_duration_seconds(text: &str) -> Result<i64, String> {
    if text == "0" {
        return Ok(0);
    }
    let mut total = 0i64;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let n: i64 = number
            .parse()
            .map_err(|_| format!("{text:?} is not a duration such as 168h or 90m"))?;
        number.clear();
        total += n * match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return Err(format!("{text:?} is not a duration such as 168h or 90m")),
        };
    }
    if !number.is_empty() {
        return Err(format!("{text:?} has no unit; write e.g. 168h"));
    }
    Ok(total)
}
