//! `get clusters|instancegroups|all|sshpublickeys|instances`.

use anyhow::Result;
use comfy_table::{presets, Table};
use kopsrs_api::{encode_documents, Document, InstanceGroup, OutputFormat};
use kopsrs_state::layout;

use super::load_cluster;
use crate::cli::{GetArgs, GetCommand, GetOutput, GlobalArgs, ListFormat};
use crate::context;
use crate::problems::Problems;

pub async fn run(global: &GlobalArgs, args: GetArgs) -> Result<()> {
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
        } => super::pki::get_keypairs(global, &keysets, distrusted, output).await,
        GetCommand::Instances { cluster, output } => {
            let name = context::cluster_name(global, cluster.as_deref())?;
            let prepared = crate::pipeline::prepare(&store, &name, &global.settings, false).await?;
            let aws = kopsrs_aws::Aws::connect(&prepared.set.region).await;
            let instances = aws.instances(&name).await.map_err(|e| {
                crate::problems::aws(
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
    }
}

fn selected_groups(
    store: &kopsrs_state::StateStore,
    stored: &super::StoredCluster,
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

pub(super) fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table.load_preset(presets::NOTHING);
    table.set_header(header.to_vec());
    table
}

/// Prints a table flush left, as kops's tables are.
pub(super) fn print_table(table: &Table) {
    for line in table.to_string().lines() {
        println!("{}", line.trim());
    }
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
