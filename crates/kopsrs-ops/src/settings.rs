//! What kopsrs takes from the environment, read once when the process starts
//! ([`Settings::from_env`], called by `main` and by nothing else) and handed down as values.
//!
//! The AWS SDK's own chains (credentials, region, `AWS_PROFILE` for them) read their
//! variables themselves: kopsrs does not re-implement them. Everything kopsrs decides on is
//! here; `VARIABLES` lists it and a test keeps the list and the sources in step.

use std::path::PathBuf;

/// Every environment variable kopsrs itself reads (the AWS SDK's credential and region
/// chains read theirs too).
pub const VARIABLES: &[&str] = &[
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "S3_REGION",
    "KOPS_STATE_STORE_OWNER",
    "AWS_PROFILE",
    "AWS_RETRY_MODE",
    "AWS_MAX_ATTEMPTS",
    "KUBECONFIG",
    "HOME",
    "KUBE_EDITOR",
    "EDITOR",
    "VISUAL",
    "USER",
    "USERNAME",
    "JSONNET_PATH",
    "KOPSRS_K8S_APT_REPO",
];

/// The environment as kopsrs uses it.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// `AWS_ENDPOINT_URL`: a local AWS API (moto); nodes are pointed at it too.
    pub aws_endpoint: Option<String>,
    /// The state store's S3 endpoint: `AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL`.
    pub s3_endpoint: Option<String>,
    /// `S3_REGION` (kops's): the state store bucket's region, not asked of S3.
    pub s3_region: Option<String>,
    /// `KOPS_STATE_STORE_OWNER`: the AWS account ID that must own the S3 state store's
    /// bucket, instead of the recorded one (checked when an S3 store is opened).
    pub state_store_owner: Option<String>,
    /// `AWS_PROFILE`, for the hint of a credentials error.
    pub aws_profile: Option<String>,
    /// The user chose the SDK's retries (`AWS_RETRY_MODE` or `AWS_MAX_ATTEMPTS` is set):
    /// kopsrs keeps its adaptive default out of the way.
    pub aws_retry_from_env: bool,
    /// The kubeconfig files (`KUBECONFIG`, else `~/.kube/config`), merged in order.
    pub kubeconfig: Vec<PathBuf>,
    /// The user's home directory (config files, the default kubeconfig).
    pub home: Option<PathBuf>,
    /// Where the default (local) state store lives: `<data dir>/kopsrs/state`.
    pub data_dir: Option<PathBuf>,
    /// The user's configuration directory (`$XDG_CONFIG_HOME`, else `~/.config`): the record
    /// of state store bucket owners is `<config dir>/kopsrs/state-store-owners`.
    pub config_dir: Option<PathBuf>,
    /// The editor of `kopsrs edit`: `KUBE_EDITOR`, `EDITOR`, `VISUAL`, the first set.
    pub editor: Option<String>,
    /// Who takes the cluster lock (`USER`, else `USERNAME`).
    pub user: Option<String>,
    /// `JSONNET_PATH`: library folders after the `-J` ones.
    pub jsonnet_path: Option<std::ffi::OsString>,
    /// `KOPSRS_K8S_APT_REPO`: where `get assets` reads the Kubernetes packages instead of
    /// pkgs.k8s.io (a private upstream mirror; the tests' local repository).
    pub k8s_apt_repo: Option<String>,
    /// The whole environment as it was at start, for what names its variables at run time
    /// (`kopsrs jsonnet -V NAME` reads the variable NAME, as the jsonnet CLI does).
    pub snapshot: std::collections::BTreeMap<String, String>,
}

impl Settings {
    /// The settings of this process's environment.
    pub fn from_env() -> Settings {
        Settings {
            snapshot: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
            ..Settings::from_lookup(|name| std::env::var_os(name))
        }
    }

    /// A variable of the environment at start.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.snapshot.get(name).map(String::as_str)
    }

    /// The settings of an environment given as a lookup (tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<std::ffi::OsString>) -> Settings {
        let text = |name: &str| {
            lookup(name)
                .and_then(|v| v.into_string().ok())
                .filter(|v| !v.trim().is_empty())
        };
        let dirs = directories::BaseDirs::new();
        let home = text("HOME")
            .map(PathBuf::from)
            .or_else(|| dirs.as_ref().map(|d| d.home_dir().to_path_buf()));
        let kubeconfig = match lookup("KUBECONFIG").filter(|v| !v.is_empty()) {
            Some(paths) => std::env::split_paths(&paths).collect(),
            None => home
                .iter()
                .map(|h| h.join(".kube").join("config"))
                .collect(),
        };
        Settings {
            aws_endpoint: text("AWS_ENDPOINT_URL"),
            s3_endpoint: text("AWS_ENDPOINT_URL_S3")
                .or_else(|| text("AWS_ENDPOINT_URL"))
                .map(|e| e.trim_end_matches('/').to_string()),
            s3_region: text("S3_REGION"),
            state_store_owner: text("KOPS_STATE_STORE_OWNER"),
            aws_profile: text("AWS_PROFILE"),
            aws_retry_from_env: lookup("AWS_RETRY_MODE").is_some()
                || lookup("AWS_MAX_ATTEMPTS").is_some(),
            kubeconfig,
            data_dir: dirs.as_ref().map(|d| d.data_dir().to_path_buf()),
            config_dir: dirs.as_ref().map(|d| d.config_dir().to_path_buf()),
            home,
            editor: ["KUBE_EDITOR", "EDITOR", "VISUAL"]
                .into_iter()
                .find_map(&text),
            user: text("USER").or_else(|| text("USERNAME")),
            jsonnet_path: lookup("JSONNET_PATH"),
            k8s_apt_repo: text("KOPSRS_K8S_APT_REPO"),
            snapshot: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variable_is_read_from_the_lookup() {
        let asked = std::sync::Mutex::new(std::collections::BTreeSet::new());
        Settings::from_lookup(|name| {
            asked.lock().unwrap().insert(name.to_string());
            None
        });
        let asked = asked.into_inner().unwrap();
        let listed: std::collections::BTreeSet<String> =
            VARIABLES.iter().map(|v| v.to_string()).collect();
        assert_eq!(asked, listed);
    }

    #[test]
    fn s3_endpoint_prefers_its_own_variable_and_kubeconfig_splits() {
        let env = [
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000/"),
            ("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:6000/"),
            ("KUBECONFIG", "/a/config:/b/config"),
            ("EDITOR", "vi"),
            ("KUBE_EDITOR", " "),
        ];
        let s = Settings::from_lookup(|n| env.iter().find(|(k, _)| *k == n).map(|(_, v)| v.into()));
        assert_eq!(s.s3_endpoint.as_deref(), Some("http://127.0.0.1:6000"));
        assert_eq!(s.aws_endpoint.as_deref(), Some("http://127.0.0.1:5000/"));
        assert_eq!(
            s.kubeconfig,
            vec![PathBuf::from("/a/config"), PathBuf::from("/b/config")]
        );
        assert_eq!(s.editor.as_deref(), Some("vi"));
        assert!(!s.aws_retry_from_env);
    }

    /// No source file outside this one reads the environment (the SDK's chains aside).
    #[test]
    fn nothing_else_reads_the_environment() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut readers = Vec::new();
        for entry in walkdir::WalkDir::new(root.join("crates")) {
            let entry = entry.unwrap();
            let path = entry.path();
            let source = path.extension().is_some_and(|e| e == "rs")
                && path.components().all(|c| c.as_os_str() != "tests")
                && !path.ends_with("kopsrs-ops/src/settings.rs")
                && !path.to_string_lossy().ends_with("_tests.rs");
            if !source {
                continue;
            }
            let text = std::fs::read_to_string(path).unwrap();
            for needle in ["env::var", "var_os(", "BaseDirs::new", "Kubeconfig::read()"] {
                if text.contains(needle) {
                    readers.push(format!("{}: {needle}", path.display()));
                }
            }
        }
        assert!(
            readers.is_empty(),
            "read the environment outside Settings: {readers:#?}"
        );
    }
}
