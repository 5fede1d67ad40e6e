//! [`PoolConnection`] and [`OwnedPoolConnection`]: the checked-out connection, measured until
//! it is returned.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{span, Nanos};
use crate::gate::{Gate, Permit};
use crate::pool::PoolShared;
use crate::stash::{Checkout, Stash};
use crate::stats::PoolStats;
use crate::wrapper::{Meta, MonitoredManager, Tracked};

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
    // `None` only while the guard drops: the connection goes back to the pool's stash (or
    // to bb8) before the permit goes to the next `get()` in line, which then finds it idle.
    conn: Option<Checkout<M>>,
    // The pool's checkout gate permit, given back after the connection.
    _permit: Permit<'a>,
    shared: &'a PoolShared<M>,
    acquired_at: Nanos,
}

impl<'a, M> PoolConnection<'a, M>
where
    M: bb8::ManageConnection,
    M::Error: std::error::Error + Send + Sync + 'static,
{
    pub(crate) fn new(
        conn: Checkout<M>,
        permit: Permit<'a>,
        shared: &'a PoolShared<M>,
        acquired_at: Nanos,
    ) -> Self {
        Self {
            conn: Some(conn),
            _permit: permit,
            shared,
            acquired_at,
        }
    }

    fn tracked(&self) -> &Tracked<M::Connection> {
        // Taken only by `drop`.
        self.conn.as_ref().expect("present until dropped")
    }

    fn tracked_mut(&mut self) -> &mut Tracked<M::Connection> {
        // Taken only by `drop`.
        self.conn.as_mut().expect("present until dropped")
    }

    /// Reports that the connection itself failed (an I/O or protocol error, a dropped
    /// connection): the error is counted as a pool error and the connection is discarded
    /// when returned. Do not call it for the caller's own failures (a constraint violation,
    /// a 404), which say nothing about the pool.
    pub fn report_error(&mut self) {
        let meta = &mut self.tracked_mut().meta;
        if !meta.reported {
            meta.reported = true;
            PoolStats::count(&self.shared.stats.caller_errors);
        }
    }

    /// Whether [`report_error`](Self::report_error) was called on this checkout.
    #[must_use]
    pub fn is_reported_broken(&self) -> bool {
        self.tracked().meta.reported
    }
}

impl<M> Deref for PoolConnection<'_, M>
where
    M: bb8::ManageConnection,
    M::Error: std::error::Error + Send + Sync + 'static,
{
    type Target = M::Connection;

    fn deref(&self) -> &Self::Target {
        &self.tracked().conn
    }
}

impl<M> DerefMut for PoolConnection<'_, M>
where
    M: bb8::ManageConnection,
    M::Error: std::error::Error + Send + Sync + 'static,
{
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tracked_mut().conn
    }
}

impl<M> Drop for PoolConnection<'_, M>
where
    M: bb8::ManageConnection,
    M::Error: std::error::Error + Send + Sync + 'static,
{
    fn drop(&mut self) {
        if let Some(mut conn) = self.conn.take() {
            let shared = self.shared;
            check_in(&shared.stats, &mut conn.meta, self.acquired_at);
            shared.stash.give_back(conn);
        }
    }
}

/// The end of a checkout, before the connection goes back (bb8 then calls `has_broken`).
#[inline]
fn check_in(stats: &PoolStats, meta: &mut Meta, acquired_at: Nanos) {
    // One clock read: the hold time's end and the last-use stamp. The stamp is set before
    // bb8 takes the connection back (and calls `has_broken`), so the next checkout within the
    // validation skip window needs no round trip.
    let now = stats.clock.now();
    meta.last_used = now;
    stats.checked_in(span(acquired_at, now));
    // Returning a connection to the pool is a proper close of the checkout (counted as
    // closed, not "released without close"), stamped with the same clock read.
    meta.lease.checkin_nanos(now);
}

/// A connection checked out of a [`MonitoredPool`](crate::MonitoredPool) that does not
/// borrow the pool: it can move into a spawned task or a response body and outlive the code
/// that took it (it keeps the pool's internals alive until then).
///
/// Made by [`MonitoredPool::get_owned`](crate::MonitoredPool::get_owned) (a checkout like
/// `get()`) or [`MonitoredPool::get_fresh_owned`](crate::MonitoredPool::get_fresh_owned) (a
/// connection made for it). Accounted exactly like a [`PoolConnection`]: in use until
/// dropped, its hold time recorded on drop, tracked with the line that took it (a leak past
/// the threshold names that line), [`report_error`](Self::report_error) counted and the
/// connection discarded.
pub struct OwnedPoolConnection<M>
where
    M: bb8::ManageConnection,
    M::Error: std::error::Error + Send + Sync + 'static,
{
    conn: Owned<M>,
    /// The pool's stash (which holds its statistics): the connection goes back there.
    stash: Arc<Stash<M>>,
    acquired_at: Nanos,
}

/// Where an owned checkout's connection came from, and goes back to.
enum Owned<M>
where
    M: bb8::ManageConnection,
    M::Error: std::error::Error + Send + Sync + 'static,
{
    /// Checked out of the pool (the stash or bb8's owned get), holding one of the gate's
    /// permits: the stash (or bb8) takes it back on drop, then the guard gives the permit
    /// back.
    Pooled(Checkout<M>),
    /// The connection was given back: only while the guard drops.
    Returned,
    /// Made for this checkout outside bb8's count (bb8's `dedicated_connection`): offered to
    /// the pool on drop (`Pool::add`: kept if not broken and the pool has room, else closed).
    Fresh {
        conn: Tracked<M::Connection>,
        pool: bb8::Pool<MonitoredManager<M>>,
    },
}

impl<M> OwnedPoolConnection<M>
where
    M: bb8::ManageConnection,
    M::Error: std::error::Error + Send + Sync + 'static,
{
    pub(crate) fn pooled(conn: Checkout<M>, stash: Arc<Stash<M>>, acquired_at: Nanos) -> Self {
        Self {
            conn: Owned::Pooled(conn),
            stash,
            acquired_at,
        }
    }

    pub(crate) fn fresh(
        conn: Tracked<M::Connection>,
        pool: bb8::Pool<MonitoredManager<M>>,
        stash: Arc<Stash<M>>,
        acquired_at: Nanos,
    ) -> Self {
        Self {
            conn: Owned::Fresh { conn, pool },
            stash,
            acquired_at,
        }
    }

    fn tracked(&self) -> &Tracked<M::Connection> {
        match &self.conn {
            Owned::Pooled(conn) => conn,
            Owned::Fresh { conn, .. } => conn,
            Owned::Returned => unreachable!("returned only by drop"),
        }
    }

    fn tracked_mut(&mut self) -> &mut Tracked<M::Connection> {
        match &mut self.conn {
            Owned::Pooled(conn) => conn,
            Owned::Fresh { conn, .. } => conn,
            Owned::Returned => unreachable!("returned only by drop"),
        }
    }

    /// Reports that the connection itself failed, as
    /// [`PoolConnection::report_error`]: counted as a pool error, and the connection is
    /// discarded when returned. Not for the caller's own failures.
    pub fn report_error(&mut self) {
        let meta = &mut self.tracked_mut().meta;
        if !meta.reported {
            meta.reported = true;
            PoolStats::count(&self.stash.stats.caller_errors);
        }
    }

    /// Whether [`report_error`](Self::report_error) was called on this checkout.
    #[must_use]
    pub fn is_reported_broken(&self) -> bool {
        self.tracked().meta.reported
    }

    /// Whether this connection was made for this checkout
    /// ([`MonitoredPool::get_fresh_owned`](crate::MonitoredPool::get_fresh_owned)) rather
    /// than taken from the pool.
    #[must_use]
    pub fn is_fresh(&self) -> bool {
        matches!(self.conn, Owned::Fresh { .. })
    }
}

impl<M> Deref for OwnedPoolConnection<M>
where
    M: bb8::ManageConnection,
    M::Error: std::error::Error + Send + Sync + 'static,
{
    type Target = M::Connection;

    fn deref(&self) -> &Self::Target {
        &self.tracked().conn
    }
}

impl<M> DerefMut for OwnedPoolConnection<M>
where
    M: bb8::ManageConnection,
    M::Error: std::error::Error + Send + Sync + 'static,
{
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tracked_mut().conn
    }
}

impl<M> Drop for OwnedPoolConnection<M>
where
    M: bb8::ManageConnection,
    M::Error: std::error::Error + Send + Sync + 'static,
{
    fn drop(&mut self) {
        let (stash, acquired_at) = (&*self.stash, self.acquired_at);
        match std::mem::replace(&mut self.conn, Owned::Returned) {
            Owned::Pooled(mut conn) => {
                // Into the stash (or bb8), then the next in line gets the permit (and finds
                // the connection idle): given back when this goes, also if the return panics.
                let _permit = ForgottenPermit(stash.stats.gate());
                check_in(&stash.stats, &mut conn.meta, acquired_at);
                stash.give_back(conn);
            }
            Owned::Returned => {}
            Owned::Fresh { mut conn, pool } => {
                check_in(&stash.stats, &mut conn.meta, acquired_at);
                // bb8 asks the wrapper's `has_broken` first (which counts a broken or expired
                // connection as on any return), then takes it if it has room. Refused, the
                // connection is closed here.
                drop(pool.add(conn));
            }
        }
    }
}

/// An owned guard's permit (taken by its get and forgotten), given back when dropped.
struct ForgottenPermit<'a>(&'a Gate);

impl Drop for ForgottenPermit<'_> {
    fn drop(&mut self) {
        self.0.release_forgotten();
    }
}

impl<M> fmt::Debug for OwnedPoolConnection<M>
where
    M: bb8::ManageConnection,
    M::Error: std::error::Error + Send + Sync + 'static,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedPoolConnection")
            .field("pool", &self.stash.stats.name)
            .field("fresh", &self.is_fresh())
            .field(
                "held_for",
                &Duration::from_nanos(span(self.acquired_at, self.stash.stats.clock.now())),
            )
            .field("reported_broken", &self.is_reported_broken())
            .finish_non_exhaustive()
    }
}

impl<M> fmt::Debug for PoolConnection<'_, M>
where
    M: bb8::ManageConnection,
    M::Error: std::error::Error + Send + Sync + 'static,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolConnection")
            .field("pool", &self.shared.stats.name)
            .field(
                "held_for",
                &Duration::from_nanos(span(self.acquired_at, self.shared.stats.clock.now())),
            )
            .field("reported_broken", &self.is_reported_broken())
            .finish_non_exhaustive()
    }
}
