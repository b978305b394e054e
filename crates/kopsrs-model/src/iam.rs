//! IAM roles, instance profiles and policies, and the SSH key pair.
//!
//! kopsrs's control plane needs less than kops's: no dns-controller or kops-controller runs
//! on it. Its policy covers the state store (read under the cluster's prefix, write for etcd
//! backups and the bootstrap election), the AWS cloud-controller-manager and the EBS CSI
//! driver, with the same tag conditions kops uses. Nodes get container-registry access only
//! when `spec.iam.allowContainerRegistry` asks for it, as in kops.

use md5::{Digest, Md5};
use serde_json::{json, Value as Json};

use crate::build::Builder;
use crate::names::fnv1a32;
use crate::{attrs, Address, FileValue, ModelError, Value};
use base64::Engine as _;
use kopsrs_api::Role;

/// The IAM "role name" kops uses per instance-group role.
fn iam_role_name(role: Role) -> &'static str {
    match role {
        Role::ControlPlane => "masters",
        Role::ApiServer => "apiservers",
        Role::Node => "nodes",
        Role::Bastion => "bastions",
    }
}

const ECR_READ: [&str; 7] = [
    "ecr:BatchCheckLayerAvailability",
    "ecr:BatchGetImage",
    "ecr:DescribeRepositories",
    "ecr:GetAuthorizationToken",
    "ecr:GetDownloadUrlForLayer",
    "ecr:GetRepositoryPolicy",
    "ecr:ListImages",
];

pub(crate) fn pretty(value: &Json) -> String {
    serde_json::to_string_pretty(value).expect("JSON values serialize") + "\n"
}

impl Builder<'_> {
    pub(crate) fn role_address(&self, role: Role) -> Address {
        Address::new(
            "aws_iam_role",
            &crate::names::tf_name(&self.role_name(role)),
        )
    }

    /// The name of a role's IAM role and instance profile (`masters.<cluster>`, shortened
    /// as kops does past IAM's 64 characters).
    pub(crate) fn role_name(&self, role: Role) -> String {
        crate::names::iam_role(iam_role_name(role), &self.name)
    }

    /// The instance profile a group launches with: ours, or the one the group names.
    pub(crate) fn instance_profile(&self, role: Role, group: &kopsrs_api::InstanceGroup) -> Value {
        if let Some(profile) = group.spec.iam.as_ref().and_then(|i| i.profile.as_ref()) {
            // An ARN `arn:aws:iam::123:instance-profile/name`: the launch template wants the name.
            return Value::str(profile.rsplit('/').next().unwrap_or(profile));
        }
        Address::new(
            "aws_iam_instance_profile",
            &crate::names::tf_name(&self.role_name(role)),
        )
        .id()
    }

    /// `spec.iam.permissionsBoundary` on every role kopsrs makes.
    pub(crate) fn permissions_boundary(&self, role: &mut crate::Attrs) {
        if let Some(boundary) = self
            .spec
            .iam
            .as_ref()
            .and_then(|i| i.permissions_boundary.as_ref())
        {
            role.insert("permissions_boundary".into(), Value::str(boundary));
        }
    }

    pub(crate) fn iam(&mut self) -> Result<(), ModelError> {
        let mut roles = vec![Role::ControlPlane, Role::Node];
        for optional in [Role::ApiServer, Role::Bastion] {
            if self.has_role(optional) {
                roles.push(optional);
            }
        }
        for role in roles {
            // Groups that bring their own instance profile need no role of ours.
            let groups: Vec<_> = self.groups_with(role).collect();
            if !groups.is_empty()
                && groups.iter().all(|g| {
                    g.spec
                        .iam
                        .as_ref()
                        .and_then(|i| i.profile.as_ref())
                        .is_some()
                })
            {
                continue;
            }
            let name = self.role_name(role);
            let assume = json!({
                "Statement": [{
                    "Action": "sts:AssumeRole",
                    "Effect": "Allow",
                    "Principal": {"Service": "ec2.amazonaws.com"},
                }],
                "Version": "2012-10-17",
            });
            let mut role_attrs = attrs! {
                "assume_role_policy" => Value::File(FileValue::new(format!("aws_iam_role_{name}_policy"), pretty(&assume))),
                "name" => name.clone(),
                "tags" => self.tags(&name),
            };
            self.permissions_boundary(&mut role_attrs);
            let role_addr = self.add("aws_iam_role", &name, role_attrs);
            self.add(
                "aws_iam_instance_profile",
                &name,
                attrs! {
                    "name" => name.clone(),
                    "role" => role_addr.attr("name"),
                    "tags" => self.tags(&name),
                },
            );
            if let Some(policy) = self.policy(role) {
                self.add(
                    "aws_iam_role_policy",
                    &name,
                    attrs! {
                        "name" => name.clone(),
                        "policy" => Value::File(FileValue::new(format!("aws_iam_role_policy_{name}_policy"), pretty(&policy))),
                        "role" => role_addr.attr("name"),
                    },
                );
            }
            let key = match role {
                Role::ControlPlane | Role::ApiServer => "master",
                Role::Node => "node",
                Role::Bastion => "bastion",
            };
            if let Some(text) = self
                .spec
                .additional_policies
                .as_ref()
                .and_then(|p| p.get(key))
            {
                let statements: Json = serde_json::from_str(text).map_err(|e| {
                    crate::build::err(
                        format!("spec.additionalPolicies.{key}"),
                        format!("is not a JSON list of IAM statements: {e}"),
                    )
                })?;
                let additional = format!("additional.{name}");
                self.add(
                    "aws_iam_role_policy",
                    &additional,
                    attrs! {
                        "name" => additional.clone(),
                        "policy" => Value::File(FileValue::new(format!("aws_iam_role_policy_{additional}_policy"), pretty(&json!({"Statement": statements, "Version": "2012-10-17"})))),
                        "role" => role_addr.attr("name"),
                    },
                );
            }
            for arn in self
                .spec
                .external_policies
                .as_ref()
                .and_then(|p| p.get(key))
                .cloned()
                .unwrap_or_default()
            {
                self.add(
                    "aws_iam_role_policy_attachment",
                    &format!("{key}-policyoverride-{}", fnv1a32(&arn)),
                    attrs! { "policy_arn" => arn, "role" => role_addr.attr("name") },
                );
            }
        }
        Ok(())
    }

    fn policy(&self, role: Role) -> Option<Json> {
        let registry = self
            .spec
            .iam
            .as_ref()
            .and_then(|i| i.allow_container_registry)
            .unwrap_or(false);
        let mut statements = Vec::new();
        match role {
            Role::Bastion => return None,
            Role::Node => {
                if registry {
                    statements
                        .push(json!({"Action": ECR_READ, "Effect": "Allow", "Resource": "*"}));
                }
                statements.extend(self.node_statements());
                statements.extend(self.node_state_store_statements());
            }
            Role::ControlPlane => statements = self.control_plane_statements(registry),
            // API servers boot as workers do (kubeadm join): they read what joining needs,
            // never the CA private keys; etcd stays on the control plane.
            Role::ApiServer => {
                statements.extend(self.node_statements());
                statements.extend(self.node_state_store_statements());
            }
        }
        // The Amazon VPC CNI (aws-node) runs on every instance with the instance's role.
        if self
            .spec
            .networking
            .as_ref()
            .is_some_and(|n| n.amazonvpc.is_some())
        {
            let p = self.partition();
            statements.push(json!({
                "Action": ["ec2:CreateTags"],
                "Effect": "Allow",
                "Resource": [format!("arn:{p}:ec2:*:*:network-interface/*")],
            }));
            statements.push(json!({
                "Action": [
                    "ec2:AssignPrivateIpAddresses",
                    "ec2:AttachNetworkInterface",
                    "ec2:CreateNetworkInterface",
                    "ec2:DeleteNetworkInterface",
                    "ec2:DescribeInstanceTypes",
                    "ec2:DescribeInstances",
                    "ec2:DescribeNetworkInterfaces",
                    "ec2:DescribeSecurityGroups",
                    "ec2:DescribeSubnets",
                    "ec2:DescribeTags",
                    "ec2:DetachNetworkInterface",
                    "ec2:ModifyNetworkInterfaceAttribute",
                    "ec2:UnassignPrivateIpAddresses",
                ],
                "Effect": "Allow",
                "Resource": "*",
            }));
        }
        if statements.is_empty() {
            return None;
        }
        Some(json!({"Statement": statements, "Version": "2012-10-17"}))
    }

    /// What the bootstrap and the CNI need on worker instances, by feature.
    fn node_statements(&self) -> Vec<Json> {
        let owned = json!({"StringEquals": {"aws:ResourceTag/KubernetesCluster": self.name}});
        let mut statements = Vec::new();
        if self.boot_discovers_api_load_balancer() {
            statements.push(api_load_balancer_discovery());
        }
        // IPv6 pods get addresses from the instance's delegated prefix.
        if self.ipv6 {
            statements.push(
                json!({"Action": "ec2:AssignIpv6Addresses", "Effect": "Allow", "Resource": "*"}),
            );
        }
        // kindnet routes pod traffic through instances: source/destination check off.
        if self
            .spec
            .networking
            .as_ref()
            .is_some_and(|n| n.kindnet.is_some())
        {
            statements.push(json!({
                "Action": "ec2:ModifyInstanceAttribute",
                "Condition": owned,
                "Effect": "Allow",
                "Resource": "*",
            }));
        }
        // A warm pool's launch hook is completed by the instance once it is ready.
        let warm_hook = [Role::Node, Role::ApiServer].into_iter().any(|role| {
            self.groups_with(role).any(|g| {
                self.group_warm_pool(g, role)
                    .and_then(|w| w.enable_lifecycle_hook)
                    == Some(true)
            })
        });
        if warm_hook {
            statements.push(json!({
                "Action": "autoscaling:DescribeLifecycleHooks",
                "Effect": "Allow",
                "Resource": "*",
            }));
            statements.push(json!({
                "Action": "autoscaling:CompleteLifecycleAction",
                "Condition": owned,
                "Effect": "Allow",
                "Resource": "*",
            }));
        }
        statements
    }

    /// Whether instances find the API load balancer's DNS name at boot (no DNS zone holds
    /// the API name), with `DescribeLoadBalancers`.
    fn boot_discovers_api_load_balancer(&self) -> bool {
        self.dns_none() && self.api_load_balancer_enabled()
    }

    /// The S3 state store's bucket ARN and a function from a path under the cluster's
    /// prefix to its object ARN; `None` for other stores.
    fn state_store_arns(&self) -> Option<(String, impl Fn(&str) -> String)> {
        let p = self.partition();
        let (bucket, prefix) = self.s3_state_store()?;
        let base = format!("arn:{p}:s3:::{bucket}");
        let prefix = prefix.to_string();
        let objects = base.clone();
        Some((base, move |suffix: &str| {
            if prefix.is_empty() {
                format!("{objects}/{suffix}")
            } else {
                format!("{objects}/{prefix}/{suffix}")
            }
        }))
    }

    /// Workers read only the public cluster CA (and, with Karpenter groups, the workers'
    /// bootstrap scripts), and write one object: their own join-token
    /// request, at a key IAM fills in with the caller's role session (for an instance,
    /// `ROLEID:INSTANCEID`), so an instance can ask only for itself. The cluster's shared
    /// join token is not theirs to read.
    fn node_state_store_statements(&self) -> Vec<Json> {
        let Some((_, path)) = self.state_store_arns() else {
            return Vec::new();
        };
        let mut readable = vec![path("pki/issued/kubernetes-ca/*")];
        // Nodes Karpenter starts read their group's bootstrap script (karpenter.rs).
        if self
            .groups
            .iter()
            .any(|g| g.spec.manager.as_deref() == Some("Karpenter"))
        {
            readable.push(path("igconfig/node/*"));
        }
        vec![
            json!({
                "Action": ["s3:GetObject"],
                "Effect": "Allow",
                "Resource": readable,
            }),
            json!({
                "Action": ["s3:PutObject"],
                "Effect": "Allow",
                "Resource": [path("bootstrap/instances/${aws:userid}")],
            }),
        ]
    }

    /// Read access to the cluster's prefix of an S3 state store; with `write`, also the
    /// etcd backups, the bootstrap election record and first-seen addon hashes.
    fn state_store_statements(&self, write: bool) -> Vec<Json> {
        let Some((base, path)) = self.state_store_arns() else {
            return Vec::new();
        };
        let mut statements =
            vec![json!({"Action": ["s3:GetObject"], "Effect": "Allow", "Resource": path("*")})];
        if write {
            statements.push(json!({
                "Action": ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"],
                "Effect": "Allow",
                "Resource": [path("backups/etcd/*"), path("bootstrap/*")],
            }));
            // The sha256 of an unpinned addon, recorded by the first control plane that
            // fetches it (trust on first use); written once, never deleted.
            statements.push(json!({
                "Action": ["s3:PutObject"],
                "Effect": "Allow",
                "Resource": path("addons/first-seen/*"),
            }));
        }
        statements.push(json!({
            "Action": ["s3:GetBucketLocation", "s3:ListBucket"],
            "Effect": "Allow",
            "Resource": [base],
        }));
        statements
    }

    fn control_plane_statements(&self, registry: bool) -> Vec<Json> {
        let mut statements = Vec::new();
        // The state store: read the cluster's prefix, write backups and the election record.
        statements.extend(self.state_store_statements(true));
        // The cloud-controller-manager and the EBS CSI driver run on the control plane with
        // its instance role. With `useServiceAccountExternalPermissions` they also get roles
        // of their own (irsa.rs, as kops), but the channel's charts do not take those roles
        // yet (no pod identity webhook, no projected token): taking the permissions off the
        // instance role would leave them with none, and nodes would never be initialized.
        statements.extend(self.cloud_controller_statements(registry));
        statements.extend(self.ebs_csi_statements());
        // The cluster autoscaler runs on the control plane too (addons.rs), with its own role
        // when addons have theirs (IRSA).
        if self
            .spec
            .cluster_autoscaler
            .as_ref()
            .and_then(|c| c.enabled)
            == Some(true)
            && !self.service_account_roles_for_addons()
        {
            statements.extend(self.cluster_autoscaler_statements());
        }
        // The load balancer controller, with this role also with IRSA (addons.rs).
        if self.load_balancer_controller_enabled() {
            statements.extend(self.load_balancer_controller_statements());
        }
        // cert-manager answers DNS-01 challenges in the zones the spec lists (addons.rs).
        let zones = self
            .spec
            .cert_manager
            .as_ref()
            .and_then(|c| c.hosted_zone_ids.clone())
            .unwrap_or_default();
        if self.cert_manager_enabled() && !zones.is_empty() {
            let p = self.partition();
            statements.push(json!({
                "Action": ["route53:ChangeResourceRecordSets", "route53:ListResourceRecordSets"],
                "Effect": "Allow",
                "Resource": zones.iter().map(|z| format!("arn:{p}:route53:::hostedzone/{}", z.trim_start_matches("/hostedzone/"))).collect::<Vec<_>>(),
            }));
            statements.push(json!({
                "Action": ["route53:GetChange", "route53:ListHostedZonesByName"],
                "Effect": "Allow",
                "Resource": "*",
            }));
        }
        // So does external-dns (addons.rs).
        if self.external_dns_enabled() && !self.service_account_roles_for_addons() {
            statements.extend(self.external_dns_statements());
        }
        // The termination handler reads the cluster's queue from the control plane
        // (termination_handler.rs), with its own role when addons have theirs (IRSA).
        if self.nth_queue_enabled() && !self.service_account_roles_for_addons() {
            statements.extend(self.termination_handler_statements());
        }
        statements
    }

    /// What the AWS cloud-controller-manager needs: describe anything, change only what
    /// carries the cluster tag, create only with it.
    pub(crate) fn cloud_controller_statements(&self, registry: bool) -> Vec<Json> {
        let p = self.partition();
        let cluster = &self.name;
        let owned = json!({"StringEquals": {"aws:ResourceTag/KubernetesCluster": cluster}});
        let tagging = json!({"StringEquals": {"aws:RequestTag/KubernetesCluster": cluster}});
        let mut describe = vec![
            "autoscaling:DescribeAutoScalingGroups",
            "autoscaling:DescribeAutoScalingInstances",
            "autoscaling:DescribeTags",
            "ec2:DescribeAvailabilityZones",
            "ec2:DescribeInstanceTypes",
            "ec2:DescribeInstances",
            "ec2:DescribeRegions",
            "ec2:DescribeRouteTables",
            "ec2:DescribeSecurityGroups",
            "ec2:DescribeSubnets",
            "ec2:DescribeTags",
            "ec2:DescribeVpcs",
            "elasticloadbalancing:DescribeListeners",
            "elasticloadbalancing:DescribeLoadBalancerAttributes",
            "elasticloadbalancing:DescribeLoadBalancers",
            "elasticloadbalancing:DescribeTargetGroupAttributes",
            "elasticloadbalancing:DescribeTargetGroups",
            "elasticloadbalancing:DescribeTargetHealth",
            "kms:DescribeKey",
        ];
        if registry {
            describe.extend(ECR_READ);
        }
        describe.sort();
        vec![
            json!({"Action": describe, "Effect": "Allow", "Resource": "*"}),
            json!({
                "Action": [
                    "ec2:AuthorizeSecurityGroupIngress",
                    "ec2:DeleteSecurityGroup",
                    "ec2:ModifyInstanceAttribute",
                    "ec2:RevokeSecurityGroupIngress",
                    "elasticloadbalancing:AddTags",
                    "elasticloadbalancing:DeleteListener",
                    "elasticloadbalancing:DeleteLoadBalancer",
                    "elasticloadbalancing:DeleteTargetGroup",
                    "elasticloadbalancing:DeregisterTargets",
                    "elasticloadbalancing:ModifyListener",
                    "elasticloadbalancing:ModifyLoadBalancerAttributes",
                    "elasticloadbalancing:ModifyTargetGroup",
                    "elasticloadbalancing:ModifyTargetGroupAttributes",
                    "elasticloadbalancing:RegisterTargets",
                ],
                "Condition": owned,
                "Effect": "Allow",
                "Resource": "*",
            }),
            json!({
                "Action": [
                    "ec2:CreateSecurityGroup",
                    "elasticloadbalancing:CreateListener",
                    "elasticloadbalancing:CreateLoadBalancer",
                    "elasticloadbalancing:CreateTargetGroup",
                ],
                "Condition": tagging,
                "Effect": "Allow",
                "Resource": "*",
            }),
            json!({
                "Action": "ec2:CreateSecurityGroup",
                "Effect": "Allow",
                "Resource": format!("arn:{p}:ec2:*:*:vpc/*"),
            }),
            json!({
                "Action": "ec2:CreateTags",
                "Condition": {"StringEquals": {
                    "aws:RequestTag/KubernetesCluster": cluster,
                    "ec2:CreateAction": ["CreateSecurityGroup"],
                }},
                "Effect": "Allow",
                "Resource": [format!("arn:{p}:ec2:*:*:security-group/*")],
            }),
        ]
    }

    /// What the EBS CSI driver needs: volumes and snapshots carrying the cluster tag.
    pub(crate) fn ebs_csi_statements(&self) -> Vec<Json> {
        let p = self.partition();
        let cluster = &self.name;
        vec![
            json!({
                "Action": [
                    "ec2:DescribeAvailabilityZones",
                    "ec2:DescribeInstances",
                    "ec2:DescribeSnapshots",
                    "ec2:DescribeTags",
                    "ec2:DescribeVolumes",
                    "ec2:DescribeVolumesModifications",
                ],
                "Effect": "Allow",
                "Resource": "*",
            }),
            json!({
                "Action": [
                    "ec2:AttachVolume",
                    "ec2:DeleteSnapshot",
                    "ec2:DeleteVolume",
                    "ec2:DetachVolume",
                    "ec2:ModifyVolume",
                ],
                "Condition": {"StringEquals": {"aws:ResourceTag/KubernetesCluster": cluster}},
                "Effect": "Allow",
                "Resource": "*",
            }),
            json!({
                "Action": ["ec2:CreateSnapshot", "ec2:CreateVolume"],
                "Condition": {"StringEquals": {"aws:RequestTag/KubernetesCluster": cluster}},
                "Effect": "Allow",
                "Resource": "*",
            }),
            json!({
                "Action": "ec2:CreateTags",
                "Condition": {"StringEquals": {
                    "aws:RequestTag/KubernetesCluster": cluster,
                    "ec2:CreateAction": ["CreateSnapshot", "CreateVolume"],
                }},
                "Effect": "Allow",
                "Resource": [
                    format!("arn:{p}:ec2:*:*:snapshot/*"),
                    format!("arn:{p}:ec2:*:*:volume/*"),
                ],
            }),
            json!({
                "Action": ["kms:CreateGrant"],
                "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}},
                "Effect": "Allow",
                "Resource": "*",
            }),
        ]
    }

    pub(crate) fn key_pair_address(&self) -> Option<Address> {
        self.key_pair.clone()
    }

    pub(crate) fn ssh_key(&mut self) {
        if self.spec.ssh_key_name.is_some() {
            return;
        }
        let Some(key) = self.input.ssh_public_key else {
            return;
        };
        let Some(fingerprint) = md5_fingerprint(key) else {
            return;
        };
        let plain: String = fingerprint.chars().filter(|c| *c != ':').collect();
        let key_name = format!("kubernetes.{}-{fingerprint}", self.name);
        let file_key = format!("kubernetes.{}-{plain}", self.name);
        let address = self.add(
            "aws_key_pair",
            &file_key,
            attrs! {
                "key_name" => key_name,
                "public_key" => Value::File(FileValue::new(format!("aws_key_pair_{file_key}_public_key"), key.trim().to_string() + "\n")),
                "tags" => self.tags(&self.name),
            },
        );
        self.key_pair = Some(address);
    }
}

/// The MD5 fingerprint of an OpenSSH public key (`aa:bb:...`), which AWS and kops show.
pub fn md5_fingerprint(key: &str) -> Option<String> {
    let blob = key.split_whitespace().nth(1)?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(blob)
        .ok()?;
    let digest = Md5::digest(&bytes);
    Some(
        digest
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":"),
    )
}

/// Looking up the API load balancer by name at boot. IAM cannot scope a Describe call to a
/// resource, so this is the narrowest grant there is.
fn api_load_balancer_discovery() -> Json {
    json!({
        "Action": "elasticloadbalancing:DescribeLoadBalancers",
        "Effect": "Allow",
        "Resource": "*",
    })
}
