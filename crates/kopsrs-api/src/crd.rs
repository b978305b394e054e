//! kops's own kinds as Kubernetes custom resources, for `kopsrs controller`: the
//! CustomResourceDefinitions of `clusters.kops.k8s.io` and `instancegroups.kops.k8s.io`
//! (namespaced, `v1alpha2`), their OpenAPI schema made from the same types as `toolbox schema`.
//!
//! The API server wants a *structural* schema: every node typed, no `$ref`, no `anyOf` that
//! changes the type, `nullable` instead of a `null` type, no `additionalProperties` beside
//! `properties`. [`structural`] rewrites the JSON Schema schemars writes into that form;
//! anything it cannot type (a value of several types) keeps its unknown fields, and the
//! controller's own strict decoding checks it with field paths.

use serde_json::{json, Map, Value};

use crate::{Cluster, InstanceGroup};

/// The API group of kops's kinds.
pub const GROUP: &str = "kops.k8s.io";

/// The CustomResourceDefinitions of `Cluster` and `InstanceGroup`.
pub fn custom_resource_definitions() -> Vec<Value> {
    let cluster = structural(&serde_json::to_value(schemars::schema_for!(Cluster)).unwrap());
    let group = structural(&serde_json::to_value(schemars::schema_for!(InstanceGroup)).unwrap());
    vec![
        definition(
            "Cluster",
            "clusters",
            "cluster",
            &[],
            spec_of(&cluster),
            json!([
                {"name": "Ready", "type": "string",
                 "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"},
                {"name": "Reason", "type": "string",
                 "jsonPath": ".status.conditions[?(@.type==\"Ready\")].reason"},
                {"name": "Version", "type": "string", "jsonPath": ".spec.kubernetesVersion"},
                {"name": "Changes", "type": "integer", "jsonPath": ".status.plan.changes"},
                {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
            ]),
        ),
        definition(
            "InstanceGroup",
            "instancegroups",
            "instancegroup",
            &["ig"],
            spec_of(&group),
            json!([
                {"name": "Cluster", "type": "string",
                 "jsonPath": ".metadata.labels.kops\\.k8s\\.io/cluster"},
                {"name": "Role", "type": "string", "jsonPath": ".spec.role"},
                {"name": "Machine", "type": "string", "jsonPath": ".spec.machineType"},
                {"name": "Min", "type": "integer", "jsonPath": ".spec.minSize"},
                {"name": "Max", "type": "integer", "jsonPath": ".spec.maxSize"},
                {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
            ]),
        ),
    ]
}

fn spec_of(root: &Value) -> Value {
    root.pointer("/properties/spec")
        .cloned()
        .unwrap_or_else(|| json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}))
}

fn definition(
    kind: &str,
    plural: &str,
    singular: &str,
    short: &[&str],
    spec: Value,
    columns: Value,
) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.{GROUP}")},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": format!("{kind}List"),
                "plural": plural,
                "singular": singular,
                "shortNames": short,
                "categories": ["kops"],
            },
            "versions": [{
                "name": "v1alpha2",
                "served": true,
                "storage": true,
                "subresources": {"status": {}},
                "additionalPrinterColumns": columns,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "metadata": {"type": "object"},
                        "spec": spec,
                        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    },
                }},
            }],
        },
    })
}

/// Formats the API server knows; others (schemars's `uint32`, ...) are dropped.
const FORMATS: [&str; 6] = ["int32", "int64", "float", "double", "byte", "date-time"];

/// `schema` (a draft-07 document with `definitions`) as a structural schema.
pub fn structural(schema: &Value) -> Value {
    let definitions = schema
        .get("definitions")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    convert(schema, &definitions, &mut Vec::new())
}

fn any_value() -> Value {
    json!({"x-kubernetes-preserve-unknown-fields": true})
}

fn convert(node: &Value, definitions: &Map<String, Value>, seen: &mut Vec<String>) -> Value {
    let Some(object) = node.as_object() else {
        return any_value();
    };
    let description = object.get("description").cloned();
    let with_description = |mut out: Value| {
        if let (Some(d), Some(o)) = (&description, out.as_object_mut()) {
            o.entry("description").or_insert_with(|| d.clone());
        }
        out
    };
    if let Some(reference) = object.get("$ref").and_then(Value::as_str) {
        let name = reference.trim_start_matches("#/definitions/").to_string();
        // A type that contains itself cannot be inlined: its value is kept as given.
        if seen.contains(&name) {
            return with_description(any_value());
        }
        let Some(target) = definitions.get(&name) else {
            return with_description(any_value());
        };
        seen.push(name);
        let out = convert(target, definitions, seen);
        seen.pop();
        return with_description(out);
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        let Some(parts) = object.get(key).and_then(Value::as_array) else {
            continue;
        };
        let typed: Vec<&Value> = parts
            .iter()
            .filter(|p| p.get("type").and_then(Value::as_str) != Some("null"))
            .collect();
        let nullable = typed.len() < parts.len();
        let mut out = match typed.as_slice() {
            [only] => convert(only, definitions, seen),
            _ => any_value(),
        };
        if nullable {
            if let Some(o) = out.as_object_mut() {
                if o.contains_key("type") {
                    o.insert("nullable".into(), Value::Bool(true));
                }
            }
        }
        return with_description(out);
    }
    let (kind, nullable) = match object.get("type") {
        Some(Value::String(t)) => (Some(t.clone()), false),
        Some(Value::Array(types)) => {
            let typed: Vec<&str> = types
                .iter()
                .filter_map(Value::as_str)
                .filter(|t| *t != "null")
                .collect();
            match typed.as_slice() {
                [only] => (Some(only.to_string()), typed.len() < types.len()),
                _ => return with_description(any_value()),
            }
        }
        _ => (None, false),
    };
    let Some(kind) = kind else {
        return with_description(any_value());
    };
    let mut out = Map::new();
    out.insert("type".into(), Value::String(kind.clone()));
    if nullable {
        out.insert("nullable".into(), Value::Bool(true));
    }
    if let Some(d) = description {
        out.insert("description".into(), d);
    }
    if let Some(format) = object.get("format").and_then(Value::as_str) {
        if FORMATS.contains(&format) {
            out.insert("format".into(), Value::String(format.into()));
        }
    }
    for key in [
        "enum",
        "minimum",
        "maximum",
        "pattern",
        "minLength",
        "maxLength",
    ] {
        if let Some(v) = object.get(key) {
            out.insert(key.into(), v.clone());
        }
    }
    match kind.as_str() {
        "array" => {
            let items = object
                .get("items")
                .map(|i| convert(i, definitions, seen))
                .unwrap_or_else(any_value);
            out.insert("items".into(), items);
        }
        "object" => {
            let properties = object.get("properties").and_then(Value::as_object);
            match (properties, object.get("additionalProperties")) {
                (Some(properties), _) => {
                    let converted: Map<String, Value> = properties
                        .iter()
                        .map(|(k, v)| (k.clone(), convert(v, definitions, seen)))
                        .collect();
                    out.insert("properties".into(), Value::Object(converted));
                    if let Some(required) = object.get("required") {
                        out.insert("required".into(), required.clone());
                    }
                }
                (None, Some(Value::Object(_))) => {
                    let values = convert(&object["additionalProperties"], definitions, seen);
                    out.insert("additionalProperties".into(), values);
                }
                _ => {
                    out.insert(
                        "x-kubernetes-preserve-unknown-fields".into(),
                        Value::Bool(true),
                    );
                }
            }
        }
        _ => {}
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every node of a structural schema has a type (or keeps unknown fields) and none uses
    /// what the API server refuses.
    fn assert_structural(node: &Value, path: &str) {
        let o = node
            .as_object()
            .unwrap_or_else(|| panic!("{path}: not an object"));
        for refused in [
            "$ref",
            "anyOf",
            "oneOf",
            "allOf",
            "definitions",
            "$schema",
            "default",
        ] {
            assert!(!o.contains_key(refused), "{path}: has {refused}");
        }
        let preserve = o.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
        assert!(o.contains_key("type") || preserve, "{path}: no type");
        if let Some(t) = o.get("type") {
            assert!(t.is_string(), "{path}: type {t}");
        }
        assert!(
            !(o.contains_key("properties") && o.contains_key("additionalProperties")),
            "{path}: properties and additionalProperties"
        );
        if let Some(p) = o.get("properties").and_then(Value::as_object) {
            for (k, v) in p {
                assert_structural(v, &format!("{path}.{k}"));
            }
        }
        if let Some(items) = o.get("items") {
            assert_structural(items, &format!("{path}[]"));
        }
        if let Some(values) = o.get("additionalProperties") {
            assert_structural(values, &format!("{path}{{}}"));
        }
    }

    #[test]
    fn both_definitions_are_structural() {
        let crds = custom_resource_definitions();
        assert_eq!(crds.len(), 2);
        for crd in &crds {
            let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
            assert_structural(schema, crd["metadata"]["name"].as_str().unwrap());
            assert_eq!(crd["spec"]["scope"], "Namespaced");
        }
        let spec =
            &crds[0]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
        // Typed where the types say so: a nested object, a list of objects, a map.
        assert_eq!(spec["properties"]["kubernetesVersion"]["type"], "string");
        assert_eq!(spec["properties"]["api"]["type"], "object");
        assert_eq!(spec["properties"]["api"]["nullable"], true);
        assert_eq!(spec["properties"]["subnets"]["items"]["type"], "object");
        assert_eq!(
            spec["properties"]["subnets"]["items"]["properties"]["cidr"]["type"],
            "string"
        );
    }

    #[test]
    fn nullable_references_and_mixed_types() {
        let schema = json!({
            "type": "object",
            "properties": {
                "a": {"anyOf": [{"$ref": "#/definitions/A"}, {"type": "null"}]},
                "n": {"type": ["integer", "null"], "format": "uint32"},
                "q": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
                "m": {"type": "object", "additionalProperties": {"type": "string"}},
            },
            "definitions": {"A": {"type": "object", "properties": {"self": {"$ref": "#/definitions/A"}}}},
        });
        let out = structural(&schema);
        assert_eq!(out["properties"]["a"]["nullable"], true);
        // A type that contains itself keeps its unknown fields below the first level.
        assert_eq!(
            out["properties"]["a"]["properties"]["self"]["x-kubernetes-preserve-unknown-fields"],
            true
        );
        assert_eq!(
            out["properties"]["n"],
            json!({"type": "integer", "nullable": true})
        );
        assert_eq!(
            out["properties"]["q"],
            json!({"x-kubernetes-preserve-unknown-fields": true})
        );
        assert_eq!(
            out["properties"]["m"]["additionalProperties"]["type"],
            "string"
        );
    }
}
