//! `edit cluster` in an editor: an invalid edit is reopened with the errors as comments, as
//! kubectl does; fixing it saves the change.

mod support;

use support::{kopsrs, CLUSTER};

#[test]
fn invalid_edit_reopens_with_errors_then_saves() {
    let dir = tempfile::tempdir().unwrap();
    let state = format!("file://{}/state", dir.path().display());
    let file = dir.path().join("cluster.yaml");
    std::fs::write(&file, CLUSTER).unwrap();
    assert!(kopsrs(&state)
        .args(["create", "-f"])
        .arg(&file)
        .status()
        .unwrap()
        .success());

    // First session: add an unknown field. Second: it must see `# error:` lines, then fix it
    // and change the version.
    let editor = dir.path().join("editor.sh");
    let count = dir.path().join("count");
    std::fs::write(
        &editor,
        format!(
            "#!/bin/sh\nset -e\nf=\"$1\"\nn=$(cat {c} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {c}\n\
             if [ $n = 1 ]; then sed -i 's/^  networkCIDR:/  bogusField: 1\\n  networkCIDR:/' \"$f\"; \
             else grep -q '^# error: .*bogusField' \"$f\" && sed -i '/bogusField/d; s/v1.34.1/v1.34.2/' \"$f\"; fi\n",
            c = count.display()
        ),
    )
    .unwrap();
    let output = kopsrs(&state)
        .args(["edit", "cluster", "test.example.com"])
        .env("EDITOR", format!("sh {}", editor.display()))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(std::fs::read_to_string(&count).unwrap().trim(), "2");
    let got = kopsrs(&state)
        .args(["get", "clusters", "test.example.com", "-o", "yaml"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&got.stdout).contains("kubernetesVersion: v1.34.2"));
}

/// An edit that keeps its errors is kept for the user in a new private file (mode 0600, a
/// random name), never at a predictable path: a link planted at the old path
/// (`kopsrs-edit-<pid>.yaml`) is not followed.
#[test]
fn a_failed_edit_is_kept_in_a_new_private_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let state = format!("file://{}/state", dir.path().display());
    let file = dir.path().join("cluster.yaml");
    std::fs::write(&file, CLUSTER).unwrap();
    assert!(kopsrs(&state)
        .args(["create", "-f"])
        .arg(&file)
        .status()
        .unwrap()
        .success());
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let target = dir.path().join("victim");
    std::fs::write(&target, "not yours").unwrap();
    // Every session adds the same unknown field: the second is the same as the first.
    let editor = dir.path().join("editor.sh");
    std::fs::write(
        &editor,
        "#!/bin/sh\nset -e\ngrep -q bogusField \"$1\" || sed -i 's/^  networkCIDR:/  bogusField: 1\\n  networkCIDR:/' \"$1\"\n\
         sleep 0.2\n",
    )
    .unwrap();
    let mut command = kopsrs(&state);
    command
        .args(["edit", "cluster", "test.example.com"])
        .env("EDITOR", format!("sh {editor}", editor = editor.display()))
        .env("TMPDIR", &tmp)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = command.spawn().unwrap();
    // The path the old code wrote to, planted as a link to another file while the editor
    // runs (twice, so well before the copy is made).
    let predictable = tmp.join(format!("kopsrs-edit-{}.yaml", child.id()));
    std::os::unix::fs::symlink(&target, &predictable).unwrap();
    let output = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{err}");
    let kept = err
        .split("your edit is kept in ")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .expect("names the kept file")
        .trim()
        .to_string();
    let kept = std::path::Path::new(&kept);
    assert!(kept.starts_with(&tmp), "{}", kept.display());
    assert!(std::fs::read_to_string(kept)
        .unwrap()
        .contains("bogusField"));
    let mode = std::fs::metadata(kept).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_ne!(kept, predictable.as_path());
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "not yours");
}

/// In an editor too, a Kubernetes version the channel does not have and a minor downgrade
/// from the stored version are refused (the file reopened with the errors), nothing saved.
#[test]
fn an_edit_in_an_editor_cannot_move_the_version_outside_the_channel() {
    for (version, expected) in [
        (
            "v1.33.5",
            "# error: spec.kubernetesVersion: v1.33.5 is an older minor version than v1.34.1",
        ),
        (
            "v1.36.0",
            "# error: spec.kubernetesVersion: v1.36.0 is not supported by the channel (supported minor versions: 1.31, 1.32, 1.33, 1.34)",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let state = format!("file://{}/state", dir.path().display());
        let file = dir.path().join("cluster.yaml");
        std::fs::write(&file, CLUSTER).unwrap();
        assert!(kopsrs(&state)
            .args(["create", "-f"])
            .arg(&file)
            .status()
            .unwrap()
            .success());
        // Every session sets the same version; the second keeps a copy of what it was shown.
        let shown = dir.path().join("shown.yaml");
        let editor = dir.path().join("editor.sh");
        std::fs::write(
            &editor,
            format!(
                "#!/bin/sh\nset -e\ncp \"$1\" {shown}\nsed -i 's/kubernetesVersion: v1.34.1/kubernetesVersion: {version}/' \"$1\"\n",
                shown = shown.display()
            ),
        )
        .unwrap();
        let output = kopsrs(&state)
            .args(["edit", "cluster", "test.example.com"])
            .env("EDITOR", format!("sh {}", editor.display()))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{err}");
        assert!(err.contains("the edit still has the errors above"), "{err}");
        let shown = std::fs::read_to_string(&shown).unwrap();
        assert!(shown.contains(expected), "{shown}");
        let got = kopsrs(&state)
            .args(["get", "clusters", "test.example.com", "-o", "yaml"])
            .output()
            .unwrap();
        assert!(String::from_utf8_lossy(&got.stdout).contains("kubernetesVersion: v1.34.1"));
    }
}
