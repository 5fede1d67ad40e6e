//! Per-thread stripes: counters that many threads write, split so that threads do not share
//! a cache line.
//!
//! A thread gets a number the first time it asks ([`stripe_index`], handed out round robin
//! from one process-wide counter) and keeps it; a [`Striped`] value holds a power-of-two
//! number of [`Padded`] stripes and gives each thread the stripe its number falls on. Writers
//! touch only their own stripe; a reader sums or merges all of them. The index is a
//! thread-local read and a mask: no hashing, no lock, no syscall.
//!
//! ```
//! use std::sync::atomic::{AtomicU64, Ordering};
//!
//! use resync_perf_core::stripes::Striped;
//!
//! let hits: Striped<AtomicU64> = Striped::new(4, AtomicU64::default);
//! std::thread::scope(|scope| {
//!     for _ in 0..3 {
//!         scope.spawn(|| hits.local().fetch_add(1, Ordering::Relaxed));
//!     }
//! });
//! let total: u64 = hits.iter().map(|stripe| stripe.load(Ordering::Relaxed)).sum();
//! assert_eq!(total, 3);
//! ```

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Keeps a value alone on its cache lines: two lines of 64 bytes, because the adjacent-line
/// prefetcher of x86 cores pulls lines in pairs, so a neighbour on the pair's other line would
/// still bounce between cores.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct Padded<T>(T);

impl<T> Padded<T> {
    /// Pads `value`.
    pub const fn new(value: T) -> Self {
        Self(value)
    }

    /// The value, unpadded.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> Deref for Padded<T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> DerefMut for Padded<T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

/// Hands each thread its index, round robin, the first time it asks.
static NEXT_THREAD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static THREAD_INDEX: usize = NEXT_THREAD.fetch_add(1, Ordering::Relaxed);
}

/// The calling thread's stripe number: handed out round robin on the thread's first call,
/// the same ever after. Mask it with a power-of-two count minus one to pick a stripe
/// ([`Striped`] does), so that consecutive threads land on different stripes.
#[inline]
#[must_use]
pub fn stripe_index() -> usize {
    THREAD_INDEX.with(|index| *index)
}

/// A power-of-two number of values, each on its own cache lines, one per group of threads:
/// [`local`](Self::local) is the calling thread's, always the same one for a thread.
#[derive(Debug)]
pub struct Striped<T> {
    stripes: Box<[Padded<T>]>,
}

impl<T> Striped<T> {
    /// `count` stripes (rounded up to a power of two, at least one), each made by `make`.
    pub fn new(count: usize, mut make: impl FnMut() -> T) -> Self {
        let count = count.max(1).next_power_of_two();
        Self {
            stripes: (0..count).map(|_| Padded::new(make())).collect(),
        }
    }

    /// The number of stripes (a power of two).
    #[inline]
    #[must_use]
    pub fn stripe_count(&self) -> usize {
        self.stripes.len()
    }

    /// The calling thread's stripe.
    #[inline]
    pub fn local(&self) -> &T {
        self.get(stripe_index())
    }

    /// The index of the calling thread's stripe, below [`stripe_count`](Self::stripe_count):
    /// for a caller that records on a stripe now and must find the same one later (from
    /// another thread, say).
    #[inline]
    #[must_use]
    pub fn local_index(&self) -> usize {
        stripe_index() & (self.stripes.len() - 1)
    }

    /// The stripe `index` falls on (`index` modulo the stripe count).
    #[inline]
    pub fn get(&self, index: usize) -> &T {
        &self.stripes[index & (self.stripes.len() - 1)]
    }

    /// Every stripe, in index order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &T> {
        self.stripes.iter().map(|stripe| &**stripe)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;

    use super::*;

    #[test]
    fn padding_keeps_values_on_separate_line_pairs() {
        assert_eq!(std::mem::align_of::<Padded<u8>>(), 128);
        assert_eq!(std::mem::size_of::<Padded<AtomicU64>>(), 128);
        let striped = Striped::new(2, AtomicU64::default);
        let first = std::ptr::from_ref(striped.get(0)) as usize;
        let second = std::ptr::from_ref(striped.get(1)) as usize;
        assert_eq!(second - first, 128);
    }

    #[test]
    fn counts_round_up_to_a_power_of_two_and_indices_wrap() {
        assert_eq!(Striped::new(0, || ()).stripe_count(), 1);
        assert_eq!(Striped::new(6, || ()).stripe_count(), 8);
        let striped = Striped::new(4, AtomicU64::default);
        striped.get(5).fetch_add(1, Ordering::Relaxed);
        assert_eq!(
            striped.get(1).load(Ordering::Relaxed),
            1,
            "5 falls on stripe 1"
        );
        assert!(striped.local_index() < 4);
        assert!(std::ptr::eq(
            striped.local(),
            striped.get(striped.local_index())
        ));
    }

    #[test]
    fn a_thread_keeps_its_index_and_threads_take_turns() {
        assert_eq!(stripe_index(), stripe_index());
        let indices: Vec<usize> = (0..4)
            .map(|_| std::thread::spawn(stripe_index).join().expect("no panic"))
            .collect();
        // Threads started one after another get distinct numbers (other tests' threads may
        // take numbers in between, never the same one).
        for (i, a) in indices.iter().enumerate() {
            assert!(indices[i + 1..].iter().all(|b| a != b), "{indices:?}");
        }
    }

    #[test]
    fn stripes_sum_exactly_across_threads() {
        let striped = Striped::new(4, AtomicU64::default);
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    for _ in 0..1_000 {
                        striped.local().fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
        });
        let total: u64 = striped
            .iter()
            .map(|stripe| stripe.load(Ordering::Relaxed))
            .sum();
        assert_eq!(total, 8_000);
        assert_eq!(striped.iter().len(), 4);
    }
}
