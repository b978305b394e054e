//! `get assets`: every file a cluster's nodes download and every container image they run,
//! from the spec (no cloud access), and `--copy` of them to the mirrors `spec.assets` names,
//! which nodes then use (kopsrs-bootstrap's `assets` rules; docs/air-gapped.md).
//!
//! Files: the Kubernetes APT repository of the cluster's minor (its signed index and the
//! kubeadm, kubelet and kubectl packages of the version with what they depend on in that
//! repository, for every architecture of the cluster's groups) and each addon's download.
//! A mirror keeps the repository's signature: nodes check the packages against the Kubernetes
//! project's key, whichever server they come from. Images: kubeadm's, and each addon's (a
//! manifest's read from it, a chart's from the channel).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::Result;
use kopsrs_api::{Cluster, InstanceGroup};
use kopsrs_bootstrap::assets::{self as rules, ImageAsset, Mirrors};
use kopsrs_bootstrap::channel::Addon;
use kopsrs_state::StateStore;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::problems::Problems;
use crate::session::{self as context, Session};

/// One file nodes download.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileAsset {
    /// Where it comes from upstream.
    pub url: String,
    /// Where nodes download it: the file repository's copy, or `url`.
    pub mirror: String,
    /// Its sha256 when known (a pin, the repository's signed index, or a download).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// What needs it: `packages`, or an addon's name.
    pub used_by: String,
}

/// Something `get assets` could not list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Gap {
    /// Whether files or images are missing from the list.
    pub of: GapKind,
    /// What and why.
    pub reason: String,
}

/// What a [`Gap`] lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GapKind {
    /// Files (packages).
    Files,
    /// Images.
    Images,
}

impl std::fmt::Display for Gap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

/// A cluster's assets.
#[derive(Debug, Clone, Serialize)]
pub struct Assets {
    /// The cluster's name.
    pub cluster: String,
    /// Its Kubernetes version.
    pub kubernetes_version: String,
    /// The files, packages first.
    pub files: Vec<FileAsset>,
    /// The images, kubeadm's first.
    pub images: Vec<ImageAsset>,
    /// What could not be listed, and why: the list is complete only when this is empty.
    pub incomplete: Vec<Gap>,
    /// The mirrors, as the spec names them.
    #[serde(skip)]
    pub mirrors: Mirrors,
    /// The architectures of the cluster's groups (`amd64`, `arm64`).
    pub architectures: Vec<String>,
}

/// `spec.assets` of `cluster`, checked; a bad value names the field and the fix.
pub fn mirrors(cluster: &Cluster) -> Result<Mirrors> {
    let assets = cluster.spec.assets.as_ref();
    Mirrors::from_spec(
        assets.and_then(|a| a.file_repository.as_deref()),
        assets.and_then(|a| a.container_registry.as_deref()),
        assets.and_then(|a| a.container_proxy.as_deref()),
    )
    .map_err(|e| {
        Problems::one(
            format!(
                "Cluster {}: spec.assets.{}: {:?} {}",
                cluster.metadata.name, e.field, e.value, e.why
            ),
            e.fix,
        )
        .into()
    })
}

/// Lowercase hex sha256 of `bytes`.
pub fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The largest file `get assets` reads whole (packages are tens of MB).
const MAX_FILE: usize = 512 * 1024 * 1024;

/// Downloads `url` (`http(s)://` or `file://`), whole.
async fn fetch(url: &str) -> std::result::Result<bytes::Bytes, String> {
    if let Some(path) = url.strip_prefix("file://") {
        return tokio::fs::read(path)
            .await
            .map(Into::into)
            .map_err(|e| format!("cannot read {path}: {e}"));
    }
    let fetched = async {
        let mut response = crate::addons::client()?
            .get(url)
            .send()
            .await?
            .error_for_status()?;
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_FILE {
                return Ok(Err(format!("over {} MB", MAX_FILE >> 20)));
            }
        }
        Ok::<_, reqwest::Error>(Ok(bytes::Bytes::from(body)))
    }
    .await;
    match fetched {
        Ok(Ok(body)) => Ok(body),
        Ok(Err(why)) => Err(format!("{url}: {why}")),
        Err(e) => Err(format!("{url}: {}", crate::addons::plain(&e))),
    }
}

/// The Debian architecture of every group (workers too: they install the packages).
fn architectures(groups: &[InstanceGroup]) -> Vec<String> {
    let mut archs: BTreeSet<String> = groups
        .iter()
        .filter(|g| g.role() != Some(kopsrs_api::Role::Bastion))
        .map(|g| {
            match kopsrs_api::versions::architecture(g.spec.machine_type.as_deref().unwrap_or("")) {
                kopsrs_api::versions::Architecture::Amd64 => "amd64",
                kopsrs_api::versions::Architecture::Arm64 => "arm64",
            }
            .to_string()
        })
        .collect();
    if archs.is_empty() {
        archs.insert("amd64".into());
    }
    archs.into_iter().collect()
}

/// Where the Kubernetes packages come from: the upstream repository, or (tests, and a
/// private upstream mirror) `KOPSRS_K8S_APT_REPO`, as on nodes.
fn apt_upstream(session: &Session, minor: &str) -> String {
    session
        .settings
        .k8s_apt_repo
        .as_ref()
        .map(|v| v.trim_end_matches('/').to_string())
        .unwrap_or_else(|| rules::upstream_apt_repo(minor))
}

/// Lists the assets of cluster `name` from its spec. `download`: read the package index and
/// the addons' manifests (and check pins) to list exact files and images; without it, only
/// what the spec and the channel say.
pub async fn list(
    session: &Session,
    store: &StateStore,
    name: Option<&str>,
    download: bool,
) -> Result<Assets> {
    let name = context::cluster_name(session, name)?;
    let prepared = crate::cluster::prepare(store, &name, session, false).await?;
    let cluster = &prepared.cluster;
    let mirrors = mirrors(cluster)?;
    let version = cluster
        .spec
        .kubernetes_version
        .clone()
        .unwrap_or_default()
        .trim_start_matches('v')
        .to_string();
    let (major, minor_number, _) = kopsrs_bootstrap::parse_version(&version).unwrap_or_default();
    let minor = format!("{major}.{minor_number}");
    let archs = architectures(&prepared.groups);
    let mut incomplete = Vec::new();
    let mut files = Vec::new();

    // The packages.
    let upstream = apt_upstream(session, &minor);
    let mirror_of = |url: &str| match &mirrors.file_repository {
        // The repository's own path under the mirror, whatever upstream serves it.
        Some(_) => mirrors.file_url(&format!(
            "{}{}",
            rules::upstream_apt_repo(&minor),
            &url[upstream.len()..]
        )),
        None => url.to_string(),
    };
    let packages = if download {
        match apt_files(&upstream, &version, &archs).await {
            Ok(found) => found,
            Err(why) => {
                incomplete.push(Gap { of: GapKind::Files, reason: format!(
                    "packages: the repository's index {upstream} could not be read ({why}); the package files are not listed"
                ) });
                apt_index_only(&upstream)
            }
        }
    } else {
        incomplete.push(Gap { of: GapKind::Files, reason: format!(
            "packages: kubeadm, kubelet and kubectl {version} are in {upstream}; their exact files need its index (run without --offline)"
        ) });
        apt_index_only(&upstream)
    };
    for (url, sha256) in packages {
        files.push(FileAsset {
            mirror: mirror_of(&url),
            url,
            sha256,
            used_by: "packages".into(),
        });
    }

    // The addons.
    let channel = crate::addons::channel(cluster.spec.channel.as_deref()).await?;
    let mut selected = channel.select(&version, kopsrs_model::cni(&cluster.spec))?;
    // The optional addons the spec turns on, with its values (their images).
    crate::addons::optional(
        &mut selected,
        &prepared.set.optional_addons,
        cluster.spec.channel.as_deref(),
    )?;
    let cp_archs = crate::addons::control_plane_archs(&prepared.groups);
    let options = crate::addons::PinOptions {
        download,
        require_pinned: false,
    };
    let published = published_addons(store, &name).await;
    let mut images: Vec<ImageAsset> = rules::kubeadm_images(
        &version,
        cluster
            .spec
            .kube_proxy
            .as_ref()
            .and_then(|k| k.enabled)
            .is_none_or(|e| e),
        &mirrors,
    );
    for addon in selected.addons {
        // The published copy names the mirror's URL: the same download.
        let before = published
            .iter()
            .find(|p| {
                (&p.name, &p.version) == (&addon.name, &addon.version)
                    && (p.url == addon.url || p.url == mirrors.file_url(&addon.url))
            })
            .map(|p| Addon {
                url: addon.url.clone(),
                ..p.clone()
            });
        let (pinned, _, _) =
            crate::addons::pin_addon(addon.clone(), before, &cp_archs, options).await;
        for d in pinned.downloads(&cp_archs) {
            files.push(FileAsset {
                mirror: mirrors.file_url(&d.url),
                url: d.url.clone(),
                sha256: d.sha256.clone(),
                used_by: addon.name.clone(),
            });
        }
        for image in addon_images(&pinned, &cp_archs, download, &mut incomplete).await {
            images.push(ImageAsset {
                mirror: mirrors.image(&image),
                image,
                used_by: addon.name.clone(),
            });
        }
        // A chart's image the spec chooses (the cluster autoscaler's, by minor).
        if let Some(image) = values_image(&addon) {
            images.push(ImageAsset {
                mirror: mirrors.image(&image),
                image,
                used_by: addon.name.clone(),
            });
        }
    }
    // The addons kopsrs writes: their containers' images.
    for generated in &prepared.set.generated {
        for image in object_images(&generated.objects) {
            images.push(ImageAsset {
                mirror: mirrors.image(&image),
                image,
                used_by: generated.name.to_string(),
            });
        }
    }
    if kopsrs_bootstrap::assets::control_plane_images((major, minor_number)).is_none() {
        incomplete.push(Gap { of: GapKind::Images, reason: format!(
            "kubeadm's images of Kubernetes {version}: kopsrs knows those of 1.31 to 1.34 only (`kubeadm config images list --kubernetes-version v{version}` names them)"
        ) });
    }
    let mut seen = BTreeSet::new();
    images.retain(|i| seen.insert(i.image.clone()));
    Ok(Assets {
        cluster: name,
        kubernetes_version: version,
        files,
        images,
        incomplete,
        mirrors,
        architectures: archs,
    })
}

/// `image.repository:image.tag` of a chart's values, the charts' common form.
fn values_image(addon: &Addon) -> Option<String> {
    let image = addon.values.as_ref()?.get("image")?;
    let repository = image.get("repository")?.as_str()?;
    let tag = image.get("tag")?.as_str()?;
    Some(format!("{repository}:{tag}"))
}

/// The images of the containers of `objects` (pod templates), in order, each once.
fn object_images(objects: &[serde_json::Value]) -> Vec<String> {
    let mut out = Vec::new();
    for object in objects {
        let spec = &object["spec"]["template"]["spec"];
        for list in ["initContainers", "containers"] {
            for container in spec[list].as_array().into_iter().flatten() {
                if let Some(image) = container["image"].as_str() {
                    if !out.iter().any(|i| i == image) {
                        out.push(image.to_string());
                    }
                }
            }
        }
    }
    out
}

async fn published_addons(store: &StateStore, name: &str) -> Vec<Addon> {
    let key = format!("{name}/{}", kopsrs_state::layout::ADDONS_CHANNEL);
    match store.get(&key).await {
        Ok(Some(found)) => {
            serde_yaml_ng::from_slice::<kopsrs_bootstrap::channel::Selected>(&found.value)
                .map(|s| s.addons)
                .unwrap_or_default()
        }
        _ => Vec::new(),
    }
}

/// The images an addon runs: the channel's list, else (a manifest) the images its
/// download names, checked against its pin first.
async fn addon_images(
    addon: &Addon,
    archs: &[&str],
    download: bool,
    incomplete: &mut Vec<Gap>,
) -> Vec<String> {
    if !addon.images.is_empty() || addon.kind == "helm" {
        return addon.images.clone();
    }
    let what = format!("addon {} {}", addon.name, addon.version);
    if addon.kind != "manifest" {
        incomplete.push(Gap { of: GapKind::Images, reason: format!(
            "{what}: a chart, and the channel lists no images for it; add `images:` to its channel entry (helm template renders them)"
        ) });
        return Vec::new();
    }
    if !download {
        incomplete.push(Gap {
            of: GapKind::Images,
            reason: format!(
                "{what}: its images are read from its manifest (run without --offline)"
            ),
        });
        return Vec::new();
    }
    let mut found = BTreeSet::new();
    for d in addon.downloads(archs) {
        let body = match fetch(&d.url).await {
            Ok(body) => body,
            Err(why) => {
                incomplete.push(Gap {
                    of: GapKind::Images,
                    reason: format!("{what}: its manifest could not be read ({why})"),
                });
                continue;
            }
        };
        if let Some(pin) = &d.sha256 {
            let sum = hex_sha256(&body);
            if &sum != pin {
                incomplete.push(Gap {
                    of: GapKind::Images,
                    reason: format!(
                        "{what}: {} has sha256 {sum}, not its pin {pin}: its images are not listed",
                        d.url
                    ),
                });
                continue;
            }
        }
        match manifest_images(&body) {
            Ok(images) => found.extend(images),
            Err(why) => incomplete.push(Gap {
                of: GapKind::Images,
                reason: format!("{what}: {} is not YAML: {why}", d.url),
            }),
        }
    }
    found.into_iter().collect()
}

/// Every container image a multi-document manifest's pod specs name.
pub fn manifest_images(text: &[u8]) -> std::result::Result<BTreeSet<String>, String> {
    use serde::Deserialize as _;
    fn walk(value: &serde_yaml_ng::Value, out: &mut BTreeSet<String>) {
        match value {
            serde_yaml_ng::Value::Mapping(map) => {
                for (key, value) in map {
                    let pods = matches!(
                        key.as_str(),
                        Some("containers" | "initContainers" | "ephemeralContainers")
                    );
                    if let (true, Some(list)) = (pods, value.as_sequence()) {
                        for c in list {
                            if let Some(image) = c.get("image").and_then(|i| i.as_str()) {
                                out.insert(image.to_string());
                            }
                        }
                    }
                    walk(value, out);
                }
            }
            serde_yaml_ng::Value::Sequence(list) => list.iter().for_each(|v| walk(v, out)),
            serde_yaml_ng::Value::Tagged(t) => walk(&t.value, out),
            _ => {}
        }
    }
    let text = std::str::from_utf8(text).map_err(|e| e.to_string())?;
    let mut out = BTreeSet::new();
    for doc in serde_yaml_ng::Deserializer::from_str(text) {
        let value = serde_yaml_ng::Value::deserialize(doc).map_err(|e| e.to_string())?;
        walk(&value, &mut out);
    }
    Ok(out)
}

/// The repository's index files, when the index itself cannot be read.
fn apt_index_only(repo: &str) -> Vec<(String, Option<String>)> {
    ["Release.key", "InRelease", "Release", "Release.gpg"]
        .iter()
        .map(|f| (format!("{repo}/{f}"), None))
        .collect()
}

/// One stanza of a Debian `Packages` index.
type Stanza = BTreeMap<String, String>;

fn stanzas(text: &str) -> Vec<Stanza> {
    let mut out = Vec::new();
    let mut current = Stanza::new();
    let mut last: Option<String> = None;
    for line in text.lines() {
        if line.trim().is_empty() {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            last = None;
        } else if line.starts_with([' ', '\t']) {
            if let Some(key) = &last {
                let v = current.entry(key.clone()).or_default();
                v.push('\n');
                v.push_str(line.trim());
            }
        } else if let Some((k, v)) = line.split_once(':') {
            current.insert(k.trim().to_string(), v.trim().to_string());
            last = Some(k.trim().to_string());
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// dpkg's version order, enough for the packages of one repository: epoch, then the rest
/// compared by runs of digits (as numbers) and of other characters, `~` first.
fn version_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn parts(v: &str) -> Vec<(bool, String)> {
        let mut out: Vec<(bool, String)> = Vec::new();
        for c in v.chars() {
            let digit = c.is_ascii_digit();
            match out.last_mut() {
                Some((d, s)) if *d == digit => s.push(c),
                _ => out.push((digit, c.to_string())),
            }
        }
        out
    }
    let (pa, pb) = (parts(a), parts(b));
    for (x, y) in pa.iter().zip(&pb) {
        let o = match (x.0, y.0) {
            (true, true) => {
                x.1.parse::<u64>()
                    .unwrap_or(0)
                    .cmp(&y.1.parse::<u64>().unwrap_or(0))
            }
            _ => {
                let key = |s: &str| {
                    s.chars()
                        .map(|c| if c == '~' { '\0' } else { c })
                        .collect::<String>()
                };
                key(&x.1).cmp(&key(&y.1))
            }
        };
        if o.is_ne() {
            return o;
        }
    }
    pa.len().cmp(&pb.len())
}

/// The repository's signed index (every file `Release` lists, with its sha256) and the
/// packages a node installs, with their dependencies in this repository, per architecture.
async fn apt_files(
    repo: &str,
    version: &str,
    archs: &[String],
) -> std::result::Result<Vec<(String, Option<String>)>, String> {
    let release = fetch(&format!("{repo}/Release")).await?;
    let release_text = String::from_utf8_lossy(&release).into_owned();
    let mut out = Vec::new();
    for f in ["Release.key", "InRelease", "Release.gpg"] {
        let url = format!("{repo}/{f}");
        let sum = fetch(&url).await.ok().map(|b| hex_sha256(&b));
        out.push((url, sum));
    }
    out.push((format!("{repo}/Release"), Some(hex_sha256(&release))));
    let fields = stanzas(&release_text);
    let sums = fields
        .first()
        .and_then(|f| f.get("SHA256"))
        .ok_or("Release lists no SHA256 files")?;
    let mut index = None;
    for line in sums.lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        if let [sum, _size, file] = parts[..] {
            out.push((format!("{repo}/{file}"), Some(sum.to_string())));
            if file == "Packages" {
                index = Some(sum.to_string());
            }
        }
    }
    let index_sum = index.ok_or("Release lists no plain Packages index")?;
    let packages = fetch(&format!("{repo}/Packages")).await?;
    if hex_sha256(&packages) != index_sum {
        return Err("Packages does not match the sha256 Release gives it".into());
    }
    let all = stanzas(&String::from_utf8_lossy(&packages));
    let prefix = format!("{version}-");
    for arch in archs {
        let fits = |s: &Stanza| {
            s.get("Architecture")
                .is_some_and(|a| a == arch || a == "all")
        };
        let mut wanted: Vec<(String, Option<String>)> = ["kubeadm", "kubelet", "kubectl"]
            .iter()
            .map(|p| (p.to_string(), Some(prefix.clone())))
            .collect();
        let mut done = BTreeSet::new();
        while let Some((package, version_prefix)) = wanted.pop() {
            if !done.insert(package.clone()) {
                continue;
            }
            let best = all
                .iter()
                .filter(|s| s.get("Package") == Some(&package) && fits(s))
                .filter(|s| {
                    version_prefix
                        .as_ref()
                        .is_none_or(|p| s.get("Version").is_some_and(|v| v.starts_with(p)))
                })
                .max_by(|a, b| {
                    version_cmp(
                        a.get("Version").map_or("", String::as_str),
                        b.get("Version").map_or("", String::as_str),
                    )
                });
            let Some(best) = best else {
                if version_prefix.is_some() {
                    return Err(format!(
                        "{package} {version} ({arch}) is not in the repository"
                    ));
                }
                // A dependency of the operating system's, not this repository's.
                continue;
            };
            let (Some(file), Some(sum)) = (best.get("Filename"), best.get("SHA256")) else {
                return Err(format!(
                    "{package}: its index entry has no Filename or SHA256"
                ));
            };
            out.push((format!("{repo}/{file}"), Some(sum.clone())));
            for dep in best
                .get("Depends")
                .map(String::as_str)
                .unwrap_or_default()
                .split([',', '|'])
            {
                let name = dep.split_whitespace().next().unwrap_or_default();
                if !name.is_empty()
                    && all
                        .iter()
                        .any(|s| s.get("Package").map(String::as_str) == Some(name))
                {
                    wanted.push((name.to_string(), None));
                }
            }
        }
    }
    let mut seen = BTreeSet::new();
    out.retain(|(u, _)| seen.insert(u.clone()));
    Ok(out)
}

/// Where `get assets --copy` writes files.
#[derive(Debug, Clone)]
pub enum FileDestination {
    /// A folder (`file:///srv/mirror`, or `--copy-to` a folder a web server serves).
    Folder(PathBuf),
    /// A bucket and prefix (`s3://bucket/prefix`, or an S3 website/REST URL of it).
    Bucket(String),
}

/// The file destination of a file repository URL, or of `--copy-to`.
pub fn file_destination(repository: &str) -> std::result::Result<FileDestination, String> {
    let r = repository.trim_end_matches('/');
    if let Some(path) = r.strip_prefix("file://") {
        return Ok(FileDestination::Folder(PathBuf::from(path)));
    }
    if r.starts_with('/') || r.starts_with('.') {
        return Ok(FileDestination::Folder(PathBuf::from(r)));
    }
    if let Some(rest) = r.strip_prefix("s3://") {
        return Ok(FileDestination::Bucket(format!("s3://{rest}")));
    }
    if let Some(rest) = r.strip_prefix("https://") {
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        // https://BUCKET.s3[.REGION].amazonaws.com/PREFIX, https://s3[.REGION].amazonaws.com/BUCKET/PREFIX
        // (a bucket name may hold `.s3`: the S3 label is the last one before the region).
        let aws = host
            .strip_suffix(".amazonaws.com")
            .or_else(|| host.strip_suffix(".amazonaws.com.cn"));
        if let Some(aws) = aws {
            let endpoint =
                |label: &str| label == "s3" || label.starts_with("s3.") || label.starts_with("s3-");
            if endpoint(aws) {
                return Ok(FileDestination::Bucket(format!("s3://{path}")));
            }
            if let Some((bucket, label)) = aws.rsplit_once(".s3") {
                let label = format!("s3{label}");
                if endpoint(&label) {
                    return Ok(FileDestination::Bucket(
                        format!("s3://{bucket}/{path}")
                            .trim_end_matches('/')
                            .to_string(),
                    ));
                }
            }
        }
    }
    Err(format!(
        "{repository} is not a folder or an S3 bucket kopsrs can write; copy with --copy-to FOLDER|s3://BUCKET/PREFIX (what serves it)"
    ))
}

/// What a copy did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct CopyReport {
    /// Files written.
    pub files_copied: usize,
    /// Files already there with the right content.
    pub files_present: usize,
    /// Bytes of files written.
    pub file_bytes: u64,
    /// Images copied (or already there, as their digest).
    pub images: Vec<(String, String)>,
    /// What failed, one line each.
    pub failed: Vec<String>,
}

/// What `--copy` copies.
#[derive(Debug, Clone, Default)]
pub struct CopyOptions {
    /// Where files go instead of the repository's own place (`--copy-to`).
    pub copy_to: Option<String>,
    /// Copy the files.
    pub files: bool,
    /// Copy the images.
    pub images: bool,
}

/// Copies `assets` to the mirrors `spec.assets` names: each file once its sha256 checks,
/// each image byte for byte (the digest nodes pull is upstream's). Goes on past a failure and
/// reports each; the copy is done only when `failed` is empty.
pub async fn copy(session: &Session, assets: &Assets, options: &CopyOptions) -> Result<CopyReport> {
    let reporter = &*session.reporter;
    let mirrors = &assets.mirrors;
    let mut report = CopyReport::default();
    // Every precondition before anything is copied.
    if options.files && mirrors.file_repository.is_none() {
        return Err(Problems::one(
            format!("Cluster {}: spec.assets.fileRepository is not set: there is nowhere to copy the files", assets.cluster),
            "set spec.assets.fileRepository (kopsrs edit cluster --set spec.assets.fileRepository=URL), or copy only the images (--copy=images)",
        )
        .into());
    }
    if options.images && mirrors.container_registry.is_none() {
        return Err(Problems::one(
            format!("Cluster {}: spec.assets.containerRegistry is not set: there is nowhere to copy the images", assets.cluster),
            "set spec.assets.containerRegistry (kopsrs edit cluster --set spec.assets.containerRegistry=HOST[:PORT][/PATH]), or copy only the files (--copy=files)",
        )
        .into());
    }
    if options.copy_to.is_some() && !options.files {
        return Err(Problems::one(
            "--copy-to: names where files go, and --copy=images copies none",
            "drop --copy-to, or copy the files too (--copy or --copy=files)",
        )
        .into());
    }
    if let Some(repository) = mirrors.file_repository.as_ref().filter(|_| options.files) {
        let target = options.copy_to.as_deref().unwrap_or(repository);
        let destination = file_destination(target).map_err(|why| {
            Problems::one(
                format!("spec.assets.fileRepository: {why}"),
                "give --copy-to",
            )
        })?;
        let bucket = match &destination {
            FileDestination::Bucket(url) => Some(
                StateStore::open(url, &context::store_access(&session.settings))
                    .await
                    .map_err(|e| {
                        Problems::one(
                            format!("cannot open {url}: {e}"),
                            "check the bucket and the AWS credentials",
                        )
                    })?,
            ),
            FileDestination::Folder(_) => None,
        };
        for file in &assets.files {
            let relative = file.mirror[repository.len()..]
                .trim_start_matches('/')
                .to_string();
            match copy_file(file, &destination, bucket.as_ref(), &relative).await {
                Ok(Some(bytes)) => {
                    report.files_copied += 1;
                    report.file_bytes += bytes;
                    reporter.say(&format!("copied {}", file.url));
                }
                Ok(None) => report.files_present += 1,
                Err(why) => report.failed.push(format!("{}: {why}", file.url)),
            }
        }
    }
    if options.images {
        let platforms: Vec<kopsrs_registry::Platform> = assets
            .architectures
            .iter()
            .map(|a| kopsrs_registry::Platform {
                os: "linux".into(),
                architecture: a.clone(),
            })
            .collect();
        let copier = kopsrs_registry::Copier::new();
        for image in &assets.images {
            let source = mirrors.copy_source(&image.image);
            match copier.copy(&source, &image.mirror, &platforms).await {
                Ok(done) => {
                    reporter.say(&format!("copied {source} to {}", image.mirror));
                    report.images.push((image.mirror.clone(), done.digest));
                }
                Err(e) => report.failed.push(format!("{source}: {e}")),
            }
        }
    }
    Ok(report)
}

/// Copies one file unless the destination already has it; `Some(bytes)` when written.
async fn copy_file(
    file: &FileAsset,
    destination: &FileDestination,
    bucket: Option<&StateStore>,
    relative: &str,
) -> std::result::Result<Option<u64>, String> {
    if let (Some(sum), FileDestination::Folder(dir)) = (&file.sha256, destination) {
        if let Ok(existing) = tokio::fs::read(dir.join(relative)).await {
            if &hex_sha256(&existing) == sum {
                return Ok(None);
            }
        }
    }
    if let (Some(sum), Some(store)) = (&file.sha256, bucket) {
        if let Ok(Some((existing, _))) = store.sha256(relative).await {
            if &existing == sum {
                return Ok(None);
            }
        }
    }
    let body = fetch(&file.url).await?;
    if let Some(sum) = &file.sha256 {
        let got = hex_sha256(&body);
        if &got != sum {
            return Err(format!(
                "downloaded content has sha256 {got}, not {sum}: not copied"
            ));
        }
    }
    let size = body.len() as u64;
    match destination {
        FileDestination::Folder(dir) => write_file(&dir.join(relative), &body)
            .await
            .map_err(|e| format!("writing {}: {e}", dir.join(relative).display()))?,
        FileDestination::Bucket(_) => {
            let store = bucket.expect("a bucket destination has a store");
            store
                .overwrite(relative, body)
                .await
                .map_err(|e| format!("writing {relative}: {e}"))?;
        }
    }
    Ok(Some(size))
}

/// Writes `body` to `path` through a temporary file, so a reader never sees half of it.
async fn write_file(path: &Path, body: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await?;
    }
    let tmp = path.with_extension("kopsrs-partial");
    tokio::fs::write(&tmp, body).await?;
    tokio::fs::rename(&tmp, path).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_versions_sort_as_dpkg_does() {
        use std::cmp::Ordering::*;
        assert_eq!(version_cmp("1.34.1-1.1", "1.34.10-1.1"), Less);
        assert_eq!(version_cmp("1.34.1-1.2", "1.34.1-1.1"), Greater);
        assert_eq!(version_cmp("1.34.0~rc.1-1.1", "1.34.0-1.1"), Less);
        assert_eq!(version_cmp("1.7.1-1.1", "1.7.1-1.1"), Equal);
    }

    #[test]
    fn manifest_images_come_from_pod_specs_only() {
        let text = b"kind: DaemonSet\nspec:\n  template:\n    spec:\n      initContainers:\n      - image: a/init:1\n      containers:\n      - image: a/main:1\n        env:\n        - name: image\n          value: not/an-image\n---\nkind: ConfigMap\ndata:\n  image: nope\n---\n";
        let found = manifest_images(text).unwrap();
        assert_eq!(
            found.into_iter().collect::<Vec<_>>(),
            ["a/init:1", "a/main:1"]
        );
    }

    #[test]
    fn destinations() {
        assert!(
            matches!(file_destination("file:///srv/m"), Ok(FileDestination::Folder(p)) if p == Path::new("/srv/m"))
        );
        assert!(
            matches!(file_destination("https://b.s3.us-east-1.amazonaws.com/k8s/"), Ok(FileDestination::Bucket(u)) if u == "s3://b/k8s")
        );
        assert!(
            matches!(file_destination("https://s3.eu-west-1.amazonaws.com/b/p"), Ok(FileDestination::Bucket(u)) if u == "s3://b/p")
        );
        assert!(file_destination("https://mirror.example.com/x").is_err());
        // A bucket whose name holds `.s3` is the whole name.
        assert!(
            matches!(file_destination("https://my.s3data.b.s3.us-east-1.amazonaws.com/k"), Ok(FileDestination::Bucket(u)) if u == "s3://my.s3data.b/k")
        );
        assert!(
            matches!(file_destination("https://b.s3.amazonaws.com"), Ok(FileDestination::Bucket(u)) if u == "s3://b")
        );
    }
}
