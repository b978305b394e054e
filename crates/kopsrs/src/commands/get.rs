//! `get clusters|instancegroups|all|sshpublickeys|instances`.

use anyhow::Result;
use comfy_table::Table;
use kopsrs_api::{encode_documents, Document, InstanceGroup, OutputFormat};
use kopsrs_state::layout;

use crate::cli::{GetArgs, GetCommand, GetOutput, ListFormat};
use crate::render::{print_table, table};
use kopsrs_ops::load_cluster;
use kopsrs_ops::problems::Problems;
use kopsrs_ops::session as context;
use kopsrs_ops::Session;

pub async fn run(global: &Session, args: GetArgs) -> Result<()> {
    let store = context::open_store(global).await?;
    match args.what {
        GetCommand::Clusters { names, output } => {
            let names = if names.is_empty() {
                global.name.iter().cloned().collect()
            } else {
                names
            };
            // Without --full only the cluster specs are read: one read per cluster.
            let specs: Vec<kopsrs_api::Cluster> = if names.is_empty() && !output.full {
                store
                    .read_all_clusters()
                    .await?
                    .into_iter()
                    .map(|c| c.value)
                    .collect()
            } else {
                let names = if names.is_empty() {
                    store.list_clusters().await?
                } else {
                    names
                };
                let loaded =
                    futures::future::try_join_all(names.iter().map(|n| load_cluster(&store, n)))
                        .await?;
                let mut specs = Vec::new();
                for stored in loaded {
                    specs.push(if output.full {
                        stored.completed(&store)?.0
                    } else {
                        stored.cluster.value
                    });
                }
                specs
            };
            let mut documents = Vec::new();
            let mut table = table(&["NAME", "CLOUD", "ZONES"]);
            for cluster in specs {
                let zones: Vec<String> = cluster
                    .spec
                    .subnets
                    .iter()
                    .flatten()
                    .filter_map(|s| s.zone.clone())
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect();
                table.add_row(vec![
                    cluster.metadata.name.clone(),
                    cluster
                        .spec
                        .cloud_provider
                        .clone()
                        .unwrap_or_else(|| "aws".into()),
                    zones.join(","),
                ]);
                documents.push(Document::Cluster(Box::new(cluster)));
            }
            emit(&output, table, &documents, "No clusters found")
        }
        GetCommand::Instancegroups { names, output } => {
            let name = context::cluster_name(global, None)?;
            let stored = load_cluster(&store, &name).await?;
            let groups = selected_groups(&store, &stored, &names, &output)?;
            let mut table = table(&["NAME", "ROLE", "MACHINETYPE", "MIN", "MAX", "ZONES"]);
            let subnets = stored
                .cluster
                .value
                .spec
                .subnets
                .clone()
                .unwrap_or_default();
            let zones_of = |group: &InstanceGroup| {
                let zones: std::collections::BTreeSet<String> = group
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
                zones.into_iter().collect::<Vec<_>>().join(",")
            };
            for group in &groups {
                let spec = &group.spec;
                let number = |n: Option<i32>| n.map(|n| n.to_string()).unwrap_or_default();
                table.add_row(vec![
                    group.metadata.name.clone(),
                    group
                        .role()
                        .map(|r| {
                            if r == kopsrs_api::Role::ControlPlane {
                                "ControlPlane"
                            } else {
                                r.as_str()
                            }
                        })
                        .unwrap_or("?")
                        .to_string(),
                    spec.machine_type.clone().unwrap_or_default(),
                    number(spec.min_size),
                    number(spec.max_size),
                    zones_of(group),
                ]);
            }
            let documents: Vec<Document> = groups
                .into_iter()
                .map(|g| Document::InstanceGroup(Box::new(g)))
                .collect();
            emit(&output, table, &documents, "No instance groups found")
        }
        GetCommand::All { cluster, output } => {
            let name = context::cluster_name(global, cluster.as_deref())?;
            let stored = load_cluster(&store, &name).await?;
            let (cluster, groups) = if output.full {
                stored.completed(&store)?
            } else {
                (stored.cluster.value.clone(), stored.group_values())
            };
            let mut documents = vec![Document::Cluster(Box::new(cluster))];
            documents.extend(
                groups
                    .into_iter()
                    .map(|g| Document::InstanceGroup(Box::new(g))),
            );
            let mut table = table(&["KIND", "NAME"]);
            for d in &documents {
                let (kind, name) = d
                    .describe()
                    .split_once('/')
                    .map(|(k, n)| (k.to_string(), n.to_string()))
                    .unwrap_or_default();
                table.add_row(vec![kind, name]);
            }
            emit(&output, table, &documents, "")
        }
        GetCommand::Sshpublickeys { output } => {
            let name = context::cluster_name(global, None)?;
            load_cluster(&store, &name).await?;
            let keys = store
                .list(&format!("{name}/{}", layout::SSH_PUBLIC_KEYS))
                .await?;
            let mut documents = Vec::new();
            let mut table = table(&["ID", "KEY"]);
            for key in keys {
                let Some(object) = store.get(&key).await? else {
                    continue;
                };
                let text = String::from_utf8_lossy(&object.value).trim().to_string();
                let id = key.rsplit('/').next().unwrap_or_default().to_string();
                let short: String = text.chars().take(40).collect();
                table.add_row(vec![id.clone(), format!("{short}…")]);
                let mut credential = kopsrs_api::SshCredential::new("admin");
                credential.metadata.labels =
                    Some([(kopsrs_api::LABEL_CLUSTER.to_string(), name.clone())].into());
                credential.spec.public_key = Some(text);
                documents.push(Document::SshCredential(Box::new(credential)));
            }
            emit(&output, table, &documents, "No SSH public keys found")
        }
        GetCommand::Keypairs {
            keysets,
            distrusted,
            output,
        } => keypairs(global, &keysets, distrusted, output).await,
        GetCommand::Instances { cluster, output } => {
            instances(global, &store, cluster.as_deref(), output).await
        }
    }
}

fn selected_groups(
    store: &kopsrs_state::StateStore,
    stored: &kopsrs_ops::StoredCluster,
    names: &[String],
    output: &GetOutput,
) -> Result<Vec<InstanceGroup>> {
    let groups = if output.full {
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

fn emit(output: &GetOutput, table: Table, documents: &[Document], empty: &str) -> Result<()> {
    match output.output {
        ListFormat::Table => {
            if documents.is_empty() {
                eprintln!("{empty}");
            } else {
                print_table(&table);
            }
        }
        ListFormat::Yaml => print!("{}", encode_documents(documents, OutputFormat::Yaml)),
        ListFormat::Json => {
            let text = encode_documents(documents, OutputFormat::Json);
            // A single object prints as a one-item list, so scripts see one shape.
            if documents.len() == 1 {
                let value: serde_json::Value = serde_json::from_str(&text)?;
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::Value::Array(vec![value]))?
                );
            } else {
                print!("{text}");
            }
        }
    }
    Ok(())
}

/// `get keypairs`: the keys of the keysets, as a table, YAML or JSON.
async fn keypairs(
    global: &Session,
    keysets: &[String],
    distrusted: bool,
    output: ListFormat,
) -> Result<()> {
    let keys = kopsrs_ops::pki::keypairs(global, keysets, distrusted).await?;
    match output {
        ListFormat::Json => println!("{}", serde_json::to_string_pretty(&keys)?),
        ListFormat::Yaml => print!("{}", serde_yaml_ng::to_string(&keys)?),
        ListFormat::Table if keys.is_empty() => {
            let cluster = context::cluster_name(global, None)?;
            eprintln!("No keypairs found for {cluster}; `kopsrs update cluster` creates them")
        }
        ListFormat::Table => {
            let mut t = table(&["KEYSET", "ID", "PRIMARY", "DISTRUSTED", "EXPIRES"]);
            for k in &keys {
                t.add_row(vec![
                    k.keyset.clone(),
                    k.id.clone(),
                    if k.primary { "yes" } else { "" }.to_string(),
                    k.distrust_timestamp.clone().unwrap_or_default(),
                    k.not_after.clone(),
                ]);
            }
            print_table(&t);
        }
    }
    Ok(())
}

/// `get instances`: the cluster's instances in AWS, as a table, YAML or JSON.
async fn instances(
    global: &Session,
    store: &kopsrs_state::StateStore,
    cluster: Option<&str>,
    output: ListFormat,
) -> Result<()> {
    let name = context::cluster_name(global, cluster)?;
    let prepared = kopsrs_ops::prepare(store, &name, global, false).await?;
    let aws = kopsrs_ops::cluster::aws(global, &prepared.set.region).await;
    let instances = aws.instances(&name).await.map_err(|e| {
        kopsrs_ops::problems::aws(
            &global.settings,
            &format!("reading the instances of {name} from AWS"),
            &e,
            "check the AWS credentials and region",
        )
    })?;
    match output {
        ListFormat::Json => println!("{}", serde_json::to_string_pretty(&instances)?),
        ListFormat::Yaml => print!("{}", serde_yaml_ng::to_string(&instances)?),
        ListFormat::Table if instances.is_empty() => {
            eprintln!("No instances found for {name}")
        }
        ListFormat::Table => {
            let mut table = table(&[
                "ID",
                "INSTANCE-GROUP",
                "ROLE",
                "STATUS",
                "STATE",
                "HEALTH",
                "ZONE",
                "MACHINE-TYPE",
                "INTERNAL-IP",
            ]);
            for i in &instances {
                table.add_row(vec![
                    &i.id,
                    &i.instance_group,
                    &i.role,
                    &i.status,
                    &i.state,
                    &i.health,
                    &i.zone,
                    &i.machine_type,
                    &i.internal_ip,
                ]);
            }
            for line in table.to_string().lines() {
                println!("{}", line.trim());
            }
        }
    }
    Ok(())
}
