//! One intent, one roll: what each launch template of kops's own update cases would run,
//! rendered by this build and compared with the golden set committed beside this file
//! (tests/golden/launch-templates/CASE.txt). An instance needs replacing only when its launch
//! template changes, so a change of this output is a change that rolls every node of
//! existing clusters on their next `update`: it must show in review, as a diff of these files.
//!
//! Each golden file holds, per launch template, its Terraform block (tags of volumes and
//! network interfaces that equal the instances' are said so, not repeated) and its user-data:
//! the settings header (`KEY='value'` lines) in full and the sha256 of the whole script.
//! `KOPSRS_UPDATE_GOLDEN=1 cargo nextest run -E 'binary(launch_templates)'` writes them anew.
//!
//! The cases are read from ../shared/conformance/kops/update_cluster (never copied here);
//! without that folder the test says so and checks nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

fn cases() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/conformance/kops/update_cluster");
    dir.is_dir().then_some(dir)
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/launch-templates")
}

fn kopsrs(state: &str, home: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kopsrs"));
    c.env("KOPS_STATE_STORE", state)
        .env("KOPSRS_DOWNLOAD_ADDONS", "false")
        .env("KOPS_STATE_STORE_OWNER", "123456789012")
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home)
        .env_remove("KOPS_CLUSTER_NAME")
        .env_remove("AWS_ENDPOINT_URL");
    c
}

fn run(mut command: Command) -> Result<(), String> {
    let out = command.output().map_err(|e| e.to_string())?;
    match out.status.success() {
        true => Ok(()),
        false => Err(String::from_utf8_lossy(&out.stderr).trim().to_string()),
    }
}

/// The case's Terraform output: `create -f`, its SSH key, `update --target terraform`.
fn render(case: &Path) -> Result<(String, tempfile::TempDir), String> {
    let work = tempfile::tempdir().unwrap();
    let state = format!("file://{}", work.path().join("state").display());
    let spec = case.join("in-v1alpha2.yaml");
    let text = std::fs::read_to_string(&spec).map_err(|e| e.to_string())?;
    let name = text
        .split("\n---")
        .find(|doc| doc.contains("kind: Cluster\n") || doc.trim_end().ends_with("kind: Cluster"))
        .and_then(|doc| {
            doc.lines()
                .skip_while(|l| !l.starts_with("metadata:"))
                .find_map(|l| l.trim().strip_prefix("name: "))
        })
        .ok_or("no Cluster document")?
        .trim()
        .to_string();
    let home = work.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let mut create = kopsrs(&state, &home);
    create.args(["create", "-f"]).arg(&spec);
    run(create)?;
    let key = case.join("id_rsa.pub");
    if key.exists() {
        let mut add = kopsrs(&state, &home);
        add.args(["create", "sshpublickey", "--name", &name, "-i"])
            .arg(&key);
        run(add)?;
    }
    let mut update = kopsrs(&state, &home);
    update
        .args(["update", "cluster", &name, "--target", "terraform", "--out"])
        .arg(work.path().join("out"));
    run(update)?;
    let tf = std::fs::read_to_string(work.path().join("out/kubernetes.tf"))
        .map_err(|e| e.to_string())?;
    Ok((tf, work))
}

/// The `tag_specifications` sub-blocks of a block, by resource type.
fn tag_specifications(block: &[&str]) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    let mut i = 0;
    while i < block.len() {
        if block[i] == "  tag_specifications {" {
            let end = i + block[i..].iter().position(|l| *l == "  }").unwrap();
            let kind = block[i + 1]
                .split('"')
                .nth(1)
                .unwrap_or_default()
                .to_string();
            out.insert(
                kind,
                block[i + 2..end].iter().map(|l| l.to_string()).collect(),
            );
            i = end;
        }
        i += 1;
    }
    out
}

/// What the golden file of one case holds (see the module comment).
fn digest(tf: &str, out: &Path) -> String {
    let mut text = String::new();
    let lines: Vec<&str> = tf.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        if !lines[i].starts_with("resource \"aws_launch_template\" ") {
            i += 1;
            continue;
        }
        let end = i + lines[i..].iter().position(|l| *l == "}").unwrap();
        let block = &lines[i..=end];
        let specs = tag_specifications(block);
        let instance = specs.get("instance");
        let mut j = 0;
        while j < block.len() {
            let line = block[j];
            if line == "  tag_specifications {" {
                let close = j + block[j..].iter().position(|l| *l == "  }").unwrap();
                let kind = block[j + 1].split('"').nth(1).unwrap_or_default();
                if kind != "instance" && specs.get(kind) == instance {
                    text.push_str(&format!(
                        "  tag_specifications {{ resource_type = {kind:?}, tags as for instance }}\n"
                    ));
                    j = close + 1;
                    continue;
                }
            }
            text.push_str(line);
            text.push('\n');
            if let Some(path) = line
                .trim()
                .strip_prefix("user_data")
                .and_then(|rest| rest.split("\"${path.module}/").nth(1))
                .and_then(|rest| rest.split('"').next())
            {
                let script = std::fs::read_to_string(out.join(path)).unwrap_or_default();
                let settings: Vec<&str> = script
                    .lines()
                    .skip(1)
                    .skip_while(|l| l.starts_with('#'))
                    .take_while(|l| {
                        l.split_once('=').is_some_and(|(k, _)| {
                            !k.is_empty()
                                && k.chars().all(|c| {
                                    c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'
                                })
                        })
                    })
                    .collect();
                text.push_str("  # user-data settings:\n");
                for setting in settings {
                    text.push_str(&format!("  #   {setting}\n"));
                }
                text.push_str(&format!(
                    "  # user-data sha256: {:x}\n",
                    Sha256::digest(script.as_bytes())
                ));
            }
            j += 1;
        }
        text.push('\n');
        i = end + 1;
    }
    text
}

#[test]
fn launch_templates_of_kops_cases_match_the_golden_set() {
    let Some(cases) = cases() else {
        eprintln!("../shared/conformance not found: the launch-template golden set is not checked");
        return;
    };
    let update = std::env::var_os("KOPSRS_UPDATE_GOLDEN").is_some();
    let mut names: Vec<PathBuf> = std::fs::read_dir(&cases)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("in-v1alpha2.yaml").is_file())
        .collect();
    names.sort();
    let (mut compared, mut changed, mut unrendered) = (0, Vec::new(), Vec::new());
    for case in &names {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let golden = golden_dir().join(format!("{name}.txt"));
        let (tf, work) = match render(case) {
            Ok(rendered) => rendered,
            // Specs kopsrs refuses are conformance's business (cargo xtask
            // conformance-terraform); they have no launch templates to compare.
            Err(e) => {
                unrendered.push(format!("{name}: {}", e.lines().next().unwrap_or_default()));
                assert!(
                    !golden.exists(),
                    "{name} rendered before and no longer does: {e}"
                );
                continue;
            }
        };
        let now = digest(&tf, &work.path().join("out"));
        if update {
            std::fs::create_dir_all(golden_dir()).unwrap();
            std::fs::write(&golden, &now).unwrap();
            continue;
        }
        let before = std::fs::read_to_string(&golden).unwrap_or_default();
        compared += 1;
        if before != now {
            let first = before
                .lines()
                .zip(now.lines())
                .position(|(a, b)| a != b)
                .unwrap_or_else(|| before.lines().count().min(now.lines().count()));
            let show = |text: &str| {
                text.lines()
                    .skip(first.saturating_sub(2))
                    .take(6)
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            changed.push(format!(
                "{name} (line {}):\n--- golden\n{}\n+++ now\n{}",
                first + 1,
                show(&before),
                show(&now)
            ));
        }
    }
    eprintln!(
        "{compared} case(s) compared; not rendered by kopsrs: {}",
        unrendered.join("; ")
    );
    assert!(
        changed.is_empty(),
        "launch templates changed for {} case(s): every node of such clusters would be replaced by their next update and roll. If that is intended, say so in review and run KOPSRS_UPDATE_GOLDEN=1 cargo nextest run -E 'binary(launch_templates)'.\n\n{}",
        changed.len(),
        changed.join("\n\n")
    );
    assert!(update || compared > 0, "no case compared");
}
