//! `cargo xtask conformance-create [--min PERCENT]`: runs kops's `create cluster` cases through
//! `kopsrs create cluster --dry-run -o yaml` and reports leaf-field agreement with kops's
//! expected output (creationTimestamp and configBase left out).
//!
//! Each case's `options.yaml` holds kops's Go options struct; every field is mapped to the
//! kopsrs flag of the same meaning. A case with a field that has no flag is listed as not
//! mapped, with the field, and left out of the score.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// kops options field → kopsrs flag. Lists repeat the flag per item.
const FLAGS: &[(&str, &str)] = &[
    ("Zones", "--zones"),
    ("ControlPlaneZones", "--control-plane-zones"),
    ("ControlPlaneCount", "--control-plane-count"),
    ("NodeCount", "--node-count"),
    ("NodeSizes", "--node-size"),
    ("ControlPlaneSizes", "--control-plane-size"),
    ("CloudProvider", "--cloud"),
    ("Networking", "--networking"),
    ("KubernetesVersion", "--kubernetes-version"),
    ("Topology", "--topology"),
    ("DNSType", "--dns"),
    ("Image", "--image"),
    ("NodeImage", "--node-image"),
    ("ControlPlaneImage", "--control-plane-image"),
    ("NetworkCIDRs", "--network-cidr"),
    ("NetworkID", "--network-id"),
    ("SubnetIDs", "--subnets"),
    ("SSHAccess", "--ssh-access"),
    ("Sets", "--set"),
    ("IPv6", "--ipv6"),
    ("NodeSecurityGroups", "--node-security-groups"),
    (
        "ControlPlaneSecurityGroups",
        "--control-plane-security-groups",
    ),
    ("CloudLabels", "--cloud-labels"),
    ("KubernetesFeatureGates", "--kubernetes-feature-gates"),
    ("InstanceManager", "--instance-manager"),
    ("DiscoveryStore", "--discovery-store"),
    ("EncryptEtcdStorage", "--encrypt-etcd-storage"),
    ("EtcdStorageType", "--etcd-storage-type"),
    ("Bastion", "--bastion"),
];

pub struct CaseResult {
    pub name: String,
    pub matched: usize,
    pub total: usize,
    pub differences: Vec<String>,
}

fn flags_for(options: &serde_yaml_ng::Mapping) -> Result<(String, Vec<String>), String> {
    let mut name = String::new();
    let mut args = Vec::new();
    for (key, value) in options {
        let key = key.as_str().unwrap_or_default();
        // kops's options struct accepts a few lower-case spellings in these files.
        let normalized = match key {
            "kubernetesVersion" => "KubernetesVersion",
            "cloudLabels" => "CloudLabels",
            other => other,
        };
        if normalized == "ClusterName" {
            name = value.as_str().unwrap_or_default().to_string();
            continue;
        }
        if normalized == "CloudProvider" && value.as_str() != Some("aws") {
            return Err(format!(
                "CloudProvider {} (kopsrs is AWS only)",
                value.as_str().unwrap_or("?")
            ));
        }
        let Some((_, flag)) = FLAGS.iter().find(|(k, _)| *k == normalized) else {
            return Err(format!("{key} (no kopsrs flag)"));
        };
        match value {
            serde_yaml_ng::Value::Bool(true) => args.push(flag.to_string()),
            serde_yaml_ng::Value::Bool(false) => {}
            serde_yaml_ng::Value::Sequence(items) => {
                let items: Vec<String> = items.iter().map(scalar).collect();
                if *flag == "--set" || *flag == "--network-cidr" {
                    for item in items {
                        args.push(format!("{flag}={item}"));
                    }
                } else if *flag == "--node-size" || *flag == "--control-plane-size" {
                    args.push(format!("{flag}={}", items[0]));
                } else {
                    args.push(format!("{flag}={}", items.join(",")));
                }
            }
            other => args.push(format!("{flag}={}", scalar(other))),
        }
    }
    Ok((name, args))
}

fn scalar(value: &serde_yaml_ng::Value) -> String {
    match value {
        serde_yaml_ng::Value::String(s) => s.clone(),
        serde_yaml_ng::Value::Number(n) => n.to_string(),
        serde_yaml_ng::Value::Bool(b) => b.to_string(),
        other => serde_yaml_ng::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_string(),
    }
}

/// Flattens a multi-document stream into `Kind/name:path → leaf`.
fn leaves(text: &str) -> Result<BTreeMap<String, Value>> {
    use serde::Deserialize;
    let mut out = BTreeMap::new();
    for document in serde_yaml_ng::Deserializer::from_str(text) {
        let value: Value = serde_json::to_value(serde_yaml_ng::Value::deserialize(document)?)?;
        if value.is_null() {
            continue;
        }
        let prefix = format!(
            "{}/{}",
            value["kind"].as_str().unwrap_or("?"),
            value["metadata"]["name"].as_str().unwrap_or("?")
        );
        flatten(&prefix, &value, &mut out);
    }
    out.retain(|path, _| {
        !path.ends_with("metadata.creationTimestamp") && !path.ends_with("spec.configBase")
    });
    Ok(out)
}

fn flatten(path: &str, value: &Value, out: &mut BTreeMap<String, Value>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                flatten(&format!("{path}.{k}"), v, out);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for (i, v) in items.iter().enumerate() {
                flatten(&format!("{path}[{i}]"), v, out);
            }
        }
        leaf => {
            out.insert(path.to_string(), leaf.clone());
        }
    }
}

pub fn run(cases: &Path, binary: &Path, minimum: Option<f64>) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(cases)
        .with_context(|| format!("reading {}", cases.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .collect();
    entries.sort();
    let mut results = Vec::new();
    let mut skipped = Vec::new();
    for case in entries {
        let case_name = case
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let options: serde_yaml_ng::Mapping =
            serde_yaml_ng::from_str(&std::fs::read_to_string(case.join("options.yaml"))?)?;
        let (name, args) = match flags_for(&options) {
            Ok(mapped) => mapped,
            Err(reason) => {
                skipped.push((case_name, reason));
                continue;
            }
        };
        let state = std::env::temp_dir().join(format!("kopsrs-conformance-{}", std::process::id()));
        let output = Command::new(binary)
            .args(["create", "cluster", &name, "--dry-run", "-o", "yaml"])
            .args(&args)
            .env("KOPS_STATE_STORE", format!("file://{}", state.display()))
            .output()
            .with_context(|| format!("running {}", binary.display()))?;
        if !output.status.success() {
            bail!(
                "{case_name}: kopsrs create cluster {} failed:\n{}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let actual = leaves(&String::from_utf8(output.stdout)?)?;
        let expected = leaves(&std::fs::read_to_string(
            case.join("expected-v1alpha2.yaml"),
        )?)?;
        let mut differences = Vec::new();
        let mut matched = 0;
        let keys: std::collections::BTreeSet<&String> =
            actual.keys().chain(expected.keys()).collect();
        for key in &keys {
            match (expected.get(*key), actual.get(*key)) {
                (Some(e), Some(a)) if e == a => matched += 1,
                (e, a) => differences.push(format!("{key}: kops {} / kopsrs {}", show(e), show(a))),
            }
        }
        results.push(CaseResult {
            name: case_name,
            matched,
            total: keys.len(),
            differences,
        });
    }
    let matched: usize = results.iter().map(|r| r.matched).sum();
    let total: usize = results.iter().map(|r| r.total).sum();
    let overall = 100.0 * matched as f64 / total.max(1) as f64;
    println!("| case | agreeing leaves | agreement |\n|---|---|---|");
    for r in &results {
        println!(
            "| {} | {}/{} | {:.1}% |",
            r.name,
            r.matched,
            r.total,
            100.0 * r.matched as f64 / r.total.max(1) as f64
        );
    }
    println!(
        "| **all {} mapped cases** | {matched}/{total} | **{overall:.1}%** |",
        results.len()
    );
    println!();
    for (case, reason) in &skipped {
        println!("- not mapped: `{case}`: {reason}");
    }
    if std::env::var_os("VERBOSE").is_some() {
        for r in &results {
            for d in &r.differences {
                println!("  {}: {d}", r.name);
            }
        }
    }
    if let Some(minimum) = minimum {
        if overall < minimum {
            bail!("agreement {overall:.1}% is under the target {minimum}%");
        }
        eprintln!("agreement {overall:.1}% meets the target {minimum}%");
    }
    Ok(())
}

fn show(value: Option<&Value>) -> String {
    value
        .map(|v| v.to_string())
        .unwrap_or_else(|| "(absent)".into())
}

/// `cargo xtask conformance-complete`: completes each kops `in-v1alpha2.yaml` with kopsrs and
/// reports leaf agreement of the Cluster with kops's `cluster-completed.spec`.
pub fn run_complete(cases: &Path) -> Result<()> {
    use kopsrs_api::{decode_documents, encode_documents, Document, OutputFormat};
    let mut entries: Vec<_> = std::fs::read_dir(cases)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .collect();
    entries.sort();
    let (mut matched, mut expected_total, mut cases_run) = (0usize, 0usize, 0usize);
    let mut missing: BTreeMap<String, usize> = BTreeMap::new();
    for case in entries {
        let Ok(expected_text) = std::fs::read_to_string(case.join("cluster-completed.spec")) else {
            continue;
        };
        let documents = decode_documents(
            &std::fs::read_to_string(case.join("in-v1alpha2.yaml"))?,
            "in",
        )
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let cluster = documents
            .iter()
            .find_map(|d| {
                if let Document::Cluster(c) = d {
                    Some((**c).clone())
                } else {
                    None
                }
            })
            .context("no cluster")?;
        let groups: Vec<_> = documents
            .iter()
            .filter_map(|d| {
                if let Document::InstanceGroup(g) = d {
                    Some((**g).clone())
                } else {
                    None
                }
            })
            .collect();
        let base = cluster.spec.config_base.clone().unwrap_or_default();
        let Ok((completed, _)) = kopsrs_api::complete(&cluster, &groups, &base) else {
            continue;
        };
        let actual = leaves(&encode_documents(
            &[Document::Cluster(Box::new(completed))],
            OutputFormat::Yaml,
        ))?;
        let expected = leaves(&expected_text)?;
        cases_run += 1;
        for (key, value) in &expected {
            expected_total += 1;
            if actual.get(key) == Some(value) {
                matched += 1;
            } else {
                let after = key
                    .split_once(".spec.")
                    .map(|(_, rest)| rest)
                    .unwrap_or(key);
                let section = after.split(['.', '[']).next().unwrap_or("?").to_string();
                *missing.entry(section).or_default() += 1;
            }
        }
    }
    println!("completed-spec agreement over {cases_run} cases: {matched}/{expected_total} of kops's leaves ({:.1}%)", 100.0 * matched as f64 / expected_total.max(1) as f64);
    let mut sections: Vec<_> = missing.into_iter().collect();
    sections.sort_by_key(|s| std::cmp::Reverse(s.1));
    for (section, count) in sections.iter().take(15) {
        println!("- spec.{section}: {count} leaves differ or are missing");
    }
    Ok(())
}
