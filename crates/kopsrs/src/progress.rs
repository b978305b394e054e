//! Progress of an apply or a delete: a bar with done/total on a terminal (indicatif), one
//! line per finished change otherwise, so CI logs stay readable.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use kopsrs_engine::{Action, Change, Event};

fn verb(action: Action) -> &'static str {
    match action {
        Action::Create => "created",
        Action::Update => "updated",
        Action::Replace => "replaced",
        Action::Delete => "deleted",
    }
}

/// A progress callback for `total` changes.
pub fn reporter(total: usize) -> impl FnMut(&Change, Event) {
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
