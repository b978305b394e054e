//! The command line, as clap types. Verbs, flags and environment variables are kops's.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "kopsrs",
    version,
    about = "Kubernetes Operations in Rust: kubectl for clusters",
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct GlobalArgs {
    /// Location of the state store (s3://bucket/prefix, file:///dir, memory://). Default: a
    /// directory under the user's data directory.
    #[arg(long, env = "KOPS_STATE_STORE", global = true)]
    pub state: Option<String>,
    /// Name of the cluster.
    #[arg(long, env = "KOPS_CLUSTER_NAME", global = true)]
    pub name: Option<String>,
    /// A kops config file (YAML or JSON: `state: s3://bucket`, `name: cluster`) for what
    /// neither a flag nor the environment gives. Default: ./.kops.yaml, ~/.kops.yaml,
    /// ~/.config/kops/.kops.yaml, the first that exists.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log verbosity, as kops's `-v N`: accepted so kops command lines run; kopsrs's
    /// messages are the same at every level.
    #[arg(short = 'v', long = "v", global = true, value_name = "LEVEL")]
    pub verbosity: Option<u8>,
    /// Unknown fields in specs, as kubectl's --validate: strict (an error, the default), warn
    /// (dropped with a warning), ignore (dropped silently; kops's own behaviour). For fields
    /// kops stopped reading that old specs still carry; applies to files, edits and the
    /// state store.
    #[arg(long, global = true, value_name = "MODE", default_value = "strict", num_args = 0..=1, require_equals = true, default_missing_value = "strict", value_parser = kopsrs_api::Validation::parse)]
    pub validate: kopsrs_api::Validation,
    /// What the pipeline takes from the environment, read once at start (not a flag).
    #[arg(skip)]
    pub settings: kopsrs_ops::Settings,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a cluster, instance group or SSH key, or everything in files (-f).
    Create(CreateArgs),
    /// List or print clusters, instance groups and SSH keys.
    Get(GetArgs),
    /// Edit a cluster or instance group in $EDITOR, or with --set/--unset.
    Edit(EditArgs),
    /// Replace objects with the content of files.
    Replace(ReplaceArgs),
    /// Compare spec files (git) with the state store, field by field.
    Diff(DiffArgs),
    /// Delete a cluster, an instance group, or the objects in files.
    Delete(DeleteArgs),
    /// Plan and apply a cluster's cloud resources, or write them as Terraform.
    Update(UpdateArgs),
    /// Misc tools: template rendering, JSON Schema.
    Toolbox(ToolboxArgs),
    /// Remove a cluster lock left by a crashed command.
    ForceUnlock(ForceUnlockArgs),
    /// Make a new key primary (rotation).
    #[command(subcommand)]
    Promote(PromoteCommand),
    /// Stop trusting old keys (rotation).
    #[command(subcommand)]
    Distrust(DistrustCommand),
    /// Trust distrusted keys again.
    #[command(subcommand)]
    Trust(TrustCommand),
    /// Export a kubeconfig.
    #[command(subcommand)]
    Export(ExportCommand),
    /// Move a cluster's spec to the channel's recommended Kubernetes version.
    #[command(subcommand)]
    Upgrade(UpgradeCommand),
    /// Replace the instances that run an old launch template, group by group.
    #[command(subcommand)]
    RollingUpdate(RollingUpdateCommand),
    /// Update and roll a cluster in the order upgrades need.
    #[command(subcommand)]
    Reconcile(ReconcileCommand),
    /// Check that a cluster's instances have joined and its nodes and system pods are healthy.
    #[command(subcommand)]
    Validate(ValidateCommand),
    /// Reconcile kops's Cluster and InstanceGroup custom resources continuously (a
    /// Kubernetes controller), or print what installs it.
    #[command(subcommand)]
    Controller(ControllerCommand),
    /// Evaluate Jsonnet: the C++ `jsonnet` command's flags and output, byte for byte.
    #[command(
        disable_version_flag = true,
        after_help = "Examples:\n  kopsrs jsonnet -J lib app.jsonnet\n  kopsrs jsonnet -m generated/ -V env=prod clusters/prod/main.jsonnet\n  kopsrs jsonnet -o out.json -A env=prod app.jsonnet"
    )]
    Jsonnet(crate::commands::jsonnet::JsonnetArgs),
    /// Kubernetes objects from Jsonnet, JSON or YAML: show, tree, check, diff, apply, delete.
    #[command(subcommand, disable_version_flag = true)]
    Manifests(crate::commands::manifests::ManifestsCommand),
    /// Print the version.
    #[command(after_help = "Examples:\n  kopsrs version\n  kopsrs version --short")]
    Version {
        /// Only the version number.
        #[arg(long, default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
        short: bool,
    },
    /// kops verbs kopsrs does not have yet: each says so and what to use instead.
    #[command(external_subcommand)]
    Unsupported(Vec<String>),
    /// Print a shell completion script.
    #[command(
        after_help = "Examples:\n  kopsrs completion bash > /etc/bash_completion.d/kopsrs\n  kopsrs completion zsh > ~/.zfunc/_kopsrs"
    )]
    Completion {
        /// The shell to write the script for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentFormat {
    Yaml,
    Json,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ListFormat {
    #[default]
    Table,
    Yaml,
    Json,
}

#[derive(Args, Debug)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "Examples:\n  # every Cluster, InstanceGroup and SSHCredential in a file (or - for stdin)\n  kopsrs create -f dev.example.com.yaml\n  kopsrs toolbox template -t cluster.yaml --values values.yaml | kopsrs create -f -"
)]
pub struct CreateArgs {
    /// Files (or - for stdin) holding Cluster, InstanceGroup and SSHCredential documents.
    #[arg(short = 'f', long = "filename")]
    pub filenames: Vec<PathBuf>,
    #[command(subcommand)]
    pub what: Option<CreateCommand>,
}

#[derive(Subcommand, Debug)]
pub enum CreateCommand {
    /// Create a cluster spec from flags.
    #[command(
        after_help = "Examples:\n  kopsrs create cluster dev.example.com --zones us-east-1a --state s3://my-kops-state\n  # an HA control plane in a private topology, with a bastion\n  kopsrs create cluster prod.example.com --zones us-east-1a,us-east-1b,us-east-1c --control-plane-zones us-east-1a,us-east-1b,us-east-1c --topology private --bastion --networking cilium\n  # in an existing VPC, printed instead of written\n  kopsrs create cluster dev.example.com --zones us-east-1a --network-id vpc-0abc --dry-run -o yaml"
    )]
    Cluster(Box<CreateClusterArgs>),
    /// Create an instance group.
    #[command(
        alias = "ig",
        alias = "instancegroups",
        after_help = "Examples:\n  kopsrs create instancegroup spot-nodes --name dev.example.com --subnet us-east-1a\n  kopsrs create ig gpu --name dev.example.com --set spec.machineType=g5.xlarge --edit=false"
    )]
    Instancegroup(CreateInstanceGroupArgs),
    /// Add the admin SSH public key.
    #[command(
        after_help = "Examples:\n  kopsrs create sshpublickey --name dev.example.com -i ~/.ssh/id_ed25519.pub"
    )]
    Sshpublickey(CreateSshPublicKeyArgs),
    /// kops's older form: `create secret sshpublickey admin -i FILE`.
    #[command(subcommand)]
    Secret(CreateSecretCommand),
    /// Add a new key to a keyset (or `all`): trusted, not yet primary.
    #[command(
        after_help = "Examples:\n  # first step of a rotation: create, update, promote, roll, distrust\n  kopsrs create keypair all --name dev.example.com"
    )]
    Keypair(KeypairArgs),
}

#[derive(Subcommand, Debug)]
pub enum CreateSecretCommand {
    /// Add the admin SSH public key (as `create sshpublickey`).
    #[command(
        after_help = "Examples:\n  kopsrs create secret sshpublickey admin --name dev.example.com -i ~/.ssh/id_ed25519.pub"
    )]
    Sshpublickey {
        /// The secret's name (kops used `admin`); kopsrs keeps one admin key per cluster.
        secret: Option<String>,
        #[command(flatten)]
        key: CreateSshPublicKeyArgs,
    },
}

#[derive(Args, Debug)]
pub struct KeypairArgs {
    /// The keyset (kubernetes-ca, etcd-ca, apiserver-aggregator-ca, service-account) or `all`.
    pub keyset: String,
}

#[derive(Args, Debug)]
pub struct KeypairIdsArgs {
    /// The keyset, or `all`.
    pub keyset: String,
    /// Key IDs (default: for distrust, every key older than the primary).
    pub ids: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum PromoteCommand {
    /// Make the newest trusted key of a keyset (or `all`) primary.
    #[command(
        after_help = "Examples:\n  kopsrs promote keypair all --name dev.example.com\n  kopsrs promote keypair kubernetes-ca --name dev.example.com"
    )]
    Keypair(KeypairArgs),
}

#[derive(Subcommand, Debug)]
pub enum DistrustCommand {
    /// Stop trusting keys of a keyset (or `all`): by ID, or every key older than the primary.
    #[command(
        after_help = "Examples:\n  # last step of a rotation, once every node has rolled\n  kopsrs distrust keypair all --name dev.example.com"
    )]
    Keypair(KeypairIdsArgs),
}

#[derive(Subcommand, Debug)]
pub enum TrustCommand {
    /// Trust distrusted keys of a keyset again.
    #[command(
        after_help = "Examples:\n  # undo a distrust: the key IDs are in `kopsrs get keypairs --distrusted`\n  kopsrs trust keypair kubernetes-ca 7301498472538224512 --name dev.example.com"
    )]
    Keypair(KeypairIdsArgs),
}

#[derive(Subcommand, Debug)]
pub enum ExportCommand {
    /// Write the cluster's entry into a kubeconfig and make it the current context.
    #[command(
        alias = "kubecfg",
        after_help = "Examples:\n  kopsrs export kubeconfig dev.example.com --admin\n  kopsrs export kubeconfig --name dev.example.com --admin=1h --kubeconfig ./dev.kubeconfig\n  kopsrs export kubeconfig --all --admin"
    )]
    Kubeconfig(ExportKubeconfigArgs),
}

#[derive(Subcommand, Debug)]
pub enum UpgradeCommand {
    /// Set spec.kubernetesVersion to the channel's recommendation (the next minor version's
    /// recommended release, kubeadm upgrading one minor version at a time), or to a version.
    #[command(
        after_help = "Examples:\n  kopsrs upgrade cluster dev.example.com\n  kopsrs upgrade cluster dev.example.com --yes && kopsrs update cluster dev.example.com --yes\n  kopsrs upgrade cluster dev.example.com --kubernetes-version 1.31.4 --yes"
    )]
    Cluster(UpgradeClusterArgs),
}

#[derive(Args, Debug)]
pub struct UpgradeClusterArgs {
    /// The cluster (or --name).
    pub cluster: Option<String>,
    /// Upgrade to this version instead of the channel's recommendation.
    #[arg(long, value_name = "VERSION")]
    pub kubernetes_version: Option<String>,
    /// Write the change (otherwise only print it).
    #[arg(long, default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
    pub yes: bool,
}

#[derive(Subcommand, Debug)]
pub enum RollingUpdateCommand {
    /// Replace, group by group, the instances whose launch-template version is not their
    /// group's (or that are detached or annotated kops.k8s.io/needs-update): bastions,
    /// control planes one at a time, API servers, then nodes, validating the cluster after
    /// every step. Without --yes, only print which groups need it.
    #[command(
        after_help = "Examples:\n  kopsrs rolling-update cluster dev.example.com\n  kopsrs rolling-update cluster dev.example.com --yes\n  kopsrs rolling-update cluster dev.example.com --instance-group nodes --force --yes\n  kopsrs rolling-update cluster dev.example.com --cloudonly --yes"
    )]
    Cluster(RollingUpdateClusterArgs),
}

#[derive(Args, Debug, Clone)]
pub struct RollingUpdateClusterArgs {
    /// The cluster (or --name).
    pub cluster: Option<String>,
    /// Replace the instances (otherwise only print what needs replacing).
    #[arg(short = 'y', long, default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
    pub yes: bool,
    /// Replace every instance, current or not.
    #[arg(long, default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
    pub force: bool,
    /// Do not use the Kubernetes API: no validation, no draining; instances are replaced
    /// one interval apart (for a cluster whose API does not answer).
    #[arg(long, default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
    pub cloudonly: bool,
    /// Only these instance groups (repeatable, or comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "NAME")]
    pub instance_group: Vec<String>,
    /// Only instance groups of these roles: control-plane (or master), apiserver, node,
    /// bastion.
    #[arg(long, value_delimiter = ',', value_name = "ROLE")]
    pub instance_group_roles: Vec<String>,
    #[command(flatten)]
    pub roll: RollFlags,
}

/// How instances are replaced: the flags `rolling-update cluster` and `reconcile cluster`
/// share.
#[derive(Args, Debug, Clone)]
pub struct RollFlags {
    /// How long a Node's pods may take to leave it.
    #[arg(long, default_value = "15m", value_parser = duration, value_name = "DURATION")]
    pub drain_timeout: std::time::Duration,
    /// The pause between draining a Node and terminating its instance.
    #[arg(long, default_value = "5s", value_parser = duration, value_name = "DURATION")]
    pub post_drain_delay: std::time::Duration,
    /// How long the cluster may take to validate after a step.
    #[arg(long, default_value = "15m", value_parser = duration, value_name = "DURATION")]
    pub validation_timeout: std::time::Duration,
    /// Consecutive successful validations needed after a step.
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub validate_count: u32,
    /// Time between bastion replacements, and between validations of bastion groups.
    #[arg(long, default_value = "15s", value_parser = duration, value_name = "DURATION")]
    pub bastion_interval: std::time::Duration,
    /// Time between control-plane replacements, and between validations after one.
    #[arg(long, alias = "master-interval", default_value = "15s", value_parser = duration, value_name = "DURATION")]
    pub control_plane_interval: std::time::Duration,
    /// Time between node replacement rounds, and between validations after one.
    #[arg(long, default_value = "15s", value_parser = duration, value_name = "DURATION")]
    pub node_interval: std::time::Duration,
    /// Stop when a Node cannot be drained (false: terminate it anyway).
    #[arg(long, default_value_t = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
    pub fail_on_drain_error: bool,
    /// Stop when the cluster does not validate in time (false: go on after a warning).
    #[arg(long, default_value_t = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
    pub fail_on_validate_error: bool,
    /// The kubeconfig to read (default: $KUBECONFIG, else ~/.kube/config); its context
    /// named after the cluster is used.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum ControllerCommand {
    /// Run the controller: watch Cluster and InstanceGroup resources (kops.k8s.io/v1alpha2)
    /// and apply each cluster as `update cluster --yes` does, its status and Events written
    /// back. docs/controller.md.
    #[command(
        after_help = "Examples:\n  kopsrs controller run --state s3://clusters-state\n  kopsrs controller run --namespace team-a --workers 8 --metrics-address 0.0.0.0:8080"
    )]
    Run(ControllerRunArgs),
    /// Print the objects that install the controller: its CustomResourceDefinitions,
    /// namespace, service account, RBAC and Deployment.
    #[command(
        after_help = "Examples:\n  kopsrs controller install --state s3://clusters-state | kubectl apply -f -"
    )]
    Install(ControllerInstallArgs),
    /// Make a cluster the CLI manages into custom resources the controller manages, with no
    /// cloud change.
    #[command(
        after_help = "Examples:\n  kopsrs controller adopt dev.example.com --namespace team-a"
    )]
    Adopt(ControllerAdoptArgs),
    /// Hand a cluster the controller manages back to the CLI: its custom resources are
    /// deleted, its cloud and state stay.
    #[command(after_help = "Examples:\n  kopsrs controller release dev.example.com")]
    Release(ControllerReleaseArgs),
}

#[derive(clap::Args, Debug)]
pub struct ManagementArgs {
    /// The management cluster's kubeconfig (default: $KUBECONFIG, ~/.kube/config).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context (default: the current one).
    #[arg(long)]
    pub context: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct ControllerAdoptArgs {
    /// The cluster.
    pub cluster: Option<String>,
    /// The namespace its resources go to.
    #[arg(long, short = 'n')]
    pub namespace: String,
    #[command(flatten)]
    pub management: ManagementArgs,
}

#[derive(clap::Args, Debug)]
pub struct ControllerReleaseArgs {
    /// The cluster.
    pub cluster: Option<String>,
    #[command(flatten)]
    pub management: ManagementArgs,
}

#[derive(clap::Args, Debug)]
pub struct ControllerRunArgs {
    /// Where the management cluster is (no kubeconfig file: the pod's service account).
    #[command(flatten)]
    pub management: ManagementArgs,
    /// Watch only this namespace (default: all).
    #[arg(long)]
    pub namespace: Option<String>,
    /// Clusters reconciled at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub workers: u16,
    /// AWS changes at once within one cluster's apply.
    #[arg(long, default_value_t = DEFAULT_CONCURRENCY, value_parser = clap::value_parser!(u16).range(1..=100))]
    pub concurrency: u16,
    /// How often an unchanged cluster is planned again, to find drift.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub resync: std::time::Duration,
    /// How long one read of an account and region's resources serves the plans of its
    /// clusters (any change the controller makes there drops it at once); 0s: every plan
    /// reads for itself.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub shared_reads: std::time::Duration,
    /// Kubeconfig files with a context per workload cluster, named after it, that rolls use
    /// (repeatable; default: a kubeconfig exported from each cluster's state store with an
    /// admin certificate).
    #[arg(long)]
    pub workload_kubeconfig: Vec<std::path::PathBuf>,
    /// Leader election's Lease namespace.
    #[arg(long, default_value = "kopsrs-system")]
    pub lease_namespace: String,
    /// Leader election's Lease name; empty: no leader election (one replica only).
    #[arg(long, default_value = "kopsrs-controller")]
    pub lease_name: String,
    /// How long a leader's Lease lasts without renewal.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    pub lease_duration: std::time::Duration,
    /// This replica's name in the Lease (default: the host name and process ID).
    #[arg(long)]
    pub identity: Option<String>,
    #[command(flatten)]
    pub pins: AddonPinArgs,
    /// Skip the network checks of clusters in an existing VPC.
    #[arg(long, default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
    pub skip_network_checks: bool,
    /// Serve /metrics (Prometheus), /healthz and /readyz on this address (default: not served).
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics_address: Option<std::net::SocketAddr>,
}

#[derive(clap::Args, Debug)]
pub struct ControllerInstallArgs {
    /// The namespace the controller runs in.
    #[arg(long, default_value = "kopsrs-system")]
    pub namespace: String,
    /// The controller's image.
    #[arg(long, default_value = concat!("ghcr.io/kopsrs/kopsrs:v", env!("CARGO_PKG_VERSION")))]
    pub image: String,
    /// Replicas: one leads, the others wait.
    #[arg(long, default_value_t = 2)]
    pub replicas: u32,
    /// An IAM role for the controller's service account (IRSA).
    #[arg(long)]
    pub role_arn: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = DocumentFormat::Yaml)]
    pub output: DocumentFormat,
}

#[derive(Subcommand, Debug)]
pub enum ReconcileCommand {
    /// Update and roll the cluster in the order the version skew policy needs: the control
    /// plane's cloud changes, its roll, the other groups' cloud changes, their roll, then the
    /// deletions kept for the roll. The way to apply `upgrade cluster`. Without --yes, print
    /// the plan of each step. Run it again after an interruption: it resumes.
    #[command(
        after_help = "Examples:\n  kopsrs upgrade cluster dev.example.com --yes\n  kopsrs reconcile cluster dev.example.com\n  kopsrs reconcile cluster dev.example.com --yes"
    )]
    Cluster(ReconcileClusterArgs),
}

#[derive(Args, Debug, Clone)]
pub struct ReconcileClusterArgs {
    /// The cluster (or --name).
    pub cluster: Option<String>,
    /// Change the cloud and replace instances (otherwise only print each step's plan).
    #[arg(short = 'y', long, default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
    pub yes: bool,
    /// How many AWS changes run at once.
    #[arg(long, default_value_t = DEFAULT_CONCURRENCY, value_parser = clap::value_parser!(u16).range(1..=100))]
    pub concurrency: u16,
    /// After the control plane's update, export a kubeconfig for the cluster.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool)]
    pub create_kube_config: bool,
    #[command(flatten)]
    pub pins: AddonPinArgs,
    /// Skip the network checks for a cluster in an existing VPC (`validate network`).
    #[arg(long, default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
    pub skip_network_checks: bool,
    /// How long the Kubernetes API may take to answer before the control plane's roll.
    #[arg(long, default_value = "10m", value_parser = duration, value_name = "DURATION")]
    pub api_wait: std::time::Duration,
    #[command(flatten)]
    pub roll: RollFlags,
}

#[derive(Subcommand, Debug)]
pub enum ValidateCommand {
    /// Every instance group at its target size, every instance joined as a Node, Nodes
    /// Ready, control-plane pods running, system-critical pods ready. Exit 1 when not valid.
    #[command(
        after_help = "Examples:\n  kopsrs validate cluster dev.example.com\n  kopsrs validate cluster dev.example.com --wait 10m\n  kopsrs validate cluster dev.example.com -o json"
    )]
    Cluster(ValidateClusterArgs),
    /// Check the cluster's VPC before and after it is used: CIDRs, DNS, subnets (overlaps,
    /// zones, pod/service CIDRs), default routes, NAT gateways, peerings, network ACLs,
    /// load-balancer tags. Exit 1 on any failed check; warnings do not fail.
    #[command(
        after_help = "Examples:\n  kopsrs validate network dev.example.com\n  kopsrs validate network --name dev.example.com -o json"
    )]
    Network(ValidateNetworkArgs),
}

#[derive(Args, Debug)]
pub struct ValidateNetworkArgs {
    /// The cluster (or --name).
    pub cluster: Option<String>,
    /// Output format: table, or json (`{"checks": [{"check", "status", "resource", "message", "hint"}]}`).
    #[arg(short, long, value_enum, default_value_t = DiffFormat::Text)]
    pub output: DiffFormat,
}

#[derive(Args, Debug)]
pub struct ValidateClusterArgs {
    /// The cluster (or --name).
    pub cluster: Option<String>,
    /// Keep validating until the cluster is valid or this much time has passed (0: once).
    #[arg(long, default_value = "0s", value_parser = duration, value_name = "DURATION")]
    pub wait: std::time::Duration,
    /// With --wait: the number of consecutive passes the cluster must pass.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub count: u32,
    /// With --wait: the time between passes.
    #[arg(long, default_value = "10s", value_parser = duration, value_name = "DURATION")]
    pub interval: std::time::Duration,
    /// Worker nodes that may be not Ready without failing validation.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub max_unready_nodes: usize,
    /// The kubeconfig to read (default: $KUBECONFIG, else ~/.kube/config); its context
    /// named after the cluster is used.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = ListFormat::Table)]
    pub output: ListFormat,
}

/// A duration as kops's flags take it (`30s`, `10m`, `1h30m`).
fn duration(text: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("{text:?} is not a duration ({e}); write e.g. 30s, 10m or 1h30m"))
}

#[derive(Args, Debug, Default, Clone)]
pub struct ExportKubeconfigArgs {
    /// The cluster (or --name).
    pub cluster: Option<String>,
    /// Add an admin client certificate (organisation system:masters) valid this long.
    #[arg(long, num_args = 0..=1, default_missing_value = "18h", value_name = "DURATION")]
    pub admin: Option<String>,
    /// The kubeconfig to merge into (default: $KUBECONFIG, else ~/.kube/config).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Use the internal API name (api.internal.<cluster>).
    #[arg(long, default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
    pub internal: bool,
    /// Use this API server URL.
    #[arg(long)]
    pub api_server: Option<String>,
    /// The context's user: an existing user of the kubeconfig (e.g. one an auth plugin
    /// fills), instead of an admin certificate.
    #[arg(long, value_name = "USER", conflicts_with = "admin")]
    pub user: Option<String>,
    /// Export every cluster in the state store.
    #[arg(long, default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
    pub all: bool,
}

#[derive(Args, Debug, Default)]
pub struct CreateClusterArgs {
    /// Name of the cluster (or --name, or KOPS_CLUSTER_NAME).
    pub cluster: Option<String>,
    /// Zones in which to run the cluster.
    #[arg(long, value_delimiter = ',')]
    pub zones: Vec<String>,
    /// Zones in which to run control-plane nodes (an odd number).
    #[arg(long, value_delimiter = ',', alias = "master-zones")]
    pub control_plane_zones: Vec<String>,
    /// Number of control-plane nodes (default: one per control-plane zone).
    #[arg(long, alias = "master-count")]
    pub control_plane_count: Option<u32>,
    /// Total number of worker nodes (default: one per zone).
    #[arg(long)]
    pub node_count: Option<u32>,
    /// Instance type of the worker nodes.
    #[arg(long)]
    pub node_size: Option<String>,
    /// Instance type of the control-plane nodes.
    #[arg(long, alias = "master-size")]
    pub control_plane_size: Option<String>,
    /// Cloud provider (aws).
    #[arg(long)]
    pub cloud: Option<String>,
    /// Networking: cilium (default), cilium-eni, calico, flannel, kindnet, amazonvpc, kubenet, cni, …
    #[arg(long)]
    pub networking: Option<String>,
    /// Network topology: public or private.
    #[arg(short = 't', long)]
    pub topology: Option<String>,
    /// Add a bastion instance group (private topology).
    #[arg(long, default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
    pub bastion: bool,
    /// DNS: public, private or none.
    #[arg(long)]
    pub dns: Option<String>,
    /// The Route53 hosted zone to use.
    #[arg(long)]
    pub dns_zone: Option<String>,
    /// Network CIDRs of the VPC, comma-separated or repeated: the first is
    /// `spec.networkCIDR`, the rest `spec.additionalNetworkCIDRs`.
    #[arg(long, value_delimiter = ',')]
    pub network_cidr: Vec<String>,
    /// An existing VPC to use.
    #[arg(long, alias = "vpc")]
    pub network_id: Option<String>,
    /// Existing subnets to use, one per zone.
    #[arg(long, value_delimiter = ',')]
    pub subnets: Vec<String>,
    /// Existing utility subnets to use, one per zone.
    #[arg(long, value_delimiter = ',')]
    pub utility_subnets: Vec<String>,
    /// Kubernetes version.
    #[arg(long)]
    pub kubernetes_version: Option<String>,
    /// Channel for default versions.
    #[arg(long)]
    pub channel: Option<String>,
    /// Image for every instance group.
    #[arg(long)]
    pub image: Option<String>,
    /// Image for worker nodes.
    #[arg(long)]
    pub node_image: Option<String>,
    /// Image for control-plane nodes.
    #[arg(long, alias = "master-image")]
    pub control_plane_image: Option<String>,
    /// The admin SSH public key file.
    #[arg(long)]
    pub ssh_public_key: Option<PathBuf>,
    /// CIDRs allowed to SSH to the nodes (default: anywhere).
    #[arg(long, value_delimiter = ',')]
    pub ssh_access: Vec<String>,
    /// CIDRs allowed to reach the Kubernetes API (default: anywhere).
    #[arg(long, value_delimiter = ',')]
    pub admin_access: Vec<String>,
    /// API load balancer: public or internal.
    #[arg(long)]
    pub api_loadbalancer_type: Option<String>,
    /// etcd clusters (default main,events).
    #[arg(long, value_delimiter = ',')]
    pub etcd_clusters: Vec<String>,
    /// Encrypt the etcd volumes (on unless `--encrypt-etcd-storage=false`, as in kops).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
    pub encrypt_etcd_storage: Option<bool>,
    /// The EBS volume type of the etcd volumes (gp3 unless given), e.g. io1.
    #[arg(long, value_name = "TYPE")]
    pub etcd_storage_type: Option<String>,
    /// IPv6 networking.
    #[arg(long, default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
    pub ipv6: bool,
    /// Root volume size of worker nodes, in GB.
    #[arg(long)]
    pub node_volume_size: Option<i32>,
    /// Root volume size of control-plane nodes, in GB.
    #[arg(long, alias = "master-volume-size")]
    pub control_plane_volume_size: Option<i32>,
    /// Existing security groups added to worker nodes.
    #[arg(long, value_delimiter = ',')]
    pub node_security_groups: Vec<String>,
    /// Existing security groups added to control-plane nodes.
    #[arg(long, value_delimiter = ',', alias = "master-security-groups")]
    pub control_plane_security_groups: Vec<String>,
    /// Feature gates for every component: Name, +Name (on) or -Name (off).
    #[arg(long, value_delimiter = ',')]
    pub kubernetes_feature_gates: Vec<String>,
    /// Tags for all cloud resources: "Owner=John Doe,Team=SRE".
    #[arg(long)]
    pub cloud_labels: Option<String>,
    /// Instance manager: cloudgroups (default) or karpenter.
    #[arg(long)]
    pub instance_manager: Option<String>,
    /// Public store for the service-account issuer discovery documents (IRSA).
    #[arg(long)]
    pub discovery_store: Option<String>,
    /// Set a field: cluster.spec.path=value (repeatable).
    #[arg(long = "set")]
    pub sets: Vec<String>,
    /// Remove a field: cluster.spec.path (repeatable).
    #[arg(long = "unset")]
    pub unsets: Vec<String>,
    /// Print the spec instead of writing it.
    #[arg(long, default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
    pub dry_run: bool,
    /// Output format with --dry-run.
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<DocumentFormat>,
    /// Target for --yes: direct or terraform.
    #[arg(long)]
    pub target: Option<String>,
    /// Output directory for --target terraform.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Also apply the cluster (update cluster --yes).
    #[arg(short = 'y', long, default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
    pub yes: bool,
    #[command(flatten)]
    pub pins: AddonPinArgs,
}

#[derive(Args, Debug)]
pub struct CreateInstanceGroupArgs {
    /// Name of the instance group.
    pub group: String,
    /// Role: Node, ControlPlane (Master), Bastion or APIServer.
    #[arg(long, default_value = "Node")]
    pub role: String,
    /// Subnets of the group (default: every subnet of the cluster usable by the role).
    #[arg(long = "subnet", value_delimiter = ',')]
    pub subnets: Vec<String>,
    /// Print instead of writing.
    #[arg(long, default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
    pub dry_run: bool,
    /// Output format with --dry-run.
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<DocumentFormat>,
    /// Set a field: spec.path=value (repeatable).
    #[arg(long = "set")]
    pub sets: Vec<String>,
    /// kops opens an editor on the new group unless `--edit=false`; kopsrs writes the group
    /// as given either way (change it with --set, or `kopsrs edit instancegroup` after).
    #[arg(long, default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
    pub edit: bool,
}

#[derive(Args, Debug)]
pub struct CreateSshPublicKeyArgs {
    /// The public key file.
    #[arg(short = 'i', long = "ssh-public-key")]
    pub public_key: PathBuf,
}

#[derive(Args, Debug)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "Examples:\n  # all of one cluster: the Cluster, its InstanceGroups and SSH keys, as kops prints them\n  kopsrs get --name dev.example.com -o yaml"
)]
pub struct GetArgs {
    #[command(subcommand)]
    pub what: Option<GetCommand>,
    /// Without a kind: the output of all of the cluster (`--name`).
    #[command(flatten)]
    pub output: GetOutput,
}

#[derive(Args, Debug, Clone)]
pub struct GetOutput {
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t)]
    pub output: ListFormat,
    /// Print the completed spec (defaults filled in).
    #[arg(long, default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
    pub full: bool,
}

#[derive(Subcommand, Debug)]
pub enum GetCommand {
    /// Clusters in the state store.
    #[command(
        alias = "cluster",
        after_help = "Examples:\n  kopsrs get clusters\n  kopsrs get cluster dev.example.com -o yaml > dev.example.com.yaml\n  kopsrs get clusters --full -o json"
    )]
    Clusters {
        /// Clusters to print (default: all).
        names: Vec<String>,
        #[command(flatten)]
        output: GetOutput,
    },
    /// Instance groups of a cluster.
    #[command(
        alias = "instancegroup",
        alias = "ig",
        after_help = "Examples:\n  kopsrs get instancegroups --name dev.example.com\n  kopsrs get ig nodes-us-east-1a --name dev.example.com -o yaml"
    )]
    Instancegroups {
        /// Instance groups to print (default: all of the cluster's).
        names: Vec<String>,
        #[command(flatten)]
        output: GetOutput,
    },
    /// A cluster with its instance groups.
    #[command(
        after_help = "Examples:\n  # the whole spec, ready for git and `kopsrs replace -f`\n  kopsrs get all dev.example.com -o yaml > dev.example.com.yaml"
    )]
    All {
        /// The cluster (or --name).
        cluster: Option<String>,
        #[command(flatten)]
        output: GetOutput,
    },
    /// The admin SSH public keys of a cluster.
    #[command(
        alias = "sshpublickey",
        alias = "secrets",
        after_help = "Examples:\n  kopsrs get sshpublickeys --name dev.example.com"
    )]
    Sshpublickeys {
        #[command(flatten)]
        output: GetOutput,
    },
    /// The keys of the cluster's keysets (never their private material).
    #[command(
        alias = "keypair",
        after_help = "Examples:\n  kopsrs get keypairs --name dev.example.com\n  kopsrs get keypairs kubernetes-ca --distrusted --name dev.example.com -o json"
    )]
    Keypairs {
        /// Keysets to list (default: all).
        keysets: Vec<String>,
        /// Include distrusted keys.
        #[arg(long, default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
        distrusted: bool,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value_t)]
        output: ListFormat,
    },
    /// The cloud instances of a cluster, per instance group, with whether each runs its
    /// group's current launch-template version.
    #[command(
        alias = "instance",
        after_help = "Examples:\n  # which instances still run an old launch template\n  kopsrs get instances dev.example.com"
    )]
    Instances {
        /// The cluster (or --name).
        cluster: Option<String>,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value_t)]
        output: ListFormat,
    },
    /// Every file the cluster's nodes download and every image they run, from the spec
    /// alone (no cloud access); `--copy` copies them to the mirrors `spec.assets` names
    /// (fileRepository, containerRegistry), which the nodes then use.
    #[command(
        alias = "asset",
        after_help = "Examples:\n  # what an air-gapped install needs\n  kopsrs get assets dev.example.com -o yaml\n  # copy it to spec.assets.fileRepository and spec.assets.containerRegistry\n  kopsrs get assets dev.example.com --copy\n  # files to the folder a web server serves as spec.assets.fileRepository\n  kopsrs get assets dev.example.com --copy=files --copy-to /srv/www/k8s"
    )]
    Assets {
        /// The cluster (or --name).
        cluster: Option<String>,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value_t)]
        output: ListFormat,
        /// Copy to the mirrors: `all` (the default of a bare --copy), `files` or `images`.
        #[arg(long, value_enum, num_args = 0..=1, require_equals = true, default_missing_value = "all")]
        copy: Option<CopyWhat>,
        /// Where the files go instead of spec.assets.fileRepository itself: a folder or
        /// s3://BUCKET/PREFIX that serves as it.
        #[arg(long, value_name = "FOLDER|s3://BUCKET/PREFIX")]
        copy_to: Option<String>,
        /// List from the spec and the channel only: no download of the package index or
        /// the addons' manifests (their exact files and images are then not listed).
        #[arg(long, conflicts_with = "copy")]
        offline: bool,
        /// With --copy: succeed although the list is incomplete (what it lacks is still
        /// said); without it, an incomplete mirror is an error after the copy.
        #[arg(long, requires = "copy")]
        allow_incomplete: bool,
    },
}

/// What `get assets --copy` copies.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyWhat {
    /// Files and images.
    All,
    /// The files only.
    Files,
    /// The images only.
    Images,
}

#[derive(Args, Debug)]
pub struct EditArgs {
    #[command(subcommand)]
    pub what: EditCommand,
}

#[derive(Args, Debug, Clone, Default)]
pub struct EditFlags {
    /// Set a field instead of opening an editor: spec.path=value (repeatable).
    #[arg(long = "set")]
    pub sets: Vec<String>,
    /// Remove a field instead of opening an editor: spec.path (repeatable).
    #[arg(long = "unset")]
    pub unsets: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum EditCommand {
    /// Edit the cluster spec.
    #[command(
        after_help = "Examples:\n  kopsrs edit cluster dev.example.com\n  kopsrs edit cluster dev.example.com --set spec.kubernetesVersion=1.31.4\n  kopsrs edit cluster dev.example.com --set spec.cloudLabels=team=infra --unset spec.kubeDNS"
    )]
    Cluster {
        /// The cluster (or --name).
        cluster: Option<String>,
        #[command(flatten)]
        flags: EditFlags,
    },
    /// Edit an instance group.
    #[command(
        alias = "ig",
        alias = "instancegroups",
        after_help = "Examples:\n  kopsrs edit ig nodes-us-east-1a --name dev.example.com\n  kopsrs edit ig nodes-us-east-1a --name dev.example.com --set spec.maxSize=10 --set spec.minSize=3"
    )]
    Instancegroup {
        /// The instance group.
        group: String,
        #[command(flatten)]
        flags: EditFlags,
    },
}

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  kopsrs replace -f dev.example.com.yaml\n  # from git in CI, creating what is new\n  kopsrs replace -f clusters/dev.example.com.yaml --force"
)]
pub struct ReplaceArgs {
    /// Files, folders (recursively: .yaml, .yml, .json) or - with the new objects.
    #[arg(short = 'f', long = "filename", required = true)]
    pub filenames: Vec<PathBuf>,
    /// Create objects that do not exist yet.
    #[arg(long, default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
    pub force: bool,
}

#[derive(Args, Debug)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "Examples:\n  # in CI: has the state store been changed out of band?\n  kopsrs diff -f clusters/ --detailed-exitcode\n  kopsrs diff -f clusters/dev.example.com/ --name dev.example.com -o json\n  kopsrs diff cluster dev.example.com -f clusters/dev.example.com/"
)]
pub struct DiffArgs {
    /// Files, folders (recursively: .yaml, .yml, .json) or - with the specs.
    #[arg(short = 'f', long = "filename")]
    pub filenames: Vec<PathBuf>,
    /// Exit 2 when the files and the state store differ (0 when they agree).
    #[arg(long, default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
    pub detailed_exitcode: bool,
    /// Output format: text, or json (one entry per differing field) for alerting.
    #[arg(short, long, value_enum, default_value_t = DiffFormat::Text)]
    pub output: DiffFormat,
    #[command(subcommand)]
    pub what: Option<DiffCommand>,
}

#[derive(Subcommand, Debug)]
pub enum DiffCommand {
    /// All three layers of one cluster at once: the files (with -f) against the state store,
    /// and the state store against the cloud (the plan of `update cluster`, counted per
    /// action). One exit code.
    #[command(
        after_help = "Examples:\n  kopsrs diff cluster dev.example.com\n  kopsrs diff cluster dev.example.com -f clusters/dev.example.com/ --detailed-exitcode -o json"
    )]
    Cluster(DiffClusterArgs),
}

#[derive(Args, Debug)]
pub struct DiffClusterArgs {
    /// The cluster (or --name).
    pub cluster: Option<String>,
    /// Files, folders or - with the cluster's spec (without: the files are not compared).
    #[arg(short = 'f', long = "filename")]
    pub filenames: Vec<PathBuf>,
    /// Exit 2 when any layer differs (0 when all agree).
    #[arg(long, default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
    pub detailed_exitcode: bool,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = DiffFormat::Text)]
    pub output: DiffFormat,
    #[command(flatten)]
    pub pins: AddonPinArgs,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DiffFormat {
    #[default]
    Text,
    Json,
}

#[derive(Args, Debug)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "Examples:\n  kopsrs delete -f dev.example.com.yaml --yes"
)]
pub struct DeleteArgs {
    /// Delete the objects named in these files.
    #[arg(short = 'f', long = "filename")]
    pub filenames: Vec<PathBuf>,
    /// Really delete (without it, only print what would be deleted).
    #[arg(short = 'y', long, default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
    pub yes: bool,
    #[command(subcommand)]
    pub what: Option<DeleteCommand>,
}

#[derive(Subcommand, Debug)]
pub enum DeleteCommand {
    /// Delete a cluster.
    #[command(
        after_help = "Examples:\n  # what would be deleted\n  kopsrs delete cluster dev.example.com\n  kopsrs delete cluster dev.example.com --yes"
    )]
    Cluster {
        /// The cluster (or --name).
        cluster: Option<String>,
        /// Remove only the spec from the state store, leaving cloud resources.
        #[arg(long, default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
        unregister: bool,
        /// Really delete (without it, only print what would be deleted).
        #[arg(short = 'y', long, default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
        yes: bool,
    },
    /// Delete an instance group.
    #[command(
        alias = "ig",
        alias = "instancegroups",
        after_help = "Examples:\n  kopsrs delete ig spot-nodes --name dev.example.com --yes"
    )]
    Instancegroup {
        /// The instance group.
        group: String,
        /// Really delete (without it, only print what would be deleted).
        #[arg(short = 'y', long, default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
        yes: bool,
    },
    /// Delete one instance of the cluster: cordon and drain its Node, then terminate it
    /// through its auto scaling group, which launches a replacement (first, with --surge).
    /// Control planes go through etcd's gate, as in a rolling update.
    #[command(after_help = "Examples:
  # what would happen
  kopsrs delete instance i-0a5ed581b862d3425 --name dev.example.com
  kopsrs delete instance ip-172-20-40-12.eu-west-1.compute.internal --name dev.example.com --yes")]
    Instance(Box<DeleteInstanceArgs>),
}

#[derive(Args, Debug)]
pub struct DeleteInstanceArgs {
    /// The EC2 instance ID, or the name of its Node.
    pub instance: String,
    /// Really delete (without it, only print what would happen).
    #[arg(short = 'y', long, default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
    pub yes: bool,
    /// Detach the instance from its group first, so the replacement launches before it
    /// goes (kops's default). Control planes and bastions never surge.
    #[arg(long, default_value_t = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
    pub surge: bool,
    /// kops's deletion without the Kubernetes API: not offered (refused with the way).
    #[arg(long, default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
    pub cloudonly: bool,
    #[command(flatten)]
    pub roll: RollFlags,
}

#[derive(Args, Debug)]
pub struct ToolboxArgs {
    #[command(subcommand)]
    pub what: ToolboxCommand,
}

#[derive(Subcommand, Debug)]
pub enum ToolboxCommand {
    /// Render a Go template (kops style, with sprig functions) or a Jinja2 template (.j2).
    #[command(
        after_help = "Examples:\n  kopsrs toolbox template --template cluster.yaml --values values/common.yaml --values values/dev.yaml --snippets snippets --output dev.yaml\n  kopsrs toolbox template --values values.yaml --config-value clusterName"
    )]
    Template(TemplateArgs),
    /// Print the JSON Schema of Cluster and InstanceGroup.
    #[command(
        after_help = "Examples:\n  # for editors: yaml-language-server reads it\n  kopsrs toolbox schema > kops.schema.json\n  kopsrs toolbox schema --kind instancegroup"
    )]
    Schema {
        /// Which document: cluster, instancegroup or all.
        #[arg(long, default_value = "all")]
        kind: String,
    },
    /// The etcd backups the control plane takes: list them, restore one.
    #[command(subcommand)]
    Etcd(EtcdCommand),
    /// Dump a cluster for support: its instances from AWS (group, state, private IP,
    /// launch-template version), its Nodes and pods from the Kubernetes API. When the API
    /// does not answer, the cloud's part is dumped and the reason said.
    #[command(
        after_help = "Examples:\n  kopsrs toolbox dump --name dev.example.com -o json > dump.json"
    )]
    Dump {
        /// Output format: yaml (kops's default) or json.
        #[arg(short = 'o', long, value_enum, default_value_t = DocumentFormat::Yaml)]
        output: DocumentFormat,
        /// The kubeconfig to read (default: $KUBECONFIG, else ~/.kube/config); its context
        /// named after the cluster is used.
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum EtcdCommand {
    /// List the etcd backups in the state store, newest first.
    #[command(
        after_help = "Examples:\n  kopsrs toolbox etcd list-backups --name dev.example.com\n  kopsrs toolbox etcd list-backups --name dev.example.com -o json"
    )]
    ListBackups {
        /// Output format: table or json.
        #[arg(short = 'o', long, value_enum, default_value_t)]
        output: ListFormat,
    },
    /// Restore the cluster's etcd from a backup: every control plane stops its API server
    /// and etcd, restores the snapshot as a new etcd cluster of the current control planes
    /// and starts again. Writes after the backup are lost.
    #[command(
        after_help = "Examples:\n  # check the backup, say what would happen\n  kopsrs toolbox etcd restore-backup 2026-12-07T011500Z --name dev.example.com\n  kopsrs toolbox etcd restore-backup 2026-12-07T011500Z --name dev.example.com --yes --wait 20m"
    )]
    RestoreBackup {
        /// The backup's name, as list-backups prints it.
        backup: String,
        /// Write the restore command (without it: check the backup and stop).
        #[arg(short = 'y', long, default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
        yes: bool,
        /// Wait until every control plane restored and the cluster validates.
        #[arg(long, value_parser = duration, value_name = "DURATION")]
        wait: Option<std::time::Duration>,
        /// The kubeconfig validation reads (default: $KUBECONFIG, else ~/.kube/config).
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
    },
}

#[derive(Args, Debug)]
pub struct TemplateArgs {
    /// Template files or directories (rendered in order; directories recursively, sorted).
    #[arg(
        short = 't',
        long = "template",
        required_unless_present = "config_value",
        value_delimiter = ','
    )]
    pub templates: Vec<PathBuf>,
    /// Values files or directories (YAML or JSON), merged in order.
    #[arg(long = "values", value_delimiter = ',')]
    pub values: Vec<PathBuf>,
    /// Set a value: key.path=value (typed: numbers and booleans are parsed).
    #[arg(long = "set")]
    pub sets: Vec<String>,
    /// Set a value as a string.
    #[arg(long = "set-string")]
    pub set_strings: Vec<String>,
    /// Snippet files or directories: each file, by its name, for `include "NAME" .` and
    /// `template "NAME" .` (Jinja2: `{% include "NAME" %}`).
    #[arg(long = "snippets", value_delimiter = ',')]
    pub snippets: Vec<PathBuf>,
    /// Fail when a template reads a value that is not set (on by default, as in kops).
    #[arg(long, default_value_t = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
    pub fail_on_missing: bool,
    /// Re-format the output as YAML (checks it parses).
    #[arg(long, default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
    pub format_yaml: bool,
    /// Print one top-level value of the merged values (`null` when unset) and stop.
    #[arg(long, value_name = "KEY")]
    pub config_value: Option<String>,
    /// The channel the Channel* functions read: `stable` (built in) or a channel file.
    #[arg(long, default_value = "stable")]
    pub channel: String,
    /// Write here instead of stdout.
    #[arg(long = "output", alias = "out", value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  # the ID is in the refusal of the command that found the lock\n  kopsrs force-unlock 6f1c0a2e --cluster dev.example.com"
)]
pub struct ForceUnlockArgs {
    /// The lock ID printed by the command that is refused.
    pub lock_id: String,
    /// The cluster (or --name).
    #[arg(long = "cluster")]
    pub cluster: Option<String>,
}

#[derive(Args, Debug)]
pub struct UpdateArgs {
    #[command(subcommand)]
    pub what: UpdateCommand,
}

#[derive(Subcommand, Debug)]
pub enum UpdateCommand {
    /// Show what would change in the cloud (dry run), apply it with --yes, or write Terraform.
    #[command(
        after_help = "Examples:\n  kopsrs update cluster dev.example.com\n  kopsrs update cluster dev.example.com --yes\n  # in CI: exit 2 when the cloud differs from the spec\n  kopsrs update cluster dev.example.com --detailed-exitcode -o json\n  kopsrs update cluster dev.example.com --target terraform --out ./terraform\n  # refuse addons without a sha256 pin\n  kopsrs update cluster dev.example.com --yes --require-pinned-addons"
    )]
    Cluster(UpdateClusterArgs),
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Target {
    /// Call the AWS API.
    #[default]
    Direct,
    /// Write Terraform (kubernetes.tf and data/) to --out; no AWS access.
    Terraform,
}

#[derive(Args, Debug)]
pub struct UpdateClusterArgs {
    /// The cluster (or --name).
    pub cluster: Option<String>,
    /// Apply the changes (without it, only print the plan).
    #[arg(short = 'y', long, default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
    pub yes: bool,
    /// Where the changes go: the AWS API (direct) or Terraform files (terraform).
    #[arg(long, value_enum, default_value_t)]
    pub target: Target,
    /// Output directory for --target terraform.
    #[arg(long, default_value = "out/terraform")]
    pub out: PathBuf,
    /// Exit 2 when the plan has changes (0 when there are none), for CI pipelines.
    #[arg(long, default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
    pub detailed_exitcode: bool,
    /// How many AWS changes run at once.
    #[arg(long, default_value_t = DEFAULT_CONCURRENCY, value_parser = clap::value_parser!(u16).range(1..=100))]
    pub concurrency: u16,
    /// How the plan is printed: text (Terraform's layout) or json (for CI; see
    /// docs/plan-json.md). Messages go to stderr either way.
    #[arg(short = 'o', long, value_enum, default_value_t)]
    pub output: PlanFormat,
    /// Print only the plan's summary (changes by action and kind), not each change.
    #[arg(long, default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set, conflicts_with = "output")]
    pub summary: bool,
    /// After --yes, export a kubeconfig for the cluster (as kops does).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool)]
    pub create_kube_config: bool,
    /// With the exported kubeconfig, an admin client certificate valid this long. Without it
    /// (or --user), an existing entry keeps its server and credentials.
    #[arg(long, num_args = 0..=1, default_missing_value = "18h", value_name = "DURATION")]
    pub admin: Option<String>,
    /// With the exported kubeconfig, the context's user: an existing user of the kubeconfig.
    #[arg(long, value_name = "USER", conflicts_with = "admin")]
    pub user: Option<String>,
    #[command(flatten)]
    pub pins: AddonPinArgs,
    /// Skip the network checks `update cluster` makes first for a cluster in an existing VPC
    /// (`validate network`).
    #[arg(long, default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
    pub skip_network_checks: bool,
    /// Save the plan to FILE (the document of `-o json`, with a fingerprint of what it was
    /// made from), for `--plan FILE --yes` to apply later: plan on the pull request, apply
    /// exactly that after merge.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["plan", "yes"])]
    pub out_plan: Option<PathBuf>,
    /// Apply the plan saved in FILE by --out-plan and nothing else: refused, nothing
    /// changed, when the spec or the cloud moved since it was made.
    #[arg(long, value_name = "FILE", requires = "yes")]
    pub plan: Option<PathBuf>,
    /// Only the instance groups of these roles: control-plane (or master), apiserver, node,
    /// bastion; the other groups' changes are held back and shown as such.
    #[arg(long, value_delimiter = ',', value_name = "ROLE")]
    pub instance_group_roles: Vec<String>,
    /// Also delete what running instances may still use (load balancers, target groups,
    /// security groups the spec no longer has): after the roll that moved them off it.
    #[arg(long, default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
    pub prune: bool,
    /// Apply to a cluster `kopsrs controller` manages from a custom resource (the controller
    /// writes the resource's spec back on its next reconcile).
    #[arg(long, default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
    pub force: bool,
}

/// How `update cluster` pins the addons nodes apply (docs/security.md, "Addons").
#[derive(Args, Debug, Clone, Copy)]
pub struct AddonPinArgs {
    /// Download each new addon to record its sha256 (or check the channel's pin) before
    /// anything changes; false for offline runs, which publish unpinned entries as such.
    #[arg(long, env = "KOPSRS_DOWNLOAD_ADDONS", default_value_t = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
    pub download_addons: bool,
    /// Refuse to publish an addon without a sha256 pin (instead of trusting its first
    /// download on a control plane).
    #[arg(long, default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
    pub require_pinned_addons: bool,
}

impl Default for AddonPinArgs {
    fn default() -> Self {
        AddonPinArgs {
            download_addons: true,
            require_pinned_addons: false,
        }
    }
}

impl RollFlags {
    /// The roll's options these flags set (the rest kops's defaults).
    pub fn options(&self) -> kopsrs_ops::rolling::RollOptions {
        kopsrs_ops::rolling::RollOptions {
            drain_timeout: self.drain_timeout,
            post_drain_delay: self.post_drain_delay,
            validation_timeout: self.validation_timeout,
            validate_count: self.validate_count,
            bastion_interval: self.bastion_interval,
            control_plane_interval: self.control_plane_interval,
            node_interval: self.node_interval,
            fail_on_drain_error: self.fail_on_drain_error,
            fail_on_validate_error: self.fail_on_validate_error,
            kubeconfig: self.kubeconfig.clone(),
            ..Default::default()
        }
    }
}

impl AddonPinArgs {
    /// The pipeline's form.
    pub fn options(self) -> kopsrs_ops::addons::PinOptions {
        kopsrs_ops::addons::PinOptions {
            download: self.download_addons,
            require_pinned: self.require_pinned_addons,
        }
    }
}

/// AWS changes run at once unless `--concurrency` says otherwise. 20: an HA apply with
/// 100 ms per call is throughput-bound at 10 (1.30 s against 1.13 s at 20 and 1.14 s at 50,
/// docs/benchmarks.md); the number of calls does not change, and throttling is absorbed by
/// the SDK's adaptive retries.
pub const DEFAULT_CONCURRENCY: u16 = kopsrs_ops::cluster::DEFAULT_CONCURRENCY;

/// The form of `update cluster`'s plan.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PlanFormat {
    /// Terraform's layout.
    #[default]
    Text,
    /// One JSON document (docs/plan-json.md).
    Json,
}

/// A boolean flag's value as Go's `strconv.ParseBool` reads it, so kops's command lines
/// (`--bastion=true`, `--yes=false`) work unchanged: `1 t T TRUE true True` and
/// `0 f F FALSE false False`. Every boolean flag takes it after `=`; alone it means true.
fn go_bool(value: &str) -> Result<bool, String> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        other => Err(format!("{other:?} is not a boolean; use true or false")),
    }
}

#[cfg(test)]
#[path = "cli_tests.rs"]
mod tests;
