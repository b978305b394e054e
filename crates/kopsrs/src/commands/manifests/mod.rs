//! `kopsrs manifests`: the kubecfg-shaped verbs over Jsonnet, JSON and YAML configuration.
//! Reading and checking are `kopsrs_manifests`'; the API calls are `kopsrs_kube::manifests`'.

mod cluster;
mod offline;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};
use kopsrs_manifests::objects::Object;
use kopsrs_manifests::{input, tree};

use kopsrs_ops::problems::Problems;
use kopsrs_ops::Session;

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
        ManifestsCommand::Show(args) => offline::show(&global.settings, args),
        ManifestsCommand::Tree(args) => offline::tree(&global.settings, args),
        ManifestsCommand::Check(args) => offline::check(global, args).await,
        ManifestsCommand::Diff(args) => cluster::diff(global, args).await,
        ManifestsCommand::Apply(args) => cluster::apply(global, args).await,
        ManifestsCommand::Delete(args) => cluster::delete(global, args).await,
    }
}

/// The objects of the configuration; all problems at once.
pub(super) fn load(settings: &kopsrs_ops::Settings, args: &ConfigArgs) -> Result<Vec<Object>> {
    let mut errors = Vec::new();
    let options = args.jsonnet.options(settings, &mut errors);
    if !errors.is_empty() {
        return Err(Problems::from_messages(errors).into());
    }
    input::load(&args.files, &options).map_err(|e| Problems::from_messages(e).into())
}
