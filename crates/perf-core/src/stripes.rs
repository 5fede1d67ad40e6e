//! Per-thread stripes: counters that many threads write, split so that threads do not share
//! a cache line, and written without a locked instruction by the one thread that owns each.
//!
//! Every live thread holds a slot number of its own ([`stripe_index`]): the lowest free one,
//! claimed the first time the thread asks and given back when it exits, so the live threads'
//! numbers are distinct and dense. A [`Striped`] value holds a power-of-two number of
//! [`Padded`] stripes, one per slot below that count, and one overflow stripe that the
//! threads with higher slots share. Two ways to write:
//!
//! - [`Striped::with_local`] hands the calling thread's stripe to a closure with a
//!   [`StripeWriter`]: on a stripe the thread owns (its slot has one), a counter is added to
//!   with a plain load and store instead of an atomic read-modify-write, which on x86 is a
//!   `lock`-prefixed instruction of about 20 cycles that also drains the store buffer. No
//!   other thread writes an owned stripe, so no count is lost; readers load the counters
//!   atomically as before. On the overflow stripe the writer uses atomic adds.
//! - [`Striped::local`] and [`Striped::get`] give a stripe by the slot masked to the stripe
//!   count, for values every writer changes atomically (a lock, a notifier, counters written
//!   from other threads too). A field must be written one way or the other, never both: a
//!   plain store by the owner could overwrite another thread's atomic add.
//!
//! ```
//! use std::sync::atomic::{AtomicU64, Ordering};
//!
//! use resync_perf_core::stripes::Striped;
//!
//! let hits: Striped<AtomicU64> = Striped::new(4, AtomicU64::default);
//! std::thread::scope(|scope| {
//!     for _ in 0..3 {
//!         scope.spawn(|| {
//!             for _ in 0..1_000 {
//!                 hits.with_local(|hits, writer| writer.add(hits, 1));
//!             }
//!         });
//!     }
//! });
//! let total: u64 = hits.iter().map(|stripe| stripe.load(Ordering::Relaxed)).sum();
//! assert_eq!(total, 3_000);
//! ```

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::sync::lock;

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

/// The slot numbers: the next never handed out, and those given back by exited threads.
struct Slots {
    next: usize,
    free: BinaryHeap<Reverse<usize>>,
}

static SLOTS: Mutex<Slots> = Mutex::new(Slots {
    next: 0,
    free: BinaryHeap::new(),
});

/// A thread's slot, given back when the thread exits.
struct ThreadSlot(usize);

impl ThreadSlot {
    /// The lowest slot no live thread holds.
    fn claim() -> Self {
        let mut slots = lock(&SLOTS);
        let slot = match slots.free.pop() {
            Some(Reverse(slot)) => slot,
            None => {
                slots.next += 1;
                slots.next - 1
            }
        };
        Self(slot)
    }
}

impl Drop for ThreadSlot {
    /// Runs among the exiting thread's thread-local destructors. The lock orders every write
    /// this thread made to its owned stripes before those of the slot's next holder; a
    /// destructor that runs after this one and records something finds no slot
    /// ([`NO_SLOT`]) and writes atomically.
    fn drop(&mut self) {
        lock(&SLOTS).free.push(Reverse(self.0));
    }
}

thread_local! {
    static THREAD_SLOT: ThreadSlot = ThreadSlot::claim();
}

/// What [`stripe_index`] returns on a thread whose slot was already given back (it is
/// exiting): above every owned stripe.
const NO_SLOT: usize = usize::MAX;

/// The calling thread's slot: the lowest number no other live thread holds, claimed on the
/// thread's first call and kept until it exits (a thread started later may then get it).
/// Mask it with a power-of-two count minus one to pick a stripe ([`Striped::local`] does).
#[inline]
#[must_use]
pub fn stripe_index() -> usize {
    THREAD_SLOT.try_with(|slot| slot.0).unwrap_or(NO_SLOT)
}

/// How the calling thread writes the stripe [`Striped::with_local`] handed it: only handed
/// out by reference, for the closure's duration, so it cannot be kept past an `.await` (after
/// which the task may run on another thread), and neither `Send` nor `Sync`, so the closure
/// cannot pass it to another thread either:
///
/// ```compile_fail
/// fn sendable<T: Send>() {}
/// sendable::<resync_perf_core::stripes::StripeWriter>();
/// ```
#[derive(Debug)]
pub struct StripeWriter {
    owned: bool,
    /// Keeps the writer on the thread it was made for.
    _thread_bound: PhantomData<*const ()>,
}

impl StripeWriter {
    /// The writer of a value any thread may write: atomic adds.
    pub const ATOMIC: Self = Self {
        owned: false,
        _thread_bound: PhantomData,
    };

    /// Whether the calling thread is the only one that writes this stripe.
    #[inline]
    #[must_use]
    pub fn owned(&self) -> bool {
        self.owned
    }

    /// Adds `amount` to `counter`, a counter of the stripe this writer came with (wrapping,
    /// as an atomic add does): a plain load and store on an owned stripe, an atomic add on
    /// the overflow stripe.
    #[inline]
    pub fn add(&self, counter: &AtomicU64, amount: u64) {
        self.fetch_add(counter, amount);
    }

    /// [`add`](Self::add), returning the counter's previous value.
    #[inline]
    pub fn fetch_add(&self, counter: &AtomicU64, amount: u64) -> u64 {
        if self.owned {
            let previous = counter.load(Ordering::Relaxed);
            counter.store(previous.wrapping_add(amount), Ordering::Relaxed);
            previous
        } else {
            counter.fetch_add(amount, Ordering::Relaxed)
        }
    }
}

/// A power-of-two number of values, each on its own cache lines, one per thread slot below
/// that number, and one more that the threads with higher slots share: see the module
/// documentation for the two ways to write them.
#[derive(Debug)]
pub struct Striped<T> {
    /// The owned stripes, then the overflow stripe.
    stripes: Box<[Padded<T>]>,
    /// The owned stripes' count minus one.
    mask: usize,
}

impl<T> Striped<T> {
    /// `count` stripes (rounded up to a power of two, at least one), each made by `make`, and
    /// the overflow stripe.
    pub fn new(count: usize, mut make: impl FnMut() -> T) -> Self {
        let count = count.max(1).next_power_of_two();
        Self {
            stripes: (0..=count).map(|_| Padded::new(make())).collect(),
            mask: count - 1,
        }
    }

    /// The number of stripes owned by slots (a power of two; the overflow stripe is not
    /// counted).
    #[inline]
    #[must_use]
    pub fn stripe_count(&self) -> usize {
        self.mask + 1
    }

    /// The calling thread's stripe by its slot masked to the stripe count, for values written
    /// atomically only.
    #[inline]
    pub fn local(&self) -> &T {
        self.get(stripe_index())
    }

    /// The index of the calling thread's [`local`](Self::local) stripe, below
    /// [`stripe_count`](Self::stripe_count): for a caller that records on a stripe now and
    /// must find the same one later (from another thread, say).
    #[inline]
    #[must_use]
    pub fn local_index(&self) -> usize {
        stripe_index() & self.mask
    }

    /// The stripe `index` falls on (`index` modulo the stripe count), for values written
    /// atomically only.
    #[inline]
    pub fn get(&self, index: usize) -> &T {
        &self.stripes[index & self.mask]
    }

    /// Runs `write` on the calling thread's own stripe (the overflow stripe when its slot
    /// has none) with the [`StripeWriter`] that adds to it: without a locked instruction
    /// when the thread owns the stripe. Every write of a field written this way must come
    /// through here.
    #[inline]
    pub fn with_local<R>(&self, write: impl FnOnce(&T, &StripeWriter) -> R) -> R {
        let slot = stripe_index();
        let owned = slot <= self.mask;
        let index = if owned { slot } else { self.mask + 1 };
        let writer = StripeWriter {
            owned,
            _thread_bound: PhantomData,
        };
        write(&self.stripes[index], &writer)
    }

    /// Every stripe, the overflow stripe last.
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
    fn live_threads_hold_distinct_slots() {
        assert_eq!(stripe_index(), stripe_index());
        let barrier = std::sync::Barrier::new(4);
        let mut live: Vec<usize> = std::thread::scope(|scope| {
            let threads: Vec<_> = (0..4)
                .map(|_| {
                    scope.spawn(|| {
                        let slot = stripe_index();
                        // All four hold their slots at once.
                        barrier.wait();
                        slot
                    })
                })
                .collect();
            threads
                .into_iter()
                .map(|thread| thread.join().expect("no panic"))
                .collect()
        });
        live.sort_unstable();
        live.dedup();
        assert_eq!(
            live.len(),
            4,
            "slots of live threads are distinct: {live:?}"
        );
    }

    #[test]
    fn owners_add_without_losing_counts_and_overflow_threads_share_one_stripe() {
        // One stripe: at most one thread owns it, every other thread writes the overflow
        // stripe atomically.
        let striped = Striped::new(1, AtomicU64::default);
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    for _ in 0..10_000 {
                        striped.with_local(|counter, writer| writer.add(counter, 1));
                    }
                });
            }
        });
        let total: u64 = striped
            .iter()
            .map(|stripe| stripe.load(Ordering::Relaxed))
            .sum();
        assert_eq!(total, 80_000);
        assert_eq!(striped.iter().len(), 2, "one owned stripe and the overflow");
    }

    #[test]
    fn a_writer_adds_and_reports_the_previous_value() {
        let counter = AtomicU64::new(u64::MAX);
        for owned in [true, false] {
            let writer = StripeWriter {
                owned,
                _thread_bound: PhantomData,
            };
            counter.store(u64::MAX, Ordering::Relaxed);
            assert_eq!(writer.fetch_add(&counter, 2), u64::MAX);
            assert_eq!(
                counter.load(Ordering::Relaxed),
                1,
                "wraps as an atomic add does"
            );
            assert_eq!(writer.owned(), owned);
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
        assert_eq!(striped.iter().len(), 5, "four stripes and the overflow");
    }
}
