//! Node bootstrap as data: the user-data of each instance group.
//!
//! A node's user-data is one bash script: settings rendered here (cluster, role, versions,
//! where the state store and the API are), the kubeadm v1beta4 documents as templates
//! ([`kubeadm`]), then the fixed body in `bootstrap.sh`, which installs containerd and the
//! pinned Kubernetes packages, elects the one control-plane node that runs `kubeadm init`
//! with a conditional write to the state store, and joins everyone else. Node-specific
//! values (name, address, token, CA hash) are only known on the instance, so the documents
//! carry `@PLACEHOLDER@` strings the script fills in. The script holds no secret: CA keys
//! and the join token are read from the state store with the instance role. See
//! docs/bootstrap.md for the boot sequence. Nothing here does I/O.

pub mod assets;
pub mod channel;
pub mod kubeadm;

use kubeadm::*;

/// EC2's limit on user-data (the bytes before base64; kopsrs sends it gzip-compressed,
/// which cloud-init unpacks).
pub const MAX_USER_DATA: usize = 16 * 1024;

/// Gzip at the best level, with no timestamp: the same bytes for the same text.
pub fn gzip(text: &str) -> Vec<u8> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder
        .write_all(text.as_bytes())
        .expect("writing to memory");
    encoder.finish().expect("writing to memory")
}

/// The text of user-data as EC2 returns it: base64, gzip-compressed or not (the inverse of
/// [`gzip`] after base64, for showing a launch template's script in a plan).
pub fn user_data_text(base64_text: &str) -> String {
    use base64::Engine as _;
    use std::io::Read as _;
    let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(base64_text.trim()) else {
        return base64_text.to_string();
    };
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut text = String::new();
        if flate2::read::GzDecoder::new(bytes.as_slice())
            .read_to_string(&mut text)
            .is_ok()
        {
            return text;
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

const BODY: &str = include_str!("bootstrap.sh");
const FETCH: &str = include_str!("fetch.sh");

/// `script` without its comment lines (shellcheck's directives stay): EC2 takes 16 KB of
/// user-data, and the comments of bootstrap.sh are for its readers in the repository.
fn without_comments(script: &str) -> String {
    script
        .lines()
        .filter(|line| {
            let code = line.trim_start();
            !code.starts_with('#') || code.starts_with("# shellcheck")
        })
        .fold(String::with_capacity(script.len()), |mut out, line| {
            out.push_str(line);
            out.push('\n');
            out
        })
}

/// What a node is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Runs `kubeadm init` (the elected first node) or joins as a control-plane member.
    ControlPlane,
    /// A worker: `kubeadm join`.
    Node,
    /// An SSH bastion: a short script with no Kubernetes.
    Bastion,
}

/// What a node of a group with a warm pool needs: kops's behaviour, where an instance
/// launched into the pool installs what it can, completes the group's launch hook and is
/// stopped, and joins when the group puts it into service (completing the hook again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarmPoolBoot {
    /// The auto scaling group's name (`<group>.<cluster>`).
    pub asg: String,
    /// The launch hook to complete (`kops-warmpool`), when the pool has one
    /// (`enableLifecycleHook`): without it the group abandons the instance at its timeout.
    pub hook: Option<String>,
    /// The Auto Scaling endpoint (regional, or a test endpoint).
    pub autoscaling_url: String,
}

/// Everything a node's user-data depends on; the model fills it from the completed spec.
#[derive(Debug, Clone)]
pub struct NodeBootstrap {
    /// The cluster's name (`metadata.name`).
    pub cluster_name: String,
    /// The instance group's name.
    pub group: String,
    /// The group's role, which picks the script's path (init, join or bastion).
    pub role: Role,
    /// `spec.kubernetesVersion` without the leading `v` (`1.34.1`).
    pub kubernetes_version: String,
    /// The cluster's AWS region.
    pub region: String,
    /// The cluster's folder in the state store, as a path-style HTTPS URL
    /// (`https://s3.REGION.amazonaws.com/bucket/prefix/name`).
    pub state_url: String,
    /// The bucket's region when known; otherwise the node asks S3.
    pub state_region: Option<String>,
    /// The AWS account ID that owns the bucket, when known: every state-store request names
    /// it (`x-amz-expected-bucket-owner`), so S3 refuses a bucket another account owns.
    pub state_owner: Option<String>,
    /// The EC2 endpoint (the regional AWS endpoint, or a test endpoint).
    pub ec2_url: String,
    /// The ELB endpoint, likewise; nodes ask it for the API load balancer's DNS name.
    pub elb_url: String,
    /// The STS endpoint, likewise; a worker asks it who it is (`GetCallerIdentity`) to name
    /// its join-token request.
    pub sts_url: String,
    /// The API's DNS name when the cluster has DNS; otherwise the load balancer's name,
    /// which nodes resolve to its DNS name at boot.
    pub api_dns_name: Option<String>,
    /// The API load balancer's name, used when `api_dns_name` is `None`.
    pub api_lb_name: Option<String>,
    /// Extra names in the API server's certificate.
    pub api_cert_sans: Vec<String>,
    /// Tag of the etcd member volumes (`k8s.io/etcd/main`) on control-plane nodes.
    pub etcd_volume_tag: Option<String>,
    /// How many members the main etcd cluster has: with one, a replaced control plane
    /// restarts etcd from its volume instead of joining.
    pub etcd_members: usize,
    /// How often the etcd leader backs up to the state store, and how long backups are kept.
    pub etcd_backup_interval: std::time::Duration,
    /// Days a backup is kept.
    pub etcd_backup_retention_days: u32,
    /// The pod range (`spec.podCIDR`, default `100.96.0.0/11`).
    pub pod_cidr: String,
    /// The service range (`spec.serviceClusterIPRange`, default `100.64.0.0/13`).
    pub service_cidr: String,
    /// The cluster DNS domain (`spec.clusterDNSDomain`, default `cluster.local`).
    pub dns_domain: String,
    /// kube-proxy off (a CNI that replaces it).
    pub kube_proxy_disabled: bool,
    /// The API server's `--service-node-port-range` when the spec sets one.
    pub service_node_port_range: Option<String>,
    /// `kops.k8s.io/instancegroup` and the group's own labels for the kubelet.
    pub node_labels: Vec<(String, String)>,
    /// The group's taints. Empty on a control-plane node leaves kubeadm's default taint.
    pub taints: Vec<Taint>,
    /// `spec.assets`: where packages, addons and images come from instead of upstream.
    pub mirrors: assets::Mirrors,
    /// The service-account issuer (`https://…`) when the cluster publishes its discovery
    /// documents (`spec.serviceAccountIssuerDiscovery.discoveryStore`, IRSA).
    pub service_account_issuer: Option<String>,
    /// The group's warm pool (`spec.warmPool`), when it has one: its instances are
    /// prepared while warm and join when they go into service.
    pub warm_pool: Option<WarmPoolBoot>,
}

/// Why a node's user-data cannot be rendered.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// The Kubernetes version is older than 1.31, which kubeadm v1beta4 needs.
    #[error("spec.kubernetesVersion: {0:?} is not supported by the kubeadm bootstrap (kubeadm v1beta4 needs 1.31 or later); run `kopsrs upgrade cluster --yes` or set spec.kubernetesVersion to 1.31 or later")]
    OldKubernetes(String),
    /// The Kubernetes version does not parse.
    #[error("spec.kubernetesVersion: {0:?} is not a version (expected 1.34.1 or v1.34.1)")]
    BadVersion(String),
    /// The compressed user-data is over [`MAX_USER_DATA`].
    #[error("instance group {group}: the user-data is {size} bytes gzip-compressed, over EC2's limit of {MAX_USER_DATA}")]
    TooLarge {
        /// The instance group's name.
        group: String,
        /// The gzip-compressed size, in bytes.
        size: usize,
    },
    /// A value holds a character that cannot be put into the script safely.
    #[error("instance group {group}: {field} {value:?} contains a character that cannot go into user-data")]
    BadValue {
        /// The instance group's name.
        group: String,
        /// Which value, as the user knows it (`metadata.name`, `state store`, ...).
        field: &'static str,
        /// The value as given.
        value: String,
    },
}

/// `1.34.1` (or `v1.34.1`) as (major, minor, patch).
pub fn parse_version(version: &str) -> Option<(u32, u32, u32)> {
    let mut parts = version.trim_start_matches('v').splitn(3, '.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    let patch = parts.next()?.split(['-', '+']).next()?.parse().ok()?;
    Some((major, minor, patch))
}

impl NodeBootstrap {
    fn node_registration(&self) -> NodeRegistrationOptions {
        let labels = self
            .node_labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut args = vec![
            Arg {
                name: "cloud-provider".into(),
                value: "external".into(),
            },
            Arg {
                name: "node-ip".into(),
                value: "@NODE_IP@".into(),
            },
        ];
        if !labels.is_empty() {
            args.push(Arg {
                name: "node-labels".into(),
                value: labels,
            });
        }
        NodeRegistrationOptions {
            name: "@NODE_NAME@".into(),
            cri_socket: "unix:///run/containerd/containerd.sock".into(),
            kubelet_extra_args: args,
            // kubeadm taints control-plane nodes itself when this is unset.
            taints: (self.role != Role::ControlPlane || !self.taints.is_empty())
                .then(|| self.taints.clone()),
        }
    }

    fn local_endpoint() -> ApiEndpoint {
        ApiEndpoint {
            advertise_address: "@NODE_IP@".into(),
            bind_port: 443,
        }
    }

    /// `kubeadm init`'s documents (control-plane nodes).
    pub fn init_documents(&self) -> (InitConfiguration, ClusterConfiguration) {
        let init = InitConfiguration {
            api_version: API_VERSION.into(),
            kind: "InitConfiguration".into(),
            bootstrap_tokens: vec![BootstrapToken {
                token: "@JOIN_TOKEN@".into(),
                description: Some(
                    "kopsrs: first join token; control planes publish fresh ones".into(),
                ),
                ttl: Some("2h0m0s".into()),
                usages: vec!["signing".into(), "authentication".into()],
                groups: vec!["system:bootstrappers:kubeadm:default-node-token".into()],
            }],
            node_registration: self.node_registration(),
            local_api_endpoint: Self::local_endpoint(),
            skip_phases: vec![],
            timeouts: Some(Timeouts {
                control_plane_component_health_check: Some("10m0s".into()),
                discovery: None,
                tls_bootstrap: None,
            }),
        };
        let mut sans = vec![
            "@API_HOST@".to_string(),
            format!("api.internal.{}", self.cluster_name),
        ];
        sans.extend(self.api_cert_sans.iter().cloned());
        sans.dedup();
        let minor = parse_version(&self.kubernetes_version)
            .and_then(|(a, b, _)| assets::control_plane_images((a, b)));
        let repos = self.mirrors.kubeadm_repositories();
        let pinned = |tag: fn(&assets::ControlPlaneImages) -> &'static str| {
            repos
                .as_ref()
                .and(minor.as_ref())
                .map(|m| tag(m).to_string())
        };
        let cluster = ClusterConfiguration {
            api_version: API_VERSION.into(),
            kind: "ClusterConfiguration".into(),
            cluster_name: self.cluster_name.clone(),
            kubernetes_version: format!("v{}", self.kubernetes_version),
            control_plane_endpoint: "@API_HOST@:443".into(),
            certificates_dir: "/etc/kubernetes/pki".into(),
            networking: Networking {
                service_subnet: self.service_cidr.clone(),
                pod_subnet: self.pod_cidr.clone(),
                dns_domain: self.dns_domain.clone(),
            },
            etcd: Etcd {
                local: LocalEtcd {
                    // The member's EBS volume is mounted at /var/lib/etcd; its root holds
                    // lost+found, and kubeadm wants an empty data directory.
                    data_dir: "/var/lib/etcd/data".into(),
                    extra_args: vec![],
                    server_cert_sans: vec![],
                    peer_cert_sans: vec![],
                    image_repository: repos.as_ref().map(|(r, _)| r.clone()),
                    image_tag: pinned(|m| m.etcd),
                },
            },
            api_server: ApiServer {
                cert_sans: sans,
                extra_args: self.api_server_args(),
            },
            controller_manager: ControlPlaneComponent {
                extra_args: vec![Arg {
                    name: "cloud-provider".into(),
                    value: "external".into(),
                }],
            },
            scheduler: ControlPlaneComponent::default(),
            dns: Dns {
                disabled: false,
                image_repository: repos.as_ref().map(|(_, dns)| dns.clone()),
                image_tag: pinned(|m| m.coredns),
            },
            proxy: Proxy {
                disabled: self.kube_proxy_disabled,
            },
            encryption_algorithm: Some("ECDSA-P256".into()),
            image_repository: repos.as_ref().map(|(r, _)| r.clone()),
        };
        (init, cluster)
    }

    /// The API server's extra flags: the node port range, and the published service-account
    /// issuer. The issuer kubeadm would use otherwise stays accepted (given last, and an
    /// audience), so tokens issued before IRSA was turned on keep working
    /// (kubernetes/kops#13101).
    fn api_server_args(&self) -> Vec<Arg> {
        let arg = |name: &str, value: String| Arg {
            name: name.into(),
            value,
        };
        let mut args: Vec<Arg> = self
            .service_node_port_range
            .iter()
            .map(|range| arg("service-node-port-range", range.clone()))
            .collect();
        if let Some(issuer) = &self.service_account_issuer {
            let before = format!("https://kubernetes.default.svc.{}", self.dns_domain);
            args.push(arg("service-account-issuer", issuer.clone()));
            args.push(arg("service-account-issuer", before.clone()));
            args.push(arg(
                "service-account-jwks-uri",
                format!("{issuer}/openid/v1/jwks"),
            ));
            args.push(arg("api-audiences", format!("{issuer},{before}")));
        }
        args
    }

    /// `kubeadm join`'s document; control-plane nodes join with `controlPlane` set.
    pub fn join_document(&self) -> JoinConfiguration {
        JoinConfiguration {
            api_version: API_VERSION.into(),
            kind: "JoinConfiguration".into(),
            node_registration: self.node_registration(),
            discovery: Discovery {
                bootstrap_token: BootstrapTokenDiscovery {
                    token: "@JOIN_TOKEN@".into(),
                    api_server_endpoint: "@API_HOST@:443".into(),
                    ca_cert_hashes: vec!["@CA_HASH@".into()],
                },
                tls_bootstrap_token: None,
            },
            control_plane: (self.role == Role::ControlPlane).then(|| JoinControlPlane {
                local_api_endpoint: Self::local_endpoint(),
            }),
            timeouts: Some(Timeouts {
                control_plane_component_health_check: None,
                discovery: Some("15m0s".into()),
                tls_bootstrap: None,
            }),
        }
    }

    fn check(&self) -> Result<(), BootstrapError> {
        let (major, minor, _) = parse_version(&self.kubernetes_version)
            .ok_or_else(|| BootstrapError::BadVersion(self.kubernetes_version.clone()))?;
        if (major, minor) < (1, 31) {
            return Err(BootstrapError::OldKubernetes(
                self.kubernetes_version.clone(),
            ));
        }
        // An account ID reaches every state-store request's headers: digits only.
        if let Some(owner) = &self.state_owner {
            if owner.len() != 12 || !owner.bytes().all(|b| b.is_ascii_digit()) {
                return Err(self.bad("state store owner", owner));
            }
        }
        let fields: [(&'static str, &str); 5] = [
            ("metadata.name", &self.cluster_name),
            ("state store", &self.state_url),
            ("spec.kubernetesVersion", &self.kubernetes_version),
            ("api name", self.api_dns_name.as_deref().unwrap_or_default()),
            ("instance group", &self.group),
        ];
        // Shell quoting covers the settings, but these values also reach the kubeadm YAML and
        // the script's `sed` substitutions (delimited by `|`), where quoting cannot help.
        for (field, value) in fields {
            if value
                .chars()
                .any(|c| matches!(c, '\'' | '\n' | '|' | '\\' | '@'))
            {
                return Err(self.bad(field, value));
            }
        }
        // The node fills the kubeadm documents' placeholders (`@JOIN_TOKEN@`, `@NODE_NAME@`)
        // with `sed`; a value of the spec holding `@` could become one (a SAN written
        // `@JOIN_TOKEN@` would put the join token into the API certificate). No value kopsrs
        // takes from the spec may hold one; the placeholders are only kopsrs's own.
        let spec_values = self
            .api_cert_sans
            .iter()
            .map(|v| ("spec.additionalSans", v.as_str()))
            .chain([
                ("spec.networking.podCIDR", self.pod_cidr.as_str()),
                (
                    "spec.networking.serviceClusterIPRange",
                    self.service_cidr.as_str(),
                ),
                ("spec.kubeDNS.domain", self.dns_domain.as_str()),
                (
                    "spec.kubeAPIServer.serviceNodePortRange",
                    self.service_node_port_range.as_deref().unwrap_or_default(),
                ),
            ])
            .chain(self.node_labels.iter().flat_map(|(k, v)| {
                [
                    ("spec.nodeLabels", k.as_str()),
                    ("spec.nodeLabels", v.as_str()),
                ]
            }))
            .chain(self.taints.iter().flat_map(|t| {
                [
                    ("spec.taints", t.key.as_str()),
                    ("spec.taints", t.value.as_deref().unwrap_or_default()),
                    ("spec.taints", t.effect.as_str()),
                ]
            }));
        for (field, value) in spec_values {
            if value.contains('@') {
                return Err(self.bad(field, value));
            }
        }
        Ok(())
    }

    fn bad(&self, field: &'static str, value: &str) -> BootstrapError {
        BootstrapError::BadValue {
            group: self.group.clone(),
            field,
            value: value.into(),
        }
    }

    /// The pause image containerd runs pods in, when images are mirrored.
    fn sandbox_image(&self) -> Option<String> {
        self.mirrors.kubeadm_repositories()?;
        assets::kubeadm_images(&self.kubernetes_version, false, &self.mirrors)
            .into_iter()
            .find(|i| i.image.starts_with("registry.k8s.io/pause:"))
            .map(|i| i.mirror)
    }

    /// The instance group's user-data.
    pub fn render(&self) -> Result<String, BootstrapError> {
        if self.role == Role::Bastion {
            return Ok(format!(
                "#!/bin/bash\n# kopsrs bastion of {}: SSH only, no Kubernetes.\nset -euo pipefail\napt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q unattended-upgrades\n",
                self.cluster_name
            ));
        }
        self.check()?;
        let (major, minor, _) = parse_version(&self.kubernetes_version).unwrap_or_default();
        let role = match self.role {
            Role::ControlPlane => "control-plane",
            _ => "node",
        };
        let settings = [
            ("CLUSTER_NAME", self.cluster_name.clone()),
            ("GROUP", self.group.clone()),
            ("ROLE", role.to_string()),
            (
                "KUBERNETES_VERSION",
                self.kubernetes_version.trim_start_matches('v').to_string(),
            ),
            ("REGION", self.region.clone()),
            ("STATE_URL", self.state_url.clone()),
            (
                "STATE_REGION",
                self.state_region.clone().unwrap_or_default(),
            ),
            ("STATE_OWNER", self.state_owner.clone().unwrap_or_default()),
            ("EC2_URL", self.ec2_url.clone()),
            ("ELB_URL", self.elb_url.clone()),
            ("STS_URL", self.sts_url.clone()),
            (
                "API_DNS_NAME",
                self.api_dns_name.clone().unwrap_or_default(),
            ),
            ("API_LB_NAME", self.api_lb_name.clone().unwrap_or_default()),
            (
                "ETCD_VOLUME_TAG",
                self.etcd_volume_tag.clone().unwrap_or_default(),
            ),
            ("ETCD_MEMBERS", self.etcd_members.to_string()),
            (
                "ETCD_BACKUP_SECONDS",
                self.etcd_backup_interval.as_secs().to_string(),
            ),
            (
                "ETCD_BACKUP_RETENTION_DAYS",
                self.etcd_backup_retention_days.to_string(),
            ),
            (
                "K8S_APT_REPO",
                self.mirrors
                    .file_url(&assets::upstream_apt_repo(&format!("{major}.{minor}"))),
            ),
            ("SANDBOX_IMAGE", self.sandbox_image().unwrap_or_default()),
            (
                "IMAGE_REGISTRY",
                self.mirrors.container_registry.clone().unwrap_or_default(),
            ),
            (
                "IMAGE_PROXY",
                self.mirrors.container_proxy.clone().unwrap_or_default(),
            ),
        ];
        let mut out = String::from("#!/bin/bash\n# kopsrs user-data: see docs/bootstrap.md\n");
        for (key, value) in settings {
            out.push_str(&format!("{key}={}\n", shell_quote(&value)));
        }
        // Only groups with a warm pool carry these (the script reads them with defaults), so
        // the other groups' user-data does not change with them.
        if let Some(pool) = &self.warm_pool {
            for (key, value) in [
                ("WARM_POOL_ASG", pool.asg.clone()),
                ("WARM_POOL_HOOK", pool.hook.clone().unwrap_or_default()),
                ("AUTOSCALING_URL", pool.autoscaling_url.clone()),
            ] {
                out.push_str(&format!("{key}={}\n", shell_quote(&value)));
            }
        }
        let join = yaml(&self.join_document());
        let mut init = String::new();
        if self.role == Role::ControlPlane {
            let (i, c) = self.init_documents();
            init = format!("{}---\n{}", yaml(&i), yaml(&c));
        }
        out.push_str(&format!(
            "write_kubeadm_init() {{\n  cat >\"$1\" <<'KUBEADM'\n{init}KUBEADM\n}}\nwrite_kubeadm_join() {{\n  cat >\"$1\" <<'KUBEADM'\n{join}KUBEADM\n}}\n"
        ));
        out.push_str(&without_comments(BODY));
        let size = gzip(&out).len();
        if size > MAX_USER_DATA {
            return Err(BootstrapError::TooLarge {
                group: self.group.clone(),
                size,
            });
        }
        Ok(out)
    }
}

impl NodeBootstrap {
    /// The user-data of a Karpenter-managed group: EC2NodeClass `userData` reaches EC2 as it
    /// is (no gzip), and the group's script ([`NodeBootstrap::render`]) is over EC2's 16 KB,
    /// so this short script reads it from the state store at `key` (under the cluster's
    /// folder) with the instance role and runs it only if its sha256 is `sha256`.
    pub fn render_fetcher(&self, key: &str, sha256: &str) -> String {
        let settings = [
            ("CLUSTER_NAME", self.cluster_name.as_str()),
            ("GROUP", self.group.as_str()),
            ("REGION", self.region.as_str()),
            ("STATE_URL", self.state_url.as_str()),
            (
                "STATE_REGION",
                self.state_region.as_deref().unwrap_or_default(),
            ),
            (
                "STATE_OWNER",
                self.state_owner.as_deref().unwrap_or_default(),
            ),
            ("SCRIPT_KEY", key),
            ("SCRIPT_SHA256", sha256),
        ];
        let mut out = String::from(
            "#!/bin/bash\n# kopsrs user-data of a Karpenter-managed group: see docs/bootstrap.md\n",
        );
        for (key, value) in settings {
            out.push_str(&format!("{key}={}\n", shell_quote(value)));
        }
        out.push_str(&without_comments(FETCH));
        out
    }
}

/// `value` as one shell word: single quotes, each `'` written `'\''`. Every value the spec
/// gives reaches the script this way, so none runs as code.
pub fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

fn yaml<T: serde::Serialize>(value: &T) -> String {
    serde_yaml_ng::to_string(value).expect("kubeadm documents serialise")
}

/// The kubeadm documents embedded in a rendered user-data (between the `KUBEADM` markers).
pub fn embedded_kubeadm_documents(user_data: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in user_data.lines() {
        match (&mut current, line) {
            (None, l) if l.trim_end().ends_with("<<'KUBEADM'") => current = Some(String::new()),
            (Some(text), "KUBEADM") => {
                out.push(std::mem::take(text));
                current = None;
            }
            (Some(text), l) => {
                text.push_str(l);
                text.push('\n');
            }
            _ => {}
        }
    }
    out.into_iter().filter(|d| !d.trim().is_empty()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hostile settings stay data: bash reads each back byte for byte and runs nothing.
    #[test]
    fn settings_are_single_shell_words() {
        let dir = tempfile::tempdir().unwrap();
        let canary = dir.path().join("ran");
        let hostile = [
            format!("eu-west-1'$(touch {})'", canary.display()),
            format!("a; touch {}", canary.display()),
            format!("`touch {}`", canary.display()),
            "it's \\ \"quoted\" $HOME\nnext line".to_string(),
        ];
        for value in &hostile {
            let mut node = node(Role::Node);
            node.region = value.clone();
            let script = node.render().unwrap();
            let line = script
                .lines()
                .find(|l| l.starts_with("REGION="))
                .unwrap()
                .to_string();
            // A quoted value may span lines: take the assignment up to the next setting.
            let start = script.find(&line).unwrap();
            let end = script[start..]
                .find("\nSTATE_URL=")
                .map(|e| start + e)
                .unwrap_or(start + line.len());
            let assignment = &script[start..end];
            let out = std::process::Command::new("bash")
                .arg("-c")
                .arg(format!("{assignment}\nprintf %s \"$REGION\""))
                .output()
                .unwrap();
            assert!(out.status.success(), "{assignment}");
            assert_eq!(String::from_utf8(out.stdout).unwrap(), *value);
            assert!(!canary.exists(), "{value} ran as code");
        }
    }

    fn node(role: Role) -> NodeBootstrap {
        NodeBootstrap {
            cluster_name: "k.example.com".into(),
            group: "nodes-a".into(),
            role,
            kubernetes_version: "1.34.1".into(),
            region: "eu-west-1".into(),
            state_url: "https://s3.eu-west-1.amazonaws.com/b/k.example.com".into(),
            state_region: None,
            state_owner: None,
            ec2_url: "https://ec2.eu-west-1.amazonaws.com".into(),
            elb_url: "https://elasticloadbalancing.eu-west-1.amazonaws.com".into(),
            sts_url: "https://sts.eu-west-1.amazonaws.com".into(),
            api_dns_name: Some("api.k.example.com".into()),
            api_lb_name: Some("api-k-example-com".into()),
            api_cert_sans: vec!["extra.example.com".into()],
            etcd_volume_tag: (role == Role::ControlPlane).then(|| "k8s.io/etcd/main".into()),
            etcd_members: 3,
            etcd_backup_interval: std::time::Duration::from_secs(900),
            etcd_backup_retention_days: 90,
            pod_cidr: "100.96.0.0/11".into(),
            service_cidr: "100.64.0.0/13".into(),
            dns_domain: "cluster.local".into(),
            kube_proxy_disabled: false,
            service_node_port_range: None,
            node_labels: vec![("kops.k8s.io/instancegroup".into(), "nodes-a".into())],
            taints: vec![],
            mirrors: Default::default(),
            service_account_issuer: None,
            warm_pool: None,
        }
    }

    #[test]
    fn control_plane_user_data_carries_init_and_join_documents() {
        let text = node(Role::ControlPlane).render().unwrap();
        assert!(text.starts_with("#!/bin/bash\n"));
        let docs = embedded_kubeadm_documents(&text);
        assert_eq!(docs.len(), 2, "{docs:?}");
        let init = kubeadm::decode(&docs[0]).unwrap();
        assert!(
            matches!(&init[..], [kubeadm::Document::Init(_), kubeadm::Document::Cluster(c)]
            if c.api_server.cert_sans.contains(&"extra.example.com".to_string())
            && c.kubernetes_version == "v1.34.1")
        );
        let join = kubeadm::decode(&docs[1]).unwrap();
        assert!(matches!(&join[..], [kubeadm::Document::Join(j)] if j.control_plane.is_some()));
        // kubeadm's own spelling of the initialisms.
        assert!(docs[0].contains("localAPIEndpoint:") && docs[0].contains("certSANs:"));
        assert!(gzip(&text).len() < MAX_USER_DATA);
    }

    #[test]
    fn worker_user_data_joins_without_control_plane() {
        let text = node(Role::Node).render().unwrap();
        let docs = embedded_kubeadm_documents(&text);
        assert_eq!(docs.len(), 1);
        let join = kubeadm::decode(&docs[0]).unwrap();
        assert!(matches!(&join[..], [kubeadm::Document::Join(j)] if j.control_plane.is_none()));
        assert!(!text.contains("-----BEGIN"), "no key material in user-data");
    }

    #[test]
    fn decoding_is_strict() {
        let text = node(Role::Node).render().unwrap();
        let doc = embedded_kubeadm_documents(&text).remove(0);
        let typo = doc.replace("caCertHashes:", "caCertHash:");
        assert!(kubeadm::decode(&typo).unwrap_err().contains("caCertHash"));
        let v1beta3 = doc.replace("v1beta4", "v1beta3");
        assert!(kubeadm::decode(&v1beta3).is_err());
    }

    #[test]
    fn old_versions_and_odd_values_are_refused() {
        let mut n = node(Role::Node);
        n.kubernetes_version = "1.30.4".into();
        let e = n.render().unwrap_err().to_string();
        assert!(
            e.contains("spec.kubernetesVersion")
                && e.contains("1.30.4")
                && e.contains("upgrade cluster"),
            "{e}"
        );
        let mut n = node(Role::Node);
        n.cluster_name = "a'b".into();
        assert!(n
            .render()
            .unwrap_err()
            .to_string()
            .contains("metadata.name"));
    }

    /// A value of the spec written like a placeholder never reaches the documents the node
    /// fills in: a SAN `@JOIN_TOKEN@` would otherwise put the join token into the API
    /// certificate and `kubeadm-config`.
    #[test]
    fn no_value_of_the_spec_can_become_a_placeholder() {
        let mut n = node(Role::ControlPlane);
        n.api_cert_sans.push("@JOIN_TOKEN@".into());
        let e = n.render().unwrap_err().to_string();
        assert!(
            e.contains("spec.additionalSans") && e.contains("@JOIN_TOKEN@"),
            "{e}"
        );
        let mut n = node(Role::Node);
        n.node_labels.push(("team".into(), "@CA_HASH@".into()));
        assert!(n
            .render()
            .unwrap_err()
            .to_string()
            .contains("spec.nodeLabels"));
        // The documents kopsrs renders hold its own placeholders only where it put them.
        let text = node(Role::ControlPlane).render().unwrap();
        let docs = embedded_kubeadm_documents(&text).join("");
        assert_eq!(docs.matches("@JOIN_TOKEN@").count(), 2, "{docs}");
    }

    #[test]
    fn the_stable_channel_selects_addons_per_networking() {
        let channel = channel::Channel::stable();
        // Optional addons are selected marked so; the spec decides (kopsrs-ops).
        let names = |cni: &str| -> Vec<String> {
            channel
                .select("v1.34.1", cni)
                .unwrap()
                .addons
                .into_iter()
                .map(|a| match a.optional {
                    true => format!("{}?", a.name),
                    false => a.name,
                })
                .collect()
        };
        assert_eq!(
            names("cilium"),
            [
                "helm",
                "cilium",
                "aws-cloud-controller-manager",
                "aws-ebs-csi-driver",
                "aws-load-balancer-controller?",
                "cert-manager?",
                "cluster-autoscaler?",
                "external-dns?",
                "metrics-server"
            ]
        );
        assert_eq!(names("calico")[1], "calico");
        assert!(!names("none")
            .iter()
            .any(|n| channel::CNI_ADDONS.contains(&n.as_str())));
        let e = channel.select("1.29.0", "cilium").unwrap_err().to_string();
        assert!(e.contains("1.29.0") && e.contains("1.31"), "{e}");
        assert_eq!(channel.upgrade_target("1.33.0"), Some("1.34.1"));
        assert_eq!(channel.upgrade_target("1.34.0"), Some("1.34.1"));
        assert_eq!(channel.recommended_patch("1.34.0"), Some("1.34.1"));
    }

    #[test]
    fn a_channel_entry_for_a_newer_minor_wins_for_that_minor() {
        let mut channel = channel::Channel::stable();
        let mut newer = channel
            .addons
            .iter()
            .find(|a| a.name == "metrics-server")
            .unwrap()
            .clone();
        newer.version = "9.9.9".into();
        newer.kubernetes = Some(["1.34".into(), "1.40".into()]);
        channel.addons.push(newer);
        let pick = |v: &str| {
            channel
                .select(v, "cilium")
                .unwrap()
                .addons
                .into_iter()
                .find(|a| a.name == "metrics-server")
                .unwrap()
                .version
        };
        assert_eq!(pick("1.34.1"), "9.9.9");
        assert_ne!(pick("1.33.5"), "9.9.9");
        let bad = channel::Channel::parse("kubernetes: {recommended: 1.34.1, minors: {}}\naddons:\n- {name: x, version: '1', kind: manifest, url: u, sha256: abc}\n");
        assert!(bad.unwrap_err().to_string().contains("64 lowercase hex"));
    }
}
