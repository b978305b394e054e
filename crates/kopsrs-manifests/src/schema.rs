//! The Kubernetes API's JSON Schemas, one set per supported minor, embedded and offline.
//!
//! `schemas/kubernetes.json.gz` is made by `scripts/gen_k8s_schemas.py` from the PyPI package
//! kubernetes-validate (each release's OpenAPI turned into draft 2020-12 JSON Schema by
//! openapi2jsonschema), without descriptions and deduplicated across minors: 9 minors in
//! 54 KB. Validation is the `jsonschema` crate's; unknown fields are found the way kubeconform's
//! `-strict` finds them, by closing every definition that lists its properties
//! (`additionalProperties: false`).

use std::collections::{BTreeMap, HashMap};
use std::io::Read as _;
use std::sync::OnceLock;

use serde_json::{json, Map, Value};

const BLOB: &[u8] = include_bytes!("../schemas/kubernetes.json.gz");
const BASE: &str = "https://kubernetes.io/api/_definitions.json";

/// The embedded schemas, decompressed once.
struct Embedded {
    source: String,
    minors: BTreeMap<String, BTreeMap<String, usize>>,
    defs: Map<String, Value>,
}

fn embedded() -> &'static Embedded {
    static CELL: OnceLock<Embedded> = OnceLock::new();
    CELL.get_or_init(|| {
        let mut text = Vec::new();
        flate2::read::GzDecoder::new(BLOB)
            .read_to_end(&mut text)
            .expect("the embedded schemas are gzip");
        let mut doc: Value = serde_json::from_slice(&text).expect("the embedded schemas are JSON");
        let minors = serde_json::from_value(doc["minors"].take()).expect("minors");
        let Value::Object(defs) = doc["defs"].take() else {
            panic!("defs")
        };
        Embedded {
            source: doc["source"].as_str().unwrap_or_default().to_string(),
            minors,
            defs,
        }
    })
}

/// The Kubernetes minors schemas are embedded for (`1.28`...).
pub fn minors() -> Vec<String> {
    embedded().minors.keys().cloned().collect()
}

/// Where the schemas come from (`kubernetes-validate==1.37.0`).
pub fn source() -> &'static str {
    &embedded().source
}

/// One problem with an object: the field path (`spec.replicas`, empty for the object) and
/// what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Dotted path with list indexes (`spec.template.spec.containers[0].image`).
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// The API of one Kubernetes minor.
pub struct Api {
    minor: String,
    registry: jsonschema::Registry<'static>,
    /// (group, version, kind) to definition name.
    kinds: HashMap<(String, String, String), String>,
    validators: HashMap<String, jsonschema::Validator>,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api").field("minor", &self.minor).finish()
    }
}

impl Api {
    /// The API of `minor` (`1.34`), `None` if no schemas are embedded for it.
    pub fn load(minor: &str) -> Option<Api> {
        let e = embedded();
        let index = e.minors.get(minor)?;
        let mut defs = Map::new();
        let mut kinds = HashMap::new();
        for (name, variant) in index {
            let mut def = e.defs[name][*variant].clone();
            if let Some(gvks) = def["x-kubernetes-group-version-kind"].as_array() {
                for gvk in gvks {
                    let s = |k: &str| gvk[k].as_str().unwrap_or_default().to_string();
                    kinds.insert((s("group"), s("version"), s("kind")), name.clone());
                }
            }
            // Strict: an unknown field is an error (maps keep their `additionalProperties`).
            if let Some(obj) = def.as_object_mut() {
                if obj.contains_key("properties") && !obj.contains_key("additionalProperties") {
                    obj.insert("additionalProperties".into(), Value::Bool(false));
                }
            }
            defs.insert(name.clone(), def);
        }
        let root = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": BASE,
            "$defs": defs,
        });
        let registry = jsonschema::Registry::new()
            .add(BASE, root)
            .ok()?
            .prepare()
            .ok()?;
        Some(Api {
            minor: minor.to_string(),
            registry,
            kinds,
            validators: HashMap::new(),
        })
    }

    /// The minor (`1.34`).
    pub fn minor(&self) -> &str {
        &self.minor
    }

    /// Whether this minor serves `group/version` `kind`.
    pub fn serves(&self, group: &str, version: &str, kind: &str) -> bool {
        self.kinds
            .contains_key(&(group.into(), version.into(), kind.into()))
    }

    /// Whether this minor serves any kind of `group`.
    pub fn serves_group(&self, group: &str) -> bool {
        self.kinds.keys().any(|(g, _, _)| g == group)
    }

    /// The group/versions that serve `kind` in this minor (`apps/v1`), for a replacement.
    pub fn versions_of(&self, kind: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .kinds
            .keys()
            .filter(|(_, _, k)| k == kind)
            .map(|(g, v, _)| match g.as_str() {
                "" => v.clone(),
                g => format!("{g}/{v}"),
            })
            .collect();
        out.sort();
        out
    }

    /// Validates `object` against its kind's schema; `None` when this minor does not serve
    /// the kind (a custom resource, or an API that was removed).
    pub fn validate(
        &mut self,
        group: &str,
        version: &str,
        kind: &str,
        object: &Value,
    ) -> Option<Vec<Violation>> {
        let def = self
            .kinds
            .get(&(group.into(), version.into(), kind.into()))?
            .clone();
        if !self.validators.contains_key(&def) {
            let schema = json!({ "$ref": format!("{BASE}#/$defs/{def}") });
            let validator = jsonschema::options()
                .with_draft(jsonschema::Draft::Draft202012)
                .with_registry(&self.registry)
                .offline()
                .should_validate_formats(false)
                .build(&schema)
                .ok()?;
            self.validators.insert(def.clone(), validator);
        }
        let validator = &self.validators[&def];
        let mut out = violations(validator.iter_errors(object));
        out.sort_by(|a, b| a.path.cmp(&b.path).then(a.message.cmp(&b.message)));
        out.dedup();
        Some(out)
    }
}

/// Validates a custom resource against the schema its CustomResourceDefinition `crd` gives
/// for `version`, as the API server's strict field validation does: unknown fields are
/// errors except under `x-kubernetes-preserve-unknown-fields`, `nullable` allows `null`,
/// `x-kubernetes-int-or-string` takes either; `metadata` is the object's (checked apart).
/// CEL rules (`x-kubernetes-validations`) are not evaluated. `None` when the definition has
/// no schema for that version.
pub fn validate_custom(crd: &Value, version: &str, object: &Value) -> Option<Vec<Violation>> {
    let schema = crd["spec"]["versions"]
        .as_array()?
        .iter()
        .find(|v| v["name"] == version)?
        .get("schema")?
        .get("openAPIV3Schema")?;
    let mut schema = structural(schema, true);
    if let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        props.insert("apiVersion".into(), json!({"type": "string"}));
        props.insert("kind".into(), json!({"type": "string"}));
        props.insert("metadata".into(), json!({"type": "object"}));
    }
    let validator = match jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(false)
        .build(&schema)
    {
        Ok(v) => v,
        Err(e) => {
            return Some(vec![Violation {
                path: String::new(),
                message: format!(
                    "its CustomResourceDefinition's schema for {version} cannot be read: {e}"
                ),
            }])
        }
    };
    let mut out = violations(validator.iter_errors(object));
    out.sort_by(|a, b| a.path.cmp(&b.path).then(a.message.cmp(&b.message)));
    out.dedup();
    Some(out)
}

/// A CRD's OpenAPI v3 schema as draft 2020-12 JSON Schema with the API server's meaning.
/// `closed`: an object schema listing its properties refuses others (not so for a branch of
/// `allOf`/`anyOf`/`oneOf`/`not`, which constrains part of an object the schema around it
/// describes).
fn structural(node: &Value, closed: bool) -> Value {
    let Some(obj) = node.as_object() else {
        return node.clone();
    };
    let mut out = Map::new();
    for (key, value) in obj {
        match key.as_str() {
            "properties" | "patternProperties" | "definitions" => {
                let map = value
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| (k.clone(), structural(v, true)))
                            .collect()
                    })
                    .unwrap_or_default();
                out.insert(key.clone(), Value::Object(map));
            }
            "items" | "additionalProperties" => {
                out.insert(key.clone(), structural(value, true));
            }
            "not" => {
                out.insert(key.clone(), structural(value, false));
            }
            "allOf" | "anyOf" | "oneOf" => {
                let list = value
                    .as_array()
                    .map(|l| l.iter().map(|v| structural(v, false)).collect())
                    .unwrap_or_default();
                out.insert(key.clone(), Value::Array(list));
            }
            // OpenAPI's words JSON Schema does not have, and annotations.
            "nullable"
            | "description"
            | "example"
            | "externalDocs"
            | "x-kubernetes-validations" => {}
            k if k.starts_with("x-kubernetes-") => {}
            _ => {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    if obj.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
        out.remove("type");
        out.insert("type".into(), json!(["integer", "string"]));
    }
    if obj.get("nullable") == Some(&Value::Bool(true)) {
        match out.get("type").cloned() {
            Some(Value::String(t)) => {
                out.insert("type".into(), json!([t, "null"]));
            }
            Some(Value::Array(mut types)) => {
                types.push(json!("null"));
                out.insert("type".into(), Value::Array(types));
            }
            _ => {}
        }
    }
    let preserve = obj.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    if closed
        && out.contains_key("properties")
        && !out.contains_key("additionalProperties")
        && !preserve
    {
        out.insert("additionalProperties".into(), Value::Bool(false));
    }
    Value::Object(out)
}

/// The validator's errors as violations, an unknown field reported at the field.
fn violations<'a>(errors: impl Iterator<Item = jsonschema::ValidationError<'a>>) -> Vec<Violation> {
    let mut out = Vec::new();
    for e in errors {
        let path = dotted(&e.instance_path().to_string());
        if let jsonschema::error::ValidationErrorKind::AdditionalProperties { unexpected } =
            e.kind()
        {
            for field in unexpected {
                out.push(Violation {
                    path: match path.is_empty() {
                        true => field.clone(),
                        false => format!("{path}.{field}"),
                    },
                    message: format!("unknown field {field:?}"),
                });
            }
            continue;
        }
        out.push(Violation {
            path,
            message: message(&e),
        });
    }
    out
}

/// `/spec/containers/0/image` as `spec.containers[0].image`.
fn dotted(pointer: &str) -> String {
    let mut out = String::new();
    for part in pointer.split('/').skip(1) {
        let part = part.replace("~1", "/").replace("~0", "~");
        if !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{part}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&part);
        }
    }
    out
}

/// The validator's message in Kubernetes's words where they differ: the schemas allow `null`
/// everywhere (`["string", "null"]`), which only confuses a reader.
fn message(e: &jsonschema::ValidationError<'_>) -> String {
    let text = e.to_string();
    if let Some(rest) = text.split_once(" is not of types ") {
        let types: Vec<&str> = rest
            .1
            .split(|c: char| !c.is_ascii_alphabetic())
            .filter(|t| !t.is_empty() && *t != "null")
            .collect();
        return format!("{} is not of type {}", rest.0, types.join(" or "));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deployment_is_checked_field_by_field() {
        let mut api = Api::load("1.34").unwrap();
        let good = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}
        });
        assert_eq!(
            api.validate("apps", "v1", "Deployment", &good),
            Some(vec![])
        );
        let mut bad = good.clone();
        bad["spec"]["replicas"] = json!("three");
        bad["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = json!("Always");
        let problems = api.validate("apps", "v1", "Deployment", &bad).unwrap();
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "spec.replicas",
                "spec.template.spec.containers[0].imagePullPolicyy"
            ],
            "{problems:?}"
        );
        assert!(
            problems[0].message.contains("is not of type integer"),
            "{problems:?}"
        );
        assert_eq!(problems[1].message, "unknown field \"imagePullPolicyy\"");
        // Removed APIs are not served.
        assert!(!api.serves("extensions", "v1beta1", "Deployment"));
        assert_eq!(api.versions_of("Deployment"), ["apps/v1"]);
        assert_eq!(api.validate("example.com", "v1", "Widget", &good), None);
    }

    /// Descriptions were stripped from the schemas, but a field *named* `description` is a
    /// field: a PriorityClass's, and every level of a CRD's schema.
    #[test]
    fn fields_named_description_are_fields() {
        let mut api = Api::load("1.34").unwrap();
        let class = json!({
            "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": {"name": "batch"}, "value": 1000, "description": "batch jobs",
        });
        assert_eq!(
            api.validate("scheduling.k8s.io", "v1", "PriorityClass", &class),
            Some(vec![])
        );
        let crd = json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                     "names": {"kind": "Widget", "plural": "widgets"},
                     "versions": [{"name": "v1", "served": true, "storage": true,
                                   "schema": {"openAPIV3Schema": {
                                       "description": "A widget", "type": "object",
                                       "properties": {"spec": {"description": "Its spec", "type": "object",
                                           "properties": {"size": {"description": "How big", "type": "integer"}}}}}}}]}
        });
        assert_eq!(
            api.validate(
                "apiextensions.k8s.io",
                "v1",
                "CustomResourceDefinition",
                &crd
            ),
            Some(vec![])
        );
        let mut wrong = crd.clone();
        wrong["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["descriptoin"] = json!("typo");
        assert_ne!(
            api.validate(
                "apiextensions.k8s.io",
                "v1",
                "CustomResourceDefinition",
                &wrong
            ),
            Some(vec![])
        );
    }

    /// A custom resource is held to its definition's schema with the API server's meaning of
    /// the OpenAPI extensions.
    #[test]
    fn custom_resources_are_checked_against_their_definition() {
        let crd = json!({"spec": {"versions": [{"name": "v1", "schema": {"openAPIV3Schema": {
        "type": "object",
        "properties": {"spec": {"type": "object", "required": ["size"], "properties": {
            "size": {"type": "integer", "minimum": 1},
            "port": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]},
            "owner": {"type": "string", "nullable": true},
            "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                      "properties": {"known": {"type": "string"}}},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        }}}}}}]}});
        let object = |spec: Value| {
            json!({"apiVersion": "example.com/v1", "kind": "Widget",
                                           "metadata": {"name": "w", "labels": {"a": "b"}}, "spec": spec})
        };
        let ok = object(json!({"size": 2, "port": "http", "owner": null,
                               "extra": {"anything": [1]}, "labels": {"x": "y"}}));
        assert_eq!(validate_custom(&crd, "v1", &ok), Some(vec![]));
        let bad = object(json!({"size": 0, "colour": "red", "labels": {"x": 1}, "owner": 3}));
        let paths: Vec<String> = validate_custom(&crd, "v1", &bad)
            .unwrap()
            .into_iter()
            .map(|v| format!("{}: {}", v.path, v.message))
            .collect();
        assert_eq!(paths.len(), 4, "{paths:#?}");
        assert!(
            paths
                .iter()
                .any(|p| p == "spec.colour: unknown field \"colour\""),
            "{paths:#?}"
        );
        assert!(
            paths.iter().any(|p| p.starts_with("spec.size:")),
            "{paths:#?}"
        );
        assert!(
            paths.iter().any(|p| p.starts_with("spec.labels.x:")),
            "{paths:#?}"
        );
        assert!(
            paths.iter().any(|p| p.starts_with("spec.owner:")),
            "{paths:#?}"
        );
        // A branch of anyOf constrains part of the object: not a closed schema of its own.
        let branches = json!({"spec": {"versions": [{"name": "v1", "schema": {"openAPIV3Schema": {
            "type": "object",
            "properties": {"spec": {"type": "object",
                "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
                "anyOf": [{"required": ["a"], "properties": {"a": {"minLength": 1}}}, {"required": ["b"]}]}}}}}]}});
        let both = object(json!({"a": "x", "b": "y"}));
        assert_eq!(validate_custom(&branches, "v1", &both), Some(vec![]));
        let missing = object(json!({}));
        assert_eq!(validate_custom(&crd, "v1", &missing).unwrap().len(), 1);
        assert_eq!(validate_custom(&crd, "v2", &ok), None);
    }

    #[test]
    fn every_supported_minor_is_embedded() {
        assert_eq!(minors().first().map(String::as_str), Some("1.28"));
        assert_eq!(minors().last().map(String::as_str), Some("1.36"));
        assert!(Api::load("1.27").is_none());
        assert!(Api::load("1.28").unwrap().serves("batch", "v1", "CronJob"));
    }
}
