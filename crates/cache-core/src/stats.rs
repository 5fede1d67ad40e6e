//! Lock-free statistics striped over cache lines.
//!
//! Each thread picks one shard (a thread-local index handed out round-robin) and records into
//! it with relaxed atomic adds, so threads do not fight over one cache line. Reading sums all
//! shards. Get latency is timed for one get in [`LATENCY_SAMPLE_EVERY`] per thread.

use std::cell::Cell;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

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

/// One shard, alone on its (pair of) cache lines so neighbours never false-share.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Shard {
    values: [AtomicU64; COUNTERS],
}

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

/// Load-time histograms at most (each is 15 KiB): loads are frequent enough under a
/// read-through workload that one shared histogram's sum line would bounce between cores.
const MAX_LOAD_STRIPES: usize = 8;

/// One load-time histogram, aligned so that neighbouring stripes' sums never false-share.
#[derive(Debug, Default)]
#[repr(align(128))]
struct LoadStripe(Histogram);

/// Striped counters plus the (striped) load-time and sampled get-latency histograms.
#[derive(Debug)]
pub(crate) struct Stats {
    shards: Box<[Shard]>,
    mask: usize,
    load_time: Box<[LoadStripe]>,
    load_mask: usize,
    get_latency: Histogram,
}

/// Hands each thread a distinct starting shard; only a thread's first recording touches it.
static NEXT_THREAD: AtomicU32 = AtomicU32::new(0);

thread_local! {
    /// (shard seed, get tick) of the current thread.
    static THREAD_SLOT: Cell<(u32, u32)> = Cell::new((NEXT_THREAD.fetch_add(1, Ordering::Relaxed), 0));
}

/// The current thread's shard seed and whether this get is one to time.
#[inline]
pub(crate) fn thread_slot_tick() -> (usize, bool) {
    THREAD_SLOT.with(|slot| {
        let (seed, tick) = slot.get();
        slot.set((seed, tick.wrapping_add(1)));
        (seed as usize, tick % LATENCY_SAMPLE_EVERY == 0)
    })
}

/// The current thread's shard seed.
#[inline]
pub(crate) fn thread_slot() -> usize {
    THREAD_SLOT.with(|slot| slot.get().0 as usize)
}

impl Stats {
    /// `shards` is rounded up to a power of two.
    pub(crate) fn new(shards: usize) -> Self {
        let count = shards.max(1).next_power_of_two();
        let load_stripes = count.min(MAX_LOAD_STRIPES);
        Self {
            shards: (0..count).map(|_| Shard::default()).collect(),
            mask: count - 1,
            load_time: (0..load_stripes).map(|_| LoadStripe::default()).collect(),
            load_mask: load_stripes - 1,
            get_latency: Histogram::new(),
        }
    }

    #[inline]
    pub(crate) fn add_at(&self, slot: usize, counter: Counter, amount: u64) {
        self.shards[slot & self.mask].values[counter as usize].fetch_add(amount, Ordering::Relaxed);
    }

    /// Adds to the current thread's shard.
    #[inline]
    pub(crate) fn incr(&self, counter: Counter) {
        self.add_at(thread_slot(), counter, 1);
    }

    pub(crate) fn record_load(&self, elapsed: Duration, ok: bool) {
        let slot = thread_slot();
        let counter = if ok {
            Counter::LoadsOk
        } else {
            Counter::LoadsFailed
        };
        self.add_at(slot, counter, 1);
        self.load_time[slot & self.load_mask]
            .0
            .record_duration(elapsed);
    }

    #[inline]
    pub(crate) fn record_get_latency(&self, elapsed: Duration) {
        self.get_latency.record_duration(elapsed);
    }

    pub(crate) fn totals(&self) -> Totals {
        let mut totals = Totals::default();
        for shard in self.shards.iter() {
            for (total, value) in totals.values.iter_mut().zip(shard.values.iter()) {
                *total += value.load(Ordering::Relaxed);
            }
        }
        totals
    }

    /// The number of stripes.
    pub(crate) fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// One counter summed over all shards.
    pub(crate) fn total(&self, counter: Counter) -> u64 {
        self.shards
            .iter()
            .map(|shard| shard.values[counter as usize].load(Ordering::Relaxed))
            .sum()
    }

    pub(crate) fn load_time(&self) -> HistogramSnapshot {
        let mut merged = HistogramSnapshot::default();
        for stripe in self.load_time.iter() {
            merged.merge(&stripe.0.snapshot());
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
        assert_eq!(stats.shards.len(), 8);
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
    fn shard_alignment_keeps_shards_on_separate_lines() {
        assert_eq!(std::mem::align_of::<Shard>(), 128);
    }
}
