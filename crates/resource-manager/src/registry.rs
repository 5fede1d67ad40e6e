//! The sharded registry of live resources, and the id scheme that keeps threads apart.
//!
//! Nothing here takes a global lock on the track/drop path: a live entry lives in one of
//! [`SHARDS`] mutex-protected slabs chosen by the resource id, and ids carry the acquiring
//! thread's stripe (one of [`STRIPES`]) in their low bits, so each thread mostly locks shards
//! and bumps id sequences of its own.

use std::backtrace::Backtrace;
use std::panic::Location;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use resync_perf_core::stripes::{Padded, Striped};
use resync_perf_core::sync::lock;

use crate::kinds::{KindTable, STRIPES};

/// Number of registry shards (a power of two, so the shard index is a mask of the id).
pub(crate) const SHARDS: usize = 64;

const STRIPE_BITS: u32 = STRIPES.trailing_zeros();

/// The stripe an id was allocated on.
pub(crate) fn stripe_of_id(id: u64) -> usize {
    (id as usize) & (STRIPES - 1)
}

/// Per-tracker id sequences, one per stripe: `id = sequence << STRIPE_BITS | stripe`.
#[derive(Debug)]
pub(crate) struct IdSequences(Striped<AtomicU64>);

impl IdSequences {
    pub(crate) fn new() -> Self {
        Self(Striped::new(STRIPES, || AtomicU64::new(1)))
    }

    pub(crate) fn next(&self, stripe: usize) -> u64 {
        let sequence = self.0.get(stripe).fetch_add(1, Ordering::Relaxed);
        (sequence << STRIPE_BITS) | stripe as u64
    }
}

/// One live resource, as the registry knows it.
#[derive(Debug)]
pub(crate) struct LiveEntry {
    pub(crate) id: u64,
    /// Index of the kind in the tracker's [`KindTable`].
    pub(crate) kind: u32,
    pub(crate) kind_name: &'static str,
    pub(crate) label: String,
    pub(crate) acquired: Instant,
    pub(crate) location: &'static Location<'static>,
    pub(crate) thread: std::thread::Thread,
    pub(crate) task: Option<tokio::task::Id>,
    /// Shared so a leak report copies it under the shard lock and formats it after.
    pub(crate) backtrace: Option<Arc<Backtrace>>,
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

/// One shard: a slab of live entries, kept `Padded` on its own cache lines and shared (via
/// `Arc`) by the guards of its entries so a release needs nothing else.
#[derive(Debug)]
pub(crate) struct Shard {
    slab: Mutex<Slab>,
    pub(crate) kinds: Arc<KindTable>,
}

impl Shard {
    pub(crate) fn insert(&self, entry: LiveEntry) -> u32 {
        lock(&self.slab).insert(entry)
    }

    pub(crate) fn remove(&self, slot: u32) -> Option<LiveEntry> {
        lock(&self.slab).remove(slot)
    }

    /// Runs `f` on the live entry in `slot`, if it is still registered.
    pub(crate) fn with_entry<R>(
        &self,
        slot: u32,
        f: impl FnOnce(&mut LiveEntry) -> R,
    ) -> Option<R> {
        lock(&self.slab).get_mut(slot).map(f)
    }
}

/// The sharded registry of live resources.
#[derive(Debug)]
pub(crate) struct Registry {
    shards: Box<[Arc<Padded<Shard>>]>,
}

impl Registry {
    pub(crate) fn new(kinds: &Arc<KindTable>) -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| {
                    Arc::new(Padded::new(Shard {
                        slab: Mutex::new(Slab::default()),
                        kinds: Arc::clone(kinds),
                    }))
                })
                .collect(),
        }
    }

    /// The shard of `id`.
    pub(crate) fn shard(&self, id: u64) -> &Arc<Padded<Shard>> {
        // SHARDS is a power of two; the mask keeps the index in range.
        &self.shards[(id as usize) & (SHARDS - 1)]
    }

    /// Runs `f` on every live entry, one shard locked at a time.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&mut LiveEntry)) {
        for shard in self.shards.iter() {
            for entry in lock(&shard.slab).iter_mut() {
                f(entry);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slab_reuses_vacant_slots() {
        let mut slab = Slab::default();
        let entry = |id| LiveEntry {
            id,
            kind: 0,
            kind_name: "k",
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
}
