//! The cache itself: moka plus striped statistics and the advisor.

use std::borrow::Borrow;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use moka::notification::RemovalCause;
use resync_perf_core::Recommendation;

use crate::advisor::{Advisor, AdvisorConfig, SampleKind};
use crate::builder::CacheBuilder;
use crate::error::Error;
use crate::metrics::CacheMetrics;
use crate::stats::{thread_slot_tick, Counter, Stats};

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
    moka: moka::future::Cache<K, V>,
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
    cleanup: OnceLock<tokio::task::AbortHandle>,
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

        let listener_stats = Arc::clone(&stats);
        let moka_weigher = Arc::clone(&weigher);
        let mut moka = moka::future::Cache::builder()
            .name(&builder.name)
            .max_capacity(builder.max_memory_bytes)
            .weigher(move |key: &K, value: &V| {
                let weight = moka_weigher(key, value).max(min_weight);
                u32::try_from(weight).unwrap_or(u32::MAX)
            })
            .eviction_listener(move |_key, _value, cause| {
                listener_stats.incr(match cause {
                    RemovalCause::Size => Counter::EvictedSize,
                    RemovalCause::Expired => Counter::EvictedExpired,
                    RemovalCause::Explicit => Counter::EvictedExplicit,
                    RemovalCause::Replaced => Counter::EvictedReplaced,
                });
            });
        if let Some(ttl) = builder.time_to_live {
            moka = moka.time_to_live(ttl);
        }
        if let Some(tti) = builder.time_to_idle {
            moka = moka.time_to_idle(tti);
        }
        if let Some(expiry) = builder.expiry {
            moka = moka.expire_after(expiry);
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
            cleanup: OnceLock::new(),
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
        };
        let counter = if value.is_some() {
            Counter::Hits
        } else {
            Counter::Misses
        };
        inner.stats.add_at(slot, counter, 1);
        if let Some(advisor) = &inner.advisor {
            if let Some(hash) = advisor.sampled(key) {
                advisor.record(
                    hash,
                    SampleKind::Get {
                        hit: value.is_some(),
                    },
                );
            }
        }
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
        inner.moka.insert(key, value).await;
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
    /// `K: Clone` because the weight is checked before moka stores the value, while the
    /// key is still the caller's; moka clones it once, when it inserts.
    pub async fn get_with(&self, key: K, init: impl Future<Output = V>) -> V
    where
        K: Clone,
    {
        let loaded = self
            .load(key, async { Ok::<V, std::convert::Infallible>(init.await) })
            .await;
        match loaded {
            Ok(value) => value,
            Err(never) => match *never {},
        }
    }

    /// Like [`get_with`](Self::get_with) for a fallible load. A failed load is counted,
    /// not cached, and its error is shared with every caller that waited for it.
    ///
    /// # Errors
    ///
    /// The error `init` returned, shared in an `Arc`.
    pub async fn try_get_with<F, E>(&self, key: K, init: F) -> Result<V, Arc<E>>
    where
        K: Clone,
        F: Future<Output = Result<V, E>>,
        E: Send + Sync + 'static,
    {
        self.load(key, init).await
    }

    /// The hit path, then one coalesced load through moka's entry API. An oversized value
    /// travels to the waiters as the shared "error" so moka never stores it.
    async fn load<F, E>(&self, key: K, init: F) -> Result<V, Arc<E>>
    where
        K: Clone,
        F: Future<Output = Result<V, E>>,
        E: Send + Sync + 'static,
    {
        if let Some(value) = self.get(&key).await {
            return Ok(value);
        }
        let inner = &*self.inner;
        let load = async {
            let start = Instant::now();
            let result = init.await;
            inner.stats.record_load(start.elapsed(), result.is_ok());
            match result {
                Ok(value) if inner.weigh(&key, &value) > inner.max_entry_weight => {
                    inner.stats.incr(Counter::LoadsUncached);
                    Err(NotCached::Oversized(value))
                }
                Ok(value) => Ok(value),
                Err(error) => Err(NotCached::Failed(Arc::new(error))),
            }
        };
        match inner.moka.entry_by_ref(&key).or_try_insert_with(load).await {
            Ok(entry) => {
                if entry.is_fresh() {
                    inner.after_load(entry.key(), entry.value());
                }
                Ok(entry.into_value())
            }
            Err(not_cached) => match &*not_cached {
                NotCached::Oversized(value) => Ok(value.clone()),
                NotCached::Failed(error) => Err(Arc::clone(error)),
            },
        }
    }

    /// Removes `key` (counted as an invalidation and, if present, an explicit eviction).
    pub async fn invalidate<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let inner = &*self.inner;
        inner.moka.invalidate(key).await;
        inner.record_removal(key);
    }

    /// Removes `key` and returns its value.
    pub async fn remove<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let inner = &*self.inner;
        let value = inner.moka.remove(key).await;
        inner.record_removal(key);
        value
    }

    /// Removes every entry (the removals happen at the next maintenance pass).
    pub async fn invalidate_all(&self) {
        let inner = &*self.inner;
        inner.moka.invalidate_all();
        inner.stats.incr(Counter::Invalidations);
        if let Some(advisor) = &inner.advisor {
            advisor.clear();
        }
    }

    /// Runs moka's pending maintenance (evictions, expirations, removal notifications) and
    /// replays the advisor's buffered samples. Bounds and counts are exact afterwards.
    pub async fn run_pending_tasks(&self) {
        self.inner.moka.run_pending_tasks().await;
        if let Some(advisor) = &self.inner.advisor {
            advisor.flush();
        }
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
        let totals = inner.stats.totals();
        let evictions = crate::metrics::EvictionCounts {
            size: totals.get(Counter::EvictedSize),
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
            entries: inner.moka.entry_count(),
            weighted_bytes: inner.moka.weighted_size(),
            max_entries: inner.max_entries,
            max_memory_bytes: inner.max_memory_bytes,
            entry_utilization: 0.0,
            memory_utilization: 0.0,
            ttl_seconds: inner.time_to_live.map(|ttl| ttl.as_secs_f64()),
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

    fn after_load(&self, key: &K, value: &V) {
        self.stats.incr(Counter::Inserts);
        if let Some(advisor) = &self.advisor {
            if let Some(hash) = advisor.sampled(key) {
                advisor.record(hash, SampleKind::Write(narrow(self.weigh(key, value))));
            }
        }
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
        inner.moka.run_pending_tasks().await;
        if let Some(advisor) = &inner.advisor {
            advisor.flush();
        }
    }
}
