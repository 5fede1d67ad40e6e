//! Starting the real `resync` binary and talking to it over loopback.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)] // reason: shared by several test files.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Every wait gives up after this long (a loaded 2-core machine is slow).
pub const BOUND: Duration = Duration::from_secs(60);

pub fn resync(dir: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_resync"));
    command.current_dir(dir).env_remove("RUST_LOG");
    for (key, _) in std::env::vars() {
        if key.starts_with("RESYNC_") && !key.starts_with("RESYNC_TEST_") {
            command.env_remove(key);
        }
    }
    command
}

/// A running `resync` process, killed when dropped.
pub struct Running {
    pub child: Child,
    pub addr: SocketAddr,
    pub started: Instant,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    /// Starts the binary with `envs` on a free port and waits until it accepts.
    pub fn start(dir: &std::path::Path, envs: &[(String, String)]) -> Self {
        let port = test_support::free_port().unwrap();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut command = resync(dir);
        command
            .env("RESYNC_BIND_ADDR", addr.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (key, value) in envs {
            command.env(key, value);
        }
        let started = Instant::now();
        let child = command.spawn().unwrap();
        test_support::wait_for_tcp(addr, BOUND).unwrap();
        Self {
            child,
            addr,
            started,
        }
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> (u16, serde_json::Value) {
        http_get(self.addr, path, token)
    }

    /// Sends SIGTERM, waits for the exit and returns (success, the whole log).
    pub fn stop(mut self) -> (bool, String) {
        let pid = Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        kill(pid, Signal::SIGTERM).unwrap();
        let deadline = Instant::now() + BOUND;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "resync did not exit within {BOUND:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut log = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut log)
            .unwrap();
        (status.success(), log)
    }
}

pub fn http_get(addr: SocketAddr, path: &str, token: Option<&str>) -> (u16, serde_json::Value) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(BOUND)).unwrap();
    let auth = token.map_or(String::new(), |token| {
        format!("Authorization: Bearer {token}\r\n")
    });
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response.split_once("\r\n\r\n").unwrap().1;
    let json = serde_json::from_str(body).unwrap_or(serde_json::Value::String(body.to_owned()));
    (status, json)
}

/// Polls `check` until it returns `Some`, giving up after [`BOUND`].
pub fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + BOUND;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A TCP listener on loopback that accepts connections and never answers (an upstream that
/// hangs), until dropped.
pub struct SilentUpstream {
    pub addr: SocketAddr,
    _listener: std::thread::JoinHandle<()>,
}

impl SilentUpstream {
    pub fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming() {
                match stream {
                    Ok(stream) => held.push(stream),
                    Err(_) => break,
                }
            }
        });
        Self {
            addr,
            _listener: thread,
        }
    }
}
