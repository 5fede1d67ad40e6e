//! Throwaway Postgres, Redis (single and cluster) and network fixtures for Resync's tests.
//!
//! Two ways to reach a real Postgres or Redis server:
//!
//! * **Shared servers**, started once per CI run by `cargo xtask services up` (or by
//!   `cargo xtask ci`) and found through [`DATABASE_URL_ENV`] and [`REDIS_URL_ENV`]. Use
//!   [`shared_database_url`] / [`shared_redis_url`]: when the variable is missing they panic
//!   with a message that says how to start the services, so a test that needs a server never
//!   passes silently without one.
//! * **Private servers** for one test ([`PostgresServer`], [`RedisServer`]): a fresh instance
//!   on a free loopback port in a temporary directory, which a fault test may stop and restart
//!   on the same port, or pause and resume, without disturbing anybody else. Each runs in its
//!   own process group and is stopped when the value is dropped. Both are a
//!   [`ManagedServer`], which does the stopping, restarting and pausing once for both; their
//!   [`ServerKind`]s ([`Postgres`], [`Redis`]) say how one start goes.
//!
//! ```no_run
//! let mut redis = test_support::RedisServer::start().expect("redis-server starts");
//! println!("private redis at {}", redis.url());
//! redis.stop().expect("stops");
//! ```
//!
//! For code that may be given a Redis Cluster, [`RedisCluster`] starts three private
//! `redis-server` masters with `cluster-enabled yes`, on free loopback ports (and cluster bus
//! ports) in temporary directories of their own, joins them into one cluster with all 16384
//! slots shared between them, and waits until every node reports `cluster_state:ok`. Its
//! nodes may be stopped and started again, or paused, one at a time; [`RedisCluster::key_slot`]
//! and [`RedisCluster::node_for_slot`] say which master a key lands on.
//!
//! ```no_run
//! let cluster = test_support::RedisCluster::start().expect("the cluster forms");
//! println!("cluster nodes at {:?}", cluster.urls());
//! ```
//!
//! For HTTP, [`TestUpstream`] is a real hyper server on loopback (plain, or HTTPS with a
//! [`TestCa`]) whose answers a test sets per path prefix ([`Reply`]) or a load tool sets per
//! request through the query string, and which counts and logs what it received; the
//! `test-upstream` binary serves it on its own for load benchmarks.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use test_support::{Reply, TestUpstream};
//!
//! let upstream = TestUpstream::start().await.expect("upstream starts");
//! upstream.set_reply("/cached", Reply::new().max_age(60).body_bytes(1024));
//! println!("upstream at {}", upstream.url());
//! # }
//! ```
//!
//! This crate is not published; it is a dev-dependency of the workspace's crates and a
//! dependency of `xtask`.

mod net;
mod postgres;
mod process;
mod redis;
mod redis_cluster;
mod server;
mod tls;
pub mod upstream;

pub use net::{free_port, wait_for_tcp, RefusedPort};
pub use postgres::{Postgres, PostgresBuilder, PostgresServer};
pub use process::{DetachedService, ServiceProcess};
pub use redis::{Redis, RedisBuilder, RedisServer};
pub use redis_cluster::{RedisCluster, RedisClusterBuilder, RedisClusterNode};
pub use server::{ManagedServer, ServerKind};
pub use tls::TestCa;
pub use upstream::{RecordedRequest, Reply, TestUpstream, TestUpstreamBuilder};

/// Environment variable naming the shared Postgres server's URL.
pub const DATABASE_URL_ENV: &str = "RESYNC_TEST_DATABASE_URL";
/// Environment variable naming the shared Redis server's URL.
pub const REDIS_URL_ENV: &str = "RESYNC_TEST_REDIS_URL";

/// How long a fixture waits for a server to accept connections before giving up.
pub const STARTUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(90);

/// The shared Postgres URL from [`DATABASE_URL_ENV`].
///
/// # Panics
///
/// When the variable is unset or empty, with a message that says how to start the services.
#[must_use]
pub fn shared_database_url() -> String {
    shared_url(DATABASE_URL_ENV, "Postgres")
}

/// The shared Redis URL from [`REDIS_URL_ENV`].
///
/// # Panics
///
/// When the variable is unset or empty, with a message that says how to start the services.
#[must_use]
pub fn shared_redis_url() -> String {
    shared_url(REDIS_URL_ENV, "Redis")
}

fn shared_url(var: &str, what: &str) -> String {
    match std::env::var(var) {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!(
            "this test needs a real {what} server but {var} is not set: run the tests with \
             `cargo xtask ci` or `cargo xtask test`, or start the servers with \
             `eval $(cargo xtask services up)` first"
        ),
    }
}
