//! kops's image name rules for `spec.assets` (pkg/assets/builder.go, `remapImage`): where the
//! nodes pull an image from when the cluster names a mirror registry or a pull proxy. Pure.

/// kops's mirror name for `image` under `spec.assets.containerRegistry` = `registry`: the
/// `registry.k8s.io/` prefix is dropped, every remaining `/` becomes `-`, and the mirror is put
/// in front (`registry.k8s.io/coredns/coredns:v1.12.1` -> `REG/coredns-coredns:v1.12.1`,
/// `quay.io/cilium/cilium:v1.18.2` -> `REG/quay.io-cilium-cilium:v1.18.2`); an image already
/// under `REG/` is returned unchanged. Tags and digests are kept.
///
/// A trailing `/` of `registry` is ignored. Docker Hub short names stay short, as in kops
/// (`nginx:1.27` -> `REG/nginx:1.27`, `library/nginx` -> `REG/library-nginx`).
pub fn mirror_name(image: &str, registry: &str) -> String {
    let registry = registry.trim_end_matches('/');
    let prefix = format!("{registry}/");
    if image.starts_with(&prefix) {
        return image.to_string();
    }
    let rest = image.strip_prefix("registry.k8s.io/").unwrap_or(image);
    format!("{prefix}{}", rest.replace('/', "-"))
}

/// kops's rule for `spec.assets.containerProxy` = `proxy`: the registry host is replaced by the
/// proxy; a docker-hub name without a registry host gets the proxy in front (`nginx` ->
/// `PROXY/nginx`, `quay.io/a/b:t` -> `PROXY/a/b:t`).
///
/// The first path component is a registry host when it has a `.` or a `:` or is `localhost`
/// (Docker's rule); kops looks at `.` and `:` only, and so took `nginx@sha256:...` for a host:
/// here a name without `/` is always Docker Hub's. An image already under `PROXY/` is returned
/// unchanged, so the rule is idempotent even for a proxy without a `.` in its name. A trailing
/// `/` of `proxy` is ignored, as in kops.
pub fn proxy_name(image: &str, proxy: &str) -> String {
    let proxy = proxy.trim_end_matches('/');
    if image.starts_with(&format!("{proxy}/")) {
        return image.to_string();
    }
    match image.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            format!("{proxy}/{rest}")
        }
        _ => format!("{proxy}/{image}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn mirror_names_follow_kops() {
        let reg = "mirror.example.com:5000/kops";
        let cases = [
            (
                "registry.k8s.io/coredns/coredns:v1.12.1",
                "mirror.example.com:5000/kops/coredns-coredns:v1.12.1",
            ),
            (
                "registry.k8s.io/pause:3.10.1",
                "mirror.example.com:5000/kops/pause:3.10.1",
            ),
            (
                "quay.io/cilium/cilium:v1.18.2",
                "mirror.example.com:5000/kops/quay.io-cilium-cilium:v1.18.2",
            ),
            (
                &format!("quay.io/cilium/cilium:v1.18.2@{DIGEST}"),
                &format!("mirror.example.com:5000/kops/quay.io-cilium-cilium:v1.18.2@{DIGEST}"),
            ),
            (
                &format!("registry.k8s.io/kube-apiserver@{DIGEST}"),
                &format!("mirror.example.com:5000/kops/kube-apiserver@{DIGEST}"),
            ),
            ("nginx:1.27", "mirror.example.com:5000/kops/nginx:1.27"),
            (
                "library/nginx",
                "mirror.example.com:5000/kops/library-nginx",
            ),
            (
                "127.0.0.1:5001/a/b/pause:3.10.1",
                "mirror.example.com:5000/kops/127.0.0.1:5001-a-b-pause:3.10.1",
            ),
        ];
        for (image, want) in cases {
            assert_eq!(mirror_name(image, reg), want, "{image}");
            // Idempotent: a mirrored name is under the mirror already.
            assert_eq!(mirror_name(want, reg), want, "{want}");
        }
        // The test registries' names: a nested repository on a loopback port.
        assert_eq!(
            mirror_name("127.0.0.1:5001/a/b/pause:3.10.1", "127.0.0.1:5002"),
            "127.0.0.1:5002/127.0.0.1:5001-a-b-pause:3.10.1"
        );
        assert_eq!(
            mirror_name("registry.k8s.io/a/b/pause:3.10.1", "127.0.0.1:5002/"),
            "127.0.0.1:5002/a-b-pause:3.10.1"
        );
        // An image of another registry whose name starts like the mirror's host is not under it.
        assert_eq!(mirror_name("reg.io2/x:1", "reg.io"), "reg.io/reg.io2-x:1");
    }

    #[test]
    fn proxy_names_follow_kops() {
        let proxy = "proxy.example.com";
        let cases = [
            ("nginx", "proxy.example.com/nginx"),
            ("nginx:1.27", "proxy.example.com/nginx:1.27"),
            (
                &format!("nginx@{DIGEST}"),
                &format!("proxy.example.com/nginx@{DIGEST}"),
            ),
            (
                "weaveworks/weave-kube:2.8.1",
                "proxy.example.com/weaveworks/weave-kube:2.8.1",
            ),
            ("quay.io/a/b:t", "proxy.example.com/a/b:t"),
            (
                "registry.k8s.io/pause:3.10.1",
                "proxy.example.com/pause:3.10.1",
            ),
            (
                &format!("registry.k8s.io/coredns/coredns:v1.12.1@{DIGEST}"),
                &format!("proxy.example.com/coredns/coredns:v1.12.1@{DIGEST}"),
            ),
            ("127.0.0.1:5001/a/b:t", "proxy.example.com/a/b:t"),
            ("localhost/a:t", "proxy.example.com/a:t"),
        ];
        for (image, want) in cases {
            assert_eq!(proxy_name(image, proxy), want, "{image}");
            assert_eq!(proxy_name(want, proxy), want, "idempotent: {want}");
        }
        // A proxy with a port and a path, given with a trailing slash.
        assert_eq!(
            proxy_name("quay.io/a/b:t", "proxy:3128/hub/"),
            "proxy:3128/hub/a/b:t"
        );
        // A proxy whose name has neither `.` nor `:` is still idempotent.
        assert_eq!(proxy_name("nginx", "proxy"), "proxy/nginx");
        assert_eq!(proxy_name("proxy/nginx", "proxy"), "proxy/nginx");
    }
}
