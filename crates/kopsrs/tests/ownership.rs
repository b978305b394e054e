//! Ownership is exact: clusters whose names contain each other (`x.c`, `a.x.c`, `x.co`,
//! `x.c.d`) live side by side in one account, and updating or deleting one never touches
//! another's resources. Inside its own resources a cluster changes only what it made: a rule,
//! a route, an inline policy and an attached policy that a person added are left (and the plan
//! says so). Everything is checked with an independent boto3 inventory, not kopsrs's reads.

mod support;

use std::process::Command;

use assert_cmd::prelude::*;
use serde_json::Value;
use support::Moto;

const SSH_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g t@kopsrs\n";
const IMAGE: &str = "099720109477/ubuntu/images/hvm-ssd/ubuntu-xenial-16.04-amd64-server-20170721";

/// Each name is a prefix, a suffix or a near miss of another.
const CLUSTERS: [&str; 4] = ["x.c", "a.x.c", "x.co", "x.c.d"];

/// Every resource in the account, grouped by the cluster its `KubernetesCluster` tag names
/// ("other" when none); children (rules, routes, associations, policies, listeners, hooks)
/// are listed with their parent, so a change to any of them changes the parent's entry.
const INVENTORY: &str = r#"
CLUSTERS = ['x.c', 'a.x.c', 'x.co', 'x.c.d']
inv = {c: [] for c in CLUSTERS + ['other']}
vpc_owner = {}
def owner(tags, vpc=None):
    if isinstance(tags, list):
        tags = {t['Key']: t['Value'] for t in tags}
    c = (tags or {}).get('KubernetesCluster')
    # What AWS makes with a VPC (its main route table, its default group) goes with it.
    c = c or vpc_owner.get(vpc)
    return c if c in inv else 'other'
def put(tags, *entry, vpc=None):
    inv[owner(tags, vpc)].append(' '.join(str(x) for x in entry))
def tagstr(tags):
    if isinstance(tags, list):
        tags = {t['Key']: t['Value'] for t in tags}
    return json.dumps(tags or {}, sort_keys=True)
e = aws('ec2')
for v in e.describe_vpcs()['Vpcs']:
    vpc_owner[v['VpcId']] = owner(v.get('Tags'))
    put(v.get('Tags'), 'vpc', v['VpcId'], v['CidrBlock'], tagstr(v.get('Tags')))
for s in e.describe_subnets()['Subnets']:
    put(s.get('Tags'), 'subnet', s['SubnetId'], s['CidrBlock'], tagstr(s.get('Tags')))
for g in e.describe_internet_gateways()['InternetGateways']:
    put(g.get('Tags'), 'igw', g['InternetGatewayId'], [a['VpcId'] for a in g.get('Attachments', [])])
for d in e.describe_dhcp_options()['DhcpOptions']:
    put(d.get('Tags'), 'dhcp', d['DhcpOptionsId'])
for g in e.describe_security_groups()['SecurityGroups']:
    rules = e.describe_security_group_rules(Filters=[{'Name': 'group-id', 'Values': [g['GroupId']]}])['SecurityGroupRules']
    rules = sorted(f"{r['IsEgress']}|{r['IpProtocol']}|{r.get('FromPort')}|{r.get('ToPort')}|{r.get('CidrIpv4') or r.get('CidrIpv6') or r.get('ReferencedGroupInfo', {}).get('GroupId')}" for r in rules)
    put(g.get('Tags'), 'sg', g['GroupId'], g['GroupName'], rules, vpc=g.get('VpcId'))
for t in e.describe_route_tables()['RouteTables']:
    routes = sorted(f"{r.get('DestinationCidrBlock') or r.get('DestinationIpv6CidrBlock')}>{r.get('GatewayId') or r.get('NatGatewayId') or r.get('VpcPeeringConnectionId')}" for r in t['Routes'])
    assoc = sorted(a.get('SubnetId') or 'main' for a in t['Associations'])
    put(t.get('Tags'), 'rtb', t['RouteTableId'], routes, assoc, vpc=t.get('VpcId'))
# Instances' root volumes carry no tags: they belong to the instance's cluster.
# (AWS deletes them with a terminated instance; moto keeps them, so those are skipped.)
instances = [i for r in e.describe_instances()['Reservations'] for i in r['Instances']]
instance_owner = {i['InstanceId']: owner(i.get('Tags')) for i in instances}
gone = {i['InstanceId'] for i in instances if i['State']['Name'] in ('terminated', 'shutting-down')}
for v in e.describe_volumes()['Volumes']:
    if any(a['InstanceId'] in gone for a in v.get('Attachments', [])):
        continue
    attached = [instance_owner.get(a['InstanceId']) for a in v.get('Attachments', [])]
    tags = v.get('Tags') or ([{'Key': 'KubernetesCluster', 'Value': attached[0]}] if attached else None)
    put(tags, 'volume', v['VolumeId'], v['State'])
for k in e.describe_key_pairs()['KeyPairs']:
    put(k.get('Tags'), 'keypair', k['KeyName'])
for t in e.describe_launch_templates()['LaunchTemplates']:
    put(t.get('Tags'), 'lt', t['LaunchTemplateName'], t['LatestVersionNumber'])
a = aws('autoscaling')
for g in a.describe_auto_scaling_groups()['AutoScalingGroups']:
    hooks = sorted(h['LifecycleHookName'] for h in a.describe_lifecycle_hooks(AutoScalingGroupName=g['AutoScalingGroupName'])['LifecycleHooks'])
    put(g.get('Tags'), 'asg', g['AutoScalingGroupName'], g['MinSize'], g['MaxSize'], hooks)
lb = aws('elbv2')
for l in lb.describe_load_balancers()['LoadBalancers']:
    tags = lb.describe_tags(ResourceArns=[l['LoadBalancerArn']])['TagDescriptions'][0]['Tags']
    listeners = sorted(x['Port'] for x in lb.describe_listeners(LoadBalancerArn=l['LoadBalancerArn'])['Listeners'])
    put(tags, 'lb', l['LoadBalancerName'], listeners)
for t in lb.describe_target_groups()['TargetGroups']:
    tags = lb.describe_tags(ResourceArns=[t['TargetGroupArn']])['TagDescriptions'][0]['Tags']
    put(tags, 'tg', t['TargetGroupName'])
iam = aws('iam')
for r in iam.get_account_authorization_details(Filter=['Role'])['RoleDetailList']:
    put(r.get('Tags'), 'role', r['RoleName'],
        sorted(p['PolicyName'] for p in r['RolePolicyList']),
        sorted(p['PolicyArn'] for p in r['AttachedManagedPolicies']),
        sorted(p['InstanceProfileName'] for p in r['InstanceProfileList']))
for p in iam.list_instance_profiles()['InstanceProfiles']:
    put(p.get('Tags'), 'profile', p['InstanceProfileName'])
sqs = aws('sqs')
for url in sqs.list_queues().get('QueueUrls', []):
    put(sqs.list_queue_tags(QueueUrl=url).get('Tags'), 'queue', url.rsplit('/', 1)[1])
ev = aws('events')
for r in ev.list_rules()['Rules']:
    tags = ev.list_tags_for_resource(ResourceARN=r['Arn'])['Tags']
    targets = sorted(t['Arn'] for t in ev.list_targets_by_rule(Rule=r['Name'])['Targets'])
    put(tags, 'rule', r['Name'], targets)
print(json.dumps({c: sorted(v) for c, v in inv.items()}, sort_keys=True))
"#;

fn inventory(moto: &Moto) -> Value {
    serde_json::from_str(moto.python(INVENTORY).trim()).unwrap()
}

fn kopsrs(moto: &Moto) -> Command {
    let mut c = moto.kopsrs("state");
    c.env("AWS_REGION", "eu-west-1");
    c
}

/// The plan of `cluster` (exit 0: no changes, 2: changes).
fn plan(moto: &Moto, cluster: &str) -> (i32, String) {
    support::detailed_plan(kopsrs(moto), cluster)
}

/// Every other cluster's inventory is as it was.
fn assert_others_unchanged(before: &Value, after: &Value, except: &str, when: &str) {
    for cluster in CLUSTERS.iter().filter(|c| **c != except) {
        assert_eq!(
            before[cluster], after[cluster],
            "{when} changed {cluster}'s resources"
        );
    }
}

#[test]
fn neighbouring_clusters_never_touch_each_other() {
    let moto = Moto::start();
    moto.create_bucket("state");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("id.pub"), SSH_KEY).unwrap();
    for cluster in CLUSTERS {
        kopsrs(&moto)
            .args([
                "create",
                "cluster",
                "--name",
                cluster,
                "--zones",
                "eu-west-1a",
            ])
            .args(["--dns", "none", "--image", IMAGE, "--ssh-public-key"])
            .arg(dir.path().join("id.pub"))
            .arg("--yes")
            .assert()
            .success();
    }
    let applied = inventory(&moto);
    for cluster in CLUSTERS {
        let own = applied[cluster].as_array().unwrap();
        for kind in ["vpc ", "role ", "queue ", "rule ", "sg ", "asg ", "lb "] {
            assert!(
                own.iter().any(|e| e.as_str().unwrap().starts_with(kind)),
                "{cluster} has no {kind}: {own:?}"
            );
        }
    }

    // Each cluster's plan is empty and leaves nothing of another's; applying it changes
    // nothing anywhere.
    for cluster in CLUSTERS {
        let (code, text) = plan(&moto, cluster);
        assert_eq!(code, 0, "{cluster}:\n{text}");
        assert!(!text.contains("Left in place"), "{cluster}:\n{text}");
        kopsrs(&moto)
            .args(["update", "cluster", cluster, "--yes"])
            .assert()
            .success();
    }
    assert_eq!(inventory(&moto), applied, "no-op updates changed something");

    // A person adds a rule, a route, an inline policy and an attached policy inside x.c's
    // own resources: kopsrs keeps them and says so.
    let added = moto.python(
        "e=aws('ec2'); iam=aws('iam')\n\
         f=[{'Name':'tag:KubernetesCluster','Values':['x.c']}]\n\
         sg=[g for g in e.describe_security_groups(Filters=f)['SecurityGroups'] if g['GroupName'].startswith('nodes.')][0]['GroupId']\n\
         e.authorize_security_group_ingress(GroupId=sg, IpPermissions=[{'IpProtocol':'tcp','FromPort':9100,'ToPort':9100,'IpRanges':[{'CidrIp':'10.9.0.0/16'}]}])\n\
         vpc=e.describe_vpcs(Filters=f)['Vpcs'][0]['VpcId']\n\
         peer=e.create_vpc(CidrBlock='10.99.0.0/16')['Vpc']['VpcId']\n\
         pcx=e.create_vpc_peering_connection(VpcId=vpc, PeerVpcId=peer)['VpcPeeringConnection']['VpcPeeringConnectionId']\n\
         rtb=e.describe_route_tables(Filters=f)['RouteTables'][0]['RouteTableId']\n\
         e.create_route(RouteTableId=rtb, DestinationCidrBlock='10.99.0.0/16', VpcPeeringConnectionId=pcx)\n\
         iam.put_role_policy(RoleName='nodes.x.c', PolicyName='person-added', PolicyDocument=json.dumps({'Version':'2012-10-17','Statement':[{'Effect':'Allow','Action':'s3:ListBucket','Resource':'*'}]}))\n\
         arn=iam.create_policy(PolicyName='team-policy', PolicyDocument=json.dumps({'Version':'2012-10-17','Statement':[{'Effect':'Allow','Action':'s3:GetObject','Resource':'*'}]}))['Policy']['Arn']\n\
         iam.attach_role_policy(RoleName='nodes.x.c', PolicyArn=arn)\n\
         print(json.dumps([sg, rtb, pcx, arn]))",
    );
    let ids: Vec<String> = serde_json::from_str(added.trim()).unwrap();
    let (code, text) = plan(&moto, "x.c");
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("Left in place: 4 item(s)"), "{text}");
    for kind in [
        "aws_security_group_rule ",
        &format!("aws_route {}|10.99.0.0/16", ids[1]),
        "aws_iam_role_policy nodes.x.c:person-added",
        &format!("aws_iam_role_policy_attachment nodes.x.c|{}", ids[3]),
    ] {
        assert!(text.contains(kind), "{kind} not listed as left:\n{text}");
    }
    let with_additions = inventory(&moto);
    kopsrs(&moto)
        .args(["update", "cluster", "x.c", "--yes"])
        .assert()
        .success();
    assert_eq!(
        inventory(&moto),
        with_additions,
        "an update removed what a person added"
    );

    // The spec takes the person's policy over (spec.externalPolicies): the plan makes the
    // attachment (it exists: the attach is a no-op) and records it, so when the spec drops
    // the policy again it is detached. An attachment matched without a record would stay
    // attached for ever.
    let set_policies = |value: &str| {
        kopsrs(&moto)
            .args(["edit", "cluster", "x.c", "--set"])
            .arg(format!("spec.externalPolicies.node={value}"))
            .assert()
            .success();
    };
    let attached = || {
        moto.python(&format!(
            "iam=aws('iam')\n\
             a=[p['PolicyArn'] for p in iam.list_attached_role_policies(RoleName='nodes.x.c')['AttachedPolicies']]\n\
             t={{x['Key']: x['Value'] for x in iam.list_role_tags(RoleName='nodes.x.c')['Tags']}}\n\
             print(json.dumps(['{arn}' in a, '{arn}' in t.values()]))",
            arn = ids[3]
        ))
        .trim()
        .to_string()
    };
    set_policies(&ids[3]);
    let (code, text) = plan(&moto, "x.c");
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("aws_iam_role_policy_attachment") && text.contains("will be created"),
        "{text}"
    );
    kopsrs(&moto)
        .args(["update", "cluster", "x.c", "--yes"])
        .assert()
        .success();
    assert_eq!(attached(), "[true, true]", "attached and recorded");
    assert_eq!(plan(&moto, "x.c").0, 0);
    kopsrs(&moto)
        .args(["edit", "cluster", "x.c", "--unset", "spec.externalPolicies"])
        .assert()
        .success();
    let (code, text) = plan(&moto, "x.c");
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("will be destroyed"), "{text}");
    kopsrs(&moto)
        .args(["update", "cluster", "x.c", "--yes"])
        .assert()
        .success();
    assert_eq!(attached(), "[false, false]", "detached with its record");
    assert_eq!(plan(&moto, "x.c").0, 0);

    // Delete each in turn: all of its resources go, nobody else's.
    for (i, cluster) in CLUSTERS.iter().enumerate() {
        let before = inventory(&moto);
        kopsrs(&moto)
            .args(["delete", "cluster", cluster, "--yes"])
            .assert()
            .success();
        let after = inventory(&moto);
        assert_eq!(
            after[cluster],
            serde_json::json!([]),
            "{cluster} left resources behind"
        );
        assert_others_unchanged(&before, &after, cluster, &format!("deleting {cluster}"));
        assert_eq!(
            before["other"], after["other"],
            "deleting {cluster} touched resources of no cluster"
        );
        // The clusters still there still plan no changes.
        for other in &CLUSTERS[i + 1..] {
            let (code, text) = plan(&moto, other);
            assert_eq!(code, 0, "{other} after deleting {cluster}:\n{text}");
        }
    }
}
