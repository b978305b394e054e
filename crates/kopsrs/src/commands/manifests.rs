//! `kopsrs manifests`: the kubecfg-shaped verbs over Jsonnet, JSON and YAML configuration.
//! Reading and checking are `kopsrs_manifests`'; the API calls are `kopsrs_kube::manifests`'.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};
use kopsrs_kube::manifests::{Catalog, Kind};
use kopsrs_kube::Kube;
use kopsrs_manifests::objects::{self, Object};
use kopsrs_manifests::{check, compare, input, jsonnet, order, schema, tree};
use serde_json::Value;

use crate::cli::GlobalArgs;
use crate::context;
use crate::problems::{ExitWith, Problems};

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
    Diff(ClusterArgs),
    /// Apply the objects with server-side apply, in dependency order.
    #[command(
        after_help = "Examples:\n  kopsrs manifests apply app.jsonnet --name prod.example.com\n  kopsrs manifests apply app.jsonnet --name prod.example.com --gc-tag prod-apps --dry-run"
    )]
    Apply(ApplyArgs),
    /// Delete the objects, in reverse dependency order.
    #[command(
        after_help = "Examples:\n  kopsrs manifests delete app.jsonnet --name dev.example.com"
    )]
    Delete(ClusterArgs),
}

/// The configuration: files, folders, `-`, and the Jsonnet flags.
#[derive(Args, Debug, Clone)]
pub struct ConfigArgs {
    /// Jsonnet, JSON or YAML files, folders of them (recursively), or `-`.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Jsonnet library directory (right-most wins; then JSONNET_PATH).
    #[arg(short = 'J', long = "jpath", value_name = "DIR")]
    pub jpath: Vec<PathBuf>,
    /// Jsonnet external variable as a string: VAR=VALUE (or VAR from the environment).
    #[arg(short = 'V', long = "ext-str", value_name = "VAR[=VALUE]")]
    pub ext_str: Vec<String>,
    /// Jsonnet external variable as code: VAR=CODE.
    #[arg(long = "ext-code", value_name = "VAR[=CODE]")]
    pub ext_code: Vec<String>,
    /// Jsonnet top-level argument as a string: VAR=VALUE.
    #[arg(short = 'A', long = "tla-str", value_name = "VAR[=VALUE]")]
    pub tla_str: Vec<String>,
    /// Jsonnet top-level argument as code: VAR=CODE.
    #[arg(long = "tla-code", value_name = "VAR[=CODE]")]
    pub tla_code: Vec<String>,
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

#[derive(Args, Debug)]
pub struct ClusterArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// The kubeconfig (default $KUBECONFIG, else ~/.kube/config); its context named after the
    /// cluster (--name) is used.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Exit 2 when there are differences (diff), 0 when none.
    #[arg(long = "detailed-exitcode")]
    pub detailed_exitcode: bool,
    /// Print what would be deleted, and delete nothing (delete).
    #[arg(long = "dry-run")]
    pub dry_run: bool,
}

#[derive(Args, Debug)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Label what is applied with kopsrs.io/gc-tag=TAG, and delete objects carrying the tag
    /// that the configuration no longer renders (never objects a controller owns or annotated
    /// kopsrs.io/keep=true).
    #[arg(long = "gc-tag", value_name = "TAG")]
    pub gc_tag: Option<String>,
    /// The server-side apply field manager.
    #[arg(long = "field-manager", default_value = "kopsrs")]
    pub field_manager: String,
    /// Take fields other managers own instead of failing on the conflict.
    #[arg(long = "force-conflicts")]
    pub force_conflicts: bool,
}

pub async fn run(global: &GlobalArgs, command: ManifestsCommand) -> Result<()> {
    match command {
        ManifestsCommand::Show(args) => show(args),
        ManifestsCommand::Tree(args) => tree(args),
        ManifestsCommand::Check(args) => check(global, args).await,
        ManifestsCommand::Diff(args) => diff(global, args).await,
        ManifestsCommand::Apply(args) => apply(global, args).await,
        ManifestsCommand::Delete(args) => delete(global, args).await,
    }
}

/// The objects of the configuration; all problems at once.
fn load(args: &ConfigArgs) -> Result<Vec<Object>> {
    let mut errors = Vec::new();
    let ext = super::jsonnet::vars(&args.ext_str, &[], &args.ext_code, &[], "ext", &mut errors);
    let tla = super::jsonnet::vars(&args.tla_str, &[], &args.tla_code, &[], "tla", &mut errors);
    if !errors.is_empty() {
        return Err(Problems::from_messages(errors).into());
    }
    let options = jsonnet::Options {
        jpath: jsonnet::Options::search_order(
            &args.jpath,
            std::env::var_os("JSONNET_PATH").as_deref(),
        ),
        ext,
        tla,
        ..Default::default()
    };
    input::load(&args.files, &options).map_err(|e| Problems::from_messages(e).into())
}

fn show(args: ShowArgs) -> Result<()> {
    let objects = load(&args.config)?;
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

fn tree(args: TreeArgs) -> Result<()> {
    let objects = load(&args.config)?;
    let rendered = tree::render(&objects, &args.path_template).map_err(Problems::from_messages)?;
    let on_disk = tree::read_tree(&args.out)?;
    let drift = tree::compare(&rendered, &on_disk);
    if args.check {
        for (path, how) in &drift {
            let how = serde_json::to_value(how)?;
            println!(
                "{}: {}",
                args.out.join(path).display(),
                how.as_str().unwrap_or_default()
            );
        }
        if drift.is_empty() {
            eprintln!(
                "{}: {} files, up to date",
                args.out.display(),
                rendered.len()
            );
            return Ok(());
        }
        eprintln!(
            "{}: {} of {} files out of date: regenerate with `kopsrs manifests tree ... --out {}`",
            args.out.display(),
            drift.len(),
            rendered.len(),
            args.out.display()
        );
        return Err(ExitWith(1).into());
    }
    for (path, how) in &drift {
        let full = args.out.join(path);
        match how {
            tree::Drift::Extra => std::fs::remove_file(&full)?,
            _ => {
                if let Some(dir) = full.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                std::fs::write(&full, &rendered[path])?;
            }
        }
    }
    eprintln!(
        "{}: {} files, {} written or removed",
        args.out.display(),
        rendered.len(),
        drift.len()
    );
    Ok(())
}

/// The minor to check against: the flag, else the cluster's, else the channel's.
async fn target_minor(global: &GlobalArgs, flag: Option<&str>) -> Result<String> {
    let version = match (flag, &global.name) {
        (Some(v), _) => v.to_string(),
        (None, Some(name)) => {
            let store = context::open_store(global).await?;
            let cluster = crate::pipeline::load_cluster(&store, name).await?.cluster;
            cluster
                .value
                .spec
                .kubernetes_version
                .clone()
                .unwrap_or_default()
        }
        (None, None) => {
            kopsrs_bootstrap::channel::Channel::stable()
                .kubernetes
                .recommended
        }
    };
    let parsed = kopsrs_api::versions::KubernetesVersion::parse(&version)
        .or_else(|| kopsrs_api::versions::KubernetesVersion::parse(&format!("{version}.0")));
    let minor = parsed.map(|v| format!("{}.{}", v.major, v.minor));
    match minor {
        Some(m) if schema::minors().contains(&m) => Ok(m),
        _ => Err(Problems::one(
            format!("--kubernetes-version {version:?}: no schemas for it"),
            format!(
                "kopsrs carries the API of Kubernetes {}",
                schema::minors().join(", ")
            ),
        )
        .into()),
    }
}

async fn check(global: &GlobalArgs, args: CheckArgs) -> Result<()> {
    let minor = target_minor(global, args.kubernetes_version.as_deref()).await?;
    let objects = load(&args.config)?;
    let mut api = schema::Api::load(&minor).expect("an embedded minor");
    let mut problems = check::check(&objects, &mut api);
    // Evaluated twice, the same objects: no time, randomness or environment leaks in.
    let again = load(&args.config)?;
    if again != objects {
        let first = objects
            .iter()
            .zip(&again)
            .find(|(a, b)| a != b)
            .map_or_else(|| "the number of objects".to_string(), |(a, _)| a.address());
        problems.push(check::Problem {
            check: "deterministic",
            severity: "error",
            object: first,
            source: String::new(),
            field: String::new(),
            message: "two evaluations of the configuration differ".into(),
            hint: "remove what changes between runs (time, random values, environment)".into(),
        });
    }
    let errors = problems.iter().filter(|p| p.severity == "error").count();
    match args.output {
        ReportFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "kubernetesVersion": minor,
                "objects": objects.len(),
                "problems": problems,
            }))?
        ),
        ReportFormat::Text => {
            for p in &problems {
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
            eprintln!(
                "{} objects checked against Kubernetes {minor}: {errors} errors, {} warnings",
                objects.len(),
                problems.len() - errors
            );
        }
    }
    if errors > 0 {
        return Err(ExitWith(1).into());
    }
    Ok(())
}

/// Live objects by identity (group, kind, namespace, name).
type Live = HashMap<(String, String, String, String), Value>;

/// The cluster's API and the objects, each resolved to its kind.
struct Target {
    kube: Kube,
    catalog: Catalog,
    objects: Vec<Object>,
}

impl Target {
    async fn open(global: &GlobalArgs, args: &ClusterArgs) -> Result<Target> {
        let name = context::cluster_name(global, None)?;
        let objects = load(&args.config)?;
        let kube = Kube::connect(&name, args.kubeconfig.as_deref())
            .await
            .map_err(|e| {
                Problems::one(
                    e.to_string(),
                    format!("`kopsrs export kubeconfig {name}` writes the context"),
                )
            })?;
        let catalog = kube.catalog().await?;
        Ok(Target {
            kube,
            catalog,
            objects,
        })
    }

    /// The kind of each object; objects of kinds the API does not serve yet are `None` (custom
    /// resources whose definition is applied first).
    fn kinds(&self) -> Vec<Option<Kind>> {
        self.objects
            .iter()
            .map(|o| self.catalog.resolve(o.api_version(), o.kind()))
            .collect()
    }

    fn namespaced(&self, object: &Object, kind: Option<&Kind>) -> bool {
        match kind {
            Some(k) => k.namespaced,
            None => {
                let crds: Vec<&Object> = self.objects.iter().filter(|o| o.is_crd()).collect();
                objects::namespaced(object, &crds, |_, _| true).unwrap_or(true)
            }
        }
    }

    /// Namespaces the configuration creates that the cluster does not have yet: a server
    /// dry run of an object in one fails (the namespace is not found), so it is shown as
    /// configured.
    fn pending_namespaces(&self, live: &Live) -> std::collections::HashSet<String> {
        self.objects
            .iter()
            .filter(|o| o.group().is_empty() && o.kind() == "Namespace")
            .filter(|o| !live.contains_key(&o.key()))
            .map(|o| o.name().to_string())
            .collect()
    }

    /// The live objects, one list per kind and namespace the configuration uses.
    async fn live(
        &self,
        kinds: &[Option<Kind>],
    ) -> Result<HashMap<(String, String, String, String), Value>> {
        let mut wanted: BTreeMap<(String, String), &Kind> = BTreeMap::new();
        for (object, kind) in self.objects.iter().zip(kinds) {
            if let Some(kind) = kind {
                let ns = match kind.namespaced {
                    true => object.namespace().to_string(),
                    false => String::new(),
                };
                wanted.insert((kind.plural(), ns), kind);
            }
        }
        let mut out = HashMap::new();
        for ((_, ns), kind) in wanted {
            let ns = (!ns.is_empty()).then_some(ns.as_str());
            for value in self.kube.list_objects(kind, ns, None).await? {
                let o = Object {
                    value,
                    source: String::new(),
                    path: String::new(),
                };
                let key = o.key();
                out.insert(key, o.value);
            }
        }
        Ok(out)
    }
}

async fn diff(global: &GlobalArgs, args: ClusterArgs) -> Result<()> {
    let target = Target::open(global, &args).await?;
    let kinds = target.kinds();
    let live = target.live(&kinds).await?;
    let pending = target.pending_namespaces(&live);
    let mut changed = 0;
    for (object, kind) in target.objects.iter().zip(&kinds) {
        let current = live.get(&object.key());
        if current.is_some_and(|l| compare::unchanged(&object.value, l)) {
            continue;
        }
        // The dry run shows the object as the API would store it (defaults, normalised
        // quantities); a kind not served yet (its definition not applied) shows the
        // configuration itself.
        let after = match kind {
            Some(kind) if !pending.contains(object.namespace()) => target
                .kube
                // Forced: the diff shows what the configuration wants even where another
                // manager owns a field (apply then needs --force-conflicts).
                .apply_object(
                    kind,
                    &compare::annotated(&object.value),
                    "kopsrs",
                    true,
                    true,
                )
                .await
                .map_err(|e| anyhow::anyhow!("{}: {e}", object.address()))?,
            _ => object.value.clone(),
        };
        let text = compare::diff(&object.address(), &object.value, current, &after);
        if text.is_empty() && current.is_some() {
            continue;
        }
        changed += 1;
        print!("{text}");
    }
    eprintln!(
        "{} objects: {changed} would change, {} unchanged",
        target.objects.len(),
        target.objects.len() - changed
    );
    if changed > 0 && args.detailed_exitcode {
        return Err(ExitWith(2).into());
    }
    Ok(())
}

async fn apply(global: &GlobalArgs, args: ApplyArgs) -> Result<()> {
    let dry_run = args.cluster.dry_run;
    let suffix = if dry_run { " (dry run)" } else { "" };
    if let Some(tag) = &args.gc_tag {
        if let Err(why) = check::label_value(tag) {
            return Err(Problems::one(
                format!("--gc-tag {tag:?} {why}"),
                "use letters, digits, '-', '_' and '.', at most 63",
            )
            .into());
        }
    }
    let mut target = Target::open(global, &args.cluster).await?;
    if let Some(tag) = &args.gc_tag {
        for object in &mut target.objects {
            object.value["metadata"]["labels"][order::GC_LABEL] = Value::String(tag.clone());
        }
    }
    let mut kinds = target.kinds();
    let live = target.live(&kinds).await?;
    let pending = target.pending_namespaces(&live);
    let order = order::apply_order(&target.objects, |i| {
        target.namespaced(&target.objects[i], kinds[i].as_ref())
    });
    let mut counts = BTreeMap::<&str, usize>::new();
    let mut failed = Vec::new();
    let mut crds_waited = false;
    for i in order {
        let object = &target.objects[i];
        // Before the first object of a kind not served yet: the definitions applied so far
        // established, and the API discovered again.
        if kinds[i].is_none() && !object.is_crd() && !crds_waited && !dry_run {
            crds_waited = true;
            let names: Vec<String> = target
                .objects
                .iter()
                .filter(|o| o.is_crd())
                .map(|o| o.name().to_string())
                .collect();
            target
                .kube
                .wait_established(&target.catalog, &names, Duration::from_secs(60))
                .await?;
            target.catalog = target.kube.catalog().await?;
            kinds = target.kinds();
        }
        let Some(kind) = &kinds[i] else {
            let why = match dry_run {
                true => "its kind is not served yet (its definition would be applied first; a dry run cannot show it)",
                false => "the API does not serve its kind",
            };
            println!("{} skipped: {why}", object.address());
            if !dry_run {
                failed.push(format!(
                    "{}: the API does not serve {} {}",
                    object.address(),
                    object.api_version(),
                    object.kind()
                ));
            }
            continue;
        };
        let current = live.get(&object.key());
        if current.is_some_and(|l| compare::unchanged(&object.value, l)) {
            *counts.entry("unchanged").or_default() += 1;
            continue;
        }
        if dry_run && pending.contains(object.namespace()) {
            println!(
                "{} created{suffix}: namespace {} is created first",
                object.address(),
                object.namespace()
            );
            *counts.entry("created").or_default() += 1;
            continue;
        }
        let sent = compare::annotated(&object.value);
        match target
            .kube
            .apply_object(
                kind,
                &sent,
                &args.field_manager,
                args.force_conflicts,
                dry_run,
            )
            .await
        {
            Ok(_) => {
                let what = if current.is_some() {
                    "configured"
                } else {
                    "created"
                };
                println!("{} {what}{suffix}", object.address());
                *counts.entry(what).or_default() += 1;
            }
            Err(e) => {
                println!("{} failed: {e}", object.address());
                failed.push(format!("{}: {e}", object.address()));
            }
        }
    }
    let mut deleted = 0;
    if let (Some(tag), true) = (&args.gc_tag, failed.is_empty()) {
        deleted = collect_garbage(&target, tag, dry_run).await?;
    }
    let summary: Vec<String> = counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
    eprintln!(
        "{} objects: {}{}{}{suffix}",
        target.objects.len(),
        summary.join(", "),
        if args.gc_tag.is_some() {
            format!(", {deleted} garbage deleted")
        } else {
            String::new()
        },
        if failed.is_empty() {
            String::new()
        } else {
            format!(", {} failed", failed.len())
        },
    );
    if !failed.is_empty() {
        if args.gc_tag.is_some() {
            eprintln!("garbage collection skipped: not every object applied");
        }
        return Err(Problems::from_messages(failed).into());
    }
    Ok(())
}

/// Deletes what carries the GC label and the configuration no longer renders: one list per
/// kind (by label, all namespaces).
async fn collect_garbage(target: &Target, tag: &str, dry_run: bool) -> Result<usize> {
    let rendered: std::collections::HashSet<_> = target.objects.iter().map(Object::key).collect();
    let selector = format!("{}={tag}", order::GC_LABEL);
    let mut deleted = 0;
    for kind in target.catalog.collectable() {
        for live in target
            .kube
            .list_objects(&kind, None, Some(&selector))
            .await?
        {
            let o = Object {
                value: live,
                source: String::new(),
                path: String::new(),
            };
            // Another version of a rendered object's kind lists it too.
            let is_rendered = rendered.contains(&o.key());
            match order::keep_reason(&o.value, is_rendered) {
                Some("rendered") => {}
                Some(why) => println!("{} kept: {why}", o.address()),
                None => {
                    let ns = (!o.namespace().is_empty()).then_some(o.namespace());
                    if target
                        .kube
                        .delete_object(&kind, ns, o.name(), dry_run)
                        .await?
                    {
                        deleted += 1;
                        let suffix = if dry_run { " (dry run)" } else { "" };
                        println!("{} deleted (garbage){suffix}", o.address());
                    }
                }
            }
        }
    }
    Ok(deleted)
}

async fn delete(global: &GlobalArgs, args: ClusterArgs) -> Result<()> {
    let target = Target::open(global, &args).await?;
    let kinds = target.kinds();
    let mut order = order::apply_order(&target.objects, |i| {
        target.namespaced(&target.objects[i], kinds[i].as_ref())
    });
    order.reverse();
    let suffix = if args.dry_run { " (dry run)" } else { "" };
    let mut deleted = 0;
    for i in order {
        let object = &target.objects[i];
        let Some(kind) = &kinds[i] else {
            println!("{} not found (its kind is not served)", object.address());
            continue;
        };
        let ns = (kind.namespaced && !object.namespace().is_empty()).then_some(object.namespace());
        match target
            .kube
            .delete_object(kind, ns, object.name(), args.dry_run)
            .await
        {
            Ok(true) => {
                deleted += 1;
                println!("{} deleted{suffix}", object.address());
            }
            Ok(false) => println!("{} not found", object.address()),
            Err(e) => return Err(anyhow::anyhow!("{}: {e}", object.address())),
        }
    }
    eprintln!(
        "{} objects: {deleted} deleted{suffix}",
        target.objects.len()
    );
    Ok(())
}
