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
    /// The namespace a chart is installed into; `None`: `kube-system`. Manifests name their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Helm values for charts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<serde_yaml_ng::Value>,
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

fn minor_of(version: &str) -> Option<(u32, u32)> {
    crate::parse_version(version).map(|(a, b, _)| (a, b))
}

fn parse_minor(text: &str) -> Option<(u32, u32)> {
    let (a, b) = text.split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

impl Channel {
    /// The channel built into kopsrs ([`STABLE`]).
    pub fn stable() -> Channel {
        Channel::parse(STABLE).expect("channels/stable.yaml is checked by the tests")
    }

    /// Decodes a channel strictly and checks each addon's `kind` and `sha256`.
    pub fn parse(text: &str) -> Result<Channel, ChannelError> {
        let channel: Channel =
            serde_yaml_ng::from_str(text).map_err(|e| ChannelError::Decode(e.to_string()))?;
        for addon in &channel.addons {
            if let Some(sum) = &addon.sha256 {
                if sum.len() != 64 || !sum.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(ChannelError::Decode(format!(
                        "addon {} {}: sha256 {sum:?} is not 64 hex digits",
                        addon.name, addon.version
                    )));
                }
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
