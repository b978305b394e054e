//! The simulated boot: stub commands on PATH that record their arguments, a fake instance
//! metadata service per node, and the user-data script run as an instance would run it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::free_port;

/// Stub commands: each records its arguments in $KOPSRS_ROOT/calls.log, and the few whose
/// output the script reads answer as the real ones would.
const STUBS: &[(&str, &str)] = &[
    ("apt-get", ""),
    ("apt-mark", ""),
    ("modprobe", ""),
    ("sysctl", ""),
    ("swapoff", ""),
    ("systemctl", ""),
    ("mount", ""),
    (
        "apt-cache",
        r#"echo "   kubeadm | 1.34.1-1.1 | $KOPSRS_K8S_APT_REPO Packages""#,
    ),
    ("dpkg", "echo amd64"),
    (
        "gpg",
        r#"while [ $# -gt 0 ]; do [ "$1" = -o ] && { cat >"$2"; exit 0; }; shift; done"#,
    ),
    ("containerd", r#"echo 'SystemdCgroup = false'"#),
    ("blkid", r#"[ -e "$1.fs" ]"#),
    ("mkfs.ext4", r#"touch "${!#}.fs""#),
    (
        "helm",
        r##"echo "# rendered chart $2 from $(sha256sum <"$3" | cut -c1-12)""##,
    ),
    (
        "kubeadm",
        r#"case "$1 $2" in
  "token generate") echo abcdef.0123456789abcdef ;;
  "token create") echo ghijkl.0123456789abcdef ;;
  "init --config"|"join --config")
    cp "$3" "$KOPSRS_ROOT/kubeadm-$1.yaml"
    mkdir -p "$KOPSRS_ROOT/etc/kubernetes/pki"
    touch "$KOPSRS_ROOT/etc/kubernetes/kubelet.conf" "$KOPSRS_ROOT/etc/kubernetes/pki/ca.crt"
    [ "$1" = join ] && ! grep -q controlPlane: "$3" || touch "$KOPSRS_ROOT/etc/kubernetes/admin.conf" ;;
esac"#,
    ),
    (
        "kubectl",
        r#"args="$*"
case "$args" in
  *"get configmap kubeadm-config"*) printf 'apiServer: {}\nkubernetesVersion: v1.34.1\n' ;;
  *"get nodes"*) cat "$KOPSRS_CONTROL_PLANE_IPS" ;;
  *"member list"*) printf '{"members":[{"ID":%s,"name":"a","peerURLs":["https://%s:2380"]},{"ID":255,"name":"gone","peerURLs":["https://10.9.9.9:2380"]}]}' 17 "$(cut -d' ' -f1 "$KOPSRS_CONTROL_PLANE_IPS")" ;;
  *" apply "*)
    file=$(echo "$args" | sed 's/.* -f //')
    if [ "$file" = - ]; then sum=$(sha256sum | cut -c1-12); else sum=$(sha256sum <"$file" | cut -c1-12); fi
    echo "kubectl-apply $sum" >>"$KOPSRS_ROOT/calls.log" ;;
esac"#,
    ),
];

pub struct Node {
    pub root: PathBuf,
    imds: Child,
    pub imds_url: String,
    pub instance_id: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        self.imds.kill().ok();
        self.imds.wait().ok();
    }
}

pub fn start_node(
    dir: &Path,
    label: &str,
    instance_id: &str,
    ip: &str,
    zone: &str,
    files: &Path,
) -> Node {
    let root = dir.join(label);
    std::fs::create_dir_all(root.join("dev")).unwrap();
    // The etcd volume's device, as it appears once attached.
    std::fs::write(root.join("dev/xvdu"), "").unwrap();
    let port = free_port();
    let script = super::repo_root().join("scripts/fake_imds.py");
    let imds = Command::new("python3")
        .arg(script)
        .args([
            "--port",
            &port.to_string(),
            "--instance-id",
            instance_id,
            "--ip",
            ip,
            "--zone",
            zone,
            "--files",
        ])
        .arg(files)
        .spawn()
        .unwrap();
    super::wait_for_port(port, Duration::from_secs(20), "fake IMDS");
    Node {
        root,
        imds,
        imds_url: format!("http://127.0.0.1:{port}"),
        instance_id: instance_id.to_string(),
    }
}

/// Runs the user-data script (or `kopsrs-node COMMAND`) as the instance would.
pub fn run(node: &Node, script: &Path, command: &str, stubs: &Path, cp_ips: &Path) -> Child {
    Command::new("bash")
        .arg(script)
        .arg(command)
        .env("KOPSRS_ROOT", &node.root)
        .env("KOPSRS_IMDS_URL", &node.imds_url)
        .env("KOPSRS_K8S_APT_REPO", format!("{}/files", node.imds_url))
        .env("KOPSRS_POLL_SECONDS", "1")
        .env("KOPSRS_CONTROL_PLANE_IPS", cp_ips)
        .env(
            "PATH",
            format!("{}:{}", stubs.display(), std::env::var("PATH").unwrap()),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

pub fn finish(child: Child, what: &str) -> String {
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{what} failed:\n{stderr}");
    stderr
}

pub fn calls(node: &Node) -> Vec<String> {
    std::fs::read_to_string(node.root.join("calls.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

pub fn count(lines: &[String], prefix: &str) -> usize {
    lines.iter().filter(|l| l.starts_with(prefix)).count()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    let out = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write as _;
            c.stdin.take().unwrap().write_all(bytes)?;
            c.wait_with_output()
        })
        .unwrap();
    String::from_utf8_lossy(&out.stdout)[..64].to_string()
}

/// Writes the stub commands (and a recording wrapper around the real curl) under `dir/stubs`.
pub fn write_stubs(dir: &Path) -> PathBuf {
    let stubs = dir.join("stubs");
    std::fs::create_dir_all(&stubs).unwrap();
    for (name, body) in STUBS {
        let path = stubs.join(name);
        std::fs::write(
            &path,
            format!("#!/bin/bash\necho \"{name} $*\" >>\"$KOPSRS_ROOT/calls.log\"\n{body}\n"),
        )
        .unwrap();
        Command::new("chmod")
            .arg("755")
            .arg(&path)
            .status()
            .unwrap();
    }
    // curl runs for real; a wrapper records its command lines, which every user of an
    // instance can read, to prove no credential is among them.
    let real_curl =
        String::from_utf8(Command::new("which").arg("curl").output().unwrap().stdout).unwrap();
    std::fs::write(
        stubs.join("curl"),
        format!(
            "#!/bin/bash\necho \"curl $*\" >>\"$KOPSRS_ROOT/curl-args.log\"\nexec {} \"$@\"\n",
            real_curl.trim()
        ),
    )
    .unwrap();
    Command::new("chmod")
        .arg("755")
        .arg(stubs.join("curl"))
        .status()
        .unwrap();
    stubs
}
