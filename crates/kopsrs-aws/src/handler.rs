//! What a kind's file works with: the [`Handler`] trait each kind implements, what its
//! operations are given ([`Op`], [`Scan`]) and return ([`Item`], [`Out`]), and the helpers
//! every family shares (tags and ownership, client tokens, tag-only updates). It sits beneath
//! the families; nothing here names a kind's file.

use std::collections::BTreeMap;

use aws_sdk_ec2::types as ec2t;
use futures::future::{BoxFuture, Shared};
use kopsrs_engine::{Change, Observed};
use kopsrs_model::{Address, Attrs, DesiredSet, Existing, Value};
use serde_json::{Map, Value as Json};
use sha2::{Digest as _, Sha256};

use crate::kind::Kind;
use crate::resolve::{self, str_of};
use crate::{Aws, Error, Outputs};

/// A resolved resource: references replaced by IDs, in the JSON shape of its attributes.
pub(crate) type R = Map<String, Json>;

/// Attributes a create or update reports (`id`, `arn`, `name`, ...) for references.
pub(crate) type Out = BTreeMap<String, String>;

/// How a kind's tags change in place, when tags are all that changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tagging {
    /// Tags cannot be changed in place (or are not compared).
    None,
    /// EC2's CreateTags / DeleteTags on the resource ID.
    Ec2,
    /// Elastic Load Balancing's AddTags / RemoveTags on the ARN.
    Elb,
}

/// What a create or an update of one resource works from.
pub(crate) struct Op<'a> {
    pub aws: &'a Aws,
    pub cluster: &'a str,
    pub address: &'a Address,
    /// The desired attributes, references resolved.
    pub r: &'a R,
}

impl Op<'_> {
    /// A string attribute, empty when absent.
    pub fn s(&self, key: &str) -> String {
        str_of(self.r, key).unwrap_or_default().to_string()
    }

    /// The resource's `tags`.
    pub fn tags(&self) -> BTreeMap<String, String> {
        resolve::tags(self.r)
    }
}

/// What discovery works from: the clients, the cluster, the desired set (IAM and DNS are
/// read by the names it gives), and the data sources once resolved.
pub(crate) struct Scan<'a> {
    pub aws: &'a Aws,
    pub cluster: &'a str,
    pub desired: &'a DesiredSet,
    /// Data sources (the hosted zone, the AMI), shared by the kinds that need them so the
    /// other kinds' reads do not wait for them.
    pub data: Shared<BoxFuture<'a, Result<Outputs, Error>>>,
}

/// Everything the AWS target knows about one kind. Associated functions rather than methods:
/// kinds are unit types dispatched by [`Kind`], never values.
///
/// `create` and `delete` have no default, so a kind cannot be listed without them.
pub(crate) trait Handler {
    /// How a desired resource is recognised among what discovery found: the key its
    /// [`Item`] carries (a `Name` tag, a name, a parent ID and destination, ...), once the
    /// references it needs resolve.
    fn key(r: &R) -> Option<String>;

    /// Whether a change of `attr` needs a new resource. Tags never do (see
    /// [`crate::AwsSchema`]); by default every other attribute does.
    fn forces_replacement(_attr: &str) -> bool {
        true
    }

    /// Attributes written at creation that discovery does not read back (a launch
    /// template's content, an IAM role's trust policy): never compared.
    fn write_only(_attr: &str) -> bool {
        false
    }

    /// Attributes discovery reports whenever they are set (absent: unset), so adding or
    /// removing one is a change (see [`kopsrs_engine::Schema::always_reported`]).
    fn always_reported(_attr: &str) -> bool {
        false
    }

    /// How tags change in place.
    const TAGGING: Tagging = Tagging::None;

    /// Ownership is a record kopsrs writes when it makes the resource (an attachment's tag on
    /// its role): one found without the record is not matched to the desired resource, so the
    /// plan makes it (idempotently) and records it, and it is detached when the spec drops
    /// it. Others are matched by key whoever made them.
    const RECORDED: bool = false;

    /// Dependent API round trips a create makes (a VPC, then its DNS attributes: 2). The
    /// apply's critical path is counted in these.
    const CREATE_CALLS: usize = 1;

    /// Dependent API round trips of an in-place update.
    const UPDATE_CALLS: usize = 1;

    /// Dependent API round trips of a delete.
    const DELETE_CALLS: usize = 1;

    /// Whether an error code from a delete means the resource is already gone.
    fn gone(code: &str) -> bool {
        code.ends_with(".NotFound") || code == "ResourceNotFoundException"
    }

    /// What exists of this kind. Kinds read with their parent (a route with its table)
    /// return nothing here.
    async fn discover(_scan: &Scan<'_>) -> Result<Vec<Item>, Error> {
        Ok(Vec::new())
    }

    /// Creates the resource; returns its `id` and the attributes others refer to.
    async fn create(op: &Op<'_>) -> Result<Out, Error>;

    /// Changes the resource in place (the plan said no field forces a replacement).
    async fn update(op: &Op<'_>, id: &str, change: &Change) -> Result<Out, Error> {
        update_tags(op, id, change, Self::TAGGING).await
    }

    /// Deletes the resource `id`; `found` is what discovery reported of it.
    async fn delete(aws: &Aws, id: &str, found: &Out) -> Result<(), Error>;

    /// Checks resources of this kind that the cluster uses but does not own (a shared VPC,
    /// subnets, NAT gateways) against what the spec says, in one call for all of them; one
    /// sentence per problem. Kinds the model never names as existing check nothing.
    async fn verify(_aws: &Aws, _existing: &[&Existing]) -> Result<Vec<String>, Error> {
        Ok(Vec::new())
    }
}

/// Whether `tags` say the resource belongs to `cluster`: `kubernetes.io/cluster/<name>` is
/// `owned`, or `KubernetesCluster` is exactly the name. Never by a name prefix or suffix:
/// `a.x.c` and `x.co` are other clusters than `x.c`.
pub(crate) fn owned_by(tags: &BTreeMap<String, String>, cluster: &str) -> bool {
    tags.get(&format!("kubernetes.io/cluster/{cluster}"))
        .is_some_and(|v| v == "owned")
        || tags.get("KubernetesCluster").is_some_and(|v| v == cluster)
}

/// One resource found in the cloud.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    pub kind: Kind,
    pub id: String,
    /// What identifies it among its kind (see [`crate::kind::Handler::key`]).
    pub key: String,
    /// Attributes reported for diffing, in the model's vocabulary.
    pub attrs: Attrs,
    /// `id`, `arn`, `name`, ... for references.
    pub outputs: Out,
    /// Whether it is the cluster's (only owned resources are deleted).
    pub owned: bool,
    /// For a child (a rule, a route, a policy, a listener): whether its parent is the
    /// cluster's. A child that is neither desired nor made by kopsrs inside an owned parent
    /// is listed as left in place, never deleted.
    pub parent_owned: bool,
    /// For a route or a subnet association: the output naming what it leads to (`target`,
    /// `subnet`); it is the cluster's only when that is the cluster's too.
    pub owned_via: Option<&'static str>,
}

impl Item {
    /// An item of `kind` with `id`, found by `key`, not owned until said otherwise.
    pub fn new(kind: Kind, id: impl Into<String>, key: impl Into<String>) -> Item {
        Item {
            kind,
            id: id.into(),
            key: key.into(),
            attrs: Attrs::new(),
            outputs: Out::new(),
            owned: false,
            parent_owned: false,
            owned_via: None,
        }
    }

    /// A tagged resource: found by its `Name` tag (else its ID), owned by the cluster's
    /// tag, its tags reported for diffing.
    pub fn tagged(kind: Kind, id: &str, tags: &BTreeMap<String, String>, cluster: &str) -> Item {
        let key = tags.get("Name").cloned().unwrap_or_else(|| id.to_string());
        Item::new(kind, id, key).with_tags(tags, cluster)
    }

    /// Owned by `tags`, which are reported for diffing.
    pub fn with_tags(mut self, tags: &BTreeMap<String, String>, cluster: &str) -> Item {
        self.owned = owned_by(tags, cluster);
        self.attrs.insert("tags".into(), tags_value(tags));
        self
    }

    /// Adds outputs.
    pub fn with(mut self, pairs: &[(&str, &str)]) -> Item {
        self.outputs.extend(outputs(pairs));
        self
    }

    /// Marks it owned (or not).
    pub fn owned(mut self, owned: bool) -> Item {
        self.owned = owned;
        self
    }

    /// A child of a parent that is (or is not) the cluster's.
    pub fn child_of(mut self, parent_owned: bool) -> Item {
        self.parent_owned = parent_owned;
        self
    }
}

/// What exists, in the engine's terms.
#[derive(Debug, Default)]
pub(crate) struct Discovery {
    /// What was found of the cluster, with an address each.
    pub observed: Vec<Observed>,
    /// Attributes of what exists (and of data sources), for references.
    pub outputs: Outputs,
    /// The items behind `observed`, by address (what deletes and plan completion read).
    pub(crate) items: BTreeMap<Address, Item>,
    /// Children of the cluster's resources that kopsrs did not make and leaves alone.
    pub left: Vec<kopsrs_engine::Left>,
    /// API calls the discovery made.
    pub calls: u64,
}

/// Tags as a map.
pub(crate) fn tag_map<'a>(
    tags: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> BTreeMap<String, String> {
    tags.into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Tags of an EC2 resource.
pub(crate) fn ec2_tags(tags: &[aws_sdk_ec2::types::Tag]) -> BTreeMap<String, String> {
    tag_map(
        tags.iter()
            .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default())),
    )
}

/// Tags as the model writes them: kopsrs's bookkeeping tags and AWS's own left out.
pub(crate) fn tags_value(tags: &BTreeMap<String, String>) -> Value {
    Value::Map(
        tags.iter()
            .filter(|(k, _)| !k.starts_with("kopsrs.k8s.io/") && !k.starts_with("aws:"))
            .map(|(k, v)| (k.clone(), Value::str(v)))
            .collect(),
    )
}

/// Key-value pairs as outputs.
pub(crate) fn outputs(pairs: &[(&str, &str)]) -> Out {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A DNS name with one trailing dot, lower case: how Route53 returns names.
pub(crate) fn norm_dns(name: &str) -> String {
    format!("{}.", name.trim_end_matches('.')).to_lowercase()
}

impl Aws {
    /// The tag key every resource of `cluster` carries (`owned` or `shared`).
    pub(crate) fn cluster_tag(cluster: &str) -> String {
        format!("kubernetes.io/cluster/{cluster}")
    }

    /// An EC2 filter for resources carrying the cluster's tag key.
    pub(crate) fn ec2_filter(cluster: &str) -> aws_sdk_ec2::types::Filter {
        aws_sdk_ec2::types::Filter::builder()
            .name("tag-key")
            .values(Self::cluster_tag(cluster))
            .build()
    }
}

/// The in-place update of kinds whose only changes are tags ([`Tagging`]).
pub(crate) async fn update_tags(
    op: &Op<'_>,
    id: &str,
    change: &Change,
    tagging: Tagging,
) -> Result<Out, Error> {
    let only_tags = change.fields.iter().all(|f| f.path.starts_with("tags."));
    let removed: Vec<String> = change
        .fields
        .iter()
        .filter(|f| f.after.is_none())
        .filter_map(|f| f.path.strip_prefix("tags.").map(str::to_string))
        .collect();
    let tags = op.tags();
    match tagging {
        Tagging::Ec2 if only_tags => op.aws.tag_ec2_after_first(id, &tags, &removed).await?,
        Tagging::Elb if only_tags => {
            let mut request = op.aws.elb.add_tags().resource_arns(id);
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
                op.aws.call();
                op.aws
                    .elb
                    .remove_tags()
                    .resource_arns(id)
                    .set_tag_keys(Some(removed))
                    .send()
                    .await?;
            }
        }
        _ => {
            return Err(Error::permanent(format!(
                "{}: the AWS target cannot change {} in place",
                change.address, change.address.kind
            )))
        }
    }
    Ok(Out::new())
}

impl Aws {
    /// Sets `tags` on an EC2 resource and removes `removed` (one call each).
    pub(crate) async fn tag_ec2(
        &self,
        id: &str,
        tags: &BTreeMap<String, String>,
        removed: &[String],
    ) -> Result<(), Error> {
        self.call();
        self.tag_ec2_after_first(id, tags, removed).await
    }

    /// [`Aws::tag_ec2`] when the caller counted the first call.
    pub(crate) async fn tag_ec2_after_first(
        &self,
        id: &str,
        tags: &BTreeMap<String, String>,
        removed: &[String],
    ) -> Result<(), Error> {
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
}

/// EC2 `TagSpecifications` for a create call: the resource is tagged as it is made, so a
/// run killed right after finds and adopts it.
pub(crate) fn tag_spec(
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

/// A ClientToken for creates AWS makes idempotent: stable per address and content, so a
/// create retried after a crash returns the resource the first attempt made.
pub(crate) fn client_token(address: &Address, r: &R) -> String {
    format!("kopsrs-{}", &digest(r)[..16])
        .chars()
        .chain(address.name.chars())
        .take(64)
        .collect()
}

/// The tags that make a resource the cluster's (see [`owned_by`]), for resources the
/// model gives no tags of their own (security group rules).
pub(crate) fn owner_tags(cluster: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("KubernetesCluster".to_string(), cluster.to_string()),
        (
            format!("kubernetes.io/cluster/{cluster}"),
            "owned".to_string(),
        ),
    ])
}

/// An "already exists" error is success for creates that a killed run may have done.
pub(crate) fn exists_ok(result: Result<(), Error>, code: &str) -> Result<(), Error> {
    match result {
        Err(e) if e.is(code) => Ok(()),
        other => other,
    }
}

/// Tag on launch templates: the digest of the content kopsrs last wrote.
pub(crate) const DIGEST_TAG: &str = "kopsrs.k8s.io/content-digest";

/// The digest of a resolved resource's content (its own digest tag left out): 24 hex digits
/// of SHA-256 over its JSON.
pub(crate) fn digest(resolved: &serde_json::Map<String, Json>) -> String {
    let mut content = resolved.clone();
    if let Some(Json::Object(tags)) = content.get_mut("tags") {
        tags.remove(DIGEST_TAG);
    }
    let text = serde_json::to_string(&content).expect("JSON serializes");
    let hash = Sha256::digest(text.as_bytes());
    hash.iter().take(12).map(|b| format!("{b:02x}")).collect()
}

/// What is wrong with an existing resource `e` (a `label` such as "subnet"), given what AWS
/// reports of it (`None`: it does not exist): one sentence per problem, naming the spec
/// field, the value and the fix.
pub(crate) fn mismatches(
    e: &kopsrs_model::Existing,
    label: &str,
    region: &str,
    found: Option<&BTreeMap<String, String>>,
) -> Vec<String> {
    let Some(found) = found else {
        return vec![format!(
            "{}: {label} {} does not exist in {region}; correct {} or create the {label}",
            e.field, e.id, e.field
        )];
    };
    e.expect
        .iter()
        .filter_map(|x| {
            let actual = found.get(&x.attr).map(String::as_str).unwrap_or("(none)");
            (actual != x.value).then(|| match x.attr.as_str() {
                "state" => format!(
                    "{}: {label} {} is {actual}, not {}; point {} at a {label} that is",
                    x.field, e.id, x.value, e.field
                ),
                _ => format!(
                    "{}: {label} {} has {} {actual}, the spec says {}; set {} to {actual}, \
                     or point {} at the right {label}",
                    x.field, e.id, x.attr, x.value, x.field, e.field
                ),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ownership_is_the_exact_name_in_the_tag() {
        let tags = |k: &str, v: &str| BTreeMap::from([(k.to_string(), v.to_string())]);
        assert!(owned_by(&tags("kubernetes.io/cluster/x.c", "owned"), "x.c"));
        assert!(!owned_by(
            &tags("kubernetes.io/cluster/x.c", "shared"),
            "x.c"
        ));
        assert!(!owned_by(
            &tags("kubernetes.io/cluster/a.x.c", "owned"),
            "x.c"
        ));
        assert!(owned_by(&tags("KubernetesCluster", "x.c"), "x.c"));
        assert!(!owned_by(&tags("KubernetesCluster", "x.co"), "x.c"));
    }
}
