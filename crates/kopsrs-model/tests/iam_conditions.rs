//! The instance roles' IAM policies evaluated offline, conditions included.
//!
//! moto ignores `Condition` blocks, so a wrong `aws:ResourceTag/...`, `aws:RequestTag/...`
//! or `ec2:CreateAction` condition passes every moto test and stops instances on AWS. Here
//! the policies the model builds are evaluated with the `iam-rs` crate for each AWS call an
//! instance makes while it boots and afterwards (`kopsrs-bootstrap`'s bootstrap.sh: the
//! control plane's boot and timers, the workers' and API servers' join), and for the
//! tag-scoped calls of the cloud-controller-manager and the EBS CSI driver. Each call is
//! evaluated per resource it touches, with that resource's tags as the model sets them, as
//! IAM does; calls a role must not make are checked to be refused.

use std::collections::BTreeMap;

use iam_rs::{
    Arn, Context, ContextValue, Decision, IAMPolicy, IAMRequest, PolicyEvaluator, Principal,
    PrincipalId,
};
use kopsrs_api::create::CreateClusterOptions;
use kopsrs_model::{build, Address, DesiredSet, ModelInput, Resource, Value};

const ACCOUNT: &str = "123456789012";
const REGION: &str = "eu-west-1";

type Tags = BTreeMap<String, String>;

/// A cluster's desired set, as `create cluster` then `update cluster` build it.
struct Fixture {
    name: String,
    set: DesiredSet,
}

impl Fixture {
    /// `create cluster NAME --zones eu-west-1a` with the state store `s3://state/clusters`,
    /// changed by `options`; with `api_servers`, also an `APIServer` group.
    fn new(name: &str, options: impl FnOnce(&mut CreateClusterOptions), api_servers: bool) -> Self {
        let config_base = format!("s3://state/clusters/{name}");
        let mut o = CreateClusterOptions {
            name: name.into(),
            zones: vec![format!("{REGION}a")],
            kubernetes_version: Some("v1.34.1".into()),
            config_base: Some(config_base.clone()),
            ..Default::default()
        };
        options(&mut o);
        let (cluster, mut groups) = kopsrs_api::create::create_cluster(&o).unwrap();
        if api_servers {
            let mut group = groups
                .iter()
                .find(|g| g.spec.role.as_deref() == Some("Node"))
                .unwrap()
                .clone();
            group.metadata.name = "apiservers".into();
            group.spec.role = Some("APIServer".into());
            groups.push(group);
        }
        let (cluster, groups) = kopsrs_api::complete(&cluster, &groups, &config_base).unwrap();
        let input = ModelInput {
            strict_bootstrap: true,
            ..ModelInput::default()
        };
        let set = build(&cluster, &groups, &input).unwrap_or_else(|e| panic!("{name}: {e}"));
        Fixture {
            name: name.into(),
            set,
        }
    }

    fn resource(&self, address: &Address) -> &Resource {
        self.set
            .get(address)
            .unwrap_or_else(|| panic!("{address:?} is not in the desired set"))
    }

    /// The launch template of the instance group `group`.
    fn launch_template(&self, group: &str) -> &Resource {
        self.set
            .of_kind("aws_launch_template")
            .find(|r| {
                let tags = tags(&r.attrs["tags"]);
                tags.get("kops.k8s.io/instancegroup").map(String::as_str) == Some(group)
            })
            .unwrap_or_else(|| panic!("no launch template for group {group}"))
    }

    /// An instance of `group`: the IAM role its instance profile carries, its tags and the
    /// settings its user-data gives the bootstrap script.
    fn instance(&self, group: &str, id: &str) -> Instance {
        let lt = self.launch_template(group);
        let Value::Blocks(profile) = &lt.attrs["iam_instance_profile"] else {
            panic!("{group}: no instance profile block");
        };
        let Value::Ref(profile) = &profile[0]["name"] else {
            panic!("{group}: the instance profile is not one of the cluster's");
        };
        let Value::Ref(role) = &self.resource(&profile.address).attrs["role"] else {
            panic!("{group}: the instance profile names no role of the cluster");
        };
        let role_name = self.resource(&role.address).attrs["name"]
            .as_str()
            .unwrap()
            .to_string();
        let Value::Blocks(specs) = &lt.attrs["tag_specifications"] else {
            panic!("{group}: no tag specifications");
        };
        let tags = specs
            .iter()
            .find(|s| s["resource_type"].as_str() == Some("instance"))
            .map(|s| tags(&s["tags"]))
            .unwrap_or_else(|| panic!("{group}: instances are not tagged"));
        let Value::File(user_data) = &lt.attrs["user_data"] else {
            panic!("{group}: no user-data");
        };
        Instance {
            id: id.into(),
            role: self.role(&role_name),
            tags,
            settings: settings(&user_data.content),
            script: user_data.content.clone(),
        }
    }

    /// The IAM role `name` with the inline policies the model attaches to it.
    fn role(&self, name: &str) -> IamRole {
        let address = self
            .set
            .of_kind("aws_iam_role")
            .find(|r| r.attrs["name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("no IAM role {name}"))
            .address
            .clone();
        let policies = self
            .set
            .of_kind("aws_iam_role_policy")
            .filter(|p| matches!(&p.attrs["role"], Value::Ref(r) if r.address == address))
            .map(|p| {
                let Value::File(file) = &p.attrs["policy"] else {
                    panic!("{}: the policy is not a document", p.address.name);
                };
                IAMPolicy::from_json(&file.content)
                    .unwrap_or_else(|e| panic!("{}: {e}\n{}", p.address.name, file.content))
            })
            .collect();
        IamRole {
            name: name.into(),
            // IAM role IDs start with AROA; this one differs per role name.
            id: format!(
                "AROA{}",
                name.to_uppercase()
                    .replace(|c: char| !c.is_ascii_alphanumeric(), "")
            ),
            policies,
        }
    }

    /// The role of the service account `account` (IRSA), named as kops names it.
    fn service_account_role(&self, account: &str, namespace: &str) -> IamRole {
        self.role(&format!("{account}.{namespace}.sa.{}", self.name))
    }

    /// The tags of the etcd volume tagged `tag` (`k8s.io/etcd/main`).
    fn etcd_volume(&self, tag: &str) -> Tags {
        self.set
            .of_kind("aws_ebs_volume")
            .map(|v| tags(&v.attrs["tags"]))
            .find(|t| t.contains_key(tag))
            .unwrap_or_else(|| panic!("no volume tagged {tag}"))
    }
}

/// An IAM role and its inline policies.
#[derive(Clone)]
struct IamRole {
    name: String,
    id: String,
    policies: Vec<IAMPolicy>,
}

/// A running instance of an instance group, as the bootstrap script sees it.
struct Instance {
    id: String,
    role: IamRole,
    tags: Tags,
    settings: BTreeMap<String, String>,
    script: String,
}

impl Instance {
    /// IAM's `aws:userid` for the instance's role session: `ROLEID:INSTANCEID`.
    fn userid(&self) -> String {
        format!("{}:{}", self.role.id, self.id)
    }

    fn setting(&self, key: &str) -> &str {
        self.settings.get(key).unwrap_or_else(|| {
            panic!(
                "the user-data sets no {key}:\n{}",
                &self.script[..self.script.len().min(1500)]
            )
        })
    }

    /// The state store's bucket and the cluster's prefix in it, from `STATE_URL`.
    fn state_store(&self) -> (String, String) {
        let url = self.setting("STATE_URL");
        let path = url.split_once("://").unwrap().1.split_once('/').unwrap().1;
        let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
        (bucket.into(), prefix.into())
    }

    /// The ARN of `key` under the cluster's prefix of the state store.
    fn object(&self, key: &str) -> String {
        let (bucket, prefix) = self.state_store();
        format!("arn:aws:s3:::{bucket}/{prefix}/{key}")
    }

    fn get(&self, key: &str) -> Call {
        Call::new("s3:GetObject", &self.object(key), Tags::new())
    }

    fn put(&self, key: &str) -> Call {
        Call::new("s3:PutObject", &self.object(key), Tags::new())
    }

    fn ec2_arn(&self, kind: &str, id: &str) -> String {
        format!("arn:aws:ec2:{REGION}:{ACCOUNT}:{kind}/{id}")
    }

    /// `AttachVolume` of a volume tagged `volume` to this instance: IAM authorises the
    /// volume and the instance, each with its own tags.
    fn attach(&self, volume: Tags) -> Call {
        Call::new(
            "ec2:AttachVolume",
            &self.ec2_arn("volume", "vol-0e7cd0000000000001"),
            volume,
        )
        .and(&self.ec2_arn("instance", &self.id), self.tags.clone())
    }

    /// What this instance's role may not do from `calls`, with the reason.
    fn refused(&self, calls: &[Call]) -> Vec<String> {
        calls
            .iter()
            .filter_map(|c| c.evaluate(&self.role, &self.id).err())
            .collect()
    }
}

/// One AWS API call to authorise: the action, each resource it touches with that
/// resource's tags, and the request's own context keys.
#[derive(Clone)]
struct Call {
    action: String,
    resources: Vec<(String, Tags)>,
    context: Vec<(String, ContextValue)>,
    /// `sts:GetCallerIdentity` needs no permission: IAM allows it whatever the policies say.
    needs_permission: bool,
}

impl Call {
    fn new(action: &str, resource: &str, tags: Tags) -> Self {
        Call {
            action: action.into(),
            resources: vec![(resource.into(), tags)],
            context: Vec::new(),
            needs_permission: true,
        }
    }

    /// A call IAM cannot scope to a resource (`Describe*`): evaluated against `*`.
    fn unscoped(action: &str) -> Self {
        let service = action.split(':').next().unwrap();
        Call::new(
            action,
            &format!("arn:aws:{service}:{REGION}:{ACCOUNT}:*"),
            Tags::new(),
        )
    }

    /// A create call that tags what it creates (`TagSpecification`): `aws:RequestTag/...`
    /// and `aws:TagKeys`; `ec2:CreateAction` on the `CreateTags` it implies.
    fn creating(action: &str, resource: &str, tags: &[(&str, &str)]) -> Self {
        let mut call = Call::new(action, resource, Tags::new());
        for (k, v) in tags {
            call = call.with(&format!("aws:RequestTag/{k}"), v);
        }
        call.context.push((
            "aws:TagKeys".into(),
            ContextValue::StringList(tags.iter().map(|(k, _)| k.to_string()).collect()),
        ));
        call
    }

    /// Another resource the call touches.
    fn and(mut self, resource: &str, tags: Tags) -> Self {
        self.resources.push((resource.into(), tags));
        self
    }

    fn with(mut self, key: &str, value: &str) -> Self {
        self.context
            .push((key.into(), ContextValue::String(value.into())));
        self
    }

    /// Ok when `role`, in the session of instance `instance`, may make the call on every
    /// resource it touches; the refusal otherwise.
    fn evaluate(&self, role: &IamRole, instance: &str) -> Result<(), String> {
        if !self.needs_permission {
            return Ok(());
        }
        let session = format!(
            "arn:aws:sts::{ACCOUNT}:assumed-role/{}/{instance}",
            role.name
        );
        let evaluator = PolicyEvaluator::with_policies(role.policies.clone());
        for (resource, tags) in &self.resources {
            let mut context = Context::new()
                .with_string("aws:userid", format!("{}:{instance}", role.id))
                .with_string(
                    "aws:PrincipalArn",
                    format!("arn:aws:iam::{ACCOUNT}:role/{}", role.name),
                )
                .with_string("aws:PrincipalAccount", ACCOUNT)
                .with_string("aws:RequestedRegion", REGION);
            for (k, v) in tags {
                context.insert(
                    format!("aws:ResourceTag/{k}"),
                    ContextValue::String(v.clone()),
                );
                if resource.starts_with("arn:aws:ec2:") {
                    context.insert(
                        format!("ec2:ResourceTag/{k}"),
                        ContextValue::String(v.clone()),
                    );
                }
            }
            for (k, v) in &self.context {
                context.insert(k.clone(), v.clone());
            }
            let request = IAMRequest::new_with_context(
                Principal::Aws(PrincipalId::String(session.clone())),
                &self.action,
                Arn::parse(resource).unwrap_or_else(|e| panic!("{resource}: {e}")),
                context,
            );
            let decision = evaluator
                .evaluate(&request)
                .unwrap_or_else(|e| panic!("{} on {resource}: {e}", self.action))
                .decision;
            if decision != Decision::Allow {
                return Err(format!(
                    "{} may not {} on {resource} (tags {tags:?}, context {:?}): {decision:?}",
                    role.name, self.action, self.context
                ));
            }
        }
        Ok(())
    }
}

/// The tags in a `tags` attribute.
fn tags(value: &Value) -> Tags {
    let Value::Map(map) = value else {
        panic!("tags are not a map: {value:?}");
    };
    map.iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect()
}

/// The `KEY='value'` settings at the head of a rendered user-data.
fn settings(user_data: &str) -> BTreeMap<String, String> {
    user_data
        .lines()
        .skip_while(|l| l.starts_with('#'))
        .map_while(|l| {
            let (key, value) = l.split_once('=')?;
            let value = value.strip_prefix('\'')?.strip_suffix('\'')?;
            key.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
                .then(|| (key.to_string(), value.replace(r"'\''", "'")))
        })
        .collect()
}

/// Every call the bootstrap script makes with `instance`'s role, by what the user-data
/// sets: the control plane's boot (etcd volume, keysets, election, join token, addons) and
/// its timers (join-token requests, etcd backups); a worker's or API server's join.
/// `worker` is the instance whose join-token request the control plane serves.
fn boot_calls(fixture: &Fixture, instance: &Instance, worker: &str) -> Vec<Call> {
    let mut calls = Vec::new();
    // api_host: the API's DNS name, else the load balancer's, looked up by name.
    if instance.setting("API_DNS_NAME").is_empty() && !instance.setting("API_LB_NAME").is_empty() {
        calls.push(Call::unscoped("elasticloadbalancing:DescribeLoadBalancers"));
    }
    if instance.setting("ROLE") == "control-plane" {
        let (bucket, prefix) = instance.state_store();
        let etcd_tag = instance.setting("ETCD_VOLUME_TAG");
        assert!(!etcd_tag.is_empty(), "control planes mount an etcd volume");
        calls.push(Call::unscoped("ec2:DescribeVolumes"));
        calls.push(instance.attach(fixture.etcd_volume(etcd_tag)));
        for keyset in [
            "kubernetes-ca",
            "etcd-ca",
            "apiserver-aggregator-ca",
            "service-account",
        ] {
            calls.push(instance.get(&format!("pki/private/{keyset}/keyset.yaml")));
        }
        // The election, a takeover (DescribeInstances asks whether the holder is gone) and
        // the join token.
        calls.push(instance.put("bootstrap/init-lock"));
        calls.push(instance.get("bootstrap/init-lock"));
        calls.push(Call::unscoped("ec2:DescribeInstances"));
        calls.push(instance.put("bootstrap/node/join.env"));
        calls.push(instance.get("bootstrap/node/join.env"));
        // Addons: the channel and the first-seen hashes of unpinned downloads.
        calls.push(instance.get("addons/bootstrap-channel.yaml"));
        let seen = format!("addons/first-seen/{}", "0123456789abcdef".repeat(4));
        calls.push(instance.get(&seen));
        calls.push(instance.put(&seen));
        // approve-nodes: list, read and delete the workers' requests.
        calls.push(
            Call::new(
                "s3:ListBucket",
                &format!("arn:aws:s3:::{bucket}"),
                Tags::new(),
            )
            .with("s3:prefix", &format!("{prefix}/bootstrap/instances/")),
        );
        let request = format!("bootstrap/instances/{worker}");
        calls.push(instance.get(&request));
        calls.push(Call::new(
            "s3:DeleteObject",
            &instance.object(&request),
            Tags::new(),
        ));
        // backup-etcd.
        calls.push(instance.put("backups/etcd/main/2026-01-01T000000Z.db"));
    } else {
        calls.push(Call {
            needs_permission: false,
            ..Call::unscoped("sts:GetCallerIdentity")
        });
        calls.push(instance.put(&format!("bootstrap/instances/{}", instance.userid())));
        calls.push(instance.get("pki/issued/kubernetes-ca/keyset.yaml"));
        // A warm pool's launch hook, completed on the instance's own group.
        if instance
            .settings
            .get("WARM_POOL_HOOK")
            .is_some_and(|h| !h.is_empty())
        {
            calls.push(Call::new(
                "autoscaling:CompleteLifecycleAction",
                &format!(
                    "arn:aws:autoscaling:{REGION}:{ACCOUNT}:autoScalingGroup:0123:autoScalingGroupName/{}",
                    instance.setting("WARM_POOL_ASG")
                ),
                instance.tags.clone(),
            ));
        }
    }
    calls
}

const CONTROL_PLANE: &str = "control-plane-eu-west-1a";
const NODES: &str = "nodes-eu-west-1a";
const API_SERVERS: &str = "apiservers";

/// A cluster with a DNS zone (instances reach the API by name) and the addons on the
/// control plane's role.
fn default_cluster() -> Fixture {
    Fixture::new(
        "iam.example.com",
        |o| o.dns_zone = Some("example.com".into()),
        false,
    )
}

/// No DNS (instances look the API load balancer up), service-account roles for the addons
/// (IRSA), API servers, and a warm pool with its launch hook on the workers.
fn service_account_cluster() -> Fixture {
    Fixture::new(
        "irsa.example.com",
        |o| {
            o.dns = Some("none".into());
            o.discovery_store = Some("s3://discovery/irsa".into());
            o.sets = vec![
                "spec.warmPool.maxSize=2".into(),
                "spec.warmPool.enableLifecycleHook=true".into(),
            ];
        },
        true,
    )
}

/// The instances of `fixture` that boot: the control plane, a worker and, when the
/// cluster has them, an API server.
fn instances(fixture: &Fixture) -> Vec<Instance> {
    let mut out = vec![
        fixture.instance(CONTROL_PLANE, "i-0c000000000000001"),
        fixture.instance(NODES, "i-0a000000000000002"),
    ];
    if fixture.set.of_kind("aws_launch_template").any(|r| {
        tags(&r.attrs["tags"])
            .get("kops.k8s.io/instancegroup")
            .map(String::as_str)
            == Some(API_SERVERS)
    }) {
        out.push(fixture.instance(API_SERVERS, "i-0b000000000000003"));
    }
    out
}

fn assert_allowed(instance: &Instance, calls: &[Call]) {
    let refused = instance.refused(calls);
    assert!(refused.is_empty(), "refused:\n{}", refused.join("\n"));
}

/// Each call must be refused; names those that are not.
fn assert_refused(instance: &Instance, calls: &[(&str, Call)]) {
    let allowed: Vec<String> = calls
        .iter()
        .filter(|(_, c)| c.evaluate(&instance.role, &instance.id).is_ok())
        .map(|(what, c)| {
            format!(
                "{}: {what} ({} on {:?})",
                instance.role.name, c.action, c.resources
            )
        })
        .collect();
    assert!(
        allowed.is_empty(),
        "allowed, and must not be:\n{}",
        allowed.join("\n")
    );
}

fn cluster_tags(cluster: &str) -> Tags {
    Tags::from([
        ("KubernetesCluster".to_string(), cluster.to_string()),
        (
            format!("kubernetes.io/cluster/{cluster}"),
            "owned".to_string(),
        ),
    ])
}

#[test]
fn every_call_the_bootstrap_makes_is_allowed_for_the_role_that_makes_it() {
    for fixture in [default_cluster(), service_account_cluster()] {
        let all = instances(&fixture);
        let worker = all[1].userid();
        for instance in &all {
            let calls = boot_calls(&fixture, instance, &worker);
            assert!(calls.len() >= 3, "{}", instance.role.name);
            assert_allowed(instance, &calls);
        }
    }
}

#[test]
fn the_calls_evaluated_are_every_aws_action_the_bootstrap_script_names() {
    // The script's EC2, ELB and STS queries name their action (`Action=AttachVolume`); a new
    // one fails here until `boot_calls` evaluates it.
    let fixture = service_account_cluster();
    let all = instances(&fixture);
    let mut named = std::collections::BTreeSet::new();
    let mut evaluated = std::collections::BTreeSet::new();
    for instance in &all {
        let script = &instance.script;
        for (i, _) in script.match_indices("Action=") {
            let action: String = script[i + 7..]
                .chars()
                .take_while(char::is_ascii_alphanumeric)
                .collect();
            named.insert(action);
        }
        for call in boot_calls(&fixture, instance, &all[1].userid()) {
            let (service, action) = call.action.split_once(':').unwrap();
            if service != "s3" {
                evaluated.insert(action.to_string());
            }
        }
    }
    assert_eq!(named, evaluated);
}

#[test]
fn workers_and_api_servers_may_not_read_the_join_token_or_private_keys_nor_ask_for_another_instance(
) {
    for fixture in [default_cluster(), service_account_cluster()] {
        let all = instances(&fixture);
        let control_plane = &all[0];
        let etcd = fixture.etcd_volume(control_plane.setting("ETCD_VOLUME_TAG"));
        for joining in &all[1..] {
            let other = format!("{}:i-0ffffffffffffffff", joining.role.id);
            let masters = control_plane.userid();
            let (bucket, prefix) = joining.state_store();
            assert_refused(
                joining,
                &[
                    ("read the shared join token", joining.get("bootstrap/node/join.env")),
                    ("read the CA's private key", joining.get("pki/private/kubernetes-ca/keyset.yaml")),
                    ("read the service-account key", joining.get("pki/private/service-account/keyset.yaml")),
                    ("read another instance's request", joining.get(&format!("bootstrap/instances/{other}"))),
                    ("ask in another instance's name", joining.put(&format!("bootstrap/instances/{other}"))),
                    ("ask in the control plane's name", joining.put(&format!("bootstrap/instances/{masters}"))),
                    ("ask in no instance's name", joining.put("bootstrap/instances/")),
                    ("write the election record", joining.put("bootstrap/init-lock")),
                    ("write the join token", joining.put("bootstrap/node/join.env")),
                    ("overwrite the CA", joining.put("pki/issued/kubernetes-ca/keyset.yaml")),
                    (
                        "list the state store",
                        Call::new("s3:ListBucket", &format!("arn:aws:s3:::{bucket}"), Tags::new())
                            .with("s3:prefix", &format!("{prefix}/")),
                    ),
                    (
                        "read another cluster's CA",
                        Call::new(
                            "s3:GetObject",
                            &format!("arn:aws:s3:::{bucket}/clusters/other.example.com/pki/issued/kubernetes-ca/keyset.yaml"),
                            Tags::new(),
                        ),
                    ),
                    ("attach the etcd volume", joining.attach(etcd.clone())),
                    (
                        "tag itself into the control plane",
                        Call::creating(
                            "ec2:CreateTags",
                            &joining.ec2_arn("instance", &joining.id),
                            &[("k8s.io/role/master", "1")],
                        ),
                    ),
                ],
            );
        }
    }
}

#[test]
fn the_control_plane_may_not_attach_another_clusters_volume_nor_read_another_clusters_state() {
    for fixture in [default_cluster(), service_account_cluster()] {
        let control_plane = fixture.instance(CONTROL_PLANE, "i-0c000000000000001");
        let mut foreign = fixture.etcd_volume(control_plane.setting("ETCD_VOLUME_TAG"));
        foreign.insert("KubernetesCluster".into(), "other.example.com".into());
        let (bucket, _) = control_plane.state_store();
        let mut elsewhere = control_plane.tags.clone();
        elsewhere.insert("KubernetesCluster".into(), "other.example.com".into());
        let mut borrowed = fixture.etcd_volume(control_plane.setting("ETCD_VOLUME_TAG"));
        borrowed.retain(|k, _| k != "KubernetesCluster");
        assert_refused(
            &control_plane,
            &[
                ("attach another cluster's etcd volume", control_plane.attach(foreign)),
                ("attach an untagged copy of the etcd volume", control_plane.attach(borrowed)),
                (
                    "attach its etcd volume to another cluster's instance",
                    Call::new(
                        "ec2:AttachVolume",
                        &control_plane.ec2_arn("volume", "vol-0e7cd0000000000001"),
                        fixture.etcd_volume(control_plane.setting("ETCD_VOLUME_TAG")),
                    )
                    .and(&control_plane.ec2_arn("instance", "i-0e0000000000000009"), elsewhere),
                ),
                (
                    "read another cluster's keys",
                    Call::new(
                        "s3:GetObject",
                        &format!("arn:aws:s3:::{bucket}/clusters/other.example.com/pki/private/kubernetes-ca/keyset.yaml"),
                        Tags::new(),
                    ),
                ),
                ("overwrite the cluster spec", control_plane.put("config")),
                ("overwrite a keyset", control_plane.put("pki/private/kubernetes-ca/keyset.yaml")),
                ("delete an addon's first-seen hash", Call::new("s3:DeleteObject", &control_plane.object("addons/first-seen/x"), Tags::new())),
            ],
        );
    }
    // With service-account roles too, the control plane's own role attaches the cluster's
    // other volumes: the EBS CSI driver runs with it until its chart takes its own role
    // (the_cloud_controller_and_the_csi_driver_change_only_what_carries_the_cluster_tag).
}

#[test]
fn the_cloud_controller_and_the_csi_driver_change_only_what_carries_the_cluster_tag() {
    let default = default_cluster();
    let irsa = service_account_cluster();
    let masters = default.instance(CONTROL_PLANE, "i-0c000000000000001").role;
    // With IRSA the addons' own roles, and the control plane's instance role too: the
    // channel's charts run with it until they take their service-account roles.
    let irsa_masters = irsa.instance(CONTROL_PLANE, "i-0c000000000000001").role;
    let cases = [
        (&default, masters.clone(), masters),
        (
            &irsa,
            irsa.service_account_role("aws-cloud-controller-manager", "kube-system"),
            irsa.service_account_role("ebs-csi-controller-sa", "kube-system"),
        ),
        (&irsa, irsa_masters.clone(), irsa_masters),
    ];
    for (fixture, ccm, csi) in cases {
        let name = fixture.name.as_str();
        let worker = fixture.instance(NODES, "i-0a000000000000002");
        let arn = |kind: &str, id: &str| format!("arn:aws:ec2:{REGION}:{ACCOUNT}:{kind}/{id}");
        let lb = |cluster: &str| {
            Call::new(
                "elasticloadbalancing:RegisterTargets",
                &format!("arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:targetgroup/k8s-default-web/0123456789abcdef"),
                cluster_tags(cluster),
            )
        };
        let as_role = |role: &IamRole, id: &str| Instance {
            id: id.into(),
            role: role.clone(),
            tags: worker.tags.clone(),
            settings: BTreeMap::new(),
            script: String::new(),
        };
        let ccm = as_role(&ccm, "ccm");
        let csi = as_role(&csi, "csi");
        assert_allowed(
            &ccm,
            &[
                Call::unscoped("ec2:DescribeInstances"),
                lb(name),
                Call::new(
                    "ec2:AuthorizeSecurityGroupIngress",
                    &arn("security-group", "sg-0123"),
                    cluster_tags(name),
                ),
                Call::creating(
                    "ec2:CreateSecurityGroup",
                    &arn("security-group", "sg-0124"),
                    &[("KubernetesCluster", name)],
                )
                .and(&arn("vpc", "vpc-0123"), Tags::new()),
                Call::creating(
                    "ec2:CreateTags",
                    &arn("security-group", "sg-0124"),
                    &[("KubernetesCluster", name)],
                )
                .with("ec2:CreateAction", "CreateSecurityGroup"),
            ],
        );
        assert_refused(
            &ccm,
            &[
                (
                    "register targets of another cluster's target group",
                    lb("other.example.com"),
                ),
                (
                    "open another cluster's security group",
                    Call::new(
                        "ec2:AuthorizeSecurityGroupIngress",
                        &arn("security-group", "sg-0125"),
                        cluster_tags("other.example.com"),
                    ),
                ),
                (
                    "create a security group for another cluster",
                    Call::creating(
                        "ec2:CreateSecurityGroup",
                        &arn("security-group", "sg-0126"),
                        &[("KubernetesCluster", "other.example.com")],
                    )
                    .and(&arn("vpc", "vpc-0123"), Tags::new()),
                ),
                (
                    "tag an existing security group into the cluster",
                    Call::creating(
                        "ec2:CreateTags",
                        &arn("security-group", "sg-0125"),
                        &[("KubernetesCluster", name)],
                    ),
                ),
            ],
        );
        let mut pv = cluster_tags(name);
        pv.insert("kubernetes.io/created-for/pvc/name".into(), "data".into());
        assert_allowed(
            &csi,
            &[
                Call::unscoped("ec2:DescribeVolumes"),
                Call::creating(
                    "ec2:CreateVolume",
                    &arn("volume", "vol-0pv"),
                    &[("KubernetesCluster", name)],
                ),
                Call::creating(
                    "ec2:CreateTags",
                    &arn("volume", "vol-0pv"),
                    &[("KubernetesCluster", name)],
                )
                .with("ec2:CreateAction", "CreateVolume"),
                Call::new("ec2:AttachVolume", &arn("volume", "vol-0pv"), pv.clone())
                    .and(&arn("instance", &worker.id), worker.tags.clone()),
                Call::new("ec2:DeleteVolume", &arn("volume", "vol-0pv"), pv.clone()),
            ],
        );
        assert_refused(
            &csi,
            &[
                (
                    "create a volume for another cluster",
                    Call::creating(
                        "ec2:CreateVolume",
                        &arn("volume", "vol-1"),
                        &[("KubernetesCluster", "other.example.com")],
                    ),
                ),
                (
                    "create an untagged volume",
                    Call::creating("ec2:CreateVolume", &arn("volume", "vol-2"), &[]),
                ),
                (
                    "tag another cluster's volume into this one",
                    Call::creating(
                        "ec2:CreateTags",
                        &arn("volume", "vol-3"),
                        &[("KubernetesCluster", name)],
                    ),
                ),
                (
                    "tag a new volume for another cluster",
                    Call::creating(
                        "ec2:CreateTags",
                        &arn("volume", "vol-4"),
                        &[("KubernetesCluster", "other.example.com")],
                    )
                    .with("ec2:CreateAction", "CreateVolume"),
                ),
                (
                    "tag an instance it launched",
                    Call::creating(
                        "ec2:CreateTags",
                        &arn("instance", "i-5"),
                        &[("KubernetesCluster", name)],
                    )
                    .with("ec2:CreateAction", "RunInstances"),
                ),
                (
                    "attach another cluster's volume",
                    Call::new(
                        "ec2:AttachVolume",
                        &arn("volume", "vol-6"),
                        cluster_tags("other.example.com"),
                    )
                    .and(&arn("instance", &worker.id), worker.tags.clone()),
                ),
                (
                    "delete another cluster's volume",
                    Call::new(
                        "ec2:DeleteVolume",
                        &arn("volume", "vol-6"),
                        cluster_tags("other.example.com"),
                    ),
                ),
            ],
        );
    }
}

#[test]
fn bastions_have_no_aws_permissions() {
    let fixture = Fixture::new(
        "bastion.example.com",
        |o| {
            o.bastion = true;
            o.topology = Some("private".into());
            o.networking = Some("calico".into());
        },
        false,
    );
    let bastion = fixture.role(&format!("bastions.{}", fixture.name));
    assert!(
        bastion.policies.is_empty(),
        "{} policies",
        bastion.policies.len()
    );
}
