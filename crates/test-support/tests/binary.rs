//! The `test-upstream` binary: says where it listens, serves the upstream's replies with the
//! query overrides, stops on SIGTERM, and refuses to listen beyond loopback.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{get, BOUND};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const BINARY: &str = env!("CARGO_BIN_EXE_test-upstream");

/// The running binary; killed if the test ends without stopping it.
struct Running {
    child: Option<Child>,
    addr: SocketAddr,
}

impl Running {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(BINARY)
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let stdout = child.stdout.take().expect("piped");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("a first line");
        let addr = line
            .trim_end()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .expect("an address");
        Self {
            child: Some(child),
            addr,
        }
    }

    fn pid(&self) -> Pid {
        let child = self.child.as_ref().expect("running");
        Pid::from_raw(i32::try_from(child.id()).expect("a pid fits"))
    }

    /// Sends `signal` and waits for the exit.
    async fn stop_with(mut self, signal: Signal) -> std::process::ExitStatus {
        kill(self.pid(), signal).expect("signalled");
        let mut child = self.child.take().expect("running");
        let pid = Pid::from_raw(i32::try_from(child.id()).expect("a pid fits"));
        let waited =
            tokio::time::timeout(BOUND, tokio::task::spawn_blocking(move || child.wait())).await;
        match waited {
            Ok(joined) => joined.expect("joins").expect("waits"),
            Err(_elapsed) => {
                let _ = kill(pid, Signal::SIGKILL);
                panic!("the binary did not exit within {BOUND:?} of {signal}");
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[tokio::test]
async fn serves_the_configured_reply_with_query_overrides_until_sigterm() {
    let running = Running::start(&[
        "--latency-ms",
        "30",
        "--body-bytes",
        "1024",
        "--cache-control",
        "max-age=60",
    ]);
    assert!(running.addr.ip().is_loopback());
    assert_ne!(running.addr.port(), 0);

    let started = Instant::now();
    let answer = get(running.addr, "/items/1").await;
    assert!(started.elapsed() >= Duration::from_millis(30));
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body.len(), 1024);
    assert_eq!(answer.header("cache-control"), Some("max-age=60"));
    assert_eq!(answer.json()["path"], "/items/1");

    let overridden = get(running.addr, "/items/2?latency_ms=0&bytes=10&status=503").await;
    assert_eq!(overridden.status, 503);
    assert_eq!(overridden.body.len(), 10);
    assert_eq!(overridden.serial(), 2);

    let status = running.stop_with(Signal::SIGTERM).await;
    assert!(status.success(), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_threads_serve_and_sigint_stops_them() {
    let running = Running::start(&["--threads", "2", "--latency-ms", "0"]);
    let answer = get(running.addr, "/").await;
    assert_eq!(answer.body.len(), 1024, "the default body size");
    let status = running.stop_with(Signal::SIGINT).await;
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn the_stats_path_answers_the_request_count_without_counting_itself() {
    let running = Running::start(&["--latency-ms", "0", "--stats-path", "/__upstream/stats"]);
    let count = |answer: &common::Answer| answer.json()["requests"].as_u64();
    let before = get(running.addr, "/__upstream/stats").await;
    assert_eq!(before.status, 200);
    assert_eq!(count(&before), Some(0));
    for n in 0..3 {
        assert_eq!(get(running.addr, &format!("/items/{n}")).await.status, 200);
    }
    let after = get(running.addr, "/__upstream/stats?x=1").await;
    assert_eq!(count(&after), Some(3), "{}", after.text());
    assert_eq!(
        get(running.addr, "/items/9").await.serial(),
        4,
        "stats requests take no serial"
    );
    let status = running.stop_with(Signal::SIGTERM).await;
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn without_a_stats_path_every_path_gets_the_reply() {
    let running = Running::start(&["--latency-ms", "0"]);
    let answer = get(running.addr, "/__upstream/stats").await;
    assert_eq!(answer.json()["path"], "/__upstream/stats");
    assert_eq!(answer.serial(), 1);
    let status = running.stop_with(Signal::SIGTERM).await;
    assert!(status.success(), "{status}");
}

#[test]
fn a_non_loopback_address_is_refused() {
    let output = Command::new(BINARY)
        .args(["--addr", "0.0.0.0:0"])
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not a loopback address"), "{stderr}");
}
