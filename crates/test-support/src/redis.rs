//! A throwaway Redis server.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::process::ServiceProcess;
use crate::server::{ManagedServer, ServerKind};
use crate::STARTUP_TIMEOUT;

/// Settings for a [`RedisServer`] before it starts.
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct RedisBuilder {
    args: Vec<String>,
    tls: Option<RedisTls>,
}

#[derive(Debug, Clone)]
struct RedisTls {
    cert_pem: String,
    key_pem: String,
    ca_pem: String,
}

impl RedisBuilder {
    /// Any other `redis-server` option, e.g. `("maxclients", "100")`.
    pub fn option(mut self, name: &str, value: &str) -> Self {
        self.args.push(format!("--{name}"));
        self.args.push(value.to_owned());
        self
    }

    /// Serves TLS only (`rediss://`) with this certificate, key and client-CA (PEM). Client
    /// certificates are not required.
    pub fn tls(mut self, cert_pem: &str, key_pem: &str, ca_pem: &str) -> Self {
        self.tls = Some(RedisTls {
            cert_pem: cert_pem.to_owned(),
            key_pem: key_pem.to_owned(),
            ca_pem: ca_pem.to_owned(),
        });
        self
    }

    /// Starts `redis-server` on a free loopback port, without persistence.
    ///
    /// # Errors
    ///
    /// When `redis-server` is missing or does not answer `PING` within [`STARTUP_TIMEOUT`].
    pub fn start(self) -> io::Result<RedisServer> {
        let dir = tempfile::Builder::new().prefix("resync-redis-").tempdir()?;
        if let Some(tls) = &self.tls {
            std::fs::write(dir.path().join("server.crt"), &tls.cert_pem)?;
            std::fs::write(dir.path().join("server.key"), &tls.key_pem)?;
            std::fs::write(dir.path().join("ca.crt"), &tls.ca_pem)?;
        }
        ManagedServer::start_on_a_free_port(dir, Redis { builder: self })
    }
}

/// A `redis-server` on 127.0.0.1 with no persistence, in a temporary directory. Stopped and
/// deleted on drop.
pub type RedisServer = ManagedServer<Redis>;

/// The Redis kind of [`ManagedServer`]: the builder's options.
#[derive(Debug)]
pub struct Redis {
    builder: RedisBuilder,
}

impl Redis {
    /// The kind for a server with the `builder`'s settings (the cluster's nodes start one per
    /// start, each with its cluster bus port).
    pub(crate) fn new(builder: RedisBuilder) -> Self {
        Self { builder }
    }
}

impl ManagedServer<Redis> {
    /// Starts a server with the default settings.
    ///
    /// # Errors
    ///
    /// See [`RedisBuilder::start`].
    pub fn start() -> io::Result<Self> {
        RedisBuilder::default().start()
    }

    /// A builder for a server with other settings.
    pub fn builder() -> RedisBuilder {
        RedisBuilder::default()
    }
}

impl ServerKind for Redis {
    const NAME: &'static str = "redis";

    /// `redis://127.0.0.1:PORT/` (or `rediss://` with TLS).
    fn url(&self, port: u16) -> String {
        let scheme = if self.builder.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{port}/")
    }

    fn start_once(&self, dir: &Path, port: u16) -> io::Result<ServiceProcess> {
        let port_text = port.to_string();
        let mut command = Command::new("redis-server");
        command
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--protected-mode", "no", "--daemonize", "no", "--dir"])
            .arg(dir);
        match &self.builder.tls {
            None => {
                command.args(["--port", &port_text]);
            }
            Some(_) => {
                let file = |name: &str| dir.join(name);
                command
                    .args(["--port", "0", "--tls-port", &port_text])
                    .arg("--tls-cert-file")
                    .arg(file("server.crt"))
                    .arg("--tls-key-file")
                    .arg(file("server.key"))
                    .arg("--tls-ca-cert-file")
                    .arg(file("ca.crt"))
                    .args(["--tls-auth-clients", "no"]);
            }
        }
        command.args(&self.builder.args);
        let log = dir.join("redis.log");
        let mut process = ServiceProcess::spawn("redis-server", command, &log, Signal::SIGTERM)
            .map_err(|error| {
                io::Error::new(
                    error.kind(),
                    format!("{error} (install the Debian package `redis-server`)"),
                )
            })?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            process.ensure_running()?;
            // With TLS we cannot speak to it here: its own log saying it listens (it exits
            // instead when the port is taken) and the port accepting make it ready.
            let ready = if self.builder.tls.is_some() {
                process.has_logged("Ready to accept connections")
                    && TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
            } else {
                server_pid(addr) == process.pid()
            };
            if ready {
                process.ensure_running()?;
                return Ok(process);
            }
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "redis-server did not answer within {STARTUP_TIMEOUT:?}; log:\n{}",
                        process.log_tail(40)
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The `process_id` that the server on `addr` reports (`INFO server`), so start-up knows
/// it reached its own server and not another one that took the port first.
fn server_pid(addr: SocketAddr) -> Option<u32> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream.write_all(b"INFO server\r\n").ok()?;
    let mut reply = Vec::new();
    let mut chunk = [0_u8; 4096];
    while !String::from_utf8_lossy(&reply).contains("process_id:") || !reply.ends_with(b"\r\n") {
        let read = stream.read(&mut chunk).ok()?;
        if read == 0 || reply.len() > 1 << 16 {
            break;
        }
        reply.extend_from_slice(&chunk[..read]);
    }
    String::from_utf8_lossy(&reply)
        .lines()
        .find_map(|line| line.strip_prefix("process_id:"))
        .and_then(|pid| pid.trim().parse().ok())
}
