//! Old launch-template versions: what `update cluster --prune` (and the last step of
//! `reconcile cluster`) deletes once a roll has moved every instance off them. Every update of
//! a group's content adds a version (AWS keeps up to 10,000 per template); the default, the
//! latest and every version an instance of the cluster still runs are kept.
//!
//! Reads: the cluster's templates and groups (one paginated call each), its instances outside
//! any group (one), and the versions of each template past its first (one call each).

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ec2::types as ec2t;

use crate::handler::{ec2_tags, owned_by};
use crate::instances::{group_template, identity, version_of};
use crate::{Aws, Error};

/// Versions of one launch template that nothing needs any more.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StaleVersions {
    /// The template's name.
    pub template: String,
    /// The template's ID.
    pub id: String,
    /// The version numbers, ascending.
    pub versions: Vec<i64>,
}

impl Aws {
    /// The versions of the cluster's launch templates that are neither the default nor the
    /// latest and that no instance of the cluster runs. A template is left alone while an
    /// instance of its group runs outside the group with a version AWS does not say (a
    /// detached instance without the `aws:ec2launchtemplate:version` tag).
    pub async fn stale_launch_template_versions(
        &self,
        cluster: &str,
    ) -> Result<Vec<StaleVersions>, Error> {
        let outside = async {
            let request = self
                .ec2
                .describe_instances()
                .filters(Self::ec2_filter(cluster))
                .filters(
                    ec2t::Filter::builder()
                        .name("instance-state-name")
                        .values("pending")
                        .values("running")
                        .values("stopping")
                        .values("stopped")
                        .build(),
                )
                .max_results(1000);
            Ok::<_, Error>(all_pages!(self, request, reservations))
        };
        let (templates, groups, reservations) = tokio::try_join!(
            self.cluster_launch_templates(cluster),
            self.cluster_groups(cluster),
            outside
        )?;
        // Per template ID: (name, latest, default) and the versions kept.
        let mut kept: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
        let mut facts: BTreeMap<String, (String, i64, i64)> = BTreeMap::new();
        // Only the templates the cluster owns: the key of its tag alone (a `shared` value,
        // another tool's template) proves nothing.
        for lt in templates
            .iter()
            .filter(|lt| owned_by(&ec2_tags(lt.tags()), cluster))
        {
            let id = lt.launch_template_id().unwrap_or_default().to_string();
            let latest = lt.latest_version_number().unwrap_or(1);
            let default = lt.default_version_number().unwrap_or(1);
            kept.entry(id.clone())
                .or_default()
                .extend([latest, default]);
            facts.insert(
                id,
                (
                    lt.launch_template_name().unwrap_or_default().to_string(),
                    latest,
                    default,
                ),
            );
        }
        let mut template_of_group: BTreeMap<String, String> = BTreeMap::new();
        let mut in_groups: BTreeSet<String> = BTreeSet::new();
        for group in &groups {
            let (lt_id, version) = group_template(group);
            let Some(&(_, latest, default)) = facts.get(lt_id) else {
                continue;
            };
            template_of_group.insert(identity(group).0, lt_id.to_string());
            kept.entry(lt_id.to_string())
                .or_default()
                .insert(version_of(version.unwrap_or("$Latest"), latest, default));
            for instance in group.instances() {
                in_groups.extend(instance.instance_id().map(str::to_string));
                // Kept under the template the instance was launched from, which after a
                // change of the group's template is not the group's.
                let spec = instance.launch_template();
                let own = spec.and_then(|l| l.launch_template_id()).unwrap_or(lt_id);
                let (own_latest, own_default) =
                    facts.get(own).map_or((latest, default), |f| (f.1, f.2));
                let v = spec.and_then(|l| l.version()).unwrap_or("$Latest");
                kept.entry(own.to_string()).or_default().insert(version_of(
                    v,
                    own_latest,
                    own_default,
                ));
            }
        }
        let mut unknown: BTreeSet<String> = BTreeSet::new();
        for instance in reservations.iter().flat_map(|r| r.instances()) {
            if in_groups.contains(instance.instance_id().unwrap_or_default()) {
                continue;
            }
            let tag = |key: &str| {
                instance
                    .tags()
                    .iter()
                    .find(|t| t.key() == Some(key))
                    .and_then(|t| t.value())
            };
            match (
                tag("aws:ec2launchtemplate:id"),
                tag("aws:ec2launchtemplate:version"),
            ) {
                (Some(id), Some(version)) => {
                    kept.entry(id.to_string())
                        .or_default()
                        .extend(version.parse::<i64>().ok());
                }
                _ => {
                    if let Some(lt) =
                        tag("kops.k8s.io/instancegroup").and_then(|g| template_of_group.get(g))
                    {
                        unknown.insert(lt.clone());
                    }
                }
            }
        }
        let mut stale = Vec::new();
        for (id, (name, latest, _)) in &facts {
            let keep = &kept[id];
            if unknown.contains(id) || (1..*latest).all(|v| keep.contains(&v)) {
                continue;
            }
            let request = self
                .ec2
                .describe_launch_template_versions()
                .launch_template_id(id)
                .max_results(200);
            let versions: Vec<i64> = all_pages!(self, request, launch_template_versions)
                .iter()
                .filter_map(|v| v.version_number())
                .filter(|v| !keep.contains(v))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            if !versions.is_empty() {
                stale.push(StaleVersions {
                    template: name.clone(),
                    id: id.clone(),
                    versions,
                });
            }
        }
        Ok(stale)
    }

    /// Deletes `stale` (200 versions a call, AWS's most); a version already gone counts as
    /// deleted. Returns how many were deleted.
    pub async fn delete_launch_template_versions(
        &self,
        stale: &[StaleVersions],
    ) -> Result<usize, Error> {
        if stale.iter().any(|t| !t.versions.is_empty()) {
            self.changed();
        }
        let mut deleted = 0;
        for template in stale {
            for chunk in template.versions.chunks(200) {
                self.call();
                let out = self
                    .ec2
                    .delete_launch_template_versions()
                    .launch_template_id(&template.id)
                    .set_versions(Some(chunk.iter().map(i64::to_string).collect()))
                    .send()
                    .await?;
                deleted += out.successfully_deleted_launch_template_versions().len();
                for refused in out.unsuccessfully_deleted_launch_template_versions() {
                    let error = refused.response_error();
                    let code = error.and_then(|e| e.code()).map(|c| c.as_str().to_string());
                    if code.as_deref() == Some("launchTemplateVersionDoesNotExist") {
                        continue;
                    }
                    return Err(Error::permanent(format!(
                        "launch template {} version {}: {}",
                        template.template,
                        refused.version_number().unwrap_or_default(),
                        error
                            .and_then(|e| e.message())
                            .unwrap_or("refused without a reason")
                    )));
                }
            }
        }
        Ok(deleted)
    }
}
