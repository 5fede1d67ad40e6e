//! TLS to Postgres (`ssl = on`, `sslmode=require`) and Redis (`rediss://`) with a test CA.

use std::time::Duration;

use resync_pool_optimizer::{Error, MonitoredPool, PoolConfig, PostgresManager, RedisManager};
use resync_resource_manager::ResourceTracker;
use test_support::TestCa;

const BOUND: Duration = Duration::from_secs(60);

fn config(defaults: &PoolConfig) -> PoolConfig {
    PoolConfig {
        min_size: 0,
        max_size: 2,
        connect_timeout: Duration::from_secs(20),
        ..defaults.clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_with_sslmode_require_verifies_against_the_ca_file() {
    let ca = TestCa::new().expect("a test CA");
    let (cert, key) = (ca.cert_pem().to_owned(), ca.key_pem().to_owned());
    let server = tokio::task::spawn_blocking(move || {
        test_support::PostgresServer::builder()
            .tls(&cert, &key)
            .start()
    })
    .await
    .expect("joins")
    .expect("private postgres with ssl starts");
    let url = format!("{}?sslmode=require", server.url());

    let manager = PostgresManager::new(&url, Some(ca.ca_file())).expect("manager");
    let pool = MonitoredPool::new(
        "pg-tls",
        config(&PoolConfig::database()),
        manager,
        &ResourceTracker::new(),
    )
    .expect("valid");
    let conn = tokio::time::timeout(BOUND, pool.get())
        .await
        .expect("bounded")
        .expect("get");
    let row = conn
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .expect("query");
    assert!(row.get::<_, bool>(0), "the connection is encrypted");
    drop(conn);

    // Without the CA the server's certificate is not trusted: connects fail, fast.
    match PostgresManager::new(&url, None) {
        // A machine without system roots refuses the CA-less configuration up front.
        Err(error) => assert!(matches!(error, Error::Tls(_)), "{error}"),
        Ok(manager) => {
            let pool = MonitoredPool::new(
                "pg-untrusted",
                config(&PoolConfig::database()),
                manager,
                &ResourceTracker::new(),
            )
            .expect("valid");
            let result = tokio::time::timeout(BOUND, pool.get())
                .await
                .expect("bounded");
            assert!(
                matches!(result, Err(Error::Unavailable { .. })),
                "{result:?}"
            );
        }
    }
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_with_a_ca_file_round_trips() {
    let test_ca = TestCa::new().expect("a test CA");
    let (cert, key, ca) = (
        test_ca.cert_pem().to_owned(),
        test_ca.key_pem().to_owned(),
        test_ca.ca_pem().to_owned(),
    );
    let server = tokio::task::spawn_blocking(move || {
        test_support::RedisServer::builder()
            .tls(&cert, &key, &ca)
            .start()
    })
    .await
    .expect("joins")
    .expect("private redis with tls starts");
    assert!(server.url().starts_with("rediss://"));
    let manager = RedisManager::new(
        &server.url(),
        Duration::from_secs(10),
        Some(test_ca.ca_file()),
    )
    .expect("manager");
    let pool = MonitoredPool::new(
        "redis-tls",
        config(&PoolConfig::redis()),
        manager,
        &ResourceTracker::new(),
    )
    .expect("valid");
    let checked = tokio::time::timeout(BOUND, pool.check_health())
        .await
        .expect("bounded");
    assert!(checked.is_ok(), "PING over TLS: {checked:?}");
    assert_eq!(pool.metrics().connect_failures, 0);
    drop(server);
}
