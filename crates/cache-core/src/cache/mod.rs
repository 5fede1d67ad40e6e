//! The cache itself: moka plus striped statistics and the advisor.

use std::borrow::Borrow;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use moka::notification::RemovalCause;
use resync_perf_core::Recommendation;

use crate::advisor::{Advisor, AdvisorConfig, SampleKind};
use crate::builder::CacheBuilder;
use crate::error::Error;
use crate::metrics::CacheMetrics;
use crate::stats::{thread_slot, thread_slot_tick, Counter, Stats};
use crate::stored::{self, Stamp, Stored, UserExpiry, WriteCounter};

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
    moka: moka::future::Cache<K, Stored<V>>,
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
}

/// Where the eviction counts come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Causes {
    /// The cache can expire entries (TTL, TTI or a per-entry expiry): moka's eviction
    /// listener reports every removal with its cause.
    Listener,
    /// No expiration, no listener (moka would take a per-key lock on every write for it):
    /// moka's expiry callbacks count creates and replacements ([`WriteCounter`]), the
    /// removing operations count explicit removals, size evictions are derived, and
    /// expirations cannot happen.
    Derived,
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
            .field("entries", &self.inner.moka.entry_count())
            .field("weighted_bytes", &self.inner.moka.weighted_size())
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

    pub(crate) fn from_builder(builder: CacheBuilder<K, V>) -> Result<Self, Error> {
        let weigher = builder
            .weigher
            .expect("build and build_with_weigher always set a weigher before building");
        let min_weight = builder.max_memory_bytes.div_ceil(builder.max_entries);
        let stats = Arc::new(Stats::new(builder.stat_shards));
        let runtime = match builder.cleanup_interval {
            Some(_) => Some(tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?),
            None => None,
        };

        let moka_weigher = Arc::clone(&weigher);
        let mut moka = moka::future::Cache::builder()
            .name(&builder.name)
            .max_capacity(builder.max_memory_bytes)
            .weigher(move |key: &K, stored: &Stored<V>| {
                let weight = moka_weigher(key, &stored.value).max(min_weight);
                u32::try_from(weight).unwrap_or(u32::MAX)
            });
        let expires = builder.time_to_live.is_some()
            || builder.time_to_idle.is_some()
            || builder.expiry.is_some();
        let causes = if expires {
            let listener_stats = Arc::clone(&stats);
            moka = moka.eviction_listener(move |_key, _value, cause| {
                listener_stats.incr(match cause {
                    RemovalCause::Size => Counter::EvictedSize,
                    RemovalCause::Expired => Counter::EvictedExpired,
                    RemovalCause::Explicit => Counter::EvictedExplicit,
                    RemovalCause::Replaced => Counter::EvictedReplaced,
                });
            });
            Causes::Listener
        } else {
            moka = moka.expire_after(WriteCounter {
                stats: Arc::clone(&stats),
            });
            Causes::Derived
        };
        if let Some(ttl) = builder.time_to_live {
            moka = moka.time_to_live(ttl);
        }
        if let Some(tti) = builder.time_to_idle {
            moka = moka.time_to_idle(tti);
        }
        if let Some(expiry) = builder.expiry {
            moka = moka.expire_after(UserExpiry { inner: expiry });
        }
        let advisor = builder.advisor.then(|| {
            Advisor::new(AdvisorConfig {
                max_memory_bytes: builder.max_memory_bytes,
                max_entries: builder.max_entries,
                sample_rate: builder.advisor_sample_rate,
                time_to_live: builder.time_to_live,
                time_to_idle: builder.time_to_idle,
            })
        });
        // The first stamp calibrates quanta's clock (a busy loop of a millisecond or more):
        // paid here, at build time, not by the first caller of a read-through.
        let _ = crate::stored::now();
        let inner = Arc::new(Inner {
            name: builder.name,
            moka: moka.build(),
            stats,
            advisor,
            weigher,
            min_weight,
            max_entries: builder.max_entries,
            max_memory_bytes: builder.max_memory_bytes,
            max_entry_weight: builder.max_memory_bytes.min(u64::from(u32::MAX)),
            time_to_live: builder.time_to_live,
            cleanup_interval: builder.cleanup_interval,
            cleanup: OnceLock::new(),
            causes,
            created_settled: AtomicU64::new(0),
            size_reported: AtomicU64::new(0),
        });
        if let (Some(runtime), Some(interval)) = (runtime, builder.cleanup_interval) {
            let task = runtime.spawn(cleanup_loop(Arc::downgrade(&inner), interval));
            // The cell was created empty just above and nothing else can reach it yet.
            let _ = inner.cleanup.set(task.abort_handle());
        }
        Ok(Self { inner })
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
        let inner = &*self.inner;
        let (slot, timed) = thread_slot_tick();
        let value = if timed {
            let start = Instant::now();
            let value = inner.moka.get(key).await;
            inner.stats.record_get_latency(start.elapsed());
            value
        } else {
            inner.moka.get(key).await
        }
        .map(|stored| stored.value);
        inner.record_lookup(slot, key, value.is_some());
        value
    }

    /// Whether `key` is cached; counts nothing and does not touch the entry's recency.
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.inner.moka.contains_key(key)
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
        let sampled = inner
            .advisor
            .as_ref()
            .and_then(|advisor| advisor.sampled(&key));
        let in_flight = inner.in_flight(Counter::WritesBegun, Counter::WritesEnded);
        inner.moka.insert(key, Stored::now(value)).await;
        drop(in_flight);
        inner.stats.incr(Counter::Inserts);
        if let (Some(advisor), Some(hash)) = (&inner.advisor, sampled) {
            advisor.record(hash, SampleKind::Write(narrow(weight)));
        }
        Ok(())
    }

    /// The cached value, or the value `init` produces, cached and returned.
    ///
    /// Concurrent calls for one missing key run one `init`; the others wait for its value.
    /// A loaded value weighing more than the memory bound (or `u32::MAX` bytes) is returned
    /// to every waiting caller but never cached, so the bound holds; it is counted in
    /// [`CacheMetrics::loads_uncached`] (and in `loads_ok`), not in `inserts`.
    ///
    /// The call counts a hit when it returns a value that was produced (stamped) before
    /// `get_with` was called — not when its future is first polled — and a miss otherwise:
    /// its own load, a load it waited for, a failed one, or a value inserted after the call. Each entry carries the instant it was stored for
    /// this (see the crate README, *Statistics*), so a read-through looks the key up once.
    ///
    /// `K: Clone` because the weight is checked before moka stores the value, while the
    /// key is still the caller's; moka clones it on each call that does not find the value.
    pub fn get_with<'a>(
        &'a self,
        key: K,
        init: impl Future<Output = V> + 'a,
    ) -> impl Future<Output = V> + 'a
    where
        K: Clone,
    {
        let called_at = stored::now();
        async move {
            let loaded = self
                .load(called_at, key, async {
                    Ok::<V, std::convert::Infallible>(init.await)
                })
                .await;
            match loaded {
                Ok(value) => value,
                Err(never) => match *never {},
            }
        }
    }

    /// Like [`get_with`](Self::get_with) for a fallible load. A failed load is counted,
    /// not cached, and its error is shared with every caller that waited for it.
    ///
    /// # Errors
    ///
    /// The error `init` returned, shared in an `Arc`.
    pub fn try_get_with<'a, F, E>(
        &'a self,
        key: K,
        init: F,
    ) -> impl Future<Output = Result<V, Arc<E>>> + 'a
    where
        K: Clone,
        F: Future<Output = Result<V, E>> + 'a,
        E: Send + Sync + 'static,
    {
        self.load(stored::now(), key, init)
    }

    /// One coalesced lookup-or-load through moka, counted as a hit when the value it
    /// returns was stored before `called_at`. An oversized value travels to the waiters as
    /// the shared "error" so moka never stores it.
    async fn load<F, E>(&self, called_at: Stamp, key: K, init: F) -> Result<V, Arc<E>>
    where
        K: Clone,
        F: Future<Output = Result<V, E>>,
        E: Send + Sync + 'static,
    {
        let inner = &*self.inner;
        let (slot, timed) = thread_slot_tick();
        let lookup_start = timed.then(Instant::now);
        // Set, with the value's weight, when this call's `init` produced the value moka is
        // about to store. It holds the write's in-flight count (without expiration, see
        // `settle`) from then until moka has stored the value, so that a slow load does not
        // count as a write in flight.
        let stored_by_load: OnceLock<(u64, Option<InFlight<'_>>)> = OnceLock::new();
        let load = async {
            let start = Instant::now();
            let result = init.await;
            inner.stats.record_load(start.elapsed(), result.is_ok());
            match result {
                Ok(value) => {
                    let weight = inner.weigh(&key, &value);
                    if weight > inner.max_entry_weight {
                        inner.stats.incr(Counter::LoadsUncached);
                        return Err(NotCached::Oversized(value));
                    }
                    let in_flight = inner.in_flight(Counter::WritesBegun, Counter::WritesEnded);
                    let _ = stored_by_load.set((weight, in_flight));
                    Ok(Stored::now(value))
                }
                Err(error) => Err(NotCached::Failed(Arc::new(error))),
            }
        };
        let result = inner.moka.try_get_with_by_ref(&key, load).await;
        // Taking the cell ends the in-flight count: moka has stored the value by now.
        let loaded_weight = stored_by_load.into_inner().map(|(weight, _)| weight);
        let loaded_here = loaded_weight.is_some();
        // A hit: a value this call did not load, stored before the call was made.
        let (hit, outcome) = match result {
            Ok(stored) => (
                !loaded_here && stored.stored_before(called_at),
                Ok(stored.value),
            ),
            Err(not_cached) => (
                false,
                match &*not_cached {
                    NotCached::Oversized(value) => Ok(value.clone()),
                    NotCached::Failed(error) => Err(Arc::clone(error)),
                },
            ),
        };
        if let (true, Some(start)) = (hit, lookup_start) {
            inner.stats.record_get_latency(start.elapsed());
        }
        let sampled = inner.record_lookup(slot, &key, hit);
        // `loaded_weight` is set only when this call's load returned `Ok`, i.e. when moka
        // stored its value.
        if let Some(weight) = loaded_weight {
            inner.stats.incr(Counter::Inserts);
            if let (Some(advisor), Some(hash)) = (&inner.advisor, sampled) {
                advisor.record(hash, SampleKind::Write(narrow(weight)));
            }
        }
        outcome
    }

    /// Removes `key` (counted as an invalidation and, if present, an explicit eviction).
    pub async fn invalidate<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let inner = &*self.inner;
        match inner.causes {
            Causes::Listener => inner.moka.invalidate(key).await,
            Causes::Derived => {
                let in_flight = inner.in_flight(Counter::RemovalsBegun, Counter::RemovalsEnded);
                let removed = inner.moka.remove(key).await;
                inner.record_explicit(removed.is_some());
                drop(in_flight);
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
        let in_flight = inner.in_flight(Counter::RemovalsBegun, Counter::RemovalsEnded);
        let value = inner.moka.remove(key).await.map(|stored| stored.value);
        if let Causes::Derived = inner.causes {
            inner.record_explicit(value.is_some());
        }
        drop(in_flight);
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
            Causes::Listener => inner.moka.invalidate_all(),
            Causes::Derived => {
                inner.settle().await;
                let removed = inner.moka.entry_count();
                // Counted before moka drops them, so that no snapshot sees the entries gone
                // but not yet counted (which would read as size evictions).
                inner
                    .stats
                    .add_at(thread_slot(), Counter::EvictedExplicit, removed);
                inner.moka.invalidate_all();
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

    /// Entries cached, as of the last maintenance pass.
    pub fn entry_count(&self) -> u64 {
        self.inner.moka.entry_count()
    }

    /// Sum of entry weights in bytes, as of the last maintenance pass.
    pub fn weighted_size(&self) -> u64 {
        self.inner.moka.weighted_size()
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

    /// A snapshot of the statistics (cumulative counters; see [`CacheMetrics`]).
    pub fn metrics(&self) -> CacheMetrics {
        let inner = &*self.inner;
        // The settled creates, then the entry count, then (inside) the removals: each read
        // after the one it is compared with errs toward fewer size evictions, never more.
        let created = inner.created_settled.load(Ordering::Acquire);
        let entries = inner.moka.entry_count();
        let totals = inner.stats.totals();
        let size = match inner.causes {
            Causes::Listener => totals.get(Counter::EvictedSize),
            Causes::Derived => inner.derived_size_evictions(created, entries),
        };
        let evictions = crate::metrics::EvictionCounts {
            size,
            expired: totals.get(Counter::EvictedExpired),
            explicit: totals.get(Counter::EvictedExplicit),
            replaced: totals.get(Counter::EvictedReplaced),
        };
        let load_time_snapshot = inner.stats.load_time();
        let get_latency_snapshot = inner.stats.get_latency();
        let mut metrics = CacheMetrics {
            name: inner.name.clone(),
            hits: totals.get(Counter::Hits),
            misses: totals.get(Counter::Misses),
            hit_rate: None,
            inserts: totals.get(Counter::Inserts),
            updates: evictions.replaced,
            invalidations: totals.get(Counter::Invalidations),
            evictions,
            loads_ok: totals.get(Counter::LoadsOk),
            loads_failed: totals.get(Counter::LoadsFailed),
            loads_uncached: totals.get(Counter::LoadsUncached),
            load_time: load_time_snapshot.summary(),
            get_latency: get_latency_snapshot.summary(),
            entries,
            weighted_bytes: inner.moka.weighted_size(),
            max_entries: inner.max_entries,
            max_memory_bytes: inner.max_memory_bytes,
            entry_utilization: 0.0,
            memory_utilization: 0.0,
            ttl_seconds: inner.time_to_live.map(|ttl| ttl.as_secs_f64()),
            stat_shards: inner.stats.shard_count(),
            cleanup_interval_seconds: inner.cleanup_interval.map(|every| every.as_secs_f64()),
            efficiency_score: 0.0,
            curve: None,
            load_time_snapshot,
            get_latency_snapshot,
            raw_curve: inner.advisor.as_ref().map(Advisor::curve),
        };
        metrics.derive();
        metrics
    }

    /// Runs pending maintenance, then takes a snapshot whose entry count and bytes are exact.
    pub async fn settled_metrics(&self) -> CacheMetrics {
        self.run_pending_tasks().await;
        self.metrics()
    }

    /// Advice from the cumulative statistics (see [`recommendations_from`](crate::recommendations_from)).
    pub fn recommendations(&self) -> Vec<Recommendation> {
        crate::recommend::recommendations_from(&self.metrics())
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

    /// Maintenance: moka's pending writes and evictions, then the advisor's samples.
    async fn settle(&self) {
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
    fn in_flight(&self, begun: Counter, ended: Counter) -> Option<InFlight<'_>> {
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
    fn derived_size_evictions(&self, created: u64, entries: u64) -> u64 {
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

    fn record_explicit(&self, removed: bool) {
        if removed {
            self.stats.incr(Counter::EvictedExplicit);
        }
    }

    /// Counts a lookup's hit or miss on `slot` and hands a sampled key to the advisor;
    /// returns the key's sample hash, if it is sampled.
    fn record_lookup<Q: Hash + ?Sized>(&self, slot: usize, key: &Q, hit: bool) -> Option<u64> {
        let counter = if hit { Counter::Hits } else { Counter::Misses };
        self.stats.add_at(slot, counter, 1);
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

/// Keeps an operation counted as in flight until dropped.
struct InFlight<'a> {
    stats: &'a Stats,
    ended: Counter,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.stats.incr(self.ended);
    }
}

/// Why a load's result is not stored: moka shares it with every waiting caller.
enum NotCached<V, E> {
    /// The value weighs more than the cache may hold; each caller gets a clone.
    Oversized(V),
    /// The load failed; each caller gets the same error.
    Failed(Arc<E>),
}

fn narrow(weight: u64) -> u32 {
    u32::try_from(weight).unwrap_or(u32::MAX)
}

/// Runs maintenance every `interval` until the cache is gone.
async fn cleanup_loop<K, V>(cache: Weak<Inner<K, V>>, interval: Duration)
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
