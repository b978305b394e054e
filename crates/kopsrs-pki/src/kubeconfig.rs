//! kubeconfig merging: the cluster, its user and a context named after the cluster (as kops
//! names them) are added or replaced; every other entry and field is kept as it was. The
//! export `update cluster --yes` makes on its own ([`KubeconfigEntry::keep`]) refreshes only
//! the CA of an existing entry: the server, the context's user and their credentials stay
//! what the user made them.

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
    /// The context's user: an existing user of the kubeconfig (`--user`), else the cluster's
    /// name.
    pub user: Option<String>,
    /// Keep what the user set in an existing entry (server and other cluster fields, the
    /// context's user and namespace) unless `client` or `user` asks for new credentials.
    pub keep: bool,
}

fn key(name: &str) -> Value {
    Value::String(name.to_string())
}

/// The item named `name` of the list `list` of `config`.
fn find<'a>(config: &'a Mapping, list: &str, name: &str) -> Option<&'a Value> {
    config
        .get(key(list))?
        .as_sequence()?
        .iter()
        .find(|i| i.get("name").and_then(Value::as_str) == Some(name))
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
    let ca = key(&B64.encode(&entry.certificate_authority));
    let kept_cluster = find(&config, "clusters", name)
        .and_then(|c| c.get("cluster"))
        .and_then(Value::as_mapping)
        .filter(|_| entry.keep)
        .cloned();
    let cluster = match kept_cluster {
        // Its server (a tunnel, an internal name) and other fields stay; the CA is refreshed
        // (a rotation adds to it) unless the entry trusts a CA file of its own.
        Some(mut kept) if kept.contains_key(key("server")) => {
            if !kept.contains_key(key("certificate-authority")) {
                kept.insert(key("certificate-authority-data"), ca);
            }
            Value::Mapping(kept)
        }
        _ => mapping(vec![
            ("certificate-authority-data", ca),
            ("server", key(&entry.server)),
        ]),
    };
    upsert(
        &mut config,
        "clusters",
        name,
        mapping(vec![("cluster", cluster), ("name", key(name))]),
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
    let asked_new = entry.client.is_some() || entry.user.is_some();
    let kept_context = find(&config, "contexts", name)
        .and_then(|c| c.get("context"))
        .and_then(Value::as_mapping)
        .filter(|c| entry.keep && !asked_new && c.contains_key(key("user")))
        .cloned();
    let context = match kept_context {
        Some(mut kept) => {
            kept.insert(key("cluster"), key(name));
            Value::Mapping(kept)
        }
        None => mapping(vec![
            ("cluster", key(name)),
            ("user", key(entry.user.as_deref().unwrap_or(name))),
        ]),
    };
    upsert(
        &mut config,
        "contexts",
        name,
        mapping(vec![("context", context), ("name", key(name))]),
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
            user: None,
            keep: false,
        }
    }

    #[test]
    fn the_export_of_an_update_keeps_what_the_user_set() {
        let mine = "apiVersion: v1\nkind: Config\nclusters:\n- name: a.example.com\n  cluster: {server: https://127.0.0.1:6443, tls-server-name: api.a.example.com, certificate-authority-data: T0xE}\nusers:\n- name: sso\n  user: {token: t}\ncontexts:\n- name: a.example.com\n  context: {cluster: a.example.com, user: sso, namespace: team}\ncurrent-context: a.example.com\n";
        let keep = KubeconfigEntry {
            keep: true,
            ..entry("a.example.com", false)
        };
        let merged: Value =
            serde_yaml_ng::from_str(&merge_kubeconfig(Some(mine), &keep).unwrap()).unwrap();
        let cluster = &merged["clusters"][0]["cluster"];
        assert_eq!(cluster["server"], key("https://127.0.0.1:6443"));
        assert_eq!(cluster["tls-server-name"], key("api.a.example.com"));
        assert_eq!(
            cluster["certificate-authority-data"],
            key(&B64.encode("CA"))
        );
        let context = &merged["contexts"][0]["context"];
        assert_eq!(context["user"], key("sso"));
        assert_eq!(context["namespace"], key("team"));
        assert_eq!(merged["users"][0]["user"]["token"], key("t"));

        // --admin asks for new credentials: the context uses them; the server stays.
        let admin = KubeconfigEntry {
            keep: true,
            ..entry("a.example.com", true)
        };
        let merged: Value =
            serde_yaml_ng::from_str(&merge_kubeconfig(Some(mine), &admin).unwrap()).unwrap();
        assert_eq!(
            merged["contexts"][0]["context"]["user"],
            key("a.example.com")
        );
        assert_eq!(
            merged["clusters"][0]["cluster"]["server"],
            key("https://127.0.0.1:6443")
        );
        // --user names an existing user.
        let user = KubeconfigEntry {
            keep: true,
            user: Some("sso".into()),
            ..entry("a.example.com", false)
        };
        let merged: Value =
            serde_yaml_ng::from_str(&merge_kubeconfig(Some(mine), &user).unwrap()).unwrap();
        assert_eq!(merged["contexts"][0]["context"]["user"], key("sso"));
        assert!(merged["contexts"][0]["context"].get("namespace").is_none());

        // An explicit export (no keep) writes kops's entry.
        let merged: Value = serde_yaml_ng::from_str(
            &merge_kubeconfig(Some(mine), &entry("a.example.com", false)).unwrap(),
        )
        .unwrap();
        assert_eq!(
            merged["clusters"][0]["cluster"]["server"],
            key("https://api.a.example.com")
        );
        assert_eq!(
            merged["contexts"][0]["context"]["user"],
            key("a.example.com")
        );
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
