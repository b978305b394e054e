//! Desired against actual, per resource and per field, and the plan printed like Terraform's.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};

use kopsrs_model::{Address, DesiredSet, Resource, Value};

/// A resource as discovered in the cloud: its address (recovered from its tags), its cloud ID
/// and the attributes the provider could read, in the model's vocabulary. Attributes the
/// provider does not report are not compared.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    /// Its address and the attributes read.
    pub resource: Resource,
    /// Its cloud ID.
    pub id: String,
}

/// What the provider knows about a kind of resource, for diffing.
pub trait Schema {
    /// Whether changing `attr` of a `kind` needs a new resource (a subnet's CIDR).
    fn forces_replacement(&self, kind: &str, attr: &str) -> bool;
    /// Attributes written at creation that the cloud does not report back (user-data of a
    /// launch template version, a key pair's public key): never compared.
    fn write_only(&self, _kind: &str, _attr: &str) -> bool {
        false
    }
    /// Attributes the provider reports whenever they are set, so that one it does not
    /// report is unset (a warm pool on an auto scaling group): compared even when absent,
    /// added and removed in place, as tags are.
    fn always_reported(&self, _kind: &str, _attr: &str) -> bool {
        false
    }
}

/// What a change does to a resource.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Made from nothing.
    Create,
    /// Changed in place.
    Update,
    /// Deleted and made again (a field that cannot change in place changed).
    Replace,
    /// Deleted.
    Delete,
}

impl Action {
    /// The lower-case word (`create`, `update`, `replace`, `delete`), as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Replace => "replace",
            Action::Delete => "delete",
        }
    }
}

/// One attribute that differs, as printed.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldChange {
    /// Flattened attribute path (`tags.Name`, `metadata_options[0].http_tokens`).
    pub path: String,
    /// The value found (none: not set, or a creation).
    pub before: Option<String>,
    /// The value wanted (none: removed).
    pub after: Option<String>,
    /// Whether this field alone makes the change a replacement.
    pub forces_replacement: bool,
}

/// The change of one resource, with what applying it needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The model's address of the resource.
    pub address: Address,
    /// What happens to it.
    pub action: Action,
    /// The cloud ID for updates, replacements and deletions.
    pub id: Option<String>,
    /// The attributes that differ.
    pub fields: Vec<FieldChange>,
    /// The desired resource (none for a deletion): what a create or update writes, and
    /// whose references order the changes.
    pub desired: Option<Resource>,
    /// What the provider read of the existing resource (for deletes: a rule's group).
    pub found: BTreeMap<String, String>,
}

impl Change {
    /// A creation of `resource` with no field listed; the fields and the action are set by
    /// the caller (`Change { action, ..Change::new(r) }`).
    pub fn new(resource: &Resource) -> Change {
        Change {
            address: resource.address.clone(),
            action: Action::Create,
            id: None,
            fields: Vec::new(),
            desired: Some(resource.clone()),
            found: BTreeMap::new(),
        }
    }
}

/// Something inside a resource the cluster owns that kopsrs did not make (a rule the cloud
/// controller added, a route or policy a person added): never changed, listed with the plan
/// so a reader knows it was seen and kept.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Left {
    /// The kind, in the model's vocabulary (`aws_security_group_rule`).
    pub kind: String,
    /// Its cloud ID.
    pub id: String,
}

/// A change of the addons the control plane applies (the channel published to the state
/// store), shown and applied with the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddonChange {
    /// The addon (`cilium`, `metrics-server`).
    pub name: String,
    /// `Create` (newly selected), `Update` (another version), `Delete` (no longer selected:
    /// not applied any more, left running).
    pub action: Action,
    /// The version published now.
    pub before: Option<String>,
    /// The version to publish.
    pub after: Option<String>,
    /// How the download is verified (its sha256 pin and where the pin came from).
    pub integrity: Option<String>,
}

/// Why a change the plan found is held back rather than applied now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hold {
    /// A deletion of something running instances may still use (a load balancer, a target
    /// group, a security group): done once the roll has moved every instance off it
    /// (`update cluster --prune`, the last step of `reconcile cluster`).
    AfterRoll,
    /// A change of an instance group whose role the run does not touch
    /// (`update cluster --instance-group-roles`).
    OtherRole {
        /// The instance group.
        group: String,
        /// Its role, as kops spells it.
        role: String,
    },
    /// A change that needs another held change first.
    Needs(Address),
}

impl fmt::Display for Hold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hold::AfterRoll => write!(f, "deleted after the roll (`update cluster --prune`)"),
            Hold::OtherRole { group, role } => write!(
                f,
                "instance group {group} ({role}) is not of the roles updated now"
            ),
            Hold::Needs(address) => write!(f, "needs {address}, held back"),
        }
    }
}

/// A change found and not applied now, with the reason.
#[derive(Debug, Clone, PartialEq)]
pub struct Held {
    /// The change, as it would be applied.
    pub change: Change,
    /// Why it waits.
    pub hold: Hold,
}

/// Everything an update would change, as a value: printing, JSON and apply all read it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// The resource changes, by address.
    pub changes: Vec<Change>,
    /// What the plan leaves in place although nothing desired matches it.
    pub left: Vec<Left>,
    /// Changes found and held back (not applied by this run), with the reason.
    pub held: Vec<Held>,
    /// Addon changes (none when the target publishes no addons).
    pub addons: Vec<AddonChange>,
    /// Attributes of what exists (IDs, ARNs, names) by address, for the references of
    /// the changes.
    pub known: BTreeMap<Address, BTreeMap<String, String>>,
    /// API calls made to read the cloud.
    pub reads: u64,
    /// What the plan was made from, when the caller computed it
    /// ([`Plan::fingerprint_of`]): saved with the plan, compared before a saved plan is
    /// applied.
    pub fingerprint: Option<crate::Fingerprint>,
}

impl Plan {
    /// Whether no resource changes (addon changes are published by any `--yes`).
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Moves the changes `hold` picks out of the plan into [`Plan::held`], with every change
    /// that refers to one of them (transitively): what is applied never waits on what is not.
    pub fn hold(&mut self, hold: impl Fn(&Change) -> Option<Hold>) {
        let (mut held, mut kept): (Vec<Change>, Vec<Change>) = (Vec::new(), Vec::new());
        let mut reasons = Vec::new();
        for change in std::mem::take(&mut self.changes) {
            match hold(&change) {
                Some(reason) => {
                    reasons.push(reason);
                    held.push(change);
                }
                None => kept.push(change),
            }
        }
        loop {
            let before = held.len();
            let waiting: BTreeSet<Address> = held.iter().map(|c| c.address.clone()).collect();
            let mut still = Vec::new();
            for change in kept {
                let needs = change.desired.as_ref().and_then(|d| {
                    d.dependencies()
                        .into_iter()
                        .find(|a| waiting.contains(*a))
                        .cloned()
                });
                match needs {
                    Some(address) => {
                        reasons.push(Hold::Needs(address));
                        held.push(change);
                    }
                    None => still.push(change),
                }
            }
            kept = still;
            if held.len() == before {
                break;
            }
        }
        self.changes = kept;
        self.held.extend(
            held.into_iter()
                .zip(reasons)
                .map(|(change, hold)| Held { change, hold }),
        );
    }

    /// How many changes do `action`.
    pub fn count(&self, action: Action) -> usize {
        self.changes.iter().filter(|c| c.action == action).count()
    }

    /// One line per action that has changes, with the kinds it touches and how many of
    /// each (`  + 3 to add: aws_subnet (2), aws_vpc (1)`), then the addon changes: what
    /// `update cluster --yes` prints instead of the whole plan, which was reviewed already.
    pub fn summary(&self) -> String {
        let mut text = String::new();
        for (action, words) in [
            (Action::Create, "to add"),
            (Action::Update, "to change"),
            (Action::Replace, "to replace"),
            (Action::Delete, "to destroy"),
        ] {
            let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
            for change in self.changes.iter().filter(|c| c.action == action) {
                *kinds.entry(change.address.kind.as_str()).or_default() += 1;
            }
            if kinds.is_empty() {
                continue;
            }
            let listed: Vec<String> = kinds.iter().map(|(k, n)| format!("{k} ({n})")).collect();
            let _ = writeln!(
                text,
                "  {} {} {words}: {}",
                symbol(action),
                self.count(action),
                listed.join(", ")
            );
        }
        if !self.addons.is_empty() {
            let names: Vec<&str> = self.addons.iter().map(|a| a.name.as_str()).collect();
            let _ = writeln!(
                text,
                "  ~ {} addon change(s): {}",
                names.len(),
                names.join(", ")
            );
        }
        text
    }
}

/// Whether an attribute path names a secret (a password, a private key, a token): its
/// values are never printed or written to JSON. No kind kopsrs manages sends one today;
/// this keeps it so when one does.
pub fn sensitive(path: &str) -> bool {
    let path = path.to_ascii_lowercase();
    ["password", "secret", "private_key", "token"]
        .iter()
        .any(|word| path.contains(word))
}

/// Field paths in the order a person reads them: runs of digits compare as numbers, so
/// `tag[2]` comes before `tag[10]` (a byte order puts `tag[10]` first). Eleven lines, so no
/// crate for it.
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn runs(s: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let mut rest = s;
        while let Some(first) = rest.chars().next() {
            let digit = first.is_ascii_digit();
            let end = rest
                .find(|c: char| c.is_ascii_digit() != digit)
                .unwrap_or(rest.len());
            out.push((digit, &rest[..end]));
            rest = &rest[end..];
        }
        out
    }
    // Numbers: shorter (without leading zeros) is smaller, then digit by digit.
    fn key((digit, text): (bool, &str)) -> (u8, usize, &str) {
        match digit {
            true => (
                0,
                text.trim_start_matches('0').len(),
                text.trim_start_matches('0'),
            ),
            false => (1, 0, text),
        }
    }
    runs(a)
        .into_iter()
        .map(key)
        .cmp(runs(b).into_iter().map(key))
}

/// A value flattened to leaves, with references resolved to the IDs of resources that exist
/// (or shown as unknown when their target is still to be created).
fn flatten(
    prefix: &str,
    value: &Value,
    ids: &BTreeMap<&Address, &str>,
    out: &mut BTreeMap<String, String>,
) {
    match value {
        Value::Map(map) => {
            for (k, v) in map {
                flatten(&format!("{prefix}.{k}"), v, ids, out);
            }
        }
        Value::Blocks(blocks) => {
            for (i, block) in blocks.iter().enumerate() {
                for (k, v) in block {
                    flatten(&format!("{prefix}[{i}].{k}"), v, ids, out);
                }
            }
        }
        Value::Null => {}
        other => {
            out.insert(prefix.to_string(), scalar(other, ids));
        }
    }
}

fn scalar(value: &Value, ids: &BTreeMap<&Address, &str>) -> String {
    match value {
        Value::Str(s) => format!("{s:?}"),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::List(items) => {
            let items: Vec<String> = items.iter().map(|v| scalar(v, ids)).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Ref(r) if r.attr == "id" => match ids.get(&r.address) {
            Some(id) => format!("{id:?}"),
            None => "(known after apply)".into(),
        },
        Value::Ref(r) => format!("({}.{})", r.address, r.attr),
        Value::File(f) => f.content.clone(),
        Value::Expr(e) => e.clone(),
        Value::CidrSubnet {
            base,
            prefix,
            index,
        } => format!("(/{prefix} #{index} of {}.{})", base.address, base.attr),
        Value::Null => "null".into(),
        Value::Map(_) | Value::Blocks(_) => unreachable!("flattened before"),
    }
}

fn leaves(resource: &Resource, ids: &BTreeMap<&Address, &str>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (k, v) in &resource.attrs {
        flatten(k, v, ids, &mut out);
    }
    out
}

/// The plan that takes `actual` to `desired`. Resources of the cluster that exist but are
/// not desired are deleted; those the provider reports without an address it knows are not
/// its to touch and never appear in `actual`.
pub fn diff(desired: &DesiredSet, actual: &[Observed], schema: &dyn Schema) -> Plan {
    let ids: BTreeMap<&Address, &str> = actual
        .iter()
        .map(|o| (&o.resource.address, o.id.as_str()))
        .collect();
    let by_address: BTreeMap<&Address, &Observed> =
        actual.iter().map(|o| (&o.resource.address, o)).collect();
    let mut changes = Vec::new();
    for resource in &desired.resources {
        let Some(observed) = by_address.get(&resource.address) else {
            let fields = leaves(resource, &ids)
                .into_iter()
                .map(|(path, after)| FieldChange {
                    path,
                    before: None,
                    after: Some(after),
                    forces_replacement: false,
                })
                .collect();
            let mut fields: Vec<FieldChange> = fields;
            fields.sort_by(|a, b| natural_cmp(&a.path, &b.path));
            changes.push(Change {
                fields,
                ..Change::new(resource)
            });
            continue;
        };
        let want = leaves(resource, &ids);
        let have = leaves(&observed.resource, &ids);
        let kind = &resource.address.kind;
        let mut fields = Vec::new();
        for (path, after) in &want {
            let top = path.split(['.', '[']).next().unwrap_or(path);
            if schema.write_only(kind, top) {
                continue;
            }
            // Only attributes the provider reported are compared; tags are always reported.
            let reported = have.contains_key(path)
                || have.keys().any(|k| {
                    k.starts_with(&format!("{top}.")) || k.starts_with(&format!("{top}["))
                })
                || top == "tags"
                || schema.always_reported(kind, top);
            if !reported {
                continue;
            }
            let before = have.get(path);
            if before != Some(after) {
                fields.push(FieldChange {
                    path: path.clone(),
                    before: before.cloned(),
                    after: Some(after.clone()),
                    forces_replacement: schema.forces_replacement(kind, top),
                });
            }
        }
        // Tags, and attributes always reported, present in the cloud but no longer wanted.
        for (path, before) in &have {
            let top = path.split(['.', '[']).next().unwrap_or(path);
            let removable = top == "tags" || schema.always_reported(kind, top);
            if removable && !want.contains_key(path) {
                fields.push(FieldChange {
                    path: path.clone(),
                    before: Some(before.clone()),
                    after: None,
                    forces_replacement: top != "tags" && schema.forces_replacement(kind, top),
                });
            }
        }
        if fields.is_empty() {
            continue;
        }
        fields.sort_by(|a, b| natural_cmp(&a.path, &b.path));
        let action = if fields.iter().any(|f| f.forces_replacement) {
            Action::Replace
        } else {
            Action::Update
        };
        changes.push(Change {
            action,
            id: Some(observed.id.clone()),
            fields,
            ..Change::new(resource)
        });
    }
    let wanted: BTreeSet<&Address> = desired.resources.iter().map(|r| &r.address).collect();
    for observed in actual {
        if !wanted.contains(&observed.resource.address) {
            changes.push(Change {
                address: observed.resource.address.clone(),
                action: Action::Delete,
                id: Some(observed.id.clone()),
                fields: Vec::new(),
                desired: None,
                found: BTreeMap::new(),
            });
        }
    }
    changes.sort_by(|a, b| a.address.cmp(&b.address));
    Plan {
        changes,
        ..Plan::default()
    }
}

fn symbol(action: Action) -> &'static str {
    match action {
        Action::Create => "+",
        Action::Update => "~",
        Action::Replace => "-/+",
        Action::Delete => "-",
    }
}

impl fmt::Display for Plan {
    /// Terraform's layout: one block per resource, `+` / `~` / `-/+` / `-`, then a summary.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.changes.is_empty() {
            match self.held.is_empty() {
                true => writeln!(f, "No changes. The cloud matches the cluster spec.")?,
                false => writeln!(f, "No changes to apply now.")?,
            }
            return self.fmt_left(f);
        }
        for change in &self.changes {
            let verb = match change.action {
                Action::Create => "will be created",
                Action::Update => "will be updated in-place",
                Action::Replace => "must be replaced",
                Action::Delete => "will be destroyed",
            };
            writeln!(f, "  # {} {verb}", change.address)?;
            writeln!(
                f,
                "  {} resource {:?} {:?} {{",
                symbol(change.action),
                change.address.kind,
                change.address.name
            )?;
            if let Some(id) = &change.id {
                writeln!(f, "        id = {id:?}")?;
            }
            let width = change
                .fields
                .iter()
                .map(|c| c.path.len())
                .max()
                .unwrap_or(0);
            for field in &change.fields {
                let redacted = FieldChange {
                    before: field.before.as_ref().map(|_| "(sensitive)".to_string()),
                    after: field.after.as_ref().map(|_| "(sensitive)".to_string()),
                    ..field.clone()
                };
                let field = if sensitive(&field.path) {
                    &redacted
                } else {
                    field
                };
                let mark = match (&field.before, &field.after) {
                    (None, Some(_)) => "+",
                    (Some(_), None) => "-",
                    _ => "~",
                };
                let multiline = field.before.as_deref().unwrap_or("").contains('\n')
                    || field.after.as_deref().unwrap_or("").contains('\n');
                if multiline {
                    writeln!(f, "      {mark} {} = <<-EOT", field.path)?;
                    let mut text = String::new();
                    let diff = similar::TextDiff::from_lines(
                        field.before.as_deref().unwrap_or(""),
                        field.after.as_deref().unwrap_or(""),
                    );
                    // Only the changed lines with three of context each side, as `diff -u`:
                    // a node's bootstrap script is hundreds of lines.
                    for (number, group) in diff.grouped_ops(3).iter().enumerate() {
                        if number > 0 {
                            text.push_str("          ...\n");
                        }
                        for op in group {
                            for line in diff.iter_changes(op) {
                                let sign = match line.tag() {
                                    similar::ChangeTag::Delete => "-",
                                    similar::ChangeTag::Insert => "+",
                                    similar::ChangeTag::Equal => " ",
                                };
                                let _ = write!(text, "          {sign} {}", line);
                                if !line.to_string().ends_with('\n') {
                                    text.push('\n');
                                }
                            }
                        }
                    }
                    write!(f, "{text}")?;
                    writeln!(f, "        EOT")?;
                    continue;
                }
                let replace = if field.forces_replacement {
                    " # forces replacement"
                } else {
                    ""
                };
                match (&field.before, &field.after) {
                    (None, Some(after)) => writeln!(f, "      + {:width$} = {after}", field.path)?,
                    (Some(before), None) => {
                        writeln!(f, "      - {:width$} = {before}", field.path)?
                    }
                    (Some(before), Some(after)) => writeln!(
                        f,
                        "      ~ {:width$} = {before} -> {after}{replace}",
                        field.path
                    )?,
                    (None, None) => {}
                }
            }
            writeln!(f, "    }}\n")?;
        }
        writeln!(
            f,
            "Plan: {} to add, {} to change, {} to replace, {} to destroy.",
            self.count(Action::Create),
            self.count(Action::Update),
            self.count(Action::Replace),
            self.count(Action::Delete)
        )?;
        self.fmt_left(f)
    }
}

impl Plan {
    /// What follows the resource changes: addon changes, then what is left in place.
    fn fmt_left(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.held.is_empty() {
            writeln!(
                f,
                "\nHeld back: {} change(s) not applied by this run:",
                self.held.len()
            )?;
            for held in &self.held {
                writeln!(
                    f,
                    "  {} {}: {}",
                    symbol(held.change.action),
                    held.change.address,
                    held.hold
                )?;
            }
        }
        if !self.addons.is_empty() {
            writeln!(
                f,
                "\nAddons (applied by the control plane from the state store):"
            )?;
            for addon in &self.addons {
                let before = addon.before.as_deref().unwrap_or_default();
                let after = addon.after.as_deref().unwrap_or_default();
                let integrity = match &addon.integrity {
                    Some(text) => format!(" ({text})"),
                    None => String::new(),
                };
                match addon.action {
                    Action::Create => writeln!(f, "  + addon {} {after}{integrity}", addon.name)?,
                    Action::Delete => writeln!(
                        f,
                        "  - addon {} {before} (no longer applied; remove it with kubectl)",
                        addon.name
                    )?,
                    _ => writeln!(f, "  ~ addon {} {before} -> {after}{integrity}", addon.name)?,
                }
            }
        }
        if self.left.is_empty() {
            return Ok(());
        }
        writeln!(
            f,
            "\nLeft in place: {} item(s) inside the cluster's resources that kopsrs did not make:",
            self.left.len()
        )?;
        for left in &self.left {
            writeln!(f, "  {} {}", left.kind, left.id)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::natural_cmp;

    #[test]
    fn field_paths_sort_as_a_person_reads_them() {
        let mut paths = vec![
            "tag[10].key",
            "tag[2].key",
            "tag[1].value",
            "tags.Name",
            "tag[02].a",
        ];
        paths.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            paths,
            [
                "tag[1].value",
                "tag[02].a",
                "tag[2].key",
                "tag[10].key",
                "tags.Name"
            ]
        );
    }
}
