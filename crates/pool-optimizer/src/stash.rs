//! The pool's idle stash: connections a [`PoolConnection`](crate::PoolConnection) or an
//! [`OwnedPoolConnection`](crate::OwnedPoolConnection) returned recently, kept in front of
//! bb8 so that the next checkout takes one without bb8's get.
//!
//! bb8's get + return locks its pool's mutex four times (the get's in-flight count up, the
//! idle queue's pop, the count down, the return's push), clones and drops its pool's `Arc`,
//! counts two statistics and reads the OS clock (its timeout, the idle stamp): most of a
//! checkout's cost once the pool's own accounting is lean. Here a checkout takes the most
//! recently returned connection from one short mutex-guarded stack and the return pushes it
//! back: one lock each. bb8 is asked only when the stash has no fresh connection.
//!
//! To bb8 a stashed connection is still checked out (it came from bb8's owned get and goes
//! back when dropped), so bb8 never hands it to anyone else and its open count stays exact.
//! What bb8 would do to an idle connection, the stash does or leaves to bb8:
//!
//! - **Validation.** Only a connection returned within the freshness window (the validation
//!   skip window, at most [`MAX_FRESH`]) is handed out from the stash, after the backend's
//!   synchronous `has_broken` and the `max_lifetime` check (what the wrapper's checkout
//!   validation does within the window); one found broken there is a validation failure,
//!   closed by bb8, and the next one is tried. If the top is older, the whole stash (ordered
//!   by return) goes back to bb8, whose checkout validation makes the round trip. A pool whose
//!   skip window is below [`MIN_FRESH`] (a round trip on almost every checkout) has no stash.
//! - **Idle timeout and lifetime.** The keeper task (`keeper.rs`) returns connections idle
//!   past the freshness window to bb8, whose reaper then closes them at `idle_timeout`
//!   (counted from that return, so at most [`MAX_FRESH`] plus a keeper period late); one past
//!   its lifetime is closed then.
//! - **`min_size`.** bb8's `min_idle` would count only bb8's idle connections: the stash's
//!   would look checked out, and bb8 would keep opening (and reaping) `min_size` more that
//!   nobody uses. So a pool with a stash builds bb8 without `min_idle`, and the keeper opens
//!   connections (bb8's `dedicated_connection`, handed to bb8 with `Pool::add`) while fewer
//!   than `min_size` are idle in the stash and bb8 together.
//! - **Broken connections** (reported by the caller, broken by `has_broken`, or past their
//!   lifetime at return) never enter the stash: they go back to bb8, which closes them.
//! - **Waiters.** The checkout gate hands permits in arrival order and a permit holder takes
//!   from the stash first; one that finds neither a stashed nor an idle bb8 connection waits
//!   in bb8 (for a connect, or a return). While any does, returns go to bb8 (which wakes it)
//!   instead of the stash: the count is read under the stash's lock, and a waiter registers
//!   before it sends what the stash holds to bb8 too (taking one itself would end bb8's get,
//!   perhaps in the middle of a validation round trip), so no connection stays stashed while
//!   a waiter waits. A registered get that is never polled again (nor dropped) keeps returns
//!   going to bb8 until it is: slower, never wrong.
//!
//! Idle figures add the stash to bb8's idle count.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use resync_perf_core::stripes::Padded;
use resync_perf_core::sync::lock;
use tokio::sync::Notify;

use crate::clock::{nanos, span, Nanos};
use crate::stats::PoolStats;
use crate::wrapper::MonitoredManager;

mod keeper;

pub(crate) use keeper::spawn_keeper;

/// The longest a connection stays in the stash after its return, whatever the skip window.
pub(crate) const MAX_FRESH: Duration = Duration::from_secs(1);
/// The shortest skip window a stash is kept for (and the shortest keeper period).
pub(crate) const MIN_FRESH: Duration = Duration::from_millis(10);

/// A connection checked out of bb8 (owned), in a guard or in the stash.
pub(crate) type Checkout<M> = bb8::PooledConnection<'static, MonitoredManager<M>>;

/// The stash of one pool (see the module's documentation).
pub(crate) struct Stash<M>
where
    M: bb8::ManageConnection,
    M::Error: std::error::Error + Send + Sync + 'static,
{
    /// What a checkout and a return touch, alone on its lines.
    line: Padded<Line<M>>,
    /// Connections returned longer ago than this (ns) are not handed out.
    fresh_nanos: u64,
    /// `false` when the skip window is below [`MIN_FRESH`]: nothing is stashed.
    enabled: bool,
    /// Wakes the parked keeper: a connection entered the empty stash, or the stash is gone.
    wake: Arc<Notify>,
    pub(crate) stats: Arc<PoolStats>,
    /// The backend's manager, for its `has_broken`.
    manager: Arc<M>,
    /// bb8's pool, for the keeper: its state and the connections it opens for `min_size`.
    pool: bb8::Pool<MonitoredManager<M>>,
    min_size: u32,
    max_size: u32,
}

struct Line<M>
where
    M: bb8::ManageConnection,
    M::Error: std::error::Error + Send + Sync + 'static,
{
    /// The stashed connections, the most recently returned last.
    idle: Mutex<VecDeque<Checkout<M>>>,
    /// Permit holders waiting in bb8 (for a connect or a return): while any does, returns go
    /// to bb8.
    bb8_waiters: AtomicUsize,
    /// Set (under `idle`'s lock) when the keeper parked on an empty stash.
    keeper_parked: AtomicBool,
}

impl<M> std::fmt::Debug for Stash<M>
where
    M: bb8::ManageConnection,
    M::Error: std::error::Error + Send + Sync + 'static,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stash")
            .field("enabled", &self.enabled)
            .field("fresh_nanos", &self.fresh_nanos)
            .field(
                "bb8_waiters",
                &self.line.bb8_waiters.load(Ordering::Relaxed),
            )
            .finish_non_exhaustive()
    }
}

/// A permit holder's registration as waiting in bb8; leaves when dropped.
#[derive(Debug)]
pub(crate) struct InBb8<'a>(&'a AtomicUsize);

impl Drop for InBb8<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<M> Stash<M>
where
    M: bb8::ManageConnection,
    M::Error: std::error::Error + Send + Sync + 'static,
{
    /// Whether a pool with this validation skip window keeps a stash (and builds bb8
    /// without `min_idle`).
    pub(crate) fn enabled_for(skip_window: Duration) -> bool {
        skip_window >= MIN_FRESH
    }

    /// The stash of the pool `pool` over `manager` (`min_size` ..= `max_size` connections)
    /// whose validation skip window is `skip_window`.
    pub(crate) fn new(
        stats: Arc<PoolStats>,
        manager: Arc<M>,
        pool: bb8::Pool<MonitoredManager<M>>,
        (min_size, max_size): (u32, u32),
        skip_window: Duration,
    ) -> Self {
        let fresh = skip_window.min(MAX_FRESH);
        Self {
            line: Padded::new(Line {
                idle: Mutex::new(VecDeque::with_capacity(max_size as usize)),
                bb8_waiters: AtomicUsize::new(0),
                keeper_parked: AtomicBool::new(false),
            }),
            fresh_nanos: u64::try_from(nanos(fresh)).unwrap_or(0),
            enabled: Self::enabled_for(skip_window),
            wake: Arc::new(Notify::new()),
            stats,
            manager,
            pool,
            min_size,
            max_size,
        }
    }

    /// The most recently returned connection, if it is fresh, not broken and not past its
    /// lifetime, stamped as checked out now. A stale top means the whole stash is stale (it
    /// is ordered by return): all of it goes back to bb8. A broken one is closed and the
    /// next one tried.
    #[inline]
    pub(crate) fn take(&self) -> Option<Checkout<M>> {
        if !self.enabled {
            return None;
        }
        loop {
            let mut conn = lock(&self.line.idle).pop_back()?;
            let now = self.stats.clock.now();
            if span(conn.meta.last_used, now) >= self.fresh_nanos || now >= conn.meta.expires_at {
                self.all_stale(conn, now);
                return None;
            }
            if self.manager.has_broken(&mut conn.conn) {
                self.broke_while_idle(conn);
                continue;
            }
            conn.meta.checked_out_at = now;
            return Some(conn);
        }
    }

    /// A stashed connection the backend reports broken: a validation failure, as checkout
    /// validation would count it (not a pool error), closed by bb8 (the wrapper's
    /// `has_broken` says so without counting it again).
    #[cold]
    fn broke_while_idle(&self, mut conn: Checkout<M>) {
        conn.meta.rejected_idle = true;
        PoolStats::count(&self.stats.validation_failures);
        drop(conn);
    }

    /// The top of the stash was stale (or expired): it and everything under it go back to
    /// bb8.
    #[cold]
    fn all_stale(&self, top: Checkout<M>, now: Nanos) {
        let stale: Vec<_> = lock(&self.line.idle).drain(..).collect();
        to_bb8(top, now);
        for conn in stale {
            to_bb8(conn, now);
        }
    }

    /// Takes back a connection a guard returned at `now` (its `last_used`): into the stash,
    /// or to bb8 (dropped) when it is broken or expired, when a permit holder waits in bb8,
    /// or when the stash is off.
    #[inline]
    pub(crate) fn give_back(&self, mut conn: Checkout<M>) {
        if !self.enabled
            || conn.meta.reported
            || conn.meta.last_used >= conn.meta.expires_at
            || self.manager.has_broken(&mut conn.conn)
        {
            return;
        }
        let line = &*self.line;
        let mut idle = lock(&line.idle);
        // Read under the lock: see the module's documentation.
        if line.bb8_waiters.load(Ordering::Relaxed) != 0 {
            drop(idle);
            return;
        }
        let wake = idle.is_empty() && line.keeper_parked.load(Ordering::Relaxed);
        if wake {
            line.keeper_parked.store(false, Ordering::Relaxed);
        }
        idle.push_back(conn);
        drop(idle);
        if wake {
            self.wake.notify_one();
        }
    }

    /// Registers a permit holder that is about to wait in bb8, and sends what the stash
    /// holds to bb8 (which wakes it): see the module's documentation.
    pub(crate) fn wait_in_bb8(&self) -> InBb8<'_> {
        self.line.bb8_waiters.fetch_add(1, Ordering::Relaxed);
        let stashed: Vec<_> = lock(&self.line.idle).drain(..).collect();
        if !stashed.is_empty() {
            let now = self.stats.clock.now();
            for conn in stashed {
                to_bb8(conn, now);
            }
        }
        InBb8(&self.line.bb8_waiters)
    }

    /// Connections in the stash now.
    pub(crate) fn len(&self) -> u32 {
        u32::try_from(lock(&self.line.idle).len()).unwrap_or(u32::MAX)
    }

    /// Returns the connections idle past the freshness window to bb8. Returns `true` (the
    /// keeper parks) when the stash is then empty and there is no `min_size` to keep.
    fn sweep(&self) -> bool {
        let now = self.stats.clock.now();
        let mut idle = lock(&self.line.idle);
        let fresh_from = idle
            .iter()
            .position(|conn| span(conn.meta.last_used, now) < self.fresh_nanos)
            .unwrap_or(idle.len());
        let stale: Vec<_> = idle.drain(..fresh_from).collect();
        let park = idle.is_empty() && self.min_size == 0;
        if park {
            self.line.keeper_parked.store(true, Ordering::Relaxed);
        }
        drop(idle);
        for conn in stale {
            to_bb8(conn, now);
        }
        park
    }

    /// Connections to open for `min_size`: fewer than it idle in the stash and bb8 together,
    /// within `max_size` open (bb8's pending connects are not seen: bb8 refuses what has no
    /// room).
    fn wanted(&self) -> u32 {
        if self.min_size == 0 {
            return 0;
        }
        let state = self.pool.state();
        let idle = state.idle_connections.saturating_add(self.len());
        self.min_size
            .saturating_sub(idle)
            .min(self.max_size.saturating_sub(state.connections))
    }

    /// How often the keeper runs: the freshness window, at least [`MIN_FRESH`].
    fn keeper_period(&self) -> Duration {
        Duration::from_nanos(self.fresh_nanos).max(MIN_FRESH)
    }
}

/// Gives a connection taken out of the stash at `now` back to bb8 (it stays open, idle in
/// bb8, unless it is past its lifetime). One past its lifetime is stamped as returned now, so
/// that bb8's return check (the wrapper's `has_broken`) closes it as expired.
fn to_bb8<M>(mut conn: Checkout<M>, now: Nanos)
where
    M: bb8::ManageConnection,
    M::Error: std::error::Error + Send + Sync + 'static,
{
    if now >= conn.meta.expires_at {
        conn.meta.last_used = now;
    }
    drop(conn);
}

impl<M> Drop for Stash<M>
where
    M: bb8::ManageConnection,
    M::Error: std::error::Error + Send + Sync + 'static,
{
    fn drop(&mut self) {
        // The keeper, parked or not, finds the stash gone and ends.
        self.wake.notify_one();
    }
}

#[cfg(test)]
mod tests;
