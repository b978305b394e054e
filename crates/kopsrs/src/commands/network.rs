//! `validate network [NAME]`: `kopsrs_ops::network`'s checks as a table or JSON.

use anyhow::Result;
use kopsrs_checks::network::Status;
use kopsrs_ops::Session;

use crate::cli::{DiffFormat, ValidateNetworkArgs};
use crate::render::{print_table, table, ExitWith};

pub async fn run(global: &Session, args: ValidateNetworkArgs) -> Result<()> {
    let checks = kopsrs_ops::network::validate_network(global, args.cluster.as_deref()).await?;
    match args.output {
        DiffFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "checks": checks }))?
        ),
        DiffFormat::Text => {
            let mut t = table(&["CHECK", "STATUS", "RESOURCE", "MESSAGE"]);
            for c in &checks {
                let status = serde_json::to_value(c.status)?;
                let message = match c.hint.is_empty() {
                    true => c.message.clone(),
                    false => format!("{} (hint: {})", c.message, c.hint),
                };
                t.add_row(vec![
                    c.check.to_string(),
                    status.as_str().unwrap_or_default().to_string(),
                    c.resource.clone(),
                    message,
                ]);
            }
            print_table(&t);
        }
    }
    if checks.iter().any(|c| c.status == Status::Failed) {
        return Err(ExitWith(1).into());
    }
    Ok(())
}
