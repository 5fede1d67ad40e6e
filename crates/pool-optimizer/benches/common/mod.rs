//! What the pool benches share (each includes it with `mod common;`): the trivial connection,
//! the runtime, the two pools of it set up alike (bb8's default timeouts on both sides, so
//! that only the pool differs), a checkout written once for every pool, and the median of
//! the rounds.

#![allow(dead_code)] // reason: each bench binary uses a different part.

use std::future::Future;
use std::ops::Deref;
use std::time::Duration;

use resync_pool_optimizer::{MonitoredPool, PoolConfig, PoolConnection};

/// Worker threads of the benches' multi-thread runtimes (the machine's 2 cores).
pub(crate) const WORKERS: usize = 2;
/// Connections of the contended benches (the brief's peer setting: 16 connections, 32 tasks).
pub(crate) const CONTENDED_CONNS: u32 = 16;
/// Tasks checking out concurrently in the contended benches.
pub(crate) const CONTENDED_TASKS: u64 = 32;
/// bb8's default connection timeout, given to the monitored pool as its connect timeout.
pub(crate) const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);
/// bb8's default idle timeout, given to the monitored pool too.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// bb8's default lifetime, given to the monitored pool too.
pub(crate) const MAX_LIFETIME: Duration = Duration::from_secs(1800);

/// A connection that costs nothing to make, check or return.
#[derive(Debug)]
pub(crate) struct Trivial;

impl bb8::ManageConnection for Trivial {
    type Connection = ();
    type Error = std::io::Error;

    async fn connect(&self) -> Result<(), std::io::Error> {
        Ok(())
    }

    async fn is_valid(&self, _conn: &mut ()) -> Result<(), std::io::Error> {
        Ok(())
    }

    fn has_broken(&self, _conn: &mut ()) -> bool {
        false
    }
}

/// A multi-thread runtime of [`WORKERS`] worker threads.
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A bare bb8 pool of [`Trivial`]: `max_size`, `min_idle`, and bb8's defaults written out
/// (a check on every checkout, connection timeout 30 s, idle 10 min, lifetime 30 min).
pub(crate) async fn bare_pool(max_size: u32, min_idle: u32) -> bb8::Pool<Trivial> {
    bb8::Pool::builder()
        .max_size(max_size)
        .min_idle(Some(min_idle))
        .test_on_check_out(true)
        .connection_timeout(ACQUIRE_TIMEOUT)
        .idle_timeout(Some(IDLE_TIMEOUT))
        .max_lifetime(Some(MAX_LIFETIME))
        .build(Trivial)
        .await
        .expect("bb8 pool of a trivial manager")
}

/// The monitored pool's configuration beside [`bare_pool`]: `min_size..=max_size`, with the
/// same timeouts.
pub(crate) fn monitored_config(min_size: u32, max_size: u32) -> PoolConfig {
    PoolConfig {
        min_size,
        max_size,
        connect_timeout: ACQUIRE_TIMEOUT,
        idle_timeout: Some(IDLE_TIMEOUT),
        max_lifetime: Some(MAX_LIFETIME),
        ..PoolConfig::default()
    }
}

/// A pool under test, whatever its kind, so that the code running a bench's work is written
/// once for all of them.
pub(crate) trait BenchPool<C>: Clone + Send + Sync + 'static {
    /// A checked-out connection, returned when dropped.
    type Conn<'a>: Deref<Target = C> + Send
    where
        Self: 'a;

    /// Checks a connection out (the benches expect no error).
    fn checkout(&self) -> impl Future<Output = Self::Conn<'_>> + Send;
}

impl<M> BenchPool<M::Connection> for bb8::Pool<M>
where
    M: bb8::ManageConnection,
{
    type Conn<'a> = bb8::PooledConnection<'a, M>;

    async fn checkout(&self) -> Self::Conn<'_> {
        self.get().await.expect("bb8 get")
    }
}

impl<M> BenchPool<M::Connection> for MonitoredPool<M>
where
    M: bb8::ManageConnection,
    M::Error: std::error::Error + Send + Sync + 'static,
{
    type Conn<'a> = PoolConnection<'a, M>;

    async fn checkout(&self) -> Self::Conn<'_> {
        self.get().await.expect("monitored get")
    }
}

/// The median of `values` (the upper one for an even count), with the min and the max; NaN
/// for none.
pub(crate) fn median_min_max(values: &[f64]) -> (f64, f64, f64) {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.as_slice() {
        [] => (f64::NAN, f64::NAN, f64::NAN),
        s => (s[s.len() / 2], s[0], s[s.len() - 1]),
    }
}
