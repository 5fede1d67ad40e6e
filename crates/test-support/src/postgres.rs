//! A throwaway PostgreSQL server.

use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::process::ServiceProcess;
use crate::server::{ManagedServer, ServerKind};
use crate::STARTUP_TIMEOUT;
use nix::sys::signal::Signal;
use nix::unistd::{chown, Gid, Uid, User};

/// Settings for a [`PostgresServer`] before it starts.
#[derive(Debug, Clone)]
#[must_use]
pub struct PostgresBuilder {
    max_connections: u32,
    settings: Vec<(String, String)>,
    tls: Option<(String, String)>,
}

impl Default for PostgresBuilder {
    fn default() -> Self {
        Self {
            max_connections: 250,
            settings: Vec::new(),
            tls: None,
        }
    }
}

impl PostgresBuilder {
    /// `max_connections` of the server (default 250).
    pub fn max_connections(mut self, max: u32) -> Self {
        self.max_connections = max;
        self
    }

    /// Any other server setting, passed as `-c name=value`.
    pub fn setting(mut self, name: &str, value: &str) -> Self {
        self.settings.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Turns on TLS (`ssl = on`) with this PEM certificate chain and private key.
    ///
    /// Clients may then connect with `sslmode=require`; plain connections still work.
    pub fn tls(mut self, cert_pem: &str, key_pem: &str) -> Self {
        self.tls = Some((cert_pem.to_owned(), key_pem.to_owned()));
        self
    }

    /// Creates a cluster in a new temporary directory and starts the server on a free
    /// loopback port.
    ///
    /// # Errors
    ///
    /// When the binaries are missing, `initdb` fails, or the server does not accept
    /// connections within [`STARTUP_TIMEOUT`].
    pub fn start(self) -> io::Result<PostgresServer> {
        let bin = postgres_bin_dir()?;
        let owner = ServerUser::resolve()?;
        let dir = tempfile::Builder::new().prefix("resync-pg-").tempdir()?;
        owner.chown(dir.path())?;
        let data = dir.path().join("data");
        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C"])
            .arg("--no-sync")
            .env("LC_ALL", "C");
        owner.apply(&mut initdb);
        let output = initdb.output()?;
        if !output.status.success() {
            return Err(io::Error::other(format!(
                "initdb failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )));
        }
        if let Some((cert, key)) = &self.tls {
            write_owned(&owner, &data.join("server.crt"), cert, 0o644)?;
            write_owned(&owner, &data.join("server.key"), key, 0o600)?;
        }
        ManagedServer::start_on_a_free_port(
            dir,
            Postgres {
                bin,
                owner,
                builder: self,
            },
        )
    }
}

/// A PostgreSQL server in a temporary directory, listening on 127.0.0.1 only, with `fsync`
/// off. Stopped and deleted on drop.
pub type PostgresServer = ManagedServer<Postgres>;

/// The Postgres kind of [`ManagedServer`]: where the binaries are, who runs them, and the
/// builder's settings.
#[derive(Debug)]
pub struct Postgres {
    bin: PathBuf,
    owner: ServerUser,
    builder: PostgresBuilder,
}

impl ManagedServer<Postgres> {
    /// Starts a server with the default settings.
    ///
    /// # Errors
    ///
    /// See [`PostgresBuilder::start`].
    pub fn start() -> io::Result<Self> {
        PostgresBuilder::default().start()
    }

    /// A builder for a server with other settings.
    pub fn builder() -> PostgresBuilder {
        PostgresBuilder::default()
    }
}

impl ServerKind for Postgres {
    const NAME: &'static str = "postgres";

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    fn url(&self, port: u16) -> String {
        format!("postgres://postgres@127.0.0.1:{port}/postgres")
    }

    fn start_once(&self, dir: &Path, port: u16) -> io::Result<ServiceProcess> {
        let data = dir.join("data");
        let mut command = Command::new(self.bin.join("postgres"));
        command
            .arg("-D")
            .arg(&data)
            .arg("-p")
            .arg(port.to_string())
            .arg("-k")
            .arg(dir);
        let mut settings = vec![
            ("listen_addresses".to_owned(), "127.0.0.1".to_owned()),
            ("fsync".to_owned(), "off".to_owned()),
            ("synchronous_commit".to_owned(), "off".to_owned()),
            ("full_page_writes".to_owned(), "off".to_owned()),
            (
                "max_connections".to_owned(),
                self.builder.max_connections.to_string(),
            ),
        ];
        if self.builder.tls.is_some() {
            settings.push(("ssl".to_owned(), "on".to_owned()));
        }
        settings.extend(self.builder.settings.iter().cloned());
        for (name, value) in settings {
            command.arg("-c").arg(format!("{name}={value}"));
        }
        self.owner.apply(&mut command);
        // SIGINT is Postgres's "fast shutdown": it ends sessions instead of waiting for them.
        let log = dir.join("postgres.log");
        let mut process = ServiceProcess::spawn("postgres", command, &log, Signal::SIGINT)?;
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            process.ensure_running()?;
            // postmaster.pid names the pid, port and state of the server that owns the data
            // directory: "ready" there means *our* server listens, not some other process
            // that took the port first. pg_isready then proves it accepts connections.
            if owns_port_and_is_ready(&data, port, process.pid()) {
                let ready = Command::new(self.bin.join("pg_isready"))
                    .args(["-q", "-h", "127.0.0.1", "-U", "postgres", "-p"])
                    .arg(port.to_string())
                    .status()?;
                if ready.success() {
                    process.ensure_running()?;
                    return Ok(process);
                }
            }
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "postgres did not become ready within {STARTUP_TIMEOUT:?}; log:\n{}",
                        process.log_tail(40)
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Whether `data/postmaster.pid` says the server with `pid` is ready on `port`.
fn owns_port_and_is_ready(data: &Path, port: u16, pid: Option<u32>) -> bool {
    let Ok(text) = std::fs::read_to_string(data.join("postmaster.pid")) else {
        return false;
    };
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let ours = pid.is_some_and(|pid| lines.first() == Some(&pid.to_string().as_str()));
    ours && lines.get(3) == Some(&port.to_string().as_str()) && lines.get(7) == Some(&"ready")
}

/// The Postgres binaries: `$RESYNC_PG_BIN`, else the newest `/usr/lib/postgresql/*/bin`.
fn postgres_bin_dir() -> io::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("RESYNC_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut candidates: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("postgres").exists().then_some((version, bin))
        })
        .collect();
    candidates.sort();
    candidates.pop().map(|(_, bin)| bin).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin: install the \
             Debian package `postgresql` (or set RESYNC_PG_BIN)",
        )
    })
}

/// Postgres refuses to run as root: when we are root, the server runs as `postgres`.
#[derive(Debug, Clone, Copy)]
struct ServerUser {
    ids: Option<(Uid, Gid)>,
}

impl ServerUser {
    fn resolve() -> io::Result<Self> {
        if !Uid::effective().is_root() {
            return Ok(Self { ids: None });
        }
        let user = match User::from_name("postgres").map_err(io::Error::from)? {
            Some(user) => user,
            None => {
                let status = Command::new("useradd")
                    .args(["--system", "--user-group", "--no-create-home"])
                    .args(["--shell", "/usr/sbin/nologin", "postgres"])
                    .status()?;
                if !status.success() {
                    return Err(io::Error::other("cannot create the `postgres` user"));
                }
                User::from_name("postgres")
                    .map_err(io::Error::from)?
                    .ok_or_else(|| io::Error::other("user `postgres` missing after useradd"))?
            }
        };
        Ok(Self {
            ids: Some((user.uid, user.gid)),
        })
    }

    fn apply(self, command: &mut Command) {
        if let Some((uid, gid)) = self.ids {
            command.uid(uid.as_raw()).gid(gid.as_raw());
        }
    }

    fn chown(self, path: &Path) -> io::Result<()> {
        if let Some((uid, gid)) = self.ids {
            chown(path, Some(uid), Some(gid)).map_err(io::Error::from)?;
        }
        Ok(())
    }
}

fn write_owned(owner: &ServerUser, path: &Path, contents: &str, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, contents)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    owner.chown(path)
}
