//! The API load balancer, its target groups and listeners. Elastic Load Balancing has no
//! tag filter: the load balancers and target groups are listed (paginated, together), their
//! tags read in batches of 20 ARNs, and the listeners of the cluster's load balancers read
//! one call each (one or two load balancers per cluster); a fleet reads the listeners it
//! knows by ARN, 20 to a call ([`clusters_listeners`]).

use std::collections::BTreeMap;

use aws_sdk_elasticloadbalancingv2::types as elbt;

use crate::handler::{outputs, owned_by, tag_map, Handler, Item, Op, Out, Scan, Tagging, R};
use crate::kind::Kind;
use crate::resolve::{block, blocks, bool_of, int_of, str_of, strs_of};
use crate::{Aws, Error};

/// Tags as Elastic Load Balancing takes them (none: left out of the request).
fn tags_for(tags: &BTreeMap<String, String>) -> Option<Vec<elbt::Tag>> {
    let tags: Vec<elbt::Tag> = tags
        .iter()
        .map(|(k, v)| elbt::Tag::builder().key(k).value(v).build())
        .collect();
    Some(tags).filter(|t| !t.is_empty())
}

/// `aws_lb`; discovery also finds the cluster's target groups and listeners.
pub(crate) struct LoadBalancer;

impl Handler for LoadBalancer {
    const TAGGING: Tagging = Tagging::Elb;

    fn key(r: &R) -> Option<String> {
        str_of(r, "name").map(str::to_string)
    }

    /// Only the name and tags are read back; the rest is fixed at creation.
    fn write_only(attr: &str) -> bool {
        attr != "tags" && attr != "name"
    }

    async fn discover(scan: &Scan<'_>) -> Result<Vec<Item>, Error> {
        let aws = scan.aws;
        let tag = Aws::cluster_tag(scan.cluster);
        let described = aws
            .shared_read(
                "elb:DescribeLoadBalancers,DescribeTargetGroups,DescribeTags".into(),
                |aws| async move {
                    let lbs = async {
                        let request = aws.elb.describe_load_balancers().page_size(400);
                        Ok::<_, Error>(all_pages!(aws, request, load_balancers))
                    };
                    let tgs = async {
                        let request = aws.elb.describe_target_groups().page_size(400);
                        Ok::<_, Error>(all_pages!(aws, request, target_groups))
                    };
                    let (lbs, tgs) = tokio::try_join!(lbs, tgs)?;
                    let tags = tags_of(&aws, &lbs, &tgs).await?;
                    Ok((lbs, tgs, tags))
                },
            )
            .await?;
        // A fleet reads the listeners of every cluster's load balancers together.
        let fleet_listeners = match aws.in_fleet() {
            true => {
                let described = described.clone();
                let key = "elb:DescribeListeners of the clusters' load balancers".to_string();
                let read = aws.shared_read(key, move |aws| async move {
                    let (lbs, _, tags) = &*described;
                    clusters_listeners(&aws, lbs, tags).await
                });
                Some(read.await?)
            }
            false => None,
        };
        let (lbs, tgs, tags_by_arn) = &*described;
        let mut items = Vec::new();
        for lb in lbs {
            let arn = lb.load_balancer_arn().unwrap_or_default();
            let tags = tags_by_arn.get(arn).cloned().unwrap_or_default();
            if !tags.contains_key(&tag) {
                continue;
            }
            // A shared load balancer's listeners are not the cluster's to delete.
            let owned = owned_by(&tags, scan.cluster);
            let listeners = match &fleet_listeners {
                Some(by_lb) => by_lb.get(arn).cloned().unwrap_or_default(),
                None => listeners_of(aws, arn).await?,
            };
            for listener in &listeners {
                let port = listener.port().unwrap_or(0);
                items.push(
                    Item::new(
                        Kind::LbListener,
                        listener.listener_arn().unwrap_or_default(),
                        format!("{arn}|{port}"),
                    )
                    .owned(owned)
                    .child_of(owned),
                );
            }
            let name = lb.load_balancer_name().unwrap_or_default();
            items.push(
                Item::new(Kind::Lb, arn, name)
                    .with_tags(&tags, scan.cluster)
                    .with(&[
                        ("arn", arn),
                        ("dns_name", lb.dns_name().unwrap_or_default()),
                        ("zone_id", lb.canonical_hosted_zone_id().unwrap_or_default()),
                    ]),
            );
        }
        for tg in tgs {
            let arn = tg.target_group_arn().unwrap_or_default();
            let tags = tags_by_arn.get(arn).cloned().unwrap_or_default();
            if !tags.contains_key(&tag) {
                continue;
            }
            let name = tg.target_group_name().unwrap_or_default();
            items.push(
                Item::new(Kind::LbTargetGroup, arn, name)
                    .with_tags(&tags, scan.cluster)
                    .with(&[("arn", arn)]),
            );
        }
        Ok(items)
    }

    async fn create(op: &Op<'_>) -> Result<Out, Error> {
        let r = op.r;
        let scheme = match bool_of(r, "internal") == Some(true) {
            true => elbt::LoadBalancerSchemeEnum::Internal,
            false => elbt::LoadBalancerSchemeEnum::InternetFacing,
        };
        let mappings = blocks(r, "subnet_mapping")
            .into_iter()
            .map(|m| {
                elbt::SubnetMapping::builder()
                    .set_subnet_id(str_of(m, "subnet_id").map(str::to_string))
                    .set_allocation_id(str_of(m, "allocation_id").map(str::to_string))
                    .set_private_ipv4_address(str_of(m, "private_ipv4_address").map(str::to_string))
                    .build()
            })
            .collect();
        let created = op
            .aws
            .elb
            .create_load_balancer()
            .name(op.s("name"))
            .r#type(elbt::LoadBalancerTypeEnum::from(
                str_of(r, "load_balancer_type").unwrap_or("network"),
            ))
            .scheme(scheme)
            .set_security_groups(Some(strs_of(r, "security_groups")).filter(|v| !v.is_empty()))
            .set_ip_address_type(str_of(r, "ip_address_type").map(elbt::IpAddressType::from))
            .set_subnet_mappings(Some(mappings).filter(|m: &Vec<_>| !m.is_empty()))
            .set_tags(tags_for(&op.tags()))
            .send()
            .await?;
        let lb = created
            .load_balancers()
            .first()
            .ok_or_else(|| Error::permanent("CreateLoadBalancer returned nothing"))?;
        let arn = lb.load_balancer_arn().unwrap_or_default();
        Ok(outputs(&[
            ("id", arn),
            ("arn", arn),
            ("dns_name", lb.dns_name().unwrap_or_default()),
            ("zone_id", lb.canonical_hosted_zone_id().unwrap_or_default()),
        ]))
    }

    async fn delete(aws: &Aws, id: &str, _found: &Out) -> Result<(), Error> {
        aws.elb
            .delete_load_balancer()
            .load_balancer_arn(id)
            .send()
            .await?;
        Ok(())
    }
}

/// The tags of every load balancer and target group, by ARN (DescribeTags takes at most
/// 20 ARNs).
async fn tags_of(
    aws: &Aws,
    lbs: &[elbt::LoadBalancer],
    tgs: &[elbt::TargetGroup],
) -> Result<BTreeMap<String, BTreeMap<String, String>>, Error> {
    let arns: Vec<String> = lbs
        .iter()
        .filter_map(|l| l.load_balancer_arn())
        .chain(tgs.iter().filter_map(|t| t.target_group_arn()))
        .map(str::to_string)
        .collect();
    let mut tags_by_arn = BTreeMap::new();
    for chunk in arns.chunks(20) {
        aws.call();
        let described = aws
            .elb
            .describe_tags()
            .set_resource_arns(Some(chunk.to_vec()))
            .send()
            .await?;
        for description in described.tag_descriptions() {
            tags_by_arn.insert(
                description.resource_arn().unwrap_or_default().to_string(),
                tag_map(
                    description
                        .tags()
                        .iter()
                        .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default())),
                ),
            );
        }
    }
    Ok(tags_by_arn)
}

/// The listeners of load balancer `lb`, from its own list.
async fn listeners_of(aws: &Aws, lb: &str) -> Result<Vec<elbt::Listener>, Error> {
    let request = aws.elb.describe_listeners().load_balancer_arn(lb);
    Ok(all_pages!(aws, request, listeners))
}

/// The listeners of every load balancer that carries a cluster's tag key, by load
/// balancer ARN (a fleet's read). Listeners whose ARNs the fleet remembers are read by ARN,
/// 20 to a call; a load balancer is read from its own list when it is new to the fleet, when
/// its remembered list is [`LISTENERS_REMEMBERED`](crate::fleet::LISTENERS_REMEMBERED) old, or when a remembered listener is
/// gone.
async fn clusters_listeners(
    aws: &Aws,
    lbs: &[elbt::LoadBalancer],
    tags: &BTreeMap<String, BTreeMap<String, String>>,
) -> Result<BTreeMap<String, Vec<elbt::Listener>>, Error> {
    let memory = aws.fleet_reads().expect("a fleet's read");
    let tagged = lbs
        .iter()
        .filter_map(|lb| lb.load_balancer_arn())
        .filter(|arn| {
            tags.get(*arn)
                .is_some_and(|t| t.keys().any(|k| k.starts_with("kubernetes.io/cluster/")))
        });
    let mut unread = Vec::new();
    let mut remembered = Vec::new();
    for lb in tagged {
        match memory.remembered_listeners(lb) {
            Some(arns) => remembered.extend(arns.into_iter().map(|arn| (lb, arn))),
            None => unread.push(lb),
        }
    }
    let mut by_lb: BTreeMap<String, Vec<elbt::Listener>> = BTreeMap::new();
    for chunk in remembered.chunks(20) {
        let arns: Vec<String> = chunk.iter().map(|(_, arn)| arn.clone()).collect();
        let request = aws
            .elb
            .describe_listeners()
            .set_listener_arns(Some(arns.clone()));
        let found = match async { Ok::<_, Error>(all_pages!(aws, request, listeners)) }.await {
            Ok(found) => found,
            // One of them is gone: each of these load balancers is read from its list.
            Err(e) if e.is("ListenerNotFound") => Vec::new(),
            Err(e) => return Err(e),
        };
        let seen: std::collections::BTreeSet<&str> =
            found.iter().filter_map(|l| l.listener_arn()).collect();
        for (lb, arn) in chunk {
            if !seen.contains(arn.as_str()) && !unread.contains(lb) {
                unread.push(*lb);
            }
        }
        for listener in &found {
            let lb = listener.load_balancer_arn().unwrap_or_default();
            by_lb
                .entry(lb.to_string())
                .or_default()
                .push(listener.clone());
        }
    }
    for lb in unread {
        let listeners = listeners_of(aws, lb).await?;
        let arns = listeners
            .iter()
            .filter_map(|l| l.listener_arn())
            .map(str::to_string)
            .collect();
        memory.remember_listeners(lb, arns);
        by_lb.insert(lb.to_string(), listeners);
    }
    Ok(by_lb)
}

/// `aws_lb_target_group`, found with the load balancers.
pub(crate) struct TargetGroup;

impl Handler for TargetGroup {
    const TAGGING: Tagging = Tagging::Elb;

    fn key(r: &R) -> Option<String> {
        str_of(r, "name").map(str::to_string)
    }

    fn write_only(attr: &str) -> bool {
        attr != "tags" && attr != "name"
    }

    async fn create(op: &Op<'_>) -> Result<Out, Error> {
        let r = op.r;
        let mut request = op
            .aws
            .elb
            .create_target_group()
            .name(op.s("name"))
            .protocol(elbt::ProtocolEnum::from(
                str_of(r, "protocol").unwrap_or("TCP"),
            ))
            .set_port(int_of(r, "port").map(|v| v as i32))
            .set_vpc_id(str_of(r, "vpc_id").map(str::to_string))
            .target_type(elbt::TargetTypeEnum::Instance)
            .set_tags(tags_for(&op.tags()));
        if let Some(h) = block(r, "health_check") {
            let int = |k: &str| int_of(h, k).map(|v| v as i32);
            request = request
                .set_health_check_protocol(str_of(h, "protocol").map(elbt::ProtocolEnum::from))
                .set_health_check_interval_seconds(int("interval"))
                .set_healthy_threshold_count(int("healthy_threshold"))
                .set_unhealthy_threshold_count(int("unhealthy_threshold"));
        }
        let tg = request.send().await?;
        let arn = tg
            .target_groups()
            .first()
            .and_then(|t| t.target_group_arn())
            .unwrap_or_default();
        Ok(outputs(&[("id", arn), ("arn", arn)]))
    }

    async fn delete(aws: &Aws, id: &str, _found: &Out) -> Result<(), Error> {
        aws.elb
            .delete_target_group()
            .target_group_arn(id)
            .send()
            .await?;
        Ok(())
    }
}

/// `aws_lb_listener`, found with its load balancer, by load balancer and port.
pub(crate) struct Listener;

impl Handler for Listener {
    fn key(r: &R) -> Option<String> {
        Some(format!(
            "{}|{}",
            str_of(r, "load_balancer_arn")?,
            int_of(r, "port")?
        ))
    }

    async fn create(op: &Op<'_>) -> Result<Out, Error> {
        let r = op.r;
        let actions = blocks(r, "default_action")
            .into_iter()
            .map(|action| {
                elbt::Action::builder()
                    .r#type(elbt::ActionTypeEnum::Forward)
                    .set_target_group_arn(str_of(action, "target_group_arn").map(str::to_string))
                    .build()
            })
            .collect();
        let listener = op
            .aws
            .elb
            .create_listener()
            .load_balancer_arn(op.s("load_balancer_arn"))
            .set_port(int_of(r, "port").map(|v| v as i32))
            .protocol(elbt::ProtocolEnum::from(
                str_of(r, "protocol").unwrap_or("TCP"),
            ))
            .set_certificates(
                str_of(r, "certificate_arn")
                    .map(|c| vec![elbt::Certificate::builder().certificate_arn(c).build()]),
            )
            .set_ssl_policy(str_of(r, "ssl_policy").map(str::to_string))
            .set_default_actions(Some(actions).filter(|a: &Vec<_>| !a.is_empty()))
            .send()
            .await?;
        op.aws.listeners_changed();
        let arn = listener
            .listeners()
            .first()
            .and_then(|l| l.listener_arn())
            .unwrap_or_default();
        Ok(outputs(&[("id", arn), ("arn", arn)]))
    }

    async fn delete(aws: &Aws, id: &str, _found: &Out) -> Result<(), Error> {
        aws.elb.delete_listener().listener_arn(id).send().await?;
        aws.listeners_changed();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_and_schema() {
        let r: R = serde_json::from_value(serde_json::json!({
            "name": "api-x-c-abc", "load_balancer_arn": "arn:lb", "port": 443
        }))
        .unwrap();
        assert_eq!(LoadBalancer::key(&r).as_deref(), Some("api-x-c-abc"));
        assert_eq!(TargetGroup::key(&r).as_deref(), Some("api-x-c-abc"));
        assert_eq!(Listener::key(&r).as_deref(), Some("arn:lb|443"));
        assert!(LoadBalancer::write_only("subnet_mapping"));
        assert!(!TargetGroup::write_only("tags"));
        assert_eq!(LoadBalancer::TAGGING, Tagging::Elb);
        assert!(Listener::forces_replacement("port"));
    }
}
