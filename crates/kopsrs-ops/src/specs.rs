//! Specs from files: which cluster each document of a set of files (folders expanded by
//! `session::read_sourced`) belongs to. `create -f`, `replace -f` and `diff -f` read their
//! files through here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use kopsrs_api::{Cluster, Document, InstanceGroup, SshCredential, LABEL_CLUSTER};

use crate::problems::Problems;
use crate::session::Sourced;

/// One cluster's documents from the files.
#[derive(Default)]
pub struct ClusterDocuments {
    /// The Cluster, when the files hold it.
    pub cluster: Option<Cluster>,
    /// Its instance groups (labelled with the cluster).
    pub groups: Vec<InstanceGroup>,
    /// Its SSH credentials.
    pub ssh_keys: Vec<SshCredential>,
    /// Other documents kept beside the spec.
    pub additional: Vec<Document>,
}

/// The cluster a document without a `kops.k8s.io/cluster` label belongs to: `--name`, else
/// the one Cluster in its file, else the one Cluster in its folder (or the nearest folder
/// above holding exactly one), as a git layout of one folder per cluster has it.
fn nearest_cluster(path: &Path, clusters: &[(PathBuf, String)]) -> Option<String> {
    let within = |level: &Path, file: bool| -> Vec<&String> {
        clusters
            .iter()
            .filter(|(p, _)| {
                if file {
                    p == level
                } else {
                    p.starts_with(level)
                }
            })
            .map(|(_, n)| n)
            .collect()
    };
    let levels = std::iter::once((path, true)).chain(path.ancestors().skip(1).map(|a| (a, false)));
    for (level, file) in levels {
        match within(level, file).as_slice() {
            [] => continue,
            [one] => return Some((*one).clone()),
            _ => return None,
        }
    }
    None
}

/// Assigns each document to its cluster: by the `kops.k8s.io/cluster` label, else `--name`,
/// else the Cluster of its file or folder ([`nearest_cluster`]). Several clusters in one
/// set of files work.
pub fn group_by_cluster(
    name: Option<&str>,
    documents: Vec<Sourced>,
) -> Result<BTreeMap<String, ClusterDocuments>> {
    let clusters: Vec<(PathBuf, String)> = documents
        .iter()
        .filter_map(|d| match &d.document {
            Document::Cluster(c) => Some((d.path.clone(), c.metadata.name.clone())),
            _ => None,
        })
        .collect();
    let mut sets: BTreeMap<String, ClusterDocuments> = BTreeMap::new();
    let mut problems = Vec::new();
    for Sourced { path, document } in documents {
        let fallback = name
            .map(str::to_string)
            .or_else(|| nearest_cluster(&path, &clusters));
        let label = |labels: &Option<BTreeMap<String, String>>| {
            labels.as_ref().and_then(|l| l.get(LABEL_CLUSTER).cloned())
        };
        let owner = match &document {
            Document::Cluster(c) => Some(c.metadata.name.clone()),
            Document::InstanceGroup(g) => label(&g.metadata.labels).or_else(|| fallback.clone()),
            Document::SshCredential(s) => label(&s.metadata.labels).or_else(|| fallback.clone()),
            Document::Keyset(_) | Document::Additional(_) => fallback.clone(),
        };
        let Some(owner) = owner else {
            problems.push(format!("{} ({}): no cluster; add the label {LABEL_CLUSTER}, pass --name, or keep it in the folder of its Cluster", document.describe(), path.display()));
            continue;
        };
        let set = sets.entry(owner.clone()).or_default();
        match document {
            Document::Cluster(c) => {
                if set.cluster.is_some() {
                    problems.push(format!("Cluster/{owner}: defined twice"));
                }
                set.cluster = Some(*c);
            }
            Document::InstanceGroup(mut g) => {
                g.metadata
                    .labels
                    .get_or_insert_with(Default::default)
                    .entry(LABEL_CLUSTER.into())
                    .or_insert(owner);
                set.groups.push(*g);
            }
            Document::SshCredential(s) => set.ssh_keys.push(*s),
            Document::Keyset(k) => problems.push(format!(
                "Keyset/{}: keysets are managed with `create keypair` (PKI)",
                k.metadata.name
            )),
            other @ Document::Additional(_) => set.additional.push(other),
        }
    }
    if !problems.is_empty() {
        return Err(Problems::from_messages(problems).into());
    }
    Ok(sets)
}
