//! Security groups the spec gives (`securityGroupOverride`): kops's semantics. An instance
//! group's given group replaces the role's own on its instances and carries the role's
//! rules (to and from the cluster's groups and itself, named as kops names them); the API
//! load balancer's given group replaces `api-elb` and carries its rules. A given group is
//! never in the desired set: it is used, never made (so never deleted).

use kopsrs_api::create::CreateClusterOptions;
use kopsrs_api::InstanceGroup;
use kopsrs_model::{build, DesiredSet, ModelInput, Resource, Value};

const NAME: &str = "sg.example.com";
const GIVEN: &str = "sg-0123456789abcdef0";
const GIVEN_LB: &str = "sg-0fedcba9876543210";

fn cluster(
    change: impl FnOnce(&mut kopsrs_api::Cluster, &mut Vec<InstanceGroup>),
) -> Result<DesiredSet, String> {
    let config_base = format!("s3://state/{NAME}");
    let o = CreateClusterOptions {
        name: NAME.into(),
        zones: vec!["eu-west-1a".into()],
        kubernetes_version: Some("v1.34.1".into()),
        config_base: Some(config_base.clone()),
        ..Default::default()
    };
    let (mut cluster, mut groups) = kopsrs_api::create::create_cluster(&o).unwrap();
    change(&mut cluster, &mut groups);
    let (cluster, groups) = kopsrs_api::complete(&cluster, &groups, &config_base).unwrap();
    build(&cluster, &groups, &ModelInput::default()).map_err(|e| e.to_string())
}

fn rules(set: &DesiredSet) -> Vec<&Resource> {
    set.resources
        .iter()
        .filter(|r| r.address.kind == "aws_security_group_rule")
        .collect()
}

fn on(set: &DesiredSet, group: &str) -> Vec<String> {
    rules(set)
        .into_iter()
        .filter(|r| r.attrs.get("security_group_id") == Some(&Value::str(group)))
        .map(|r| r.address.name.clone())
        .collect()
}

fn nodes_override(_: &mut kopsrs_api::Cluster, groups: &mut [InstanceGroup]) {
    let nodes = groups
        .iter_mut()
        .find(|g| g.spec.role.as_deref() == Some("Node"))
        .unwrap();
    nodes.spec.security_group_override = Some(GIVEN.into());
}

#[test]
fn a_node_groups_given_group_carries_the_node_rules_and_is_never_made() {
    let plain = cluster(|_, _| {}).unwrap();
    let set = cluster(|c, groups| nodes_override(c, groups)).unwrap();
    // Used by the group's instances instead of the nodes' own group.
    let template = set
        .resources
        .iter()
        .find(|r| r.address.kind == "aws_launch_template" && r.address.name.starts_with("nodes"))
        .unwrap();
    let Some(Value::Blocks(interfaces)) = template.attrs.get("network_interfaces") else {
        panic!("no network interfaces");
    };
    assert_eq!(
        interfaces[0].get("security_groups"),
        Some(&Value::List(vec![Value::str(GIVEN)])),
        "the given group instead of the nodes' own"
    );
    // Never made: no security group resource carries its ID.
    assert!(!set.resources.iter().any(
        |r| r.address.kind == "aws_security_group" && format!("{:?}", r.attrs).contains(GIVEN)
    ));
    // The node rules, on it and from it, named the way kops names them.
    let given = on(&set, GIVEN);
    for expected in [
        format!("from-masters.{NAME}-ingress-all-0to0-{GIVEN}-Node"),
        format!("from-{GIVEN}-Node-ingress-all-0to0-{GIVEN}-Node"),
        format!("from-nodes.{NAME}-ingress-all-0to0-{GIVEN}-Node"),
        format!("from-{GIVEN}-Node-egress-all-0to0-0.0.0.0/0"),
    ] {
        let expected = kopsrs_model::names::tf_name(&expected);
        assert!(given.contains(&expected), "{expected} not in {given:#?}");
    }
    let masters_from_given = rules(&set)
        .into_iter()
        .filter(|r| {
            r.attrs.get("source_security_group_id") == Some(&Value::str(GIVEN))
                && r.address.name.ends_with("masters-sg-example-com")
        })
        .count();
    assert!(
        masters_from_given >= 3,
        "tcp, udp and more to the control plane"
    );
    // The cluster's own rules are all still there: the given group only adds.
    let before: Vec<&str> = rules(&plain)
        .iter()
        .map(|r| r.address.name.as_str())
        .collect();
    let after: Vec<&str> = rules(&set)
        .iter()
        .map(|r| r.address.name.as_str())
        .collect();
    assert!(before.iter().all(|r| after.contains(r)));
    assert!(after.len() > before.len());
}

#[test]
fn the_api_load_balancers_given_group_replaces_its_own() {
    let set = cluster(|c, _| {
        c.spec
            .api
            .as_mut()
            .unwrap()
            .load_balancer
            .as_mut()
            .unwrap()
            .security_group_override = Some(GIVEN_LB.into());
    })
    .unwrap();
    assert!(!set
        .resources
        .iter()
        .any(|r| r.address.kind == "aws_security_group" && r.address.name.starts_with("api-elb")));
    let lb = set
        .resources
        .iter()
        .find(|r| r.address.kind == "aws_lb" && r.address.name.starts_with("api"))
        .unwrap();
    assert_eq!(
        lb.attrs.get("security_groups"),
        Some(&Value::List(vec![Value::str(GIVEN_LB)]))
    );
    // Its rules (the API's clients, the control plane's ICMP) go on the given group.
    assert!(!on(&set, GIVEN_LB).is_empty());
    assert!(rules(&set).iter().any(|r| {
        r.address.name.starts_with("https-elb-to-master")
            && r.attrs.get("source_security_group_id") == Some(&Value::str(GIVEN_LB))
    }));
}

#[test]
fn a_bastions_given_group_is_refused_naming_the_field() {
    let e = cluster(|_, groups| {
        let mut bastion = groups[0].clone();
        bastion.metadata.name = "bastions".into();
        bastion.spec.role = Some("Bastion".into());
        bastion.spec.security_group_override = Some(GIVEN.into());
        groups.push(bastion);
    })
    .unwrap_err();
    assert!(
        e.contains("InstanceGroup bastions: spec.securityGroupOverride") && e.contains(GIVEN),
        "{e}"
    );
}
