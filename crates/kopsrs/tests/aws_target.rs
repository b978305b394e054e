//! The direct AWS target against moto_server: plan, apply, re-plan (empty), delete, for the
//! production shapes (minimal, HA over three zones, private with a bastion, inside a shared
//! VPC), and under faults (killed runs, throttling and 5xx from the fault layer in front of
//! moto). Outcomes are checked with independent boto3 Describe calls, not with kopsrs's own
//! reads.

mod support;

use std::process::Command;

use assert_cmd::prelude::*;
use predicates::prelude::PredicateBooleanExt;
use support::{Moto, CLUSTER};

const SSH_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g t@kopsrs\n";

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
for call,key in [('describe_vpcs','Vpcs'),('describe_subnets','Subnets'),('describe_security_groups','SecurityGroups'),('describe_volumes','Volumes'),('describe_route_tables','RouteTables'),('describe_internet_gateways','InternetGateways'),('describe_key_pairs','KeyPairs'),('describe_dhcp_options','DhcpOptions')]:
    out[key]=len(getattr(e,call)(Filters=f)[key])
out['LaunchTemplates']=sum(len(p['LaunchTemplates']) for p in e.get_paginator('describe_launch_templates').paginate(Filters=f, PaginationConfig={'PageSize': 200}))
out['NatGateways']=len([n for n in e.describe_nat_gateways()['NatGateways'] if n['State'] in ('pending','available') and any(t['Key']=='kubernetes.io/cluster/test.example.com' for t in n.get('Tags',[]))])
out['Addresses']=len(e.describe_addresses(Filters=f)['Addresses'])
out['AutoScalingGroups']=sum(len(p['AutoScalingGroups']) for p in aws('autoscaling').get_paginator('describe_auto_scaling_groups').paginate())
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

// Page sizes: discovery asks for the largest page each Describe call allows (fewer calls;
// moto also stops at 15 launch templates without a token when none is given).

/// One moto server with a state bucket and the example.com zone, and kopsrs pointed at both.
struct Harness {
    moto: Moto,
    dir: tempfile::TempDir,
}

const NAME: &str = "test.example.com";

impl Harness {
    fn new() -> Harness {
        let moto = Moto::start();
        moto.create_bucket("state");
        moto.python("aws('route53').create_hosted_zone(Name='example.com', CallerReference='t')");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("id.pub"), SSH_KEY).unwrap();
        Harness { moto, dir }
    }

    fn kopsrs(&self) -> Command {
        let mut c = self.moto.kopsrs("state");
        c.env("AWS_REGION", "eu-west-1");
        c
    }

    /// `create -f` of a spec, and the SSH key.
    fn create_from(&self, spec: &str) {
        let file = self.dir.path().join("cluster.yaml");
        std::fs::write(&file, spec).unwrap();
        self.kopsrs()
            .args(["create", "-f"])
            .arg(&file)
            .assert()
            .success();
        self.kopsrs()
            .args(["create", "sshpublickey", "--name", NAME, "-i"])
            .arg(self.dir.path().join("id.pub"))
            .assert()
            .success();
    }

    /// `create cluster` with the image moto has and the test SSH key, plus `flags`.
    fn create_cluster(&self, flags: &[&str]) {
        self.kopsrs()
            .args([
                "create",
                "cluster",
                "--name",
                NAME,
                "--image",
                IMAGE,
                "--dns-zone",
                "example.com",
            ])
            .arg("--ssh-public-key")
            .arg(self.dir.path().join("id.pub"))
            .args(flags)
            .assert()
            .success();
    }

    /// `update cluster --detailed-exitcode`: the exit code and the plan.
    fn plan(&self) -> (i32, String) {
        support::detailed_plan(self.kopsrs(), NAME)
    }

    fn apply(&self) {
        self.kopsrs()
            .args(["update", "cluster", NAME, "--yes"])
            .assert()
            .success();
    }

    /// Re-plan right after an apply: nothing to do.
    fn assert_no_changes(&self) {
        let (code, plan) = self.plan();
        assert_eq!(code, 0, "re-plan is not empty:\n{plan}");
        assert!(plan.contains("No changes."), "{plan}");
    }

    fn assert_counts(&self, expected: &[(&str, u64)]) {
        let found = counts(&self.moto);
        for (kind, n) in expected {
            assert_eq!(found[*kind], *n, "{kind}: {found}");
        }
    }

    /// `delete cluster --yes`, then nothing tagged for the cluster exists and the cluster is
    /// gone from the state store.
    fn delete_all(&self) {
        self.delete();
        self.assert_all_deleted();
    }

    fn delete(&self) {
        self.kopsrs()
            .args(["delete", "cluster", NAME, "--yes"])
            .assert()
            .success();
    }

    /// Nothing of the cluster is left, in AWS or in the state store.
    fn assert_all_deleted(&self) {
        let left = counts(&self.moto);
        for (kind, n) in left.as_object().unwrap() {
            assert_eq!(n, 0, "{kind} left after delete: {left}");
        }
        self.kopsrs()
            .args(["get", "clusters"])
            .assert()
            .success()
            .stdout(predicates::str::contains(NAME).not());
    }
}

#[test]
fn plan_apply_replan_and_delete_a_minimal_cluster() {
    let h = Harness::new();
    h.create_from(&cluster_spec());

    // Dry run: a plan, exit 2 for CI, nothing created.
    let (code, plan) = h.plan();
    assert_eq!(code, 2);
    assert!(
        plan.contains("# aws_vpc.test-example-com will be created"),
        "{plan}"
    );
    assert!(
        plan.contains("to add, 0 to change, 0 to replace, 0 to destroy."),
        "{plan}"
    );
    assert_eq!(counts(&h.moto)["Vpcs"], 0, "a plan changes nothing");

    // `--yes` after the review: a line per action, not the whole plan again.
    let applied = h
        .kopsrs()
        .args(["update", "cluster", NAME, "--yes"])
        .output()
        .unwrap();
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    let said = String::from_utf8_lossy(&applied.stdout);
    assert!(said.starts_with("Applying to test.example.com"), "{said}");
    assert!(
        said.contains("aws_vpc (1)")
            && said
                .lines()
                .any(|l| l.starts_with("  + ") && l.contains(" to add: ")),
        "{said}"
    );
    assert!(!said.contains("will be created"), "{said}");
    h.assert_counts(&[
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
        ("NatGateways", 0),
    ]);
    // The completed spec is stored, as kops does on update.
    h.kopsrs()
        .args(["get", "cluster", NAME, "--full", "-o", "yaml"])
        .assert()
        .success();
    h.assert_no_changes();

    // Drift: a tag removed behind kopsrs's back is planned back as an in-place update.
    h.moto.python(
        "e=aws('ec2'); v=e.describe_vpcs(Filters=[{'Name':'tag:Name','Values':['test.example.com']}])['Vpcs'][0]\n\
         e.delete_tags(Resources=[v['VpcId']], Tags=[{'Key':'KubernetesCluster'}])",
    );
    let (code, drift) = h.plan();
    assert_eq!(code, 2);
    assert!(
        drift.contains("# aws_vpc.test-example-com will be updated in-place"),
        "{drift}"
    );
    assert!(
        drift.contains("Plan: 0 to add, 1 to change, 0 to replace, 0 to destroy."),
        "{drift}"
    );
    h.apply();
    h.assert_no_changes();

    // A launch-template change reads as the fields that change, the script as a diff of
    // its lines (issue 17, item 7), not as a content digest alone.
    h.kopsrs()
        .args([
            "edit",
            "ig",
            "nodes",
            "--name",
            NAME,
            "--set",
            "spec.machineType=m5.large",
        ])
        .assert()
        .success();
    h.kopsrs()
        .args([
            "edit",
            "cluster",
            NAME,
            "--set",
            "spec.kubernetesVersion=v1.34.2",
        ])
        .assert()
        .success();
    let (code, changed) = h.plan();
    assert_eq!(code, 2);
    assert!(
        changed.contains("~ instance_type") && changed.contains("= t3.medium -> m5.large"),
        "{changed}"
    );
    assert!(changed.contains("~ user_data = <<-EOT"), "{changed}");
    let removed = changed
        .lines()
        .filter(|l| l.trim_start().starts_with("- ") && l.contains("1.34.1"))
        .count();
    let added = changed
        .lines()
        .filter(|l| l.trim_start().starts_with("+ ") && l.contains("1.34.2"))
        .count();
    assert!(removed > 0 && added > 0, "{changed}");
    // Only the changed lines and their context, not the whole script.
    let script_lines = changed
        .split("~ user_data = <<-EOT")
        .nth(1)
        .and_then(|rest| rest.split("EOT").next())
        .map(|block| block.lines().count())
        .unwrap();
    assert!(script_lines < 60, "{script_lines} lines:\n{changed}");
    h.apply();
    h.assert_no_changes();

    // Delete without --yes lists and deletes nothing.
    h.kopsrs()
        .args(["delete", "cluster", NAME])
        .assert()
        .success();
    assert_eq!(
        counts(&h.moto)["Vpcs"],
        1,
        "delete without --yes deletes nothing"
    );
    h.delete_all();
}

/// A spot group (mixed instances), a warm pool, suspended processes and metrics: every
/// group setting reaches the Auto Scaling API (checked with boto3), a re-plan is empty, and
/// a new launch-template version reaches the mixed-instances policy.
/// A spec never applied, whose image does not resolve (the default Ubuntu release, which
/// moto does not have): `delete cluster` looks no image up (deleting needs none) and
/// succeeds, instead of failing on the lookup with a hint about credentials.
#[test]
fn a_cluster_never_applied_is_deleted_without_resolving_its_image() {
    let h = Harness::new();
    h.kopsrs()
        .args(["create", "cluster", "--name", NAME, "--zones", "eu-west-1a"])
        .args(["--dns-zone", "example.com"])
        .assert()
        .success();
    // The image does not resolve: the plan says so.
    let plan = h
        .kopsrs()
        .args(["update", "cluster", NAME])
        .output()
        .unwrap();
    assert!(
        !plan.status.success() && String::from_utf8_lossy(&plan.stderr).contains("no AMI matches"),
        "{}",
        String::from_utf8_lossy(&plan.stderr)
    );
    let deleted = h
        .kopsrs()
        .args(["delete", "cluster", NAME, "--yes"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&deleted.stderr);
    assert!(deleted.status.success(), "{stderr}");
    assert!(!stderr.contains("credentials"), "{stderr}");
    h.assert_all_deleted();
}

#[test]
fn group_settings_reach_auto_scaling() {
    let h = Harness::new();
    let spec = cluster_spec().replace(
        "  role: Node\n  minSize: 2\n  maxSize: 4\n",
        "  role: Node\n  minSize: 2\n  maxSize: 4\n  machineType: m5.large\n  mixedInstancesPolicy:\n    instances:\n    - m5.large\n    - m5a.large\n    onDemandAboveBase: 20\n    spotAllocationStrategy: capacity-optimized\n  suspendProcesses:\n  - AZRebalance\n  capacityRebalance: true\n",
    );
    h.create_from(&spec);
    // The JSON plan: stdout is one document CI can read; the exit code says "changes".
    let output = h
        .kopsrs()
        .args([
            "update",
            "cluster",
            NAME,
            "-o",
            "json",
            "--detailed-exitcode",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let plan: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let creates = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["action"] == "create")
        .count();
    assert!(creates > 20, "{plan}");
    assert_eq!(plan["summary"]["add"], creates);
    assert!(
        plan["addons"].as_array().is_some_and(|a| !a.is_empty()),
        "{plan}"
    );
    h.apply();
    let group = h.moto.python(
        "a=aws('autoscaling')\n\
         g=[g for g in a.describe_auto_scaling_groups()['AutoScalingGroups'] if g['AutoScalingGroupName'].startswith('nodes.')][0]\n\
         p=g['MixedInstancesPolicy']\n\
         w=a.describe_warm_pool(AutoScalingGroupName=g['AutoScalingGroupName']).get('WarmPoolConfiguration',{})\n\
         print(json.dumps({'types':[o['InstanceType'] for o in p['LaunchTemplate']['Overrides']],\n\
           'above':p['InstancesDistribution']['OnDemandPercentageAboveBaseCapacity'],\n\
           'strategy':p['InstancesDistribution']['SpotAllocationStrategy'],\n\
           'lt':p['LaunchTemplate']['LaunchTemplateSpecification'].get('LaunchTemplateId','') != '',\n\
           'plain_lt':'LaunchTemplate' in g,\n\
           'warm':[w.get('MinSize'), w.get('MaxGroupPreparedCapacity')],\n\
           'suspended':[s['ProcessName'] for s in g.get('SuspendedProcesses',[])],\n\
           'metrics':sorted(m['Metric'] for m in g.get('EnabledMetrics',[])),\n\
           'rebalance':g.get('CapacityRebalance')}, sort_keys=True))",
    );
    let group: serde_json::Value = serde_json::from_str(group.trim()).unwrap();
    assert_eq!(
        group["types"],
        serde_json::json!(["m5.large", "m5a.large"]),
        "{group}"
    );
    assert_eq!(group["above"], 20, "{group}");
    assert_eq!(group["strategy"], "capacity-optimized", "{group}");
    assert_eq!(group["lt"], true, "{group}");
    assert_eq!(
        group["plain_lt"], false,
        "a mixed group names its template in the policy: {group}"
    );
    // A warm pool does not go with a mixed-instances policy (refused, as kops refuses it;
    // rolling_update.rs has a group with one).
    assert_eq!(group["warm"], serde_json::json!([null, null]), "{group}");
    assert_eq!(
        group["suspended"],
        serde_json::json!(["AZRebalance"]),
        "{group}"
    );
    assert!(
        group["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m == "GroupInServiceInstances"),
        "metrics collected: {group}"
    );
    assert_eq!(group["rebalance"], true, "{group}");
    h.assert_no_changes();

    // A change to the launch template: a new version, and the policy moves to it.
    h.kopsrs()
        .args([
            "edit",
            "ig",
            "nodes",
            "--name",
            NAME,
            "--set",
            "spec.rootVolumeSize=64",
        ])
        .assert()
        .success();
    let (code, plan) = h.plan();
    assert_eq!(code, 2, "{plan}");
    assert!(
        plan.contains("aws_launch_template.nodes-test-example-com will be updated"),
        "{plan}"
    );
    h.apply();
    let version = h.moto.python(
        "a=aws('autoscaling')\n\
         g=[g for g in a.describe_auto_scaling_groups()['AutoScalingGroups'] if g['AutoScalingGroupName'].startswith('nodes.')][0]\n\
         print(g['MixedInstancesPolicy']['LaunchTemplate']['LaunchTemplateSpecification']['Version'])",
    );
    assert_eq!(version.trim(), "2");
    h.assert_no_changes();
}

/// HA: three control-plane groups over three zones, a node group per zone, an etcd member
/// (main and events volumes) per control-plane zone. `create cluster --yes` applies at once.
#[test]
fn ha_cluster_over_three_zones() {
    let h = Harness::new();
    h.create_cluster(&[
        "--zones",
        "eu-west-1a,eu-west-1b,eu-west-1c",
        "--control-plane-count",
        "3",
        "--node-count",
        "3",
        "--yes",
    ]);
    h.assert_counts(&[
        ("Vpcs", 1),
        ("Subnets", 3),
        ("AutoScalingGroups", 6),
        ("LaunchTemplates", 6),
        ("Volumes", 6),
        ("LoadBalancers", 1),
        ("NatGateways", 0),
    ]);
    // The control-plane groups are spread one per zone, and so are the etcd volumes.
    let zones = h.moto.python(
        "a=aws('autoscaling'); e=aws('ec2')\n\
         subnets={s['SubnetId']:s['AvailabilityZone'] for s in e.describe_subnets()['Subnets']}\n\
         cp=sorted(subnets[g['VPCZoneIdentifier']] for g in a.describe_auto_scaling_groups()['AutoScalingGroups'] if g['AutoScalingGroupName'].startswith('control-plane'))\n\
         vols=sorted(v['AvailabilityZone'] for v in e.describe_volumes()['Volumes'] if any(t['Key']=='k8s.io/etcd/main' for t in v.get('Tags',[])))\n\
         print(json.dumps([cp, vols]))",
    );
    assert_eq!(
        zones.trim(),
        r#"[["eu-west-1a", "eu-west-1b", "eu-west-1c"], ["eu-west-1a", "eu-west-1b", "eu-west-1c"]]"#
    );
    h.assert_no_changes();

    // get instances: one per group, in service, on the group's current template version;
    // the same IDs boto3 sees.
    let listed = h
        .kopsrs()
        .args(["get", "instances", NAME, "-o", "json"])
        .output()
        .unwrap();
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 6, "{listed:?}");
    for i in listed {
        assert_eq!(i["status"], "UpToDate", "{i}");
        assert_eq!(i["state"], "InService", "{i}");
        assert!(
            i["internalIp"].as_str().unwrap().starts_with("172.20."),
            "{i}"
        );
    }
    let roles: Vec<&str> = listed.iter().map(|i| i["role"].as_str().unwrap()).collect();
    assert_eq!(
        roles.iter().filter(|r| **r == "control-plane").count(),
        3,
        "{roles:?}"
    );
    let mut ids: Vec<String> = listed
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    let seen = h.moto.python(
        "a=aws('autoscaling')\n\
         print(json.dumps(sorted(i['InstanceId'] for g in a.describe_auto_scaling_groups()['AutoScalingGroups'] for i in g['Instances'])))",
    );
    assert_eq!(
        serde_json::to_string(&ids).unwrap().replace(',', ", "),
        seen.trim()
    );
    h.delete_all();
}

/// Private topology with a bastion: private and utility subnets, a NAT gateway with an
/// elastic IP, private routes through it; as in kops, the bastion instances sit in the
/// private subnet behind their own load balancer in the utility subnet.
#[test]
fn private_cluster_with_a_bastion() {
    let h = Harness::new();
    h.create_cluster(&[
        "--zones",
        "eu-west-1a",
        "--topology",
        "private",
        "--bastion",
        "--networking",
        "calico",
    ]);
    h.apply();
    h.assert_counts(&[
        ("Subnets", 2),
        ("NatGateways", 1),
        ("Addresses", 1),
        ("RouteTables", 2),
        ("AutoScalingGroups", 3),
        ("LoadBalancers", 2),
    ]);
    let routes = h.moto.python(
        "e=aws('ec2')\n\
         nat=e.describe_nat_gateways()['NatGateways'][0]['NatGatewayId']\n\
         via=[r.get('NatGatewayId') for t in e.describe_route_tables()['RouteTables'] for r in t['Routes'] if r.get('DestinationCidrBlock')=='0.0.0.0/0']\n\
         a=aws('autoscaling')\n\
         b=[g for g in a.describe_auto_scaling_groups()['AutoScalingGroups'] if g['AutoScalingGroupName'].startswith('bastion')][0]\n\
         sub=e.describe_subnets(SubnetIds=[b['VPCZoneIdentifier']])['Subnets'][0]\n\
         name=[t['Value'] for t in sub['Tags'] if t['Key']=='Name'][0]\n\
         l=aws('elbv2'); lb=[x for x in l.describe_load_balancers()['LoadBalancers'] if x['LoadBalancerName'].startswith('bastion')][0]\n\
         lbsub=e.describe_subnets(SubnetIds=[z['SubnetId'] for z in lb['AvailabilityZones']])['Subnets'][0]\n\
         lbname=[t['Value'] for t in lbsub['Tags'] if t['Key']=='Name'][0]\n\
         print(json.dumps([via.count(nat), name, lbname]))",
    );
    assert_eq!(
        routes.trim(),
        r#"[1, "eu-west-1a.test.example.com", "utility-eu-west-1a.test.example.com"]"#
    );
    h.assert_no_changes();
    h.delete_all();
}

/// What the spec drops that instances may still use (the bastions' load balancer, target
/// group, listener and security groups) is held back by `update --yes`, shown as deleted after
/// the roll, and deleted by `update --prune --yes`; the bastions' group goes at once.
#[test]
fn load_balancers_and_security_groups_wait_for_prune() {
    let h = Harness::new();
    h.create_cluster(&[
        "--zones",
        "eu-west-1a",
        "--topology",
        "private",
        "--bastion",
        "--networking",
        "calico",
    ]);
    h.apply();
    h.assert_counts(&[("AutoScalingGroups", 3), ("LoadBalancers", 2)]);
    let groups_before = counts(&h.moto)["SecurityGroups"].as_u64().unwrap();
    h.kopsrs()
        .args([
            "delete",
            "instancegroup",
            "bastions",
            "--name",
            NAME,
            "--yes",
        ])
        .assert()
        .success();
    let (code, plan) = h.plan();
    assert_eq!(code, 2, "{plan}");
    let held: Vec<&str> = plan
        .lines()
        .skip_while(|l| !l.starts_with("Held back: "))
        .skip(1)
        .collect();
    for kind in [
        "aws_lb.",
        "aws_lb_target_group.",
        "aws_lb_listener.",
        "aws_security_group.",
    ] {
        assert!(
            held.iter().any(|l| l.contains(kind)
                && l.ends_with("deleted after the roll (`update cluster --prune`)")),
            "{kind} not held:\n{plan}"
        );
    }
    assert!(plan.contains("# aws_autoscaling_group.bastions"), "{plan}");
    h.apply();
    // The group went; its load balancer and security groups stay for the roll.
    h.assert_counts(&[("AutoScalingGroups", 2), ("LoadBalancers", 2)]);
    assert_eq!(
        counts(&h.moto)["SecurityGroups"].as_u64().unwrap(),
        groups_before
    );
    let (code, plan) = h.plan();
    assert_eq!(code, 0, "only held changes: {plan}");
    assert!(plan.starts_with("No changes to apply now."), "{plan}");
    h.kopsrs()
        .args(["update", "cluster", NAME, "--prune", "--yes"])
        .assert()
        .success();
    h.assert_counts(&[("AutoScalingGroups", 2), ("LoadBalancers", 1)]);
    assert!(counts(&h.moto)["SecurityGroups"].as_u64().unwrap() < groups_before);
    h.assert_no_changes();
    h.delete_all();
}

/// The versions of a launch template: what DescribeLaunchTemplateVersions lists.
fn template_versions(h: &Harness, template: &str) -> Vec<u64> {
    let out = h.moto.python(&format!(
        "e=aws('ec2')\n\
         print(json.dumps(sorted(v['VersionNumber'] for v in e.describe_launch_template_versions(LaunchTemplateName='{template}', MaxResults=200)['LaunchTemplateVersions'])))"
    ));
    serde_json::from_str(out.trim()).unwrap()
}

/// Every content change of a group adds a launch-template version; `--prune` deletes the
/// ones no instance runs (never the default or the latest), and the others once the instances
/// that run them are gone.
#[test]
fn old_launch_template_versions_go_with_prune_once_no_instance_runs_them() {
    let h = Harness::new();
    h.create_cluster(&["--zones", "eu-west-1a", "--node-count", "2"]);
    h.apply();
    let nodes = format!("nodes-eu-west-1a.{NAME}");
    let control_plane = format!("control-plane-eu-west-1a.masters.{NAME}");
    for value in ["b", "c"] {
        h.kopsrs()
            .args(["edit", "ig", "nodes-eu-west-1a", "--name", NAME, "--set"])
            .arg(format!("spec.nodeLabels.team={value}"))
            .assert()
            .success();
        h.apply();
    }
    // The nodes' instances run version 1; 3 is the latest; 2 nothing runs.
    assert_eq!(template_versions(&h, &nodes), [1, 2, 3]);
    let dry = h
        .kopsrs()
        .args(["update", "cluster", NAME, "--prune"])
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&dry.stderr).to_string() + &String::from_utf8_lossy(&dry.stdout);
    assert!(
        said.contains(&format!(
            "deletes 1 launch-template version(s) no instance runs now: {nodes} (2)"
        )),
        "{said}"
    );
    assert_eq!(
        template_versions(&h, &nodes),
        [1, 2, 3],
        "a dry run deletes nothing"
    );
    h.kopsrs()
        .args(["update", "cluster", NAME, "--prune", "--yes"])
        .assert()
        .success();
    assert_eq!(template_versions(&h, &nodes), [1, 3]);
    assert_eq!(template_versions(&h, &control_plane), [1]);

    // The instances on version 1 are replaced (as a roll does): version 1 goes too.
    h.moto.python(&format!(
        "a=aws('autoscaling')\n\
         g=a.describe_auto_scaling_groups(AutoScalingGroupNames=['{nodes}'])['AutoScalingGroups'][0]\n\
         for i in g['Instances']:\n    \
         a.terminate_instance_in_auto_scaling_group(InstanceId=i['InstanceId'], ShouldDecrementDesiredCapacity=False)"
    ));
    h.kopsrs()
        .args(["update", "cluster", NAME, "--prune", "--yes"])
        .assert()
        .success();
    assert_eq!(template_versions(&h, &nodes), [3]);
    h.assert_no_changes();
    h.delete_all();
}

/// A VPC made by Terraform (VPC, internet gateway, a public subnet with a NAT gateway): the
/// cluster makes its own subnets in it, routes through the shared NAT gateway, and never
/// changes or deletes what it does not own.
#[test]
fn cluster_inside_a_shared_vpc_using_its_nat_gateway() {
    let h = Harness::new();
    let shared = h.moto.python(
        "e=aws('ec2')\n\
         vpc=e.create_vpc(CidrBlock='10.0.0.0/16', TagSpecifications=[{'ResourceType':'vpc','Tags':[{'Key':'Name','Value':'terraform-vpc'}]}])['Vpc']['VpcId']\n\
         e.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={'Value': True})\n\
         igw=e.create_internet_gateway()['InternetGateway']['InternetGatewayId']\n\
         e.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)\n\
         main=e.describe_route_tables(Filters=[{'Name':'vpc-id','Values':[vpc]}])['RouteTables'][0]['RouteTableId']\n\
         e.create_route(RouteTableId=main, DestinationCidrBlock='0.0.0.0/0', GatewayId=igw)\n\
         sub=e.create_subnet(VpcId=vpc, CidrBlock='10.0.112.0/24', AvailabilityZone='eu-west-1a')['Subnet']['SubnetId']\n\
         eip=e.allocate_address(Domain='vpc')['AllocationId']\n\
         nat=e.create_nat_gateway(SubnetId=sub, AllocationId=eip)['NatGateway']['NatGatewayId']\n\
         print(json.dumps([vpc, igw, sub, eip, nat]))",
    );
    let ids: Vec<String> = serde_json::from_str(shared.trim()).unwrap();
    let (vpc, nat) = (&ids[0], &ids[4]);
    let terraform_state = || {
        h.moto.python(&format!(
            "e=aws('ec2')\n\
             v=e.describe_vpcs(VpcIds=['{vpc}'])['Vpcs'][0]\n\
             g=e.describe_internet_gateways(InternetGatewayIds=['{}'])['InternetGateways'][0]\n\
             s=e.describe_subnets(SubnetIds=['{}'])['Subnets'][0]\n\
             n=e.describe_nat_gateways(NatGatewayIds=['{nat}'])['NatGateways'][0]\n\
             a=e.describe_addresses(AllocationIds=['{}'])['Addresses'][0]\n\
             print(json.dumps([v.get('Tags'), v['DhcpOptionsId'], g['Attachments'], s.get('Tags'), n['State'], a.get('AssociationId') is not None], sort_keys=True))",
            ids[1], ids[2], ids[3]
        ))
    };
    let before = terraform_state();
    h.create_cluster(&[
        "--zones",
        "eu-west-1a",
        "--topology",
        "private",
        "--networking",
        "calico",
        "--network-id",
        vpc,
        "--network-cidr",
        "10.0.0.0/16",
        "--set",
        &format!("spec.subnets[0].egress={nat}"),
    ]);
    let (code, plan) = h.plan();
    assert_eq!(code, 2);
    assert!(
        !plan.contains("aws_vpc.test-example-com will be created"),
        "{plan}"
    );
    assert!(!plan.contains("aws_nat_gateway"), "{plan}");
    h.apply();
    h.assert_counts(&[
        ("Vpcs", 0),
        ("Subnets", 2),
        ("NatGateways", 0),
        ("InternetGateways", 0),
    ]);
    let via = h.moto.python(&format!(
        "e=aws('ec2')\n\
         print(sum(1 for t in e.describe_route_tables(Filters=[{{'Name':'vpc-id','Values':['{vpc}']}}])['RouteTables'] for r in t['Routes'] if r.get('NatGatewayId')=='{nat}'))"
    ));
    assert_eq!(
        via.trim(),
        "1",
        "the private subnet routes through the shared NAT gateway"
    );
    assert_eq!(terraform_state(), before, "the shared VPC is not changed");
    h.assert_no_changes();
    h.delete_all();
    assert_eq!(
        terraform_state(),
        before,
        "delete leaves the shared VPC as it was"
    );
}

/// An IPv6 cluster with private subnets (an egress-only internet gateway) and an extra IPv4
/// block: both kinds are made, found again (the second plan is empty) and deleted.
#[test]
fn ipv6_private_cluster_with_an_additional_block_converges() {
    let h = Harness::new();
    h.create_cluster(&[
        "--zones",
        "eu-west-1a",
        "--ipv6",
        "--topology",
        "private",
        "--networking",
        "cilium",
        "--set",
        "spec.additionalNetworkCIDRs=10.1.0.0/16",
    ]);
    // moto cannot launch instances into IPv6-only subnets (it allocates IPv4 addresses):
    // the groups stay empty; their launch templates and groups are still made and compared.
    for group in ["control-plane-eu-west-1a", "nodes-eu-west-1a"] {
        for set in ["spec.minSize=0", "spec.maxSize=0"] {
            h.kopsrs()
                .args(["edit", "instancegroup", group, "--name", NAME, "--set", set])
                .assert()
                .success();
        }
    }
    h.apply();
    let made = h.moto.python(
        "e=aws('ec2')\n\
         gws=e.describe_egress_only_internet_gateways()['EgressOnlyInternetGateways']\n\
         v=[v for v in e.describe_vpcs()['Vpcs'] if any(t['Key']=='Name' and t['Value']=='test.example.com' for t in v.get('Tags',[]))][0]\n\
         print(json.dumps([len(gws), sorted(b['CidrBlock'] for b in v['CidrBlockAssociationSet'])]))",
    );
    let made: serde_json::Value = serde_json::from_str(made.trim()).unwrap();
    assert_eq!(made[0], 1, "one egress-only gateway: {made}");
    assert_eq!(
        made[1],
        serde_json::json!(["10.1.0.0/16", "172.20.0.0/16"]),
        "{made}"
    );
    h.assert_no_changes();
    h.delete_all();
    let left = h.moto.python(
        "print(len(aws('ec2').describe_egress_only_internet_gateways()['EgressOnlyInternetGateways']))",
    );
    assert_eq!(left.trim(), "0");
}

/// Resources the cluster uses but does not own (a VPC and a subnet made by Terraform) are
/// checked before anything changes: a wrong CIDR in the spec, or a subnet deleted behind the
/// cluster's back, stops `update --yes` with the field, the value and the fix, and nothing is
/// created.
#[test]
fn existing_resources_are_checked_before_any_change() {
    let h = Harness::new();
    let shared = h.moto.python(
        "e=aws('ec2')\n\
         vpc=e.create_vpc(CidrBlock='10.0.0.0/16')['Vpc']['VpcId']\n\
         igw=e.create_internet_gateway()['InternetGateway']['InternetGatewayId']\n\
         e.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)\n\
         sub=e.create_subnet(VpcId=vpc, CidrBlock='10.0.32.0/19', AvailabilityZone='eu-west-1a')['Subnet']['SubnetId']\n\
         print(json.dumps([vpc, sub]))",
    );
    let ids: Vec<String> = serde_json::from_str(shared.trim()).unwrap();
    let (vpc, subnet) = (&ids[0], &ids[1]);
    h.create_cluster(&[
        "--zones",
        "eu-west-1a",
        "--network-id",
        vpc,
        "--network-cidr",
        "10.0.0.0/16",
        "--subnets",
        subnet,
    ]);
    let (code, _) = h.plan();
    assert_eq!(code, 2, "the shared VPC and subnet are as the spec says");
    // What this test checks is the plan's own checks of what exists, not `validate network`
    // (its VPC is bare: no DNS hostnames, no routes).
    let refused = |expected: &[&str]| {
        let output = h
            .kopsrs()
            .args(["update", "cluster", NAME, "--yes", "--skip-network-checks"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        for text in expected {
            assert!(stderr.contains(text), "{text:?} not in: {stderr}");
        }
        h.assert_counts(&[
            ("LaunchTemplates", 0),
            ("Roles", 0),
            ("AutoScalingGroups", 0),
        ]);
    };
    let edit = |set: &str| {
        h.kopsrs()
            .args(["edit", "cluster", NAME, "--set", set])
            .assert()
            .success();
    };

    edit("spec.networkCIDR=10.9.0.0/16");
    refused(&[
        &format!(
            "spec.networkCIDR: VPC {vpc} has cidr_block 10.0.0.0/16, the spec says 10.9.0.0/16"
        ),
        "nothing was changed",
    ]);
    edit("spec.networkCIDR=10.0.0.0/16");

    // The subnet is in another zone than the spec says.
    edit("spec.subnets[0].zone=eu-west-1b");
    refused(&[&format!(
        "spec.subnets[eu-west-1a].zone: subnet {subnet} has availability_zone eu-west-1a, the spec says eu-west-1b"
    )]);
    edit("spec.subnets[0].zone=eu-west-1a");

    h.moto
        .python(&format!("aws('ec2').delete_subnet(SubnetId='{subnet}')"));
    refused(&[&format!(
        "spec.subnets[eu-west-1a].id: subnet {subnet} does not exist in eu-west-1"
    )]);
}

/// A run that stopped half-way (here: resources deleted behind its back, as a crash before
/// they were made would leave it) converges on the next run with no duplicates.
#[test]
fn a_partial_cluster_converges_without_duplicates() {
    let h = Harness::new();
    h.create_from(&cluster_spec());
    h.apply();
    // Take away the groups and their launch templates, as if the run had died before them.
    h.moto.python(
        "a=aws('autoscaling')\n\
         for g in a.describe_auto_scaling_groups()['AutoScalingGroups']: a.delete_auto_scaling_group(AutoScalingGroupName=g['AutoScalingGroupName'], ForceDelete=True)\n\
         e=aws('ec2')\n\
         for t in e.describe_launch_templates()['LaunchTemplates']: e.delete_launch_template(LaunchTemplateId=t['LaunchTemplateId'])",
    );
    let (code, plan) = h.plan();
    assert_eq!(code, 2);
    assert!(
        plan.contains("Plan: 6 to add, 0 to change, 0 to replace, 0 to destroy."),
        "{plan}"
    );
    h.apply();
    h.assert_counts(&[
        ("Vpcs", 1),
        ("AutoScalingGroups", 2),
        ("LaunchTemplates", 2),
    ]);
    h.assert_no_changes();
}

/// Waits until the fault layer has counted `calls` calls since its last reset.
fn wait_for_calls(moto: &Moto, calls: u64) {
    let started = std::time::Instant::now();
    while moto.calls()["total"].as_u64().unwrap() < calls {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "no progress"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Waits until the fault layer has counted a call of `action` (`ec2:CreateVpc`).
fn wait_for_action(moto: &Moto, action: &str) {
    let started = std::time::Instant::now();
    while moto.calls()["by_action"][action].as_u64().unwrap_or(0) == 0 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "no {action}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Killed runs: a SIGTERM stops the apply and releases the lock (exit 130); a SIGKILL leaves
/// the lock, which the next run on this machine takes over (its process is gone). That run
/// converges to exactly the cluster, with no duplicate resource.
#[test]
fn killed_applies_converge_without_duplicates() {
    let h = Harness::new();
    h.create_from(&cluster_spec());
    h.moto.faults(serde_json::json!({"latency_ms": 40}));

    // SIGTERM part-way through the apply: once it has made the VPC (its first create).
    let mut run = h
        .kopsrs()
        .args(["update", "cluster", NAME, "--yes"])
        .spawn()
        .unwrap();
    wait_for_action(&h.moto, "ec2:CreateVpc");
    Command::new("kill")
        .args(["-TERM", &run.id().to_string()])
        .status()
        .unwrap();
    let status = run.wait().unwrap();
    assert_eq!(status.code(), Some(130), "interrupted runs exit 130");
    let made = counts(&h.moto);
    assert_eq!(made["Vpcs"], 1, "the first run got somewhere: {made}");
    assert_eq!(
        made["AutoScalingGroups"], 0,
        "and stopped before the end: {made}"
    );

    // SIGKILL part-way through the second run.
    h.moto.faults(serde_json::json!({"latency_ms": 40}));
    let mut run = h
        .kopsrs()
        .args(["update", "cluster", NAME, "--yes"])
        .spawn()
        .unwrap();
    wait_for_calls(&h.moto, 45);
    run.kill().unwrap();
    run.wait().unwrap();
    h.moto.faults(serde_json::json!({}));

    // The killed holder ran on this host and no longer runs: the next run takes its lock
    // over, saying whose it was, and finishes the apply.
    let resumed = h
        .kopsrs()
        .args(["update", "cluster", NAME, "--yes"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert!(resumed.status.success(), "{stderr}");
    assert!(
        stderr.contains("took over the lock") && stderr.contains("no longer runs"),
        "{stderr}"
    );

    h.assert_counts(&[
        ("Vpcs", 1),
        ("Subnets", 1),
        ("SecurityGroups", 3),
        ("LaunchTemplates", 2),
        ("AutoScalingGroups", 2),
        ("Volumes", 2),
        ("RouteTables", 1),
        ("InternetGateways", 1),
        ("DhcpOptions", 1),
        ("LoadBalancers", 1),
        ("TargetGroups", 1),
        ("Roles", 2),
        ("InstanceProfiles", 2),
        ("ApiRecords", 2),
    ]);
    h.assert_no_changes();
    h.delete_all();
}

/// Throttling as EC2 does it (a token bucket for mutating calls: 20 calls/s, bursts of 10; a
/// concurrent apply asks for far more) and server errors (every 7th call) from the fault
/// layer: the SDK's adaptive retry and the engine's retries absorb them; apply, re-plan and
/// delete succeed.
#[test]
fn throttling_and_server_errors_are_retried() {
    let h = Harness::new();
    h.create_from(&cluster_spec());
    let faults = serde_json::json!({
        "throttle_rps": 20, "throttle_burst": 10, "throttle_mutating": true, "error_every": 7
    });
    h.moto.faults(faults.clone());
    h.apply();
    let calls = h.moto.calls();
    assert!(
        calls["throttled"].as_u64().unwrap() >= 3,
        "throttled: {calls}"
    );
    assert!(
        calls["injected"].as_u64().unwrap() >= 10,
        "faults were injected: {calls}"
    );
    h.moto.faults(serde_json::json!({}));
    h.assert_counts(&[
        ("Vpcs", 1),
        ("AutoScalingGroups", 2),
        ("LaunchTemplates", 2),
    ]);
    h.moto.faults(faults);
    h.assert_no_changes();
    h.delete();
    // The inventory is read without faults: it checks kopsrs, not the harness's retries.
    h.moto.faults(serde_json::json!({}));
    h.assert_all_deleted();
}

/// Instance groups made by `create -f`: `count` node groups of zero instances.
fn node_groups(count: usize) -> String {
    (0..count)
        .map(|i| {
            format!(
                "---\napiVersion: kops.k8s.io/v1alpha2\nkind: InstanceGroup\nmetadata:\n  name: pool-{i}\n  labels:\n    kops.k8s.io/cluster: {NAME}\nspec:\n  role: Node\n  image: {IMAGE}\n  minSize: 0\n  maxSize: 1\n  subnets:\n  - eu-west-1a\n"
            )
        })
        .collect()
}

/// The AWS API calls of a no-op plan, per action, counted by the fault layer (not by
/// kopsrs). Reads of the state store (S3: one object per instance group, as kops lays it
/// out) are not AWS API calls that throttle a cluster's account and are left out.
fn no_op_plan_calls(h: &Harness) -> std::collections::BTreeMap<String, u64> {
    h.moto.faults(serde_json::json!({}));
    h.assert_no_changes();
    let calls = h.moto.calls();
    let all: std::collections::BTreeMap<String, u64> =
        serde_json::from_value(calls["by_action"].clone()).unwrap();
    all.into_iter()
        .filter(|(action, _)| !action.starts_with("s3:"))
        .collect()
}

/// Discovery is batched: a no-op plan makes the same calls with 3 instance groups as with
/// 50, except for extra pages of paginated Describe calls.
#[test]
fn no_op_plan_calls_do_not_grow_with_instance_groups() {
    let h = Harness::new();
    h.create_from(&(cluster_spec() + &node_groups(1)));
    h.apply();
    let three = no_op_plan_calls(&h);

    let more = h.dir.path().join("more.yaml");
    std::fs::write(&more, node_groups(48).replace("pool-", "more-pool-")).unwrap();
    h.kopsrs()
        .args(["create", "-f"])
        .arg(&more)
        .assert()
        .success();
    h.apply();
    h.assert_counts(&[("AutoScalingGroups", 51), ("LaunchTemplates", 51)]);
    let fifty = no_op_plan_calls(&h);

    assert_eq!(
        three.keys().collect::<Vec<_>>(),
        fifty.keys().collect::<Vec<_>>(),
        "the same operations"
    );
    for (action, n) in &fifty {
        let extra = n - three[action];
        // One more page at most, and only for operations that page.
        assert!(
            extra == 0 || (extra == 1 && action.contains("Describe")),
            "{action}: {} calls with 3 groups, {n} with 51\n3: {three:?}\n51: {fifty:?}",
            three[action]
        );
    }
    let total = |m: &std::collections::BTreeMap<String, u64>| m.values().sum::<u64>();
    eprintln!(
        "no-op plan: {} calls with 3 groups, {} with 51",
        total(&three),
        total(&fifty)
    );
    assert!(total(&fifty) <= 30, "{fifty:?}");
}

/// What the spec names must exist before anything changes (issue 17, item 7): a subnet that
/// would overlap one already in a shared VPC, a DNS zone that is not there, an image that
/// does not exist. Each stops the plan with the resource and the fix; nothing is created.
#[test]
fn plan_time_checks_of_what_exists() {
    let h = Harness::new();
    let vpc = h.moto.python(
        "e=aws('ec2')\n\
         vpc=e.create_vpc(CidrBlock='10.0.0.0/16')['Vpc']['VpcId']\n\
         igw=e.create_internet_gateway()['InternetGateway']['InternetGatewayId']\n\
         e.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)\n\
         e.create_subnet(VpcId=vpc, CidrBlock='10.0.32.0/20', AvailabilityZone='eu-west-1b', TagSpecifications=[{'ResourceType':'subnet','Tags':[{'Key':'Name','Value':'terraform-b'}]}])\n\
         print(vpc)",
    );
    let vpc = vpc.trim();
    h.create_cluster(&[
        "--zones",
        "eu-west-1a",
        "--network-id",
        vpc,
        "--network-cidr",
        "10.0.0.0/16",
        "--set",
        "spec.subnets[0].cidr=10.0.32.0/19",
    ]);
    let refused = |expected: &[&str]| {
        let output = h
            .kopsrs()
            .args(["update", "cluster", NAME])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        for text in expected {
            assert!(stderr.contains(text), "{text:?} not in: {stderr}");
        }
        assert!(stderr.contains("nothing was changed"), "{stderr}");
        h.assert_counts(&[("Subnets", 0), ("LaunchTemplates", 0), ("Roles", 0)]);
    };
    refused(&[
        "aws_subnet.eu-west-1a-test-example-com: 10.0.32.0/19 overlaps subnet-",
        "(10.0.32.0/20, \"terraform-b\") already in vpc-",
        "give the spec's subnet a free range",
    ]);
    let edit = |what: &[&str]| {
        h.kopsrs()
            .args(["edit"])
            .args(what)
            .args(["--name", NAME])
            .assert()
            .success();
    };
    edit(&["cluster", "--set", "spec.subnets[0].cidr=10.0.64.0/19"]);
    let (code, _) = h.plan();
    assert_eq!(code, 2, "a free range plans");

    edit(&["cluster", "--set", "spec.dnsZone=missing.example.org"]);
    refused(&["no public hosted zone named \"missing.example.org\"; create it"]);
    edit(&["cluster", "--set", "spec.dnsZone=example.com"]);

    edit(&[
        "ig",
        "nodes-eu-west-1a",
        "--set",
        "spec.image=099720109477/no-such-image",
    ]);
    refused(&["no AMI matches", "set the instance group's spec.image"]);
}

/// The saved plan of the harness's cluster in `file`: `update cluster --out-plan`.
fn save_plan(h: &Harness, file: &std::path::Path) -> serde_json::Value {
    h.kopsrs()
        .args(["update", "cluster", NAME, "--out-plan"])
        .arg(file)
        .assert()
        .success();
    serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap()
}

/// `update cluster --plan FILE --yes`: its output, and whether it succeeded.
fn apply_saved(h: &Harness, file: &std::path::Path) -> (bool, String) {
    let output = h
        .kopsrs()
        .args(["update", "cluster", NAME, "--yes", "--plan"])
        .arg(file)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// The nodes group's maximum size, read with boto3.
fn nodes_max_size(moto: &Moto) -> String {
    moto.python(
        "g=[g for g in aws('autoscaling').describe_auto_scaling_groups()['AutoScalingGroups'] if g['AutoScalingGroupName']=='nodes.test.example.com'][0]\n\
         print(g['MaxSize'])",
    )
    .trim()
    .to_string()
}

/// Plan on the pull request, apply exactly that after merge: a saved plan applies only while
/// the spec and the cloud are as they were when it was made; otherwise it is refused and
/// nothing changes. `-o json` prints the same document.
#[test]
fn saved_plans_apply_only_what_was_reviewed() {
    let h = Harness::new();
    h.create_from(&cluster_spec());
    let dir = h.dir.path();
    let first = dir.join("first.json");
    let saved = save_plan(&h, &first);
    assert_eq!(saved["format_version"], "1");
    assert_eq!(saved["cluster"], NAME);
    assert!(
        saved["fingerprint"]["spec"]
            .as_str()
            .is_some_and(|s| s.starts_with("sha256:")),
        "{saved}"
    );
    assert!(saved["summary"]["add"].as_u64().unwrap() > 20, "{saved}");
    // `-o json` is the same document.
    let output = h
        .kopsrs()
        .args(["update", "cluster", NAME, "-o", "json"])
        .output()
        .unwrap();
    let printed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(printed, saved);

    // The spec changes after the plan was made: refused, nothing made.
    h.kopsrs()
        .args(["edit", "ig", "nodes", "--name", NAME])
        .args(["--set", "spec.rootVolumeSize=64"])
        .assert()
        .success();
    let (ok, text) = apply_saved(&h, &first);
    assert!(!ok, "{text}");
    assert!(
        text.contains("the saved plan is out of date") && text.contains("spec of test.example.com"),
        "{text}"
    );
    assert_eq!(counts(&h.moto)["Subnets"], 0, "nothing made: {text}");

    // A plan made now applies, and then there is nothing left to do.
    let second = dir.join("second.json");
    save_plan(&h, &second);
    let (ok, text) = apply_saved(&h, &second);
    assert!(ok, "{text}");
    h.assert_no_changes();
    // The same plan again: the cloud moved (by its own apply), so it is refused.
    let (ok, text) = apply_saved(&h, &second);
    assert!(!ok, "{text}");
    assert!(
        text.contains("the cloud changed since the plan was made"),
        "{text}"
    );

    // A plan with nothing to do, then a planned resource changed out of band: refused, the
    // change left as it was.
    let third = dir.join("third.json");
    assert_eq!(save_plan(&h, &third)["summary"]["change"], 0);
    h.moto.python(
        "aws('autoscaling').update_auto_scaling_group(AutoScalingGroupName='nodes.test.example.com', MaxSize=9)",
    );
    let (ok, text) = apply_saved(&h, &third);
    assert!(!ok, "{text}");
    assert!(
        text.contains("the cloud changed") && text.contains("nothing was changed"),
        "{text}"
    );
    assert_eq!(nodes_max_size(&h.moto), "9");
    // Reviewed again and applied: back to the spec.
    let fourth = dir.join("fourth.json");
    let plan = save_plan(&h, &fourth);
    assert_eq!(plan["summary"]["change"], 1, "{plan}");
    let (ok, text) = apply_saved(&h, &fourth);
    assert!(ok, "{text}");
    assert_eq!(nodes_max_size(&h.moto), "4");
    h.assert_no_changes();

    // Another cluster's plan, another format version, no fingerprint: refused before
    // anything is read.
    let fifth = dir.join("fifth.json");
    let mut plan = save_plan(&h, &fifth);
    for (edit, expected) in [
        (
            ("cluster", serde_json::json!("other.example.com")),
            "is a plan of \"other.example.com\", not of test.example.com",
        ),
        (
            ("format_version", serde_json::json!("2")),
            "format_version \"2\" is not one this kopsrs reads",
        ),
        (
            ("fingerprint", serde_json::Value::Null),
            "has no fingerprint",
        ),
    ] {
        let original = plan[edit.0].clone();
        plan[edit.0] = edit.1;
        std::fs::write(&fifth, plan.to_string()).unwrap();
        let (ok, text) = apply_saved(&h, &fifth);
        assert!(!ok && text.contains(expected), "{text}");
        plan[edit.0] = original;
    }
    // And unchanged, it applies (nothing to do).
    std::fs::write(&fifth, plan.to_string()).unwrap();
    let (ok, text) = apply_saved(&h, &fifth);
    assert!(ok, "{text}");
    h.delete_all();
}

/// A dry run prints the summary by action and kind first, then each change; `--summary`
/// prints the summary alone.
#[test]
fn a_dry_run_starts_with_its_summary_and_summary_prints_only_that() {
    let moto = Moto::start();
    moto.create_bucket("state");
    moto.python("aws('route53').create_hosted_zone(Name='example.com', CallerReference='t')");
    let name = "summary.example.com";
    let k = || {
        let mut c = moto.kopsrs("state");
        c.env("AWS_REGION", "eu-west-1");
        c
    };
    k().args([
        "create",
        "cluster",
        "--name",
        name,
        "--zones",
        "eu-west-1a,eu-west-1b,eu-west-1c",
    ])
    .args([
        "--control-plane-count",
        "3",
        "--dns-zone",
        "example.com",
        "--image",
        IMAGE,
    ])
    .assert()
    .success();
    let out = k().args(["update", "cluster", name]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some(format!("Plan for {name} (each change below):").as_str())
    );
    let first = lines.next().unwrap();
    assert!(
        first.starts_with("  + ") && first.contains(" to add: ") && first.contains("aws_vpc (1)"),
        "{first}"
    );
    let summary_end = text.find("  # ").expect("the changes after the summary");
    assert!(
        text[..summary_end].contains("aws_autoscaling_group (3)")
            || text[..summary_end].contains("aws_autoscaling_group ("),
        "{}",
        &text[..summary_end]
    );
    let only = k()
        .args(["update", "cluster", name, "--summary"])
        .output()
        .unwrap();
    assert!(only.status.success());
    let only = String::from_utf8_lossy(&only.stdout);
    assert!(
        only.starts_with(&format!("Plan for {name}:\n  + ")),
        "{only}"
    );
    assert!(!only.contains("  # "), "{only}");
    assert!(only.lines().count() < 10, "{only}");
    // JSON and --summary are one or the other.
    let both = k()
        .args(["update", "cluster", name, "--summary", "-o", "json"])
        .output()
        .unwrap();
    assert!(!both.status.success());
}

/// `securityGroupOverride` on a live node group (kops's semantics): the group's instances
/// get the given group instead of the nodes' own, the node rules are written on it (tagged
/// as the cluster's), the re-plan is empty, and `delete cluster` removes those rules but
/// never the given group or the rules it had before.
#[test]
fn a_given_security_group_is_used_and_never_deleted() {
    let h = Harness::new();
    h.create_cluster(&["--zones", "eu-west-1a"]);
    h.apply();
    // A team's group in the cluster's VPC, with a rule of its own.
    let given = h.moto.python(
        "e = aws('ec2')\n\
         vpc = e.describe_vpcs(Filters=[{'Name': 'tag-key', 'Values': ['kubernetes.io/cluster/test.example.com']}])['Vpcs'][0]['VpcId']\n\
         sg = e.create_security_group(GroupName='team-nodes', Description='team', VpcId=vpc)['GroupId']\n\
         e.authorize_security_group_ingress(GroupId=sg, IpPermissions=[{'IpProtocol': 'tcp', 'FromPort': 9100, 'ToPort': 9100, 'IpRanges': [{'CidrIp': '10.9.0.0/16'}]}])\n\
         print(sg)",
    );
    let given = given.trim();
    h.kopsrs()
        .args([
            "edit",
            "instancegroup",
            "nodes-eu-west-1a",
            "--name",
            NAME,
            "--set",
        ])
        .arg(format!("spec.securityGroupOverride={given}"))
        .assert()
        .success();
    let (code, plan) = h.plan();
    assert_eq!(code, 2, "{plan}");
    assert!(
        !plan
            .lines()
            .any(|l| l.contains("aws_security_group.") && l.contains("will be destroyed")),
        "no security group goes: {plan}"
    );
    h.apply();
    h.assert_no_changes();
    // The team's own rule is not inside the cluster's resources: not the plan's business.
    let (_, plan) = h.plan();
    assert!(!plan.contains("Left in place"), "{plan}");
    let state = |h: &Harness| -> serde_json::Value {
        let out = h.moto.python(&format!(
            "import json\n\
             e = aws('ec2')\n\
             groups = []\n\
             for lt in e.describe_launch_templates()['LaunchTemplates']:\n\
             \x20   if lt['LaunchTemplateName'].startswith('nodes-eu-west-1a.'):\n\
             \x20       v = e.describe_launch_template_versions(LaunchTemplateId=lt['LaunchTemplateId'], Versions=['$Latest'])['LaunchTemplateVersions'][0]['LaunchTemplateData']\n\
             \x20       groups = [n.get('Groups', []) for n in v.get('NetworkInterfaces', [])]\n\
             rules = e.describe_security_group_rules(Filters=[{{'Name': 'group-id', 'Values': ['{given}']}}])['SecurityGroupRules']\n\
             ours = [r for r in rules if any(t['Key'] == 'kubernetes.io/cluster/test.example.com' for t in r.get('Tags', []))]\n\
             peers = sorted(r.get('ReferencedGroupInfo', {{}}).get('GroupId', r.get('CidrIpv4', r.get('CidrIpv6', ''))) for r in ours if not r['IsEgress'])\n\
             names = {{g['GroupId']: g['GroupName'] for g in e.describe_security_groups()['SecurityGroups']}}\n\
             print(json.dumps({{'template_groups': groups, 'ours': len(ours), 'peers': [names.get(p, p) for p in peers],\n\
               'theirs': len(rules) - len(ours), 'exists': '{given}' in names}}))"
        ));
        serde_json::from_str(out.trim()).unwrap()
    };
    let s = state(&h);
    assert_eq!(s["template_groups"], serde_json::json!([[given]]), "{s}");
    // Ingress from the control plane, the nodes' own group and itself.
    let peers: Vec<&str> = s["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    for peer in [
        "masters.test.example.com",
        "nodes.test.example.com",
        "team-nodes",
    ] {
        assert!(peers.contains(&peer), "{peer}: {s}");
    }
    h.delete();
    let s = state(&h);
    assert_eq!(
        s["exists"], true,
        "the given group is not the cluster's: {s}"
    );
    assert_eq!(s["ours"], 0, "the cluster's rules went with it: {s}");
    assert!(
        s["theirs"].as_u64().unwrap() >= 1,
        "the team's own rule stays: {s}"
    );
    h.assert_all_deleted();
}
