//! The processes of `bench distributed`: a throwaway `redis-server` (test-support's
//! [`RedisServer`]), the test upstream with its request counter, and the resync instances A
//! and B in front of both. Every one of them is stopped when its value is dropped, so on
//! every error and interrupt too.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use test_support::RedisServer;

use super::{Config, PATHS, SMALL_L1, STATS_PATH, TTL};
use crate::bench_gateway::services::{self, memory_mb_for, Resync, Scratch, Service};

/// How long a Redis command of the bench may take.
const REDIS_TIMEOUT: Duration = Duration::from_secs(30);

/// Which instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Instance {
    A,
    B,
}

/// Redis, the upstream, and the instances running now.
pub(super) struct Setup {
    dir: PathBuf,
    resync: PathBuf,
    redis: RedisServer,
    upstream: Service,
    a: Option<Service>,
    b: Option<Service>,
}

impl Setup {
    /// Starts Redis and the upstream (no instance yet).
    pub(super) fn start(scratch: &Scratch, resync: &Path, upstream: &Path) -> Result<Self> {
        let dir = scratch.path().to_path_buf();
        eprintln!("\n==> starting redis-server (test-support's throwaway server)");
        let redis = RedisServer::start().context("starting redis-server")?;
        eprintln!("    redis:    {}", redis.url());
        let cache_control = format!("max-age={}", TTL.as_secs());
        let upstream = services::start_upstream(
            upstream,
            &dir,
            &[
                "--cache-control",
                &cache_control,
                "--stats-path",
                STATS_PATH,
            ],
        )?;
        eprintln!(
            "    upstream: http://{} (request count at {STATS_PATH})",
            upstream.addr
        );
        Ok(Self {
            dir,
            resync: resync.to_path_buf(),
            redis,
            upstream,
            a: None,
            b: None,
        })
    }

    /// Where `instance` listens.
    pub(super) fn addr(&self, instance: Instance) -> Result<SocketAddr> {
        let service = match instance {
            Instance::A => &self.a,
            Instance::B => &self.b,
        };
        service
            .as_ref()
            .map(|service| service.addr)
            .with_context(|| format!("instance {instance:?} is not running"))
    }

    /// How many requests the upstream has served (its own counter).
    pub(super) fn upstream_requests(&self) -> Result<u64> {
        let response = crate::http::get(self.upstream.addr, STATS_PATH, None)
            .context("reading the upstream's request count")?;
        ensure!(
            response.status == 200,
            "the upstream answered GET {STATS_PATH} with {}: does this test-upstream have \
             --stats-path?",
            response.status
        );
        let json: serde_json::Value = serde_json::from_str(&response.body)
            .with_context(|| format!("the upstream's count is not JSON: {}", response.body))?;
        json["requests"]
            .as_u64()
            .with_context(|| format!("no request count in {}", response.body))
    }

    /// `FLUSHALL`: an empty second level.
    pub(super) fn flush_redis(&self) -> Result<()> {
        let reply = self.redis_command(&["FLUSHALL"])?;
        ensure!(reply == "+OK", "FLUSHALL answered {reply:?}");
        Ok(())
    }

    /// `DBSIZE`: how many keys Redis holds.
    pub(super) fn redis_keys(&self) -> Result<u64> {
        let reply = self.redis_command(&["DBSIZE"])?;
        reply
            .strip_prefix(':')
            .and_then(|count| count.parse().ok())
            .with_context(|| format!("DBSIZE answered {reply:?}"))
    }

    /// Sends one command and returns the first line of the reply (without its CRLF).
    fn redis_command(&self, args: &[&str]) -> Result<String> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.redis.port()));
        let stream = TcpStream::connect_timeout(&addr, REDIS_TIMEOUT)
            .with_context(|| format!("connecting to redis at {addr}"))?;
        stream.set_read_timeout(Some(REDIS_TIMEOUT))?;
        stream.set_write_timeout(Some(REDIS_TIMEOUT))?;
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            let _ = write!(request, "${}\r\n{arg}\r\n", arg.len());
        }
        (&stream)
            .write_all(request.as_bytes())
            .with_context(|| format!("sending {} to redis", args.join(" ")))?;
        let mut line = String::new();
        BufReader::new(&stream)
            .read_line(&mut line)
            .with_context(|| format!("reading redis's answer to {}", args.join(" ")))?;
        Ok(line.trim_end().to_owned())
    }

    /// Stops any instance, then starts A and B afresh with `config` (both with a cache for
    /// every path).
    pub(super) fn start_pair(&mut self, config: Config) -> Result<()> {
        self.stop_instances()?;
        let entries = (PATHS * 2).max(100_000);
        self.a = Some(self.start_instance("resync-a", config, entries)?);
        self.b = Some(self.start_instance("resync-b", config, entries)?);
        Ok(())
    }

    /// Replaces B by a fresh instance with the second level on and an L1 of [`SMALL_L1`]
    /// entries, so that its hits come from Redis.
    pub(super) fn restart_b_with_a_small_l1(&mut self) -> Result<()> {
        if let Some(mut b) = self.b.take() {
            b.process.stop().context("stopping instance B")?;
        }
        self.b = Some(self.start_instance("resync-b-small-l1", Config::L2On, SMALL_L1)?);
        Ok(())
    }

    fn start_instance(&self, name: &'static str, config: Config, entries: u64) -> Result<Service> {
        let env = [
            ("RESYNC_REDIS_URL", self.redis.url()),
            ("RESYNC_GATEWAY_L2", config.l2().to_string()),
            // No health probe (GET /) of the upstream during a run: the upstream's counter
            // then counts the gateway's fetches only.
            ("RESYNC_HTTP_POOL_HEALTH_CHECK_INTERVAL", "3600".to_owned()),
        ];
        let service = Resync {
            binary: &self.resync,
            name,
            upstream: self.upstream.addr,
            ttl: TTL,
            entries,
            memory_mb: memory_mb_for((PATHS * 2).max(100_000)),
            extra_env: &env,
        }
        .start(&self.dir)?;
        eprintln!(
            "    {name}: http://{}/tws/ ({}, L1 of {entries} entries)",
            service.addr,
            config.label()
        );
        Ok(service)
    }

    /// Stops A and B.
    pub(super) fn stop_instances(&mut self) -> Result<()> {
        let mut failed = Vec::new();
        for service in [self.a.take(), self.b.take()].into_iter().flatten() {
            let mut service = service;
            if let Err(error) = service.process.stop() {
                failed.push(format!("{}: {error}", service.name));
            }
        }
        ensure!(failed.is_empty(), "stopping: {}", failed.join("; "));
        Ok(())
    }

    /// Fails when a process has exited.
    pub(super) fn ensure_running(&mut self) -> Result<()> {
        let services = [Some(&mut self.upstream), self.a.as_mut(), self.b.as_mut()];
        for service in services.into_iter().flatten() {
            if !service.process.is_running() {
                bail!("{} exited during the bench", service.name);
            }
        }
        ensure!(
            redis_answers(self.redis.port()),
            "redis-server stopped answering during the bench"
        );
        Ok(())
    }

    /// The end of each process's log, for an error message.
    pub(super) fn log_tails(&self, lines: usize) -> String {
        let mut text = String::new();
        let services = [Some(&self.upstream), self.a.as_ref(), self.b.as_ref()];
        for service in services.into_iter().flatten() {
            let _ = writeln!(
                text,
                "--- {} log, last {lines} lines:\n{}",
                service.name,
                service.process.log_tail(lines)
            );
        }
        text
    }

    /// Stops the instances, the upstream, then Redis.
    pub(super) fn stop(mut self) -> Result<()> {
        let mut failed = Vec::new();
        if let Err(error) = self.stop_instances() {
            failed.push(error.to_string());
        }
        if let Err(error) = self.upstream.process.stop() {
            failed.push(format!("test-upstream: {error}"));
        }
        if let Err(error) = self.redis.stop() {
            failed.push(format!("redis-server: {error}"));
        }
        ensure!(failed.is_empty(), "stopping: {}", failed.join("; "));
        Ok(())
    }
}

/// Whether Redis on `port` answers `PING`.
fn redis_answers(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(stream) = TcpStream::connect_timeout(&addr, REDIS_TIMEOUT) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(REDIS_TIMEOUT));
    if (&stream).write_all(b"*1\r\n$4\r\nPING\r\n").is_err() {
        return false;
    }
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line).is_ok() && line.starts_with("+PONG")
}
