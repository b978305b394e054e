//! The command line's [`Reporter`]: progress lines and warnings on stderr; the progress of
//! an apply or a delete as a bar with done/total on a terminal (indicatif), one line per
//! finished change otherwise, so CI logs stay readable; the plan of `update cluster` on
//! stdout (text or JSON); each object of a manifests verb on stdout as it is done.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use kopsrs_engine::{Action, Change, Event, Plan};
use kopsrs_ops::reporter::ObjectEvent;
use kopsrs_ops::Reporter;

/// Reports to the terminal.
#[derive(Debug, Default, Clone, Copy)]
pub struct Terminal {
    /// Print plans as JSON (`update cluster -o json`).
    pub plan_json: bool,
    /// Print a dry run's summary alone (`update cluster --summary`).
    pub plan_summary: bool,
}

impl Reporter for Terminal {
    fn say(&self, line: &str) {
        eprintln!("{line}");
    }

    fn warn(&self, warning: &str, hint: Option<&str>) {
        eprintln!("warning: {warning}");
        if let Some(hint) = hint {
            eprintln!("  hint: {hint}");
        }
    }

    fn planned(&self, cluster: &str, plan: &Plan, applying: bool) {
        if self.plan_json {
            let json = serde_json::to_string_pretty(&plan.document(Some(cluster)))
                .expect("a plan as JSON");
            println!("{json}");
        } else if applying && !plan.is_empty() {
            // The plan was reviewed with the dry run; here, what is about to happen.
            println!(
                "Applying to {cluster} (the full plan: `kopsrs update cluster {cluster}`):\n{}",
                plan.summary()
            );
        } else if plan.is_empty() {
            print!("{plan}");
        } else if self.plan_summary {
            print!("Plan for {cluster}:\n{}", plan.summary());
            if !plan.held.is_empty() {
                println!(
                    "  {} change(s) held back (the full plan: without --summary)",
                    plan.held.len()
                );
            }
        } else {
            // The summary first: an HA cluster's plan runs to thousands of lines.
            println!(
                "Plan for {cluster} (each change below):\n{}",
                plan.summary()
            );
            print!("{plan}");
        }
        eprintln!("({} AWS API calls to read the cluster)", plan.reads);
    }

    fn changes(&self, total: usize) -> kopsrs_ops::reporter::Progress {
        Box::new(reporter(total))
    }

    fn object(&self, address: &str, event: &ObjectEvent) {
        print!("{}", crate::render::object_event(address, event));
    }
}

fn verb(action: Action) -> &'static str {
    match action {
        Action::Create => "created",
        Action::Update => "updated",
        Action::Replace => "replaced",
        Action::Delete => "deleted",
    }
}

/// A progress callback for `total` changes.
fn reporter(total: usize) -> impl FnMut(&Change, Event) + Send {
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::new(total as u64);
        bar.set_style(
            ProgressStyle::with_template("{bar:30.cyan/blue} {pos}/{len} [{elapsed}] {wide_msg}")
                .expect("a valid template"),
        );
        bar
    });
    let mut done = 0;
    move |change, event| {
        let line = match event {
            Event::Started { .. } => {
                if let Some(bar) = &bar {
                    bar.set_message(change.address.to_string());
                }
                None
            }
            Event::Done { elapsed, .. } => {
                done += 1;
                match &bar {
                    Some(bar) => {
                        bar.set_position(done as u64);
                        if done == total {
                            bar.finish_and_clear();
                        }
                        None
                    }
                    None => Some(format!(
                        "[{done}/{total}] {} {} ({:.2} s)",
                        change.address,
                        verb(change.action),
                        elapsed.as_secs_f64()
                    )),
                }
            }
            Event::Retrying { attempt, error, .. } => Some(format!(
                "  retrying {} (attempt {attempt}): {error}",
                change.address
            )),
            Event::Failed { error, .. } => Some(format!("  failed {}: {error}", change.address)),
        };
        match (line, &bar) {
            (Some(line), Some(bar)) => bar.println(line),
            (Some(line), None) => eprintln!("{line}"),
            (None, _) => {}
        }
    }
}

/// `session` with its plans printed as JSON (`json`) or text.
pub fn with_plan_format(
    session: &kopsrs_ops::Session,
    json: bool,
    summary: bool,
) -> kopsrs_ops::Session {
    kopsrs_ops::Session {
        reporter: std::sync::Arc::new(Terminal {
            plan_json: json,
            plan_summary: summary,
        }),
        ..session.clone()
    }
}

/// Whether prompts and editors may be used.
pub fn interactive() -> bool {
    std::io::stdin().is_terminal()
}
