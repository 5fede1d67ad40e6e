//! The cache builder and its validation.

use std::fmt;
use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use moka::Expiry;

use crate::cache::{Cache, Weigher};
use crate::error::{ConfigProblem, Error};
use crate::memory_size::MemorySize;

/// Default entry bound.
pub const DEFAULT_MAX_ENTRIES: u64 = 100_000;
/// Default memory bound: 100 MiB.
pub const DEFAULT_MAX_MEMORY_BYTES: u64 = 100 * 1024 * 1024;
/// Default number of statistics shards.
pub const DEFAULT_STAT_SHARDS: usize = 16;

/// moka's own bookkeeping per entry, added to every entry's weight by the default weigher.
///
/// Measured with the `memory_check` example (`u64` keys, 1 KiB `Vec<u8>` values, a 100 MiB
/// bound, ten times more inserts than fit): counting only the entries' own 1 056 bytes, the
/// process's resident memory grew by about 1 415 bytes per kept entry, i.e. about 350 bytes
/// beyond what the entry owns (moka's hash-table bucket and node, its `Arc`ed entry info, the
/// access- and write-order deque nodes, the allocator's chunk headers) and RSS reached 1.34×
/// the bound. 320 bytes is that figure less the part that scales with the value (allocator
/// rounding of the value buffer), so small entries are not over-charged; the README records
/// the measurement and the RSS it gives.
pub const ENTRY_OVERHEAD_BYTES: u64 = 320;

/// Builds a [`Cache`]. Every setting has a default; `build` validates them all at once.
#[must_use = "a builder does nothing until `build` is called"]
pub struct CacheBuilder<K, V> {
    pub(crate) name: String,
    pub(crate) max_entries: u64,
    pub(crate) max_memory_bytes: u64,
    pub(crate) time_to_live: Option<Duration>,
    pub(crate) time_to_idle: Option<Duration>,
    pub(crate) expiry: Option<Box<dyn Expiry<K, V> + Send + Sync + 'static>>,
    pub(crate) stat_shards: usize,
    pub(crate) cleanup_interval: Option<Duration>,
    pub(crate) weigher: Option<Weigher<K, V>>,
    pub(crate) advisor: bool,
    pub(crate) advisor_sample_rate: Option<f64>,
    /// A lower bound of every entry's weight, when the weigher's is known (the default
    /// weigher's fixed part).
    pub(crate) min_entry_weight: Option<u64>,
    _types: PhantomData<fn(K, V)>,
}

impl<K, V> fmt::Debug for CacheBuilder<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheBuilder")
            .field("name", &self.name)
            .field("max_entries", &self.max_entries)
            .field("max_memory_bytes", &self.max_memory_bytes)
            .field("time_to_live", &self.time_to_live)
            .field("time_to_idle", &self.time_to_idle)
            .field("expiry", &self.expiry.is_some())
            .field("stat_shards", &self.stat_shards)
            .field("cleanup_interval", &self.cleanup_interval)
            .field("custom_weigher", &self.weigher.is_some())
            .field("advisor", &self.advisor)
            .finish()
    }
}

impl<K, V> Default for CacheBuilder<K, V> {
    fn default() -> Self {
        Self {
            name: "cache".to_owned(),
            max_entries: DEFAULT_MAX_ENTRIES,
            max_memory_bytes: DEFAULT_MAX_MEMORY_BYTES,
            time_to_live: None,
            time_to_idle: None,
            expiry: None,
            stat_shards: DEFAULT_STAT_SHARDS,
            cleanup_interval: None,
            weigher: None,
            advisor: true,
            advisor_sample_rate: None,
            min_entry_weight: None,
            _types: PhantomData,
        }
    }
}

impl<K, V> CacheBuilder<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// A builder with the defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// The name used in metrics and in recommendations (`cache:{name}`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Upper bound on the number of entries (default 100 000).
    pub fn max_entries(mut self, max_entries: u64) -> Self {
        self.max_entries = max_entries;
        self
    }

    /// Upper bound on the entries' estimated bytes (default 100 MiB).
    pub fn max_memory_bytes(mut self, max_memory_bytes: u64) -> Self {
        self.max_memory_bytes = max_memory_bytes;
        self
    }

    /// Time-to-live, counted from the write; reads never extend it.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.time_to_live = Some(ttl);
        self
    }

    /// Time-to-idle, counted from the last read or write.
    pub fn time_to_idle(mut self, time_to_idle: Duration) -> Self {
        self.time_to_idle = Some(time_to_idle);
        self
    }

    /// Per-entry expiry (moka's [`Expiry`]); with TTL and TTI set too, the earliest wins.
    pub fn expiry(mut self, expiry: impl Expiry<K, V> + Send + Sync + 'static) -> Self {
        self.expiry = Some(Box::new(expiry));
        self
    }

    /// Number of statistics shards (rounded up to a power of two; default 16).
    pub fn stat_shards(mut self, stat_shards: usize) -> Self {
        self.stat_shards = stat_shards;
        self
    }

    /// Runs moka's maintenance at this interval in a background task so expired entries
    /// leave memory even when nobody uses the cache. The task stops when the last clone of
    /// the cache is dropped. Needs a Tokio runtime at `build`.
    pub fn cleanup_interval(mut self, interval: Duration) -> Self {
        self.cleanup_interval = Some(interval);
        self
    }

    /// Replaces the [`MemorySize`] estimate and the per-entry overhead with your own (bytes
    /// per entry, before the per-entry floor `max_memory_bytes / max_entries` is applied).
    /// The weigher sees the key and the value only, not the 8-byte instant the cache stores
    /// beside each value (see the crate README, *Statistics*). Use
    /// [`build_with_weigher`](Self::build_with_weigher) for types without `MemorySize`.
    pub fn weigher(mut self, weigher: impl Fn(&K, &V) -> u64 + Send + Sync + 'static) -> Self {
        self.weigher = Some(Arc::new(weigher));
        self
    }

    /// Turns the miss-ratio-curve advisor on or off (default on).
    pub fn advisor(mut self, enabled: bool) -> Self {
        self.advisor = enabled;
        self
    }

    /// Share of keys the advisor samples, in (0, 1]. By default 1 %, raised for small caches
    /// so the 1× miniature can hold at least 256 entries; with that default, a cache of fewer
    /// than 8 192 entries replays only some windows of its sample into the miniatures under
    /// load, so that the advisor replays at most about 1/32 of all gets and writes (see the
    /// crate README, *The advisor*). A rate set here replays every sampled operation.
    pub fn advisor_sample_rate(mut self, rate: f64) -> Self {
        self.advisor_sample_rate = Some(rate);
        self
    }

    /// Every problem with the settings, each naming its field.
    pub fn validate(&self) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        let mut problem = |field, reason: &str| {
            problems.push(ConfigProblem {
                field,
                reason: reason.to_owned(),
            });
        };
        if self.name.trim().is_empty() {
            problem("name", "must not be empty");
        }
        if self.max_entries == 0 {
            problem("max_entries", "must be at least 1");
        }
        if self.max_memory_bytes == 0 {
            problem("max_memory_bytes", "must be at least 1");
        }
        if self.max_entries > self.max_memory_bytes && self.max_memory_bytes > 0 {
            problem(
                "max_entries",
                "must not exceed max_memory_bytes (each entry weighs at least one byte)",
            );
        }
        if self.max_entries > 0
            && self.max_memory_bytes.div_ceil(self.max_entries) > u64::from(u32::MAX)
        {
            problem(
                "max_entries",
                "too small for max_memory_bytes: the per-entry weight floor max_memory_bytes / max_entries must not exceed u32::MAX bytes, the largest weight moka tracks",
            );
        }
        if self.time_to_live == Some(Duration::ZERO) {
            problem("ttl", "must be longer than zero");
        }
        if self.time_to_idle == Some(Duration::ZERO) {
            problem("time_to_idle", "must be longer than zero");
        }
        if self.stat_shards == 0 || self.stat_shards > 1024 {
            problem("stat_shards", "must be between 1 and 1024");
        }
        if self.cleanup_interval == Some(Duration::ZERO) {
            problem("cleanup_interval", "must be longer than zero");
        }
        if let Some(rate) = self.advisor_sample_rate {
            if !(rate > 0.0 && rate <= 1.0) {
                problem("advisor_sample_rate", "must be in (0, 1]");
            }
        }
        problems
    }

    /// Builds a cache whose weigher is the given function instead of [`MemorySize`].
    pub fn build_with_weigher(
        mut self,
        weigher: impl Fn(&K, &V) -> u64 + Send + Sync + 'static,
    ) -> Result<Cache<K, V>, Error> {
        self.weigher = Some(Arc::new(weigher));
        self.build_checked()
    }

    pub(crate) fn build_checked(self) -> Result<Cache<K, V>, Error> {
        let problems = self.validate();
        if !problems.is_empty() {
            return Err(Error::InvalidConfig { problems });
        }
        Cache::from_builder(self)
    }
}

impl<K, V> CacheBuilder<K, V>
where
    K: Hash + Eq + Send + Sync + MemorySize + 'static,
    V: Clone + Send + Sync + MemorySize + 'static,
{
    /// Validates the settings and builds the cache. Entries weigh
    /// `size_of::<K>() + size_of::<V>()` (plus the 8-byte stamp the cache stores with each
    /// value, and its alignment padding) `+ heap bytes +` [`ENTRY_OVERHEAD_BYTES`] unless a
    /// [`weigher`](Self::weigher) was set.
    pub fn build(mut self) -> Result<Cache<K, V>, Error> {
        if self.weigher.is_none() {
            let inline = (std::mem::size_of::<K>()
                + std::mem::size_of::<crate::stored::Stored<V>>()) as u64
                + ENTRY_OVERHEAD_BYTES;
            self.weigher = Some(Arc::new(move |key: &K, value: &V| {
                inline + (key.heap_bytes() + value.heap_bytes()) as u64
            }));
            self.min_entry_weight = Some(inline);
        }
        self.build_checked()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_is_reported_with_its_field() {
        let builder = CacheBuilder::<u64, u64>::new()
            .name(" ")
            .max_entries(0)
            .max_memory_bytes(0)
            .ttl(Duration::ZERO)
            .stat_shards(0)
            .advisor_sample_rate(1.5);
        let fields: Vec<_> = builder
            .validate()
            .iter()
            .map(|problem| problem.field)
            .collect();
        assert_eq!(
            fields,
            [
                "name",
                "max_entries",
                "max_memory_bytes",
                "ttl",
                "stat_shards",
                "advisor_sample_rate"
            ]
        );
        let message = builder
            .build()
            .expect_err("invalid settings must be refused")
            .to_string();
        assert!(
            message.contains("max_entries: must be at least 1"),
            "{message}"
        );
    }

    #[test]
    fn a_weight_floor_moka_cannot_track_is_refused() {
        let floor_too_heavy = CacheBuilder::<u64, u64>::new()
            .max_entries(2)
            .max_memory_bytes(2 * (u64::from(u32::MAX) + 1));
        let fields: Vec<_> = floor_too_heavy
            .validate()
            .iter()
            .map(|problem| problem.field)
            .collect();
        assert_eq!(fields, ["max_entries"]);
        let floor_at_limit = CacheBuilder::<u64, u64>::new()
            .max_entries(2)
            .max_memory_bytes(2 * u64::from(u32::MAX));
        assert!(floor_at_limit.validate().is_empty());
    }

    #[test]
    fn defaults_are_valid() {
        assert!(CacheBuilder::<u64, u64>::new().validate().is_empty());
    }
}
