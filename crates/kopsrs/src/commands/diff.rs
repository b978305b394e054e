//! `diff -f PATH...` and `diff cluster NAME [-f PATH]`: flags to `kopsrs_ops::diff`, the
//! differences as text or JSON. `--detailed-exitcode` exits 2 on a difference (as
//! `update cluster`); `-o json` gives one entry per field for alerting.

use anyhow::Result;
use serde_json::Value;

use crate::cli::{DiffArgs, DiffClusterArgs, DiffCommand, DiffFormat};
use crate::render::ExitWith;
use kopsrs_ops::diff::{self, Difference};
use kopsrs_ops::Session;

pub async fn run(global: &Session, args: DiffArgs) -> Result<()> {
    if let Some(DiffCommand::Cluster(args)) = args.what {
        return cluster(global, args).await;
    }
    let (out, objects) = diff::diff_files(global, &args.filenames).await?;
    match args.output {
        DiffFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "differences": out }))?
        ),
        DiffFormat::Text => print_text(&out, &objects),
    }
    if args.detailed_exitcode && !out.is_empty() {
        return Err(ExitWith(2).into());
    }
    Ok(())
}

async fn cluster(global: &Session, args: DiffClusterArgs) -> Result<()> {
    let report = diff::diff_cluster(
        global,
        args.cluster.as_deref(),
        &args.filenames,
        args.pins.options(),
    )
    .await?;
    let (name, files, c) = (&report.name, &report.files, &report.cloud);
    let cloud = serde_json::json!({
        "create": c.create,
        "update": c.update,
        "replace": c.replace,
        "delete": c.delete,
        "addons": c.addons,
    });
    match args.output {
        DiffFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "cluster": name,
                "files": files.as_ref().map(|f| serde_json::json!({ "differences": f })),
                "cloud": cloud,
                "differs": report.differs,
            }))?
        ),
        DiffFormat::Text => {
            println!("Cluster {name}");
            match files {
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
            match c.is_empty() {
                true => println!("  state store vs cloud: no changes"),
                false => println!(
                    "  state store vs cloud: {} to add, {} to change, {} to replace, {} to destroy, {} addon change(s); `kopsrs update cluster {name}` shows them",
                    c.create, c.update, c.replace, c.delete, c.addons
                ),
            }
        }
    }
    if args.detailed_exitcode && report.differs {
        return Err(ExitWith(2).into());
    }
    Ok(())
}

/// A unified YAML diff per object (field lines are `-o json`'s).
fn print_text(out: &[Difference], objects: &[diff::ObjectDiff]) {
    if out.is_empty() {
        println!("No differences between the files and the state store.");
        return;
    }
    for object in objects {
        print!("{}", object.unified());
    }
    println!(
        "\n{} difference(s) in {} object(s). `kopsrs replace -f` makes the state store match the files.",
        out.len(),
        objects.len()
    );
}

fn shown(v: &Value) -> String {
    match v {
        Value::Null => "(absent)".into(),
        v => v.to_string(),
    }
}
