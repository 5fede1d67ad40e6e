//! Lock-free statistics striped over cache lines.
//!
//! The counters and the load-time histograms are perf-core [`Striped`] values: each thread
//! records into its own stripe ([`Striped::with_local`]), with a plain load and store where
//! the thread owns the stripe (no locked instruction) and relaxed atomic adds on the overflow
//! stripe, so threads do not fight over one cache line. Reading sums all stripes. Get
//! latency is timed for one get in [`LATENCY_SAMPLE_EVERY`] per thread.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use resync_perf_core::stripes::Striped;
use resync_perf_core::{Histogram, HistogramSnapshot};

/// One get in this many (per thread) is timed for the latency histogram.
pub(crate) const LATENCY_SAMPLE_EVERY: u32 = 64;

/// The counters a shard holds, by position.
#[derive(Debug, Clone, Copy)]
#[repr(usize)]
pub(crate) enum Counter {
    Hits,
    Misses,
    Inserts,
    Invalidations,
    EvictedSize,
    EvictedExpired,
    EvictedExplicit,
    EvictedReplaced,
    LoadsOk,
    LoadsFailed,
    LoadsUncached,
    /// Writes that stored a key the cache did not hold (counted only without expiration,
    /// where size evictions are derived from it).
    Created,
    /// Writes (inserts, loads) begun and ended, without expiration only: the difference
    /// bounds the creates counted but perhaps not yet handed to moka.
    WritesBegun,
    WritesEnded,
    /// Removals (`invalidate`, `remove`) begun and ended, without expiration only: the
    /// difference bounds the entries removed but not yet counted as explicit.
    RemovalsBegun,
    RemovalsEnded,
}

const COUNTERS: usize = 16;

/// One stripe's counters (perf-core's `Padded` keeps each stripe on its own pair of cache
/// lines, so neighbours never false-share).
type Shard = [AtomicU64; COUNTERS];

/// Cumulative totals summed over all shards.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    pub(crate) values: [u64; COUNTERS],
}

impl Totals {
    pub(crate) fn get(&self, counter: Counter) -> u64 {
        self.values[counter as usize]
    }
}

/// Load-time histograms at most, besides the overflow stripe's (each is 15 KiB): loads are
/// frequent enough under a read-through workload that one shared histogram's sum line would
/// bounce between cores.
const MAX_LOAD_STRIPES: usize = 8;

/// Striped counters plus the (striped) load-time and sampled get-latency histograms.
#[derive(Debug)]
pub(crate) struct Stats {
    shards: Striped<Shard>,
    load_time: Striped<Histogram>,
    get_latency: Histogram,
}

thread_local! {
    /// The current thread's get tick: which of its gets is timed.
    static GET_TICK: Cell<u32> = const { Cell::new(0) };
}

/// Whether this get is one to time (one in [`LATENCY_SAMPLE_EVERY`] per thread).
#[inline]
pub(crate) fn latency_tick() -> bool {
    let tick = GET_TICK.with(|tick| {
        let value = tick.get();
        tick.set(value.wrapping_add(1));
        value
    });
    tick % LATENCY_SAMPLE_EVERY == 0
}

impl Stats {
    /// `shards` is rounded up to a power of two.
    pub(crate) fn new(shards: usize) -> Self {
        let shards = Striped::new(shards, Shard::default);
        let load_stripes = shards.stripe_count().min(MAX_LOAD_STRIPES);
        Self {
            shards,
            load_time: Striped::new(load_stripes, Histogram::new),
            get_latency: Histogram::new(),
        }
    }

    /// Adds `amount` to `counter` on the calling thread's shard (without a locked
    /// instruction on a shard the thread owns). Looked up at the call, never carried across
    /// an `.await`.
    #[inline]
    pub(crate) fn add(&self, counter: Counter, amount: u64) {
        self.shards
            .with_local(|shard, writer| writer.add(&shard[counter as usize], amount));
    }

    #[inline]
    pub(crate) fn incr(&self, counter: Counter) {
        self.add(counter, 1);
    }

    pub(crate) fn record_load(&self, elapsed: Duration, ok: bool) {
        let counter = if ok {
            Counter::LoadsOk
        } else {
            Counter::LoadsFailed
        };
        self.incr(counter);
        self.load_time
            .with_local(|histogram, writer| histogram.record_duration_with(writer, elapsed));
    }

    #[inline]
    pub(crate) fn record_get_latency(&self, elapsed: Duration) {
        self.get_latency.record_duration(elapsed);
    }

    pub(crate) fn totals(&self) -> Totals {
        let mut totals = Totals::default();
        for shard in self.shards.iter() {
            for (total, value) in totals.values.iter_mut().zip(shard.iter()) {
                *total += value.load(Ordering::Relaxed);
            }
        }
        totals
    }

    /// The number of stripes.
    pub(crate) fn shard_count(&self) -> usize {
        self.shards.stripe_count()
    }

    /// One counter summed over all shards.
    pub(crate) fn total(&self, counter: Counter) -> u64 {
        self.shards
            .iter()
            .map(|shard| shard[counter as usize].load(Ordering::Relaxed))
            .sum()
    }

    pub(crate) fn load_time(&self) -> HistogramSnapshot {
        let mut merged = HistogramSnapshot::default();
        for stripe in self.load_time.iter() {
            merged.merge(&stripe.snapshot());
        }
        merged
    }

    pub(crate) fn get_latency(&self) -> HistogramSnapshot {
        self.get_latency.snapshot()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn shards_are_a_power_of_two_and_sum_exactly() {
        let stats = Arc::new(Stats::new(6));
        assert_eq!(stats.shard_count(), 8);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let stats = Arc::clone(&stats);
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        stats.incr(Counter::Hits);
                    }
                    stats.incr(Counter::Misses);
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("counting thread panicked");
        }
        let totals = stats.totals();
        assert_eq!(totals.get(Counter::Hits), 40_000);
        assert_eq!(totals.get(Counter::Misses), 4);
    }

    #[test]
    fn shards_and_load_stripes_sit_on_separate_line_pairs() {
        let stats = Stats::new(4);
        let address = |shard: usize| std::ptr::from_ref(stats.shards.get(shard)) as usize;
        assert_eq!(address(1) - address(0), 128);
        let load = |stripe: usize| std::ptr::from_ref(stats.load_time.get(stripe)) as usize;
        assert_eq!((load(1) - load(0)) % 128, 0);
        assert_eq!(stats.load_time.stripe_count(), 4);
        assert_eq!(Stats::new(64).load_time.stripe_count(), MAX_LOAD_STRIPES);
    }
}
