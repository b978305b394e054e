//! scripts/fake_kube.py as a test component: a Kubernetes API on loopback whose node
//! simulator turns the cluster's running instances in moto into Nodes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{repo_root, Moto};

pub struct FakeKube {
    child: Child,
    /// The API's URL.
    pub url: String,
    /// A kubeconfig whose context is named after the cluster.
    pub kubeconfig: PathBuf,
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

impl FakeKube {
    pub fn start(dir: &Path, moto: &Moto, cluster: &str, extra: &[&str]) -> FakeKube {
        let mut args = vec!["--aws-endpoint", &moto.endpoint];
        args.extend(["--region", "eu-west-1", "--sync-interval", "0.2"]);
        args.extend(extra);
        let (key, secret) = moto.credentials.lock().unwrap().clone();
        FakeKube::spawn(dir, cluster, &args, (&key, &secret))
    }

    /// The API alone, without nodes simulated from EC2.
    pub fn standalone(dir: &Path, cluster: &str) -> FakeKube {
        FakeKube::spawn(dir, cluster, &[], ("testing", "testing"))
    }

    /// `credentials`: the AWS key the node simulator reads EC2 with (an administrator's once
    /// moto enforces IAM).
    fn spawn(dir: &Path, cluster: &str, args: &[&str], credentials: (&str, &str)) -> FakeKube {
        let port_file = dir.join("kube-port");
        let child = Command::new("python3")
            .arg(repo_root().join("scripts/fake_kube.py"))
            .args(["-p", "0", "--port-file"])
            .arg(&port_file)
            .args(["--cluster", cluster])
            .args(args)
            .env("AWS_ACCESS_KEY_ID", credentials.0)
            .env("AWS_SECRET_ACCESS_KEY", credentials.1)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = std::time::Instant::now();
        while !port_file.exists() || std::fs::read_to_string(&port_file).unwrap().is_empty() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "fake_kube did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let port = std::fs::read_to_string(&port_file).unwrap();
        let url = format!("http://127.0.0.1:{}", port.trim());
        let kubeconfig = dir.join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: {cluster}\n  cluster:\n    server: {url}\n\
                 contexts:\n- name: {cluster}\n  context:\n    cluster: {cluster}\n    user: {cluster}\n\
                 current-context: {cluster}\nusers:\n- name: {cluster}\n  user: {{}}\n"
            ),
        )
        .unwrap();
        FakeKube {
            child,
            url,
            kubeconfig,
        }
    }

    /// A control request to the fake (`/__fake/...`).
    pub fn control(&self, method: &str, path: &str, body: &str) {
        let status = Command::new("curl")
            .args([
                "-sSf",
                "-o",
                "/dev/null",
                "-X",
                method,
                "-H",
                "Content-Type: application/json",
            ])
            .args(["--data", body])
            .arg(format!("{}{path}", self.url))
            .status()
            .unwrap();
        assert!(status.success(), "{method} {path}");
    }

    /// A GET on the API or the fake's control paths, as JSON.
    pub fn get(&self, path: &str) -> serde_json::Value {
        let out = Command::new("curl")
            .args(["-sSf"])
            .arg(format!("{}{path}", self.url))
            .output()
            .unwrap();
        assert!(out.status.success(), "GET {path}");
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// `kubectl` against the fake, through the kubeconfig.
    pub fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> std::process::Output {
        use std::io::Write;
        let mut child = Command::new("kubectl")
            .env("KUBECONFIG", &self.kubeconfig)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        drop(child.stdin.take());
        child.wait_with_output().unwrap()
    }
}

/// A kubeconfig without any context: kopsrs finds none for the cluster.
pub fn empty_kubeconfig(dir: &Path) -> PathBuf {
    let path = dir.join("empty-kubeconfig");
    std::fs::write(
        &path,
        "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n",
    )
    .unwrap();
    path
}
