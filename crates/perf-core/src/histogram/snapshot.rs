//! The reading side of a histogram: sparse, immutable, subtractable and mergeable.

use std::cmp::Ordering;

use super::buckets;

/// A sparse, immutable copy of a [`Histogram`](super::Histogram)'s counters.
///
/// Only non-zero buckets are kept, so a snapshot of typical latencies holds a few dozen
/// `(u16, u64)` pairs and many can be kept in history. The snapshot is a pure function of its
/// bucket counts and its sum: two snapshots are equal when they hold the same counts and sum,
/// which makes [`subtract`](Self::subtract) and [`merge`](Self::merge) obey exact laws
/// (`a.merge(b).subtract(b) == a`, `a.subtract(a)` is empty, merge is commutative).
///
/// # Accuracy
///
/// - [`percentile`](Self::percentile) (and p50/p95/p99) reports the midpoint of the bucket
///   holding the exact nearest-rank percentile: at most **1/64 = 1.5625 %** away from it
///   (exact below 64).
/// - [`min`](Self::min) and [`max`](Self::max) report the lower bound of the lowest and the
///   upper bound of the highest non-empty bucket: they always bracket every recorded value and
///   are less than **1/32 = 3.125 %** away from the true minimum and maximum.
/// - [`count`](Self::count) and [`sum`](Self::sum) are exact (the sum saturates at `u64::MAX`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HistogramSnapshot {
    /// Non-zero buckets as (bucket index, count), ascending by index.
    buckets: Vec<(u16, u64)>,
    /// Sum of the bucket counts (saturating).
    count: u64,
    /// Sum of the recorded values (saturating).
    sum: u64,
}

/// The usual figures of a [`HistogramSnapshot`] in one plain value.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct HistogramSummary {
    /// Number of recorded values.
    pub count: u64,
    /// Sum of the recorded values (saturating).
    pub sum: u64,
    /// Arithmetic mean (`sum / count`), 0 when empty.
    pub mean: f64,
    /// Lower bound of the smallest recorded value (bucket resolution).
    pub min: u64,
    /// Median.
    pub p50: u64,
    /// 95th percentile.
    pub p95: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Upper bound of the largest recorded value (bucket resolution).
    pub max: u64,
}

impl HistogramSnapshot {
    /// Builds a snapshot from `(bucket index, count)` pairs sorted by index with no duplicates.
    pub(crate) fn from_sorted_buckets(pairs: impl Iterator<Item = (usize, u64)>, sum: u64) -> Self {
        let buckets: Vec<(u16, u64)> = pairs
            .filter(|&(_, count)| count > 0)
            .map(|(index, count)| (bucket_key(index), count))
            .collect();
        Self::from_parts(buckets, sum)
    }

    /// Builds a snapshot from `(value, count)` pairs in any order: every value is placed in its
    /// bucket, so this also accepts bucket upper bounds as produced by [`buckets`](Self::buckets).
    #[cfg(any(test, feature = "serde"))]
    pub(crate) fn from_values(pairs: impl IntoIterator<Item = (u64, u64)>, sum: u64) -> Self {
        let mut buckets: Vec<(u16, u64)> = pairs
            .into_iter()
            .filter(|&(_, count)| count > 0)
            .map(|(value, count)| (bucket_key(buckets::index_of(value)), count))
            .collect();
        buckets.sort_unstable_by_key(|&(index, _)| index);
        buckets.dedup_by(|later, earlier| {
            let same = later.0 == earlier.0;
            if same {
                earlier.1 = earlier.1.saturating_add(later.1);
            }
            same
        });
        Self::from_parts(buckets, sum)
    }

    /// Derives the count from the buckets and keeps an empty snapshot equal to the default.
    fn from_parts(buckets: Vec<(u16, u64)>, sum: u64) -> Self {
        let count = buckets
            .iter()
            .fold(0_u64, |total, &(_, count)| total.saturating_add(count));
        let sum = if count == 0 { 0 } else { sum };
        Self {
            buckets,
            count,
            sum,
        }
    }

    /// Number of recorded values.
    #[must_use]
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Whether nothing was recorded.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Sum of the recorded values, saturating at `u64::MAX`.
    #[must_use]
    pub fn sum(&self) -> u64 {
        self.sum
    }

    /// Lower bound of the smallest recorded value (less than 3.125 % below it); 0 when empty.
    #[must_use]
    pub fn min(&self) -> u64 {
        self.buckets
            .first()
            .map_or(0, |&(index, _)| buckets::lower_bound(usize::from(index)))
    }

    /// Upper bound of the largest recorded value (less than 3.125 % above it); 0 when empty.
    #[must_use]
    pub fn max(&self) -> u64 {
        self.buckets
            .last()
            .map_or(0, |&(index, _)| buckets::upper_bound(usize::from(index)))
    }

    /// Arithmetic mean (`sum / count`); 0 when empty. Meaningless once the sum saturated.
    #[must_use]
    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        // Precision loss above 2^53 is irrelevant for a mean.
        self.sum as f64 / self.count as f64
    }

    /// The nearest-rank `q`-quantile (`q` in `[0, 1]`, clamped; NaN counts as 0); 0 when empty.
    ///
    /// The exact nearest-rank percentile is the value at rank `max(1, ⌈q·count⌉)` of the sorted
    /// samples. This returns the midpoint of the bucket holding that value, at most 1/64
    /// (1.5625 %) away from it, and exact for values below 64.
    #[must_use]
    pub fn percentile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let q = if q.is_nan() { 0.0 } else { q.clamp(0.0, 1.0) };
        // The float rank is within [0, count]; the cast saturates and the clamp keeps it valid.
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0_u64;
        for &(index, count) in &self.buckets {
            seen = seen.saturating_add(count);
            if seen >= rank {
                return buckets::midpoint(usize::from(index));
            }
        }
        // Unreachable while `count` equals the sum of the buckets; the top bucket is the answer.
        self.max()
    }

    /// Median.
    #[must_use]
    pub fn p50(&self) -> u64 {
        self.percentile(0.50)
    }

    /// 95th percentile.
    #[must_use]
    pub fn p95(&self) -> u64 {
        self.percentile(0.95)
    }

    /// 99th percentile.
    #[must_use]
    pub fn p99(&self) -> u64 {
        self.percentile(0.99)
    }

    /// The window between an older snapshot of the same histogram and this one:
    /// `self − older`, saturating per bucket and for the sum.
    ///
    /// The window's min and max follow from its own buckets, like every snapshot's.
    #[must_use]
    pub fn subtract(&self, older: &HistogramSnapshot) -> HistogramSnapshot {
        let mut buckets = Vec::with_capacity(self.buckets.len());
        let mut older_buckets = older.buckets.iter().peekable();
        for &(index, count) in &self.buckets {
            // Older buckets absent from the newer snapshot cannot reduce anything; skip them.
            while older_buckets
                .next_if(|&&(older_index, _)| older_index < index)
                .is_some()
            {}
            let subtracted = older_buckets
                .next_if(|&&(older_index, _)| older_index == index)
                .map_or(0, |&(_, older_count)| older_count);
            let remaining = count.saturating_sub(subtracted);
            if remaining > 0 {
                buckets.push((index, remaining));
            }
        }
        Self::from_parts(buckets, self.sum.saturating_sub(older.sum))
    }

    /// Adds `other`'s counts and sum to this snapshot (saturating).
    pub fn merge(&mut self, other: &HistogramSnapshot) {
        if other.is_empty() {
            return;
        }
        let mut merged = Vec::with_capacity(self.buckets.len() + other.buckets.len());
        let mut mine = self.buckets.iter().copied().peekable();
        let mut theirs = other.buckets.iter().copied().peekable();
        loop {
            let next = match (mine.peek(), theirs.peek()) {
                (Some(&(a, _)), Some(&(b, _))) => match a.cmp(&b) {
                    Ordering::Less => mine.next(),
                    Ordering::Greater => theirs.next(),
                    Ordering::Equal => {
                        let (index, a_count) = mine.next().unwrap_or_default();
                        let (_, b_count) = theirs.next().unwrap_or_default();
                        Some((index, a_count.saturating_add(b_count)))
                    }
                },
                (Some(_), None) => mine.next(),
                (None, Some(_)) => theirs.next(),
                (None, None) => break,
            };
            merged.extend(next);
        }
        *self = Self::from_parts(merged, self.sum.saturating_add(other.sum));
    }

    /// Cumulative count of values `≤ bound`, at bucket resolution: every value `≤ bound` is
    /// counted, plus those sharing `bound`'s bucket (at most 3.125 % above it). Monotonic in
    /// `bound` and equal to [`count`](Self::count) at `u64::MAX`, as Prometheus buckets need.
    #[must_use]
    pub fn count_le(&self, bound: u64) -> u64 {
        let last = bucket_key(buckets::index_of(bound));
        self.buckets
            .iter()
            .take_while(|&&(index, _)| index <= last)
            .fold(0_u64, |total, &(_, count)| total.saturating_add(count))
    }

    /// Non-zero buckets as (inclusive upper bound, count), ascending.
    pub fn buckets(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.buckets
            .iter()
            .map(|&(index, count)| (buckets::upper_bound(usize::from(index)), count))
    }

    /// Count, sum, mean, min, p50, p95, p99 and max in one value.
    #[must_use]
    pub fn summary(&self) -> HistogramSummary {
        HistogramSummary {
            count: self.count,
            sum: self.sum,
            mean: self.mean(),
            min: self.min(),
            p50: self.p50(),
            p95: self.p95(),
            p99: self.p99(),
            max: self.max(),
        }
    }
}

/// Narrows a bucket index to the snapshot's compact key.
fn bucket_key(index: usize) -> u16 {
    u16::try_from(index).expect("bucket indices are below BUCKET_COUNT (1 920), which fits in u16")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Histogram;

    fn snapshot_of(values: &[u64]) -> HistogramSnapshot {
        let histogram = Histogram::new();
        values.iter().for_each(|&value| histogram.record(value));
        histogram.snapshot()
    }

    #[test]
    fn small_values_give_exact_percentiles() {
        let snapshot = snapshot_of(&(1..=10).collect::<Vec<_>>());
        assert_eq!(snapshot.count(), 10);
        assert_eq!(snapshot.sum(), 55);
        assert_eq!(snapshot.min(), 1);
        assert_eq!(snapshot.max(), 10);
        assert_eq!(snapshot.p50(), 5);
        assert_eq!(snapshot.p95(), 10);
        assert_eq!(snapshot.percentile(0.0), 1);
        assert_eq!(snapshot.percentile(f64::NAN), 1);
        assert_eq!(snapshot.percentile(7.0), 10);
        assert!((snapshot.mean() - 5.5).abs() < 1e-12);
    }

    #[test]
    fn min_and_max_bracket_the_recorded_values() {
        let snapshot = snapshot_of(&[1_000_003, 7_777_777]);
        assert!(snapshot.min() <= 1_000_003);
        assert!(snapshot.max() >= 7_777_777);
        assert!((1_000_003 - snapshot.min()) * 32 < 1_000_003);
        assert!((snapshot.max() - 7_777_777) * 32 < 7_777_777);
    }

    #[test]
    fn subtract_gives_the_window_and_ignores_older_only_buckets() {
        let histogram = Histogram::new();
        histogram.record(10);
        histogram.record(5_000);
        let older = histogram.snapshot();
        histogram.record(200);
        histogram.record(200);
        let window = histogram.snapshot().subtract(&older);
        assert_eq!(window.count(), 2);
        assert_eq!(window.sum(), 400);
        assert_eq!(window, snapshot_of(&[200, 200]));
        assert_eq!(window.buckets().count(), 1);
        // Subtracting a snapshot from a different, smaller histogram saturates at zero.
        assert!(snapshot_of(&[10]).subtract(&older).is_empty());
    }

    #[test]
    fn merge_adds_counts_and_sums() {
        let mut merged = snapshot_of(&[1, 100, 100]);
        merged.merge(&snapshot_of(&[100, 70_000]));
        assert_eq!(merged, snapshot_of(&[1, 100, 100, 100, 70_000]));
        let before = merged.clone();
        merged.merge(&HistogramSnapshot::default());
        assert_eq!(merged, before);
    }

    #[test]
    fn count_le_is_cumulative() {
        let snapshot = snapshot_of(&[1, 2, 3, 1_000, 1_000_000]);
        assert_eq!(snapshot.count_le(0), 0);
        assert_eq!(snapshot.count_le(2), 2);
        assert_eq!(snapshot.count_le(900), 3);
        assert_eq!(snapshot.count_le(1_000), 4);
        // 999 shares 1 000's bucket, so the value 1 000 counts at bucket resolution.
        assert_eq!(snapshot.count_le(999), 4);
        assert_eq!(snapshot.count_le(u64::MAX), 5);
    }

    #[test]
    fn from_values_accepts_unsorted_duplicates() {
        let expected = snapshot_of(&[5, 5, 3_000]);
        let rebuilt =
            HistogramSnapshot::from_values([(3_000, 1), (5, 1), (5, 1), (9, 0)], expected.sum());
        assert_eq!(rebuilt, expected);
    }

    #[test]
    fn summary_collects_the_figures() {
        let snapshot = snapshot_of(&[4, 8]);
        let summary = snapshot.summary();
        assert_eq!(summary.count, 2);
        assert_eq!(summary.sum, 12);
        assert_eq!(
            (summary.min, summary.p50, summary.p99, summary.max),
            (4, 4, 8, 8)
        );
        assert!((summary.mean - 6.0).abs() < 1e-12);
        assert_eq!(
            HistogramSnapshot::default().summary(),
            HistogramSummary::default()
        );
    }
}
