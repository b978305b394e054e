//! `kopsrs`: Kubernetes Operations in Rust.

mod cli;
mod commands;
mod context;
mod interrupt;
mod problems;
mod progress;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = runtime.block_on(commands::run(cli));
    problems::exit(result)
}
