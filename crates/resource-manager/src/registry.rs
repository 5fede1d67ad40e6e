//! The tracker's shared state: the kind table (read-mostly, lock-free lookups) and the sharded
//! registry of live resources.
//!
//! Nothing here takes a global lock on the track/drop path: a kind is found by scanning a small
//! array of `OnceLock` slots (an atomic load each), counters are per-kind atomics, and a live
//! entry lives in one of [`SHARDS`] mutex-protected slabs chosen by the resource id.

use std::backtrace::Backtrace;
use std::panic::Location;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use crate::tracker::{KindConfig, LeakThreshold};

/// Number of registry shards (a power of two, so the shard index is a mask of the id).
pub(crate) const SHARDS: usize = 64;

/// Kinds that fit the lock-free table; more kinds still work through a mutex-guarded overflow.
const KIND_SLOTS: usize = 64;

/// Encodes [`LeakThreshold::Default`] in [`KindState::threshold_nanos`].
const THRESHOLD_DEFAULT: u64 = u64::MAX;
/// Encodes [`LeakThreshold::Never`] in [`KindState::threshold_nanos`].
const THRESHOLD_NEVER: u64 = u64::MAX - 1;
/// Encodes "no limit" in [`KindState::limit`].
const NO_LIMIT: usize = usize::MAX;

/// Locks a mutex, recovering the data if a panicking thread poisoned it: every critical
/// section here leaves its data consistent, so poisoning carries no meaning.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
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
    /// Whether `configure_kind` was called (built-in defaults then never override it).
    configured: AtomicBool,
    pub(crate) active: AtomicU64,
    pub(crate) peak: AtomicU64,
    pub(crate) created: AtomicU64,
    pub(crate) released: AtomicU64,
    pub(crate) released_without_close: AtomicU64,
    pub(crate) leaked_total: AtomicU64,
    pub(crate) leaked_released: AtomicU64,
    pub(crate) lifetime_total_nanos: AtomicU64,
    pub(crate) lifetime_max_nanos: AtomicU64,
}

impl KindState {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            threshold_nanos: AtomicU64::new(THRESHOLD_DEFAULT),
            limit: AtomicUsize::new(NO_LIMIT),
            capture_backtrace: AtomicBool::new(false),
            configured: AtomicBool::new(false),
            active: AtomicU64::new(0),
            peak: AtomicU64::new(0),
            created: AtomicU64::new(0),
            released: AtomicU64::new(0),
            released_without_close: AtomicU64::new(0),
            leaked_total: AtomicU64::new(0),
            leaked_released: AtomicU64::new(0),
            lifetime_total_nanos: AtomicU64::new(0),
            lifetime_max_nanos: AtomicU64::new(0),
        }
    }

    pub(crate) fn apply(&self, config: KindConfig) {
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
        self.configured.store(true, Ordering::Relaxed);
    }

    pub(crate) fn is_configured(&self) -> bool {
        self.configured.load(Ordering::Relaxed)
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

    /// Counts one more active resource; with `limit`, refuses (returns false) when the kind
    /// already has `limit` active resources.
    pub(crate) fn acquire(&self, limit: Option<usize>) -> bool {
        let active = match limit {
            None => self.active.fetch_add(1, Ordering::Relaxed) + 1,
            Some(limit) => {
                let limit = u64::try_from(limit).unwrap_or(u64::MAX);
                let mut current = self.active.load(Ordering::Relaxed);
                loop {
                    if current >= limit {
                        return false;
                    }
                    match self.active.compare_exchange_weak(
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
        self.created.fetch_add(1, Ordering::Relaxed);
        self.peak.fetch_max(active, Ordering::Relaxed);
        true
    }

    /// Counts one release with the resource's lifetime.
    pub(crate) fn release(&self, lifetime: Duration, closed: bool) {
        let nanos = duration_to_nanos(lifetime);
        self.lifetime_total_nanos
            .fetch_add(nanos, Ordering::Relaxed);
        self.lifetime_max_nanos.fetch_max(nanos, Ordering::Relaxed);
        if !closed {
            self.released_without_close.fetch_add(1, Ordering::Relaxed);
        }
        self.released.fetch_add(1, Ordering::Relaxed);
        self.active.fetch_sub(1, Ordering::Relaxed);
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

impl KindTable {
    pub(crate) fn new() -> Self {
        Self {
            slots: (0..KIND_SLOTS).map(|_| OnceLock::new()).collect(),
            overflow: Mutex::new(Vec::new()),
        }
    }

    /// Finds a kind without locking or allocating when it is already known.
    pub(crate) fn find(&self, kind: &str) -> Option<&Arc<KindState>> {
        for slot in self.slots.iter() {
            match slot.get() {
                Some(state) if same_kind(state.name, kind) => return Some(state),
                Some(_) => {}
                None => return None,
            }
        }
        None
    }

    /// Finds or inserts a kind (the insert path takes the table's mutex, once per new kind).
    pub(crate) fn get_or_insert(&self, kind: &'static str) -> Arc<KindState> {
        if let Some(state) = self.find(kind) {
            return Arc::clone(state);
        }
        let mut overflow = lock(&self.overflow);
        if let Some(state) = overflow.iter().find(|state| same_kind(state.name, kind)) {
            return Arc::clone(state);
        }
        for slot in self.slots.iter() {
            match slot.get() {
                // Another thread inserted it between `find` and taking the mutex.
                Some(state) if same_kind(state.name, kind) => return Arc::clone(state),
                Some(_) => {}
                None => {
                    let state = Arc::new(KindState::new(kind));
                    // Only insertions set slots and they hold the mutex, so the slot is empty.
                    let _ = slot.set(Arc::clone(&state));
                    return state;
                }
            }
        }
        let state = Arc::new(KindState::new(kind));
        overflow.push(Arc::clone(&state));
        state
    }

    /// Every kind, in no particular order.
    pub(crate) fn all(&self) -> Vec<Arc<KindState>> {
        let mut kinds: Vec<_> = self
            .slots
            .iter()
            .map_while(OnceLock::get)
            .map(Arc::clone)
            .collect();
        kinds.extend(lock(&self.overflow).iter().map(Arc::clone));
        kinds
    }
}

/// One live resource, as the registry knows it.
#[derive(Debug)]
pub(crate) struct LiveEntry {
    pub(crate) id: u64,
    pub(crate) kind: Arc<KindState>,
    pub(crate) label: String,
    pub(crate) acquired: Instant,
    pub(crate) location: &'static Location<'static>,
    pub(crate) thread: std::thread::Thread,
    pub(crate) task: Option<tokio::task::Id>,
    pub(crate) backtrace: Option<Box<Backtrace>>,
    /// Set by the first scan that saw this resource past its threshold.
    pub(crate) leak_reported: bool,
}

/// A slab of live entries; a guard remembers its slot index.
#[derive(Debug, Default)]
pub(crate) struct Slab {
    slots: Vec<Option<LiveEntry>>,
    vacant: Vec<u32>,
}

impl Slab {
    fn insert(&mut self, entry: LiveEntry) -> u32 {
        if let Some(index) = self.vacant.pop() {
            self.slots[index as usize] = Some(entry);
            index
        } else {
            // A shard holding 2^32 live entries would need terabytes of memory first.
            let index = u32::try_from(self.slots.len()).expect("fewer than 2^32 live entries");
            self.slots.push(Some(entry));
            index
        }
    }

    fn remove(&mut self, index: u32) -> Option<LiveEntry> {
        let entry = self.slots.get_mut(index as usize)?.take()?;
        self.vacant.push(index);
        Some(entry)
    }

    fn get_mut(&mut self, index: u32) -> Option<&mut LiveEntry> {
        self.slots.get_mut(index as usize)?.as_mut()
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut LiveEntry> {
        self.slots.iter_mut().filter_map(Option::as_mut)
    }
}

/// One shard on its own cache lines, so neighbouring shards do not share a line.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Shard(Mutex<Slab>);

/// The sharded registry of live resources.
#[derive(Debug)]
pub(crate) struct Registry {
    shards: Box<[Shard]>,
}

impl Registry {
    pub(crate) fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
        }
    }

    fn shard(&self, id: u64) -> &Mutex<Slab> {
        // SHARDS is a power of two; the mask keeps the index in range.
        &self.shards[(id as usize) & (SHARDS - 1)].0
    }

    pub(crate) fn insert(&self, entry: LiveEntry) -> u32 {
        lock(self.shard(entry.id)).insert(entry)
    }

    pub(crate) fn remove(&self, id: u64, slot: u32) -> Option<LiveEntry> {
        lock(self.shard(id)).remove(slot)
    }

    /// Runs `f` on the live entry, if it is still registered.
    pub(crate) fn with_entry<R>(
        &self,
        id: u64,
        slot: u32,
        f: impl FnOnce(&mut LiveEntry) -> R,
    ) -> Option<R> {
        lock(self.shard(id)).get_mut(slot).map(f)
    }

    /// Runs `f` on every live entry, one shard locked at a time.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&mut LiveEntry)) {
        for shard in self.shards.iter() {
            for entry in lock(&shard.0).iter_mut() {
                f(entry);
            }
        }
    }
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
        let states: Vec<_> = names.iter().map(|name| table.get_or_insert(name)).collect();
        for (name, state) in names.iter().zip(&states) {
            // A different pointer with the same text finds the same state.
            let copy: &'static str = Box::leak(name.to_string().into_boxed_str());
            assert!(Arc::ptr_eq(state, &table.get_or_insert(copy)));
        }
        assert_eq!(table.all().len(), KIND_SLOTS + 10);
        assert!(table.find(names[0]).is_some());
        assert!(
            table.find(names[KIND_SLOTS + 1]).is_none(),
            "overflow is not lock-free"
        );
    }

    #[test]
    fn slab_reuses_vacant_slots() {
        let mut slab = Slab::default();
        let kind = Arc::new(KindState::new("k"));
        let entry = |id| LiveEntry {
            id,
            kind: Arc::clone(&kind),
            label: String::new(),
            acquired: Instant::now(),
            location: Location::caller(),
            thread: std::thread::current(),
            task: None,
            backtrace: None,
            leak_reported: false,
        };
        let a = slab.insert(entry(1));
        let b = slab.insert(entry(2));
        assert_eq!(slab.remove(a).map(|e| e.id), Some(1));
        assert!(slab.remove(a).is_none(), "removing twice finds nothing");
        let c = slab.insert(entry(3));
        assert_eq!(c, a, "the vacant slot is reused");
        assert_eq!(slab.iter_mut().count(), 2);
        assert_eq!(slab.get_mut(b).map(|e| e.id), Some(2));
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
