//! Project automation for Resync, run as `cargo xtask <command>`.
//!
//! * `ci` — everything CI checks: formatting, clippy, docs, and every test of the workspace
//!   against real Postgres and Redis servers that it starts and always stops; then
//!   `promtool check metrics` over the `/metrics` of the real server, against those servers.
//! * `promtool` — only that last check (against the servers of `services up` when their
//!   variables are set, else fresh ones).
//! * `ops` — the alert rules and Grafana dashboard of `docs/ops/`: promtool's rule check and
//!   rule tests, and every metric they use against the real server's `/metrics` (also a step
//!   of `ci`).
//! * `docs [--check] [--no-server]` — the generated sections of the docs: the settings
//!   tables from the `Settings` struct's source, and the metric families and example
//!   responses captured from the real server (`--check`, a step of `ci`: fail on drift).
//! * `examples` — every crate's example (`cargo run --example …`), against the servers (also
//!   a step of `ci`).
//! * `browser` — the built-in dashboard in headless Chromium against the real server: no
//!   JavaScript error, and after some traffic every chart has data points; writes
//!   docs/images/dashboard.png (also a step of `ci`, whose screenshot stays in the target
//!   directory).
//! * `test` — only the tests, with the servers.
//! * `bench` — the Criterion benches, with the servers (pool benches need Postgres);
//!   `bench gateway` — resync's caching gateway beside nginx's `proxy_cache` under wrk;
//!   `bench distributed` — two resync instances without and with the Redis second level.
//! * `services up|down|status` — throwaway servers for running tests by hand.

mod bench_distributed;
mod bench_gateway;
mod binaries;
mod browser;
mod ci;
mod docs;
mod docs_crates;
mod examples;
mod http;
mod interrupt;
mod ops;
mod packages;
mod promtool;
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
    /// fmt check, clippy -D warnings, docs -D warnings, all tests with real services, then
    /// promtool over the real server's /metrics.
    Ci,
    /// All tests of the workspace with real Postgres and Redis.
    Test {
        /// Extra arguments passed to `cargo test`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// The Criterion benches (with real services); `bench gateway`: resync's caching gateway
    /// beside nginx's proxy_cache under wrk; `bench distributed`: two instances without and
    /// with the Redis second level.
    #[command(
        args_conflicts_with_subcommands = true,
        subcommand_precedence_over_arg = true
    )]
    Bench {
        #[command(subcommand)]
        which: Option<BenchWhich>,
        /// Extra arguments passed to `cargo bench`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// `promtool check metrics` over the /metrics of the real `resync` binary, run against
    /// the servers of `services up` (when exported) or fresh ones.
    Promtool,
    /// The built-in dashboard in headless Chromium (installed when missing) against the real
    /// `resync` binary; writes a screenshot.
    Browser(browser::Options),
    /// `promtool check rules` and `test rules` over docs/ops/alerts.yml, and every metric name
    /// of the alerts and the Grafana dashboard against the real server's /metrics.
    Ops,
    /// The generated sections of the docs: settings tables from the Settings struct's
    /// source, metric families and example responses from the real server (with --check:
    /// fail when the docs drift).
    Docs(docs::Options),
    /// Every crate's example (`cargo run --example …`) against Postgres and Redis: each must
    /// exit 0 and end with its `ok:` line.
    Examples,
    /// Throwaway Postgres and Redis servers for tests run by hand.
    Services {
        #[command(subcommand)]
        action: services::Action,
    },
}

/// Benches other than the Criterion ones.
#[derive(Debug, Subcommand)]
enum BenchWhich {
    /// resync's caching gateway (GET /tws/…) and nginx's proxy_cache in front of the same
    /// test upstream, in paired interleaved wrk rounds (installs nginx-light and wrk).
    Gateway(bench_gateway::Options),
    /// Two resync instances in front of one test upstream under the same wrk load, with the
    /// Redis second level off and on (fresh instances and Redis each time): upstream
    /// requests, req/s, the X-Cache split, and what an L2 hit costs over an L1 hit (installs
    /// wrk and redis-server).
    Distributed(bench_distributed::Options),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let root = project_root();
    interrupt::install_handlers()?;
    match cli.command {
        Task::Ci => ci::run(&root),
        Task::Test { args } => ci::test(&root, &args),
        Task::Bench {
            which: Some(BenchWhich::Gateway(options)),
            ..
        } => bench_gateway::run(&root, &options),
        Task::Bench {
            which: Some(BenchWhich::Distributed(options)),
            ..
        } => bench_distributed::run(&root, &options),
        Task::Bench { which: None, args } => ci::bench(&root, &args),
        Task::Promtool => promtool::run(&root),
        Task::Browser(options) => browser::run(&root, &options),
        Task::Ops => ops::run(&root),
        Task::Docs(options) => docs::run(&root, &options),
        Task::Examples => examples::run(&root),
        Task::Services { action } => services::run(&root, &action),
    }
}

/// The workspace root: the parent of this crate's manifest directory.
fn project_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// `cargo` as invoked by the user (the `CARGO` variable cargo sets), else from `PATH`.
///
/// The variables `cargo run` set for xtask itself (`CARGO_MANIFEST_DIR`, `CARGO_PKG_*`, …)
/// are not passed on: build scripts that track one of them (ring's tracks
/// `CARGO_MANIFEST_DIR`) would otherwise see it change between a build run by xtask and one
/// run by hand, and rebuild themselves and everything above them each time.
fn cargo(root: &Path) -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(root);
    for (key, _) in std::env::vars_os() {
        if is_set_by_cargo_run(&key.to_string_lossy()) {
            command.env_remove(key);
        }
    }
    command
}

/// `command` as a shell line: the variables it sets, the program and its arguments (the
/// variables it removes are left out).
fn describe(command: &Command) -> String {
    let sets = command.get_envs().filter_map(|(key, value)| {
        Some(format!(
            "{}={}",
            key.to_string_lossy(),
            value?.to_string_lossy()
        ))
    });
    let words = std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|word| word.to_string_lossy().into_owned());
    sets.chain(words).collect::<Vec<_>>().join(" ")
}

/// Whether `key` is one of the variables cargo sets for the program `cargo run` starts.
fn is_set_by_cargo_run(key: &str) -> bool {
    matches!(
        key,
        "CARGO_MANIFEST_DIR"
            | "CARGO_MANIFEST_PATH"
            | "CARGO_CRATE_NAME"
            | "CARGO_BIN_NAME"
            | "CARGO_PRIMARY_PACKAGE"
    ) || key.starts_with("CARGO_PKG_")
}

/// Runs `command`, echoing it first, and fails when it fails.
fn run_step(what: &str, command: Command) -> Result<()> {
    eprintln!("\n==> {what}: {}", describe(&command));
    let status = interrupt::run(command).with_context(|| format!("{what} did not finish"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Task, clap::Error> {
        Cli::try_parse_from(std::iter::once("xtask").chain(args.iter().copied()))
            .map(|cli| cli.command)
    }

    #[test]
    fn bench_passes_its_arguments_to_cargo_bench() {
        for (args, expected) in [
            (&["bench"][..], &[][..]),
            (
                &["bench", "-p", "resync-cache-core", "--bench", "get"],
                &["-p", "resync-cache-core", "--bench", "get"],
            ),
            (
                &["bench", "--bench", "get", "--", "--save-baseline", "x"],
                &["--bench", "get", "--", "--save-baseline", "x"],
            ),
            // clap drops a leading `--` (as it did before `bench gateway`).
            (
                &["bench", "--", "--save-baseline", "x"],
                &["--save-baseline", "x"],
            ),
            (&["bench", "hit_path"], &["hit_path"]),
        ] {
            match parse(args) {
                Ok(Task::Bench { which: None, args }) => assert_eq!(args, expected),
                other => panic!("{args:?} parsed as {other:?}"),
            }
        }
    }

    #[test]
    fn bench_gateway_takes_its_own_options() {
        assert!(matches!(
            parse(&["bench", "gateway", "--secs", "2", "--rounds", "1", "--json", "out.json"]),
            Ok(Task::Bench {
                which: Some(BenchWhich::Gateway(_)),
                ..
            })
        ));
        assert!(parse(&["bench", "gateway", "--secs", "0"]).is_err());
        assert!(parse(&["bench", "gateway", "--secs", "46"]).is_err());
        assert!(parse(&["bench", "gateway", "--bench", "x"]).is_err());
    }

    #[test]
    fn bench_distributed_takes_its_own_options() {
        assert!(matches!(
            parse(&[
                "bench",
                "distributed",
                "--secs",
                "3",
                "--rounds",
                "1",
                "--json",
                "d.json"
            ]),
            Ok(Task::Bench {
                which: Some(BenchWhich::Distributed(_)),
                ..
            })
        ));
        assert!(matches!(
            parse(&["bench", "distributed"]),
            Ok(Task::Bench {
                which: Some(BenchWhich::Distributed(_)),
                ..
            })
        ));
        assert!(parse(&["bench", "distributed", "--secs", "0"]).is_err());
        assert!(parse(&["bench", "distributed", "--secs", "61"]).is_err());
        assert!(parse(&["bench", "distributed", "--rounds", "0"]).is_err());
    }
}
