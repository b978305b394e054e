//! `kopsrs`: Kubernetes Operations in Rust.

mod cli;
mod commands;
mod jsonnet_flags;
mod kops_flags;
mod render;
mod terminal;

use clap::Parser;

fn main() -> std::process::ExitCode {
    quiet_on_closed_stdout();
    // The only read of the environment (clap's `env = ...` flags aside).
    let settings = kopsrs_ops::Settings::from_env();
    let mut cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        // A kops flag kopsrs does not have: what to use instead, not clap's closest flag.
        Err(error) => match kops_flags::explain(&error) {
            Some(problems) => return render::exit(Err(problems.into()), &settings),
            None => error.exit(),
        },
    };
    cli.global.settings = settings.clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    // On the heap: the operations are large state machines (a reconcile holds an update
    // and a roll), too large for the main thread's stack.
    let result = runtime.block_on(Box::pin(commands::run(cli)));
    render::exit(result, &settings)
}

/// `kopsrs get ... | head`: std's print macros panic when stdout is a closed pipe. Rust
/// ignores SIGPIPE on purpose (a write to a closed socket must be an error, not death), so
/// that signal's default cannot be restored; instead this exact panic ends the process
/// quietly with the status a shell shows for SIGPIPE (128 + 13), as other Unix tools end.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}
