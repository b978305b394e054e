//! Discovery: what exists, read per kind with a few paginated calls (each kind's file says
//! which), then matched to the model's addresses. This file only schedules the reads and
//! matches; what a kind's resources look like in AWS is in the kind's file.

use std::collections::{BTreeMap, BTreeSet};

use futures::FutureExt as _;
use kopsrs_engine::{Observed, Plan};
use kopsrs_model::{Address, Attrs, DesiredSet, Resource, Value};

use crate::kind::{DataKind, Kind, Out, Scan};
use crate::resolve;
use crate::{Aws, Error, Outputs};

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

    /// Everything of the cluster that exists, matched against `desired` (pass an empty set
    /// to find everything owned, for deletion). Every kind is read at once; data sources
    /// too, and the kinds that need them (DNS records in the hosted zone) wait for them.
    pub(crate) async fn discover(&self, desired: &DesiredSet) -> Result<Discovery, Error> {
        let start = self.calls();
        let cluster = desired.cluster_name.as_str();
        let scan = Scan {
            aws: self,
            cluster,
            desired,
            data: self.data_sources(desired).boxed().shared(),
        };
        let (found, mut outputs) = tokio::try_join!(
            futures::future::try_join_all(Kind::ALL.iter().map(|kind| kind.discover(&scan))),
            scan.data.clone(),
        )?;
        let mut all: Vec<Item> = found.into_iter().flatten().collect();
        settle_ownership(&mut all);
        let mut by_kind: BTreeMap<Kind, Vec<Item>> = BTreeMap::new();
        for item in all {
            by_kind.entry(item.kind).or_default().push(item);
        }
        let mut desired_by_kind: BTreeMap<Kind, Vec<&Resource>> = BTreeMap::new();
        for resource in &desired.resources {
            if let Some(kind) = Kind::parse(&resource.address.kind) {
                desired_by_kind.entry(kind).or_default().push(resource);
            }
        }
        let mut discovery = Discovery::default();
        // Kinds are matched in dependency order, so the references a child's key needs
        // (its parent's ID) resolve against parents already matched.
        for kind in Kind::ALL {
            let items = by_kind.remove(kind).unwrap_or_default();
            let mut matched = BTreeSet::new();
            for resource in desired_by_kind.get(kind).into_iter().flatten() {
                let Ok(resolved) = resolve::attrs(&resource.attrs, &outputs) else {
                    continue;
                };
                let Some(key) = kind.key(&resolved) else {
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
                observe(
                    &mut discovery,
                    &mut outputs,
                    resource.address.clone(),
                    &items[index],
                );
            }
            for (i, item) in items.iter().enumerate() {
                if matched.contains(&i) {
                    continue;
                }
                if !item.owned {
                    if item.parent_owned {
                        discovery.left.push(kopsrs_engine::Left {
                            kind: item.kind.as_str().to_string(),
                            id: item.id.clone(),
                        });
                    }
                    continue;
                }
                let address = Address::new(kind.as_str(), &kopsrs_model::names::tf_name(&item.key));
                observe(&mut discovery, &mut outputs, address, item);
            }
        }
        crate::autoscaling::versions_as_references(&mut discovery.observed, &outputs);
        discovery.left.sort();
        discovery.outputs = outputs;
        discovery.calls = self.calls() - start;
        Ok(discovery)
    }

    /// Data sources: the AMI by name and owner, the hosted zone by name, a shared VPC's
    /// internet gateway and blocks. Ones no resource refers to (a shared VPC's blocks, read
    /// only for the Terraform outputs) cost no call.
    async fn data_sources(&self, desired: &DesiredSet) -> Result<Outputs, Error> {
        let referenced: BTreeSet<&Address> = desired
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
            let kind = DataKind::parse(&data.address.kind).ok_or_else(|| {
                Error::permanent(format!(
                    "data source {} is not supported by the AWS target",
                    data.address.kind
                ))
            })?;
            let found = kind.read(self, &data.address, &resolved).await?;
            out.insert(data.address.clone(), found);
        }
        Ok(out)
    }
}

impl Discovery {
    /// The plan with what apply needs from discovery: what exists (for references), what
    /// each deleted or replaced resource was found as, and what is left in place.
    pub(crate) fn into_plan(self, mut plan: Plan) -> Plan {
        for change in &mut plan.changes {
            if let Some(item) = self.items.get(&change.address) {
                change.found = item.outputs.clone();
            }
        }
        plan.left = self.left;
        plan.known = self.outputs;
        plan.reads = self.calls;
        plan
    }
}

fn observe(discovery: &mut Discovery, outputs: &mut Outputs, address: Address, item: &Item) {
    let mut out = item.outputs.clone();
    out.entry("id".into()).or_insert_with(|| item.id.clone());
    outputs.insert(address.clone(), out);
    discovery.items.insert(address.clone(), item.clone());
    discovery.observed.push(Observed {
        resource: Resource {
            address,
            attrs: item.attrs.clone(),
        },
        id: item.id.clone(),
    });
}

/// Routes and subnet associations of an owned route table are the cluster's only when they
/// lead to a gateway it owns or attach a subnet it owns. A peering or VPN route a person added
/// to the table, or a subnet of theirs associated with it, is left alone.
fn settle_ownership(items: &mut [Item]) {
    let owned_ids: BTreeSet<String> = items
        .iter()
        .filter(|i| i.owned && i.owned_via.is_none())
        .map(|i| i.id.clone())
        .collect();
    for item in items.iter_mut() {
        let Some(via) = item.owned_via else {
            continue;
        };
        let leads_to_ours = item
            .outputs
            .get(via)
            .is_some_and(|id| owned_ids.contains(id));
        item.owned = item.owned && leads_to_ours;
        item.outputs.remove(via);
    }
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

    #[test]
    fn a_route_is_owned_only_when_it_leads_to_an_owned_gateway() {
        let gateway = Item::new(Kind::InternetGateway, "igw-1", "igw").owned(true);
        let route = |target: &str| {
            let mut item = Item::new(Kind::Route, "rtb|0.0.0.0/0", "rtb|0.0.0.0/0")
                .owned(true)
                .with(&[("target", target)]);
            item.owned_via = Some("target");
            item
        };
        let mut items = vec![gateway, route("igw-1"), route("pcx-9")];
        settle_ownership(&mut items);
        assert!(items[1].owned);
        assert!(!items[2].owned);
        assert!(!items[1].outputs.contains_key("target"));
    }
}
