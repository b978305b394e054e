//! Kubernetes object metadata and the int-or-string value used by quantities.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `metadata` of a kops object: the subset of Kubernetes `ObjectMeta` kops reads and writes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ObjectMeta {
    /// Free-form annotations, kept as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Kept as text: kops writes RFC 3339 (`"2017-01-01T00:00:00Z"`).
    #[serde(default)]
    pub creation_timestamp: Option<String>,
    /// When deletion was requested (RFC 3339); kept so a round trip does not lose it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_timestamp: Option<String>,
    /// Kubernetes finalizers; kops does not use them, they are kept for round trips.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finalizers: Option<Vec<String>>,
    /// A prefix for a server-generated name; kept for round trips.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate_name: Option<String>,
    /// The Kubernetes generation counter; kept as written, kopsrs does not change it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// Labels; an instance group carries `kops.k8s.io/cluster` naming its cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// The object's name; for a Cluster, its DNS name (`a.example.com`).
    #[serde(default)]
    pub name: String,
    /// The Kubernetes namespace; kops objects have none, so this is kept only for round trips.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The Kubernetes resource version; kept as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    /// The Kubernetes object ID; kept as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
}

/// A Kubernetes `IntOrString` (`x-kubernetes-int-or-string`): `100m`, `"25%"` or `3`.
/// Quantities share the schema and may be written as decimals (`qps: 3.1`), so a float is kept too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum IntOrString {
    /// A whole number, e.g. `3`.
    Int(i64),
    /// A decimal number, e.g. `3.1` (quantities allow these).
    Float(f64),
    /// Text, e.g. `"25%"` or `100m`.
    String(String),
}

impl JsonSchema for IntOrString {
    fn schema_name() -> String {
        "IntOrString".into()
    }

    fn json_schema(_: &mut schemars::gen::SchemaGenerator) -> schemars::schema::Schema {
        serde_json::from_value(serde_json::json!({
            "anyOf": [{"type": "integer"}, {"type": "number"}, {"type": "string"}]
        }))
        .expect("static schema")
    }
}
