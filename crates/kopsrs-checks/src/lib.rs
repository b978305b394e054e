//! Pure rules over plain data, one function per rule: what `validate network` checks of a
//! VPC ([`network`]) and what `validate cluster` checks of the instance groups, Nodes and
//! pods ([`validation`]). The callers read AWS and Kubernetes and hand the facts in; nothing
//! here does I/O.

pub mod network;
pub mod validation;
