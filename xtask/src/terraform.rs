//! `cargo xtask conformance-terraform`: runs kops's `update_cluster` cases through the
//! binary (`create -f`, `create sshpublickey`, `update cluster --target terraform`) and
//! compares the output with kops's `kubernetes.tf` structurally.
//!
//! - Address recall and precision over resources, leaving out `aws_s3_object` (kops's own
//!   bootstrap files; kopsrs bootstraps nodes its own way).
//! - Attribute agreement on matched resources: the share of leaf attributes (nested blocks
//!   and map keys flattened, `user_data` left out) present on both sides with equal values,
//!   out of the union of both sides' leaves. A `file()` value is compared by the content of
//!   the data file when kops's case ships it (JSON compared as JSON), else by its path.
//! - Outputs (what other Terraform reads from kops's): names present on both sides, and of
//!   those, values written identically.
//! - With `--validate`, every output goes through `terraform validate` against the real AWS
//!   provider's schema (offline, from a filesystem mirror).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use hcl::{Body, Expression, ObjectKey, Structure};

type Leaves = BTreeMap<String, String>;

#[derive(Default, Clone)]
pub struct Score {
    pub expected: usize,
    pub produced: usize,
    pub matched: usize,
    pub leaves_union: usize,
    pub leaves_equal: usize,
}

impl Score {
    fn add(&mut self, other: &Score) {
        self.expected += other.expected;
        self.produced += other.produced;
        self.matched += other.matched;
        self.leaves_union += other.leaves_union;
        self.leaves_equal += other.leaves_equal;
    }
    fn recall(&self) -> f64 {
        pct(self.matched, self.expected)
    }
    fn precision(&self) -> f64 {
        pct(self.matched, self.produced)
    }
    fn agreement(&self) -> f64 {
        pct(self.leaves_equal, self.leaves_union)
    }
}

fn pct(a: usize, b: usize) -> f64 {
    if b == 0 {
        100.0
    } else {
        100.0 * a as f64 / b as f64
    }
}

pub struct Options {
    pub min_recall: Option<f64>,
    pub min_precision: Option<f64>,
    pub min_agreement: Option<f64>,
    pub verbose: bool,
    pub markdown: bool,
    pub only: Option<String>,
    /// `terraform validate` every output with this script (scripts/terraform_validate.sh).
    pub validate: Option<std::path::PathBuf>,
}

pub fn run(cases: &Path, binary: &Path, options: &Options) -> Result<()> {
    if !binary.exists() {
        bail!(
            "{} does not exist; build it with `cargo build -p kopsrs`",
            binary.display()
        );
    }
    let mut names: Vec<String> = std::fs::read_dir(cases)
        .with_context(|| format!("reading {}", cases.display()))?
        .flatten()
        .filter(|e| e.path().join("kubernetes.tf").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut total = Score::default();
    let mut rows = Vec::new();
    let mut missing_kinds: BTreeMap<String, usize> = BTreeMap::new();
    let mut extra_kinds: BTreeMap<String, usize> = BTreeMap::new();
    let mut differing: BTreeMap<String, usize> = BTreeMap::new();
    // Outputs: (expected, produced, matched names, equal values).
    let mut outs = (0usize, 0usize, 0usize, 0usize);
    // Output directories kept for `terraform validate`, by case.
    let mut kept: Vec<(String, tempfile::TempDir)> = Vec::new();
    for name in &names {
        if options.only.as_ref().is_some_and(|o| o != name) {
            continue;
        }
        let dir = cases.join(name);
        let expected_text = std::fs::read_to_string(dir.join("kubernetes.tf"))?;
        let expected = resources(&expected_text, &dir.join("data"), &dir.join("data"))
            .with_context(|| format!("parsing kops's {name}/kubernetes.tf"))?;
        let expected_outputs = outputs(&expected_text)?;
        let (produced, produced_outputs, error) = match produce(&dir, binary) {
            Ok((text, work)) => {
                let found = (
                    resources(&text, &work.path().join("out/data"), &dir.join("data"))?,
                    outputs(&text)?,
                    None,
                );
                if options.validate.is_some() {
                    kept.push((name.clone(), work));
                }
                found
            }
            Err(e) => (BTreeMap::new(), BTreeMap::new(), Some(format!("{e:#}"))),
        };
        outs.0 += expected_outputs.len();
        outs.1 += produced_outputs.len();
        for (key, value) in &expected_outputs {
            match produced_outputs.get(key) {
                None if options.verbose => println!("  {name}: missing output {key}"),
                None => {}
                Some(ours) => {
                    outs.2 += 1;
                    if ours == value {
                        outs.3 += 1;
                    } else if options.verbose {
                        println!("  {name}: output {key}: kops {value:?} kopsrs {ours:?}");
                    }
                }
            }
        }
        for key in produced_outputs
            .keys()
            .filter(|k| !expected_outputs.contains_key(*k))
        {
            if options.verbose {
                println!("  {name}: extra output {key}");
            }
        }
        let mut score = Score {
            expected: expected.len(),
            produced: produced.len(),
            ..Score::default()
        };
        for (address, leaves) in &expected {
            let Some(ours) = produced.get(address) else {
                *missing_kinds.entry(kind_of(address)).or_default() += 1;
                if options.verbose {
                    println!("  {name}: missing {address}");
                }
                continue;
            };
            score.matched += 1;
            let keys: BTreeSet<&String> = leaves.keys().chain(ours.keys()).collect();
            score.leaves_union += keys.len();
            for key in keys {
                if leaves.get(key) == ours.get(key) {
                    score.leaves_equal += 1;
                } else {
                    let pattern = format!("{}.{}", kind_of(address), generic(key));
                    *differing.entry(pattern).or_default() += 1;
                    if options.verbose {
                        println!(
                            "  {name}: {address} {key}: kops {:?} kopsrs {:?}",
                            leaves.get(key).map(|s| short(s)),
                            ours.get(key).map(|s| short(s))
                        );
                    }
                }
            }
        }
        for address in produced.keys().filter(|a| !expected.contains_key(*a)) {
            *extra_kinds.entry(kind_of(address)).or_default() += 1;
            if options.verbose {
                println!("  {name}: extra {address}");
            }
        }
        if let Some(error) = &error {
            println!("  {name}: FAILED: {error}");
        }
        total.add(&score);
        rows.push((name.clone(), score, error));
    }

    if options.markdown {
        println!("| case | kops resources | kopsrs resources | recall | precision | attribute agreement |");
        println!("|---|---:|---:|---:|---:|---:|");
    }
    for (name, s, error) in &rows {
        if options.markdown {
            println!(
                "| {name} | {} | {} | {:.1}% | {:.1}% | {:.1}% |{}",
                s.expected,
                s.produced,
                s.recall(),
                s.precision(),
                s.agreement(),
                if error.is_some() { " failed" } else { "" }
            );
        } else {
            println!(
                "{name:45} expected {:4} produced {:4} recall {:5.1}% precision {:5.1}% agreement {:5.1}%",
                s.expected,
                s.produced,
                s.recall(),
                s.precision(),
                s.agreement()
            );
        }
    }
    println!(
        "\nOverall over {} cases: address recall {:.1}% ({}/{}), precision {:.1}% ({}/{}), attribute agreement {:.1}% ({}/{})",
        rows.len(),
        total.recall(),
        total.matched,
        total.expected,
        total.precision(),
        total.matched,
        total.produced,
        total.agreement(),
        total.leaves_equal,
        total.leaves_union
    );
    println!(
        "Outputs: name recall {:.1}% ({}/{}), precision {:.1}% ({}/{}), values identical {:.1}% ({}/{})",
        pct(outs.2, outs.0),
        outs.2,
        outs.0,
        pct(outs.2, outs.1),
        outs.2,
        outs.1,
        pct(outs.3, outs.2),
        outs.3,
        outs.2
    );
    println!("\nMissing resources by kind: {missing_kinds:?}");
    println!("Extra resources by kind: {extra_kinds:?}");
    let mut worst: Vec<_> = differing.into_iter().collect();
    worst.sort_by_key(|w| std::cmp::Reverse(w.1));
    println!("\nMost frequent differing attributes:");
    for (pattern, count) in worst.iter().take(40) {
        println!("  {count:5}  {pattern}");
    }
    let failed = rows.iter().filter(|r| r.2.is_some()).count();
    let mut problems = Vec::new();
    if let Some(script) = &options.validate {
        let output = Command::new("bash")
            .arg(script)
            .args(kept.iter().map(|(_, w)| w.path().join("out")))
            .output()
            .context("running terraform_validate.sh")?;
        let report = String::from_utf8_lossy(&output.stdout);
        match output.status.code() {
            Some(3) => println!(
                "terraform validate: skipped ({})",
                String::from_utf8_lossy(&output.stderr).trim()
            ),
            Some(0 | 1) => {
                let invalid: Vec<&str> = kept
                    .iter()
                    .filter(|(_, w)| {
                        let dir = w.path().join("out");
                        report.contains(&format!("INVALID {}\n", dir.display()))
                    })
                    .map(|(name, _)| name.as_str())
                    .collect();
                println!(
                    "terraform validate: {} of {} outputs valid against the AWS provider's schema",
                    kept.len() - invalid.len(),
                    kept.len()
                );
                if !invalid.is_empty() {
                    println!("{report}");
                    problems.push(format!(
                        "terraform validate failed for {}",
                        invalid.join(", ")
                    ));
                }
            }
            _ => bail!(
                "terraform_validate.sh failed: {}",
                String::from_utf8_lossy(&output.stderr)
            ),
        }
    }
    if failed > 0 {
        problems.push(format!("{failed} case(s) failed to run"));
    }
    for (label, value, minimum) in [
        ("recall", total.recall(), options.min_recall),
        ("precision", total.precision(), options.min_precision),
        (
            "attribute agreement",
            total.agreement(),
            options.min_agreement,
        ),
    ] {
        if let Some(min) = minimum {
            if value < min {
                problems.push(format!("{label} {value:.1}% is under {min}%"));
            }
        }
    }
    if !problems.is_empty() {
        bail!("terraform conformance: {}", problems.join("; "));
    }
    Ok(())
}

fn short(s: &str) -> String {
    if s.len() > 120 {
        format!("{}…", &s[..120])
    } else {
        s.to_string()
    }
}

fn kind_of(address: &str) -> String {
    address.split('.').next().unwrap_or_default().to_string()
}

/// `tag[3].value` -> `tag[].value`, `tags.Name` kept (keys are meaningful).
fn generic(key: &str) -> String {
    let mut out = String::new();
    let mut skip = false;
    for c in key.chars() {
        match c {
            '[' => {
                out.push('[');
                skip = true;
            }
            ']' => {
                out.push(']');
                skip = false;
            }
            _ if skip => {}
            c => out.push(c),
        }
    }
    out
}

fn run_binary(binary: &Path, state: &str, args: &[&str]) -> Result<()> {
    let output = Command::new(binary)
        .args(args)
        .env("KOPS_STATE_STORE", state)
        .env_remove("KOPS_CLUSTER_NAME")
        .output()
        .with_context(|| format!("running {}", binary.display()))?;
    if !output.status.success() {
        bail!(
            "`kopsrs {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

fn produce(case: &Path, binary: &Path) -> Result<(String, tempfile::TempDir)> {
    let work = tempfile::tempdir()?;
    let state = format!("file://{}", work.path().join("state").display());
    let spec = case.join("in-v1alpha2.yaml");
    let text = std::fs::read_to_string(&spec)?;
    let name = text
        .split("\n---")
        .filter_map(|doc| serde_yaml_ng::from_str::<serde_yaml_ng::Value>(doc).ok())
        .find(|doc| doc.get("kind").and_then(|k| k.as_str()) == Some("Cluster"))
        .and_then(|doc| doc["metadata"]["name"].as_str().map(String::from))
        .context("no Cluster document")?;
    run_binary(binary, &state, &["create", "-f", &spec.to_string_lossy()])?;
    let key = case.join("id_rsa.pub");
    if key.exists() {
        run_binary(
            binary,
            &state,
            &[
                "create",
                "sshpublickey",
                "--name",
                &name,
                "-i",
                &key.to_string_lossy(),
            ],
        )?;
    }
    let out = work.path().join("out");
    run_binary(
        binary,
        &state,
        &[
            "update",
            "cluster",
            &name,
            "--target",
            "terraform",
            "--out",
            &out.to_string_lossy(),
        ],
    )?;
    let text = std::fs::read_to_string(out.join("kubernetes.tf"))?;
    Ok((text, work))
}

/// Resources by address with their flattened leaves.
/// `data` holds this side's files; a file is compared by content only when kops's case
/// (`reference`) ships it too, else both sides compare the path.
fn resources(text: &str, data: &Path, reference: &Path) -> Result<BTreeMap<String, Leaves>> {
    let body: Body = hcl::parse(text)?;
    let mut out = BTreeMap::new();
    for structure in body.iter() {
        let Structure::Block(block) = structure else {
            continue;
        };
        if block.identifier.as_str() != "resource" || block.labels.len() != 2 {
            continue;
        }
        let kind = block.labels[0].as_str();
        if kind == "aws_s3_object" {
            continue;
        }
        let address = format!("{kind}.{}", block.labels[1].as_str());
        let mut leaves = Leaves::new();
        flatten_body("", &block.body, &(data, reference), &mut leaves);
        leaves.retain(|k, _| k != "user_data");
        out.insert(address, leaves);
    }
    Ok(out)
}

/// `output "NAME" { value = EXPR }` blocks: name and the expression as hcl-rs formats it.
fn outputs(text: &str) -> Result<BTreeMap<String, String>> {
    let body: Body = hcl::parse(text)?;
    let mut out = BTreeMap::new();
    for structure in body.iter() {
        let Structure::Block(block) = structure else {
            continue;
        };
        if block.identifier.as_str() != "output" || block.labels.len() != 1 {
            continue;
        }
        let value = block
            .body
            .attributes()
            .find(|a| a.key.as_str() == "value")
            .map(|a| hcl::format::to_string(&a.expr).unwrap_or_default())
            .unwrap_or_default();
        out.insert(block.labels[0].as_str().to_string(), value);
    }
    Ok(out)
}

type Dirs<'a> = (&'a Path, &'a Path);

fn flatten_body(prefix: &str, body: &Body, data: &Dirs<'_>, out: &mut Leaves) {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for structure in body.iter() {
        match structure {
            Structure::Attribute(attr) => {
                flatten_expr(
                    &format!("{prefix}{}", attr.key.as_str()),
                    &attr.expr,
                    data,
                    out,
                );
            }
            Structure::Block(block) => {
                let name = block.identifier.as_str().to_string();
                let index = counts.entry(name.clone()).or_default();
                // Blocks whose identity is an attribute (an ASG's `tag` by key, a launch
                // template's `tag_specifications` by resource type) are keyed by it, so one
                // missing block does not shift every later one.
                let identity = ["key", "resource_type"].iter().find_map(|attr| {
                    block
                        .body
                        .attributes()
                        .find(|a| a.key.as_str() == *attr)
                        .and_then(|a| match &a.expr {
                            Expression::String(s) => Some(s.clone()),
                            _ => None,
                        })
                });
                let path = match identity {
                    Some(id) if name == "tag" || name == "tag_specifications" => {
                        format!("{prefix}{name}[{id}].")
                    }
                    _ => format!("{prefix}{name}[{index}]."),
                };
                *index += 1;
                flatten_body(&path, &block.body, data, out);
            }
        }
    }
}

fn flatten_expr(path: &str, expr: &Expression, data: &Dirs<'_>, out: &mut Leaves) {
    match expr {
        Expression::Object(object) => {
            for (key, value) in object {
                let key = match key {
                    ObjectKey::Identifier(id) => id.as_str().to_string(),
                    ObjectKey::Expression(Expression::String(s)) => s.clone(),
                    ObjectKey::Expression(other) => {
                        hcl::format::to_string(other).unwrap_or_default()
                    }
                    _ => String::new(),
                };
                flatten_expr(&format!("{path}.{key}"), value, data, out);
            }
        }
        other => {
            let text = hcl::format::to_string(other).unwrap_or_default();
            out.insert(path.to_string(), file_content(&text, data).unwrap_or(text));
        }
    }
}

/// For `file("${path.module}/data/NAME")`: the file's content (canonical JSON when it is
/// JSON), if the file exists.
fn file_content(text: &str, (data, reference): &Dirs<'_>) -> Option<String> {
    if !(text.starts_with("file(") || text.starts_with("filebase64(")) {
        return None;
    }
    let start = text.find("/data/")? + "/data/".len();
    let end = text[start..].find('"')? + start;
    let name = &text[start..end];
    if !reference.join(name).exists() {
        return None;
    }
    let content = std::fs::read_to_string(data.join(name)).ok()?;
    Some(match serde_json::from_str::<serde_json::Value>(&content) {
        Ok(json) => format!("json:{}", canonical(&json)),
        Err(_) => content,
    })
}

/// JSON with sorted keys; IAM's "a string or a list of one string" made a list.
fn canonical(value: &serde_json::Value) -> String {
    fn normalize(value: &serde_json::Value) -> serde_json::Value {
        use serde_json::Value as J;
        match value {
            J::Object(map) => {
                let sorted: BTreeMap<String, J> = map
                    .iter()
                    .map(|(k, v)| {
                        let v = normalize(v);
                        let v = match v {
                            J::String(_)
                                if matches!(k.as_str(), "Action" | "Resource" | "Service") =>
                            {
                                J::Array(vec![v])
                            }
                            v => v,
                        };
                        (k.clone(), v)
                    })
                    .collect();
                J::Object(sorted.into_iter().collect())
            }
            J::Array(items) => J::Array(items.iter().map(normalize).collect()),
            other => other.clone(),
        }
    }
    serde_json::to_string(&normalize(value)).unwrap_or_default()
}
