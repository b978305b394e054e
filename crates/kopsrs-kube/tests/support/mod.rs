//! Test harness: scripts/fake_kube.py on loopback (the API with a real server's semantics),
//! and an in-process HTTP double for answers the fake cannot be made to give.
#![allow(dead_code)]

pub mod double;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kopsrs_kube::Kube;
use serde_json::{json, Value};

/// The cluster, and the context of every kubeconfig written here.
pub const CLUSTER: &str = "t.example.com";

/// The repository root, from the crate's manifest directory (at run time: test binaries in a
/// shared target directory may have been built from another clone).
pub fn repo_root() -> PathBuf {
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"))
        .join("../..")
}

/// A kubeconfig in `dir` whose context, cluster and user are named [`CLUSTER`], for `url`.
pub fn write_kubeconfig(dir: &Path, url: &str) -> PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: {CLUSTER}\n  cluster:\n    server: {url}\n\
             contexts:\n- name: {CLUSTER}\n  context:\n    cluster: {CLUSTER}\n    user: {CLUSTER}\n\
             current-context: {CLUSTER}\nusers:\n- name: {CLUSTER}\n  user: {{}}\n"
        ),
    )
    .unwrap();
    path
}

/// Polls `done` every 20 ms; fails the test naming `what` after 10 s.
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(10), "never: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// scripts/fake_kube.py without the EC2 node simulator, on a free loopback port; stopped on
/// drop.
pub struct FakeKube {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
    /// The API's URL.
    pub url: String,
    /// A kubeconfig whose context is named [`CLUSTER`].
    pub kubeconfig: PathBuf,
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

impl FakeKube {
    /// The fake with `args` added (`--kubernetes-version v1.31.2`, `--grace 0.05`).
    pub fn start(args: &[&str]) -> FakeKube {
        let dir = tempfile::tempdir().unwrap();
        let port_file = dir.path().join("port");
        let child = Command::new("python3")
            .arg(repo_root().join("scripts/fake_kube.py"))
            .args(["-p", "0", "--port-file"])
            .arg(&port_file)
            .args(["--cluster", CLUSTER, "--grace", "0.05"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs scripts/fake_kube.py");
        let started = Instant::now();
        // The fake writes the file whole (rename), so it is either absent or complete.
        while !port_file.exists() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "fake_kube did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let port: u16 = std::fs::read_to_string(&port_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let kubeconfig = write_kubeconfig(dir.path(), &url);
        FakeKube {
            child,
            dir,
            port,
            url,
            kubeconfig,
        }
    }

    /// The crate's client for this API.
    pub async fn kube(&self) -> Kube {
        Kube::connect(CLUSTER, std::slice::from_ref(&self.kubeconfig))
            .await
            .unwrap()
    }

    /// One HTTP/1.1 request with a JSON body (`application/merge-patch+json` for PATCH): the
    /// status code and the body as JSON (`Null` when empty or not JSON).
    pub fn request(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let body = body.map(Value::to_string).unwrap_or_default();
        let content_type = match method {
            "PATCH" => "application/merge-patch+json",
            _ => "application/json",
        };
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: {content_type}\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.port,
            body.len()
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let code = response
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("no status line in {response:?}"));
        let text = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        (code, serde_json::from_str(text).unwrap_or(Value::Null))
    }

    /// A GET answered 200: its body.
    pub fn get(&self, path: &str) -> Value {
        let (code, body) = self.request("GET", path, None);
        assert_eq!(code, 200, "GET {path}: {body}");
        body
    }

    /// Whether `path` exists (200) or not (404).
    pub fn exists(&self, path: &str) -> bool {
        match self.request("GET", path, None) {
            (200, _) => true,
            (404, _) => false,
            (code, body) => panic!("GET {path}: {code} {body}"),
        }
    }

    /// A POST answered 201 (or 200, the fake's control paths): the created object.
    pub fn create(&self, path: &str, body: Value) -> Value {
        let (code, out) = self.request("POST", path, Some(&body));
        assert!(code == 201 || code == 200, "POST {path}: {code} {out}");
        out
    }

    /// A JSON merge patch answered 200, as another client (`kubectl edit`) would send it.
    pub fn patch(&self, path: &str, patch: Value) -> Value {
        let (code, out) = self.request("PATCH", path, Some(&patch));
        assert_eq!(code, 200, "PATCH {path}: {out}");
        out
    }

    /// The fake's settings (`/__fake/config`): `{"crd_establish_after": 60}`.
    pub fn configure(&self, settings: Value) {
        self.create("/__fake/config", settings);
    }

    /// A Node with a simulated kubelet (Ready at once), through `/__fake/nodes`; `extra` is
    /// merged into the request (`labels`, `taints`, `provider_id`, `zone`).
    pub fn add_node(&self, name: &str, role: &str, extra: Value) {
        let mut body = json!({"name": name, "role": role});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().cloned().unwrap_or_default());
        self.create("/__fake/nodes", body);
    }

    /// A pod bound to `node` (no scheduler involved), merged with `extra`; default namespace
    /// unless `extra` names one.
    pub fn add_pod(&self, name: &str, node: &str, extra: Value) -> Value {
        let mut pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
            "spec": {"nodeName": node, "containers": [{"name": "main", "image": "busybox"}]},
        });
        merge(&mut pod, extra);
        let ns = pod["metadata"]["namespace"].as_str().unwrap().to_string();
        self.create(&format!("/api/v1/namespaces/{ns}/pods"), pod)
    }

    /// Waits until `namespace/name` is Running and Ready (the simulated kubelet's work).
    pub fn wait_running(&self, namespace: &str, name: &str) {
        let path = format!("/api/v1/namespaces/{namespace}/pods/{name}");
        wait_until(&format!("{namespace}/{name} Running and Ready"), || {
            let pod = self.get(&path);
            pod["status"]["phase"] == "Running"
                && pod["status"]["conditions"].as_array().is_some_and(|c| {
                    c.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
        });
    }

    /// The names (`namespace/name`) of the pods bound to `node`, sorted.
    pub fn pods_on(&self, node: &str) -> Vec<String> {
        let list = self.get(&format!(
            "/api/v1/pods?fieldSelector=spec.nodeName%3D{node}"
        ));
        let mut names: Vec<String> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                format!(
                    "{}/{}",
                    p["metadata"]["namespace"].as_str().unwrap(),
                    p["metadata"]["name"].as_str().unwrap()
                )
            })
            .collect();
        names.sort();
        names
    }

    /// The calls the fake counted since the start or the last [`FakeKube::reset_calls`], by
    /// call (`"create pods/eviction"`) or by call and status (`"create pods/eviction 429"`).
    pub fn calls(&self, key: &str) -> u64 {
        let calls = self.get("/__fake/calls");
        let by = if key.ends_with(|c: char| c.is_ascii_digit()) {
            "by_status"
        } else {
            "by_call"
        };
        calls[by][key].as_u64().unwrap_or(0)
    }

    /// Forgets the calls counted so far.
    pub fn reset_calls(&self) {
        let (code, _) = self.request("DELETE", "/__fake/calls", None);
        assert_eq!(code, 200);
    }
}

/// `extra` merged into `base` (objects key by key, anything else replaced).
pub fn merge(base: &mut Value, extra: Value) {
    match (base, extra) {
        (Value::Object(base), Value::Object(extra)) => {
            for (key, value) in extra {
                merge(base.entry(key).or_insert(Value::Null), value);
            }
        }
        (base, extra) => *base = extra,
    }
}
