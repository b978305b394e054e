//! The status the controller writes on a `Cluster`: conditions (their transition times kept
//! while their status holds), the last plan's summary, the groups that need an update.

use kopsrs_kube::controller::ClusterObject;
use serde_json::{json, Value};

use kopsrs_api::Cluster;

use crate::update::UpdateReport;

/// How many changed addresses the status lists.
const STATUS_ADDRESSES: usize = 20;

/// The hash a plan is approved by: its fingerprint's digest of the cloud's changes.
pub(super) fn plan_hash(report: &UpdateReport) -> Option<String> {
    report.plan.fingerprint.as_ref().map(|f| f.cloud.clone())
}

/// The status being written.
pub(super) struct Status {
    pub(super) generation: i64,
    pub(super) conditions: Vec<Value>,
    pub(super) previous: Vec<Value>,
    pub(super) spec_digest: Option<String>,
    pub(super) hash: Option<String>,
    /// The hash of the last plan applied (an approval of it is spent).
    pub(super) applied_hash: Option<String>,
    pub(super) plan: Option<Value>,
    pub(super) groups: Option<Value>,
    pub(super) problems: Option<Vec<String>>,
    /// The last roll (`kopsrs.io/roll`, `kopsrs.io/auto-roll`).
    pub(super) roll: Option<Value>,
    /// The roll running, or one that did not finish (the controller stopped during it).
    pub(super) rolling: Option<Value>,
}

impl Status {
    pub(super) fn from_object(object: &ClusterObject) -> Status {
        let previous = object
            .status
            .get("conditions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        Status {
            generation: object.generation,
            conditions: Vec::new(),
            previous,
            // Kept unless this reconcile learns better.
            spec_digest: object
                .status
                .get("specDigest")
                .and_then(Value::as_str)
                .map(str::to_string),
            hash: None,
            applied_hash: object
                .status
                .pointer("/plan/appliedHash")
                .and_then(Value::as_str)
                .map(str::to_string),
            plan: object.status.get("plan").cloned(),
            groups: object.status.get("instanceGroups").cloned(),
            problems: None,
            roll: object.status.get("roll").cloned(),
            rolling: object
                .status
                .get("rolling")
                .cloned()
                .filter(|r| !r.is_null()),
        }
    }

    /// Sets a condition; its transition time moves only when its status does.
    pub(super) fn condition(&mut self, kind: &str, status: bool, reason: &str, message: &str) {
        self.condition_as(kind, if status { "True" } else { "False" }, reason, message)
    }

    /// [`Status::condition`] with the status spelled out (`Unknown` where it is not known).
    pub(super) fn condition_as(&mut self, kind: &str, status: &str, reason: &str, message: &str) {
        let since = self
            .previous
            .iter()
            .find(|c| c["type"] == kind && c["status"] == status)
            .and_then(|c| c.get("lastTransitionTime").cloned())
            .unwrap_or_else(|| Value::String(now()));
        self.conditions.retain(|c| c["type"] != kind);
        self.conditions.push(json!({
            "type": kind,
            "status": status,
            "reason": reason,
            "message": message,
            "lastTransitionTime": since,
            "observedGeneration": self.generation,
        }));
    }

    pub(super) fn invalid(&mut self, reason: &str, problems: &[String]) {
        let message = problems.join("; ");
        self.condition("Ready", false, reason, &message);
        self.condition("Degraded", true, reason, &message);
        // Nothing was planned or applied from this spec.
        self.condition_as("Planned", "Unknown", reason, "the spec was not planned");
        self.condition_as("Applied", "Unknown", reason, "the spec was not applied");
        self.problems = Some(problems.to_vec());
    }

    /// Records the plan of `report`; returns its summary ("2 to add, ...").
    pub(super) fn plan(&mut self, report: &UpdateReport, cluster: &Cluster) -> String {
        let document = report.plan.document(Some(&cluster.metadata.name));
        let s = &document.summary;
        let addresses: Vec<String> = document
            .changes
            .iter()
            .take(STATUS_ADDRESSES)
            .map(|c| format!("{} {}", action_word(c.action), c.address))
            .collect();
        self.hash = plan_hash(report);
        self.plan = Some(json!({
            "hash": self.hash,
            "changes": document.changes.len(),
            "add": s.add,
            "change": s.change,
            "replace": s.replace,
            "destroy": s.destroy,
            "addons": s.addons,
            "addresses": addresses,
            "truncated": document.changes.len() > STATUS_ADDRESSES,
            "applied": report.applied.is_some(),
        }));
        let changed: std::collections::BTreeSet<&String> = report
            .plan
            .changes
            .iter()
            .filter_map(|c| report.groups.get(&c.address.to_string()))
            .collect();
        let groups: Vec<Value> = report
            .groups
            .values()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .map(|g| json!({"name": g, "needsUpdate": changed.contains(g) && report.applied.is_none()}))
            .collect();
        self.groups = Some(Value::Array(groups));
        format!(
            "{} to add, {} to change, {} to replace, {} to destroy, {} addon change(s)",
            s.add, s.change, s.replace, s.destroy, s.addons
        )
    }

    pub(super) fn to_value(&self) -> Value {
        let mut plan = self.plan.clone();
        if let (Some(Value::Object(p)), Some(h)) = (&mut plan, &self.applied_hash) {
            p.insert("appliedHash".into(), Value::String(h.clone()));
        }
        // Conditions not set by this reconcile keep their last value.
        let mut conditions = self.conditions.clone();
        for old in &self.previous {
            if !conditions.iter().any(|c| c["type"] == old["type"]) {
                conditions.push(old.clone());
            }
        }
        conditions.sort_by(|a, b| a["type"].as_str().cmp(&b["type"].as_str()));
        json!({
            "observedGeneration": self.generation,
            "conditions": conditions,
            "specDigest": self.spec_digest,
            "plan": plan,
            "instanceGroups": self.groups,
            "problems": self.problems,
            "roll": self.roll,
            "rolling": self.rolling,
        })
    }
}

fn action_word(action: kopsrs_engine::Action) -> &'static str {
    use kopsrs_engine::Action;
    match action {
        Action::Create => "create",
        Action::Update => "update",
        Action::Replace => "replace",
        Action::Delete => "delete",
    }
}

fn now() -> String {
    kopsrs_state::now_rfc3339()
}
