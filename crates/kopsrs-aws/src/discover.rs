//! Discovery: what exists, read per kind with a few paginated calls (each kind's file says
//! which), then matched to the model's addresses. This file only schedules the reads and
//! matches; what a kind's resources look like in AWS is in the kind's file.

use std::collections::{BTreeMap, BTreeSet};

use futures::FutureExt as _;
use kopsrs_engine::{Observed, Plan};
use kopsrs_model::{Address, DesiredSet, Resource};

use crate::dispatch::DataKind;
use crate::handler::{Discovery, Item, Scan};
use crate::kind::Kind;
use crate::resolve;
use crate::{Aws, Error, Outputs};

impl Aws {
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
                let Some(index) = items.iter().enumerate().position(|(i, item)| {
                    item.key == key && !matched.contains(&i) && (item.owned || !kind.recorded())
                }) else {
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

#[cfg(test)]
mod tests {
    use super::*;

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
