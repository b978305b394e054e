//! Auto scaling groups and their lifecycle hooks: one paginated DescribeAutoScalingGroups
//! by the cluster tag returns the groups with their tags, and each hook kopsrs made is
//! recorded in a tag of its group ([`HOOK_TAG_PREFIX`]), so a plan needs no
//! DescribeLifecycleHooks per group.

use aws_sdk_autoscaling::types as asgt;
use kopsrs_engine::{Change, Observed};
use kopsrs_model::{Attrs, Value};
use serde_json::{Map, Value as Json};

use crate::handler::{exists_ok, outputs, owned_by, tag_map, Handler, Item, Op, Out, Scan, R};
use crate::kind::Kind;
use crate::resolve::{block, blocks, bool_of, int_of, str_of, strs_of};
use crate::{Aws, Error, Outputs};

/// An auto scaling group records each lifecycle hook kopsrs made in a tag
/// `<HOOK_TAG_PREFIX><hook name>`.
pub(crate) const HOOK_TAG_PREFIX: &str = "kopsrs.k8s.io/lifecycle-hook/";

/// `aws_autoscaling_group`; discovery also finds its recorded hooks.
pub(crate) struct Group;

impl Handler for Group {
    /// CreateAutoScalingGroup, then metrics, suspended processes and warm pool when set.
    const CREATE_CALLS: usize = 2;

    fn key(r: &R) -> Option<String> {
        str_of(r, "name").map(str::to_string)
    }

    fn forces_replacement(attr: &str) -> bool {
        attr == "name"
    }

    /// Discovery reports a warm pool, suspended processes and collected metrics only when
    /// the group has them.
    fn always_reported(attr: &str) -> bool {
        matches!(
            attr,
            "warm_pool" | "suspended_processes" | "enabled_metrics"
        )
    }

    async fn discover(scan: &Scan<'_>) -> Result<Vec<Item>, Error> {
        let mut items = Vec::new();
        for group in &scan.aws.cluster_groups(scan.cluster).await? {
            items.extend(group_items(group, scan.cluster));
        }
        Ok(items)
    }

    async fn create(op: &Op<'_>) -> Result<Out, Error> {
        let (r, name) = (op.r, op.s("name"));
        let request = op
            .aws
            .autoscaling
            .create_auto_scaling_group()
            .auto_scaling_group_name(&name)
            .min_size(int_of(r, "min_size").unwrap_or(0) as i32)
            .max_size(int_of(r, "max_size").unwrap_or(0) as i32)
            .vpc_zone_identifier(strs_of(r, "vpc_zone_identifier").join(","))
            .set_target_group_arns(Some(strs_of(r, "target_group_arns")).filter(|v| !v.is_empty()))
            .set_max_instance_lifetime(
                int_of(r, "max_instance_lifetime")
                    .filter(|v| *v > 0)
                    .map(|v| v as i32),
            )
            .set_new_instances_protected_from_scale_in(bool_of(r, "protect_from_scale_in"))
            .set_launch_template(block(r, "launch_template").map(|lt| lt_spec(lt, "id")))
            .set_mixed_instances_policy(mixed_instances_policy(r))
            .set_capacity_rebalance(bool_of(r, "capacity_rebalance"))
            .set_tags(Some(group_tags(r, &name)));
        // Created by a run that was killed before it recorded it: the group exists.
        let sent = request.send().await.map(|_| ()).map_err(Error::from);
        exists_ok(sent, "AlreadyExists")?;
        group_settings(op.aws, &name, r).await?;
        Ok(outputs(&[("id", &name), ("name", &name)]))
    }

    async fn update(op: &Op<'_>, id: &str, change: &Change) -> Result<Out, Error> {
        let r = op.r;
        op.aws
            .autoscaling
            .update_auto_scaling_group()
            .auto_scaling_group_name(id)
            .min_size(int_of(r, "min_size").unwrap_or(0) as i32)
            .max_size(int_of(r, "max_size").unwrap_or(0) as i32)
            .set_mixed_instances_policy(mixed_instances_policy(r))
            .set_launch_template(block(r, "launch_template").map(|lt| lt_spec(lt, "id")))
            .send()
            .await?;
        // The plan's fields of a list or block attribute, as it found and wants them.
        let changed = |attr: &str| {
            change
                .fields
                .iter()
                .find(|f| f.path == attr || f.path.starts_with(&format!("{attr}[")))
        };
        if let Some(field) = changed("suspended_processes") {
            // Resumed: those suspended before and no longer wanted; the others stay.
            let resume = dropped(field, &strs_of(r, "suspended_processes"));
            if !resume.is_empty() {
                op.aws.call();
                op.aws
                    .autoscaling
                    .resume_processes()
                    .auto_scaling_group_name(id)
                    .set_scaling_processes(Some(resume))
                    .send()
                    .await?;
            }
            suspend(op.aws, id, r).await?;
        }
        if let Some(field) = changed("enabled_metrics") {
            // Collected: those wanted (a warm pool adds its own); stopped: those no longer.
            let stop = dropped(field, &strs_of(r, "enabled_metrics"));
            if !stop.is_empty() {
                op.aws.call();
                op.aws
                    .autoscaling
                    .disable_metrics_collection()
                    .auto_scaling_group_name(id)
                    .set_metrics(Some(stop))
                    .send()
                    .await?;
            }
            metrics(op.aws, id, r).await?;
        }
        if changed("warm_pool").is_some() {
            match block(r, "warm_pool") {
                Some(pool) => put_warm_pool(op.aws, id, pool).await?,
                None => {
                    // Its instances go with it (they never joined).
                    op.aws.call();
                    op.aws
                        .autoscaling
                        .delete_warm_pool()
                        .auto_scaling_group_name(id)
                        .force_delete(true)
                        .send()
                        .await?;
                }
            }
        }
        if change.fields.iter().any(|f| f.path.starts_with("tag[")) {
            op.aws.call();
            op.aws
                .autoscaling
                .create_or_update_tags()
                .set_tags(Some(group_tags(r, id)))
                .send()
                .await?;
        }
        Ok(Out::new())
    }

    async fn delete(aws: &Aws, id: &str, _found: &Out) -> Result<(), Error> {
        aws.autoscaling
            .delete_auto_scaling_group()
            .auto_scaling_group_name(id)
            .force_delete(true)
            .send()
            .await?;
        Ok(())
    }
}

/// A group and its recorded hooks as found.
fn group_items(group: &asgt::AutoScalingGroup, cluster: &str) -> Vec<Item> {
    let name = group.auto_scaling_group_name().unwrap_or_default();
    let tags = tag_map(
        group
            .tags()
            .iter()
            .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default())),
    );
    let owned = owned_by(&tags, cluster);
    let mut items = Vec::new();
    let mut tag_blocks: Vec<Attrs> = Vec::new();
    for t in group.tags() {
        let key = t.key().unwrap_or_default();
        if let Some(hook) = key.strip_prefix(HOOK_TAG_PREFIX) {
            let id = format!("{name}|{hook}");
            items.push(Item::new(Kind::LifecycleHook, &id, &id).owned(owned));
            continue;
        }
        tag_blocks.push(kopsrs_model::attrs! {
            "key" => key,
            "propagate_at_launch" => t.propagate_at_launch().unwrap_or(false),
            "value" => t.value().unwrap_or_default(),
        });
    }
    tag_blocks.sort_by(|a, b| a["key"].as_str().cmp(&b["key"].as_str()));
    let mut item = Item::new(Kind::AutoscalingGroup, name, name)
        .owned(owned)
        .with(&[
            ("arn", group.auto_scaling_group_arn().unwrap_or_default()),
            ("name", name),
        ]);
    item.attrs = kopsrs_model::attrs! {
        "max_size" => i64::from(group.max_size().unwrap_or(0)),
        "min_size" => i64::from(group.min_size().unwrap_or(0)),
        "tag" => Value::Blocks(tag_blocks),
    };
    if let Some(lt) = group.launch_template() {
        item.attrs.insert(
            "launch_template".into(),
            Value::block(kopsrs_model::attrs! {
                "id" => lt.launch_template_id().unwrap_or_default(),
                "version" => lt.version().unwrap_or_default(),
            }),
        );
    }
    if let Some(policy) = group.mixed_instances_policy() {
        item.attrs
            .insert("mixed_instances_policy".into(), mixed_policy_attrs(policy));
    }
    if let Some(pool) = group.warm_pool_configuration() {
        let mut w = kopsrs_model::attrs! { "min_size" => i64::from(pool.min_size().unwrap_or(0)) };
        // -1 is AWS's "not set" (the group's maximum is the limit).
        if let Some(max) = pool.max_group_prepared_capacity().filter(|m| *m >= 0) {
            w.insert(
                "max_group_prepared_capacity".into(),
                Value::Int(i64::from(max)),
            );
        }
        item.attrs.insert("warm_pool".into(), Value::block(w));
    }
    let mut metrics: Vec<String> = group
        .enabled_metrics()
        .iter()
        .filter_map(|m| m.metric().map(str::to_string))
        .collect();
    if !metrics.is_empty() {
        // Sorted, as the model writes them.
        metrics.sort();
        metrics.dedup();
        item.attrs
            .insert("enabled_metrics".into(), Value::strs(metrics));
    }
    let mut suspended: Vec<String> = group
        .suspended_processes()
        .iter()
        .filter_map(|p| p.process_name().map(str::to_string))
        .collect();
    if !suspended.is_empty() {
        // A set in AWS: compared in the model's order (sorted).
        suspended.sort();
        item.attrs
            .insert("suspended_processes".into(), Value::strs(suspended));
    }
    items.push(item);
    items
}

/// A group's `tag` blocks as the Auto Scaling API takes them.
fn group_tags(r: &R, group: &str) -> Vec<asgt::Tag> {
    blocks(r, "tag")
        .into_iter()
        .map(|tag| {
            asgt::Tag::builder()
                .key(str_of(tag, "key").unwrap_or_default())
                .value(str_of(tag, "value").unwrap_or_default())
                .propagate_at_launch(bool_of(tag, "propagate_at_launch").unwrap_or(true))
                .resource_id(group)
                .resource_type("auto-scaling-group")
                .build()
        })
        .collect()
}

impl Aws {
    /// The cluster's auto scaling groups: DescribeAutoScalingGroups filtered by the cluster
    /// tag, every page (used by discovery and by `get instances`).
    pub(crate) async fn cluster_groups(
        &self,
        cluster: &str,
    ) -> Result<Vec<asgt::AutoScalingGroup>, Error> {
        // Auto Scaling's filters take no wildcard: a fleet reads every group of the region.
        let filter = (!self.in_fleet()).then(|| {
            asgt::Filter::builder()
                .name("tag-key")
                .values(Self::cluster_tag(cluster))
                .build()
        });
        let key = format!("autoscaling:DescribeAutoScalingGroups {filter:?}");
        let all = self
            .shared_read(key, |aws| async move {
                let request = aws
                    .autoscaling
                    .describe_auto_scaling_groups()
                    .max_records(100)
                    .set_filters(filter.map(|f| vec![f]));
                Ok(all_pages!(aws, request, auto_scaling_groups))
            })
            .await?;
        Ok(crate::fleet::keep(&all, cluster))
    }
}

/// `aws_autoscaling_lifecycle_hook`, found through its group's record tags.
pub(crate) struct Hook;

impl Handler for Hook {
    /// Put the hook, then record it on the group.
    const CREATE_CALLS: usize = 2;
    /// Delete the hook, then forget the record.
    const DELETE_CALLS: usize = 2;

    fn key(r: &R) -> Option<String> {
        Some(format!(
            "{}|{}",
            str_of(r, "autoscaling_group_name")?,
            str_of(r, "name")?
        ))
    }

    async fn create(op: &Op<'_>) -> Result<Out, Error> {
        let (group, name) = (op.s("autoscaling_group_name"), op.s("name"));
        let r = op.r;
        op.aws
            .autoscaling
            .put_lifecycle_hook()
            .auto_scaling_group_name(&group)
            .lifecycle_hook_name(&name)
            .set_lifecycle_transition(str_of(r, "lifecycle_transition").map(str::to_string))
            .set_default_result(str_of(r, "default_result").map(str::to_string))
            .set_heartbeat_timeout(int_of(r, "heartbeat_timeout").map(|v| v as i32))
            .send()
            .await?;
        record_hook(op.aws, &group, &name, true).await?;
        Ok(outputs(&[("id", &format!("{group}|{name}"))]))
    }

    async fn delete(aws: &Aws, id: &str, _found: &Out) -> Result<(), Error> {
        let (group, hook) = id.split_once('|').unwrap_or((id, ""));
        aws.autoscaling
            .delete_lifecycle_hook()
            .auto_scaling_group_name(group)
            .lifecycle_hook_name(hook)
            .send()
            .await?;
        record_hook(aws, group, hook, false).await
    }
}

/// Records (or forgets) a lifecycle hook in its group's tags. One tag per hook: no
/// read-modify-write, so hooks of one group can be recorded at once. Recorded after the hook
/// is made and forgotten after it is deleted, so a crash in between leaves a hook the next
/// plan puts again (PutLifecycleHook is an upsert).
async fn record_hook(aws: &Aws, group: &str, hook: &str, add: bool) -> Result<(), Error> {
    let tag = asgt::Tag::builder()
        .key(format!("{HOOK_TAG_PREFIX}{hook}"))
        .value("owned")
        .propagate_at_launch(false)
        .resource_id(group)
        .resource_type("auto-scaling-group")
        .build();
    aws.call();
    match add {
        true => {
            aws.autoscaling
                .create_or_update_tags()
                .tags(tag)
                .send()
                .await?;
        }
        false => {
            aws.autoscaling.delete_tags().tags(tag).send().await?;
        }
    }
    Ok(())
}

/// Groups on their template's latest version show that version as the reference the model
/// writes (`latest_version` of the template), so a group on the latest version shows no
/// change.
pub(crate) fn versions_as_references(observed: &mut [Observed], outputs: &Outputs) {
    for observed in observed {
        if observed.resource.address.kind != Kind::AutoscalingGroup.as_str() {
            continue;
        }
        let attrs = &mut observed.resource.attrs;
        if let Some(Value::Blocks(blocks)) = attrs.get_mut("launch_template") {
            for block in blocks {
                latest_version_as_reference(block, "id", outputs);
            }
        }
        if let Some(spec) = mixed_policy_spec(attrs) {
            latest_version_as_reference(spec, "launch_template_id", outputs);
        }
    }
}

/// A group's mixed-instances policy in the model's shape (what the plan compares: the
/// launch template and its version, the instance types, the distribution).
fn mixed_policy_attrs(policy: &asgt::MixedInstancesPolicy) -> Value {
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
        // Absent: capped at the on-demand price, which the model writes as "".
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
/// template's latest.
fn latest_version_as_reference(block: &mut Attrs, id_key: &str, outputs: &Outputs) {
    let (Some(Value::Str(lt_id)), Some(Value::Str(version))) =
        (block.get(id_key).cloned(), block.get("version").cloned())
    else {
        return;
    };
    let lt = outputs
        .iter()
        .find(|(a, o)| a.kind == Kind::LaunchTemplate.as_str() && o.get("id") == Some(&lt_id));
    if let Some((address, o)) = lt {
        if o.get("latest_version") == Some(&version) {
            block.insert("version".into(), address.attr("latest_version"));
        }
    }
}

/// A launch template reference (`{id_key, version}`) as the Auto Scaling API takes it.
fn lt_spec(lt: &Map<String, Json>, id_key: &str) -> asgt::LaunchTemplateSpecification {
    asgt::LaunchTemplateSpecification::builder()
        .set_launch_template_id(str_of(lt, id_key).map(str::to_string))
        .set_version(str_of(lt, "version").map(str::to_string))
        .build()
}
/// A group's `mixed_instances_policy` block as the Auto Scaling API takes it.
fn mixed_instances_policy(
    r: &Map<String, Json>,
) -> Option<aws_sdk_autoscaling::types::MixedInstancesPolicy> {
    use asgt::{
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
                    .launch_template_specification(lt_spec(spec, "launch_template_id"))
                    .set_overrides(Some(overrides))
                    .build(),
            )
            .set_instances_distribution(distribution)
            .build(),
    )
}
/// What CreateAutoScalingGroup does not take: metrics collection, suspended processes
/// and the warm pool. Each call is idempotent, so a rerun after a kill repeats them safely.
async fn group_settings(aws: &Aws, name: &str, r: &Map<String, Json>) -> Result<(), Error> {
    metrics(aws, name, r).await?;
    suspend(aws, name, r).await?;
    if let Some(pool) = block(r, "warm_pool") {
        put_warm_pool(aws, name, pool).await?;
    }
    Ok(())
}

/// The names a list attribute held before `field` changed it and no longer holds (the plan
/// prints a list as JSON: `["AZRebalance", "Terminate"]`).
fn dropped(field: &kopsrs_engine::FieldChange, wanted: &[String]) -> Vec<String> {
    field
        .before
        .as_deref()
        .and_then(|b| serde_json::from_str::<Vec<String>>(b).ok())
        .unwrap_or_default()
        .into_iter()
        .filter(|name| !wanted.contains(name))
        .collect()
}

/// Collects the metrics the group's `enabled_metrics` names (none: no call).
async fn metrics(aws: &Aws, name: &str, r: &Map<String, Json>) -> Result<(), Error> {
    let metrics = strs_of(r, "enabled_metrics");
    if !metrics.is_empty() {
        aws.call();
        aws.autoscaling
            .enable_metrics_collection()
            .auto_scaling_group_name(name)
            .granularity(str_of(r, "metrics_granularity").unwrap_or("1Minute"))
            .set_metrics(Some(metrics))
            .send()
            .await?;
    }
    Ok(())
}

/// Suspends the processes the group's `suspended_processes` names (none: no call).
async fn suspend(aws: &Aws, name: &str, r: &Map<String, Json>) -> Result<(), Error> {
    let suspended = strs_of(r, "suspended_processes");
    if !suspended.is_empty() {
        aws.call();
        aws.autoscaling
            .suspend_processes()
            .auto_scaling_group_name(name)
            .set_scaling_processes(Some(suspended))
            .send()
            .await?;
    }
    Ok(())
}

/// Puts the group's warm pool (creates it, or changes its sizes in place).
async fn put_warm_pool(aws: &Aws, name: &str, pool: &Map<String, Json>) -> Result<(), Error> {
    aws.call();
    aws.autoscaling
        .put_warm_pool()
        .auto_scaling_group_name(name)
        .set_min_size(int_of(pool, "min_size").map(|v| v as i32))
        .set_max_group_prepared_capacity(
            int_of(pool, "max_group_prepared_capacity").map(|v| v as i32),
        )
        .send()
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_and_schema() {
        let r: R = serde_json::from_value(serde_json::json!({
            "name": "nodes.x.c", "autoscaling_group_name": "nodes.x.c", "min_size": 1
        }))
        .unwrap();
        assert_eq!(Group::key(&r).as_deref(), Some("nodes.x.c"));
        assert!(!Group::forces_replacement("min_size"));
        assert!(Group::forces_replacement("name"));
        let hook: R = serde_json::from_value(serde_json::json!({
            "autoscaling_group_name": "nodes.x.c", "name": "kops-warmpool"
        }))
        .unwrap();
        assert_eq!(Hook::key(&hook).as_deref(), Some("nodes.x.c|kops-warmpool"));
    }

    #[test]
    fn recorded_hooks_are_found_with_their_group_and_not_reported_as_tags() {
        let tag = |k: &str, v: &str| asgt::TagDescription::builder().key(k).value(v).build();
        let group = asgt::AutoScalingGroup::builder()
            .auto_scaling_group_name("nodes.x.c")
            .tags(tag("kubernetes.io/cluster/x.c", "owned"))
            .tags(tag(&format!("{HOOK_TAG_PREFIX}drain"), "owned"))
            .build();
        let items = group_items(&group, "x.c");
        assert_eq!(items[0].kind, Kind::LifecycleHook);
        assert_eq!(items[0].key, "nodes.x.c|drain");
        assert!(items[0].owned);
        let Some(Value::Blocks(tags)) = items[1].attrs.get("tag") else {
            panic!("no tags");
        };
        assert_eq!(tags.len(), 1);
    }
}
