//! `create cluster`, `create instancegroup`, `create sshpublickey`, `create -f`: new specs
//! checked, then written with create-only writes.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use bytes::Bytes;
use kopsrs_api::create::CreateClusterOptions;
use kopsrs_api::{encode_documents, Cluster, InstanceGroup, OutputFormat, LABEL_CLUSTER};
use kopsrs_state::{layout, now_rfc3339, StateStore};
use sha2::{Digest, Sha256};

use crate::cluster::load_cluster;
use crate::problems::Problems;
use crate::session as context;
use crate::Session;

/// A cluster made by `create cluster`.
#[derive(Debug, Clone)]
pub struct NewCluster {
    /// The Cluster.
    pub cluster: Cluster,
    /// Its instance groups.
    pub groups: Vec<InstanceGroup>,
    /// Where it was written (kops's config base); `None` in a dry run.
    pub config_base: Option<String>,
}

/// `create cluster`: the spec `options` infer (its config base under the session's state
/// store, its creation time now), validated, with the SSH public key read from
/// `ssh_public_key`; written (the store made if it is a new `file://` folder) unless
/// `dry_run`. `apply`: the caller applies it to AWS next (`create cluster --yes`), so a
/// state store the nodes cannot read is refused before anything is written.
pub async fn create_cluster(
    session: &Session,
    mut options: CreateClusterOptions,
    ssh_public_key: Option<&Path>,
    dry_run: bool,
    apply: bool,
) -> Result<NewCluster> {
    if apply && !dry_run {
        crate::node_store::require(session, "create cluster --yes")?;
    }
    let name = options.name.clone();
    let state = context::state_url(session)?;
    options.config_base = Some(format!("{}/{name}", state.trim_end_matches('/')));
    options.creation_timestamp = Some(now_rfc3339());
    let (cluster, groups) =
        kopsrs_api::create::create_cluster(&options).map_err(Problems::from_messages)?;
    crate::cluster::validate(&*session.reporter, &cluster, &groups)?;
    let ssh_key = ssh_public_key.map(context::read_input).transpose()?;
    if dry_run {
        return Ok(NewCluster {
            cluster,
            groups,
            config_base: None,
        });
    }
    let store = context::open_or_create_store(session).await?;
    write_new_cluster(&store, &cluster, &groups).await?;
    if let Some(key) = ssh_key {
        write_ssh_key(&store, &name, &key).await?;
    }
    Ok(NewCluster {
        config_base: Some(store.config_base(&name)),
        cluster,
        groups,
    })
}

/// An SSH public key added to a cluster.
#[derive(Debug, Clone)]
pub struct NewSshKey {
    /// The cluster.
    pub cluster: String,
    /// The key's ID (the first 16 bytes of its SHA-256, in hex).
    pub id: String,
}

/// `create sshpublickey`: the key in `path` (`-`: stdin) added to the session's cluster.
pub async fn add_ssh_key(session: &Session, path: &Path) -> Result<NewSshKey> {
    let name = context::cluster_name(session, None)?;
    let store = context::open_store(session).await?;
    load_cluster(&store, &name).await?;
    let text = context::read_input(path)?;
    let id = write_ssh_key(&store, &name, &text).await?;
    Ok(NewSshKey { cluster: name, id })
}

/// Writes a new cluster: instance groups first, the config last (a cluster exists once its
/// config does), each with a create-only write.
async fn write_new_cluster(
    store: &StateStore,
    cluster: &Cluster,
    groups: &[InstanceGroup],
) -> Result<()> {
    let name = &cluster.metadata.name;
    if store.read_cluster(name).await?.is_some() {
        return Err(Problems::one(
            format!("cluster {name:?} already exists in {}", store.url()),
            "use `kopsrs replace -f` or `kopsrs edit cluster` to change it, or `kopsrs delete cluster --unregister` first",
        )
        .into());
    }
    for group in groups {
        // Left over from an interrupted create (no config was written): replace it.
        let key = format!("{name}/{}/{}", layout::INSTANCE_GROUPS, group.metadata.name);
        let previous = store.get(&key).await?.map(|o| o.version);
        store
            .write_instance_group(name, group, previous.as_ref())
            .await?;
    }
    store.write_cluster(cluster, None).await?;
    Ok(())
}

/// Stores an admin SSH public key under `pki/ssh/public/admin/<id>`; returns the ID.
async fn write_ssh_key(store: &StateStore, cluster: &str, text: &str) -> Result<String> {
    let key = text.trim();
    let mut parts = key.split_whitespace();
    let (kind, blob) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if !(kind.starts_with("ssh-") || kind.starts_with("ecdsa-")) || blob.len() < 16 {
        return Err(Problems::one(
            format!(
                "{:?}… is not an SSH public key",
                key.chars().take(20).collect::<String>()
            ),
            "pass the .pub file, e.g. ~/.ssh/id_ed25519.pub",
        )
        .into());
    }
    let digest = Sha256::digest(blob.as_bytes());
    let id: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    let path = format!("{cluster}/{}/{id}", layout::SSH_PUBLIC_KEYS);
    let previous = store.get(&path).await?.map(|o| o.version);
    store
        .put(&path, Bytes::from(format!("{key}\n")), previous.as_ref())
        .await?;
    Ok(id)
}

/// What `create instancegroup` makes.
#[derive(Debug, Clone, Default)]
pub struct GroupOptions {
    /// The group's name.
    pub group: String,
    /// Its role (`Node`, `ControlPlane`, `Bastion`, kops's other spellings).
    pub role: String,
    /// Its subnets; empty: the cluster's (utility subnets for a bastion, the others else).
    pub subnets: Vec<String>,
    /// `--set path=value` assignments on the new group.
    pub sets: Vec<String>,
    /// Check it and return it, write nothing.
    pub dry_run: bool,
}

/// A new instance group and the cluster it belongs to.
#[derive(Debug, Clone)]
pub struct NewGroup {
    /// The cluster.
    pub cluster: String,
    /// The group, as written (or, in a dry run, as it would be).
    pub group: InstanceGroup,
}

/// `create instancegroup`: a new group of the session's cluster, validated with the cluster's
/// other groups, written with a create-only write unless `dry_run`.
pub async fn create_instance_group(session: &Session, options: &GroupOptions) -> Result<NewGroup> {
    let name = context::cluster_name(session, None)?;
    let store = context::open_store(session).await?;
    crate::managed::refuse_spec_change(&store, &name, "create instancegroup").await?;
    let stored = load_cluster(&store, &name).await?;
    let role = kopsrs_api::Role::parse(&options.role).ok_or_else(|| {
        Problems::one(
            format!("--role {}: not a role", options.role),
            format!("use one of {}", kopsrs_api::Role::ACCEPTED),
        )
    })?;
    let subnets = if options.subnets.is_empty() {
        let cluster_subnets = stored
            .cluster
            .value
            .spec
            .subnets
            .clone()
            .unwrap_or_default();
        // Bastions live in utility subnets; everything else in the others.
        let want_utility = role == kopsrs_api::Role::Bastion;
        cluster_subnets
            .iter()
            .filter(|s| want_utility == (s.r#type.as_deref() == Some("Utility")))
            .filter_map(|s| s.name.clone())
            .collect()
    } else {
        options.subnets.clone()
    };
    let value = serde_json::json!({
        "apiVersion": kopsrs_api::API_VERSION,
        "kind": "InstanceGroup",
        "metadata": {"name": options.group, "creationTimestamp": now_rfc3339(), "labels": {LABEL_CLUSTER: name}},
        "spec": {"role": role.as_str(), "subnets": subnets},
    });
    let group: InstanceGroup =
        serde_json::from_value(value).context("building the instance group")?;
    let group: InstanceGroup =
        crate::edit::apply_assignments(&group, &options.sets, &[], "instancegroup.")?;
    if stored
        .groups
        .iter()
        .any(|g| g.value.metadata.name == group.metadata.name)
    {
        return Err(Problems::one(
            format!(
                "instance group {:?} already exists in {name}",
                group.metadata.name
            ),
            "use `kopsrs edit instancegroup` to change it",
        )
        .into());
    }
    let mut groups = stored.group_values();
    groups.push(group.clone());
    crate::cluster::validate(&*session.reporter, &stored.cluster.value, &groups)?;
    if !options.dry_run {
        store.write_instance_group(&name, &group, None).await?;
    }
    Ok(NewGroup {
        cluster: name,
        group,
    })
}

/// `create -f`: every document of every file, checked together before anything is written.
///
/// Each cluster's line ("Created ...") goes to the reporter once its objects are written.
pub async fn create_from_files(session: &Session, files: &[PathBuf]) -> Result<()> {
    let documents = context::read_sourced(session, files)?;
    let store = context::open_or_create_store(session).await?;
    let plan = crate::specs::group_by_cluster(session.name.as_deref(), documents)?;
    let mut problems = Vec::new();
    let mut writes = Vec::new();
    for (name, set) in plan {
        let existing = store.read_cluster(&name).await?;
        let existing_groups = store.read_instance_groups(&name).await?;
        let cluster = match (&set.cluster, &existing) {
            (Some(_), Some(_)) => {
                problems.push(format!(
                    "Cluster/{name}: already exists; use `kopsrs replace -f` to change it"
                ));
                continue;
            }
            (Some(c), None) => c.clone(),
            (None, Some(c)) => {
                crate::managed::refuse_spec_change(&store, &name, "create -f").await?;
                c.value.clone()
            }
            (None, None) => {
                problems.push(format!("cluster {name:?} not found in {}; create the Cluster first (or in the same file)", store.url()));
                continue;
            }
        };
        let mut all_groups: Vec<InstanceGroup> =
            existing_groups.iter().map(|g| g.value.clone()).collect();
        for group in &set.groups {
            if all_groups
                .iter()
                .any(|g| g.metadata.name == group.metadata.name)
                && existing.is_some()
            {
                problems.push(format!("InstanceGroup/{}: already exists in {name}; use `kopsrs replace -f` to change it", group.metadata.name));
            }
            all_groups.push(group.clone());
        }
        if let Err(e) = crate::cluster::validate(&*session.reporter, &cluster, &all_groups) {
            match e.downcast::<Problems>() {
                Ok(p) => problems.extend(p.0.into_iter().map(|p| p.message)),
                Err(e) => return Err(e),
            }
        }
        writes.push((name, set, existing.is_none()));
    }
    if !problems.is_empty() {
        return Err(Problems::from_messages(problems).into());
    }
    for (name, set, new_cluster) in writes {
        if let (true, Some(cluster)) = (new_cluster, &set.cluster) {
            write_new_cluster(&store, cluster, &set.groups).await?;
        } else {
            for group in &set.groups {
                store.write_instance_group(&name, group, None).await?;
            }
        }
        for key in &set.ssh_keys {
            write_ssh_key(
                &store,
                &name,
                key.spec.public_key.as_deref().unwrap_or_default(),
            )
            .await?;
        }
        if !set.additional.is_empty() {
            let text = encode_documents(&set.additional, OutputFormat::Yaml);
            let key = format!("{name}/{}", layout::ADDITIONAL_OBJECTS);
            let previous = store.get(&key).await?.map(|o| o.version);
            store
                .put(&key, Bytes::from(text), previous.as_ref())
                .await?;
        }
        let what = set.cluster.as_ref().map(|_| "cluster, ").unwrap_or("");
        session.reporter.say(&format!(
            "Created {what}{} instance group(s), {} SSH key(s) in {name}",
            set.groups.len(),
            set.ssh_keys.len()
        ));
    }
    Ok(())
}
