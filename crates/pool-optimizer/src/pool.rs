//! [`MonitoredPool`]: one bb8 pool under the wrapper manager, with measured checkouts.

use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::sync::Arc;
use std::time::Duration;

use resync_resource_manager::{KindConfig, LeakThreshold, LeaseGroup, ResourceTracker};

use crate::clock::{nanos, span, Nanos, PoolClock};
use crate::config::PoolConfig;
use crate::error::{Error, SharedError};
use crate::get::Get;
use crate::guard::{OwnedPoolConnection, PoolConnection};
use crate::metrics::PoolMetrics;
use crate::stash::Stash;
use crate::stats::{PoolStats, Waiting};
use crate::wrapper::MonitoredManager;

/// An instrumented connection pool over any bb8 manager `M`.
///
/// Cloning is cheap and clones share the pool. Built with bb8's `build_unchecked`, so
/// creating it never waits for (or fails on) a down backend; it must be created inside a
/// tokio runtime, since bb8 spawns its connection and reaper tasks there.
pub struct MonitoredPool<M>
where
    M: bb8::ManageConnection,
    M::Error: std::error::Error + Send + Sync + 'static,
{
    pub(crate) inner: Arc<PoolShared<M>>,
}

pub(crate) struct PoolShared<M>
where
    M: bb8::ManageConnection,
    M::Error: std::error::Error + Send + Sync + 'static,
{
    pub(crate) pool: bb8::Pool<MonitoredManager<M>>,
    pub(crate) manager: Arc<M>,
    pub(crate) stats: Arc<PoolStats>,
    pub(crate) config: PoolConfig,
    /// The slots of this pool's connections, with the count of its checkouts leaked now.
    pub(crate) leases: LeaseGroup,
    /// Connections returned recently, handed out before bb8 is asked (see `stash.rs`).
    /// Declared last: dropped after bb8's pool handle, it gives its connections back to
    /// bb8's internals, which its entries keep alive.
    pub(crate) stash: Arc<Stash<M>>,
}

impl<M> Clone for MonitoredPool<M>
where
    M: bb8::ManageConnection,
    M::Error: std::error::Error + Send + Sync + 'static,
{
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<M> fmt::Debug for MonitoredPool<M>
where
    M: bb8::ManageConnection,
    M::Error: std::error::Error + Send + Sync + 'static,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonitoredPool")
            .field("name", &self.inner.stats.name)
            .field("config", &self.inner.config)
            .field("state", &self.inner.pool.state())
            .finish_non_exhaustive()
    }
}

/// bb8's error sink: connect errors are already counted and kept by the wrapper manager.
#[derive(Debug, Clone, Copy)]
struct CountedElsewhere;

impl<E> bb8::ErrorSink<E> for CountedElsewhere {
    fn sink(&self, _error: E) {}

    fn boxed_clone(&self) -> Box<dyn bb8::ErrorSink<E>> {
        Box::new(*self)
    }
}

impl<M> MonitoredPool<M>
where
    M: bb8::ManageConnection,
    M::Error: std::error::Error + Send + Sync + 'static,
{
    /// Builds a pool named `name` over `manager`, tracking checkouts with `tracker`.
    ///
    /// The configuration is validated first (bb8's builder would panic on some invalid
    /// values); no connection is awaited. Must be called within a tokio runtime.
    ///
    /// The pool's `leak_threshold` is merged into the configuration of its `resource_kind`,
    /// which pools of that kind (and the kind's other users) share: a kind nobody configured
    /// takes the pool's threshold; a configured kind keeps its `limit` and
    /// `capture_backtrace` and takes the smaller of its threshold (the tracker's default for
    /// [`LeakThreshold::Default`], none for [`LeakThreshold::Never`]) and the pool's. So the
    /// strictest pool of a kind decides, whatever order the pools are built in.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] listing every problem of `config`.
    pub fn new(
        name: impl Into<String>,
        config: PoolConfig,
        manager: M,
        tracker: &ResourceTracker,
    ) -> Result<Self, Error> {
        config.validate()?;
        let name: Arc<str> = Arc::from(name.into());
        let clock = PoolClock::new(tracker.epoch());
        let stats = Arc::new(PoolStats::new(Arc::clone(&name), clock, config.max_size));
        let manager = Arc::new(manager);
        let default_threshold = tracker.default_leak_threshold();
        tracker.update_kind(config.resource_kind, |existing| {
            merged_kind_config(existing, default_threshold, config.leak_threshold)
        });
        let leases = tracker.lease_group(config.resource_kind, &*name);
        let wrapper = MonitoredManager {
            inner: Arc::clone(&manager),
            stats: Arc::clone(&stats),
            connect_timeout: config.connect_timeout,
            validation_skip_window_nanos: u64::try_from(config.validation_skip_window.as_nanos())
                .unwrap_or(u64::MAX),
            max_lifetime_nanos: config.max_lifetime.map_or(Nanos::MAX, nanos),
            leases: leases.clone(),
        };
        // With a stash, its keeper keeps `min_size` idle across the stash and bb8 (bb8 would
        // count the stash's connections as checked out: see `stash.rs`).
        let bb8_min_idle = Some(config.min_size)
            .filter(|&min| min > 0 && !Stash::<M>::enabled_for(config.validation_skip_window));
        let pool = bb8::Pool::builder()
            .max_size(config.max_size)
            .min_idle(bb8_min_idle)
            .connection_timeout(config.effective_acquire_timeout())
            .idle_timeout(config.idle_timeout)
            // The wrapper retires connections at `max_lifetime` on the pool clock; bb8's own
            // check would read the OS clock on every return (see `MonitoredManager`). An idle
            // connection no checkout picks is then closed by the idle timeout; without one,
            // bb8 keeps the lifetime for its reaper.
            .max_lifetime(
                config
                    .max_lifetime
                    .filter(|_| config.idle_timeout.is_none()),
            )
            // The wrapper decides per checkout whether the round trip is needed, and its
            // `is_valid` stamps the checkout instant `get()` uses: it must stay on.
            .test_on_check_out(true)
            // One attempt per approval: a failed connect is reported at once, and the
            // next `get()` (or the reaper) asks again.
            .retry_connection(false)
            .error_sink(Box::new(CountedElsewhere))
            .build_unchecked(wrapper);
        crate::watchdog::spawn(
            &stats,
            crate::watchdog::tick(config.effective_acquire_timeout()),
        );
        let stash = Arc::new(Stash::new(
            Arc::clone(&stats),
            Arc::clone(&manager),
            pool.clone(),
            (config.min_size, config.max_size),
            config.validation_skip_window,
        ));
        // Detached: it ends by itself once the stash is dropped.
        drop(crate::stash::spawn_keeper(&stash));
        Ok(Self {
            inner: Arc::new(PoolShared {
                pool,
                manager,
                stats,
                config,
                leases,
                stash,
            }),
        })
    }

    /// The pool's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.inner.stats.name
    }

    /// The configuration the pool was built with.
    #[must_use]
    pub fn config(&self) -> &PoolConfig {
        &self.inner.config
    }

    /// The backend manager (for probes and backend-specific helpers).
    #[must_use]
    pub fn manager(&self) -> &M {
        &self.inner.manager
    }

    /// Checks out a connection.
    ///
    /// While every connection is in use it waits up to the acquire timeout, then fails with
    /// [`Error::Exhausted`] (counted as an exhaustion). When a connect attempt fails while
    /// this call waits and no connection is open (so none can come back), it fails at once
    /// with [`Error::Unavailable`] carrying the connect error; while connections are open
    /// (checked out, or on their way to another caller) a failed connect does not end the
    /// wait (they may come back). A timeout with fewer than `max_size` connections open was a
    /// wait for a connect, so it is [`Error::Unavailable`] too (the last connect error, or
    /// [`Error::ConnectTimeout`]).
    ///
    /// This is a plain `#[track_caller]` function returning a future (the attribute does
    /// nothing on an `async fn`), so the checkout is tracked with the caller's source line.
    #[track_caller]
    pub fn get(&self) -> impl Future<Output = Result<PoolConnection<'_, M>, Error>> + Send + '_ {
        let shared = &*self.inner;
        // bb8's owned get: a connection that goes back to the stash must not borrow bb8's
        // pool handle (one reference-count increment, only when the stash had none).
        Get::<M, _, PoolConnection<'_, M>>::new(shared, Location::caller(), shared.pool.get_owned())
    }

    /// Checks out a connection as [`get`](Self::get) does — the same wait, errors and
    /// accounting, tracked with the caller's source line — but returns a guard that does not
    /// borrow the pool: it can move into a spawned task or travel with a response body, and
    /// the connection stays checked out (in use, its hold time running, leak-tracked) until
    /// the guard is dropped. The guard keeps the pool's internals alive until then.
    ///
    /// Costs one reference-count increment over `get()` (the guard's hold on the pool's
    /// stash, where its connection goes back); prefer `get()` where the borrow is no
    /// obstacle.
    #[track_caller]
    pub fn get_owned(
        &self,
    ) -> impl Future<Output = Result<OwnedPoolConnection<M>, Error>> + Send + '_ {
        let shared = &*self.inner;
        Get::<M, _, OwnedPoolConnection<M>>::new(
            shared,
            Location::caller(),
            shared.pool.get_owned(),
        )
    }

    /// Opens a new connection for the caller instead of checking out an idle one: for a
    /// request to send again after it failed on a stale connection
    /// ([`Error::is_stale_connection`]), where another idle connection could be just as
    /// stale.
    ///
    /// The connect is the pool's own (bb8's `dedicated_connection` through the wrapper
    /// manager): bounded by the connect timeout and counted in the connect figures
    /// (attempts, failures, timeouts, latency; a connection made counts in `created`). The
    /// checkout is accounted as a waited one (its acquire latency is the connect's
    /// duration) and tracked like any other: in use until the guard is dropped, its hold
    /// time, the caller's source line for leaks, `report_error`.
    ///
    /// The connection is made outside bb8's count, so each one held is a connection the pool
    /// has open beyond its own, and the total may pass `max_size` (a retry normally follows
    /// the discard of the stale connection, which freed a slot). Dropped, the guard offers it
    /// to the pool, which keeps it if it is not broken and there is room, and closes it
    /// otherwise.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] with the connect error (or [`Error::ConnectTimeout`]); it
    /// never waits for a free connection, so it never fails with [`Error::Exhausted`].
    #[track_caller]
    pub fn get_fresh_owned(
        &self,
    ) -> impl Future<Output = Result<OwnedPoolConnection<M>, Error>> + Send + '_ {
        let location = Location::caller();
        let shared = &*self.inner;
        async move {
            let stats = &*shared.stats;
            let started = stats.clock.now();
            let waiting = Waiting::start(stats);
            let made = shared.pool.dedicated_connection().await;
            let now = stats.clock.now();
            drop(waiting);
            let waited = Duration::from_nanos(span(started, now));
            match made {
                Ok(mut conn) => {
                    PoolStats::count(&stats.fresh_connections);
                    stats.checked_out_waited(waited);
                    conn.meta.checked_out_at = now;
                    conn.meta.lease.checkout_nanos(location, now);
                    Ok(OwnedPoolConnection::fresh(
                        conn,
                        shared.pool.clone(),
                        Arc::clone(&shared.stash),
                        now,
                    ))
                }
                Err(error) => {
                    // Counted and kept as the last connect error by the wrapper manager.
                    stats.failed_wait(waited);
                    Err(shared.unavailable(error))
                }
            }
        }
    }

    /// A snapshot of the pool's figures (cumulative counters, histograms, current state).
    #[must_use]
    pub fn metrics(&self) -> PoolMetrics {
        PoolMetrics::collect(&self.inner)
    }
}

/// The configuration of a kind after a pool with leak threshold `threshold` joined it (see
/// [`MonitoredPool::new`]): `existing` is the kind's configuration if it was configured,
/// `default` the tracker's default threshold.
fn merged_kind_config(
    existing: Option<KindConfig>,
    default: Duration,
    threshold: Duration,
) -> KindConfig {
    let Some(existing) = existing else {
        return KindConfig {
            leak_threshold: LeakThreshold::After(threshold),
            ..KindConfig::default()
        };
    };
    let current = match existing.leak_threshold {
        LeakThreshold::Default => Some(default),
        LeakThreshold::After(after) => Some(after),
        LeakThreshold::Never => None,
    };
    KindConfig {
        leak_threshold: LeakThreshold::After(
            current.map_or(threshold, |current| current.min(threshold)),
        ),
        ..existing
    }
}

impl<M> PoolShared<M>
where
    M: bb8::ManageConnection,
    M::Error: std::error::Error + Send + Sync + 'static,
{
    /// Classifies a `get()` that bb8 timed out: every connection open ⇒ exhausted (each was
    /// checked out, or on its way to another waiter); fewer than `max_size` open ⇒ the wait
    /// was for a connect ⇒ unavailable.
    ///
    /// Decided from bb8's count of open connections, not from the `in_use` gauge: the gauge
    /// drops when a connection is returned, before the waiter it goes to is polled (and rises
    /// only once that waiter's validation passed), so a timeout in between would read a full
    /// pool as one with room and report its exhaustion as `Unavailable`. bb8's count changes
    /// only when a connection is made or closed. One lock of bb8's pool, on the timeout path.
    pub(crate) fn timed_out(&self, failures_seen: u64, waited: Duration) -> Error {
        if self.open_connections() >= self.config.max_size {
            PoolStats::count(&self.stats.exhaustions);
            return Error::Exhausted {
                pool: Arc::clone(&self.stats.name),
                waited,
            };
        }
        let source = if self.stats.connect_failure_count() > failures_seen {
            self.stats.last_connect_error()
        } else {
            None
        };
        let source =
            source.unwrap_or_else(|| Arc::new(Error::ConnectTimeout(self.config.connect_timeout)));
        self.unavailable(source)
    }

    /// The connections bb8 holds open now: checked out, idle, or being handed to a waiter.
    pub(crate) fn open_connections(&self) -> u32 {
        self.pool.state().connections
    }

    pub(crate) fn unavailable(&self, source: SharedError) -> Error {
        PoolStats::count(&self.stats.unavailable);
        Error::Unavailable {
            pool: Arc::clone(&self.stats.name),
            source,
        }
    }
}
