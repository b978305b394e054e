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
