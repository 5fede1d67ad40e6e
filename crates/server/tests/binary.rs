//! The real `resync` binary: serves health on its port, stops cleanly on SIGTERM and
//! refuses bad settings with a clear message.

#![allow(clippy::unwrap_used)] // reason: a test; a failed step should panic with its error.

use std::process::Output;

mod common;

use common::{resync, Running, PORT_TAKEN};

#[test]
fn serves_health_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    // No upstream: every component is one this test controls.
    let envs = [("RESYNC_TWS_BASE_URL".to_owned(), String::new())];
    // On a free port, started again on another if a process takes it first.
    let server = Running::start(dir.path(), &envs);

    let (status, body) = server.get("/api/performance/health", None);
    assert_eq!(status, 200);
    assert_eq!(body["status"], "healthy");
    assert!(body["components"].is_object());
    let (status, _) = server.get("/livez", None);
    assert_eq!(status, 200);
    let (status, body) = server.get("/no/such/route", None);
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");

    let (stopped, log) = server.stop();
    assert!(stopped, "log:\n{log}");
    assert!(log.contains("resync stopped"), "log:\n{log}");
}

#[test]
fn a_port_taken_by_another_process_is_reported_and_start_up_moves_to_another() {
    let dir = tempfile::tempdir().unwrap();
    let envs = [("RESYNC_TWS_BASE_URL".to_owned(), String::new())];
    // Another process's listener on the port: it would accept a connection, but the binary
    // exits naming the taken port, which is what the fixture retries on.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    match Running::start_on(dir.path(), &envs, addr) {
        Ok(_) => panic!("resync claims to listen on a port another socket holds"),
        Err(log) => assert!(log.contains(PORT_TAKEN), "log:\n{log}"),
    }
    let server = Running::start(dir.path(), &envs);
    assert_ne!(server.addr, addr);
    assert_eq!(server.get("/livez", None).0, 200);
    let (stopped, log) = server.stop();
    assert!(stopped, "log:\n{log}");
}

fn run(dir: &std::path::Path, envs: &[(&str, &str)], args: &[&str]) -> Output {
    let mut command = resync(dir);
    command.args(args);
    for (key, value) in envs {
        command.env(key, value);
    }
    command.output().unwrap()
}

#[test]
fn bad_settings_stop_start_up_naming_key_value_and_expectation() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        dir.path(),
        &[
            ("RESYNC_DB_POOL_MAX_SIZE", "lots"),
            ("RESYNC_BIND_ADDR", "nowhere"),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("DB_POOL_MAX_SIZE"), "{stderr}");
    assert!(stderr.contains("lots"), "{stderr}");
    assert!(stderr.contains("expected u32"), "{stderr}");

    let out = run(dir.path(), &[("RESYNC_BIND_ADDR", "nowhere")], &[]);
    assert_eq!(out.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("BIND_ADDR = \"nowhere\": expected an IP address and port"),
        "{stderr}"
    );

    let out = run(dir.path(), &[], &["--config", "missing.toml"]);
    assert_eq!(out.status.code(), Some(78));

    // A file with a syntax error, a minimum above its maximum, an unknown key.
    let cases: [(&str, &[&str]); 3] = [
        (
            "DB_POOL_MAX_SIZE = = 3\n",
            &["settings.toml", "expected valid TOML"],
        ),
        (
            "DB_POOL_MIN_SIZE = 50\nDB_POOL_MAX_SIZE = 10\n",
            &["DB_POOL_MIN_SIZE = 50", "at most DB_POOL_MAX_SIZE (10)"],
        ),
        (
            "DB_POOL_MAX_SIZES = 10\n",
            &["DB_POOL_MAX_SIZES", "a known settings key"],
        ),
    ];
    for (file, mentions) in cases {
        std::fs::write(dir.path().join("settings.toml"), file).unwrap();
        let out = run(dir.path(), &[], &[]);
        assert_eq!(out.status.code(), Some(78), "{file}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        for mention in mentions {
            assert!(
                stderr.contains(mention),
                "{file:?}: {mention:?} in {stderr}"
            );
        }
    }
}

#[test]
fn check_config_prints_effective_settings_with_secrets_redacted() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("custom.toml"), "REDIS_POOL_MAX_SIZE = 7\n").unwrap();
    let out = run(
        dir.path(),
        &[("RESYNC_PERF_API_TOKEN", "12345")],
        &["--config", "custom.toml", "check-config"],
    );
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("REDIS_POOL_MAX_SIZE = 7"), "{stdout}");
    assert!(
        stdout.contains("PERF_API_TOKEN = \"<redacted>\""),
        "{stdout}"
    );
    assert!(!stdout.contains("12345"), "{stdout}");
}
