//! The miss-ratio-curve estimator behind the cache's resize advice.
//!
//! Method (see the crate README for the reasoning):
//!
//! 1. *Spatial sampling.* Every key is hashed with a fixed, fast hash; a key belongs to the
//!    sample when its hash falls below `rate · 2⁶⁴`. A sampled key is always sampled, so the
//!    sample sees every access to about `rate` of the keys (SHARDS, Waldspurger et al. 2015).
//! 2. *Miniature simulations of the same policy.* The sampled accesses drive small caches
//!    with memory bounds of `rate · max_memory · f` for `f` in ½, 1, 2, 4; each sampled write
//!    carries the real entry's weight. The miniatures are [`sim::Sim`]s, a single-threaded
//!    re-implementation of moka 0.12.16's policy — its frequency sketch and when it is sized,
//!    its batching of reads and writes, its size-aware TinyLFU admission and its LRU — so
//!    moka's admission is simulated, not approximated by an LRU stack-distance model, at a
//!    fraction of what replaying into real moka caches cost. A sampled get carries whether
//!    the real cache hit; a miniature that missed a real hit gets the entry inserted (a cache
//!    of its size would have reloaded it), with the weight another miniature holds.
//! 3. *Anchoring.* The prediction at factor `f` is the real cache's measured hit rate plus
//!    the extra hits of the miniature at `f` over the miniature at 1×, divided by the gets
//!    the sample is expected to hold (`rate · requests`). The sampling error that a few hot
//!    keys cause mostly cancels: they hit at every size.
//!
//! Cost on the hot path: one hash per get or write; for the sampled ~1 %, a push into a
//! mutex-guarded buffer; once [`BATCH`] samples are buffered the pushing thread *tries* the
//! replay lock and, if it is free, replays them into the miniatures; if another thread is
//! replaying, the samples stay buffered (up to [`MAX_PENDING`], past which it waits).

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::{Duration, Instant};

use crate::cache::Weighing;
use crate::metrics::{CurvePoint, MissRatioCurve};

mod sim;

use sim::Sim;

/// Capacity factors simulated, relative to the current memory bound.
pub(crate) const FACTORS: [f64; 4] = [0.5, 1.0, 2.0, 4.0];
/// Index of the 1× miniature in [`FACTORS`].
const CURRENT: usize = 1;
/// Miniatures at most: one per factor, plus the 1× one with twice the TTL when a TTL is set.
const MINIATURES: usize = FACTORS.len() + 1;
/// Samples buffered before they are replayed into the miniatures.
pub(crate) const BATCH: usize = 64;
/// Samples buffered at most while another thread holds the replay lock; past this the
/// recording thread waits for it.
pub(crate) const MAX_PENDING: usize = 16 * BATCH;
/// Sampled gets needed before a curve is reported.
pub(crate) const MIN_SAMPLED_GETS: u64 = 200;
/// Default share of keys sampled.
pub(crate) const DEFAULT_SAMPLE_RATE: f64 = 0.01;
/// Entries the 1× miniature should be able to hold at the least; below it the sample rate is
/// raised so that admission decisions stay meaningful.
const MIN_MINIATURE_ENTRIES: f64 = 256.0;

/// What happened to a sampled key.
#[derive(Debug, Clone, Copy)]
pub(crate) enum SampleKind {
    /// A get; `hit` tells whether the real cache held the key.
    Get {
        hit: bool,
    },
    Write(u32),
    Remove,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    key_hash: u64,
    kind: SampleKind,
}

/// The advisor: sampling filter, pending buffer and the miniature caches.
pub(crate) struct Advisor {
    threshold: u64,
    sample_rate: f64,
    /// What the miniatures are built from (again when the cache moves to weighing bytes).
    config: AdvisorConfig,
    max_memory_bytes: u64,
    pending: Mutex<Vec<Sample>>,
    miniatures: Mutex<Vec<Sim>>,
    /// The miniatures' clock starts here; read only when a TTL or TTI is set.
    origin: Instant,
    expiring: bool,
    sampled_gets: AtomicU64,
    /// Hits per miniature; the last one is the doubled-TTL miniature's (0 without a TTL).
    miniature_hits: [AtomicU64; MINIATURES],
    ttl_doubled: bool,
}

impl std::fmt::Debug for Advisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Advisor")
            .field("sample_rate", &self.sample_rate)
            .field("sampled_gets", &self.sampled_gets.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Settings the miniatures copy from the real cache.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AdvisorConfig {
    pub(crate) max_memory_bytes: u64,
    pub(crate) max_entries: u64,
    pub(crate) sample_rate: Option<f64>,
    pub(crate) time_to_live: Option<Duration>,
    pub(crate) time_to_idle: Option<Duration>,
    /// How the real cache's moka weighs entries, which decides how the miniatures size
    /// their frequency sketch.
    pub(crate) weighing: Weighing,
    /// The per-entry floor: the weight of every entry while the cache weighs entries.
    pub(crate) min_weight: u64,
}

impl Advisor {
    pub(crate) fn new(config: AdvisorConfig) -> Self {
        let sample_rate = config.sample_rate.unwrap_or_else(|| {
            let floor = MIN_MINIATURE_ENTRIES / config.max_entries as f64;
            DEFAULT_SAMPLE_RATE.max(floor).min(1.0)
        });
        let threshold = if sample_rate >= 1.0 {
            u64::MAX
        } else {
            (sample_rate * u64::MAX as f64) as u64
        };
        Self {
            threshold,
            sample_rate,
            config,
            max_memory_bytes: config.max_memory_bytes,
            pending: Mutex::new(Vec::with_capacity(BATCH)),
            miniatures: Mutex::new(miniatures(&config, sample_rate, config.weighing)),
            origin: Instant::now(),
            expiring: config.time_to_live.is_some() || config.time_to_idle.is_some(),
            sampled_gets: AtomicU64::new(0),
            miniature_hits: Default::default(),
            ttl_doubled: config.time_to_live.is_some(),
        }
    }

    /// The key's hash when the key belongs to the sample.
    #[inline]
    pub(crate) fn sampled<K: Hash + ?Sized>(&self, key: &K) -> Option<u64> {
        let hash = key_hash(key);
        (hash <= self.threshold).then_some(hash)
    }

    /// Records a sampled event; replays the buffer once it holds a batch.
    ///
    /// The replay lock is only *tried*: while another thread replays, the samples stay
    /// buffered and the next sampled event tries again, so a Tokio worker does not block
    /// behind a replay. Only a buffer grown to [`MAX_PENDING`] waits for the lock.
    pub(crate) fn record(&self, key_hash: u64, kind: SampleKind) {
        let (batch, miniatures) = {
            let mut pending = lock(&self.pending);
            pending.push(Sample { key_hash, kind });
            if pending.len() < BATCH {
                return;
            }
            let miniatures = match self.miniatures.try_lock() {
                Ok(guard) => Some(guard),
                Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
                Err(TryLockError::WouldBlock) if pending.len() < MAX_PENDING => return,
                Err(TryLockError::WouldBlock) => None,
            };
            let batch = std::mem::replace(&mut *pending, Vec::with_capacity(BATCH));
            (batch, miniatures)
        };
        let mut miniatures = miniatures.unwrap_or_else(|| lock(&self.miniatures));
        self.replay_locked(&mut miniatures, &batch);
    }

    /// Replays everything buffered and settles the miniatures.
    pub(crate) fn flush(&self) {
        let batch = std::mem::take(&mut *lock(&self.pending));
        self.replay(&batch);
    }

    fn replay(&self, batch: &[Sample]) {
        self.replay_locked(&mut lock(&self.miniatures), batch);
    }

    /// The miniatures' clock in nanoseconds; 0 when nothing expires, so the clock is not read.
    fn now(&self) -> u64 {
        if self.expiring {
            u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
        } else {
            0
        }
    }

    fn replay_locked(&self, miniatures: &mut [Sim], batch: &[Sample]) {
        // One clock reading per batch: expiry in the miniatures is approximate by a batch.
        let now = self.now();
        let mut gets = 0;
        let mut hits = [0u64; MINIATURES];
        for sample in batch {
            match sample.kind {
                SampleKind::Get { hit: real_hit } => {
                    gets += 1;
                    let mut weight = None;
                    let mut missed = [false; MINIATURES];
                    for ((hit, miss), miniature) in hits
                        .iter_mut()
                        .zip(missed.iter_mut())
                        .zip(miniatures.iter_mut())
                    {
                        match miniature.get(sample.key_hash, now) {
                            Some(found) => {
                                *hit += 1;
                                weight = Some(found);
                            }
                            None => *miss = true,
                        }
                    }
                    // The real cache still holds the key, so it will not send a write for
                    // it; a miniature that missed would have reloaded it, as a real cache of
                    // that size would. Its weight is the one the other miniatures hold
                    // (all received the same writes); when none holds it, it is unknown.
                    if let (true, Some(weight)) = (real_hit, weight) {
                        for (_, miniature) in missed
                            .iter()
                            .zip(miniatures.iter_mut())
                            .filter(|(missed, _)| **missed)
                        {
                            miniature.insert(sample.key_hash, weight, now);
                        }
                    }
                }
                SampleKind::Write(weight) => {
                    for miniature in miniatures.iter_mut() {
                        miniature.insert(sample.key_hash, weight, now);
                    }
                }
                SampleKind::Remove => {
                    for miniature in miniatures.iter_mut() {
                        miniature.invalidate(sample.key_hash, now);
                    }
                }
            }
        }
        // Maintenance at the end of every batch (as moka's own would run after 64 reads or
        // writes), so a miniature of a few hundred entries never runs far over its bound.
        for miniature in miniatures.iter_mut() {
            miniature.run_pending_tasks(now);
        }
        self.sampled_gets.fetch_add(gets, Ordering::Relaxed);
        for (total, hit) in self.miniature_hits.iter().zip(hits) {
            total.fetch_add(hit, Ordering::Relaxed);
        }
    }

    /// The real cache moved to weighing bytes and dropped its entries (see `cache/store.rs`):
    /// the miniatures start over, empty, as byte-weighed caches whose frequency sketch is
    /// sized the way moka sizes a weighed cache's. Their hit counts stay cumulative.
    pub(crate) fn weigh_bytes(&self) {
        let fresh = miniatures(&self.config, self.sample_rate, Weighing::Bytes);
        lock(&self.pending).clear();
        *lock(&self.miniatures) = fresh;
    }

    /// Discards all simulated state, e.g. after `invalidate_all`.
    pub(crate) fn clear(&self) {
        lock(&self.pending).clear();
        let now = self.now();
        for miniature in lock(&self.miniatures).iter_mut() {
            miniature.invalidate_all(now);
        }
    }

    /// The cumulative simulation counts; predictions are anchored later, from the metrics.
    pub(crate) fn curve(&self) -> MissRatioCurve {
        let points = FACTORS
            .iter()
            .zip(self.miniature_hits.iter())
            .map(|(factor, hits)| CurvePoint {
                capacity_factor: *factor,
                max_memory_bytes: (self.max_memory_bytes as f64 * factor) as u64,
                simulated_hits: hits.load(Ordering::Relaxed),
                predicted_hit_rate: None,
            })
            .collect();
        let ttl_doubled = self.ttl_doubled.then(|| CurvePoint {
            capacity_factor: 1.0,
            max_memory_bytes: self.max_memory_bytes,
            simulated_hits: self.miniature_hits[FACTORS.len()].load(Ordering::Relaxed),
            predicted_hit_rate: None,
        });
        MissRatioCurve {
            sample_rate: self.sample_rate,
            sampled_gets: self.sampled_gets.load(Ordering::Relaxed),
            points,
            ttl_doubled,
        }
    }
}

/// The miniature caches: one per factor, and the 1× one with twice the TTL when a TTL is
/// set. Weighing entries, a miniature sizes its sketch as unweighted moka does, counting the
/// floor-weight entries it can hold.
fn miniatures(config: &AdvisorConfig, sample_rate: f64, weighing: Weighing) -> Vec<Sim> {
    let unit = match weighing {
        Weighing::Entries => Some(config.min_weight),
        Weighing::Bytes => None,
    };
    let miniature = |factor: f64, ttl: Option<Duration>| {
        let capacity = (config.max_memory_bytes as f64 * sample_rate * factor).ceil() as u64;
        Sim::new(capacity, ttl, config.time_to_idle, unit)
    };
    let mut miniatures: Vec<Sim> = FACTORS
        .iter()
        .map(|factor| miniature(*factor, config.time_to_live))
        .collect();
    // What a TTL twice as long would keep, at today's size: backs `cache.ttl_too_short`.
    if let Some(ttl) = config.time_to_live {
        miniatures.push(miniature(1.0, Some(ttl.saturating_mul(2))));
    }
    miniatures
}

/// Index of the 1× point in a curve's points.
pub(crate) const CURRENT_POINT: usize = CURRENT;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The replay does not panic (its indices come from its own lists); should it, a
    // miniature's counts could be off but its structures stay memory-safe, so poisoning is
    // ignored rather than propagated into the caller's get.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A fixed-seed, fast hash of a key (Fx-style multiply-rotate, then a 64-bit finalizer so all
/// bits are mixed). Deterministic across runs so tests and traces are reproducible.
#[inline]
pub(crate) fn key_hash<K: Hash + ?Sized>(key: &K) -> u64 {
    let mut hasher = FxHasher { state: 0 };
    key.hash(&mut hasher);
    fmix64(hasher.state)
}

#[inline]
fn fmix64(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

const FX_SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

struct FxHasher {
    state: u64,
}

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.state = (self.state.rotate_left(5) ^ word).wrapping_mul(FX_SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.state
    }
}

/// The hasher of the miniatures' maps. Their keys are already well-mixed hashes, but all lie
/// below the sampling threshold, so their top bits are zero — and `HashMap` takes the tag it
/// compares first from the top seven bits. One multiply (Fibonacci hashing) moves the random
/// low bits up; the low bits, which pick the bucket, stay random.
#[derive(Debug, Default)]
pub(crate) struct SampleKeyHasher {
    state: u64,
}

impl Hasher for SampleKeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.state = self.state.rotate_left(8) ^ u64::from(*byte);
        }
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.state = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_selects_about_the_configured_share_of_keys() {
        let advisor = Advisor::new(AdvisorConfig {
            max_memory_bytes: 1 << 30,
            max_entries: 1_000_000,
            sample_rate: None,
            time_to_live: None,
            time_to_idle: None,
            weighing: Weighing::Bytes,
            min_weight: 1,
        });
        let sampled = (0u64..200_000)
            .filter(|key| advisor.sampled(key).is_some())
            .count();
        let share = sampled as f64 / 200_000.0;
        assert!((0.008..0.012).contains(&share), "share {share}");
        // The same key is always in or always out.
        assert_eq!(advisor.sampled(&42u64), advisor.sampled(&42u64));
    }

    #[test]
    fn small_caches_sample_more_keys() {
        let advisor = Advisor::new(AdvisorConfig {
            max_memory_bytes: 1 << 20,
            max_entries: 1_000,
            sample_rate: None,
            time_to_live: None,
            time_to_idle: None,
            weighing: Weighing::Bytes,
            min_weight: 1,
        });
        assert!(advisor.sample_rate > DEFAULT_SAMPLE_RATE);
    }

    #[test]
    fn a_miniature_that_lost_a_key_the_real_cache_still_holds_reloads_it() {
        let advisor = Advisor::new(AdvisorConfig {
            max_memory_bytes: 100_000,
            max_entries: 1_000,
            sample_rate: Some(1.0),
            time_to_live: None,
            time_to_idle: None,
            weighing: Weighing::Bytes,
            min_weight: 1,
        });
        let hash = key_hash(&7u64);
        advisor.record(hash, SampleKind::Write(100));
        advisor.flush();
        // The ½× miniature loses the key (as if it had evicted it); the real cache keeps it.
        lock(&advisor.miniatures)[0].invalidate(hash, 0);
        for _ in 0..2 {
            advisor.record(hash, SampleKind::Get { hit: true });
            advisor.flush();
        }
        let curve = advisor.curve();
        assert_eq!(curve.sampled_gets, 2);
        // Missed once, re-inserted with the weight the others hold, then hit.
        assert_eq!(curve.points[0].simulated_hits, 1);
        for point in &curve.points[1..] {
            assert_eq!(point.simulated_hits, 2, "factor {}", point.capacity_factor);
        }
    }

    #[test]
    fn miniatures_count_hits_of_repeated_keys() {
        let advisor = Advisor::new(AdvisorConfig {
            max_memory_bytes: 100_000,
            max_entries: 1_000,
            sample_rate: Some(1.0),
            time_to_live: None,
            time_to_idle: None,
            weighing: Weighing::Bytes,
            min_weight: 1,
        });
        for round in 0..3 {
            for key in 0u64..10 {
                let hash = key_hash(&key);
                advisor.record(hash, SampleKind::Get { hit: false });
                if round == 0 {
                    advisor.record(hash, SampleKind::Write(100));
                }
            }
        }
        advisor.flush();
        let curve = advisor.curve();
        assert_eq!(curve.sampled_gets, 30);
        for point in &curve.points {
            assert_eq!(point.simulated_hits, 20, "factor {}", point.capacity_factor);
        }
    }
}
