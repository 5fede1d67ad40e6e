//! `cargo xtask examples` and a step of `cargo xtask ci`: every crate's example, run as a
//! user runs it (`cargo run --example NAME`), against the throwaway Postgres and Redis.
//!
//! Each example finishes by itself, prints what it shows and exits non-zero when something
//! fails; this step checks the exit status and that the output ends with the example's
//! `ok:` line. The examples are run from the workspace root without `-p` and with
//! `--all-features`, so cargo resolves the features as `cargo test --workspace
//! --all-features` does and reuses what the tests built instead of compiling the workspace
//! again for one package's features (example names are unique across the workspace).

use std::fs::File;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use test_support::{DATABASE_URL_ENV, REDIS_URL_ENV};

use crate::{cargo, describe, interrupt, packages, services};

/// One example and what its output must hold.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Example {
    /// The package it belongs to.
    pub(crate) package: &'static str,
    /// Its name (`examples/<name>.rs`).
    pub(crate) name: &'static str,
    /// The start of the line it prints when everything added up.
    pub(crate) ok_line: &'static str,
}

/// Every example this step runs, one per library crate used on its own.
pub(crate) const EXAMPLES: [Example; 4] = [
    Example {
        package: "resync-cache-core",
        name: "read_through_postgres",
        ok_line: "ok: the cache answered",
    },
    Example {
        package: "resync-pool-optimizer",
        name: "monitored_pool",
        ok_line: "ok: the pool measured and judged",
    },
    Example {
        package: "resync-resource-manager",
        name: "leak_report",
        ok_line: "ok: the leak names its acquiring line",
    },
    Example {
        package: "resync-perf-api",
        name: "merge_into_app",
        ok_line: "ok: the application's routes and the performance API answered",
    },
];

/// The longest one example may take, its build included (a cold build of the workspace on
/// two cores; after the tests it is a few seconds).
const LIMIT: Duration = Duration::from_secs(15 * 60);

/// `cargo xtask examples`: against the servers of `cargo xtask services up` when their
/// variables are set, else against fresh ones, stopped afterwards.
pub(crate) fn run(root: &Path) -> Result<()> {
    let shared = |var: &str| std::env::var(var).ok().filter(|url| !url.trim().is_empty());
    if let (Some(database), Some(redis)) = (shared(DATABASE_URL_ENV), shared(REDIS_URL_ENV)) {
        eprintln!("==> using the servers of {DATABASE_URL_ENV} and {REDIS_URL_ENV}");
        return run_all(root, &database, &redis);
    }
    packages::ensure_installed()?;
    let running = services::Running::start()?;
    let result = run_all(root, &running.database_url(), &running.redis_url());
    drop(running);
    result
}

/// The step of `ci`, after the tests and against their services.
pub(crate) fn check(root: &Path, running: &services::Running) -> Result<()> {
    run_all(root, &running.database_url(), &running.redis_url())
}

fn run_all(root: &Path, database_url: &str, redis_url: &str) -> Result<()> {
    let outputs = crate::binaries::cargo_target_dir(root).join("xtask-examples");
    std::fs::create_dir_all(&outputs).with_context(|| format!("creating {}", outputs.display()))?;
    let started = Instant::now();
    for example in EXAMPLES {
        run_one(root, &example, &outputs, database_url, redis_url)?;
    }
    eprintln!(
        "\n==> {} examples passed in {:.1?}",
        EXAMPLES.len(),
        started.elapsed()
    );
    Ok(())
}

fn run_one(
    root: &Path,
    example: &Example,
    outputs: &Path,
    database_url: &str,
    redis_url: &str,
) -> Result<()> {
    let path = outputs.join(format!("{}.txt", example.name));
    let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    let mut command = cargo(root);
    command
        .args(["run", "--quiet", "--example", example.name])
        .args(["--all-features", "--locked"])
        .env(DATABASE_URL_ENV, database_url)
        .env(REDIS_URL_ENV, redis_url)
        .stdin(Stdio::null())
        .stdout(Stdio::from(file));
    eprintln!(
        "\n==> example {} of {}: {}",
        example.name,
        example.package,
        describe(&command)
    );
    let status = interrupt::run_bounded(command, Some(LIMIT))
        .with_context(|| format!("example {} did not finish", example.name))?;
    let output =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    for line in output.lines() {
        eprintln!("    {line}");
    }
    if !status.success() {
        bail!("example {} failed ({status})", example.name);
    }
    verdict(example, &output)
}

/// Whether the output's last non-empty line is the example's `ok:` line.
fn verdict(example: &Example, output: &str) -> Result<()> {
    let last = output.lines().rev().find(|line| !line.trim().is_empty());
    match last {
        Some(line) if line.starts_with(example.ok_line) => Ok(()),
        other => bail!(
            "example {} exited 0 but did not end with `{}…` (last line: {other:?})",
            example.name,
            example.ok_line
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_example_is_a_file_of_its_package() {
        let root = crate::project_root();
        for example in EXAMPLES {
            let crate_dir = example.package.trim_start_matches("resync-");
            let file = root
                .join("crates")
                .join(crate_dir)
                .join("examples")
                .join(format!("{}.rs", example.name));
            assert!(file.is_file(), "{} is missing", file.display());
            let source = std::fs::read_to_string(&file).expect("readable");
            let ok = example.ok_line.trim_start_matches("ok: ");
            assert!(
                source.contains(ok),
                "{} prints no line starting `{}`",
                file.display(),
                example.ok_line
            );
        }
    }

    #[test]
    fn the_verdict_reads_the_last_line() {
        let example = EXAMPLES[2];
        let good = "leak report\n\nok: the leak names its acquiring line, x.rs:1:1\n\n";
        assert!(verdict(&example, good).is_ok());
        assert!(verdict(
            &example,
            "ok: the leak names its acquiring line\nthen more\n"
        )
        .is_err());
        assert!(verdict(&example, "").is_err());
    }
}
