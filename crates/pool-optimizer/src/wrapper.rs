//! The manager bb8 sees: the backend's manager plus timing, counting and skipped validation.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use resync_resource_manager::{LeaseGroup, LeaseSlot};

use crate::clock::{span, Nanos};
use crate::error::{Error, SharedError};
use crate::stats::PoolStats;

/// A pooled connection with the bookkeeping the wrapper needs, kept behind one pointer:
/// bb8 moves its connections by value through its idle queue, `get()` and the guard, so a
/// small `Tracked` keeps those moves as cheap as they are for the bare connection.
#[derive(Debug)]
pub(crate) struct Tracked<C> {
    pub(crate) conn: C,
    pub(crate) meta: Box<Meta>,
}

/// The per-connection bookkeeping.
#[derive(Debug)]
pub(crate) struct Meta {
    /// When the connection reaches `max_lifetime` (made + lifetime), on the pool's clock;
    /// `Nanos::MAX` when connections live forever.
    pub(crate) expires_at: Nanos,
    /// When the connection was last returned to the pool (or made), on the pool's clock.
    pub(crate) last_used: Nanos,
    /// When checkout validation passed: the one clock read of a checkout, serving the
    /// skip-window check, the end of the acquire wait, the start of the hold time and the
    /// lease checkout.
    pub(crate) checked_out_at: Nanos,
    /// Set when a caller reported the connection unusable (counted as a caller error, not
    /// as broken).
    pub(crate) reported: bool,
    /// Set when checkout validation rejected the connection (or found it past
    /// `max_lifetime`): bb8 closes it as invalid, so `has_broken` must not count (or close) it
    /// a second time.
    pub(crate) invalidated: bool,
    /// Set when the stash found the connection broken while idle (counted as a validation
    /// failure there): `has_broken` closes it without counting it again.
    pub(crate) rejected_idle: bool,
    /// The connection's tracking slot, registered once at connect: `get()` checks it out
    /// with the caller's line and the checkout instant, the guard checks it in on return.
    /// Dropped with the connection (which unregisters it).
    pub(crate) lease: LeaseSlot,
}

/// Wraps the backend manager `M`: times out and counts every connect, skips the validity
/// round trip for recently used connections, counts connections the backend reports broken
/// on return, and retires connections at `max_lifetime`.
///
/// The lifetime is enforced here, on the pool clock the checkout and the return read anyway,
/// rather than by bb8: bb8 with a `max_lifetime` reads `Instant::now` and subtracts
/// `Instant`s on every return (≈ 90 instructions of a ≈ 800-instruction get + drop, and a
/// vDSO clock read), so the pool is built with bb8's lifetime off when it has an idle
/// timeout. A connection past its lifetime is closed when it is returned, or, if it aged while
/// idle, when a checkout picks it (it is never handed out); an idle one nobody picks is closed
/// by the idle timeout. Without an idle timeout bb8 keeps its lifetime too, for its reaper.
#[derive(Debug)]
pub(crate) struct MonitoredManager<M> {
    pub(crate) inner: Arc<M>,
    pub(crate) stats: Arc<PoolStats>,
    pub(crate) connect_timeout: Duration,
    /// The validation skip window in nanoseconds (compared with the pool clock's spans).
    pub(crate) validation_skip_window_nanos: u64,
    /// `max_lifetime` in nanoseconds; `Nanos::MAX` when connections live forever.
    pub(crate) max_lifetime_nanos: Nanos,
    /// Registers each new connection's [`LeaseSlot`] (the pool's kind, label = its name).
    pub(crate) leases: LeaseGroup,
}

impl<M> MonitoredManager<M> {
    /// A checkout found the connection aged past `max_lifetime` while idle: it is closed
    /// (bb8 counts it as invalid, the pool as a lifetime closure), never handed out.
    #[cold]
    fn expired_at_checkout(&self, meta: &mut Meta) {
        meta.invalidated = true;
        PoolStats::count(&self.stats.expired);
    }
}

/// The validity round trip of a checkout whose connection was idle past the skip window.
async fn round_trip<M>(
    inner: &M,
    stats: &PoolStats,
    tracked: &mut Tracked<M::Connection>,
) -> Result<(), SharedError>
where
    M: bb8::ManageConnection,
    M::Error: std::error::Error + Send + Sync + 'static,
{
    PoolStats::count(&stats.validations_run);
    match inner.is_valid(&mut tracked.conn).await {
        Ok(()) => {
            tracked.meta.checked_out_at = stats.clock.now();
            Ok(())
        }
        Err(error) => {
            tracked.meta.invalidated = true;
            PoolStats::count(&stats.validation_run_failures);
            PoolStats::count(&stats.validation_failures);
            Err(Arc::new(error))
        }
    }
}

/// What the wrapper's `is_valid` returns: the checkout decided at once, or the backend's
/// round trip `F` behind a thin pointer (two words in all).
enum Validation<F> {
    /// Hand the connection out: used within the skip window.
    Valid,
    /// Close the connection: bb8 is given the error (and counts it as invalid).
    Rejected(Rejection),
    /// The backend's validity round trip.
    RoundTrip(Pin<Box<F>>),
}

/// Why a checkout rejected a connection without a round trip.
#[derive(Debug, Clone, Copy)]
enum Rejection {
    /// Broken (reported by a caller, or by the backend's `has_broken`).
    Broken,
    /// Past `max_lifetime`.
    Expired,
}

impl<F> Future for Validation<F>
where
    F: Future<Output = Result<(), SharedError>>,
{
    type Output = Result<(), SharedError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // A decided checkout is ready at its first poll; `Pin<Box<F>>` is Unpin.
        match self.get_mut() {
            Self::Valid => Poll::Ready(Ok(())),
            Self::Rejected(rejection) => Poll::Ready(Err(rejection.error())),
            Self::RoundTrip(round_trip) => round_trip.as_mut().poll(cx),
        }
    }
}

impl Rejection {
    /// The error bb8 is given (and passes to the pool's error sink).
    #[cold]
    fn error(self) -> SharedError {
        Arc::new(match self {
            Self::Broken => Error::Broken,
            Self::Expired => Error::Expired,
        })
    }
}

impl<M> bb8::ManageConnection for MonitoredManager<M>
where
    M: bb8::ManageConnection,
    M::Error: std::error::Error + Send + Sync + 'static,
{
    type Connection = Tracked<M::Connection>;
    type Error = SharedError;

    async fn connect(&self) -> Result<Self::Connection, Self::Error> {
        PoolStats::count(&self.stats.connect_attempts);
        let started = Instant::now();
        let error: SharedError =
            match tokio::time::timeout(self.connect_timeout, self.inner.connect()).await {
                Ok(Ok(conn)) => {
                    self.stats
                        .connect_latency
                        .record_duration(started.elapsed());
                    let now = self.stats.clock.now();
                    // Once per connection (a lock and the label's allocation), so that no
                    // checkout needs either.
                    let lease = self.leases.slot();
                    return Ok(Tracked {
                        conn,
                        meta: Box::new(Meta {
                            expires_at: now.saturating_add(self.max_lifetime_nanos),
                            last_used: now,
                            checked_out_at: now,
                            reported: false,
                            invalidated: false,
                            rejected_idle: false,
                            lease,
                        }),
                    });
                }
                Ok(Err(error)) => Arc::new(error),
                Err(_elapsed) => {
                    PoolStats::count(&self.stats.connect_timeouts);
                    Arc::new(Error::ConnectTimeout(self.connect_timeout))
                }
            };
        tracing::debug!(pool = %self.stats.name, %error, "connect failed");
        self.stats.connect_failed(error.clone());
        Err(error)
    }

    // A plain fn returning a two-word `Validation`, not an `async fn`: the checks run when
    // bb8 calls it, and bb8's get future, which holds this future beside the connection, stays
    // as small as it is for the bare connection (an `async fn` here holding the backend's
    // round-trip future grew it from 120 to 176 bytes, past what the compiler moves inline:
    // two `memcpy` calls per checkout). The round trip, needed only for a connection idle past
    // the skip window, is boxed.
    #[inline]
    fn is_valid(
        &self,
        tracked: &mut Self::Connection,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        if tracked.meta.reported
            || tracked.meta.invalidated
            || self.inner.has_broken(&mut tracked.conn)
        {
            tracked.meta.invalidated = true;
            PoolStats::count(&self.stats.validation_failures);
            return Validation::Rejected(Rejection::Broken);
        }
        // bb8 runs this last before handing the connection out (test_on_check_out is on), so
        // this instant is the checkout's: `get()` reads it instead of the clock.
        let now = self.stats.clock.now();
        tracked.meta.checked_out_at = now;
        if now >= tracked.meta.expires_at {
            self.expired_at_checkout(&mut tracked.meta);
            return Validation::Rejected(Rejection::Expired);
        }
        if span(tracked.meta.last_used, now) < self.validation_skip_window_nanos {
            return Validation::Valid;
        }
        Validation::RoundTrip(Box::pin(round_trip(&*self.inner, &self.stats, tracked)))
    }

    fn has_broken(&self, tracked: &mut Self::Connection) -> bool {
        // bb8 calls this on every return (the guard stamped `last_used` just before).
        if tracked.meta.invalidated {
            // bb8 drops an invalid connection anyway and has counted it as closed_invalid.
            return false;
        }
        if tracked.meta.rejected_idle {
            // Counted as a validation failure by the stash; closed here.
            return true;
        }
        if tracked.meta.reported {
            // Counted as a caller error when reported; closed here as broken.
            PoolStats::count(&self.stats.closed_broken);
            return true;
        }
        if self.inner.has_broken(&mut tracked.conn) {
            PoolStats::count(&self.stats.broken);
            PoolStats::count(&self.stats.closed_broken);
            return true;
        }
        // `last_used` is the return instant the guard just read (or, for a connection the
        // stash gives back past its lifetime, the instant it did).
        if tracked.meta.last_used >= tracked.meta.expires_at {
            // bb8 counts it as broken too: the metrics take the pool's own closure counts.
            PoolStats::count(&self.stats.expired);
            return true;
        }
        false
    }
}
