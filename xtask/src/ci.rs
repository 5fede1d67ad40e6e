//! `cargo xtask ci`, `test` and `bench`.

use std::path::Path;
use std::time::Instant;

use anyhow::Result;

use crate::{
    browser, cargo, docs, docs_crates, examples, ops, packages, promtool, run_step, services,
};

/// Formatting, lints, docs, each published crate built alone and packaged, then every test
/// with real services and, with the same services, `promtool` over the real server's
/// `/metrics`, then the alert rules and dashboard of
/// `docs/ops/` (promtool, and their metric names against that `/metrics`), then every
/// crate's example, then the dashboard in headless Chromium; the generated sections of the
/// docs are checked against the real server after the alert rules.
pub(crate) fn run(root: &Path) -> Result<()> {
    let started = Instant::now();
    packages::ensure_installed()?;

    let mut fmt = cargo(root);
    fmt.args(["fmt", "--all", "--", "--check"]);
    run_step("rustfmt", fmt)?;

    let mut clippy = cargo(root);
    clippy.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--all-features",
        "--locked",
    ]);
    clippy.arg("--");
    clippy.args(["-D", "warnings"]);
    run_step("clippy", clippy)?;

    let mut doc = cargo(root);
    doc.args([
        "doc",
        "--workspace",
        "--all-features",
        "--no-deps",
        "--locked",
    ]);
    doc.env("RUSTDOCFLAGS", "-D warnings");
    run_step("rustdoc", doc)?;

    docs_crates::run(root)?;

    let running = services::Running::start()?;
    let result = tests_against(root, &[], &running)
        .and_then(|()| promtool::check(root, &running))
        .and_then(|metrics| ops::check(root, &metrics))
        .and_then(|()| docs::check_in_ci(root, &running))
        .and_then(|()| examples::check(root, &running))
        .and_then(|()| browser::check(root, &running));
    drop(running);
    result?;
    eprintln!("\n==> ci passed in {:.0?}", started.elapsed());
    Ok(())
}

/// Every test of the workspace with freshly started Postgres and Redis servers, which are
/// stopped afterwards whether the tests pass or not.
pub(crate) fn test(root: &Path, extra: &[String]) -> Result<()> {
    packages::ensure_installed()?;
    run_tests(root, extra)
}

/// `cargo test` over the whole workspace, every feature on (so feature-gated code such as
/// the `serde` snapshots is tested), against fresh servers.
fn run_tests(root: &Path, extra: &[String]) -> Result<()> {
    let running = services::Running::start()?;
    let result = tests_against(root, extra, &running);
    drop(running);
    result
}

/// `cargo test` over the whole workspace against `running`.
fn tests_against(root: &Path, extra: &[String], running: &services::Running) -> Result<()> {
    let mut tests = cargo(root);
    tests
        .args(["test", "--workspace", "--all-features", "--locked"])
        .args(extra);
    running.export_to(&mut tests);
    run_step("tests", tests)
}

/// The Criterion benches, with the services (pool benches measure a real Postgres).
pub(crate) fn bench(root: &Path, extra: &[String]) -> Result<()> {
    packages::ensure_installed()?;
    let running = services::Running::start()?;
    let mut benches = cargo(root);
    benches
        .args(["bench", "--workspace", "--locked"])
        .args(extra);
    running.export_to(&mut benches);
    let result = run_step("benches", benches);
    drop(running);
    result
}
