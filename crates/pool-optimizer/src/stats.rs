//! The pool's own counters, shared by the wrapper manager, `get()` and the guards.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use pin_project_lite::pin_project;
use resync_perf_core::stripes::{Padded, Striped};
use resync_perf_core::sync::lock;
use resync_perf_core::{Histogram, HistogramSnapshot};
use tokio::sync::futures::Notified;
use tokio::sync::Notify;

use crate::clock::PoolClock;
use crate::error::SharedError;
use crate::gate::Gate;
use crate::watchdog::Watchdog;

/// Counters and histograms of one pool. Cumulative; recorded lock-free.
///
/// Laid out for a pool used from many threads at once: what every checkout writes lives in
/// per-thread shards ([`HotShard`], each on its own cache lines, written without locked
/// instructions by the thread that owns it), and the checkout gate, the in-use gauge and its
/// peak share one line pair that nothing else is on ([`Front`]); the remaining counters
/// (connect failures, exhaustions, validation round trips, ...) are written only when such an
/// event happens. So a direct checkout + return inside the validation skip window writes its
/// thread's shard and the front line, nothing else. Each shard holds two histograms of
/// 15 KiB: with at most 16 shards and the overflow shard a pool's figures take at most
/// ≈ 520 KiB, and a snapshot merges them.
/// Figures that can be derived are not stored: acquires = direct + waited, validations
/// skipped = acquires − passed round trips, Σ hold time = the hold histogram's sum.
#[derive(Debug)]
pub(crate) struct PoolStats {
    pub(crate) name: Arc<str>,
    pub(crate) started: Instant,
    /// The clock of checkouts, returns and waits.
    pub(crate) clock: PoolClock,
    /// Per-thread shards of the checkout counters; a thread always records into the same one.
    shards: Striped<HotShard>,
    /// The checkout gate and the in-use gauges: every checkout and return writes both, so
    /// they share one line pair that nothing else is on (one line moves between cores per
    /// checkout, not two).
    front: Padded<Front>,
    /// Shared with the pool's watchdog task, which ends waits past their deadline.
    pub(crate) watchdog: Arc<Watchdog>,
    pub(crate) exhaustions: AtomicU64,
    pub(crate) unavailable: AtomicU64,
    pub(crate) connect_attempts: AtomicU64,
    pub(crate) connect_failures: AtomicU64,
    pub(crate) connect_timeouts: AtomicU64,
    pub(crate) broken: AtomicU64,
    pub(crate) caller_errors: AtomicU64,
    pub(crate) validations_run: AtomicU64,
    /// Round trips that failed (a subset of `validations_run`).
    pub(crate) validation_run_failures: AtomicU64,
    pub(crate) validation_failures: AtomicU64,
    /// Connections closed on return as broken: reported by a caller, or broken by the
    /// backend's `has_broken` (bb8's own count also has the expired ones).
    pub(crate) closed_broken: AtomicU64,
    /// Connections closed past `max_lifetime` by the wrapper: found by a checkout (bb8
    /// counts them as invalid) or on return (bb8 counts them as broken).
    pub(crate) expired: AtomicU64,
    /// Connections made for `get_fresh_owned` (bb8 counts only the ones it makes).
    pub(crate) fresh_connections: AtomicU64,
    /// Connections the stash's keeper opened for `min_size` (kept by bb8, or closed at once
    /// as broken); bb8 counts only the ones it makes.
    pub(crate) keeper_connections: AtomicU64,
    pub(crate) connect_latency: Histogram,
    /// Only touched when a connect fails.
    last_connect_error: Mutex<Option<SharedError>>,
    /// Woken on every connect failure so a waiting `get()` can fail fast, and by the
    /// watchdog's ticks so that it checks its deadline. Sharded like the
    /// checkout counters: each waiting `get()` registers on its thread's shard, so waiters on
    /// different threads do not queue on one notifier's lock (a failure wakes all shards).
    connect_failed: Striped<Notify>,
}

/// What every checkout and return of the pool writes, whichever thread it runs on.
#[derive(Debug)]
struct Front {
    /// The checkout gate (see `gate.rs`): one permit per connection the pool may open
    /// (`max_size`), taken by every checkout and given back after the return, so that
    /// waiting `get()` calls are served in the order they came.
    gate: Gate,
    /// Connections checked out now.
    in_use: AtomicU64,
    /// The most connections checked out at once so far.
    peak_in_use: AtomicU64,
}

/// What a checkout records, for the thread that owns one shard (or the threads that share the
/// overflow shard). `direct`, `waited` and the histograms are written only through the
/// shard's `StripeWriter` (plainly by the owner, see perf-core's `stripes`); the wait counts
/// atomically, as a wait may end on another thread.
#[derive(Debug)]
struct HotShard {
    /// Checkouts whose first poll returned a connection (no clock read, no wait).
    direct: AtomicU64,
    /// Checkouts that had to wait (timed; recorded in `acquire_latency`).
    waited: AtomicU64,
    /// Waits begun and ended on this shard's threads: the `get()` calls waiting now are the
    /// difference of the sums (a wait may end on another thread than it began on).
    waits_begun: AtomicU64,
    waits_ended: AtomicU64,
    /// Waited gets only (successful or not); direct checkouts are added as zeros at
    /// snapshot time.
    acquire_latency: Histogram,
    hold_time: Histogram,
}

/// The sums of the shards, read for a snapshot.
#[derive(Debug)]
pub(crate) struct CheckoutTotals {
    pub(crate) direct: u64,
    pub(crate) waited: u64,
    pub(crate) acquire_latency: HistogramSnapshot,
    pub(crate) hold_time: HistogramSnapshot,
}

/// Shards per pool: the machine's parallelism plus two (a runtime's workers, its
/// `block_on` thread and one more each own a shard), rounded up to a power of two, at most
/// 16; threads beyond that share the overflow shard.
fn shard_count() -> usize {
    std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .saturating_add(2)
        .next_power_of_two()
        .min(16)
}

impl PoolStats {
    /// Figures of a pool named `name` that opens at most `max_size` connections.
    pub(crate) fn new(name: Arc<str>, clock: PoolClock, max_size: u32) -> Self {
        Self {
            name,
            started: Instant::now(),
            clock,
            shards: Striped::new(shard_count(), || HotShard {
                direct: AtomicU64::new(0),
                waited: AtomicU64::new(0),
                waits_begun: AtomicU64::new(0),
                waits_ended: AtomicU64::new(0),
                acquire_latency: Histogram::new(),
                hold_time: Histogram::new(),
            }),
            front: Padded::new(Front {
                gate: Gate::new(max_size),
                in_use: AtomicU64::new(0),
                peak_in_use: AtomicU64::new(0),
            }),
            watchdog: Arc::default(),
            exhaustions: AtomicU64::new(0),
            unavailable: AtomicU64::new(0),
            connect_attempts: AtomicU64::new(0),
            connect_failures: AtomicU64::new(0),
            connect_timeouts: AtomicU64::new(0),
            broken: AtomicU64::new(0),
            caller_errors: AtomicU64::new(0),
            validations_run: AtomicU64::new(0),
            validation_run_failures: AtomicU64::new(0),
            validation_failures: AtomicU64::new(0),
            closed_broken: AtomicU64::new(0),
            expired: AtomicU64::new(0),
            fresh_connections: AtomicU64::new(0),
            keeper_connections: AtomicU64::new(0),
            connect_latency: Histogram::new(),
            last_connect_error: Mutex::new(None),
            connect_failed: Striped::new(shard_count(), Notify::new),
        }
    }

    /// The calling thread's shard, for its fields written atomically only (`waits_begun`,
    /// `waits_ended`).
    #[inline]
    fn shard(&self) -> &HotShard {
        self.shards.local()
    }

    /// Sums the shards.
    pub(crate) fn checkout_totals(&self) -> CheckoutTotals {
        let mut totals = CheckoutTotals {
            direct: 0,
            waited: 0,
            acquire_latency: HistogramSnapshot::default(),
            hold_time: HistogramSnapshot::default(),
        };
        for shard in self.shards.iter() {
            totals.direct += shard.direct.load(Ordering::Relaxed);
            totals.waited += shard.waited.load(Ordering::Relaxed);
            totals
                .acquire_latency
                .merge(&shard.acquire_latency.snapshot());
            totals.hold_time.merge(&shard.hold_time.snapshot());
        }
        totals
    }

    /// Called by a `get()` whose first poll returned a connection.
    #[inline]
    pub(crate) fn checked_out_direct(&self) {
        self.shards
            .with_local(|shard, writer| writer.add(&shard.direct, 1));
        self.checked_out();
    }

    /// Called by a `get()` that waited `waited` for its connection.
    pub(crate) fn checked_out_waited(&self, waited: Duration) {
        self.shards.with_local(|shard, writer| {
            writer.add(&shard.waited, 1);
            shard.acquire_latency.record_duration_with(writer, waited);
        });
        self.checked_out();
    }

    /// Records how long a `get()` that failed waited.
    pub(crate) fn failed_wait(&self, waited: Duration) {
        self.shards.with_local(|shard, writer| {
            shard.acquire_latency.record_duration_with(writer, waited);
        });
    }

    /// The checkout gate.
    #[inline]
    pub(crate) fn gate(&self) -> &Gate {
        &self.front.gate
    }

    /// Connections checked out now.
    pub(crate) fn in_use(&self) -> u64 {
        self.front.in_use.load(Ordering::Relaxed)
    }

    /// The most connections checked out at once so far.
    pub(crate) fn peak_in_use(&self) -> u64 {
        self.front.peak_in_use.load(Ordering::Relaxed)
    }

    /// `get()` calls waiting now.
    pub(crate) fn waiting(&self) -> u64 {
        // Ends are read first: a wait that ends between the two sums is then counted as still
        // waiting, never as ended before it began.
        let ended: u64 = self
            .shards
            .iter()
            .map(|shard| shard.waits_ended.load(Ordering::Acquire))
            .sum();
        let begun: u64 = self
            .shards
            .iter()
            .map(|shard| shard.waits_begun.load(Ordering::Acquire))
            .sum();
        begun.saturating_sub(ended)
    }

    pub(crate) fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn load(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    #[inline]
    fn checked_out(&self) {
        let front = &*self.front;
        let in_use = front.in_use.fetch_add(1, Ordering::Relaxed) + 1;
        // A plain load first (same line): the read-modify-write only for a new peak.
        if in_use > front.peak_in_use.load(Ordering::Relaxed) {
            front.peak_in_use.fetch_max(in_use, Ordering::Relaxed);
        }
    }

    /// Called by the guard's drop.
    #[inline]
    pub(crate) fn checked_in(&self, held_nanos: u64) {
        self.front.in_use.fetch_sub(1, Ordering::Relaxed);
        self.shards
            .with_local(|shard, writer| shard.hold_time.record_with(writer, held_nanos));
    }

    /// Records a failed connect and wakes every `get()` waiting for one.
    pub(crate) fn connect_failed(&self, error: SharedError) {
        *lock(&self.last_connect_error) = Some(error);
        // Release pairs with the Acquire in `ConnectFailed`, so a waiter that
        // sees the new count also sees the error stored above.
        self.connect_failures.fetch_add(1, Ordering::Release);
        for notify in self.connect_failed.iter() {
            notify.notify_waiters();
        }
    }

    pub(crate) fn connect_failure_count(&self) -> u64 {
        self.connect_failures.load(Ordering::Acquire)
    }

    pub(crate) fn last_connect_error(&self) -> Option<SharedError> {
        lock(&self.last_connect_error).clone()
    }

    /// Wakes every waiting `get()` (which then checks its deadline): the watchdog's tick.
    pub(crate) fn wake_waiters(&self) {
        for notify in self.connect_failed.iter() {
            notify.notify_waiters();
        }
    }

    /// The calling thread's connect-failure notifier.
    fn connect_failed_notify(&self) -> &Notify {
        self.connect_failed.local()
    }
}

impl Drop for PoolStats {
    fn drop(&mut self) {
        self.watchdog.pool_dropped();
    }
}

pin_project! {
    /// Resolves once a connect attempt has failed after `seen` failures were counted: the
    /// part of a waiting `get()` that ends the wait early when the backend is unreachable.
    pub(crate) struct ConnectFailed<'a> {
        stats: &'a PoolStats,
        seen: u64,
        #[pin]
        notified: Notified<'a>,
    }
}

impl<'a> ConnectFailed<'a> {
    pub(crate) fn new(stats: &'a PoolStats, seen: u64) -> Self {
        Self {
            stats,
            seen,
            notified: stats.connect_failed_notify().notified(),
        }
    }
}

impl Future for ConnectFailed<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        loop {
            // Register before checking the count, so a failure in between is not missed.
            this.notified.as_mut().enable();
            if this.stats.connect_failure_count() > *this.seen {
                return Poll::Ready(());
            }
            std::task::ready!(this.notified.as_mut().poll(cx));
            // Woken, but the count had not moved when we looked: register afresh.
            this.notified
                .set(this.stats.connect_failed_notify().notified());
        }
    }
}

/// Counts a `get()` as waiting while it lives; dropping it (also on cancellation) ends the
/// wait.
#[derive(Debug)]
pub(crate) struct Waiting<'a>(&'a PoolStats);

impl<'a> Waiting<'a> {
    pub(crate) fn start(stats: &'a PoolStats) -> Self {
        stats.shard().waits_begun.fetch_add(1, Ordering::Release);
        stats.watchdog.wait_started();
        Self(stats)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.shard().waits_ended.fetch_add(1, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats() -> PoolStats {
        PoolStats::new(Arc::from("test"), PoolClock::new(Instant::now()), 16)
    }

    #[test]
    fn shards_sum_to_exact_totals_across_threads() {
        let stats = stats();
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for held in 0..1_000 {
                        stats.checked_out_direct();
                        stats.checked_in(held);
                    }
                    stats.checked_out_waited(Duration::from_micros(5));
                });
            }
        });
        let totals = stats.checkout_totals();
        assert_eq!(totals.direct, 4_000);
        assert_eq!(totals.waited, 4);
        assert_eq!(totals.hold_time.count(), 4_000);
        assert_eq!(totals.hold_time.sum(), 4 * (0..1_000).sum::<u64>());
        assert_eq!(totals.acquire_latency.count(), 4);
        assert_eq!(stats.in_use(), 4);
        // The four waited checkouts are still out; at most one direct checkout per thread
        // was out beside them.
        assert!(
            (4..=8).contains(&stats.peak_in_use()),
            "{}",
            stats.peak_in_use()
        );
    }

    #[test]
    fn a_connect_failure_resolves_the_listener_made_before_it_and_only_that() {
        let stats = stats();
        let mut cx = Context::from_waker(std::task::Waker::noop());
        // Made before the failure, first polled after it: the count has moved, so it is
        // ready at once.
        let mut early = std::pin::pin!(ConnectFailed::new(&stats, 0));
        stats.connect_failed(Arc::new(crate::Error::Broken));
        assert!(early.as_mut().poll(&mut cx).is_ready());
        // Made after it (seen = 1): waits for the next failure, and is woken by it.
        let mut next = std::pin::pin!(ConnectFailed::new(&stats, 1));
        assert!(next.as_mut().poll(&mut cx).is_pending());
        assert!(
            next.as_mut().poll(&mut cx).is_pending(),
            "still nothing new"
        );
        stats.connect_failed(Arc::new(crate::Error::Broken));
        assert!(next.as_mut().poll(&mut cx).is_ready());
    }

    #[test]
    fn a_wait_that_ends_on_another_thread_leaves_the_gauge() {
        let stats = stats();
        let waiting = Waiting::start(&stats);
        assert_eq!(stats.waiting(), 1);
        std::thread::scope(|scope| {
            scope.spawn(move || drop(waiting));
        });
        assert_eq!(stats.waiting(), 0);
    }
}
