//! The addon channel: which Kubernetes versions kopsrs recommends and which addon versions go
//! with each Kubernetes minor version (kops keeps the same in `channels/stable`).
//!
//! The channel names upstream manifests and Helm charts by URL and sha256; it never carries
//! their content. `update cluster` writes the addons a cluster selects to the state store
//! (`addons/bootstrap-channel.yaml`); the control-plane nodes apply each new version they
//! find there (see `apply_addons` in bootstrap.sh).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The channel built into kopsrs (`channels/stable.yaml` in the repository).
pub const STABLE: &str = include_str!("../../../channels/stable.yaml");

/// A channel: the supported Kubernetes versions and every addon version, by range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Channel {
    /// Which Kubernetes version is recommended, overall and per minor version.
    pub kubernetes: KubernetesVersions,
    /// Every addon entry, in file order; a later entry for the same name wins where ranges overlap.
    pub addons: Vec<Addon>,
}

/// The Kubernetes versions of a channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KubernetesVersions {
    /// The version new clusters get.
    pub recommended: String,
    /// The recommended patch release of each supported minor version (`"1.34": 1.34.1`).
    pub minors: BTreeMap<String, String>,
}

/// One addon version as the channel lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Addon {
    /// The addon's name, e.g. `cilium` or `coredns`.
    pub name: String,
    /// The addon's version; nodes apply an addon again when it or `sha256` changes.
    pub version: String,
    /// `manifest` (kubectl apply), `chart` (helm template, then apply) or `helm` (the helm
    /// binary itself, installed on control-plane nodes for charts).
    pub kind: String,
    /// Where the manifest, chart or helm binary is downloaded from; `@ARCH@` becomes the node's
    /// architecture (`amd64`, `arm64`).
    pub url: String,
    /// Hex sha256 of what `url` serves; nodes refuse a download that does not match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// For a URL with `@ARCH@`: the sha256 of each architecture's download (`amd64: …`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sha256_by_arch: BTreeMap<String, String>,
    /// The namespace a chart is installed into; `None`: `kube-system`. Manifests name their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Helm values for charts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<serde_yaml_ng::Value>,
    /// The container images the addon runs, for `kopsrs get assets` and mirrors: needed for
    /// a chart (kopsrs does not render charts); a manifest's are read from the download.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
    /// On only when the cluster's spec turns it on (the cluster autoscaler:
    /// `spec.clusterAutoscaler.enabled`), with the values the spec gives
    /// (`DesiredSet::optional_addons`); selection keeps it, the operations layer decides.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
    /// Kubernetes minor versions this entry is for, inclusive (`["1.31", "1.33"]`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "kubernetes"
    )]
    pub kubernetes: Option<[String; 2]>,
}

/// The addons a cluster gets, as written to its state store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Selected {
    /// The cluster's Kubernetes version, without the `v` (`1.34.1`).
    pub kubernetes_version: String,
    /// The addons in install order: helm first, then the CNI, then the rest by name.
    pub addons: Vec<Addon>,
}

/// The networking choices of `--networking` that kopsrs installs an addon for.
pub const CNI_ADDONS: [&str; 5] = ["cilium", "calico", "flannel", "kindnet", "amazonvpc"];

/// What can go wrong reading the channel or selecting from it.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// The channel text is not a valid channel.
    #[error("channel: {0}")]
    Decode(String),
    /// The Kubernetes version's minor is not in the channel.
    #[error("spec.kubernetesVersion: {version:?} has no entry in the channel (supported minor versions: {supported}); set a supported version or run `kopsrs upgrade cluster`")]
    Unsupported {
        /// The version as the spec gives it.
        version: String,
        /// The minor versions the channel has, comma-separated.
        supported: String,
    },
}

/// A decoding error without the values it quotes: a file that is not a channel (a key, a
/// kubeconfig, given by mistake) must not be echoed into CI logs. Field names (in backticks)
/// and the position stay.
fn redacted(e: &serde_yaml_ng::Error) -> String {
    let text = e.to_string();
    let mut out = String::with_capacity(text.len());
    let mut quoted = false;
    for c in text.chars() {
        match (c, quoted) {
            ('"', false) => {
                quoted = true;
                out.push_str("\"…");
            }
            ('"', true) => {
                quoted = false;
                out.push('"');
            }
            (_, true) => {}
            (c, false) => out.push(c),
        }
    }
    // A message cut short by its own quote ends the value: close it.
    if quoted {
        out.push('"');
    }
    out
}

fn minor_of(version: &str) -> Option<(u32, u32)> {
    crate::parse_version(version).map(|(a, b, _)| (a, b))
}

fn parse_minor(text: &str) -> Option<(u32, u32)> {
    let (a, b) = text.split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// Whether `text` is a hex sha256 as `sha256sum` prints it.
pub fn is_sha256(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// What a node downloads for an addon on one architecture, and the sha256 it must have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Download {
    /// `None` for a URL without `@ARCH@` (the same file everywhere).
    pub arch: Option<String>,
    /// The URL with `@ARCH@` replaced.
    pub url: String,
    /// The pin for it, if any.
    pub sha256: Option<String>,
}

impl Addon {
    /// Whether the URL differs per architecture (`@ARCH@`).
    pub fn per_arch(&self) -> bool {
        self.url.contains("@ARCH@")
    }

    /// What nodes of `archs` download, with the pins the entry has for each.
    pub fn downloads(&self, archs: &[&str]) -> Vec<Download> {
        if !self.per_arch() {
            return vec![Download {
                arch: None,
                url: self.url.clone(),
                sha256: self.sha256.clone(),
            }];
        }
        archs
            .iter()
            .map(|arch| Download {
                arch: Some(arch.to_string()),
                url: self.url.replace("@ARCH@", arch),
                sha256: self.sha256_by_arch.get(*arch).cloned(),
            })
            .collect()
    }

    /// Records `sha256` as the pin of `download`.
    pub fn pin(&mut self, download: &Download, sha256: String) {
        match &download.arch {
            None => self.sha256 = Some(sha256),
            Some(arch) => {
                self.sha256_by_arch.insert(arch.clone(), sha256);
            }
        }
    }

    /// Whether `other` is the same download (name, version, kind, URL): what was verified
    /// for one holds for the other.
    pub fn same_source(&self, other: &Addon) -> bool {
        (&self.name, &self.version, &self.kind, &self.url)
            == (&other.name, &other.version, &other.kind, &other.url)
    }
}

impl Channel {
    /// The channel built into kopsrs ([`STABLE`]).
    pub fn stable() -> Channel {
        Channel::parse(STABLE).expect("channels/stable.yaml is checked by the tests")
    }

    /// Decodes a channel strictly and checks each addon's `kind` and `sha256`.
    pub fn parse(text: &str) -> Result<Channel, ChannelError> {
        let channel: Channel =
            serde_yaml_ng::from_str(text).map_err(|e| ChannelError::Decode(redacted(&e)))?;
        for addon in &channel.addons {
            let what = || format!("addon {} {}", addon.name, addon.version);
            for sum in addon.sha256.iter().chain(addon.sha256_by_arch.values()) {
                if !is_sha256(sum) {
                    return Err(ChannelError::Decode(format!(
                        "{}: sha256 {sum:?} is not 64 lowercase hex digits",
                        what()
                    )));
                }
            }
            if addon.per_arch() && addon.sha256.is_some() {
                return Err(ChannelError::Decode(format!(
                    "{}: its url has @ARCH@, so one sha256 cannot pin it; give sha256ByArch (amd64: …, arm64: …)",
                    what()
                )));
            }
            if !addon.per_arch() && !addon.sha256_by_arch.is_empty() {
                return Err(ChannelError::Decode(format!(
                    "{}: sha256ByArch is for urls with @ARCH@; give sha256",
                    what()
                )));
            }
            if !matches!(addon.kind.as_str(), "manifest" | "chart" | "helm") {
                return Err(ChannelError::Decode(format!(
                    "addon {}: kind {:?} is not manifest, chart or helm",
                    addon.name, addon.kind
                )));
            }
        }
        Ok(channel)
    }

    /// The recommended patch release of `version`'s minor version.
    pub fn recommended_patch(&self, version: &str) -> Option<&str> {
        let (a, b) = minor_of(version)?;
        self.kubernetes
            .minors
            .get(&format!("{a}.{b}"))
            .map(String::as_str)
    }

    /// Where `upgrade cluster` moves a cluster at `version`: the next minor version's
    /// recommended release (kubeadm upgrades one minor version at a time), else the newest
    /// patch of its own minor version.
    pub fn upgrade_target(&self, version: &str) -> Option<&str> {
        let (a, b) = minor_of(version)?;
        self.kubernetes
            .minors
            .get(&format!("{a}.{}", b + 1))
            .or_else(|| self.kubernetes.minors.get(&format!("{a}.{b}")))
            .map(String::as_str)
    }

    /// The addons of a cluster at `kubernetes_version` whose networking is `cni` (one of
    /// [`CNI_ADDONS`], or anything else for none): for each name, the last entry whose range
    /// holds the version. The helm binary comes first when a chart is selected.
    pub fn select(&self, kubernetes_version: &str, cni: &str) -> Result<Selected, ChannelError> {
        let unsupported = || ChannelError::Unsupported {
            version: kubernetes_version.to_string(),
            supported: self
                .kubernetes
                .minors
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
        };
        let minor = minor_of(kubernetes_version).ok_or_else(unsupported)?;
        if self.recommended_patch(kubernetes_version).is_none() {
            return Err(unsupported());
        }
        let wanted = |name: &str| {
            if CNI_ADDONS.contains(&name) {
                name == cni
            } else {
                true
            }
        };
        let mut chosen: BTreeMap<&str, &Addon> = BTreeMap::new();
        for addon in &self.addons {
            let fits = match &addon.kubernetes {
                None => true,
                Some([low, high]) => {
                    parse_minor(low).is_some_and(|l| l <= minor)
                        && parse_minor(high).is_some_and(|h| minor <= h)
                }
            };
            if fits && wanted(&addon.name) {
                chosen.insert(&addon.name, addon);
            }
        }
        let charts = chosen.values().any(|a| a.kind == "chart");
        let mut addons: Vec<Addon> = chosen
            .values()
            .filter(|a| a.kind != "helm" || charts)
            .map(|a| {
                // The range only served the selection; nodes never read it.
                let mut a = (*a).clone();
                a.kubernetes = None;
                a
            })
            .collect();
        // Helm is needed to render the charts, and no pod but the CNI's starts before the
        // network is up, so those two go first.
        addons.sort_by_key(|a| {
            (
                a.kind != "helm",
                !CNI_ADDONS.contains(&a.name.as_str()),
                a.name.clone(),
            )
        });
        Ok(Selected {
            kubernetes_version: kubernetes_version.trim_start_matches('v').to_string(),
            addons,
        })
    }
}

impl Selected {
    /// The file written to `addons/bootstrap-channel.yaml`, with a header comment.
    pub fn to_yaml(&self) -> String {
        format!(
            "# Written by kopsrs update cluster; control-plane nodes apply new versions.\n{}",
            serde_yaml_ng::to_string(self).expect("addons serialise")
        )
    }
}

#[cfg(test)]
mod tests {
    /// A file that is not a channel (a private key given by mistake) is not echoed.
    #[test]
    fn a_file_that_is_not_a_channel_is_not_echoed() {
        let key = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBsecretsecretsecret\n-----END EC PRIVATE KEY-----\n";
        let e = super::Channel::parse(key).unwrap_err().to_string();
        assert!(!e.contains("secret") && !e.contains("BEGIN"), "{e}");
        let typo = super::Channel::parse("addonz: []\n")
            .unwrap_err()
            .to_string();
        assert!(typo.contains("addonz"), "field names stay: {typo}");
    }
}
