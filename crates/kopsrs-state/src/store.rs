//! [`StateStore`]: typed access to a kops state store.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use kopsrs_api::{
    decode_documents_with, encode_documents, Cluster, DecodeError, Document, InstanceGroup,
    OutputFormat, Validation,
};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};

use crate::error::StateStoreError;
use crate::layout;
use crate::local;
use crate::s3;

/// The version of an object as read, used to make the next write conditional.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version(String);

/// A value with the version it was read at.
#[derive(Debug, Clone)]
pub struct Versioned<T> {
    /// The value as read (or decoded).
    pub value: T,
    /// The version it was read at; pass it to the next write of the same key.
    pub version: Version,
}

/// A stored object that exists but does not decode (an unknown field another tool wrote,
/// say): its version, so a write that replaces it is still conditional, and why.
#[derive(Debug)]
pub struct Undecodable {
    /// The version it was read at.
    pub version: Version,
    /// Why it does not decode (a [`StateStoreError::Corrupt`] naming the key).
    pub error: StateStoreError,
}

/// What a read of one stored spec found: the decoded value, or why it does not decode.
pub type Decoded<T> = Result<Versioned<T>, Undecodable>;

#[derive(Clone)]
enum Backend {
    /// `file://`: reads through object_store; conditional writes in [`local`].
    Local(PathBuf),
    Object,
}

/// Where the unknown fields dropped from stored specs are reported.
type DroppedReport = Arc<dyn Fn(&DecodeError) + Send + Sync>;

/// A kops state store (`s3://bucket/prefix`, `file:///dir`, `memory://`). A clone shares
/// the connection (and a `memory://` store's contents).
#[derive(Clone)]
pub struct StateStore {
    url: String,
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    backend: Backend,
    validation: Validation,
    dropped: Option<DroppedReport>,
    /// An S3 store's bucket region.
    region: Option<String>,
    /// The account an S3 store's bucket must belong to, and whether the bucket confirmed it.
    bucket_owner: Option<(String, bool)>,
    /// Who takes the cluster lock (the user running kopsrs).
    pub(crate) owner: String,
}

/// What opening a store takes from the caller's environment (the library reads none):
/// the S3 endpoint and region overrides and the user named in locks.
#[derive(Debug, Clone, Default)]
pub struct StoreAccess {
    /// A local or S3-compatible endpoint (`AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL`),
    /// addressed path-style.
    pub s3_endpoint: Option<String>,
    /// The bucket's region when it should not be asked of S3 (kops's `S3_REGION`).
    pub s3_region: Option<String>,
    /// The user named as a lock's owner; `unknown` when not given.
    pub user: Option<String>,
    /// The AWS account ID (12 digits) that must own an S3 store's bucket. Every request names
    /// it (`x-amz-expected-bucket-owner`), so S3 refuses a bucket another account owns, and
    /// opening the store fails with [`StateStoreError::NotOwner`] when the bucket answers
    /// only without it. `None`: no check (`file://` and `memory://` stores ignore it).
    pub bucket_owner: Option<String>,
}

/// The key asked for when an S3 store is opened with an expected owner: never written, so
/// the bucket answers 404 to a caller who may list it, 403 when the owner differs.
const OWNER_PROBE: &str = ".kopsrs-owner-check";

impl StateStore {
    /// Opens the store at `url`. S3 uses the standard AWS credential chain (environment,
    /// `AWS_PROFILE`, SSO, web identity, instance role), the bucket's own region (unless
    /// `access` names one), and `access`'s endpoint with path-style addressing when set;
    /// writes are conditional.
    pub async fn open(url: &str, access: &StoreAccess) -> Result<StateStore, StateStoreError> {
        Self::open_with(url, access, false).await
    }

    /// Opens the store at `url` for a command that creates clusters: a `file://` directory
    /// is made (0700) when missing. Every other command uses [`StateStore::open`], which
    /// refuses a missing directory, so a mistyped path is an error, not an empty store.
    pub async fn open_or_create(
        url: &str,
        access: &StoreAccess,
    ) -> Result<StateStore, StateStoreError> {
        Self::open_with(url, access, true).await
    }

    async fn open_with(
        url: &str,
        access: &StoreAccess,
        create: bool,
    ) -> Result<StateStore, StateStoreError> {
        let owner = access.user.clone().unwrap_or_else(|| "unknown".into());
        let bad = |reason: &str| StateStoreError::BadUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        // Trailing slashes of the path only: `memory://` keeps its scheme's.
        let url = match url.split_once("://") {
            Some((scheme, rest)) => format!("{scheme}://{}", rest.trim_end_matches('/')),
            None => url.trim_end_matches('/').to_string(),
        };
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad("no bucket; use s3://bucket[/prefix]"));
            }
            let opened = s3::open(bucket, access).await?;
            let prefix = Path::from(prefix);
            let mut bucket_owner = None;
            if let (Some(account), Some(without_owner)) =
                (&access.bucket_owner, &opened.without_owner)
            {
                let probe = prefix.clone().join(OWNER_PROBE);
                match s3::check_owner(&opened.store, without_owner, &probe).await? {
                    s3::OwnerCheck::Other => {
                        return Err(StateStoreError::NotOwner {
                            bucket: bucket.to_string(),
                            expected: account.clone(),
                        })
                    }
                    check => {
                        bucket_owner = Some((account.clone(), check == s3::OwnerCheck::Confirmed))
                    }
                }
            }
            return Ok(StateStore {
                url: url.clone(),
                store: Arc::new(opened.store),
                prefix,
                backend: Backend::Object,
                validation: Validation::Strict,
                dropped: None,
                region: Some(opened.region),
                bucket_owner,
                owner,
            });
        }
        if let Some(rest) = url.strip_prefix("memory://") {
            return Ok(StateStore {
                url: url.clone(),
                store: Arc::new(InMemory::new()),
                prefix: Path::from(rest),
                backend: Backend::Object,
                validation: Validation::Strict,
                dropped: None,
                region: None,
                bucket_owner: None,
                owner,
            });
        }
        if let Some(dir) = url.strip_prefix("file://") {
            if !dir.starts_with('/') {
                return Err(bad(
                    "a file store needs an absolute path: file:///path/to/dir",
                ));
            }
            if !std::path::Path::new(dir).is_dir() {
                if !create {
                    return Err(StateStoreError::Missing(url.clone()));
                }
                local::create_private_dir_all(std::path::Path::new(dir))
                    .map_err(|e| bad(&e.to_string()))?;
            }
            let store = object_store::local::LocalFileSystem::new_with_prefix(dir)
                .map_err(|e| bad(&e.to_string()))?;
            return Ok(StateStore {
                url: url.clone(),
                store: Arc::new(store),
                prefix: Path::default(),
                backend: Backend::Local(PathBuf::from(dir)),
                validation: Validation::Strict,
                dropped: None,
                region: None,
                bucket_owner: None,
                owner,
            });
        }
        Err(bad(
            "use s3://bucket/prefix, file:///absolute/dir or memory://",
        ))
    }

    /// Reads stored specs with `validation` (strict by default): under `warn` and `ignore`,
    /// unknown fields are dropped and each is passed to `report`.
    pub fn with_validation(
        mut self,
        validation: Validation,
        report: impl Fn(&DecodeError) + Send + Sync + 'static,
    ) -> StateStore {
        self.validation = validation;
        self.dropped = Some(Arc::new(report));
        self
    }

    /// The region of an S3 store's bucket (resolved when it was opened); `None` for other
    /// stores. Nodes sign their state-store requests for it.
    pub fn s3_region(&self) -> Option<&str> {
        self.region.as_deref()
    }

    /// The AWS account an S3 store's bucket must belong to (every request names it); `None`
    /// for other stores and when opened without one. Nodes name it in their requests too.
    pub fn s3_bucket_owner(&self) -> Option<&str> {
        self.bucket_owner
            .as_ref()
            .map(|(account, _)| account.as_str())
    }

    /// Whether the bucket answered a request naming [`StateStore::s3_bucket_owner`] when the
    /// store was opened (proof it is that account's); `false` when it refused every request,
    /// with or without the owner (credentials that may not list the bucket).
    pub fn s3_bucket_owner_confirmed(&self) -> bool {
        self.bucket_owner
            .as_ref()
            .is_some_and(|(_, confirmed)| *confirmed)
    }

    /// The URL this store was opened with.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Where a cluster lives (kops's `configBase`).
    pub fn config_base(&self, cluster: &str) -> String {
        format!("{}/{cluster}", self.url)
    }

    fn path(&self, key: &str) -> Path {
        let mut path = self.prefix.clone();
        for part in key.split('/').filter(|p| !p.is_empty()) {
            path = path.clone().join(part);
        }
        path
    }

    /// Reads an object, or `None` when it does not exist.
    pub async fn get(&self, key: &str) -> Result<Option<Versioned<Bytes>>, StateStoreError> {
        match self.store.get(&self.path(key)).await {
            Ok(result) => {
                let etag = result.meta.e_tag.clone();
                let bytes = result.bytes().await?;
                let version = match (&self.backend, etag) {
                    (Backend::Local(_), _) | (_, None) => local::content_version(&bytes),
                    (_, Some(etag)) => etag,
                };
                Ok(Some(Versioned {
                    value: bytes,
                    version: Version(version),
                }))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Writes an object: `None` creates it (fails if it exists), `Some(version)` replaces it only
    /// if it is still at that version. Returns the new version.
    pub async fn put(
        &self,
        key: &str,
        bytes: Bytes,
        expected: Option<&Version>,
    ) -> Result<Version, StateStoreError> {
        if let Backend::Local(dir) = &self.backend {
            let target = dir.join(key);
            let expected = expected.map(|v| v.0.clone());
            let key = key.to_string();
            let version = tokio::task::spawn_blocking(move || {
                local::write_if(&target, &key, &bytes, expected.as_deref())
            })
            .await
            .map_err(|e| StateStoreError::Io(e.to_string()))??;
            return Ok(Version(version));
        }
        let mode = match expected {
            None => PutMode::Create,
            Some(version) => PutMode::Update(UpdateVersion {
                e_tag: Some(version.0.clone()),
                version: None,
            }),
        };
        let options = PutOptions {
            mode,
            ..Default::default()
        };
        let result = self
            .store
            .put_opts(&self.path(key), PutPayload::from(bytes.clone()), options)
            .await
            .map_err(|e| match e {
                object_store::Error::Precondition { .. }
                | object_store::Error::AlreadyExists { .. }
                    if expected.is_none() =>
                {
                    StateStoreError::AlreadyExists(key.to_string())
                }
                object_store::Error::Precondition { .. } => {
                    StateStoreError::Conflict(key.to_string())
                }
                other => other.into(),
            })?;
        Ok(Version(
            result
                .e_tag
                .unwrap_or_else(|| local::content_version(&bytes)),
        ))
    }

    /// The sha256 (hex) and size of an object, read as a stream (an etcd backup can be
    /// gigabytes), or `None` when it does not exist.
    pub async fn sha256(&self, key: &str) -> Result<Option<(String, u64)>, StateStoreError> {
        use sha2::Digest as _;
        let result = match self.store.get(&self.path(key)).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let mut stream = result.into_stream();
        let mut hasher = sha2::Sha256::new();
        let mut size = 0u64;
        while let Some(chunk) = stream.try_next().await? {
            size += chunk.len() as u64;
            hasher.update(&chunk);
        }
        Ok(Some((format!("{:x}", hasher.finalize()), size)))
    }

    /// When an object was last written, or `None` when it does not exist.
    pub async fn modified(
        &self,
        key: &str,
    ) -> Result<Option<std::time::SystemTime>, StateStoreError> {
        match self.store.head(&self.path(key)).await {
            Ok(meta) => Ok(Some(meta.last_modified.into())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Writes an object whatever its current version (used by `replace --force`).
    pub async fn overwrite(&self, key: &str, bytes: Bytes) -> Result<Version, StateStoreError> {
        let current = self.get(key).await?;
        self.put(key, bytes, current.as_ref().map(|c| &c.version))
            .await
    }

    /// Deletes an object; deleting what is not there is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), StateStoreError> {
        match self.store.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Every key under `prefix`, relative to the store's root.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, StateStoreError> {
        let base = self.path(prefix);
        let root = self.prefix.as_ref().len();
        let mut keys: Vec<String> = self
            .store
            .list(Some(&base))
            .map_ok(|meta| {
                meta.location.as_ref()[root..]
                    .trim_start_matches('/')
                    .to_string()
            })
            .try_collect()
            .await?;
        // A crashed writer's leftovers (guards, temporary files) are not objects.
        keys.retain(|key| !local::is_internal(key.rsplit('/').next().unwrap_or(key)));
        keys.sort();
        Ok(keys)
    }

    /// Top-level folders that can be clusters (their names are DNS names, so they hold a dot).
    async fn cluster_folders(&self) -> Result<Vec<String>, StateStoreError> {
        let listing = self
            .store
            .list_with_delimiter(if self.prefix.as_ref().is_empty() {
                None
            } else {
                Some(&self.prefix)
            })
            .await?;
        Ok(listing
            .common_prefixes
            .iter()
            .filter_map(|folder| folder.filename().map(str::to_string))
            .filter(|name| name.contains('.') && !name.starts_with('.'))
            .collect())
    }

    /// Every cluster's user spec, sorted by name: one listing and one read per cluster, all
    /// reads at once (what `get clusters` needs; no instance groups). A cluster whose spec
    /// does not decode is in the list with its error, so one broken spec hides no other.
    pub async fn read_all_clusters(
        &self,
    ) -> Result<Vec<(String, Decoded<Cluster>)>, StateStoreError> {
        let names = self.cluster_folders().await?;
        let reads = futures::future::try_join_all(
            names
                .iter()
                .map(|name| self.read_cluster_or_undecodable(name)),
        )
        .await?;
        let mut clusters: Vec<(String, Decoded<Cluster>)> = names
            .into_iter()
            .zip(reads)
            .filter_map(|(name, read)| Some((name, read?)))
            .collect();
        clusters.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(clusters)
    }

    /// The names of the clusters in the store (folders with a `config`).
    pub async fn list_clusters(&self) -> Result<Vec<String>, StateStoreError> {
        let names = self.cluster_folders().await?;
        // A folder is a cluster when it holds a config; check them concurrently.
        let config_paths: Vec<Path> = names
            .iter()
            .map(|name| self.path(&format!("{name}/{}", layout::CONFIG)))
            .collect();
        let checks = config_paths.iter().map(|path| self.store.head(path));
        let found = futures::future::join_all(checks).await;
        let mut clusters: Vec<String> = names
            .into_iter()
            .zip(found)
            .filter(|(_, head)| head.is_ok())
            .map(|(n, _)| n)
            .collect();
        clusters.sort();
        Ok(clusters)
    }

    fn decode<T>(
        &self,
        key: &str,
        bytes: &[u8],
        pick: impl Fn(Document) -> Option<T>,
    ) -> Result<T, StateStoreError> {
        let text = std::str::from_utf8(bytes).map_err(|e| StateStoreError::Corrupt {
            key: key.into(),
            reason: e.to_string(),
        })?;
        let decoded = decode_documents_with(text, key, self.validation).map_err(|errors| {
            StateStoreError::Corrupt {
                key: key.into(),
                reason: errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            }
        })?;
        if let Some(report) = &self.dropped {
            decoded.dropped.iter().for_each(|d| report(d));
        }
        decoded
            .documents
            .into_iter()
            .find_map(pick)
            .ok_or_else(|| StateStoreError::Corrupt {
                key: key.into(),
                reason: "no document of the expected kind".into(),
            })
    }

    /// Reads a cluster's user spec.
    pub async fn read_cluster(
        &self,
        name: &str,
    ) -> Result<Option<Versioned<Cluster>>, StateStoreError> {
        match self.read_cluster_or_undecodable(name).await? {
            None => Ok(None),
            Some(Ok(cluster)) => Ok(Some(cluster)),
            Some(Err(undecodable)) => Err(undecodable.error),
        }
    }

    /// Reads a cluster's user spec; one that does not decode is returned with its version
    /// and error rather than failing the read (`replace` writes over it, `get clusters`
    /// lists the others).
    pub async fn read_cluster_or_undecodable(
        &self,
        name: &str,
    ) -> Result<Option<Decoded<Cluster>>, StateStoreError> {
        let key = format!("{name}/{}", layout::CONFIG);
        let Some(object) = self.get(&key).await? else {
            return Ok(None);
        };
        let decoded = self.decode(&key, &object.value, |d| match d {
            Document::Cluster(c) => Some(*c),
            _ => None,
        });
        Ok(Some(versioned(decoded, object.version)))
    }

    /// Reads every instance group of a cluster, sorted by name.
    pub async fn read_instance_groups(
        &self,
        cluster: &str,
    ) -> Result<Vec<Versioned<InstanceGroup>>, StateStoreError> {
        self.read_instance_groups_or_undecodable(cluster)
            .await?
            .into_iter()
            .map(|(_, group)| group.map_err(|u| u.error))
            .collect()
    }

    /// Reads every instance group of a cluster, sorted by name (the name in its key), each
    /// decoded or with why it does not decode.
    pub async fn read_instance_groups_or_undecodable(
        &self,
        cluster: &str,
    ) -> Result<Vec<(String, Decoded<InstanceGroup>)>, StateStoreError> {
        let keys = self
            .list(&format!("{cluster}/{}", layout::INSTANCE_GROUPS))
            .await?;
        let objects = futures::future::try_join_all(keys.iter().map(|key| self.get(key))).await?;
        let mut groups = Vec::new();
        for (key, object) in keys.iter().zip(objects) {
            let Some(object) = object else { continue };
            let group = self.decode(key, &object.value, |d| match d {
                Document::InstanceGroup(g) => Some(*g),
                _ => None,
            });
            let name = key.rsplit('/').next().unwrap_or_default().to_string();
            groups.push((name, versioned(group, object.version)));
        }
        let name = |(key, group): &(String, Decoded<InstanceGroup>)| match group {
            Ok(g) => g.value.metadata.name.clone(),
            Err(_) => key.clone(),
        };
        groups.sort_by_key(name);
        Ok(groups)
    }

    /// Writes a cluster's user spec, conditionally on `expected` (`None`: must be new).
    pub async fn write_cluster(
        &self,
        cluster: &Cluster,
        expected: Option<&Version>,
    ) -> Result<Version, StateStoreError> {
        let key = format!("{}/{}", cluster.metadata.name, layout::CONFIG);
        let text = encode_documents(
            &[Document::Cluster(Box::new(cluster.clone()))],
            OutputFormat::Yaml,
        );
        self.put(&key, Bytes::from(text), expected).await
    }

    /// Writes an instance group, conditionally on `expected` (`None`: must be new).
    pub async fn write_instance_group(
        &self,
        cluster: &str,
        group: &InstanceGroup,
        expected: Option<&Version>,
    ) -> Result<Version, StateStoreError> {
        let key = format!(
            "{cluster}/{}/{}",
            layout::INSTANCE_GROUPS,
            group.metadata.name
        );
        let text = encode_documents(
            &[Document::InstanceGroup(Box::new(group.clone()))],
            OutputFormat::Yaml,
        );
        self.put(&key, Bytes::from(text), expected).await
    }

    /// Removes everything stored for a cluster.
    pub async fn delete_cluster(&self, cluster: &str) -> Result<usize, StateStoreError> {
        let keys = self.list(cluster).await?;
        // The config goes last, so an interrupted delete still lists the cluster.
        let config = format!("{cluster}/{}", layout::CONFIG);
        for key in keys.iter().filter(|k| **k != config) {
            self.delete(key).await?;
        }
        self.delete(&config).await?;
        Ok(keys.len())
    }
}

/// A decoded value with its version, or why it did not decode with its version.
fn versioned<T>(decoded: Result<T, StateStoreError>, version: Version) -> Decoded<T> {
    match decoded {
        Ok(value) => Ok(Versioned { value, version }),
        Err(error) => Err(Undecodable { version, error }),
    }
}
