//! [`ManagedServer`]: a private server that a fault test may stop, start again on the same
//! port, pause and resume — written once for every kind of server ([`ServerKind`]).

use std::fmt;
use std::io;
use std::path::Path;

use tempfile::TempDir;

use crate::net::{retry_while_the_port_is_taken, start_on_a_free_port};
use crate::process::{DetachedService, ServiceProcess};
use crate::STARTUP_TIMEOUT;

/// What a kind of server adds to a [`ManagedServer`]: its name, its URL, and how one start on
/// a given port goes. Implemented by [`Postgres`](crate::Postgres) and [`Redis`](crate::Redis).
pub trait ServerKind: fmt::Debug {
    /// The name `cargo xtask services` records it under (`postgres`, `redis`).
    const NAME: &'static str;

    /// The URL clients connect to on `port`.
    fn url(&self, port: u16) -> String;

    /// Starts the server once on `port`, with its files under `dir`, and waits until it is
    /// ready.
    ///
    /// # Errors
    ///
    /// Of kind [`io::ErrorKind::AddrInUse`] when the port was taken (the caller then retries),
    /// any other when the server cannot start or is not ready within [`STARTUP_TIMEOUT`].
    fn start_once(&self, dir: &Path, port: u16) -> io::Result<ServiceProcess>;
}

/// A server of kind `K` on 127.0.0.1, with its files in a temporary directory: stopped and
/// deleted on drop. [`PostgresServer`](crate::PostgresServer) and
/// [`RedisServer`](crate::RedisServer) are the two kinds.
#[derive(Debug)]
pub struct ManagedServer<K: ServerKind> {
    dir: TempDir,
    port: u16,
    kind: K,
    process: Option<ServiceProcess>,
}

impl<K: ServerKind> ManagedServer<K> {
    /// Starts a server of `kind` in `dir` on a free loopback port (another port when the one
    /// picked is taken before the server binds it).
    pub(crate) fn start_on_a_free_port(dir: TempDir, kind: K) -> io::Result<Self> {
        let mut server = Self {
            dir,
            port: 0,
            kind,
            process: None,
        };
        start_on_a_free_port(|port| {
            server.port = port;
            server.start_once()
        })?;
        Ok(server)
    }

    /// The URL clients connect to.
    #[must_use]
    pub fn url(&self) -> String {
        self.kind.url(self.port)
    }

    /// The TCP port on 127.0.0.1.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its kind, with whatever that kind keeps about the server.
    pub(crate) fn kind(&self) -> &K {
        &self.kind
    }

    /// The temporary directory (data, socket and log live below it).
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

    /// Stops the server with its kind's stop signal (Postgres: fast shutdown, open sessions
    /// are ended), keeping its data and port for [`start_again`](Self::start_again).
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

    /// Starts the stopped server again on the same port with the same data. While another
    /// socket holds the port, the start is retried for up to [`STARTUP_TIMEOUT`].
    ///
    /// # Errors
    ///
    /// When the server is not ready within [`STARTUP_TIMEOUT`], or the port stays taken that
    /// long.
    pub fn start_again(&mut self) -> io::Result<()> {
        self.stop()?;
        retry_while_the_port_is_taken(STARTUP_TIMEOUT, || self.start_once())
    }

    /// One start on `self.port`; an error of kind `AddrInUse` when the port was taken.
    fn start_once(&mut self) -> io::Result<()> {
        self.process = Some(self.kind.start_once(self.dir.path(), self.port)?);
        Ok(())
    }

    /// Leaves the server running after this value is dropped (for `cargo xtask services up`).
    #[must_use]
    pub fn detach(mut self) -> Option<DetachedService> {
        let url = self.url();
        let pid = self.process.take()?.detach()?;
        self.dir.disable_cleanup(true);
        Some(DetachedService {
            name: K::NAME.to_owned(),
            pid,
            dir: self.dir.path().to_owned(),
            url,
        })
    }
}

impl<K: ServerKind> Drop for ManagedServer<K> {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}
