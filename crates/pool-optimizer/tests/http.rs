//! The HTTP pool against a real hyper server on loopback (plain and HTTPS with a test CA).

mod common;

use std::time::{Duration, Instant};

use common::answered_path;
use common::wait::wait_for_status;
use resync_perf_core::HealthStatus;
use resync_pool_optimizer::{Error, HttpManager, MonitoredPool, PoolConfig, PoolManager};
use resync_resource_manager::ResourceTracker;
use test_support::{Reply, TestCa, TestUpstream};

const BOUND: Duration = Duration::from_secs(60);

/// The upstream the tests talk to: `/close` answers with `Connection: close`, `/endless` with
/// a body that sends one chunk and never ends, anything else with the JSON object naming the
/// request.
async fn upstream(ca: Option<&TestCa>) -> TestUpstream {
    let upstream = match ca {
        None => TestUpstream::start().await,
        Some(ca) => TestUpstream::start_tls(ca).await,
    }
    .expect("the upstream starts");
    upstream.set_reply("/close", Reply::new().close_connection(true));
    upstream.set_reply("/endless", Reply::new().endless());
    upstream
}

fn pool(base_url: &str, ca_file: Option<&std::path::Path>) -> MonitoredPool<HttpManager> {
    let manager = HttpManager::new(base_url, ca_file)
        .expect("manager")
        .with_health_path("/health");
    let config = PoolConfig {
        min_size: 0,
        max_size: 4,
        connect_timeout: Duration::from_secs(5),
        acquire_timeout: Some(Duration::from_secs(5)),
        health_check_interval: Duration::from_millis(200),
        ..PoolConfig::http()
    };
    MonitoredPool::new("tws", config, manager, &ResourceTracker::new()).expect("valid")
}

/// One GET the way a gateway does it: a request failing on a stale keep-alive connection is
/// reported and retried once on a fresh one.
async fn get_body(pool: &MonitoredPool<HttpManager>, path: &str) -> Result<String, Error> {
    for attempt in 0..2 {
        let mut conn = tokio::time::timeout(BOUND, pool.get())
            .await
            .expect("bounded")?;
        match conn.get(path).await {
            Ok(response) => return Ok(String::from_utf8_lossy(response.body()).into_owned()),
            Err(error) => {
                conn.report_error();
                if attempt == 1 {
                    return Err(error);
                }
            }
        }
    }
    unreachable!("the loop returns on its second attempt")
}

#[tokio::test]
async fn keep_alive_round_trips_with_the_host_header() {
    let server = upstream(None).await;
    let pool = pool(&format!("{}/api", server.url()), None);
    for i in 0..5 {
        let body = get_body(&pool, &format!("/items/{i}")).await.expect("get");
        assert_eq!(answered_path(&body), format!("/api/items/{i}"));
        let request = server.last_request().expect("logged");
        assert_eq!(
            request.header("host"),
            Some(server.addr().to_string().as_str())
        );
    }
    let metrics = pool.metrics();
    assert_eq!(metrics.acquires, 5);
    assert_eq!(
        metrics.created, 1,
        "one keep-alive connection serves sequential requests"
    );
    assert!(tokio::time::timeout(BOUND, pool.check_health())
        .await
        .expect("bounded")
        .is_ok());
}

#[tokio::test]
async fn a_connection_the_server_closes_is_replaced() {
    let server = upstream(None).await;
    let pool = pool(&server.url(), None);
    get_body(&pool, "/close")
        .await
        .expect("the closing response arrives");
    let body = get_body(&pool, "/after")
        .await
        .expect("a new connection serves the next request");
    assert_eq!(answered_path(&body), "/after");
    let metrics = pool.metrics();
    assert!(metrics.created >= 2, "{metrics:?}");
    assert!(metrics.closed_broken + metrics.closed_invalid + metrics.caller_errors >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_is_unavailable_then_healthy_on_the_same_pool() {
    let mut server = upstream(None).await;
    let pool = pool(&server.url(), None);
    let manager = PoolManager::default();
    manager.add(pool.clone()).expect("added");
    get_body(&pool, "/warm").await.expect("warm");

    server.stop().await;
    let started = Instant::now();
    loop {
        match get_body(&pool, "/down").await {
            Err(Error::Unavailable { .. }) => break,
            other => assert!(started.elapsed() < BOUND, "never unavailable: {other:?}"),
        }
    }
    wait_for_status(&manager, "tws", HealthStatus::Critical, "after the stop").await;

    server
        .restart()
        .await
        .expect("listens again on the same port");
    wait_for_status(&manager, "tws", HealthStatus::Healthy, "after the restart").await;
    let body = get_body(&pool, "/back")
        .await
        .expect("the same pool reconnects");
    assert_eq!(answered_path(&body), "/back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_upstream_is_verified_against_the_ca_file() {
    let ca = TestCa::new().expect("a test CA");
    let server = upstream(Some(&ca)).await;
    let url = server.url();
    assert_eq!(url, format!("https://localhost:{}", server.addr().port()));
    let pool = pool(&url, Some(ca.ca_file()));
    let body = get_body(&pool, "/secure").await.expect("https get");
    assert_eq!(answered_path(&body), "/secure");
    let host = format!("localhost:{}", server.addr().port());
    assert_eq!(
        server.last_request().expect("logged").header("host"),
        Some(host.as_str())
    );

    // Without the test CA the certificate is not trusted (or, with no system roots at all,
    // the configuration is refused up front).
    match HttpManager::new(&url, None) {
        Err(error) => assert!(matches!(error, Error::Tls(_)), "{error}"),
        Ok(manager) => {
            let untrusted = MonitoredPool::new(
                "untrusted",
                PoolConfig {
                    min_size: 0,
                    ..PoolConfig::http()
                },
                manager,
                &ResourceTracker::new(),
            )
            .expect("valid");
            let result = tokio::time::timeout(BOUND, untrusted.get())
                .await
                .expect("bounded");
            assert!(
                matches!(result, Err(Error::Unavailable { .. })),
                "{result:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_returned_mid_response_fails_its_next_request_in_bounded_time() {
    let server = upstream(None).await;
    let manager = HttpManager::new(&server.url(), None)
        .expect("manager")
        .with_ready_timeout(Duration::from_millis(300));
    let config = PoolConfig {
        min_size: 0,
        max_size: 1,
        acquire_timeout: Some(BOUND),
        ..PoolConfig::http()
    };
    let pool =
        MonitoredPool::new("streaming", config, manager, &ResourceTracker::new()).expect("valid");
    let mut conn = pool.get().await.expect("get");
    let request = conn
        .request(hyper::Method::GET, "/endless")
        .body(resync_pool_optimizer::empty_body())
        .expect("request");
    // The caller keeps the response (its body still streaming) but returns the connection.
    let response = conn.send(request).await.expect("headers arrive");
    drop(conn);
    // The checkout's synchronous check passes (hyper has not closed it), so the next request
    // finds it busy: `send` gives up within the ready timeout instead of waiting without end,
    // and the retry on the pool gets a new connection.
    let body = tokio::time::timeout(BOUND, get_body(&pool, "/after"))
        .await
        .expect("bounded")
        .expect("a fresh connection serves the request");
    assert_eq!(answered_path(&body), "/after");
    let metrics = pool.metrics();
    assert_eq!(metrics.caller_errors, 1, "{metrics:?}");
    assert_eq!(metrics.validations_run, 0);
    assert_eq!(metrics.validation_failures, 0);
    assert_eq!(metrics.created, 2);
    drop(response);
}
