//! Eviction-cause accounting: where `CacheMetrics::evictions` comes from.
//!
//! A cache that can expire entries installs moka's eviction listener, which reports each
//! removal with its cause. One that cannot goes without it (moka would take a per-key lock on
//! every write for a listener): moka's expiry callbacks count creates and replacements, the
//! removing operations count explicit removals, and size evictions are derived as *created −
//! explicit − cached*. The derivation must not take a write moka has not applied yet for an
//! eviction, so writes and removals count themselves in flight ([`InFlight`]), and each
//! maintenance pass ([`Inner::settle`], also run by the cleanup loop) records the creates it
//! is known to have applied.

use std::hash::Hash;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use moka::notification::RemovalCause;

use super::Inner;
use crate::stats::{Counter, Stats};
use crate::stored::{Stored, WriteCounter};

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
    /// `expires` entries, the write-counting [`WriteCounter`] expiry otherwise.
    pub(super) fn install<K, V>(
        moka: MokaBuilder<K, V>,
        expires: bool,
        stats: &Arc<Stats>,
    ) -> (MokaBuilder<K, V>, Self)
    where
        K: Hash + Eq + Send + Sync + 'static,
        V: Clone + Send + Sync + 'static,
    {
        if expires {
            let listener_stats = Arc::clone(stats);
            let moka = moka.eviction_listener(move |_key, _value, cause| {
                listener_stats.incr(match cause {
                    RemovalCause::Size => Counter::EvictedSize,
                    RemovalCause::Expired => Counter::EvictedExpired,
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
    /// Maintenance: moka's pending writes and evictions, then the advisor's samples.
    pub(super) async fn settle(&self) {
        // Before the pass: the creates counted by now, less the writes still in flight (a
        // write counts its create inside moka's `insert`, possibly before handing it to moka's
        // queue). Every other counted create was queued before the pass starts, so the pass
        // applies it: a lower bound of the creates the entry count reflects afterwards.
        let created = self.stats.total(Counter::Created);
        let in_flight = self.in_flight_now(Counter::WritesBegun, Counter::WritesEnded);
        self.moka.run_pending_tasks().await;
        self.created_settled
            .fetch_max(created.saturating_sub(in_flight), Ordering::Release);
        if let Some(advisor) = &self.advisor {
            advisor.flush();
        }
    }

    /// Operations of one kind in flight now, at most: the ends are read before the
    /// beginnings, so one that ends in between is still counted.
    fn in_flight_now(&self, begun: Counter, ended: Counter) -> u64 {
        let ended = self.stats.total(ended);
        self.stats.total(begun).saturating_sub(ended)
    }

    /// Counts an operation as in flight while the returned guard lives (also when the
    /// caller's future is dropped mid-way); nothing without the derived counts.
    pub(super) fn in_flight(&self, begun: Counter, ended: Counter) -> Option<InFlight<'_>> {
        match self.causes {
            Causes::Listener => None,
            Causes::Derived => {
                self.stats.incr(begun);
                Some(InFlight {
                    stats: &self.stats,
                    ended,
                })
            }
        }
    }

    /// Size evictions without the listener: every entry created has left by a size
    /// eviction, an explicit removal, or not at all (nothing expires; a replacement keeps
    /// the entry). A lower bound, so that the never-decreasing figure cannot stick above
    /// the truth: `created` is the settled lower bound of applied creates (read by the
    /// caller before `entries`), and the explicit removals are counted high — the count so
    /// far plus the removals in flight, read after `entries`. Exact when no write or removal
    /// runs during the last pass and the snapshot (`settled_metrics()` at rest); it may lag
    /// under load, never run ahead.
    pub(super) fn derived_size_evictions(&self, created: u64, entries: u64) -> u64 {
        let pending = self.in_flight_now(Counter::RemovalsBegun, Counter::RemovalsEnded);
        let explicit = self
            .stats
            .total(Counter::EvictedExplicit)
            .saturating_add(pending);
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

/// Keeps an operation counted as in flight until dropped.
pub(super) struct InFlight<'a> {
    stats: &'a Stats,
    ended: Counter,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
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
