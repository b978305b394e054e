//! The simulated boot: stub commands on PATH that record their arguments, a fake instance
//! metadata service per node, and the user-data script run as an instance would run it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{free_port, Moto};

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
    ("crictl", ""),
    (
        "ctr",
        // `run ... etcdutl snapshot restore DB --data-dir DIR ...`: DIR/member/snap/db holds
        // DB (paths inside the container are the volume's, /var/lib/etcd).
        r#"case "$*" in
  *"snapshot restore"*)
    db=$(echo "$*" | sed 's/.*snapshot restore \([^ ]*\).*/\1/')
    dir=$(echo "$*" | sed 's/.*--data-dir \([^ ]*\).*/\1/')
    mkdir -p "$KOPSRS_ROOT$dir/member/snap"
    cp "$KOPSRS_ROOT$db" "$KOPSRS_ROOT$dir/member/snap/db" ;;
esac"#,
    ),
    (
        "gpg",
        r#"while [ $# -gt 0 ]; do [ "$1" = -o ] && { cat >"$2"; exit 0; }; shift; done"#,
    ),
    ("containerd", r#"echo 'SystemdCgroup = false'"#),
    ("blkid", r#"[ -e "$1.fs" ]"#),
    ("mkfs.ext4", r#"touch "${!#}.fs""#),
    (
        "helm",
        r##"echo "# rendered chart $2 from $(sha256sum <"$3" | cut -c1-12)"
# The values it was given (`-f FILE`, the seventh argument), as comments.
[ -n "${7:-}" ] && sed 's/^/# values: /' "$7""##,
    ),
    (
        "kubeadm",
        r#"case "$1 $2" in
  "token generate") printf 't%05d.0123456789abcdef\n' $((RANDOM % 100000)) ;;
  "token create") echo ghijkl.0123456789abcdef ;;
  "config images") echo registry.k8s.io/etcd:3.6.4-0 ;;
  "join --config"|"init --config")
    # A join (or init) the test makes fail: exit 1 before anything is written.
    [ -e "$KOPSRS_ROOT/fail-$1" ] && exit 1
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
  *"endpoint status"*)
    # This member leads when the test made it the leader.
    leader=1; [ -e "$KOPSRS_ROOT/etcd-leader" ] && leader=17
    printf '[{"Endpoint":"https://127.0.0.1:2379","Status":{"header":{"cluster_id":5,"member_id":17,"revision":4242,"raft_term":3},"version":"3.6.4","dbSize":24576,"leader":%s}}]' "$leader" ;;
  *"snapshot save"*)
    mkdir -p "$KOPSRS_ROOT/var/lib/etcd/data"
    echo "snapshot of $KOPSRS_ROOT at $(date +%s%N)" >"$KOPSRS_ROOT${args##* }" ;;
  *"member list"*) printf '{"members":[{"ID":%s,"name":"a","peerURLs":["https://%s:2380"]},{"ID":255,"name":"gone","peerURLs":["https://10.9.9.9:2380"]}]}' 17 "$(cut -d' ' -f1 "$KOPSRS_CONTROL_PLANE_IPS")" ;;
  *"get csr -o json"*) cat "$KOPSRS_ROOT/csrs.json" 2>/dev/null || echo '{"items":[]}' ;;
  *"get secrets -l kopsrs.k8s.io/instance -o json"*)
    python3 -c 'import glob, json, sys, yaml
docs = [d for f in sorted(glob.glob(sys.argv[1] + "/applied-*.yaml")) for d in yaml.safe_load_all(open(f))]
print(json.dumps({"items": [d for d in docs if d and d.get("kind") == "Secret" and "kopsrs.k8s.io/instance" in d["metadata"].get("labels", {})]}))' "$KOPSRS_ROOT" ;;
  *" create -f -"*)
    # As the API does: a second object of the same kind and name is AlreadyExists.
    new=$(cat)
    name=$(printf '%s\n' "$new" | sed -n 's/^  name: //p' | head -n1)
    if grep -qs "^  name: $name\$" "$KOPSRS_ROOT"/applied-*.yaml; then
      echo "Error from server (AlreadyExists): secrets \"$name\" already exists" >&2
      exit 1
    fi
    printf '%s\n' "$new" >"$KOPSRS_ROOT/applied-$(date +%s%N).yaml"
    echo "kubectl-create $name" >>"$KOPSRS_ROOT/calls.log" ;;
  *" get "*"managedFields"*)
    # An object's kopsrs.io/addon annotation and managers: the test's generated addon's and
    # kopsrs, unless the test made another manager own it or left the annotation off (an
    # object that only looks like ours).
    object=$(echo "$args" | cut -d' ' -f5)
    if [ -e "$KOPSRS_ROOT/foreign-$object" ]; then echo "|kubectl-client-side-apply"
    elif [ -e "$KOPSRS_ROOT/unannotated-$object" ]; then echo "|kopsrs"
    else echo "generated|kopsrs"; fi ;;
  *" delete "*)
    echo "kubectl-delete $(echo "$args" | cut -d' ' -f4-5)" >>"$KOPSRS_ROOT/calls.log" ;;
  *" apply "*)
    file=$(echo "$args" | sed 's/.* -f //')
    if [ "$file" = - ]; then
      file="$KOPSRS_ROOT/applied-$(date +%s%N).yaml"
      cat >"$file"
    fi
    sum=$(sha256sum <"$file" | cut -c1-12)
    echo "kubectl-apply $sum" >>"$KOPSRS_ROOT/calls.log" ;;
esac"#,
    ),
];

pub struct Node {
    pub root: PathBuf,
    /// The API the node probes (KOPSRS_API_URL): the metadata service, which answers, unless a
    /// test makes the API dead ([`Node::api_dead`]).
    pub api: String,
    imds: Child,
    pub imds_url: String,
    pub instance_id: String,
    /// The instance role's session, as the metadata service serves it.
    pub credentials: serde_json::Value,
}

impl Node {
    /// No API answers this node (a port nothing listens on).
    pub fn api_dead(mut self) -> Node {
        self.api = format!("http://127.0.0.1:{}", free_port());
        self
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.imds.kill().ok();
        self.imds.wait().ok();
    }
}

/// A node: its root directory and a fake metadata service handing out a session of its
/// instance role (moto's IAM checks every call the node makes with it).
pub fn start_node(
    moto: &super::Moto,
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
    let credentials = moto.instance_role_credentials(instance_id);
    let parsed: serde_json::Value = serde_json::from_str(&credentials).unwrap();
    // The name EC2 gives the instance, which the metadata service serves as its hostname.
    let hostname = moto.ec2_name(instance_id);
    let credentials_file = dir.join(format!("{label}-credentials.json"));
    std::fs::write(&credentials_file, credentials).unwrap();
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
        .arg("--credentials")
        .arg(&credentials_file)
        .args(["--hostname", &hostname])
        .spawn()
        .unwrap();
    super::wait_for_port(port, Duration::from_secs(20), "fake IMDS");
    Node {
        root,
        api: format!("http://127.0.0.1:{port}"),
        imds,
        imds_url: format!("http://127.0.0.1:{port}"),
        instance_id: instance_id.to_string(),
        credentials: parsed,
    }
}

/// Runs the user-data script (or `kopsrs-node COMMAND`) as the instance would.
pub fn run(node: &Node, script: &Path, command: &str, stubs: &Path, cp_ips: &Path) -> Child {
    run_with(node, script, command, stubs, cp_ips, &[])
}

/// As [`run`], with more environment (`KOPSRS_NOW`: the script's clock).
pub fn run_with(
    node: &Node,
    script: &Path,
    command: &str,
    stubs: &Path,
    cp_ips: &Path,
    env: &[(&str, &str)],
) -> Child {
    Command::new("bash")
        .arg(script)
        .arg(command)
        .env("KOPSRS_ROOT", &node.root)
        .env("KOPSRS_IMDS_URL", &node.imds_url)
        .env("KOPSRS_API_URL", &node.api)
        .env("KOPSRS_K8S_APT_REPO", format!("{}/files", node.imds_url))
        .env("KOPSRS_POLL_SECONDS", "1")
        .env("KOPSRS_CONTROL_PLANE_IPS", cp_ips)
        .env(
            "PATH",
            format!("{}:{}", stubs.display(), std::env::var("PATH").unwrap()),
        )
        .envs(env.iter().copied())
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

/// What the node's `kubectl apply -f -` was given (the stub keeps each as `applied-*.yaml`),
/// the applies whose text contains `needle`.
pub fn applied_with(node: &Node, needle: &str) -> Vec<String> {
    std::fs::read_dir(&node.root)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("applied-"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .filter(|t| t.contains(needle))
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

pub const IMAGE: &str =
    "099720109477/ubuntu/images/hvm-ssd/ubuntu-xenial-16.04-amd64-server-20170721";

/// A cluster applied to moto (in eu-west-1, with the DNS zone example.com), its user-data
/// by group, the stubs, and the directory for nodes' files (the fake IMDS serves the APT key
/// from it). IAM is enforced once it is applied.
pub struct Cluster {
    pub moto: Moto,
    pub dir: tempfile::TempDir,
    pub name: &'static str,
    pub stubs: PathBuf,
    pub files: PathBuf,
}

impl Cluster {
    /// `create cluster NAME ARGS --yes` applied, rendered and ready to boot.
    pub fn apply(name: &'static str, args: &[&str]) -> Cluster {
        Cluster::apply_with(name, args, |_| {})
    }

    /// As [`Cluster::apply`], with `before` run on the created spec before `update --yes`.
    pub fn apply_with(name: &'static str, args: &[&str], before: impl FnOnce(&Moto)) -> Cluster {
        let moto = Moto::start();
        moto.create_bucket("state");
        moto.python("aws('route53').create_hosted_zone(Name='example.com', CallerReference='t')");
        let dir = tempfile::tempdir().unwrap();
        let k = || {
            let mut c = moto.kopsrs("state");
            c.env("AWS_REGION", "eu-west-1");
            c
        };
        let ok = |mut c: Command| {
            let out = c.output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let mut create = k();
        create
            .args(["create", "cluster", "--name", name])
            .args(args)
            .args(["--image", IMAGE]);
        if !args.contains(&"--dns") {
            create.args(["--dns-zone", "example.com"]);
        }
        ok(create);
        before(&moto);
        let mut update = k();
        update.args(["update", "cluster", name, "--yes"]);
        ok(update);
        let tf = dir.path().join("tf");
        let mut render = k();
        render
            .args(["update", "cluster", name, "--target", "terraform", "--out"])
            .arg(&tf);
        ok(render);
        // No addons: the channel names upstream URLs this machine must not reach.
        moto.python(&format!(
            "aws('s3').delete_object(Bucket='state', Key='clusters/{name}/addons/bootstrap-channel.yaml')"
        ));
        for entry in std::fs::read_dir(tf.join("data")).unwrap().flatten() {
            let file = entry.file_name().to_string_lossy().to_string();
            if let Some(group) = file
                .strip_prefix("aws_launch_template_")
                .and_then(|f| f.strip_suffix("_user_data"))
            {
                std::fs::copy(entry.path(), dir.path().join(format!("{group}.sh"))).unwrap();
            }
        }
        let files = dir.path().join("files");
        std::fs::create_dir_all(&files).unwrap();
        std::fs::write(files.join("Release.key"), "fake key").unwrap();
        let stubs = write_stubs(dir.path());
        // Every node signs with its own instance role, which moto checks.
        moto.enforce_iam();
        Cluster {
            moto,
            dir,
            name,
            stubs,
            files,
        }
    }

    /// The instance (ID, zone, private IP) the group's auto scaling group started.
    pub fn instance(&self, group: &str) -> (String, String, String) {
        let out = self.moto.python(&format!(
            "g=aws('autoscaling').describe_auto_scaling_groups(AutoScalingGroupNames=['{group}'])['AutoScalingGroups'][0]['Instances'][0]\n\
             i=aws('ec2').describe_instances(InstanceIds=[g['InstanceId']])['Reservations'][0]['Instances'][0]\n\
             print(g['InstanceId'], g['AvailabilityZone'], i['PrivateIpAddress'])"
        ));
        let parts: Vec<String> = out.split_whitespace().map(str::to_string).collect();
        (parts[0].clone(), parts[1].clone(), parts[2].clone())
    }

    pub fn node(&self, label: &str, (id, zone, ip): &(String, String, String)) -> Node {
        start_node(
            &self.moto,
            self.dir.path(),
            label,
            id,
            ip,
            zone,
            &self.files,
        )
    }

    /// The user-data script of a control-plane group in `zone`.
    pub fn script(&self, zone: &str) -> PathBuf {
        self.user_data(&format!("control-plane-{zone}.masters.{}", self.name))
    }

    /// The user-data script of the instance group whose launch template is `template`.
    pub fn user_data(&self, template: &str) -> PathBuf {
        let path = self.dir.path().join(format!("{template}.sh"));
        assert!(path.exists(), "{}", path.display());
        path
    }

    pub fn state(&self, key: &str) -> Option<String> {
        let out = self.moto.python(&format!(
            "try:\n    print(aws('s3').get_object(Bucket='state', Key='clusters/{}/{key}')['Body'].read().decode().strip())\n\
             except aws('s3').exceptions.NoSuchKey:\n    print('<none>')",
            self.name
        ));
        let out = out.trim().to_string();
        (out != "<none>").then_some(out)
    }

    pub fn put_state(&self, key: &str, body: &str) {
        self.moto.python(&format!(
            "aws('s3').put_object(Bucket='state', Key='clusters/{}/{key}', Body={body:?})",
            self.name
        ));
    }

    pub fn cp_ips(&self, ips: &str) -> PathBuf {
        let path = self.dir.path().join("cp-ips");
        std::fs::write(&path, ips).unwrap();
        path
    }
}

/// The election record's holder (its first word; the second is when it took the election).
pub fn holder(c: &Cluster) -> String {
    c.state("bootstrap/init-lock")
        .unwrap_or_default()
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// An API that answers at the node's KOPSRS_API_URL from now on (any HTTP status is an
/// answer): a plain HTTP server on that port.
pub struct Api(Child);

impl Api {
    pub fn start(node: &Node) -> Api {
        let port: u16 = node.api.rsplit(':').next().unwrap().parse().unwrap();
        let child = Command::new("python3")
            .args(["-m", "http.server", "--bind", "127.0.0.1"])
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        super::wait_for_port(port, Duration::from_secs(20), "the API stand-in");
        Api(child)
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}
