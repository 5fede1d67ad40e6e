//! Two real `resync` processes sharing a Redis second level (`GATEWAY_L2`), on a single
//! Redis and on a local 3-master Redis Cluster, in front of one test upstream: a response
//! fetched through one instance is a hit on the other; concurrent misses over both make one
//! upstream request; a write through one invalidates the other; Redis failing never fails a
//! request and a reconnect drops L1; an entry of another encoding is a miss.

#![allow(clippy::unwrap_used)] // reason: a test; a failed step should panic with its error.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::{http_exchange, http_get, wait_for, Running};
use resync_server::gateway::l2::{L2Keys, MAGIC, VERSION};
use test_support::{RedisCluster, RedisServer, Reply, TestUpstream};

/// The test upstream, on a runtime of its own so the test's blocking HTTP calls never stall
/// it.
struct Upstream {
    server: TestUpstream,
    /// Runs the upstream; kept alive with it.
    _runtime: tokio::runtime::Runtime,
}

impl Upstream {
    fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let server = runtime.block_on(TestUpstream::start()).unwrap();
        Self {
            server,
            _runtime: runtime,
        }
    }
}

/// Two instances A and B over one Redis URL.
struct Pair {
    a: Running,
    b: Running,
    _dir: tempfile::TempDir,
}

fn envs(upstream: &str, redis_url: &str) -> Vec<(String, String)> {
    [
        ("RESYNC_TWS_BASE_URL", upstream),
        ("RESYNC_REDIS_URL", redis_url),
        ("RESYNC_GATEWAY_L2", "true"),
        ("RESYNC_GATEWAY_L2_LEASE_MS", "5000"),
        ("RESYNC_REDIS_RESPONSE_TIMEOUT_MS", "500"),
        ("RESYNC_REDIS_POOL_MIN_SIZE", "1"),
        ("RESYNC_REDIS_POOL_CONNECT_TIMEOUT", "2"),
        ("RESYNC_HTTP_POOL_MIN_SIZE", "1"),
        ("RESYNC_TWS_READ_TIMEOUT", "10"),
        ("RESYNC_PERF_SAMPLE_INTERVAL", "1"),
        ("RESYNC_PERF_HEALTH_WINDOW_SECS", "2"),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value.to_owned()))
    .collect()
}

impl Pair {
    /// Starts A and B and waits until both use L2.
    fn start(upstream: &Upstream, redis_url: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let envs = envs(&upstream.server.url(), redis_url);
        let a = Running::start(dir.path(), &envs);
        let b = Running::start(dir.path(), &envs);
        for instance in [&a, &b] {
            wait_for("L2 in use", || {
                (metric(instance.addr, "resync_gateway_l2_available") == 1.0).then_some(())
            });
        }
        Self { a, b, _dir: dir }
    }
}

/// The sample `name_and_labels` in the instance's `/metrics` (0 when absent).
fn metric(addr: SocketAddr, name_and_labels: &str) -> f64 {
    let (status, body) = http_get(addr, "/metrics", None);
    assert_eq!(status, 200);
    let text = body.as_str().unwrap_or_default().to_owned();
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            (series == name_and_labels).then(|| value.parse().ok())?
        })
        .unwrap_or(0.0)
}

fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    http_exchange(addr, "GET", path, b"")
}

/// The status of the component `gateway_l2` in the instance's health.
fn l2_health(addr: SocketAddr) -> String {
    let (_, body) = http_get(addr, "/api/performance/health", None);
    body["components"]["gateway_l2"]["status"]
        .as_str()
        .unwrap_or("absent")
        .to_owned()
}

fn one_fetch_serves_both_instances(redis_url: &str) {
    let upstream = Upstream::start();
    let pair = Pair::start(&upstream, redis_url);

    assert_eq!(get(pair.a.addr, "/tws/plan/1"), (200, "MISS".to_owned()));
    assert_eq!(get(pair.b.addr, "/tws/plan/1"), (200, "HIT".to_owned()));
    // Now in B's L1 too.
    assert_eq!(get(pair.b.addr, "/tws/plan/1"), (200, "HIT".to_owned()));
    assert_eq!(upstream.server.requests_for("/plan/1"), 1);
    assert_eq!(
        metric(
            pair.b.addr,
            r#"resync_gateway_l2_lookups_total{result="hit"}"#
        ),
        1.0
    );
    assert_eq!(
        metric(
            pair.a.addr,
            r#"resync_gateway_l2_stores_total{result="stored"}"#
        ),
        1.0
    );
}

fn concurrent_misses_over_both_instances_fetch_once(redis_url: &str) {
    let upstream = Upstream::start();
    // Slow enough that every request arrives while the first fetch is under way.
    upstream
        .server
        .set_reply("/slow", Reply::new().latency(Duration::from_millis(500)));
    let pair = Pair::start(&upstream, redis_url);
    let addrs = [pair.a.addr, pair.b.addr];
    let barrier = Arc::new(std::sync::Barrier::new(50));
    let answers: Vec<(u16, String)> = (0..50)
        .map(|i| {
            let barrier = Arc::clone(&barrier);
            let addr = addrs[i % 2];
            std::thread::spawn(move || {
                barrier.wait();
                get(addr, "/tws/slow/item")
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|thread| thread.join().unwrap())
        .collect();
    assert!(
        answers.iter().all(|(status, _)| *status == 200),
        "{answers:?}"
    );
    assert_eq!(upstream.server.requests_for("/slow/item"), 1, "{answers:?}");
    let leases = |addr, outcome: &str| {
        metric(
            addr,
            &format!(r#"resync_gateway_l2_leases_total{{outcome="{outcome}"}}"#),
        )
    };
    let won = leases(pair.a.addr, "won") + leases(pair.b.addr, "won");
    let waited = leases(pair.a.addr, "waited") + leases(pair.b.addr, "waited");
    assert_eq!(won, 1.0);
    // The other instance either waited on the lease or found the entry already stored.
    let l2_hits = metric(
        pair.a.addr,
        r#"resync_gateway_l2_lookups_total{result="hit"}"#,
    ) + metric(
        pair.b.addr,
        r#"resync_gateway_l2_lookups_total{result="hit"}"#,
    );
    assert_eq!(waited + l2_hits, 1.0);
}

fn a_write_through_one_instance_invalidates_the_other(redis_url: &str) {
    let upstream = Upstream::start();
    let pair = Pair::start(&upstream, redis_url);
    assert_eq!(get(pair.a.addr, "/tws/doc?v=1").1, "MISS");
    assert_eq!(get(pair.a.addr, "/tws/doc?v=1").1, "HIT");
    assert_eq!(get(pair.b.addr, "/tws/doc?v=1").1, "HIT");

    let (status, _) = http_exchange(pair.b.addr, "POST", "/tws/doc", b"{}");
    assert_eq!(status, 200);
    wait_for("A to receive the invalidation", || {
        (metric(
            pair.a.addr,
            r#"resync_gateway_l2_invalidations_total{direction="received"}"#,
        ) >= 1.0)
            .then_some(())
    });
    assert_eq!(get(pair.a.addr, "/tws/doc?v=1").1, "MISS");
    // B's own L1 was invalidated by its write, and L2 by the new generation: B gets A's new
    // fetch from L2.
    assert_eq!(get(pair.b.addr, "/tws/doc?v=1").1, "HIT");
    let gets = upstream
        .server
        .request_log()
        .iter()
        .filter(|request| request.method == "GET" && request.path_and_query == "/doc?v=1")
        .count();
    assert_eq!(gets, 2);
    assert_eq!(
        metric(
            pair.b.addr,
            r#"resync_gateway_l2_invalidations_total{direction="sent"}"#
        ),
        1.0
    );
    // The write's answer, read whole while B told Redis, returned its connection cleanly.
    assert_eq!(
        metric(
            pair.b.addr,
            r#"resync_pool_errors_total{pool="http",kind="caller"}"#
        ),
        0.0
    );
}

#[test]
fn single_redis_one_fetch_serves_both_instances() {
    let redis = RedisServer::start().unwrap();
    one_fetch_serves_both_instances(&redis.url());
}

#[test]
fn single_redis_concurrent_misses_over_both_instances_fetch_once() {
    let redis = RedisServer::start().unwrap();
    concurrent_misses_over_both_instances_fetch_once(&redis.url());
}

#[test]
fn single_redis_a_write_through_one_instance_invalidates_the_other() {
    let redis = RedisServer::start().unwrap();
    a_write_through_one_instance_invalidates_the_other(&redis.url());
}

#[test]
fn cluster_one_fetch_concurrent_misses_and_invalidation() {
    let cluster = RedisCluster::start().unwrap();
    let url = cluster.urls().join(",");
    one_fetch_serves_both_instances(&url);
    concurrent_misses_over_both_instances_fetch_once(&url);
    a_write_through_one_instance_invalidates_the_other(&url);
}

#[test]
fn an_entry_of_another_encoding_is_a_miss_then_replaced() {
    let redis = RedisServer::start().unwrap();
    let upstream = Upstream::start();
    let pair = Pair::start(&upstream, &redis.url());
    let keys = L2Keys::new("/old", false, "/old", None);
    let mut older = MAGIC.to_vec();
    older.push(VERSION - 1);
    older.extend_from_slice(b"an encoding this build does not read");
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_connection().unwrap();
    let _: () = redis::cmd("SET")
        .arg(&keys.entry)
        .arg(older)
        .arg("PX")
        .arg(60_000)
        .query(&mut conn)
        .unwrap();

    assert_eq!(get(pair.a.addr, "/tws/old"), (200, "MISS".to_owned()));
    assert_eq!(
        metric(
            pair.a.addr,
            r#"resync_gateway_l2_lookups_total{result="other_version"}"#
        ),
        1.0
    );
    assert_eq!(
        metric(
            pair.a.addr,
            r#"resync_gateway_l2_errors_total{op="lookup"}"#
        ),
        0.0
    );
    // A stored the current encoding over it.
    assert_eq!(get(pair.b.addr, "/tws/old"), (200, "HIT".to_owned()));
    let stored: Vec<u8> = redis::cmd("GET").arg(&keys.entry).query(&mut conn).unwrap();
    assert_eq!(stored[MAGIC.len()], VERSION);
}

#[test]
fn redis_failing_never_fails_a_request_and_a_reconnect_drops_l1() {
    let mut redis = RedisServer::start().unwrap();
    let upstream = Upstream::start();
    let pair = Pair::start(&upstream, &redis.url());
    let (a, b) = (pair.a.addr, pair.b.addr);
    assert_eq!(get(a, "/tws/doc").1, "MISS");
    assert_eq!(get(a, "/tws/doc").1, "HIT");

    // Load over both instances for the whole outage: every answer must be a 200.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut statuses = Vec::new();
            let mut i = 0_u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let addr = if i % 2 == 0 { a } else { b };
                statuses.push(get(addr, &format!("/tws/load/{}", i % 50)).0);
                i += 1;
            }
            statuses
        })
    };
    wait_for("some load", || {
        (upstream.server.requests() > 10).then_some(())
    });
    redis.stop().unwrap();
    wait_for("A degraded", || (l2_health(a) == "degraded").then_some(()));
    wait_for("B degraded", || (l2_health(b) == "degraded").then_some(()));
    let (_, health) = http_get(a, "/api/performance/health", None);
    assert!(
        health["components"]["gateway_l2"]
            .to_string()
            .to_lowercase()
            .contains("redis"),
        "the reason names Redis: {health}"
    );

    // Meanwhile a write through B cannot reach A: A still holds /doc in L1.
    assert_eq!(http_exchange(b, "POST", "/tws/doc", b"{}").0, 200);
    let fetched_before = upstream.server.requests_for("/doc");

    redis.start_again().unwrap();
    wait_for("A healthy again", || {
        (l2_health(a) == "healthy").then_some(())
    });
    wait_for("B healthy again", || {
        (l2_health(b) == "healthy").then_some(())
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let statuses = load.join().unwrap();
    assert!(statuses.len() > 10);
    assert!(
        statuses.iter().all(|status| *status == 200),
        "no error during the outage: {statuses:?}"
    );
    assert!(metric(a, "resync_gateway_l1_flushes_total") >= 1.0);
    // The entry A held across the outage is not served: A fetches it anew.
    assert_eq!(get(a, "/tws/doc").1, "MISS");
    assert_eq!(upstream.server.requests_for("/doc"), fetched_before + 1);
}

#[test]
fn a_write_while_redis_hangs_is_invalidated_everywhere_once_it_answers() {
    let redis = RedisServer::start().unwrap();
    let upstream = Upstream::start();
    let pair = Pair::start(&upstream, &redis.url());
    let (a, b) = (pair.a.addr, pair.b.addr);
    assert_eq!(get(a, "/tws/report").1, "MISS");
    assert_eq!(get(a, "/tws/report").1, "HIT");

    // Redis hangs (SIGSTOP): the subscriber connections stay open, nothing is published.
    redis.pause().unwrap();
    assert_eq!(http_exchange(b, "POST", "/tws/report", b"{}").0, 200);
    // A still answers from its L1, as it must while it cannot know better.
    assert_eq!(get(a, "/tws/report").1, "HIT");
    redis.resume().unwrap();

    // Once Redis answers B again, B invalidates the path it wrote and publishes it.
    wait_for("A to receive the replayed invalidation", || {
        (metric(
            a,
            r#"resync_gateway_l2_invalidations_total{direction="received"}"#,
        ) >= 1.0)
            .then_some(())
    });
    assert_eq!(get(a, "/tws/report").1, "MISS");
}
