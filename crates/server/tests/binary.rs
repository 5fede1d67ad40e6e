//! The real `resync` binary: serves health on its port, stops cleanly on SIGTERM and
//! refuses bad settings with a clear message.

#![allow(clippy::unwrap_used)] // reason: a test; a failed step should panic with its error.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const BOUND: Duration = Duration::from_secs(60);

fn resync(dir: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_resync"));
    command.current_dir(dir).env_remove("RUST_LOG");
    command
}

fn http_get(addr: SocketAddr, path: &str) -> (u16, serde_json::Value) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(BOUND)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response.split_once("\r\n\r\n").unwrap().1;
    (status, serde_json::from_str(body).unwrap())
}

fn wait_for_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + BOUND;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "resync did not exit within {BOUND:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn serves_health_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = test_support::free_port().unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut child = resync(dir.path())
        .env("RESYNC_BIND_ADDR", addr.to_string())
        // No upstream: every component is one this test controls.
        .env("RESYNC_TWS_BASE_URL", "")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    test_support::wait_for_tcp(addr, BOUND).unwrap();

    let (status, body) = http_get(addr, "/api/performance/health");
    assert_eq!(status, 200);
    assert_eq!(body["status"], "healthy");
    assert!(body["components"].is_object());
    let (status, _) = http_get(addr, "/livez");
    assert_eq!(status, 200);
    let (status, body) = http_get(addr, "/no/such/route");
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");

    let pid = Pid::from_raw(i32::try_from(child.id()).unwrap());
    kill(pid, Signal::SIGTERM).unwrap();
    let status = wait_for_exit(&mut child);
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(status.success(), "exit {status}; log:\n{log}");
    assert!(log.contains("resync stopped"), "log:\n{log}");
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
