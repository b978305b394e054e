//! The kubeadm v1beta4 configuration documents kopsrs writes, as types.
//!
//! Only the fields kopsrs sets are modelled, each named as in kubeadm's v1beta4 reference
//! (<https://kubernetes.io/docs/reference/config-api/kubeadm-config.v1beta4/>). Every type
//! rejects unknown fields, so a rendered document that names a field kubeadm does not have
//! fails to decode in the tests instead of being silently ignored on a node.

use serde::{Deserialize, Serialize};

/// The kubeadm configuration API every document is written in.
pub const API_VERSION: &str = "kubeadm.k8s.io/v1beta4";

/// `kubeadm init`'s node-local settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InitConfiguration {
    /// [`API_VERSION`].
    pub api_version: String,
    /// `InitConfiguration`.
    pub kind: String,
    /// The first join token, created by `kubeadm init`; its value is a placeholder.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bootstrap_tokens: Vec<BootstrapToken>,
    /// How this node registers with the API server.
    pub node_registration: NodeRegistrationOptions,
    /// Where this node's API server listens.
    #[serde(rename = "localAPIEndpoint")]
    pub local_api_endpoint: ApiEndpoint,
    /// `kubeadm init` phases to skip.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skip_phases: Vec<String>,
    /// How long `kubeadm init` waits; kopsrs sets the control-plane health check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<Timeouts>,
}

/// The cluster-wide settings kubeadm stores in the `kubeadm-config` ConfigMap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterConfiguration {
    /// [`API_VERSION`].
    pub api_version: String,
    /// `ClusterConfiguration`.
    pub kind: String,
    /// The cluster's name (kops's `metadata.name`).
    pub cluster_name: String,
    /// The Kubernetes version, with its `v` (`v1.34.1`).
    pub kubernetes_version: String,
    /// Where every node reaches the API: `@API_HOST@:443`, filled in on the node.
    pub control_plane_endpoint: String,
    /// Where kubeadm keeps the cluster's certificates (`/etc/kubernetes/pki`).
    pub certificates_dir: String,
    /// The pod and service ranges and the DNS domain.
    pub networking: Networking,
    /// The local etcd member of each control-plane node.
    pub etcd: Etcd,
    /// The API server's certificate names and extra flags.
    pub api_server: ApiServer,
    /// The controller manager's extra flags.
    pub controller_manager: ControlPlaneComponent,
    /// The scheduler's extra flags.
    pub scheduler: ControlPlaneComponent,
    /// Whether kubeadm's CoreDNS addon is off.
    pub dns: Dns,
    /// Whether kubeadm's kube-proxy addon is off.
    pub proxy: Proxy,
    /// The key type of the keys and certificates kubeadm generates, e.g. `ECDSA-P256`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_algorithm: Option<String>,
    /// Where kubeadm pulls its images; `None`: `registry.k8s.io` (`spec.assets` mirrors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_repository: Option<String>,
}

/// `kubeadm join`'s settings, for workers and (with `controlPlane`) control-plane nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JoinConfiguration {
    /// [`API_VERSION`].
    pub api_version: String,
    /// `JoinConfiguration`.
    pub kind: String,
    /// How this node registers with the API server.
    pub node_registration: NodeRegistrationOptions,
    /// How this node finds the API server and checks it is the right one.
    pub discovery: Discovery,
    /// Set to join as a control-plane member; `None` for a worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane: Option<JoinControlPlane>,
    /// How long the join waits; kopsrs sets the discovery wait.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<Timeouts>,
}

/// A bootstrap token: a short-lived credential nodes join with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BootstrapToken {
    /// The token (`abcdef.0123456789abcdef`); a placeholder filled in on the node.
    pub token: String,
    /// A note stored with the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// How long the token lives, as a Go duration (`2h0m0s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    /// What the token may be used for (`signing`, `authentication`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub usages: Vec<String>,
    /// Extra groups the token authenticates as.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

/// How a node registers: its name, container runtime, kubelet flags and taints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeRegistrationOptions {
    /// The node's name; a placeholder filled in on the node.
    pub name: String,
    /// The container runtime's socket (containerd's).
    pub cri_socket: String,
    /// Extra kubelet flags (`--cloud-provider`, `--node-ip`, `--node-labels`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kubelet_extra_args: Vec<Arg>,
    /// The node's taints. `None` lets kubeadm taint a control-plane node itself; an empty list
    /// means no taints at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taints: Option<Vec<Taint>>,
}

/// v1beta4's structured extra argument (replaces v1beta3's string map).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Arg {
    /// The flag's name, without `--`.
    pub name: String,
    /// The flag's value.
    pub value: String,
}

/// A Kubernetes node taint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Taint {
    /// The taint's key.
    pub key: String,
    /// The taint's value, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// `NoSchedule`, `PreferNoSchedule` or `NoExecute`.
    pub effect: String,
}

/// Where an API server listens on its node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiEndpoint {
    /// The address it advertises; a placeholder filled in with the node's IP.
    pub advertise_address: String,
    /// The port (443).
    pub bind_port: u16,
}

/// kubeadm's waits, as Go durations (`10m0s`); `None` keeps kubeadm's default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Timeouts {
    /// How long `kubeadm init` waits for the control-plane components to be healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane_component_health_check: Option<String>,
    /// How long `kubeadm join` waits to find and trust the API server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery: Option<String>,
    /// How long the kubelet's TLS bootstrap may take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_bootstrap: Option<String>,
}

/// The cluster's address ranges and DNS domain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Networking {
    /// The service range (`spec.serviceClusterIPRange`).
    pub service_subnet: String,
    /// The pod range (`spec.podCIDR`).
    pub pod_subnet: String,
    /// The cluster DNS domain (`spec.clusterDNSDomain`), e.g. `cluster.local`.
    pub dns_domain: String,
}

/// Where etcd runs: always a local member per control-plane node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Etcd {
    /// The local member's settings.
    pub local: LocalEtcd,
}

/// A local etcd member.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalEtcd {
    /// Where etcd keeps its data: a folder on the member's own EBS volume.
    pub data_dir: String,
    /// Extra etcd flags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_args: Vec<Arg>,
    /// Extra names in etcd's server certificate.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        rename = "serverCertSANs"
    )]
    pub server_cert_sans: Vec<String>,
    /// Extra names in etcd's peer certificate.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        rename = "peerCertSANs"
    )]
    pub peer_cert_sans: Vec<String>,
    /// etcd's image repository, when mirrored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_repository: Option<String>,
    /// etcd's image tag, pinned when mirrored (the one that was copied).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_tag: Option<String>,
}

/// The API server's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiServer {
    /// Extra names in the API server's certificate (the API's DNS names).
    #[serde(default, skip_serializing_if = "Vec::is_empty", rename = "certSANs")]
    pub cert_sans: Vec<String>,
    /// Extra API server flags, e.g. `--service-node-port-range`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_args: Vec<Arg>,
}

/// Extra flags of a control-plane component (controller manager, scheduler).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ControlPlaneComponent {
    /// The flags, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_args: Vec<Arg>,
}

/// kubeadm's CoreDNS addon.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Dns {
    /// Skip installing CoreDNS.
    #[serde(default)]
    pub disabled: bool,
    /// CoreDNS's image repository, when mirrored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_repository: Option<String>,
    /// CoreDNS's image tag, pinned when mirrored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_tag: Option<String>,
}

/// kubeadm's kube-proxy addon.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Proxy {
    /// Skip installing kube-proxy (for a CNI that replaces it).
    #[serde(default)]
    pub disabled: bool,
}

/// How a joining node finds the API server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Discovery {
    /// Discovery by bootstrap token, checked against the CA's public key hash.
    pub bootstrap_token: BootstrapTokenDiscovery,
    /// A separate token for the TLS bootstrap; `None` uses the discovery token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_bootstrap_token: Option<String>,
}

/// Discovery by bootstrap token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BootstrapTokenDiscovery {
    /// The bootstrap token; a placeholder filled in on the node.
    pub token: String,
    /// The API server's `host:port`; a placeholder filled in on the node.
    pub api_server_endpoint: String,
    /// Pins of the CA's public key (`sha256:<hex>`); the CA found in discovery must match one.
    /// A placeholder filled in on the node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ca_cert_hashes: Vec<String>,
}

/// The control-plane part of a join.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JoinControlPlane {
    /// Where the joining control plane's own API server listens.
    #[serde(rename = "localAPIEndpoint")]
    pub local_api_endpoint: ApiEndpoint,
}

/// One decoded kubeadm document.
#[derive(Debug, Clone, PartialEq)]
pub enum Document {
    /// `InitConfiguration`.
    Init(InitConfiguration),
    /// `ClusterConfiguration`.
    Cluster(Box<ClusterConfiguration>),
    /// `JoinConfiguration`.
    Join(JoinConfiguration),
}

/// Decodes a multi-document kubeadm file strictly: every document must be a kubeadm v1beta4
/// kind kopsrs knows, with no unknown field.
pub fn decode(text: &str) -> Result<Vec<Document>, String> {
    use serde::de::Deserialize as _;
    let mut out = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(text) {
        let value = serde_yaml_ng::Value::deserialize(doc).map_err(|e| e.to_string())?;
        let api = value.get("apiVersion").and_then(|v| v.as_str());
        if api != Some(API_VERSION) {
            return Err(format!("apiVersion {api:?}: expected {API_VERSION}"));
        }
        let kind = value
            .get("kind")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string();
        let err = |e: serde_yaml_ng::Error| format!("{kind}: {e}");
        out.push(match kind.as_str() {
            "InitConfiguration" => Document::Init(serde_yaml_ng::from_value(value).map_err(err)?),
            "ClusterConfiguration" => {
                Document::Cluster(Box::new(serde_yaml_ng::from_value(value).map_err(err)?))
            }
            "JoinConfiguration" => Document::Join(serde_yaml_ng::from_value(value).map_err(err)?),
            other => {
                return Err(format!(
                    "kind {other:?} is not a kubeadm v1beta4 kind kopsrs writes"
                ))
            }
        });
    }
    Ok(out)
}
