//! The API's DNS records and the `aws_route53_zone` data source. Records are looked up by
//! name in the hosted zone once it is known: one ListResourceRecordSets per (zone, name),
//! which returns the A and AAAA records of a name together.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_route53::types as r53;
use kopsrs_model::Address;

use crate::handler::{norm_dns, outputs, Handler, Item, Op, Out, Scan, R};
use crate::kind::Kind;
use crate::resolve::{self, block, bool_of, int_of, str_of, strs_of};
use crate::{Aws, Error};

/// `aws_route53_record`: never owned by tag (records have none); the cluster's records are
/// the ones the desired set names, deleted with the cluster by `delete cluster`.
pub(crate) struct Record;

impl Handler for Record {
    fn key(r: &R) -> Option<String> {
        Some(format!(
            "{}|{}|{}",
            str_of(r, "zone_id")?,
            norm_dns(str_of(r, "name")?),
            str_of(r, "type")?
        ))
    }

    async fn discover(scan: &Scan<'_>) -> Result<Vec<Item>, Error> {
        let wanted: Vec<_> = scan.desired.of_kind(Kind::Route53Record.as_str()).collect();
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        // The zone ID comes from the data source; the rest of a record (an alias to the load
        // balancer) may not be known yet, so only the fields that find it are resolved.
        let data = scan.data.clone().await?;
        let mut names: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
        for record in wanted {
            let field = |k: &str| {
                let v = record.attrs.get(k)?;
                resolve::value(v, &data).ok()?.as_str().map(str::to_string)
            };
            if let (Some(zone), Some(name), Some(kind)) =
                (field("zone_id"), field("name"), field("type"))
            {
                names.entry((zone, name)).or_default().insert(kind);
            }
        }
        let aws = scan.aws;
        let mut items = Vec::new();
        for ((zone, name), kinds) in names {
            for set in &record_sets(aws, &zone, &name).await? {
                let kind = set.r#type().as_str();
                if norm_dns(set.name()) == norm_dns(&name) && kinds.contains(kind) {
                    let key = format!("{zone}|{}|{kind}", norm_dns(&name));
                    items.push(Item::new(Kind::Route53Record, &key, &key));
                }
            }
        }
        Ok(items)
    }

    async fn create(op: &Op<'_>) -> Result<Out, Error> {
        let r = op.r;
        let mut set = r53::ResourceRecordSet::builder()
            .name(op.s("name"))
            .r#type(r53::RrType::from(op.s("type").as_str()));
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
                set = set.resource_records(r53::ResourceRecord::builder().value(record).build()?);
            }
        }
        change(
            op.aws,
            &op.s("zone_id"),
            r53::ChangeAction::Upsert,
            set.build()?,
        )
        .await?;
        Ok(outputs(&[(
            "id",
            &format!("{}|{}|{}", op.s("zone_id"), op.s("name"), op.s("type")),
        )]))
    }

    /// The record is read first, as Route53 deletes only an exact copy of it.
    async fn delete(aws: &Aws, id: &str, _found: &Out) -> Result<(), Error> {
        let mut parts = id.splitn(3, '|');
        let (Some(zone), Some(name), Some(kind)) = (parts.next(), parts.next(), parts.next())
        else {
            return Ok(());
        };
        let sets = aws
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
        aws.call();
        change(aws, zone, r53::ChangeAction::Delete, set.clone()).await
    }
}

/// The record sets of `zone` named `name` (and maybe a few after it). In a fleet, the whole
/// zone is read once for every cluster in it; alone, one call from the name.
async fn record_sets(
    aws: &Aws,
    zone: &str,
    name: &str,
) -> Result<Vec<r53::ResourceRecordSet>, Error> {
    if !aws.in_fleet() {
        aws.call();
        let sets = aws
            .route53
            .list_resource_record_sets()
            .hosted_zone_id(zone)
            .start_record_name(name)
            .max_items(10)
            .send()
            .await?;
        return Ok(sets.resource_record_sets);
    }
    let key = format!("route53:ListResourceRecordSets zone={zone}");
    let owned_zone = zone.to_string();
    let all = aws
        .shared_read(key, |aws| async move {
            let mut all = Vec::new();
            let mut next: Option<(String, r53::RrType, Option<String>)> = None;
            loop {
                aws.call();
                let mut request = aws
                    .route53
                    .list_resource_record_sets()
                    .hosted_zone_id(&owned_zone)
                    .max_items(300);
                if let Some((name, kind, identifier)) = next.take() {
                    request = request
                        .start_record_name(name)
                        .start_record_type(kind)
                        .set_start_record_identifier(identifier);
                }
                let page = request.send().await?;
                all.extend(page.resource_record_sets);
                match (
                    page.is_truncated,
                    page.next_record_name,
                    page.next_record_type,
                ) {
                    (true, Some(name), Some(kind)) => {
                        next = Some((name, kind, page.next_record_identifier))
                    }
                    _ => break,
                }
            }
            Ok(all)
        })
        .await?;
    Ok(all
        .iter()
        .filter(|s| norm_dns(s.name()) == norm_dns(name))
        .cloned()
        .collect())
}

/// One change of one record set.
async fn change(
    aws: &Aws,
    zone: &str,
    action: r53::ChangeAction,
    set: r53::ResourceRecordSet,
) -> Result<(), Error> {
    aws.route53
        .change_resource_record_sets()
        .hosted_zone_id(zone)
        .change_batch(
            r53::ChangeBatch::builder()
                .changes(
                    r53::Change::builder()
                        .action(action)
                        .resource_record_set(set)
                        .build()?,
                )
                .build()?,
        )
        .send()
        .await?;
    Ok(())
}

/// The `aws_route53_zone` data source: the hosted zone by name and visibility.
pub(crate) async fn read_zone(aws: &Aws, address: &Address, r: &R) -> Result<Out, Error> {
    let name = str_of(r, "name").unwrap_or_default().to_string();
    let private = bool_of(r, "private_zone").unwrap_or(false);
    aws.call();
    let zones = aws
        .route53
        .list_hosted_zones_by_name()
        .dns_name(&name)
        .send()
        .await?
        .hosted_zones;
    let zone = zones
        .iter()
        .find(|z| {
            norm_dns(z.name()) == norm_dns(&name)
                && z.config().is_some_and(|c| c.private_zone()) == private
        })
        .ok_or_else(|| {
            Error::existing(format!(
                "{address}: no {} hosted zone named {name:?}; create it, or set spec.dnsZone to its ID",
                if private { "private" } else { "public" }
            ))
        })?;
    let id = zone.id().trim_start_matches("/hostedzone/");
    Ok(outputs(&[("id", id), ("zone_id", id)]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_and_schema() {
        let r: R = serde_json::from_value(serde_json::json!({
            "zone_id": "Z1", "name": "API.x.c", "type": "A"
        }))
        .unwrap();
        assert_eq!(Record::key(&r).as_deref(), Some("Z1|api.x.c.|A"));
        assert!(Record::forces_replacement("records"));
    }
}
