//! The operations of kopsrs: what a user asks of a cluster (update it, roll it, validate it,
//! rotate its keys...), each taking an option struct and returning a report value.
//!
//! The command line (`kopsrs`) maps flags to these options and renders the reports; the
//! controller calls the same functions. Nothing here parses flags or prints: progress goes
//! through the [`Reporter`] the caller hands in, failures are [`Problems`] (one per
//! resource, each with its hint) or errors with their cause chain, and the environment is
//! read once by the caller into [`Settings`].
//!
//! Layering: this crate sits above the pure crates (api, model, engine, checks, pki,
//! bootstrap) and the I/O crates (state, aws, kube); no module calls up into another
//! operation's caller.

pub mod addons;
pub mod assets;
pub mod bucket_owner;
pub mod cluster;
pub mod controller;
pub mod create;
pub mod delete;
pub mod diff;
pub mod discovery;
pub mod dump;
pub mod edit;
pub mod etcd_backups;
pub mod etcd_restore;
pub mod get;
pub mod interrupt;
pub mod kops_built;
pub mod managed;
pub mod manifests;
pub mod network;
pub mod node_store;
pub mod pki;
pub mod problems;
pub mod reconcile;
pub mod replace;
pub mod reporter;
pub mod rolling;
pub mod session;
pub mod settings;
pub mod specs;
pub mod update;
pub mod upgrade;
pub mod validate;

pub use cluster::{load_cluster, prepare, Prepared, StoredCluster};
pub use problems::{Problem, Problems};
pub use reporter::Reporter;
pub use session::Session;
pub use settings::Settings;
