//! `cargo xtask services up|down|status` and the servers `ci` runs its tests against.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{anyhow, Context, Result};
use clap::Subcommand;
use serde::{Deserialize, Serialize};
use test_support::{DetachedService, PostgresServer, RedisServer, DATABASE_URL_ENV, REDIS_URL_ENV};

/// What to do with the throwaway servers.
#[derive(Debug, Subcommand)]
pub(crate) enum Action {
    /// Start Postgres and Redis (if not already up) and print `export` lines for `eval`.
    Up,
    /// Stop the servers started by `up` and delete their data.
    Down,
    /// Say whether the servers started by `up` are running.
    Status,
}

/// A server left running by `up`, as written to the state file.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    name: String,
    pid: u32,
    dir: PathBuf,
    url: String,
}

impl From<DetachedService> for Record {
    fn from(service: DetachedService) -> Self {
        Self {
            name: service.name,
            pid: service.pid,
            dir: service.dir,
            url: service.url,
        }
    }
}

impl Record {
    fn service(&self) -> DetachedService {
        DetachedService {
            name: self.name.clone(),
            pid: self.pid,
            dir: self.dir.clone(),
            url: self.url.clone(),
        }
    }

    fn is_running(&self) -> bool {
        self.service().is_running()
    }

    fn env_var(&self) -> &'static str {
        if self.name == "postgres" {
            DATABASE_URL_ENV
        } else {
            REDIS_URL_ENV
        }
    }
}

/// Postgres and Redis for one test run; both stop when this is dropped.
#[derive(Debug)]
pub(crate) struct Running {
    postgres: PostgresServer,
    redis: RedisServer,
}

impl Running {
    /// Starts both servers at once on free loopback ports.
    pub(crate) fn start() -> Result<Self> {
        eprintln!("==> starting throwaway postgres and redis-server");
        let postgres = std::thread::spawn(PostgresServer::start);
        let redis = RedisServer::start().context("starting redis-server");
        // Join before looking at redis's result, so a failed redis start still stops
        // postgres (when its value drops) instead of leaving it running.
        let postgres = postgres
            .join()
            .map_err(|_| anyhow!("the postgres start-up thread panicked"))?
            .context("starting postgres")?;
        let redis = redis?;
        eprintln!(
            "    postgres: {}\n    redis:    {}",
            postgres.url(),
            redis.url()
        );
        Ok(Self { postgres, redis })
    }

    /// The Postgres server's URL.
    pub(crate) fn database_url(&self) -> String {
        self.postgres.url()
    }

    /// The Redis server's URL.
    pub(crate) fn redis_url(&self) -> String {
        self.redis.url()
    }

    /// Points a command's tests at these servers.
    pub(crate) fn export_to(&self, command: &mut Command) {
        command
            .env(DATABASE_URL_ENV, self.postgres.url())
            .env(REDIS_URL_ENV, self.redis.url());
    }
}

pub(crate) fn run(root: &Path, action: &Action) -> Result<()> {
    let state = root.join(".resync-services.json");
    match action {
        Action::Up => up(&state),
        Action::Down => down(&state),
        Action::Status => status(&state),
    }
}

fn up(state: &Path) -> Result<()> {
    let existing = read_state(state)?;
    let records = if !existing.is_empty() && existing.iter().all(Record::is_running) {
        eprintln!("services already running (state in {})", state.display());
        existing
    } else {
        down(state)?;
        crate::packages::ensure_installed()?;
        let running = Running::start()?;
        let records: Vec<Record> = [running.postgres.detach(), running.redis.detach()]
            .into_iter()
            .map(|service| service.map(Record::from))
            .collect::<Option<_>>()
            .ok_or_else(|| anyhow!("a server exited before it could be detached"))?;
        let json = serde_json::to_string_pretty(&records)?;
        std::fs::write(state, json).with_context(|| format!("writing {}", state.display()))?;
        records
    };
    for record in &records {
        println!("export {}={}", record.env_var(), record.url);
    }
    eprintln!("stop them with `cargo xtask services down`");
    Ok(())
}

fn down(state: &Path) -> Result<()> {
    for record in read_state(state)? {
        eprintln!("stopping {} (pid {})", record.name, record.pid);
        record
            .service()
            .stop()
            .with_context(|| format!("stopping {}", record.name))?;
    }
    match std::fs::remove_file(state) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error.into()),
        _ => Ok(()),
    }
}

fn status(state: &Path) -> Result<()> {
    let records = read_state(state)?;
    if records.is_empty() {
        println!("no services started by `cargo xtask services up`");
    }
    for record in records {
        let verdict = if record.is_running() {
            "running"
        } else {
            "NOT running"
        };
        println!(
            "{:<9} pid {:<7} {verdict:<12} {}",
            record.name, record.pid, record.url
        );
    }
    Ok(())
}

fn read_state(state: &Path) -> Result<Vec<Record>> {
    match std::fs::read_to_string(state) {
        Ok(text) => serde_json::from_str(&text)
            .with_context(|| format!("{} is not a services state file", state.display())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(error) => Err(error.into()),
    }
}
