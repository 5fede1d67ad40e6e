//! Lock-free latency histogram with fixed log-linear buckets.
//!
//! [`Histogram`] is the recording side: a dense array of atomic counters, one per bucket,
//! written with relaxed atomics only. [`HistogramSnapshot`] is the reading side: a sparse,
//! immutable copy that can be queried, subtracted (window = newer − older) and merged. The
//! bucket layout and its error bound are described in `buckets.rs` and in the crate README.

mod buckets;
#[cfg(feature = "serde")]
mod serde_impl;
mod snapshot;

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::stripes::StripeWriter;

pub use snapshot::{HistogramSnapshot, HistogramSummary};

/// A lock-free histogram of `u64` values (nanoseconds for latencies).
///
/// Recording is one relaxed `fetch_add` on the value's bucket and one on the running sum
/// (or, for a histogram of a thread's own stripe, [`record_with`](Self::record_with), a
/// plain load and store of each): no lock, no allocation, no syscall. Any number of threads may record into the same histogram
/// through a shared reference (wrap it in an `Arc` to share it).
///
/// Counters are cumulative and never reset; windowed figures come from
/// [`HistogramSnapshot::subtract`] of two snapshots.
///
/// Memory: 1 920 buckets × 8 bytes = 15 360 bytes per histogram, allocated once by
/// [`Histogram::new`].
///
/// ```
/// use resync_perf_core::Histogram;
/// use std::time::Duration;
///
/// let histogram = Histogram::new();
/// histogram.record(1_500);
/// histogram.record_duration(Duration::from_micros(20));
/// let snapshot = histogram.snapshot();
/// assert_eq!(snapshot.count(), 2);
/// assert_eq!(snapshot.sum(), 21_500);
/// ```
pub struct Histogram {
    /// One counter per bucket, indexed by `buckets::index_of`.
    counts: Box<[AtomicU64]>,
    /// Running sum of recorded values; wraps on overflow, which `sum_overflowed` remembers.
    sum: AtomicU64,
    /// Set once the sum has exceeded `u64::MAX`; the snapshot then reports a saturated sum.
    sum_overflowed: AtomicBool,
}

impl Histogram {
    /// Creates an empty histogram (allocates its 15 KiB of counters).
    #[must_use]
    pub fn new() -> Self {
        let counts = (0..buckets::BUCKET_COUNT)
            .map(|_| AtomicU64::new(0))
            .collect::<Vec<_>>()
            .into_boxed_slice();
        Self {
            counts,
            sum: AtomicU64::new(0),
            sum_overflowed: AtomicBool::new(false),
        }
    }

    /// Records one value.
    #[inline]
    pub fn record(&self, value: u64) {
        self.record_n(value, 1);
    }

    /// Records `value` `n` times (a no-op when `n` is 0).
    #[inline]
    pub fn record_n(&self, value: u64, n: u64) {
        self.record_n_with(&StripeWriter::ATOMIC, value, n);
    }

    /// Records one value into a histogram of the stripe `writer` came with (see
    /// [`Striped::with_local`](crate::stripes::Striped::with_local)): without a locked
    /// instruction when the calling thread owns the stripe. Every value recorded into this
    /// histogram must then come this way.
    #[inline]
    pub fn record_with(&self, writer: &StripeWriter, value: u64) {
        self.record_n_with(writer, value, 1);
    }

    /// [`record_with`](Self::record_with) for a duration, as nanoseconds (saturating).
    #[inline]
    pub fn record_duration_with(&self, writer: &StripeWriter, duration: Duration) {
        self.record_with(
            writer,
            u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX),
        );
    }

    #[inline]
    fn record_n_with(&self, writer: &StripeWriter, value: u64, n: u64) {
        if n == 0 {
            return;
        }
        writer.add(&self.counts[buckets::index_of(value)], n);
        let (added, overflowed) = match value.checked_mul(n) {
            Some(added) => (added, false),
            None => (u64::MAX, true),
        };
        let previous = writer.fetch_add(&self.sum, added);
        if overflowed || previous.checked_add(added).is_none() {
            self.sum_overflowed.store(true, Ordering::Relaxed);
        }
    }

    /// Records a duration as nanoseconds, saturating at `u64::MAX` (≈ 584 years).
    #[inline]
    pub fn record_duration(&self, duration: Duration) {
        self.record(u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Takes a sparse snapshot of the counters.
    ///
    /// The snapshot's count is the sum of its buckets. Values recorded while the snapshot is
    /// being taken may be counted in the buckets but not yet in the sum (or the reverse); the
    /// next snapshot includes them fully. Allocates only for the non-zero buckets.
    #[must_use]
    pub fn snapshot(&self) -> HistogramSnapshot {
        let sum = if self.sum_overflowed.load(Ordering::Relaxed) {
            u64::MAX
        } else {
            self.sum.load(Ordering::Relaxed)
        };
        let buckets = self.counts.iter().enumerate().filter_map(|(index, count)| {
            let count = count.load(Ordering::Relaxed);
            (count > 0).then_some((index, count))
        });
        HistogramSnapshot::from_sorted_buckets(buckets, sum)
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Histogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Printing 1 920 counters helps nobody; the summary says what is inside.
        f.debug_struct("Histogram")
            .field("summary", &self.snapshot().summary())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_histogram_snapshot_is_empty() {
        let snapshot = Histogram::new().snapshot();
        assert_eq!(snapshot, HistogramSnapshot::default());
        assert_eq!(snapshot.count(), 0);
        assert_eq!(snapshot.percentile(0.5), 0);
    }

    #[test]
    fn threads_recording_into_their_stripes_lose_nothing() {
        // Two stripes for eight threads: owners write plainly, the rest share the overflow
        // stripe atomically.
        let striped = crate::stripes::Striped::new(2, Histogram::new);
        std::thread::scope(|scope| {
            for thread in 0..8u64 {
                let striped = &striped;
                scope.spawn(move || {
                    for _ in 0..5_000 {
                        striped.with_local(|histogram, writer| {
                            histogram
                                .record_duration_with(writer, Duration::from_nanos(thread + 1));
                        });
                    }
                });
            }
        });
        let mut merged = HistogramSnapshot::default();
        for histogram in striped.iter() {
            merged.merge(&histogram.snapshot());
        }
        assert_eq!(merged.count(), 40_000);
        assert_eq!(merged.sum(), 5_000 * (1..=8).sum::<u64>());
    }

    #[test]
    fn record_n_counts_n_times_and_zero_is_a_no_op() {
        let histogram = Histogram::new();
        histogram.record_n(1_000, 3);
        histogram.record_n(5, 0);
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.count(), 3);
        assert_eq!(snapshot.sum(), 3_000);
        assert_eq!(snapshot.buckets().count(), 1);
    }

    #[test]
    fn sum_saturates_instead_of_wrapping() {
        let histogram = Histogram::new();
        histogram.record(u64::MAX - 1);
        histogram.record(10);
        assert_eq!(histogram.snapshot().sum(), u64::MAX);

        let multiplied = Histogram::new();
        multiplied.record_n(u64::MAX / 2, 3);
        assert_eq!(multiplied.snapshot().sum(), u64::MAX);
        assert_eq!(multiplied.snapshot().count(), 3);
    }

    #[test]
    fn record_duration_uses_nanoseconds_and_saturates() {
        let histogram = Histogram::new();
        histogram.record_duration(Duration::from_micros(3));
        histogram.record_duration(Duration::MAX);
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.count(), 2);
        assert!(snapshot.min() <= 3_000 && (3_000 - snapshot.min()) * 32 < 3_000);
        assert_eq!(snapshot.max(), u64::MAX);
    }

    #[test]
    fn debug_shows_the_summary() {
        let histogram = Histogram::default();
        histogram.record(42);
        let text = format!("{histogram:?}");
        assert!(text.contains("count: 1"), "{text}");
    }
}
