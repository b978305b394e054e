//! The AWS node termination handler, as kops runs it: on by default (not with Karpenter, not
//! when turned off); with the cluster's queue (the default) one Deployment on the control
//! plane reading it with the control plane's role; without the queue a DaemonSet on every
//! node reading its own metadata service.

use kopsrs_api::create::CreateClusterOptions;
use kopsrs_model::{build, DesiredSet, GeneratedAddon, ModelInput};
use serde_json::Value;

const NAME: &str = "nth.example.com";

fn cluster(change: impl FnOnce(&mut kopsrs_api::Cluster)) -> DesiredSet {
    let config_base = format!("s3://state/{NAME}");
    let o = CreateClusterOptions {
        name: NAME.into(),
        zones: vec!["eu-west-1a".into()],
        kubernetes_version: Some("v1.34.1".into()),
        config_base: Some(config_base.clone()),
        ..Default::default()
    };
    let (mut cluster, groups) = kopsrs_api::create::create_cluster(&o).unwrap();
    change(&mut cluster);
    let (cluster, groups) = kopsrs_api::complete(&cluster, &groups, &config_base).unwrap();
    build(&cluster, &groups, &ModelInput::default()).unwrap()
}

fn handler(set: &DesiredSet) -> Option<&GeneratedAddon> {
    set.generated
        .iter()
        .find(|a| a.name == "node-termination-handler")
}

fn env<'a>(workload: &'a Value, name: &str) -> Option<&'a str> {
    workload["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .and_then(|e| e["value"].as_str())
}

fn control_plane_policy(set: &DesiredSet) -> String {
    set.resources
        .iter()
        .find(|r| r.address.kind == "aws_iam_role_policy" && r.address.name.starts_with("masters-"))
        .map(|r| format!("{:?}", r.attrs))
        .unwrap()
}

#[test]
fn by_default_one_reader_of_the_clusters_queue_on_the_control_plane() {
    let set = cluster(|_| {});
    let nth = handler(&set).expect("on by default, as kops");
    assert_eq!(nth.key, "addons/node-termination-handler.aws/manifest.yaml");
    let kinds: Vec<&str> = nth
        .objects
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment"
        ]
    );
    let deployment = &nth.objects[3];
    assert_eq!(
        env(deployment, "QUEUE_URL"),
        Some("https://sqs.eu-west-1.amazonaws.com/@ACCOUNT_ID@/nth-example-com-nth")
    );
    // The queue exists in the model under that name.
    assert!(set
        .resources
        .iter()
        .any(|r| r.address.kind == "aws_sqs_queue"
            && r.attrs.get("name").and_then(|v| v.as_str()) == Some("nth-example-com-nth")));
    assert_eq!(
        env(deployment, "ENABLE_SQS_TERMINATION_DRAINING"),
        Some("true")
    );
    assert_eq!(
        env(deployment, "MANAGED_TAG"),
        Some("aws-node-termination-handler/managed")
    );
    assert_eq!(env(deployment, "AWS_REGION"), Some("eu-west-1"));
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(
        pod["nodeSelector"]["node-role.kubernetes.io/control-plane"],
        ""
    );
    assert_eq!(
        pod["containers"][0]["image"],
        "public.ecr.aws/aws-ec2/aws-node-termination-handler:v1.25.5"
    );
    // The control plane's role reads and deletes the queue's messages, and completes the
    // groups' termination hooks.
    let policy = control_plane_policy(&set);
    assert!(policy.contains("sqs:ReceiveMessage"), "{policy}");
    assert!(policy.contains("nth-example-com-nth"), "{policy}");
    assert!(
        policy.contains("autoscaling:CompleteLifecycleAction"),
        "{policy}"
    );
}

#[test]
fn without_the_queue_every_node_watches_its_metadata() {
    let set = cluster(|c| {
        c.spec.node_termination_handler = Some(kopsrs_api::NodeTerminationHandler {
            enabled: Some(true),
            enable_sqs_termination_draining: Some(false),
            enable_rebalance_monitoring: Some(true),
            ..Default::default()
        });
    });
    let nth = handler(&set).unwrap();
    let daemonset = &nth.objects[3];
    assert_eq!(daemonset["kind"], "DaemonSet");
    assert_eq!(daemonset["spec"]["template"]["spec"]["hostNetwork"], true);
    assert_eq!(env(daemonset, "QUEUE_URL"), None);
    assert_eq!(env(daemonset, "ENABLE_REBALANCE_MONITORING"), Some("true"));
    assert!(!set
        .resources
        .iter()
        .any(|r| r.address.kind == "aws_sqs_queue"));
    assert!(!control_plane_policy(&set).contains("sqs:"));
}

#[test]
fn off_when_turned_off_or_with_karpenter() {
    let off = cluster(|c| {
        c.spec.node_termination_handler = Some(kopsrs_api::NodeTerminationHandler {
            enabled: Some(false),
            ..Default::default()
        });
    });
    assert!(handler(&off).is_none());
    assert!(!control_plane_policy(&off).contains("sqs:"));
    let karpenter = cluster(|c| {
        c.spec.karpenter = Some(kopsrs_api::Karpenter {
            enabled: Some(true),
            ..Default::default()
        });
    });
    assert!(handler(&karpenter).is_none());
}

/// With service-account roles for addons (IRSA), the queue reader takes its own role through
/// a projected token, and the control plane's role no longer reads the queue.
#[test]
fn with_irsa_the_queue_reader_uses_its_own_role() {
    let set = cluster(|c| {
        let mut v = serde_json::to_value(&*c).unwrap();
        v["spec"]["serviceAccountIssuerDiscovery"] =
            serde_json::json!({"discoveryStore": "s3://disc", "enableAWSOIDCProvider": true});
        v["spec"]["iam"]["useServiceAccountExternalPermissions"] = serde_json::json!(true);
        *c = serde_json::from_value(v).unwrap();
    });
    let deployment = &handler(&set).unwrap().objects[3];
    let role = format!("aws-node-termination-handler.kube-system.sa.{NAME}");
    assert_eq!(
        env(deployment, "AWS_ROLE_ARN"),
        Some(format!("arn:aws:iam::@ACCOUNT_ID@:role/{role}").as_str())
    );
    assert_eq!(
        env(deployment, "AWS_WEB_IDENTITY_TOKEN_FILE"),
        Some("/var/run/secrets/amazonaws.com/token")
    );
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(
        pod["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]["audience"],
        "amazonaws.com"
    );
    // That role exists, trusts the handler's service account and may read the queue.
    let made = set
        .resources
        .iter()
        .find(|r| {
            r.address.kind == "aws_iam_role"
                && r.attrs.get("name").and_then(|v| v.as_str()) == Some(role.as_str())
        })
        .unwrap_or_else(|| panic!("no role {role}"));
    let trust = format!("{:?}", made.attrs);
    assert!(
        trust.contains("system:serviceaccount:kube-system:aws-node-termination-handler"),
        "{trust}"
    );
    let policy = set
        .resources
        .iter()
        .find(|r| {
            r.address.kind == "aws_iam_role_policy"
                && r.attrs.get("name").and_then(|v| v.as_str()) == Some(role.as_str())
        })
        .map(|r| format!("{:?}", r.attrs))
        .unwrap();
    assert!(policy.contains("sqs:ReceiveMessage"), "{policy}");
    assert!(!control_plane_policy(&set).contains("sqs:"));
}
