//! `cargo xtask promtool` and the last step of `cargo xtask ci`: `promtool check metrics`
//! over the `/metrics` output of the real `resync` binary.
//!
//! The binary is built as users build it (`cargo build -p resync-server --bin resync`) and
//! started in an empty temporary directory (so no `settings.toml` applies) on a free loopback
//! port, with the throwaway Postgres and Redis configured and the gateway's Redis second level
//! on (`GATEWAY_L2`) — so the database and Redis pools, the Postgres history writer, the
//! `resync_gateway_l2_*` families and every other metric family are there — and health checks
//! and history samples every second. Once every pool has run a health check (its histograms are
//! then non-empty), `/metrics` is fetched as Prometheus text and linted by `promtool`, and
//! fetched again as OpenMetrics, which is only checked for its content type and closing
//! `# EOF` (promtool 2.42 cannot parse OpenMetrics). The server is stopped afterwards,
//! whether the checks pass or not.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, ensure, Context, Result};
use nix::sys::signal::Signal;
use test_support::{ServiceProcess, DATABASE_URL_ENV, REDIS_URL_ENV};

use crate::binaries::{build_server, built_server, resync_command, Profile};
use crate::http::get;
use crate::{interrupt, packages, services};

/// Every wait gives up after this long (a loaded 2-core machine is slow).
const BOUND: Duration = Duration::from_secs(60);

/// The pools the server must show, given a database and a Redis URL (the upstream is off).
const EXPECTED_POOLS: &[&str] = &["db", "redis"];

/// Label values the exposition must hold, so the lint covers the pools and the Postgres
/// history writer and not a server that came up without them.
const EXPECTED_LABELS: &[&str] = &[
    "pool=\"db\"",
    "pool=\"redis\"",
    "component=\"history:postgres\"",
];

/// The `Accept` header asking for OpenMetrics text.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0";

/// `cargo xtask promtool`: against the servers of `cargo xtask services up` when both of
/// their variables are set, else against fresh ones, stopped afterwards.
pub(crate) fn run(root: &Path) -> Result<()> {
    exposition(root).map(drop)
}

/// What `run` does, returning the Prometheus text of `/metrics` that passed the checks.
pub(crate) fn exposition(root: &Path) -> Result<String> {
    let promtool = packages::ensure_promtool()?;
    let shared = |var: &str| std::env::var(var).ok().filter(|url| !url.trim().is_empty());
    if let (Some(database), Some(redis)) = (shared(DATABASE_URL_ENV), shared(REDIS_URL_ENV)) {
        eprintln!("==> using the servers of {DATABASE_URL_ENV} and {REDIS_URL_ENV}");
        let binary = build_server(root, Profile::Debug)?;
        return check_with(&binary, &promtool, &database, &redis);
    }
    packages::ensure_installed()?;
    let binary = build_server(root, Profile::Debug)?;
    let running = services::Running::start()?;
    let result = check_with(
        &binary,
        &promtool,
        &running.database_url(),
        &running.redis_url(),
    );
    drop(running);
    result
}

/// The step of `ci`, after the tests and against their services: the binary is the one
/// `cargo test --workspace --all-features` just built for the server's tests (building it
/// again with `cargo build` would resolve other features and recompile half the workspace).
/// Returns the Prometheus text of `/metrics` that passed the checks.
pub(crate) fn check(root: &Path, running: &services::Running) -> Result<String> {
    let promtool = packages::ensure_promtool()?;
    let binary = built_server(root, Profile::Debug, "the workspace's tests")?;
    check_with(
        &binary,
        &promtool,
        &running.database_url(),
        &running.redis_url(),
    )
}

/// What one run checked.
#[derive(Debug)]
struct Report {
    /// The Prometheus text exposition that was linted.
    text: String,
    samples: usize,
    families: usize,
    pools: String,
    openmetrics_bytes: usize,
}

fn check_with(
    binary: &Path,
    promtool: &Path,
    database_url: &str,
    redis_url: &str,
) -> Result<String> {
    let scratch = ScratchDir::new()?;
    let port = test_support::free_port().context("finding a free loopback port")?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));

    let mut command = resync_command(binary, scratch.path(), addr);
    // An upstream that refuses every connection: the gateway and the `http` pool exist, so
    // their families (`resync_gateway_*`, `pool="http"`) are checked too.
    let refused = test_support::RefusedPort::reserve().context("reserving a refused port")?;
    let upstream = format!("http://127.0.0.1:{}", refused.port());
    command.envs([
        ("RESYNC_DATABASE_URL", database_url),
        ("RESYNC_REDIS_URL", redis_url),
        ("RESYNC_TWS_BASE_URL", upstream.as_str()),
        // The Redis second level: its families (`resync_gateway_l2_*`) are checked too.
        ("RESYNC_GATEWAY_L2", "true"),
        ("RESYNC_PERF_SAMPLE_INTERVAL", "1"),
        ("RESYNC_DB_POOL_HEALTH_CHECK_INTERVAL", "1"),
        ("RESYNC_REDIS_POOL_HEALTH_CHECK_INTERVAL", "1"),
    ]);
    eprintln!("\n==> promtool: starting {} on {addr}", binary.display());
    // Stopped by `stop` below, or by its drop (SIGTERM, then SIGKILL to its process group)
    // on every early return.
    let mut server = ServiceProcess::spawn(
        "resync",
        command,
        &scratch.path().join("resync.log"),
        Signal::SIGTERM,
    )
    .context("starting resync")?;

    let result = exercise(&mut server, addr, promtool, scratch.path());
    let stopped = server.stop();
    let report = result.with_context(|| {
        format!(
            "the promtool step failed; resync's log ends with:\n{}",
            server.log_tail(40)
        )
    })?;
    stopped.context("stopping resync")?;
    eprintln!(
        "==> promtool: {} samples in {} families, ok (pools: {}); OpenMetrics: {} bytes ending in # EOF, ok",
        report.samples, report.families, report.pools, report.openmetrics_bytes
    );
    Ok(report.text)
}

/// Every check against the running server.
fn exercise(
    server: &mut ServiceProcess,
    addr: SocketAddr,
    promtool: &Path,
    scratch: &Path,
) -> Result<Report> {
    wait_until_listening(server, addr)?;
    let pools = wait_for_health_checks(server, addr)?;

    let text = get(addr, "/metrics", None)?;
    ensure!(
        text.status == 200,
        "GET /metrics answered {}: {}",
        text.status,
        text.body
    );
    let content_type = text.header("content-type").unwrap_or_default();
    ensure!(
        content_type.starts_with("text/plain"),
        "GET /metrics has content type {content_type:?}, not Prometheus text"
    );
    let missing: Vec<&str> = EXPECTED_LABELS
        .iter()
        .copied()
        .filter(|label| !text.body.contains(label))
        .collect();
    ensure!(
        missing.is_empty(),
        "/metrics has no series with {}",
        missing.join(", ")
    );
    let file = scratch.join("metrics.prom");
    std::fs::write(&file, &text.body).with_context(|| format!("writing {}", file.display()))?;
    lint(promtool, &file)?;

    let open = get(addr, "/metrics", Some(OPENMETRICS))?;
    ensure!(
        open.status == 200,
        "GET /metrics (OpenMetrics) answered {}: {}",
        open.status,
        open.body
    );
    let content_type = open.header("content-type").unwrap_or_default();
    ensure!(
        content_type.starts_with("application/openmetrics-text"),
        "GET /metrics with `Accept: {OPENMETRICS}` has content type {content_type:?}"
    );
    ensure!(
        open.body.trim_end().ends_with("# EOF"),
        "the OpenMetrics exposition does not end with `# EOF`; it ends with {:?}",
        tail(&open.body, 200)
    );

    Ok(Report {
        samples: samples(&text.body),
        families: text
            .body
            .lines()
            .filter(|line| line.starts_with("# TYPE "))
            .count(),
        pools,
        openmetrics_bytes: open.body.len(),
        text: text.body,
    })
}

/// Runs `promtool check metrics < file`; fails on a non-zero exit or any output (promtool
/// prints one line per lint problem).
fn lint(promtool: &Path, file: &Path) -> Result<()> {
    let input = File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let output = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(input)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("running {}", promtool.display()))?;
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if !output.status.success() || !printed.trim().is_empty() {
        bail!(
            "`promtool check metrics` rejected resync's /metrics ({}):\n{}",
            output.status,
            printed.trim_end()
        );
    }
    Ok(())
}

/// Waits until the server accepts connections, failing early when it exits or xtask is
/// interrupted.
fn wait_until_listening(server: &mut ServiceProcess, addr: SocketAddr) -> Result<()> {
    let deadline = Instant::now() + BOUND;
    loop {
        alive(server)?;
        match test_support::wait_for_tcp(addr, Duration::from_millis(200)) {
            Ok(()) => return Ok(()),
            Err(error) if Instant::now() >= deadline => {
                bail!("resync did not accept connections on {addr} within {BOUND:?}: {error}")
            }
            Err(_) => {}
        }
    }
}

/// Polls the pool metrics until the expected pools are there and each has run at least one
/// health check; returns `name: checks` of each pool.
fn wait_for_health_checks(server: &mut ServiceProcess, addr: SocketAddr) -> Result<String> {
    let deadline = Instant::now() + BOUND;
    loop {
        alive(server)?;
        let response = get(addr, "/api/performance/pools/metrics", None)?;
        let seen = if response.status == 200 {
            let json: serde_json::Value = serde_json::from_str(&response.body)
                .with_context(|| format!("the pool metrics are not JSON: {}", response.body))?;
            let pools: Vec<(String, u64)> = json["pools"]
                .as_array()
                .map(|pools| {
                    pools
                        .iter()
                        .map(|pool| {
                            let name = pool["name"].as_str().unwrap_or("?").to_owned();
                            (name, pool["health_checks"]["checks"].as_u64().unwrap_or(0))
                        })
                        .collect()
                })
                .unwrap_or_default();
            let summary = pools
                .iter()
                .map(|(name, checks)| format!("{name} {checks} checks"))
                .collect::<Vec<_>>()
                .join(", ");
            let all_there = EXPECTED_POOLS
                .iter()
                .all(|expected| pools.iter().any(|(name, _)| name == expected));
            if all_there && pools.iter().all(|&(_, checks)| checks >= 1) {
                return Ok(summary);
            }
            format!("pools: [{summary}]")
        } else {
            format!("status {}: {}", response.status, response.body)
        };
        if Instant::now() >= deadline {
            bail!(
                "within {BOUND:?} the pools {EXPECTED_POOLS:?} did not all show a health check; \
                 last seen {seen}"
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Fails when the server has exited or xtask was interrupted.
fn alive(server: &mut ServiceProcess) -> Result<()> {
    if interrupt::interrupted() {
        bail!("interrupted");
    }
    // The caller quotes the server's log.
    ensure!(server.is_running(), "resync exited");
    Ok(())
}

/// The number of samples in a Prometheus text exposition (lines other than comments).
fn samples(text: &str) -> usize {
    text.lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
        .count()
}

/// The last `chars` characters of `text`.
fn tail(text: &str, chars: usize) -> &str {
    let start = text
        .char_indices()
        .rev()
        .nth(chars.saturating_sub(1))
        .map_or(0, |(index, _)| index);
    &text[start..]
}

/// A fresh directory under the system temporary directory, removed on drop.
#[derive(Debug)]
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new() -> Result<Self> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.subsec_nanos());
        let dir =
            std::env::temp_dir().join(format!("resync-promtool-{}-{nanos}", std::process::id()));
        std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self(dir))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_samples_not_comments() {
        let text = "# HELP a A.\n# TYPE a counter\na_total 1\n\nb{x=\"1\"} 2\n";
        assert_eq!(samples(text), 2);
    }

    #[test]
    fn tail_keeps_the_end() {
        assert_eq!(tail("abcdef", 2), "ef");
        assert_eq!(tail("ab", 10), "ab");
    }
}
