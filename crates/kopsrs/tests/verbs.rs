//! The remaining spec verbs through the binary: ssh keys, replace, delete -f, templates,
//! schema, completion.

mod support;

use support::{kopsrs, CLUSTER};

fn ok(output: std::process::Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn ssh_keys_replace_and_delete() {
    let (dir, state) = support::file_store_with_cluster();
    let file = dir.path().join("cluster.yaml");

    let key = dir.path().join("id.pub");
    std::fs::write(
        &key,
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHkopsrstestkeymaterial0000000000 me@host\n",
    )
    .unwrap();
    ok(kopsrs(&state)
        .args(["create", "sshpublickey", "--name", "test.example.com", "-i"])
        .arg(&key)
        .output()
        .unwrap());
    let keys = ok(kopsrs(&state)
        .args([
            "get",
            "sshpublickeys",
            "--name",
            "test.example.com",
            "-o",
            "yaml",
        ])
        .output()
        .unwrap());
    assert!(keys.contains("publicKey: ssh-ed25519 AAAAC3"), "{keys}");
    // A file that is not a key, with characters of several bytes where the message cuts it:
    // an error naming it, not a panic (exit 101).
    let not_a_key = dir.path().join("not-a-key.pub");
    std::fs::write(&not_a_key, "ключ ключ ключ ключ ключ ключ\n").unwrap();
    let refused = kopsrs(&state)
        .args(["create", "sshpublickey", "--name", "test.example.com", "-i"])
        .arg(&not_a_key)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{err}");
    assert!(err.contains("is not an SSH public key"), "{err}");

    // replace: a changed group is stored; a new one needs --force.
    let changed = CLUSTER.replace("maxSize: 4", "maxSize: 6");
    std::fs::write(&file, &changed).unwrap();
    ok(kopsrs(&state)
        .args(["replace", "-f"])
        .arg(&file)
        .output()
        .unwrap());
    let groups = ok(kopsrs(&state)
        .args([
            "get",
            "ig",
            "nodes",
            "--name",
            "test.example.com",
            "-o",
            "json",
        ])
        .output()
        .unwrap());
    assert!(groups.contains("\"maxSize\": 6"), "{groups}");
    let extra = dir.path().join("extra.yaml");
    std::fs::write(
        &extra,
        CLUSTER
            .split("---\n")
            .nth(2)
            .unwrap()
            .replace("name: nodes", "name: more"),
    )
    .unwrap();
    let refused = kopsrs(&state)
        .args(["replace", "-f"])
        .arg(&extra)
        .output()
        .unwrap();
    assert!(
        !refused.status.success()
            && String::from_utf8_lossy(&refused.stderr).contains("use --force to create it")
    );
    ok(kopsrs(&state)
        .args(["replace", "--force", "-f"])
        .arg(&extra)
        .output()
        .unwrap());

    // delete -f: a dry run first, then --yes.
    let dry = ok(kopsrs(&state)
        .args(["delete", "-f"])
        .arg(&extra)
        .output()
        .unwrap());
    assert!(dry.contains("Would delete InstanceGroup/more"));
    ok(kopsrs(&state)
        .args(["delete", "-f"])
        .arg(&extra)
        .arg("--yes")
        .output()
        .unwrap());
    let names = ok(kopsrs(&state)
        .args(["get", "ig", "--name", "test.example.com"])
        .output()
        .unwrap());
    assert!(
        !names.contains("more") && names.contains("nodes"),
        "{names}"
    );
}

#[test]
fn template_schema_and_completion() {
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("cluster.tmpl.yaml");
    std::fs::write(&template, "name: {{ .name }}\nnodes: {{ .nodes.count }}\nsize: {{ .nodes.size | default \"t3.medium\" }}\n").unwrap();
    let common = dir.path().join("common.yaml");
    std::fs::write(
        &common,
        "name: common.example.com\nnodes: {count: 1, size: m5.large}\n",
    )
    .unwrap();
    let dev = dir.path().join("dev.yaml");
    std::fs::write(&dev, "name: dev.example.com\n").unwrap();
    let out = ok(kopsrs("memory://")
        .args(["toolbox", "template", "-t"])
        .arg(&template)
        .arg("--values")
        .arg(&common)
        .arg("--values")
        .arg(&dev)
        .args(["--set", "nodes.count=5", "--format-yaml"])
        .output()
        .unwrap());
    assert_eq!(out, "name: dev.example.com\nnodes: 5\nsize: m5.large\n");
    let missing = dir.path().join("missing.j2");
    std::fs::write(&missing, "zone: {{ zone }}\n").unwrap();
    let failed = kopsrs("memory://")
        .args(["toolbox", "template", "--fail-on-missing", "-t"])
        .arg(&missing)
        .output()
        .unwrap();
    assert!(
        !failed.status.success()
            && String::from_utf8_lossy(&failed.stderr).contains("reads a value that is not set")
    );

    let schema: serde_json::Value = serde_json::from_str(&ok(kopsrs("memory://")
        .args(["toolbox", "schema"])
        .output()
        .unwrap()))
    .unwrap();
    assert!(schema["definitions"]["ClusterSpec"]["properties"]["networkCIDR"].is_object());
    assert_eq!(
        schema["definitions"]["ClusterSubnetSpec"]["additionalProperties"],
        false
    );

    let completion = ok(kopsrs("memory://")
        .args(["completion", "bash"])
        .output()
        .unwrap());
    assert!(completion.contains("kopsrs"));
    assert!(ok(kopsrs("memory://").arg("version").output().unwrap()).starts_with("kopsrs "));
}

/// Output piped into a reader that stops early (`| head`) ends quietly: no panic, no message.
#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    let mut child = kopsrs("memory://pipe")
        .args(["toolbox", "schema"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Read a little of the 190 KB schema, then close the pipe, as `head -c 10` does.
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 10];
    std::io::Read::read_exact(&mut stdout, &mut first).unwrap();
    drop(stdout);
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
}

/// Boolean flags take Go's `=value` forms, as kops's command lines and CI scripts write them.
#[test]
fn boolean_flags_take_values_as_kops_does() {
    let dry = |flags: &[&str]| {
        let mut command = kopsrs("memory://flags");
        command.args([
            "create",
            "cluster",
            "b.example.com",
            "--zones",
            "eu-west-1a",
        ]);
        command.args(flags).args(["--dry-run", "-o", "yaml"]);
        command.output().unwrap()
    };
    let bastions = |output: std::process::Output| ok(output).matches("role: Bastion").count();
    assert_eq!(bastions(dry(&["--topology=private", "--bastion=true"])), 1);
    assert_eq!(bastions(dry(&["--topology=private", "--bastion=T"])), 1);
    assert_eq!(bastions(dry(&["--topology=private", "--bastion"])), 1);
    assert_eq!(bastions(dry(&["--topology=private", "--bastion=false"])), 0);
    assert_eq!(bastions(dry(&["--topology=private", "--bastion=0"])), 0);
    let refused = dry(&["--bastion=maybe"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("\"maybe\" is not a boolean"));

    // `--yes=false` is a dry run.
    let (_dir, state) = support::file_store_with_cluster();
    let kept = ok(kopsrs(&state)
        .args([
            "delete",
            "cluster",
            "test.example.com",
            "--unregister",
            "--yes=false",
        ])
        .output()
        .unwrap());
    assert!(kept.contains("Would remove"), "{kept}");
    ok(kopsrs(&state)
        .args(["get", "cluster", "test.example.com"])
        .output()
        .unwrap());
}

/// kops's command lines from articles and CI scripts (issue 17, item 3), each as it failed
/// before: the map form of `--set`, `--config`, the aliases, and kops verbs kopsrs lacks.
#[test]
fn kops_command_line_habits() {
    let (dir, state) = support::file_store_with_cluster();
    let name = "test.example.com";
    let fails = |output: std::process::Output| {
        assert_eq!(output.status.code(), Some(1), "{output:?}");
        String::from_utf8(output.stderr).unwrap()
    };

    // `--set` on a map field adds one entry, as kops does.
    ok(kopsrs(&state)
        .args([
            "edit",
            "cluster",
            name,
            "--set",
            "spec.cloudLabels=team=infra",
        ])
        .output()
        .unwrap());
    let spec = ok(kopsrs(&state)
        .args(["get", "cluster", name, "-o", "yaml"])
        .output()
        .unwrap());
    assert!(spec.contains("cloudLabels:\n    team: infra"), "{spec}");

    // The global --config file names the state store and the cluster.
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let config = dir.path().join("kops.yaml");
    std::fs::write(&config, format!("state: {state}\nname: {name}\n")).unwrap();
    let bare = || {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_kopsrs"));
        c.env_remove("KOPS_STATE_STORE")
            .env_remove("KOPS_CLUSTER_NAME")
            .env("HOME", &home)
            .current_dir(&home);
        c
    };
    let groups = ok(bare()
        .arg("--config")
        .arg(&config)
        .args(["get", "ig"])
        .output()
        .unwrap());
    assert!(groups.contains("nodes"), "{groups}");
    // ... and ~/.kops.yaml is read when no --config is given.
    std::fs::copy(&config, home.join(".kops.yaml")).unwrap();
    let clusters = ok(bare().args(["get", "clusters"]).output().unwrap());
    assert!(clusters.contains(name), "{clusters}");

    // Aliases and kops's flags.
    let key = dir.path().join("id.pub");
    std::fs::write(
        &key,
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHkopsrstestkeymaterial0000000000 me\n",
    )
    .unwrap();
    ok(kopsrs(&state)
        .args([
            "create",
            "secret",
            "--name",
            name,
            "sshpublickey",
            "admin",
            "-i",
        ])
        .arg(&key)
        .output()
        .unwrap());
    ok(kopsrs(&state)
        .args([
            "-v",
            "10",
            "create",
            "ig",
            "extra",
            "--name",
            name,
            "--edit=false",
            "--subnet",
            "eu-west-1a",
        ])
        .output()
        .unwrap());
    let version = ok(kopsrs(&state)
        .args(["version", "--short"])
        .output()
        .unwrap());
    assert_eq!(version.trim(), env!("CARGO_PKG_VERSION"));
    let kubecfg = kopsrs(&state)
        .args(["export", "kubecfg", name])
        .output()
        .unwrap();
    // The alias reaches `export kubeconfig` (which needs the PKI an update makes first).
    let stderr = String::from_utf8_lossy(&kubecfg.stderr);
    assert!(stderr.contains("has no CA yet"), "{stderr}");

    // kops verbs kopsrs does not have yet say so, with what to do instead.
    let describe = fails(
        kopsrs(&state)
            .args(["describe", "cluster"])
            .output()
            .unwrap(),
    );
    assert!(
        describe.contains("kopsrs has no `describe` yet"),
        "{describe}"
    );
    // `reconcile cluster` is a verb of its own now (its runs are tested on moto).
    let help = ok(kopsrs(&state)
        .args(["reconcile", "cluster", "--help"])
        .output()
        .unwrap());
    assert!(help.contains("version skew policy"), "{help}");
    // `rolling-update cluster` exists: without a kubeconfig context it says how to get one,
    // or to do without the API.
    let rolling = fails(
        kopsrs(&state)
            .args([
                "rolling-update",
                "cluster",
                name,
                "--yes",
                "--kubeconfig",
                "/dev/null",
            ])
            .output()
            .unwrap(),
    );
    assert!(
        rolling.contains("export kubeconfig") && rolling.contains("--cloudonly"),
        "{rolling}"
    );
    // `validate cluster` exists: without a kubeconfig context it says how to get one.
    let validate = fails(
        kopsrs(&state)
            .args(["validate", "cluster", name, "--kubeconfig", "/dev/null"])
            .output()
            .unwrap(),
    );
    assert!(validate.contains("export kubeconfig"), "{validate}");
    let typo = fails(kopsrs(&state).args(["updte", "cluster"]).output().unwrap());
    assert!(typo.contains("did you mean `update`?"), "{typo}");
}

/// Five control-plane members over two zones are named as kops names them (issue 17, item 4),
/// and the names reach the etcd volumes and their tags; `--encrypt-etcd-storage=false` and
/// `--etcd-storage-type` reach them too (both were accepted and ignored before).
#[test]
fn etcd_members_are_named_as_kops_names_them() {
    let dir = tempfile::tempdir().unwrap();
    let state = format!("file://{}/state", dir.path().display());
    ok(kopsrs(&state)
        .args([
            "create",
            "cluster",
            "five.example.com",
            "--zones",
            "eu-west-1a,eu-west-1b",
            "--control-plane-count",
            "5",
            "--encrypt-etcd-storage=false",
            "--etcd-storage-type",
            "io1",
        ])
        .output()
        .unwrap());
    let out = dir.path().join("tf");
    ok(kopsrs(&state)
        .args([
            "update",
            "cluster",
            "five.example.com",
            "--target",
            "terraform",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap());
    let terraform = std::fs::read_to_string(out.join("kubernetes.tf")).unwrap();
    for member in ["a-1", "b-1", "a-2", "b-2", "a-3"] {
        assert!(
            terraform.contains(&format!("= \"{member}.etcd-main.five.example.com\"")),
            "no volume for {member}"
        );
    }
    assert!(
        terraform.contains("\"a-2/a-1,b-1,a-2,b-2,a-3\""),
        "{terraform}"
    );
    assert!(!terraform.contains("etcd-1"));
    // `terraform fmt` aligns the `=`: compare attribute and value, not spacing.
    let attributes: Vec<(&str, &str)> = terraform
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect();
    let count = |pair: (&str, &str)| attributes.iter().filter(|a| **a == pair).count();
    // Five members of main and five of events; root volumes stay encrypted.
    assert_eq!(count(("encrypted", "false")), 10);
    assert_eq!(count(("type", "\"io1\"")), 10);
}

/// A spec carrying a field kops stopped reading (issue 17, item 5): refused by default with
/// the way out; `--validate=warn` drops it and says so; `--validate=ignore` drops it quietly;
/// for files, for the state store and for edits.
#[test]
fn stale_fields_follow_validate() {
    let dir = tempfile::tempdir().unwrap();
    let state = format!("file://{}/state", dir.path().display());
    let file = dir.path().join("cluster.yaml");
    let stale = support::CLUSTER.replacen(
        "spec:\n",
        "spec:\n  serviceOIDCProvider:\n    issuerURL: https://old.example.com\n",
        1,
    );
    std::fs::write(&file, &stale).unwrap();
    let run = |args: &[&str]| kopsrs(&state).args(args).arg(&file).output().unwrap();

    let strict = run(&["create", "-f"]);
    assert_eq!(strict.status.code(), Some(1));
    let text = String::from_utf8_lossy(&strict.stderr);
    assert!(
        text.contains("spec.serviceOIDCProvider: unknown field")
            && text.contains("--validate=warn"),
        "{text}"
    );
    assert!(!dir.path().join("state").exists(), "nothing is written");

    let warned = run(&["create", "--validate=warn", "-f"]);
    let text = String::from_utf8_lossy(&warned.stderr);
    assert!(warned.status.success(), "{text}");
    assert!(
        text.contains("warning: ")
            && text.contains("spec.serviceOIDCProvider: unknown field, dropped"),
        "{text}"
    );
    let ignored = run(&["replace", "--validate=ignore", "-f"]);
    assert!(ignored.status.success());
    assert!(!String::from_utf8_lossy(&ignored.stderr).contains("warning"));
    let stored = dir.path().join("state/test.example.com/config");
    assert!(!std::fs::read_to_string(&stored)
        .unwrap()
        .contains("serviceOIDCProvider"));

    // A store written by another tool, with the stale field in it.
    std::fs::write(&stored, &stale).unwrap();
    let get = |validate: &str| {
        kopsrs(&state)
            .args(["get", "cluster", "test.example.com", "-o", "yaml", validate])
            .output()
            .unwrap()
    };
    let refused = get("--validate=strict");
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--validate=warn"));
    let read = get("--validate=warn");
    assert!(read.status.success());
    assert!(String::from_utf8_lossy(&read.stderr)
        .contains("serviceOIDCProvider: unknown field, dropped"));
    assert!(!String::from_utf8_lossy(&read.stdout).contains("serviceOIDCProvider"));

    // An edit that adds a stale field.
    let edited = kopsrs(&state)
        .args(["edit", "cluster", "test.example.com", "--validate=warn"])
        .env(
            "EDITOR",
            "sed -i 's/^  networkCIDR:/  legacyField: 1\\n  networkCIDR:/; s/v1.34.1/v1.34.2/'",
        )
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&edited.stderr);
    assert!(edited.status.success(), "{text}");
    assert!(
        text.contains("spec.legacyField: unknown field, dropped"),
        "{text}"
    );
    let config = std::fs::read_to_string(&stored).unwrap();
    assert!(
        config.contains("v1.34.2") && !config.contains("legacyField"),
        "{config}"
    );
}

/// `toolbox template` as kops documents it (issue 17, item 6): snippets by file name through
/// `include` with kops's `indent`, the channel functions, `clusterName` from `--name`,
/// `--output`, `--config-value`, and `--fail-on-missing` on by default.
#[test]
fn toolbox_template_as_kops_runs_it() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    };
    write("snippets/labels.yaml", "team: {{ .team }}\nenv: {{ .env }}");
    write("values/common.yaml", "team: sre\nenv: prod\n");
    write("values/dev/overrides.yaml", "env: dev\n");
    let template = write(
        "templates/cluster.yaml",
        "metadata:\n  name: {{ .clusterName }}\n  labels:\n    {{ include \"labels.yaml\" . | indent 4 }}\n\
         spec:\n  kubernetesVersion: {{ ChannelRecommendedKopsKubernetesVersion }}\n  \
         image: {{ ChannelRecommendedImage \"aws\" \"1.34.1\" \"arm64\" }}\n",
    );
    let output = dir.path().join("out.yaml");
    ok(kopsrs("memory://")
        .args([
            "toolbox",
            "template",
            "--name",
            "dev.example.com",
            "--values",
        ])
        .arg(dir.path().join("values"))
        .arg("--snippets")
        .arg(dir.path().join("snippets"))
        .arg("--template")
        .arg(&template)
        .arg("--output")
        .arg(&output)
        .output()
        .unwrap());
    let rendered = std::fs::read_to_string(&output).unwrap();
    assert!(
        rendered.starts_with(
            "metadata:\n  name: dev.example.com\n  labels:\n    team: sre\n    env: dev\nspec:\n  kubernetesVersion: 1."
        ),
        "{rendered}"
    );
    assert!(
        rendered.contains("ubuntu-noble-24.04-arm64-server"),
        "{rendered}"
    );

    let value = ok(kopsrs("memory://")
        .args(["toolbox", "template", "--config-value", "env", "--values"])
        .arg(dir.path().join("values"))
        .output()
        .unwrap());
    assert_eq!(value, "dev\n");

    // A value no file sets: an error by default, as in kops; `--fail-on-missing=false` renders.
    let missing = write("templates/zone.yaml", "zone: {{ .zone }}\n");
    let failed = kopsrs("memory://")
        .args(["toolbox", "template", "-t"])
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(failed.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&failed.stderr).contains("reads a value that is not set"));
    let lenient = ok(kopsrs("memory://")
        .args(["toolbox", "template", "--fail-on-missing=false", "-t"])
        .arg(&missing)
        .output()
        .unwrap());
    assert_eq!(lenient, "zone: <no value>\n");
}

/// The README's walkthrough runs as written (issue 17, item 8): its first block, line by line
/// under `set -e`, from a copy of the checkout's `examples/`, with the state store moved to a
/// temporary directory and an editor that changes nothing.
#[test]
fn readme_walkthrough_runs() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let block = readme
        .split("## Walkthrough")
        .nth(1)
        .and_then(|rest| rest.split("```sh\n").nth(1))
        .and_then(|rest| rest.split("```").next())
        .expect("a ```sh block under ## Walkthrough");
    let dir = tempfile::tempdir().unwrap();
    let state = format!("file://{}/state", dir.path().display());
    assert!(block.contains("file:///tmp/kopsrs-state"), "{block}");
    let script = format!(
        "set -euo pipefail\n{}",
        block.replace("file:///tmp/kopsrs-state", &state)
    );
    let status = std::process::Command::new("cp")
        .arg("-r")
        .arg(root.join("examples"))
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_kopsrs"))
        .parent()
        .unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = std::process::Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(dir.path())
        .env("PATH", path)
        .env("HOME", dir.path())
        .env("EDITOR", "true")
        .env_remove("KOPS_STATE_STORE")
        .env_remove("KOPS_CLUSTER_NAME")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(dir.path().join("out/terraform/kubernetes.tf").is_file());
}
