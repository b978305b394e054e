//! What a cluster's nodes download, and where from when `spec.assets` names mirrors (kops's
//! `fileRepository`, `containerRegistry` and `containerProxy`): the rules that turn an upstream
//! URL or image into its mirrored one. `kopsrs get assets` lists and copies by these rules, and
//! the user-data and the published addons use the same ones, so what is copied is what nodes
//! ask for.
//!
//! Rules, as kops has them:
//! - a file `https://host/path` is `FILE_REPOSITORY/path` (the path is kept);
//! - an image under `containerRegistry` = `REG`: `registry.k8s.io/` is dropped, every other
//!   `/` becomes `-`, and `REG/` goes in front (`quay.io/cilium/cilium:v1` is
//!   `REG/quay.io-cilium-cilium:v1`); tags and digests are kept (kopsrs also folds a source
//!   registry's port, `host:5000/x` being `REG/host-5000-x`: a `:` is not valid there);
//! - an image under `containerProxy` = `PROXY`: the registry host is replaced by `PROXY` (an
//!   image of Docker Hub gets `PROXY/` in front).
//!
//! kubeadm names its own images from one repository (`kubeadm config images list`), so under
//! a registry they are `REG/kube-apiserver:…`, `REG/etcd:…`, `REG/coredns:…`, `REG/pause:…`.
//!
//! With both a registry and a proxy, nodes pull from the registry and `get assets --copy`
//! reads the upstream images through the proxy (kopsrs's choice: kops would nest the proxied
//! name into the registry's, which is not a valid repository name).

use serde::Serialize;

/// Where kubeadm's images come from upstream.
pub const UPSTREAM_REGISTRY: &str = "registry.k8s.io";

/// The Kubernetes packages' upstream APT repository of a minor version (`1.34`).
pub fn upstream_apt_repo(minor: &str) -> String {
    format!("https://pkgs.k8s.io/core:/stable:/v{minor}/deb")
}

/// The images kubeadm of a Kubernetes minor version runs besides the Kubernetes components:
/// its defaults, as `kubeadm config images list` prints them for that minor's first release.
/// Mirrored clusters pin these in kubeadm's configuration, so the copy and the node agree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ControlPlaneImages {
    /// etcd's image tag (`3.6.4-0`).
    pub etcd: &'static str,
    /// CoreDNS's image tag (`v1.12.1`).
    pub coredns: &'static str,
    /// The pod sandbox (pause) image tag (`3.10.1`).
    pub pause: &'static str,
}

/// kubeadm's image defaults by minor version; `None` for a minor kopsrs does not support.
pub fn control_plane_images(minor: (u32, u32)) -> Option<ControlPlaneImages> {
    let (etcd, coredns, pause) = match minor {
        (1, 31) => ("3.5.15-0", "v1.11.3", "3.10"),
        (1, 32) => ("3.5.16-0", "v1.11.3", "3.10"),
        (1, 33) => ("3.5.21-0", "v1.12.0", "3.10"),
        (1, 34) => ("3.6.4-0", "v1.12.1", "3.10.1"),
        _ => return None,
    };
    Some(ControlPlaneImages {
        etcd,
        coredns,
        pause,
    })
}

/// `spec.assets`, checked: where nodes get files and images instead of upstream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mirrors {
    /// `spec.assets.fileRepository`, without a trailing `/`: an `https://`, `http://` or
    /// `file://` URL nodes download from (curl and apt read all three).
    pub file_repository: Option<String>,
    /// `spec.assets.containerRegistry`: `host[:port][/path]` nodes pull every image from.
    pub container_registry: Option<String>,
    /// `spec.assets.containerProxy`: a pull-through proxy's `host[:port][/path]`.
    pub container_proxy: Option<String>,
}

/// A value of `spec.assets` that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("spec.assets.{field}: {value:?} {why}; {fix}")]
pub struct MirrorError {
    /// The field under `spec.assets`.
    pub field: &'static str,
    /// The value as given.
    pub value: String,
    /// What is wrong with it.
    pub why: &'static str,
    /// How to fix it.
    pub fix: &'static str,
}

fn registry_ok(value: &str) -> bool {
    !value.is_empty()
        && !value.contains("://")
        && value.split('/').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-_:".contains(c))
        })
        && value.split('/').skip(1).all(|p| !p.contains(':'))
        && value.chars().all(|c| !c.is_ascii_uppercase())
}

impl Mirrors {
    /// The mirrors `spec.assets` names, checked; empty values count as unset.
    pub fn from_spec(
        file_repository: Option<&str>,
        container_registry: Option<&str>,
        container_proxy: Option<&str>,
    ) -> Result<Mirrors, MirrorError> {
        let set = |v: Option<&str>| {
            v.map(|v| v.trim().trim_end_matches('/').to_string())
                .filter(|v| !v.is_empty())
        };
        let mirrors = Mirrors {
            file_repository: set(file_repository),
            container_registry: set(container_registry),
            container_proxy: set(container_proxy),
        };
        if let Some(repo) = &mirrors.file_repository {
            let scheme_ok = ["https://", "http://", "file:///"]
                .iter()
                .any(|s| repo.starts_with(s) && repo.len() > s.len());
            let chars_ok = repo
                .chars()
                .all(|c| c.is_ascii_graphic() && !"'\"\\`$|@".contains(c));
            if !scheme_ok || !chars_ok {
                return Err(MirrorError {
                    field: "fileRepository",
                    value: repo.clone(),
                    why: "is not a URL nodes can download from",
                    fix: "give an https:// (or http://) URL, or file:///FOLDER for files baked into the image",
                });
            }
        }
        for (field, value) in [
            ("containerRegistry", &mirrors.container_registry),
            ("containerProxy", &mirrors.container_proxy),
        ] {
            if let Some(value) = value {
                if !registry_ok(value) {
                    return Err(MirrorError {
                        field,
                        value: value.clone(),
                        why: "is not a registry name",
                        fix: "give host[:port][/path] in lower case, without a scheme (registry.example.com:5000/mirror)",
                    });
                }
            }
        }
        Ok(mirrors)
    }

    /// Whether nodes use any mirror.
    pub fn is_empty(&self) -> bool {
        *self == Mirrors::default()
    }

    /// Where nodes download `url` from: the file repository with the URL's path, or the URL.
    pub fn file_url(&self, url: &str) -> String {
        match &self.file_repository {
            Some(repo) => format!("{repo}{}", url_path(url)),
            None => url.to_string(),
        }
    }

    /// The image nodes pull for `image`: the registry's name for it, else the proxy's.
    pub fn image(&self, image: &str) -> String {
        if let Some(registry) = &self.container_registry {
            mirror_name(image, registry)
        } else if let Some(proxy) = &self.container_proxy {
            proxy_name(image, proxy)
        } else {
            image.to_string()
        }
    }

    /// Where a copy reads `image`: through the proxy when there is one, else upstream.
    pub fn copy_source(&self, image: &str) -> String {
        match &self.container_proxy {
            Some(proxy) => proxy_name(image, proxy),
            None => image.to_string(),
        }
    }

    /// The repository kubeadm pulls its images from, and the one for CoreDNS (kubeadm names
    /// CoreDNS `REPO/coredns`, under the default repository `registry.k8s.io/coredns/coredns`).
    pub fn kubeadm_repositories(&self) -> Option<(String, String)> {
        if let Some(registry) = &self.container_registry {
            Some((registry.clone(), registry.clone()))
        } else {
            self.container_proxy
                .as_ref()
                .map(|proxy| (proxy.clone(), format!("{proxy}/coredns")))
        }
    }
}

/// The path (with query) of `url`, from its first `/` after the host; `/` for none.
fn url_path(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.find('/').map_or("/", |i| &rest[i..])
}

/// Splits an image into its registry host (if it names one) and the rest.
fn split_registry(image: &str) -> (Option<&str>, &str) {
    match image.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
            (Some(first), rest)
        }
        _ => (None, image),
    }
}

/// kops's name for `image` in the mirror registry `registry` (see the module's rules).
pub fn mirror_name(image: &str, registry: &str) -> String {
    if image.starts_with(&format!("{registry}/")) {
        return image.to_string();
    }
    let rest = image
        .strip_prefix("registry.k8s.io/")
        .or_else(|| image.strip_prefix("k8s.gcr.io/"))
        .unwrap_or(image);
    // The tag and digest keep their own characters; only the repository's `/` are folded.
    let reference = rest.find('@').unwrap_or(rest.len());
    let slash = rest[..reference].rfind('/').map_or(0, |i| i + 1);
    let end = rest[slash..reference]
        .find(':')
        .map_or(reference, |i| slash + i);
    let (name, suffix) = rest.split_at(end);
    // A source registry's port (`host:5000/x`) would put a `:` into the repository name,
    // which no registry accepts: it folds like a `/` (kops keeps it, and fails).
    format!("{registry}/{}{suffix}", name.replace(['/', ':'], "-"))
}

/// kops's name for `image` through the pull-through proxy `proxy`.
pub fn proxy_name(image: &str, proxy: &str) -> String {
    if image.starts_with(&format!("{proxy}/")) {
        return image.to_string();
    }
    match split_registry(image) {
        (Some(_), rest) => format!("{proxy}/{rest}"),
        (None, rest) => format!("{proxy}/{rest}"),
    }
}

/// One image a cluster's nodes pull: upstream, and the name nodes use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageAsset {
    /// The upstream image (`registry.k8s.io/kube-apiserver:v1.34.1`).
    pub image: String,
    /// What nodes pull; the same as `image` without a mirror.
    pub mirror: String,
    /// What needs it (`kubeadm`, an addon's name).
    pub used_by: String,
}

/// The images kubeadm pulls for a cluster at `version` (`1.34.1`), under `mirrors`: the
/// control-plane components, kube-proxy unless it is off, etcd, CoreDNS and pause.
pub fn kubeadm_images(version: &str, kube_proxy: bool, mirrors: &Mirrors) -> Vec<ImageAsset> {
    let version = version.trim_start_matches('v');
    let Some((major, minor, _)) = crate::parse_version(version) else {
        return Vec::new();
    };
    let Some(tags) = control_plane_images((major, minor)) else {
        return Vec::new();
    };
    let mut names: Vec<(String, String)> = [
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kube-proxy",
    ]
    .iter()
    .filter(|c| kube_proxy || **c != "kube-proxy")
    .map(|c| (c.to_string(), format!("v{version}")))
    .collect();
    names.push(("etcd".into(), tags.etcd.into()));
    names.push(("coredns/coredns".into(), tags.coredns.into()));
    names.push(("pause".into(), tags.pause.into()));
    let repos = mirrors.kubeadm_repositories();
    names
        .into_iter()
        .map(|(name, tag)| {
            let image = format!("{UPSTREAM_REGISTRY}/{name}:{tag}");
            let mirror = match &repos {
                None => image.clone(),
                Some((_, dns)) if name == "coredns/coredns" => format!("{dns}/coredns:{tag}"),
                Some((repo, _)) => format!("{repo}/{name}:{tag}"),
            };
            ImageAsset {
                image,
                mirror,
                used_by: "kubeadm".into(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_names_follow_kops() {
        let reg = "10.0.0.1:5000/mirror";
        assert_eq!(
            mirror_name("registry.k8s.io/coredns/coredns:v1.12.1", reg),
            "10.0.0.1:5000/mirror/coredns-coredns:v1.12.1"
        );
        assert_eq!(
            mirror_name("quay.io/cilium/cilium:v1.18.2@sha256:85", reg),
            "10.0.0.1:5000/mirror/quay.io-cilium-cilium:v1.18.2@sha256:85"
        );
        assert_eq!(mirror_name("nginx", reg), "10.0.0.1:5000/mirror/nginx");
        assert_eq!(
            mirror_name("localhost:5000/a/b:t", reg),
            "10.0.0.1:5000/mirror/localhost-5000-a-b:t"
        );
        let digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert_eq!(
            mirror_name(&format!("registry.k8s.io/kube-apiserver@{digest}"), reg),
            format!("10.0.0.1:5000/mirror/kube-apiserver@{digest}")
        );
        assert_eq!(
            mirror_name("library/nginx", reg),
            "10.0.0.1:5000/mirror/library-nginx"
        );
        // Another registry whose name starts like the mirror's host is not under it.
        assert_eq!(mirror_name("reg.io2/x:1", "reg.io"), "reg.io/reg.io2-x:1");
        let once = mirror_name("registry.k8s.io/pause:3.10.1", reg);
        assert_eq!(once, "10.0.0.1:5000/mirror/pause:3.10.1");
        assert_eq!(mirror_name(&once, reg), once, "idempotent");
    }

    #[test]
    fn proxy_names_follow_kops() {
        let p = "proxy.example.com:8443";
        assert_eq!(
            proxy_name("nginx:1.27", p),
            "proxy.example.com:8443/nginx:1.27"
        );
        assert_eq!(
            proxy_name("quay.io/cilium/cilium:v1.18.2", p),
            "proxy.example.com:8443/cilium/cilium:v1.18.2"
        );
        assert_eq!(
            proxy_name("library/nginx", p),
            "proxy.example.com:8443/library/nginx"
        );
        assert_eq!(
            proxy_name("nginx@sha256:0123", p),
            "proxy.example.com:8443/nginx@sha256:0123"
        );
        assert_eq!(
            proxy_name("weaveworks/weave-kube:2.8.1", p),
            "proxy.example.com:8443/weaveworks/weave-kube:2.8.1"
        );
        let once = proxy_name("registry.k8s.io/pause:3.10", p);
        assert_eq!(proxy_name(&once, p), once);
    }

    #[test]
    fn file_urls_keep_the_path() {
        let m = Mirrors::from_spec(Some("https://mirror.example.com/k8s/"), None, None).unwrap();
        assert_eq!(
            m.file_url("https://pkgs.k8s.io/core:/stable:/v1.34/deb/Release"),
            "https://mirror.example.com/k8s/core:/stable:/v1.34/deb/Release"
        );
        assert_eq!(Mirrors::default().file_url("https://a/b"), "https://a/b");
    }

    #[test]
    fn bad_mirrors_name_the_field() {
        let e = Mirrors::from_spec(Some("s3://bucket"), None, None).unwrap_err();
        assert_eq!(e.field, "fileRepository");
        let e = Mirrors::from_spec(None, Some("https://reg.example.com"), None).unwrap_err();
        assert!(
            e.to_string().contains("spec.assets.containerRegistry"),
            "{e}"
        );
        assert!(Mirrors::from_spec(None, Some("Reg.example.com"), None).is_err());
        assert!(Mirrors::from_spec(None, Some("reg.example.com:5000/mirror"), None).is_ok());
    }

    #[test]
    fn kubeadm_images_under_a_registry_are_kubeadms_names() {
        let m = Mirrors::from_spec(None, Some("reg:5000"), None).unwrap();
        let images = kubeadm_images("1.34.1", false, &m);
        let mirrors: Vec<&str> = images.iter().map(|i| i.mirror.as_str()).collect();
        assert_eq!(
            mirrors,
            [
                "reg:5000/kube-apiserver:v1.34.1",
                "reg:5000/kube-controller-manager:v1.34.1",
                "reg:5000/kube-scheduler:v1.34.1",
                "reg:5000/etcd:3.6.4-0",
                "reg:5000/coredns:v1.12.1",
                "reg:5000/pause:3.10.1",
            ]
        );
        let proxied = kubeadm_images(
            "1.33.5",
            true,
            &Mirrors::from_spec(None, None, Some("px")).unwrap(),
        );
        assert!(proxied
            .iter()
            .any(|i| i.mirror == "px/coredns/coredns:v1.12.0"));
        assert_eq!(kubeadm_images("1.30.0", true, &m), vec![]);
    }
}
