//! The control plane recovers on its own (simulated boot, moto as S3 and EC2): an election
//! whose holder died before publishing the join token is taken over, one whose holder runs is
//! not; a replaced single control plane restarts etcd from the data on its volume.

mod support;

use std::time::{Duration, Instant};

use support::boot::{calls, count, finish, holder, run, Api, Cluster, Node};

#[test]
fn an_election_whose_holder_died_is_taken_over_and_a_live_one_is_not() {
    let c = Cluster::apply("elect.example.com", &ha());
    let a = c.instance("control-plane-eu-west-1a.masters.elect.example.com");
    let b = c.instance("control-plane-eu-west-1b.masters.elect.example.com");
    let cp_ips = c.cp_ips(&format!("{} {}", a.2, b.2));

    // The holder runs (and no API answers yet): the other waits for its token, and joins
    // once it is there and the API answers.
    c.put_state("bootstrap/init-lock", &a.0);
    let node_b = c.node("cp-b", &b).api_dead();
    let booting = run(&node_b, &c.script("eu-west-1b"), "boot", &c.stubs, &cp_ips);
    // It asks EC2 whether the holder still runs.
    wait_for(
        &node_b,
        &format!("Action=DescribeInstances&InstanceId.1={}", a.0),
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(count(&calls(&node_b), "kubeadm init"), 0);
    assert_eq!(
        c.state("bootstrap/init-lock").as_deref(),
        Some(a.0.as_str())
    );
    // The token, and the API answers.
    c.put_state(
        "bootstrap/node/join.env",
        "JOIN_TOKEN=abcdef.0123456789abcdef",
    );
    let _api = Api::start(&node_b);
    finish(booting, "cp-b");
    assert_eq!(count(&calls(&node_b), "kubeadm join"), 1);

    // The holder died before publishing a token: the next control plane takes over.
    let c = Cluster::apply("elect.example.com", &ha());
    let a = c.instance("control-plane-eu-west-1a.masters.elect.example.com");
    let b = c.instance("control-plane-eu-west-1b.masters.elect.example.com");
    let cp_ips = c.cp_ips(&format!("{} {}", a.2, b.2));
    c.put_state("bootstrap/init-lock", &a.0);
    c.moto.python(&format!(
        "aws('ec2').terminate_instances(InstanceIds=['{}'])",
        a.0
    ));
    let node_b = c.node("cp-b", &b).api_dead();
    let log = finish(
        run(&node_b, &c.script("eu-west-1b"), "boot", &c.stubs, &cp_ips),
        "cp-b",
    );
    assert!(log.contains(&format!("holder {} is gone", a.0)), "{log}");
    assert_eq!(count(&calls(&node_b), "kubeadm init"), 1, "{log}");
    assert_eq!(count(&calls(&node_b), "kubeadm join"), 0);
    assert_eq!(holder(&c), b.0);
    // The token it initialised with, published for the others.
    let init = std::fs::read_to_string(node_b.root.join("kubeadm-init.yaml")).unwrap();
    let published = c.state("bootstrap/node/join.env").unwrap();
    let token = published.strip_prefix("JOIN_TOKEN=").unwrap();
    assert!(init.contains(token), "{published}\n{init}");
}

#[test]
fn a_replaced_single_control_plane_restarts_etcd_from_its_volume() {
    let c = Cluster::apply("single.example.com", &["--zones", "eu-west-1a"]);
    let group = "control-plane-eu-west-1a.masters.single.example.com";
    let old = c.instance(group);
    let cp_ips = c.cp_ips(&old.2);
    let first = c.node("cp-old", &old);
    finish(
        run(&first, &c.script("eu-west-1a"), "boot", &c.stubs, &cp_ips),
        "first boot",
    );
    assert_eq!(count(&calls(&first), "kubeadm init"), 1);

    // The instance is replaced: terminating it releases its volume, a new instance starts in
    // the zone, and the volume it attaches holds the cluster's etcd data.
    let new = c.moto.python(&format!(
        "e=aws('ec2')\n\
         e.terminate_instances(InstanceIds=['{0}'])\n\
         old=e.describe_instances(InstanceIds=['{0}'])['Reservations'][0]['Instances'][0]\n\
         lt=e.describe_launch_template_versions(LaunchTemplateName='{1}', Versions=['$Latest'])['LaunchTemplateVersions'][0]['LaunchTemplateData']\n\
         i=e.run_instances(ImageId=old['ImageId'], MinCount=1, MaxCount=1, SubnetId=old['SubnetId'], IamInstanceProfile=lt['IamInstanceProfile'])['Instances'][0]\n\
         print(i['InstanceId'], i['Placement']['AvailabilityZone'], i['PrivateIpAddress'])",
        old.0, group
    ));
    let parts: Vec<String> = new.split_whitespace().map(str::to_string).collect();
    let new = (parts[0].clone(), parts[1].clone(), parts[2].clone());
    let node = c.node("cp-new", &new);
    let member = node.root.join("var/lib/etcd/data/member/snap");
    std::fs::create_dir_all(&member).unwrap();
    std::fs::write(member.join("db"), "the cluster's etcd data").unwrap();
    std::fs::write(node.root.join("dev/xvdu.fs"), "").unwrap(); // formatted already
    let log = finish(
        run(&node, &c.script("eu-west-1a"), "boot", &c.stubs, &cp_ips),
        "replacement",
    );
    let calls = calls(&node);
    assert!(
        log.contains("restarting the cluster's etcd from the data on its volume"),
        "{log}"
    );
    assert!(
        calls.iter().any(|l| l.starts_with("kubeadm init")
            && l.contains("--ignore-preflight-errors=DirAvailable--var-lib-etcd")),
        "{calls:?}"
    );
    assert_eq!(count(&calls, "kubeadm join"), 0, "{calls:?}");
    // The data stayed where etcd reads it, and the member now advertises the new address.
    assert!(member.join("db").exists());
    assert!(!std::fs::read_dir(node.root.join("var/lib/etcd"))
        .unwrap()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().starts_with("replaced-")));
    assert!(
        calls.iter().any(|l| l.contains(&format!(
            "member update 11 --peer-urls=https://{}:2380",
            new.2
        ))),
        "{calls:?}"
    );
    assert_eq!(holder(&c), new.0);
    let attached = c.moto.python(&format!(
        "print(aws('ec2').describe_volumes(Filters=[{{'Name':'attachment.instance-id','Values':['{}']}}])['Volumes'][0]['Tags'])",
        new.0
    ));
    assert!(attached.contains("k8s.io/etcd/main"), "{attached}");
}

fn ha() -> [&'static str; 4] {
    [
        "--zones",
        "eu-west-1a,eu-west-1b,eu-west-1c",
        "--control-plane-count",
        "3",
    ]
}

/// Waits until the node's script has run curl with `text` among its arguments (its stderr
/// goes to a pipe read only at the end; the curl wrapper logs each command line).
fn wait_for(node: &Node, text: &str) {
    let started = Instant::now();
    let log = node.root.join("curl-args.log");
    while !std::fs::read_to_string(&log).is_ok_and(|l| l.contains(text)) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{text:?} never came: {:?}",
            calls(node)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
