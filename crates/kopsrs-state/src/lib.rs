//! The state store: where cluster specs live, in kops's layout, over `object_store`.
//!
//! ```text
//! <cluster>/config                      the Cluster (user spec)
//! <cluster>/instancegroup/<name>        one InstanceGroup each
//! <cluster>/cluster-completed.spec      the completed spec, written by update
//! <cluster>/pki/ssh/public/admin/<id>   the admin SSH public key
//! <cluster>/additionalobjects           extra documents (kops's "additional objects")
//! <cluster>/kopsrs.lock                 the cluster lock (kopsrs only; kops has none)
//! ```
//!
//! Every read-modify-write is conditional: a write carries the version it read, and fails with
//! [`StateStoreError::Conflict`] when another writer got there first. S3 (and moto) enforce
//! this with `If-Match`/`If-None-Match`; for `file://` see [`local`].
//!
//! An S3 store opened with an expected bucket owner ([`StoreAccess::bucket_owner`]) names it
//! in every request, so S3 refuses a bucket another account owns; opening checks it once
//! ([`StateStoreError::NotOwner`]).

mod error;
mod local;
mod lock;
mod s3;
mod store;

pub use error::StateStoreError;
pub use lock::{now_rfc3339, LockGuard, LockInfo};
pub use store::{Decoded, StateStore, StoreAccess, Undecodable, Version, Versioned};

/// File names of the kops layout.
pub mod layout {
    /// The Cluster (user spec): `<cluster>/config`.
    pub const CONFIG: &str = "config";
    /// The folder of InstanceGroups, one object each: `<cluster>/instancegroup/<name>`.
    pub const INSTANCE_GROUPS: &str = "instancegroup";
    /// The completed spec `update` writes: `<cluster>/cluster-completed.spec`.
    pub const COMPLETED: &str = "cluster-completed.spec";
    /// The admin SSH public keys: `<cluster>/pki/ssh/public/admin/<id>`.
    pub const SSH_PUBLIC_KEYS: &str = "pki/ssh/public/admin";
    /// Documents of other API groups stored with the cluster (kops's "additional objects").
    pub const ADDITIONAL_OBJECTS: &str = "additionalobjects";
    /// The cluster lock (kopsrs only; see [`LockInfo`](crate::LockInfo)).
    pub const LOCK: &str = "kopsrs.lock";
    /// Keysets with private material: `pki/private/<keyset>/keyset.yaml`.
    pub const PKI_PRIVATE: &str = "pki/private";
    /// The same keysets without private material: `pki/issued/<keyset>/keyset.yaml`.
    pub const PKI_ISSUED: &str = "pki/issued";
    /// The addons the control plane applies (kops keeps its channel at the same path).
    pub const ADDONS_CHANNEL: &str = "addons/bootstrap-channel.yaml";
    /// The init election record, the shared join token control planes read
    /// (`bootstrap/node/join.env`) and workers' own join-token requests (`bootstrap/instances/`).
    pub const BOOTSTRAP: &str = "bootstrap";
    /// etcd snapshots the control plane uploads.
    pub const ETCD_BACKUPS: &str = "backups/etcd";
}
