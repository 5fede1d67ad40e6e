//! Instrumented bb8 pools for Postgres, Redis and HTTP, with health checks and a
//! queueing-model sizing advisor.
//!
//! A [`MonitoredPool`] is one bb8 pool under a wrapper manager that times out and counts
//! every connect, skips the checkout round trip for connections used within the last 500 ms
//! (HikariCP's rule; an HTTP pool never makes one), and counts broken connections. Its
//! `get()` measures acquire latency, hold time and peak use, tracks every checkout with a
//! [`ResourceTracker`](resync_resource_manager::ResourceTracker) (so a connection held past
//! the leak threshold is a counted leak naming the line that took it), and tells
//! [`Error::Exhausted`] (every connection open and in use until the timeout) from
//! [`Error::Unavailable`] (no connection can be made: returned at once when a connect fails
//! and no connection is open, with the connect error; a merely busy pool keeps waiting).
//! `get_owned()` is the same checkout with a `'static` guard ([`OwnedPoolConnection`]) that
//! can outlive the caller (a response body streaming after its handler returned), and
//! `get_fresh_owned()` opens a new connection for a request to send again after a stale
//! keep-alive connection failed it ([`Error::is_stale_connection`]).
//!
//! Backends: [`PostgresManager`] (tokio-postgres, `sslmode=require` over rustls),
//! [`RedisManager`] (the redis crate's multiplexed connection with honoured connect and
//! response timeouts, `rediss://`, or a Redis Cluster named by comma-separated seeds or a
//! `redis+cluster://` URL; its connections are [`RedisConnection`]s, and
//! [`RedisManager::pubsub`] opens a pub/sub connection outside the pool), [`HttpManager`]
//! (hyper 1 HTTP/1 connections to one base URL, `https://` over rustls, streaming request
//! bodies, an optional response timeout) and [`FnManager`] for any resource made by a closure.
//! With the `bb8-redis` feature, bb8-redis's `RedisConnectionManager` is a [`HealthProbe`]
//! (`PING`) too, for code that already builds its pools on it; its timeouts are the redis
//! crate's fixed defaults (connect 1 s, 500 ms per command), where [`RedisManager`] sets them.
//!
//! [`PoolManager`] holds named pools, health-checks each in the background with a real round
//! trip, and turns their [`PoolMetrics`] into health verdicts and sizing advice
//! ([`advise`]) from an Erlang-C model of the observed load.
//!
//! # Example
//!
//! ```
//! use resync_pool_optimizer::{Error, FnManager, MonitoredPool, PoolConfig};
//! use resync_resource_manager::ResourceTracker;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Error> {
//! let tracker = ResourceTracker::new();
//! let manager = FnManager::new(|| async { Ok::<_, std::io::Error>(String::from("resource")) });
//! let config = PoolConfig { min_size: 0, max_size: 2, ..PoolConfig::default() };
//! let pool = MonitoredPool::new("strings", config, manager, &tracker)?;
//!
//! {
//!     let conn = pool.get().await?;
//!     assert_eq!(conn.as_str(), "resource");
//! } // returned to the pool here; hold time recorded
//!
//! let metrics = pool.metrics();
//! assert_eq!(metrics.acquires, 1);
//! assert_eq!(metrics.hold_time.count(), 1);
//! assert!(metrics.efficiency_score().is_some());
//! # Ok(()) }
//! ```

mod advisor;
mod backends;
mod clock;
mod config;
mod erlang;
mod error;
mod gate;
mod get;
mod guard;
mod health;
mod manager;
mod metrics;
mod pool;
mod probe;
mod stash;
mod stats;
mod tls;
mod watchdog;
mod wrapper;

pub use advisor::{
    advise, Sizing, GENEROUS_FACTOR, HEADROOM, MAX_GROWTH_FACTOR, MAX_WAIT_PROBABILITY,
    MIN_ACQUIRES, MIN_CONNECTS, NEAR_TIMEOUT,
};
pub use backends::generic::FnManager;
pub use backends::http::{empty_body, full_body, BoxError, HttpBody, HttpConnection, HttpManager};
pub use backends::postgres::PostgresManager;
pub use backends::redis::{RedisConnection, RedisManager};
pub use config::{ConfigProblem, PoolConfig};
pub use erlang::{erlang_c, erlang_c_size};
pub use error::{Error, SharedError};
pub use guard::{OwnedPoolConnection, PoolConnection};
pub use health::{evaluate_health, HealthCheckRecord, HealthThresholds, PoolHealth};
pub use manager::{PoolManager, PoolReport};
pub use metrics::{PoolMetrics, TARGET_UTILIZATION};
pub use pool::MonitoredPool;
pub use probe::HealthProbe;

/// The README's examples, compiled and run as doctests, so the README's code stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
