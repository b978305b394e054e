//! The command line's own checks: every verb has examples that parse, every argument a
//! description.

use clap::CommandFactory;

/// Every verb a user can run, with its path (`create cluster`).
fn leaves(cmd: &clap::Command, path: &str, out: &mut Vec<(String, clap::Command)>) {
    let subs: Vec<_> = cmd
        .get_subcommands()
        .filter(|c| c.get_name() != "help")
        .collect();
    if subs.is_empty() || cmd.is_args_conflicts_with_subcommands_set() {
        out.push((path.trim().to_string(), cmd.clone()));
    }
    for sub in subs {
        leaves(sub, &format!("{path} {}", sub.get_name()), out);
    }
}

#[test]
fn every_verb_has_an_example_and_every_argument_a_description() {
    let mut cli = crate::cli::Cli::command();
    cli.build();
    let mut verbs = Vec::new();
    leaves(&cli, "", &mut verbs);
    let mut missing = Vec::new();
    for (path, cmd) in &verbs {
        if path.is_empty() || cmd.is_hide_set() {
            continue;
        }
        let after = cmd.get_after_help().or(cmd.get_after_long_help());
        let example = |text: &clap::builder::StyledStr| {
            let text = text.to_string();
            text.starts_with("Examples:\n") && text.contains("\n  kopsrs ")
        };
        if !after.is_some_and(example) {
            missing.push(format!("`{path}`: no Examples: section"));
        }
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if arg.is_hide_set() || id == "help" || id == "version" {
                continue;
            }
            if arg.get_help().is_none() && arg.get_long_help().is_none() {
                missing.push(format!("`{path}`: argument {id} has no description"));
            }
        }
    }
    assert!(
        verbs.len() > 20,
        "the walk found only {} verbs",
        verbs.len()
    );
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

/// The commands of an example line: its pipeline and `&&` parts that run kopsrs, each
/// up to a redirection. Examples are written without quotes, so words split on spaces.
fn example_commands(line: &str) -> Vec<Vec<&str>> {
    line.split(" | ")
        .flat_map(|part| part.split(" && "))
        .filter_map(|part| {
            let words: Vec<&str> = part.split_whitespace().take_while(|w| *w != ">").collect();
            (words.first() == Some(&"kopsrs")).then_some(words)
        })
        .collect()
}

#[test]
fn every_example_parses_as_written() {
    let mut cli = crate::cli::Cli::command();
    cli.build();
    let mut verbs = Vec::new();
    leaves(&cli, "", &mut verbs);
    let mut checked = 0;
    let mut missing = Vec::new();
    for (path, cmd) in &verbs {
        let Some(after) = cmd.get_after_help() else {
            continue;
        };
        for line in after.to_string().lines().skip(1) {
            let line = line.trim();
            if line.starts_with('#') {
                continue;
            }
            assert!(
                !line.contains(['"', '\'']),
                "`{path}`: quote in example {line:?}"
            );
            let commands = example_commands(line);
            assert!(
                !commands.is_empty(),
                "`{path}`: {line:?} does not run kopsrs"
            );
            for words in commands {
                checked += 1;
                match <crate::cli::Cli as clap::Parser>::try_parse_from(&words) {
                    Err(e) => missing.push(format!("`{path}`: {line:?} does not parse:\n{e}")),
                    Ok(crate::cli::Cli {
                        command: crate::cli::Command::Unsupported(verb),
                        ..
                    }) => missing.push(format!("`{path}`: {line:?} runs no verb: {verb:?}")),
                    Ok(_) => {}
                }
            }
        }
    }
    assert!(checked > 40, "only {checked} examples");
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}
