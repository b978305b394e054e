//! etcd backups and restores (simulated boot: stub commands, fake instance metadata, moto as
//! S3 and EC2 with IAM enforced): the leader alone takes a backup with its metadata and prunes
//! by the spec's retention; `toolbox etcd restore-backup` is acted on by every control plane
//! once; a control plane lost whole comes back from its volumes, not as an empty etcd; a
//! failed join leaves the data where it was; an election holder whose init failed is taken
//! over.

mod support;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::boot::{calls, count, finish, holder, run, run_with, Api, Cluster, Node};
use support::kube::FakeKube;

const NOW: u64 = 1_780_000_000; // 2026-05-28T20:26:40Z

fn ha() -> [&'static str; 4] {
    [
        "--zones",
        "eu-west-1a,eu-west-1b,eu-west-1c",
        "--control-plane-count",
        "3",
    ]
}

fn kopsrs(c: &Cluster) -> Command {
    let mut k = c.moto.kopsrs("state");
    k.env("AWS_REGION", "eu-west-1");
    k
}

fn out(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The backup names (and other keys) under backups/etcd/main/.
fn backup_keys(c: &Cluster) -> Vec<String> {
    c.moto
        .python(&format!(
            "r=aws('s3').list_objects_v2(Bucket='state', Prefix='clusters/{}/backups/etcd/main/')\n\
             print('\\n'.join(o['Key'].split('/backups/etcd/main/')[1] for o in r.get('Contents', [])))",
            c.name
        ))
        .lines()
        .map(str::to_string)
        .filter(|l| !l.is_empty())
        .collect()
}

fn time_name(epoch: u64) -> String {
    let out = Command::new("date")
        .args(["-u", "-d", &format!("@{epoch}"), "+%Y-%m-%dT%H%M%SZ"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

const ZONES: [&str; 3] = ["eu-west-1a", "eu-west-1b", "eu-west-1c"];

/// The instance (ID, zone, IP) of each zone's control-plane group, and the file of their IPs.
fn control_planes(c: &Cluster) -> (Vec<(String, String, String)>, std::path::PathBuf) {
    let instances: Vec<_> = ZONES
        .iter()
        .map(|z| c.instance(&format!("control-plane-{z}.masters.{}", c.name)))
        .collect();
    let ips: Vec<&str> = instances.iter().map(|i| i.2.as_str()).collect();
    let cp_ips = c.cp_ips(&ips.join(" "));
    (instances, cp_ips)
}

/// The restore command in the store, if any.
fn restore_command(c: &Cluster) -> Option<serde_json::Value> {
    c.state("backups/etcd/main/restore/command.json")
        .map(|text| serde_json::from_str(&text).unwrap())
}

/// A control plane that already runs: its admin kubeconfig and static pods are there.
fn running(node: &Node) {
    let k = node.root.join("etc/kubernetes/manifests");
    std::fs::create_dir_all(&k).unwrap();
    std::fs::write(node.root.join("etc/kubernetes/admin.conf"), "").unwrap();
    std::fs::write(
        k.join("etcd.yaml"),
        "spec:\n  containers:\n  - command: [etcd]\n    image: registry.k8s.io/etcd:3.6.4-0\n",
    )
    .unwrap();
    std::fs::write(k.join("kube-apiserver.yaml"), "kind: Pod\n").unwrap();
}

/// Member data on the node's etcd volume.
fn volume_data(node: &Node, text: &str) {
    let snap = node.root.join("var/lib/etcd/data/member/snap");
    std::fs::create_dir_all(&snap).unwrap();
    std::fs::write(snap.join("db"), text).unwrap();
    std::fs::write(node.root.join("dev/xvdu.fs"), "").unwrap(); // formatted already
}

fn db(node: &Node) -> String {
    std::fs::read_to_string(node.root.join("var/lib/etcd/data/member/snap/db")).unwrap()
}

#[test]
fn the_leader_alone_backs_up_with_metadata_and_prunes_by_the_specs_retention() {
    let c = Cluster::apply_with("backup.example.com", &ha(), |moto| {
        let mut edit = moto.kopsrs("state");
        edit.env("AWS_REGION", "eu-west-1").args([
            "edit",
            "cluster",
            "backup.example.com",
            "--set",
            "spec.etcdClusters[0].manager.backupRetentionDays=2",
            "--set",
            "spec.etcdClusters[0].manager.backupInterval=5m",
        ]);
        let o = edit.output().unwrap();
        assert!(o.status.success(), "{}", out(&o));
    });
    let script = c.script("eu-west-1a");
    let text = std::fs::read_to_string(&script).unwrap();
    assert!(
        text.contains("ETCD_BACKUP_SECONDS='300'")
            && text.contains("ETCD_BACKUP_RETENTION_DAYS='2'"),
        "the spec's policy is not in the user-data"
    );
    // Backups from before: three days old (past the retention), one day old (kept), and
    // a snapshot whose metadata was never written (a failed backup: not listed).
    let (old, kept, failed) = (
        time_name(NOW - 3 * 86400),
        time_name(NOW - 86400),
        time_name(NOW - 600),
    );
    for (name, revision) in [(&old, 10), (&kept, 20)] {
        c.put_state(&format!("backups/etcd/main/{name}.db"), "old snapshot");
        c.put_state(
            &format!("backups/etcd/main/{name}.json"),
            &format!(
                r#"{{"name":"{name}","takenAt":1,"etcdVersion":"3.6.4","revision":{revision},"members":3,"kubernetesVersion":"1.34.1","size":12,"sha256":"{}","takenBy":"x"}}"#,
                support::boot::sha256_hex(b"old snapshot")
            ),
        );
    }
    c.put_state(&format!("backups/etcd/main/{failed}.db"), "half");

    let a = c.instance("control-plane-eu-west-1a.masters.backup.example.com");
    let b = c.instance("control-plane-eu-west-1b.masters.backup.example.com");
    let cp_ips = c.cp_ips(&format!("{} {}", a.2, b.2));
    let (node_a, node_b) = (c.node("cp-a", &a), c.node("cp-b", &b));
    for node in [&node_a, &node_b] {
        running(node);
    }
    std::fs::write(node_a.root.join("etcd-leader"), "").unwrap();
    let now = NOW.to_string();
    let env = [("KOPSRS_NOW", now.as_str())];
    let log_b = finish(
        run_with(&node_b, &script, "backup-etcd", &c.stubs, &cp_ips, &env),
        "follower",
    );
    assert_eq!(count(&calls(&node_b), "kubectl"), 1, "{log_b}"); // endpoint status only
    let log_a = finish(
        run_with(&node_a, &script, "backup-etcd", &c.stubs, &cp_ips, &env),
        "leader",
    );

    let name = time_name(NOW);
    let keys = backup_keys(&c);
    assert!(
        keys.contains(&format!("{name}.db")) && keys.contains(&format!("{name}.json")),
        "{keys:?}\n{log_a}"
    );
    assert!(!keys.iter().any(|k| k.starts_with(&old)), "{keys:?}");
    assert!(keys.contains(&format!("{kept}.json")), "{keys:?}");
    assert!(log_a.contains(&format!(
        "backup backups/etcd/main/{old}.db: older than 2 days"
    )));
    // One listing for the pruning.
    let curl = std::fs::read_to_string(node_a.root.join("curl-args.log")).unwrap();
    assert_eq!(curl.matches("list-type=2").count(), 1, "{curl}");

    // The metadata describes the snapshot uploaded; `latest` names it.
    let snapshot = c.state(&format!("backups/etcd/main/{name}.db")).unwrap();
    let meta: serde_json::Value =
        serde_json::from_str(&c.state(&format!("backups/etcd/main/{name}.json")).unwrap()).unwrap();
    assert_eq!(
        meta["sha256"],
        support::boot::sha256_hex(format!("{snapshot}\n").as_bytes())
    );
    assert_eq!(meta["size"], snapshot.len() as u64 + 1);
    assert_eq!(meta["revision"], 4242);
    assert_eq!(meta["etcdVersion"], "3.6.4");
    assert_eq!(meta["members"], 2);
    assert_eq!(meta["kubernetesVersion"], "1.34.1");
    assert_eq!(meta["takenAt"], NOW);
    let latest: serde_json::Value =
        serde_json::from_str(&c.state("backups/etcd/main/latest").unwrap()).unwrap();
    assert_eq!(latest, meta);

    // list-backups: newest first, the failed one left out; a table and JSON.
    let o = kopsrs(&c)
        .args([
            "toolbox",
            "etcd",
            "list-backups",
            "--name",
            c.name,
            "-o",
            "json",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out(&o));
    let listed: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, [name.as_str(), kept.as_str()]);
    let o = kopsrs(&c)
        .args(["toolbox", "etcd", "list-backups", "--name", c.name])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(
        table.contains("REVISION") && table.contains("4242") && !table.contains(&failed),
        "{table}"
    );
}

#[test]
fn a_restore_is_acted_on_by_every_control_plane_once_and_refused_when_unsafe() {
    let c = Cluster::apply("restore.example.com", &ha());
    let script = c.script("eu-west-1a");
    let (instances, cp_ips) = control_planes(&c);
    let nodes: Vec<Node> = instances
        .iter()
        .enumerate()
        .map(|(n, i)| c.node(&format!("cp-{n}"), i))
        .collect();
    for (n, node) in nodes.iter().enumerate() {
        running(node);
        volume_data(node, &format!("live data of member {n}"));
    }
    // The leader takes the backup that is restored.
    std::fs::write(nodes[0].root.join("etcd-leader"), "").unwrap();
    let now = NOW.to_string();
    let env = [("KOPSRS_NOW", now.as_str())];
    finish(
        run_with(&nodes[0], &script, "backup-etcd", &c.stubs, &cp_ips, &env),
        "backup",
    );
    let backup = time_name(NOW);
    let snapshot = c.state(&format!("backups/etcd/main/{backup}.db")).unwrap();
    let restore = |extra: &[&str]| {
        kopsrs(&c)
            .args([
                "toolbox",
                "etcd",
                "restore-backup",
                &backup,
                "--name",
                c.name,
            ])
            .args(extra)
            .output()
            .unwrap()
    };

    // Refused, nothing written: an unknown backup.
    let o = kopsrs(&c)
        .args(["toolbox", "etcd", "restore-backup", "2020-01-01T000000Z"])
        .args(["--name", c.name, "--yes"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        out(&o).contains("no such backup") && out(&o).contains("list-backups"),
        "{}",
        out(&o)
    );
    // A dry run checks and writes nothing.
    let o = restore(&[]);
    assert!(o.status.success(), "{}", out(&o));
    assert!(out(&o).contains("checked"), "{}", out(&o));
    assert!(!backup_keys(&c).iter().any(|k| k.starts_with("restore/")));

    // The restore, waiting for every control plane and then for validation (the fake API's
    // Nodes are the instances moto runs).
    let kube = FakeKube::start(c.dir.path(), &c.moto, c.name, &["--ready-after", "0"]);
    let waiting = kopsrs(&c)
        .args([
            "toolbox",
            "etcd",
            "restore-backup",
            &backup,
            "--name",
            c.name,
        ])
        .args(["--yes", "--wait", "3m", "--kubeconfig"])
        .arg(&kube.kubeconfig)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let command = loop {
        if let Some(command) = restore_command(&c) {
            break command;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no command written"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let id = command["id"].as_str().unwrap().to_string();
    // A second restore while this one is pending is refused, the command unchanged.
    let o = restore(&["--yes"]);
    assert!(!o.status.success());
    assert!(
        out(&o).contains(&format!("restore {id} of backup {backup} is pending")),
        "{}",
        out(&o)
    );
    let again: serde_json::Value = restore_command(&c).unwrap();
    assert_eq!(again, command);

    // Two control planes act at once, the third after: each restores once, as a member of
    // the same three.
    let acting: Vec<_> = nodes[..2]
        .iter()
        .map(|n| run(n, &script, "restore-etcd", &c.stubs, &cp_ips))
        .collect();
    for (n, child) in acting.into_iter().enumerate() {
        finish(child, &format!("restore on cp-{n}"));
    }
    finish(
        run(&nodes[2], &script, "restore-etcd", &c.stubs, &cp_ips),
        "restore on cp-2",
    );
    let initial: Vec<String> = instances
        .iter()
        .map(|i| format!("{}=https://{}:2380", c.moto.ec2_name(&i.0), i.2))
        .collect();
    for (n, node) in nodes.iter().enumerate() {
        let name = c.moto.ec2_name(&instances[n].0);
        let calls = calls(node);
        let restores: Vec<&String> = calls
            .iter()
            .filter(|l| l.starts_with("ctr -n k8s.io run") && l.contains("snapshot restore"))
            .collect();
        assert_eq!(restores.len(), 1, "cp-{n}: {calls:?}");
        let r = restores[0];
        assert!(r.contains("registry.k8s.io/etcd:3.6.4-0"), "{r}");
        assert!(
            r.contains(&format!("snapshot restore /var/lib/etcd/restore-{id}.db")),
            "{r}"
        );
        assert!(r.contains(&format!("--name {name} ")), "{r}");
        let given = r
            .split("--initial-cluster ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap();
        let mut given: Vec<&str> = given.split(',').collect();
        given.sort();
        let mut want: Vec<&str> = initial.iter().map(String::as_str).collect();
        want.sort();
        assert_eq!(given, want, "{r}");
        assert!(
            r.contains(&format!("--initial-cluster-token kopsrs-{id}")),
            "{r}"
        );
        assert!(!r.contains("--skip-hash-check"), "{r}");
        // The snapshot is the member's data now; its own is kept; the static pods are back.
        assert_eq!(db(node), format!("{snapshot}\n"));
        let kept = node
            .root
            .join(format!("var/lib/etcd/before-restore-{id}/member/snap/db"));
        assert_eq!(
            std::fs::read_to_string(kept).unwrap(),
            format!("live data of member {n}")
        );
        for pod in ["etcd", "kube-apiserver"] {
            assert!(node
                .root
                .join(format!("etc/kubernetes/manifests/{pod}.yaml"))
                .exists());
        }
        assert!(c
            .state(&format!("backups/etcd/main/restore/{id}/done/{name}"))
            .is_some());
    }
    // The waiting command saw every member done, then the cluster validate.
    let waited = waiting.wait_with_output().unwrap();
    assert!(waited.status.success(), "{}", out(&waited));
    let said = String::from_utf8_lossy(&waited.stdout);
    assert!(
        said.contains(&format!(
            "restored from backup {backup} (restore {id}): etcd is back at revision 4242"
        )) && said.contains("the cluster validates"),
        "{}",
        out(&waited)
    );
    for i in &instances {
        assert!(said.contains(&c.moto.ec2_name(&i.0)), "{said}");
    }

    // Once: the next ticks do nothing.
    for node in &nodes {
        finish(
            run(node, &script, "restore-etcd", &c.stubs, &cp_ips),
            "next tick",
        );
        let calls = calls(node);
        assert_eq!(
            calls
                .iter()
                .filter(|l| l.starts_with("ctr -n k8s.io run"))
                .count(),
            1
        );
    }

    // Complete: a new restore may be asked for. A snapshot changed in the store is refused
    // before anything is written.
    let o = restore(&[]);
    assert!(o.status.success(), "{}", out(&o));
    c.put_state(&format!("backups/etcd/main/{backup}.db"), "tampered");
    let o = restore(&["--yes"]);
    assert!(!o.status.success());
    assert!(
        out(&o).contains("sha256") && out(&o).contains("nothing was written"),
        "{}",
        out(&o)
    );
    let after: serde_json::Value = restore_command(&c).unwrap();
    assert_eq!(after, command);
}

#[test]
fn a_control_plane_lost_whole_comes_back_from_its_volumes_and_a_failed_join_keeps_the_data() {
    let c = Cluster::apply("lost.example.com", &ha());
    let zones = ZONES;
    let (instances, cp_ips) = control_planes(&c);
    // The old control plane is gone: its election holder no longer exists, its join token
    // is still in the store, no API answers; each new instance's volume holds its member's
    // data, newer than the last backup.
    c.put_state("bootstrap/init-lock", "i-0123456789abcdef0 1700000000");
    c.put_state(
        "bootstrap/node/join.env",
        "JOIN_TOKEN=stale0.0123456789abcdef",
    );
    c.put_state(
        "backups/etcd/main/latest",
        r#"{"name":"2026-01-01T000000Z","takenAt":1767225600,"etcdVersion":"3.6.4","revision":1,"members":3,"kubernetesVersion":"1.34.1","size":1,"sha256":"00","takenBy":"x"}"#,
    );
    let nodes: Vec<Node> = instances
        .iter()
        .enumerate()
        .map(|(n, i)| c.node(&format!("cp-{n}"), i))
        .collect();
    for (n, node) in nodes.iter().enumerate() {
        volume_data(node, &format!("data of member {n}"));
    }
    let mut nodes = nodes.into_iter();
    let first = nodes.next().unwrap().api_dead();
    let log = finish(
        run(&first, &c.script(zones[0]), "boot", &c.stubs, &cp_ips),
        "the first",
    );
    assert!(log.contains("no API answers; taking over"), "{log}");
    assert!(
        log.contains("recovering the cluster from this volume's etcd data"),
        "{log}"
    );
    let calls0 = calls(&first);
    // etcd restarts from the volume's data as a one-member cluster, then kubeadm init keeps it.
    let name0 = c.moto.ec2_name(&instances[0].0);
    let restore = calls0
        .iter()
        .find(|l| l.contains("snapshot restore"))
        .unwrap_or_else(|| panic!("{calls0:?}"));
    assert!(
        restore.contains("--skip-hash-check")
            && restore.contains(&format!(
                "--initial-cluster {name0}=https://{}:2380 ",
                instances[0].2
            )),
        "{restore}"
    );
    assert_eq!(db(&first), "data of member 0");
    let inits: Vec<&String> = calls0
        .iter()
        .filter(|l| l.starts_with("kubeadm init"))
        .collect();
    assert_eq!(inits.len(), 1, "{calls0:?}");
    assert!(
        inits[0].contains("--ignore-preflight-errors=DirAvailable--var-lib-etcd"),
        "no kubeadm init of an empty etcd: {calls0:?}"
    );
    assert_eq!(holder(&c), instances[0].0);
    let token = c.state("bootstrap/node/join.env").unwrap();
    assert!(!token.contains("stale0"), "{token}");

    // The next joins the recovered cluster (its API answers), its old data set aside.
    let second = nodes.next().unwrap();
    let _api = Api::start(&second);
    finish(
        run(&second, &c.script(zones[1]), "boot", &c.stubs, &cp_ips),
        "the second",
    );
    assert_eq!(count(&calls(&second), "kubeadm join"), 1);
    assert_eq!(count(&calls(&second), "kubeadm init"), 0);

    // A join that fails leaves the volume's data where etcd reads it.
    let third = nodes.next().unwrap();
    std::fs::write(third.root.join("fail-join"), "").unwrap();
    let _api3 = Api::start(&third);
    let failed = run(&third, &c.script(zones[2]), "boot", &c.stubs, &cp_ips)
        .wait_with_output()
        .unwrap();
    assert!(!failed.status.success());
    assert!(String::from_utf8_lossy(&failed.stderr).contains("data is back in place"));
    assert_eq!(db(&third), "data of member 2");
}

#[test]
fn a_control_plane_lost_whole_comes_back_from_a_newer_backup_checked_by_its_sha256() {
    let c = Cluster::apply("frombackup.example.com", &ha());
    let a = c.instance("control-plane-eu-west-1a.masters.frombackup.example.com");
    let cp_ips = c.cp_ips(&a.2);
    c.put_state("bootstrap/init-lock", "i-0123456789abcdef0 1700000000");
    let node = c.node("cp-a", &a).api_dead();
    // The volume's data is from 2020; the newest backup from ten minutes ago.
    volume_data(&node, "data from 2020");
    Command::new("touch")
        .args(["-d", "2020-01-01"])
        .arg(node.root.join("var/lib/etcd/data/member/snap/db"))
        .status()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let backup = time_name(now - 600);
    c.put_state(&format!("backups/etcd/main/{backup}.db"), "the backup");
    let latest = |sha: &str| {
        format!(
            r#"{{"name":"{backup}","takenAt":{},"etcdVersion":"3.6.4","revision":77,"members":3,"kubernetesVersion":"1.34.1","size":10,"sha256":"{sha}","takenBy":"x"}}"#,
            now - 600
        )
    };
    // A backup that does not match its sha256 is not restored; the volume stays as it was.
    c.put_state("backups/etcd/main/latest", &latest(&"0".repeat(64)));
    let failed = run(&node, &c.script("eu-west-1a"), "boot", &c.stubs, &cp_ips)
        .wait_with_output()
        .unwrap();
    let log = String::from_utf8_lossy(&failed.stderr);
    assert!(!failed.status.success());
    assert!(log.contains("does not match its sha256"), "{log}");
    assert_eq!(db(&node), "data from 2020");
    assert_eq!(count(&calls(&node), "kubeadm init"), 0);

    // The run again (cloud-init's retry, an operator), with the backup's metadata right: this
    // node holds the election now and recovers from the backup.
    c.put_state(
        "backups/etcd/main/latest",
        &latest(&support::boot::sha256_hex(b"the backup")),
    );
    let log = finish(
        run(&node, &c.script("eu-west-1a"), "boot", &c.stubs, &cp_ips),
        "the retry",
    );
    assert!(
        log.contains(&format!("recovering the cluster from backup {backup}")),
        "{log}"
    );
    assert_eq!(db(&node), "the backup");
    let made = calls(&node);
    let restore = made
        .iter()
        .find(|l| l.contains("snapshot restore"))
        .unwrap();
    assert!(!restore.contains("--skip-hash-check"), "{restore}");
    assert_eq!(count(&made, "kubeadm init"), 1);
    assert!(made
        .iter()
        .any(|l| l.starts_with("kubeadm init") && l.contains("DirAvailable--var-lib-etcd")));
}

#[test]
fn an_election_holder_whose_init_failed_or_whose_record_expired_is_taken_over() {
    let c = Cluster::apply("failed.example.com", &ha());
    let a = c.instance("control-plane-eu-west-1a.masters.failed.example.com");
    let b = c.instance("control-plane-eu-west-1b.masters.failed.example.com");
    let cp_ips = c.cp_ips(&format!("{} {}", a.2, b.2));
    let node_a = c.node("cp-a", &a).api_dead();
    std::fs::write(node_a.root.join("fail-init"), "").unwrap();
    std::fs::write(node_a.root.join("dev/xvdu.fs"), "").unwrap();
    let failed = run(&node_a, &c.script("eu-west-1a"), "boot", &c.stubs, &cp_ips)
        .wait_with_output()
        .unwrap();
    assert!(!failed.status.success());
    assert_eq!(
        c.state("bootstrap/init-lock").as_deref(),
        Some(format!("{} failed", a.0).as_str())
    );
    // Its instance still runs, but it will never publish a token: the next one takes over
    // and starts the cluster (no data anywhere: a new etcd).
    let node_b = c.node("cp-b", &b).api_dead();
    let log = finish(
        run(&node_b, &c.script("eu-west-1b"), "boot", &c.stubs, &cp_ips),
        "cp-b",
    );
    assert!(log.contains("taking over"), "{log}");
    let made = calls(&node_b);
    assert_eq!(count(&made, "kubeadm init"), 1, "{made:?}");
    assert!(!made.iter().any(|l| l.contains("snapshot restore")));
    assert_eq!(holder(&c), b.0);

    // A holder that runs but took the election longer ago than the init timeout, with no
    // API answering: taken over too; one within the timeout is waited for.
    let c = Cluster::apply("expired.example.com", &ha());
    let a = c.instance("control-plane-eu-west-1a.masters.expired.example.com");
    let b = c.instance("control-plane-eu-west-1b.masters.expired.example.com");
    let cp_ips = c.cp_ips(&format!("{} {}", a.2, b.2));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    c.put_state("bootstrap/init-lock", &format!("{} {}", a.0, now - 60));
    let node_b = c.node("cp-b", &b).api_dead();
    let mut booting = run_with(
        &node_b,
        &c.script("eu-west-1b"),
        "boot",
        &c.stubs,
        &cp_ips,
        &[("KOPSRS_INIT_TIMEOUT", "1200")],
    );
    std::thread::sleep(Duration::from_secs(12));
    assert_eq!(count(&calls(&node_b), "kubeadm init"), 0);
    assert_eq!(holder(&c), a.0);
    booting.kill().unwrap();
    booting.wait().unwrap();
    c.put_state("bootstrap/init-lock", &format!("{} {}", a.0, now - 1300));
    let node_b = c.node("cp-b2", &b).api_dead();
    let log = finish(
        run_with(
            &node_b,
            &c.script("eu-west-1b"),
            "boot",
            &c.stubs,
            &cp_ips,
            &[("KOPSRS_INIT_TIMEOUT", "1200")],
        ),
        "cp-b",
    );
    assert!(log.contains("taking over"), "{log}");
    assert_eq!(count(&calls(&node_b), "kubeadm init"), 1);
    assert_eq!(holder(&c), b.0);
}

#[test]
fn list_and_restore_against_a_file_store_with_every_refusal() {
    let (dir, state) = support::file_store_with_cluster();
    let name = "test.example.com"; // support::CLUSTER
    let backups = dir.path().join(format!("state/{name}/backups/etcd/main"));
    std::fs::create_dir_all(&backups).unwrap();
    for (backup, revision, body) in [
        ("2026-12-01T000000Z", 7, "first snapshot"),
        ("2026-12-02T000000Z", 9, "second snapshot"),
    ] {
        std::fs::write(backups.join(format!("{backup}.db")), body).unwrap();
        std::fs::write(
            backups.join(format!("{backup}.json")),
            format!(
                r#"{{"name":"{backup}","takenAt":1,"etcdVersion":"3.6.4","revision":{revision},"members":3,"kubernetesVersion":"1.34.1","size":{},"sha256":"{}","takenBy":"n"}}"#,
                body.len(),
                support::boot::sha256_hex(body.as_bytes())
            ),
        )
        .unwrap();
    }
    let k = |args: &[&str]| {
        support::kopsrs(&state)
            .args(["toolbox", "etcd"])
            .args(args)
            .args(["--name", name])
            .output()
            .unwrap()
    };
    let o = k(&["list-backups", "-o", "json"]);
    assert!(o.status.success(), "{}", out(&o));
    let listed: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(listed[0]["name"], "2026-12-02T000000Z");
    assert_eq!(listed[0]["revision"], 9);
    assert_eq!(listed[1]["name"], "2026-12-01T000000Z");

    // Refusals write nothing.
    let before = support::snapshot(dir.path());
    let o = k(&["restore-backup", "2026-12-03T000000Z", "--yes"]);
    assert!(
        !o.status.success() && out(&o).contains("no such backup"),
        "{}",
        out(&o)
    );
    let o = support::kopsrs(&state)
        .args([
            "toolbox",
            "etcd",
            "list-backups",
            "--name",
            "other.example.com",
        ])
        .output()
        .unwrap();
    assert!(!o.status.success(), "{}", out(&o));
    std::fs::write(
        backups.join("2026-12-01T000000Z.db"),
        "first snapshot, changed",
    )
    .unwrap();
    let o = k(&["restore-backup", "2026-12-01T000000Z", "--yes"]);
    assert!(
        !o.status.success() && out(&o).contains("it was changed or is incomplete"),
        "{}",
        out(&o)
    );
    std::fs::write(backups.join("2026-12-01T000000Z.db"), "first snapshot").unwrap();
    assert_eq!(support::snapshot(dir.path()), before);

    // Written once; a second one while it is pending is refused.
    let o = k(&["restore-backup", "2026-12-02T000000Z", "--yes"]);
    assert!(o.status.success(), "{}", out(&o));
    let command = std::fs::read_to_string(backups.join("restore/command.json")).unwrap();
    assert!(
        command.contains("\"backup\": \"2026-12-02T000000Z\""),
        "{command}"
    );
    let o = k(&["restore-backup", "2026-12-01T000000Z", "--yes"]);
    assert!(
        !o.status.success() && out(&o).contains("is pending: waiting for the first control plane"),
        "{}",
        out(&o)
    );
    assert_eq!(
        std::fs::read_to_string(backups.join("restore/command.json")).unwrap(),
        command
    );
    // Once every member it recorded is done, the next may be asked for.
    let command: serde_json::Value = serde_json::from_str(&command).unwrap();
    let id = command["id"].as_str().unwrap();
    std::fs::create_dir_all(backups.join(format!("restore/{id}/done"))).unwrap();
    std::fs::write(
        backups.join(format!("restore/{id}/members")),
        "a https://10.0.0.1:2380\nb https://10.0.0.2:2380\n",
    )
    .unwrap();
    std::fs::write(backups.join(format!("restore/{id}/done/a")), "a 1").unwrap();
    let o = k(&["restore-backup", "2026-12-01T000000Z", "--yes"]);
    assert!(
        !o.status.success() && out(&o).contains("waiting for b"),
        "{}",
        out(&o)
    );
    std::fs::write(backups.join(format!("restore/{id}/done/b")), "b 1").unwrap();
    let o = k(&["restore-backup", "2026-12-01T000000Z", "--yes"]);
    assert!(o.status.success(), "{}", out(&o));
    let next = std::fs::read_to_string(backups.join("restore/command.json")).unwrap();
    assert!(
        next.contains("\"backup\": \"2026-12-01T000000Z\""),
        "{next}"
    );
}

#[test]
fn the_backup_policy_is_checked_naming_the_field() {
    let (dir, state) = support::file_store_with_cluster();
    let name = "test.example.com"; // support::CLUSTER
    let before = support::snapshot(dir.path());
    let o = support::kopsrs(&state)
        .args(["edit", "cluster", name, "--set"])
        .arg("spec.etcdClusters[0].manager.backupInterval=soon")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        out(&o).contains("spec.etcdClusters[0].manager.backupInterval")
            && out(&o).contains("\"soon\""),
        "{}",
        out(&o)
    );
    assert_eq!(support::snapshot(dir.path()), before);
    // Another backup store than the state store: said, since nothing writes there.
    let o = support::kopsrs(&state)
        .args(["edit", "cluster", name, "--set"])
        .arg("spec.etcdClusters[0].backups.backupStore=s3://elsewhere/backups")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out(&o));
    let o = support::kopsrs(&state)
        .args(["update", "cluster", name, "--target", "terraform", "--out"])
        .arg(dir.path().join("tf"))
        .output()
        .unwrap();
    assert!(
        out(&o).contains("spec.etcdClusters[0].backups.backupStore")
            && out(&o).contains("kopsrs keeps etcd backups in the state store"),
        "{}",
        out(&o)
    );
}
