//! Snapshot of a completed spec: a private, three-zone cluster from `create_cluster`.

use kopsrs_api::create::{create_cluster, CreateClusterOptions};
use kopsrs_api::{complete, encode_documents, Document, OutputFormat};

#[test]
fn completed_private_ha_cluster() {
    let options = CreateClusterOptions {
        name: "snap.example.com".into(),
        zones: vec![
            "eu-west-1a".into(),
            "eu-west-1b".into(),
            "eu-west-1c".into(),
        ],
        control_plane_count: Some(3),
        topology: Some("private".into()),
        bastion: true,
        kubernetes_version: Some("v1.34.1".into()),
        creation_timestamp: Some("2026-01-01T00:00:00Z".into()),
        ..Default::default()
    };
    let (cluster, groups) = create_cluster(&options).unwrap();
    assert!(!kopsrs_api::validate(&cluster, &groups, true).has_errors());
    let (cluster, groups) = complete(&cluster, &groups, "s3://state/snap.example.com").unwrap();
    let mut documents = vec![Document::Cluster(Box::new(cluster))];
    documents.extend(
        groups
            .into_iter()
            .map(|g| Document::InstanceGroup(Box::new(g))),
    );
    insta::assert_snapshot!(encode_documents(&documents, OutputFormat::Yaml));
}

#[test]
fn an_even_number_of_etcd_members_is_a_warning_not_an_error() {
    let options = CreateClusterOptions {
        name: "even.example.com".into(),
        zones: vec!["eu-west-1a".into(), "eu-west-1b".into()],
        control_plane_count: Some(2),
        ..Default::default()
    };
    let (cluster, groups) = create_cluster(&options).unwrap();
    let report = kopsrs_api::validate(&cluster, &groups, true);
    assert!(!report.has_errors(), "{:?}", report.issues);
    let warning = report.warnings().next().expect("a warning");
    assert_eq!(warning.path, "spec.etcdClusters[0].etcdMembers");
    assert!(
        warning.message.starts_with("2 members"),
        "{}",
        warning.message
    );
}
