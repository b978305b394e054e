//! Project chores: `cargo xtask <task>`. See `cargo xtask help`.

mod conformance;
mod gen_api;
mod terraform;

use std::path::PathBuf;

use anyhow::{bail, Result};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo run` sets CARGO_MANIFEST_DIR at run time; prefer it to the compile-time value so
    // that a binary built from another clone sharing CARGO_TARGET_DIR reads this clone.
    let root = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .join("..");
    let shared = std::env::var_os("KOPSRS_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("../shared"));
    match args.first().map(String::as_str) {
        Some("gen-api") => gen_api::run(
            &shared.join("conformance/kops/schema"),
            &root.join("crates/kopsrs-api/src/generated.rs"),
        ),
        Some("conformance-create") => {
            let minimum = args
                .iter()
                .position(|a| a == "--min")
                .and_then(|i| args.get(i + 1))
                .map(|m| m.parse())
                .transpose()?;
            let binary = kopsrs_binary(&root);
            conformance::run(
                &shared.join("conformance/kops/create_cluster"),
                &binary,
                minimum,
            )
        }
        Some("conformance-terraform") => {
            let flag = |name: &str| {
                args.iter()
                    .position(|a| a == name)
                    .and_then(|i| args.get(i + 1))
                    .cloned()
            };
            let number = |name: &str| -> Result<Option<f64>> {
                Ok(flag(name).map(|m| m.parse()).transpose()?)
            };
            let binary = kopsrs_binary(&root);
            terraform::run(
                &shared.join("conformance/kops/update_cluster"),
                &binary,
                &terraform::Options {
                    min_recall: number("--min-recall")?,
                    min_precision: number("--min-precision")?,
                    min_agreement: number("--min-agreement")?,
                    verbose: args.iter().any(|a| a == "-v" || a == "--verbose"),
                    markdown: args.iter().any(|a| a == "--markdown"),
                    only: flag("--case"),
                    validate: args
                        .iter()
                        .any(|a| a == "--validate")
                        .then(|| root.join("scripts/terraform_validate.sh")),
                },
            )
        }
        Some("conformance-complete") => {
            conformance::run_complete(&shared.join("conformance/kops/update_cluster"))
        }
        _ => {
            eprintln!("usage: cargo xtask gen-api | conformance-create [--min PERCENT] | conformance-complete | conformance-terraform [--min-recall P] [--min-precision P] [--min-agreement P] [--case NAME] [-v] [--markdown] [--validate]");
            bail!("unknown task")
        }
    }
}

/// The kopsrs binary the conformance runs call: `$KOPSRS_BIN`, else the debug build.
fn kopsrs_binary(root: &std::path::Path) -> PathBuf {
    std::env::var_os("KOPSRS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| root.join("target"))
                .join("debug/kopsrs")
        })
}
