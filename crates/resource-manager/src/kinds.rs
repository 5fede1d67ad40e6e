//! Resource kinds: the read-mostly table from kind name to [`KindState`] (lock-free lookups)
//! and each kind's configuration mirrors and counters, striped over cache lines by acquiring
//! thread so that two threads share only the kind's `active` counter.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use resync_perf_core::stripes::{stripe_index, Padded, Striped};
use resync_perf_core::sync::lock;

use crate::config::{KindConfig, LeakThreshold};

/// Counter stripes per kind, and id sequences per tracker (a power of two, at most
/// [`SHARDS`](crate::registry::SHARDS)): a thread records on stripe
/// [`current_stripe`], and a guard's id carries that stripe so its release finds it again.
pub(crate) const STRIPES: usize = 16;

/// The calling thread's stripe, below [`STRIPES`] (perf-core's per-thread index, masked).
#[inline]
pub(crate) fn current_stripe() -> usize {
    stripe_index() & (STRIPES - 1)
}

/// Kinds that fit the lock-free table; more kinds still work through a mutex-guarded overflow.
const KIND_SLOTS: usize = 64;

/// Encodes [`LeakThreshold::Default`] in [`KindState::threshold_nanos`].
const THRESHOLD_DEFAULT: u64 = u64::MAX;
/// Encodes [`LeakThreshold::Never`] in [`KindState::threshold_nanos`].
const THRESHOLD_NEVER: u64 = u64::MAX - 1;
/// Encodes "no limit" in [`KindState::limit`].
const NO_LIMIT: usize = usize::MAX;

/// The longest lifetime a release counts, in nanoseconds (2^63 − 1, ≈ 292 years); a longer
/// one counts as this. Keeps every single addition to a stripe's lifetime sum below
/// [`LIFETIME_SPILL_AT`].
pub(crate) const MAX_LIFETIME_NANOS: u64 = (1 << 63) - 1;

/// A stripe's lifetime sum that reaches this (2^63 ns, ≈ 292 years) is moved into its kind's
/// [`KindState::lifetime_spilled`] by the release that made it so.
///
/// So a stripe's `u64` never wraps: it is below 2^63 before any addition that finds it so,
/// each addition is at most [`MAX_LIFETIME_NANOS`], and the addition that crosses 2^63 spills
/// at once. It could wrap only if releases adding up to another 2^63 ns (292 years of
/// lifetime) landed on the one stripe in the instant between that addition and its spill.
const LIFETIME_SPILL_AT: u64 = 1 << 63;

/// The counters one stripe of a kind keeps (summed when read).
#[derive(Debug, Default)]
pub(crate) struct StripeCounters {
    pub(crate) created: AtomicU64,
    pub(crate) released: AtomicU64,
    pub(crate) released_without_close: AtomicU64,
    pub(crate) lifetime_total_nanos: AtomicU64,
}

/// Sums of a kind's stripes (or of its lease slots' own counts).
///
/// The lifetime sum is a `u128`: 10 000 resources held at once add 10 000 ns per nanosecond,
/// which would wrap a `u64` (≈ 584 years) after three weeks. Each stripe keeps a `u64` (see
/// [`LIFETIME_SPILL_AT`]); sums across stripes and slots are made here.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct CounterTotals {
    pub(crate) created: u64,
    pub(crate) released: u64,
    pub(crate) released_without_close: u64,
    pub(crate) lifetime_total_nanos: u128,
}

pub(crate) fn duration_to_nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// Per-kind configuration mirrors and cumulative counters, all atomics.
#[derive(Debug)]
pub(crate) struct KindState {
    pub(crate) name: &'static str,
    threshold_nanos: AtomicU64,
    limit: AtomicUsize,
    capture_backtrace: AtomicBool,
    /// Whether the kind was configured (built-in defaults then never override it). The mutex
    /// serialises configuration writes, so "apply if unset" is one atomic step and two
    /// configurations never interleave their fields; readers of the mirrors take no lock.
    configured: Mutex<bool>,
    /// The one counter every acquisition and release of the kind shares (limit and peak need
    /// the exact current value).
    pub(crate) active: Padded<AtomicU64>,
    pub(crate) peak: AtomicU64,
    pub(crate) lifetime_max_nanos: AtomicU64,
    pub(crate) leaked_total: AtomicU64,
    pub(crate) leaked_released: AtomicU64,
    stripes: Striped<StripeCounters>,
    /// Lifetime nanoseconds moved out of the stripes: each stripe's sum when it reached
    /// [`LIFETIME_SPILL_AT`], and dropped lease slots' hold times. A stats read sums the
    /// stripes under this lock, so a spill is seen in the stripe or here, never in both or
    /// neither. Taken only to spill (once per 292 years of lifetime on a stripe), to fold a
    /// dropped slot, and to read.
    lifetime_spilled: Mutex<u128>,
}

impl KindState {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            threshold_nanos: AtomicU64::new(THRESHOLD_DEFAULT),
            limit: AtomicUsize::new(NO_LIMIT),
            capture_backtrace: AtomicBool::new(false),
            configured: Mutex::new(false),
            active: Padded::new(AtomicU64::new(0)),
            peak: AtomicU64::new(0),
            lifetime_max_nanos: AtomicU64::new(0),
            leaked_total: AtomicU64::new(0),
            leaked_released: AtomicU64::new(0),
            stripes: Striped::new(STRIPES, StripeCounters::default),
            lifetime_spilled: Mutex::new(0),
        }
    }

    /// Applies `config`, replacing any earlier configuration.
    pub(crate) fn apply(&self, config: KindConfig) {
        let mut configured = lock(&self.configured);
        self.store(config);
        *configured = true;
    }

    /// Applies `config` only if the kind was never configured; returns whether it did. The
    /// check and the write happen under one lock, so a concurrent [`apply`](Self::apply) is
    /// never overwritten.
    pub(crate) fn apply_if_unset(&self, config: KindConfig) -> bool {
        let mut configured = lock(&self.configured);
        if *configured {
            return false;
        }
        self.store(config);
        *configured = true;
        true
    }

    /// Applies the configuration `update` makes of the current one (`None` when the kind was
    /// never configured), reading and writing under one lock so that a concurrent
    /// configuration is never lost between the two; returns what was applied.
    pub(crate) fn apply_with(
        &self,
        update: impl FnOnce(Option<KindConfig>) -> KindConfig,
    ) -> KindConfig {
        let mut configured = lock(&self.configured);
        let current = configured.then(|| self.config());
        let config = update(current);
        self.store(config);
        *configured = true;
        config
    }

    /// The configuration as the mirrors hold it.
    pub(crate) fn config(&self) -> KindConfig {
        KindConfig {
            leak_threshold: self.leak_threshold(),
            limit: self.limit(),
            capture_backtrace: self.capture_backtrace(),
        }
    }

    /// Writes the configuration mirrors (callers hold `configured`).
    fn store(&self, config: KindConfig) {
        let threshold = match config.leak_threshold {
            LeakThreshold::Default => THRESHOLD_DEFAULT,
            LeakThreshold::Never => THRESHOLD_NEVER,
            // Clamp so a real duration never collides with the two sentinels.
            LeakThreshold::After(after) => duration_to_nanos(after).min(THRESHOLD_NEVER - 1),
        };
        self.threshold_nanos.store(threshold, Ordering::Relaxed);
        self.limit
            .store(config.limit.unwrap_or(NO_LIMIT), Ordering::Relaxed);
        self.capture_backtrace
            .store(config.capture_backtrace, Ordering::Relaxed);
    }

    /// The leak threshold of this kind, `None` when it is never a leak.
    pub(crate) fn threshold(&self, default: Duration) -> Option<Duration> {
        match self.threshold_nanos.load(Ordering::Relaxed) {
            THRESHOLD_DEFAULT => Some(default),
            THRESHOLD_NEVER => None,
            nanos => Some(Duration::from_nanos(nanos)),
        }
    }

    /// The configured threshold, as given.
    pub(crate) fn leak_threshold(&self) -> LeakThreshold {
        match self.threshold_nanos.load(Ordering::Relaxed) {
            THRESHOLD_DEFAULT => LeakThreshold::Default,
            THRESHOLD_NEVER => LeakThreshold::Never,
            nanos => LeakThreshold::After(Duration::from_nanos(nanos)),
        }
    }

    pub(crate) fn limit(&self) -> Option<usize> {
        match self.limit.load(Ordering::Relaxed) {
            NO_LIMIT => None,
            limit => Some(limit),
        }
    }

    pub(crate) fn capture_backtrace(&self) -> bool {
        self.capture_backtrace.load(Ordering::Relaxed)
    }

    /// Counts one more active resource on `stripe`; with `limit`, refuses (returns false) when
    /// the kind already has `limit` active resources.
    pub(crate) fn acquire(&self, stripe: usize, limit: Option<usize>) -> bool {
        let active = &*self.active;
        let now_active = match limit {
            None => active.fetch_add(1, Ordering::Relaxed) + 1,
            Some(limit) => {
                let limit = u64::try_from(limit).unwrap_or(u64::MAX);
                let mut current = active.load(Ordering::Relaxed);
                loop {
                    if current >= limit {
                        return false;
                    }
                    match active.compare_exchange_weak(
                        current,
                        current + 1,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    ) {
                        Ok(_) => break current + 1,
                        Err(actual) => current = actual,
                    }
                }
            }
        };
        self.stripes
            .get(stripe)
            .created
            .fetch_add(1, Ordering::Relaxed);
        self.raise_peak(now_active);
        true
    }

    /// Counts one more active resource (and a new peak) without touching a stripe: a lease
    /// slot keeps its created/released counts in its own cell.
    #[inline]
    pub(crate) fn activate(&self) {
        self.raise_peak(self.active.fetch_add(1, Ordering::Relaxed) + 1);
    }

    /// Records `now_active` as the peak if it is one.
    #[inline]
    fn raise_peak(&self, now_active: u64) {
        // Read first: the peak line is only written when the peak really grows.
        if now_active > self.peak.load(Ordering::Relaxed) {
            self.peak.fetch_max(now_active, Ordering::Relaxed);
        }
    }

    /// Counts one resource fewer active, held `nanos` (the maximum lifetime), without touching
    /// a stripe: the counterpart of [`activate`](Self::activate).
    #[inline]
    pub(crate) fn deactivate(&self, nanos: u64) {
        if nanos > self.lifetime_max_nanos.load(Ordering::Relaxed) {
            self.lifetime_max_nanos.fetch_max(nanos, Ordering::Relaxed);
        }
        self.active.fetch_sub(1, Ordering::Relaxed);
    }

    /// Adds a dropped lease slot's own counts to `stripe`, its hold times to the spilled
    /// lifetime (the registry lock is held, so a stats read sees them either in the slot or
    /// here, never in both or neither).
    pub(crate) fn fold_lease(&self, stripe: usize, totals: CounterTotals) {
        let counters = self.stripes.get(stripe);
        counters
            .created
            .fetch_add(totals.created, Ordering::Relaxed);
        counters
            .released
            .fetch_add(totals.released, Ordering::Relaxed);
        counters
            .released_without_close
            .fetch_add(totals.released_without_close, Ordering::Relaxed);
        let mut spilled = lock(&self.lifetime_spilled);
        *spilled = spilled.saturating_add(totals.lifetime_total_nanos);
    }

    /// Counts one release on `stripe` with the resource's lifetime.
    pub(crate) fn release(&self, stripe: usize, lifetime: Duration, closed: bool) {
        self.release_nanos(stripe, duration_to_nanos(lifetime), closed);
    }

    /// [`release`](Self::release) with the lifetime already in nanoseconds (at most
    /// [`MAX_LIFETIME_NANOS`] are counted).
    pub(crate) fn release_nanos(&self, stripe: usize, nanos: u64, closed: bool) {
        let nanos = nanos.min(MAX_LIFETIME_NANOS);
        let counters = self.stripes.get(stripe);
        let before = counters
            .lifetime_total_nanos
            .fetch_add(nanos, Ordering::Relaxed);
        // A subtraction and a comparison on the hot path (`nanos` < 2^63: no underflow).
        if before >= LIFETIME_SPILL_AT - nanos {
            self.spill_lifetime(stripe);
        }
        if !closed {
            counters
                .released_without_close
                .fetch_add(1, Ordering::Relaxed);
        }
        counters.released.fetch_add(1, Ordering::Relaxed);
        self.deactivate(nanos);
    }

    /// Moves `stripe`'s lifetime sum into the spilled total (see [`LIFETIME_SPILL_AT`]).
    /// Releases racing it stay in the stripe (the swap is atomic), and a stats read, which
    /// holds the same lock, sees the moved sum in exactly one of the two places.
    #[cold]
    fn spill_lifetime(&self, stripe: usize) {
        let mut spilled = lock(&self.lifetime_spilled);
        let moved = self
            .stripes
            .get(stripe)
            .lifetime_total_nanos
            .swap(0, Ordering::Relaxed);
        *spilled = spilled.saturating_add(u128::from(moved));
    }

    /// Sums the stripes and the spilled lifetime (not the live lease slots' own counts: see
    /// [`LeaseRegistry::totals_by_kind`](crate::lease::LeaseRegistry::totals_by_kind)).
    /// Wrapping: a resource may be created on one stripe and released on another, but every
    /// sum is a true count.
    pub(crate) fn totals(&self) -> CounterTotals {
        let spilled = lock(&self.lifetime_spilled);
        let stripes = self
            .stripes
            .iter()
            .fold(CounterTotals::default(), |totals, stripe| {
                totals.plus(stripe.load())
            });
        CounterTotals {
            lifetime_total_nanos: stripes.lifetime_total_nanos.saturating_add(*spilled),
            ..stripes
        }
    }
}

impl StripeCounters {
    /// The stripe's counts, read one by one.
    fn load(&self) -> CounterTotals {
        CounterTotals {
            created: self.created.load(Ordering::Relaxed),
            released: self.released.load(Ordering::Relaxed),
            released_without_close: self.released_without_close.load(Ordering::Relaxed),
            lifetime_total_nanos: u128::from(self.lifetime_total_nanos.load(Ordering::Relaxed)),
        }
    }
}

impl CounterTotals {
    /// Both sums added.
    pub(crate) fn plus(self, other: Self) -> Self {
        Self {
            created: self.created.wrapping_add(other.created),
            released: self.released.wrapping_add(other.released),
            released_without_close: self
                .released_without_close
                .wrapping_add(other.released_without_close),
            // A u128 of nanoseconds: no wrap, ever (2^128 ns is 10^22 years).
            lifetime_total_nanos: self
                .lifetime_total_nanos
                .saturating_add(other.lifetime_total_nanos),
        }
    }
}

/// The read-mostly map from kind name to its state.
#[derive(Debug)]
pub(crate) struct KindTable {
    slots: Box<[OnceLock<Arc<KindState>>]>,
    /// Serialises insertions; also holds the kinds past the lock-free slots.
    overflow: Mutex<Vec<Arc<KindState>>>,
}

fn same_kind(a: &str, b: &str) -> bool {
    // Kind names are `&'static str` literals, usually the very same pointer: compare that first.
    (a.as_ptr() == b.as_ptr() && a.len() == b.len()) || a == b
}

/// A kind resolved from its index: borrowed from a lock-free slot, or an overflow clone.
#[derive(Debug)]
pub(crate) enum KindRef<'a> {
    Slot(&'a Arc<KindState>),
    Overflow(Arc<KindState>),
}

impl KindRef<'_> {
    /// An owned handle on the kind (for holders that outlive the borrow, like lease slots).
    pub(crate) fn to_arc(&self) -> Arc<KindState> {
        match self {
            Self::Slot(state) => Arc::clone(state),
            Self::Overflow(state) => Arc::clone(state),
        }
    }
}

impl std::ops::Deref for KindRef<'_> {
    type Target = KindState;

    fn deref(&self) -> &KindState {
        match self {
            Self::Slot(state) => state,
            Self::Overflow(state) => state,
        }
    }
}

impl KindTable {
    pub(crate) fn new() -> Self {
        Self {
            slots: (0..KIND_SLOTS).map(|_| OnceLock::new()).collect(),
            overflow: Mutex::new(Vec::new()),
        }
    }

    /// Finds a kind in the lock-free slots, with its index, without locking or allocating.
    pub(crate) fn find(&self, kind: &str) -> Option<(u32, &Arc<KindState>)> {
        for (index, slot) in self.slots.iter().enumerate() {
            match slot.get() {
                Some(state) if same_kind(state.name, kind) => {
                    // KIND_SLOTS is far below u32::MAX.
                    return Some((index as u32, state));
                }
                Some(_) => {}
                None => return None,
            }
        }
        None
    }

    /// Finds or inserts a kind (the insert path takes the table's mutex, once per new kind).
    pub(crate) fn get_or_insert(&self, kind: &'static str) -> (u32, KindRef<'_>) {
        if let Some((index, state)) = self.find(kind) {
            return (index, KindRef::Slot(state));
        }
        let mut overflow = lock(&self.overflow);
        if let Some(position) = overflow
            .iter()
            .position(|state| same_kind(state.name, kind))
        {
            return (
                overflow_index(position),
                KindRef::Overflow(Arc::clone(&overflow[position])),
            );
        }
        for (index, slot) in self.slots.iter().enumerate() {
            match slot.get() {
                // Another thread inserted it between `find` and taking the mutex.
                Some(state) if same_kind(state.name, kind) => {
                    return (index as u32, KindRef::Slot(state));
                }
                Some(_) => {}
                None => {
                    // Only insertions set slots and they hold the mutex, so the slot is empty.
                    let state = slot.get_or_init(|| Arc::new(KindState::new(kind)));
                    return (index as u32, KindRef::Slot(state));
                }
            }
        }
        let state = Arc::new(KindState::new(kind));
        overflow.push(Arc::clone(&state));
        (overflow_index(overflow.len() - 1), KindRef::Overflow(state))
    }

    /// The kind at `index` (as returned by `find` or `get_or_insert`).
    pub(crate) fn get(&self, index: u32) -> Option<KindRef<'_>> {
        let index = index as usize;
        match self.slots.get(index) {
            Some(slot) => slot.get().map(KindRef::Slot),
            None => lock(&self.overflow)
                .get(index - KIND_SLOTS)
                .map(|state| KindRef::Overflow(Arc::clone(state))),
        }
    }

    /// Every kind with its index, in no particular order.
    pub(crate) fn all(&self) -> Vec<(u32, Arc<KindState>)> {
        let mut kinds: Vec<_> = self
            .slots
            .iter()
            .map_while(OnceLock::get)
            .enumerate()
            .map(|(index, state)| (index as u32, Arc::clone(state)))
            .collect();
        kinds.extend(
            lock(&self.overflow)
                .iter()
                .enumerate()
                .map(|(position, state)| (overflow_index(position), Arc::clone(state))),
        );
        kinds
    }
}

fn overflow_index(position: usize) -> u32 {
    // Kinds are `&'static str` names written in code: far fewer than 2^32.
    u32::try_from(KIND_SLOTS + position).expect("fewer than 2^32 kinds")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_past_the_lock_free_slots_still_resolve_to_one_state_each() {
        let table = KindTable::new();
        let names: Vec<&'static str> = (0..KIND_SLOTS + 10)
            .map(|i| &*Box::leak(format!("kind-{i}").into_boxed_str()))
            .collect();
        let indices: Vec<u32> = names
            .iter()
            .map(|name| table.get_or_insert(name).0)
            .collect();
        for (name, index) in names.iter().zip(&indices) {
            // A different pointer with the same text finds the same kind.
            let copy: &'static str = Box::leak(name.to_string().into_boxed_str());
            assert_eq!(table.get_or_insert(copy).0, *index);
            assert_eq!(table.get(*index).map(|kind| kind.name), Some(*name));
        }
        assert_eq!(table.all().len(), KIND_SLOTS + 10);
        assert!(table.find(names[0]).is_some());
        assert!(
            table.find(names[KIND_SLOTS + 1]).is_none(),
            "overflow is not lock-free"
        );
    }

    const DAY_NANOS: u64 = 86_400 * 1_000_000_000;

    #[test]
    fn lifetime_sums_past_the_u64_range_stay_exact_on_one_stripe() {
        // 10 000 resources held 30 days each, all released on one stripe: 2.6e19 ns, past
        // u64::MAX (1.8e19), so the stripe spills at least once.
        let state = KindState::new("k");
        let mut expected: u128 = 0;
        let mut longest = 0;
        for i in 0..10_000 {
            let nanos = 30 * DAY_NANOS + i;
            assert!(state.acquire(3, None));
            state.release_nanos(3, nanos, true);
            expected += u128::from(nanos);
            longest = longest.max(nanos);
        }
        assert!(expected > u128::from(u64::MAX));
        let totals = state.totals();
        assert_eq!(totals.lifetime_total_nanos, expected);
        assert_eq!(totals.released, 10_000);
        assert_eq!(state.lifetime_max_nanos.load(Ordering::Relaxed), longest);
        assert!(
            *lock(&state.lifetime_spilled) > 0,
            "the stripe spilled into the kind's total"
        );
        // A lifetime past the counted maximum counts as the maximum, and still spills right.
        assert!(state.acquire(3, None));
        state.release(3, Duration::MAX, true);
        assert_eq!(
            state.totals().lifetime_total_nanos,
            expected + u128::from(MAX_LIFETIME_NANOS)
        );
        assert_eq!(
            state.lifetime_max_nanos.load(Ordering::Relaxed),
            MAX_LIFETIME_NANOS
        );
    }

    #[test]
    fn concurrent_releases_spilling_one_stripe_are_each_counted_once() {
        // Four threads release 2^60 ns (36 years) lifetimes on the same stripe, so it spills
        // every eighth release, while a reader checks that the total never goes down (a spill
        // is seen in the stripe or in the spilled total, never in both or neither).
        const THREADS: u64 = 4;
        const PER_THREAD: u64 = 256;
        const NANOS: u64 = 1 << 60;
        let state = Arc::new(KindState::new("k"));
        let done = Arc::new(AtomicBool::new(false));
        let reader = {
            let state = Arc::clone(&state);
            let done = Arc::clone(&done);
            std::thread::spawn(move || {
                let mut last = 0;
                let mut reads = 0_u64;
                while !done.load(Ordering::Acquire) || reads == 0 {
                    let now = state.totals().lifetime_total_nanos;
                    assert!(now >= last, "the total went from {last} down to {now}");
                    assert_eq!(now % u128::from(NANOS), 0, "a partial sum: {now}");
                    last = now;
                    reads += 1;
                }
            })
        };
        let writers: Vec<_> = (0..THREADS)
            .map(|_| {
                let state = Arc::clone(&state);
                std::thread::spawn(move || {
                    for _ in 0..PER_THREAD {
                        assert!(state.acquire(0, None));
                        state.release_nanos(0, NANOS, true);
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.join().expect("no writer panics");
        }
        done.store(true, Ordering::Release);
        reader
            .join()
            .expect("the reader saw a consistent total every time");
        let totals = state.totals();
        assert_eq!(
            totals.lifetime_total_nanos,
            u128::from(THREADS * PER_THREAD) * u128::from(NANOS)
        );
        assert_eq!(totals.released, THREADS * PER_THREAD);
    }

    #[test]
    fn thresholds_round_trip_through_their_encoding() {
        let state = KindState::new("k");
        let default = Duration::from_secs(300);
        assert_eq!(state.threshold(default), Some(default));
        for threshold in [
            LeakThreshold::Never,
            LeakThreshold::After(Duration::from_millis(50)),
            LeakThreshold::Default,
        ] {
            state.apply(KindConfig {
                leak_threshold: threshold,
                ..KindConfig::default()
            });
            assert_eq!(state.leak_threshold(), threshold);
        }
        state.apply(KindConfig {
            leak_threshold: LeakThreshold::After(Duration::MAX),
            ..KindConfig::default()
        });
        assert!(
            state.threshold(default).is_some(),
            "a huge threshold is not Never"
        );
    }
}
