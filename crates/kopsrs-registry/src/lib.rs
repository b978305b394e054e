//! Container image copies between OCI/Docker registries, for kops's `spec.assets`: a mirror
//! registry gets the cluster's images byte-exact (same digests), so nodes that pin digests pull
//! them from the mirror. Built on oci-client; and kops's image name rules (pure).
//!
//! - [`Copier`]: [`Copier::copy`] (manifest or index with its children and blobs, digest-checked,
//!   skipping what the destination has) and [`Copier::digest`].
//! - [`mirror_name`], [`proxy_name`]: where the nodes pull an image from under
//!   `spec.assets.containerRegistry` / `spec.assets.containerProxy`. No I/O.
//!
//! Files: `names.rs` (pure), `verify.rs` (digest checks), `error.rs`, `copy.rs` (I/O).

mod copy;
mod error;
mod names;
mod verify;

pub use copy::{Copier, CopyReport, Platform};
pub use error::RegistryError;
pub use names::{mirror_name, proxy_name};
pub use verify::{sha256_digest, verify_digest};
