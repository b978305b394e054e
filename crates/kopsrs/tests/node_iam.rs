//! Nodes under real IAM: moto enforces IAM and each simulated instance signs with a session
//! of its own instance role, so a permission the bootstrap needs and the role lacks fails
//! here as it would on AWS, and a role that may read more than it should is caught.

mod support;

use serde::Deserialize as _;
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
            // In the cluster's region: the issuer's address names it.
            moto.python("aws('s3').create_bucket(Bucket='discovery', CreateBucketConfiguration={'LocationConstraint': 'eu-west-1'})");
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

/// A kubelet client certificate request for `subject`, made with the bootstrap token `id`.
fn csr(dir: &std::path::Path, name: &str, token_id: &str, subject: &str) -> serde_json::Value {
    let pem = dir.join(format!("{name}.csr"));
    let status = std::process::Command::new("openssl")
        .args(["req", "-new", "-newkey", "ec", "-pkeyopt"])
        .args([
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "/dev/null",
        ])
        .args(["-subj", subject, "-out"])
        .arg(&pem)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    use base64::Engine as _;
    serde_json::json!({
        "metadata": {"name": name},
        "spec": {
            "signerName": "kubernetes.io/kube-apiserver-client-kubelet",
            "username": format!("system:bootstrap:{token_id}"),
            "request": base64::engine::general_purpose::STANDARD.encode(std::fs::read(&pem).unwrap()),
        },
    })
}

#[test]
fn a_worker_gets_a_token_and_a_certificate_for_its_own_name_only() {
    const NAME: &str = "ident.example.com";
    let c = Cluster::apply(NAME, &["--zones", "eu-west-1a"]);
    let cp = c.instance(&format!("control-plane-eu-west-1a.masters.{NAME}"));
    let worker = c.instance(&format!("nodes-eu-west-1a.{NAME}"));
    let cp_ips = c.cp_ips(&cp.2);
    let cp_node = c.node("cp", &cp);
    finish(
        run(&cp_node, &c.script("eu-west-1a"), "boot", &c.stubs, &cp_ips),
        "control plane",
    );
    let w_node = c.node("worker", &worker);
    let log = finish(
        run(
            &w_node,
            &c.user_data(&format!("nodes-eu-west-1a.{NAME}")),
            "boot",
            &c.stubs,
            &cp_ips,
        ),
        "worker",
    );
    assert!(log.contains("join token bound to"), "{log}");
    let join = std::fs::read_to_string(w_node.root.join("kubeadm-join.yaml")).unwrap();
    let own = join
        .lines()
        .find_map(|l| l.trim().strip_prefix("token: "))
        .unwrap()
        .trim_matches(['"', '\''])
        .to_string();

    // The worker's role: no shared token, no request in another instance's name.
    let try_as = |node: &Node, call: &str| {
        c.moto
            .python_as(
                &node.credentials,
                &format!(
                    "try:\n    aws('s3').{call}; print('ok')\n\
                     except Exception as e:\n    print(e.response['Error']['Code'])"
                ),
            )
            .trim()
            .to_string()
    };
    let key = |rest: &str| format!("clusters/{NAME}/{rest}");
    assert_eq!(
        try_as(
            &w_node,
            &format!(
                "get_object(Bucket='state', Key='{}')",
                key("bootstrap/node/join.env")
            )
        ),
        "AccessDenied"
    );
    let userid = c.moto.python_as(
        &w_node.credentials,
        "print(aws('sts').get_caller_identity()['UserId'])",
    );
    let role_id = userid.trim().split(':').next().unwrap().to_string();
    assert_eq!(
        try_as(
            &w_node,
            &format!(
                "put_object(Bucket='state', Key='{}', Body=b'JOIN_TOKEN=x')",
                key(&format!("bootstrap/instances/{role_id}:{}", cp.0))
            )
        ),
        "AccessDenied",
        "a worker asks for a token in the control plane's name"
    );
    // A request no instance of the cluster made (an administrator could write one).
    c.moto.python(&format!(
        "aws('s3').put_object(Bucket='state', Key='{}', Body=b'JOIN_TOKEN=abcdef.0123456789abcdef')",
        key(&format!("bootstrap/instances/{role_id}:i-0123456789abcdef0"))
    ));

    // The control plane's approver: the worker's request becomes a token for its EC2 name;
    // certificates asked for with it are approved for that name only.
    let (w_name, cp_name) = (c.moto.ec2_name(&worker.0), c.moto.ec2_name(&cp.0));
    assert!(join.contains(&format!("name: '{w_name}'")), "{join}");
    let id = own.split('.').next().unwrap();
    let mut done = csr(
        c.dir.path(),
        "csr-done",
        id,
        &format!("/O=system:nodes/CN=system:node:{w_name}"),
    );
    done["status"] = serde_json::json!({"conditions": [{"type": "Approved"}]});
    let csrs = serde_json::json!({"items": [
        csr(c.dir.path(), "csr-own", id, &format!("/O=system:nodes/CN=system:node:{w_name}")),
        csr(c.dir.path(), "csr-steal", id, &format!("/O=system:nodes/CN=system:node:{cp_name}")),
        csr(c.dir.path(), "csr-kubeadm", "abcdef", &format!("/O=system:nodes/CN=system:node:{cp_name}")),
        done,
    ]});
    std::fs::write(cp_node.root.join("csrs.json"), csrs.to_string()).unwrap();
    let log = finish(
        run(
            &cp_node,
            &c.script("eu-west-1a"),
            "approve-nodes",
            &c.stubs,
            &cp_ips,
        ),
        "approve-nodes",
    );
    let calls = calls(&cp_node);
    let verdicts: Vec<&String> = calls
        .iter()
        .filter(|l| l.contains(" certificate "))
        .collect();
    assert_eq!(verdicts.len(), 2, "{verdicts:?}\n{log}");
    assert!(
        verdicts[0].ends_with("certificate approve csr-own"),
        "{verdicts:?}"
    );
    assert!(
        verdicts[1].ends_with("certificate deny csr-steal"),
        "{verdicts:?}"
    );
    assert!(
        log.contains("i-0123456789abcdef0 is no running instance"),
        "{log}"
    );

    // One token, for the worker's instance and name, valid 15 minutes.
    let secrets: Vec<serde_yaml_ng::Value> = std::fs::read_dir(&cp_node.root)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("applied-"))
        .flat_map(|e| {
            let text = std::fs::read_to_string(e.path()).unwrap();
            serde_yaml_ng::Deserializer::from_str(&text)
                .map(|d| serde_yaml_ng::Value::deserialize(d).unwrap())
                .collect::<Vec<_>>()
        })
        .filter(|d| d["kind"] == "Secret")
        .collect();
    assert_eq!(secrets.len(), 1, "{secrets:?}");
    let s = &secrets[0];
    assert_eq!(
        s["metadata"]["name"].as_str().unwrap(),
        format!("bootstrap-token-{id}")
    );
    assert_eq!(
        s["metadata"]["annotations"]["kopsrs.k8s.io/node-name"]
            .as_str()
            .unwrap(),
        w_name
    );
    assert_eq!(
        s["stringData"]["token-secret"].as_str().unwrap(),
        own.split('.').nth(1).unwrap()
    );
    assert_eq!(
        s["stringData"]["auth-extra-groups"].as_str().unwrap(),
        "system:bootstrappers:kopsrs:nodes"
    );
    assert!(s["stringData"]["expiration"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    // Both requests are used up.
    let left = c.moto.python(&format!(
        "print(aws('s3').list_objects_v2(Bucket='state', Prefix='{}').get('KeyCount'))",
        key("bootstrap/instances/")
    ));
    assert_eq!(left.trim(), "0");

    // A request whose token ID is in use (here the worker's own, issued above; it could be
    // kubeadm's shared token's or another worker's) is dropped: the Secret is created, never
    // applied over. One far bigger than a request is dropped without being downloaded.
    let worker_key = key(&format!("bootstrap/instances/{role_id}:{}", worker.0));
    c.moto.python(&format!(
        "aws('s3').put_object(Bucket='state', Key='{worker_key}', Body=b'JOIN_TOKEN={id}.ffffffffffffffff')"
    ));
    let log = finish(
        run(
            &cp_node,
            &c.script("eu-west-1a"),
            "approve-nodes",
            &c.stubs,
            &cp_ips,
        ),
        "approve-nodes",
    );
    assert!(
        log.contains(&format!("token ID {id} is in use; dropped")),
        "{log}"
    );
    c.moto.python(&format!(
        "aws('s3').put_object(Bucket='state', Key='{worker_key}', Body=b'JOIN_TOKEN=' + b'a' * 200000)"
    ));
    let log = finish(
        run(
            &cp_node,
            &c.script("eu-west-1a"),
            "approve-nodes",
            &c.stubs,
            &cp_ips,
        ),
        "approve-nodes",
    );
    assert!(
        log.contains("over 1024 bytes, not a request; dropped"),
        "{log}"
    );
    let curls = std::fs::read_to_string(cp_node.root.join("curl-args.log")).unwrap_or_default();
    assert!(curls.contains("--max-filesize 1024"), "{curls}");
    let secrets = std::fs::read_dir(&cp_node.root)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("applied-"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .filter(|t| t.contains("kind: Secret"))
        .collect::<Vec<_>>();
    assert_eq!(secrets.len(), 1, "no second Secret, none overwritten");
    assert!(secrets[0].contains(own.split('.').nth(1).unwrap()));
    let left = c.moto.python(&format!(
        "print(aws('s3').list_objects_v2(Bucket='state', Prefix='{}').get('KeyCount'))",
        key("bootstrap/instances/")
    ));
    assert_eq!(left.trim(), "0", "both requests dropped");
}

/// The cluster autoscaler runs on the control plane with its instance role: with
/// `spec.clusterAutoscaler.enabled` that role may read and scale the groups; a worker's role
/// may not. (Without it the control plane's policy has no such permission: tests/addons.rs.
/// The spec is set before the apply: moto refuses the signature of a PutRolePolicy made once
/// its IAM enforcement is on.)
#[test]
fn the_control_plane_role_scales_groups_with_the_cluster_autoscaler_on() {
    let name: &'static str = "cas.example.com";
    let c = Cluster::apply_with(name, &["--zones", "eu-west-1a"], |moto| {
        let out = moto
            .kopsrs("state")
            .env("AWS_REGION", "eu-west-1")
            .args([
                "edit",
                "cluster",
                name,
                "--set",
                "spec.clusterAutoscaler.enabled=true",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    let cp = c.node(
        "cp",
        &c.instance(&format!("control-plane-eu-west-1a.masters.{name}")),
    );
    let worker = c.node("worker", &c.instance(&format!("nodes-eu-west-1a.{name}")));
    let scale = |node: &Node| {
        c.moto
            .python_as(
                &node.credentials,
                &format!(
                    "a=aws('autoscaling')\n\
                     try:\n    a.describe_auto_scaling_groups(); a.set_desired_capacity(AutoScalingGroupName='nodes-eu-west-1a.{name}', DesiredCapacity=1); print('ok')\n\
                     except Exception as e:\n    print(e.response['Error']['Code'])"
                ),
            )
            .trim()
            .to_string()
    };
    assert_eq!(scale(&cp), "ok");
    assert_eq!(scale(&worker), "AccessDenied");
    // The termination handler (on by default, with the queue) runs there too: the control
    // plane's role reads and deletes the queue's messages; a worker's does not.
    let url = c
        .moto
        .python("print(aws('sqs').get_queue_url(QueueName='cas-example-com-nth')['QueueUrl'])");
    let read_queue = |node: &Node| {
        c.moto
            .python_as(
                &node.credentials,
                &format!(
                    "q=aws('sqs')\n\
                     try:\n    q.receive_message(QueueUrl='{}'); print('ok')\n\
                     except Exception as e:\n    print(e.response['Error']['Code'])",
                    url.trim()
                ),
            )
            .trim()
            .to_string()
    };
    assert_eq!(read_queue(&cp), "ok");
    assert_ne!(read_queue(&worker), "ok");
}
