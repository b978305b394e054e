//! Test harness: a kopsrs command against a temporary state store, and a moto server.
#![allow(dead_code)]

pub mod boot;
pub mod kube;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn kopsrs(state: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kopsrs"));
    command
        .env("KOPS_STATE_STORE", state)
        .env_remove("KOPS_CLUSTER_NAME")
        .env_remove("EDITOR")
        .env_remove("KUBE_EDITOR")
        .env_remove("VISUAL")
        // No download leaves this machine: tests that check addon pinning serve the files
        // themselves and turn downloads back on.
        .env("KOPSRS_DOWNLOAD_ADDONS", "false")
        // `update cluster --yes` exports a kubeconfig: never into the real ~/.kube/config.
        .env(
            "KUBECONFIG",
            std::env::temp_dir().join(format!("kopsrs-test-kubeconfig-{}", process_tag())),
        )
        // The first use of an S3 store records its bucket's owner: never in the real
        // ~/.config (every moto bucket is owned by moto's default account).
        .env("XDG_CONFIG_HOME", test_config_home())
        .env_remove("KOPS_STATE_STORE_OWNER");
    command.stdin(Stdio::null());
    command
}

/// The configuration directory of the kopsrs commands this test process runs.
pub fn test_config_home() -> PathBuf {
    std::env::temp_dir().join(format!("kopsrs-test-config-{}", process_tag()))
}

/// This test process's own tag: its PID and start time. A PID alone is reused by a later
/// test process, which then found an earlier one's kubeconfig (and its current context).
fn process_tag() -> &'static str {
    static TAG: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TAG.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        format!("{}-{nanos}", std::process::id())
    })
}

/// `update cluster CLUSTER --detailed-exitcode` with `command`: the exit code (0: no
/// changes, 2: changes; anything else fails the test) and the plan.
pub fn detailed_plan(mut command: Command, cluster: &str) -> (i32, String) {
    let output = command
        .args(["update", "cluster", cluster, "--detailed-exitcode"])
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let code = output.status.code().unwrap_or(-1);
    assert!(
        code == 0 || code == 2,
        "plan of {cluster} failed ({code}): {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    (code, stdout)
}

/// A `file://` state store in a temporary directory holding [`CLUSTER`], made with
/// `create -f DIR/cluster.yaml`: the directory (kept alive by the caller) and the store URL.
pub fn file_store_with_cluster() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let state = format!("file://{}/state", dir.path().display());
    let file = dir.path().join("cluster.yaml");
    std::fs::write(&file, CLUSTER).unwrap();
    let output = kopsrs(&state)
        .args(["create", "-f"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    (dir, state)
}

/// Every file under `dir` with its content, to prove a command wrote nothing.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(snapshot(&path));
            } else {
                out.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

pub const CLUSTER: &str = "apiVersion: kops.k8s.io/v1alpha2
kind: Cluster
metadata:
  name: test.example.com
spec:
  kubernetesVersion: v1.34.1
  networkCIDR: 172.20.0.0/16
  networking:
    cilium: {}
  subnets:
  - name: eu-west-1a
    zone: eu-west-1a
    type: Public
    cidr: 172.20.32.0/19
  etcdClusters:
  - name: main
    etcdMembers:
    - name: a
      instanceGroup: control-plane-eu-west-1a
  - name: events
    etcdMembers:
    - name: a
      instanceGroup: control-plane-eu-west-1a
---
apiVersion: kops.k8s.io/v1alpha2
kind: InstanceGroup
metadata:
  name: control-plane-eu-west-1a
  labels:
    kops.k8s.io/cluster: test.example.com
spec:
  role: Master
  machineType: t3.medium
  minSize: 1
  maxSize: 1
  subnets:
  - eu-west-1a
---
apiVersion: kops.k8s.io/v1alpha2
kind: InstanceGroup
metadata:
  name: nodes
  labels:
    kops.k8s.io/cluster: test.example.com
spec:
  role: Node
  minSize: 2
  maxSize: 4
  subnets:
  - eu-west-1a
";

/// The checkout the tests run from. Read at run time, not compile time: test binaries in a
/// shared CARGO_TARGET_DIR are reused by cargo across clones at other paths, and `env!`
/// would point at the clone that built them.
pub fn repo_root() -> PathBuf {
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"))
        .join("../..")
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until something listens on the loopback `port`; fails the test after `limit`.
pub fn wait_for_port(port: u16, limit: Duration, what: &str) {
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < limit, "{what} did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A moto server on a free loopback port, stopped on drop.
pub struct Moto {
    child: Child,
    pub endpoint: String,
    port: u16,
    /// The access key this harness and `kopsrs` sign with: moto's default until
    /// [`Moto::enforce_iam`], then an administrator's.
    pub credentials: std::sync::Mutex<(String, String)>,
}

impl Moto {
    pub fn start() -> Moto {
        let port = free_port();
        // scripts/moto_server.py: moto with atomic S3 conditional writes and a fault layer.
        let script = repo_root().join("scripts/moto_server.py");
        let child = Command::new("python3")
            .arg(script)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(match std::env::var_os("KOPSRS_MOTO_LOG") {
                // Where moto's own log goes when a test needs looking into.
                Some(path) => std::fs::File::create(path).unwrap().into(),
                None => Stdio::null(),
            })
            .spawn()
            .expect("python3 with moto[server] must be installed (scripts/test.sh installs it)");
        wait_for_port(port, Duration::from_secs(30), "moto_server");
        Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            port,
            credentials: std::sync::Mutex::new(("testing".into(), "testing".into())),
        }
    }

    /// One plain HTTP/1.1 request to the server; returns the response body.
    pub fn http(&self, method: &str, path: &str, body: &str) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.port,
            body.len()
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(
            response.starts_with("HTTP/1.1 200") || response.starts_with("HTTP/1.0 200"),
            "{response}"
        );
        response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_string())
            .unwrap_or_default()
    }

    /// Creates a bucket with a plain HTTP PUT (moto does not check signatures).
    pub fn create_bucket(&self, bucket: &str) {
        self.http("PUT", &format!("/{bucket}"), "");
    }

    /// Creates a bucket owned by another AWS account than moto's default (123456789012),
    /// which the default account can still reach, as a bucket policy may let anyone in.
    pub fn create_bucket_owned_by(&self, bucket: &str, account: &str) {
        self.python(&format!(
            "s=aws('s3', 'us-east-1')\n\
             s.meta.events.register('before-sign.s3.*', lambda request, **_: request.headers.__setitem__('x-moto-account-id', '{account}'))\n\
             s.create_bucket(Bucket='{bucket}')"
        ));
    }

    /// Sets the injected faults (`{"latency_ms": .., "throttle_every": .., "error_every": ..}`)
    /// and resets the call counters.
    pub fn faults(&self, config: serde_json::Value) {
        self.http("POST", "/__kopsrs/faults", &config.to_string());
    }

    /// The calls counted since the last `faults`: `total`, `injected`, `by_action`.
    pub fn calls(&self) -> serde_json::Value {
        serde_json::from_str(&self.http("GET", "/__kopsrs/calls", "")).unwrap()
    }

    /// A kopsrs command pointed at this server's S3.
    pub fn kopsrs(&self, bucket: &str) -> Command {
        let (key, secret) = self.credentials.lock().unwrap().clone();
        let mut command = kopsrs(&format!("s3://{bucket}/clusters"));
        command
            .env("AWS_ENDPOINT_URL", &self.endpoint)
            .env("AWS_ACCESS_KEY_ID", key)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .env("AWS_REGION", "us-east-1")
            .env_remove("AWS_PROFILE");
        command
    }
}

impl Moto {
    /// Runs a Python snippet with boto3 (installed with moto) against this server; `aws(name)`
    /// returns a client. Prints go to the returned string. For test setup and for checking
    /// outcomes with independent Describe calls.
    pub fn python(&self, script: &str) -> String {
        let (key, secret) = self.credentials.lock().unwrap().clone();
        self.python_signed(&key, &secret, "None", script)
    }

    /// [`Moto::python`] signed with `credentials` (JSON as the metadata service serves them:
    /// `AccessKeyId`, `SecretAccessKey`, `Token`), to check what an instance role may do.
    pub fn python_as(&self, credentials: &serde_json::Value, script: &str) -> String {
        let field = |k: &str| credentials[k].as_str().unwrap().to_string();
        self.python_signed(
            &field("AccessKeyId"),
            &field("SecretAccessKey"),
            &format!("'{}'", field("Token")),
            script,
        )
    }

    fn python_signed(&self, key: &str, secret: &str, token: &str, script: &str) -> String {
        let prelude = format!(
            "import boto3, json\n\
             def aws(name, region='eu-west-1'):\n    \
             return boto3.client(name, endpoint_url='{}', region_name=region, aws_access_key_id='{key}', aws_secret_access_key='{secret}', aws_session_token={token})\n",
            self.endpoint
        );
        let output = Command::new("python3")
            .args(["-c", &format!("{prelude}{script}")])
            .output()
            .expect("python3 runs");
        assert!(
            output.status.success(),
            "python failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }
}

impl Moto {
    /// Turns on moto's IAM enforcement: from here on every request must be signed by a key
    /// moto knows (a user's, or a role session's from STS) and be allowed by that identity's
    /// policies, so a node role that lacks a permission fails where AWS would. moto checks
    /// actions, and resources for S3; it does not evaluate conditions (`aws:ResourceTag`), so
    /// a wrong condition still passes. This harness and `kopsrs` switch to an administrator.
    pub fn enforce_iam(&self) {
        let out = self.python(
            "i=aws('iam')\n\
             i.create_user(UserName='kopsrs-test-admin')\n\
             i.put_user_policy(UserName='kopsrs-test-admin', PolicyName='all', PolicyDocument=json.dumps({'Version': '2012-10-17', 'Statement': [{'Effect': 'Allow', 'Action': '*', 'Resource': '*'}]}))\n\
             k=i.create_access_key(UserName='kopsrs-test-admin')['AccessKey']\n\
             print(k['AccessKeyId'], k['SecretAccessKey'])",
        );
        let (key, secret) = out.trim().split_once(' ').expect("an access key");
        *self.credentials.lock().unwrap() = (key.to_string(), secret.to_string());
        // moto's switch: requests after the first N need authentication; N = 0 from now.
        self.http("POST", "/moto-api/reset-auth", "0");
        // Proof that it is on: the old default key is refused.
        let refused = Command::new("python3")
            .args([
                "-c",
                &format!(
                    "import boto3\n\
                     try:\n    \
                     boto3.client('ec2', endpoint_url='{}', region_name='eu-west-1', aws_access_key_id='testing', aws_secret_access_key='testing').describe_vpcs()\n\
                     except Exception as e:\n    \
                     print(type(e).__name__)",
                    self.endpoint
                ),
            ])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&refused.stdout).trim(),
            "ClientError",
            "moto's IAM enforcement is not on"
        );
    }

    /// The name EC2 gives the instance (its private DNS name: the node name).
    pub fn ec2_name(&self, instance_id: &str) -> String {
        self.python(&format!(
            "print(aws('ec2').describe_instances(InstanceIds=['{instance_id}'])['Reservations'][0]['Instances'][0]['PrivateDnsName'])"
        ))
        .trim()
        .to_string()
    }

    /// The credentials EC2's metadata service hands the instance: a session of the role of
    /// the instance profile its launch template names (found from its auto scaling group;
    /// an instance outside one, its own profile), named after the instance as on EC2. JSON as the metadata service serves it, with
    /// `RoleName`.
    pub fn instance_role_credentials(&self, instance_id: &str) -> String {
        // A warm-pool instance is not among its group's instances: its group is found by
        // the tag EC2 gives it.
        let role = self.python(&format!(
            "a=aws('autoscaling'); e=aws('ec2'); i=aws('iam')\n\
             g=a.describe_auto_scaling_instances(InstanceIds=['{instance_id}'])['AutoScalingInstances']\n\
             if g:\n    \
                 lt=g[0]['LaunchTemplate']\n    \
                 v=e.describe_launch_template_versions(LaunchTemplateId=lt['LaunchTemplateId'], Versions=[lt['Version']])['LaunchTemplateVersions'][0]\n    \
                 profile=v['LaunchTemplateData']['IamInstanceProfile']\n\
             else:\n    \
                 inst=e.describe_instances(InstanceIds=['{instance_id}'])['Reservations'][0]['Instances'][0]\n    \
                 profile=inst.get('IamInstanceProfile')\n\
             if not g and not profile:\n    \
                 tags={{t['Key']: t['Value'] for t in inst.get('Tags', [])}}\n    \
                 lt=a.describe_auto_scaling_groups(AutoScalingGroupNames=[tags['aws:autoscaling:groupName']])['AutoScalingGroups'][0]['LaunchTemplate']\n    \
                 v=e.describe_launch_template_versions(LaunchTemplateId=lt['LaunchTemplateId'], Versions=[lt['Version']])['LaunchTemplateVersions'][0]\n    \
                 profile=v['LaunchTemplateData']['IamInstanceProfile']\n\
             name=profile.get('Name') or profile['Arn'].split('/')[-1]\n\
             role=i.get_instance_profile(InstanceProfileName=name)['InstanceProfile']['Roles'][0]\n\
             print(role['Arn'], role['RoleName'])"
        ));
        let (arn, name) = role.trim().split_once(' ').expect("a role");
        let body = serde_json::json!({"role_arn": arn, "session": instance_id});
        let mut credentials: serde_json::Value = serde_json::from_str(&self.http(
            "POST",
            "/__kopsrs/instance-credentials",
            &body.to_string(),
        ))
        .unwrap();
        credentials["RoleName"] = name.into();
        credentials.to_string()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `python3 -m http.server` over a directory, on loopback, stopped on drop.
pub struct FileServer {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

impl FileServer {
    pub fn start(dir: &Path) -> FileServer {
        let port = free_port();
        let child = Command::new("python3")
            .args(["-m", "http.server", "--bind", "127.0.0.1"])
            .arg(port.to_string())
            .arg("--directory")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for_port(port, Duration::from_secs(20), "the file server");
        FileServer {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// Runs `command` and returns its output; a failure fails the test with both streams.
pub fn ok(command: &mut Command) -> std::process::Output {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Lowercase hex sha256 of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The bash function `name` of a user-data script, on its own.
pub fn function(script: &str, name: &str) -> String {
    let start = script
        .find(&format!("\n{name}() {{\n"))
        .unwrap_or_else(|| panic!("{name} is not in the script"));
    let body = &script[start + 1..];
    let end = body.find("\n}\n").unwrap() + 3;
    body[..end].to_string()
}

/// Runs `function` of `script` with `env`, `input` on stdin; its stdout.
pub fn run_function(script: &str, name: &str, env: &[(&str, &str)], input: &str) -> String {
    use std::io::Write as _;
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -euo pipefail\n{}\n{name}",
            function(script, name)
        ))
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
