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
//!    the sample is expected to hold (`rate · requests`, times the share of sampled gets
//!    replayed, see *Replay windows*). The sampling error that a few hot keys cause mostly
//!    cancels: they hit at every size.
//!
//! Cost on the hot path: one hash per get or write; for the sampled keys, a push into the
//! calling thread's buffer (a perf-core [`Striped`] mutex that, with no more threads than
//! stripes, only that thread takes); once [`BATCH`] samples are buffered there, the thread
//! *tries* the replay lock and, if it is free, replays them into the miniatures; if another
//! thread is replaying, the samples stay buffered (up to [`MAX_PENDING`], past which it
//! waits). So the one lock all threads share is taken once per [`BATCH`] sampled events.
//!
//! *Replay windows.* A small cache samples many keys (the default rate is raised so that the
//! 1× miniature holds [`MIN_MINIATURE_ENTRIES`]: a quarter of all keys at 1 000 entries, every
//! key at 256 or fewer), and replaying into four miniatures costs about as much as the real
//! cache's own work. With the default rate, the advisor therefore replays only a share of its
//! sampled events, [`REPLAY_BUDGET`]` / rate` (12 % at 1 000 entries, 3.1 % at 256; every
//! event from 8 192 entries up): the advisor's clock counts sampled events in windows of
//! [`WINDOW`], and whole windows, spread evenly, are replayed while the others are skipped
//! (every thread skips the same windows, so a replayed window holds every access to the
//! sampled keys, never a thinned stream). The miniatures simulate the replayed windows one
//! after another, as one stream; their clock stands still between them, so entries do not
//! expire in a miniature for lack of the writes a skipped window would have brought. Gets
//! that fell into skipped windows are counted, and the predictions divide by the gets the
//! *replayed* share of the sample is expected to hold. Measured against moka on the accuracy
//! test's small caches, the predictions come out 0.4–1.1 points low at 2× and 0–0.5 high at
//! ½×, where replaying every event gave −0.2 to +0.4 (see the crate README, *Accuracy*).
//! Replaying resumes, mid-window if need be, [`MAX_REPLAY_GAP`] after the last replayed
//! window ended, so that a small cache with little traffic still has a curve in every
//! minute. An explicit `advisor_sample_rate` replays every sampled event.

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use resync_perf_core::stripes::{Padded, StripeWriter, Striped};
use resync_perf_core::sync::{lock, try_lock};

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
/// Samples buffered (per thread stripe) before they are replayed into the miniatures.
pub(crate) const BATCH: usize = 64;
/// Samples buffered at most (per thread stripe) while another thread holds the replay lock;
/// past this the recording thread waits for it.
pub(crate) const MAX_PENDING: usize = 16 * BATCH;
/// Sampled gets needed before a curve is reported.
pub(crate) const MIN_SAMPLED_GETS: u64 = 200;
/// Default share of keys sampled.
pub(crate) const DEFAULT_SAMPLE_RATE: f64 = 0.01;
/// Entries the 1× miniature should be able to hold at the least; below it the sample rate is
/// raised so that admission decisions stay meaningful.
const MIN_MINIATURE_ENTRIES: f64 = 256.0;
/// With the default sample rate, the share of all events (of every key) the advisor replays
/// at most, on average, under load (see [`MAX_REPLAY_GAP`]): a sample rate above it replays
/// `REPLAY_BUDGET / rate` of its windows. Caches of 8 192 entries or more (a default rate of
/// 3.125 % or less) replay every sampled event.
pub(crate) const REPLAY_BUDGET: f64 = 1.0 / 32.0;
/// Sampled events per replay window.
pub(crate) const WINDOW: u64 = 8_192;
/// Once this long has passed since a replayed window ended, replaying resumes whatever the
/// budget (checked every [`CLOCK_CHUNK`] events of a thread): under little traffic the due
/// windows come minutes apart, and a window of the statistics (perf-api judges a minute by
/// default) should still hold replayed events. Under load the due windows come far more
/// often, and this never decides anything.
pub(crate) const MAX_REPLAY_GAP: Duration = Duration::from_secs(20);
/// Sampled events a thread stripe counts before it adds them to the advisor's clock (one
/// shared atomic add per this many events); a thread sees a new window at most this many of
/// its own events late.
const CLOCK_CHUNK: u64 = 32;

const _: () = assert!(WINDOW % CLOCK_CHUNK == 0);

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

/// One thread stripe's share of the advisor's hot-path state. `events` and `skipped_gets` are
/// written only through the stripe's `StripeWriter` (by its owner, plainly).
#[derive(Debug, Default)]
struct Stripe {
    /// Samples waiting for a replay.
    pending: Mutex<Vec<Sample>>,
    /// Sampled events seen here, with replay windows only (they drive the clock).
    events: AtomicU64,
    /// Sampled gets that fell into skipped windows.
    skipped_gets: AtomicU64,
}

/// Which windows are replayed, when the default sample rate exceeds [`REPLAY_BUDGET`]: the
/// clock counts sampled events, [`WINDOW`] to a window.
#[derive(Debug)]
struct Windows {
    /// Share of windows due for a replay, in (0, 1).
    share: f64,
    /// [`MAX_REPLAY_GAP`] in nanoseconds.
    max_gap: u64,
    /// Sampled events counted so far (added in chunks of [`CLOCK_CHUNK`] by each stripe).
    clock: Padded<AtomicU64>,
    /// Whether the current window is replayed, and when a skipped one turns overdue: read by
    /// every sampled event, written once per window (on their own lines, away from the
    /// clock's adds).
    state: Padded<State>,
    /// Turns between windows, applied in order, and the pauses of the miniatures' clock.
    turns: Mutex<Turns>,
}

#[derive(Debug)]
struct State {
    replaying: AtomicBool,
    /// While skipping: the advisor's clock (nanoseconds) from which replaying resumes.
    resume_at: AtomicU64,
}

#[derive(Debug)]
struct Turns {
    /// The last window applied.
    window: u64,
    /// Whether it is replayed.
    replaying: bool,
    /// When the last replayed window ended (the advisor's clock, nanoseconds).
    replay_ended: u64,
    /// When the current run of skipped windows began.
    idle_since: Option<u64>,
    /// Nanoseconds spent in skipped windows before that.
    paused: u64,
}

impl Windows {
    fn new(share: f64, max_gap: Duration) -> Self {
        Self {
            share,
            max_gap: u64::try_from(max_gap.as_nanos()).unwrap_or(u64::MAX),
            clock: Padded::new(AtomicU64::new(0)),
            state: Padded::new(State {
                replaying: AtomicBool::new(true),
                resume_at: AtomicU64::new(u64::MAX),
            }),
            // Window 0 is replayed: the miniatures start empty, as the real cache does.
            turns: Mutex::new(Turns {
                window: 0,
                replaying: true,
                replay_ended: 0,
                idle_since: None,
                paused: 0,
            }),
        }
    }

    /// Whether window `window` is due for a replay: due windows are spread evenly, `share`
    /// of them, the first one included.
    fn due(&self, window: u64) -> bool {
        let at = |window: f64| (window * self.share).floor();
        at(window as f64) > at(window as f64 - 1.0)
    }

    /// Counts one sampled event on `stripe`; whether it is to be replayed. A get that is not
    /// is counted as skipped.
    #[inline]
    fn admit(
        &self,
        stripe: &Stripe,
        writer: &StripeWriter,
        kind: SampleKind,
        origin: Instant,
    ) -> bool {
        let events = writer.fetch_add(&stripe.events, 1) + 1;
        if events % CLOCK_CHUNK == 0 {
            let before = self.clock.fetch_add(CLOCK_CHUNK, Ordering::Relaxed);
            let after = before + CLOCK_CHUNK;
            if before / WINDOW != after / WINDOW {
                self.turn(after / WINDOW, origin);
            } else if !self.state.replaying.load(Ordering::Relaxed)
                && elapsed_nanos(origin) >= self.state.resume_at.load(Ordering::Relaxed)
            {
                self.resume(origin);
            }
        }
        if self.state.replaying.load(Ordering::Relaxed) {
            return true;
        }
        if let SampleKind::Get { .. } = kind {
            writer.add(&stripe.skipped_gets, 1);
        }
        false
    }

    /// The clock entered window `window` (exactly one thread sees each window begin).
    #[cold]
    fn turn(&self, window: u64, origin: Instant) {
        let mut turns = lock(&self.turns);
        // A thread that saw a later window begin got here first.
        if window <= turns.window {
            return;
        }
        // Read under the lock, as `now` reads it: the miniatures' clock never runs back.
        let now = elapsed_nanos(origin);
        if turns.replaying {
            turns.replay_ended = now;
        }
        let resume_at = turns.replay_ended.saturating_add(self.max_gap);
        let replaying = now >= resume_at || self.due(window);
        turns.window = window;
        self.set_replaying(&mut turns, replaying, now);
        self.state.resume_at.store(resume_at, Ordering::Relaxed);
    }

    /// A skipped window turned overdue: replaying resumes until the window ends.
    #[cold]
    fn resume(&self, origin: Instant) {
        let mut turns = lock(&self.turns);
        let now = elapsed_nanos(origin);
        if !turns.replaying && now >= turns.replay_ended.saturating_add(self.max_gap) {
            self.set_replaying(&mut turns, true, now);
        }
    }

    /// Replays or skips from `now` on, and stops or starts the miniatures' clock.
    fn set_replaying(&self, turns: &mut Turns, replaying: bool, now: u64) {
        turns.replaying = replaying;
        self.state.replaying.store(replaying, Ordering::Relaxed);
        match (replaying, turns.idle_since) {
            (true, Some(since)) => {
                turns.paused += now.saturating_sub(since);
                turns.idle_since = None;
            }
            (false, None) => turns.idle_since = Some(now),
            _ => {}
        }
    }

    /// The miniatures' clock: nanoseconds since `origin`, less the time spent in skipped
    /// windows (it stands still in them).
    fn now(&self, origin: Instant) -> u64 {
        let turns = lock(&self.turns);
        let now = elapsed_nanos(origin);
        turns
            .idle_since
            .map_or(now, |since| since.min(now))
            .saturating_sub(turns.paused)
    }
}

fn elapsed_nanos(origin: Instant) -> u64 {
    u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// The advisor: sampling filter, pending buffers and the miniature caches.
pub(crate) struct Advisor {
    threshold: u64,
    sample_rate: f64,
    /// What the miniatures are built from (again when the cache moves to weighing bytes).
    config: AdvisorConfig,
    max_memory_bytes: u64,
    stripes: Striped<Stripe>,
    /// `None` when every sampled event is replayed.
    windows: Option<Windows>,
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
            .field(
                "replayed_share",
                &self.windows.as_ref().map_or(1.0, |windows| windows.share),
            )
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
    /// Thread stripes of the sample buffers (the cache's statistics stripes).
    pub(crate) stripes: usize,
}

impl Advisor {
    pub(crate) fn new(config: AdvisorConfig) -> Self {
        let (sample_rate, replayed_share) = match config.sample_rate {
            Some(rate) => (rate, 1.0),
            None => {
                let floor = MIN_MINIATURE_ENTRIES / config.max_entries as f64;
                let rate = DEFAULT_SAMPLE_RATE.max(floor).min(1.0);
                (rate, (REPLAY_BUDGET / rate).min(1.0))
            }
        };
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
            stripes: Striped::new(config.stripes, Stripe::default),
            windows: (replayed_share < 1.0).then(|| Windows::new(replayed_share, MAX_REPLAY_GAP)),
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

    /// Records a sampled event; replays the calling thread's buffer once it holds a batch.
    ///
    /// The replay lock is only *tried*: while another thread replays, the samples stay
    /// buffered and the next sampled event tries again, so a Tokio worker does not block
    /// behind a replay. Only a buffer grown to [`MAX_PENDING`] waits for the lock. With
    /// replay windows, an event in a skipped window is only counted.
    pub(crate) fn record(&self, key_hash: u64, kind: SampleKind) {
        self.stripes
            .with_local(|stripe, writer| self.record_on(stripe, writer, key_hash, kind));
    }

    /// [`record`](Self::record) on the calling thread's stripe.
    #[inline]
    fn record_on(&self, stripe: &Stripe, writer: &StripeWriter, key_hash: u64, kind: SampleKind) {
        if let Some(windows) = &self.windows {
            if !windows.admit(stripe, writer, kind, self.origin) {
                return;
            }
        }
        let batch = {
            let mut pending = lock(&stripe.pending);
            pending.push(Sample { key_hash, kind });
            if pending.len() < BATCH {
                return;
            }
            match try_lock(&self.miniatures) {
                Some(mut miniatures) => {
                    let batch = std::mem::replace(&mut *pending, Vec::with_capacity(BATCH));
                    drop(pending);
                    self.replay_locked(&mut miniatures, &batch);
                    return;
                }
                None if pending.len() < MAX_PENDING => return,
                None => std::mem::replace(&mut *pending, Vec::with_capacity(BATCH)),
            }
        };
        self.replay_locked(&mut lock(&self.miniatures), &batch);
    }

    /// Every stripe's buffered samples, in stripe order, leaving the buffers empty.
    fn take_pending(&self) -> Vec<Sample> {
        let mut batch = Vec::new();
        for stripe in self.stripes.iter() {
            batch.append(&mut lock(&stripe.pending));
        }
        batch
    }

    /// Replays everything buffered and settles the miniatures.
    pub(crate) fn flush(&self) {
        let mut miniatures = lock(&self.miniatures);
        let batch = self.take_pending();
        self.replay_locked(&mut miniatures, &batch);
    }

    /// The miniatures' clock in nanoseconds (standing still in skipped windows); 0 when
    /// nothing expires, so the clock is not read.
    fn now(&self) -> u64 {
        match (&self.windows, self.expiring) {
            (_, false) => 0,
            (Some(windows), true) => windows.now(self.origin),
            (None, true) => elapsed_nanos(self.origin),
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
        let mut miniatures = lock(&self.miniatures);
        drop(self.take_pending());
        *miniatures = fresh;
    }

    /// Discards all simulated state, e.g. after `invalidate_all`.
    pub(crate) fn clear(&self) {
        let mut miniatures = lock(&self.miniatures);
        drop(self.take_pending());
        let now = self.now();
        for miniature in miniatures.iter_mut() {
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
            skipped_gets: self
                .stripes
                .iter()
                .map(|stripe| stripe.skipped_gets.load(Ordering::Relaxed))
                .sum(),
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
            stripes: 4,
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
            stripes: 4,
        });
        assert!(advisor.sample_rate > DEFAULT_SAMPLE_RATE);
    }

    fn default_config(max_entries: u64) -> AdvisorConfig {
        AdvisorConfig {
            max_memory_bytes: max_entries * 1_000,
            max_entries,
            sample_rate: None,
            time_to_live: None,
            time_to_idle: None,
            weighing: Weighing::Entries,
            min_weight: 1_000,
            stripes: 4,
        }
    }

    #[test]
    fn only_small_caches_replay_in_windows_within_the_budget() {
        // 8 192 entries and up: the default rate is at most the budget, every event replays.
        assert!(Advisor::new(default_config(8_192)).windows.is_none());
        assert!(Advisor::new(default_config(100_000)).windows.is_none());
        let share = |entries| {
            let advisor = Advisor::new(default_config(entries));
            let windows = advisor.windows.as_ref().expect("replay windows");
            advisor.sample_rate * windows.share
        };
        for entries in [16, 256, 1_000, 8_000] {
            assert!((share(entries) - REPLAY_BUDGET).abs() < 1e-12, "{entries}");
        }
        // An explicit rate replays everything.
        let explicit = Advisor::new(AdvisorConfig {
            sample_rate: Some(1.0),
            ..default_config(256)
        });
        assert!(explicit.windows.is_none());
    }

    #[test]
    fn due_windows_are_spread_evenly_from_the_first() {
        let windows = Windows::new(0.25, Duration::MAX);
        let due: Vec<u64> = (0..12).filter(|w| windows.due(*w)).collect();
        assert_eq!(due, [0, 4, 8]);
        let windows = Windows::new(1_000.0 / 8_192.0, Duration::MAX);
        let count = (0..81_920).filter(|w| windows.due(*w)).count();
        assert_eq!(count, 10_000);
    }

    /// Records `gets` sampled misses of 500 keys from one thread, flushes, returns the curve.
    fn replay_gets(advisor: &Advisor, gets: u64) -> MissRatioCurve {
        for key in 0..gets {
            advisor.record(key_hash(&(key % 500)), SampleKind::Get { hit: false });
        }
        advisor.flush();
        advisor.curve()
    }

    #[test]
    fn skipped_windows_count_their_gets_and_replay_nothing() {
        // 256 entries: every key sampled, 1 window in 32 replayed (and never one for being
        // overdue here).
        let mut advisor = Advisor::new(default_config(256));
        assert_eq!(advisor.sample_rate, 1.0);
        advisor.windows = Some(Windows::new(REPLAY_BUDGET, Duration::MAX));
        // Up to the last event of window 63 (the next one would begin window 64, due again).
        let gets = 64 * WINDOW - 1;
        let curve = replay_gets(&advisor, gets);
        assert_eq!(curve.sampled_gets + curve.skipped_gets, gets);
        // Windows 0 and 32 replayed, the others skipped; the event that moves the clock
        // into a window is that window's.
        assert_eq!(curve.sampled_gets, (WINDOW - 1) + WINDOW);
    }

    #[test]
    fn a_window_is_replayed_once_the_last_replay_is_long_enough_ago() {
        // With a gap of zero, every window is overdue.
        let mut advisor = Advisor::new(default_config(256));
        advisor.windows = Some(Windows::new(REPLAY_BUDGET, Duration::ZERO));
        let gets = 8 * WINDOW;
        let curve = replay_gets(&advisor, gets);
        assert_eq!((curve.sampled_gets, curve.skipped_gets), (gets, 0));
    }

    #[test]
    fn a_skipped_window_resumes_replaying_once_overdue() {
        let origin = Instant::now();
        let windows = Windows::new(0.5, Duration::from_millis(1));
        let stripe = Stripe::default();
        let get = SampleKind::Get { hit: false };
        // Window 1 is not due and the last replay ended just now: skipped.
        windows.turn(1, origin);
        assert!(!windows.admit(&stripe, &StripeWriter::ATOMIC, get, origin));
        // A millisecond later the next chunk of this thread's events finds it overdue.
        let waited = Instant::now();
        while waited.elapsed() < Duration::from_millis(2) {
            std::hint::spin_loop();
        }
        let admitted: Vec<bool> = (1..CLOCK_CHUNK)
            .map(|_| windows.admit(&stripe, &StripeWriter::ATOMIC, get, origin))
            .collect();
        assert!(admitted[..CLOCK_CHUNK as usize - 2]
            .iter()
            .all(|admitted| !admitted));
        assert!(
            admitted[CLOCK_CHUNK as usize - 2],
            "the chunk's last event resumes"
        );
        assert_eq!(stripe.skipped_gets.load(Ordering::Relaxed), CLOCK_CHUNK - 1);
    }

    #[test]
    fn the_miniatures_clock_stands_still_in_skipped_windows() {
        let replaying = |windows: &Windows| windows.state.replaying.load(Ordering::Relaxed);
        let origin = Instant::now();
        // Windows 0 and 2 are due, window 1 is not.
        let windows = Windows::new(0.5, Duration::MAX);
        let before = windows.now(origin);
        assert!(replaying(&windows), "window 0 is replayed");
        windows.turn(1, origin);
        assert!(!replaying(&windows));
        let frozen = windows.now(origin);
        assert!(frozen >= before);
        // However much real time passes, a skipped window does not move the clock.
        let waited = Instant::now();
        while waited.elapsed() < Duration::from_millis(2) {
            std::hint::spin_loop();
        }
        assert_eq!(windows.now(origin), frozen);
        let turned = elapsed_nanos(origin);
        windows.turn(2, origin);
        assert!(replaying(&windows));
        // A window seen late (another thread already turned to a later one) changes nothing.
        windows.turn(1, origin);
        assert!(replaying(&windows));
        // Replaying again, the clock runs on from where it stood, without the pause.
        let resumed = windows.now(origin);
        assert!(resumed >= frozen);
        assert!(
            resumed - frozen <= elapsed_nanos(origin) - turned,
            "only the time since replaying resumed counts"
        );
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
            stripes: 4,
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
            stripes: 4,
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
