//! The plan: discovery, the engine's diff, and what only this provider sees; the plan that
//! deletes a cluster; the checks of what a cluster uses but does not own.

use std::collections::{BTreeMap, BTreeSet};

use kopsrs_engine::Plan;
use kopsrs_model::DesiredSet;

use crate::kind::Kind;
use crate::{launch_templates, subnets, Aws, Error, EXISTING_MISMATCH};

/// What the AWS provider can change in place and what it does not read back, per kind
/// (each kind's file says; see [`Kind`]). Tags never force a replacement.
pub struct AwsSchema;

impl kopsrs_engine::Schema for AwsSchema {
    fn forces_replacement(&self, kind: &str, attr: &str) -> bool {
        if attr == "tags" || attr == "tag" {
            return false;
        }
        Kind::parse(kind).is_none_or(|k| k.forces_replacement(attr))
    }

    fn write_only(&self, kind: &str, attr: &str) -> bool {
        Kind::parse(kind).is_some_and(|k| k.write_only(attr))
    }

    fn always_reported(&self, kind: &str, attr: &str) -> bool {
        Kind::parse(kind).is_some_and(|k| k.always_reported(attr))
    }
}

impl Aws {
    /// The plan that takes the cloud to `desired`: discovery, the engine's diff, and what
    /// only this provider sees (launch-template content, see `launch_templates`). The plan
    /// holds everything [`apply`] needs. A kind the AWS target does not manage stops here,
    /// before anything changes.
    pub async fn plan(&self, desired: &DesiredSet) -> Result<Plan, Error> {
        let unknown: BTreeSet<&str> = desired
            .resources
            .iter()
            .map(|r| r.address.kind.as_str())
            .filter(|k| Kind::parse(k).is_none())
            .collect();
        if !unknown.is_empty() {
            return Err(Error::permanent(format!(
                "the AWS target does not manage {}; use --target terraform",
                unknown.into_iter().collect::<Vec<_>>().join(", ")
            )));
        }
        let (discovery, ()) = tokio::try_join!(self.discover(desired), self.verify(desired))?;
        let mut plan = kopsrs_engine::diff(desired, &discovery.observed, &AwsSchema);
        launch_templates::complete_plan(&discovery, &mut plan, desired);
        launch_templates::explain_changes(self, &discovery, &mut plan, desired).await?;
        subnets::check_free_ranges(self, &discovery, &plan, desired).await?;
        plan.changes.sort_by(|a, b| a.address.cmp(&b.address));
        Ok(discovery.into_plan(plan))
    }

    /// Checks what the cluster uses but does not own ([`DesiredSet::existing`]: a shared
    /// VPC, its subnets and NAT gateways): every problem in one error (code
    /// [`EXISTING_MISMATCH`]), before anything changes.
    async fn verify(&self, desired: &DesiredSet) -> Result<(), Error> {
        let mut by_kind: BTreeMap<Kind, Vec<&kopsrs_model::Existing>> = BTreeMap::new();
        let mut problems = Vec::new();
        for existing in &desired.existing {
            match Kind::parse(&existing.kind) {
                Some(kind) => by_kind.entry(kind).or_default().push(existing),
                None => problems.push(format!(
                    "{}: the AWS target cannot check an existing {}",
                    existing.field, existing.kind
                )),
            }
        }
        let found = futures::future::try_join_all(
            by_kind
                .iter()
                .map(|(kind, existing)| kind.verify(self, existing)),
        )
        .await?;
        problems.extend(found.into_iter().flatten());
        if problems.is_empty() {
            return Ok(());
        }
        Err(Error {
            message: problems.join("\n  "),
            code: Some(EXISTING_MISMATCH.to_string()),
            retryable: false,
        })
    }

    /// The plan that deletes everything of the cluster: what discovery finds for `desired`
    /// (so records and providers found by the names it gives are included), every item a
    /// deletion.
    ///
    /// The node image is not looked up: deleting needs none, and a cluster never applied may
    /// name one that does not resolve (its launch templates, if any, are found by their tags).
    pub async fn destroy_plan(&self, desired: &DesiredSet) -> Result<Plan, Error> {
        let nothing = DesiredSet {
            cluster_name: desired.cluster_name.clone(),
            region: desired.region.clone(),
            ..DesiredSet::default()
        };
        let without_images = DesiredSet {
            data_sources: desired
                .data_sources
                .iter()
                .filter(|d| d.address.kind != "aws_ami")
                .cloned()
                .collect(),
            ..desired.clone()
        };
        let discovery = self.discover(&without_images).await?;
        let plan = kopsrs_engine::diff(&nothing, &discovery.observed, &AwsSchema);
        Ok(discovery.into_plan(plan))
    }
}
