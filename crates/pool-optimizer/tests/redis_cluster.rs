//! `RedisManager` on a Redis Cluster and its pub/sub connection, against private servers
//! (a three-master `test_support::RedisCluster`, a `test_support::RedisServer`): the pool
//! reaches all three masters through both URL forms, pipelines on one hash tag work, the
//! `PING` probe passes, a message published through a pooled connection reaches a
//! `pubsub()` subscriber, and bad URLs are refused without showing their password.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use redis::aio::PubSub;
use redis::AsyncCommands;
use resync_pool_optimizer::{Error, MonitoredPool, PoolConfig, RedisConnection, RedisManager};
use resync_resource_manager::ResourceTracker;
use test_support::{RedisCluster, RedisServer, RefusedPort};

/// Generous bound for anything on a loaded machine.
const BOUND: Duration = Duration::from_secs(60);
/// The pub/sub connect timeout of the tests.
const PUBSUB_CONNECT: Duration = Duration::from_millis(500);

async fn start_cluster() -> RedisCluster {
    tokio::task::spawn_blocking(RedisCluster::start)
        .await
        .expect("joins")
        .expect("the cluster forms")
}

async fn start_server() -> RedisServer {
    tokio::task::spawn_blocking(RedisServer::start)
        .await
        .expect("joins")
        .expect("redis-server starts")
}

fn pool(name: &str, manager: RedisManager) -> MonitoredPool<RedisManager> {
    let config = PoolConfig {
        min_size: 0,
        max_size: 2,
        acquire_timeout: Some(BOUND),
        ..PoolConfig::redis()
    };
    MonitoredPool::new(name, config, manager, &ResourceTracker::new()).expect("valid config")
}

/// `redis://…` as `redis+cluster://…`.
fn cluster_scheme(url: &str) -> String {
    url.replacen("redis://", "redis+cluster://", 1)
}

/// A plain (not cluster) connection to one node.
async fn node_connection(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .expect("a node URL")
        .get_multiplexed_async_connection()
        .await
        .expect("the node accepts a connection")
}

/// Waits, bounded, for the next message on `pubsub` and returns its channel and payload.
async fn next_message(pubsub: &mut PubSub) -> (String, String) {
    let message = tokio::time::timeout(BOUND, pubsub.on_message().next())
        .await
        .expect("a message within the bound")
        .expect("the subscription is still open");
    let payload: String = message.get_payload().expect("a text payload");
    (message.get_channel_name().to_owned(), payload)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_over_either_cluster_url_form_reaches_all_three_masters() {
    let cluster = start_cluster().await;
    let urls = cluster.urls();
    let forms = [
        ("comma", urls.join(",")),
        ("cluster scheme", cluster_scheme(&cluster.url())),
    ];
    for (form, url) in forms {
        let manager = RedisManager::new(&url, Duration::from_secs(10), None).expect("valid url");
        assert!(manager.is_cluster(), "{form}: {url}");
        let pool = pool(&format!("redis-cluster-{form}"), manager);
        let mut conn = tokio::time::timeout(BOUND, pool.get())
            .await
            .expect("bounded")
            .expect("get");
        assert!(
            matches!(*conn, RedisConnection::Cluster(_)),
            "{form}: {:?}",
            *conn
        );

        // `{a}`, `{b}` and `{c}` hash to one slot on each master.
        let keys = [
            format!("{{a}}:{form}"),
            format!("{{b}}:{form}"),
            format!("{{c}}:{form}"),
        ];
        let mut owners = BTreeSet::new();
        for key in &keys {
            let () = redis::cmd("SET")
                .arg(key)
                .arg(format!("value of {key}"))
                .query_async(&mut *conn)
                .await
                .expect("SET");
            owners.insert(RedisCluster::node_for_slot(RedisCluster::key_slot(
                key.as_bytes(),
            )));
        }
        assert_eq!(owners, BTreeSet::from([0, 1, 2]), "{form}: every master");
        for key in &keys {
            let value: Option<String> = redis::cmd("GET")
                .arg(key)
                .query_async(&mut *conn)
                .await
                .expect("GET");
            assert_eq!(value, Some(format!("value of {key}")), "{form}");
            // `AsyncCommands` works on the pooled connection too.
            let again: Option<String> = conn.get(key).await.expect("GET via AsyncCommands");
            assert_eq!(again, value, "{form}");
            // The key really is on its owner: a plain connection to that node reads it.
            let owner = RedisCluster::node_for_slot(RedisCluster::key_slot(key.as_bytes()));
            let mut direct = node_connection(&urls[owner]).await;
            let stored: Option<String> = direct.get(key).await.expect("GET on the owner");
            assert_eq!(stored, value, "{form}: {key} on node {owner}");
        }

        // A pipeline whose keys share one hash tag goes to one master as one round trip.
        let (first, second) = (format!("{{tag}}:{form}:1"), format!("{{tag}}:{form}:2"));
        let (one, two): (String, i64) = redis::pipe()
            .cmd("SET")
            .arg(&first)
            .arg("one")
            .ignore()
            .cmd("INCRBY")
            .arg(&second)
            .arg(2)
            .ignore()
            .cmd("GET")
            .arg(&first)
            .cmd("GET")
            .arg(&second)
            .query_async(&mut *conn)
            .await
            .expect("a one-slot pipeline");
        assert_eq!((one.as_str(), two), ("one", 2), "{form}");
        // An atomic one too (MULTI / EXEC on the same master).
        let (counted,): (i64,) = redis::pipe()
            .atomic()
            .cmd("INCRBY")
            .arg(&second)
            .arg(3)
            .query_async(&mut *conn)
            .await
            .expect("a one-slot transaction");
        assert_eq!(counted, 5, "{form}");
        // Keys in different slots cannot share a pipeline on a cluster.
        let crossed: Result<(Option<String>, Option<String>), _> = redis::pipe()
            .cmd("GET")
            .arg(&keys[0])
            .cmd("GET")
            .arg(&keys[1])
            .query_async(&mut *conn)
            .await;
        assert!(crossed.is_err(), "{form}: {crossed:?}");
        drop(conn);

        let checked = tokio::time::timeout(BOUND, pool.check_health())
            .await
            .expect("bounded");
        assert!(checked.is_ok(), "{form}: PING probe: {checked:?}");
        assert_eq!(pool.metrics().connect_failures, 0, "{form}");
    }
    drop(cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_response_timeout_is_honoured_on_a_cluster() {
    let cluster = start_cluster().await;
    let response_timeout = Duration::from_millis(300);
    let manager =
        RedisManager::new(&cluster_scheme(&cluster.url()), response_timeout, None).expect("url");
    let pool = pool("redis-cluster-slow", manager);
    let mut conn = tokio::time::timeout(BOUND, pool.get())
        .await
        .expect("bounded")
        .expect("get");
    // BLPOP with timeout 0 blocks on the server forever: only the client's timeout ends it.
    let started = Instant::now();
    let result: Result<Option<(String, String)>, redis::RedisError> = tokio::time::timeout(
        BOUND,
        redis::cmd("BLPOP")
            .arg("{a}:empty")
            .arg(0)
            .query_async(&mut *conn),
    )
    .await
    .expect("the response timeout ended the call, not the test's bound");
    match result {
        Err(error) => assert!(error.is_timeout(), "expected a timeout, got {error}"),
        Ok(reply) => panic!("BLPOP on an empty key answered {reply:?}"),
    }
    assert!(
        started.elapsed() >= response_timeout,
        "{:?}",
        started.elapsed()
    );
    conn.report_error();
    drop(cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_published_through_the_pool_reaches_the_subscriber_of_a_single_server() {
    let server = start_server().await;
    let manager = RedisManager::new(&server.url(), Duration::from_secs(10), None).expect("url");
    assert!(!manager.is_cluster());
    let mut pubsub = tokio::time::timeout(BOUND, manager.pubsub(PUBSUB_CONNECT))
        .await
        .expect("bounded")
        .expect("pub/sub connects");
    pubsub.subscribe("invalidations").await.expect("SUBSCRIBE");

    let pool = pool("redis-pubsub", manager);
    let mut conn = pool.get().await.expect("get");
    assert!(matches!(*conn, RedisConnection::Single(_)), "{:?}", *conn);
    let receivers: i64 = redis::cmd("PUBLISH")
        .arg("invalidations")
        .arg("key-1")
        .query_async(&mut *conn)
        .await
        .expect("PUBLISH");
    assert_eq!(
        receivers, 1,
        "the subscription was confirmed before PUBLISH"
    );
    assert_eq!(
        next_message(&mut pubsub).await,
        ("invalidations".to_owned(), "key-1".to_owned())
    );
    drop(conn);
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_published_anywhere_in_the_cluster_reaches_the_subscriber() {
    let cluster = start_cluster().await;
    let urls = cluster.urls();
    for (form, url) in [
        ("comma", urls.join(",")),
        ("cluster scheme", cluster_scheme(&urls[1])),
    ] {
        let manager = RedisManager::new(&url, Duration::from_secs(10), None).expect("url");
        let mut pubsub = tokio::time::timeout(BOUND, manager.pubsub(PUBSUB_CONNECT))
            .await
            .expect("bounded")
            .expect("pub/sub connects");
        let channel = format!("invalidations-{}", form.replace(' ', "-"));
        pubsub.subscribe(&channel).await.expect("SUBSCRIBE");

        // Through the pool: the cluster connection sends PUBLISH to some node.
        let pool = pool(&format!("redis-cluster-pubsub-{form}"), manager);
        let mut conn = pool.get().await.expect("get");
        for n in 0..3 {
            let _: i64 = redis::cmd("PUBLISH")
                .arg(&channel)
                .arg(format!("pool-{n}"))
                .query_async(&mut *conn)
                .await
                .expect("PUBLISH through the pool");
            assert_eq!(
                next_message(&mut pubsub).await,
                (channel.clone(), format!("pool-{n}")),
                "{form}"
            );
        }
        // Straight to each master: the cluster bus carries every PUBLISH to every node.
        for (index, node) in urls.iter().enumerate() {
            let mut direct = node_connection(node).await;
            let _: i64 = direct
                .publish(&channel, format!("node-{index}"))
                .await
                .expect("PUBLISH on a node");
            assert_eq!(
                next_message(&mut pubsub).await,
                (channel.clone(), format!("node-{index}")),
                "{form}"
            );
        }
    }
    drop(cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_skips_seeds_that_refuse_or_hang_each_within_the_connect_timeout() {
    let cluster = start_cluster().await;
    let refused = RefusedPort::reserve().expect("a refused port");
    // Accepts TCP (the kernel completes the handshake) but never answers.
    let silent = TcpListener::bind(("127.0.0.1", 0)).expect("a silent listener");
    let silent_url = format!(
        "redis://127.0.0.1:{}/",
        silent.local_addr().expect("bound").port()
    );
    let refused_url = format!("redis://127.0.0.1:{}/", refused.port());

    // Seeds that fail first; the real node last.
    let url = format!("{silent_url},{refused_url},{}", cluster.urls()[2]);
    let manager = RedisManager::new(&url, Duration::from_secs(10), None).expect("url");
    let started = Instant::now();
    let mut pubsub = tokio::time::timeout(BOUND, manager.pubsub(PUBSUB_CONNECT))
        .await
        .expect("bounded")
        .expect("the third seed accepts");
    let took = started.elapsed();
    assert!(
        took >= PUBSUB_CONNECT,
        "the silent seed was waited for: {took:?}"
    );
    assert!(took < BOUND, "{took:?}");
    pubsub.subscribe("after-fallback").await.expect("SUBSCRIBE");
    let mut direct = node_connection(&cluster.urls()[0]).await;
    let _: i64 = direct
        .publish("after-fallback", "hello")
        .await
        .expect("PUBLISH");
    assert_eq!(
        next_message(&mut pubsub).await,
        ("after-fallback".to_owned(), "hello".to_owned())
    );

    // No seed accepts: one error naming each seed.
    let manager =
        RedisManager::new(&format!("{silent_url},{refused_url}"), BOUND, None).expect("url");
    let Err(error) = tokio::time::timeout(BOUND, manager.pubsub(PUBSUB_CONNECT))
        .await
        .expect("bounded")
    else {
        panic!("no seed accepts, yet pub/sub connected");
    };
    let text = error.to_string();
    assert!(
        text.contains(&silent_url) && text.contains(&refused_url),
        "{text}"
    );
    assert!(text.contains("timed out"), "{text}");

    // A single server that hangs: a timeout error.
    let manager = RedisManager::new(&silent_url, BOUND, None).expect("url");
    let Err(error) = tokio::time::timeout(BOUND, manager.pubsub(PUBSUB_CONNECT))
        .await
        .expect("bounded")
    else {
        panic!("the server never answers, yet pub/sub connected");
    };
    assert!(error.is_timeout(), "{error}");
    drop((silent, refused, cluster));
}

#[test]
fn bad_cluster_urls_are_invalid_urls_without_their_password() {
    for url in [
        "redis://:hunter2@127.0.0.1:7000,,redis://:hunter2@127.0.0.1:7001",
        "redis://:hunter2@127.0.0.1:7000,rediss://:hunter2@127.0.0.1:7001",
        "redis://:hunter2@127.0.0.1:7000,redis://:other@127.0.0.1:7001",
        "redis://:hunter2@127.0.0.1:7000,127.0.0.1:7001",
        "ftp+cluster://:hunter2@127.0.0.1:7000",
        "",
    ] {
        match RedisManager::new(url, Duration::from_secs(1), None) {
            Err(Error::InvalidUrl { url: shown, reason }) => {
                assert!(!shown.contains("hunter2"), "{shown}");
                assert!(!reason.contains("hunter2"), "{reason}");
                if !url.is_empty() {
                    assert!(shown.contains("127.0.0.1:7000"), "{shown}");
                }
            }
            other => panic!("{url:?}: {other:?}"),
        }
    }
}

#[test]
fn a_ca_file_with_a_plain_cluster_url_is_refused() {
    let test_ca = test_support::TestCa::new().expect("a test CA");
    let result = RedisManager::new(
        "redis+cluster://127.0.0.1:7000",
        Duration::from_secs(1),
        Some(test_ca.ca_file()),
    );
    match result {
        Err(Error::InvalidUrl { reason, .. }) => assert!(reason.contains("rediss"), "{reason}"),
        other => panic!("{other:?}"),
    }
    let tls = RedisManager::new(
        "rediss+cluster://127.0.0.1:7000,rediss://127.0.0.1:7001",
        Duration::from_secs(1),
        Some(test_ca.ca_file()),
    )
    .expect("rediss seeds with a CA file");
    assert!(tls.is_cluster());
}
