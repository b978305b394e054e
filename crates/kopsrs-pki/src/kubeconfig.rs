//! kubeconfig merging: the cluster, its user and a context named after the cluster (as kops
//! names them) are added or replaced; every other entry and field is kept as it was.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde_yaml_ng::{Mapping, Value};

/// What `export kubeconfig` writes for one cluster.
#[derive(Debug, Clone)]
pub struct KubeconfigEntry {
    /// The cluster name: also the user and context name.
    pub name: String,
    /// The API server URL, e.g. `https://api.a.example.com`.
    pub server: String,
    /// PEM bundle of the CA certificates to trust.
    pub certificate_authority: String,
    /// Client certificate and key (PEM), with `--admin`.
    pub client: Option<(String, String)>,
}

fn key(name: &str) -> Value {
    Value::String(name.to_string())
}

/// Replaces the item named `name` in the list `list` of `config`, or appends it.
fn upsert(config: &mut Mapping, list: &str, name: &str, item: Value) {
    let entry = config
        .entry(key(list))
        .or_insert_with(|| Value::Sequence(Vec::new()));
    if !entry.is_sequence() {
        *entry = Value::Sequence(Vec::new());
    }
    let items = entry.as_sequence_mut().expect("a sequence");
    match items
        .iter_mut()
        .find(|i| i.get("name").and_then(Value::as_str) == Some(name))
    {
        Some(existing) => *existing = item,
        None => items.push(item),
    }
}

fn mapping(pairs: Vec<(&str, Value)>) -> Value {
    let mut m = Mapping::new();
    for (k, v) in pairs {
        m.insert(key(k), v);
    }
    Value::Mapping(m)
}

/// Merges `entry` into the kubeconfig text `existing` (None or empty: a new file) and makes
/// its context current. Without a client certificate an existing user of that name is kept.
pub fn merge_kubeconfig(existing: Option<&str>, entry: &KubeconfigEntry) -> Result<String, String> {
    let mut config = match existing.map(str::trim) {
        None | Some("") => Mapping::new(),
        Some(text) => match serde_yaml_ng::from_str::<Value>(text) {
            Ok(Value::Mapping(m)) => m,
            Ok(Value::Null) => Mapping::new(),
            Ok(_) => return Err("the kubeconfig is not a YAML mapping".into()),
            Err(e) => return Err(format!("the kubeconfig is not valid YAML: {e}")),
        },
    };
    config.entry(key("apiVersion")).or_insert_with(|| key("v1"));
    config.entry(key("kind")).or_insert_with(|| key("Config"));
    let name = entry.name.as_str();
    upsert(
        &mut config,
        "clusters",
        name,
        mapping(vec![
            (
                "cluster",
                mapping(vec![
                    (
                        "certificate-authority-data",
                        key(&B64.encode(&entry.certificate_authority)),
                    ),
                    ("server", key(&entry.server)),
                ]),
            ),
            ("name", key(name)),
        ]),
    );
    if let Some((cert, private_key)) = &entry.client {
        upsert(
            &mut config,
            "users",
            name,
            mapping(vec![
                ("name", key(name)),
                (
                    "user",
                    mapping(vec![
                        ("client-certificate-data", key(&B64.encode(cert))),
                        ("client-key-data", key(&B64.encode(private_key))),
                    ]),
                ),
            ]),
        );
    }
    upsert(
        &mut config,
        "contexts",
        name,
        mapping(vec![
            (
                "context",
                mapping(vec![("cluster", key(name)), ("user", key(name))]),
            ),
            ("name", key(name)),
        ]),
    );
    config.insert(key("current-context"), key(name));
    serde_yaml_ng::to_string(&Value::Mapping(config)).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, client: bool) -> KubeconfigEntry {
        KubeconfigEntry {
            name: name.into(),
            server: format!("https://api.{name}"),
            certificate_authority: "CA".into(),
            client: client.then(|| ("CERT".into(), "KEY".into())),
        }
    }

    #[test]
    fn merging_keeps_other_entries_and_replaces_its_own() {
        let other = "apiVersion: v1\nkind: Config\npreferences: {colors: true}\nclusters:\n- name: other\n  cluster: {server: https://other}\nusers:\n- name: other\n  user: {token: t}\ncontexts:\n- name: other\n  context: {cluster: other, user: other}\ncurrent-context: other\n";
        let once = merge_kubeconfig(Some(other), &entry("a.example.com", true)).unwrap();
        let twice = merge_kubeconfig(Some(&once), &entry("a.example.com", true)).unwrap();
        assert_eq!(once, twice, "merging again changes nothing");
        let value: Value = serde_yaml_ng::from_str(&twice).unwrap();
        assert_eq!(value["current-context"], key("a.example.com"));
        assert_eq!(value["clusters"].as_sequence().unwrap().len(), 2);
        assert_eq!(value["users"][0]["user"]["token"], key("t"));
        assert_eq!(value["preferences"]["colors"], Value::Bool(true));
        // Without a client certificate the user entry is left alone.
        let without = merge_kubeconfig(Some(&twice), &entry("a.example.com", false)).unwrap();
        let value: Value = serde_yaml_ng::from_str(&without).unwrap();
        assert_eq!(
            value["users"][1]["user"]["client-key-data"],
            key(&B64.encode("KEY"))
        );
        assert!(merge_kubeconfig(Some("- a list"), &entry("x", true)).is_err());
    }
}
