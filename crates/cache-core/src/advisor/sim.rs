//! A single-threaded re-implementation of moka 0.12.16's size-aware TinyLFU policy, used for
//! the advisor's miniature caches.
//!
//! The advisor used to replay its sample into small `moka::sync::Cache`s; their concurrent
//! machinery (lock-free hash table, epoch reclamation, channels, `Arc`ed entries) cost more
//! than the policy itself. This simulator keeps the policy and drops the machinery. What it
//! copies from moka (`sync/base_cache.rs`, `common/frequency_sketch.rs`):
//!
//! - **The frequency sketch** ([`FrequencySketch`]): a 4-bit count-min sketch with four
//!   depths, Caffeine's seeds, a power-of-two table and a halving reset every `10 × capacity`
//!   increments. It starts disabled and is sized once, when the weighted size first reaches
//!   half the bound: standing for a moka cache without a weigher (every entry weighing one
//!   `unit`), at `max(128, max_capacity / unit)` entries, moka's rule for an unweighted
//!   cache; otherwise at `max(128, entry_count · weighted_size / max_capacity)`, moka's rule
//!   for a cache with a weigher.
//! - **Batching**: a `get` answers from the map at once (an entry written but not yet
//!   admitted is a hit) and queues a read; an `insert` updates the map at once and queues a
//!   write. The queues are applied when either holds 64 operations or on
//!   [`Sim::run_pending_tasks`]: all reads first (every read counts in the sketch, a hit on
//!   an admitted entry moves it to the MRU end), then the writes in order, then the sketch
//!   check, then expiry, then eviction from the LRU end while over the bound.
//! - **Admission** of a new entry: admitted outright while it fits; rejected when it weighs
//!   more than the bound; otherwise victims are taken from the LRU end while their weight is
//!   below the candidate's and their summed frequency does not exceed its, and the candidate
//!   is admitted (evicting them) only if they weigh enough and it is strictly more frequent.
//!   Entries with a queued update (moka's "dirty" entries) are skipped as victims.
//! - **Expiry** by time to live (write-order list) and time to idle (access-order list): an
//!   expired entry reads as a miss and stays until the next maintenance sweeps it; writing it
//!   again updates it in place, as in moka.
//!
//! Not modelled: moka's 300 ms maintenance timer (the advisor runs maintenance after every
//! batch instead), per-entry `Expiry`, eviction listeners, read-log overflow (the queues never
//! hold more than 64 operations), and concurrency. Timestamps are nanoseconds on a clock the
//! caller supplies, so the advisor reads the clock once per batch, only when expiry is set.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::time::Duration;

use super::SampleKeyHasher;

mod sketch;
mod slab;

use sketch::FrequencySketch;
use slab::{Order, Slab, Slot, NIL};

/// Queued reads or writes that trigger maintenance (moka's `READ_LOG_FLUSH_POINT` and
/// `WRITE_LOG_FLUSH_POINT`).
const FLUSH_POINT: usize = 64;
/// Consecutive skipped victims after which admission gives up (moka's constant).
const MAX_CONSECUTIVE_RETRIES: usize = 5;

/// A queued read (moka's `ReadOp`).
#[derive(Debug, Clone, Copy)]
enum Read {
    Hit(u32),
    Miss(u64),
}

/// A queued write (moka's `WriteOp`).
#[derive(Debug, Clone, Copy)]
enum Write {
    Upsert {
        slot: u32,
        generation: u16,
        old_weight: u32,
        new_weight: u32,
    },
    Remove(u32),
}

/// A miniature cache: moka 0.12.16's policy over `u64` keys (already hashes) weighing a
/// `u32` each.
#[derive(Debug)]
pub(crate) struct Sim {
    max_capacity: u64,
    /// The weight of every entry when the real cache weighs entries (moka without a
    /// weigher); `None` when it weighs bytes.
    unit: Option<u64>,
    /// Time to live and to idle in nanoseconds.
    ttl: Option<u64>,
    tti: Option<u64>,
    map: HashMap<u64, u32, BuildHasherDefault<SampleKeyHasher>>,
    slab: Slab,
    reads: Vec<Read>,
    writes: Vec<Write>,
    sketch: FrequencySketch,
    sketch_enabled: bool,
    entry_count: u64,
    weighted_size: u64,
    /// Scratch space for admission's victims, kept to avoid allocating.
    victims: Vec<u32>,
}

impl Sim {
    /// A simulated cache bounded at `max_capacity` (at least 1) total weight. With a
    /// `unit`, it stands for a moka cache without a weigher whose entries all weigh `unit`
    /// here: its sketch is sized at the entries it can hold, as moka sizes an unweighted
    /// cache's; without one, as moka sizes a weighed cache's.
    pub(crate) fn new(
        max_capacity: u64,
        time_to_live: Option<Duration>,
        time_to_idle: Option<Duration>,
        unit: Option<u64>,
    ) -> Self {
        let nanos = |duration: Duration| u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        Self {
            max_capacity: max_capacity.max(1),
            unit: unit.map(|unit| unit.max(1)),
            ttl: time_to_live.map(nanos),
            tti: time_to_idle.map(nanos),
            map: HashMap::default(),
            slab: Slab::new(),
            reads: Vec::with_capacity(FLUSH_POINT),
            writes: Vec::with_capacity(FLUSH_POINT),
            sketch: FrequencySketch::default(),
            sketch_enabled: false,
            entry_count: 0,
            weighted_size: 0,
            victims: Vec::new(),
        }
    }

    /// The weight of `key` if the cache holds it unexpired at `now` (nanoseconds).
    pub(crate) fn get(&mut self, key: u64, now: u64) -> Option<u32> {
        let found = match self.map.get(&key) {
            Some(&index) if !self.is_expired(self.slab.slot(index), now) => {
                let slot = self.slab.slot_mut(index);
                slot.last_accessed = now;
                self.reads.push(Read::Hit(index));
                Some(slot.weight)
            }
            _ => {
                self.reads.push(Read::Miss(key));
                None
            }
        };
        if self.reads.len() >= FLUSH_POINT {
            self.run_pending_tasks(now);
        }
        found
    }

    /// Writes `key` with `weight` at `now`; admission is decided at the next maintenance.
    pub(crate) fn insert(&mut self, key: u64, weight: u32, now: u64) {
        let write = match self.map.entry(key) {
            Entry::Occupied(occupied) => {
                let index = *occupied.get();
                let slot = self.slab.slot_mut(index);
                let old_weight = slot.weight;
                slot.weight = weight;
                slot.entry_gen = slot.entry_gen.wrapping_add(1);
                slot.last_modified = now;
                slot.last_accessed = now;
                Write::Upsert {
                    slot: index,
                    generation: slot.entry_gen,
                    old_weight,
                    new_weight: weight,
                }
            }
            Entry::Vacant(vacant) => {
                let index = self.slab.allocate(key, weight, now);
                vacant.insert(index);
                Write::Upsert {
                    slot: index,
                    generation: self.slab.slot(index).entry_gen,
                    old_weight: 0,
                    new_weight: weight,
                }
            }
        };
        self.writes.push(write);
        if self.writes.len() >= FLUSH_POINT {
            self.run_pending_tasks(now);
        }
    }

    /// Removes `key`; its place in the lists is given up at the next maintenance.
    pub(crate) fn invalidate(&mut self, key: u64, now: u64) {
        if let Some(index) = self.map.remove(&key) {
            self.slab.slot_mut(index).alive = false;
            self.writes.push(Write::Remove(index));
            if self.writes.len() >= FLUSH_POINT {
                self.run_pending_tasks(now);
            }
        }
    }

    /// Drops every entry (moka's `invalidate_all` followed by maintenance); the sketch keeps
    /// its counts, as moka's does.
    pub(crate) fn invalidate_all(&mut self, now: u64) {
        self.run_pending_tasks(now);
        self.map.clear();
        self.slab.clear();
        self.entry_count = 0;
        self.weighted_size = 0;
    }

    /// moka's maintenance: queued reads, queued writes, sketch sizing, expiry, eviction.
    pub(crate) fn run_pending_tasks(&mut self, now: u64) {
        self.apply_reads();
        self.apply_writes();
        if !self.sketch_enabled && self.weighted_size >= self.max_capacity / 2 {
            let cap = match self.unit {
                Some(unit) => self.max_capacity / unit,
                None => {
                    (self.entry_count as f64
                        * (self.weighted_size as f64 / self.max_capacity as f64))
                        as u64
                }
            };
            self.sketch
                .ensure_capacity(u32::try_from(cap).unwrap_or(u32::MAX).max(128));
            self.sketch_enabled = true;
        }
        if self.ttl.is_some() {
            self.remove_expired(Order::Write, now);
        }
        if self.tti.is_some() {
            self.remove_expired(Order::Access, now);
        }
        while self.weighted_size > self.max_capacity {
            let victim = self.slab.access.head;
            if victim == NIL {
                break;
            }
            self.evict(victim);
        }
    }

    fn is_expired(&self, slot: &Slot, now: u64) -> bool {
        self.ttl
            .is_some_and(|ttl| slot.last_modified.saturating_add(ttl) <= now)
            || self
                .tti
                .is_some_and(|tti| slot.last_accessed.saturating_add(tti) <= now)
    }

    fn apply_reads(&mut self) {
        let mut reads = std::mem::take(&mut self.reads);
        for read in reads.drain(..) {
            match read {
                Read::Hit(index) => {
                    let slot = self.slab.slot(index);
                    self.sketch.increment(slot.key);
                    if slot.alive && slot.admitted {
                        self.slab.move_to_back(Order::Access, index);
                    }
                }
                Read::Miss(hash) => self.sketch.increment(hash),
            }
        }
        self.reads = reads;
    }

    fn apply_writes(&mut self) {
        let mut writes = std::mem::take(&mut self.writes);
        for write in writes.drain(..) {
            match write {
                Write::Upsert {
                    slot,
                    generation,
                    old_weight,
                    new_weight,
                } => self.handle_upsert(slot, generation, old_weight, new_weight),
                Write::Remove(index) => {
                    if self.slab.slot(index).admitted {
                        self.unlink(index);
                    }
                    self.slab.release(index);
                }
            }
        }
        self.writes = writes;
    }

    /// moka's `handle_upsert`: an update of an admitted entry, or an admission decision.
    fn handle_upsert(&mut self, index: u32, generation: u16, old_weight: u32, new_weight: u32) {
        let slot = self.slab.slot(index);
        if !slot.alive {
            return;
        }
        if slot.admitted {
            self.weighted_size = self
                .weighted_size
                .saturating_sub(u64::from(old_weight))
                .saturating_add(u64::from(new_weight));
            self.slab.move_to_back(Order::Access, index);
            if self.ttl.is_some() {
                self.slab.move_to_back(Order::Write, index);
            }
            self.slab.slot_mut(index).policy_gen = generation;
            return;
        }
        let weight = u64::from(new_weight);
        if self.weighted_size + weight <= self.max_capacity {
            self.admit(index, new_weight, generation);
        } else if weight > self.max_capacity {
            self.reject(index, generation);
        } else {
            let frequency = u32::from(self.sketch.frequency(slot.key));
            if self.select_victims(weight, frequency) {
                let victims = std::mem::take(&mut self.victims);
                for victim in &victims {
                    self.evict(*victim);
                }
                self.victims = victims;
                self.admit(index, new_weight, generation);
            } else {
                self.reject(index, generation);
            }
        }
    }

    /// moka's `admit`: gathers victims from the LRU end into `self.victims` and tells
    /// whether the candidate beats them.
    fn select_victims(&mut self, candidate_weight: u64, candidate_frequency: u32) -> bool {
        self.victims.clear();
        let mut weight = 0u64;
        let mut frequency = 0u32;
        let mut retries = 0;
        let mut next = self.slab.access.head;
        while weight < candidate_weight
            && frequency <= candidate_frequency
            && retries <= MAX_CONSECUTIVE_RETRIES
            && next != NIL
        {
            let index = next;
            let slot = self.slab.slot(index);
            next = slot.access.next;
            if slot.entry_gen != slot.policy_gen || !slot.alive {
                // A queued update or removal: moka skips such entries.
                self.slab.move_to_back(Order::Access, index);
                retries += 1;
                continue;
            }
            weight += u64::from(slot.weight);
            frequency += u32::from(self.sketch.frequency(slot.key));
            self.victims.push(index);
            retries = 0;
        }
        weight >= candidate_weight && candidate_frequency > frequency
    }

    fn admit(&mut self, index: u32, weight: u32, generation: u16) {
        self.entry_count += 1;
        self.weighted_size += u64::from(weight);
        self.slab.push_back(Order::Access, index);
        if self.ttl.is_some() {
            self.slab.push_back(Order::Write, index);
        }
        let slot = self.slab.slot_mut(index);
        slot.admitted = true;
        slot.policy_gen = generation;
    }

    /// Drops a candidate that was not admitted, unless a later write to it is queued.
    fn reject(&mut self, index: u32, generation: u16) {
        let slot = self.slab.slot(index);
        if slot.entry_gen == generation {
            self.map.remove(&slot.key);
            self.slab.release(index);
        }
    }

    /// Removes an admitted, live entry from the map, the lists and the counters.
    fn evict(&mut self, index: u32) {
        self.map.remove(&self.slab.slot(index).key);
        self.unlink(index);
        self.slab.release(index);
    }

    /// Takes an admitted entry out of the lists and the counters (moka's `handle_remove`,
    /// which subtracts the entry's current weight).
    fn unlink(&mut self, index: u32) {
        self.slab.unlink(Order::Access, index);
        if self.ttl.is_some() {
            self.slab.unlink(Order::Write, index);
        }
        self.entry_count = self.entry_count.saturating_sub(1);
        self.weighted_size = self
            .weighted_size
            .saturating_sub(u64::from(self.slab.slot(index).weight));
    }

    /// Sweeps expired entries from the front of the write-order (TTL) or access-order (TTI)
    /// list, stopping at the first live one, as moka does.
    fn remove_expired(&mut self, order: Order, now: u64) {
        loop {
            let (head, limit) = match order {
                Order::Write => (self.slab.write.head, self.ttl),
                Order::Access => (self.slab.access.head, self.tti),
            };
            let Some(limit) = limit else { return };
            if head == NIL {
                return;
            }
            let slot = self.slab.slot(head);
            let since = match order {
                Order::Write => slot.last_modified,
                Order::Access => slot.last_accessed,
            };
            if since.saturating_add(limit) > now {
                return;
            }
            self.evict(head);
        }
    }
}

#[cfg(test)]
impl Sim {
    fn contains(&self, key: u64) -> bool {
        self.map.contains_key(&key)
    }

    /// Checks the lists against the map and the counters.
    fn check_invariants(&self) {
        let mut count = 0;
        let mut weight = 0;
        let mut previous = NIL;
        let mut index = self.slab.access.head;
        while index != NIL {
            let slot = self.slab.slot(index);
            assert!(slot.alive && slot.admitted);
            assert_eq!(slot.access.prev, previous);
            assert_eq!(self.map.get(&slot.key), Some(&index));
            count += 1;
            weight += u64::from(slot.weight);
            previous = index;
            index = slot.access.next;
        }
        assert_eq!(self.slab.access.tail, previous);
        assert_eq!(count, self.entry_count);
        assert_eq!(weight, self.weighted_size);
        // The write-order list holds every admitted entry when a TTL is set, none otherwise.
        let mut in_write_order = 0;
        let mut previous = NIL;
        let mut index = self.slab.write.head;
        while index != NIL {
            let slot = self.slab.slot(index);
            assert!(slot.alive && slot.admitted);
            assert_eq!(slot.write.prev, previous);
            in_write_order += 1;
            previous = index;
            index = slot.write.next;
        }
        assert_eq!(self.slab.write.tail, previous);
        let expected = if self.ttl.is_some() { count } else { 0 };
        assert_eq!(in_write_order, expected);
        // Every slot is either alive (in the map) or on the free list, never both.
        let free = self.slab.free_slots();
        assert!(free.iter().all(|&index| !self.slab.slot(index).alive));
        let alive = (0..self.slab.len())
            .filter(|&index| self.slab.slot(index).alive)
            .count();
        assert_eq!(alive + free.len(), self.slab.len() as usize);
        assert_eq!(alive, self.map.len());
        assert!(self.weighted_size <= self.max_capacity);
        if self.writes.is_empty() {
            // Every write applied: each entry in the map was admitted or dropped.
            assert_eq!(self.map.len() as u64, self.entry_count);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys as the advisor produces them: well mixed, below a 1 % threshold.
    fn key(i: u64) -> u64 {
        crate::advisor::key_hash(&i) / 100
    }

    /// A full cache of `entries` keys weighing 10 each, every one read `reads` times.
    fn filled(entries: u64, reads: usize) -> Sim {
        let mut sim = Sim::new(entries * 10, None, None, None);
        for i in 0..entries {
            sim.insert(key(i), 10, 0);
        }
        sim.run_pending_tasks(0);
        for _ in 0..reads {
            for i in 0..entries {
                assert_eq!(sim.get(key(i), 0), Some(10));
            }
        }
        sim.run_pending_tasks(0);
        sim.check_invariants();
        sim
    }

    #[test]
    fn the_sketch_is_enabled_at_half_full_and_sized_as_moka_sizes_it() {
        let mut sim = Sim::new(1_000, None, None, None);
        for i in 0..49 {
            sim.insert(key(i), 10, 0);
        }
        sim.run_pending_tasks(0);
        assert!(!sim.sketch_enabled);
        sim.insert(key(49), 10, 0);
        sim.run_pending_tasks(0);
        assert!(sim.sketch_enabled);
        // 50 entries · 500 / 1 000 = 25, raised to 128 entries.
        assert_eq!(sim.sketch.table_len(), 128);
        assert_eq!(sim.sketch.sample_size(), 1_280);
    }

    #[test]
    fn standing_for_unweighted_moka_the_sketch_is_sized_at_the_entries_it_holds() {
        // 1 000 entries of weight 10 (moka without a weigher, 1 000 entries).
        let mut sim = Sim::new(10_000, None, None, Some(10));
        for i in 0..499 {
            sim.insert(key(i), 10, 0);
        }
        sim.run_pending_tasks(0);
        assert!(!sim.sketch_enabled);
        sim.insert(key(499), 10, 0);
        sim.run_pending_tasks(0);
        assert!(sim.sketch_enabled);
        // 1 000 entries, not 500 · 5 000 / 10 000 = 250 (a weighed moka's rule).
        assert_eq!(sim.sketch.table_len(), 1_024);
        assert_eq!(sim.sketch.sample_size(), 10_000);
    }

    #[test]
    fn a_cold_candidate_is_rejected_against_hot_victims() {
        let mut sim = filled(100, 3);
        sim.insert(key(1_000), 10, 0);
        // Not yet admitted, but in the map: a get hits, as in moka.
        assert_eq!(sim.get(key(1_000), 0), Some(10));
        sim.run_pending_tasks(0);
        assert!(!sim.contains(key(1_000)));
        assert!((0..100).all(|i| sim.contains(key(i))));
        sim.check_invariants();
    }

    #[test]
    fn a_hot_candidate_is_admitted_and_evicts_the_lru_entry() {
        let mut sim = filled(100, 0);
        // Misses count in the sketch too: the candidate becomes more frequent than key 0.
        for _ in 0..3 {
            assert_eq!(sim.get(key(1_000), 0), None);
        }
        sim.insert(key(1_000), 10, 0);
        sim.run_pending_tasks(0);
        assert!(sim.contains(key(1_000)));
        assert!(!sim.contains(key(0)), "the LRU entry is the victim");
        assert_eq!(sim.entry_count, 100);
        sim.check_invariants();
    }

    #[test]
    fn a_hit_moves_the_entry_away_from_the_lru_end() {
        let mut sim = filled(100, 0);
        sim.get(key(0), 0);
        for _ in 0..3 {
            sim.get(key(1_000), 0);
        }
        sim.insert(key(1_000), 10, 0);
        sim.run_pending_tasks(0);
        assert!(sim.contains(key(0)));
        assert!(!sim.contains(key(1)));
        sim.check_invariants();
    }

    #[test]
    fn weights_are_respected() {
        let mut sim = filled(100, 0);
        // Heavier than the whole cache: rejected outright.
        sim.insert(key(1_000), 1_001, 0);
        sim.run_pending_tasks(0);
        assert!(!sim.contains(key(1_000)));
        // A frequent candidate weighing three entries evicts three victims.
        for _ in 0..5 {
            sim.get(key(1_001), 0);
        }
        sim.insert(key(1_001), 30, 0);
        sim.run_pending_tasks(0);
        assert!(sim.contains(key(1_001)));
        assert!((0..3).all(|i| !sim.contains(key(i))));
        assert!(sim.contains(key(3)));
        assert_eq!(sim.weighted_size, 1_000);
        // Growing an admitted entry evicts from the LRU end.
        sim.insert(key(50), 20, 0);
        sim.run_pending_tasks(0);
        assert!(!sim.contains(key(3)));
        assert_eq!(sim.get(key(50), 0), Some(20));
        sim.check_invariants();
    }

    #[test]
    fn invalidated_entries_leave_map_list_and_counters() {
        let mut sim = filled(100, 0);
        sim.invalidate(key(5), 0);
        assert_eq!(sim.get(key(5), 0), None);
        // Written and invalidated in the same batch.
        sim.insert(key(2_000), 10, 0);
        sim.invalidate(key(2_000), 0);
        sim.run_pending_tasks(0);
        assert_eq!(sim.entry_count, 99);
        sim.check_invariants();
        sim.invalidate_all(0);
        assert_eq!(sim.get(key(6), 0), None);
        sim.check_invariants();
    }

    #[test]
    fn entries_expire_by_time_to_live_and_time_to_idle() {
        let second = 1_000_000_000;
        let mut ttl = Sim::new(1_000, Some(Duration::from_secs(10)), None, None);
        ttl.insert(key(1), 10, 0);
        ttl.insert(key(2), 10, 5 * second);
        ttl.run_pending_tasks(5 * second);
        assert_eq!(ttl.get(key(1), 9 * second), Some(10));
        assert_eq!(
            ttl.get(key(1), 10 * second),
            None,
            "expired, though still held"
        );
        assert!(ttl.contains(key(1)));
        ttl.run_pending_tasks(10 * second);
        assert!(!ttl.contains(key(1)), "swept at maintenance");
        assert_eq!(ttl.get(key(2), 14 * second), Some(10));
        // Rewriting restarts the time to live.
        ttl.insert(key(2), 10, 14 * second);
        ttl.run_pending_tasks(20 * second);
        assert_eq!(ttl.get(key(2), 23 * second), Some(10));
        ttl.check_invariants();

        let mut tti = Sim::new(1_000, None, Some(Duration::from_secs(10)), None);
        tti.insert(key(1), 10, 0);
        tti.insert(key(2), 10, 0);
        tti.run_pending_tasks(0);
        assert_eq!(tti.get(key(1), 8 * second), Some(10));
        tti.run_pending_tasks(12 * second);
        assert!(tti.contains(key(1)), "read 4 s ago");
        assert!(!tti.contains(key(2)), "idle for 12 s");
        tti.check_invariants();
    }

    #[test]
    fn a_long_random_workload_keeps_the_structures_consistent() {
        let mut sim = Sim::new(5_000, Some(Duration::from_nanos(40_000)), None, None);
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for step in 0..200_000u64 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let k = key(state % 1_000);
            match state % 10 {
                0..=5 => {
                    sim.get(k, step);
                }
                6..=8 => sim.insert(k, 1 + (state >> 40) as u32 % 100, step),
                _ => sim.invalidate(k, step),
            }
            if step % 1_000 == 0 {
                sim.run_pending_tasks(step);
                sim.check_invariants();
            }
        }
    }
}

#[cfg(test)]
mod fidelity {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    type Moka = moka::sync::Cache<u64, u32, BuildHasherDefault<SampleKeyHasher>>;

    /// Zipf ranks by inverse CDF.
    fn zipf_trace(keys: usize, exponent: f64, len: usize, seed: u64) -> Vec<u64> {
        let mut cumulative = Vec::with_capacity(keys);
        let mut total = 0.0;
        for rank in 0..keys {
            total += 1.0 / ((rank + 1) as f64).powf(exponent);
            cumulative.push(total);
        }
        let mut rng = StdRng::seed_from_u64(seed);
        (0..len)
            .map(|_| {
                let u: f64 = rng.gen::<f64>() * total;
                let rank = cumulative.partition_point(|&c| c < u) as u64;
                crate::advisor::key_hash(&rank) / 40
            })
            .collect()
    }

    /// Hits of the simulator and of moka on `trace` (get, insert on a miss, maintenance every
    /// 64 requests), weights from `weigh`. With a `unit`, every weight must be `unit` and
    /// moka has no weigher (bounded at `capacity / unit` entries).
    fn replay(
        trace: &[u64],
        capacity: u64,
        unit: Option<u32>,
        weigh: impl Fn(u64) -> u32,
    ) -> (u64, u64) {
        let mut sim = Sim::new(capacity, None, None, unit.map(u64::from));
        let moka: Moka = match unit {
            Some(unit) => moka::sync::Cache::builder().max_capacity(capacity / u64::from(unit)),
            None => moka::sync::Cache::builder()
                .max_capacity(capacity)
                .weigher(|_key: &u64, weight: &u32| *weight),
        }
        .build_with_hasher(BuildHasherDefault::default());
        let (mut sim_hits, mut moka_hits) = (0, 0);
        for (i, &key) in trace.iter().enumerate() {
            if sim.get(key, 0).is_some() {
                sim_hits += 1;
            } else {
                sim.insert(key, weigh(key), 0);
            }
            if moka.get(&key).is_some() {
                moka_hits += 1;
            } else {
                moka.insert(key, weigh(key));
            }
            if i % 64 == 63 {
                sim.run_pending_tasks(0);
                moka.run_pending_tasks();
            }
        }
        (sim_hits, moka_hits)
    }

    #[test]
    fn the_simulator_hits_as_often_as_moka() {
        let zipf = zipf_trace(20_000, 0.9, 400_000, 7);
        // The same with one-off scans: 500 new keys after every 2 000 requests.
        let mut scans = Vec::with_capacity(zipf.len() * 5 / 4);
        for (i, chunk) in zipf.chunks(2_000).enumerate() {
            scans.extend_from_slice(chunk);
            scans.extend((0..500).map(|j| crate::advisor::key_hash(&(i, j)) / 40));
        }
        for (trace, name) in [(&zipf, "zipf"), (&scans, "zipf+scans")] {
            // (entries, weights vary, moka without a weigher)
            for (entries, variable, unweighted) in [
                (128u64, false, false),
                (1_024, false, false),
                (256, true, false),
                (128, false, true),
                (1_024, false, true),
            ] {
                let weigh = |key: u64| {
                    if variable {
                        100 + (key % 900) as u32
                    } else {
                        512
                    }
                };
                let unit = unweighted.then_some(512);
                let (sim, moka) = replay(trace, entries * 512, unit, weigh);
                let (sim, moka) = (
                    sim as f64 / trace.len() as f64,
                    moka as f64 / trace.len() as f64,
                );
                println!("{name}, {entries} entries, variable weights {variable}, unweighted {unweighted}: sim {sim:.4} moka {moka:.4}");
                assert!(
                    (sim - moka).abs() < 0.005,
                    "{name}, {entries} entries: sim {sim:.4} moka {moka:.4}"
                );
            }
        }
    }
}
