//! The example responses of the docs, captured from the real `resync` binary: it runs on a
//! loopback port in an empty directory (so no `settings.toml` applies) with the settings of
//! [`SETTINGS`] — Postgres, Redis and the gateway's Redis second level on, in front of the
//! `test-upstream` binary (1 KiB of JSON after 2 ms, `max-age=300`) — gets [`TRAFFIC`]
//! through its gateway, and is then asked for every endpoint of [`ENDPOINTS`] and for
//! `/metrics`. Every wait polls for what it waits for, bounded by [`BOUND`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, ensure, Context, Result};
use nix::sys::signal::Signal;
use test_support::{RedisServer, ServiceProcess};

use crate::bench_gateway::services::{self as procs, Service};
use crate::binaries::Binaries;
use crate::http::{self, Response};
use crate::{describe, interrupt};

/// Every wait gives up after this long (a loaded 2-core machine is slow).
const BOUND: Duration = Duration::from_secs(90);

/// The bearer token the captured server requires (so the examples show the header).
pub(crate) const TOKEN: &str = "docs-example-token";

/// The settings of the captured server besides the addresses, as `RESYNC_<KEY>` values; the
/// docs list them (`settings_note`). Everything else is the default.
pub(crate) const SETTINGS: &[(&str, &str)] = &[
    ("GATEWAY_L2", "true"),
    // A cache too small for the traffic's working set, so the advisor and the health rules
    // have something to say.
    ("ASYNC_CACHE_MAX_ENTRIES", "100"),
    // A history sample every second, so the history holds the traffic within moments.
    ("PERF_SAMPLE_INTERVAL", "1"),
    ("PERF_API_TOKEN", TOKEN),
];

/// The traffic sent through the gateway before the endpoints are read.
pub(crate) const TRAFFIC: &str = "3000 `GET /tws/items/<n>` with n drawn from a Zipf \
    distribution (exponent 1) over 400 paths by a fixed seed, then one `POST /tws/items/1` \
    (passed through; it invalidates the path in every instance) and one `GET /tws/items/1`";

/// Paths of the traffic's Zipf draw.
const PATHS: u32 = 400;
/// Gets of the Zipf draw.
const GETS: u32 = 3000;

/// What to ask for: a section name, the request target, whether it carries the token, and
/// the status it must answer.
pub(crate) struct Endpoint {
    pub(crate) name: &'static str,
    pub(crate) target: &'static str,
    pub(crate) with_token: bool,
    pub(crate) status: u16,
}

const fn endpoint(name: &'static str, target: &'static str, status: u16) -> Endpoint {
    Endpoint {
        name,
        target,
        with_token: true,
        status,
    }
}

/// Every endpoint the docs show an example of.
pub(crate) const ENDPOINTS: &[Endpoint] = &[
    endpoint("api-health", "/api/performance/health", 200),
    Endpoint {
        name: "api-readyz",
        target: "/readyz",
        with_token: false,
        status: 200,
    },
    Endpoint {
        name: "api-livez",
        target: "/livez",
        with_token: false,
        status: 200,
    },
    endpoint("api-cache-metrics", "/api/performance/cache/metrics", 200),
    endpoint(
        "api-cache-recommendations",
        "/api/performance/cache/recommendations",
        200,
    ),
    endpoint("api-pools-metrics", "/api/performance/pools/metrics", 200),
    endpoint(
        "api-pools-recommendations",
        "/api/performance/pools/recommendations",
        200,
    ),
    endpoint(
        "api-resources-stats",
        "/api/performance/resources/stats",
        200,
    ),
    endpoint(
        "api-resources-leaks",
        "/api/performance/resources/leaks",
        200,
    ),
    endpoint(
        "api-gateway-metrics",
        "/api/performance/gateway/metrics",
        200,
    ),
    endpoint("api-history", "/api/performance/history?limit=1", 200),
    endpoint("api-report", "/api/performance/report", 200),
    endpoint("api-error-400", "/api/performance/history?limit=0", 400),
    Endpoint {
        name: "api-error-401",
        target: "/api/performance/health",
        with_token: false,
        status: 401,
    },
    endpoint("api-error-404", "/api/performance/no-such-thing", 404),
];

/// One captured response.
#[derive(Debug, Clone)]
pub(crate) struct Captured {
    pub(crate) name: &'static str,
    pub(crate) target: &'static str,
    pub(crate) with_token: bool,
    pub(crate) status: u16,
    pub(crate) body: String,
}

/// Everything captured.
#[derive(Debug, Clone)]
pub(crate) struct Capture {
    pub(crate) responses: Vec<Captured>,
    /// `/metrics` as Prometheus text.
    pub(crate) metrics: String,
}

impl Capture {
    /// The response captured as `name`.
    pub(crate) fn get(&self, name: &str) -> Result<&Captured> {
        self.responses
            .iter()
            .find(|captured| captured.name == name)
            .with_context(|| format!("nothing captured as {name}"))
    }
}

/// Runs the server against `database_url` and a private Redis (so that no entry of an
/// earlier run is in its second level), sends the traffic, and captures every endpoint;
/// everything started is stopped again, on errors too.
pub(crate) fn capture(binaries: &Binaries, database_url: &str) -> Result<Capture> {
    let scratch = Scratch::new()?;
    let redis = RedisServer::start().context("starting a private redis-server")?;
    let redis_url = redis.url();
    let mut upstream = procs::start_upstream(
        &binaries.upstream,
        scratch.path(),
        &["--cache-control", "max-age=300"],
    )?;
    let started = start_resync(
        &binaries.resync,
        scratch.path(),
        upstream.addr,
        database_url,
        &redis_url,
    );
    let mut resync = match started {
        Ok(resync) => resync,
        Err(error) => {
            let _ = upstream.process.stop();
            return Err(error);
        }
    };
    let result = exercise(&mut resync);
    let stopped = resync.process.stop();
    let _ = upstream.process.stop();
    let capture = result.with_context(|| {
        format!(
            "capturing the examples failed; resync's log ends with:\n{}",
            resync.process.log_tail(40)
        )
    })?;
    stopped.context("stopping resync")?;
    Ok(capture)
}

fn start_resync(
    binary: &Path,
    dir: &Path,
    upstream: SocketAddr,
    database_url: &str,
    redis_url: &str,
) -> Result<Service> {
    let cwd = dir.join("resync");
    std::fs::create_dir_all(&cwd).with_context(|| format!("creating {}", cwd.display()))?;
    procs::start_on_free_port("resync", |port| {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut command = crate::binaries::resync_command(binary, &cwd, addr);
        command.envs([
            ("RESYNC_TWS_BASE_URL", format!("http://{upstream}")),
            ("RESYNC_DATABASE_URL", database_url.to_owned()),
            ("RESYNC_REDIS_URL", redis_url.to_owned()),
        ]);
        command.envs(
            SETTINGS
                .iter()
                .map(|(key, value)| (format!("RESYNC_{key}"), *value)),
        );
        eprintln!("==> starting {}", describe(&command));
        let log = dir.join("resync.log");
        let process = ServiceProcess::spawn("resync", command, &log, Signal::SIGTERM)
            .context("starting resync")?;
        Ok(Service {
            name: "resync",
            process,
            addr,
        })
    })
}

/// `GET target` with the token (when asked for).
fn get(addr: SocketAddr, target: &str, with_token: bool) -> Result<Response> {
    let auth = format!("Bearer {TOKEN}");
    let headers: &[(&str, &str)] = if with_token {
        &[("Authorization", &auth)]
    } else {
        &[]
    };
    http::request(addr, "GET", target, headers, "")
}

/// Waits until `ready` says yes about the JSON at `target`, polling; fails after [`BOUND`]
/// with what was last seen.
fn wait_for(
    resync: &mut Service,
    what: &str,
    target: &str,
    ready: impl Fn(&serde_json::Value) -> bool,
) -> Result<()> {
    let deadline = Instant::now() + BOUND;
    loop {
        procs::alive(&mut resync.process, "resync")?;
        let response = get(resync.addr, target, true)?;
        let json: serde_json::Value = serde_json::from_str(&response.body).unwrap_or_default();
        if ready(&json) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "within {BOUND:?}, {what} did not happen; GET {target} last answered {}: {}",
                response.status,
                response.body
            );
        }
        if interrupt::interrupted() {
            bail!("interrupted");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn exercise(resync: &mut Service) -> Result<Capture> {
    let addr = resync.addr;
    wait_for(
        resync,
        "a health check of every pool",
        "/api/performance/pools/metrics",
        |json| {
            json["pools"].as_array().is_some_and(|pools| {
                pools.len() == 3
                    && pools
                        .iter()
                        .all(|pool| pool["health_checks"]["checks"].as_u64() >= Some(1))
            })
        },
    )?;
    wait_for(
        resync,
        "the gateway's second level becoming available",
        "/api/performance/gateway/metrics",
        |json| json["gateway"]["l2"]["available"] == serde_json::Value::Bool(true),
    )?;

    eprintln!("==> traffic: {GETS} gets over {PATHS} paths (Zipf), a POST, a GET");
    let mut x_cache = (0, 0, 0);
    for path in zipf_paths(GETS, PATHS) {
        let response = http::request(addr, "GET", &format!("/tws/items/{path}"), &[], "")?;
        ensure!(
            response.status == 200,
            "GET /tws/items/{path} answered {}: {}",
            response.status,
            response.body
        );
        match response.header("x-cache") {
            Some("HIT") => x_cache.0 += 1,
            Some("MISS") => x_cache.1 += 1,
            _ => x_cache.2 += 1,
        }
        if interrupt::interrupted() {
            bail!("interrupted");
        }
    }
    let posted = http::request(
        addr,
        "POST",
        "/tws/items/1",
        &[("Content-Type", "application/json")],
        r#"{"name":"one"}"#,
    )?;
    ensure!(posted.status == 200, "POST answered {}", posted.status);
    let again = http::request(addr, "GET", "/tws/items/1", &[], "")?;
    ensure!(
        again.header("x-cache") == Some("MISS"),
        "the GET after the POST was {:?}, not a MISS",
        again.header("x-cache")
    );
    eprintln!(
        "    X-Cache of the gets: {} HIT, {} MISS, {} other",
        x_cache.0, x_cache.1, x_cache.2
    );
    let sent = unix_now();
    wait_for(
        resync,
        "a history sample after the traffic",
        "/api/performance/history?limit=1",
        |json| {
            json["samples"][0]["unix_seconds"]
                .as_f64()
                .is_some_and(|taken| taken > sent)
        },
    )?;

    let mut responses = Vec::new();
    for endpoint in ENDPOINTS {
        let response = get(addr, endpoint.target, endpoint.with_token)?;
        ensure!(
            response.status == endpoint.status,
            "GET {} answered {}, not {}: {}",
            endpoint.target,
            response.status,
            endpoint.status,
            response.body
        );
        responses.push(Captured {
            name: endpoint.name,
            target: endpoint.target,
            with_token: endpoint.with_token,
            status: response.status,
            body: response.body,
        });
    }
    let metrics = get(addr, "/metrics", true)?;
    ensure!(
        metrics.status == 200,
        "GET /metrics answered {}",
        metrics.status
    );
    Ok(Capture {
        responses,
        metrics: metrics.body,
    })
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64())
}

/// `count` draws from a Zipf distribution (exponent 1) over `0..paths`, from a fixed seed.
fn zipf_paths(count: u32, paths: u32) -> Vec<u32> {
    let weights: Vec<f64> = (1..=paths).map(|rank| 1.0 / f64::from(rank)).collect();
    let total: f64 = weights.iter().sum();
    let mut cumulative = Vec::with_capacity(weights.len());
    let mut sum = 0.0;
    for weight in weights {
        sum += weight / total;
        cumulative.push(sum);
    }
    // A 64-bit linear congruential generator (Knuth's MMIX constants): the same draw on
    // every machine.
    let mut state: u64 = 0x5eed;
    (0..count)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let unit = (state >> 11) as f64 / (1u64 << 53) as f64;
            let index = cumulative.partition_point(|&edge| edge < unit);
            u32::try_from(index.min(cumulative.len() - 1)).unwrap_or(0)
        })
        .collect()
}

/// A fresh directory under the system temporary directory, removed on drop.
#[derive(Debug)]
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Self> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.subsec_nanos());
        let dir = std::env::temp_dir().join(format!("resync-docs-{}-{nanos}", std::process::id()));
        std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self(dir))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_zipf_draw_is_fixed_and_skewed() {
        let draw = zipf_paths(3000, 400);
        assert_eq!(draw, zipf_paths(3000, 400));
        assert!(draw.iter().all(|&path| path < 400));
        let first = draw.iter().filter(|&&path| path == 0).count();
        let tenth = draw.iter().filter(|&&path| path == 9).count();
        // Rank 1 is drawn about ten times as often as rank 10 (1/H(400) ≈ 15 %).
        assert!((350..550).contains(&first), "{first}");
        assert!(first > 5 * tenth, "{first} vs {tenth}");
    }
}
