//! Eviction-cause accounting: where `CacheMetrics::evictions` comes from.
//!
//! A cache that can expire entries installs moka's eviction listener, which reports each
//! removal with its cause. One that cannot goes without it (moka would take a per-key lock on
//! every write for a listener): moka's expiry callbacks count creates and replacements, the
//! removing operations count explicit removals, and size evictions are derived as *created −
//! explicit − cached*. The derivation must not take a write moka has not applied yet for an
//! eviction, so writes and removals count themselves in flight ([`InFlight`]), each
//! maintenance pass ([`Inner::settle`], also run by the cleanup loop) records the creates it
//! is known to have applied, and between passes a snapshot takes the creates counted so far
//! less every write that can still be pending inside moka ([`MOKA_PENDING_WRITES`]), so the
//! figure keeps up with moka's own maintenance instead of waiting for ours.

use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use moka::notification::RemovalCause;

use super::Inner;
use crate::stats::{Counter, Stats};
use crate::stored::{Stored, WriteCounter};

/// Writes moka may have counted (its expiry's `expire_after_create` runs inside the write,
/// before the write is queued) without its entry count showing them yet, at most.
///
/// From moka 0.12.16's source (`common/concurrent/constants.rs`, `future/base_cache.rs`):
/// a write is queued on a bounded channel of `WRITE_LOG_CH_SIZE` = 64 × (4 + 2) = 384
/// operations (a writer that finds it full runs maintenance or waits, so it stays counted
/// as in flight here); a maintenance pass (`do_run_pending_tasks`) drains it at most
/// `max_log_sync_repeats + 1` = 5 times, each time at most the channel's length, and stores
/// the entry count once, when it ends. So at any instant at most 384 writes sit in the
/// channel and at most 5 × 384 were taken by a pass that has not stored its count yet
/// (passes never overlap). moka runs a pass itself whenever a read or a write finds 64
/// operations queued (or 300 ms passed), so this is also about how far behind moka's own
/// entry count can be.
pub(super) const MOKA_PENDING_WRITES: u64 = 384 + 5 * 384;

/// The moka builder the cache is configured with.
type MokaBuilder<K, V> =
    moka::future::CacheBuilder<K, Stored<V>, moka::future::Cache<K, Stored<V>>>;

/// Where the eviction counts come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Causes {
    /// The cache can expire entries (TTL, TTI or a per-entry expiry): moka's eviction
    /// listener reports every removal with its cause.
    Listener,
    /// No expiration, no listener (moka would take a per-key lock on every write for it):
    /// moka's expiry callbacks count creates and replacements ([`WriteCounter`]), the
    /// removing operations count explicit removals, size evictions are derived, and
    /// expirations cannot happen.
    Derived,
}

impl Causes {
    /// Sets `moka` up to count removals into `stats`: the eviction listener when the cache
    /// `expires` entries, the write-counting [`WriteCounter`] expiry otherwise. Once
    /// `retired` is set (the cache is being dropped for a byte-weighed one, see `store`), the
    /// listener counts explicit removals as size evictions: they are the cache's, not the
    /// caller's.
    pub(super) fn install<K, V>(
        moka: MokaBuilder<K, V>,
        expires: bool,
        stats: &Arc<Stats>,
        retired: Option<Arc<AtomicBool>>,
    ) -> (MokaBuilder<K, V>, Self)
    where
        K: Hash + Eq + Send + Sync + 'static,
        V: Clone + Send + Sync + 'static,
    {
        if expires {
            let listener_stats = Arc::clone(stats);
            let moka = moka.eviction_listener(move |_key, _value, cause| {
                let dropped = || retired.as_ref().is_some_and(|r| r.load(Ordering::Acquire));
                listener_stats.incr(match cause {
                    RemovalCause::Size => Counter::EvictedSize,
                    RemovalCause::Expired => Counter::EvictedExpired,
                    RemovalCause::Explicit if dropped() => Counter::EvictedSize,
                    RemovalCause::Explicit => Counter::EvictedExplicit,
                    RemovalCause::Replaced => Counter::EvictedReplaced,
                });
            });
            (moka, Self::Listener)
        } else {
            let moka = moka.expire_after(WriteCounter {
                stats: Arc::clone(stats),
            });
            (moka, Self::Derived)
        }
    }
}

impl<K, V> Inner<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Maintenance: moka's pending writes and evictions (and, once the cache weighs bytes,
    /// dropping what the entry-weighed moka still holds), then the advisor's samples.
    pub(super) async fn settle(&self) {
        // Before the pass: the creates counted by now, less the writes still in flight (a
        // write counts its create inside moka's `insert`, possibly before handing it to moka's
        // queue). Every other counted create was queued before the pass starts, so the pass
        // applies it: a lower bound of the creates the entry count reflects afterwards.
        // A write whose caller dropped it while moka was queueing it is left to moka, which
        // queues it again at its next operation, and first of all in this pass.
        let created = self.stats.total(Counter::Created);
        let in_flight = self.in_flight_now(Tracked::Write);
        let abandoned = self.abandoned.writes.load(Ordering::Relaxed);
        self.store.run_pending_tasks().await;
        self.created_settled
            .fetch_max(created.saturating_sub(in_flight), Ordering::Release);
        self.abandoned
            .writes_settled
            .fetch_max(abandoned, Ordering::Relaxed);
        if let Some(advisor) = &self.advisor {
            advisor.flush();
        }
    }

    /// Operations of one kind in flight now, at most: the ends are read before the
    /// beginnings, so one that ends in between is still counted.
    fn in_flight_now(&self, kind: Tracked) -> u64 {
        let (begun, ended) = kind.counters();
        let ended = self.stats.total(ended);
        self.stats.total(begun).saturating_sub(ended)
    }

    /// Counts an operation as in flight until the returned guard is [`done`](InFlight::done)
    /// or dropped (the caller's future dropped mid-way, which also counts it abandoned);
    /// nothing without the derived counts.
    pub(super) fn in_flight(&self, kind: Tracked) -> Option<InFlight<'_>> {
        match self.causes {
            Causes::Listener => None,
            Causes::Derived => {
                let (begun, ended) = kind.counters();
                self.stats.incr(begun);
                Some(InFlight {
                    stats: &self.stats,
                    ended,
                    abandoned: match kind {
                        Tracked::Write => &self.abandoned.writes,
                        Tracked::Removal => &self.abandoned.removals,
                    },
                })
            }
        }
    }

    /// Creates moka has applied, at least, as far as a snapshot can tell without running
    /// maintenance: those recorded by the last pass this cache ran, or the creates counted
    /// by now less every write that may still be pending — in flight on our side, abandoned
    /// by its caller since our last pass, or inside moka ([`MOKA_PENDING_WRITES`] per moka
    /// cache) — whichever is higher. Read before the entry count it is compared with.
    pub(super) fn created_applied(&self) -> u64 {
        let settled = self.created_settled.load(Ordering::Acquire);
        let created = self.stats.total(Counter::Created);
        // After the creates: a write counted above is either still in flight here, or was
        // abandoned (counted before its end), or was handed to moka.
        let in_flight = self.in_flight_now(Tracked::Write);
        let abandoned = self
            .abandoned
            .writes
            .load(Ordering::Relaxed)
            .saturating_sub(self.abandoned.writes_settled.load(Ordering::Relaxed));
        let fresh = created
            .saturating_sub(in_flight)
            .saturating_sub(abandoned)
            .saturating_sub(MOKA_PENDING_WRITES * self.store.caches());
        settled.max(fresh)
    }

    /// Size evictions without the listener: every entry created has left by a size
    /// eviction, an explicit removal, or not at all (nothing expires; a replacement keeps
    /// the entry). A lower bound, so that the never-decreasing figure cannot stick above
    /// the truth: `created` is a lower bound of the creates moka applied
    /// ([`created_applied`](Self::created_applied), read by the caller before `entries`),
    /// and the explicit removals are counted high — the count so far plus the removals in
    /// flight and every removal ever abandoned by its caller (moka may have removed the
    /// entry before the caller could count it), read after `entries`. Exact when no write or
    /// removal runs during the last pass and the snapshot (`settled_metrics()` at rest) and
    /// no removal was abandoned; otherwise it lags by at most [`MOKA_PENDING_WRITES`] plus
    /// the operations in flight or abandoned, and never runs ahead.
    pub(super) fn derived_size_evictions(&self, created: u64, entries: u64) -> u64 {
        let pending = self.in_flight_now(Tracked::Removal);
        let explicit = self
            .stats
            .total(Counter::EvictedExplicit)
            .saturating_add(pending)
            .saturating_add(self.abandoned.removals.load(Ordering::Relaxed));
        let derived = created.saturating_sub(explicit).saturating_sub(entries);
        self.size_reported
            .fetch_max(derived, Ordering::Relaxed)
            .max(derived)
    }

    /// Counts an explicit removal when moka removed something (without the listener).
    pub(super) fn record_explicit(&self, removed: bool) {
        if removed {
            self.stats.incr(Counter::EvictedExplicit);
        }
    }
}

/// The operations counted in flight.
#[derive(Debug, Clone, Copy)]
pub(super) enum Tracked {
    /// An `insert`, or a load's value on its way into moka.
    Write,
    /// An `invalidate` or a `remove`.
    Removal,
}

impl Tracked {
    /// The (begun, ended) counters.
    fn counters(self) -> (Counter, Counter) {
        match self {
            Self::Write => (Counter::WritesBegun, Counter::WritesEnded),
            Self::Removal => (Counter::RemovalsBegun, Counter::RemovalsEnded),
        }
    }
}

/// Operations whose caller dropped them while they were in flight (rare: a cancelled future
/// waiting for room in moka's write queue). Not striped: nothing on a hot path counts here.
#[derive(Debug, Default)]
pub(super) struct Abandoned {
    /// Writes abandoned: moka keeps the write and queues it again at its next operation.
    writes: AtomicU64,
    /// `writes` as it stood when the last maintenance pass this cache ran began; moka
    /// queues an abandoned write again at the start of `run_pending_tasks`.
    writes_settled: AtomicU64,
    /// Removals abandoned: moka may have removed the entry without the removal being
    /// counted as explicit, so they are counted as explicit removals that may have happened.
    removals: AtomicU64,
}

/// Keeps an operation counted as in flight until [`done`](Self::done) or dropped.
pub(super) struct InFlight<'a> {
    stats: &'a Stats,
    ended: Counter,
    abandoned: &'a AtomicU64,
}

impl InFlight<'_> {
    /// The operation completed.
    #[inline]
    pub(super) fn done(self) {
        let this = std::mem::ManuallyDrop::new(self);
        this.stats.incr(this.ended);
    }
}

impl Drop for InFlight<'_> {
    /// Dropped before `done`: the caller's future was dropped mid-operation. Counted
    /// abandoned before it is counted ended, so that a reader who sees it ended (they read
    /// the ends first) sees it abandoned too.
    fn drop(&mut self) {
        self.abandoned.fetch_add(1, Ordering::Relaxed);
        self.stats.incr(self.ended);
    }
}

/// Runs maintenance every `interval` until the cache is gone.
pub(super) async fn cleanup_loop<K, V>(cache: Weak<Inner<K, V>>, interval: Duration)
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    loop {
        tokio::time::sleep(interval).await;
        let Some(inner) = cache.upgrade() else {
            break;
        };
        inner.settle().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_operation_ends_when_done_and_is_abandoned_when_dropped() {
        let stats = Stats::new(1);
        let abandoned = AtomicU64::new(0);
        let guard = |stats| InFlight {
            stats,
            ended: Counter::WritesEnded,
            abandoned: &abandoned,
        };
        guard(&stats).done();
        assert_eq!(stats.total(Counter::WritesEnded), 1);
        assert_eq!(abandoned.load(Ordering::Relaxed), 0);
        drop(guard(&stats));
        assert_eq!(stats.total(Counter::WritesEnded), 2);
        assert_eq!(abandoned.load(Ordering::Relaxed), 1);
    }
}
