//! `update cluster`: the plan against the cloud (with `yes`, applied), or Terraform files;
//! after either, the completed spec and the addon channel go back to the state store.

use std::path::Path;

use anyhow::{Context as _, Result};
use kopsrs_api::{encode_documents, Document, OutputFormat};
use kopsrs_aws::Aws;
use kopsrs_engine::{Fingerprint, Plan, PlanDocument, FORMAT_VERSION};
use kopsrs_state::{layout, StateStore};

use crate::cluster::{exec_options, locked, prepare, Prepared};
use crate::problems::Problems;
use crate::Session;

/// What `update cluster` does on the direct target.
#[derive(Debug, Clone, Default)]
pub struct DirectOptions {
    /// Apply (otherwise only plan).
    pub yes: bool,
    /// How many AWS changes run at once.
    pub concurrency: u16,
    /// After an apply, export a kubeconfig with these settings.
    pub export: Option<crate::pki::ExportOptions>,
    /// How addon downloads are pinned.
    pub pins: crate::addons::PinOptions,
    /// For a cluster in an existing VPC, check the network first (`validate network`).
    pub network_checks: bool,
    /// Apply this saved plan (`--plan FILE`) and nothing else: refused, nothing changed,
    /// when the plan made now is not the same (the spec or the cloud moved since).
    pub saved: Option<PlanDocument>,
    /// What this run changes: every role's groups or some, deferred deletions or not.
    pub scope: Scope,
    /// Apply to a cluster `kopsrs controller` manages (`--force`; the controller itself).
    pub force: bool,
    /// The spec to use instead of the store's (the controller's custom resources): planned
    /// as given, and with `yes` written to the store under the cluster lock once the plan is
    /// made (and matches `saved`), before anything else; each write conditional on the
    /// version read. Without `yes` nothing is written.
    pub spec: Option<std::sync::Arc<(kopsrs_api::Cluster, Vec<kopsrs_api::InstanceGroup>)>>,
}

/// What one update changes of the plan it finds; the rest is held back
/// ([`kopsrs_engine::Plan::held`]) and shown as such.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// Only the instance groups of these roles (`--instance-group-roles`; empty: all).
    /// Changes of other groups' launch templates, auto scaling groups and hooks wait.
    pub roles: Vec<kopsrs_api::Role>,
    /// Also delete what running instances may still use (a load balancer, a target
    /// group, a security group the spec no longer has): `--prune`, after a roll.
    pub prune: bool,
    /// The control plane was rolled first (`reconcile cluster`): moving the nodes'
    /// Kubernetes version is the plan, not a hazard to warn about.
    pub in_order: bool,
}

/// Kinds whose deletion waits for `--prune`: instances launched before the change may still
/// use them until the roll replaces them.
const AFTER_ROLL: [&str; 4] = [
    "aws_lb",
    "aws_lb_listener",
    "aws_lb_target_group",
    "aws_security_group",
];

/// Holds back what `scope` leaves out of this run (see [`Scope`]).
pub fn hold(plan: &mut Plan, prepared: &Prepared, scope: &Scope) {
    let roles: std::collections::BTreeMap<&str, kopsrs_api::Role> = prepared
        .groups
        .iter()
        .filter_map(|g| Some((g.metadata.name.as_str(), g.role()?)))
        .collect();
    // A security group kept for the roll keeps its rules too.
    let kept_groups: std::collections::BTreeSet<String> = plan
        .changes
        .iter()
        .filter(|c| {
            !scope.prune
                && c.action == kopsrs_engine::Action::Delete
                && c.address.kind == "aws_security_group"
        })
        .filter_map(|c| c.id.clone())
        .collect();
    let group_kinds = [
        "aws_launch_template",
        "aws_autoscaling_group",
        "aws_autoscaling_lifecycle_hook",
    ];
    plan.hold(|change| {
        use kopsrs_engine::{Action, Hold};
        if change.action == Action::Delete && !scope.prune {
            let kind = change.address.kind.as_str();
            let rule_of_kept = kind == "aws_security_group_rule"
                && change
                    .found
                    .get("security_group_id")
                    .is_some_and(|sg| kept_groups.contains(sg));
            if AFTER_ROLL.contains(&kind) || rule_of_kept {
                return Some(Hold::AfterRoll);
            }
        }
        if scope.roles.is_empty() {
            return None;
        }
        match prepared.set.instance_groups.get(&change.address) {
            Some(group) => {
                let role = roles.get(group.as_str()).copied()?;
                (!scope.roles.contains(&role)).then(|| Hold::OtherRole {
                    group: group.clone(),
                    role: role.as_str().to_string(),
                })
            }
            // A group the spec no longer has: removed with the full update.
            None if group_kinds.contains(&change.address.kind.as_str()) => Some(Hold::OtherRole {
                group: change.address.name.clone(),
                role: "no longer in the spec".into(),
            }),
            None => None,
        }
    });
}

/// What an update did: its plan, and what applying it took (none for a dry run).
#[derive(Debug)]
pub struct UpdateReport {
    /// The plan made.
    pub plan: Plan,
    /// Whether it was to be applied (`yes`).
    pub yes: bool,
    /// The apply, when `yes` and the plan had changes.
    pub applied: Option<Applied>,
    /// With `--prune`: the old launch-template versions deleted (`yes`) or that would be.
    pub old_versions: Vec<kopsrs_aws::StaleVersions>,
    /// The instance group of each per-group resource (launch template, auto scaling group,
    /// hook), by address: which groups a plan changes.
    pub groups: std::collections::BTreeMap<String, String>,
}

/// What an apply took.
#[derive(Debug, Clone)]
pub struct Applied {
    /// Changes done.
    pub done: usize,
    /// Attempts, retries included.
    pub attempts: u32,
    /// AWS API calls made in all (the plan's reads included).
    pub calls: u64,
    /// Dependent calls on the longest chain of the apply.
    pub critical_path: usize,
    /// The time of that chain.
    pub critical_path_time: std::time::Duration,
    /// Wall time of the apply.
    pub elapsed: std::time::Duration,
}

/// The direct target: plan, and with `yes` apply. With `yes` the cluster lock is taken
/// before the spec and AWS are read, so what is applied is the spec as it is now (not as it
/// was before another run finished) against what exists. The plan reaches the reporter
/// ([`crate::Reporter::planned`]) before anything changes.
pub async fn update_direct(
    session: &Session,
    name: &str,
    options: &DirectOptions,
) -> Result<UpdateReport> {
    let purpose = options.yes.then_some("update cluster --yes");
    if let Some(verb) = purpose {
        crate::node_store::require(session, verb)?;
    }
    let store = crate::session::open_store(session).await?;
    // Both checks read the store: together, in one round trip; reported in this order.
    let kops_built = async {
        match purpose {
            Some(verb) => crate::kops_built::refuse(&store, name, verb).await,
            None => {
                crate::kops_built::warn(session, &store, name, "`update cluster --yes` is refused")
                    .await
                    .map(|_| ())
            }
        }
    };
    let node_store = crate::node_store::check_cluster(session, &store, name, purpose, "this plan");
    let managed = async {
        match purpose {
            Some(verb) => crate::managed::refuse(&store, name, verb, options.force).await,
            None => Ok(()),
        }
    };
    let (kops_built, node_store, managed) = tokio::join!(kops_built, node_store, managed);
    kops_built?;
    node_store?;
    managed?;
    let report = locked(&*session.reporter, &store, name, purpose, async {
        let spec = options.spec.as_deref();
        let prepared = crate::cluster::prepare_spec(&store, name, session, true, spec).await?;
        let aws = crate::cluster::aws(session, &prepared.set.region).await;
        if options.network_checks {
            crate::network::preflight(session, &aws, &prepared, options.yes).await?;
        } else {
            session
                .reporter
                .say("Network checks skipped (--skip-network-checks).");
        }
        plan_and_apply(session, &aws, &store, &prepared, options).await
    })
    .await?;
    if let (true, Some(export)) = (options.yes, &options.export) {
        crate::pki::export_cluster(session, &store, name, export).await?;
    }
    Ok(report)
}

/// Writes `cluster` and `groups` to the store where they differ from what is stored (each
/// write conditional on the version read), and removes the groups no longer given.
pub async fn write_spec(
    store: &StateStore,
    cluster: &kopsrs_api::Cluster,
    groups: &[kopsrs_api::InstanceGroup],
) -> Result<()> {
    let name = &cluster.metadata.name;
    let stored_groups = store.read_instance_groups(name).await?;
    for group in groups {
        let stored = stored_groups
            .iter()
            .find(|s| s.value.metadata.name == group.metadata.name);
        if stored.map(|s| &s.value) != Some(group) {
            store
                .write_instance_group(name, group, stored.map(|s| &s.version))
                .await?;
        }
    }
    for stored in &stored_groups {
        if !groups
            .iter()
            .any(|g| g.metadata.name == stored.value.metadata.name)
        {
            store
                .delete(&format!(
                    "{name}/{}/{}",
                    kopsrs_state::layout::INSTANCE_GROUPS,
                    stored.value.metadata.name
                ))
                .await?;
        }
    }
    let stored = store.read_cluster(name).await?;
    if stored.as_ref().map(|s| &s.value) != Some(cluster) {
        store
            .write_cluster(cluster, stored.as_ref().map(|s| &s.version))
            .await?;
    }
    Ok(())
}

/// The cluster's plan: the provider's (resources) with the addon changes, and the pinned
/// addon selection `--yes` publishes. Addons are resolved first: a pin that does not match
/// its download stops the run before AWS is read.
pub async fn plan(
    session: &Session,
    aws: &Aws,
    store: &StateStore,
    prepared: &Prepared,
    pins: crate::addons::PinOptions,
    scope: &Scope,
) -> Result<(Plan, crate::addons::Resolved)> {
    let name = &prepared.cluster.metadata.name;
    let addons = crate::addons::resolve(
        store,
        &prepared.cluster,
        &prepared.groups,
        &prepared.set,
        pins,
    )
    .await?;
    let mut plan =
        aws.plan(&prepared.set)
            .await
            .map_err(|e| match e.is(kopsrs_aws::EXISTING_MISMATCH) {
                true => Problems::one(
                    format!(
                        "{name} uses resources that are not as its spec says:\n  {}",
                        e.message
                    ),
                    "fix the spec (`kopsrs edit cluster`) or the resources; nothing was changed",
                ),
                false => crate::problems::aws(
                    &session.settings,
                    &format!("reading {name} from AWS"),
                    &e,
                    "check the AWS credentials and region; nothing was changed",
                ),
            })?;
    plan.addons = addons.changes.clone();
    hold(&mut plan, prepared, scope);
    warn_unpinned(session, &plan.addons);
    let spec = encode_documents(
        &std::iter::once(Document::Cluster(Box::new(prepared.cluster.clone())))
            .chain(
                prepared
                    .groups
                    .iter()
                    .cloned()
                    .map(Box::new)
                    .map(Document::InstanceGroup),
            )
            .collect::<Vec<_>>(),
        OutputFormat::Yaml,
    );
    plan.fingerprint = Some(plan.fingerprint_of(spec.as_bytes()));
    Ok((plan, addons))
}

/// The Kubernetes version a user-data installs (its `KUBERNETES_VERSION='1.34.1'` line).
fn installed_version(user_data: &str) -> Option<&str> {
    user_data
        .lines()
        .find_map(|l| l.trim().strip_prefix("KUBERNETES_VERSION="))
        .map(|v| v.trim_matches(|c| c == '\'' || c == '"'))
}

/// `update --yes` that moves the Kubernetes version of worker launch templates: from then
/// on, new nodes (a replacement, an autoscaler's) start kubelets that may be newer than the
/// API servers until the control plane is rolled. Read from the plan itself (each template's
/// user-data before and after), so it holds however the spec came to move. Said, with the
/// way that cannot.
fn warn_version_change(session: &Session, prepared: &Prepared, plan: &Plan) {
    let name = &prepared.cluster.metadata.name;
    let moved = plan.changes.iter().find_map(|c| {
        let group = prepared.set.instance_groups.get(&c.address)?;
        let role = prepared
            .groups
            .iter()
            .find(|ig| &ig.metadata.name == group)?
            .role()?;
        if role != kopsrs_api::Role::Node {
            return None;
        }
        let field = c.fields.iter().find(|f| f.path == "user_data")?;
        let before = installed_version(field.before.as_deref()?)?;
        let after = installed_version(field.after.as_deref()?)?;
        (before != after).then(|| (group.clone(), before.to_string(), after.to_string()))
    });
    if let Some((group, before, after)) = moved {
        session.reporter.warn(
            &format!("the nodes' launch templates move from Kubernetes {before} to {after} (instance group {group}, ...): from now on, new nodes (a replacement, an autoscaler's) start kubelet {after}, while the API servers may still run {before}, which the version skew policy forbids"),
            Some(&format!("upgrade in order with `kopsrs reconcile cluster {name} --yes` (control plane first, then the nodes), or `update cluster --instance-group-roles control-plane,apiserver --yes` and its roll first")),
        );
    }
}

/// Addons published without a pin are trusted on first use by a control plane: said as a
/// warning, not only in the plan's addon lines.
fn warn_unpinned(session: &Session, changes: &[kopsrs_engine::AddonChange]) {
    for change in changes {
        if let Some(integrity) = change
            .integrity
            .as_deref()
            .filter(|i| i.contains("UNPINNED"))
        {
            session.reporter.warn(
                &format!("addon {}: {integrity}", change.name),
                Some("pin it in the channel, or run where the download can be checked; --require-pinned-addons refuses this"),
            );
        }
    }
}

/// Reads a plan saved by `--out-plan` (or `-o json`) for `cluster`, refusing one of another
/// format version or cluster, or one without a fingerprint.
pub fn read_saved_plan(path: &Path, cluster: &str) -> Result<PlanDocument> {
    let shown = path.display();
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading the saved plan {shown}"))?;
    let remake =
        format!("make the plan again: `kopsrs update cluster {cluster} --out-plan {shown}`");
    // The version first, so a document of another version is named as such, not as a
    // document that does not parse.
    let version = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| {
            v.get("format_version")
                .and_then(|v| v.as_str())
                .map(str::to_string)
        });
    match version.as_deref() {
        Some(FORMAT_VERSION) => {}
        Some(other) => {
            return Err(Problems::one(
                format!("{shown}: format_version {other:?} is not one this kopsrs reads ({FORMAT_VERSION:?}); nothing was changed"),
                &remake,
            )
            .into())
        }
        None => {
            return Err(Problems::one(
                format!("{shown} is not a saved plan (no format_version); nothing was changed"),
                &remake,
            )
            .into())
        }
    }
    let document: PlanDocument = serde_json::from_str(&text).map_err(|e| {
        Problems::one(
            format!("{shown} is not a saved plan: {e}; nothing was changed"),
            &remake,
        )
    })?;
    match document.cluster.as_deref() {
        Some(name) if name == cluster => {}
        other => {
            return Err(Problems::one(
                format!(
                    "{shown} is a plan of {}, not of {cluster}; nothing was changed",
                    other.map_or("no cluster".to_string(), |n| format!("{n:?}"))
                ),
                format!("pass the plan made for {cluster}, or {remake}"),
            )
            .into())
        }
    }
    if document.fingerprint.is_none() {
        return Err(Problems::one(
            format!("{shown} has no fingerprint of what it was made from; nothing was changed"),
            &remake,
        )
        .into());
    }
    Ok(document)
}

/// Writes `plan` of `cluster` to `path` as a document `--plan` applies.
pub fn save_plan(plan: &Plan, cluster: &str, path: &Path) -> Result<()> {
    let document = plan.document(Some(cluster));
    let mut text = serde_json::to_string_pretty(&document).expect("a plan document is JSON");
    text.push('\n');
    // Write beside and rename, so a reader never sees half a plan.
    let temp = path.with_extension("kopsrs-tmp");
    std::fs::write(&temp, text).with_context(|| format!("writing {}", temp.display()))?;
    std::fs::rename(&temp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Whether the plan made now is the saved one: equal fingerprints, else a problem saying
/// what moved.
fn same_as_saved(name: &str, now: &Plan, saved: &PlanDocument) -> Result<()> {
    let (Some(now_print), Some(saved_print)) = (&now.fingerprint, &saved.fingerprint) else {
        unreachable!("plans are fingerprinted when made and checked when read");
    };
    if now_print == saved_print {
        return Ok(());
    }
    let Fingerprint { spec, .. } = saved_print;
    let moved = match *spec != now_print.spec {
        true => format!("the spec of {name} in the state store changed since the plan was made"),
        false => {
            let counts = |d: &kopsrs_engine::Counts| {
                format!(
                    "{} to add, {} to change, {} to replace, {} to destroy, {} addon change(s)",
                    d.add, d.change, d.replace, d.destroy, d.addons
                )
            };
            format!(
                "the cloud changed since the plan was made (saved: {}; now: {})",
                counts(&saved.summary),
                counts(&now.document(None).summary)
            )
        }
    };
    Err(Problems::one(
        format!("the saved plan is out of date: {moved}; nothing was changed"),
        format!("review the plan as it is now (`kopsrs update cluster {name}`), save it with --out-plan and apply that"),
    )
    .into())
}

fn group_addresses(prepared: &Prepared) -> std::collections::BTreeMap<String, String> {
    prepared
        .set
        .instance_groups
        .iter()
        .map(|(address, group)| (address.to_string(), group.clone()))
        .collect()
}

pub(crate) async fn plan_and_apply(
    session: &Session,
    aws: &Aws,
    store: &StateStore,
    prepared: &Prepared,
    options: &DirectOptions,
) -> Result<UpdateReport> {
    let name = &prepared.cluster.metadata.name;
    let (plan, addons) = plan(session, aws, store, prepared, options.pins, &options.scope).await?;
    if let Some(saved) = &options.saved {
        same_as_saved(name, &plan, saved)?;
    }
    if options.yes && !options.scope.in_order {
        warn_version_change(session, prepared, &plan);
    }
    session.reporter.planned(name, &plan, options.yes);
    if !options.yes {
        if let Some(issuer) =
            kopsrs_model::discovery_issuer(&prepared.cluster.spec, &prepared.set.region)
        {
            session.reporter.say(&format!(
                "--yes also publishes the service-account issuer's documents (https://{issuer}/.well-known/openid-configuration and /openid/v1/jwks) where they changed."
            ));
        }
        let old_versions = match options.scope.prune {
            true => old_versions(session, aws, name, false).await?,
            false => Vec::new(),
        };
        return Ok(UpdateReport {
            plan,
            yes: options.yes,
            applied: None,
            old_versions,
            groups: group_addresses(prepared),
        });
    }
    // Only now, with the plan made (and the addons' pins checked), is anything written:
    // first the spec the plan was made from, when it was given rather than read.
    if let Some((cluster, groups)) = options.spec.as_deref() {
        write_spec(store, cluster, groups).await?;
    }
    crate::pki::ensure_keysets(store, name).await?;
    // The issuer's documents before the cloud: a store they cannot go to stops the run here,
    // before the launch templates name the issuer.
    crate::discovery::publish(
        session,
        store,
        &prepared.cluster,
        &prepared.set.region,
        false,
    )
    .await?;
    let applied = match plan.is_empty() {
        true => None,
        false => Some(apply(session, aws, name, &plan, options.concurrency).await?),
    };
    publish(session, store, prepared, &addons).await?;
    // After the deferred deletions: what instances no longer run goes too.
    let old_versions = match options.scope.prune {
        true => old_versions(session, aws, name, true).await?,
        false => Vec::new(),
    };
    Ok(UpdateReport {
        plan,
        yes: true,
        applied,
        old_versions,
        groups: group_addresses(prepared),
    })
}

/// The cluster's launch-template versions no instance runs any more (`--prune`), deleted when
/// `delete`; said either way.
async fn old_versions(
    session: &Session,
    aws: &Aws,
    name: &str,
    delete: bool,
) -> Result<Vec<kopsrs_aws::StaleVersions>> {
    let failed = |what: &str, e: kopsrs_aws::Error| {
        crate::problems::aws(
            &session.settings,
            &format!("{what} the old launch-template versions of {name}"),
            &e,
            "run `kopsrs update cluster --prune --yes` again",
        )
    };
    let stale = aws
        .stale_launch_template_versions(name)
        .await
        .map_err(|e| failed("reading", e))?;
    let count: usize = stale.iter().map(|s| s.versions.len()).sum();
    if count == 0 {
        return Ok(stale);
    }
    let list = stale
        .iter()
        .map(|s| {
            let versions: Vec<String> = s.versions.iter().map(i64::to_string).collect();
            format!("{} ({})", s.template, versions.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ");
    if delete {
        let deleted = aws
            .delete_launch_template_versions(&stale)
            .await
            .map_err(|e| failed("deleting", e))?;
        session.reporter.say(&format!(
            "Deleted {deleted} launch-template version(s) no instance runs: {list}."
        ));
    } else {
        session.reporter.say(&format!(
            "--prune --yes deletes {count} launch-template version(s) no instance runs now: {list} (and any its own apply frees)."
        ));
    }
    Ok(stale)
}

/// Applies `plan` to the cloud, progress through the reporter; every failed change is a
/// problem of its own, with its address.
async fn apply(
    session: &Session,
    aws: &Aws,
    name: &str,
    plan: &Plan,
    concurrency: u16,
) -> Result<Applied> {
    let started = std::time::Instant::now();
    let options = exec_options(concurrency);
    let progress = session.reporter.changes(plan.changes.len());
    match kopsrs_aws::apply(aws, name, plan, &options, progress).await {
        Ok(report) => Ok(Applied {
            done: report.done,
            attempts: report.attempts,
            calls: aws.calls(),
            critical_path: report.critical_path,
            critical_path_time: report.critical_path_time,
            elapsed: started.elapsed(),
        }),
        Err(e) => {
            let summary = crate::Problem {
                message: format!(
                    "{} change(s) failed, {} done, {} not run",
                    e.failed.len(),
                    e.done,
                    e.not_run.len()
                ),
                hint: Some("fix the cause and run `kopsrs update cluster --yes` again: it continues from what exists".into()),
            };
            // One problem per failed change (its error names its address), then the count.
            let failed = e.failed.iter().map(|(_, error)| crate::Problem {
                message: error.to_string(),
                hint: None,
            });
            Err(Problems(failed.chain([summary]).collect()).into())
        }
    }
}

/// After a successful apply: the completed spec and the addon channel to the state store.
async fn publish(
    session: &Session,
    store: &StateStore,
    prepared: &Prepared,
    addons: &crate::addons::Resolved,
) -> Result<()> {
    write_completed(store, prepared).await?;
    crate::addons::publish(&*session.reporter, store, &prepared.cluster, addons).await
}

/// Stores the completed spec as `cluster-completed.spec` (what kops writes on update).
async fn write_completed(store: &StateStore, prepared: &Prepared) -> Result<()> {
    let name = &prepared.cluster.metadata.name;
    let text = encode_documents(
        &[Document::Cluster(Box::new(prepared.cluster.clone()))],
        OutputFormat::Yaml,
    );
    let key = format!("{name}/{}", layout::COMPLETED);
    let current = store.get(&key).await?;
    if current.as_ref().map(|c| c.value.as_ref()) != Some(text.as_bytes()) {
        store.overwrite(&key, text.into_bytes().into()).await?;
    }
    Ok(())
}

/// `--target terraform`: renders the cluster into `out` and stores the completed spec.
pub async fn write_terraform(
    session: &Session,
    name: &str,
    out: &Path,
    pins: crate::addons::PinOptions,
) -> Result<()> {
    let store = &crate::session::open_store(session).await?;
    let prepared = prepare(store, name, session, false).await?;
    // kops's nodes read the addon channel and the completed spec kops wrote: left as they are.
    let kops_built = crate::kops_built::warn(
        session,
        store,
        name,
        "the Terraform output is written, the state store is left as kops wrote it (no addon channel, completed spec or keyset is written), and applying the output would replace its control planes with ones that cannot join",
    )
    .await?;
    crate::node_store::check_cluster(session, store, name, None, "the Terraform output").await?;
    // Addons are resolved before anything is written: a wrong pin stops the run. A
    // Kubernetes version outside the channel is a warning here: the Terraform user-data
    // stops with the reason (see `prepare`).
    let addons = match crate::addons::resolve(
        store,
        &prepared.cluster,
        &prepared.groups,
        &prepared.set,
        pins,
    )
    .await
    {
        Ok(addons) => Some(addons),
        Err(e) => match e.downcast_ref::<kopsrs_bootstrap::channel::ChannelError>() {
            Some(unsupported) => {
                let warning = format!("{unsupported}; no addons published");
                session.reporter.warn(&warning, None);
                None
            }
            None => return Err(e),
        },
    };
    if !kops_built {
        crate::pki::ensure_keysets(store, name).await?;
        // The Terraform output stands without them (kops's test stores are `memfs://`).
        if let Err(e) = crate::discovery::publish(
            session,
            store,
            &prepared.cluster,
            &prepared.set.region,
            true,
        )
        .await
        {
            session.reporter.warn(
                &format!("the service-account issuer's documents are not published: {e:#}"),
                Some("IAM cannot verify the cluster's service-account tokens until they are: set spec.serviceAccountIssuerDiscovery.discoveryStore to an s3:// store and run update cluster again"),
            );
        }
    }
    if let Some(addons) = addons.filter(|_| !kops_built) {
        warn_unpinned(session, &addons.changes);
        for change in &addons.changes {
            if let Some(integrity) = &change.integrity {
                let line = format!("addon {}: {integrity}", change.name);
                session.reporter.say(&line);
            }
        }
        crate::addons::publish(&*session.reporter, store, &prepared.cluster, &addons).await?;
    }
    let rendered = kopsrs_terraform::render(&prepared.set);
    let changed = write_output(out, &rendered.files)?;
    if !kops_built {
        write_completed(store, &prepared).await?;
    }
    session.reporter.say(&format!(
        "Terraform for {name}: {} resources in {} ({} file(s) changed).",
        prepared.set.resources.len(),
        out.join("kubernetes.tf").display(),
        changed
    ));
    session.reporter.say(&format!(
        "Run `terraform init && terraform plan` in {} to review it.",
        out.display()
    ));
    Ok(())
}

/// The list of data files the last run wrote, so the next removes only those it no longer
/// writes: a file someone else put into `data/` is never kopsrs's to delete.
const WRITTEN: &str = "data/.kopsrs-written";

/// Writes files under `dir`, leaving those whose content did not change untouched, and
/// removes the data files a previous run wrote (listed in [`WRITTEN`]) that are no longer
/// part of the output.
fn write_output(dir: &Path, files: &std::collections::BTreeMap<String, String>) -> Result<usize> {
    let mut changed = 0;
    for (path, content) in files {
        if write_if_changed(&dir.join(path), content)? {
            changed += 1;
        }
    }
    let listed = std::fs::read_to_string(dir.join(WRITTEN)).unwrap_or_default();
    for old in listed.lines().filter(|l| !l.is_empty()) {
        // Only plain names under data/ (the list is a file anyone could edit).
        let plain = old.strip_prefix("data/").is_some_and(|name| {
            !name.is_empty() && !name.contains('/') && name != ".." && name != "."
        });
        if !plain || files.contains_key(old) {
            continue;
        }
        let path = dir.join(old);
        if path.exists() {
            std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
            changed += 1;
        }
    }
    let mut written: Vec<&str> = files
        .keys()
        .map(String::as_str)
        .filter(|p| p.starts_with("data/"))
        .collect();
    written.sort_unstable();
    let mut list = written.join("\n");
    if !list.is_empty() {
        list.push('\n');
        write_if_changed(&dir.join(WRITTEN), &list)?;
    }
    Ok(changed)
}

/// Writes `content` to `target` unless it holds it already; beside and renamed, so a crash
/// leaves the old file or the new one. Whether it wrote.
fn write_if_changed(target: &Path, content: &str) -> Result<bool> {
    if std::fs::read(target).ok().as_deref() == Some(content.as_bytes()) {
        return Ok(false);
    }
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let temp = target.with_extension("kopsrs-tmp");
    std::fs::write(&temp, content).with_context(|| format!("writing {}", temp.display()))?;
    std::fs::rename(&temp, target).with_context(|| format!("writing {}", target.display()))?;
    Ok(true)
}
