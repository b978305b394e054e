//! Security groups and their rules: one paginated DescribeSecurityGroups by the cluster tag
//! and, beside it, one paginated DescribeSecurityGroupRules by the cluster tag (the rules
//! kopsrs made, on whatever group); then one paginated DescribeSecurityGroupRules for every
//! rule of the cluster's groups and of the groups the spec gives (`securityGroupOverride`),
//! 200 groups per filter.
//!
//! Rules kopsrs makes carry the cluster's tag (TagSpecifications at creation); other rules in
//! those groups (AWS's default egress, the cloud controller's, a person's) are left alone. A
//! group the spec gives is never made or deleted: it is not the cluster's.

use std::collections::BTreeSet;

use aws_sdk_ec2::types as ec2t;
use kopsrs_model::DesiredSet;

use crate::handler::{
    ec2_tags, exists_ok, outputs, owned_by, owner_tags, tag_spec, Handler, Item, Op, Out, Scan,
    Tagging, R,
};
use crate::kind::Kind;
use crate::resolve::{int_of, str_of, strs_of};
use crate::{Aws, Error};

/// `aws_security_group`.
pub(crate) struct SecurityGroup;

impl Handler for SecurityGroup {
    const TAGGING: Tagging = Tagging::Ec2;

    fn key(r: &R) -> Option<String> {
        str_of(r, "name").map(str::to_string)
    }

    fn forces_replacement(attr: &str) -> bool {
        matches!(attr, "name" | "vpc_id" | "description")
    }

    async fn discover(scan: &Scan<'_>) -> Result<Vec<Item>, Error> {
        let (aws, cluster) = (scan.aws, scan.cluster);
        let mut items = Vec::new();
        let fleet_groups = aws.tagged_read(
            cluster,
            "ec2:DescribeSecurityGroups",
            |aws, filter| async move {
                let request = aws
                    .ec2
                    .describe_security_groups()
                    .max_results(1000)
                    .filters(filter);
                Ok(all_pages!(aws, request, security_groups))
            },
        );
        // Rules kopsrs made anywhere (tagged as the cluster's): those on groups the spec
        // names (`securityGroupOverride`), or named before and dropped since.
        let tagged = aws.cluster_tagged(
            cluster,
            "ec2:DescribeSecurityGroupRules",
            |aws, filter| async move {
                let request = aws
                    .ec2
                    .describe_security_group_rules()
                    .max_results(1000)
                    .filters(filter);
                Ok(all_pages!(aws, request, security_group_rules))
            },
        );
        let (fleet_groups, tagged) = tokio::try_join!(fleet_groups, tagged)?;
        let groups = crate::fleet::keep(&fleet_groups, cluster);
        // Every rule of the cluster's groups and of the groups the spec gives, so that a
        // rule there already (AWS's default egress) is matched, whoever made it.
        let mut owned: BTreeSet<String> = BTreeSet::new();
        for sg in &groups {
            let tags = ec2_tags(sg.tags());
            let id = sg.group_id().unwrap_or_default();
            let name = sg.group_name().unwrap_or_default();
            let item = Item::new(Kind::SecurityGroup, id, name)
                .with_tags(&tags, cluster)
                .with(&[("name", name)]);
            if item.owned {
                owned.insert(id.to_string());
            }
            items.push(item);
        }
        let scanned: BTreeSet<String> = owned
            .iter()
            .cloned()
            .chain(given_groups(scan.desired))
            .collect();
        let mut seen: BTreeSet<String> = BTreeSet::new();
        for rule in &rules_of(aws, &fleet_groups, &scanned).await? {
            seen.insert(
                rule.security_group_rule_id()
                    .unwrap_or_default()
                    .to_string(),
            );
            items.push(rule_item(rule, cluster, &owned));
        }
        for rule in &tagged {
            if !seen.contains(rule.security_group_rule_id().unwrap_or_default()) {
                items.push(rule_item(rule, scan.cluster, &owned));
            }
        }
        Ok(items)
    }

    async fn create(op: &Op<'_>) -> Result<Out, Error> {
        let group = op
            .aws
            .ec2
            .create_security_group()
            .group_name(op.s("name"))
            .description(op.s("description"))
            .vpc_id(op.s("vpc_id"))
            .tag_specifications(tag_spec(ec2t::ResourceType::SecurityGroup, &op.tags()))
            .send()
            .await?;
        Ok(outputs(&[
            ("id", group.group_id().unwrap_or_default()),
            ("name", &op.s("name")),
        ]))
    }

    async fn delete(aws: &Aws, id: &str, _found: &Out) -> Result<(), Error> {
        aws.ec2.delete_security_group().group_id(id).send().await?;
        Ok(())
    }
}

/// Every rule of the groups `ids`. In a fleet, the rules of every group of the shared read
/// (`fleet_groups`) are read once for all clusters, and only the groups outside it (a group
/// the spec gives) are read for this cluster alone.
async fn rules_of(
    aws: &Aws,
    fleet_groups: &[ec2t::SecurityGroup],
    ids: &BTreeSet<String>,
) -> Result<Vec<ec2t::SecurityGroupRule>, Error> {
    if !aws.in_fleet() {
        return read_rules(aws.clone(), ids.iter().cloned().collect()).await;
    }
    let all: BTreeSet<String> = fleet_groups
        .iter()
        .filter_map(|g| g.group_id())
        .map(str::to_string)
        .collect();
    // The key names the groups: rules read for another snapshot's groups are not reused.
    let key = {
        use sha2::{Digest as _, Sha256};
        let digest = Sha256::digest(all.iter().cloned().collect::<Vec<_>>().join(",").as_bytes());
        format!("ec2:DescribeSecurityGroupRules group-id=sha256:{digest:x}")
    };
    let fleet_ids: Vec<String> = all.iter().cloned().collect();
    let shared = aws
        .shared_read(key, |aws| read_rules(aws, fleet_ids))
        .await?;
    let mut rules: Vec<ec2t::SecurityGroupRule> = shared
        .iter()
        .filter(|r| r.group_id().is_some_and(|g| ids.contains(g)))
        .cloned()
        .collect();
    let outside: Vec<String> = ids.difference(&all).cloned().collect();
    rules.extend(read_rules(aws.clone(), outside).await?);
    Ok(rules)
}

/// The rules of the groups `ids`, 200 groups per filter.
async fn read_rules(aws: Aws, ids: Vec<String>) -> Result<Vec<ec2t::SecurityGroupRule>, Error> {
    let mut rules = Vec::new();
    for chunk in ids.chunks(200) {
        let request = aws
            .ec2
            .describe_security_group_rules()
            .max_results(1000)
            .filters(
                ec2t::Filter::builder()
                    .name("group-id")
                    .set_values(Some(chunk.to_vec()))
                    .build(),
            );
        rules.extend(all_pages!(aws, request, security_group_rules));
    }
    Ok(rules)
}

/// A rule as found, keyed as [`rule_key`] keys a desired one.
/// A rule as found; `owned_groups`: the cluster's groups (another's rule in one of them is
/// reported as left in place; in a group the spec gives, it is not the plan's business).
fn rule_item(
    rule: &ec2t::SecurityGroupRule,
    cluster: &str,
    owned_groups: &BTreeSet<String>,
) -> Item {
    let peer = rule
        .cidr_ipv4()
        .or(rule.cidr_ipv6())
        .or(rule.prefix_list_id())
        .or_else(|| rule.referenced_group_info().and_then(|g| g.group_id()))
        .unwrap_or_default();
    let sg = rule.group_id().unwrap_or_default();
    let egress = rule.is_egress().unwrap_or(false);
    let key = rule_key(
        sg,
        egress,
        rule.ip_protocol().unwrap_or("-1"),
        i64::from(rule.from_port().unwrap_or(0)),
        i64::from(rule.to_port().unwrap_or(0)),
        peer,
    );
    Item::new(
        Kind::SecurityGroupRule,
        rule.security_group_rule_id().unwrap_or_default(),
        key,
    )
    .with(&[
        ("security_group_id", sg),
        ("egress", if egress { "true" } else { "false" }),
    ])
    .owned(owned_by(&ec2_tags(rule.tags()), cluster))
    .child_of(owned_groups.contains(sg))
}

/// The security groups the spec gives (`securityGroupOverride`) that the desired rules go
/// on: IDs as written, not references to the cluster's own groups.
fn given_groups(desired: &DesiredSet) -> BTreeSet<String> {
    desired
        .resources
        .iter()
        .filter(|r| r.address.kind == "aws_security_group_rule")
        .filter_map(|r| r.attrs.get("security_group_id")?.as_str())
        .map(str::to_string)
        .collect()
}

/// What identifies a rule: group, direction, protocol (names and numbers alike), ports
/// where the protocol has them, and the peer (a block, a prefix list or a group).
fn rule_key(sg: &str, egress: bool, protocol: &str, from: i64, to: i64, peer: &str) -> String {
    let protocol = match protocol {
        "all" | "-1" => "-1",
        "6" => "tcp",
        "17" => "udp",
        "1" => "icmp",
        p => p,
    };
    let ports = match protocol {
        "tcp" | "udp" | "icmp" | "icmpv6" | "58" => format!("{from}-{to}"),
        _ => "any".to_string(),
    };
    let direction = if egress { "egress" } else { "ingress" };
    format!("{sg}|{direction}|{protocol}|{ports}|{peer}")
}

/// `aws_security_group_rule`: found with the cluster's groups.
pub(crate) struct Rule;

impl Handler for Rule {
    fn key(r: &R) -> Option<String> {
        let peer = strs_of(r, "cidr_blocks")
            .into_iter()
            .chain(strs_of(r, "ipv6_cidr_blocks"))
            .next()
            .or_else(|| str_of(r, "source_security_group_id").map(str::to_string))
            .or_else(|| strs_of(r, "prefix_list_ids").into_iter().next())?;
        Some(rule_key(
            str_of(r, "security_group_id")?,
            str_of(r, "type")? == "egress",
            str_of(r, "protocol")?,
            int_of(r, "from_port").unwrap_or(0),
            int_of(r, "to_port").unwrap_or(0),
            &peer,
        ))
    }

    async fn create(op: &Op<'_>) -> Result<Out, Error> {
        let r = op.r;
        let protocol = op.s("protocol");
        let mut permission = ec2t::IpPermission::builder().ip_protocol(&protocol);
        // Ports are ignored by EC2 for protocols without them (IPIP is "4"), but sent
        // as kops writes them (0-0) for every protocol except "all".
        if !matches!(protocol.as_str(), "-1" | "all") {
            permission = permission
                .from_port(int_of(r, "from_port").unwrap_or(0) as i32)
                .to_port(int_of(r, "to_port").unwrap_or(0) as i32);
        }
        for cidr in strs_of(r, "cidr_blocks") {
            permission = permission.ip_ranges(ec2t::IpRange::builder().cidr_ip(cidr).build());
        }
        for cidr in strs_of(r, "ipv6_cidr_blocks") {
            permission = permission.ipv6_ranges(ec2t::Ipv6Range::builder().cidr_ipv6(cidr).build());
        }
        for list in strs_of(r, "prefix_list_ids") {
            permission = permission
                .prefix_list_ids(ec2t::PrefixListId::builder().prefix_list_id(list).build());
        }
        if let Some(source) = str_of(r, "source_security_group_id") {
            permission = permission
                .user_id_group_pairs(ec2t::UserIdGroupPair::builder().group_id(source).build());
        }
        let permission = permission.build();
        // Tagged as the cluster's: only tagged rules are ever revoked.
        let owner = tag_spec(
            ec2t::ResourceType::SecurityGroupRule,
            &owner_tags(op.cluster),
        );
        let group = op.s("security_group_id");
        let ec2 = &op.aws.ec2;
        let sent = match op.s("type") == "egress" {
            true => ec2
                .authorize_security_group_egress()
                .group_id(group)
                .ip_permissions(permission)
                .tag_specifications(owner)
                .send()
                .await
                .map(|_| ())
                .map_err(Error::from),
            false => ec2
                .authorize_security_group_ingress()
                .group_id(group)
                .ip_permissions(permission)
                .tag_specifications(owner)
                .send()
                .await
                .map(|_| ())
                .map_err(Error::from),
        };
        // AWS's default egress rule, or one a killed run created: the rule exists.
        exists_ok(sent, "InvalidPermission.Duplicate")?;
        Ok(outputs(&[("id", &Self::key(r).unwrap_or_default())]))
    }

    async fn delete(aws: &Aws, id: &str, found: &Out) -> Result<(), Error> {
        let group = found.get("security_group_id").cloned().unwrap_or_default();
        match found.get("egress").map(String::as_str) {
            Some("true") => {
                aws.ec2
                    .revoke_security_group_egress()
                    .group_id(group)
                    .security_group_rule_ids(id)
                    .send()
                    .await?;
            }
            _ => {
                aws.ec2
                    .revoke_security_group_ingress()
                    .group_id(group)
                    .security_group_rule_ids(id)
                    .send()
                    .await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_is_the_same_whether_its_protocol_is_a_name_or_a_number() {
        let r: R = serde_json::from_value(serde_json::json!({
            "security_group_id": "sg-1", "type": "ingress", "protocol": "tcp",
            "from_port": 443, "to_port": 443, "cidr_blocks": ["0.0.0.0/0"]
        }))
        .unwrap();
        let key = Rule::key(&r).unwrap();
        assert_eq!(key, "sg-1|ingress|tcp|443-443|0.0.0.0/0");
        assert_eq!(rule_key("sg-1", false, "6", 443, 443, "0.0.0.0/0"), key);
        // Ports do not count for protocols without them.
        assert_eq!(
            rule_key("sg-1", true, "all", 0, 0, "::/0"),
            "sg-1|egress|-1|any|::/0"
        );
        assert_eq!(
            rule_key("sg-1", false, "4", 0, 0, "sg-2"),
            "sg-1|ingress|4|any|sg-2"
        );
    }

    #[test]
    fn schema() {
        assert!(SecurityGroup::forces_replacement("vpc_id"));
        assert!(!SecurityGroup::forces_replacement("tags"));
        assert!(Rule::forces_replacement("from_port"));
        assert_eq!(Rule::TAGGING, Tagging::None);
    }
}
