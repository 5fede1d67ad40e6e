//! The public face of the cache: [`Cache`], the state its clones share, and the per-key
//! operations (`get`, `insert`, `invalidate`, `remove`, `invalidate_all`) with their
//! counting.
//!
//! The rest lives beside it, by concept:
//!
//! - `build` turns a [`CacheBuilder`] into a cache: moka's configuration and the cleanup task.
//! - `store` holds the moka cache the entries live in: weighing entries (bare moka's policy)
//!   while every entry weighs the per-entry floor, weighing bytes from the first that does
//!   not.
//! - `read_through` is `get_with` / `try_get_with`: one coalesced moka lookup-or-load, counted
//!   as a hit or a miss by the value's stamp.
//! - `causes` is eviction-cause accounting: the listener or the derived counts, the writes
//!   and removals in flight that the derivation needs, maintenance (`settle`) and the
//!   cleanup loop that runs it.
//! - `snapshot` takes [`CacheMetrics`](crate::CacheMetrics) snapshots and the advice drawn from them.

mod build;
mod causes;
mod read_through;
mod snapshot;
mod store;

use std::borrow::Borrow;
use std::fmt;
use std::hash::Hash;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::advisor::{Advisor, SampleKind};
use crate::builder::CacheBuilder;
use crate::error::Error;
use crate::stats::{latency_tick, Counter, Stats};
use crate::stored::Stored;

use causes::{Abandoned, Causes, Tracked};
use store::Store;
pub(crate) use store::Weighing;

/// A weigher: bytes of an entry before the per-entry floor is applied.
pub(crate) type Weigher<K, V> = Arc<dyn Fn(&K, &V) -> u64 + Send + Sync + 'static>;

/// A bounded, instrumented async cache on `moka::future::Cache`.
///
/// Cloning is cheap and every clone shares the same entries and statistics. See the crate
/// documentation for an example.
pub struct Cache<K, V> {
    inner: Arc<Inner<K, V>>,
}

struct Inner<K, V> {
    name: String,
    /// The moka cache (or, once the cache weighs bytes, two) the entries live in.
    store: Store<K, V>,
    stats: Arc<Stats>,
    advisor: Option<Advisor>,
    weigher: Weigher<K, V>,
    min_weight: u64,
    max_entries: u64,
    max_memory_bytes: u64,
    /// The heaviest entry that may be cached: `min(max_memory_bytes, u32::MAX)` (moka
    /// clamps weights to `u32::MAX`, so a heavier entry would be under-counted).
    max_entry_weight: u64,
    time_to_live: Option<Duration>,
    cleanup_interval: Option<Duration>,
    cleanup: OnceLock<tokio::task::AbortHandle>,
    /// How removals are attributed to their causes.
    causes: Causes,
    /// Without the listener: `Counter::Created` as it stood when the last maintenance pass
    /// this cache ran began; every one of those writes had been applied when it ended.
    created_settled: AtomicU64,
    /// Without the listener: the highest size-eviction count reported so far (the figure
    /// feeds a Prometheus counter, so it never goes down).
    size_reported: AtomicU64,
    /// Without the listener: writes and removals whose callers dropped them mid-way.
    abandoned: Abandoned,
}

impl<K, V> Drop for Inner<K, V> {
    fn drop(&mut self) {
        if let Some(cleanup) = self.cleanup.get() {
            cleanup.abort();
        }
    }
}

impl<K, V> Clone for Cache<K, V> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<K, V> fmt::Debug for Cache<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("name", &self.inner.name)
            .field("max_entries", &self.inner.max_entries)
            .field("max_memory_bytes", &self.inner.max_memory_bytes)
            .field("entries", &self.inner.store.entry_count())
            .field("weighted_bytes", &self.inner.store.weighted_size())
            .finish_non_exhaustive()
    }
}

impl<K, V> Cache<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// A builder with the defaults (100 000 entries, 100 MiB, advisor on).
    pub fn builder() -> CacheBuilder<K, V> {
        CacheBuilder::default()
    }

    /// The cache's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The value for `key`, counting a hit or a miss.
    pub async fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let value = self.timed_lookup(key).await;
        self.inner.record_lookup(key, value.is_some());
        value
    }

    /// moka's lookup of `key`, timed for one call in 64 per thread.
    async fn timed_lookup<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let inner = &*self.inner;
        let moka = inner.store.active();
        let value = if latency_tick() {
            let start = Instant::now();
            let value = moka.get(key).await;
            inner.stats.record_get_latency(start.elapsed());
            value
        } else {
            moka.get(key).await
        };
        value.map(|stored| stored.value)
    }

    /// The value for `key` if `accept` takes it, for values the caller judges itself (an
    /// HTTP response's freshness, say). Counts a hit when it does; when the key is missing
    /// or the value is refused it counts **nothing**, because the caller then loads through
    /// [`get_with`](Self::get_with) or [`try_get_with`](Self::try_get_with), which counts the
    /// miss — with [`get`](Self::get) first, every such miss would be counted twice, and a
    /// refused value as a hit. The value is returned either way (`Err` when refused), so a
    /// refused one can still serve as a fallback.
    pub async fn get_if<Q>(&self, key: &Q, accept: impl FnOnce(&V) -> bool) -> Option<Result<V, V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let value = self.timed_lookup(key).await?;
        if accept(&value) {
            self.inner.record_lookup(key, true);
            Some(Ok(value))
        } else {
            Some(Err(value))
        }
    }

    /// Whether `key` is cached; counts nothing and does not touch the entry's recency.
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.inner.store.active().contains_key(key)
    }

    /// Stores `value` under `key`, replacing any previous value.
    ///
    /// # Errors
    ///
    /// [`Error::EntryTooLarge`] when the entry weighs more than the memory bound (or more
    /// than `u32::MAX` bytes, the largest weight moka tracks).
    pub async fn insert(&self, key: K, value: V) -> Result<(), Error> {
        let inner = &*self.inner;
        let weight = inner.weigh(&key, &value);
        if weight > inner.max_entry_weight {
            return Err(Error::EntryTooLarge {
                weight,
                max_memory_bytes: inner.max_memory_bytes,
            });
        }
        if inner.store.needs_bytes(weight) {
            inner.weigh_bytes().await;
        }
        let sampled = inner
            .advisor
            .as_ref()
            .and_then(|advisor| advisor.sampled(&key));
        let in_flight = inner.in_flight(Tracked::Write);
        inner.store.active().insert(key, Stored::now(value)).await;
        if let Some(in_flight) = in_flight {
            in_flight.done();
        }
        inner.stats.incr(Counter::Inserts);
        if let (Some(advisor), Some(hash)) = (&inner.advisor, sampled) {
            advisor.record(hash, SampleKind::Write(narrow(weight)));
        }
        Ok(())
    }

    /// Removes `key` (counted as an invalidation and, if present, an explicit eviction).
    pub async fn invalidate<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let inner = &*self.inner;
        match inner.causes {
            Causes::Listener => inner.store.active().invalidate(key).await,
            Causes::Derived => {
                let in_flight = inner.in_flight(Tracked::Removal);
                let removed = inner.store.active().remove(key).await;
                inner.record_explicit(removed.is_some());
                if let Some(in_flight) = in_flight {
                    in_flight.done();
                }
            }
        }
        inner.record_removal(key);
    }

    /// Removes `key` and returns its value.
    pub async fn remove<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let inner = &*self.inner;
        let in_flight = inner.in_flight(Tracked::Removal);
        let value = inner
            .store
            .active()
            .remove(key)
            .await
            .map(|stored| stored.value);
        if let Causes::Derived = inner.causes {
            inner.record_explicit(value.is_some());
        }
        if let Some(in_flight) = in_flight {
            in_flight.done();
        }
        inner.record_removal(key);
        value
    }

    /// Removes every entry.
    ///
    /// Without expiration the entries removed are counted as the entry count after a
    /// maintenance pass run first, then moka drops them all and a second pass removes them
    /// (exact unless writes race this call). With expiration moka's listener counts each
    /// entry when maintenance removes it.
    pub async fn invalidate_all(&self) {
        let inner = &*self.inner;
        match inner.causes {
            Causes::Listener => inner.store.invalidate_all(),
            Causes::Derived => {
                inner.settle().await;
                let removed = inner.store.entry_count();
                // Counted before moka drops them, so that no snapshot sees the entries gone
                // but not yet counted (which would read as size evictions).
                inner.stats.add(Counter::EvictedExplicit, removed);
                inner.store.invalidate_all();
                inner.settle().await;
            }
        }
        inner.stats.incr(Counter::Invalidations);
        if let Some(advisor) = &inner.advisor {
            advisor.clear();
        }
    }

    /// Runs moka's pending maintenance (evictions, expirations, removal notifications) and
    /// replays the advisor's buffered samples. Bounds and counts are exact afterwards.
    pub async fn run_pending_tasks(&self) {
        self.inner.settle().await;
    }

    /// Entries cached, as of moka's last maintenance pass (moka runs one itself whenever 64
    /// reads or writes are queued).
    pub fn entry_count(&self) -> u64 {
        self.inner.store.entry_count()
    }

    /// Sum of entry weights in bytes, as of the last maintenance pass.
    pub fn weighted_size(&self) -> u64 {
        self.inner.store.weighted_size()
    }

    /// The entry bound.
    pub fn max_entries(&self) -> u64 {
        self.inner.max_entries
    }

    /// The memory bound in bytes.
    pub fn max_memory_bytes(&self) -> u64 {
        self.inner.max_memory_bytes
    }

    /// The weight an entry would have in this cache: its estimate, at least
    /// `max_memory_bytes / max_entries` rounded up.
    pub fn weigh(&self, key: &K, value: &V) -> u64 {
        self.inner.weigh(key, value)
    }

    /// Whether moka weighs the entries in bytes (`true`), or counts them (`false`): the
    /// cache counts entries, with bare moka's admission, while every entry written weighs
    /// the per-entry floor, and weighs bytes from the first write heavier than that (or
    /// from the start, when the default weigher's fixed part alone outweighs the floor).
    /// Both bounds hold either way; see the crate README, *Both bounds at once*.
    pub fn weighs_bytes(&self) -> bool {
        self.inner.store.weighing() == Weighing::Bytes
    }
}

impl<K, V> Inner<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    #[inline]
    fn weigh(&self, key: &K, value: &V) -> u64 {
        (self.weigher)(key, value).max(self.min_weight)
    }

    /// Moves the cache to a moka cache weighed in bytes, once (see `store`): the first
    /// write heavier than the per-entry floor calls it before writing. Every operation uses
    /// the new cache as soon as it is built; the advisor's miniatures start over as
    /// byte-weighed caches too, and the entries of the entry-weighed cache are dropped
    /// (counted as size evictions; a later maintenance pass finishes if this call is
    /// dropped midway).
    #[cold]
    async fn weigh_bytes(&self) {
        if self.store.weigh_bytes() {
            if let Some(advisor) = &self.advisor {
                advisor.weigh_bytes();
            }
            self.store.drop_first().await;
        }
    }

    /// Counts a lookup's hit or miss and hands a sampled key to the advisor; returns the
    /// key's sample hash, if it is sampled.
    fn record_lookup<Q: Hash + ?Sized>(&self, key: &Q, hit: bool) -> Option<u64> {
        let counter = if hit { Counter::Hits } else { Counter::Misses };
        self.stats.incr(counter);
        let advisor = self.advisor.as_ref()?;
        let hash = advisor.sampled(key)?;
        advisor.record(hash, SampleKind::Get { hit });
        Some(hash)
    }

    fn record_removal<Q: Hash + ?Sized>(&self, key: &Q) {
        self.stats.incr(Counter::Invalidations);
        if let Some(advisor) = &self.advisor {
            if let Some(hash) = advisor.sampled(key) {
                advisor.record(hash, SampleKind::Remove);
            }
        }
    }
}

/// A weight as moka stores it: clamped to `u32::MAX`.
fn narrow(weight: u64) -> u32 {
    u32::try_from(weight).unwrap_or(u32::MAX)
}
