//! `create cluster`, `create instancegroup`, `create sshpublickey`, `create -f`.

use anyhow::{Context as _, Result};
use bytes::Bytes;
use kopsrs_api::create::{create_cluster, CreateClusterOptions};
use kopsrs_api::{encode_documents, Cluster, Document, InstanceGroup, OutputFormat, LABEL_CLUSTER};
use kopsrs_state::{layout, now_rfc3339, StateStore};
use sha2::{Digest, Sha256};

use crate::cli::{
    CreateArgs, CreateClusterArgs, CreateCommand, CreateInstanceGroupArgs, DocumentFormat,
};
use kopsrs_ops::load_cluster;
use kopsrs_ops::problems::Problems;
use kopsrs_ops::session as context;
use kopsrs_ops::Session;

pub async fn run(global: &Session, args: CreateArgs) -> Result<()> {
    match args.what {
        Some(CreateCommand::Cluster(cluster)) => create_cluster_command(global, *cluster).await,
        Some(CreateCommand::Instancegroup(group)) => create_instance_group(global, group).await,
        Some(CreateCommand::Sshpublickey(key))
        | Some(CreateCommand::Secret(crate::cli::CreateSecretCommand::Sshpublickey {
            key, ..
        })) => {
            let name = context::cluster_name(global, None)?;
            let store = context::open_store(global).await?;
            load_cluster(&store, &name).await?;
            let text = context::read_input(&key.public_key)?;
            let id = write_ssh_key(&store, &name, &text).await?;
            eprintln!("Added SSH public key {id} to {name}");
            Ok(())
        }
        Some(CreateCommand::Keypair(keypair)) => {
            kopsrs_ops::pki::rotate(global, &keypair.keyset, kopsrs_ops::pki::Rotation::Create).await
        }
        None if !args.filenames.is_empty() => create_from_files(global, &args.filenames).await,
        None => Err(Problems::one("nothing to create", "use `create cluster`, `create instancegroup`, `create sshpublickey` or `create -f FILE`").into()),
    }
}

pub fn print_documents(documents: &[Document], format: Option<DocumentFormat>) {
    let format = match format {
        Some(DocumentFormat::Json) => OutputFormat::Json,
        _ => OutputFormat::Yaml,
    };
    print!("{}", encode_documents(documents, format));
}

async fn create_cluster_command(global: &Session, args: CreateClusterArgs) -> Result<()> {
    let name = context::cluster_name(global, args.cluster.as_deref())?;
    let terraform = match args.target.as_deref() {
        None | Some("direct") => false,
        Some("terraform") => true,
        Some(other) => {
            return Err(Problems::one(
                format!("--target {other:?} is not a target"),
                "use --target direct (the default) or --target terraform; nothing was written",
            )
            .into())
        }
    };
    let state = context::state_url(global)?;
    let options = CreateClusterOptions {
        config_base: Some(format!("{}/{name}", state.trim_end_matches('/'))),
        creation_timestamp: Some(now_rfc3339()),
        name: name.clone(),
        zones: args.zones,
        control_plane_zones: args.control_plane_zones,
        control_plane_count: args.control_plane_count,
        node_count: args.node_count,
        node_size: args.node_size,
        control_plane_size: args.control_plane_size,
        cloud: args.cloud,
        networking: args.networking,
        topology: args.topology,
        bastion: args.bastion,
        dns: args.dns,
        dns_zone: args.dns_zone,
        network_cidrs: args.network_cidr,
        network_id: args.network_id,
        subnet_ids: args.subnets,
        utility_subnet_ids: args.utility_subnets,
        kubernetes_version: args.kubernetes_version,
        channel: args.channel,
        image: args.image,
        node_image: args.node_image,
        control_plane_image: args.control_plane_image,
        ssh_access: args.ssh_access,
        admin_access: args.admin_access,
        api_loadbalancer_type: args.api_loadbalancer_type,
        etcd_clusters: args.etcd_clusters,
        encrypt_etcd_storage: args.encrypt_etcd_storage,
        etcd_storage_type: args.etcd_storage_type,
        ipv6: args.ipv6,
        node_volume_size: args.node_volume_size,
        control_plane_volume_size: args.control_plane_volume_size,
        node_security_groups: args.node_security_groups,
        control_plane_security_groups: args.control_plane_security_groups,
        kubernetes_feature_gates: args.kubernetes_feature_gates,
        cloud_labels: args.cloud_labels,
        instance_manager: args.instance_manager,
        discovery_store: args.discovery_store,
        sets: args.sets,
        unsets: args.unsets,
    };
    let (cluster, groups) = create_cluster(&options).map_err(Problems::from_messages)?;
    kopsrs_ops::cluster::validate(&*global.reporter, &cluster, &groups)?;
    let ssh_key = args
        .ssh_public_key
        .as_deref()
        .map(context::read_input)
        .transpose()?;
    if args.dry_run {
        let mut documents = vec![Document::Cluster(Box::new(cluster))];
        documents.extend(
            groups
                .into_iter()
                .map(|g| Document::InstanceGroup(Box::new(g))),
        );
        print_documents(&documents, args.output);
        return Ok(());
    }
    let store = context::open_or_create_store(global).await?;
    write_new_cluster(&store, &cluster, &groups).await?;
    if let Some(key) = ssh_key {
        write_ssh_key(&store, &name, &key).await?;
    }
    eprintln!(
        "Cluster configuration has been created: {}",
        store.config_base(&name)
    );
    if terraform {
        let out = args.out.clone().unwrap_or_else(|| "out/terraform".into());
        return kopsrs_ops::update::write_terraform(global, &name, &out, args.pins.options()).await;
    }
    if args.yes {
        let options = kopsrs_ops::update::DirectOptions {
            yes: true,
            concurrency: crate::cli::DEFAULT_CONCURRENCY,
            export: Some(kopsrs_ops::pki::ExportOptions::default()),
            pins: args.pins.options(),
            network_checks: true,
            saved: None,
        };
        let report = kopsrs_ops::update::update_direct(global, &name, &options).await?;
        crate::render::update_report(&name, &report);
        return Ok(());
    }
    eprintln!("Review the plan with: kopsrs update cluster --name {name}");
    eprintln!("Create the cluster with: kopsrs update cluster --name {name} --yes");
    eprintln!(
        "Or write it as Terraform with: kopsrs update cluster --name {name} --target terraform --out out/terraform"
    );
    Ok(())
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
            format!("{:?}… is not an SSH public key", key.chars().take(20).collect::<String>()),
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

async fn create_instance_group(global: &Session, args: CreateInstanceGroupArgs) -> Result<()> {
    let name = context::cluster_name(global, None)?;
    let store = context::open_store(global).await?;
    let stored = load_cluster(&store, &name).await?;
    let role = kopsrs_api::Role::parse(&args.role).ok_or_else(|| {
        Problems::one(
            format!("--role {}: not a role", args.role),
            format!("use one of {}", kopsrs_api::Role::ACCEPTED),
        )
    })?;
    let subnets = if args.subnets.is_empty() {
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
        args.subnets.clone()
    };
    let value = serde_json::json!({
        "apiVersion": kopsrs_api::API_VERSION,
        "kind": "InstanceGroup",
        "metadata": {"name": args.group, "creationTimestamp": now_rfc3339(), "labels": {LABEL_CLUSTER: name}},
        "spec": {"role": role.as_str(), "subnets": subnets},
    });
    let group: InstanceGroup =
        serde_json::from_value(value).context("building the instance group")?;
    let flags = crate::cli::EditFlags {
        sets: args.sets.clone(),
        unsets: Vec::new(),
    };
    let group: InstanceGroup =
        kopsrs_ops::edit::apply_assignments(&group, &flags.sets, &flags.unsets, "instancegroup.")?;
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
    kopsrs_ops::cluster::validate(&*global.reporter, &stored.cluster.value, &groups)?;
    if args.dry_run {
        print_documents(&[Document::InstanceGroup(Box::new(group))], args.output);
        return Ok(());
    }
    store.write_instance_group(&name, &group, None).await?;
    eprintln!("Created instance group {}/{}", name, group.metadata.name);
    if args.edit {
        eprintln!(
            "kopsrs opens no editor here; change it with `kopsrs edit instancegroup {} --name {name}`",
            group.metadata.name
        );
    }
    Ok(())
}

/// `create -f`: every document of every file, checked together before anything is written.
async fn create_from_files(global: &Session, files: &[std::path::PathBuf]) -> Result<()> {
    let documents = context::read_sourced(global, files)?;
    let store = context::open_or_create_store(global).await?;
    let plan = kopsrs_ops::specs::group_by_cluster(global.name.as_deref(), documents)?;
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
            (None, Some(c)) => c.value.clone(),
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
        if let Err(e) = kopsrs_ops::cluster::validate(&*global.reporter, &cluster, &all_groups) {
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
        eprintln!(
            "Created {what}{} instance group(s), {} SSH key(s) in {name}",
            set.groups.len(),
            set.ssh_keys.len()
        );
    }
    Ok(())
}
