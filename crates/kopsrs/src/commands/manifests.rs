//! `kopsrs manifests`: the kubecfg-shaped verbs over Jsonnet, JSON and YAML configuration.
//! Flags to `kopsrs_ops::manifests`' options, and its reports as text or JSON; each object's
//! line of diff, apply and delete is printed as it happens by the terminal's reporter.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};
use kopsrs_manifests::{jsonnet, tree};
use kopsrs_ops::manifests::{self as ops, Config, TargetOptions};
use kopsrs_ops::{Problems, Session, Settings};
use serde_json::Value;

use crate::render::ExitWith;

#[derive(Subcommand, Debug)]
pub enum ManifestsCommand {
    /// Print the objects the configuration renders.
    #[command(
        after_help = "Examples:\n  kopsrs manifests show clusters/prod/main.jsonnet\n  kopsrs manifests show -J lib app.jsonnet -o json"
    )]
    Show(ShowArgs),
    /// Write the JSON tree (one object per file), or with --check report every file that is
    /// out of date.
    #[command(
        after_help = "Examples:\n  kopsrs manifests tree clusters/prod/main.jsonnet --out generated/prod\n  kopsrs manifests tree clusters/prod/main.jsonnet --out generated/prod --check"
    )]
    Tree(TreeArgs),
    /// Check the objects offline: namespaces, the schema of the target Kubernetes minor,
    /// removed APIs, names and labels, a deterministic evaluation.
    #[command(
        after_help = "Examples:\n  kopsrs manifests check generated/prod\n  kopsrs manifests check app.jsonnet --kubernetes-version 1.29\n  kopsrs manifests check app.jsonnet --name prod.example.com -o json"
    )]
    Check(CheckArgs),
    /// Show what applying would change in the cluster, object by object.
    #[command(
        after_help = "Examples:\n  kopsrs manifests diff app.jsonnet --name prod.example.com\n  kopsrs manifests diff app.jsonnet --name prod.example.com --detailed-exitcode"
    )]
    Diff(DiffArgs),
    /// Apply the objects with server-side apply, in dependency order.
    #[command(
        after_help = "Examples:\n  kopsrs manifests apply app.jsonnet --name prod.example.com\n  kopsrs manifests apply app.jsonnet --name prod.example.com --gc-tag prod-apps --dry-run"
    )]
    Apply(ApplyArgs),
    /// Delete the objects, in reverse dependency order.
    #[command(
        after_help = "Examples:\n  kopsrs manifests delete app.jsonnet --name dev.example.com"
    )]
    Delete(DeleteArgs),
}

/// The configuration: files, folders, `-`, and the Jsonnet flags.
#[derive(Args, Debug, Clone)]
pub struct ConfigArgs {
    /// Jsonnet, JSON or YAML files, folders of them (recursively), or `-`.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub jsonnet: crate::jsonnet_flags::JsonnetFlags,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectFormat {
    Yaml,
    Json,
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "yaml")]
    pub output: ObjectFormat,
}

#[derive(Args, Debug)]
pub struct TreeArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// The tree's folder.
    #[arg(long = "out", value_name = "DIR")]
    pub out: PathBuf,
    /// Where each object goes: {group}, {version}, {kind}, {namespace} (`_cluster` for
    /// cluster-scoped objects), {name}.
    #[arg(long = "path-template", default_value = tree::DEFAULT_TEMPLATE)]
    pub path_template: String,
    /// Write nothing; report each file that differs, is missing or is extra, exit 1 on any.
    #[arg(long)]
    pub check: bool,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    Text,
    Json,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// The Kubernetes version to check against (`1.29`, `v1.31.2`). Default: the cluster's
    /// (with --name), else the stable channel's recommended version.
    #[arg(long = "kubernetes-version", value_name = "VERSION")]
    pub kubernetes_version: Option<String>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
    pub output: ReportFormat,
    /// Check each FILE (a cluster's folder) as a configuration of its own, as when several
    /// clusters' folders define the same objects differently.
    #[arg(long, default_value_t = false)]
    pub each: bool,
}

/// Which cluster: the kubeconfig context named after it (`--name`).
#[derive(Args, Debug)]
pub struct TargetArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// The kubeconfig (default $KUBECONFIG, else ~/.kube/config); its context named after the
    /// cluster (--name) is used.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct DiffArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Exit 2 when something would change, 0 when nothing would.
    #[arg(long = "detailed-exitcode")]
    pub detailed_exitcode: bool,
}

#[derive(Args, Debug)]
pub struct DeleteArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Delete as a server dry run: print what would be deleted, delete nothing.
    #[arg(long = "dry-run")]
    pub dry_run: bool,
}

#[derive(Args, Debug)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Apply as a server dry run: print each change, change nothing.
    #[arg(long = "dry-run")]
    pub dry_run: bool,
    /// Label what is applied with kopsrs.io/gc-tag=TAG, and delete objects carrying the tag
    /// that the configuration no longer renders (never Namespaces, CustomResourceDefinitions,
    /// objects a controller owns or objects annotated kopsrs.io/keep=true).
    #[arg(long = "gc-tag", value_name = "TAG")]
    pub gc_tag: Option<String>,
    /// The server-side apply field manager.
    #[arg(long = "field-manager", default_value = "kopsrs")]
    pub field_manager: String,
    /// Take fields other managers own instead of failing on the conflict.
    #[arg(long = "force-conflicts")]
    pub force_conflicts: bool,
}

pub async fn run(global: &Session, command: ManifestsCommand) -> Result<()> {
    match command {
        ManifestsCommand::Show(args) => show(&global.settings, args),
        ManifestsCommand::Tree(args) => write_tree(&global.settings, args),
        ManifestsCommand::Check(args) => check(global, args).await,
        ManifestsCommand::Diff(args) => diff(global, args).await,
        ManifestsCommand::Apply(args) => apply(global, args).await,
        ManifestsCommand::Delete(args) => delete(global, args).await,
    }
}

/// The configuration the flags name; a bad Jsonnet flag is reported when it is read.
fn config(settings: &Settings, args: &ConfigArgs) -> Config {
    let mut errors = Vec::new();
    let options = args.jsonnet.options(settings, &mut errors);
    Config {
        files: args.files.clone(),
        jsonnet: if errors.is_empty() {
            Ok(options)
        } else {
            Err(errors)
        },
    }
}

fn target(settings: &Settings, args: &TargetArgs) -> TargetOptions {
    TargetOptions {
        config: config(settings, &args.config),
        kubeconfig: args.kubeconfig.clone(),
    }
}

fn show(settings: &Settings, args: ShowArgs) -> Result<()> {
    let objects = ops::load(&config(settings, &args.config))?;
    let values: Vec<&Value> = objects.iter().map(|o| &o.value).collect();
    match args.output {
        ObjectFormat::Json => println!(
            "{}",
            jsonnet::to_cpp_json(&serde_json::json!({
                "apiVersion": "v1", "kind": "List", "items": values,
            }))
        ),
        ObjectFormat::Yaml => {
            for v in values {
                print!("---\n{}", serde_yaml_ng::to_string(v)?);
            }
        }
    }
    Ok(())
}

fn write_tree(settings: &Settings, args: TreeArgs) -> Result<()> {
    let options = ops::TreeOptions {
        out: args.out.clone(),
        path_template: args.path_template.clone(),
        check: args.check,
    };
    let report = ops::write_tree(&config(settings, &args.config), &options)?;
    let out = &args.out;
    if args.check {
        for (path, how) in &report.drift {
            let how = serde_json::to_value(how)?;
            println!(
                "{}: {}",
                out.join(path).display(),
                how.as_str().unwrap_or_default()
            );
        }
        if report.drift.is_empty() {
            eprintln!("{}: {} files, up to date", out.display(), report.rendered);
            return Ok(());
        }
        eprintln!(
            "{}: {} of {} files out of date: regenerate with `kopsrs manifests tree ... --out {}`",
            out.display(),
            report.drift.len(),
            report.rendered,
            out.display()
        );
        return Err(ExitWith(1).into());
    }
    eprintln!(
        "{}: {} files, {} written or removed",
        out.display(),
        report.rendered,
        report.drift.len()
    );
    Ok(())
}

async fn check(global: &Session, args: CheckArgs) -> Result<()> {
    let config = config(&global.settings, &args.config);
    let configs: Vec<(Option<&PathBuf>, ops::Config)> = match args.each {
        false => vec![(None, config)],
        true => args
            .config
            .files
            .iter()
            .map(|file| {
                let one = ops::Config {
                    files: vec![file.clone()],
                    jsonnet: config.jsonnet.clone(),
                };
                (Some(file), one)
            })
            .collect(),
    };
    let mut reports = Vec::new();
    for (file, config) in &configs {
        let report = ops::check(global, config, args.kubernetes_version.as_deref()).await?;
        reports.push((*file, report));
    }
    let errors: usize = reports.iter().map(|(_, r)| r.errors()).sum();
    match args.output {
        ReportFormat::Json => {
            let one = |r: &ops::CheckReport| {
                serde_json::json!({
                    "kubernetesVersion": r.minor,
                    "objects": r.objects,
                    "problems": r.problems,
                })
            };
            let value = match args.each {
                false => one(&reports[0].1),
                true => serde_json::json!({
                    "configurations": reports
                        .iter()
                        .map(|(file, r)| {
                            let mut v = one(r);
                            v["files"] = serde_json::json!([file]);
                            v
                        })
                        .collect::<Vec<_>>()
                }),
            };
            println!("{}", serde_json::to_string_pretty(&value)?);
        }
        ReportFormat::Text => {
            for (file, report) in &reports {
                if let Some(file) = file {
                    println!("== {}", file.display());
                }
                let (minor, problems) = (&report.minor, &report.problems);
                for p in problems {
                    let field = match p.field.is_empty() {
                        true => String::new(),
                        false => format!(" {}:", p.field),
                    };
                    println!(
                        "{}: {} ({}):{field} {}",
                        p.severity, p.object, p.source, p.message
                    );
                    println!("  hint: {}", p.hint);
                }
                let errors = report.errors();
                eprintln!(
                    "{}{} objects checked against Kubernetes {minor}: {errors} errors, {} warnings",
                    file.map(|f| format!("{}: ", f.display()))
                        .unwrap_or_default(),
                    report.objects,
                    problems.len() - errors
                );
            }
        }
    }
    if errors > 0 {
        return Err(ExitWith(1).into());
    }
    Ok(())
}

/// `, N failed` after a summary, when any failed.
fn failures(failed: &[String]) -> String {
    match failed.len() {
        0 => String::new(),
        n => format!(", {n} failed"),
    }
}

async fn diff(global: &Session, args: DiffArgs) -> Result<()> {
    let report = ops::diff(global, &target(&global.settings, &args.target)).await?;
    eprintln!(
        "{} objects: {} would change, {} unchanged{}",
        report.objects,
        report.changed,
        report.objects - report.changed - report.failed.len(),
        failures(&report.failed)
    );
    if !report.failed.is_empty() {
        return Err(Problems::from_messages(report.failed).into());
    }
    if report.changed > 0 && args.detailed_exitcode {
        return Err(ExitWith(2).into());
    }
    Ok(())
}

async fn apply(global: &Session, args: ApplyArgs) -> Result<()> {
    let suffix = if args.dry_run { " (dry run)" } else { "" };
    let options = ops::ApplyOptions {
        target: target(&global.settings, &args.target),
        dry_run: args.dry_run,
        gc_tag: args.gc_tag.clone(),
        field_manager: args.field_manager.clone(),
        force_conflicts: args.force_conflicts,
    };
    let report = ops::apply(global, &options).await?;
    let summary: Vec<String> = report
        .counts
        .iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect();
    eprintln!(
        "{} objects: {}{}{}{suffix}",
        report.objects,
        summary.join(", "),
        match report.garbage {
            Some(deleted) => format!(", {deleted} garbage deleted"),
            None => String::new(),
        },
        failures(&report.failed),
    );
    if !report.failed.is_empty() {
        if args.gc_tag.is_some() {
            eprintln!("garbage collection skipped: not every object applied");
        }
        return Err(Problems::from_messages(report.failed).into());
    }
    Ok(())
}

async fn delete(global: &Session, args: DeleteArgs) -> Result<()> {
    let options = ops::DeleteOptions {
        target: target(&global.settings, &args.target),
        dry_run: args.dry_run,
    };
    let report = ops::delete(global, &options).await?;
    let suffix = if args.dry_run { " (dry run)" } else { "" };
    eprintln!(
        "{} objects: {} deleted{suffix}",
        report.objects, report.deleted
    );
    if !report.failed.is_empty() {
        return Err(Problems::from_messages(report.failed).into());
    }
    Ok(())
}
