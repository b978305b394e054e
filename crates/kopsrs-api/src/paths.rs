//! `--set path=value` and `--unset path` on a document, typed by the document's JSON Schema.
//!
//! Paths are kops's: `spec.nodePortAccess`, `spec.addons[0].manifest`,
//! `spec.cloudLabels.team`. The schema (generated from the Rust types by schemars) tells how to
//! read the value: a list of strings splits on commas, numbers and booleans are parsed, a map
//! entry is set by its key. An unknown field is an error naming the closest known one.

use serde_json::{Map, Value};

/// One step of a path.
#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Field(String),
    Index(usize),
}

fn parse(path: &str) -> Result<Vec<Segment>, String> {
    let mut segments = Vec::new();
    for part in path.split('.') {
        let (field, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if field.is_empty() {
            return Err(format!("{path:?} has an empty field name"));
        }
        segments.push(Segment::Field(field.to_string()));
        while let Some(stripped) = rest.strip_prefix('[') {
            let (index, tail) = stripped
                .split_once(']')
                .ok_or_else(|| format!("{path:?}: missing ]"))?;
            let index = index
                .parse()
                .map_err(|_| format!("{path:?}: [{index}] is not a list index"))?;
            segments.push(Segment::Index(index));
            rest = tail;
        }
        if !rest.is_empty() {
            return Err(format!("{path:?}: unexpected {rest:?}"));
        }
    }
    Ok(segments)
}

/// Resolves `$ref`, and drops the `null` alternative schemars emits for `Option<T>`.
fn resolve<'a>(root: &'a Value, schema: &'a Value) -> &'a Value {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let name = reference.rsplit('/').next().unwrap_or("");
        return resolve(root, &root["definitions"][name]);
    }
    for key in ["anyOf", "allOf", "oneOf"] {
        if let Some(options) = schema.get(key).and_then(Value::as_array) {
            let non_null: Vec<&Value> = options
                .iter()
                .filter(|o| o.get("type") != Some(&Value::from("null")))
                .collect();
            if non_null.len() == 1 {
                return resolve(root, non_null[0]);
            }
        }
    }
    schema
}

fn types(schema: &Value) -> Vec<&str> {
    match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .filter(|t| *t != "null")
            .collect(),
        _ if schema.get("anyOf").is_some() => vec!["integer", "string"],
        _ => vec![],
    }
}

fn child_schema<'a>(
    root: &'a Value,
    schema: &'a Value,
    segment: &Segment,
) -> Result<&'a Value, String> {
    let schema = resolve(root, schema);
    match segment {
        Segment::Field(name) => {
            if let Some(property) = schema.get("properties").and_then(|p| p.get(name)) {
                return Ok(property);
            }
            if let Some(additional) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                return Ok(additional);
            }
            let known = schema
                .get("properties")
                .and_then(Value::as_object)
                .into_iter()
                .flat_map(|m| m.keys().map(String::as_str));
            Err(match crate::closest(name, known) {
                Some(c) => format!("unknown field {name:?}; did you mean {c:?}?"),
                None => format!("unknown field {name:?}"),
            })
        }
        Segment::Index(_) => schema
            .get("items")
            .ok_or_else(|| "is not a list; remove the [index]".to_string()),
    }
}

/// The schema of a map's values, when `schema` is a map (an object with no fixed fields).
fn map_schema<'a>(root: &'a Value, schema: &'a Value) -> Option<&'a Value> {
    let schema = resolve(root, schema);
    let fixed = schema
        .get("properties")
        .and_then(Value::as_object)
        .is_some_and(|p| !p.is_empty());
    match schema.get("additionalProperties") {
        Some(entries) if entries.is_object() && !fixed => Some(entries),
        _ => None,
    }
}

fn convert(root: &Value, schema: &Value, raw: &str) -> Result<Value, String> {
    let schema = resolve(root, schema);
    let kinds = types(schema);
    if kinds.contains(&"array") {
        let items = schema.get("items").cloned().unwrap_or(Value::Null);
        return raw
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|item| convert(root, &items, item))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array);
    }
    if kinds.contains(&"object") {
        return Err(format!(
            "is an object; set one of its fields instead (value {raw:?})"
        ));
    }
    if kinds.contains(&"boolean") {
        return raw
            .parse::<bool>()
            .map(Value::Bool)
            .map_err(|_| format!("expects true or false, not {raw:?}"));
    }
    if kinds.contains(&"integer") {
        if let Ok(n) = raw.parse::<i64>() {
            return Ok(Value::from(n));
        }
        if !kinds.contains(&"string") {
            return Err(format!("expects a whole number, not {raw:?}"));
        }
    }
    if kinds.contains(&"number") {
        return raw
            .parse::<f64>()
            .map(Value::from)
            .map_err(|_| format!("expects a number, not {raw:?}"));
    }
    Ok(Value::String(raw.to_string()))
}

/// Sets `path` in `document` to `raw`, read by the type the schema gives that field.
pub fn set(document: &mut Value, root_schema: &Value, path: &str, raw: &str) -> Result<(), String> {
    let segments = parse(path)?;
    let mut schema = root_schema;
    let mut node = document;
    for (i, segment) in segments.iter().enumerate() {
        schema = child_schema(root_schema, schema, segment).map_err(|e| format!("{path}: {e}"))?;
        let last = i + 1 == segments.len();
        let next_is_index = matches!(segments.get(i + 1), Some(Segment::Index(_)));
        let empty = || {
            if next_is_index {
                Value::Array(Vec::new())
            } else {
                Value::Object(Map::new())
            }
        };
        node = match segment {
            Segment::Field(name) => {
                if !node.is_object() {
                    *node = Value::Object(Map::new());
                }
                let map = node.as_object_mut().expect("made an object above");
                if last {
                    // A map field takes kops's `key=value`: one entry added (or replaced),
                    // the others kept (`--set spec.cloudLabels=team=infra`).
                    if let Some((entries, (key, value))) =
                        map_schema(root_schema, schema).zip(raw.split_once('='))
                    {
                        let value = convert(root_schema, entries, value)
                            .map_err(|e| format!("{path}.{key} {e}"))?;
                        let target = map.entry(name.clone()).or_insert_with(empty);
                        if !target.is_object() {
                            *target = Value::Object(Map::new());
                        }
                        let target = target.as_object_mut().expect("made an object above");
                        target.insert(key.to_string(), value);
                        return Ok(());
                    }
                    let value =
                        convert(root_schema, schema, raw).map_err(|e| format!("{path} {e}"))?;
                    map.insert(name.clone(), value);
                    return Ok(());
                }
                map.entry(name.clone()).or_insert_with(empty)
            }
            Segment::Index(index) => {
                let list = node
                    .as_array_mut()
                    .ok_or_else(|| format!("{path}: is not a list"))?;
                if *index > list.len() {
                    return Err(format!(
                        "{path}: index {index} is past the end of a list of {}; use [{}]",
                        list.len(),
                        list.len()
                    ));
                }
                if *index == list.len() {
                    list.push(empty());
                }
                if last {
                    list[*index] =
                        convert(root_schema, schema, raw).map_err(|e| format!("{path} {e}"))?;
                    return Ok(());
                }
                &mut list[*index]
            }
        };
    }
    Ok(())
}

/// Removes `path` from `document`; removing what is not there is not an error.
pub fn unset(document: &mut Value, path: &str) -> Result<(), String> {
    let segments = parse(path)?;
    let (last, parents) = segments
        .split_last()
        .expect("parse returns at least one segment");
    let mut node = document;
    for segment in parents {
        let next = match segment {
            Segment::Field(name) => node.get_mut(name.as_str()),
            Segment::Index(index) => node.get_mut(*index),
        };
        match next {
            Some(next) => node = next,
            None => return Ok(()),
        }
    }
    match last {
        Segment::Field(name) => {
            if let Some(map) = node.as_object_mut() {
                map.remove(name);
            }
        }
        Segment::Index(index) => {
            if let Some(list) = node.as_array_mut().filter(|l| *index < l.len()) {
                list.remove(*index);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Cluster;
    use serde_json::json;

    fn schema() -> Value {
        serde_json::to_value(schemars::schema_for!(Cluster)).unwrap()
    }

    #[test]
    fn sets_typed_values() {
        let schema = schema();
        let mut doc = json!({"spec": {}});
        set(
            &mut doc,
            &schema,
            "spec.nodePortAccess",
            "1.2.3.4/32,10.20.30.0/24",
        )
        .unwrap();
        set(
            &mut doc,
            &schema,
            "spec.addons[0].manifest",
            "https://example.com/a.yaml",
        )
        .unwrap();
        set(&mut doc, &schema, "spec.kubelet.maxPods", "110").unwrap();
        set(&mut doc, &schema, "spec.iam.legacy", "false").unwrap();
        set(&mut doc, &schema, "spec.cloudLabels.team", "sre").unwrap();
        set(
            &mut doc,
            &schema,
            "spec.karpenter.featureGates",
            "StaticCapacity=true",
        )
        .unwrap();
        assert_eq!(
            doc["spec"],
            json!({
                "nodePortAccess": ["1.2.3.4/32", "10.20.30.0/24"],
                "addons": [{"manifest": "https://example.com/a.yaml"}],
                "kubelet": {"maxPods": 110},
                "iam": {"legacy": false},
                "cloudLabels": {"team": "sre"},
                "karpenter": {"featureGates": "StaticCapacity=true"},
            })
        );
    }

    /// kops's form for a map field: `key=value` adds one entry and keeps the others.
    #[test]
    fn a_map_field_takes_key_equals_value() {
        let schema = schema();
        let mut doc = json!({"spec": {"cloudLabels": {"owner": "sre"}}});
        set(&mut doc, &schema, "spec.cloudLabels", "team=infra").unwrap();
        set(&mut doc, &schema, "spec.cloudLabels", "env=a=b").unwrap();
        assert_eq!(
            doc["spec"]["cloudLabels"],
            json!({"owner": "sre", "team": "infra", "env": "a=b"})
        );
        set(&mut doc, &schema, "spec.kubelet.nodeLabels", "tier=web").unwrap();
        assert_eq!(doc["spec"]["kubelet"]["nodeLabels"], json!({"tier": "web"}));
        // Without `=` a map is still refused, with the reason.
        assert!(set(&mut doc, &schema, "spec.cloudLabels", "infra")
            .unwrap_err()
            .contains("is an object"));
    }

    #[test]
    fn bad_paths_and_values_are_errors() {
        let schema = schema();
        let mut doc = json!({"spec": {}});
        assert_eq!(
            set(&mut doc, &schema, "spec.nodePortAcces", "x").unwrap_err(),
            "spec.nodePortAcces: unknown field \"nodePortAcces\"; did you mean \"nodePortAccess\"?"
        );
        assert!(set(&mut doc, &schema, "spec.kubelet.maxPods", "many")
            .unwrap_err()
            .contains("whole number"));
        assert!(set(&mut doc, &schema, "spec.addons[3].manifest", "x")
            .unwrap_err()
            .contains("past the end"));
    }

    #[test]
    fn unset_removes() {
        let mut doc = json!({"spec": {"a": 1, "b": [1, 2]}});
        unset(&mut doc, "spec.a").unwrap();
        unset(&mut doc, "spec.b[0]").unwrap();
        unset(&mut doc, "spec.missing.deeper").unwrap();
        assert_eq!(doc, json!({"spec": {"b": [2]}}));
    }
}
