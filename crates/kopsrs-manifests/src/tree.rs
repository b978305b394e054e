//! The generated tree: one JSON file per object, written as the C++ `jsonnet` writes JSON, at
//! a path made from a template. Teams commit it next to the sources so reviewers see what a
//! change does; `tree --check` keeps it honest.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use crate::jsonnet::to_cpp_json;
use crate::objects::Object;

/// The default path template: `team/deployment-web.json`, cluster-scoped objects under
/// `_cluster/`.
pub const DEFAULT_TEMPLATE: &str = "{namespace}/{kind}-{name}.json";

/// The path of `object` under `template`: `{group}` (`core` for the core group),
/// `{version}`, `{kind}` (lowercase), `{namespace}` (`_cluster` when none), `{name}`.
pub fn path_of(template: &str, object: &Object) -> Result<PathBuf, String> {
    let group = match object.group() {
        "" => "core",
        g => g,
    };
    let namespace = match object.namespace() {
        "" => "_cluster",
        ns => ns,
    };
    let mut out = template.to_string();
    for (key, value) in [
        ("{group}", group),
        ("{version}", object.version()),
        ("{kind}", &object.kind().to_lowercase()),
        ("{namespace}", namespace),
        ("{name}", object.name()),
    ] {
        out = out.replace(key, &value.replace(['/', '\\'], "_"));
    }
    if let Some(rest) = out.find('{').map(|i| &out[i..]) {
        return Err(format!(
            "--path-template {template:?}: unknown placeholder at {rest:?} (use {{group}}, {{version}}, {{kind}}, {{namespace}}, {{name}})"
        ));
    }
    let path = PathBuf::from(&out);
    if path.is_absolute()
        || path
            .components()
            .any(|c| !matches!(c, Component::Normal(_)))
    {
        return Err(format!(
            "{}: the path {out:?} leaves the tree; names must not be '.' or '..'",
            object.address()
        ));
    }
    Ok(path)
}

/// The tree's files (relative path to content) for `objects`. Two objects at one path are an
/// error naming both.
pub fn render(
    objects: &[Object],
    template: &str,
) -> Result<BTreeMap<PathBuf, String>, Vec<String>> {
    let mut out: BTreeMap<PathBuf, String> = BTreeMap::new();
    let mut owner: BTreeMap<PathBuf, String> = BTreeMap::new();
    let mut errors = Vec::new();
    for object in objects {
        let path = match path_of(template, object) {
            Ok(p) => p,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        if let Some(first) = owner.get(&path) {
            errors.push(format!(
                "{} and {first} both go to {}: add {{kind}}, {{group}} or {{namespace}} to the path template",
                object.address(),
                path.display()
            ));
            continue;
        }
        owner.insert(path.clone(), object.address());
        out.insert(path, format!("{}\n", to_cpp_json(&object.value)));
    }
    match errors.is_empty() {
        true => Ok(out),
        false => Err(errors),
    }
}

/// How a file of the tree on disk compares with the rendered one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Drift {
    /// On disk with other content.
    Differs,
    /// Rendered but not on disk.
    Missing,
    /// On disk, a Kubernetes object in a `.json` file, but no longer rendered. Other files
    /// under the tree's folder are not the tree's and are left alone.
    Extra,
}

/// Compares the rendered tree with the `.json` files under `dir` (`on_disk`: relative path to
/// content). Every difference, in path order.
pub fn compare(
    rendered: &BTreeMap<PathBuf, String>,
    on_disk: &BTreeMap<PathBuf, Vec<u8>>,
) -> Vec<(PathBuf, Drift)> {
    let mut out = Vec::new();
    for (path, content) in rendered {
        match on_disk.get(path) {
            None => out.push((path.clone(), Drift::Missing)),
            Some(bytes) if bytes != content.as_bytes() => out.push((path.clone(), Drift::Differs)),
            Some(_) => {}
        }
    }
    for (path, bytes) in on_disk {
        if !rendered.contains_key(path) && is_object(bytes) {
            out.push((path.clone(), Drift::Extra));
        }
    }
    out.sort();
    out
}

/// A JSON map with `apiVersion` and `kind`: a file the tree may own.
fn is_object(bytes: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(bytes)
        .is_ok_and(|v| v.get("apiVersion").is_some() && v.get("kind").is_some())
}

/// The `.json` files under `dir`, by path relative to it (none when it does not exist).
pub fn read_tree(dir: &Path) -> std::io::Result<BTreeMap<PathBuf, Vec<u8>>> {
    let mut out = BTreeMap::new();
    if !dir.exists() {
        return Ok(out);
    }
    for entry in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let entry = entry.map_err(std::io::Error::other)?;
        if entry.file_type().is_file() && entry.path().extension().is_some_and(|e| e == "json") {
            let relative = entry
                .path()
                .strip_prefix(dir)
                .unwrap_or(entry.path())
                .to_path_buf();
            out.insert(relative, std::fs::read(entry.path())?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::find;
    use serde_json::json;

    #[test]
    fn paths_come_from_the_template_and_clashes_are_named() {
        let objects = find(
            &json!([
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}},
                {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "team"}},
                {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "team"}},
            ]),
            "f",
        )
        .unwrap();
        let tree = render(&objects, DEFAULT_TEMPLATE).unwrap();
        let paths: Vec<String> = tree.keys().map(|p| p.display().to_string()).collect();
        assert_eq!(
            paths,
            [
                "_cluster/namespace-team.json",
                "team/deployment-web.json",
                "team/service-web.json"
            ]
        );
        assert!(tree[Path::new("team/service-web.json")].ends_with("}\n"));
        let err = render(&objects, "{namespace}/{name}.json").unwrap_err();
        assert_eq!(
            err,
            ["Service web -n team and Deployment.apps web -n team both go to team/web.json: add {kind}, {group} or {namespace} to the path template"]
        );
        assert!(render(&objects, "{nmspace}/{name}.json").is_err());
    }

    #[test]
    fn drift_is_differs_missing_or_extra() {
        let rendered = BTreeMap::from([
            (PathBuf::from("a.json"), "A\n".to_string()),
            (PathBuf::from("b.json"), "B\n".to_string()),
            (PathBuf::from("c.json"), "C\n".to_string()),
        ]);
        let disk = BTreeMap::from([
            (PathBuf::from("a.json"), b"A\n".to_vec()),
            (PathBuf::from("b.json"), b"b\n".to_vec()),
            (
                PathBuf::from("d.json"),
                br#"{"apiVersion": "v1", "kind": "ConfigMap"}"#.to_vec(),
            ),
            // Not an object: not the tree's.
            (PathBuf::from("package.json"), b"{}".to_vec()),
        ]);
        assert_eq!(
            compare(&rendered, &disk),
            [
                (PathBuf::from("b.json"), Drift::Differs),
                (PathBuf::from("c.json"), Drift::Missing),
                (PathBuf::from("d.json"), Drift::Extra)
            ]
        );
    }
}
