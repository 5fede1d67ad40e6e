//! The pool's clock: counter-based readings (quanta: the CPU's invariant TSC where there is
//! one, the OS clock otherwise) as nanoseconds since the resource tracker's epoch.
//!
//! A checkout and its return read the time twice (the hold time's start and end, which also
//! stamp the validation skip window and the leak tracker's lease). `std::time::Instant::now`
//! costs ≈ 30 ns on the 2-core bench machine (a vDSO `clock_gettime`), a TSC read ≈ 12 ns, and
//! nanosecond integers subtract without `Timespec` arithmetic.
//!
//! The leak scanner measures a checkout's age with the OS clock, so the two must agree over
//! the process's whole life, not only at start: the TSC's calibrated rate is off by some parts
//! per million and the OS clock is slewed by NTP, and that error accumulates (100 ppm is
//! 8.6 s a day). The clock therefore re-aligns its offset with the OS clock about once a
//! second, from whichever reading first finds the second over (one `Instant::now` then).
//! A re-alignment may move readings back by the drift of one second (microseconds at most);
//! spans computed from such readings saturate at zero.
//!
//! The first clock of a process calibrates quanta's TSC scale (a busy loop of about a
//! millisecond, longer on a loaded machine); pools are built at start-up, where that is paid
//! once.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Nanoseconds since the tracker's epoch (negative: before it).
pub(crate) type Nanos = i64;

/// Counter nanoseconds between two re-alignments with the OS clock.
const ALIGN_EVERY_NANOS: u64 = 1_000_000_000;

/// A clock aligned with a tracker's epoch.
#[derive(Debug)]
pub(crate) struct PoolClock {
    clock: quanta::Clock,
    /// The counter's raw reading when the clock was made: counter time counts from it.
    base: u64,
    /// The tracker's epoch, which the OS-clock side of an alignment measures from.
    epoch: Instant,
    /// Nanoseconds since the epoch at counter time zero, as of the last alignment.
    offset: AtomicI64,
    /// Counter time (ns) from which the next reading re-aligns.
    next_align: AtomicU64,
}

impl PoolClock {
    /// A clock whose readings count from `epoch`.
    pub(crate) fn new(epoch: Instant) -> Self {
        let clock = quanta::Clock::new();
        let base = clock.raw();
        let this = Self {
            clock,
            base,
            epoch,
            offset: AtomicI64::new(0),
            next_align: AtomicU64::new(0),
        };
        this.align(0);
        this
    }

    /// Now, in nanoseconds since the epoch.
    #[inline]
    pub(crate) fn now(&self) -> Nanos {
        let counter = self.clock.delta_as_nanos(self.base, self.clock.raw());
        if counter >= self.next_align.load(Ordering::Relaxed) {
            self.align(counter);
        }
        self.offset
            .load(Ordering::Relaxed)
            .saturating_add(Nanos::try_from(counter).unwrap_or(Nanos::MAX))
    }

    /// Sets the offset so that counter time `counter` (read just before) maps to the OS
    /// clock's now. Concurrent alignments both store nearly the same offset.
    #[cold]
    fn align(&self, counter: u64) {
        self.next_align
            .store(counter.saturating_add(ALIGN_EVERY_NANOS), Ordering::Relaxed);
        let os = nanos(Instant::now().saturating_duration_since(self.epoch));
        let offset = os.saturating_sub(Nanos::try_from(counter).unwrap_or(Nanos::MAX));
        self.offset.store(offset, Ordering::Relaxed);
    }
}

/// A duration in whole nanoseconds, saturating (≈ 292 years).
#[inline]
pub(crate) fn nanos(duration: Duration) -> Nanos {
    Nanos::try_from(duration.as_nanos()).unwrap_or(Nanos::MAX)
}

/// The non-negative span from `earlier` to `later`, in nanoseconds.
#[inline]
pub(crate) fn span(earlier: Nanos, later: Nanos) -> u64 {
    u64::try_from(later.saturating_sub(earlier)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_count_from_the_epoch_and_follow_the_os_clock() {
        let epoch = Instant::now();
        std::thread::sleep(Duration::from_millis(5));
        let clock = PoolClock::new(epoch);
        let first = clock.now();
        assert!(first >= 5_000_000, "{first} ns since an epoch 5 ms ago");
        let mut last = first;
        for _ in 0..10_000 {
            let now = clock.now();
            assert!(now >= last);
            last = now;
        }
        // Aligned with the OS clock: within a generous bound of Instant's own reading.
        let os = nanos(epoch.elapsed());
        assert!(
            (clock.now() - os).abs() < 50_000_000,
            "tsc {last} vs os {os}"
        );
    }

    #[test]
    fn a_drifted_offset_is_corrected_at_the_next_alignment() {
        let epoch = Instant::now();
        let clock = PoolClock::new(epoch);
        // As if the counter had drifted ten seconds from the OS clock since the last
        // alignment, and the alignment is due.
        clock.offset.fetch_add(10_000_000_000, Ordering::Relaxed);
        clock.next_align.store(0, Ordering::Relaxed);
        let os = nanos(epoch.elapsed());
        let now = clock.now();
        assert!((now - os).abs() < 50_000_000, "re-aligned {now} vs os {os}");
    }

    #[test]
    fn spans_saturate_at_zero() {
        assert_eq!(span(10, 4), 0);
        assert_eq!(span(4, 10), 6);
    }
}
