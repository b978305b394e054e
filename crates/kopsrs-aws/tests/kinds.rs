//! Every resource kind the model writes is one the AWS target manages (else `update
//! cluster --yes` would find out half-way), and every kind the target lists is one the
//! model writes for some cluster shape (no dead code paths).

use std::collections::BTreeSet;

use kopsrs_api::create::{create_cluster, CreateClusterOptions};
use kopsrs_aws::Kind;
use kopsrs_model::{build, ModelInput};

fn kinds_of(options: CreateClusterOptions, sets: &[&str]) -> BTreeSet<String> {
    let options = CreateClusterOptions {
        name: "kinds.example.org".into(),
        kubernetes_version: Some("v1.34.1".into()),
        config_base: Some("s3://state/kinds.example.org".into()),
        sets: sets.iter().map(|s| s.to_string()).collect(),
        ..options
    };
    let (cluster, groups) = create_cluster(&options).unwrap();
    let (cluster, groups) =
        kopsrs_api::complete(&cluster, &groups, "s3://state/kinds.example.org").unwrap();
    let input = ModelInput {
        ssh_public_key: Some(
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB9Tbi9hQ0FSs+dHkUdXr6dZzXAh+mqgvkZs8gz7VuJT t",
        ),
        ..ModelInput::default()
    };
    let set = build(&cluster, &groups, &input).unwrap();
    set.resources
        .iter()
        .map(|r| r.address.kind.clone())
        .collect()
}

#[test]
fn the_model_and_the_aws_target_agree_on_kinds() {
    let zones = |z: &[&str]| z.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let shapes = [
        kinds_of(
            CreateClusterOptions {
                zones: zones(&["eu-west-1a"]),
                dns_zone: Some("example.org".into()),
                ..Default::default()
            },
            &["spec.additionalNetworkCIDRs=10.1.0.0/16"],
        ),
        kinds_of(
            CreateClusterOptions {
                zones: zones(&["eu-west-1a", "eu-west-1b", "eu-west-1c"]),
                control_plane_count: Some(3),
                topology: Some("private".into()),
                bastion: true,
                networking: Some("calico".into()),
                ..Default::default()
            },
            &[],
        ),
        kinds_of(
            CreateClusterOptions {
                zones: zones(&["eu-west-1a"]),
                ipv6: true,
                topology: Some("private".into()),
                networking: Some("cilium".into()),
                ..Default::default()
            },
            &[],
        ),
        // A shared VPC and subnet: the cluster's tag on the subnet.
        kinds_of(
            CreateClusterOptions {
                zones: zones(&["eu-west-1a"]),
                network_id: Some("vpc-12345678".into()),
                subnet_ids: vec!["subnet-12345678".into()],
                ..Default::default()
            },
            &[],
        ),
        kinds_of(
            CreateClusterOptions {
                zones: zones(&["eu-west-1a"]),
                discovery_store: Some("s3://discovery/kinds.example.org".into()),
                ..Default::default()
            },
            &[
                "spec.serviceAccountIssuerDiscovery.enableAWSOIDCProvider=true",
                "spec.iam.useServiceAccountExternalPermissions=true",
                "spec.externalPolicies.node=arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore",
            ],
        ),
    ];
    let written: BTreeSet<&String> = shapes.iter().flatten().collect();
    for kind in &written {
        assert!(
            Kind::parse(kind).is_some(),
            "the model writes {kind}, which the AWS target does not manage"
        );
    }
    let managed: BTreeSet<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
    let written: BTreeSet<&str> = written.iter().map(|k| k.as_str()).collect();
    let never: Vec<&&str> = managed.difference(&written).collect();
    assert!(never.is_empty(), "kinds no shape writes: {never:?}");
}
