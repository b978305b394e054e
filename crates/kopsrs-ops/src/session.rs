//! What every operation needs: the state store, the cluster name, input files, the
//! settings and the reporter.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use kopsrs_api::{decode_documents_with, Document, Validation};
use kopsrs_state::{StateStore, StoreAccess};

use crate::bucket_owner;
use crate::problems::{Problem, Problems};
use crate::{Reporter, Settings};

/// Who asks and where: the state store and cluster a caller named, how stored specs are
/// read, the environment's settings, and where progress goes.
#[derive(Clone)]
pub struct Session {
    /// The state store URL (`--state`, `KOPS_STATE_STORE`, the config file).
    pub state: Option<String>,
    /// The cluster name (`--name`, `KOPS_CLUSTER_NAME`, the config file).
    pub name: Option<String>,
    /// How unknown fields in specs are treated.
    pub validate: Validation,
    /// The environment, read once at start.
    pub settings: Settings,
    /// Where progress and warnings go.
    pub reporter: std::sync::Arc<dyn Reporter>,
    /// A role the cloud's clients assume (the controller, for a namespace that names one);
    /// none: the standard credential chain's identity. The state store is not affected.
    pub aws_role: Option<kopsrs_aws::AssumeRole>,
    /// Clients shared with the other clusters of an account and region (the controller);
    /// none: each operation makes its own.
    pub aws_fleet: Option<std::sync::Arc<AwsFleet>>,
    /// State stores opened before, reused (the controller); none: each operation opens the
    /// store (finds an S3 bucket's region, checks its owner).
    pub stores: Option<std::sync::Arc<OpenStores>>,
}

/// State stores opened once and reused for [`OpenStores::REOPEN`] by URL: the controller's
/// reconciles open the same stores over and over, and opening an S3 store costs two
/// requests (the bucket's region, its owner). The lock owner is the session's, which is the
/// same for every reconcile of one controller.
#[derive(Default)]
pub struct OpenStores {
    opened: std::sync::Mutex<std::collections::HashMap<String, (StateStore, std::time::Instant)>>,
}

impl OpenStores {
    /// How long an opened store is reused before it is opened (and its bucket checked)
    /// again.
    pub const REOPEN: std::time::Duration = std::time::Duration::from_secs(600);

    fn get(&self, url: &str) -> Option<StateStore> {
        let opened = self.opened.lock().expect("open stores");
        opened
            .get(url)
            .filter(|(_, at)| at.elapsed() < Self::REOPEN)
            .map(|(store, _)| store.clone())
    }

    fn put(&self, url: &str, store: &StateStore) {
        let mut opened = self.opened.lock().expect("open stores");
        opened.insert(url.to_string(), (store.clone(), std::time::Instant::now()));
    }
}

/// The AWS clients of the controller's clusters: one set per account (the role a namespace
/// names, or the controller's own identity) and region, made once, sharing one snapshot of
/// discovery's reads and one throttling state (see [`kopsrs_aws::fleet`]).
pub struct AwsFleet {
    max_age: std::time::Duration,
    on_call: Option<kopsrs_aws::OnCall>,
    clients: tokio::sync::Mutex<std::collections::HashMap<FleetKey, kopsrs_aws::Aws>>,
}

/// An account and region: the role assumed (ARN, external ID, session name; none: the
/// controller's own identity), and the region.
type FleetKey = (Option<kopsrs_aws::AssumeRole>, String);

impl AwsFleet {
    /// Clients whose shared reads live at most `max_age`; `on_call` hears of every
    /// operation sent.
    pub fn new(max_age: std::time::Duration, on_call: Option<kopsrs_aws::OnCall>) -> AwsFleet {
        AwsFleet {
            max_age,
            on_call,
            clients: Default::default(),
        }
    }

    /// Drops every account's and region's snapshot of shared reads: something changed the
    /// cloud outside these clients (a roll, which reads and writes on its own).
    pub async fn forget(&self) {
        for aws in self.clients.lock().await.values() {
            aws.changed();
        }
    }

    /// The clients of the session's account in `region`, made on first use. Each caller gets
    /// its own call counter.
    pub async fn clients(
        &self,
        role: Option<&kopsrs_aws::AssumeRole>,
        retry_from_env: bool,
        region: &str,
    ) -> kopsrs_aws::Aws {
        // The whole role, session name included: each namespace's calls are made, and
        // shown in CloudTrail, as its own session.
        let key: FleetKey = (role.cloned(), region.to_string());
        let mut clients = self.clients.lock().await;
        if let Some(aws) = clients.get(&key) {
            return aws.counting_apart();
        }
        let sharing = kopsrs_aws::Sharing {
            reads: (!self.max_age.is_zero()).then(|| kopsrs_aws::FleetReads::new(self.max_age)),
            // One partition per account and region; its name is only a label.
            partition: format!("{}-{region}", role.map_or("own", |r| r.role_arn.as_str())),
            on_call: self.on_call.clone(),
        };
        let aws = kopsrs_aws::Aws::connect_shared(region, retry_from_env, role, &sharing).await;
        clients.insert(key, aws.clone());
        aws.counting_apart()
    }
}

/// kops's config file (`--config`, else the first of ./.kops.yaml, ~/.kops.yaml,
/// ~/.config/kops/.kops.yaml): `state` and `name` for what no flag or environment variable
/// gave. Other keys (kops's other flags) are ignored, as kops ignores keys it does not bind.
pub fn read_config_file(global: &mut Session, config: Option<&Path>) -> Result<()> {
    #[derive(serde::Deserialize)]
    struct ConfigFile {
        state: Option<String>,
        name: Option<String>,
    }
    let path = match config {
        Some(path) => path.to_path_buf(),
        None => {
            let home = global.settings.home.clone();
            let candidates = [Some(std::path::PathBuf::from(".kops.yaml"))]
                .into_iter()
                .chain([
                    home.as_ref().map(|h| h.join(".kops.yaml")),
                    home.as_ref().map(|h| h.join(".config/kops/.kops.yaml")),
                ])
                .flatten();
            match candidates.into_iter().find(|p| p.is_file()) {
                Some(path) => path,
                None => return Ok(()),
            }
        }
    };
    let text = read_input(&path)?;
    let config: ConfigFile = serde_yaml_ng::from_str(&text).map_err(|e| {
        Problems::one(
            format!("{}: {e}", path.display()),
            "a kops config file holds `state: s3://bucket/prefix` and optionally `name: CLUSTER`",
        )
    })?;
    if global.state.is_none() {
        global.state = config.state;
    }
    if global.name.is_none() {
        global.name = config.name;
    }
    Ok(())
}

/// The state store URL: `--state`, else `KOPS_STATE_STORE` (both through clap), else a
/// directory under the user's data directory, so the tool works with no cloud account.
pub fn state_url(global: &Session) -> Result<String> {
    if let Some(url) = &global.state {
        return Ok(url.clone());
    }
    let data = global
        .settings
        .data_dir
        .as_ref()
        .context("no home directory to keep the default state store in; pass --state")?;
    let dir = data.join("kopsrs").join("state");
    Ok(format!("file://{}", dir.display()))
}

/// The state store the session names (`file://`, `s3://`, `memory://`).
pub async fn open_store(global: &Session) -> Result<StateStore> {
    open(global, false).await
}

/// Opens the store at the session's URL; an S3 store with the owner its bucket must have
/// ([`bucket_owner`](crate::bucket_owner)), recorded on first use.
async fn open(global: &Session, create: bool) -> Result<StateStore> {
    let url = state_url(global)?;
    if let Some(store) = global.stores.as_ref().and_then(|s| s.get(&url)) {
        return Ok(with_validation(store, global));
    }
    let expected = bucket_owner::expected(&global.settings, &url).await?;
    let access = StoreAccess {
        bucket_owner: expected.as_ref().map(|e| e.account.clone()),
        ..store_access(&global.settings)
    };
    let opened = match create {
        true => StateStore::open_or_create(&url, &access).await,
        false => StateStore::open(&url, &access).await,
    };
    let store = opened.map_err(|e| bucket_owner::refused(e, expected.as_ref()))?;
    if let Some(expected) = &expected {
        bucket_owner::after_open(&store, expected, &*global.reporter);
    }
    if let Some(stores) = &global.stores {
        stores.put(&url, &store);
    }
    Ok(with_validation(store, global))
}

/// What the state store takes from the environment (the bucket's owner aside, which
/// [`open_store`] resolves).
pub fn store_access(settings: &Settings) -> StoreAccess {
    StoreAccess {
        s3_endpoint: settings.s3_endpoint.clone(),
        s3_region: settings.s3_region.clone(),
        user: settings.user.clone(),
        bucket_owner: None,
    }
}

/// Stored specs read as `--validate` says, dropped fields reported as warnings.
fn with_validation(store: StateStore, global: &Session) -> StateStore {
    let validation = global.validate;
    let reporter = global.reporter.clone();
    store.with_validation(validation, move |dropped| {
        warn_dropped(&*reporter, dropped, validation)
    })
}

/// One warning per dropped field (a command may read the same spec more than once); none
/// under `--validate=ignore`.
pub fn warn_dropped(
    reporter: &dyn Reporter,
    dropped: &kopsrs_api::DecodeError,
    validation: Validation,
) {
    static SAID: std::sync::Mutex<std::collections::BTreeSet<String>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    if validation != Validation::Warn {
        return;
    }
    let line = dropped.to_string();
    if SAID.lock().expect("warnings").insert(line.clone()) {
        reporter.warn(&format!("{line} (--validate=warn)"), None);
    }
}

/// The state store, made if it is a `file://` directory that does not exist yet: only for
/// commands that create clusters (`create`, `replace --force`).
pub async fn open_or_create_store(global: &Session) -> Result<StateStore> {
    open(global, true).await
}

/// The cluster name: a positional argument, else `--name` / `KOPS_CLUSTER_NAME` (or the
/// config file), else, as kops does, the current context of the kubeconfig (`KUBECONFIG`,
/// else `~/.kube/config`), whose name is the cluster's: said once on stderr, so a name that
/// came from the kubeconfig is never a surprise.
pub fn cluster_name(global: &Session, positional: Option<&str>) -> Result<String> {
    if let Some(name) = positional
        .map(str::to_string)
        .or_else(|| global.name.clone())
    {
        return Ok(name);
    }
    let hint = "pass the name, --name NAME, or set KOPS_CLUSTER_NAME";
    match kopsrs_kube::current_context(&global.settings.kubeconfig) {
        Ok(Some(context)) => {
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| {
                global
                    .reporter
                    .say(&format!("Using cluster from kubectl context: {context}"))
            });
            Ok(context)
        }
        Ok(None) => Err(Problems::one("no cluster name given", hint).into()),
        Err(e) => Err(Problems::one(
            "no cluster name given",
            format!("{hint} (the kubeconfig's current context, which would name it, cannot be read: {e})"),
        )
        .into()),
    }
}

/// Reads a file, or stdin for `-`.
pub fn read_input(path: &Path) -> Result<String> {
    // Read at most one byte past the limit, so a huge file (or an endless stdin) is refused
    // without being read whole.
    let limit = kopsrs_api::MAX_SPEC_BYTES as u64 + 1;
    let mut text = String::new();
    let name = if path == Path::new("-") {
        std::io::stdin()
            .take(limit)
            .read_to_string(&mut text)
            .context("reading stdin")?;
        "stdin".to_string()
    } else {
        std::fs::File::open(path)
            .and_then(|f| f.take(limit).read_to_string(&mut text))
            .with_context(|| format!("reading {}", path.display()))?;
        path.display().to_string()
    };
    if text.len() as u64 >= limit {
        return Err(Problems::one(
            format!(
                "{name}: more than {} MiB, larger than any spec or template",
                kopsrs_api::MAX_SPEC_BYTES >> 20
            ),
            "check that this is the file you meant",
        )
        .into());
    }
    Ok(text)
}

/// Decodes every document of every file (folders: every `.yaml`, `.yml` and `.json` file
/// under them, recursively, in name order; `-`: stdin) as `--validate` says; all decoding
/// errors are reported together.
pub fn read_documents(global: &Session, paths: &[std::path::PathBuf]) -> Result<Vec<Document>> {
    Ok(read_sourced(global, paths)?
        .into_iter()
        .map(|s| s.document)
        .collect())
}

/// A document and the file it came from (`-` for stdin).
pub struct Sourced {
    /// The file.
    pub path: PathBuf,
    /// The decoded document.
    pub document: Document,
}

/// The files `paths` name: files as given, folders expanded (recursively, sorted by path,
/// `.yaml`/`.yml`/`.json` only), `-` as itself.
pub fn expand_paths(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if path != Path::new("-") && path.is_dir() {
            let mut found: Vec<PathBuf> = Vec::new();
            for entry in walkdir::WalkDir::new(path).sort_by_file_name() {
                let entry = entry.with_context(|| format!("reading {}", path.display()))?;
                let spec = entry.file_type().is_file()
                    && entry
                        .path()
                        .extension()
                        .and_then(|e| e.to_str())
                        .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"));
                if spec {
                    found.push(entry.into_path());
                }
            }
            if found.is_empty() {
                return Err(Problems::one(
                    format!(
                        "{}: no .yaml, .yml or .json file in this folder",
                        path.display()
                    ),
                    "point -f at the folder that holds the specs, or at the files",
                )
                .into());
            }
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

/// [`read_documents`], each document with its file.
pub fn read_sourced(global: &Session, paths: &[PathBuf]) -> Result<Vec<Sourced>> {
    let validation = global.validate;
    let mut documents = Vec::new();
    let mut problems = Vec::new();
    for path in expand_paths(paths)? {
        let text = read_input(&path)?;
        let name = if path == Path::new("-") {
            "stdin".to_string()
        } else {
            path.display().to_string()
        };
        match decode_documents_with(&text, &name, validation) {
            Ok(decoded) => {
                decoded
                    .dropped
                    .iter()
                    .for_each(|d| warn_dropped(&*global.reporter, d, validation));
                documents.extend(decoded.documents.into_iter().map(|document| Sourced {
                    path: path.clone(),
                    document,
                }));
            }
            Err(errors) => problems.extend(errors.into_iter().map(|e| {
                Problem {
                    hint: e
                        .message
                        .contains("unknown field")
                        .then(|| crate::problems::STALE_FIELD_HINT.to_string()),
                    message: e.to_string(),
                }
            })),
        }
    }
    if !problems.is_empty() {
        return Err(Problems(problems).into());
    }
    Ok(documents)
}
