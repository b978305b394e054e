//! The verbs that talk to a cluster: diff, apply (with garbage collection) and delete. Every
//! one reads the configuration and the API's kinds first, and refuses before any write when an
//! object cannot be placed (a namespaced kind without a namespace, a cluster-scoped one with
//! one); `apply` also checks every object against the schema of the server's minor first, so
//! a mistake the schema knows writes nothing.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use kopsrs_kube::manifests::{Catalog, Kind};
use kopsrs_kube::Kube;
use kopsrs_manifests::objects::{self, Object};
use kopsrs_manifests::{check, compare, order, schema};
use serde_json::Value;

use super::{load, Config};
use crate::problems::{Problem, Problems};
use crate::reporter::ObjectEvent;
use crate::session as context;
use crate::Session;

/// Which cluster, and what to put in it.
#[derive(Debug, Clone)]
pub struct TargetOptions {
    /// The configuration.
    pub config: Config,
    /// The kubeconfig (default: the settings'); its context named after the cluster (the
    /// session's name) is used.
    pub kubeconfig: Option<PathBuf>,
}

/// An object's identity in a cluster: group, kind, namespace, name.
type ObjectKey = (String, String, String, String);

/// The cluster's API and the configuration's objects, each with its kind if the API serves
/// it (`None`: a custom resource whose definition the configuration applies first).
struct Target {
    kube: Kube,
    catalog: Catalog,
    objects: Vec<Object>,
    kinds: Vec<Option<Kind>>,
}

impl Target {
    async fn open(session: &Session, options: &TargetOptions) -> Result<Target> {
        let name = context::cluster_name(session, None)?;
        let objects = load(&options.config)?;
        let files = match &options.kubeconfig {
            Some(path) => vec![path.clone()],
            None => session.settings.kubeconfig.clone(),
        };
        let kube = Kube::connect(&name, &files).await.map_err(|e| {
            Problems::one(
                e.to_string(),
                format!("`kopsrs export kubeconfig {name}` writes the context"),
            )
        })?;
        let catalog = kube.catalog().await?;
        let mut target = Target {
            kube,
            catalog,
            objects,
            kinds: Vec::new(),
        };
        target.resolve();
        target.placement()?;
        Ok(target)
    }

    fn resolve(&mut self) {
        self.kinds = self
            .objects
            .iter()
            .map(|o| self.catalog.resolve(o.api_version(), o.kind()))
            .collect();
    }

    /// Whether object `i` is namespaced: from discovery, else from its definition in the
    /// configuration.
    fn namespaced(&self, i: usize) -> bool {
        match &self.kinds[i] {
            Some(k) => k.namespaced,
            None => {
                let crds: Vec<&Object> = self.objects.iter().filter(|o| o.is_crd()).collect();
                objects::namespaced(&self.objects[i], &crds, |_, _| true).unwrap_or(true)
            }
        }
    }

    /// Every object can be placed: namespaced kinds name their namespace, cluster-scoped ones
    /// do not. All problems at once, before anything is written.
    fn placement(&self) -> Result<()> {
        let mut problems = Vec::new();
        for (i, object) in self.objects.iter().enumerate() {
            match (self.namespaced(i), object.namespace().is_empty()) {
                (true, true) => problems.push(Problem {
                    message: format!(
                        "{} ({} {}): metadata.namespace is not set, and {} is namespaced",
                        object.address(),
                        object.source,
                        object.path,
                        object.kind()
                    ),
                    hint: Some(
                        "set metadata.namespace (kopsrs does not guess it from the kubeconfig)"
                            .into(),
                    ),
                }),
                (false, false) => problems.push(Problem {
                    message: format!(
                        "{} ({} {}): metadata.namespace is {:?}, and {} is cluster-scoped",
                        object.address(),
                        object.source,
                        object.path,
                        object.namespace(),
                        object.kind()
                    ),
                    hint: Some("remove metadata.namespace".into()),
                }),
                _ => {}
            }
        }
        match problems.is_empty() {
            true => Ok(()),
            false => Err(Problems(problems).into()),
        }
    }

    /// Namespaces the configuration creates that the cluster does not have yet: a server dry
    /// run of an object in one fails (the namespace is not found).
    fn pending_namespaces(&self, live: &HashMap<ObjectKey, Value>) -> HashSet<String> {
        self.objects
            .iter()
            .filter(|o| o.group().is_empty() && o.kind() == "Namespace")
            .filter(|o| !live.contains_key(&o.key()))
            .map(|o| o.name().to_string())
            .collect()
    }

    /// The live objects: one list per kind and namespace the configuration uses.
    async fn live(&self) -> Result<HashMap<ObjectKey, Value>> {
        let mut wanted: BTreeMap<(String, String), &Kind> = BTreeMap::new();
        for (object, kind) in self.objects.iter().zip(&self.kinds) {
            if let Some(kind) = kind {
                wanted.insert((kind.plural(), object.namespace().to_string()), kind);
            }
        }
        let mut out = HashMap::new();
        for ((_, ns), kind) in wanted {
            let ns = (!ns.is_empty()).then_some(ns.as_str());
            for value in self.kube.list_objects(kind, ns, None).await? {
                let o = plain(value);
                out.insert(o.key(), o.value);
            }
        }
        Ok(out)
    }

    /// The objects in apply order.
    fn order(&self) -> Vec<usize> {
        order::apply_order(&self.objects, |i| self.namespaced(i))
    }
}

fn plain(value: Value) -> Object {
    Object {
        value,
        source: String::new(),
        path: String::new(),
    }
}

/// What `manifests diff` found; each object's diff went to the reporter as it was made.
#[derive(Debug, Clone)]
pub struct DiffReport {
    /// Objects in the configuration.
    pub objects: usize,
    /// Objects that would change.
    pub changed: usize,
    /// Objects whose dry run the server refused (`ADDRESS: error`).
    pub failed: Vec<String>,
}

/// What applying the configuration would change, object by object, as server dry runs.
pub async fn diff(session: &Session, options: &TargetOptions) -> Result<DiffReport> {
    let target = Target::open(session, options).await?;
    let live = target.live().await?;
    let pending = target.pending_namespaces(&live);
    let mut changed = 0;
    let mut failed = Vec::new();
    for (object, kind) in target.objects.iter().zip(&target.kinds) {
        let current = live.get(&object.key());
        if current.is_some_and(|l| compare::unchanged(&object.value, l)) {
            continue;
        }
        // The dry run shows the object as the API would store it (defaults, normalised
        // quantities). It is forced, to show what the configuration wants even where another
        // manager owns a field (apply then needs --force-conflicts). An object of a kind not
        // served yet, or in a namespace still to be created, shows the configuration.
        let after = match kind {
            Some(kind) if !pending.contains(object.namespace()) => {
                let sent = compare::annotated(&object.value);
                match target
                    .kube
                    .apply_object(kind, &sent, "kopsrs", true, true)
                    .await
                {
                    Ok(after) => after,
                    Err(e) => {
                        let event = ObjectEvent::Refused(e.to_string());
                        session.reporter.object(&object.address(), &event);
                        failed.push(format!("{}: {e}", object.address()));
                        continue;
                    }
                }
            }
            _ => object.value.clone(),
        };
        let text = compare::diff(&object.address(), &object.value, current, &after);
        if text.is_empty() && current.is_some() {
            continue;
        }
        changed += 1;
        session
            .reporter
            .object(&object.address(), &ObjectEvent::Diff(text));
    }
    Ok(DiffReport {
        objects: target.objects.len(),
        changed,
        failed,
    })
}

/// Checks every object against the schema of the server's minor (when kopsrs carries it), so
/// that what the schema refuses stops the apply before anything is written.
async fn schema_preflight(session: &Session, target: &Target) -> Result<()> {
    let minor = target.kube.server_minor().await?;
    let Some(mut api) = schema::Api::load(&minor) else {
        session.reporter.warn(
            &format!(
                "no schemas for Kubernetes {minor}: objects are checked by the API server only"
            ),
            None,
        );
        return Ok(());
    };
    let errors: Vec<String> = check::check(&target.objects, &mut api)
        .into_iter()
        .filter(|p| p.severity == "error")
        .map(|p| {
            let field = match p.field.is_empty() {
                true => String::new(),
                false => format!(" {}:", p.field),
            };
            format!(
                "{} ({}):{field} {} (hint: {})",
                p.object, p.source, p.message, p.hint
            )
        })
        .collect();
    match errors.is_empty() {
        true => Ok(()),
        false => {
            session.reporter.say(&format!(
                "Kubernetes {minor} would refuse these objects; nothing was applied:"
            ));
            Err(Problems::from_messages(errors).into())
        }
    }
}

/// What `manifests apply` does.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Which cluster, and what to apply.
    pub target: TargetOptions,
    /// A server dry run: report each change, change nothing.
    pub dry_run: bool,
    /// Label what is applied with this tag, and delete tagged objects the configuration no
    /// longer renders.
    pub gc_tag: Option<String>,
    /// The server-side apply field manager.
    pub field_manager: String,
    /// Take fields other managers own instead of failing on the conflict.
    pub force_conflicts: bool,
}

/// What an apply did; each object went to the reporter as it was applied.
#[derive(Debug, Clone)]
pub struct ApplyReport {
    /// Objects in the configuration.
    pub objects: usize,
    /// How many objects were `created`, `configured`, `unchanged`.
    pub counts: BTreeMap<&'static str, usize>,
    /// With a GC tag: how many tagged objects were deleted as garbage.
    pub garbage: Option<usize>,
    /// Objects the API refused (`ADDRESS: error`); garbage is collected only when none was.
    pub failed: Vec<String>,
}

/// Applies the objects with server-side apply in dependency order, then (with a GC tag and
/// no failure) deletes the tagged objects the configuration no longer renders.
pub async fn apply(session: &Session, options: &ApplyOptions) -> Result<ApplyReport> {
    let dry_run = options.dry_run;
    if let Some(tag) = &options.gc_tag {
        if let Err(why) = check::tag_value(tag) {
            return Err(Problems::one(
                format!("--gc-tag {tag:?} {why}"),
                "for example --gc-tag shop-prod",
            )
            .into());
        }
    }
    let mut target = Target::open(session, &options.target).await?;
    if options.gc_tag.is_some() && target.objects.is_empty() {
        return Err(Problems::one(
            "the configuration renders no objects: with --gc-tag every tagged object would be deleted",
            "check the files given; to remove everything, use `kopsrs manifests delete`",
        )
        .into());
    }
    schema_preflight(session, &target).await?;
    if let Some(tag) = &options.gc_tag {
        for object in &mut target.objects {
            object.value["metadata"]["labels"][order::GC_LABEL] = Value::String(tag.clone());
            object.value["metadata"]["annotations"][order::GC_ANNOTATION] =
                Value::String(tag.clone());
        }
    }
    // One apply with a tag at a time: two CI runs of different revisions would collect
    // each other's new objects.
    let mut lease = match (&options.gc_tag, dry_run) {
        (Some(tag), false) => Some(take_gc_lease(session, &target, tag).await?),
        _ => None,
    };
    let result = apply_tagged(session, options, &mut target, &mut lease).await;
    if let Some(lease) = &lease {
        if let Err(e) = target.kube.release_lease(lease).await {
            session.reporter.warn(
                &e.to_string(),
                Some("the lease runs out by itself; the next apply takes it over then"),
            );
        }
    }
    result
}

/// How long an apply holds its tag's lease; renewed before garbage collection. A run that
/// dies leaves it, and the next run takes it over once it has run out.
const GC_LEASE: Duration = Duration::from_secs(600);

/// The Lease of `tag` (`kube-system/kopsrs-gc-<tag>`), or an error naming who holds it.
async fn take_gc_lease(
    session: &Session,
    target: &Target,
    tag: &str,
) -> Result<kopsrs_kube::HeldLease> {
    let name = format!("kopsrs-gc-{}", tag.to_ascii_lowercase().replace('_', "-"));
    let holder = format!(
        "{}@{} pid {}",
        session.settings.user.as_deref().unwrap_or("unknown"),
        gethostname::gethostname().to_string_lossy(),
        std::process::id()
    );
    match target
        .kube
        .acquire_lease("kube-system", &name, &holder, GC_LEASE)
        .await?
    {
        Ok(held) => Ok(held),
        Err(taken) => Err(Problems::one(
            format!(
                "another `manifests apply --gc-tag {tag}` holds the lease kube-system/{name}: {} (until {}); nothing was applied",
                taken.holder, taken.until
            ),
            "wait for it to finish and run again; a run that died leaves the lease until it runs out",
        )
        .into()),
    }
}

/// The apply proper, under the tag's lease (`lease`, renewed before garbage collection).
async fn apply_tagged(
    session: &Session,
    options: &ApplyOptions,
    target: &mut Target,
    lease: &mut Option<kopsrs_kube::HeldLease>,
) -> Result<ApplyReport> {
    let dry_run = options.dry_run;
    let live = target.live().await?;
    let pending = target.pending_namespaces(&live);
    let report = |address: &str, event: ObjectEvent| session.reporter.object(address, &event);
    let mut counts = BTreeMap::<&str, usize>::new();
    let mut failed = Vec::new();
    let mut rediscovered = false;
    for i in target.order() {
        // Before the first object of a kind not served yet: the definitions applied so far
        // established, and the API discovered again.
        if target.kinds[i].is_none() && !rediscovered && !dry_run {
            rediscovered = true;
            let names: Vec<String> = target
                .objects
                .iter()
                .filter(|o| o.is_crd())
                .map(|o| o.name().to_string())
                .collect();
            target
                .kube
                .wait_established(&target.catalog, &names, Duration::from_secs(60))
                .await?;
            target.catalog = target.kube.catalog().await?;
            target.resolve();
        }
        let object = &target.objects[i];
        let Some(kind) = &target.kinds[i] else {
            if dry_run {
                report(&object.address(), ObjectEvent::CreatedAfterDefinition);
                *counts.entry("created").or_default() += 1;
            } else {
                let version = object.api_version().to_string();
                report(&object.address(), ObjectEvent::NotServed(version));
                failed.push(format!(
                    "{}: the API does not serve {} {}",
                    object.address(),
                    object.api_version(),
                    object.kind()
                ));
            }
            continue;
        };
        let current = live.get(&object.key());
        if current.is_some_and(|l| compare::unchanged(&object.value, l)) {
            *counts.entry("unchanged").or_default() += 1;
            continue;
        }
        if dry_run && pending.contains(object.namespace()) {
            let namespace = object.namespace().to_string();
            report(
                &object.address(),
                ObjectEvent::CreatedAfterNamespace(namespace),
            );
            *counts.entry("created").or_default() += 1;
            continue;
        }
        let sent = compare::annotated(&object.value);
        let result = target
            .kube
            .apply_object(
                kind,
                &sent,
                &options.field_manager,
                options.force_conflicts,
                dry_run,
            )
            .await;
        match result {
            Ok(applied) => {
                let version = |v: &Value| v["metadata"]["resourceVersion"].clone();
                // The API normalised a value (a quantity, a default): nothing changed.
                let what = match current {
                    None => "created",
                    Some(c) if version(c) == version(&applied) => "unchanged",
                    Some(_) => "configured",
                };
                if what != "unchanged" {
                    report(&object.address(), ObjectEvent::Applied { what, dry_run });
                }
                *counts.entry(what).or_default() += 1;
            }
            Err(e) => {
                report(&object.address(), ObjectEvent::Failed(e.to_string()));
                failed.push(format!("{}: {e}", object.address()));
            }
        }
    }
    let mut garbage = options.gc_tag.as_ref().map(|_| 0);
    if let (Some(tag), true) = (&options.gc_tag, failed.is_empty()) {
        if lease.is_some() {
            // Renewed: a long apply must not lose the lease before it collects.
            *lease = Some(take_gc_lease(session, target, tag).await?);
        }
        let manager = &options.field_manager;
        garbage = Some(collect_garbage(session, target, tag, manager, dry_run).await?);
    }
    Ok(ApplyReport {
        objects: target.objects.len(),
        counts,
        garbage,
        failed,
    })
}

/// Deletes what carries the GC label and the configuration no longer renders: one list per
/// kind (by label, all namespaces), namespaced objects before cluster-scoped ones.
async fn collect_garbage(
    session: &Session,
    target: &Target,
    tag: &str,
    manager: &str,
    dry_run: bool,
) -> Result<usize> {
    let rendered: HashSet<ObjectKey> = target.objects.iter().map(Object::key).collect();
    let selector = format!("{}={tag}", order::GC_LABEL);
    let mut kinds = target.catalog.collectable();
    kinds.sort_by_key(|k| !k.namespaced);
    let mut deleted = 0;
    for kind in kinds {
        for live in target
            .kube
            .list_objects(&kind, None, Some(&selector))
            .await?
        {
            let o = plain(live);
            match order::keep_reason(&o.value, tag, rendered.contains(&o.key()), manager) {
                Some("rendered") | Some("not tagged") => {}
                Some(why) => session
                    .reporter
                    .object(&o.address(), &ObjectEvent::Kept(why)),
                None => {
                    let ns = (!o.namespace().is_empty()).then_some(o.namespace());
                    if target
                        .kube
                        .delete_object(&kind, ns, o.name(), dry_run)
                        .await?
                    {
                        deleted += 1;
                        let event = ObjectEvent::Garbage { dry_run };
                        session.reporter.object(&o.address(), &event);
                    }
                }
            }
        }
    }
    Ok(deleted)
}

/// What `manifests delete` does.
#[derive(Debug, Clone)]
pub struct DeleteOptions {
    /// Which cluster, and what to delete.
    pub target: TargetOptions,
    /// A server dry run: report what would be deleted, delete nothing.
    pub dry_run: bool,
}

/// What a delete did; each object went to the reporter as it was deleted.
#[derive(Debug, Clone)]
pub struct DeleteReport {
    /// Objects in the configuration.
    pub objects: usize,
    /// Objects deleted.
    pub deleted: usize,
    /// Objects the API refused to delete (`ADDRESS: error`).
    pub failed: Vec<String>,
}

/// Deletes the objects in reverse dependency order.
pub async fn delete(session: &Session, options: &DeleteOptions) -> Result<DeleteReport> {
    let target = Target::open(session, &options.target).await?;
    let mut order = target.order();
    order.reverse();
    let dry_run = options.dry_run;
    let report = |address: &str, event: ObjectEvent| session.reporter.object(address, &event);
    let mut deleted = 0;
    let mut failed = Vec::new();
    for i in order {
        let object = &target.objects[i];
        let Some(kind) = &target.kinds[i] else {
            report(&object.address(), ObjectEvent::KindNotServed);
            continue;
        };
        let ns = (!object.namespace().is_empty()).then_some(object.namespace());
        match target
            .kube
            .delete_object(kind, ns, object.name(), dry_run)
            .await
        {
            Ok(true) => {
                deleted += 1;
                report(&object.address(), ObjectEvent::Deleted { dry_run });
            }
            Ok(false) => report(&object.address(), ObjectEvent::NotFound),
            Err(e) => {
                report(&object.address(), ObjectEvent::Failed(e.to_string()));
                failed.push(format!("{}: {e}", object.address()));
            }
        }
    }
    Ok(DeleteReport {
        objects: target.objects.len(),
        deleted,
        failed,
    })
}
