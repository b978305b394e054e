//! `get [clusters|instancegroups|all|sshpublickeys|keypairs|instances|assets]`: what
//! `kopsrs_ops::get` reads, as kops's tables, YAML or JSON.

use anyhow::Result;
use comfy_table::Table;
use kopsrs_api::{encode_documents, Document, OutputFormat};

use crate::cli::{CopyWhat, GetArgs, GetCommand, GetOutput, ListFormat};
use crate::render::{print_table, table};
use kopsrs_ops::get;
use kopsrs_ops::session as context;
use kopsrs_ops::Session;

pub async fn run(global: &Session, args: GetArgs) -> Result<()> {
    let store = context::open_store(global).await?;
    let Some(what) = args.what else {
        // kops's `get` without a kind: all of one cluster.
        let documents = get::whole_cluster(global, &store, args.output.full).await?;
        return emit(&args.output, kind_table(&documents), &documents, "");
    };
    match what {
        GetCommand::Clusters { names, output } => {
            let clusters = get::clusters(global, &store, names, output.full).await?;
            let mut documents = Vec::new();
            let mut table = table(&["NAME", "CLOUD", "ZONES"]);
            for listed in clusters.listed {
                let cluster = listed.cluster;
                table.add_row(vec![
                    cluster.metadata.name.clone(),
                    cluster
                        .spec
                        .cloud_provider
                        .clone()
                        .unwrap_or_else(|| "aws".into()),
                    listed.zones.join(","),
                ]);
                documents.push(Document::Cluster(Box::new(cluster)));
            }
            let empty = match clusters.unreadable.is_empty() {
                true => "No clusters found",
                false => "",
            };
            emit(&output, table, &documents, empty)?;
            // What could be listed is; each cluster that could not be read is an error after it.
            match clusters.unreadable.is_empty() {
                true => Ok(()),
                false => Err(kopsrs_ops::Problems(clusters.unreadable).into()),
            }
        }
        GetCommand::Instancegroups { names, output } => {
            let groups = get::instance_groups(global, &store, &names, output.full).await?;
            let mut table = table(&["NAME", "ROLE", "MACHINETYPE", "MIN", "MAX", "ZONES"]);
            for listed in &groups {
                let (group, spec) = (&listed.group, &listed.group.spec);
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
                    listed.zones.join(","),
                ]);
            }
            let documents: Vec<Document> = groups
                .into_iter()
                .map(|g| Document::InstanceGroup(Box::new(g.group)))
                .collect();
            emit(&output, table, &documents, "No instance groups found")
        }
        GetCommand::All { cluster, output } => {
            let documents =
                get::everything(global, &store, cluster.as_deref(), output.full).await?;
            emit(&output, kind_table(&documents), &documents, "")
        }
        GetCommand::Sshpublickeys { output } => {
            let keys = get::ssh_keys(global, &store).await?;
            let mut table = table(&["ID", "KEY"]);
            for key in &keys {
                let short: String = key.key.chars().take(40).collect();
                table.add_row(vec![key.id.clone(), format!("{short}…")]);
            }
            let documents: Vec<Document> = keys.into_iter().map(|k| k.document).collect();
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
        GetCommand::Assets {
            cluster,
            output,
            copy,
            copy_to,
            offline,
            allow_incomplete,
        } => {
            let copy = copy.map(|what| (what, allow_incomplete));
            assets(
                global,
                &store,
                cluster.as_deref(),
                output,
                copy,
                copy_to,
                offline,
            )
            .await
        }
    }
}

async fn assets(
    global: &Session,
    store: &kopsrs_state::StateStore,
    cluster: Option<&str>,
    output: ListFormat,
    copy: Option<(CopyWhat, bool)>,
    copy_to: Option<String>,
    offline: bool,
) -> Result<()> {
    let listed = kopsrs_ops::assets::list(global, store, cluster, !offline).await?;
    if let Some((what, allow_incomplete)) = copy {
        let options = kopsrs_ops::assets::CopyOptions {
            copy_to,
            files: what != CopyWhat::Images,
            images: what != CopyWhat::Files,
        };
        let report = kopsrs_ops::assets::copy(global, &listed, &options).await?;
        eprintln!(
            "Copied {} file(s) ({} MB; {} already there) and {} image(s).",
            report.files_copied,
            report.file_bytes >> 20,
            report.files_present,
            report.images.len()
        );
        let mut problems: Vec<kopsrs_ops::problems::Problem> = report
            .failed
            .iter()
            .map(|line| kopsrs_ops::problems::Problem {
                message: format!("not copied: {line}"),
                hint: None,
            })
            .collect();
        match allow_incomplete {
            true => warn_incomplete(global, &listed),
            // The mirror lacks what the list could not name: nodes would not start.
            false => problems.extend(listed.incomplete.iter().filter(|gap| match gap.of {
                kopsrs_ops::assets::GapKind::Files => options.files,
                kopsrs_ops::assets::GapKind::Images => options.images,
            }).map(|line| {
                kopsrs_ops::problems::Problem {
                    message: format!("the mirror is incomplete: {line}"),
                    hint: Some("copy it yourself and pass --allow-incomplete, or complete the list (a channel of your own with the chart's `images:`)".into()),
                }
            })),
        }
        if !problems.is_empty() {
            return Err(kopsrs_ops::Problems(problems).into());
        }
        return Ok(());
    }
    match output {
        ListFormat::Json => println!("{}", serde_json::to_string_pretty(&listed)?),
        ListFormat::Yaml => print!("{}", serde_yaml_ng::to_string(&listed)?),
        ListFormat::Table => {
            let mut files = table(&["FILE", "SHA256", "MIRROR", "FOR"]);
            for f in &listed.files {
                files.add_row(vec![
                    f.url.as_str(),
                    f.sha256.as_deref().unwrap_or("-"),
                    if f.mirror == f.url { "-" } else { &f.mirror },
                    &f.used_by,
                ]);
            }
            print_table(&files);
            println!();
            let mut images = table(&["IMAGE", "MIRROR", "FOR"]);
            for i in &listed.images {
                images.add_row(vec![
                    i.image.as_str(),
                    if i.mirror == i.image { "-" } else { &i.mirror },
                    &i.used_by,
                ]);
            }
            print_table(&images);
        }
    }
    warn_incomplete(global, &listed);
    Ok(())
}

/// Says what the list lacks, on stderr.
fn warn_incomplete(global: &Session, listed: &kopsrs_ops::assets::Assets) {
    for line in &listed.incomplete {
        global.reporter.warn(
            &format!("not listed: {line}"),
            Some("a mirror without it is incomplete: nodes that need it will not start"),
        );
    }
}

/// One row per document: its kind and name.
fn kind_table(documents: &[Document]) -> Table {
    let mut table = table(&["KIND", "NAME"]);
    for d in documents {
        let (kind, name) = d
            .describe()
            .split_once('/')
            .map(|(k, n)| (k.to_string(), n.to_string()))
            .unwrap_or_default();
        table.add_row(vec![kind, name]);
    }
    table
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
    let (name, instances) = get::instances(global, store, cluster).await?;
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
