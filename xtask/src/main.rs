//! Project chores: `cargo xtask <task>`. See `cargo xtask help`.

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
        _ => {
            eprintln!("usage: cargo xtask gen-api");
            bail!("unknown task")
        }
    }
}
