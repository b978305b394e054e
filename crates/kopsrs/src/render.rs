//! What the command line shows: tables, and errors as `error:` lines with their cause chain
//! (`caused by:`) and a `hint:`, several problems (one per field or resource) as a list.

use std::fmt;
use std::process::ExitCode;

use comfy_table::{presets, Table};
use kopsrs_ops::problems::{state_hint, Interrupted};
use kopsrs_ops::{Problems, Settings};

/// A table with kops's look: no borders, a header row.
pub fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING);
    t.set_header(header.to_vec());
    t
}

/// Prints a table flush left, as kops's tables are.
pub fn print_table(table: &Table) {
    for line in table.to_string().lines() {
        println!("{}", line.trim());
    }
}

/// An exit with a given code and no message (`--detailed-exitcode` style results).
#[derive(Debug)]
pub struct ExitWith(pub u8);

impl fmt::Display for ExitWith {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "exit {}", self.0)
    }
}

impl std::error::Error for ExitWith {}

/// The process's exit: errors rendered on stderr, their status returned.
pub fn exit(result: anyhow::Result<()>, settings: &Settings) -> ExitCode {
    let Err(error) = result else {
        return ExitCode::SUCCESS;
    };
    if let Some(ExitWith(code)) = error.downcast_ref::<ExitWith>() {
        return ExitCode::from(*code);
    }
    if let Some(interrupted) = error.downcast_ref::<Interrupted>() {
        eprintln!("\n{interrupted}");
        return ExitCode::from(130);
    }
    if let Some(Problems(problems)) = error.downcast_ref::<Problems>() {
        for problem in problems {
            eprintln!("error: {}", problem.message);
            if let Some(hint) = &problem.hint {
                eprintln!("  hint: {hint}");
            }
        }
        if problems.len() > 1 {
            eprintln!("{} errors; nothing was written", problems.len());
        }
        return ExitCode::FAILURE;
    }
    eprintln!("error: {error}");
    for cause in error.chain().skip(1) {
        eprintln!("  caused by: {cause}");
    }
    if let Some(hint) = state_hint(settings, &error) {
        eprintln!("  hint: {hint}");
    }
    ExitCode::FAILURE
}

/// After an update: what to do next (a dry run with changes) or what the apply took.
pub fn update_report(name: &str, report: &kopsrs_ops::update::UpdateReport) {
    match &report.applied {
        None if !report.plan.is_empty() && !report.yes => {
            eprintln!("\nMust specify --yes to apply changes");
        }
        None => {}
        Some(a) => eprintln!(
            "Applied {} change(s) to {name} in {:.2} s ({} attempts, {} AWS API calls; \
             critical path {} dependent call(s), taking {:.2} s).",
            a.done,
            a.elapsed.as_secs_f64(),
            a.attempts,
            a.calls,
            a.critical_path,
            a.critical_path_time.as_secs_f64(),
        ),
    }
}

/// The stdout text of one object of `manifests diff/apply/delete`, newline included.
pub fn object_event(address: &str, event: &kopsrs_ops::reporter::ObjectEvent) -> String {
    use kopsrs_ops::reporter::ObjectEvent as E;
    let dry = |dry_run: bool| if dry_run { " (dry run)" } else { "" };
    let line = match event {
        E::Diff(text) => return text.clone(),
        E::Refused(e) => format!("{address}: {e}"),
        E::Applied { what, dry_run } => format!("{address} {what}{}", dry(*dry_run)),
        E::CreatedAfterDefinition => {
            format!("{address} created (dry run): its definition is applied first")
        }
        E::CreatedAfterNamespace(ns) => {
            format!("{address} created (dry run): namespace {ns} is created first")
        }
        E::NotServed(version) => format!("{address} failed: the API does not serve {version}"),
        E::Failed(e) => format!("{address} failed: {e}"),
        E::Kept(why) => format!("{address} kept: {why}"),
        E::Garbage { dry_run } => format!("{address} deleted (garbage){}", dry(*dry_run)),
        E::Deleted { dry_run } => format!("{address} deleted{}", dry(*dry_run)),
        E::NotFound => format!("{address} not found"),
        E::KindNotServed => format!("{address} not found (the API does not serve its kind)"),
    };
    line + "\n"
}
