//! A throwaway Redis server.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tempfile::TempDir;

use crate::net::{retry_while_the_port_is_taken, start_on_a_free_port};
use crate::process::{DetachedService, ServiceProcess};
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
        let mut server = RedisServer {
            dir,
            port: 0,
            builder: self,
            process: None,
        };
        start_on_a_free_port(|port| {
            server.port = port;
            server.start_once()
        })?;
        Ok(server)
    }
}

/// A `redis-server` on 127.0.0.1 with no persistence, in a temporary directory. Stopped and
/// deleted on drop.
#[derive(Debug)]
pub struct RedisServer {
    dir: TempDir,
    port: u16,
    builder: RedisBuilder,
    process: Option<ServiceProcess>,
}

impl RedisServer {
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

    /// `redis://127.0.0.1:PORT/` (or `rediss://` with TLS).
    #[must_use]
    pub fn url(&self) -> String {
        let scheme = if self.builder.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}/", self.port)
    }

    /// The TCP port on 127.0.0.1.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The temporary directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Freezes the server and all its processes (`SIGSTOP` to its process group): it keeps
    /// its sockets open and answers nothing until [`resume`](Self::resume).
    ///
    /// # Errors
    ///
    /// When the server is not running or the signal cannot be sent.
    pub fn pause(&self) -> io::Result<()> {
        self.running()?.pause()
    }

    /// Lets a paused server run again (`SIGCONT`).
    ///
    /// # Errors
    ///
    /// When the server is not running or the signal cannot be sent.
    pub fn resume(&self) -> io::Result<()> {
        self.running()?.resume()
    }

    fn running(&self) -> io::Result<&ServiceProcess> {
        self.process
            .as_ref()
            .ok_or_else(|| io::Error::other("the server is stopped"))
    }

    /// Whether the server process is running.
    pub fn is_running(&mut self) -> bool {
        self.process
            .as_mut()
            .is_some_and(ServiceProcess::is_running)
    }

    /// Stops the server, keeping its port for [`RedisServer::start_again`].
    ///
    /// # Errors
    ///
    /// When waiting for the process fails.
    pub fn stop(&mut self) -> io::Result<()> {
        match self.process.take() {
            Some(mut process) => process.stop(),
            None => Ok(()),
        }
    }

    /// Starts the stopped server again on the same port. While another socket holds the
    /// port, the start is retried for up to [`STARTUP_TIMEOUT`].
    ///
    /// # Errors
    ///
    /// When it does not answer within [`STARTUP_TIMEOUT`], or the port stays taken that long.
    pub fn start_again(&mut self) -> io::Result<()> {
        self.stop()?;
        retry_while_the_port_is_taken(STARTUP_TIMEOUT, || self.start_once())
    }

    /// One start on `self.port`; an error of kind `AddrInUse` when the port was taken.
    fn start_once(&mut self) -> io::Result<()> {
        let port = self.port.to_string();
        let mut command = Command::new("redis-server");
        command
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--protected-mode", "no", "--daemonize", "no", "--dir"])
            .arg(self.dir.path());
        match &self.builder.tls {
            None => {
                command.args(["--port", &port]);
            }
            Some(_) => {
                let file = |name: &str| self.dir.path().join(name);
                command
                    .args(["--port", "0", "--tls-port", &port])
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
        let log = self.dir.path().join("redis.log");
        let mut process = ServiceProcess::spawn("redis-server", command, &log, Signal::SIGTERM)
            .map_err(|error| {
                io::Error::new(
                    error.kind(),
                    format!("{error} (install the Debian package `redis-server`)"),
                )
            })?;
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
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
                break;
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
        self.process = Some(process);
        Ok(())
    }

    /// Leaves the server running after this value is dropped (for `cargo xtask services up`).
    #[must_use]
    pub fn detach(mut self) -> Option<DetachedService> {
        let url = self.url();
        let pid = self.process.take()?.detach()?;
        self.dir.disable_cleanup(true);
        Some(DetachedService {
            name: "redis".to_owned(),
            pid,
            dir: self.dir.path().to_owned(),
            url,
        })
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.stop();
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
