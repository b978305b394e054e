//! etcd's membership as the cluster's own etcd reports it, read and changed through the
//! Kubernetes API: `etcdctl` exec'd in the etcd static pod of a named control-plane Node
//! (`kube-system/etcd-NODE`, container `etcd`), with the flags the node boot script uses
//! (crates/kopsrs-bootstrap/src/bootstrap.sh, `etcdctl()`): the local member's client URL and
//! kubeadm's healthcheck client certificate. The pod is the Node's mirror pod or nothing: a
//! pod that merely has the name, or the label `component=etcd`, is never exec'd into.
//!
//! Errors are [`KubeError::Api`] naming the command and the pod, with the exit code and the
//! end of stderr (the caller matches `KubeError` exhaustively, so no variant is added here).
//!
//! Every exec is bounded (etcdctl's own `--command-timeout`, then [`EXEC_TIMEOUT`] for the
//! whole call, [`Kube::with_exec_timeout`]), so a hung member or API cannot hang a roll.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::api::AttachParams;
use kube::Api;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::{Kube, KubeError};

/// Where kubeadm's static pods are.
const NAMESPACE: &str = "kube-system";
/// The container of the etcd static pod.
const CONTAINER: &str = "etcd";
/// etcdctl and its connection: the local member over TLS with kubeadm's healthcheck client
/// certificate (as bootstrap.sh's `etcdctl()`), and a command timeout well inside
/// [`EXEC_TIMEOUT`].
const ETCDCTL: [&str; 6] = [
    "etcdctl",
    "--endpoints=https://127.0.0.1:2379",
    "--cacert=/etc/kubernetes/pki/etcd/ca.crt",
    "--cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt",
    "--key=/etc/kubernetes/pki/etcd/healthcheck-client.key",
    "--command-timeout=10s",
];
/// The longest one exec may take, from the request to the exit status.
pub const EXEC_TIMEOUT: Duration = Duration::from_secs(30);
/// How many times a member removal is tried (etcd may time a proposal out, and apply it).
const REMOVE_ATTEMPTS: u32 = 3;
/// The pause after a failed removal, doubled after each.
const REMOVE_BACKOFF: Duration = Duration::from_millis(500);
/// How much of a command's stdout is kept (etcdctl's JSON is a few KiB).
const STDOUT_CAP: usize = 1 << 20;
/// How much of a command's stderr an error quotes (its end: etcdctl's `Error:` line).
const STDERR_CAP: usize = 1000;

/// One member of etcd's cluster, as `etcdctl member list -w json` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdMember {
    /// Its ID (`etcdctl member remove` takes it in hex: `format!("{id:x}")`).
    pub id: u64,
    /// Its name, the Node's with kubeadm; empty while the member is added but not started.
    pub name: String,
    /// Where its peers reach it (`https://IP:2380`).
    pub peer_urls: Vec<String>,
    /// Where clients reach it (`https://IP:2379`); empty while not started.
    pub client_urls: Vec<String>,
    /// A learner (a non-voting member, not yet promoted).
    pub learner: bool,
}

/// etcd's members, as one member reported them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdMembers {
    /// The cluster's ID.
    pub cluster_id: u64,
    /// The ID of the member that answered (the one on the Node asked).
    pub member_id: u64,
    /// Every member, in etcd's order.
    pub members: Vec<EtcdMember>,
}

/// One endpoint of `etcdctl endpoint health --cluster`: a member's client URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointHealth {
    /// The member's client URL.
    pub endpoint: String,
    /// Whether it committed a read in time.
    pub healthy: bool,
    /// Why not (`context deadline exceeded`: unreachable), when not.
    pub error: Option<String>,
}

#[derive(Deserialize)]
struct MemberListJson {
    #[serde(default)]
    header: HeaderJson,
    #[serde(default)]
    members: Vec<MemberJson>,
}

#[derive(Default, Deserialize)]
struct HeaderJson {
    #[serde(default)]
    cluster_id: u64,
    #[serde(default)]
    member_id: u64,
}

// etcd's pb.Member as Go's encoding/json writes it: empty fields are left out.
#[derive(Deserialize)]
struct MemberJson {
    #[serde(rename = "ID")]
    id: u64,
    #[serde(default)]
    name: String,
    #[serde(default, rename = "peerURLs")]
    peer_urls: Vec<String>,
    #[serde(default, rename = "clientURLs")]
    client_urls: Vec<String>,
    #[serde(default, rename = "isLearner")]
    is_learner: bool,
}

#[derive(Deserialize)]
struct HealthJson {
    endpoint: String,
    health: bool,
    #[serde(default)]
    error: String,
}

/// What a command printed and how it ended.
struct Output {
    stdout: String,
    stderr: String,
    exit_code: i32,
}

impl Output {
    /// Why it failed: the exit code and the end of stderr.
    fn failure(&self) -> String {
        let stderr = self.stderr.trim();
        let quoted = match stderr.char_indices().nth_back(STDERR_CAP) {
            Some((cut, _)) => format!("…{}", &stderr[cut..]),
            None => stderr.to_string(),
        };
        let mut reason = format!("exit code {}", self.exit_code);
        if !quoted.is_empty() {
            reason.push_str(": ");
            reason.push_str(&quoted);
        }
        if stderr.contains("context deadline exceeded") {
            reason.push_str(
                " (etcd did not answer in time: the member on this node is down, or the cluster has lost its quorum)",
            );
        }
        reason
    }
}

impl Kube {
    /// The same client with another bound on each exec ([`EXEC_TIMEOUT`] by default).
    pub fn with_exec_timeout(mut self, timeout: Duration) -> Kube {
        self.exec_timeout = timeout;
        self
    }

    /// etcd's members, as the member on control-plane Node `via_node` lists them
    /// (`etcdctl member list -w json`; linearizable: it fails without a quorum).
    pub async fn etcd_members(&self, via_node: &str) -> Result<EtcdMembers, KubeError> {
        let args = ["member", "list", "-w", "json"];
        let output = self.etcdctl(via_node, &args).await?;
        if output.exit_code != 0 {
            return Err(self.exec_error(via_node, &args, output.failure()));
        }
        let list: MemberListJson = serde_json::from_str(&output.stdout)
            .map_err(|e| self.exec_error(via_node, &args, format!("unreadable output ({e})")))?;
        Ok(EtcdMembers {
            cluster_id: list.header.cluster_id,
            member_id: list.header.member_id,
            members: list
                .members
                .into_iter()
                .map(|m| EtcdMember {
                    id: m.id,
                    name: m.name,
                    peer_urls: m.peer_urls,
                    client_urls: m.client_urls,
                    learner: m.is_learner,
                })
                .collect(),
        })
    }

    /// The health of every member's client URL, checked from `via_node`
    /// (`etcdctl endpoint health --cluster -w json`). An unhealthy member is an entry, not an
    /// error; an error is an answer without the list (no quorum to list the members by).
    pub async fn etcd_health(&self, via_node: &str) -> Result<Vec<EndpointHealth>, KubeError> {
        let args = ["endpoint", "health", "--cluster", "-w", "json"];
        let output = self.etcdctl(via_node, &args).await?;
        // etcdctl prints the list, then exits 1 when an endpoint is unhealthy.
        match serde_json::from_str::<Vec<HealthJson>>(&output.stdout) {
            Ok(list) => Ok(list
                .into_iter()
                .map(|h| EndpointHealth {
                    endpoint: h.endpoint,
                    healthy: h.health,
                    error: Some(h.error).filter(|e| !e.is_empty()),
                })
                .collect()),
            Err(_) if output.exit_code != 0 => {
                Err(self.exec_error(via_node, &args, output.failure()))
            }
            Err(e) => Err(self.exec_error(via_node, &args, format!("unreadable output ({e})"))),
        }
    }

    /// Removes member `id` through the member on `via_node` (`etcdctl member remove`), tried
    /// up to three times: etcd may time a proposal out and apply it all the same. A member
    /// already gone is not an error (another node's boot may have pruned it).
    pub async fn etcd_remove_member(&self, via_node: &str, id: u64) -> Result<(), KubeError> {
        let hex = format!("{id:x}");
        let args = ["member", "remove", hex.as_str()];
        self.etcd_pod(via_node).await?;
        let mut pause = REMOVE_BACKOFF;
        let mut attempt = 1;
        loop {
            let (mut error, again) = match self.exec_etcdctl(via_node, &args).await {
                Ok(output) if output.exit_code == 0 => return Ok(()),
                Ok(output) if output.stderr.contains("etcdserver: member not found") => {
                    return Ok(())
                }
                // etcdctl's bad-argument exit: trying again will not help.
                Ok(output) => (
                    self.exec_error(via_node, &args, output.failure()),
                    output.exit_code != 128,
                ),
                Err(e) => (e, true),
            };
            if !again || attempt == REMOVE_ATTEMPTS {
                if let KubeError::Api { reason, .. } = &mut error {
                    reason.push_str(&format!(" (attempt {attempt} of {REMOVE_ATTEMPTS})"));
                }
                return Err(error);
            }
            tokio::time::sleep(pause).await;
            pause *= 2;
            attempt += 1;
        }
    }

    /// `etcdctl ARGS` in `via_node`'s etcd static pod, once it is checked to be that.
    async fn etcdctl(&self, via_node: &str, args: &[&str]) -> Result<Output, KubeError> {
        self.etcd_pod(via_node).await?;
        self.exec_etcdctl(via_node, args).await
    }

    /// Reads `kube-system/etcd-NODE` and checks it is `node`'s etcd static pod: a mirror pod,
    /// bound to `node`, with the etcd container. Anything else by that name is refused.
    async fn etcd_pod(&self, node: &str) -> Result<(), KubeError> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), NAMESPACE);
        let name = format!("etcd-{node}");
        let what = format!("finding the etcd static pod of node {node:?}");
        let pod = pods
            .get_opt(&name)
            .await
            .map_err(|e| self.failed(what.clone(), e))?;
        let why = match &pod {
            None => "does not exist".to_string(),
            Some(pod) => match not_etcd(node, pod) {
                None => return Ok(()),
                Some(why) => why,
            },
        };
        Err(KubeError::Api {
            cluster: self.cluster.clone(),
            what,
            reason: format!("pod {NAMESPACE}/{name} {why}"),
        })
    }

    /// `etcdctl ARGS` in the container etcd of `kube-system/etcd-NODE`, within the exec
    /// timeout.
    async fn exec_etcdctl(&self, via_node: &str, args: &[&str]) -> Result<Output, KubeError> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), NAMESPACE);
        let name = format!("etcd-{via_node}");
        let command: Vec<&str> = ETCDCTL.iter().chain(args).copied().collect();
        let params = AttachParams::default()
            .container(CONTAINER)
            .stdin(false)
            .stdout(true)
            .stderr(true);
        let run = async {
            let mut process = match pods.exec(&name, command, &params).await {
                Ok(process) => process,
                Err(kube::Error::Api(status)) => {
                    return Err(self.exec_error(
                        via_node,
                        args,
                        format!(
                            "refused: {} ({} {})",
                            status.message, status.code, status.reason
                        ),
                    ))
                }
                Err(e) => return Err(self.unreachable(e)),
            };
            let (Some(mut stdout), Some(mut stderr), Some(status)) =
                (process.stdout(), process.stderr(), process.take_status())
            else {
                unreachable!("stdout, stderr and the status were asked for");
            };
            // Read both streams while waiting for the status: kube's buffers are small.
            let (stdout, stderr, status) = tokio::join!(
                read_capped(&mut stdout, STDOUT_CAP),
                read_capped(&mut stderr, STDOUT_CAP),
                status
            );
            let ended = process.join().await;
            let Some(status) = status else {
                let why = match ended {
                    Err(e) => format!("the exec stream failed: {}", crate::plain(&e)),
                    Ok(()) => "the exec ended without an exit status".to_string(),
                };
                return Err(self.exec_error(via_node, args, why));
            };
            let exit_code =
                exit_code(&status).map_err(|why| self.exec_error(via_node, args, why))?;
            Ok(Output {
                stdout,
                stderr,
                exit_code,
            })
        };
        match tokio::time::timeout(self.exec_timeout, run).await {
            Ok(result) => result,
            Err(_) => Err(self.exec_error(
                via_node,
                args,
                format!(
                    "no exit status within {}",
                    humantime::format_duration(self.exec_timeout)
                ),
            )),
        }
    }

    /// `` `etcdctl ARGS` in pod kube-system/etcd-NODE on "CLUSTER": REASON ``.
    fn exec_error(&self, node: &str, args: &[&str], reason: String) -> KubeError {
        KubeError::Api {
            cluster: self.cluster.clone(),
            what: format!(
                "`etcdctl {}` in pod {NAMESPACE}/etcd-{node}",
                args.join(" ")
            ),
            reason,
        }
    }
}

/// Why `pod` is not `node`'s etcd static pod (a mirror pod, bound to `node`, with the etcd
/// container), if it is not.
fn not_etcd(node: &str, pod: &Pod) -> Option<String> {
    if !crate::drain::is_mirror(pod) {
        return Some(
            "is not a mirror pod (no kubernetes.io/config.mirror annotation): the kubelet did not make it from a static manifest, so it is not etcd's".into(),
        );
    }
    let spec = pod.spec.clone().unwrap_or_default();
    if spec.node_name.as_deref() != Some(node) {
        return Some(format!(
            "runs on node {:?}, not on {node:?}",
            spec.node_name.unwrap_or_default()
        ));
    }
    if !spec.containers.iter().any(|c| c.name == CONTAINER) {
        return Some(format!("has no container {CONTAINER:?}"));
    }
    None
}

/// The exit code the error channel's Status gives: 0 for `Success`, N for the API server's
/// `NonZeroExitCode` (an `ExitCode` cause); anything else (the kubelet or the runtime could
/// not run the command) is the Status's message.
fn exit_code(status: &Status) -> Result<i32, String> {
    if status.status.as_deref() == Some("Success") {
        return Ok(0);
    }
    let code = status
        .details
        .as_ref()
        .and_then(|d| d.causes.as_ref())
        .and_then(|causes| {
            causes
                .iter()
                .find(|c| c.reason.as_deref() == Some("ExitCode"))
        })
        .and_then(|c| c.message.as_deref())
        .and_then(|m| m.parse().ok());
    match (status.reason.as_deref(), code) {
        (Some("NonZeroExitCode"), Some(code)) => Ok(code),
        _ => Err(format!(
            "the command did not run: {}",
            status.message.as_deref().unwrap_or("no message")
        )),
    }
}

/// Everything `reader` gives, the first `cap` bytes of it kept (the rest read and dropped, so
/// the writer never blocks).
async fn read_capped(reader: &mut (impl AsyncRead + Unpin), cap: usize) -> String {
    let mut kept = Vec::new();
    let mut buffer = [0u8; 8192];
    while let Ok(n) = reader.read(&mut buffer).await {
        if n == 0 {
            break;
        }
        let room = cap.saturating_sub(kept.len());
        kept.extend_from_slice(&buffer[..n.min(room)]);
    }
    String::from_utf8_lossy(&kept).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{StatusCause, StatusDetails};

    fn status(json: &str) -> Status {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn exit_codes_from_the_error_channel() {
        assert_eq!(
            exit_code(&status(r#"{"metadata":{},"status":"Success"}"#)),
            Ok(0)
        );
        let failed = Status {
            status: Some("Failure".into()),
            reason: Some("NonZeroExitCode".into()),
            message: Some("command terminated with non-zero exit code".into()),
            details: Some(StatusDetails {
                causes: Some(vec![StatusCause {
                    reason: Some("ExitCode".into()),
                    message: Some("128".into()),
                    field: None,
                }]),
                ..StatusDetails::default()
            }),
            ..Status::default()
        };
        assert_eq!(exit_code(&failed), Ok(128));
        let internal = status(
            r#"{"metadata":{},"status":"Failure","message":"Internal error occurred: unable to upgrade connection: container not found (\"etcd\")","reason":"InternalError","code":500}"#,
        );
        let why = exit_code(&internal).unwrap_err();
        assert!(why.contains("container not found"), "{why}");
    }

    #[test]
    fn the_etcd_pod_is_the_nodes_mirror_pod_with_an_etcd_container() {
        let pod = |mirror: bool, node: &str, container: &str| -> Pod {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "etcd-cp1", "annotations": if mirror {
                    serde_json::json!({"kubernetes.io/config.mirror": "abc"})
                } else {
                    serde_json::json!({})
                }},
                "spec": {"nodeName": node, "containers": [{"name": container}]},
            }))
            .unwrap()
        };
        assert_eq!(not_etcd("cp1", &pod(true, "cp1", "etcd")), None);
        let why = not_etcd("cp1", &pod(false, "cp1", "etcd")).unwrap();
        assert!(why.starts_with("is not a mirror pod"), "{why}");
        assert_eq!(
            not_etcd("cp1", &pod(true, "cp2", "etcd")).as_deref(),
            Some("runs on node \"cp2\", not on \"cp1\"")
        );
        assert_eq!(
            not_etcd("cp1", &pod(true, "cp1", "etcd-manager")).as_deref(),
            Some("has no container \"etcd\"")
        );
    }

    #[test]
    fn member_list_json_with_ids_beyond_i64_and_an_unstarted_member() {
        let text = r#"{"header":{"cluster_id":17237436991929493444,"member_id":9372538179322589801,"raft_term":2},"members":[{"ID":9372538179322589801,"name":"cp1","peerURLs":["https://10.0.0.1:2380"],"clientURLs":["https://10.0.0.1:2379"]},{"ID":18446744073709551615,"peerURLs":["https://10.0.0.2:2380"],"isLearner":true}]}"#;
        let list: MemberListJson = serde_json::from_str(text).unwrap();
        assert_eq!(list.header.cluster_id, 17237436991929493444);
        assert_eq!(list.members[1].id, u64::MAX);
        assert_eq!(list.members[1].name, "");
        assert!(list.members[1].client_urls.is_empty());
        assert!(list.members[1].is_learner);
    }

    #[test]
    fn a_failure_quotes_the_end_of_stderr() {
        let output = Output {
            stdout: String::new(),
            stderr: format!("{}\nError: context deadline exceeded\n", "w".repeat(5000)),
            exit_code: 1,
        };
        let failure = output.failure();
        assert!(failure.starts_with("exit code 1: …w"), "{failure}");
        assert!(failure.contains("Error: context deadline exceeded (etcd did not answer"));
        assert!(failure.len() < STDERR_CAP + 200, "{}", failure.len());
    }
}
