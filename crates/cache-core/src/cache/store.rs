//! Where the entries live: a moka cache bounded by entries, with no weigher, while every
//! entry weighs the per-entry floor; a moka cache weighed in bytes from the first entry
//! heavier than that.
//!
//! Why two: moka's TinyLFU admission is the same with or without a weigher when every entry
//! weighs the same, but moka sizes its frequency sketch differently. Without a weigher the
//! sketch gets `max_capacity` counters; with one it gets `entry_count · weighted_size /
//! max_capacity` at the moment the cache is first half full — a quarter of the entries it
//! will hold (`enable_frequency_sketch` in moka 0.12.16's `future/base_cache.rs`; a weigher
//! that returns 1 is sized the same way). A four times smaller sketch collides more and
//! ages four times sooner, which cost 0.4 points of hit rate on a Zipf trace against bare
//! moka. moka builds the sketch once and cannot drop a weigher later, so the cache starts
//! without one when it can and moves to the weighed moka, once, when it must.
//!
//! Both bounds hold either way. Bounded by entries, moka keeps at most
//! `min(max_entries, max_memory_bytes / floor)` entries of exactly the floor each: at most
//! `max_entries`, at most `max_memory_bytes`. A write heavier than the floor first builds
//! the byte-weighed moka, where (as always with a weigher) a total weight within the memory
//! bound implies the entry bound; every operation uses it from then on, and the entries of
//! the first moka are dropped (moka can neither re-weigh nor hand back its keys), counted
//! as size evictions. Writes that raced the move into the first moka are dropped at the
//! next maintenance pass.

use std::hash::Hash;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use moka::Expiry;

use super::causes::Causes;
use super::Weigher;
use crate::stats::Stats;
use crate::stored::{Stored, UserExpiry};

/// The moka cache behind this one, hashing with aHash.
pub(super) type Moka<K, V> = moka::future::Cache<K, Stored<V>, ahash::RandomState>;

/// How a moka cache weighs its entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Weighing {
    /// No weigher, `max_capacity` in entries: bare moka's policy, sketch included. Only
    /// while every entry weighs the per-entry floor.
    Entries,
    /// The weigher (at least the floor), `max_capacity` in bytes.
    Bytes,
}

/// What building a moka cache for this cache takes, kept to build the byte-weighed one
/// when the first entry heavier than the floor arrives.
pub(super) struct MokaConfig<K, V> {
    pub(super) name: String,
    pub(super) max_memory_bytes: u64,
    /// `min(max_entries, max_memory_bytes / floor)`: entries of the floor's weight that fit
    /// both bounds.
    pub(super) max_floor_entries: u64,
    pub(super) weigher: Weigher<K, V>,
    pub(super) min_weight: u64,
    pub(super) expires: bool,
    pub(super) stats: Arc<Stats>,
    pub(super) time_to_live: Option<Duration>,
    pub(super) time_to_idle: Option<Duration>,
    pub(super) expiry: Option<Arc<dyn Expiry<K, V> + Send + Sync + 'static>>,
}

impl<K, V> MokaConfig<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// A moka cache weighing as told. `retired`, for the entry-weighed one: once set, its
    /// listener reports explicit removals as size evictions (the cache dropping it).
    fn build(&self, weighing: Weighing, retired: &Arc<AtomicBool>) -> (Moka<K, V>, Causes) {
        let builder = moka::future::Cache::builder().name(&self.name);
        let builder = match weighing {
            Weighing::Entries => builder.max_capacity(self.max_floor_entries),
            Weighing::Bytes => {
                let weigher = Arc::clone(&self.weigher);
                let min_weight = self.min_weight;
                builder.max_capacity(self.max_memory_bytes).weigher(
                    move |key: &K, stored: &Stored<V>| {
                        let weight = weigher(key, &stored.value).max(min_weight);
                        u32::try_from(weight).unwrap_or(u32::MAX)
                    },
                )
            }
        };
        let retired = (weighing == Weighing::Entries).then(|| Arc::clone(retired));
        let (mut builder, causes) = Causes::install(builder, self.expires, &self.stats, retired);
        if let Some(ttl) = self.time_to_live {
            builder = builder.time_to_live(ttl);
        }
        if let Some(tti) = self.time_to_idle {
            builder = builder.time_to_idle(tti);
        }
        if let Some(expiry) = &self.expiry {
            builder = builder.expire_after(UserExpiry {
                inner: Arc::clone(expiry),
            });
        }
        (builder.build_with_hasher(ahash::RandomState::new()), causes)
    }
}

/// The moka cache (or two) holding the entries.
pub(super) struct Store<K, V> {
    /// The cache built first: weighing entries, or bytes when entries may outweigh the floor
    /// from the start.
    first: Moka<K, V>,
    first_weighing: Weighing,
    /// The byte-weighed cache, once an entry heavier than the floor was written into an
    /// entry-weighed first cache; every operation uses it from then on.
    by_bytes: OnceLock<Moka<K, V>>,
    /// Writes heavier than this need the byte-weighed cache: the floor while the first cache
    /// weighs entries, `u64::MAX` when it weighs bytes.
    switch_above: u64,
    /// Set when the entry-weighed first cache is being dropped; read by its listener.
    first_retired: Arc<AtomicBool>,
    config: MokaConfig<K, V>,
}

impl<K, V> Store<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// The first cache weighing as told, with the causes it counts.
    pub(super) fn new(config: MokaConfig<K, V>, weighing: Weighing) -> (Self, Causes) {
        let first_retired = Arc::new(AtomicBool::new(false));
        let (first, causes) = config.build(weighing, &first_retired);
        let switch_above = match weighing {
            Weighing::Entries => config.min_weight,
            Weighing::Bytes => u64::MAX,
        };
        let store = Self {
            first,
            first_weighing: weighing,
            by_bytes: OnceLock::new(),
            switch_above,
            first_retired,
            config,
        };
        (store, causes)
    }

    /// The cache every operation uses now.
    #[inline]
    pub(super) fn active(&self) -> &Moka<K, V> {
        match self.by_bytes.get() {
            Some(by_bytes) => by_bytes,
            None => &self.first,
        }
    }

    /// Whether an entry of `weight` needs the byte-weighed cache, which does not exist yet.
    #[inline]
    pub(super) fn needs_bytes(&self, weight: u64) -> bool {
        weight > self.switch_above && self.by_bytes.get().is_none()
    }

    /// Builds the byte-weighed cache and makes it the active one; `true` for the one call
    /// that built it, which then drops the first cache with [`drop_first`](Self::drop_first).
    pub(super) fn weigh_bytes(&self) -> bool {
        let mut built = false;
        self.by_bytes.get_or_init(|| {
            built = true;
            self.config.build(Weighing::Bytes, &self.first_retired).0
        });
        if built {
            self.first_retired.store(true, Ordering::Release);
        }
        built
    }

    /// Drops what the first cache still holds, once it is no longer the active one (the
    /// move's own entries, and writes that raced it); nothing before.
    pub(super) async fn drop_first(&self) {
        if self.by_bytes.get().is_some() {
            self.first.invalidate_all();
            self.first.run_pending_tasks().await;
        }
    }

    /// Maintenance on every cache: the first one emptied once it was replaced.
    pub(super) async fn run_pending_tasks(&self) {
        match self.by_bytes.get() {
            None => self.first.run_pending_tasks().await,
            Some(by_bytes) => {
                self.drop_first().await;
                by_bytes.run_pending_tasks().await;
            }
        }
    }

    /// Drops every entry of every cache (moka's `invalidate_all`: applied at maintenance).
    pub(super) fn invalidate_all(&self) {
        self.first.invalidate_all();
        if let Some(by_bytes) = self.by_bytes.get() {
            by_bytes.invalidate_all();
        }
    }
}

impl<K, V> Store<K, V> {
    /// How the cache every operation uses now weighs entries.
    pub(super) fn weighing(&self) -> Weighing {
        match self.by_bytes.get() {
            Some(_) => Weighing::Bytes,
            None => self.first_weighing,
        }
    }

    /// The moka caches in use: one, or two after the move (writes may still be pending in
    /// the first).
    pub(super) fn caches(&self) -> u64 {
        1 + u64::from(self.by_bytes.get().is_some())
    }

    /// Entries in all caches, as of each one's last maintenance pass.
    pub(super) fn entry_count(&self) -> u64 {
        self.first.entry_count() + self.by_bytes.get().map_or(0, Moka::entry_count)
    }

    /// Bytes the entries weigh: the floor each in an entry-weighed cache (exact: every entry
    /// there weighs it), moka's weighted size in a byte-weighed one.
    pub(super) fn weighted_size(&self) -> u64 {
        let first = match self.first_weighing {
            Weighing::Entries => self
                .first
                .entry_count()
                .saturating_mul(self.config.min_weight),
            Weighing::Bytes => self.first.weighted_size(),
        };
        first + self.by_bytes.get().map_or(0, Moka::weighted_size)
    }
}
