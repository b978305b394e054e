//! Kubernetes manifests as code, the pure-ish half of `kopsrs jsonnet` and `kopsrs
//! manifests`: Jsonnet evaluation with the C++ `jsonnet`'s output ([`jsonnet`]), objects found
//! in configuration as kubecfg finds them ([`objects`], [`input`]), the generated JSON tree
//! ([`tree`]), offline checks against the embedded schemas of each supported Kubernetes minor
//! ([`check`], [`schema`]), apply order and garbage collection ([`order`]).
//!
//! It reads the files it is given and their imports; it never talks to a cluster (that is
//! `kopsrs-kube`'s).

pub mod check;
pub mod compare;
pub mod input;
pub mod jsonnet;
pub mod objects;
pub mod order;
pub mod schema;
pub mod tree;
