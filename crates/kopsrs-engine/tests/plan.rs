//! The plan over a real desired set: everything created from nothing, nothing from a perfect
//! match, updates, replacements and deletions, and the printed form.

use kopsrs_engine::{diff, Action, Hold, Observed, Schema};
use kopsrs_model::{build, Address, DesiredSet, ModelInput, Resource, Value};

struct TestSchema;

impl Schema for TestSchema {
    fn forces_replacement(&self, kind: &str, attr: &str) -> bool {
        matches!(
            (kind, attr),
            ("aws_subnet", "cidr_block") | ("aws_vpc", "cidr_block")
        )
    }
    fn write_only(&self, kind: &str, attr: &str) -> bool {
        kind == "aws_launch_template" && attr == "user_data"
    }
    fn always_reported(&self, kind: &str, attr: &str) -> bool {
        kind == "aws_autoscaling_group" && attr == "warm_pool"
    }
}

fn desired() -> DesiredSet {
    let options = kopsrs_api::create::CreateClusterOptions {
        name: "plan.example.org".into(),
        zones: vec!["eu-west-1a".into()],
        kubernetes_version: Some("v1.34.1".into()),
        config_base: Some("s3://state/plan.example.org".into()),
        ..Default::default()
    };
    let (cluster, groups) = kopsrs_api::create::create_cluster(&options).unwrap();
    let (cluster, groups) =
        kopsrs_api::complete(&cluster, &groups, "s3://state/plan.example.org").unwrap();
    build(&cluster, &groups, &ModelInput::default()).unwrap()
}

/// What a provider that created everything exactly would report.
fn perfect(set: &DesiredSet) -> Vec<Observed> {
    set.resources
        .iter()
        .enumerate()
        .map(|(i, r)| Observed {
            resource: resolve(r, set),
            id: format!("id-{i}"),
        })
        .collect()
}

/// References replaced by the IDs the perfect provider handed out.
fn resolve(resource: &Resource, set: &DesiredSet) -> Resource {
    fn walk(value: &Value, set: &DesiredSet) -> Value {
        match value {
            Value::Ref(r) if r.attr == "id" => {
                match set.resources.iter().position(|x| x.address == r.address) {
                    Some(i) => Value::Str(format!("id-{i}")),
                    None => value.clone(),
                }
            }
            Value::List(items) => Value::List(items.iter().map(|v| walk(v, set)).collect()),
            Value::Map(map) => {
                Value::Map(map.iter().map(|(k, v)| (k.clone(), walk(v, set))).collect())
            }
            Value::Blocks(blocks) => Value::Blocks(
                blocks
                    .iter()
                    .map(|b| b.iter().map(|(k, v)| (k.clone(), walk(v, set))).collect())
                    .collect(),
            ),
            other => other.clone(),
        }
    }
    Resource {
        address: resource.address.clone(),
        attrs: resource
            .attrs
            .iter()
            .map(|(k, v)| (k.clone(), walk(v, set)))
            .collect(),
    }
}

#[test]
fn nothing_exists_everything_is_created() {
    let set = desired();
    let plan = diff(&set, &[], &TestSchema);
    assert_eq!(plan.count(Action::Create), set.resources.len());
    let text = plan.to_string();
    assert!(
        text.contains("# aws_vpc.plan-example-org will be created"),
        "{text}"
    );
    assert!(text.contains("vpc_id") && text.contains("(known after apply)"));
    assert!(text.ends_with(&format!(
        "Plan: {} to add, 0 to change, 0 to replace, 0 to destroy.\n",
        set.resources.len()
    )));
}

#[test]
fn a_perfect_match_is_no_change() {
    let set = desired();
    let plan = diff(&set, &perfect(&set), &TestSchema);
    assert!(plan.is_empty(), "{plan}");
    assert_eq!(
        plan.to_string(),
        "No changes. The cloud matches the cluster spec.\n"
    );
}

#[test]
fn drift_updates_replacements_and_deletions() {
    let set = desired();
    let mut actual = perfect(&set);
    let vpc = Address::new("aws_vpc", "plan-example-org");
    let subnet_index = actual
        .iter()
        .position(|o| o.resource.address.kind == "aws_subnet")
        .unwrap();
    // A tag edited by hand, an extra tag, a subnet with another CIDR, a leftover rule.
    for observed in &mut actual {
        if observed.resource.address == vpc {
            if let Some(Value::Map(tags)) = observed.resource.attrs.get_mut("tags") {
                tags.insert("Name".into(), Value::str("renamed"));
                tags.insert("added-by-hand".into(), Value::str("x"));
            }
        }
    }
    actual[subnet_index]
        .resource
        .attrs
        .insert("cidr_block".into(), Value::str("172.20.0.0/24"));
    let mut leftover = actual[0].clone();
    leftover.resource.address = Address::new("aws_security_group_rule", "left-over");
    leftover.id = "sgr-left".into();
    actual.push(leftover);

    let plan = diff(&set, &actual, &TestSchema);
    assert_eq!(plan.count(Action::Update), 1, "{plan}");
    assert_eq!(plan.count(Action::Replace), 1, "{plan}");
    assert_eq!(plan.count(Action::Delete), 1, "{plan}");
    assert_eq!(plan.count(Action::Create), 0);
    let text = plan.to_string();
    assert!(text.contains("~ tags.Name"), "{text}");
    assert!(
        text.contains("\"renamed\" -> \"plan.example.org\""),
        "{text}"
    );
    assert!(text.contains("- tags.added-by-hand"), "{text}");
    assert!(text.contains("# forces replacement"), "{text}");
    assert!(
        text.contains("# aws_security_group_rule.left-over will be destroyed"),
        "{text}"
    );
}

/// The JSON plan CI reads (docs/plan-json.md): a tag edited by hand (update), a subnet whose
/// block changed (replace), a leftover rule (delete), a rule left in place, two addon
/// changes. Only the changes are snapshotted (not the creation of a whole cluster).
#[test]
fn the_json_plan_is_stable() {
    let set = desired();
    let mut actual = perfect(&set);
    let vpc = Address::new("aws_vpc", "plan-example-org");
    for observed in &mut actual {
        if observed.resource.address == vpc {
            if let Some(Value::Map(tags)) = observed.resource.attrs.get_mut("tags") {
                tags.insert("Name".into(), Value::str("renamed"));
            }
        }
    }
    let subnet = actual
        .iter()
        .position(|o| o.resource.address.kind == "aws_subnet")
        .unwrap();
    actual[subnet]
        .resource
        .attrs
        .insert("cidr_block".into(), Value::str("172.20.0.0/24"));
    let mut leftover = actual[0].clone();
    leftover.resource.address = Address::new("aws_security_group_rule", "left-over");
    leftover.id = "sgr-left".into();
    actual.push(leftover);
    let mut plan = diff(&set, &actual, &TestSchema);
    plan.left.push(kopsrs_engine::Left {
        kind: "aws_security_group_rule".into(),
        id: "sgr-0cloudcontroller".into(),
    });
    plan.addons = vec![
        kopsrs_engine::AddonChange {
            name: "cilium".into(),
            action: Action::Create,
            before: None,
            after: Some("1.18.2".into()),
            integrity: Some("pinned: sha256 0123456789ab of the download".into()),
        },
        kopsrs_engine::AddonChange {
            name: "metrics-server".into(),
            action: Action::Update,
            before: Some("0.7.2".into()),
            after: Some("0.8.0".into()),
            integrity: None,
        },
    ];
    let json = plan.to_json();
    insta::assert_snapshot!(serde_json::to_string_pretty(&json).unwrap());
    // The printed plan and the JSON say the same.
    let text = plan.to_string();
    assert!(
        text.contains("+ addon cilium 1.18.2 (pinned: sha256 0123456789ab of the download)"),
        "{text}"
    );
    assert!(
        text.contains("~ addon metrics-server 0.7.2 -> 0.8.0"),
        "{text}"
    );
    assert_eq!(json["summary"]["replace"], 1);
}

#[test]
fn secrets_are_redacted_in_text_and_json() {
    let set = desired();
    let mut plan = diff(&set, &perfect(&set), &TestSchema);
    plan.changes.push(kopsrs_engine::Change {
        address: Address::new("aws_db_instance", "x"),
        action: Action::Update,
        id: Some("db-1".into()),
        fields: vec![kopsrs_engine::FieldChange {
            path: "master_password".into(),
            before: Some("\"hunter2\"".into()),
            after: Some("\"correct horse\"".into()),
            forces_replacement: false,
        }],
        desired: None,
        found: Default::default(),
    });
    let text = plan.to_string();
    let json = plan.to_json().to_string();
    for secret in ["hunter2", "correct horse"] {
        assert!(!text.contains(secret), "{text}");
        assert!(!json.contains(secret), "{json}");
    }
    assert!(text.contains("(sensitive)") && json.contains("(sensitive)"));
}

/// Held-back changes leave the plan with whatever refers to them, and show as such in the
/// text and the JSON; a plan with only held changes is not "No changes".
#[test]
fn held_changes_take_what_needs_them_along() {
    let set = desired();
    let mut plan = diff(&set, &[], &TestSchema);
    let total = plan.changes.len();
    let vpc = Address::new("aws_vpc", "plan-example-org");
    plan.hold(|c| (c.address == vpc).then_some(Hold::AfterRoll));
    // Everything that refers to the VPC (subnets, groups...) waits with it.
    assert!(plan.held.len() > 1, "{:?}", plan.held.len());
    assert_eq!(plan.held.len() + plan.changes.len(), total);
    assert!(plan
        .held
        .iter()
        .any(|h| h.change.address.kind == "aws_subnet" && h.hold == Hold::Needs(vpc.clone())));
    for change in &plan.changes {
        let refs = change
            .desired
            .as_ref()
            .map(|d| d.dependencies())
            .unwrap_or_default();
        assert!(
            refs.iter()
                .all(|a| !plan.held.iter().any(|h| &&h.change.address == a)),
            "{} refers to a held change",
            change.address
        );
    }
    let text = plan.to_string();
    assert!(text.contains("Held back: "), "{text}");
    assert!(
        text.contains("aws_vpc.plan-example-org: deleted after the roll"),
        "{text}"
    );
    let json = plan.to_json();
    assert_eq!(json["held"].as_array().unwrap().len(), plan.held.len());
    // Only held changes: said, not "No changes".
    let mut only_held = diff(&set, &[], &TestSchema);
    only_held.hold(|_| Some(Hold::AfterRoll));
    assert!(only_held.is_empty());
    assert!(only_held
        .to_string()
        .starts_with("No changes to apply now."));
}

/// An attribute the provider always reports when set (a group's warm pool) is added when
/// the spec gains it and removed when the spec drops it; one the provider does not report
/// (never read back) is not compared.
#[test]
fn an_always_reported_block_is_added_and_removed_in_place() {
    let mut set = desired();
    let group = set
        .resources
        .iter()
        .position(|r| r.address.kind == "aws_autoscaling_group")
        .unwrap();
    let actual = perfect(&set);
    set.resources[group].attrs.insert(
        "warm_pool".into(),
        Value::block(kopsrs_model::attrs! { "min_size" => 1 }),
    );
    let plan = diff(&set, &actual, &TestSchema);
    assert_eq!(plan.count(Action::Update), 1, "{plan}");
    assert!(plan.to_string().contains("warm_pool[0].min_size"), "{plan}");

    // Found with the pool, the spec without it: removed, in place.
    let with_pool = perfect(&set);
    set.resources[group].attrs.remove("warm_pool");
    let plan = diff(&set, &with_pool, &TestSchema);
    assert_eq!(plan.count(Action::Update), 1, "{plan}");
    assert_eq!(plan.count(Action::Replace), 0, "{plan}");
    let change = &plan.changes[0];
    assert!(change.fields.iter().all(|f| f.after.is_none()), "{plan}");

    // Another block the provider does not report is not compared.
    set.resources[group].attrs.insert(
        "initial_lifecycle_hook".into(),
        Value::block(kopsrs_model::attrs! { "name" => "x" }),
    );
    assert!(diff(&set, &actual, &TestSchema).changes.is_empty());
}
