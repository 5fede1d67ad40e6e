//! Every key of settings.toml takes effect: the real binary runs with every key set to a
//! value other than its default, and each key's effect is observed where the component that
//! reads it shows it (a pool's size and timeouts, the cache's bounds, the history's interval
//! and length, a timeout that fires, the token, the log format). A key missing from the table
//! — one nothing was shown to read — fails the test.

#![allow(clippy::unwrap_used)] // reason: a test; a failed step should panic with its error.

mod common;

use std::collections::BTreeSet;

use resync_server::gateway::l2::L2Keys;
use resync_server::settings::Settings;
use serde_json::Value;

use common::{http_exchange, wait_for, Running};
use test_support::{Reply, TestCa, TestUpstream};

const TOKEN: &str = "effects-token";

/// What the running binary showed.
struct Observed {
    /// `(probe, status, X-Cache)` of requests sent through the gateway.
    gateway: Vec<(&'static str, u16, String)>,
    report: Value,
    history: Value,
    unauthorized: u16,
    log: String,
    /// The remaining life of a fetch lease the gateway took in Redis, in milliseconds.
    lease_pttl: Option<i64>,
}

impl Observed {
    fn pool(&self, name: &str) -> &Value {
        self.report["pools"]
            .as_array()
            .unwrap()
            .iter()
            .find(|pool| pool["name"] == name)
            .unwrap_or_else(|| panic!("pool {name} in the report"))
    }

    fn cache(&self) -> &Value {
        &self.report["caches"][0]
    }

    fn kind(&self, kind: &str) -> &Value {
        self.report["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|entry| entry["kind"] == kind)
            .unwrap_or_else(|| panic!("kind {kind} in the report"))
    }

    /// The status and `X-Cache` of a gateway probe.
    fn probe(&self, name: &str) -> (u16, &str) {
        self.gateway
            .iter()
            .find(|(probe, _, _)| *probe == name)
            .map(|(_, status, cache)| (*status, cache.as_str()))
            .unwrap_or_else(|| panic!("probe {name}"))
    }

    fn threshold(&self, name: &str) -> f64 {
        self.report["health"]["thresholds"][name].as_f64().unwrap()
    }
}

type Check = fn(&Observed, &str) -> bool;

/// Requests through the gateway whose answers show the `GATEWAY_*` keys' effects; each
/// cacheable one is sent twice and the second answer kept.
fn probe_gateway(addr: std::net::SocketAddr) -> Vec<(&'static str, u16, String)> {
    let twice = |path: &str| {
        let _ = http_exchange(addr, "GET", path, &[]);
        http_exchange(addr, "GET", path, &[])
    };
    let mut probes = Vec::new();
    for (name, path) in [
        ("small", "/tws/g/small?bytes=1000"),
        ("big", "/tws/g/big?bytes=3000"),
        ("missing", "/tws/g/missing?status=404"),
    ] {
        let (status, cache) = twice(path);
        probes.push((name, status, cache));
    }
    for (name, size) in [("upload 4000", 4000), ("upload 6000", 6000)] {
        let (status, cache) = http_exchange(addr, "POST", "/tws/g/upload", &vec![b'x'; size]);
        probes.push((name, status, cache));
    }
    probes
}

/// Sends a slow `GET` through the gateway and reads, while the upstream is answering, the
/// `PTTL` of the fetch lease the second level took for it in Redis (a new target each
/// time, so no stored entry answers instead).
fn probe_lease(addr: std::net::SocketAddr, redis_url: &str, round: u64) -> Option<i64> {
    let target = format!("/g/lease?latency_ms=1500&round={round}");
    let lease = L2Keys::new("/g/lease", false, &target, None).lease;
    let path = format!("/tws{target}");
    let request = std::thread::spawn(move || http_exchange(addr, "GET", &path, &[]));
    let mut conn = redis::Client::open(redis_url).ok()?.get_connection().ok()?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(1200);
    let mut pttl = None;
    while std::time::Instant::now() < deadline {
        let left: i64 = redis::cmd("PTTL").arg(&lease).query(&mut conn).ok()?;
        if left > 0 {
            pttl = Some(left);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let _ = request.join();
    pttl
}

fn number(value: &Value) -> f64 {
    value.as_f64().unwrap_or(f64::NAN)
}

fn close(a: f64, b: &str) -> bool {
    (a - b.parse::<f64>().unwrap()).abs() < 1e-9
}

/// Key, the value it is set to, and where its effect shows.
fn table(
    database: &str,
    redis: &str,
    upstream: &str,
    ca_file: &str,
) -> Vec<(&'static str, String, Check)> {
    let rows: Vec<(&'static str, String, Check)> = vec![
        ("DATABASE_URL", database.to_owned(), |o, _| {
            o.pool("db")["name"] == "db"
                && o.report["health"]["components"]["history:postgres"].is_object()
        }),
        ("DB_POOL_MIN_SIZE", "2".into(), |o, v| {
            close(number(&o.pool("db")["min_size"]), v)
        }),
        ("DB_POOL_MAX_SIZE", "7".into(), |o, v| {
            close(number(&o.pool("db")["max_size"]), v)
        }),
        ("DB_POOL_IDLE_TIMEOUT", "301".into(), |o, v| {
            close(number(&o.pool("db")["config"]["idle_timeout_seconds"]), v)
        }),
        ("DB_POOL_MAX_LIFETIME", "601".into(), |o, v| {
            close(number(&o.pool("db")["config"]["max_lifetime_seconds"]), v)
        }),
        ("DB_POOL_CONNECT_TIMEOUT", "9".into(), |o, v| {
            close(
                number(&o.pool("db")["config"]["connect_timeout_seconds"]),
                v,
            )
        }),
        ("DB_POOL_HEALTH_CHECK_INTERVAL", "1".into(), |o, v| {
            close(
                number(&o.pool("db")["config"]["health_check_interval_seconds"]),
                v,
            ) && number(&o.pool("db")["health_checks"]["checks"]) >= 2.0
        }),
        ("REDIS_URL", redis.to_owned(), |o, _| {
            o.pool("redis")["health_checks"]["last_ok"] == true
        }),
        ("REDIS_POOL_MIN_SIZE", "1".into(), |o, v| {
            close(number(&o.pool("redis")["min_size"]), v)
        }),
        ("REDIS_POOL_MAX_SIZE", "6".into(), |o, v| {
            close(number(&o.pool("redis")["max_size"]), v)
        }),
        ("REDIS_POOL_IDLE_TIMEOUT", "302".into(), |o, v| {
            close(
                number(&o.pool("redis")["config"]["idle_timeout_seconds"]),
                v,
            )
        }),
        ("REDIS_POOL_MAX_LIFETIME", "602".into(), |o, v| {
            close(
                number(&o.pool("redis")["config"]["max_lifetime_seconds"]),
                v,
            )
        }),
        ("REDIS_POOL_CONNECT_TIMEOUT", "8".into(), |o, v| {
            close(
                number(&o.pool("redis")["config"]["connect_timeout_seconds"]),
                v,
            )
        }),
        // The redis pool's PING probe is bounded by it too.
        ("REDIS_RESPONSE_TIMEOUT_MS", "1500".into(), |o, v| {
            close(
                number(&o.pool("redis")["config"]["health_check_timeout_seconds"]) * 1000.0,
                v,
            )
        }),
        ("REDIS_POOL_HEALTH_CHECK_INTERVAL", "1".into(), |o, v| {
            close(
                number(&o.pool("redis")["config"]["health_check_interval_seconds"]),
                v,
            ) && number(&o.pool("redis")["health_checks"]["checks"]) >= 2.0
        }),
        ("TWS_BASE_URL", upstream.to_owned(), |o, _| {
            o.pool("http")["connections"].as_u64().unwrap() >= 1 && o.probe("small").0 == 200
        }),
        // The upstream speaks TLS with a certificate of a private CA: only with the CA
        // file does a connection (and a gateway request) succeed.
        ("TWS_CA_FILE", ca_file.to_owned(), |o, _| {
            o.pool("http")["connections"].as_u64().unwrap() >= 1 && o.probe("small").0 == 200
        }),
        ("HTTP_POOL_MIN_SIZE", "1".into(), |o, v| {
            close(number(&o.pool("http")["min_size"]), v)
        }),
        ("HTTP_POOL_MAX_SIZE", "5".into(), |o, v| {
            close(number(&o.pool("http")["max_size"]), v)
        }),
        ("HTTP_POOL_IDLE_TIMEOUT", "303".into(), |o, v| {
            close(number(&o.pool("http")["config"]["idle_timeout_seconds"]), v)
        }),
        ("HTTP_POOL_MAX_LIFETIME", "603".into(), |o, v| {
            close(number(&o.pool("http")["config"]["max_lifetime_seconds"]), v)
        }),
        ("HTTP_POOL_CONNECT_TIMEOUT", "7".into(), |o, v| {
            close(
                number(&o.pool("http")["config"]["connect_timeout_seconds"]),
                v,
            )
        }),
        ("HTTP_POOL_HEALTH_CHECK_INTERVAL", "1".into(), |o, v| {
            close(
                number(&o.pool("http")["config"]["health_check_interval_seconds"]),
                v,
            )
        }),
        // The upstream accepts and never answers: each health probe times out after it.
        ("TWS_READ_TIMEOUT", "1".into(), |o, v| {
            let checks = &o.pool("http")["health_checks"];
            close(
                number(&o.pool("http")["config"]["health_check_timeout_seconds"]),
                v,
            ) && checks["last_ok"] == false
                && checks["last_error"].as_str().unwrap_or("").contains("1s")
        }),
        // The cache keeps an entry for its freshness (at most ASYNC_CACHE_TTL) plus the
        // stale window (GATEWAY_STALE_IF_ERROR_SECS, 7 below): 68 s at most.
        ("ASYNC_CACHE_TTL", "61".into(), |o, v| {
            close(number(&o.cache()["ttl_seconds"]) - 7.0, v)
        }),
        ("GATEWAY_STALE_IF_ERROR_SECS", "7".into(), |o, v| {
            close(number(&o.cache()["ttl_seconds"]) - 61.0, v)
        }),
        // A 3000-byte body passes a 2000-byte cap: never stored.
        ("GATEWAY_MAX_CACHED_BODY_BYTES", "2000".into(), |o, _| {
            o.probe("big") == (200, "BYPASS") && o.probe("small") == (200, "HIT")
        }),
        ("GATEWAY_MAX_REQUEST_BODY_BYTES", "5000".into(), |o, _| {
            o.probe("upload 6000") == (413, "BYPASS") && o.probe("upload 4000").0 == 200
        }),
        ("GATEWAY_CACHE_NOT_FOUND", "true".into(), |o, _| {
            o.probe("missing") == (404, "HIT")
        }),
        ("GATEWAY_L2", "true".into(), |o, _| {
            o.report["health"]["components"]["gateway_l2"]["status"] == "healthy"
        }),
        // Taken with `PX` at the setting, and read at most 1.2 s later.
        ("GATEWAY_L2_LEASE_MS", "4000".into(), |o, v| {
            let lease: i64 = v.parse().unwrap();
            o.lease_pttl
                .is_some_and(|left| left <= lease && left > lease - 1500)
        }),
        ("ASYNC_CACHE_CLEANUP_INTERVAL", "11".into(), |o, v| {
            close(number(&o.cache()["cleanup_interval_seconds"]), v)
        }),
        ("ASYNC_CACHE_NUM_SHARDS", "4".into(), |o, v| {
            close(number(&o.cache()["stat_shards"]), v)
        }),
        ("ASYNC_CACHE_MAX_ENTRIES", "5000".into(), |o, v| {
            close(number(&o.cache()["max_entries"]), v)
        }),
        ("ASYNC_CACHE_MAX_MEMORY_MB", "7".into(), |o, v| {
            close(number(&o.cache()["max_memory_bytes"]) / 1_048_576.0, v)
        }),
        ("LEAK_THRESHOLD_SECS", "120".into(), |o, v| {
            close(
                number(&o.kind("db_connection")["leak_threshold_seconds"]),
                v,
            )
        }),
        ("PERF_SAMPLE_INTERVAL", "1".into(), |o, v| {
            let samples = o.history["samples"].as_array().unwrap();
            close(number(&o.history["sample_interval_seconds"]), v)
                && samples.len() >= 3
                && samples[1..]
                    .iter()
                    .all(|s| (number(&s["interval_seconds"]) - 1.0).abs() < 0.5)
        }),
        ("PERF_HISTORY_LEN", "50".into(), |o, v| {
            close(number(&o.history["capacity"]), v)
        }),
        ("PERF_HEALTH_WINDOW_SECS", "3".into(), |o, v| {
            close(o.threshold("health_window_seconds"), v)
        }),
        ("PERF_API_TOKEN", TOKEN.into(), |o, _| o.unauthorized == 401),
        // Set by the harness to a free port; the test reached the server there.
        ("BIND_ADDR", String::new(), |_, _| true),
        ("LOG_FORMAT", "json".into(), |o, _| {
            o.log
                .lines()
                .filter(|l| !l.trim().is_empty())
                .all(|l| serde_json::from_str::<Value>(l).is_ok())
        }),
        ("HEALTH_CACHE_MIN_HIT_RATE", "0.3".into(), |o, v| {
            close(o.threshold("cache_min_hit_rate"), v)
        }),
        (
            "HEALTH_CACHE_MAX_MEMORY_UTILIZATION",
            "0.7".into(),
            |o, v| close(o.threshold("cache_max_memory_utilization"), v),
        ),
        ("HEALTH_CACHE_MIN_REQUESTS", "250".into(), |o, v| {
            close(o.threshold("cache_min_requests"), v)
        }),
        ("HEALTH_POOL_MAX_UTILIZATION", "0.8".into(), |o, v| {
            close(o.threshold("pool_max_utilization"), v)
        }),
        ("HEALTH_POOL_MAX_WAIT_MS", "50".into(), |o, v| {
            close(o.threshold("pool_max_acquire_wait_seconds") * 1000.0, v)
        }),
        ("HEALTH_POOL_MAX_ERROR_RATE", "0.1".into(), |o, v| {
            close(o.threshold("pool_max_error_rate"), v)
        }),
        ("HEALTH_GATEWAY_MAX_ERROR_RATE", "0.15".into(), |o, v| {
            close(o.threshold("gateway_max_error_rate"), v)
        }),
        (
            "HEALTH_GATEWAY_CRITICAL_ERROR_RATE",
            "0.35".into(),
            |o, v| close(o.threshold("gateway_critical_error_rate"), v),
        ),
        ("HEALTH_GATEWAY_MIN_REQUESTS", "30".into(), |o, v| {
            close(o.threshold("gateway_min_requests"), v)
        }),
    ];
    rows
}

#[test]
fn every_key_takes_effect_in_the_running_binary() {
    // A TLS upstream of a private CA whose `/` (the health probe's path) never answers,
    // so each probe times out after TWS_READ_TIMEOUT; `/g/…` answers.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let ca = TestCa::new().unwrap();
    let upstream = runtime.block_on(TestUpstream::start_tls(&ca)).unwrap();
    upstream.set_reply("/", Reply::new().hang());
    upstream.set_reply("/g/", Reply::new());
    let redis_url = test_support::shared_redis_url();
    let rows = table(
        &test_support::shared_database_url(),
        &redis_url,
        &upstream.url(),
        &ca.ca_file().display().to_string(),
    );
    let covered: BTreeSet<&str> = rows.iter().map(|(key, _, _)| *key).collect();
    let keys: BTreeSet<String> = Settings::keys().into_iter().collect();
    let covered_owned: BTreeSet<String> = covered.iter().map(|key| (*key).to_owned()).collect();
    assert_eq!(
        covered_owned, keys,
        "every settings key needs a row showing its effect"
    );
    let defaults = serde_json::to_value(Settings::default()).unwrap();
    let envs: Vec<(String, String)> = rows
        .iter()
        .filter(|(key, _, _)| *key != "BIND_ADDR")
        .map(|(key, value, _)| {
            assert_ne!(
                defaults[*key].to_string().trim_matches('"'),
                value.as_str(),
                "{key} must be set to a value other than its default"
            );
            (format!("RESYNC_{key}"), value.clone())
        })
        .collect();

    let dir = tempfile::tempdir().unwrap();
    let server = Running::start(dir.path(), &envs);
    let rounds = std::sync::atomic::AtomicU64::new(0);
    let observe = |log: String| {
        let (status, report) = server.get("/api/performance/report", Some(TOKEN));
        assert!(status == 200, "report: {status} {report}");
        let (_, history) = server.get("/api/performance/history", Some(TOKEN));
        let (unauthorized, _) = server.get("/api/performance/report", None);
        Observed {
            gateway: probe_gateway(server.addr),
            report,
            history,
            unauthorized,
            log,
            lease_pttl: probe_lease(
                server.addr,
                &redis_url,
                rounds.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            ),
        }
    };
    // Wait until every effect that needs time (checks, samples, a timeout) has shown.
    let observed = wait_for("every key's effect", || {
        let observed = observe(String::new());
        rows.iter()
            .filter(|(key, _, _)| *key != "LOG_FORMAT")
            .all(|(_, value, check)| check(&observed, value))
            .then_some(observed)
    });
    let (stopped, log) = server.stop();
    assert!(stopped, "clean exit; log:\n{log}");
    let observed = Observed { log, ..observed };
    let failing: Vec<&str> = rows
        .iter()
        .filter(|(_, value, check)| !check(&observed, value))
        .map(|(key, _, _)| *key)
        .collect();
    assert!(
        failing.is_empty(),
        "no effect seen for {failing:?}; report: {}",
        observed.report
    );
}
