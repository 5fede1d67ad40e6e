//! Windowed figures from cumulative counters: the difference of two timestamped snapshots.
//!
//! Counters are never reset (Prometheus style). A rate or a recent latency comes from two
//! [`Sample`]s of the same cumulative value: `newer.window(&older)` gives the elapsed time and
//! the [`Delta`] between them.

use std::time::{Duration, Instant};

use crate::HistogramSnapshot;

/// The difference between a newer and an older cumulative value.
pub trait Delta {
    /// `self − older`, saturating at "nothing happened" when `older` is larger (e.g. after the
    /// counted thing was recreated).
    #[must_use]
    fn delta(&self, older: &Self) -> Self;
}

impl Delta for u64 {
    fn delta(&self, older: &Self) -> Self {
        self.saturating_sub(*older)
    }
}

impl Delta for HistogramSnapshot {
    fn delta(&self, older: &Self) -> Self {
        self.subtract(older)
    }
}

/// Events per second: `count / elapsed`; `None` when no time elapsed.
///
/// ```
/// use resync_perf_core::per_second;
/// use std::time::Duration;
/// assert_eq!(per_second(30, Duration::from_secs(2)), Some(15.0));
/// assert_eq!(per_second(30, Duration::ZERO), None);
/// ```
#[must_use]
pub fn per_second(count: u64, elapsed: Duration) -> Option<f64> {
    if elapsed.is_zero() {
        return None;
    }
    // Precision loss above 2^53 events is irrelevant for a rate.
    Some(count as f64 / elapsed.as_secs_f64())
}

/// A cumulative value and when it was read.
#[derive(Debug, Clone)]
pub struct Sample<T> {
    /// When the value was read.
    pub at: Instant,
    /// The cumulative value.
    pub value: T,
}

impl<T> Sample<T> {
    /// A sample of `value` read at `at`.
    #[must_use]
    pub fn new(at: Instant, value: T) -> Self {
        Self { at, value }
    }

    /// A sample of `value` read now.
    #[must_use]
    pub fn now(value: T) -> Self {
        Self::new(Instant::now(), value)
    }
}

impl<T: Delta> Sample<T> {
    /// The window from `older` to this sample: elapsed time (zero if `older` is not older) and
    /// the value's delta.
    #[must_use]
    pub fn window(&self, older: &Sample<T>) -> Window<T> {
        Window {
            elapsed: self.at.saturating_duration_since(older.at),
            delta: self.value.delta(&older.value),
        }
    }
}

/// What happened between two samples.
#[derive(Debug, Clone)]
pub struct Window<T> {
    /// Time between the two samples.
    pub elapsed: Duration,
    /// Newer value minus older value.
    pub delta: T,
}

impl Window<u64> {
    /// The counter's rate over the window; `None` for an empty window.
    #[must_use]
    pub fn per_second(&self) -> Option<f64> {
        per_second(self.delta, self.elapsed)
    }
}

impl Window<HistogramSnapshot> {
    /// Recorded values per second over the window; `None` for an empty window.
    #[must_use]
    pub fn per_second(&self) -> Option<f64> {
        per_second(self.delta.count(), self.elapsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Histogram;

    #[test]
    fn per_second_divides_by_elapsed_seconds() {
        assert_eq!(per_second(0, Duration::from_secs(1)), Some(0.0));
        assert_eq!(per_second(5, Duration::from_millis(500)), Some(10.0));
        let per_nanosecond = per_second(1, Duration::from_nanos(1)).expect("non-zero elapsed");
        assert!((per_nanosecond - 1e9).abs() < 1.0);
        assert_eq!(per_second(u64::MAX, Duration::ZERO), None);
    }

    #[test]
    fn u64_delta_saturates() {
        assert_eq!(10_u64.delta(&4), 6);
        assert_eq!(4_u64.delta(&10), 0);
    }

    #[test]
    fn counter_window_gives_elapsed_delta_and_rate() {
        let start = Instant::now();
        let older = Sample::new(start, 100_u64);
        let newer = Sample::new(start + Duration::from_secs(4), 300_u64);
        let window = newer.window(&older);
        assert_eq!(window.elapsed, Duration::from_secs(4));
        assert_eq!(window.delta, 200);
        assert_eq!(window.per_second(), Some(50.0));

        // Reversed samples give an empty window, not a negative one.
        let reversed = older.window(&newer);
        assert_eq!((reversed.elapsed, reversed.delta), (Duration::ZERO, 0));
        assert_eq!(reversed.per_second(), None);
    }

    #[test]
    fn histogram_window_holds_only_the_recent_values() {
        let histogram = Histogram::new();
        histogram.record(1_000_000);
        let older = Sample::now(histogram.snapshot());
        histogram.record(10);
        histogram.record(20);
        let newer = Sample::new(older.at + Duration::from_secs(2), histogram.snapshot());
        let window = newer.window(&older);
        assert_eq!(window.delta.count(), 2);
        assert_eq!(window.delta.max(), 20);
        assert_eq!(window.per_second(), Some(1.0));
    }
}
