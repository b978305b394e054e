//! The cluster PKI in the state store (kops's layout: `pki/private/<keyset>/keyset.yaml` with
//! private keys, `pki/issued/<keyset>/keyset.yaml` without), keypair rotation verbs, and
//! `export kubeconfig`. Private material is never printed.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use kopsrs_pki::{KeyInfo, Keyset, KubeconfigEntry, KEYSETS};
use kopsrs_state::{layout, StateStore, StateStoreError, Versioned};
use time::OffsetDateTime;

use crate::cluster::load_cluster;
use crate::problems::Problems;
use crate::session::{self as context, Session};

/// What `export kubeconfig` writes.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// An admin client certificate valid this long (`--admin`, e.g. `18h`).
    pub admin: Option<String>,
    /// The kubeconfig to merge into (else the settings' first kubeconfig path).
    pub kubeconfig: Option<PathBuf>,
    /// The internal API name (`api.internal.<cluster>`).
    pub internal: bool,
    /// This API server URL.
    pub api_server: Option<String>,
    /// The context's user: an existing user of the kubeconfig (kops's `--user`).
    pub user: Option<String>,
    /// The export `update cluster --yes` makes on its own: an existing entry keeps its server
    /// and the context its user unless `admin` or `user` asks for new credentials.
    pub keep_existing: bool,
}

fn private_key(cluster: &str, keyset: &str) -> String {
    format!("{cluster}/{}/{keyset}/keyset.yaml", layout::PKI_PRIVATE)
}

fn issued_key(cluster: &str, keyset: &str) -> String {
    format!("{cluster}/{}/{keyset}/keyset.yaml", layout::PKI_ISSUED)
}

pub(crate) async fn read(
    store: &StateStore,
    cluster: &str,
    keyset: &str,
) -> Result<Option<Versioned<Keyset>>> {
    let Some(object) = store.get(&private_key(cluster, keyset)).await? else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&object.value);
    let value = Keyset::from_yaml(&text)
        .with_context(|| format!("reading {}", private_key(cluster, keyset)))?;
    Ok(Some(Versioned {
        value,
        version: object.version,
    }))
}

/// Writes a keyset: the private copy with a conditional write (create-only for a new one),
/// then the public copy.
async fn write(
    store: &StateStore,
    cluster: &str,
    keyset: &Keyset,
    version: Option<&kopsrs_state::Version>,
) -> Result<()> {
    store
        .put(
            &private_key(cluster, keyset.name()),
            keyset.to_yaml().into_bytes().into(),
            version,
        )
        .await
        .map_err(|e| match e {
            StateStoreError::Conflict(_) | StateStoreError::AlreadyExists(_) => Problems::one(
                format!("keyset {} changed while this command ran", keyset.name()),
                "run the command again",
            )
            .into(),
            other => anyhow::Error::from(other),
        })?;
    store
        .overwrite(
            &issued_key(cluster, keyset.name()),
            keyset.public().to_yaml().into_bytes().into(),
        )
        .await?;
    Ok(())
}

/// Creates the keysets a cluster lacks (first `update cluster`); existing ones are never
/// regenerated. Returns how many were created.
pub async fn ensure_keysets(store: &StateStore, cluster: &str) -> Result<usize> {
    let mut created = 0;
    for name in KEYSETS {
        if read(store, cluster, name).await?.is_some() {
            continue;
        }
        let keyset = Keyset::generate(name, OffsetDateTime::now_utc())?;
        match write(store, cluster, &keyset, None).await {
            Ok(()) => created += 1,
            // Another run made it first: theirs stands.
            Err(_) if read(store, cluster, name).await?.is_some() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(created)
}

fn selected(keyset: &str) -> Result<Vec<&'static str>> {
    if keyset == "all" {
        return Ok(KEYSETS.to_vec());
    }
    KEYSETS
        .iter()
        .find(|k| **k == keyset)
        .map(|k| vec![*k])
        .ok_or_else(|| {
            Problems::one(
                format!("keyset {keyset:?} is not a keyset of kopsrs"),
                format!("use one of {} or all", KEYSETS.join(", ")),
            )
            .into()
        })
}

/// The verbs that change keysets: read, change, write back only if unchanged meanwhile.
pub enum Rotation {
    /// A new key, not yet primary (`create keypair`).
    Create,
    /// The newest key becomes primary (`promote keypair`).
    Promote,
    /// These keys are no longer trusted (`distrust keypair`).
    Distrust(Vec<String>),
    /// These keys are trusted again (`trust keypair`).
    Trust(Vec<String>),
}

/// Rotates `keyset` (or `all`) of the session's cluster; reports one line per keyset.
pub async fn rotate(global: &Session, keyset: &str, rotation: Rotation) -> Result<()> {
    let cluster = context::cluster_name(global, None)?;
    let store = context::open_store(global).await?;
    load_cluster(&store, &cluster).await?;
    let names = selected(keyset)?;
    if let Rotation::Trust(ids) = &rotation {
        if ids.is_empty() {
            return Err(Problems::one(
                "trust keypair needs the IDs of the keys to trust",
                "`kopsrs get keypairs --distrusted` lists them",
            )
            .into());
        }
    }
    ensure_keysets(&store, &cluster).await?;
    let now = OffsetDateTime::now_utc();
    for name in names {
        let Versioned { mut value, version } = read(&store, &cluster, name)
            .await?
            .expect("ensure_keysets made it");
        let message = match &rotation {
            Rotation::Create => format!("created key {}", value.create_key(now)?),
            Rotation::Promote => format!("promoted key {}", value.promote()?),
            Rotation::Distrust(ids) => {
                let done = value.distrust(ids, now)?;
                if done.is_empty() {
                    "no key to distrust".to_string()
                } else {
                    format!("distrusted {}", done.join(", "))
                }
            }
            Rotation::Trust(ids) => {
                for id in ids {
                    value.trust(id)?;
                }
                format!("trusted {}", ids.join(", "))
            }
        };
        write(&store, &cluster, &value, Some(&version)).await?;
        global.reporter.say(&format!("{name}: {message}"));
    }
    global
        .reporter
        .say("Run `kopsrs update cluster --yes` so nodes get the new trust bundle.");
    Ok(())
}

/// The keys of `keysets` (none: every keyset) of the session's cluster, distrusted ones
/// only when asked.
pub async fn keypairs(
    global: &Session,
    keysets: &[String],
    distrusted: bool,
) -> Result<Vec<KeyInfo>> {
    let cluster = context::cluster_name(global, None)?;
    let store = context::open_store(global).await?;
    load_cluster(&store, &cluster).await?;
    let mut names = Vec::new();
    for keyset in keysets {
        names.extend(selected(keyset)?);
    }
    if names.is_empty() {
        names = KEYSETS.to_vec();
    }
    let mut keys: Vec<KeyInfo> = Vec::new();
    for name in names {
        if let Some(keyset) = read(&store, &cluster, name).await? {
            keys.extend(
                keyset
                    .value
                    .describe()?
                    .into_iter()
                    .filter(|k| distrusted || !k.distrusted),
            );
        }
    }
    Ok(keys)
}

/// Where the kubeconfig is: --kubeconfig, the first path of $KUBECONFIG, ~/.kube/config.
fn kubeconfig_path(settings: &crate::Settings, explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = explicit {
        return Ok(path.to_path_buf());
    }
    settings
        .kubeconfig
        .iter()
        .find(|p| !p.as_os_str().is_empty())
        .cloned()
        .ok_or_else(|| {
            Problems::one(
                "no home directory to put ~/.kube/config in",
                "pass --kubeconfig PATH",
            )
            .into()
        })
}

/// Writes `text` to `path` with mode 0600, replacing it atomically (a temporary file in the
/// same directory, then a rename).
fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write as _;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut file = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("writing in {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        file.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(text.as_bytes())?;
    file.as_file().sync_all()?;
    file.persist(path)
        .with_context(|| format!("replacing {}", path.display()))?;
    Ok(())
}

fn parse_lifetime(text: &str) -> Result<time::Duration> {
    let duration = humantime::parse_duration(text).map_err(|e| {
        Problems::one(
            format!("--admin {text:?}: not a duration ({e})"),
            "use a duration such as 18h or 30m",
        )
    })?;
    Ok(time::Duration::try_from(duration).unwrap_or(time::Duration::hours(18)))
}

/// Exports one cluster into the kubeconfig.
pub async fn export_cluster(
    global: &Session,
    store: &StateStore,
    cluster: &str,
    args: &ExportOptions,
) -> Result<PathBuf> {
    load_cluster(store, cluster).await?;
    let lifetime = args.admin.as_deref().map(parse_lifetime).transpose()?;
    let Some(ca) = read(store, cluster, "kubernetes-ca").await? else {
        return Err(Problems::one(
            format!("cluster {cluster} has no CA yet"),
            format!("run `kopsrs update cluster {cluster}` first; it creates the PKI"),
        )
        .into());
    };
    let ca = ca.value;
    let server = match &args.api_server {
        Some(url) => url.clone(),
        None if args.internal => format!("https://api.internal.{cluster}"),
        None => format!("https://api.{cluster}"),
    };
    let client = match lifetime {
        Some(lifetime) => Some(ca.sign_client(
            "kubecfg",
            &["system:masters"],
            OffsetDateTime::now_utc(),
            lifetime,
        )?),
        None => None,
    };
    let entry = KubeconfigEntry {
        name: cluster.to_string(),
        server,
        certificate_authority: ca.trust_bundle()?,
        client,
        user: args.user.clone(),
        keep: args.keep_existing,
    };
    let path = kubeconfig_path(&global.settings, args.kubeconfig.as_deref())?;
    let existing = match std::fs::read_to_string(&path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(anyhow::Error::from(e).context(format!("reading {}", path.display()))),
    };
    let merged = kopsrs_pki::merge_kubeconfig(existing.as_deref(), &entry).map_err(|e| {
        Problems::one(
            format!("{}: {e}", path.display()),
            "fix or move the file, or pass --kubeconfig PATH",
        )
    })?;
    write_private(&path, &merged)?;
    global.reporter.say(&match (&entry.client, &entry.user) {
        (Some(_), _) => format!(
            "Exported {cluster} to {} with an admin certificate.",
            path.display()
        ),
        (None, Some(user)) => format!(
            "Exported {cluster} to {} with the user {user}.",
            path.display()
        ),
        (None, None) if entry.keep && existing.is_some() => format!(
            "Exported {cluster} to {}, keeping the server and credentials already there; add --admin for an admin certificate.",
            path.display()
        ),
        (None, None) => format!(
            "Exported {cluster} to {} without credentials; add --admin for an admin certificate.",
            path.display()
        ),
    });
    Ok(path)
}

/// `export kubeconfig`: `clusters` (none: every cluster in the store) into the kubeconfig.
pub async fn export_kubeconfig(
    global: &Session,
    clusters: Option<Vec<String>>,
    args: &ExportOptions,
) -> Result<Vec<PathBuf>> {
    let store = context::open_store(global).await?;
    let clusters = match clusters {
        Some(clusters) => clusters,
        None => store.list_clusters().await?,
    };
    let mut paths = Vec::new();
    for cluster in &clusters {
        paths.push(export_cluster(global, &store, cluster, args).await?);
    }
    Ok(paths)
}
