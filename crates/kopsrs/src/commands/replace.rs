//! `replace -f PATH... [--force]`: flags to `kopsrs_ops::replace`.

use anyhow::Result;
use kopsrs_ops::Session;

use crate::cli::ReplaceArgs;

pub async fn run(global: &Session, args: ReplaceArgs) -> Result<()> {
    kopsrs_ops::replace::replace_files(global, &args.filenames, args.force).await
}
