//! Project chores: `cargo xtask <task>`. See `cargo xtask help`.

mod conformance;
mod gen_api;

use std::path::PathBuf;

use anyhow::{bail, Result};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
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
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| root.join("target"));
            let binary = std::env::var_os("KOPSRS_BIN")
                .map(PathBuf::from)
                .unwrap_or_else(|| target.join("debug/kopsrs"));
            conformance::run(
                &shared.join("conformance/kops/create_cluster"),
                &binary,
                minimum,
            )
        }
        Some("conformance-complete") => {
            conformance::run_complete(&shared.join("conformance/kops/update_cluster"))
        }
        _ => {
            eprintln!("usage: cargo xtask gen-api | conformance-create [--min PERCENT] | conformance-complete");
            bail!("unknown task")
        }
    }
}
