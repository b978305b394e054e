//! The addons a cluster runs: the channel they come from (`spec.channel`), the cluster's
//! selection, each download's sha256 pin, and the copy published to the state store that the
//! control plane applies (`addons/bootstrap-channel.yaml`; docs/security.md, "Addons").
//!
//! Control-plane nodes apply addons as cluster-admin, so a node applies a download only when
//! its sha256 matches a pin. The pin comes from the channel when it has one (checked here
//! against a download before anything changes); else `update cluster` downloads the file and
//! records its hash in the published copy; else (offline) the entry is published unpinned and
//! the first control plane that fetches it records the hash in the state store for every
//! later node (trust on first use).

use std::time::Duration;

use anyhow::Result;
use futures::future::join_all;
use kopsrs_api::{Cluster, InstanceGroup, Role};
use kopsrs_bootstrap::channel::{Addon, Channel, Download, Selected};
use kopsrs_engine::{Action, AddonChange};
use kopsrs_state::{layout, StateStore};
use sha2::{Digest, Sha256};

use crate::problems::{Problem, Problems};

/// How `update cluster` pins addons.
#[derive(Debug, Clone, Copy)]
pub struct PinOptions {
    /// Download what needs a pin or a check (off: offline runs).
    pub download: bool,
    /// An entry without a pin is an error instead of a note.
    pub require_pinned: bool,
}

impl Default for PinOptions {
    /// Downloads checked, unpinned entries allowed.
    fn default() -> PinOptions {
        PinOptions {
            download: true,
            require_pinned: false,
        }
    }
}

/// The cluster's addons, pinned, with what publishing them would change.
#[derive(Debug)]
pub struct Resolved {
    /// What `--yes` publishes.
    pub selected: Selected,
    /// The plan's addon lines.
    pub changes: Vec<AddonChange>,
    /// The published copy as read, so publishing writes only a change without reading again.
    published: Option<bytes::Bytes>,
    /// State-store objects (key under the cluster's folder, text) to write before the
    /// selection, because an entry of it names them: the generated addons' manifests and the
    /// scripts their objects name. Empty when the published copy already has those entries.
    files: Vec<(String, String)>,
}

/// Keeps the channel's optional addons the spec turns on, with the spec's values merged over
/// the channel's, and drops the others. One the spec turns on that the channel lacks is an
/// error: the spec would say the cluster runs it, and nothing would.
pub(crate) fn optional(
    selected: &mut Selected,
    wanted: &std::collections::BTreeMap<String, serde_json::Value>,
    source: Option<&str>,
) -> Result<()> {
    let missing: Vec<&String> = wanted
        .keys()
        .filter(|name| !selected.addons.iter().any(|a| &a.name == *name))
        .collect();
    if let Some(name) = missing.first() {
        return Err(Problems::one(
            format!(
                "the spec turns on the addon {name}, but channel {} has none for Kubernetes {}",
                source.unwrap_or("stable"),
                selected.kubernetes_version
            ),
            "use a channel that has it (spec.channel), or turn it off in the spec",
        )
        .into());
    }
    selected
        .addons
        .retain(|a| !a.optional || wanted.contains_key(&a.name));
    for addon in &mut selected.addons {
        let Some(values) = wanted.get(&addon.name) else {
            continue;
        };
        let values: serde_yaml_ng::Value =
            serde_yaml_ng::to_value(values).expect("JSON values convert to YAML");
        addon.values = Some(match addon.values.take() {
            Some(mut base) => {
                merge(&mut base, values);
                base
            }
            None => values,
        });
        // Selection's flag: nodes never read it.
        addon.optional = false;
    }
    Ok(())
}

/// `over` merged into `base`: maps key by key, anything else replaced.
fn merge(base: &mut serde_yaml_ng::Value, over: serde_yaml_ng::Value) {
    match (base, over) {
        (serde_yaml_ng::Value::Mapping(b), serde_yaml_ng::Value::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

/// The addons the model writes (`DesiredSet::generated`), last in the selection, each with
/// its state-store files: an entry's URL is `state:<key>`, its version the first 12 hex
/// digits of its manifest's sha256 and its pin that sha256.
fn generated(addons: &[kopsrs_model::GeneratedAddon]) -> Vec<(Addon, Vec<(String, String)>)> {
    addons
        .iter()
        .map(|generated| {
            let manifest = generated.manifest();
            let sha256 = crate::assets::hex_sha256(manifest.as_bytes());
            let addon = Addon {
                name: generated.name.to_string(),
                version: sha256[..12].to_string(),
                kind: "manifest".to_string(),
                url: format!("state:{}", generated.key),
                sha256: Some(sha256),
                sha256_by_arch: Default::default(),
                namespace: None,
                values: None,
                images: Vec::new(),
                optional: false,
                kubernetes: None,
            };
            // The other files first: the manifest names them.
            let mut files: Vec<(String, String)> = generated
                .files
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            files.push((generated.key.to_string(), manifest));
            (addon, files)
        })
        .collect()
}

/// The largest channel kopsrs reads (the built-in one is a few KB).
const MAX_CHANNEL: usize = 1024 * 1024;

/// The channel `spec.channel` names: `stable` (or nothing) is the one built into kopsrs; a
/// file path, `file://` URL or `http(s)://` URL is a channel in kopsrs's format.
pub async fn channel(source: Option<&str>) -> Result<Channel> {
    let source = source.unwrap_or("stable");
    let text = if source == "stable" || source.is_empty() {
        return Ok(Channel::stable());
    } else if source.starts_with("http://") || source.starts_with("https://") {
        let fetched = async {
            let mut response = client()?.get(source).send().await?.error_for_status()?;
            // A channel is a few KB: stop reading well past that, whatever the server sends.
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await? {
                body.extend_from_slice(&chunk);
                if body.len() > MAX_CHANNEL {
                    return Ok(Err(format!(
                        "over {} KB, not a channel",
                        MAX_CHANNEL / 1024
                    )));
                }
            }
            Ok::<_, reqwest::Error>(Ok(String::from_utf8_lossy(&body).into_owned()))
        }
        .await;
        let hint = "check the URL and the network, or set spec.channel to `stable` or a local file";
        match fetched {
            Ok(Ok(text)) => text,
            Ok(Err(why)) => {
                return Err(Problems::one(format!("spec.channel: {source} is {why}"), hint).into())
            }
            Err(e) => {
                return Err(Problems::one(
                    format!("spec.channel: cannot download {source}: {}", plain(&e)),
                    hint,
                )
                .into())
            }
        }
    } else if source.contains('/') {
        let path = source.strip_prefix("file://").unwrap_or(source);
        std::fs::read_to_string(path).map_err(|e| {
            Problems::one(
                format!("spec.channel: cannot read {path}: {e}"),
                "set spec.channel to `stable` (built in), a channel file or a URL",
            )
        })?
    } else {
        return Err(Problems::one(
            format!("spec.channel: {source:?} is not a channel kopsrs has"),
            "kopsrs builds in only `stable`; for another, set spec.channel to a file or URL of a channel in kopsrs's format (channels/stable.yaml in the repository)",
        )
        .into());
    };
    Channel::parse(&text).map_err(|e| {
        Problems::one(
            format!("spec.channel {source}: {e}"),
            "fix the channel file (its format is channels/stable.yaml's)",
        )
        .into()
    })
}

/// The HTTP client for channel and addon downloads: bounded, so an offline run says so in
/// seconds instead of hanging.
pub(crate) fn client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(300))
        .build()
}

/// An HTTP error as the few words that say what failed: the status, a timeout, or the root
/// cause (reqwest's own text wraps it in "error sending request for url (…)").
pub(crate) fn plain(error: &reqwest::Error) -> String {
    if let Some(status) = error.status() {
        return format!("HTTP {status}");
    }
    if error.is_timeout() {
        return "timed out".to_string();
    }
    let mut root: &dyn std::error::Error = error;
    while let Some(cause) = root.source() {
        root = cause;
    }
    root.to_string()
}

/// The architectures of the control-plane groups: the nodes that download addons.
pub(crate) fn control_plane_archs(groups: &[InstanceGroup]) -> Vec<&'static str> {
    let mut archs: Vec<&'static str> = groups
        .iter()
        .filter(|g| g.role() == Some(Role::ControlPlane))
        .map(|g| {
            match kopsrs_api::versions::architecture(g.spec.machine_type.as_deref().unwrap_or("")) {
                kopsrs_api::versions::Architecture::Amd64 => "amd64",
                kopsrs_api::versions::Architecture::Arm64 => "arm64",
            }
        })
        .collect();
    archs.sort_unstable();
    archs.dedup();
    if archs.is_empty() {
        archs.push("amd64");
    }
    archs
}

/// The selection for a cluster, pinned, and its difference from what is published. A pin
/// that does not match the download, or (with `require_pinned`) an entry left unpinned,
/// stops here, before any change.
pub async fn resolve(
    store: &StateStore,
    cluster: &Cluster,
    groups: &[InstanceGroup],
    set: &kopsrs_model::DesiredSet,
    options: PinOptions,
) -> Result<Resolved> {
    let channel = channel(cluster.spec.channel.as_deref()).await?;
    let version = cluster
        .spec
        .kubernetes_version
        .as_deref()
        .unwrap_or_default();
    let mut selected = channel.select(version, kopsrs_model::cni(&cluster.spec))?;
    optional(
        &mut selected,
        &set.optional_addons,
        cluster.spec.channel.as_deref(),
    )?;
    // Under spec.assets.fileRepository nodes download each addon from the mirror: that URL
    // is what is pinned and published (the content, so the pin, is the same).
    let mirrors = crate::assets::mirrors(cluster)?;
    for addon in &mut selected.addons {
        addon.url = mirrors.file_url(&addon.url);
    }
    let key = format!("{}/{}", cluster.metadata.name, layout::ADDONS_CHANNEL);
    let current = store.get(&key).await?.map(|o| o.value);
    // An undecodable copy counts as nothing published.
    let published = current
        .as_ref()
        .and_then(|text| serde_yaml_ng::from_slice::<Selected>(text).ok())
        .map(|c| c.addons)
        .unwrap_or_default();
    let archs = control_plane_archs(groups);
    let mut notes = Vec::new();
    let mut problems = Vec::new();
    // Every download at once; each addon's files in order.
    let work = selected.addons.iter().map(|addon| {
        let before = published.iter().find(|p| p.same_source(addon)).cloned();
        pin_addon(addon.clone(), before, &archs, options)
    });
    let pinned = join_all(work).await;
    selected.addons.clear();
    for (addon, note, errors) in pinned {
        selected.addons.push(addon);
        notes.push(note);
        problems.extend(errors);
    }
    if !problems.is_empty() {
        return Err(Problems(problems).into());
    }
    let mut files = Vec::new();
    for (addon, addon_files) in generated(&set.generated) {
        // Published with this pin: its files were written before it.
        if !published.contains(&addon) {
            files.extend(addon_files);
        }
        notes.push("generated by kopsrs, pinned by sha256".to_string());
        selected.addons.push(addon);
    }
    let changes = changes(&selected, &published, &notes);
    Ok(Resolved {
        selected,
        changes,
        published: current,
        files,
    })
}

/// One addon's pins: kept from the published copy when it is the same download with the
/// same pins, else checked (channel pin) or computed (no pin) by downloading.
pub(crate) async fn pin_addon(
    mut addon: Addon,
    before: Option<Addon>,
    archs: &[&str],
    options: PinOptions,
) -> (Addon, String, Vec<Problem>) {
    let mut notes = Vec::new();
    let mut problems = Vec::new();
    let what = format!("addon {} {}", addon.name, addon.version);
    for download in addon.downloads(archs) {
        let published = before
            .as_ref()
            .and_then(|b| {
                b.downloads(archs)
                    .into_iter()
                    .find(|d| d.url == download.url)
            })
            .and_then(|d| d.sha256);
        let on = download
            .arch
            .as_ref()
            .map(|a| format!(" ({a})"))
            .unwrap_or_default();
        // With --require-pinned-addons, a pin must come from the channel: one computed from
        // this run's download (or an earlier run's, as published) only trusts whatever the
        // URL served the operator first.
        if options.require_pinned && download.sha256.is_none() {
            problems.push(Problem {
                message: format!(
                    "{what}{on}: {} has no sha256 pin in the channel (--require-pinned-addons takes no pin from a download)",
                    download.url
                ),
                hint: Some(
                    "pin it in the channel (sha256 of the release), or drop --require-pinned-addons"
                        .into(),
                ),
            });
            continue;
        }
        match (&download.sha256, published) {
            // Verified when it was published, and the channel says nothing else.
            (None, Some(sum)) => {
                addon.pin(&download, sum);
                notes.push(format!("pinned{on} as published"));
            }
            (Some(pin), Some(sum)) if *pin == sum => notes.push(format!("pinned{on}")),
            (pin, _) if !options.download => match pin {
                Some(_) => notes.push(format!("pinned{on} by the channel, not downloaded")),
                None => unpinned(&mut notes, &mut problems, &what, &on, &download, options,
                    "downloads are off (--download-addons=false)"),
            },
            (pin, _) => match fetch_sha256(&download.url).await {
                Ok(sum) => match pin {
                    Some(pin) if *pin != sum => problems.push(Problem {
                        message: format!(
                            "{what}{on}: {} serves content with sha256 {sum}, but the channel pins {pin}",
                            download.url
                        ),
                        hint: Some(
                            "the file changed upstream or was tampered with; nothing was changed. Check the release and correct the channel's pin"
                                .into(),
                        ),
                    }),
                    Some(_) => notes.push(format!("pinned{on} by the channel, checked")),
                    None => {
                        notes.push(format!("pinned{on}: sha256 {} of the download", &sum[..12]));
                        addon.pin(&download, sum);
                    }
                },
                Err(e) => match pin {
                    Some(_) => notes.push(format!("pinned{on} by the channel, not checked ({e})")),
                    None => unpinned(&mut notes, &mut problems, &what, &on, &download, options, &e),
                },
            },
        }
    }
    (addon, notes.join("; "), problems)
}

/// An entry `update cluster` could not pin: a note, or an error with `--require-pinned-addons`.
fn unpinned(
    notes: &mut Vec<String>,
    problems: &mut Vec<Problem>,
    what: &str,
    on: &str,
    download: &Download,
    options: PinOptions,
    why: &str,
) {
    if options.require_pinned {
        problems.push(Problem {
            message: format!("{what}{on}: {} has no sha256 pin and {why}", download.url),
            hint: Some(
                "pin it in the channel (sha256), run where the URL can be downloaded, or drop --require-pinned-addons"
                    .into(),
            ),
        });
    } else {
        notes.push(format!(
            "UNPINNED{on}: {why}; the first control plane to fetch it records its sha256 (trust on first use)"
        ));
    }
}

/// The sha256 of what `url` serves, read as it streams (a `file://` URL: the local file).
async fn fetch_sha256(url: &str) -> std::result::Result<String, String> {
    if let Some(path) = url.strip_prefix("file://") {
        let bytes = tokio::fs::read(path)
            .await
            .map_err(|e| format!("cannot read {path}: {e}"))?;
        return Ok(crate::assets::hex_sha256(&bytes));
    }
    let fetched = async {
        let mut response = client()?.get(url).send().await?.error_for_status()?;
        let mut hash = Sha256::new();
        while let Some(chunk) = response.chunk().await? {
            hash.update(&chunk);
        }
        Ok::<_, reqwest::Error>(hash.finalize())
    }
    .await;
    let digest = fetched.map_err(|e| format!("cannot download it: {}", plain(&e)))?;
    Ok(digest.iter().map(|b| format!("{b:02x}")).collect())
}

/// What publishing `selected` over `published` changes, one line per addon, with how each
/// download is pinned (`notes`, by position in `selected`).
fn changes(selected: &Selected, published: &[Addon], notes: &[String]) -> Vec<AddonChange> {
    let mut changes = Vec::new();
    for (addon, note) in selected.addons.iter().zip(notes) {
        let old = published.iter().find(|a| a.name == addon.name);
        if old == Some(addon) {
            continue;
        }
        changes.push(AddonChange {
            name: addon.name.clone(),
            action: if old.is_some() {
                Action::Update
            } else {
                Action::Create
            },
            before: old.map(|o| o.version.clone()),
            after: Some(addon.version.clone()),
            integrity: Some(note.clone()),
        });
    }
    for old in published {
        if !selected.addons.iter().any(|a| a.name == old.name) {
            changes.push(AddonChange {
                name: old.name.clone(),
                action: Action::Delete,
                before: Some(old.version.clone()),
                after: None,
                integrity: None,
            });
        }
    }
    changes
}

/// Writes the selection to the state store when it differs from the copy `resolve` read
/// (under `update --yes` the cluster lock keeps that copy current; it is not read again),
/// saying so to `reporter`.
pub async fn publish(
    reporter: &dyn crate::Reporter,
    store: &StateStore,
    cluster: &Cluster,
    resolved: &Resolved,
) -> Result<()> {
    let text = resolved.selected.to_yaml();
    if resolved.published.as_deref() != Some(text.as_bytes()) {
        let name = &cluster.metadata.name;
        for (key, file) in &resolved.files {
            store
                .overwrite(&format!("{name}/{key}"), file.clone().into_bytes().into())
                .await?;
        }
        let key = format!("{name}/{}", layout::ADDONS_CHANNEL);
        store.overwrite(&key, text.into_bytes().into()).await?;
        reporter.say(&format!(
            "Published {} addon(s) to {key}.",
            resolved.selected.addons.len()
        ));
    }
    Ok(())
}
