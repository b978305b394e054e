//! The plan as a document: what `update cluster -o json` prints and `--out-plan` saves, from
//! the same serde types (docs/plan-json.md). A saved plan carries a fingerprint of what it
//! was made from, so `--plan FILE --yes` can tell whether the spec or the cloud moved since.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::plan::{sensitive, Action, Plan};

/// The version of the document's shape this build writes and reads. Fields are only added
/// within a version; a saved plan of another version is refused.
pub const FORMAT_VERSION: &str = "1";

/// The plan of one cluster, as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanDocument {
    /// [`FORMAT_VERSION`] when written by this build.
    pub format_version: String,
    /// The cluster planned (absent in documents not made for one cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// What the plan was made from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<Fingerprint>,
    /// Changes per action.
    pub summary: Counts,
    /// One per resource that changes, by address.
    pub changes: Vec<ChangeDocument>,
    /// What is left in place although nothing desired matches it.
    pub left: Vec<LeftDocument>,
    /// Changes found and held back by this run, with the reason.
    #[serde(default)]
    pub held: Vec<HeldDocument>,
    /// Addon channel changes.
    pub addons: Vec<AddonDocument>,
}

/// Digests of what a plan was made from: the completed spec, and what was read of the cloud
/// (the changes, what is left, what exists). Two plans with equal fingerprints would make the
/// same changes to the same resources.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// `sha256:` of the completed Cluster and InstanceGroups.
    pub spec: String,
    /// `sha256:` of the plan's changes, addon changes, what it leaves and the IDs and
    /// attributes of what exists.
    pub cloud: String,
}

/// Changes per action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Resources to create.
    pub add: usize,
    /// Resources to change in place.
    pub change: usize,
    /// Resources to delete and create again.
    pub replace: usize,
    /// Resources to delete.
    pub destroy: usize,
    /// Addon changes.
    pub addons: usize,
}

/// The change of one resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeDocument {
    /// The resource's address (`aws_vpc.x-example-com`).
    pub address: String,
    /// The first half of the address.
    pub kind: String,
    /// The second half of the address.
    pub name: String,
    /// What happens to it.
    pub action: Action,
    /// The cloud ID (none for a creation).
    pub id: Option<String>,
    /// The attributes that differ.
    pub fields: Vec<FieldDocument>,
}

/// One attribute that differs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldDocument {
    /// Flattened attribute path.
    pub path: String,
    /// The value found (null: not set).
    pub before: serde_json::Value,
    /// The value wanted (null: removed).
    pub after: serde_json::Value,
    /// Whether this field alone makes the change a replacement.
    pub forces_replacement: bool,
}

/// Something kept in place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeftDocument {
    /// Its kind (`aws_security_group_rule`).
    pub kind: String,
    /// Its cloud ID.
    pub id: String,
}

/// A change held back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldDocument {
    /// The resource's address.
    pub address: String,
    /// What would happen to it.
    pub action: Action,
    /// The cloud ID (none for a creation).
    pub id: Option<String>,
    /// Why it waits, as the text plan says it.
    pub reason: String,
}

/// An addon channel change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddonDocument {
    /// The addon.
    pub name: String,
    /// `create`, `update` or `delete`.
    pub action: Action,
    /// The version published now.
    pub before: Option<String>,
    /// The version to publish.
    pub after: Option<String>,
    /// How the download is verified.
    pub integrity: Option<String>,
}

impl Plan {
    /// The plan as a document; `cluster` names it (and with the plan's fingerprint, makes it
    /// one that can be saved and applied).
    pub fn document(&self, cluster: Option<&str>) -> PlanDocument {
        let value = |v: &Option<String>, path: &str| match v {
            None => serde_json::Value::Null,
            Some(_) if sensitive(path) => "(sensitive)".into(),
            // The text plan quotes strings; the document has the string itself.
            Some(v) => serde_json::from_str::<String>(v)
                .map(serde_json::Value::String)
                .unwrap_or_else(|_| v.as_str().into()),
        };
        let changes = self
            .changes
            .iter()
            .map(|c| ChangeDocument {
                address: c.address.to_string(),
                kind: c.address.kind.clone(),
                name: c.address.name.clone(),
                action: c.action,
                id: c.id.clone(),
                fields: c
                    .fields
                    .iter()
                    .map(|f| FieldDocument {
                        path: f.path.clone(),
                        before: value(&f.before, &f.path),
                        after: value(&f.after, &f.path),
                        forces_replacement: f.forces_replacement,
                    })
                    .collect(),
            })
            .collect();
        PlanDocument {
            format_version: FORMAT_VERSION.into(),
            cluster: cluster.map(str::to_string),
            fingerprint: cluster.and(self.fingerprint.clone()),
            summary: Counts {
                add: self.count(Action::Create),
                change: self.count(Action::Update),
                replace: self.count(Action::Replace),
                destroy: self.count(Action::Delete),
                addons: self.addons.len(),
            },
            changes,
            left: self
                .left
                .iter()
                .map(|l| LeftDocument {
                    kind: l.kind.clone(),
                    id: l.id.clone(),
                })
                .collect(),
            held: self
                .held
                .iter()
                .map(|h| HeldDocument {
                    address: h.change.address.to_string(),
                    action: h.change.action,
                    id: h.change.id.clone(),
                    reason: h.hold.to_string(),
                })
                .collect(),
            addons: self
                .addons
                .iter()
                .map(|a| AddonDocument {
                    name: a.name.clone(),
                    action: a.action,
                    before: a.before.clone(),
                    after: a.after.clone(),
                    integrity: a.integrity.clone(),
                })
                .collect(),
        }
    }

    /// The plan as JSON for CI (see docs/plan-json.md), with no cluster named.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self.document(None)).expect("a plan document is JSON")
    }

    /// The fingerprint of this plan made from `spec` (the completed spec's text): the
    /// cloud's digest covers every value of every change (secrets included, only hashed),
    /// the addon changes, what is left and what exists, so a plan made later is equal only
    /// when it would do the same.
    pub fn fingerprint_of(&self, spec: &[u8]) -> Fingerprint {
        let mut cloud = Sha256::new();
        let mut field = |part: &str| {
            // Length-prefixed, so no two sequences of parts hash alike.
            cloud.update((part.len() as u64).to_be_bytes());
            cloud.update(part.as_bytes());
        };
        for change in &self.changes {
            field(&change.address.to_string());
            field(change.action.as_str());
            field(change.id.as_deref().unwrap_or(""));
            for f in &change.fields {
                field(&f.path);
                field(f.before.as_deref().unwrap_or("\0none"));
                field(f.after.as_deref().unwrap_or("\0none"));
            }
            field("\0end");
        }
        for addon in &self.addons {
            field(&addon.name);
            field(addon.action.as_str());
            field(addon.before.as_deref().unwrap_or(""));
            field(addon.after.as_deref().unwrap_or(""));
            field(addon.integrity.as_deref().unwrap_or(""));
        }
        field("\0left");
        for left in &self.left {
            field(&left.kind);
            field(&left.id);
        }
        field("\0held");
        for held in &self.held {
            field(&held.change.address.to_string());
            field(held.change.action.as_str());
            field(&held.hold.to_string());
        }
        field("\0known");
        for (address, attrs) in &self.known {
            field(&address.to_string());
            for (k, v) in attrs {
                field(k);
                field(v);
            }
        }
        Fingerprint {
            spec: format!("sha256:{}", hex(&Sha256::digest(spec))),
            cloud: format!("sha256:{}", hex(&cloud.finalize())),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(bytes)
}
