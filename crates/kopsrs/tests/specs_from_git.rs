//! Specs kept in git, one folder per cluster (issue 15, items 1 and 2): `replace -f` and
//! `create -f` take folders holding several clusters, `diff -f` compares them with the state
//! store field by field, and one bad file means nothing is written.

mod support;

use std::path::Path;
use std::process::Output;

use support::{kopsrs, snapshot};

/// A git checkout: one folder per cluster, as `create cluster --dry-run -o yaml` writes the
/// spec. `dev` splits its instance groups into a subfolder, without the cluster label (the
/// folder says which cluster they belong to).
fn checkout(root: &Path, state: &str) {
    for name in ["dev", "internal", "public"] {
        let out = kopsrs(state)
            .args([
                "create",
                "cluster",
                "--name",
                &format!("{name}.example.com"),
            ])
            .args(["--zones", "eu-west-1a", "--dry-run", "-o", "yaml"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let folder = root.join(name);
        std::fs::create_dir_all(&folder).unwrap();
        if name != "dev" {
            std::fs::write(folder.join("cluster.yaml"), text).unwrap();
            continue;
        }
        let mut documents = text.split("\n---\n");
        std::fs::write(folder.join("cluster.yaml"), documents.next().unwrap()).unwrap();
        std::fs::create_dir_all(folder.join("groups")).unwrap();
        for (i, doc) in documents.enumerate() {
            let unlabelled =
                doc.replace("\n  labels:\n    kops.k8s.io/cluster: dev.example.com", "");
            assert_ne!(unlabelled, doc, "the label was there to remove");
            std::fs::write(folder.join(format!("groups/{i}.yml")), unlabelled).unwrap();
        }
    }
    // Not a spec: left alone.
    std::fs::write(root.join("README.md"), "# clusters\n").unwrap();
}

fn diff(state: &str, root: &Path) -> (i32, serde_json::Value) {
    let out = kopsrs(state)
        .args(["diff", "--detailed-exitcode", "-o", "json", "-f"])
        .arg(root)
        .output()
        .unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out.status.code().unwrap(), json)
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_folder_of_clusters_is_replaced_and_diffed_against_the_state_store() {
    let dir = tempfile::tempdir().unwrap();
    let state = format!("file://{}/state", dir.path().display());
    let git = dir.path().join("git");
    checkout(&git, &state);

    // replace --force creates all three from the folder; the diff is then clean.
    let stderr = ok(kopsrs(&state)
        .args(["replace", "--force", "-f"])
        .arg(&git)
        .output()
        .unwrap());
    for name in ["dev", "internal", "public"] {
        assert!(
            stderr.contains(&format!("Replaced 3 object(s) in {name}.example.com")),
            "{stderr}"
        );
    }
    let (code, json) = diff(&state, &git);
    assert_eq!(
        (code, json["differences"].as_array().unwrap().len()),
        (0, 0),
        "{json}"
    );

    // An out-of-band change is reported, exactly that field, exit 2.
    ok(kopsrs(&state)
        .args([
            "edit",
            "ig",
            "nodes-eu-west-1a",
            "--name",
            "internal.example.com",
        ])
        .args(["--set", "spec.maxSize=7"])
        .output()
        .unwrap());
    let (code, json) = diff(&state, &git);
    assert_eq!(code, 2);
    assert_eq!(
        json["differences"],
        serde_json::json!([{
            "cluster": "internal.example.com",
            "object": "InstanceGroup/nodes-eu-west-1a",
            "path": "spec.maxSize",
            "file": 1,
            "store": 7
        }])
    );
    let text = kopsrs(&state)
        .args(["diff", "-f"])
        .arg(&git)
        .output()
        .unwrap();
    assert_eq!(text.status.code(), Some(0), "without --detailed-exitcode");
    let text = String::from_utf8_lossy(&text.stdout);
    // A unified diff of the object as YAML, as `diff -u` prints it.
    assert!(
        text.contains("--- InstanceGroup/nodes-eu-west-1a (internal.example.com, state store)")
            && text.contains("+++ InstanceGroup/nodes-eu-west-1a (internal.example.com, files)")
            && text.contains("\n-  maxSize: 7\n+  maxSize: 1\n")
            && text.contains("1 difference(s) in 1 object(s)"),
        "{text}"
    );

    // A group only in the store (its file removed from git) is drift too.
    std::fs::remove_file(git.join("dev/groups/1.yml")).unwrap();
    let (code, json) = diff(&state, &git);
    assert_eq!(code, 2);
    let dev: Vec<&serde_json::Value> = json["differences"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["cluster"] == "dev.example.com")
        .collect();
    assert_eq!(dev.len(), 1, "{json}");
    assert_eq!(dev[0]["path"], "");
    assert_eq!(dev[0]["file"], serde_json::Value::Null);

    // One bad file among good ones: nothing written.
    std::fs::write(git.join("public/zz.yaml"), "kind: InstanceGroup\n").unwrap();
    let before = snapshot(&dir.path().join("state"));
    let out = kopsrs(&state)
        .args(["replace", "--force", "-f"])
        .arg(&git)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("public/zz.yaml"), "{stderr}");
    assert_eq!(snapshot(&dir.path().join("state")), before);

    // The same folder (fixed) creates clusters in a fresh store; stdin works as a file.
    std::fs::remove_file(git.join("public/zz.yaml")).unwrap();
    let fresh = format!("file://{}/fresh", dir.path().display());
    ok(kopsrs(&fresh)
        .args(["create", "-f"])
        .arg(git.join("dev"))
        .output()
        .unwrap());
    let public = std::fs::read(git.join("public/cluster.yaml")).unwrap();
    let mut child = kopsrs(&fresh)
        .args(["create", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &public).unwrap();
    ok(child.wait_with_output().unwrap());
    let out = kopsrs(&fresh).args(["get", "clusters"]).output().unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains("dev.example.com") && listed.contains("public.example.com"),
        "{listed}"
    );
    // An empty folder is an error that says what it looked for.
    std::fs::create_dir_all(dir.path().join("empty")).unwrap();
    let out = kopsrs(&fresh)
        .args(["diff", "-f"])
        .arg(dir.path().join("empty"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no .yaml, .yml or .json file"));
}

#[test]
fn diff_cluster_sums_up_files_state_store_and_cloud() {
    let moto = support::Moto::start();
    moto.create_bucket("state");
    moto.python("aws('route53').create_hosted_zone(Name='example.com', CallerReference='t')");
    let name = "layers.example.com";
    let run = |args: &[&str]| {
        moto.kopsrs("state")
            .env("AWS_REGION", "eu-west-1")
            .args(args)
            .output()
            .unwrap()
    };
    ok(run(&[
        "create",
        "cluster",
        "--name",
        name,
        "--dns-zone",
        "example.com",
        "--zones",
        "eu-west-1a",
        "--image",
        support::boot::IMAGE,
        "--yes",
    ]));
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("spec.yaml");
    let out = run(&["get", "all", name, "-o", "yaml"]);
    std::fs::write(&spec, &out.stdout).unwrap();
    let spec = spec.to_str().unwrap();
    let diff = |extra: &[&str]| {
        let out = run(&[&["diff", "cluster", name, "-f", spec, "-o", "json"], extra].concat());
        let json: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
        (out.status.code().unwrap(), json)
    };
    // Just applied, and the files are what is stored: nothing differs anywhere.
    let (code, json) = diff(&["--detailed-exitcode"]);
    assert_eq!(code, 0, "{json}");
    assert_eq!(json["differs"], false);
    assert_eq!(
        json["cloud"],
        serde_json::json!({"create": 0, "update": 0, "replace": 0, "delete": 0, "addons": 0})
    );
    // An out-of-band edit of the store: one field against the files, one change in the cloud.
    ok(run(&[
        "edit",
        "ig",
        "nodes-eu-west-1a",
        "--name",
        name,
        "--set",
        "spec.maxSize=4",
    ]));
    let (code, json) = diff(&["--detailed-exitcode"]);
    assert_eq!(code, 2, "{json}");
    let files = json["files"]["differences"].as_array().unwrap();
    assert_eq!(files.len(), 1, "{json}");
    assert_eq!(files[0]["path"], "spec.maxSize");
    assert_eq!(json["cloud"]["update"], 1, "{json}");
    // Without --detailed-exitcode the same report exits 0.
    assert_eq!(diff(&[]).0, 0);
}
