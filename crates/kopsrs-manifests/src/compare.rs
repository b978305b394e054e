//! What changes when configuration is applied: the fields the configuration sets, compared
//! between the cluster's object and the configuration (or a dry-run apply), and shown as a
//! unified diff of YAML.

use serde_json::{Map, Value};
use sha2::Digest as _;

/// The annotation holding the fingerprint of the configuration last applied: a field the
/// configuration stopped setting changes it, though no field it sets differs.
pub const FINGERPRINT_ANNOTATION: &str = "kopsrs.io/applied";

/// The fingerprint of a configured object (SHA-256 of its canonical JSON, first 16 hex
/// digits), taken before the annotation is added.
pub fn fingerprint(config: &Value) -> String {
    let canonical = crate::jsonnet::to_cpp_json(config);
    let digest = sha2::Sha256::digest(canonical.as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// `config` with the fingerprint annotation it is applied with.
pub fn annotated(config: &Value) -> Value {
    let print = fingerprint(config);
    let mut out = config.clone();
    let meta = out.as_object_mut().map(|o| {
        o.entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()))
    });
    if let Some(Value::Object(meta)) = meta {
        let annotations = meta
            .entry("annotations")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(a) = annotations {
            a.insert(FINGERPRINT_ANNOTATION.into(), Value::String(print));
        }
    }
    out
}

/// `live` cut to the shape of `config`: the fields the configuration sets, with the cluster's
/// values (missing ones absent). Lists are compared whole when their lengths differ.
pub fn project(config: &Value, live: &Value) -> Value {
    match (config, live) {
        (Value::Object(c), Value::Object(l)) => {
            let mut out = Map::new();
            for (key, value) in c {
                if let Some(lv) = l.get(key) {
                    out.insert(key.clone(), project(value, lv));
                }
            }
            Value::Object(out)
        }
        (Value::Array(c), Value::Array(l)) if c.len() == l.len() => {
            Value::Array(c.iter().zip(l).map(|(c, l)| project(c, l)).collect())
        }
        (_, l) => l.clone(),
    }
}

/// Whether applying `config` would leave `live` as it is: every field it sets has its value,
/// and it was last applied with this configuration.
pub fn unchanged(config: &Value, live: &Value) -> bool {
    let annotated = annotated(config);
    same(&project(&annotated, live), &annotated)
}

/// JSON equality with numbers compared by value (`1` and `1.0` are the same).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(v, w)| same(v, w))
        }
        (x, y) => x == y,
    }
}

/// A unified diff (`--- live`/`+++ config`) of the fields `config` sets, from `live` (`None`:
/// the object does not exist) to `after` (the dry-run result, or the configuration); empty
/// when nothing differs. The fingerprint annotation is left out.
pub fn diff(address: &str, config: &Value, live: Option<&Value>, after: &Value) -> String {
    let strip = |v: Value| {
        let mut v = v;
        if let Some(a) = v
            .pointer_mut("/metadata/annotations")
            .and_then(Value::as_object_mut)
        {
            a.remove(FINGERPRINT_ANNOTATION);
            if a.is_empty() {
                if let Some(m) = v.pointer_mut("/metadata").and_then(Value::as_object_mut) {
                    m.remove("annotations");
                }
            }
        }
        v
    };
    let before = live.map(|l| strip(project(config, l)));
    let after = strip(project(config, after));
    if before.as_ref().is_some_and(|b| same(b, &after)) {
        return String::new();
    }
    let yaml = |v: &Value| serde_yaml_ng::to_string(v).unwrap_or_default();
    let old = before.as_ref().map(yaml).unwrap_or_default();
    let new = yaml(&after);
    similar::TextDiff::from_lines(&old, &new)
        .unified_diff()
        .context_radius(3)
        .header(
            &format!("{address} (live)"),
            &format!("{address} (configuration)"),
        )
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_the_fields_the_configuration_sets_count() {
        let config =
            json!({"metadata": {"name": "a"}, "spec": {"replicas": 2, "ports": [{"port": 80}]}});
        let mut live = json!({"metadata": {"name": "a", "uid": "u", "annotations": {}},
                              "spec": {"replicas": 2, "ports": [{"port": 80, "protocol": "TCP"}], "extra": 1},
                              "status": {}});
        assert!(!unchanged(&config, &live), "never applied by kopsrs");
        live["metadata"]["annotations"][FINGERPRINT_ANNOTATION] = json!(fingerprint(&config));
        assert!(unchanged(&config, &live));
        assert_eq!(diff("x", &config, Some(&live), &live), "");
        let mut edited = live.clone();
        edited["spec"]["replicas"] = json!(5);
        assert!(!unchanged(&config, &edited));
        let d = diff("Deployment.apps a -n n", &config, Some(&edited), &live);
        assert!(d.contains("-  replicas: 5\n+  replicas: 2\n"), "{d}");
        assert!(
            d.starts_with(
                "--- Deployment.apps a -n n (live)\n+++ Deployment.apps a -n n (configuration)\n"
            ),
            "{d}"
        );
        // The configuration changed: a new fingerprint.
        let mut config2 = config.clone();
        config2["spec"]["paused"] = json!(true);
        assert!(!unchanged(&config2, &live));
        // A new object is all additions.
        let d = diff("x", &config, None, &config);
        assert!(d.contains("+  replicas: 2"), "{d}");
    }
}
