//! `resync demo`, the real binary: it runs the server, its sample upstream and a load
//! through the gateway, prints a report with real figures and exits 0; with `--stay` it
//! keeps serving until SIGTERM.

#![allow(clippy::unwrap_used)] // reason: a test; a failed step should panic with its error.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

mod common;

use common::{http_get, resync, BOUND};

/// A short demo: two seconds of load, a small key space, a fast sample upstream.
const SHORT: [&str; 9] = [
    "demo",
    "--secs",
    "2",
    "--concurrency",
    "4",
    "--keys",
    "500",
    "--upstream-latency-ms",
    "2",
];

/// Waits for `child` to exit (killing it after [`BOUND`]) and returns its output.
fn finish(mut child: Child) -> Output {
    let deadline = Instant::now() + BOUND;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("resync demo did not exit within {BOUND:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

fn demo(dir: &std::path::Path, args: &[&str], envs: &[(&str, String)]) -> Output {
    let mut command: Command = resync(dir);
    command
        .args(args)
        .envs(envs.iter().map(|(key, value)| (*key, value)))
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    finish(command.spawn().unwrap())
}

/// The number after `label` on the line starting with `line_start`.
fn figure(stdout: &str, line_start: &str, label: &str) -> f64 {
    let line = stdout
        .lines()
        .find(|line| line.starts_with(line_start))
        .unwrap_or_else(|| panic!("no line starting {line_start:?} in:\n{stdout}"));
    let (_, after) = line
        .split_once(label)
        .unwrap_or_else(|| panic!("no {label:?} in {line:?}"));
    let number: String = after
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    number
        .parse()
        .unwrap_or_else(|_| panic!("no number after {label:?} in {line:?}"))
}

/// The requests and the hit rate of the report's gateway line, checked for sense.
fn check_report(stdout: &str) -> (f64, f64) {
    assert!(stdout.contains("== Report =="), "{stdout}");
    let sent = figure(stdout, "load:", "load:");
    let requests = figure(stdout, "gateway:", "gateway:");
    assert!(requests > 0.0, "no request through the gateway:\n{stdout}");
    assert_eq!(
        sent, requests,
        "the gateway counts what the load sent:\n{stdout}"
    );
    let hit_rate = figure(stdout, "gateway:", "hit rate");
    assert!((0.0..=100.0).contains(&hit_rate), "{stdout}");
    // A Zipf load over 500 documents repeats keys: some answers come from the cache.
    assert!(hit_rate > 0.0, "{stdout}");
    assert!(stdout.contains("== Recommendations ("), "{stdout}");
    (requests, hit_rate)
}

#[test]
fn a_short_demo_prints_a_report_with_real_figures_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let output = demo(dir.path(), &SHORT, &[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    check_report(&stdout);
    // The sample upstream says what it is, in the output and in the log.
    assert!(
        stdout.contains("sample upstream  http://127.0.0.1:") && stdout.contains("not a real one"),
        "{stdout}"
    );
    assert!(stderr.contains("sample upstream listening"), "{stderr}");
    let served = figure(&stdout, "upstream:", "served");
    assert!(served > 0.0, "{stdout}");
    assert!(stdout.contains("pool:     `http`"), "{stdout}");
    assert!(stdout.contains("dashboard: http://127.0.0.1:"), "{stdout}");
    // Without a database or Redis there are no pools for them.
    assert!(
        !stdout.contains("`db`") && !stdout.contains("`redis`"),
        "{stdout}"
    );
}

#[test]
fn with_postgres_and_redis_configured_the_report_shows_their_pools() {
    let dir = tempfile::tempdir().unwrap();
    let envs = [
        ("RESYNC_DATABASE_URL", test_support::shared_database_url()),
        ("RESYNC_REDIS_URL", test_support::shared_redis_url()),
        ("RESYNC_DB_POOL_MIN_SIZE", "1".to_owned()),
        ("RESYNC_REDIS_POOL_MIN_SIZE", "1".to_owned()),
        ("RESYNC_GATEWAY_L2", "true".to_owned()),
    ];
    let output = demo(dir.path(), &SHORT, &envs);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    check_report(&stdout);
    assert!(
        stdout.contains("DATABASE_URL on, REDIS_URL on, GATEWAY_L2 on"),
        "{stdout}"
    );
    for pool in ["`db`", "`http`", "`redis`"] {
        assert!(stdout.contains(&format!("pool:     {pool}")), "{stdout}");
    }
    assert!(stdout.contains("l2:       Redis second level"), "{stdout}");
}

#[test]
fn with_stay_it_keeps_serving_the_api_until_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = resync(dir.path());
    command
        .args(["demo", "--secs", "1", "--keys", "100", "--stay"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = command.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (lines_tx, lines) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });

    // Read the report up to the line saying it stays.
    let mut seen = String::new();
    let deadline = Instant::now() + BOUND;
    while !seen.contains("serving until Ctrl-C") {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                seen.push_str(&line);
                seen.push('\n');
            }
            Err(error) => {
                let _ = child.kill();
                panic!("no `serving until Ctrl-C` line ({error}); stdout so far:\n{seen}");
            }
        }
    }
    check_report(&seen);
    let addr = seen
        .lines()
        .find_map(|line| line.strip_prefix("dashboard: http://"))
        .and_then(|rest| rest.split('/').next())
        .unwrap()
        .parse()
        .unwrap();

    // Still serving after the report: the API answers with the load's figures.
    let (status, report) = http_get(addr, "/api/performance/report", None);
    assert_eq!(status, 200, "{report}");
    assert!(report["gateway"].is_object(), "{report}");

    kill(
        Pid::from_raw(i32::try_from(child.id()).unwrap()),
        Signal::SIGTERM,
    )
    .unwrap();
    let output = finish(child);
    assert!(output.status.success(), "{}", output.status);
    reader.join().unwrap();
}

#[test]
fn a_bind_address_off_loopback_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let output = demo(
        dir.path(),
        &["demo", "--bind", "0.0.0.0:0", "--secs", "1"],
        &[],
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("loopback"), "{stderr}");
}
