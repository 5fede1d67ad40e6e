//! The real binary with its backends: a down upstream is one warning and a critical
//! component with its reason; a Redis stopped under it makes health critical (503), and
//! healthy again once Redis is back, without restarting the server.

#![allow(clippy::unwrap_used)] // reason: a test; a failed step should panic with its error.

mod common;

use common::{wait_for, Running};

#[test]
fn an_unreachable_upstream_is_one_warning_and_a_critical_component() {
    let dir = tempfile::tempdir().unwrap();
    // A port held by a socket that never listens: every connect is refused.
    let refused = test_support::RefusedPort::reserve().unwrap();
    let port = refused.port();
    let envs = [
        (
            "RESYNC_TWS_BASE_URL".to_owned(),
            format!("http://127.0.0.1:{port}"),
        ),
        (
            "RESYNC_HTTP_POOL_HEALTH_CHECK_INTERVAL".to_owned(),
            "1".to_owned(),
        ),
    ];
    let server = Running::start(dir.path(), &envs);
    let ready_after = server.started.elapsed();
    let (status, body) = server.get("/api/performance/health", None);
    // The first check runs at start-up: wait for it, then for a few more.
    let body = if status == 503 {
        body
    } else {
        wait_for("the http pool to be reported critical", || {
            let (status, body) = server.get("/api/performance/health", None);
            (status == 503).then_some(body)
        })
    };
    let http = &body["components"]["pool:http"];
    assert_eq!(http["status"], "critical", "{body}");
    let reason = &http["reasons"][0];
    assert_eq!(reason["code"], "pool.health_check_failing", "{reason}");
    assert!(
        reason["message"].as_str().unwrap().contains("refused"),
        "the reason names the cause: {reason}"
    );
    wait_for("three failed checks", || {
        let (_, pools) = server.get("/api/performance/pools/metrics", None);
        (pools["pools"][0]["health_checks"]["failures"]
            .as_u64()
            .unwrap()
            >= 3)
            .then_some(())
    });
    let (stopped, log) = server.stop();
    assert!(stopped, "{log}");
    let warnings = log
        .lines()
        .filter(|line| line.contains("WARN") && line.contains("http"))
        .count();
    assert_eq!(
        warnings, 1,
        "one warning for the unreachable upstream, not one per check:\n{log}"
    );
    println!("accepting connections {ready_after:?} after spawn");
}

#[test]
fn a_stopped_redis_makes_health_critical_until_it_is_back() {
    let mut redis = test_support::RedisServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let envs = [
        ("RESYNC_TWS_BASE_URL".to_owned(), String::new()),
        ("RESYNC_REDIS_URL".to_owned(), redis.url()),
        ("RESYNC_REDIS_POOL_MIN_SIZE".to_owned(), "1".to_owned()),
        (
            "RESYNC_REDIS_POOL_CONNECT_TIMEOUT".to_owned(),
            "2".to_owned(),
        ),
        (
            "RESYNC_REDIS_POOL_HEALTH_CHECK_INTERVAL".to_owned(),
            "1".to_owned(),
        ),
        ("RESYNC_PERF_SAMPLE_INTERVAL".to_owned(), "1".to_owned()),
        ("RESYNC_PERF_HEALTH_WINDOW_SECS".to_owned(), "2".to_owned()),
    ];
    let server = Running::start(dir.path(), &envs);
    let healthy = || {
        let (status, body) = server.get("/api/performance/health", None);
        (status == 200 && body["status"] == "healthy").then_some(())
    };
    wait_for("healthy with Redis up", healthy);

    redis.stop().unwrap();
    let body = wait_for("critical with Redis stopped", || {
        let (status, body) = server.get("/api/performance/health", None);
        (status == 503).then_some(body)
    });
    assert_eq!(
        body["components"]["pool:redis"]["status"], "critical",
        "{body}"
    );
    let (status, _) = server.get("/readyz", None);
    assert_eq!(status, 503);

    redis.start_again().unwrap();
    wait_for("healthy again after the restart", healthy);
    let (stopped, log) = server.stop();
    assert!(stopped, "{log}");
}
