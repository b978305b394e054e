//! `get`: what the state store (and, for instances, AWS) holds, as values for the caller to
//! show as tables, YAML or JSON.

use std::collections::BTreeSet;

use anyhow::Result;
use kopsrs_api::{Cluster, Document, InstanceGroup};
use kopsrs_state::{layout, StateStore};

use crate::cluster::{load_cluster, StoredCluster};
use crate::problems::{Problem, Problems};
use crate::session as context;
use crate::Session;

/// A cluster and the zones of its subnets.
#[derive(Debug, Clone)]
pub struct ListedCluster {
    /// The spec (completed with `full`).
    pub cluster: Cluster,
    /// The zones of its subnets, sorted, each once.
    pub zones: Vec<String>,
}

/// What `get clusters` found: the clusters it could read, and a problem for each it could
/// not (a spec another tool wrote an unknown field into, say), naming its key and field.
#[derive(Debug, Default)]
pub struct Clusters {
    /// The clusters read, sorted by name.
    pub listed: Vec<ListedCluster>,
    /// One problem per cluster that could not be read.
    pub unreadable: Vec<Problem>,
}

/// `get clusters`: the clusters named (none: the session's, else every cluster in the
/// store); `full`: completed with kops's defaults. One cluster that cannot be read hides no
/// other: it is reported in [`Clusters::unreadable`].
pub async fn clusters(
    session: &Session,
    store: &StateStore,
    names: Vec<String>,
    full: bool,
) -> Result<Clusters> {
    let names = if names.is_empty() {
        session.name.iter().cloned().collect()
    } else {
        names
    };
    let mut found = Clusters::default();
    // Without `full` only the cluster specs are read: one read per cluster.
    let specs: Vec<Cluster> = if names.is_empty() && !full {
        let mut specs = Vec::new();
        for (name, read) in store.read_all_clusters().await? {
            match read {
                Ok(cluster) => specs.push(cluster.value),
                Err(undecodable) => found.unreadable.push(unreadable(&name, undecodable.error)),
            }
        }
        specs
    } else {
        let names = if names.is_empty() {
            store.list_clusters().await?
        } else {
            names
        };
        let loaded = futures::future::join_all(names.iter().map(|n| load_cluster(store, n))).await;
        let mut specs = Vec::new();
        for (name, stored) in names.iter().zip(loaded) {
            let spec = stored.and_then(|stored| match full {
                true => Ok(stored.completed(store)?.0),
                false => Ok(stored.cluster.value),
            });
            match spec {
                Ok(spec) => specs.push(spec),
                Err(e) => match e.downcast::<Problems>() {
                    Ok(problems) => found.unreadable.extend(problems.0),
                    Err(e) => found.unreadable.push(unreadable(name, e)),
                },
            }
        }
        specs
    };
    found.listed = specs
        .into_iter()
        .map(|cluster| ListedCluster {
            zones: cluster
                .spec
                .subnets
                .iter()
                .flatten()
                .filter_map(|s| s.zone.clone())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
            cluster,
        })
        .collect();
    Ok(found)
}

/// The problem of a cluster `get clusters` could not read.
fn unreadable(name: &str, error: impl Into<anyhow::Error>) -> Problem {
    let error: anyhow::Error = error.into();
    Problem {
        message: format!("cluster {name}: {error:#}"),
        hint: Some(format!(
            "write the spec of {name} over it with `kopsrs replace -f FILE` (from git), \
             or read it leniently with --validate=warn"
        )),
    }
}

/// An instance group and the zones of its subnets.
#[derive(Debug, Clone)]
pub struct ListedGroup {
    /// The spec (completed with `full`).
    pub group: InstanceGroup,
    /// The zones of the cluster's subnets the group names, sorted, each once.
    pub zones: Vec<String>,
}

/// `get instancegroups`: the session's cluster's groups, those named (none: all); a name
/// that is not a group is a problem.
pub async fn instance_groups(
    session: &Session,
    store: &StateStore,
    names: &[String],
    full: bool,
) -> Result<Vec<ListedGroup>> {
    let name = context::cluster_name(session, None)?;
    let stored = load_cluster(store, &name).await?;
    let groups = selected_groups(store, &stored, names, full)?;
    let subnets = stored
        .cluster
        .value
        .spec
        .subnets
        .clone()
        .unwrap_or_default();
    let zones_of = |group: &InstanceGroup| {
        let zones: BTreeSet<String> = group
            .spec
            .subnets
            .iter()
            .flatten()
            .filter_map(|name| {
                subnets
                    .iter()
                    .find(|s| s.name.as_deref() == Some(name))
                    .and_then(|s| s.zone.clone())
            })
            .collect();
        zones.into_iter().collect()
    };
    Ok(groups
        .into_iter()
        .map(|group| ListedGroup {
            zones: zones_of(&group),
            group,
        })
        .collect())
}

fn selected_groups(
    store: &StateStore,
    stored: &StoredCluster,
    names: &[String],
    full: bool,
) -> Result<Vec<InstanceGroup>> {
    let groups = if full {
        stored.completed(store)?.1
    } else {
        stored.group_values()
    };
    for name in names {
        if !groups.iter().any(|g| &g.metadata.name == name) {
            return Err(Problems::one(
                format!("instance group {name:?} not found"),
                "`kopsrs get instancegroups` lists them",
            )
            .into());
        }
    }
    Ok(groups
        .into_iter()
        .filter(|g| names.is_empty() || names.contains(&g.metadata.name))
        .collect())
}

/// `get all`: the cluster (`cluster`, else the session's) and its groups, as documents.
pub async fn everything(
    session: &Session,
    store: &StateStore,
    cluster: Option<&str>,
    full: bool,
) -> Result<Vec<Document>> {
    let name = context::cluster_name(session, cluster)?;
    let stored = load_cluster(store, &name).await?;
    let (cluster, groups) = if full {
        stored.completed(store)?
    } else {
        (stored.cluster.value.clone(), stored.group_values())
    };
    let mut documents = vec![Document::Cluster(Box::new(cluster))];
    documents.extend(
        groups
            .into_iter()
            .map(|g| Document::InstanceGroup(Box::new(g))),
    );
    Ok(documents)
}

/// `get` without a kind, as kops prints it: the session's cluster, its groups and its admin
/// SSH keys (as `SSHCredential` documents).
pub async fn whole_cluster(
    session: &Session,
    store: &StateStore,
    full: bool,
) -> Result<Vec<Document>> {
    let mut documents = everything(session, store, None, full).await?;
    documents.extend(
        ssh_keys(session, store)
            .await?
            .into_iter()
            .map(|k| k.document),
    );
    Ok(documents)
}

/// An admin SSH public key of a cluster.
#[derive(Debug, Clone)]
pub struct ListedSshKey {
    /// Its ID (its file name in the store).
    pub id: String,
    /// The key as stored, trimmed.
    pub key: String,
    /// The key as kops's `SSHCredential` document.
    pub document: Document,
}

/// `get sshpublickeys`: the session's cluster's admin SSH public keys.
pub async fn ssh_keys(session: &Session, store: &StateStore) -> Result<Vec<ListedSshKey>> {
    let name = context::cluster_name(session, None)?;
    load_cluster(store, &name).await?;
    let keys = store
        .list(&format!("{name}/{}", layout::SSH_PUBLIC_KEYS))
        .await?;
    let mut out = Vec::new();
    for key in keys {
        let Some(object) = store.get(&key).await? else {
            continue;
        };
        let text = String::from_utf8_lossy(&object.value).trim().to_string();
        let id = key.rsplit('/').next().unwrap_or_default().to_string();
        let mut credential = kopsrs_api::SshCredential::new("admin");
        credential.metadata.labels =
            Some([(kopsrs_api::LABEL_CLUSTER.to_string(), name.clone())].into());
        credential.spec.public_key = Some(text.clone());
        out.push(ListedSshKey {
            id,
            key: text,
            document: Document::SshCredential(Box::new(credential)),
        });
    }
    Ok(out)
}

/// `get instances`: the cluster's (`cluster`, else the session's) instances in AWS.
pub async fn instances(
    session: &Session,
    store: &StateStore,
    cluster: Option<&str>,
) -> Result<(String, Vec<kopsrs_aws::InstanceInfo>)> {
    let name = context::cluster_name(session, cluster)?;
    let prepared = crate::cluster::prepare(store, &name, session, false).await?;
    let aws = crate::cluster::aws(session, &prepared.set.region).await;
    let instances = aws.instances(&name).await.map_err(|e| {
        crate::problems::aws(
            &session.settings,
            &format!("reading the instances of {name} from AWS"),
            &e,
            "check the AWS credentials and region",
        )
    })?;
    Ok((name, instances))
}
