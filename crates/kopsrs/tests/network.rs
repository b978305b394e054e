//! `validate network` against a VPC made with boto3 in moto as Terraform would make it, and
//! `update cluster`'s pre-flight for a cluster in that VPC (issue 15, item 3). Each check's
//! logic has a broken-VPC unit test in kopsrs-engine (network_tests.rs); this runs the AWS
//! reads and the command end to end.

mod support;

use support::Moto;

const NAME: &str = "net.example.com";

fn validate(moto: &Moto) -> (i32, serde_json::Value) {
    let out = moto
        .kopsrs("state")
        .env("AWS_REGION", "eu-west-1")
        .args(["validate", "network", NAME, "-o", "json"])
        .output()
        .unwrap();
    let json = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap(), json)
}

/// The checks that did not pass: (check, status), once per check.
fn not_passed(json: &serde_json::Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] != "passed")
        .map(|c| {
            (
                c["check"].as_str().unwrap().to_string(),
                c["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    out.dedup();
    out
}

#[test]
fn a_terraform_vpc_is_checked_and_a_broken_one_stops_update() {
    let moto = Moto::start();
    moto.create_bucket("state");
    moto.python("aws('route53').create_hosted_zone(Name='example.com', CallerReference='t')");
    // Private topology in one zone: a utility subnet with the NAT gateway, a private one.
    let ids = moto.python(&format!(
        "e=aws('ec2')\n\
         vpc=e.create_vpc(CidrBlock='10.0.0.0/16')['Vpc']['VpcId']\n\
         e.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={{'Value': True}})\n\
         dhcp=e.create_dhcp_options(DhcpConfigurations=[{{'Key':'domain-name','Values':['eu-west-1.compute.internal']}}])['DhcpOptions']['DhcpOptionsId']\n\
         e.associate_dhcp_options(DhcpOptionsId=dhcp, VpcId=vpc)\n\
         igw=e.create_internet_gateway()['InternetGateway']['InternetGatewayId']\n\
         e.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)\n\
         tag=lambda role: [{{'ResourceType':'subnet','Tags':[{{'Key':'kubernetes.io/cluster/{NAME}','Value':'shared'}},{{'Key':role,'Value':'1'}}]}}]\n\
         pub=e.create_subnet(VpcId=vpc, CidrBlock='10.0.0.0/22', AvailabilityZone='eu-west-1a', TagSpecifications=tag('kubernetes.io/role/elb'))['Subnet']['SubnetId']\n\
         priv=e.create_subnet(VpcId=vpc, CidrBlock='10.0.32.0/19', AvailabilityZone='eu-west-1a', TagSpecifications=tag('kubernetes.io/role/internal-elb'))['Subnet']['SubnetId']\n\
         pub_rt=e.create_route_table(VpcId=vpc)['RouteTable']['RouteTableId']\n\
         e.create_route(RouteTableId=pub_rt, DestinationCidrBlock='0.0.0.0/0', GatewayId=igw)\n\
         e.associate_route_table(RouteTableId=pub_rt, SubnetId=pub)\n\
         eip=e.allocate_address(Domain='vpc')['AllocationId']\n\
         nat=e.create_nat_gateway(SubnetId=pub, AllocationId=eip)['NatGateway']['NatGatewayId']\n\
         priv_rt=e.create_route_table(VpcId=vpc)['RouteTable']['RouteTableId']\n\
         e.create_route(RouteTableId=priv_rt, DestinationCidrBlock='0.0.0.0/0', NatGatewayId=nat)\n\
         e.associate_route_table(RouteTableId=priv_rt, SubnetId=priv)\n\
         print(json.dumps([vpc, pub, priv, priv_rt]))"
    ));
    let ids: Vec<String> = serde_json::from_str(ids.trim()).unwrap();
    let (vpc, public, private, private_rt) = (&ids[0], &ids[1], &ids[2], &ids[3]);
    let out = moto
        .kopsrs("state")
        .env("AWS_REGION", "eu-west-1")
        .args([
            "create",
            "cluster",
            "--name",
            NAME,
            "--dns-zone",
            "example.com",
        ])
        .args(["--zones", "eu-west-1a", "--topology", "private"])
        .args(["--network-id", vpc, "--network-cidr", "10.0.0.0/16"])
        .args(["--subnets", private, "--utility-subnets", public])
        .args(["--image", support::boot::IMAGE])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Sound: every check reported, none failed.
    let (code, json) = validate(&moto);
    assert_eq!(code, 0, "{json:#}");
    assert_eq!(
        not_passed(&json),
        Vec::<(String, String)>::new(),
        "{json:#}"
    );
    for id in [
        "vpc-exists",
        "vpc-cidr",
        "vpc-dns",
        "dhcp-options",
        "subnet-overlap",
        "subnet-outside-vpc",
        "subnet-zone",
        "subnet-cluster-cidr",
        "igw-route",
        "nat-route",
        "nat-placement",
        "nat-zone",
        "peering-active",
        "peering-route",
        "peering-overlap",
        "nacl",
        "subnet-tags",
    ] {
        assert!(
            json["checks"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["check"] == id),
            "{id} missing"
        );
    }

    // DNS hostnames off: that check alone fails, exit 1.
    moto.python(&format!(
        "aws('ec2').modify_vpc_attribute(VpcId='{vpc}', EnableDnsHostnames={{'Value': False}})"
    ));
    let (code, json) = validate(&moto);
    assert_eq!(code, 1);
    assert_eq!(
        not_passed(&json),
        [("vpc-dns".to_string(), "failed".to_string())]
    );
    moto.python(&format!(
        "aws('ec2').modify_vpc_attribute(VpcId='{vpc}', EnableDnsHostnames={{'Value': True}})"
    ));

    // One broken VPC per check, made and unmade with boto3: each reported by its identifier
    // and nothing else failing. (AWS itself refuses overlapping subnets in one VPC; overlaps
    // with planned subnets are in the engine's unit tests.)
    let ids2 = moto.python(&format!(
        "e=aws('ec2')\n\
         peer=e.create_vpc(CidrBlock='172.16.0.0/16')['Vpc']['VpcId']\n\
         clash=e.create_vpc(CidrBlock='10.0.0.0/17')['Vpc']['VpcId']\n\
         acl=e.describe_network_acls(Filters=[{{'Name':'vpc-id','Values':['{vpc}']}}])['NetworkAcls'][0]['NetworkAclId']\n\
         pub_rt=[t['RouteTableId'] for t in e.describe_route_tables(Filters=[{{'Name':'association.subnet-id','Values':['{public}']}}])['RouteTables']][0]\n\
         igw=e.describe_internet_gateways(Filters=[{{'Name':'attachment.vpc-id','Values':['{vpc}']}}])['InternetGateways'][0]['InternetGatewayId']\n\
         nat=e.describe_nat_gateways(Filter=[{{'Name':'subnet-id','Values':['{public}']}}])['NatGateways'][0]['NatGatewayId']\n\
         print(json.dumps([peer, clash, acl, pub_rt, igw, nat]))"
    ));
    let ids2: Vec<String> = serde_json::from_str(ids2.trim()).unwrap();
    let (peer, clash, acl, public_rt, igw, nat) =
        (&ids2[0], &ids2[1], &ids2[2], &ids2[3], &ids2[4], &ids2[5]);
    let tmp = std::env::temp_dir().join(format!("net-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let tmp = tmp.display();
    let cases: Vec<(&str, String, String)> = vec![
        (
            "igw-route",
            format!("e.delete_route(RouteTableId='{public_rt}', DestinationCidrBlock='0.0.0.0/0')"),
            format!("e.create_route(RouteTableId='{public_rt}', DestinationCidrBlock='0.0.0.0/0', GatewayId='{igw}')"),
        ),
        (
            "peering-active",
            format!("p=e.create_vpc_peering_connection(VpcId='{vpc}', PeerVpcId='{peer}')['VpcPeeringConnection']['VpcPeeringConnectionId']\nopen('{tmp}/pcx','w').write(p)"),
            format!("e.delete_vpc_peering_connection(VpcPeeringConnectionId=open('{tmp}/pcx').read())"),
        ),
        (
            "peering-route",
            format!("p=e.create_vpc_peering_connection(VpcId='{vpc}', PeerVpcId='{peer}')['VpcPeeringConnection']['VpcPeeringConnectionId']\ne.accept_vpc_peering_connection(VpcPeeringConnectionId=p)\nopen('{tmp}/pcx','w').write(p)\ne.create_route(RouteTableId='{public_rt}', DestinationCidrBlock='172.16.0.0/16', VpcPeeringConnectionId=p)"),
            format!("e.delete_route(RouteTableId='{public_rt}', DestinationCidrBlock='172.16.0.0/16')\ne.delete_vpc_peering_connection(VpcPeeringConnectionId=open('{tmp}/pcx').read())"),
        ),
        (
            "nacl",
            format!("e.create_network_acl_entry(NetworkAclId='{acl}', RuleNumber=50, Protocol='6', RuleAction='deny', Egress=False, CidrBlock='0.0.0.0/0', PortRange={{'From':443,'To':443}})"),
            format!("e.delete_network_acl_entry(NetworkAclId='{acl}', RuleNumber=50, Egress=False)"),
        ),
        (
            // Node to node: the kubelet's port from the utility subnet (it holds the load
            // balancers' and bastions' ENIs, and is another of the cluster's subnets).
            "nacl",
            format!("e.create_network_acl_entry(NetworkAclId='{acl}', RuleNumber=60, Protocol='6', RuleAction='deny', Egress=False, CidrBlock='10.0.0.0/22', PortRange={{'From':10250,'To':10250}})"),
            format!("e.delete_network_acl_entry(NetworkAclId='{acl}', RuleNumber=60, Egress=False)"),
        ),
        (
            // The private subnet egresses through a NAT gateway made in a private subnet.
            "nat-placement",
            format!("a=e.allocate_address(Domain='vpc')['AllocationId']\nn=e.create_nat_gateway(SubnetId='{private}', AllocationId=a)['NatGateway']['NatGatewayId']\nopen('{tmp}/nat','w').write(n)\ne.replace_route(RouteTableId='{private_rt}', DestinationCidrBlock='0.0.0.0/0', NatGatewayId=n)"),
            format!("e.replace_route(RouteTableId='{private_rt}', DestinationCidrBlock='0.0.0.0/0', NatGatewayId='{nat}')\ne.delete_nat_gateway(NatGatewayId=open('{tmp}/nat').read())"),
        ),
        (
            // A neighbouring cluster (its name ends with ours) claims the shared subnet.
            "subnet-tags",
            format!("e.create_tags(Resources=['{private}'], Tags=[{{'Key':'kubernetes.io/cluster/x{NAME}','Value':'owned'}}])"),
            format!("e.delete_tags(Resources=['{private}'], Tags=[{{'Key':'kubernetes.io/cluster/x{NAME}'}}])"),
        ),
    ];
    for (check, broken, fixed) in &cases {
        moto.python(&format!("e=aws('ec2')\n{broken}"));
        let (code, json) = validate(&moto);
        assert_eq!(code, 1, "{check}: {json:#}");
        let got = not_passed(&json);
        // A peering to a VPC none of the cluster's route tables know fails its route check
        // too; each case names what it breaks.
        let expected: Vec<(String, String)> = match *check {
            "peering-active" => vec![
                ("peering-active".into(), "failed".into()),
                ("peering-route".into(), "failed".into()),
            ],
            "peering-route" => vec![("peering-route".into(), "failed".into())],
            // The NAT gateway sits in that public subnet: it loses the internet too.
            "igw-route" => vec![
                ("igw-route".into(), "failed".into()),
                ("nat-placement".into(), "failed".into()),
            ],
            c => vec![(c.to_string(), "failed".into())],
        };
        assert_eq!(got, expected, "{check}: {json:#}");
        moto.python(&format!("e=aws('ec2')\n{fixed}"));
        let (code, json) = validate(&moto);
        assert_eq!(code, 0, "{check} fixed: {json:#}");
    }
    // Without the load-balancer role tag: a warning naming the command, exit 0 (kops does not
    // require it).
    moto.python(&format!(
        "aws('ec2').delete_tags(Resources=['{private}'], Tags=[{{'Key':'kubernetes.io/role/internal-elb'}}])"
    ));
    let (code, json) = validate(&moto);
    assert_eq!(code, 0, "{json:#}");
    assert_eq!(
        not_passed(&json),
        [("subnet-tags".to_string(), "warning".to_string())]
    );
    moto.python(&format!(
        "aws('ec2').create_tags(Resources=['{private}'], Tags=[{{'Key':'kubernetes.io/role/internal-elb','Value':'1'}}])"
    ));
    // Without the cluster's own tag: `update cluster --yes` adds it (passes, saying so);
    // with spec.DisableSubnetTags the user tags it, and the hint is the exact command.
    moto.python(&format!(
        "aws('ec2').delete_tags(Resources=['{private}'], Tags=[{{'Key':'kubernetes.io/cluster/{NAME}'}}])"
    ));
    let (code, json) = validate(&moto);
    assert_eq!(code, 0, "{json:#}");
    assert!(
        json["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["check"] == "subnet-tags"
                && c["resource"] == private.as_str()
                && c["message"]
                    .as_str()
                    .unwrap()
                    .contains("added by `update cluster --yes`")),
        "{json:#}"
    );
    let edit = |value: &str| {
        let out = moto
            .kopsrs("state")
            .env("AWS_REGION", "eu-west-1")
            .args(["edit", "cluster", NAME, "--set"])
            .arg(format!("spec.DisableSubnetTags={value}"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    edit("true");
    let (code, json) = validate(&moto);
    assert_eq!(code, 1, "{json:#}");
    let hint = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "subnet-tags" && c["status"] == "failed")
        .map(|c| c["hint"].as_str().unwrap().to_string())
        .unwrap_or_else(|| panic!("{json:#}"));
    assert!(
        hint.contains(&format!(
            "aws ec2 create-tags --resources {private} --tags Key=kubernetes.io/cluster/{NAME},Value=shared"
        )),
        "{hint}"
    );
    edit("false");
    moto.python(&format!(
        "aws('ec2').create_tags(Resources=['{private}'], Tags=[{{'Key':'kubernetes.io/cluster/{NAME}','Value':'shared'}}])"
    ));
    assert_eq!(validate(&moto).0, 0);

    // A peer whose CIDR collides with the VPC's.
    moto.python(&format!(
        "e=aws('ec2')\np=e.create_vpc_peering_connection(VpcId='{vpc}', PeerVpcId='{clash}')['VpcPeeringConnection']['VpcPeeringConnectionId']\ne.accept_vpc_peering_connection(VpcPeeringConnectionId=p)"
    ));
    let (code, json) = validate(&moto);
    assert_eq!(code, 1);
    assert!(
        not_passed(&json).contains(&("peering-overlap".to_string(), "failed".to_string())),
        "{json:#}"
    );
    moto.python(&format!(
        "e=aws('ec2')\nfor p in e.describe_vpc_peering_connections(Filters=[{{'Name':'accepter-vpc-info.vpc-id','Values':['{clash}']}}])['VpcPeeringConnections']: e.delete_vpc_peering_connection(VpcPeeringConnectionId=p['VpcPeeringConnectionId'])"
    ));
    assert_eq!(validate(&moto).0, 0);

    // Mistakes in the spec itself, which only the VPC can reveal: each made with `replace -f`
    // from the stored spec, reported by its identifier, then undone.
    let spec = {
        let out = moto
            .kopsrs("state")
            .args(["get", "cluster", NAME, "-o", "json"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()[0].take()
    };
    let replace = |spec: &serde_json::Value| {
        let mut child = moto
            .kopsrs("state")
            .args(["replace", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(
            &mut child.stdin.take().unwrap(),
            spec.to_string().as_bytes(),
        )
        .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let private_index = spec["spec"]["subnets"]
        .as_array()
        .unwrap()
        .iter()
        .position(|s| s["type"] == "Private")
        .unwrap();
    // Another team's subnet, and a secondary block (100.64.0.0/16, as EKS custom networking
    // uses) holding a subnet routed and tagged as the cluster's private one would be.
    let in_pod_range = moto.python(&format!(
        "e=aws('ec2')\n\
         e.create_subnet(VpcId='{vpc}', CidrBlock='10.0.250.0/24', AvailabilityZone='eu-west-1b')\n\
         e.associate_vpc_cidr_block(VpcId='{vpc}', CidrBlock='100.64.0.0/16')\n\
         s=e.create_subnet(VpcId='{vpc}', CidrBlock='100.64.1.0/24', AvailabilityZone='eu-west-1a', TagSpecifications=[{{'ResourceType':'subnet','Tags':[{{'Key':'kubernetes.io/cluster/{NAME}','Value':'shared'}},{{'Key':'kubernetes.io/role/internal-elb','Value':'1'}}]}}])['Subnet']['SubnetId']\n\
         e.associate_route_table(RouteTableId='{private_rt}', SubnetId=s)\n\
         print(s)"
    ));
    let in_pod_range = in_pod_range.trim();
    let planned = |name: &str, cidr: &str| serde_json::json!({"name": name, "cidr": cidr, "zone": "eu-west-1a", "type": "Utility"});
    type Edit<'a> = Box<dyn Fn(&mut serde_json::Value) + 'a>;
    let edits: Vec<(Vec<&str>, Edit)> = vec![
        (
            vec!["subnet-zone"],
            Box::new(|s| s["spec"]["subnets"][private_index]["zone"] = "eu-west-1b".into()),
        ),
        (
            // A new subnet the spec asks for, on top of the other team's.
            vec!["subnet-overlap"],
            Box::new(|s| {
                s["spec"]["subnets"]
                    .as_array_mut()
                    .unwrap()
                    .push(planned("extra", "10.0.250.0/26"))
            }),
        ),
        (
            // A block the spec claims the VPC has, and a subnet in it.
            vec!["vpc-cidr", "subnet-outside-vpc"],
            Box::new(|s| {
                s["spec"]["additionalNetworkCIDRs"] = serde_json::json!(["10.1.0.0/16"]);
                s["spec"]["subnets"]
                    .as_array_mut()
                    .unwrap()
                    .push(planned("outside", "10.1.0.0/24"))
            }),
        ),
        (
            // The shared private subnet swapped for one inside the service range.
            vec!["subnet-cluster-cidr"],
            Box::new(|s| {
                let subnet = &mut s["spec"]["subnets"][private_index];
                subnet["id"] = in_pod_range.into();
                subnet.as_object_mut().unwrap().remove("cidr");
            }),
        ),
    ];
    for (checks, edit) in &edits {
        let mut broken = spec.clone();
        edit(&mut broken);
        replace(&broken);
        let (code, json) = validate(&moto);
        assert_eq!(code, 1, "{checks:?}: {json:#}");
        let expected: Vec<(String, String)> = checks
            .iter()
            .map(|c| (c.to_string(), "failed".to_string()))
            .collect();
        assert_eq!(not_passed(&json), expected, "{checks:?}: {json:#}");
        replace(&spec);
        assert_eq!(validate(&moto).0, 0, "{checks:?} undone");
    }

    // The private subnet loses its NAT route: validate says so, and `update cluster --yes`
    // stops before any change, naming the check; --skip-network-checks says it skipped them.
    moto.python(&format!(
        "aws('ec2').delete_route(RouteTableId='{private_rt}', DestinationCidrBlock='0.0.0.0/0')"
    ));
    let (code, json) = validate(&moto);
    assert_eq!(code, 1);
    assert_eq!(
        not_passed(&json),
        [("nat-route".to_string(), "failed".to_string())]
    );
    let out = moto
        .kopsrs("state")
        .env("AWS_REGION", "eu-west-1")
        .args(["update", "cluster", NAME, "--yes"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("network check nat-route failed")
            && stderr.contains("--skip-network-checks")
            && stderr.contains("nothing was changed"),
        "{stderr}"
    );
    let created = moto.python(
        "print(len(aws('ec2').describe_launch_templates()['LaunchTemplates']), len(aws('autoscaling').describe_auto_scaling_groups()['AutoScalingGroups']))",
    );
    assert_eq!(created.trim(), "0 0", "nothing created");
    // A dry run warns and still prints its plan.
    let out = moto
        .kopsrs("state")
        .env("AWS_REGION", "eu-west-1")
        .args(["update", "cluster", NAME])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("would stop here"), "{stderr}");
    let out = moto
        .kopsrs("state")
        .env("AWS_REGION", "eu-west-1")
        .args(["update", "cluster", NAME, "--skip-network-checks"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Network checks skipped"));

    // The calls of one check do not depend on the number of subnets: 28 more subnets of
    // other teams, same count.
    let calls = |moto: &Moto| {
        moto.faults(serde_json::json!({}));
        validate(moto);
        let by_action = moto.calls()["by_action"].clone();
        by_action
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| !k.starts_with("s3:"))
            .map(|(_, v)| v.as_u64().unwrap())
            .sum::<u64>()
    };
    let before = calls(&moto);
    moto.python(&format!(
        "e=aws('ec2')\n\
         for i in range(28): e.create_subnet(VpcId='{vpc}', CidrBlock=f'10.0.{{128+i}}.0/24', AvailabilityZone='eu-west-1b')"
    ));
    let after = calls(&moto);
    println!("validate network AWS calls: {before} with 4 subnets, {after} with 32");
    assert_eq!(after, before);
}

/// Two clusters (one name a suffix of the other) in one Terraform-made VPC, sharing its NAT
/// gateway and its public subnet: both pass the pre-flight and apply, each adding its own
/// `kubernetes.io/cluster/NAME=shared` to the shared subnet (as kops does), each re-plans
/// empty; deleting one removes its own tag only and leaves the other and the VPC as they were
/// (issue 15, item 4; issue 31, item 4).
#[test]
fn two_clusters_share_a_terraform_vpc_and_its_nat_gateway() {
    let moto = Moto::start();
    moto.create_bucket("state");
    moto.python("aws('route53').create_hosted_zone(Name='example.com', CallerReference='t')");
    let ids = moto.python(
        "e=aws('ec2')\n\
         vpc=e.create_vpc(CidrBlock='10.0.0.0/16', TagSpecifications=[{'ResourceType':'vpc','Tags':[{'Key':'Name','Value':'terraform'}]}])['Vpc']['VpcId']\n\
         e.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={'Value': True})\n\
         igw=e.create_internet_gateway()['InternetGateway']['InternetGatewayId']\n\
         e.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)\n\
         tags=[{'Key':'Name','Value':'terraform-public'},{'Key':'kubernetes.io/role/elb','Value':'1'},{'Key':'kubernetes.io/cluster/other.example.com','Value':'shared'}]\n\
         pub=e.create_subnet(VpcId=vpc, CidrBlock='10.0.200.0/24', AvailabilityZone='eu-west-1a', TagSpecifications=[{'ResourceType':'subnet','Tags':tags}])['Subnet']['SubnetId']\n\
         rt=e.create_route_table(VpcId=vpc)['RouteTable']['RouteTableId']\n\
         e.create_route(RouteTableId=rt, DestinationCidrBlock='0.0.0.0/0', GatewayId=igw)\n\
         e.associate_route_table(RouteTableId=rt, SubnetId=pub)\n\
         eip=e.allocate_address(Domain='vpc')['AllocationId']\n\
         nat=e.create_nat_gateway(SubnetId=pub, AllocationId=eip)['NatGateway']['NatGatewayId']\n\
         print(json.dumps([vpc, nat, pub]))",
    );
    let ids: Vec<String> = serde_json::from_str(ids.trim()).unwrap();
    let (vpc, nat, public) = (&ids[0], &ids[1], &ids[2]);
    let terraform = || {
        moto.python(&format!(
            "e=aws('ec2')\n\
             f=[{{'Name':'vpc-id','Values':['{vpc}']}}]\n\
             v=e.describe_vpcs(VpcIds=['{vpc}'])['Vpcs'][0]\n\
             s=[(x['SubnetId'], sorted((t['Key'], t['Value']) for t in x.get('Tags', []))) for x in e.describe_subnets(Filters=f)['Subnets'] if any(t['Value'].startswith('terraform') for t in x.get('Tags', []))]\n\
             n=e.describe_nat_gateways(NatGatewayIds=['{nat}'])['NatGateways'][0]['State']\n\
             g=[a['State'] for x in e.describe_internet_gateways(Filters=[{{'Name':'attachment.vpc-id','Values':['{vpc}']}}])['InternetGateways'] for a in x['Attachments']]\n\
             print(json.dumps([v.get('Tags'), s, n, g], sort_keys=True))"
        ))
    };
    let before = terraform();
    let kopsrs = || {
        let mut c = moto.kopsrs("state");
        c.env("AWS_REGION", "eu-west-1");
        c
    };
    let ok = |c: &mut std::process::Command| {
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "{c:?}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    // Each cluster its own private range; both egress through the one NAT and put their
    // load balancers in Terraform's public subnet, which carries both clusters' tags.
    for (name, private) in [
        ("c1.example.com", "10.0.32.0/19"),
        ("xc1.example.com", "10.0.64.0/19"),
    ] {
        ok(kopsrs()
            .args([
                "create",
                "cluster",
                "--name",
                name,
                "--dns-zone",
                "example.com",
            ])
            .args(["--zones", "eu-west-1a", "--topology", "private"])
            .args(["--network-id", vpc, "--network-cidr", "10.0.0.0/16"])
            .args(["--image", support::boot::IMAGE, "--ssh-public-key"])
            .arg(support::repo_root().join("examples/id_ed25519.pub"))
            .args(["--set", &format!("spec.subnets[0].cidr={private}")])
            .args(["--set", &format!("spec.subnets[0].egress={nat}")])
            .args(["--set", &format!("spec.subnets[1].id={public}")])
            .args(["--unset", "spec.subnets[1].cidr"]));
        ok(kopsrs().args(["update", "cluster", name, "--yes"]));
    }
    let replans_empty = |name: &str| {
        let (code, plan) = support::detailed_plan(kopsrs(), name);
        assert_eq!(code, 0, "{name} re-plans:\n{plan}");
    };
    replans_empty("c1.example.com");
    replans_empty("xc1.example.com");
    let cluster_tags = || -> Vec<(String, String)> {
        let out = moto.python(&format!(
            "t=aws('ec2').describe_subnets(SubnetIds=['{public}'])['Subnets'][0]['Tags']\n\
             print(json.dumps(sorted([x['Key'], x['Value']] for x in t if x['Key'].startswith('kubernetes.io/cluster/'))))"
        ));
        serde_json::from_str(out.trim()).unwrap()
    };
    let tag = |c: &str| (format!("kubernetes.io/cluster/{c}"), "shared".to_string());
    assert_eq!(
        cluster_tags(),
        vec![
            tag("c1.example.com"),
            tag("other.example.com"),
            tag("xc1.example.com")
        ]
    );
    // Each passes the network checks with the other beside it: the shared subnet's tags
    // (all `shared`) are read, not rewritten.
    let network_sound = |name: &str| {
        ok(kopsrs().args(["validate", "network", name]));
    };
    network_sound("c1.example.com");
    network_sound("xc1.example.com");
    let instances = |name: &str| {
        moto.python(&format!(
            "r=aws('ec2').describe_instances(Filters=[{{'Name':'tag-key','Values':['kubernetes.io/cluster/{name}']}},{{'Name':'instance-state-name','Values':['pending','running']}}])\n\
             print(sum(len(x['Instances']) for x in r['Reservations']))"
        ))
        .trim()
        .parse::<u32>()
        .unwrap()
    };
    let xc1 = instances("xc1.example.com");
    assert!(xc1 > 0 && instances("c1.example.com") > 0);

    ok(kopsrs().args(["delete", "cluster", "c1.example.com", "--yes"]));
    assert_eq!(instances("c1.example.com"), 0);
    assert_eq!(
        instances("xc1.example.com"),
        xc1,
        "the neighbour is untouched"
    );
    replans_empty("xc1.example.com");
    network_sound("xc1.example.com");
    // Its own key gone, exactly: the neighbour's (whose name ends with it) and another's stay.
    assert_eq!(
        cluster_tags(),
        vec![tag("other.example.com"), tag("xc1.example.com")]
    );
    ok(kopsrs().args(["delete", "cluster", "xc1.example.com", "--yes"]));
    assert_eq!(
        terraform(),
        before,
        "the shared VPC, its subnets' tags and NAT as they were"
    );
}
