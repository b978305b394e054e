//! Manifests given as YAML (`manifests show/check/apply` on .yaml files): arbitrary text is
//! read as YAML documents and searched for objects; errors, never panics.
#![no_main]

use kopsrs_manifests::objects::find;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut docs = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(text) {
        match <serde_json::Value as serde::Deserialize>::deserialize(doc) {
            Ok(value) => docs.push(value),
            Err(_) => return,
        }
    }
    let _ = find(&serde_json::Value::Array(docs), "fuzz.yaml");
});
