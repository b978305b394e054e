//! `create cluster`, `create instancegroup`, `create sshpublickey`, `create -f`: flags to
//! `kopsrs_ops::create`, and what was made (the specs themselves with `--dry-run`).

use anyhow::Result;
use kopsrs_api::create::CreateClusterOptions;
use kopsrs_api::{encode_documents, Document, OutputFormat};

use crate::cli::{
    CreateArgs, CreateClusterArgs, CreateCommand, CreateInstanceGroupArgs, DocumentFormat,
};
use kopsrs_ops::create;
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
            let added = create::add_ssh_key(global, &key.public_key).await?;
            eprintln!("Added SSH public key {} to {}", added.id, added.cluster);
            Ok(())
        }
        Some(CreateCommand::Keypair(keypair)) => {
            kopsrs_ops::pki::rotate(global, &keypair.keyset, kopsrs_ops::pki::Rotation::Create).await
        }
        None if !args.filenames.is_empty() => create::create_from_files(global, &args.filenames).await,
        None => Err(Problems::one("nothing to create", "use `create cluster`, `create instancegroup`, `create sshpublickey` or `create -f FILE`").into()),
    }
}

fn print_documents(documents: &[Document], format: Option<DocumentFormat>) {
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
    let options = CreateClusterOptions {
        // Set by the operation: under the state store, at the time of the write.
        config_base: None,
        creation_timestamp: None,
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
    let new = create::create_cluster(
        global,
        options,
        args.ssh_public_key.as_deref(),
        args.dry_run,
        args.yes && !terraform,
    )
    .await?;
    let Some(config_base) = &new.config_base else {
        let mut documents = vec![Document::Cluster(Box::new(new.cluster))];
        documents.extend(
            new.groups
                .into_iter()
                .map(|g| Document::InstanceGroup(Box::new(g))),
        );
        print_documents(&documents, args.output);
        return Ok(());
    };
    eprintln!("Cluster configuration has been created: {config_base}");
    if terraform {
        let out = args.out.clone().unwrap_or_else(|| "out/terraform".into());
        return kopsrs_ops::update::write_terraform(global, &name, &out, args.pins.options()).await;
    }
    if args.yes {
        let options = kopsrs_ops::update::DirectOptions {
            yes: true,
            concurrency: crate::cli::DEFAULT_CONCURRENCY,
            export: Some(kopsrs_ops::pki::ExportOptions {
                keep_existing: true,
                ..Default::default()
            }),
            pins: args.pins.options(),
            network_checks: true,
            saved: None,
            scope: Default::default(),
            force: false,
            spec: None,
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

async fn create_instance_group(global: &Session, args: CreateInstanceGroupArgs) -> Result<()> {
    let options = create::GroupOptions {
        group: args.group.clone(),
        role: args.role.clone(),
        subnets: args.subnets.clone(),
        sets: args.sets.clone(),
        dry_run: args.dry_run,
    };
    let new = create::create_instance_group(global, &options).await?;
    let (name, group) = (&new.cluster, new.group);
    if args.dry_run {
        print_documents(&[Document::InstanceGroup(Box::new(group))], args.output);
        return Ok(());
    }
    eprintln!("Created instance group {}/{}", name, group.metadata.name);
    if args.edit {
        eprintln!(
            "kopsrs opens no editor here; change it with `kopsrs edit instancegroup {} --name {name}`",
            group.metadata.name
        );
    }
    Ok(())
}
