//! Air-gapped installs through the binary: `get assets` lists every file and image a
//! cluster's nodes need from its spec alone, reads the package repository's index and the
//! addons' manifests when it may download, copies the files to `spec.assets.fileRepository`
//! (checking each sha256) and the images to `spec.assets.containerRegistry` (byte for byte,
//! between two Debian `docker-registry` instances on loopback); the user-data and the
//! published addons then name only the mirrors.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::{hex, kopsrs, ok, run_function, FileServer};

const NAME: &str = "airgap.example.com";

fn json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// A new `file://` store holding [`NAME`] (cilium, 1.34.1) made with `flags`.
fn cluster(dir: &Path, flags: &[&str]) -> String {
    let state = format!("file://{}", dir.join("state").display());
    ok(kopsrs(&state)
        .args(["create", "cluster", NAME, "--zones", "eu-west-1a"])
        .args(["--kubernetes-version", "1.34.1"])
        .args(flags));
    state
}

fn set(state: &str, fields: &[String]) {
    let mut command = kopsrs(state);
    command.args(["edit", "cluster", NAME]);
    for field in fields {
        command.arg("--set").arg(field);
    }
    ok(&mut command);
}

fn images(listed: &serde_json::Value) -> Vec<(String, String)> {
    listed["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["image"].as_str().unwrap().to_string(),
                i["mirror"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn get_assets_lists_files_and_images_from_the_spec_alone() {
    let dir = tempfile::tempdir().unwrap();
    let state = cluster(dir.path(), &["--networking", "cilium"]);
    let listed = json(&ok(kopsrs(&state).args([
        "get",
        "assets",
        NAME,
        "--offline",
        "-o",
        "json",
    ])));
    let pairs = images(&listed);
    let names: Vec<&str> = pairs.iter().map(|(i, _)| i.as_str()).collect();
    for want in [
        "registry.k8s.io/kube-apiserver:v1.34.1",
        "registry.k8s.io/kube-controller-manager:v1.34.1",
        "registry.k8s.io/kube-scheduler:v1.34.1",
        "registry.k8s.io/etcd:3.6.4-0",
        "registry.k8s.io/coredns/coredns:v1.12.1",
        "registry.k8s.io/pause:3.10.1",
    ] {
        assert!(names.contains(&want), "{want} not in {names:?}");
    }
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("quay.io/cilium/cilium:v1.18.2@sha256:")),
        "{names:?}"
    );
    // Without mirrors, nodes pull upstream.
    assert!(pairs.iter().all(|(i, m)| i == m), "{pairs:?}");
    let files: Vec<&str> = listed["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["url"].as_str().unwrap())
        .collect();
    assert!(
        files.contains(&"https://pkgs.k8s.io/core:/stable:/v1.34/deb/InRelease"),
        "{files:?}"
    );
    assert!(
        files.contains(&"https://helm.cilium.io/cilium-1.18.2.tgz"),
        "{files:?}"
    );
    // What it cannot know offline it says, naming the fix.
    let incomplete = listed["incomplete"].to_string();
    assert!(incomplete.contains("--offline"), "{incomplete}");
    assert!(incomplete.contains("metrics-server"), "{incomplete}");

    // Mirrors: every name follows the rules nodes use.
    // Plain HTTP is accepted with a warning: the packages' key comes from it.
    let out = ok(kopsrs(&state)
        .args(["edit", "cluster", NAME])
        .arg("--set")
        .arg("spec.assets.fileRepository=http://mirror.example.com/files"));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("plain HTTP") && said.contains("https://"),
        "{said}"
    );
    set(
        &state,
        &[
            "spec.assets.containerRegistry=reg.example.com:5000/k8s".into(),
            "spec.assets.fileRepository=https://mirror.example.com/files".into(),
        ],
    );
    let listed = json(&ok(kopsrs(&state).args([
        "get",
        "assets",
        NAME,
        "--offline",
        "-o",
        "json",
    ])));
    let pairs = images(&listed);
    let mirror_of = |image: &str| {
        pairs
            .iter()
            .find(|(i, _)| i.starts_with(image))
            .unwrap_or_else(|| panic!("{image}: {pairs:?}"))
            .1
            .clone()
    };
    assert_eq!(
        mirror_of("registry.k8s.io/coredns/coredns"),
        "reg.example.com:5000/k8s/coredns:v1.12.1"
    );
    assert_eq!(
        mirror_of("registry.k8s.io/kube-apiserver"),
        "reg.example.com:5000/k8s/kube-apiserver:v1.34.1"
    );
    assert!(
        mirror_of("quay.io/cilium/operator-generic").starts_with(
            "reg.example.com:5000/k8s/quay.io-cilium-operator-generic:v1.18.2@sha256:"
        ),
        "{pairs:?}"
    );
    let file = listed["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["url"] == "https://pkgs.k8s.io/core:/stable:/v1.34/deb/Release")
        .unwrap()
        .clone();
    assert_eq!(
        file["mirror"],
        "https://mirror.example.com/files/core:/stable:/v1.34/deb/Release"
    );

    // A mirror that is not one: refused naming the field, the value and the fix; nothing is
    // written.
    let out = kopsrs(&state)
        .args(["edit", "cluster", NAME, "--set"])
        .arg("spec.assets.containerRegistry=https://reg.example.com")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("spec.assets.containerRegistry") && err.contains("https://reg.example.com"),
        "{err}"
    );
    assert!(err.contains("without a scheme"), "{err}");
    let kept = json(&ok(
        kopsrs(&state).args(["get", "cluster", NAME, "-o", "json"])
    ));
    assert_eq!(
        kept[0]["spec"]["assets"]["containerRegistry"],
        "reg.example.com:5000/k8s"
    );
}

/// A flat APT repository as pkgs.k8s.io serves one: `Release` (with the index's sha256),
/// `InRelease`, `Release.gpg`, `Release.key`, `Packages`, and the packages of a few versions
/// for two architectures. Returns the sha256 of each package file, by file name.
fn apt_repo(root: &Path) -> std::collections::BTreeMap<String, String> {
    let repo = root.join("deb");
    let mut sums = std::collections::BTreeMap::new();
    let mut packages = String::new();
    let entries: &[(&str, &str, &str)] = &[
        ("kubeadm", "1.34.0-1.1", "cri-tools (>= 1.30.0)"),
        ("kubeadm", "1.34.1-1.1", "cri-tools (>= 1.30.0)"),
        ("kubeadm", "1.34.10-1.1", "cri-tools (>= 1.30.0)"),
        (
            "kubelet",
            "1.34.1-1.1",
            "iptables (>= 1.4.21), kubernetes-cni (>= 1.1.1), mount",
        ),
        ("kubectl", "1.34.1-1.1", ""),
        ("cri-tools", "1.33.0-1.1", ""),
        ("cri-tools", "1.34.0-1.1", ""),
        ("kubernetes-cni", "1.7.1-1.1", ""),
    ];
    for arch in ["amd64", "arm64"] {
        std::fs::create_dir_all(repo.join(arch)).unwrap();
        for (name, version, depends) in entries {
            let file = format!("{arch}/{name}_{version}_{arch}.deb");
            let body = format!("deb {name} {version} {arch}");
            std::fs::write(repo.join(&file), &body).unwrap();
            let sum = hex(body.as_bytes());
            sums.insert(file.clone(), sum.clone());
            packages.push_str(&format!(
                "Package: {name}\nVersion: {version}\nArchitecture: {arch}\n"
            ));
            if !depends.is_empty() {
                packages.push_str(&format!("Depends: {depends}\n"));
            }
            packages.push_str(&format!(
                "Filename: {file}\nSize: {}\nSHA256: {sum}\nDescription: test\n continued line\n\n",
                body.len()
            ));
        }
    }
    std::fs::write(repo.join("Packages"), &packages).unwrap();
    let release = format!(
        "Origin: test\nSHA256:\n {} {} Packages\n",
        hex(packages.as_bytes()),
        packages.len()
    );
    std::fs::write(repo.join("Release"), &release).unwrap();
    std::fs::write(repo.join("InRelease"), format!("signed\n{release}")).unwrap();
    std::fs::write(repo.join("Release.gpg"), "signature").unwrap();
    std::fs::write(repo.join("Release.key"), "key").unwrap();
    sums
}

#[test]
fn get_assets_reads_the_index_and_copies_files_to_the_file_repository() {
    let dir = tempfile::tempdir().unwrap();
    let served = dir.path().join("served");
    let debs = apt_repo(&served);
    std::fs::create_dir_all(served.join("addons")).unwrap();
    let manifest = "apiVersion: apps/v1\nkind: Deployment\nspec:\n  template:\n    spec:\n      initContainers:\n      - image: registry.k8s.io/busybox:1.36\n      containers:\n      - name: x\n        image: docker.io/kindest/kindnetd:v20250512\n";
    std::fs::write(served.join("addons/kindnet.yaml"), manifest).unwrap();
    let server = FileServer::start(&served);
    let channel = dir.path().join("channel.yaml");
    std::fs::write(
        &channel,
        format!(
            "kubernetes:\n  recommended: 1.34.1\n  minors:\n    \"1.34\": 1.34.1\naddons:\n- name: kindnet\n  version: '1'\n  kind: manifest\n  url: {}/addons/kindnet.yaml\n  sha256: {}\n",
            server.url,
            hex(manifest.as_bytes())
        ),
    )
    .unwrap();
    // Workers on arm64, the control plane on amd64: packages for both.
    let state = cluster(
        dir.path(),
        &["--networking", "kindnet", "--node-size", "t4g.medium"],
    );
    let mirror = dir.path().join("mirror");
    set(
        &state,
        &[
            format!("spec.channel={}", channel.display()),
            format!("spec.assets.fileRepository=file://{}", mirror.display()),
        ],
    );
    let apt = format!("{}/deb", server.url);
    let get = || {
        let mut c = kopsrs(&state);
        c.env("KOPSRS_K8S_APT_REPO", &apt)
            .args(["get", "assets", NAME]);
        c
    };
    let listed = json(&ok(get().args(["-o", "json"])));
    assert_eq!(listed["incomplete"], serde_json::json!([]), "{listed:#}");
    let files: Vec<(String, String, String)> = listed["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["url"].as_str().unwrap().to_string(),
                f["sha256"].as_str().unwrap_or("").to_string(),
                f["mirror"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let packages: Vec<&str> = files
        .iter()
        .filter_map(|(u, _, _)| u.strip_prefix(&format!("{apt}/")))
        .filter(|f| f.ends_with(".deb"))
        .collect();
    let mut want: Vec<String> = Vec::new();
    for arch in ["amd64", "arm64"] {
        for p in [
            "kubeadm_1.34.1-1.1",
            "kubelet_1.34.1-1.1",
            "kubectl_1.34.1-1.1",
            "cri-tools_1.34.0-1.1",
            "kubernetes-cni_1.7.1-1.1",
        ] {
            want.push(format!("{arch}/{p}_{arch}.deb"));
        }
    }
    let mut got: Vec<String> = packages.iter().map(|s| s.to_string()).collect();
    got.sort();
    want.sort();
    assert_eq!(
        got, want,
        "the version's packages and their dependencies, newest"
    );
    for (url, sum, mirror_url) in &files {
        if let Some(file) = url.strip_prefix(&format!("{apt}/")) {
            if let Some(pin) = debs.get(file) {
                assert_eq!(sum, pin, "{file}: the sha256 of the signed index");
            }
            // The repository's own path under the mirror, whatever served it here.
            assert_eq!(
                mirror_url,
                &format!("file://{}/core:/stable:/v1.34/deb/{file}", mirror.display())
            );
        }
    }
    let images: Vec<String> = images(&listed).into_iter().map(|(i, _)| i).collect();
    assert!(images.contains(&"docker.io/kindest/kindnetd:v20250512".to_string()));
    assert!(images.contains(&"registry.k8s.io/busybox:1.36".to_string()));

    // The copy: every file at its mirror path, checked; again, nothing to do.
    let out = ok(get().arg("--copy=files"));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("Copied 16 file(s)"), "{said}");
    for (url, sum, mirror_url) in &files {
        let path = mirror_url.strip_prefix("file://").unwrap();
        let body = std::fs::read(path).unwrap_or_else(|e| panic!("{path} ({url}): {e}"));
        if !sum.is_empty() {
            assert_eq!(&hex(&body), sum, "{path}");
        }
    }
    assert_eq!(
        std::fs::read_to_string(mirror.join("addons/kindnet.yaml")).unwrap(),
        manifest
    );
    let out = ok(get().arg("--copy=files"));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("Copied 0 file(s)"), "{said}");
    assert!(said.contains("16 already there"), "{said}");

    // A package that changed upstream after its index was signed is not copied.
    let tampered = "amd64/kubectl_1.34.1-1.1_amd64.deb";
    std::fs::write(served.join("deb").join(tampered), "tampered").unwrap();
    let copied = mirror.join("core:/stable:/v1.34/deb").join(tampered);
    std::fs::remove_file(&copied).unwrap();
    let out = get().arg("--copy=files").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(tampered) && err.contains("not copied"),
        "{err}"
    );
    assert!(!copied.exists());

    // Nodes use the mirror: the user-data's package repository, the published addons.
    let tf = dir.path().join("tf");
    ok(kopsrs(&state)
        .args(["update", "cluster", NAME, "--target", "terraform", "--out"])
        .arg(&tf));
    let data = std::fs::read_dir(tf.join("data")).unwrap();
    let mut scripts = 0;
    for entry in data.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if name.ends_with("_user_data") && !name.contains("bastion") {
            let text = std::fs::read_to_string(entry.path()).unwrap();
            assert!(
                text.contains(&format!(
                    "K8S_APT_REPO='file://{}/core:/stable:/v1.34/deb'",
                    mirror.display()
                )),
                "{name}"
            );
            scripts += 1;
        }
    }
    assert!(scripts >= 2);
    let published = std::fs::read_to_string(
        dir.path()
            .join(format!("state/{NAME}/addons/bootstrap-channel.yaml")),
    )
    .unwrap();
    assert!(
        published.contains(&format!(
            "url: file://{}/addons/kindnet.yaml",
            mirror.display()
        )),
        "{published}"
    );

    // A chart whose images the channel does not list: the mirror cannot be complete, and a
    // copy of the images says so with a failure unless told to accept it.
    std::fs::write(served.join("addons/chart.tgz"), "a chart").unwrap();
    std::fs::write(
        served.join("deb").join(tampered),
        "deb kubectl 1.34.1-1.1 amd64",
    )
    .unwrap();
    let mut text = std::fs::read_to_string(&channel).unwrap();
    text.push_str(&format!(
        "- name: some-chart\n  version: '1'\n  kind: chart\n  url: {}/addons/chart.tgz\n",
        server.url
    ));
    std::fs::write(&channel, text).unwrap();
    set(
        &state,
        &["spec.assets.containerRegistry=127.0.0.1:1".into()],
    );
    // The files alone are complete: the chart's file is copied.
    ok(get().arg("--copy=files"));
    assert!(mirror.join("addons/chart.tgz").exists());
    let out = get().arg("--copy=images").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("the mirror is incomplete") && err.contains("some-chart"),
        "{err}"
    );
}

#[test]
fn mirrored_user_data_pulls_and_installs_only_from_the_mirrors() {
    let dir = tempfile::tempdir().unwrap();
    let state = cluster(dir.path(), &["--networking", "calico"]);
    set(
        &state,
        &[
            "spec.assets.containerRegistry=reg.internal:5000".into(),
            "spec.assets.fileRepository=https://files.internal/k8s".into(),
        ],
    );
    let tf = dir.path().join("tf");
    ok(kopsrs(&state)
        .args(["update", "cluster", NAME, "--target", "terraform", "--out"])
        .arg(&tf));
    let path = std::fs::read_dir(tf.join("data"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.to_string_lossy().contains("control-plane")
                && p.to_string_lossy().ends_with("_user_data")
        })
        .unwrap();
    let script = std::fs::read_to_string(&path).unwrap();
    assert!(
        script.contains("\nK8S_APT_REPO='https://files.internal/k8s/core:/stable:/v1.34/deb'\n")
    );
    assert!(script.contains("\nSANDBOX_IMAGE='reg.internal:5000/pause:3.10.1'\n"));
    assert!(script.contains("\nIMAGE_REGISTRY='reg.internal:5000'\n"));
    // It passes shellcheck and fits EC2's limit, as every user-data must.
    let check = Command::new("shellcheck")
        .args(["-s", "bash"])
        .arg(&path)
        .output()
        .expect("shellcheck is not installed: run scripts/test.sh, which installs it");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    assert!(kopsrs_bootstrap::gzip(&script).len() < kopsrs_bootstrap::MAX_USER_DATA);
    // kubeadm pulls its images, etcd's and CoreDNS's at the tags that were copied, from the
    // mirror.
    let docs = kopsrs_bootstrap::embedded_kubeadm_documents(&script);
    let cluster_doc = docs
        .iter()
        .flat_map(|d| kopsrs_bootstrap::kubeadm::decode(d).unwrap())
        .find_map(|d| match d {
            kopsrs_bootstrap::kubeadm::Document::Cluster(c) => Some(c),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        cluster_doc.image_repository.as_deref(),
        Some("reg.internal:5000")
    );
    assert_eq!(cluster_doc.etcd.local.image_tag.as_deref(), Some("3.6.4-0"));
    assert_eq!(
        cluster_doc.dns.image_repository.as_deref(),
        Some("reg.internal:5000")
    );
    assert_eq!(cluster_doc.dns.image_tag.as_deref(), Some("v1.12.1"));
    // The kubeadm images `get assets` lists are the ones this configuration pulls.
    let listed = json(&ok(kopsrs(&state).args([
        "get",
        "assets",
        NAME,
        "--offline",
        "-o",
        "json",
    ])));
    let mirrors: Vec<String> = images(&listed).into_iter().map(|(_, m)| m).collect();
    for want in [
        "reg.internal:5000/kube-apiserver:v1.34.1",
        "reg.internal:5000/etcd:3.6.4-0",
        "reg.internal:5000/coredns:v1.12.1",
        "reg.internal:5000/pause:3.10.1",
    ] {
        assert!(mirrors.contains(&want.to_string()), "{want}: {mirrors:?}");
    }

    // containerd runs pods in the mirror's sandbox image (1.7's and 2.x's setting).
    let config = run_function(
        &script,
        "containerd_config",
        &[("SANDBOX_IMAGE", "reg.internal:5000/pause:3.10.1")],
        "[cri]\n    sandbox_image = \"registry.k8s.io/pause:3.8\"\n[pinned]\n      sandbox = \"registry.k8s.io/pause:3.10\"\n  SystemdCgroup = false\n",
    );
    assert_eq!(
        config,
        "[cri]\n    sandbox_image = \"reg.internal:5000/pause:3.10.1\"\n[pinned]\n      sandbox = \"reg.internal:5000/pause:3.10.1\"\n  SystemdCgroup = true\n"
    );
    let unchanged = run_function(
        &script,
        "containerd_config",
        &[("SANDBOX_IMAGE", "")],
        "sandbox_image = \"x\"\n",
    );
    assert_eq!(unchanged, "sandbox_image = \"x\"\n");

    // Addon manifests are applied with the mirror's names, by the same rules as the Rust
    // side's: every container and init container, nothing else.
    let samples = [
        "quay.io/cilium/cilium:v1.18.2@sha256:858f807ea4e20e85e3ea3240a762e1f4b29f1cb5bbd0463b8aa77e7b097c0667",
        "registry.k8s.io/coredns/coredns:v1.12.1",
        "nginx",
        "docker.io/library/nginx:1.27",
        "localhost:5000/team/app:v1",
        "reg.internal:5000/already:1",
        "ghcr.io/a/b/c@sha256:0123",
    ];
    for (registry, proxy) in [("reg.internal:5000", ""), ("", "proxy.internal")] {
        let mut manifest = String::new();
        for (i, image) in samples.iter().enumerate() {
            manifest.push_str(&format!(
                "kind: Deployment\nmetadata:\n  name: d{i}\n  annotations:\n    image: {image}\nspec:\n  template:\n    spec:\n      initContainers:\n      - name: i\n        image: {image}\n      containers:\n      - name: c\n        image: {image}\n---\n"
            ));
        }
        let out = run_function(
            &script,
            "remap_images",
            &[("IMAGE_REGISTRY", registry), ("IMAGE_PROXY", proxy)],
            &manifest,
        );
        let mirrors =
            kopsrs_bootstrap::assets::Mirrors::from_spec(None, Some(registry), Some(proxy))
                .unwrap();
        let docs: Vec<serde_yaml_ng::Value> = serde_yaml_ng::Deserializer::from_str(&out)
            .map(|d| serde::Deserialize::deserialize(d).unwrap())
            .collect();
        assert_eq!(docs.len(), samples.len());
        for (doc, image) in docs.iter().zip(samples) {
            let pod = &doc["spec"]["template"]["spec"];
            let want = mirrors.image(image);
            assert_eq!(
                pod["containers"][0]["image"].as_str(),
                Some(want.as_str()),
                "{image}"
            );
            assert_eq!(
                pod["initContainers"][0]["image"].as_str(),
                Some(want.as_str())
            );
            assert_eq!(
                doc["metadata"]["annotations"]["image"].as_str(),
                Some(image)
            );
        }
    }
    // No mirror: the manifest goes through byte for byte.
    let text = "kind: X # comment kept\nspec: {containers: [{image: a}]}\n";
    assert_eq!(
        run_function(
            &script,
            "remap_images",
            &[("IMAGE_REGISTRY", ""), ("IMAGE_PROXY", "")],
            text
        ),
        text
    );
}

#[path = "../../kopsrs-registry/tests/support/mod.rs"]
mod registry;

#[test]
fn get_assets_copies_the_images_byte_for_byte_to_the_container_registry() {
    // A plays the pull-through proxy the copy reads upstream images through; B is the
    // cluster's registry.
    let a = registry::Registry::start();
    let b = registry::Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let manifest = "kind: DaemonSet\nspec:\n  template:\n    spec:\n      containers:\n      - name: kindnet\n        image: docker.io/kindest/kindnetd:v20250512\n";
    let manifest_file = dir.path().join("kindnet.yaml");
    std::fs::write(&manifest_file, manifest).unwrap();
    let channel = dir.path().join("channel.yaml");
    std::fs::write(
        &channel,
        format!(
            "kubernetes:\n  recommended: 1.34.1\n  minors:\n    \"1.34\": 1.34.1\naddons:\n- name: kindnet\n  version: '1'\n  kind: manifest\n  url: file://{}\n  sha256: {}\n",
            manifest_file.display(),
            hex(manifest.as_bytes())
        ),
    )
    .unwrap();
    let state = cluster(dir.path(), &["--networking", "kindnet"]);
    let mirror = format!("{}/mirror", b.host());
    set(
        &state,
        &[
            format!("spec.channel={}", channel.display()),
            format!("spec.assets.containerProxy={}", a.host()),
            format!("spec.assets.containerRegistry={mirror}"),
        ],
    );
    let listed = json(&ok(kopsrs(&state)
        .env("KOPSRS_K8S_APT_REPO", "http://127.0.0.1:1/deb")
        .args(["get", "assets", NAME, "-o", "json"])));
    let pairs = images(&listed);
    assert_eq!(
        pairs.len(),
        9,
        "kubeadm's seven, kindnet's and the termination handler's: {pairs:?}"
    );

    // Upstream, as the proxy serves it: an index over two platforms for most, a Docker
    // schema 2 manifest for one; one image missing.
    let missing = "registry.k8s.io/kube-scheduler:v1.34.1";
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = registry::http_client();
    let mut upstream = std::collections::BTreeMap::new();
    for (i, (image, _)) in pairs.iter().enumerate() {
        if image == missing {
            continue;
        }
        let proxied = kopsrs_bootstrap::assets::proxy_name(image, &a.host());
        let target = registry::reference(&proxied);
        let digest = runtime.block_on(async {
            if i % 3 == 2 {
                let one = registry::image("amd64", true);
                registry::push_image(
                    &client,
                    &target,
                    &one,
                    Some(target.tag().unwrap()),
                    registry::DOCKER_MANIFEST,
                )
                .await;
                one.digest
            } else {
                let amd64 = registry::image("amd64", false);
                let arm64 = registry::image("arm64", false);
                registry::push_image(&client, &target, &amd64, None, registry::OCI_MANIFEST).await;
                registry::push_image(&client, &target, &arm64, None, registry::OCI_MANIFEST).await;
                let (bytes, digest) = registry::index(&[("amd64", &amd64), ("arm64", &arm64)]);
                client
                    .push_manifest_raw(&target, bytes, registry::OCI_INDEX.parse().unwrap())
                    .await
                    .unwrap();
                digest
            }
        });
        upstream.insert(image.clone(), digest);
    }

    let copy = || {
        let mut c = kopsrs(&state);
        // The package index on a closed loopback port: files are not copied here.
        c.env("KOPSRS_K8S_APT_REPO", "http://127.0.0.1:1/deb")
            .args(["get", "assets", NAME, "--copy=images"]);
        c.output().unwrap()
    };
    let out = copy();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "one image is missing upstream: {err}"
    );
    assert!(
        err.contains("Copied 0 file(s)") && err.contains("and 8 image(s)"),
        "{err}"
    );
    assert!(
        err.contains("not copied") && err.contains(&format!("{}/kube-scheduler:v1.34.1", a.host())),
        "the missing image is named as the copy read it: {err}"
    );
    // Every other image is at the name nodes pull, with upstream's digest.
    let copier = kopsrs_registry::Copier::new();
    for (image, mirrored) in &pairs {
        let at_b = runtime.block_on(copier.digest(mirrored)).unwrap();
        match upstream.get(image) {
            Some(digest) => assert_eq!(
                at_b.as_deref(),
                Some(digest.as_str()),
                "{image} at {mirrored}"
            ),
            None => assert_eq!(at_b, None, "{image}"),
        }
        assert!(mirrored.starts_with(&format!("{mirror}/")), "{mirrored}");
    }
    assert!(pairs
        .iter()
        .any(|(i, m)| i == "docker.io/kindest/kindnetd:v20250512"
            && *m == format!("{mirror}/docker.io-kindest-kindnetd:v20250512")));

    // Once upstream has it, a second copy completes.
    let proxied = registry::reference(&kopsrs_bootstrap::assets::proxy_name(missing, &a.host()));
    let one = registry::image("arm64", true);
    runtime.block_on(registry::push_image(
        &client,
        &proxied,
        &one,
        Some("v1.34.1"),
        registry::DOCKER_MANIFEST,
    ));
    let out = copy();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("and 9 image(s)"), "{err}");
    let scheduler = format!("{mirror}/kube-scheduler:v1.34.1");
    assert_eq!(
        runtime.block_on(copier.digest(&scheduler)).unwrap(),
        Some(one.digest)
    );
}

#[test]
fn get_assets_copies_files_to_an_s3_file_repository() {
    let moto = support::Moto::start();
    moto.create_bucket("state");
    moto.create_bucket("mirror");
    let dir = tempfile::tempdir().unwrap();
    let served = dir.path().join("served");
    let debs = apt_repo(&served);
    let server = FileServer::start(&served);
    let manifest = "kind: DaemonSet\nspec:\n  template:\n    spec:\n      containers:\n      - image: docker.io/kindest/kindnetd:v1\n";
    let manifest_file = dir.path().join("kindnet.yaml");
    std::fs::write(&manifest_file, manifest).unwrap();
    let channel = dir.path().join("channel.yaml");
    std::fs::write(
        &channel,
        format!(
            "kubernetes:\n  recommended: 1.34.1\n  minors:\n    \"1.34\": 1.34.1\naddons:\n- name: kindnet\n  version: '1'\n  kind: manifest\n  url: file://{}\n",
            manifest_file.display()
        ),
    )
    .unwrap();
    let k = || {
        let mut c = moto.kopsrs("state");
        c.env("KOPSRS_K8S_APT_REPO", format!("{}/deb", server.url));
        c
    };
    ok(k()
        .args(["create", "cluster", NAME, "--zones", "us-east-1a"])
        .args(["--kubernetes-version", "1.34.1", "--networking", "kindnet"]));
    ok(k()
        .args(["edit", "cluster", NAME])
        .arg("--set")
        .arg(format!("spec.channel={}", channel.display()))
        .arg("--set")
        .arg("spec.assets.fileRepository=https://mirror.s3.us-east-1.amazonaws.com/k8s"));
    let out = ok(k().args(["get", "assets", NAME, "--copy=files"]));
    let said = String::from_utf8_lossy(&out.stderr);
    // The index's five files, the amd64 packages and the manifest.
    assert!(said.contains("Copied 11 file(s)"), "{said}");
    let keys = moto
        .python("for o in aws('s3').list_objects_v2(Bucket='mirror')['Contents']: print(o['Key'])");
    let deb = "amd64/kubeadm_1.34.1-1.1_amd64.deb";
    let key = format!("k8s/core:/stable:/v1.34/deb/{deb}");
    assert!(keys.lines().any(|l| l == key), "{keys}");
    let body = moto.python(&format!(
        "import hashlib\nprint(hashlib.sha256(aws('s3').get_object(Bucket='mirror', Key='{key}')['Body'].read()).hexdigest())"
    ));
    assert_eq!(body.trim(), debs[deb]);
    let manifest_key = format!("k8s{}", manifest_file.display());
    assert!(keys.lines().any(|l| l == manifest_key), "{keys}");
    // Again: the bucket has every file with its sha256; nothing is copied.
    let out = ok(k().args(["get", "assets", NAME, "--copy=files"]));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("Copied 0 file(s)"), "{said}");
}
