//! The Terraform target: renders a [`DesiredSet`] as `kubernetes.tf` plus `data/` files.
//!
//! The output is what `terraform fmt` would write (attributes sorted, `=` aligned within runs
//! of single-line attributes, two-space indents) and is byte-for-byte deterministic. The HCL
//! is written by hand rather than through `hcl-rs`'s formatter because the point is to match
//! `terraform fmt`'s alignment rules exactly; `hcl-rs` parses the result in the tests and in
//! the conformance run.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use kopsrs_model::{Attrs, DesiredSet, Mode, Resource, Value};

/// The files of a Terraform rendering, by path relative to the output directory.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rendered {
    /// Path (`kubernetes.tf`, `data/<name>`) to content.
    pub files: BTreeMap<String, String>,
}

/// The provider version range kopsrs's output is written for.
pub const AWS_PROVIDER_VERSION: &str = ">= 5.0.0";

/// Renders `set`: `kubernetes.tf` (locals, outputs, provider, data sources, resources, then
/// the `terraform` block, as kops lays it out) and a `data/` file for each [`Value::File`].
pub fn render(set: &DesiredSet) -> Rendered {
    let mut files = BTreeMap::new();
    let mut out = String::new();

    // locals and outputs carry the same values, as kops writes them.
    if !set.outputs.is_empty() {
        let locals: Attrs = set.outputs.clone();
        write_block(&mut out, 0, "locals", &[], &locals, &mut files);
        out.push('\n');
        for (name, value) in &set.outputs {
            let mut attrs = Attrs::new();
            attrs.insert("value".into(), value.clone());
            write_block(&mut out, 0, "output", &[name], &attrs, &mut files);
            out.push('\n');
        }
    }

    let mut provider = Attrs::new();
    provider.insert("region".into(), Value::str(&set.region));
    write_block(&mut out, 0, "provider", &["aws"], &provider, &mut files);
    out.push('\n');

    for data in &set.data_sources {
        write_resource(&mut out, "data", data, &mut files);
        out.push('\n');
    }
    // The cluster's tag on a shared subnet is the AWS target's, as kops has it: in Terraform
    // an `aws_ec2_tag` fights the `tags` of the configuration that owns the subnet, so kops's
    // output leaves it to that configuration, and so does this one (docs/compatibility.md).
    for resource in set
        .resources
        .iter()
        .filter(|r| !TERRAFORM_LEAVES.contains(&r.address.kind.as_str()))
    {
        write_resource(&mut out, "resource", resource, &mut files);
        out.push('\n');
    }
    // kops's `terraform` block, quoted keys included, less the `aws.files` provider alias:
    // kops uses it only for `aws_s3_object` resources, which kopsrs's output does not have.
    let _ = write!(
        out,
        "terraform {{\n  required_version = \">= 0.15.0\"\n  required_providers {{\n    aws = {{\n      \"source\"  = \"hashicorp/aws\"\n      \"version\" = \"{AWS_PROVIDER_VERSION}\"\n    }}\n  }}\n}}\n"
    );
    files.insert("kubernetes.tf".to_string(), out);
    Rendered { files }
}

/// Kinds of the desired set the Terraform output leaves out.
const TERRAFORM_LEAVES: [&str; 1] = ["aws_ec2_tag"];

fn write_resource(
    out: &mut String,
    keyword: &str,
    resource: &Resource,
    files: &mut BTreeMap<String, String>,
) {
    debug_assert_eq!(keyword == "data", resource.address.mode == Mode::Data);
    write_block(
        out,
        0,
        keyword,
        &[&resource.address.kind, &resource.address.name],
        &resource.attrs,
        files,
    );
}

fn write_block(
    out: &mut String,
    indent: usize,
    keyword: &str,
    labels: &[&str],
    attrs: &Attrs,
    files: &mut BTreeMap<String, String>,
) {
    pad(out, indent);
    out.push_str(keyword);
    for label in labels {
        out.push(' ');
        out.push_str(&quote(label));
    }
    out.push_str(" {\n");
    write_body(out, indent + 2, attrs, files);
    pad(out, indent);
    out.push_str("}\n");
}

/// A block body: single-line attributes in runs with aligned `=`; nested blocks and
/// multi-line attributes end a run.
fn write_body(
    out: &mut String,
    indent: usize,
    attrs: &Attrs,
    files: &mut BTreeMap<String, String>,
) {
    let mut run: Vec<(String, String)> = Vec::new();
    for (name, value) in attrs {
        match value {
            Value::Blocks(blocks) => {
                flush(out, indent, &mut run);
                for block in blocks {
                    write_block(out, indent, name, &[], block, files);
                }
            }
            Value::Map(map) if !map.is_empty() => {
                flush(out, indent, &mut run);
                pad(out, indent);
                let _ = writeln!(out, "{name} = {{");
                let entries: Vec<(String, String)> = map
                    .iter()
                    .map(|(k, v)| (quote(k), expression(v, files)))
                    .collect();
                let width = entries.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
                for (k, v) in entries {
                    pad(out, indent + 2);
                    let _ = writeln!(out, "{k:width$} = {v}");
                }
                pad(out, indent);
                out.push_str("}\n");
            }
            Value::Null => {}
            value => run.push((name.clone(), expression(value, files))),
        }
    }
    flush(out, indent, &mut run);
}

fn flush(out: &mut String, indent: usize, run: &mut Vec<(String, String)>) {
    let width = run.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in run.drain(..) {
        pad(out, indent);
        let _ = writeln!(out, "{k:width$} = {v}");
    }
}

fn pad(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

/// A single-line expression.
fn expression(value: &Value, files: &mut BTreeMap<String, String>) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Str(s) => quote(s),
        Value::List(items) => {
            let items: Vec<String> = items.iter().map(|v| expression(v, files)).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Map(map) if map.is_empty() => "{}".into(),
        Value::Map(map) => {
            let items: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{} = {}", quote(k), expression(v, files)))
                .collect();
            format!("{{ {} }}", items.join(", "))
        }
        Value::Blocks(_) => unreachable!("blocks are written by write_body"),
        Value::Ref(r) => format!("{}.{}", r.address, r.attr),
        Value::File(file) => {
            files.insert(format!("data/{}", file.name), file.content.clone());
            if !file.vars.is_empty() {
                let vars: Vec<String> = file
                    .vars
                    .iter()
                    .map(|(k, r)| format!("{k} = {}.{}", r.address, r.attr))
                    .collect();
                return format!(
                    "templatefile(\"${{path.module}}/data/{}\", {{ {} }})",
                    file.name,
                    vars.join(", ")
                );
            }
            if file.gzip {
                return format!("base64gzip(file(\"${{path.module}}/data/{}\"))", file.name);
            }
            let function = if file.base64 { "filebase64" } else { "file" };
            format!("{function}(\"${{path.module}}/data/{}\")", file.name)
        }
        Value::Expr(text) => text.clone(),
        // kops's spelling: through the locals every output set carries (the model writes
        // `vpc_ipv6_cidr_block` and `vpc_ipv6_cidr_length` for each cluster), so the block
        // may be any size, not only the /56 AWS assigns.
        Value::CidrSubnet { prefix, index, .. } => format!(
            "cidrsubnet(local.vpc_ipv6_cidr_block, {prefix} - local.vpc_ipv6_cidr_length, {index})"
        ),
    }
}

/// A quoted HCL string: escapes quotes, backslashes, control characters and template
/// sequences (`${`, `%{`).
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '$' | '%' if chars.peek() == Some(&'{') => {
                out.push(c);
                out.push(c);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
