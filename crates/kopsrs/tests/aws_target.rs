//! The direct AWS target against moto_server: plan, apply, re-plan (empty), delete.
//! Outcomes are checked with independent boto3 Describe calls, not with kopsrs's own reads.

mod support;

use assert_cmd::prelude::*;
use support::{Moto, CLUSTER};

/// moto ships this Ubuntu image; the groups name it the way users do (owner/name), so the
/// AMI lookup is exercised too.
const IMAGE: &str = "099720109477/ubuntu/images/hvm-ssd/ubuntu-xenial-16.04-amd64-server-20170721";

/// The harness's cluster, with an API network load balancer (and so Route53 alias records
/// in the example.com zone).
fn cluster_spec() -> String {
    CLUSTER
        .replace(
            "  subnets:\n  - eu-west-1a\n",
            &format!("  image: {IMAGE}\n  subnets:\n  - eu-west-1a\n"),
        )
        .replace(
            "spec:\n  kubernetesVersion",
            "spec:\n  api:\n    loadBalancer:\n      type: Public\n      class: Network\n  kubernetesVersion",
        )
}

/// Resources tagged for the cluster, counted per kind with boto3.
const COUNT_TAGGED: &str = r#"
f=[{'Name':'tag-key','Values':['kubernetes.io/cluster/test.example.com']}]
e=aws('ec2')
out={}
for call,key in [('describe_vpcs','Vpcs'),('describe_subnets','Subnets'),('describe_security_groups','SecurityGroups'),('describe_launch_templates','LaunchTemplates'),('describe_volumes','Volumes'),('describe_route_tables','RouteTables'),('describe_internet_gateways','InternetGateways'),('describe_key_pairs','KeyPairs'),('describe_dhcp_options','DhcpOptions')]:
    out[key]=len(getattr(e,call)(Filters=f)[key])
out['AutoScalingGroups']=len(aws('autoscaling').describe_auto_scaling_groups()['AutoScalingGroups'])
out['LoadBalancers']=len(aws('elbv2').describe_load_balancers()['LoadBalancers'])
out['TargetGroups']=len(aws('elbv2').describe_target_groups()['TargetGroups'])
out['Roles']=len([r for r in aws('iam').list_roles()['Roles'] if r['RoleName'].endswith('test.example.com')])
out['InstanceProfiles']=len(aws('iam').list_instance_profiles()['InstanceProfiles'])
out['Queues']=len(aws('sqs').list_queues().get('QueueUrls',[]))
out['Rules']=len(aws('events').list_rules()['Rules'])
z=aws('route53')
zid=z.list_hosted_zones()['HostedZones'][0]['Id']
out['ApiRecords']=len([r for r in z.list_resource_record_sets(HostedZoneId=zid)['ResourceRecordSets'] if r['Name'].startswith('api.')])
print(json.dumps(out, sort_keys=True))
"#;

fn counts(moto: &Moto) -> serde_json::Value {
    serde_json::from_str(moto.python(COUNT_TAGGED).trim()).unwrap()
}

#[test]
fn plan_apply_replan_and_delete_a_minimal_cluster() {
    let moto = Moto::start();
    moto.create_bucket("state");
    moto.python("aws('route53').create_hosted_zone(Name='example.com', CallerReference='t')");
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("cluster.yaml");
    std::fs::write(&spec, cluster_spec()).unwrap();
    let key = dir.path().join("id.pub");
    std::fs::write(&key, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g t@kopsrs\n").unwrap();
    let kopsrs = || {
        let mut c = moto.kopsrs("state");
        c.env("AWS_REGION", "eu-west-1");
        c
    };
    kopsrs()
        .args(["create", "-f"])
        .arg(&spec)
        .assert()
        .success();
    kopsrs()
        .args(["create", "sshpublickey", "--name", "test.example.com", "-i"])
        .arg(&key)
        .assert()
        .success();

    // Dry run: a plan, exit 2 for CI, nothing created.
    let plan = kopsrs()
        .args([
            "update",
            "cluster",
            "test.example.com",
            "--detailed-exitcode",
        ])
        .assert()
        .code(2);
    let plan = String::from_utf8(plan.get_output().stdout.clone()).unwrap();
    assert!(
        plan.contains("# aws_vpc.test-example-com will be created"),
        "{plan}"
    );
    assert!(
        plan.contains("to add, 0 to change, 0 to replace, 0 to destroy."),
        "{plan}"
    );
    assert_eq!(counts(&moto)["Vpcs"], 0, "a plan changes nothing");

    // Apply.
    kopsrs()
        .args(["update", "cluster", "test.example.com", "--yes"])
        .assert()
        .success();
    let after = counts(&moto);
    for (kind, n) in [
        ("Vpcs", 1),
        ("Subnets", 1),
        ("SecurityGroups", 3),
        ("LaunchTemplates", 2),
        ("AutoScalingGroups", 2),
        ("Volumes", 2),
        ("RouteTables", 1),
        ("InternetGateways", 1),
        ("KeyPairs", 1),
        ("DhcpOptions", 1),
        ("LoadBalancers", 1),
        ("TargetGroups", 1),
        ("Roles", 2),
        ("InstanceProfiles", 2),
        ("Queues", 1),
        ("Rules", 4),
        ("ApiRecords", 2),
    ] {
        assert_eq!(after[kind], n, "{kind} after apply: {after}");
    }
    // The completed spec is stored, as kops does on update.
    kopsrs()
        .args(["get", "cluster", "test.example.com", "--full", "-o", "yaml"])
        .assert()
        .success();

    // Re-plan: nothing to do, exit 0.
    let replan = kopsrs()
        .args([
            "update",
            "cluster",
            "test.example.com",
            "--detailed-exitcode",
        ])
        .assert()
        .success();
    let replan = String::from_utf8(replan.get_output().stdout.clone()).unwrap();
    assert!(replan.contains("No changes."), "{replan}");

    // Drift: a tag removed behind kopsrs's back is planned back as an in-place update.
    moto.python(
        "e=aws('ec2'); v=e.describe_vpcs(Filters=[{'Name':'tag:Name','Values':['test.example.com']}])['Vpcs'][0]\n\
         e.delete_tags(Resources=[v['VpcId']], Tags=[{'Key':'KubernetesCluster'}])",
    );
    let drift = kopsrs()
        .args([
            "update",
            "cluster",
            "test.example.com",
            "--detailed-exitcode",
        ])
        .assert()
        .code(2);
    let drift = String::from_utf8(drift.get_output().stdout.clone()).unwrap();
    assert!(
        drift.contains("# aws_vpc.test-example-com will be updated in-place"),
        "{drift}"
    );
    assert!(
        drift.contains("Plan: 0 to add, 1 to change, 0 to replace, 0 to destroy."),
        "{drift}"
    );
    kopsrs()
        .args(["update", "cluster", "test.example.com", "--yes"])
        .assert()
        .success();
    kopsrs()
        .args([
            "update",
            "cluster",
            "test.example.com",
            "--detailed-exitcode",
        ])
        .assert()
        .success();

    // Delete: a listing without --yes, then everything tagged for the cluster goes.
    kopsrs()
        .args(["delete", "cluster", "test.example.com"])
        .assert()
        .success();
    assert_eq!(
        counts(&moto)["Vpcs"],
        1,
        "delete without --yes deletes nothing"
    );
    kopsrs()
        .args(["delete", "cluster", "test.example.com", "--yes"])
        .assert()
        .success();
    let left = counts(&moto);
    for (kind, n) in left.as_object().unwrap() {
        assert_eq!(n, 0, "{kind} left after delete: {left}");
    }
    kopsrs()
        .args(["get", "clusters"])
        .assert()
        .success()
        .stdout(predicates::str::contains("test.example.com").not());
}

use predicates::prelude::PredicateBooleanExt;

/// A run that stopped half-way (here: resources deleted behind its back, as a crash before
/// they were made would leave it) converges on the next run with no duplicates.
#[test]
fn a_partial_cluster_converges_without_duplicates() {
    let moto = Moto::start();
    moto.create_bucket("state");
    moto.python("aws('route53').create_hosted_zone(Name='example.com', CallerReference='t')");
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("cluster.yaml");
    std::fs::write(&spec, cluster_spec()).unwrap();
    let kopsrs = || {
        let mut c = moto.kopsrs("state");
        c.env("AWS_REGION", "eu-west-1");
        c
    };
    kopsrs()
        .args(["create", "-f"])
        .arg(&spec)
        .assert()
        .success();
    kopsrs()
        .args(["update", "cluster", "test.example.com", "--yes"])
        .assert()
        .success();
    // Take away the groups and their launch templates, as if the run had died before them.
    moto.python(
        "a=aws('autoscaling')\n\
         for g in a.describe_auto_scaling_groups()['AutoScalingGroups']: a.delete_auto_scaling_group(AutoScalingGroupName=g['AutoScalingGroupName'], ForceDelete=True)\n\
         e=aws('ec2')\n\
         for t in e.describe_launch_templates()['LaunchTemplates']: e.delete_launch_template(LaunchTemplateId=t['LaunchTemplateId'])",
    );
    let plan = kopsrs()
        .args([
            "update",
            "cluster",
            "test.example.com",
            "--detailed-exitcode",
        ])
        .assert()
        .code(2);
    let plan = String::from_utf8(plan.get_output().stdout.clone()).unwrap();
    assert!(
        plan.contains("Plan: 6 to add, 0 to change, 0 to replace, 0 to destroy."),
        "{plan}"
    );
    kopsrs()
        .args(["update", "cluster", "test.example.com", "--yes"])
        .assert()
        .success();
    let after = counts(&moto);
    assert_eq!(after["Vpcs"], 1, "{after}");
    assert_eq!(after["AutoScalingGroups"], 2, "{after}");
    assert_eq!(after["LaunchTemplates"], 2, "{after}");
    kopsrs()
        .args([
            "update",
            "cluster",
            "test.example.com",
            "--detailed-exitcode",
        ])
        .assert()
        .success();
}
