//! Golden snapshots of the Terraform output for clusters made by `create cluster`'s own
//! inference (not kops's test data), so the renderer is covered without ../shared.
//! Each output is also parsed with hcl-rs, rendered twice (byte-identical), checked with
//! `terraform fmt -check` and with `terraform validate` against the real AWS provider's
//! schema (scripts/terraform_validate.sh, offline) when Terraform and the provider are installed.

use std::io::Write;
use std::process::{Command, Stdio};

use kopsrs_api::create::{create_cluster, CreateClusterOptions};
use kopsrs_model::{build, ModelInput};

const SSH_KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG9vZ29sZGVua2V5Zm9ya29wc3JzdGVzdHNvbmx5MDA= golden@kopsrs";

fn render(options: CreateClusterOptions) -> kopsrs_terraform::Rendered {
    render_edited(options, |_| {})
}

/// [`render`], with the instance groups `create cluster` made changed by `edit` first.
fn render_edited(
    options: CreateClusterOptions,
    edit: impl FnOnce(&mut [kopsrs_api::InstanceGroup]),
) -> kopsrs_terraform::Rendered {
    let options = CreateClusterOptions {
        config_base: Some(format!("s3://golden-state/{}", options.name)),
        creation_timestamp: Some("2026-01-01T00:00:00Z".into()),
        ..options
    };
    let (cluster, mut groups) = create_cluster(&options).expect("create cluster");
    edit(&mut groups);
    let base = cluster.spec.config_base.clone().unwrap();
    let (cluster, groups) = kopsrs_api::complete(&cluster, &groups, &base).expect("complete");
    let report = kopsrs_api::validate(&cluster, &groups, true);
    assert!(!report.has_errors(), "{report:?}");
    let input = ModelInput {
        ssh_public_key: Some(SSH_KEY),
        ..ModelInput::default()
    };
    let set = build(&cluster, &groups, &input).expect("model");
    let first = kopsrs_terraform::render(&set);
    let second = kopsrs_terraform::render(&build(&cluster, &groups, &input).unwrap());
    assert_eq!(first, second, "the output must be deterministic");
    let main = &first.files["kubernetes.tf"];
    hcl::parse(main).expect("kubernetes.tf parses as HCL");
    terraform_fmt_check(main);
    terraform_validate(&first);
    first
}

fn terraform_validate(rendered: &kopsrs_terraform::Rendered) {
    let dir = tempfile::tempdir().unwrap();
    for (path, content) in &rendered.files {
        let file = dir.path().join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, content).unwrap();
    }
    // Read at run time: test binaries in a shared target dir serve clones at other paths.
    let root = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let output = Command::new("bash")
        .arg(root.join("../../scripts/terraform_validate.sh"))
        .arg(dir.path())
        .output()
        .unwrap();
    match output.status.code() {
        Some(3) => eprintln!(
            "skipping terraform validate: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ),
        Some(0) => {}
        _ => panic!(
            "terraform validate failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}

fn terraform_fmt_check(text: &str) {
    let Ok(mut child) = Command::new("terraform")
        .args(["fmt", "-check", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        eprintln!("terraform not installed: skipping the fmt check");
        return;
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "terraform fmt -check failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn snapshot(name: &str, rendered: &kopsrs_terraform::Rendered) {
    insta::assert_snapshot!(
        format!("{name}-kubernetes.tf"),
        rendered.files["kubernetes.tf"]
    );
    let data: Vec<&String> = rendered
        .files
        .keys()
        .filter(|k| k.starts_with("data/"))
        .collect();
    insta::assert_debug_snapshot!(format!("{name}-data-files"), data);
}

fn options(name: &str, zones: &[&str]) -> CreateClusterOptions {
    CreateClusterOptions {
        name: name.into(),
        zones: zones.iter().map(|z| z.to_string()).collect(),
        kubernetes_version: Some("v1.34.1".into()),
        ..CreateClusterOptions::default()
    }
}

#[test]
fn minimal_public_cluster() {
    let rendered = render(options("golden-minimal.example.org", &["eu-west-1a"]));
    snapshot("minimal", &rendered);
}

#[test]
fn private_ha_cluster_with_bastion() {
    let rendered = render(CreateClusterOptions {
        control_plane_count: Some(3),
        topology: Some("private".into()),
        bastion: true,
        networking: Some("calico".into()),
        cloud_labels: Some("team=platform,cost-center=42".into()),
        ssh_access: vec!["10.0.0.0/8".into()],
        admin_access: vec!["203.0.113.0/24".into()],
        ..options(
            "golden-ha.example.org",
            &["eu-west-1a", "eu-west-1b", "eu-west-1c"],
        )
    });
    snapshot("private-ha", &rendered);
}

#[test]
fn cluster_in_a_shared_vpc_with_shared_nat() {
    let mut opts = CreateClusterOptions {
        topology: Some("private".into()),
        network_id: Some("vpc-0a1b2c3d4e5f60718".into()),
        network_cidrs: vec!["10.20.0.0/16".into()],
        ..options("golden-shared.example.org", &["us-east-2a", "us-east-2b"])
    };
    // Private subnets sharing the NAT gateways of a Terraform-made VPC.
    opts.sets = vec![
        "spec.subnets[0].egress=nat-0aaaaaaaaaaaaaaa1".into(),
        "spec.subnets[1].egress=nat-0aaaaaaaaaaaaaaa2".into(),
    ];
    let rendered = render(opts);
    snapshot("shared-vpc", &rendered);
    let text = &rendered.files["kubernetes.tf"];
    assert!(
        !text.contains("resource \"aws_vpc\" "),
        "a shared VPC is never managed"
    );
    assert!(
        !text.contains("resource \"aws_nat_gateway\""),
        "shared NAT gateways are used, not made"
    );
    assert!(text.contains("nat_gateway_id         = \"nat-0aaaaaaaaaaaaaaa1\""));
}

#[test]
fn ipv6_cluster() {
    let rendered = render(CreateClusterOptions {
        ipv6: true,
        topology: Some("private".into()),
        ..options("golden-ipv6.example.org", &["us-west-2a", "us-west-2b"])
    });
    snapshot("ipv6", &rendered);
}

#[test]
fn service_account_roles_through_an_oidc_provider() {
    let mut opts = options("golden-irsa.example.org", &["eu-central-1a"]);
    opts.sets = vec![
        "spec.serviceAccountIssuerDiscovery.enableAWSOIDCProvider=true".into(),
        "spec.serviceAccountIssuerDiscovery.discoveryStore=s3://golden-oidc/golden-irsa".into(),
        "spec.iam.useServiceAccountExternalPermissions=true".into(),
        "spec.iam.serviceAccountExternalPermissions[0].name=uploader".into(),
        "spec.iam.serviceAccountExternalPermissions[0].namespace=media-*".into(),
        "spec.iam.serviceAccountExternalPermissions[0].aws.policyARNs[0]=arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess".into(),
    ];
    let rendered = render(opts);
    snapshot("irsa", &rendered);
    let text = &rendered.files["kubernetes.tf"];
    // The trust policy gets the provider's ARN from Terraform, not from an account lookup.
    assert!(text.contains(
        "templatefile(\"${path.module}/data/aws_iam_role_uploader.media-wildcard.sa.golden-irsa.example.org_policy\", { oidc_provider_arn = aws_iam_openid_connect_provider.golden-irsa-example-org.arn })"
    ), "{text}");
    let trust = &rendered.files
        ["data/aws_iam_role_uploader.media-wildcard.sa.golden-irsa.example.org_policy"];
    assert!(trust.contains("\"StringLike\""));
    assert!(trust.contains(
        "\"golden-oidc.s3.eu-central-1.amazonaws.com/golden-irsa:sub\": \"system:serviceaccount:media-*:uploader\""
    ));
    // Addon roles; long names are shortened to IAM's 64 characters with a hash, as kops does.
    for role in [
        "aws-cloud-controller-manager.kube-system.sa.golden-irsa.e-6dfpc0",
        "aws-node-termination-handler.kube-system.sa.golden-irsa.e-8vcf16",
        "ebs-csi-controller-sa.kube-system.sa.golden-irsa.example.org",
    ] {
        assert!(role.len() <= 64);
        assert!(
            text.contains(&format!("name               = \"{role}\"")),
            "{role}"
        );
    }
}

/// The spec's settings reach every place that reads them: GPU nodes carry the same label and
/// taint in the autoscaler's node template and in the kubelet's registration, the node-port
/// range opens the rules and configures the API server, and the load balancer's extra
/// security groups go on the load balancer and on the control plane it forwards to.
#[test]
fn spec_settings_reach_tags_rules_and_user_data() {
    let mut opts = CreateClusterOptions {
        node_size: Some("g4dn.xlarge".into()),
        ..options("golden-gpu.example.org", &["eu-west-1a"])
    };
    opts.sets = vec![
        "spec.containerd.nvidiaGPU.enabled=true".into(),
        "spec.kubeAPIServer.serviceNodePortRange=28000-32767".into(),
        "spec.nodePortAccess[0]=10.0.0.0/8".into(),
        "spec.api.loadBalancer.additionalSecurityGroups[0]=sg-0feedfacecafe0001".into(),
    ];
    let rendered = render(opts);
    let body: hcl::Body = hcl::parse(&rendered.files["kubernetes.tf"]).unwrap();
    let resource = |kind: &str, name: &str| -> hcl::Block {
        body.blocks()
            .find(|b| {
                b.identifier.as_str() == "resource"
                    && b.labels.len() == 2
                    && b.labels[0].as_str() == kind
                    && b.labels[1].as_str() == name
            })
            .unwrap_or_else(|| panic!("no {kind}.{name}"))
            .clone()
    };
    let attr = |block: &hcl::Block, key: &str| -> String {
        block
            .body
            .attributes()
            .find(|a| a.key.as_str() == key)
            .map(|a| hcl::format::to_string(&a.expr).unwrap())
            .unwrap_or_else(|| panic!("no {key}"))
    };

    let nodes = resource(
        "aws_launch_template",
        "nodes-eu-west-1a-golden-gpu-example-org",
    );
    let tags = attr(&nodes, "tags");
    assert!(
        tags.contains("\"k8s.io/cluster-autoscaler/node-template/label/kops.k8s.io/gpu\" = \"1\""),
        "{tags}"
    );
    assert!(
        tags.contains(
            "\"k8s.io/cluster-autoscaler/node-template/taint/nvidia.com/gpu\" = \":NoSchedule\""
        ),
        "{tags}"
    );
    let control_plane = resource(
        "aws_launch_template",
        "control-plane-eu-west-1a-masters-golden-gpu-example-org",
    );
    assert!(
        !attr(&control_plane, "tags").contains("kops.k8s.io/gpu"),
        "the control plane is no GPU type"
    );

    // The kubelet registers with the same label and taint.
    let node_data = rendered
        .files
        .iter()
        .find(|(k, _)| k.contains("nodes-eu-west-1a") && k.ends_with("_user_data"))
        .map(|(_, v)| v)
        .expect("node user-data");
    assert!(node_data.contains("kops.k8s.io/gpu=1"), "node-labels");
    assert!(node_data.contains("key: nvidia.com/gpu"), "taint");
    let cp_data = rendered
        .files
        .iter()
        .find(|(k, _)| k.contains("control-plane-eu-west-1a") && k.ends_with("_user_data"))
        .map(|(_, v)| v)
        .expect("control-plane user-data");
    assert!(
        cp_data.contains("- name: service-node-port-range\n    value: 28000-32767"),
        "{cp_data}"
    );

    for proto in ["tcp", "udp"] {
        let rule = resource(
            "aws_security_group_rule",
            &format!("nodeport-{proto}-external-to-node-10-0-0-0--8"),
        );
        assert_eq!(attr(&rule, "from_port"), "28000");
        assert_eq!(attr(&rule, "to_port"), "32767");
    }

    let lb = resource("aws_lb", "api-golden-gpu-example-org");
    assert!(attr(&lb, "security_groups").contains("\"sg-0feedfacecafe0001\""));
    let nic_groups = |template: &hcl::Block| {
        let nic = template
            .body
            .blocks()
            .find(|b| b.identifier.as_str() == "network_interfaces")
            .expect("network_interfaces");
        attr(nic, "security_groups")
    };
    assert!(nic_groups(&control_plane).contains("\"sg-0feedfacecafe0001\""));
    assert!(!nic_groups(&nodes).contains("sg-0feedfacecafe0001"));
}

/// Security groups the spec gives: referenced by ID (never a resource), the role's rules
/// written on them, the API load balancer's own group left out; `terraform validate` passes.
#[test]
fn given_security_groups_are_referenced_not_made() {
    let mut opts = options("golden-sg.example.org", &["eu-west-1a"]);
    opts.sets = vec!["spec.api.loadBalancer.securityGroupOverride=sg-0fedcba9876543210".into()];
    let rendered = render_edited(opts, |groups| {
        for g in groups
            .iter_mut()
            .filter(|g| g.spec.role.as_deref() == Some("Node"))
        {
            g.spec.security_group_override = Some("sg-0123456789abcdef0".into());
        }
    });
    let text = &rendered.files["kubernetes.tf"];
    assert!(
        !text.contains("resource \"aws_security_group\" \"api-elb"),
        "{text}"
    );
    // The load balancer's given group only; the node template's given group only.
    assert!(
        text.contains("  security_groups                  = [\"sg-0fedcba9876543210\"]\n"),
        "{text}"
    );
    assert!(
        text.contains("    security_groups             = [\"sg-0123456789abcdef0\"]\n"),
        "{text}"
    );
    assert!(
        text.contains("resource \"aws_security_group_rule\" \"from-masters-golden-sg-example-org-ingress-all-0to0-sg-0123456789abcdef0-Node\""),
        "{text}"
    );
    assert!(text.contains("  security_group_id = \"sg-0123456789abcdef0\"\n"));
    assert!(text.contains("  security_group_id = \"sg-0fedcba9876543210\"\n"));
}
