//! The model: a completed cluster spec in, the cluster's AWS resources out.
//!
//! [`build`] turns a completed [`Cluster`] and its [`InstanceGroup`]s into a [`DesiredSet`]:
//! every resource with a stable kops-compatible address, its attributes (in the Terraform AWS
//! provider's vocabulary), its tags and, through references, its dependencies. The AWS
//! provider, the plan printer and the Terraform renderer all read this one set. Nothing here
//! does I/O.

mod addons;
mod bootstrap;
mod build;
mod iam;
mod irsa;
mod karpenter;
mod labels;
pub mod names;
mod network;
mod nodes;
mod resource;
mod security;
mod termination_handler;

use std::collections::BTreeMap;

use kopsrs_api::{Cluster, InstanceGroup};

pub use bootstrap::cni;
pub use irsa::discovery_issuer;
pub use resource::{Address, Attrs, Existing, Expected, FileValue, Mode, Ref, Resource, Value};

/// Everything the model needs besides the spec.
#[derive(Debug, Clone, Default)]
pub struct ModelInput<'a> {
    /// The OpenSSH public key registered with `create sshpublickey`, if any.
    pub ssh_public_key: Option<&'a str>,
    /// User-data per instance group name, replacing the kubeadm bootstrap (tests).
    pub user_data: BTreeMap<String, String>,
    /// An AWS endpoint that replaces the regional ones in user-data (`AWS_ENDPOINT_URL`).
    pub aws_endpoint: Option<String>,
    /// The state store bucket's region, when known; nodes ask S3 otherwise.
    pub state_region: Option<String>,
    /// The AWS account that owns the state store's bucket, when known: nodes name it in every
    /// request to the store, so S3 refuses a bucket another account owns.
    pub state_owner: Option<String>,
    /// Refuse specs the bootstrap cannot serve (the AWS target), instead of writing a
    /// user-data that stops with the reason (Terraform output of old specs).
    pub strict_bootstrap: bool,
}

/// The resources a cluster consists of, sorted by address.
#[derive(Debug, Clone, Default)]
pub struct DesiredSet {
    /// The cluster's name (`metadata.name`).
    pub cluster_name: String,
    /// The AWS region the cluster runs in.
    pub region: String,
    /// The resources the cluster owns, sorted by address.
    pub resources: Vec<Resource>,
    /// Read-only lookups resolved by the target (an AMI by name, a hosted zone by name).
    pub data_sources: Vec<Resource>,
    /// Values users of the Terraform output and of `get` want (IDs of groups, subnets, ...).
    pub outputs: BTreeMap<String, Value>,
    /// Resources made outside the cluster that it uses: checked, never changed.
    pub existing: Vec<Existing>,
    /// The instance group each per-group resource (launch template, auto scaling group,
    /// lifecycle hook) belongs to, by address.
    pub instance_groups: BTreeMap<Address, String>,
    /// The addons the model writes itself (the termination handler, the Karpenter groups'
    /// objects), which the state store and the control plane carry, not AWS.
    pub generated: Vec<GeneratedAddon>,
    /// The channel's optional addons the spec turns on (the cluster autoscaler), each with
    /// the Helm values it gives them.
    pub optional_addons: BTreeMap<String, serde_json::Value>,
}

/// An addon kopsrs writes from the spec: its objects, the state-store key of their manifest
/// (under the cluster's folder) and other files the objects name (key, text).
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratedAddon {
    /// The addon's name in the channel (`node-termination-handler`).
    pub name: &'static str,
    /// Where its manifest is kept (`addons/node-termination-handler.aws/manifest.yaml`).
    pub key: &'static str,
    /// Its objects, in apply order.
    pub objects: Vec<serde_json::Value>,
    /// Other state-store files its objects name (the Karpenter groups' scripts).
    pub files: BTreeMap<String, String>,
}

/// The annotation every object of a generated addon carries, naming the addon: with
/// kopsrs's field manager, what lets a control plane delete an object the addon no longer
/// has (never a label, which controllers copy).
pub const ADDON_ANNOTATION: &str = "kopsrs.io/addon";

impl GeneratedAddon {
    /// Each object annotated with [`ADDON_ANNOTATION`].
    fn annotated(mut self) -> GeneratedAddon {
        for object in &mut self.objects {
            object["metadata"]["annotations"][ADDON_ANNOTATION] = self.name.into();
        }
        self
    }

    /// The objects as one YAML stream, the manifest the control plane applies.
    pub fn manifest(&self) -> String {
        self.objects
            .iter()
            .map(|o| serde_yaml_ng::to_string(o).expect("JSON values serialise"))
            .collect::<Vec<_>>()
            .join("---\n")
    }
}

impl DesiredSet {
    /// The resource or data source at `address`.
    pub fn get(&self, address: &Address) -> Option<&Resource> {
        let list = match address.mode {
            Mode::Managed => &self.resources,
            Mode::Data => &self.data_sources,
        };
        // Both lists are kept sorted by address, so a lookup is a binary search.
        list.binary_search_by(|r| r.address.cmp(address))
            .ok()
            .map(|i| &list[i])
    }

    /// Resources of one kind (`aws_subnet`), in address order.
    pub fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Resource> + 'a {
        self.resources
            .iter()
            .filter(move |r| r.address.kind == kind)
    }
}

/// Why a spec cannot be turned into resources. The spec was validated before, so these are
/// inconsistencies validation does not catch (a group naming a subnet that does not exist).
#[derive(Debug, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ModelError {
    /// The spec field at fault, e.g. `spec.subnets[1].zone`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// Builds the desired set of a completed cluster.
pub fn build(
    cluster: &Cluster,
    groups: &[InstanceGroup],
    input: &ModelInput<'_>,
) -> Result<DesiredSet, ModelError> {
    build::Builder::new(cluster, groups, input)?.build()
}
