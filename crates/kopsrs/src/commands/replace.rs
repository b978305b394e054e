//! `replace -f FILE [--force]`: the files become the stored objects.

use anyhow::Result;
use kopsrs_api::{Document, InstanceGroup, LABEL_CLUSTER};

use crate::cli::{GlobalArgs, ReplaceArgs};
use crate::context;
use crate::problems::Problems;

pub async fn run(global: &GlobalArgs, args: ReplaceArgs) -> Result<()> {
    let documents = context::read_documents(&args.filenames, global.validate)?;
    let store = match args.force {
        true => context::open_or_create_store(global).await?,
        false => context::open_store(global).await?,
    };
    let cluster_doc = documents.iter().find_map(|d| match d {
        Document::Cluster(c) => Some((**c).clone()),
        _ => None,
    });
    let name = match (&cluster_doc, &global.name) {
        (Some(c), _) => c.metadata.name.clone(),
        (None, Some(n)) => n.clone(),
        (None, None) => documents
            .iter()
            .find_map(|d| match d {
                Document::InstanceGroup(g) => g.cluster_label().map(str::to_string),
                _ => None,
            })
            .ok_or_else(|| {
                Problems::one(
                    "no cluster for these objects",
                    format!("include the Cluster, add the label {LABEL_CLUSTER}, or pass --name"),
                )
            })?,
    };
    // Everything is read first, so each write is conditional on what we validated against.
    let existing = store.read_cluster(&name).await?;
    let existing_groups = store.read_instance_groups(&name).await?;
    let mut problems = Vec::new();
    if existing.is_none() && !(args.force && cluster_doc.is_some()) {
        return Err(Problems::one(
            format!("cluster {name:?} not found in {}", store.url()),
            "use `kopsrs create -f`, or replace --force to create it",
        )
        .into());
    }
    let cluster = cluster_doc
        .clone()
        .or_else(|| existing.as_ref().map(|c| c.value.clone()))
        .expect("checked above");
    let mut groups: Vec<InstanceGroup> = existing_groups.iter().map(|g| g.value.clone()).collect();
    let mut new_groups = Vec::new();
    for document in &documents {
        match document {
            Document::Cluster(_) => {}
            Document::InstanceGroup(g) => {
                let mut g = (**g).clone();
                g.metadata
                    .labels
                    .get_or_insert_with(Default::default)
                    .entry(LABEL_CLUSTER.into())
                    .or_insert(name.clone());
                match groups
                    .iter_mut()
                    .find(|x| x.metadata.name == g.metadata.name)
                {
                    Some(slot) => *slot = g.clone(),
                    None if args.force => groups.push(g.clone()),
                    None => problems.push(format!(
                        "InstanceGroup/{}: not found in {name}; use --force to create it",
                        g.metadata.name
                    )),
                }
                new_groups.push(g);
            }
            other => problems.push(format!(
                "{}: replace handles clusters and instance groups",
                other.describe()
            )),
        }
    }
    if !problems.is_empty() {
        return Err(Problems::from_messages(problems).into());
    }
    super::validate(&cluster, &groups)?;
    for group in &new_groups {
        let version = existing_groups
            .iter()
            .find(|x| x.value.metadata.name == group.metadata.name)
            .map(|x| &x.version);
        store.write_instance_group(&name, group, version).await?;
    }
    if let Some(cluster) = &cluster_doc {
        store
            .write_cluster(cluster, existing.as_ref().map(|c| &c.version))
            .await?;
    }
    eprintln!(
        "Replaced {} object(s) in {name}",
        new_groups.len() + usize::from(cluster_doc.is_some())
    );
    Ok(())
}
