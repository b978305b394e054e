//! The Kubernetes version skew policy, as a roll needs it: a kubelet is never newer than
//! the API servers it talks to and at most three minor versions older; the control plane
//! moves one minor version at a time. Decisions only; the versions are read by the caller
//! (the API server's `/version`, each Node's `status.nodeInfo.kubeletVersion`).

use kopsrs_api::Role;

/// What the cluster runs now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Versions {
    /// The API server that answered `/version` (`v1.31.2`).
    pub api_server: String,
    /// Every Node's kubelet.
    pub kubelets: Vec<Kubelet>,
}

/// One Node's kubelet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kubelet {
    /// The Node.
    pub node: String,
    /// It is a control plane (its API server runs the same version under kubeadm).
    pub control_plane: bool,
    /// `v1.31.2`.
    pub version: String,
}

/// The major and minor version of `v1.31.2`, `1.31.2`, `v1.32.4-eks.1`.
pub fn minor(version: &str) -> Option<(u64, u64)> {
    let mut parts = version.trim().trim_start_matches('v').split('.');
    let major = parts.next()?.parse().ok()?;
    let minor: String = parts
        .next()?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    Some((major, minor.parse().ok()?))
}

/// A refusal: what breaks the policy, and the way round it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skew {
    /// What would break the policy.
    pub message: String,
    /// What to do instead.
    pub hint: String,
}

fn shown((major, minor): (u64, u64)) -> String {
    format!("{major}.{minor}")
}

/// Whether replacing the instances of a group of `role` with ones running `target` keeps
/// the policy, given what runs now. Control planes (and API-server groups) may move the
/// API servers one minor version up, never more, and not past kubelets three minors
/// behind; any other group's new kubelets must not be newer than the oldest API server.
pub fn check(target: &str, now: &Versions, role: Role, group: &str) -> Result<(), Skew> {
    let Some(target_minor) = minor(target) else {
        return Ok(());
    };
    // The oldest and newest API server: the one that answered, and every control plane's
    // (each runs its own API server, of its kubelet's version under kubeadm).
    let servers: Vec<(u64, u64)> = std::iter::once(now.api_server.as_str())
        .chain(
            now.kubelets
                .iter()
                .filter(|k| k.control_plane)
                .map(|k| k.version.as_str()),
        )
        .filter_map(minor)
        .collect();
    let (Some(&oldest), Some(&newest)) = (servers.iter().min(), servers.iter().max()) else {
        return Ok(());
    };
    match role {
        Role::ControlPlane | Role::ApiServer => {
            if target_minor.0 == newest.0 && target_minor.1 > newest.1 + 1 {
                let next = (newest.0, newest.1 + 1);
                return Err(Skew {
                    message: format!(
                        "group {group}: its new instances run Kubernetes {target}, but the API servers run {}: an upgrade moves one minor version at a time",
                        shown(newest)
                    ),
                    hint: format!(
                        "upgrade to {} first (`kopsrs upgrade cluster --kubernetes-version {}` then `kopsrs reconcile cluster --yes`), then to {}",
                        shown(next),
                        shown(next),
                        shown(target_minor)
                    ),
                });
            }
            let behind: Vec<&Kubelet> = now
                .kubelets
                .iter()
                .filter(|k| {
                    minor(&k.version).is_some_and(|m| {
                        m.0 == target_minor.0 && m.1 + 3 < target_minor.1 || m.0 < target_minor.0
                    })
                })
                .collect();
            if let Some(first) = behind.first() {
                return Err(Skew {
                    message: format!(
                        "group {group}: API servers at {} would be more than three minor versions ahead of the kubelet of {} ({}){}",
                        shown(target_minor),
                        first.node,
                        first.version,
                        match behind.len() {
                            1 => String::new(),
                            n => format!(" and {} other Node(s)", n - 1),
                        }
                    ),
                    hint: "replace those Nodes at the current version first (`kopsrs rolling-update cluster --instance-group-roles node --force --yes`)".into(),
                });
            }
            Ok(())
        }
        Role::Node | Role::Bastion => {
            if target_minor > oldest {
                return Err(Skew {
                    message: format!(
                        "group {group}: its new instances would run kubelet {target}, newer than the API servers ({}): the version skew policy forbids it (kubelets of 1.31 and later crash against older API servers)",
                        shown(oldest)
                    ),
                    hint: "roll the control plane first: `kopsrs reconcile cluster --yes` does the whole upgrade in order (or `kopsrs rolling-update cluster --instance-group-roles control-plane,apiserver --yes`)".into(),
                });
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(api: &str, control: &[&str], nodes: &[&str]) -> Versions {
        let kubelet = |i: usize, v: &&str, cp: bool| Kubelet {
            node: format!("{}-{i}", if cp { "cp" } else { "node" }),
            control_plane: cp,
            version: v.to_string(),
        };
        Versions {
            api_server: api.into(),
            kubelets: control
                .iter()
                .enumerate()
                .map(|(i, v)| kubelet(i, v, true))
                .chain(nodes.iter().enumerate().map(|(i, v)| kubelet(i, v, false)))
                .collect(),
        }
    }

    #[test]
    fn minor_versions_are_read_from_every_spelling() {
        assert_eq!(minor("v1.31.2"), Some((1, 31)));
        assert_eq!(minor("1.32"), Some((1, 32)));
        assert_eq!(minor("v1.32.4-dispatcher"), Some((1, 32)));
        assert_eq!(minor("v1.3x"), Some((1, 3)));
        assert_eq!(minor("latest"), None);
    }

    #[test]
    fn nodes_never_run_ahead_of_the_api_servers() {
        let old = cluster("v1.30.5", &["v1.30.5"; 3], &["v1.30.5"; 4]);
        let e = check("1.31.1", &old, Role::Node, "nodes").unwrap_err();
        assert!(
            e.message.contains("newer than the API servers (1.30)"),
            "{e:?}"
        );
        assert!(e.hint.contains("reconcile cluster"), "{e:?}");
        // Mid-way through the control plane: one API server is still old.
        let mid = cluster("v1.31.1", &["v1.31.1", "v1.30.5", "v1.31.1"], &["v1.30.5"]);
        assert!(check("1.31.1", &mid, Role::Node, "nodes").is_err());
        // Once every control plane runs 1.31, nodes may follow; a patch release too.
        let done = cluster("v1.31.1", &["v1.31.1"; 3], &["v1.30.5"]);
        check("1.31.1", &done, Role::Node, "nodes").unwrap();
        check("1.31.3", &done, Role::Node, "nodes").unwrap();
        check("1.30.9", &done, Role::Node, "nodes").unwrap();
    }

    #[test]
    fn the_control_plane_moves_one_minor_version_at_a_time() {
        let old = cluster("v1.30.5", &["v1.30.5"; 3], &["v1.30.5"]);
        check("1.31.0", &old, Role::ControlPlane, "cp").unwrap();
        let e = check("1.32.0", &old, Role::ControlPlane, "cp").unwrap_err();
        assert!(e.message.contains("one minor version at a time"), "{e:?}");
        assert!(e.hint.contains("upgrade to 1.31 first"), "{e:?}");
        assert!(check("1.32.0", &old, Role::ApiServer, "api").is_err());
        // Resumed mid-way: one control plane at 1.31 already, the rest may follow.
        let mid = cluster("v1.30.5", &["v1.31.0", "v1.30.5", "v1.30.5"], &[]);
        check("1.31.0", &mid, Role::ControlPlane, "cp").unwrap();
    }

    #[test]
    fn the_control_plane_does_not_leave_kubelets_more_than_three_minors_behind() {
        let old = cluster(
            "v1.31.0",
            &["v1.31.0"; 3],
            &["v1.28.4", "v1.29.0", "v1.28.1"],
        );
        let e = check("1.32.0", &old, Role::ControlPlane, "cp").unwrap_err();
        assert!(
            e.message.contains("v1.28.4") && e.message.contains("1 other"),
            "{e:?}"
        );
        let fine = cluster("v1.31.0", &["v1.31.0"; 3], &["v1.29.4"]);
        check("1.32.0", &fine, Role::ControlPlane, "cp").unwrap();
    }
}
