//! What `rolling-update cluster` reads and does in AWS: the cluster's groups with each
//! instance's launch-template version and detached tag (three paginated calls whatever the
//! size of the cluster: groups, templates, instances; plus one per group with a warm pool,
//! for its warm instances), and the steps of a replacement: tag
//! and detach for a surge (desired capacity kept, so the group launches the replacement
//! first), deregister from the group's target groups, terminate.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_autoscaling::types as asgt;
use aws_sdk_ec2::types as ec2t;

use crate::instances::{group_template, identity, template_versions, version_of};
use kopsrs_engine::rolling::{RollingGroup, RollingInstance};

use crate::{Aws, Error};

/// The tag a surged instance carries from before it is detached until it is terminated, as
/// kops names it: a run interrupted in between finds it and finishes the instance.
pub const DETACHED_TAG: &str = "kops.k8s.io/detached-from-asg";

impl Aws {
    /// The cluster's groups, their instances and the running instances detached from them.
    pub async fn rolling_groups(&self, cluster: &str) -> Result<Vec<RollingGroup>, Error> {
        let running = async {
            let request = self
                .ec2
                .describe_instances()
                .filters(Self::ec2_filter(cluster))
                .filters(
                    ec2t::Filter::builder()
                        .name("instance-state-name")
                        .values("pending")
                        .values("running")
                        .build(),
                )
                .max_results(1000);
            let reservations = all_pages!(self, request, reservations);
            Ok::<_, Error>(
                reservations
                    .iter()
                    .flat_map(|r| r.instances())
                    .map(|i| {
                        let tag = |key: &str| {
                            i.tags()
                                .iter()
                                .find(|t| t.key() == Some(key))
                                .and_then(|t| t.value())
                                .map(str::to_string)
                        };
                        (
                            i.instance_id().unwrap_or_default().to_string(),
                            (
                                tag(DETACHED_TAG).is_some(),
                                tag("kops.k8s.io/instancegroup"),
                            ),
                        )
                    })
                    .collect::<BTreeMap<_, _>>(),
            )
        };
        let (groups, templates, running) = tokio::try_join!(
            self.cluster_groups(cluster),
            template_versions(self, cluster),
            running
        )?;
        let warm = self.warm_pools(&groups).await?;

        let in_groups: std::collections::BTreeSet<&str> = groups
            .iter()
            .flat_map(|g| g.instances())
            .filter_map(|i| i.instance_id())
            .collect();
        let mut out = Vec::new();
        for group in &groups {
            let (instance_group, role) = identity(group);
            let (lt_id, group_version) = group_template(group);
            let (latest, default) = templates.get(lt_id).copied().unwrap_or((0, 0));
            let resolve = |v: Option<&str>| version_of(v.unwrap_or("$Latest"), latest, default);
            // An instance of the group (`in_group`) or of its warm pool, as the roll sees it.
            let rolling_instance = |i: &asgt::Instance, in_group: bool| {
                let id = i.instance_id()?.to_string();
                Some(RollingInstance {
                    template_version: i
                        .launch_template()
                        .and_then(|l| l.version())
                        .map(|v| resolve(Some(v)).to_string()),
                    detached: in_group && running.get(&id).is_some_and(|(d, _)| *d),
                    in_group,
                    lifecycle: i
                        .lifecycle_state()
                        .map(|s| s.as_str().to_string())
                        .unwrap_or_default(),
                    id,
                })
            };
            let mut instances: Vec<RollingInstance> = group
                .instances()
                .iter()
                .filter_map(|i| rolling_instance(i, true))
                .collect();
            // Detached instances of this group still running (not in any group any more).
            for (id, (detached, ig)) in &running {
                if *detached
                    && ig.as_deref() == Some(instance_group.as_str())
                    && !in_groups.contains(id.as_str())
                {
                    instances.push(RollingInstance {
                        id: id.clone(),
                        template_version: None,
                        detached: true,
                        in_group: false,
                        lifecycle: String::new(),
                    });
                }
            }
            instances.sort_by(|a, b| a.id.cmp(&b.id));
            let mut warm: Vec<RollingInstance> = group
                .auto_scaling_group_name()
                .and_then(|name| warm.get(name))
                .into_iter()
                .flatten()
                .filter_map(|i| rolling_instance(i, false))
                .collect();
            warm.sort_by(|a, b| a.id.cmp(&b.id));
            out.push(RollingGroup {
                asg: group
                    .auto_scaling_group_name()
                    .unwrap_or_default()
                    .to_string(),
                instance_group,
                role,
                template_version: resolve(group_version).to_string(),
                min: group.min_size().unwrap_or(0).max(0) as u32,
                desired: group.desired_capacity().unwrap_or(0).max(0) as u32,
                max: group.max_size().unwrap_or(0).max(0) as u32,
                target_groups: group.target_group_arns().to_vec(),
                instances,
                warm,
            });
        }
        out.sort_by(|a, b| a.instance_group.cmp(&b.instance_group));
        Ok(out)
    }

    /// Surges `ids` out of `asg`: tags them detached first (so an interrupted run knows
    /// them), then detaches them keeping the desired capacity, so the group launches their
    /// replacements while they still serve.
    pub async fn detach_for_surge(&self, asg: &str, ids: &[String]) -> Result<(), Error> {
        if ids.is_empty() {
            return Ok(());
        }
        self.changed();
        self.call();
        self.ec2
            .create_tags()
            .set_resources(Some(ids.to_vec()))
            .tags(ec2t::Tag::builder().key(DETACHED_TAG).value("true").build())
            .send()
            .await?;
        // DetachInstances takes at most 20 instances.
        for chunk in ids.chunks(20) {
            self.call();
            self.autoscaling
                .detach_instances()
                .auto_scaling_group_name(asg)
                .set_instance_ids(Some(chunk.to_vec()))
                .should_decrement_desired_capacity(false)
                .send()
                .await?;
        }
        Ok(())
    }

    /// Takes `id` out of `target_groups` and waits (up to `timeout`) until none lists it
    /// any more, so the load balancer stops sending it new connections before it is drained.
    pub async fn deregister_targets(
        &self,
        target_groups: &[String],
        id: &str,
        timeout: Duration,
    ) -> Result<(), Error> {
        let target = || {
            aws_sdk_elasticloadbalancingv2::types::TargetDescription::builder()
                .id(id)
                .build()
        };
        for arn in target_groups {
            if !self.registered(arn, id).await? {
                continue;
            }
            self.call();
            self.elb
                .deregister_targets()
                .target_group_arn(arn)
                .targets(target())
                .send()
                .await?;
            let deadline = Instant::now() + timeout;
            while self.registered(arn, id).await? && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
        Ok(())
    }

    /// Whether `id` is a target of `target_group` (in any state but `unused`).
    async fn registered(&self, target_group: &str, id: &str) -> Result<bool, Error> {
        self.call();
        let health = self
            .elb
            .describe_target_health()
            .target_group_arn(target_group)
            .send()
            .await?;
        Ok(health.target_health_descriptions().iter().any(|d| {
            d.target().and_then(|t| t.id()) == Some(id)
                && d.target_health()
                    .and_then(|h| h.state())
                    .map(|s| s.as_str())
                    != Some("unused")
        }))
    }

    /// Terminates `instance`: through its group without decrementing the desired capacity
    /// (the group launches a replacement) when it is in one, else directly (a detached
    /// instance, whose replacement was launched when it was detached).
    pub async fn terminate(&self, instance: &RollingInstance) -> Result<(), Error> {
        self.changed();
        self.call();
        if instance.in_group {
            self.autoscaling
                .terminate_instance_in_auto_scaling_group()
                .instance_id(&instance.id)
                .should_decrement_desired_capacity(false)
                .send()
                .await?;
        } else {
            self.ec2
                .terminate_instances()
                .instance_ids(&instance.id)
                .send()
                .await?;
        }
        Ok(())
    }
}

/// The cloud side of a rolling update of one cluster, for the driver in `kopsrs-ops`.
#[derive(Clone)]
pub struct ClusterGroups {
    /// The clients.
    pub aws: Aws,
    /// The cluster.
    pub cluster: String,
}

impl kopsrs_engine::rolling::CloudGroups for ClusterGroups {
    type Error = Error;

    async fn groups(&self) -> Result<Vec<RollingGroup>, Error> {
        self.aws.rolling_groups(&self.cluster).await
    }

    async fn detach(&self, asg: &str, ids: &[String]) -> Result<(), Error> {
        self.aws.detach_for_surge(asg, ids).await
    }

    async fn deregister(
        &self,
        target_groups: &[String],
        id: &str,
        timeout: Duration,
    ) -> Result<(), Error> {
        self.aws
            .deregister_targets(target_groups, id, timeout)
            .await
    }

    async fn terminate(&self, instance: &RollingInstance) -> Result<(), Error> {
        self.aws.terminate(instance).await
    }

    async fn capacity(&self, asg: &str) -> Result<kopsrs_engine::rolling::Capacity, Error> {
        self.aws.group_capacity(asg).await
    }
}

impl Aws {
    /// One auto scaling group's desired capacity and instances (one call).
    pub async fn group_capacity(
        &self,
        asg: &str,
    ) -> Result<kopsrs_engine::rolling::Capacity, Error> {
        let request = self
            .autoscaling
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(asg);
        let groups = all_pages!(self, request, auto_scaling_groups);
        let Some(group) = groups.first() else {
            return Ok(kopsrs_engine::rolling::Capacity::default());
        };
        Ok(kopsrs_engine::rolling::Capacity {
            desired: group.desired_capacity().unwrap_or(0).max(0) as u32,
            instances: group
                .instances()
                .iter()
                .filter_map(|i| {
                    let state = i.lifecycle_state().map(|s| s.as_str().to_string());
                    Some((i.instance_id()?.to_string(), state.unwrap_or_default()))
                })
                .collect(),
        })
    }
}
