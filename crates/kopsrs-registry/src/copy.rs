//! Byte-exact image copies between registries on oci-client: manifests and indexes are pushed
//! as the bytes pulled, blobs are streamed from source to destination through a digest check.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::manifest::{
    IMAGE_MANIFEST_LIST_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE,
    OCI_IMAGE_MEDIA_TYPE,
};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde_json::Value;

use crate::error::{classify, is_manifest_blob_unknown, is_not_found, Context, RegistryError};
use crate::verify::{verify_digest, Mismatch, VerifyingStream};

/// The manifest media types asked for and copied.
const MANIFEST_TYPES: &[&str] = &[
    OCI_IMAGE_INDEX_MEDIA_TYPE,
    IMAGE_MANIFEST_LIST_MEDIA_TYPE,
    OCI_IMAGE_MEDIA_TYPE,
    IMAGE_MANIFEST_MEDIA_TYPE,
];

/// An image platform, as an image index lists it (`linux/amd64`: os `linux`, architecture
/// `amd64`). Variants (`arm/v7`) are not compared.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Platform {
    /// The operating system (`linux`).
    pub os: String,
    /// The CPU architecture (`amd64`, `arm64`).
    pub architecture: String,
}

impl Platform {
    /// `os/architecture`, e.g. `Platform::new("linux", "amd64")`.
    pub fn new(os: &str, architecture: &str) -> Platform {
        Platform {
            os: os.to_string(),
            architecture: architecture.to_string(),
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)
    }
}

/// What a copy did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyReport {
    /// The digest of the manifest (or image index) copied: the same at the source and the
    /// destination.
    pub digest: String,
    /// Manifests pushed: the index (if any) and every image manifest under it.
    pub manifests: usize,
    /// Blobs (configs and layers) uploaded to, or mounted at, the destination.
    pub blobs_copied: usize,
    /// Blobs the destination already had (found by HEAD), not transferred.
    pub blobs_skipped: usize,
    /// Bytes of blobs transferred (mounted and skipped blobs count nothing).
    pub bytes: u64,
    /// True when a platform filter was given but the destination refused the index without its
    /// other children (Distribution 2.8 answers `MANIFEST_BLOB_UNKNOWN`), so every child was
    /// copied to keep the index byte-exact.
    pub unfiltered: bool,
}

/// Copies images between OCI/Docker registries, byte-exact (the destination serves the same
/// digests as the source).
///
/// Where a copy may talk plain HTTP: registries on loopback (127.0.0.1, localhost, [::1]) only;
/// everything else HTTPS. Access is anonymous, with the registry token dance that public
/// registries (registry.k8s.io, quay.io, Docker Hub) ask for done by oci-client.
///
/// Memory: blobs are streamed from the source's GET into the destination's monolithic PUT
/// (oci-client's `pull_blob_stream` and `push_blob_stream`), never held whole; manifests are held
/// whole (they are small). Blobs are copied one after the other.
#[derive(Clone)]
pub struct Copier {
    /// For registries elsewhere than on loopback: HTTPS only.
    https: Client,
    /// For loopback registries: plain HTTP.
    http: Client,
}

impl Default for Copier {
    fn default() -> Self {
        Copier::new()
    }
}

fn client(protocol: ClientProtocol) -> Client {
    Client::new(ClientConfig {
        protocol,
        // One PUT with the whole blob streamed (the size is known from the descriptor), not a
        // series of PATCHes each a round trip.
        use_monolithic_push: true,
        // Indexes are walked here, never resolved to one platform by the client.
        platform_resolver: None,
        connect_timeout: Some(Duration::from_secs(30)),
        read_timeout: Some(Duration::from_secs(300)),
        user_agent: concat!("kopsrs/", env!("CARGO_PKG_VERSION")),
        ..ClientConfig::default()
    })
}

/// Whether `registry` (`host[:port]`) is on loopback: `localhost`, 127.0.0.0/8, `[::1]`.
fn is_loopback(registry: &str) -> bool {
    let host = if let Some(rest) = registry.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        registry
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or(registry)
    };
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn parse(reference: &str) -> Result<Reference, RegistryError> {
    reference
        .parse::<Reference>()
        .map_err(|e| RegistryError::InvalidReference {
            reference: reference.to_string(),
            reason: e.to_string(),
        })
}

/// The kind of a manifest, from its `mediaType` or, when absent (allowed for OCI), its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Index,
    Image,
}

fn kind_of(doc: &Value) -> Result<(Kind, String), String> {
    if doc.get("schemaVersion").and_then(Value::as_i64) != Some(2) {
        return Err(format!(
            "manifest schema version {} (Docker schema 1 or not a manifest)",
            doc.get("schemaVersion")
                .map(Value::to_string)
                .unwrap_or_else(|| "missing".into())
        ));
    }
    match doc.get("mediaType").and_then(Value::as_str) {
        Some(t) if t == OCI_IMAGE_INDEX_MEDIA_TYPE || t == IMAGE_MANIFEST_LIST_MEDIA_TYPE => {
            Ok((Kind::Index, t.to_string()))
        }
        Some(t) if t == OCI_IMAGE_MEDIA_TYPE || t == IMAGE_MANIFEST_MEDIA_TYPE => {
            Ok((Kind::Image, t.to_string()))
        }
        Some(t) => Err(format!("manifest media type {t}")),
        None if doc.get("manifests").is_some() => {
            Ok((Kind::Index, OCI_IMAGE_INDEX_MEDIA_TYPE.into()))
        }
        None if doc.get("config").is_some() => Ok((Kind::Image, OCI_IMAGE_MEDIA_TYPE.into())),
        None => Err("a JSON document with neither manifests nor config".into()),
    }
}

/// A descriptor of a manifest: what the copy needs of it.
#[derive(Debug, Clone)]
struct Descriptor {
    digest: String,
    size: Option<u64>,
    media_type: String,
    platform: Option<Platform>,
}

fn descriptor(v: &Value) -> Option<Descriptor> {
    Some(Descriptor {
        digest: v.get("digest")?.as_str()?.to_string(),
        size: v.get("size").and_then(Value::as_u64),
        media_type: v
            .get("mediaType")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        platform: v.get("platform").and_then(|p| {
            Some(Platform::new(
                p.get("os")?.as_str()?,
                p.get("architecture")?.as_str()?,
            ))
        }),
    })
}

/// Layers a registry need not hold (Windows base layers): pulled from their `urls`, not copied.
fn is_foreign(media_type: &str) -> bool {
    media_type.contains("foreign") || media_type.contains("nondistributable")
}

impl Copier {
    /// A copier with its own HTTP clients (connect timeout 30 s, read timeout 5 min).
    pub fn new() -> Copier {
        Copier {
            https: client(ClientProtocol::Https),
            http: client(ClientProtocol::Http),
        }
    }

    fn client_for(&self, reference: &Reference) -> &Client {
        if is_loopback(reference.resolve_registry()) {
            &self.http
        } else {
            &self.https
        }
    }

    async fn prepare(&self, reference: &Reference) -> &Client {
        let client = self.client_for(reference);
        client
            .store_auth_if_needed(reference.resolve_registry(), &RegistryAuth::Anonymous)
            .await;
        client
    }

    /// The digest of what `reference` points at now (HEAD/GET of the manifest), or None when the
    /// registry says it is not there.
    pub async fn digest(&self, reference: &str) -> Result<Option<String>, RegistryError> {
        let r = parse(reference)?;
        let client = self.prepare(&r).await;
        match client
            .fetch_manifest_digest(&r, &RegistryAuth::Anonymous)
            .await
        {
            Ok(d) => Ok(Some(d)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(classify(
                e,
                Context {
                    reference,
                    registry: r.registry(),
                    operation: "HEAD manifest".into(),
                },
            )),
        }
    }

    /// Copies `source` (e.g. `registry.k8s.io/pause:3.10.1`,
    /// `quay.io/cilium/cilium:v1.18.2@sha256:...`, `127.0.0.1:5001/x/y:tag`, docker-hub short names
    /// like `nginx:1.27` meaning docker.io/library/nginx) to `destination` (a full reference with
    /// registry, repository and tag; a destination with a digest is pushed by digest, which must
    /// be the source's; one with neither means `:latest`). The copy is byte-exact: the manifest
    /// (or image index) digest at the destination equals the source's, checked at the end.
    ///
    /// For an image index (multi-arch), every child manifest it lists is copied with its blobs,
    /// then the index itself. With a non-empty `platforms`, only the children of those platforms
    /// are copied first and the index's original bytes are pushed; a registry that refuses an
    /// index whose children are missing (Distribution 2.8 does, with `MANIFEST_BLOB_UNKNOWN`)
    /// then gets the other children too and the index again, and the report says
    /// `unfiltered`: the index stays byte-exact rather than filtered.
    ///
    /// Blobs already present at the destination are skipped (HEAD); blobs of another repository
    /// of the same registry are mounted. Every blob pulled is checked against its digest while it
    /// streams to the destination; on a mismatch the upload is aborted (the registry never
    /// commits it) and the error names the blob.
    pub async fn copy(
        &self,
        source: &str,
        destination: &str,
        platforms: &[Platform],
    ) -> Result<CopyReport, RegistryError> {
        let src = parse(source)?;
        let dst = parse(destination)?;
        let src_client = self.prepare(&src).await;
        let dst_client = self.prepare(&dst).await;
        let (body, digest) = src_client
            .pull_manifest_raw(&src, &RegistryAuth::Anonymous, MANIFEST_TYPES)
            .await
            .map_err(|e| {
                classify(
                    e,
                    Context {
                        reference: source,
                        registry: src.registry(),
                        operation: "pull manifest".into(),
                    },
                )
            })?;
        if let Some(wanted) = dst.digest() {
            if wanted != digest {
                return Err(RegistryError::DigestMismatch {
                    reference: destination.to_string(),
                    registry: src.registry().to_string(),
                    what: format!("the manifest of {source} (the digest the destination names)"),
                    expected: wanted.to_string(),
                    actual: digest,
                });
            }
        }
        // Push by tag when the destination has one, else by digest.
        let target = match dst.tag() {
            Some(tag) => {
                Reference::with_tag(dst.registry().into(), dst.repository().into(), tag.into())
            }
            None => dst.clone_with_digest(digest.clone()),
        };
        let mut run = Run {
            source,
            destination,
            src: &src,
            dst: &dst,
            src_client,
            dst_client,
            platforms,
            report: CopyReport {
                digest: digest.clone(),
                ..CopyReport::default()
            },
        };
        run.copy_manifest(body, digest.clone(), target.clone())
            .await?;
        let report = run.report;

        // Byte-exact: the destination must now serve the source's digest.
        match self.digest(&target.whole()).await? {
            Some(d) if d == digest => Ok(report),
            other => Err(RegistryError::DigestMismatch {
                reference: destination.to_string(),
                registry: dst.registry().to_string(),
                what: "the manifest pushed".into(),
                expected: digest,
                actual: other.unwrap_or_else(|| "nothing (not found after the push)".into()),
            }),
        }
    }
}

/// One copy's state: the two sides and the report so far.
struct Run<'a> {
    source: &'a str,
    destination: &'a str,
    src: &'a Reference,
    dst: &'a Reference,
    src_client: &'a Client,
    dst_client: &'a Client,
    platforms: &'a [Platform],
    report: CopyReport,
}

impl Run<'_> {
    fn src_err(
        &self,
        operation: String,
    ) -> impl FnOnce(OciDistributionError) -> RegistryError + '_ {
        move |e| {
            classify(
                e,
                Context {
                    reference: self.source,
                    registry: self.src.registry(),
                    operation,
                },
            )
        }
    }

    fn dst_err(
        &self,
        operation: String,
    ) -> impl FnOnce(OciDistributionError) -> RegistryError + '_ {
        move |e| {
            classify(
                e,
                Context {
                    reference: self.destination,
                    registry: self.dst.registry(),
                    operation,
                },
            )
        }
    }

    fn unsupported(&self, detail: String) -> RegistryError {
        RegistryError::Unsupported {
            reference: self.source.to_string(),
            registry: self.src.registry().to_string(),
            detail,
        }
    }

    /// Copies the manifest `body` (digest `digest`, checked by oci-client on the pull) and what it
    /// references, then pushes `body` to `target`.
    fn copy_manifest(
        &mut self,
        body: Bytes,
        digest: String,
        target: Reference,
    ) -> futures::future::BoxFuture<'_, Result<(), RegistryError>> {
        Box::pin(async move {
            let doc: Value = serde_json::from_slice(&body)
                .map_err(|e| self.unsupported(format!("manifest {digest} is not JSON: {e}")))?;
            let (kind, media_type) =
                kind_of(&doc).map_err(|e| self.unsupported(format!("manifest {digest}: {e}")))?;
            match kind {
                Kind::Index => {
                    let children: Vec<Descriptor> = doc
                        .get("manifests")
                        .and_then(Value::as_array)
                        .map(|a| a.iter().filter_map(descriptor).collect())
                        .unwrap_or_default();
                    let (wanted, others): (Vec<_>, Vec<_>) = children.into_iter().partition(|c| {
                        self.platforms.is_empty()
                            || c.platform
                                .as_ref()
                                .is_some_and(|p| self.platforms.contains(p))
                    });
                    if wanted.is_empty() {
                        let listed = self
                            .platforms
                            .iter()
                            .map(Platform::to_string)
                            .collect::<Vec<_>>();
                        return Err(RegistryError::NotFound {
                            reference: self.source.to_string(),
                            registry: self.src.registry().to_string(),
                            what: format!(
                                "no manifest in index {digest} for {}",
                                listed.join(", ")
                            ),
                        });
                    }
                    for child in &wanted {
                        self.copy_child(child).await?;
                    }
                    match self.push_manifest(&target, &body, &media_type).await {
                        Ok(()) => {}
                        Err(e) if is_manifest_blob_unknown(&e) && !others.is_empty() => {
                            self.report.unfiltered = true;
                            for child in &others {
                                self.copy_child(child).await?;
                            }
                            self.push_manifest(&target, &body, &media_type)
                                .await
                                .map_err(self.dst_err(format!("push index {digest}")))?;
                        }
                        Err(e) => return Err(self.dst_err(format!("push index {digest}"))(e)),
                    }
                }
                Kind::Image => {
                    let mut blobs: Vec<Descriptor> = Vec::new();
                    if let Some(config) = doc.get("config").and_then(descriptor) {
                        blobs.push(config);
                    }
                    if let Some(layers) = doc.get("layers").and_then(Value::as_array) {
                        blobs.extend(layers.iter().filter_map(descriptor));
                    }
                    for blob in blobs.iter().filter(|b| !is_foreign(&b.media_type)) {
                        self.copy_blob(blob).await?;
                    }
                    self.push_manifest(&target, &body, &media_type)
                        .await
                        .map_err(self.dst_err(format!("push manifest {digest}")))?;
                }
            }
            self.report.manifests += 1;
            Ok(())
        })
    }

    /// Pulls the index's child `child` by digest and copies it under its digest.
    async fn copy_child(&mut self, child: &Descriptor) -> Result<(), RegistryError> {
        let src = self.src.clone_with_digest(child.digest.clone());
        let (body, digest) = self
            .src_client
            .pull_manifest_raw(&src, &RegistryAuth::Anonymous, MANIFEST_TYPES)
            .await
            .map_err(self.src_err(format!("pull manifest {}", child.digest)))?;
        if let Some(size) = child.size {
            if size != body.len() as u64 {
                return Err(RegistryError::DigestMismatch {
                    reference: self.source.to_string(),
                    registry: self.src.registry().to_string(),
                    what: format!(
                        "manifest {} (size {} listed, {} served)",
                        child.digest,
                        size,
                        body.len()
                    ),
                    expected: child.digest.clone(),
                    actual: digest,
                });
            }
        }
        let target = self.dst.clone_with_digest(child.digest.clone());
        self.copy_manifest(body, digest, target).await
    }

    async fn push_manifest(
        &self,
        target: &Reference,
        body: &Bytes,
        media_type: &str,
    ) -> Result<(), OciDistributionError> {
        let content_type = media_type.parse().map_err(|_| {
            OciDistributionError::GenericError(Some(format!("media type {media_type}")))
        })?;
        self.dst_client
            .push_manifest_raw(target, body.clone(), content_type)
            .await
            .map(|_| ())
    }

    /// Copies one blob unless the destination has it: mounted from the source repository when
    /// both are on the same registry, else streamed through the digest check.
    async fn copy_blob(&mut self, blob: &Descriptor) -> Result<(), RegistryError> {
        let digest = blob.digest.as_str();
        let exists = self
            .dst_client
            .blob_exists(self.dst, digest)
            .await
            .map_err(self.dst_err(format!("HEAD blob {digest}")))?;
        if exists {
            self.report.blobs_skipped += 1;
            return Ok(());
        }
        let same_registry = self.src.resolve_registry() == self.dst.resolve_registry()
            && self.src.repository() != self.dst.repository();
        if same_registry
            && self
                .dst_client
                .mount_blob(self.dst, self.src, digest)
                .await
                .is_ok()
        {
            self.report.blobs_copied += 1;
            return Ok(());
        }
        let pulled = self
            .src_client
            .pull_blob_stream(self.src, digest)
            .await
            .map_err(self.src_err(format!("pull blob {digest}")))?;
        let size = blob.size.or(pulled.content_length);
        let mismatch: Arc<Mutex<Option<Mismatch>>> = Arc::default();
        let bytes: Arc<Mutex<u64>> = Arc::default();
        let stream =
            VerifyingStream::new(pulled.stream, digest, size, mismatch.clone(), bytes.clone())
                .map_err(OciDistributionError::IoError)
                .boxed();
        let pushed = match size {
            Some(size) => {
                self.dst_client
                    .push_blob_stream(self.dst, stream, digest, Some(size))
                    .await
            }
            None => {
                // No size to announce: the blob is read whole, checked, then pushed.
                let data: Vec<Bytes> = stream
                    .try_collect()
                    .await
                    .map_err(self.src_err(format!("pull blob {digest}")))?;
                let data = data.concat();
                if let Err(actual) = verify_digest(digest, &data) {
                    return Err(self.blob_mismatch(digest, actual));
                }
                self.dst_client.push_blob(self.dst, data, digest).await
            }
        };
        let recorded = mismatch.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(m) = recorded {
            return Err(self.blob_mismatch(digest, format!("{} ({} bytes)", m.actual, m.size)));
        }
        pushed.map_err(self.dst_err(format!("push blob {digest}")))?;
        self.report.blobs_copied += 1;
        self.report.bytes += *bytes.lock().unwrap_or_else(|e| e.into_inner());
        Ok(())
    }

    fn blob_mismatch(&self, digest: &str, actual: String) -> RegistryError {
        RegistryError::DigestMismatch {
            reference: self.source.to_string(),
            registry: self.src.registry().to_string(),
            what: format!("blob {digest}"),
            expected: digest.to_string(),
            actual,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_registries_are_plain_http() {
        for r in [
            "127.0.0.1:5001",
            "127.0.0.1",
            "localhost:5000",
            "LOCALHOST",
            "[::1]:5000",
            "127.1.2.3:80",
        ] {
            assert!(is_loopback(r), "{r}");
        }
        for r in [
            "registry.k8s.io",
            "quay.io",
            "10.0.0.1:5000",
            "192.168.1.1",
            "localhost.example.com:5000",
            "[::2]:5000",
            "index.docker.io",
        ] {
            assert!(!is_loopback(r), "{r}");
        }
    }

    #[test]
    fn manifest_kinds_come_from_the_media_type_or_the_fields() {
        let k = |s: &str| kind_of(&serde_json::from_str(s).unwrap()).map(|(k, _)| k);
        assert_eq!(
            k(
                r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#
            ),
            Ok(Kind::Index)
        );
        assert_eq!(
            k(
                r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[]}"#
            ),
            Ok(Kind::Index)
        );
        assert_eq!(
            k(
                r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{}}"#
            ),
            Ok(Kind::Image)
        );
        assert_eq!(k(r#"{"schemaVersion":2,"manifests":[]}"#), Ok(Kind::Index));
        assert_eq!(
            k(r#"{"schemaVersion":2,"config":{},"layers":[]}"#),
            Ok(Kind::Image)
        );
        assert!(k(r#"{"schemaVersion":1,"fsLayers":[]}"#).is_err());
        assert!(k(r#"{"schemaVersion":2,"mediaType":"text/plain"}"#).is_err());
    }

    #[test]
    fn descriptors_keep_digest_size_and_platform() {
        let v: Value = serde_json::from_str(
            r#"{"mediaType":"m","digest":"sha256:ab","size":12,"platform":{"os":"linux","architecture":"arm64","variant":"v8"}}"#,
        )
        .unwrap();
        let d = descriptor(&v).unwrap();
        assert_eq!(d.digest, "sha256:ab");
        assert_eq!(d.size, Some(12));
        assert_eq!(d.platform, Some(Platform::new("linux", "arm64")));
        assert!(descriptor(&serde_json::json!({"size": 1})).is_none());
    }

    #[test]
    fn malformed_references_are_named() {
        let e = parse("Not A Reference").unwrap_err();
        assert!(e.to_string().contains("\"Not A Reference\""), "{e}");
    }
}
