//! Container image copies between OCI/Docker registries, for kops's `spec.assets`: a mirror
//! registry gets the cluster's images byte-exact (same digests), so nodes that pin digests pull
//! them from the mirror. Built on oci-client. The names images get under a mirror are
//! kopsrs-bootstrap's (`assets.rs`), which the nodes use too.
//!
//! - [`Copier`]: [`Copier::copy`] (manifest or index with its children and blobs, digest-checked,
//!   skipping what the destination has) and [`Copier::digest`].
//!
//! Files: `verify.rs` (digest checks), `error.rs`, `copy.rs` (I/O).

mod copy;
mod error;
mod verify;

pub use copy::{Copier, CopyReport, Platform};
pub use error::RegistryError;
pub use verify::{sha256_digest, verify_digest};
