//! Version-dependent defaults: Kubernetes versions, node images, machine types, etcd.
//!
//! kops resolves these from its `stable` channel at run time; kopsrs carries them here so that
//! `create cluster` works offline. Images are named as `owner/name`, resolved to an AMI ID by
//! the AWS target.

/// The Kubernetes version `create cluster` uses when none is given.
pub const DEFAULT_KUBERNETES_VERSION: &str = "v1.34.1";

/// The oldest and newest Kubernetes minors kopsrs supports.
pub const SUPPORTED_MINORS: std::ops::RangeInclusive<u64> = 28..=36;

/// Canonical's AWS account, which publishes the Ubuntu images.
const UBUNTU_OWNER: &str = "099720109477";
const UBUNTU_RELEASE: &str = "20260714";

/// A parsed Kubernetes version (`v1.32.0`, `1.35.0-alpha.1`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct KubernetesVersion {
    /// The major version (always 1 today).
    pub major: u64,
    /// The minor version, which selects defaults such as the etcd version.
    pub minor: u64,
    /// The patch version.
    pub patch: u64,
    /// The text after `-`, e.g. `alpha.1`; `None` for a release.
    pub pre_release: Option<String>,
}

impl KubernetesVersion {
    /// Parses `v1.32.0` or `1.32.0`, with an optional `-pre.release` suffix.
    pub fn parse(text: &str) -> Option<KubernetesVersion> {
        let text = text.strip_prefix('v').unwrap_or(text);
        let (core, pre_release) = match text.split_once('-') {
            Some((core, pre)) if !pre.is_empty() => (core, Some(pre.to_string())),
            Some(_) => return None,
            None => (text, None),
        };
        let mut parts = core.split('.');
        let mut number = || {
            parts.next().and_then(|p| {
                if p.is_empty() || (p.len() > 1 && p.starts_with('0')) {
                    None
                } else {
                    p.parse::<u64>().ok()
                }
            })
        };
        let version = KubernetesVersion {
            major: number()?,
            minor: number()?,
            patch: number()?,
            pre_release,
        };
        if parts.next().is_some() {
            return None;
        }
        Some(version)
    }

    /// `1.32.0` (kops stores the completed version without the `v`).
    pub fn without_v(&self) -> String {
        match &self.pre_release {
            Some(pre) => format!("{}.{}.{}-{pre}", self.major, self.minor, self.patch),
            None => format!("{}.{}.{}", self.major, self.minor, self.patch),
        }
    }
}

/// The CPU architecture of an instance type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    /// x86-64.
    Amd64,
    /// 64-bit Arm (AWS Graviton).
    Arm64,
}

/// The CPU architecture of an instance type such as `m6g.large`.
///
/// Graviton (arm64) instance families carry a `g` after the generation digit (`m6g`, `c7gn`,
/// `t4g`, `r8gd`); `a1` is the first Graviton family. `g4dn`, `g5` and `p4d` are x86 GPU types.
pub fn architecture(machine_type: &str) -> Architecture {
    let family = machine_type.split('.').next().unwrap_or("");
    if family == "a1" {
        return Architecture::Arm64;
    }
    let attributes = family.trim_start_matches(|c: char| c.is_ascii_alphabetic());
    let attributes = attributes.trim_start_matches(|c: char| c.is_ascii_digit());
    if !family.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Architecture::Amd64;
    }
    if attributes.starts_with('g') {
        Architecture::Arm64
    } else {
        Architecture::Amd64
    }
}

/// The default image for a Kubernetes version and architecture: Ubuntu 24.04 LTS (noble).
pub fn default_image(_version: &KubernetesVersion, architecture: Architecture) -> String {
    let arch = match architecture {
        Architecture::Amd64 => "amd64",
        Architecture::Arm64 => "arm64",
    };
    format!("{UBUNTU_OWNER}/ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-{arch}-server-{UBUNTU_RELEASE}")
}

/// The etcd version for a Kubernetes version (kubeadm's choice for that minor).
pub fn etcd_version(version: &KubernetesVersion) -> &'static str {
    if version.minor >= 34 {
        "3.6.12"
    } else {
        "3.5.31"
    }
}

/// The default control-plane instance type.
///
/// Default machine types per role. kops picks the first type of a preference list that the zone
/// offers, which needs a cloud call; offline, kopsrs uses the current-generation head of each
/// list (see docs/compatibility.md).
pub const DEFAULT_CONTROL_PLANE_MACHINE_TYPE: &str = "t3.medium";
/// The default worker node instance type (chosen as the control plane's is).
pub const DEFAULT_NODE_MACHINE_TYPE: &str = "t3.medium";
/// The default bastion instance type (chosen as the control plane's is).
pub const DEFAULT_BASTION_MACHINE_TYPE: &str = "t3.micro";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions() {
        let v = KubernetesVersion::parse("v1.32.0").unwrap();
        assert_eq!((v.major, v.minor, v.patch), (1, 32, 0));
        assert_eq!(
            KubernetesVersion::parse("1.35.0-alpha.1")
                .unwrap()
                .without_v(),
            "1.35.0-alpha.1"
        );
        for bad in [
            "1.32", "v1.32.x", "latest", "1.32.0.1", "1.032.0", "1.32.0-",
        ] {
            assert!(KubernetesVersion::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn graviton_types_are_arm64() {
        for arm in [
            "m6g.xlarge",
            "c7gn.large",
            "t4g.small",
            "r8gd.2xlarge",
            "a1.large",
        ] {
            assert_eq!(architecture(arm), Architecture::Arm64, "{arm}");
        }
        for x86 in [
            "t3.medium",
            "m5.large",
            "g4dn.xlarge",
            "g5.xlarge",
            "p4d.24xlarge",
            "m7i.large",
        ] {
            assert_eq!(architecture(x86), Architecture::Amd64, "{x86}");
        }
    }
}
