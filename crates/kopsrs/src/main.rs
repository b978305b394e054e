//! `kopsrs`: Kubernetes Operations in Rust.

mod cli;
mod commands;
mod context;
mod interrupt;
mod problems;
mod progress;

use clap::Parser;

fn main() -> std::process::ExitCode {
    // Rust ignores SIGPIPE, so a print to a closed pipe (`kopsrs get ... | head`) panics.
    // The default action ends the process quietly, as every Unix tool does. Sockets are not
    // affected: std (and so tokio) sends with MSG_NOSIGNAL and gets EPIPE as an error.
    // SAFETY: called first thing, before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = cli::Cli::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = runtime.block_on(commands::run(cli));
    problems::exit(result)
}
