//! [`PoolConnection`]: the checked-out connection, measured until it is returned.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

use crate::clock::{span, Nanos};

use crate::stats::PoolStats;
use crate::wrapper::MonitoredManager;

/// A connection checked out of a [`MonitoredPool`](crate::MonitoredPool).
///
/// Dereferences to the backend's connection. Dropping it returns the connection to the pool
/// and records how long it was held; the checkout is tracked by the pool's
/// [`ResourceTracker`](resync_resource_manager::ResourceTracker) (through the connection's
/// [`LeaseSlot`](resync_resource_manager::LeaseSlot)) until then, so holding it past the leak
/// threshold makes it a counted leak that names the line that called `get()`.
pub struct PoolConnection<'a, M>
where
    M: bb8::ManageConnection,
    M::Error: std::error::Error + Send + Sync + 'static,
{
    conn: bb8::PooledConnection<'a, MonitoredManager<M>>,
    stats: &'a PoolStats,
    acquired_at: Nanos,
}

impl<'a, M> PoolConnection<'a, M>
where
    M: bb8::ManageConnection,
    M::Error: std::error::Error + Send + Sync + 'static,
{
    pub(crate) fn new(
        conn: bb8::PooledConnection<'a, MonitoredManager<M>>,
        stats: &'a PoolStats,
        acquired_at: Nanos,
    ) -> Self {
        Self {
            conn,
            stats,
            acquired_at,
        }
    }

    /// Reports that the connection itself failed (an I/O or protocol error, a dropped
    /// connection): the error is counted as a pool error and the connection is discarded
    /// when returned. Do not call it for the caller's own failures (a constraint violation,
    /// a 404), which say nothing about the pool.
    pub fn report_error(&mut self) {
        if !self.conn.meta.reported {
            self.conn.meta.reported = true;
            PoolStats::count(&self.stats.caller_errors);
        }
    }

    /// Whether [`report_error`](Self::report_error) was called on this checkout.
    #[must_use]
    pub fn is_reported_broken(&self) -> bool {
        self.conn.meta.reported
    }
}

impl<M> Deref for PoolConnection<'_, M>
where
    M: bb8::ManageConnection,
    M::Error: std::error::Error + Send + Sync + 'static,
{
    type Target = M::Connection;

    fn deref(&self) -> &Self::Target {
        &self.conn.conn
    }
}

impl<M> DerefMut for PoolConnection<'_, M>
where
    M: bb8::ManageConnection,
    M::Error: std::error::Error + Send + Sync + 'static,
{
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.conn.conn
    }
}

impl<M> Drop for PoolConnection<'_, M>
where
    M: bb8::ManageConnection,
    M::Error: std::error::Error + Send + Sync + 'static,
{
    fn drop(&mut self) {
        // One clock read: the hold time's end and the last-use stamp. The stamp is set
        // before bb8 takes the connection back (and calls `has_broken`), so the next checkout
        // within the validation skip window needs no round trip.
        let now = self.stats.clock.now();
        self.conn.meta.last_used = now;
        self.stats.checked_in(span(self.acquired_at, now));
        // Returning a connection to the pool is a proper close of the checkout (counted as
        // closed, not "released without close"), stamped with the same clock read.
        self.conn.meta.lease.checkin_nanos(now);
    }
}

impl<M> fmt::Debug for PoolConnection<'_, M>
where
    M: bb8::ManageConnection,
    M::Error: std::error::Error + Send + Sync + 'static,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolConnection")
            .field("pool", &self.stats.name)
            .field(
                "held_for",
                &Duration::from_nanos(span(self.acquired_at, self.stats.clock.now())),
            )
            .field("reported_broken", &self.conn.meta.reported)
            .finish_non_exhaustive()
    }
}
