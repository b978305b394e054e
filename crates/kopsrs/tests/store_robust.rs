//! A state store with a spec another tool broke (issue 31, item 6): the other clusters are
//! still listed, `replace -f` from git writes over it, and every decode error of a spec is
//! reported in one run.

mod support;

use std::process::Output;

use support::{kopsrs, CLUSTER};

fn ok(output: Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// A second cluster beside [`CLUSTER`], from `create cluster` flags: its spec as YAML.
fn second_cluster(state: &str, dir: &std::path::Path) -> std::path::PathBuf {
    let yaml = ok(kopsrs(state)
        .args([
            "create",
            "cluster",
            "broken.example.com",
            "--zones",
            "eu-west-1a",
        ])
        .args(["--dry-run", "-o", "yaml"])
        .output()
        .unwrap());
    let file = dir.join("broken.yaml");
    std::fs::write(&file, &yaml).unwrap();
    ok(kopsrs(state)
        .arg("create")
        .arg("-f")
        .arg(&file)
        .output()
        .unwrap());
    file
}

/// Writes `fields` (`name: value` lines) at the top of the stored cluster's `spec`, as
/// another tool would.
fn break_stored(dir: &std::path::Path, fields: &[&str]) -> std::path::PathBuf {
    let config = dir.join("state/broken.example.com/config");
    let text = std::fs::read_to_string(&config).unwrap();
    let added: String = fields.iter().map(|f| format!("\n  {f}")).collect();
    std::fs::write(
        &config,
        text.replacen("\nspec:", &format!("\nspec:{added}"), 1),
    )
    .unwrap();
    config
}

#[test]
fn one_broken_cluster_hides_no_other() {
    let (dir, state) = support::file_store_with_cluster();
    second_cluster(&state, dir.path());
    break_stored(dir.path(), &["futureField: 1"]);

    for full in [false, true] {
        let mut command = kopsrs(&state);
        command.args(["get", "clusters"]);
        if full {
            command.arg("--full");
        }
        let output = command.output().unwrap();
        assert_eq!(output.status.code(), Some(1), "{output:?}");
        let table = String::from_utf8_lossy(&output.stdout);
        let error = String::from_utf8_lossy(&output.stderr);
        assert!(table.contains("test.example.com"), "{table}");
        assert!(!table.contains("broken.example.com"), "{table}");
        // The error names the store key and the field.
        assert!(
            error.contains("broken.example.com/config")
                && error.contains("spec.futureField")
                && error.contains("replace -f"),
            "{error}"
        );
    }
    // YAML too: the readable cluster is printed, the broken one is an error.
    let output = kopsrs(&state)
        .args(["get", "clusters", "-o", "yaml"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let yaml = String::from_utf8_lossy(&output.stdout);
    assert!(yaml.contains("name: test.example.com"), "{yaml}");
    // Read leniently, it lists both.
    let table = ok(kopsrs(&state)
        .args(["get", "clusters", "--validate=warn"])
        .output()
        .unwrap());
    assert!(table.contains("broken.example.com"), "{table}");
}

#[test]
fn replace_from_git_writes_over_a_broken_spec() {
    let (dir, state) = support::file_store_with_cluster();
    let file = second_cluster(&state, dir.path());
    let config = break_stored(dir.path(), &["futureField: 1"]);

    // The instance groups alone cannot replace it: nothing says what the cluster should be.
    let groups = dir.path().join("groups.yaml");
    let yaml = std::fs::read_to_string(&file).unwrap();
    let only_groups: Vec<&str> = yaml
        .split("\n---\n")
        .filter(|d| d.contains("kind: InstanceGroup"))
        .collect();
    std::fs::write(&groups, only_groups.join("\n---\n")).unwrap();
    let before = std::fs::read(&config).unwrap();
    let output = kopsrs(&state)
        .arg("replace")
        .arg("-f")
        .arg(&groups)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(error.contains("spec.futureField"), "{error}");
    assert_eq!(std::fs::read(&config).unwrap(), before, "nothing written");

    // The whole spec from git replaces it, with a warning naming what was wrong.
    let output = kopsrs(&state)
        .arg("replace")
        .arg("-f")
        .arg(&file)
        .output()
        .unwrap();
    let warning = String::from_utf8_lossy(&output.stderr).to_string();
    ok(output);
    assert!(
        warning.contains("warning:") && warning.contains("spec.futureField"),
        "{warning}"
    );
    let stored = std::fs::read_to_string(&config).unwrap();
    assert!(!stored.contains("futureField"), "{stored}");
    let table = ok(kopsrs(&state).args(["get", "clusters"]).output().unwrap());
    assert!(table.contains("broken.example.com"), "{table}");
}

#[test]
fn every_decode_error_is_reported_in_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let state = format!("file://{}/state", dir.path().display());
    // Three unknown fields in the cluster, a wrong type and an unknown field in a group.
    let cluster = CLUSTER
        .replacen("\nspec:", "\nspec:\n  fieldOne: 1\n  fieldTwo: 2", 1)
        .replacen(
            "  kubernetesVersion:",
            "  fieldThree: 3\n  kubernetesVersion:",
            1,
        )
        .replacen("  maxSize: 1", "  maxSize: many\n  groupField: x", 1);
    assert!(
        cluster.contains("groupField"),
        "the fixture has a maxSize line"
    );
    let file = dir.path().join("cluster.yaml");
    std::fs::write(&file, &cluster).unwrap();
    let output = kopsrs(&state)
        .arg("create")
        .arg("-f")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let error = String::from_utf8_lossy(&output.stderr);
    for field in [
        "spec.fieldOne",
        "spec.fieldTwo",
        "spec.fieldThree",
        "spec.maxSize",
        "spec.groupField",
    ] {
        assert!(error.contains(field), "{field} missing from: {error}");
    }
    // Each with the line it is on.
    let line = |needle: &str| cluster.lines().position(|l| l.contains(needle)).unwrap() + 1;
    assert!(
        error.contains(&format!("cluster.yaml:{}", line("fieldTwo"))),
        "{error}"
    );
    assert!(
        error.contains(&format!("cluster.yaml:{}", line("groupField"))),
        "{error}"
    );
    assert!(!dir.path().join("state/test.example.com").exists());
}
