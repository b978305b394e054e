//! `replace -f PATH... [--force]`: the files become the stored objects. Files, folders
//! (recursively) and `-`; several clusters at once. Everything is read and validated before
//! anything is written: one bad file, nothing written.

use anyhow::Result;
use kopsrs_api::{Cluster, InstanceGroup};
use kopsrs_state::{StateStore, Version};

use std::path::PathBuf;

use crate::problems::{Problem, Problems};
use crate::session as context;
use crate::specs::{group_by_cluster, ClusterDocuments};
use crate::Session;

/// One cluster's writes, decided before any is made.
struct Writes {
    name: String,
    /// The Cluster from the files, with the version it replaces (`None`: created).
    cluster: Option<(Cluster, Option<Version>)>,
    /// Instance groups from the files, each with the version it replaces.
    groups: Vec<(InstanceGroup, Option<Version>)>,
}

/// `replace -f`: the documents of `files` written over the stored objects, every cluster's
/// writes decided (and conditional on what was read) before any is made; `force` creates
/// what does not exist. Each cluster's line ("Replaced ...") goes to the reporter once its
/// objects are written.
pub async fn replace_files(session: &Session, files: &[PathBuf], force: bool) -> Result<()> {
    let documents = context::read_sourced(session, files)?;
    let store = match force {
        true => context::open_or_create_store(session).await?,
        false => context::open_store(session).await?,
    };
    let sets = group_by_cluster(session.name.as_deref(), documents)?;
    let mut problems = Vec::new();
    let mut writes = Vec::new();
    for (name, set) in sets {
        crate::managed::refuse_spec_change(&store, &name, "replace").await?;
        // Everything is read first, so each write is conditional on what was validated.
        match plan(session, &store, &name, set, force).await? {
            Ok(w) => writes.push(w),
            Err(mut p) => problems.append(&mut p),
        }
    }
    if !problems.is_empty() {
        return Err(Problems(problems).into());
    }
    for w in writes {
        for (group, version) in &w.groups {
            store
                .write_instance_group(&w.name, group, version.as_ref())
                .await?;
        }
        if let Some((cluster, version)) = &w.cluster {
            store.write_cluster(cluster, version.as_ref()).await?;
        }
        session.reporter.say(&format!(
            "Replaced {} object(s) in {}",
            w.groups.len() + usize::from(w.cluster.is_some()),
            w.name
        ));
    }
    Ok(())
}

/// What replacing `name` with `set` writes, or every problem with it.
async fn plan(
    session: &Session,
    store: &StateStore,
    name: &str,
    set: ClusterDocuments,
    force: bool,
) -> Result<Result<Writes, Vec<Problem>>> {
    let mut problems = Vec::new();
    // A stored spec that does not decode (a field another tool wrote) is replaced by the
    // file's, conditionally on the version read, with a warning naming what was wrong; the
    // file must then hold it, since nothing else says what it should be.
    let (existing, broken_cluster) = match store.read_cluster_or_undecodable(name).await? {
        None => (None, None),
        Some(Ok(cluster)) => (Some(cluster), None),
        Some(Err(undecodable)) => (None, Some(undecodable)),
    };
    let mut existing_groups = Vec::new();
    let mut broken_groups = Vec::new();
    for (group, read) in store.read_instance_groups_or_undecodable(name).await? {
        match read {
            Ok(g) => existing_groups.push(g),
            Err(undecodable) => broken_groups.push((group, undecodable)),
        }
    }
    if let Some(broken) = &broken_cluster {
        match &set.cluster {
            Some(_) => session.reporter.warn(
                &format!(
                    "{}; replacing it with the Cluster from the files",
                    broken.error
                ),
                None,
            ),
            None => problems.push(format!(
                "{}; replace needs the Cluster {name} in the files to write over it",
                broken.error
            )),
        }
    }
    for (group, broken) in &broken_groups {
        match set.groups.iter().any(|g| &g.metadata.name == group) {
            true => session.reporter.warn(
                &format!(
                    "{}; replacing it with the InstanceGroup from the files",
                    broken.error
                ),
                None,
            ),
            false => problems.push(format!(
                "{}; replace needs the InstanceGroup {group} in the files to write over it",
                broken.error
            )),
        }
    }
    if !problems.is_empty() {
        return Ok(Err(problems
            .into_iter()
            .map(|message| Problem {
                message,
                hint: Some(
                    "give -f the object from git too, so it is written over the stored one; \
                     or read the store leniently with --validate=warn"
                        .to_string(),
                ),
            })
            .collect()));
    }
    let existing_version = existing
        .as_ref()
        .map(|c| c.version.clone())
        .or_else(|| broken_cluster.map(|b| b.version));
    if existing_version.is_none() && !(force && set.cluster.is_some()) {
        return Ok(Err(vec![Problem {
            message: format!(
                "Cluster/{name}: not found in {}; use `kopsrs create -f`, or replace --force to create it",
                store.url()
            ),
            hint: None,
        }]));
    }
    let cluster = set
        .cluster
        .clone()
        .or_else(|| existing.as_ref().map(|c| c.value.clone()))
        .expect("checked above");
    let mut groups: Vec<InstanceGroup> = existing_groups.iter().map(|g| g.value.clone()).collect();
    let mut new_groups = Vec::new();
    for g in set.groups {
        let broken = broken_groups
            .iter()
            .find(|(name, _)| name == &g.metadata.name)
            .map(|(_, b)| b.version.clone());
        let version = existing_groups
            .iter()
            .find(|x| x.value.metadata.name == g.metadata.name)
            .map(|x| x.version.clone())
            .or(broken.clone());
        match groups
            .iter_mut()
            .find(|x| x.metadata.name == g.metadata.name)
        {
            Some(slot) => *slot = g.clone(),
            None if force || broken.is_some() => groups.push(g.clone()),
            None => problems.push(format!(
                "InstanceGroup/{}: not found in {name}; use --force to create it",
                g.metadata.name
            )),
        }
        new_groups.push((g, version));
    }
    for key in &set.ssh_keys {
        problems.push(format!(
            "SSHCredential/{}: replace handles clusters and instance groups; use `kopsrs create sshpublickey`",
            key.metadata.name
        ));
    }
    for other in &set.additional {
        problems.push(format!(
            "{}: replace handles clusters and instance groups",
            other.describe()
        ));
    }
    let mut problems: Vec<Problem> = problems
        .into_iter()
        .map(|message| Problem {
            message,
            hint: None,
        })
        .collect();
    if let Err(e) = crate::cluster::validate(&*session.reporter, &cluster, &groups) {
        match e.downcast::<Problems>() {
            Ok(p) => problems.extend(p.0.into_iter().map(|p| Problem {
                message: format!("{name}: {}", p.message),
                hint: None,
            })),
            Err(e) => return Err(e),
        }
    }
    // A change of the stored cluster's Kubernetes version, as the channel allows it.
    if let (Some(replacing), Some(stored)) = (&set.cluster, &existing) {
        if let Err(e) = crate::upgrade::check_version_change(&stored.value, replacing).await {
            match e.downcast::<Problems>() {
                Ok(p) => problems.extend(p.0.into_iter().map(|p| Problem {
                    message: format!("{name}: {}", p.message),
                    hint: p.hint,
                })),
                Err(e) => return Err(e),
            }
        }
    }
    if !problems.is_empty() {
        return Ok(Err(problems));
    }
    Ok(Ok(Writes {
        name: name.to_string(),
        cluster: set.cluster.map(|c| (c, existing_version)),
        groups: new_groups,
    }))
}
