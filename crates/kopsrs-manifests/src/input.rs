//! Reading configuration: Jsonnet (evaluated), JSON and YAML files, folders of them
//! (recursively, sorted) and `-` for standard input.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::jsonnet::{self, Input, Options};
use crate::objects::{self, Object};

/// The files `paths` name: files as given, folders walked for `.jsonnet`, `.json`, `.yaml`
/// and `.yml` files (libraries, `.libsonnet`, are imported, not rendered), `-` as is.
pub fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" || !path.is_dir() {
            if path.as_os_str() != "-" && !path.exists() {
                return Err(format!("{}: no such file or folder", path.display()));
            }
            out.push(path.clone());
            continue;
        }
        let before = out.len();
        for entry in walkdir::WalkDir::new(path).sort_by_file_name() {
            let entry = entry.map_err(|e| format!("{}: {e}", path.display()))?;
            let wanted = entry
                .path()
                .extension()
                .is_some_and(|e| e == "jsonnet" || e == "json" || e == "yaml" || e == "yml");
            if entry.file_type().is_file() && wanted {
                out.push(entry.into_path());
            }
        }
        if out.len() == before {
            return Err(format!(
                "{}: no .jsonnet, .json, .yaml or .yml file in this folder",
                path.display()
            ));
        }
    }
    Ok(out)
}

/// The value of one file: Jsonnet evaluated, JSON parsed, YAML documents as an array.
pub fn value_of(path: &Path, options: &Options) -> Result<Value, String> {
    let source = path.display().to_string();
    let text = |p: &Path| -> Result<String, String> {
        match p.as_os_str() == "-" {
            true => std::io::read_to_string(std::io::stdin()).map_err(|e| format!("-: {e}")),
            false => std::fs::read_to_string(p).map_err(|e| format!("{source}: {e}")),
        }
    };
    match path.extension().and_then(|e| e.to_str()) {
        Some("jsonnet" | "libsonnet") => {
            jsonnet::evaluate(&Input::File(path.to_path_buf()), options).map_err(|e| e.to_string())
        }
        Some("json") => serde_json::from_str(&text(path)?).map_err(|e| format!("{source}: {e}")),
        _ => {
            let text = text(path)?;
            let mut docs = Vec::new();
            for doc in serde_yaml_ng::Deserializer::from_str(&text) {
                let value: Value =
                    serde::Deserialize::deserialize(doc).map_err(|e| format!("{source}: {e}"))?;
                docs.push(value);
            }
            Ok(Value::Array(docs))
        }
    }
}

/// Every object of `paths`, without repeats. All errors at once.
pub fn load(paths: &[PathBuf], options: &Options) -> Result<Vec<Object>, Vec<String>> {
    let files = expand(paths).map_err(|e| vec![e])?;
    let mut all = Vec::new();
    let mut errors = Vec::new();
    for file in &files {
        let found = value_of(file, options)
            .map_err(|e| vec![e])
            .and_then(|v| objects::find(&v, &file.display().to_string()));
        match found {
            Ok(objects) => all.extend(objects),
            Err(e) => errors.extend(e),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    objects::dedupe(all)
}
