//! `get instances`: the instances of each group (its warm pool's included), their state, and
//! whether they run the group's current launch-template version (what `rolling-update`
//! replaces). Three paginated calls whatever the size of the cluster (groups, launch
//! templates, instances), plus one per group with a warm pool.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::{Aws, Error};

/// One instance of an auto scaling group of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceInfo {
    /// The EC2 instance ID.
    pub id: String,
    /// The kops instance group (tag `kops.k8s.io/instancegroup`), else the ASG name.
    pub instance_group: String,
    /// The group's role (tag `k8s.io/role/<role>`): `control-plane`, `node`, ...
    pub role: String,
    /// `UpToDate` when the instance runs the group's current launch-template version,
    /// `NeedsUpdate` otherwise (kops's words).
    pub status: String,
    /// The auto scaling lifecycle state (InService, Pending, Terminating...).
    pub state: String,
    /// Auto Scaling's health check status (`Healthy`, `Unhealthy`).
    pub health: String,
    /// The availability zone.
    pub zone: String,
    /// The instance type.
    pub machine_type: String,
    /// The private IPv4 address (empty while pending).
    pub internal_ip: String,
    /// The launch-template version it was launched with.
    pub launch_template_version: String,
    /// The version its group launches now.
    pub current_version: String,
}

/// An auto scaling group of the cluster as `validate cluster` reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSize {
    /// The kops instance group.
    pub instance_group: String,
    /// Its role (`control-plane`, `node`, `bastion`, `apiserver`...).
    pub role: String,
    /// The desired capacity.
    pub desired: u32,
    /// The instances in the group.
    pub instances: Vec<String>,
}

/// The instance group (tag `kops.k8s.io/instancegroup`, else the ASG name) and the role
/// (tag `k8s.io/role/<role>`) of an auto scaling group.
pub(crate) fn identity(group: &aws_sdk_autoscaling::types::AutoScalingGroup) -> (String, String) {
    let name = group.auto_scaling_group_name().unwrap_or_default();
    let instance_group = group
        .tags()
        .iter()
        .find(|t| t.key() == Some("kops.k8s.io/instancegroup"))
        .and_then(|t| t.value())
        .map_or_else(|| name.to_string(), str::to_string);
    let role = group
        .tags()
        .iter()
        .filter_map(|t| t.key()?.strip_prefix("k8s.io/role/"))
        .next()
        .unwrap_or("node")
        .to_string();
    (instance_group, role)
}

impl Aws {
    /// The cluster's groups with their desired capacity and instances: one paginated call.
    pub async fn group_sizes(&self, cluster: &str) -> Result<Vec<GroupSize>, Error> {
        Ok(self
            .cluster_groups(cluster)
            .await?
            .iter()
            .map(|g| {
                let (instance_group, role) = identity(g);
                GroupSize {
                    instance_group,
                    role,
                    desired: g.desired_capacity().unwrap_or(0).max(0) as u32,
                    instances: g
                        .instances()
                        .iter()
                        .filter_map(|i| i.instance_id().map(str::to_string))
                        .collect(),
                }
            })
            .collect())
    }

    /// The instances in the warm pools of `groups`, by auto scaling group name: one
    /// paginated DescribeWarmPool per group that has a pool, together (none otherwise).
    pub(crate) async fn warm_pools(
        &self,
        groups: &[aws_sdk_autoscaling::types::AutoScalingGroup],
    ) -> Result<BTreeMap<String, Vec<aws_sdk_autoscaling::types::Instance>>, Error> {
        let pools = futures::future::try_join_all(
            groups
                .iter()
                .filter(|g| g.warm_pool_configuration().is_some())
                .filter_map(|g| g.auto_scaling_group_name())
                .map(|name| async move {
                    let request = self
                        .autoscaling
                        .describe_warm_pool()
                        .auto_scaling_group_name(name);
                    Ok::<_, Error>((name.to_string(), all_pages!(self, request, instances)))
                }),
        )
        .await?;
        Ok(pools.into_iter().collect())
    }

    /// The cluster's instances (warm-pool instances included), by group then ID.
    pub async fn instances(&self, cluster: &str) -> Result<Vec<InstanceInfo>, Error> {
        let groups = self.cluster_groups(cluster);
        let details = async {
            let mut details = BTreeMap::new();
            let request = self
                .ec2
                .describe_instances()
                .filters(Self::ec2_filter(cluster))
                .max_results(1000);
            let reservations = all_pages!(self, request, reservations);
            for instance in reservations.iter().flat_map(|r| r.instances()) {
                details.insert(
                    instance.instance_id().unwrap_or_default().to_string(),
                    (
                        instance
                            .instance_type()
                            .map(|t| t.as_str().to_string())
                            .unwrap_or_default(),
                        instance
                            .private_ip_address()
                            .unwrap_or_default()
                            .to_string(),
                    ),
                );
            }
            Ok::<_, Error>(details)
        };
        let templates = template_versions(self, cluster);
        let (groups, templates, details) = tokio::try_join!(groups, templates, details)?;
        let warm = self.warm_pools(&groups).await?;

        let mut out = Vec::new();
        for group in &groups {
            let (instance_group, role) = identity(group);
            let (lt_id, group_version) = group_template(group);
            let (latest, default) = templates.get(lt_id).copied().unwrap_or((0, 0));
            // The warm pool's instances too, in their `Warmed:*` state (kops lists them).
            let pool = group
                .auto_scaling_group_name()
                .and_then(|name| warm.get(name))
                .into_iter()
                .flatten();
            for instance in group.instances().iter().chain(pool) {
                let id = instance.instance_id().unwrap_or_default().to_string();
                let version = instance
                    .launch_template()
                    .and_then(|l| l.version())
                    .unwrap_or_default()
                    .to_string();
                let (status, current) = status(group_version, &version, latest, default);
                let (machine_type, internal_ip) = details.get(&id).cloned().unwrap_or_else(|| {
                    (
                        instance.instance_type().unwrap_or_default().to_string(),
                        String::new(),
                    )
                });
                out.push(InstanceInfo {
                    status: status.into(),
                    state: instance
                        .lifecycle_state()
                        .map(|s| s.as_str().to_string())
                        .unwrap_or_default(),
                    health: instance.health_status().unwrap_or_default().to_string(),
                    zone: instance.availability_zone().unwrap_or_default().to_string(),
                    machine_type,
                    internal_ip,
                    launch_template_version: version,
                    current_version: current.to_string(),
                    instance_group: instance_group.clone(),
                    role: role.clone(),
                    id,
                });
            }
        }
        out.sort_by(|a, b| (&a.instance_group, &a.id).cmp(&(&b.instance_group, &b.id)));
        Ok(out)
    }
}

/// The launch template a group launches from and the version it asks for: its own, or its
/// mixed instances policy's.
pub(crate) fn group_template(
    group: &aws_sdk_autoscaling::types::AutoScalingGroup,
) -> (&str, Option<&str>) {
    let spec = group
        .launch_template()
        .map(|l| (l.launch_template_id(), l.version()))
        .or_else(|| {
            let s = group
                .mixed_instances_policy()?
                .launch_template()?
                .launch_template_specification()?;
            Some((s.launch_template_id(), s.version()))
        });
    match spec {
        Some((id, version)) => (id.unwrap_or_default(), version),
        None => ("", None),
    }
}

/// The latest and default version numbers of the cluster's launch templates, by ID: one
/// paginated call.
pub(crate) async fn template_versions(
    aws: &Aws,
    cluster: &str,
) -> Result<BTreeMap<String, (i64, i64)>, Error> {
    let mut versions = BTreeMap::new();
    for lt in aws.cluster_launch_templates(cluster).await? {
        versions.insert(
            lt.launch_template_id().unwrap_or_default().to_string(),
            (
                lt.latest_version_number().unwrap_or(1),
                lt.default_version_number().unwrap_or(1),
            ),
        );
    }
    Ok(versions)
}

/// A launch-template version as a number: `$Latest` and `$Default` resolved, -1 when it is
/// not a version.
pub(crate) fn version_of(version: &str, latest: i64, default: i64) -> i64 {
    match version {
        "$Latest" => latest,
        "$Default" => default,
        v => v.parse().unwrap_or(-1),
    }
}

/// Whether an instance launched with launch-template version `instance` runs the version its
/// group launches now (`group`: a number, `$Latest` or `$Default`); and that version.
fn status(group: Option<&str>, instance: &str, latest: i64, default: i64) -> (&'static str, i64) {
    let resolve = |v: &str| version_of(v, latest, default);
    let current = group.map(resolve).unwrap_or(latest);
    let status = match current > 0 && resolve(instance) == current {
        true => "UpToDate",
        false => "NeedsUpdate",
    };
    (status, current)
}

#[cfg(test)]
mod tests {
    use super::status;

    #[test]
    fn instances_on_an_older_version_need_an_update() {
        assert_eq!(status(Some("2"), "2", 2, 1), ("UpToDate", 2));
        assert_eq!(status(Some("2"), "1", 2, 1), ("NeedsUpdate", 2));
        // A group on $Latest: instances launched with an older number need an update.
        assert_eq!(status(Some("$Latest"), "3", 3, 1), ("UpToDate", 3));
        assert_eq!(status(Some("$Latest"), "2", 3, 1), ("NeedsUpdate", 3));
        assert_eq!(status(Some("$Default"), "1", 3, 1), ("UpToDate", 1));
        // Unknown versions are never reported up to date.
        assert_eq!(status(Some("2"), "", 2, 1), ("NeedsUpdate", 2));
        assert_eq!(status(None, "1", 0, 0), ("NeedsUpdate", 0));
    }
}
