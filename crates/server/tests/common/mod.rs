//! Starting the real `resync` binary and talking to it over loopback.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)] // reason: shared by several test files.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
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
    log: Log,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the process writes to stderr, collected by a thread as it is written (so start-up
/// can wait for a line while the process runs).
struct Log {
    text: Arc<Mutex<String>>,
    reader: Option<JoinHandle<()>>,
}

impl Log {
    fn capture(stderr: ChildStderr) -> Self {
        let text = Arc::new(Mutex::new(String::new()));
        let reader = {
            let text = Arc::clone(&text);
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    let mut text = text.lock().unwrap();
                    text.push_str(&line);
                    text.push('\n');
                }
            })
        };
        Self {
            text,
            reader: Some(reader),
        }
    }

    fn text(&self) -> String {
        self.text.lock().unwrap().clone()
    }

    /// The whole log, once the process has exited (its stderr then ends).
    fn finish(&mut self) -> String {
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        self.text()
    }
}

/// What the binary logs once it has bound its port (and built every component).
const LISTENING: &str = "resync listening";
/// What the binary's error says when its port was taken.
pub const PORT_TAKEN: &str = "Address already in use";
/// Start-up attempts, each on a new free port, when another process takes the port first.
const START_ATTEMPTS: u32 = 5;

impl Running {
    /// Starts the binary with `envs` on a free port and waits until it says it listens.
    ///
    /// The port was free a moment before the binary binds it: when another process took it
    /// meanwhile, the binary exits saying so, and it is started again on a new port (five
    /// attempts).
    pub fn start(dir: &std::path::Path, envs: &[(String, String)]) -> Self {
        for attempt in 1..=START_ATTEMPTS {
            let port = test_support::free_port().unwrap();
            match Self::start_on(dir, envs, SocketAddr::from(([127, 0, 0, 1], port))) {
                Ok(running) => return running,
                Err(log) if log.contains(PORT_TAKEN) && attempt < START_ATTEMPTS => {}
                Err(log) => panic!("resync did not start (attempt {attempt}); log:\n{log}"),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// Starts the binary with `envs` on `addr` and waits until it says it listens; the log
    /// when it exits first. Start-up waits for the binary's own "listening" line rather than
    /// for the port to accept, which another process on the port would do too.
    pub fn start_on(
        dir: &std::path::Path,
        envs: &[(String, String)],
        addr: SocketAddr,
    ) -> Result<Self, String> {
        let mut command = resync(dir);
        command
            .env("RESYNC_BIND_ADDR", addr.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (key, value) in envs {
            command.env(key, value);
        }
        let started = Instant::now();
        let mut child = command.spawn().unwrap();
        let mut log = Log::capture(child.stderr.take().unwrap());
        loop {
            if log.text().contains(LISTENING) {
                test_support::wait_for_tcp(addr, BOUND).unwrap();
                return Ok(Self {
                    child,
                    addr,
                    started,
                    log,
                });
            }
            if let Some(status) = child.try_wait().unwrap() {
                return Err(format!("exited with {status}:\n{}", log.finish()));
            }
            if started.elapsed() > BOUND {
                let _ = child.kill();
                panic!(
                    "resync did not listen within {BOUND:?}; log:\n{}",
                    log.finish()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
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
        (status.success(), self.log.finish())
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

/// Sends `method path` with `body` on a new connection and returns the status and the
/// `X-Cache` header ("" when absent).
pub fn http_exchange(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(BOUND)).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream.write_all(body).unwrap();
    let mut response = Vec::new();
    // The server may answer (413) and close before reading the whole body: a reset then
    // ends the read, after the answer has arrived.
    let _ = stream.read_to_end(&mut response);
    let response = String::from_utf8_lossy(&response);
    let status = response
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let head = response.split("\r\n\r\n").next().unwrap_or("");
    let cache = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("x-cache")
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_default();
    (status, cache)
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
