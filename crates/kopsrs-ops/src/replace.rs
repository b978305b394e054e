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
    let existing = store.read_cluster(name).await?;
    let existing_groups = store.read_instance_groups(name).await?;
    let mut problems = Vec::new();
    if existing.is_none() && !(force && set.cluster.is_some()) {
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
        let version = existing_groups
            .iter()
            .find(|x| x.value.metadata.name == g.metadata.name)
            .map(|x| x.version.clone());
        match groups
            .iter_mut()
            .find(|x| x.metadata.name == g.metadata.name)
        {
            Some(slot) => *slot = g.clone(),
            None if force => groups.push(g.clone()),
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
        cluster: set.cluster.map(|c| (c, existing.map(|e| e.version))),
        groups: new_groups,
    }))
}
