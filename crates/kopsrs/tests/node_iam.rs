//! Nodes under real IAM: moto enforces IAM and each simulated instance signs with a session
//! of its own instance role, so a permission the bootstrap needs and the role lacks fails
//! here as it would on AWS, and a role that may read more than it should is caught.

mod support;

use support::boot::{calls, count, finish, run, Cluster, Node, IMAGE};

const NAME: &str = "irsa.example.com";

/// What `key` under the cluster's prefix of the state store gives `node`'s role: "ok" or
/// the error code.
fn read_state(c: &Cluster, node: &Node, key: &str) -> String {
    c.moto
        .python_as(
            &node.credentials,
            &format!(
                "try:\n    aws('s3').get_object(Bucket='state', Key='clusters/{NAME}/{key}'); print('ok')\n\
                 except Exception as e:\n    print(e.response['Error']['Code'])"
            ),
        )
        .trim()
        .to_string()
}

#[test]
fn dns_none_and_service_account_roles_boot_with_their_own_roles() {
    // No DNS: every instance looks the API load balancer up (DescribeLoadBalancers).
    // Service-account roles: the control plane's role carries no cloud-controller or CSI
    // permissions, and still finds and attaches its etcd volume.
    let c = Cluster::apply_with(
        NAME,
        &[
            "--zones",
            "eu-west-1a",
            "--dns",
            "none",
            "--discovery-store",
            "s3://discovery/irsa",
        ],
        |moto| {
            moto.create_bucket("discovery");
            let out = moto
                .kopsrs("state")
                .env("AWS_REGION", "eu-west-1")
                .args(["create", "instancegroup", "apiservers", "--name", NAME])
                .args(["--role", "APIServer", "--subnet", "eu-west-1a"])
                .arg(format!("--set=spec.image={IMAGE}"))
                .args(["--set=spec.minSize=1", "--set=spec.maxSize=1"])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        },
    );
    let cp = c.instance(&format!("control-plane-eu-west-1a.masters.{NAME}"));
    let worker = c.instance(&format!("nodes-eu-west-1a.{NAME}"));
    let apiserver = c.instance(&format!("apiservers.apiservers.{NAME}"));
    let cp_ips = c.cp_ips(&cp.2);
    let cp_node = c.node("cp", &cp);
    let log = finish(
        run(&cp_node, &c.script("eu-west-1a"), "boot", &c.stubs, &cp_ips),
        "control plane",
    );
    assert_eq!(count(&calls(&cp_node), "kubeadm init"), 1, "{log}");
    let curl = std::fs::read_to_string(cp_node.root.join("curl-args.log")).unwrap();
    for action in ["DescribeLoadBalancers", "DescribeVolumes", "AttachVolume"] {
        assert!(
            curl.contains(&format!("Action={action}")),
            "{action}: {curl}"
        );
    }

    for (label, instance, group) in [
        ("worker", &worker, format!("nodes-eu-west-1a.{NAME}")),
        (
            "apiserver",
            &apiserver,
            format!("apiservers.apiservers.{NAME}"),
        ),
    ] {
        let node = c.node(label, instance);
        let log = finish(
            run(&node, &c.user_data(&group), "boot", &c.stubs, &cp_ips),
            label,
        );
        assert_eq!(count(&calls(&node), "kubeadm join"), 1, "{label}: {log}");
        // Joining needs the join token and the public CA; never a private key.
        for key in [
            "pki/private/kubernetes-ca/keyset.yaml",
            "pki/private/etcd-ca/keyset.yaml",
            "pki/private/service-account/keyset.yaml",
        ] {
            assert_eq!(read_state(&c, &node, key), "AccessDenied", "{label}: {key}");
        }
        assert_eq!(
            read_state(&c, &node, "pki/issued/kubernetes-ca/keyset.yaml"),
            "ok",
            "{label}"
        );
    }
    assert_eq!(
        read_state(&c, &cp_node, "pki/private/kubernetes-ca/keyset.yaml"),
        "ok"
    );
}
