//! The kops `kops.k8s.io/v1alpha2` API: types, strict decoding, completion and validation.
//!
//! Nothing in this crate does I/O. Callers hand it text and get typed documents back
//! ([`decode_documents`]), complete a user spec with kops's defaults ([`complete`]) and check it
//! ([`validate`]), reporting every problem with its field path.

pub mod backups;
pub mod cidr;
pub mod complete;
pub mod crd;
pub mod create;
mod document;
pub mod generated;
mod meta;
pub mod paths;
pub mod validate;
pub mod versions;

pub use complete::complete;

/// The candidate closest to `name` (Jaro-Winkler, case-insensitive) when it is close enough
/// to be what the user meant: for "did you mean" hints.
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let name = name.to_lowercase();
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(&name, &c.to_lowercase()), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}
pub use document::{
    decode_documents, decode_documents_with, encode_documents, too_deep, Cluster, DecodeError,
    Decoded, Document, InstanceGroup, Keyset, OutputFormat, SshCredential, Validation, API_VERSION,
    MAX_DEPTH, MAX_SPEC_BYTES,
};
pub use generated::*;
pub use meta::{IntOrString, ObjectMeta};
pub use validate::{validate, Severity, ValidationIssue, ValidationReport};

/// The label that ties an instance group to its cluster, as kops writes it.
pub const LABEL_CLUSTER: &str = "kops.k8s.io/cluster";
/// The node label naming the instance group a node belongs to.
pub const LABEL_INSTANCE_GROUP: &str = "kops.k8s.io/instancegroup";

/// The role of an instance group (`spec.role`), with kops's spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// A control-plane node (kops writes `Master`).
    ControlPlane,
    /// A worker node.
    Node,
    /// An SSH bastion in front of a private topology.
    Bastion,
    /// A node that runs only the API server (`APIServer`).
    ApiServer,
}

impl Role {
    /// Every accepted spelling, for error messages.
    pub const ACCEPTED: &'static str = "Master (or ControlPlane), Node, Bastion, APIServer";

    /// Parses `spec.role`; kops accepts `ControlPlane` and writes `Master`.
    pub fn parse(value: &str) -> Option<Role> {
        match value {
            "Master" | "ControlPlane" => Some(Role::ControlPlane),
            "Node" => Some(Role::Node),
            "Bastion" => Some(Role::Bastion),
            "APIServer" => Some(Role::ApiServer),
            _ => None,
        }
    }

    /// A role as tags (`k8s.io/role/<role>`) and kops's `--instance-group-roles` spell it,
    /// case-insensitive: `control-plane` (or `master`), `node`, `bastion`, `apiserver`.
    pub fn from_tag(value: &str) -> Option<Role> {
        match value.to_ascii_lowercase().as_str() {
            "control-plane" | "controlplane" | "master" => Some(Role::ControlPlane),
            "node" => Some(Role::Node),
            "bastion" => Some(Role::Bastion),
            "apiserver" | "api-server" => Some(Role::ApiServer),
            _ => None,
        }
    }

    /// The value kops writes into `spec.role`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::ControlPlane => "Master",
            Role::Node => "Node",
            Role::Bastion => "Bastion",
            Role::ApiServer => "APIServer",
        }
    }
}

impl InstanceGroup {
    /// The parsed role, if `spec.role` holds a known value.
    pub fn role(&self) -> Option<Role> {
        self.spec.role.as_deref().and_then(Role::parse)
    }

    /// The cluster this group belongs to, from the `kops.k8s.io/cluster` label.
    pub fn cluster_label(&self) -> Option<&str> {
        self.metadata
            .labels
            .as_ref()?
            .get(LABEL_CLUSTER)
            .map(String::as_str)
    }
}
