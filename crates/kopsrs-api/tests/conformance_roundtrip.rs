//! Every kops `in-v1alpha2.yaml` in ../shared/conformance decodes strictly and writes back with
//! no field lost or changed. Skipped (with a message) when ../shared is not beside the checkout.

use std::path::PathBuf;

use kopsrs_api::{decode_documents, encode_documents, OutputFormat};

fn shared() -> Option<PathBuf> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap())
        .join("../../../shared/conformance/kops");
    root.exists().then_some(root)
}

fn as_json_values(text: &str) -> Vec<serde_json::Value> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|doc| serde_json::to_value(serde_yaml_ng::Value::deserialize(doc).unwrap()).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

use serde::Deserialize;

#[test]
fn kops_update_cluster_inputs_round_trip() {
    let Some(root) = shared() else {
        eprintln!("../shared/conformance not found: skipping");
        return;
    };
    let mut checked = 0;
    for entry in std::fs::read_dir(root.join("update_cluster")).unwrap() {
        let path = entry.unwrap().path().join("in-v1alpha2.yaml");
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let documents = decode_documents(&text, &path.display().to_string())
            .unwrap_or_else(|errors| panic!("{}: {errors:#?}", path.display()));
        let written = encode_documents(&documents, OutputFormat::Yaml);
        assert_eq!(
            as_json_values(&written),
            as_json_values(&text),
            "{}",
            path.display()
        );
        checked += 1;
    }
    assert!(checked >= 40, "only {checked} cases found");
}

#[test]
fn kops_completed_specs_and_expected_outputs_decode_strictly() {
    let Some(root) = shared() else { return };
    let mut checked = 0;
    for (dir, file) in [
        ("update_cluster", "cluster-completed.spec"),
        ("create_cluster", "expected-v1alpha2.yaml"),
    ] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path().join(file);
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            let documents = decode_documents(&text, &path.display().to_string())
                .unwrap_or_else(|errors| panic!("{}: {errors:#?}", path.display()));
            assert_eq!(
                as_json_values(&encode_documents(&documents, OutputFormat::Yaml)),
                as_json_values(&text)
            );
            checked += 1;
        }
    }
    assert!(checked >= 60, "only {checked} files found");
}
