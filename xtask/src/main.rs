//! Project automation for Resync, run as `cargo xtask <command>`.
//!
//! * `ci` — everything CI checks: formatting, clippy, docs, and every test of the workspace
//!   against real Postgres and Redis servers that it starts and always stops.
//! * `test` — only the tests, with the servers.
//! * `bench` — the Criterion benches, with the servers (pool benches need Postgres).
//! * `services up|down|status` — throwaway servers for running tests by hand.

mod ci;
mod interrupt;
mod packages;
mod services;
#[cfg(test)]
mod tidy;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "xtask", about = "Resync project automation")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// fmt check, clippy -D warnings, docs -D warnings, all tests with real services.
    Ci,
    /// All tests of the workspace with real Postgres and Redis.
    Test {
        /// Extra arguments passed to `cargo test`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// The Criterion benches (with real services).
    Bench {
        /// Extra arguments passed to `cargo bench`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Throwaway Postgres and Redis servers for tests run by hand.
    Services {
        #[command(subcommand)]
        action: services::Action,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let root = project_root();
    interrupt::install_handlers()?;
    match cli.command {
        Task::Ci => ci::run(&root),
        Task::Test { args } => ci::test(&root, &args),
        Task::Bench { args } => ci::bench(&root, &args),
        Task::Services { action } => services::run(&root, &action),
    }
}

/// The workspace root: the parent of this crate's manifest directory.
fn project_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// `cargo` as invoked by the user (the `CARGO` variable cargo sets), else from `PATH`.
fn cargo(root: &Path) -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(root);
    command
}

/// Runs `command`, echoing it first, and fails when it fails.
fn run_step(what: &str, command: Command) -> Result<()> {
    eprintln!("\n==> {what}: {command:?}");
    let status = interrupt::run(command).with_context(|| format!("{what} did not finish"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}
