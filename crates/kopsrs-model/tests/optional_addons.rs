//! The channel's optional addons the spec turns on, their values and permissions: the
//! cluster autoscaler on the control plane with its instance role, or with service-account
//! roles for addons (IRSA) with its own role through a projected token, the control plane's
//! role then without its permissions; external-dns, the load balancer controller,
//! cert-manager.

use kopsrs_api::create::CreateClusterOptions;
use kopsrs_model::{build, DesiredSet, ModelInput};

const NAME: &str = "cas.example.com";

/// A one-zone cluster (in the DNS zone example.com) whose spec `change` edits as JSON.
fn cluster_with(change: impl FnOnce(&mut serde_json::Value)) -> DesiredSet {
    let config_base = format!("s3://state/{NAME}");
    let o = CreateClusterOptions {
        name: NAME.into(),
        zones: vec!["eu-west-1a".into()],
        kubernetes_version: Some("v1.34.1".into()),
        config_base: Some(config_base.clone()),
        dns_zone: Some("example.com".into()),
        ..Default::default()
    };
    let (cluster, groups) = kopsrs_api::create::create_cluster(&o).unwrap();
    let mut v = serde_json::to_value(&cluster).unwrap();
    change(&mut v["spec"]);
    let cluster = serde_json::from_value(v).unwrap();
    let (cluster, groups) = kopsrs_api::complete(&cluster, &groups, &config_base).unwrap();
    build(&cluster, &groups, &ModelInput::default()).unwrap()
}

/// With the cluster autoscaler on, and IRSA for addons or not.
fn cluster(irsa: bool) -> DesiredSet {
    cluster_with(|spec| {
        spec["clusterAutoscaler"] = serde_json::json!({"enabled": true});
        if irsa {
            spec["serviceAccountIssuerDiscovery"] =
                serde_json::json!({"discoveryStore": "s3://disc", "enableAWSOIDCProvider": true});
            spec["iam"]["useServiceAccountExternalPermissions"] = serde_json::json!(true);
        }
    })
}

fn policy(set: &DesiredSet, name: &str) -> String {
    set.resources
        .iter()
        .find(|r| {
            r.address.kind == "aws_iam_role_policy"
                && r.attrs.get("name").and_then(|v| v.as_str()) == Some(name)
        })
        .map(|r| format!("{:?}", r.attrs))
        .unwrap_or_else(|| panic!("no policy {name}"))
}

#[test]
fn with_the_control_planes_role() {
    let set = cluster(false);
    let values = &set.optional_addons["cluster-autoscaler"];
    assert_eq!(
        values["autoscalingGroups"][0]["name"],
        format!("nodes-eu-west-1a.{NAME}")
    );
    assert!(values.get("extraEnv").is_none());
    assert!(policy(&set, &format!("masters.{NAME}")).contains("autoscaling:SetDesiredCapacity"));
}

#[test]
fn with_irsa_its_own_role() {
    let set = cluster(true);
    let values = &set.optional_addons["cluster-autoscaler"];
    let role = format!("cluster-autoscaler.kube-system.sa.{NAME}");
    assert_eq!(
        values["extraEnv"]["AWS_ROLE_ARN"],
        format!("arn:aws:iam::@ACCOUNT_ID@:role/{role}")
    );
    assert_eq!(
        values["extraVolumes"][0]["projected"]["sources"][0]["serviceAccountToken"]["audience"],
        "amazonaws.com"
    );
    assert_eq!(
        values["rbac"]["serviceAccount"]["name"],
        "cluster-autoscaler"
    );
    assert!(policy(&set, &role).contains("autoscaling:SetDesiredCapacity"));
    assert!(!policy(&set, &format!("masters.{NAME}")).contains("autoscaling:SetDesiredCapacity"));
}

/// external-dns (`spec.externalDns.provider: external-dns`): the channel's optional chart
/// with the spec's values, the control plane's role allowed to change records; off by
/// default (kops's dns-controller is the default provider, which kopsrs does not run).
#[test]
fn external_dns_when_the_spec_names_it() {
    let set = cluster(false);
    assert!(!set.optional_addons.contains_key("external-dns"));
    assert!(!policy(&set, &format!("masters.{NAME}")).contains("route53:ChangeResourceRecordSets"));

    let set = cluster_with(|spec| {
        spec["externalDns"] = serde_json::json!({"provider": "external-dns", "watchIngress": true});
    });
    let values = &set.optional_addons["external-dns"];
    assert_eq!(values["provider"]["name"], "aws");
    assert_eq!(values["sources"], serde_json::json!(["service", "ingress"]));
    assert_eq!(values["domainFilters"], serde_json::json!(["example.com"]));
    assert_eq!(values["txtOwnerId"], NAME);
    assert_eq!(values["policy"], "upsert-only");
    assert!(policy(&set, &format!("masters.{NAME}")).contains("route53:ChangeResourceRecordSets"));
}

/// The AWS Load Balancer Controller (`spec.awsLoadBalancerController.enabled`): the
/// channel's optional chart with the cluster's name and region, on the control plane, whose
/// role may then manage load balancers.
#[test]
fn load_balancer_controller_when_enabled() {
    let set = cluster(false);
    assert!(!set
        .optional_addons
        .contains_key("aws-load-balancer-controller"));
    let masters = policy(&set, &format!("masters.{NAME}"));
    assert!(
        !masters.contains("elasticloadbalancing:CreateRule"),
        "{masters}"
    );

    let set = cluster_with(|spec| {
        spec["awsLoadBalancerController"] =
            serde_json::json!({"enabled": true, "enableWAFv2": true});
    });
    let values = &set.optional_addons["aws-load-balancer-controller"];
    assert_eq!(values["clusterName"], NAME);
    assert_eq!(values["region"], "eu-west-1");
    assert_eq!(values["enableWafv2"], true);
    assert_eq!(
        values["nodeSelector"]["node-role.kubernetes.io/control-plane"],
        ""
    );
    let masters = policy(&set, &format!("masters.{NAME}"));
    assert!(
        masters.contains("elasticloadbalancing:CreateRule"),
        "{masters}"
    );
}

/// cert-manager (`spec.certManager.enabled`, not `managed: false`): its CRDs with it, on the
/// control plane, whose role may answer DNS-01 challenges in the listed zones only.
#[test]
fn cert_manager_when_enabled_and_managed() {
    let with =
        |cert_manager: serde_json::Value| cluster_with(|spec| spec["certManager"] = cert_manager);
    let set = with(
        serde_json::json!({"enabled": true, "hostedZoneIDs": ["Z123"], "nameservers": ["1.1.1.1:53"]}),
    );
    let values = &set.optional_addons["cert-manager"];
    assert_eq!(values["crds"]["enabled"], true);
    assert_eq!(
        values["webhook"]["nodeSelector"]["node-role.kubernetes.io/control-plane"],
        ""
    );
    assert_eq!(
        values["extraArgs"][1],
        "--dns01-recursive-nameservers=1.1.1.1:53"
    );
    let masters = policy(&set, &format!("masters.{NAME}"));
    assert!(
        masters.contains("arn:aws:route53:::hostedzone/Z123"),
        "{masters}"
    );
    // The user's own cert-manager: not installed, no permissions.
    let set =
        with(serde_json::json!({"enabled": true, "managed": false, "hostedZoneIDs": ["Z123"]}));
    assert!(!set.optional_addons.contains_key("cert-manager"));
    assert!(!policy(&set, &format!("masters.{NAME}")).contains("hostedzone/Z123"));
}
