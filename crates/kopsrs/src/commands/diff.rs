//! `diff -f PATH...`: the specs in git against the state store, field by field, per cluster
//! and instance group; objects only on one side listed. `diff cluster NAME [-f PATH]` adds
//! the cloud: the plan of `update cluster`, counted per action. Both sides are decoded into the same
//! types and compared as JSON, so formatting, key order and comments never show as changes.
//! `--detailed-exitcode` exits 2 on a difference (as `update cluster`); `-o json` gives one
//! entry per field for alerting.

use anyhow::Result;
use serde::Serialize;
use serde_json::Value;

use kopsrs_engine::Action;
use kopsrs_state::StateStore;

use crate::cli::{DiffArgs, DiffClusterArgs, DiffCommand, DiffFormat};
use crate::render::ExitWith;
use kopsrs_ops::session as context;
use kopsrs_ops::Problems;
use kopsrs_ops::Session;

use kopsrs_ops::specs::group_by_cluster;

/// One difference: a field, or a whole object on one side only (`path` empty).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Difference {
    /// The cluster.
    pub cluster: String,
    /// `Cluster/NAME` or `InstanceGroup/NAME`.
    pub object: String,
    /// The field (`spec.kubernetesVersion`, `spec.subnets[0].cidr`); empty for a whole object.
    pub path: String,
    /// The value in the files (`null`: absent).
    pub file: Value,
    /// The value in the state store (`null`: absent).
    pub store: Value,
}

pub async fn run(global: &Session, args: DiffArgs) -> Result<()> {
    if let Some(DiffCommand::Cluster(args)) = args.what {
        return cluster(global, args).await;
    }
    if args.filenames.is_empty() {
        return Err(Problems::one(
            "diff needs the spec files: -f PATH",
            "`kopsrs diff -f clusters/` compares them with the state store; `kopsrs diff cluster NAME` adds the cloud",
        )
        .into());
    }
    let store = context::open_store(global).await?;
    let out = file_differences(&store, &args.filenames, global, global.name.as_deref()).await?;
    match args.output {
        DiffFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "differences": out }))?
        ),
        DiffFormat::Text => print_text(&out),
    }
    if args.detailed_exitcode && !out.is_empty() {
        return Err(ExitWith(2).into());
    }
    Ok(())
}

/// The files against the state store, for every cluster in them (`only`: that one).
async fn file_differences(
    store: &StateStore,
    files: &[std::path::PathBuf],
    global: &Session,
    only: Option<&str>,
) -> Result<Vec<Difference>> {
    let documents = context::read_sourced(global, files)?;
    let sets = group_by_cluster(global.name.as_deref(), documents)?;
    let mut out = Vec::new();
    for (name, set) in sets {
        if only.is_some_and(|n| n != name) {
            continue;
        }
        let stored = store.read_cluster(&name).await?;
        let stored_groups = store.read_instance_groups(&name).await?;
        let mut compare = |object: String, file: Option<Value>, stored: Option<Value>| {
            let (file, stored) = (file.unwrap_or(Value::Null), stored.unwrap_or(Value::Null));
            if file.is_null() || stored.is_null() {
                if file != stored {
                    out.push(Difference {
                        cluster: name.clone(),
                        object,
                        path: String::new(),
                        file,
                        store: stored,
                    });
                }
                return;
            }
            let mut fields = Vec::new();
            differences(&file, &stored, String::new(), &mut fields);
            out.extend(fields.into_iter().map(|(path, file, store)| Difference {
                cluster: name.clone(),
                object: object.clone(),
                path,
                file,
                store,
            }));
        };
        if let Some(cluster) = &set.cluster {
            compare(
                format!("Cluster/{name}"),
                Some(serde_json::to_value(cluster)?),
                stored
                    .as_ref()
                    .map(|c| serde_json::to_value(&c.value))
                    .transpose()?,
            );
        }
        for group in &set.groups {
            let object = format!("InstanceGroup/{}", group.metadata.name);
            let stored = stored_groups
                .iter()
                .find(|g| g.value.metadata.name == group.metadata.name)
                .map(|g| serde_json::to_value(&g.value))
                .transpose()?;
            compare(object, Some(serde_json::to_value(group)?), stored);
        }
        // With its Cluster the files are the whole spec: groups they lack are drift too.
        if set.cluster.is_some() {
            for g in &stored_groups {
                if !set
                    .groups
                    .iter()
                    .any(|f| f.metadata.name == g.value.metadata.name)
                {
                    compare(
                        format!("InstanceGroup/{}", g.value.metadata.name),
                        None,
                        Some(serde_json::to_value(&g.value)?),
                    );
                }
            }
        }
    }
    Ok(out)
}

/// `diff cluster NAME [-f PATH]`: files vs state store (with -f), state store vs cloud (the
/// plan of `update cluster`, counted per action), one exit code.
async fn cluster(global: &Session, args: DiffClusterArgs) -> Result<()> {
    let store = context::open_store(global).await?;
    let name = context::cluster_name(global, args.cluster.as_deref())?;
    let files = match args.filenames.is_empty() {
        true => None,
        false => Some(file_differences(&store, &args.filenames, global, Some(&name)).await?),
    };
    let prepared = kopsrs_ops::prepare(&store, &name, global, true).await?;
    let aws = kopsrs_ops::cluster::aws(global, &prepared.set.region).await;
    let (plan, _) =
        kopsrs_ops::update::plan(global, &aws, &store, &prepared, args.pins.options()).await?;
    let count = |a: Action| plan.count(a);
    let cloud = serde_json::json!({
        "create": count(Action::Create),
        "update": count(Action::Update),
        "replace": count(Action::Replace),
        "delete": count(Action::Delete),
        "addons": plan.addons.len(),
    });
    let differs = files.as_ref().is_some_and(|f| !f.is_empty())
        || !plan.is_empty()
        || !plan.addons.is_empty();
    match args.output {
        DiffFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "cluster": name,
                "files": files.as_ref().map(|f| serde_json::json!({ "differences": f })),
                "cloud": cloud,
                "differs": differs,
            }))?
        ),
        DiffFormat::Text => {
            println!("Cluster {name}");
            match &files {
                None => println!("  files vs state store: not compared (pass -f PATH)"),
                Some(f) if f.is_empty() => println!("  files vs state store: no differences"),
                Some(f) => {
                    println!("  files vs state store: {} difference(s)", f.len());
                    for d in f {
                        match d.path.is_empty() {
                            true => println!(
                                "    {}: only in the {}",
                                d.object,
                                if d.file.is_null() {
                                    "state store"
                                } else {
                                    "files"
                                }
                            ),
                            false => println!(
                                "    {} {}: {} (state store) -> {} (files)",
                                d.object,
                                d.path,
                                shown(&d.store),
                                shown(&d.file)
                            ),
                        }
                    }
                }
            }
            match plan.is_empty() && plan.addons.is_empty() {
                true => println!("  state store vs cloud: no changes"),
                false => println!(
                    "  state store vs cloud: {} to add, {} to change, {} to replace, {} to destroy, {} addon change(s); `kopsrs update cluster {name}` shows them",
                    count(Action::Create),
                    count(Action::Update),
                    count(Action::Replace),
                    count(Action::Delete),
                    plan.addons.len()
                ),
            }
        }
    }
    if args.detailed_exitcode && differs {
        return Err(ExitWith(2).into());
    }
    Ok(())
}

fn print_text(out: &[Difference]) {
    if out.is_empty() {
        println!("No differences between the files and the state store.");
        return;
    }
    let mut current = None;
    for d in out {
        let header = (&d.cluster, &d.object);
        if current != Some(header) {
            current = Some(header);
            match (d.path.is_empty(), d.file.is_null()) {
                (true, true) => println!("- {} ({}): only in the state store", d.object, d.cluster),
                (true, false) => println!("+ {} ({}): only in the files", d.object, d.cluster),
                _ => println!("~ {} ({})", d.object, d.cluster),
            }
        }
        if !d.path.is_empty() {
            println!(
                "    {}: {} (state store) -> {} (files)",
                d.path,
                shown(&d.store),
                shown(&d.file)
            );
        }
    }
    let objects = {
        let mut o: Vec<_> = out.iter().map(|d| (&d.cluster, &d.object)).collect();
        o.dedup();
        o.len()
    };
    println!(
        "\n{} difference(s) in {objects} object(s). `kopsrs replace -f` makes the state store match the files.",
        out.len()
    );
}

fn shown(v: &Value) -> String {
    match v {
        Value::Null => "(absent)".into(),
        v => v.to_string(),
    }
}

/// Every leaf where `a` (files) and `b` (store) differ: objects by key, lists by index;
/// a field absent on one side is `null` there.
fn differences(a: &Value, b: &Value, path: String, out: &mut Vec<(String, Value, Value)>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let sub = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                differences(
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                    sub,
                    out,
                );
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            for i in 0..x.len().max(y.len()) {
                differences(
                    x.get(i).unwrap_or(&Value::Null),
                    y.get(i).unwrap_or(&Value::Null),
                    format!("{path}[{i}]"),
                    out,
                );
            }
        }
        (a, b) if a != b => out.push((path, a.clone(), b.clone())),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::differences;
    use serde_json::json;

    #[test]
    fn differences_name_each_field_once() {
        let files =
            json!({"spec": {"a": 1, "list": [{"x": 1}, {"x": 2}], "same": true, "new": "n"}});
        let store = json!({"spec": {"a": 2, "list": [{"x": 1}], "same": true, "old": "o"}});
        let mut out = Vec::new();
        differences(&files, &store, String::new(), &mut out);
        assert_eq!(
            out,
            vec![
                ("spec.a".to_string(), json!(1), json!(2)),
                ("spec.list[1]".to_string(), json!({"x": 2}), json!(null)),
                ("spec.new".to_string(), json!("n"), json!(null)),
                ("spec.old".to_string(), json!(null), json!("o")),
            ]
        );
    }
}
