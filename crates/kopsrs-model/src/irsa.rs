//! IAM roles for service accounts (IRSA): the cluster's OIDC provider in IAM and one role per
//! service account that asks for AWS permissions.
//!
//! With `spec.serviceAccountIssuerDiscovery.enableAWSOIDCProvider`, IAM trusts tokens the
//! cluster's service-account issuer signs. Roles come from
//! `spec.iam.serviceAccountExternalPermissions` and, with
//! `spec.iam.useServiceAccountExternalPermissions`, from the addons kopsrs runs (the AWS
//! cloud-controller-manager, the EBS CSI driver, and the optional controllers the spec
//! enables), which then no longer borrow the control plane's instance role. Names, tags and
//! addresses are kops's (`<sa>.<namespace>.sa.<cluster>`, shortened to IAM's 64 characters).
//!
//! The trust policy names the OIDC provider's ARN, which holds the account ID. kops looks the
//! account up; kopsrs does not, so the policy is a template filled with the provider's ARN
//! once it exists (Terraform's `templatefile()`; the AWS target substitutes it).

use std::collections::BTreeMap;

use serde_json::{json, Value as Json};

use crate::build::{err, Builder};
use crate::iam::pretty;
use crate::names::{fnv1a32, truncate};
use crate::{attrs, Address, FileValue, ModelError, Ref, Value};

/// Thumbprints of the root CAs that serve S3 and most public issuers; IAM no longer checks
/// them for well-known CAs, but the API still requires at least one.
const THUMBPRINTS: [&str; 2] = [
    "9e99a48a9960b14926bb7f3b02e22da2b0ab7280",
    "a9d53002e97e00e043244f3d170d6f4c414104fd",
];

/// A service account that gets a role.
struct ServiceAccount {
    name: String,
    namespace: String,
    policy: Option<Json>,
    policy_arns: Vec<String>,
    /// Where it came from, for error messages.
    field: String,
}

/// The service-account issuer (without scheme) of a cluster that publishes its discovery
/// documents (`spec.serviceAccountIssuerDiscovery.discoveryStore`) in `region`: an S3 store's
/// public address (`BUCKET.s3.REGION.amazonaws.com/PATH`), else the store URL without its
/// scheme (`memfs://HOST/PATH`, kops's test stores). `None` without a discovery store or
/// for one without a host (`file:///dir`).
pub fn discovery_issuer(spec: &kopsrs_api::ClusterSpec, region: &str) -> Option<String> {
    let store = spec
        .service_account_issuer_discovery
        .as_ref()
        .and_then(|d| d.discovery_store.as_deref())
        .filter(|s| !s.is_empty())?;
    let (scheme, rest) = store.split_once("://")?;
    Some(match scheme {
        "s3" => {
            let (bucket, path) = rest.split_once('/').unwrap_or((rest, ""));
            let host = format!("{bucket}.s3.{region}.amazonaws.com");
            match path.trim_end_matches('/') {
                "" => host,
                path => format!("{host}/{path}"),
            }
        }
        // A store with no host (`file:///dir`) has no public address: no issuer.
        _ if rest.starts_with('/') || rest.is_empty() => return None,
        _ => rest.trim_end_matches('/').to_string(),
    })
}

/// What a pod needs to take a service account's role (see `service_account_role_pod`).
pub(crate) struct ServiceAccountRolePod {
    /// Environment variables, by name.
    pub env: Vec<(&'static str, String)>,
    /// The projected token's volume.
    pub volume: Json,
    /// Its mount.
    pub mount: Json,
}

impl Builder<'_> {
    fn oidc_enabled(&self) -> bool {
        self.spec
            .service_account_issuer_discovery
            .as_ref()
            .and_then(|d| d.enable_awsoidc_provider)
            .unwrap_or(false)
    }

    /// Whether addons get service-account roles instead of the control plane's instance role.
    pub(crate) fn service_account_roles_for_addons(&self) -> bool {
        self.oidc_enabled()
            && self
                .spec
                .iam
                .as_ref()
                .and_then(|i| i.use_service_account_external_permissions)
                .unwrap_or(false)
    }

    /// The issuer without scheme: the discovery store's public address, else the API name.
    pub(crate) fn service_account_issuer(&self) -> String {
        discovery_issuer(self.spec, &self.region).unwrap_or_else(|| {
            self.spec
                .master_public_name
                .clone()
                .unwrap_or_else(|| self.scoped("api"))
        })
    }

    pub(crate) fn service_account_roles(&mut self) -> Result<(), ModelError> {
        if !self.oidc_enabled() {
            return Ok(());
        }
        let issuer = self.service_account_issuer();
        let discovery = self.spec.service_account_issuer_discovery.as_ref();
        let mut audiences = vec!["amazonaws.com".to_string()];
        for audience in discovery
            .and_then(|d| d.additional_audiences.clone())
            .unwrap_or_default()
        {
            if !audiences.contains(&audience) {
                audiences.push(audience);
            }
        }
        let provider = self.add(
            "aws_iam_openid_connect_provider",
            &self.name.clone(),
            attrs! {
                "client_id_list" => Value::strs(audiences),
                "tags" => self.tags(&self.name),
                "thumbprint_list" => Value::strs(THUMBPRINTS),
                "url" => format!("https://{issuer}"),
            },
        );
        self.outputs.insert(
            "iam_openid_connect_provider_arn".into(),
            provider.attr("arn"),
        );
        self.outputs.insert(
            "iam_openid_connect_provider_issuer".into(),
            Value::str(&issuer),
        );

        let mut accounts = self.addon_service_accounts();
        for (i, permission) in self
            .spec
            .iam
            .as_ref()
            .and_then(|i| i.service_account_external_permissions.clone())
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            let field = format!("spec.iam.serviceAccountExternalPermissions[{i}]");
            let (Some(name), Some(namespace)) = (permission.name, permission.namespace) else {
                return Err(err(field, "needs both name and namespace"));
            };
            let aws = permission.aws.unwrap_or_default();
            let policy = match aws.inline_policy {
                Some(text) => {
                    let statements: Json = serde_json::from_str(&text).map_err(|e| {
                        err(
                            format!("{field}.aws.inlinePolicy"),
                            format!("is not a JSON list of IAM statements: {e}"),
                        )
                    })?;
                    Some(statements)
                }
                None => None,
            };
            accounts.push(ServiceAccount {
                name,
                namespace,
                policy,
                policy_arns: aws.policy_arns.unwrap_or_default(),
                field,
            });
        }
        for account in accounts {
            self.service_account_role(&provider, &issuer, account)?;
        }
        Ok(())
    }

    /// How a pod of a kube-system service account `name` takes its role without the pod
    /// identity webhook: environment variables (the role's ARN, the token's path), a volume
    /// with a projected service-account token for IAM's audience, and its mount. The ARN names
    /// the account as `@ACCOUNT_ID@`, which the control plane fills in when it applies.
    pub(crate) fn service_account_role_pod(&self, name: &str) -> ServiceAccountRolePod {
        let role = self.service_account_role_name(name, "kube-system");
        ServiceAccountRolePod {
            env: vec![
                (
                    "AWS_ROLE_ARN",
                    format!("arn:{}:iam::@ACCOUNT_ID@:role/{role}", self.partition()),
                ),
                (
                    "AWS_WEB_IDENTITY_TOKEN_FILE",
                    "/var/run/secrets/amazonaws.com/token".to_string(),
                ),
            ],
            volume: json!({"name": "aws-iam-token", "projected": {"sources": [
                {"serviceAccountToken": {"audience": "amazonaws.com", "expirationSeconds": 86400, "path": "token"}}
            ]}}),
            mount: json!({"name": "aws-iam-token", "mountPath": "/var/run/secrets/amazonaws.com/", "readOnly": true}),
        }
    }

    /// The IAM role of a service account (`<sa>.<namespace>.sa.<cluster>`, shortened to
    /// IAM's 64 characters as kops does).
    pub(crate) fn service_account_role_name(&self, name: &str, namespace: &str) -> String {
        truncate(&format!("{name}.{namespace}.sa.{}", self.name), 64, false)
    }

    fn service_account_role(
        &mut self,
        provider: &Address,
        issuer: &str,
        account: ServiceAccount,
    ) -> Result<(), ModelError> {
        let wildcard = account.namespace.contains('*');
        // kops spells a wildcard namespace `test-*` as `test-wildcard` in names and tags.
        let namespace_name = account.namespace.replace('*', "wildcard");
        let role_name = self.service_account_role_name(&account.name, &namespace_name);
        let operator = if wildcard {
            "StringLike"
        } else {
            "StringEquals"
        };
        let trust = json!({
            "Statement": [{
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {operator: {
                    format!("{issuer}:sub"):
                        format!("system:serviceaccount:{}:{}", account.namespace, account.name),
                }},
                "Effect": "Allow",
                "Principal": {"Federated": "${oidc_provider_arn}"},
            }],
            "Version": "2012-10-17",
        });
        let mut tags = self.tags(&role_name);
        tags.insert(
            "service-account.kops.k8s.io/name".into(),
            Value::str(&account.name),
        );
        tags.insert(
            "service-account.kops.k8s.io/namespace".into(),
            Value::str(&namespace_name),
        );
        let mut role_attrs = attrs! {
            "assume_role_policy" => Value::File(FileValue {
                vars: BTreeMap::from([(
                    "oidc_provider_arn".to_string(),
                    Ref { address: provider.clone(), attr: "arn".into() },
                )]),
                ..FileValue::new(format!("aws_iam_role_{role_name}_policy"), pretty(&trust))
            }),
            "name" => role_name.clone(),
            "tags" => tags,
        };
        self.permissions_boundary(&mut role_attrs);
        let role = self.add("aws_iam_role", &role_name, role_attrs);
        let output = format!("{namespace_name}-{}", account.name);
        self.outputs
            .insert(format!("{output}_role_arn"), role.attr("arn"));
        self.outputs
            .insert(format!("{output}_role_name"), role.attr("name"));
        if let Some(statements) = account.policy {
            if !statements.is_array() {
                return Err(err(
                    format!("{}.aws.inlinePolicy", account.field),
                    "must be a JSON list of IAM statements ([{...}])",
                ));
            }
            self.add(
                "aws_iam_role_policy",
                &role_name,
                attrs! {
                    "name" => role_name.clone(),
                    "policy" => Value::File(FileValue::new(
                        format!("aws_iam_role_policy_{role_name}_policy"),
                        pretty(&json!({"Statement": statements, "Version": "2012-10-17"})),
                    )),
                    "role" => role.attr("name"),
                },
            );
        }
        for arn in account.policy_arns {
            self.add(
                "aws_iam_role_policy_attachment",
                &format!("external-{role_name}-{}", fnv1a32(&arn)),
                attrs! { "policy_arn" => arn, "role" => role.attr("name") },
            );
        }
        Ok(())
    }

    /// Service accounts of the addons kopsrs runs, when they get roles of their own.
    ///
    /// kops also gives dns-controller a role; kopsrs manages the API's DNS records itself
    /// and runs no dns-controller.
    fn addon_service_accounts(&self) -> Vec<ServiceAccount> {
        if !self.service_account_roles_for_addons() {
            return Vec::new();
        }
        let spec = self.spec;
        let account = |name: &str, statements: Vec<Json>| ServiceAccount {
            name: name.to_string(),
            namespace: "kube-system".to_string(),
            policy: Some(Json::Array(statements)),
            policy_arns: Vec::new(),
            field: format!("addon {name}"),
        };
        let karpenter = spec
            .karpenter
            .as_ref()
            .and_then(|k| k.enabled)
            .unwrap_or(false);
        let mut out = vec![
            account(
                "aws-cloud-controller-manager",
                self.cloud_controller_statements(false),
            ),
            account("ebs-csi-controller-sa", self.ebs_csi_statements()),
        ];
        let nth = spec
            .node_termination_handler
            .as_ref()
            .and_then(|n| n.enabled)
            .unwrap_or(true);
        if nth && !karpenter {
            out.push(account(
                "aws-node-termination-handler",
                self.termination_handler_statements(),
            ));
        }
        if spec
            .aws_load_balancer_controller
            .as_ref()
            .and_then(|c| c.enabled)
            .unwrap_or(false)
        {
            out.push(account(
                "aws-load-balancer-controller",
                self.load_balancer_controller_statements(),
            ));
        }
        if spec
            .cluster_autoscaler
            .as_ref()
            .and_then(|c| c.enabled)
            .unwrap_or(false)
        {
            out.push(account(
                "cluster-autoscaler",
                self.cluster_autoscaler_statements(),
            ));
        }
        if self.external_dns_enabled() {
            out.push(account("external-dns", self.external_dns_statements()));
        }
        if karpenter {
            out.push(account("karpenter", self.karpenter_statements()));
        }
        out
    }

    fn owned(&self) -> Json {
        json!({"StringEquals": {"aws:ResourceTag/KubernetesCluster": self.name}})
    }

    pub(crate) fn termination_handler_statements(&self) -> Vec<Json> {
        let queue = format!(
            "arn:{}:sqs:{}:*:{}",
            self.partition(),
            self.region,
            self.queue_name()
        );
        vec![
            json!({
                "Action": [
                    "autoscaling:DescribeAutoScalingInstances",
                    "autoscaling:DescribeTags",
                    "ec2:DescribeInstances",
                ],
                "Effect": "Allow",
                "Resource": "*",
            }),
            json!({
                "Action": "autoscaling:CompleteLifecycleAction",
                "Condition": self.owned(),
                "Effect": "Allow",
                "Resource": "*",
            }),
            json!({
                "Action": ["sqs:DeleteMessage", "sqs:ReceiveMessage"],
                "Effect": "Allow",
                "Resource": queue,
            }),
        ]
    }

    pub(crate) fn cluster_autoscaler_statements(&self) -> Vec<Json> {
        vec![
            json!({
                "Action": [
                    "autoscaling:DescribeAutoScalingGroups",
                    "autoscaling:DescribeAutoScalingInstances",
                    "autoscaling:DescribeLaunchConfigurations",
                    "autoscaling:DescribeScalingActivities",
                    "autoscaling:DescribeTags",
                    "ec2:DescribeImages",
                    "ec2:DescribeInstanceTypes",
                    "ec2:DescribeLaunchTemplateVersions",
                    "ec2:GetInstanceTypesFromInstanceRequirements",
                ],
                "Effect": "Allow",
                "Resource": "*",
            }),
            json!({
                "Action": [
                    "autoscaling:SetDesiredCapacity",
                    "autoscaling:TerminateInstanceInAutoScalingGroup",
                ],
                "Condition": self.owned(),
                "Effect": "Allow",
                "Resource": "*",
            }),
        ]
    }

    pub(crate) fn external_dns_statements(&self) -> Vec<Json> {
        let p = self.partition();
        vec![
            json!({
                "Action": "route53:ChangeResourceRecordSets",
                "Effect": "Allow",
                "Resource": format!("arn:{p}:route53:::hostedzone/*"),
            }),
            json!({
                "Action": [
                    "route53:ListHostedZones",
                    "route53:ListResourceRecordSets",
                    "route53:ListTagsForResource",
                ],
                "Effect": "Allow",
                "Resource": "*",
            }),
        ]
    }

    pub(crate) fn load_balancer_controller_statements(&self) -> Vec<Json> {
        let cluster_tag = json!({"Null": {"aws:ResourceTag/elbv2.k8s.aws/cluster": "false"}});
        vec![
            json!({
                "Action": [
                    "acm:DescribeCertificate",
                    "acm:ListCertificates",
                    "ec2:DescribeAccountAttributes",
                    "ec2:DescribeAddresses",
                    "ec2:DescribeAvailabilityZones",
                    "ec2:DescribeCoipPools",
                    "ec2:DescribeInstances",
                    "ec2:DescribeInternetGateways",
                    "ec2:DescribeNetworkInterfaces",
                    "ec2:DescribeSecurityGroups",
                    "ec2:DescribeSubnets",
                    "ec2:DescribeTags",
                    "ec2:DescribeVpcPeeringConnections",
                    "ec2:DescribeVpcs",
                    "ec2:GetCoipPoolUsage",
                    "elasticloadbalancing:DescribeListenerAttributes",
                    "elasticloadbalancing:DescribeListenerCertificates",
                    "elasticloadbalancing:DescribeListeners",
                    "elasticloadbalancing:DescribeLoadBalancerAttributes",
                    "elasticloadbalancing:DescribeLoadBalancers",
                    "elasticloadbalancing:DescribeRules",
                    "elasticloadbalancing:DescribeSSLPolicies",
                    "elasticloadbalancing:DescribeTags",
                    "elasticloadbalancing:DescribeTargetGroupAttributes",
                    "elasticloadbalancing:DescribeTargetGroups",
                    "elasticloadbalancing:DescribeTargetHealth",
                    "wafv2:GetWebACLForResource",
                    "shield:GetSubscriptionState",
                ],
                "Effect": "Allow",
                "Resource": "*",
            }),
            json!({
                "Action": [
                    "ec2:CreateSecurityGroup",
                    "elasticloadbalancing:CreateListener",
                    "elasticloadbalancing:CreateLoadBalancer",
                    "elasticloadbalancing:CreateRule",
                    "elasticloadbalancing:CreateTargetGroup",
                ],
                "Condition": {"Null": {"aws:RequestTag/elbv2.k8s.aws/cluster": "false"}},
                "Effect": "Allow",
                "Resource": "*",
            }),
            json!({
                "Action": [
                    "ec2:AuthorizeSecurityGroupIngress",
                    "ec2:CreateTags",
                    "ec2:DeleteSecurityGroup",
                    "ec2:DeleteTags",
                    "ec2:RevokeSecurityGroupIngress",
                    "elasticloadbalancing:AddListenerCertificates",
                    "elasticloadbalancing:AddTags",
                    "elasticloadbalancing:DeleteListener",
                    "elasticloadbalancing:DeleteLoadBalancer",
                    "elasticloadbalancing:DeleteRule",
                    "elasticloadbalancing:DeleteTargetGroup",
                    "elasticloadbalancing:DeregisterTargets",
                    "elasticloadbalancing:ModifyListener",
                    "elasticloadbalancing:ModifyLoadBalancerAttributes",
                    "elasticloadbalancing:ModifyRule",
                    "elasticloadbalancing:ModifyTargetGroup",
                    "elasticloadbalancing:ModifyTargetGroupAttributes",
                    "elasticloadbalancing:RegisterTargets",
                    "elasticloadbalancing:RemoveListenerCertificates",
                    "elasticloadbalancing:RemoveTags",
                    "elasticloadbalancing:SetIpAddressType",
                    "elasticloadbalancing:SetSecurityGroups",
                    "elasticloadbalancing:SetSubnets",
                ],
                "Condition": cluster_tag,
                "Effect": "Allow",
                "Resource": "*",
            }),
        ]
    }

    fn karpenter_statements(&self) -> Vec<Json> {
        let p = self.partition();
        vec![
            json!({
                "Action": [
                    "ec2:DescribeAvailabilityZones",
                    "ec2:DescribeImages",
                    "ec2:DescribeInstanceTypeOfferings",
                    "ec2:DescribeInstanceTypes",
                    "ec2:DescribeInstances",
                    "ec2:DescribeLaunchTemplates",
                    "ec2:DescribeSecurityGroups",
                    "ec2:DescribeSpotPriceHistory",
                    "ec2:DescribeSubnets",
                    "pricing:GetProducts",
                    "ssm:GetParameter",
                ],
                "Effect": "Allow",
                "Resource": "*",
            }),
            json!({
                "Action": ["ec2:CreateFleet", "ec2:CreateLaunchTemplate", "ec2:CreateTags", "ec2:RunInstances"],
                "Condition": {"StringEquals": {"aws:RequestTag/KubernetesCluster": self.name}},
                "Effect": "Allow",
                "Resource": "*",
            }),
            json!({
                "Action": ["ec2:CreateFleet", "ec2:RunInstances"],
                "Effect": "Allow",
                "Resource": [
                    format!("arn:{p}:ec2:*::image/*"),
                    format!("arn:{p}:ec2:*:*:launch-template/*"),
                    format!("arn:{p}:ec2:*:*:security-group/*"),
                    format!("arn:{p}:ec2:*:*:subnet/*"),
                ],
            }),
            json!({
                "Action": ["ec2:DeleteLaunchTemplate", "ec2:TerminateInstances"],
                "Condition": self.owned(),
                "Effect": "Allow",
                "Resource": "*",
            }),
            json!({
                "Action": "iam:PassRole",
                "Effect": "Allow",
                "Resource": format!(
                    "arn:{p}:iam::*:role/{}",
                    crate::names::iam_role("nodes", &self.name)
                ),
            }),
        ]
    }
}
