//! `manifests`: the kubecfg-shaped verbs over Jsonnet, JSON and YAML configuration. The verbs
//! that need no cluster (show, tree, check) are here; those that talk to one (diff, apply,
//! delete) are in [`cluster`]. Reading and checking are `kopsrs_manifests`'; the API calls
//! are `kopsrs_kube::manifests`'.

mod cluster;

use std::path::PathBuf;

use anyhow::Result;
use kopsrs_manifests::jsonnet::Options;
use kopsrs_manifests::objects::Object;
use kopsrs_manifests::{check, input, schema, tree};

use crate::problems::Problems;
use crate::Session;

pub use cluster::{
    apply, delete, diff, ApplyOptions, ApplyReport, DeleteOptions, DeleteReport, DiffReport,
    TargetOptions,
};

/// The configuration: files, folders, `-`, and how Jsonnet is evaluated.
#[derive(Debug, Clone)]
pub struct Config {
    /// Jsonnet, JSON or YAML files, folders of them (recursively), or `-`.
    pub files: Vec<PathBuf>,
    /// The evaluation options, or every problem with the flags that make them: reported when
    /// the configuration is read, so the checks that come first keep their order.
    pub jsonnet: Result<Options, Vec<String>>,
}

/// The objects of the configuration; all problems at once.
pub fn load(config: &Config) -> Result<Vec<Object>> {
    let options = config
        .jsonnet
        .as_ref()
        .map_err(|errors| Problems::from_messages(errors.clone()))?;
    input::load(&config.files, options).map_err(|errors| {
        // Several folders that each define the same objects are likely several clusters'
        // configurations (one folder per cluster), not one.
        let several = config.files.len() > 1;
        Problems(
            errors
                .into_iter()
                .map(|message| crate::Problem {
                    hint: (several && message.contains("is defined twice")).then(|| {
                        "if these are different clusters' folders, check each as its own configuration: `kopsrs manifests check --each FOLDER...`".to_string()
                    }),
                    message,
                })
                .collect(),
        )
        .into()
    })
}

/// What `manifests tree` does.
#[derive(Debug, Clone)]
pub struct TreeOptions {
    /// The tree's folder.
    pub out: PathBuf,
    /// Where each object goes (see [`tree::DEFAULT_TEMPLATE`]).
    pub path_template: String,
    /// Write nothing; only compare.
    pub check: bool,
}

/// The tree against the folder: each file that differs, is missing or is extra (written or
/// removed unless `check`).
#[derive(Debug, Clone)]
pub struct TreeReport {
    /// How many files the configuration renders.
    pub rendered: usize,
    /// The files that were (with `check`: are) out of date, relative to the folder.
    pub drift: Vec<(PathBuf, tree::Drift)>,
}

/// Renders the JSON tree and brings the folder up to date (with `check`: only compares).
pub fn write_tree(config: &Config, options: &TreeOptions) -> Result<TreeReport> {
    let objects = load(config)?;
    let rendered =
        tree::render(&objects, &options.path_template).map_err(Problems::from_messages)?;
    let on_disk = tree::read_tree(&options.out)?;
    let drift = tree::compare(&rendered, &on_disk);
    if !options.check {
        for (path, how) in &drift {
            let full = options.out.join(path);
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
    }
    Ok(TreeReport {
        rendered: rendered.len(),
        drift,
    })
}

/// What `manifests check` found: every problem, errors and warnings.
#[derive(Debug, Clone)]
pub struct CheckReport {
    /// The Kubernetes minor checked against (`1.31`).
    pub minor: String,
    /// How many objects were checked.
    pub objects: usize,
    /// The problems, in the order found.
    pub problems: Vec<check::Problem>,
}

impl CheckReport {
    /// How many problems are errors.
    pub fn errors(&self) -> usize {
        self.problems
            .iter()
            .filter(|p| p.severity == "error")
            .count()
    }
}

/// Checks the objects offline against the minor `kubernetes_version` names (default: the
/// cluster's with a session name, else the stable channel's), and that two evaluations give
/// the same objects.
pub async fn check(
    session: &Session,
    config: &Config,
    kubernetes_version: Option<&str>,
) -> Result<CheckReport> {
    let minor = target_minor(session, kubernetes_version).await?;
    let objects = load(config)?;
    let mut api = schema::Api::load(&minor).expect("an embedded minor");
    let mut problems = check::check(&objects, &mut api);
    // Evaluated twice, the same objects: no time, randomness or environment leaks in.
    let again = load(config)?;
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
    Ok(CheckReport {
        minor,
        objects: objects.len(),
        problems,
    })
}

/// The minor to check against: the flag, else the cluster's, else the channel's.
async fn target_minor(session: &Session, flag: Option<&str>) -> Result<String> {
    let version = match (flag, &session.name) {
        (Some(v), _) => v.to_string(),
        (None, Some(name)) => {
            let store = crate::session::open_store(session).await?;
            let cluster = crate::cluster::load_cluster(&store, name).await?.cluster;
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
