//! The second level: a Redis cache shared by every `resync` instance in front of the same
//! upstream, and the invalidations they send each other (`GATEWAY_L2`, with `REDIS_URL`).
//!
//! A `GET`/`HEAD` the in-process cache (L1) cannot answer goes to Redis before the upstream:
//!
//! 1. **Lookup** — one pipeline reads the path's generation, the variant's entry and its
//!    `PTTL`. An entry of the current generation, of this format version, that is fresh and
//!    matches the request's `Vary` values is a hit, served as `X-Cache: HIT` and put in L1.
//! 2. **Lease** — on a miss, `SET lease token NX PX GATEWAY_L2_LEASE_MS` decides which
//!    instance fetches. The holder fetches, stores the entry (`SET … PX` at its freshness
//!    plus stale window, under the generation it looked up) and releases the lease in one
//!    pipeline. The others poll for the entry until it arrives, the lease disappears (the
//!    holder got nothing storable, or died and the lease expired) or `TWS_READ_TIMEOUT`
//!    passes; then they fetch themselves.
//! 3. **Invalidation** — a write replaces the path's generation with a new random one
//!    (before and after the upstream exchange, like L1's generations), which makes every
//!    entry of the path unreachable at once, and publishes `<instance> <path>` on
//!    [`CHANNEL`]; every other instance drops its L1 entries of the path (its listener,
//!    `l2/listener.rs`).
//!
//! Redis is an optimisation: every operation, checkout included, is bounded by
//! `REDIS_RESPONSE_TIMEOUT_MS`; a failure counts as an L2 error and the request goes on
//! through L1 and the upstream. When Redis cannot be reached, L2 is marked unavailable and
//! skipped (health `gateway_l2` degraded, with the reason) until the listener's probe finds
//! it answering again. After the listener reconnects — invalidations may have been lost —
//! the whole of L1 is dropped.

mod codec;
mod keys;
pub(super) mod listener;

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use redis::FromRedisValue;
use resync_perf_api::{L2Lease, L2Lookup, L2Op, L2Stats};
use resync_pool_optimizer::{MonitoredPool, RedisManager};

pub use codec::{decode, encode, Decoded, MAGIC, VERSION};
pub use keys::{generation_key, L2Keys, CHANNEL};

use super::response::CachedResponse;

/// Releases a lease only when it still holds this instance's token.
const RELEASE: &str =
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";

/// The first pause between two polls for another instance's fetch; it doubles up to
/// [`MAX_POLL`].
const FIRST_POLL: Duration = Duration::from_millis(2);
/// The longest pause between two polls.
const MAX_POLL: Duration = Duration::from_millis(50);
/// Paths written while Redis was unreachable, kept to invalidate once it answers again.
pub const MAX_PENDING_INVALIDATIONS: usize = 10_000;

/// How the second level behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L2Config {
    /// The longest a fetch lease is held (`GATEWAY_L2_LEASE_MS`): a holder that dies blocks
    /// the others for at most this long.
    pub lease: Duration,
    /// The bound on every Redis operation, checkout included (`REDIS_RESPONSE_TIMEOUT_MS`).
    pub timeout: Duration,
    /// The longest wait for another instance's fetch (`TWS_READ_TIMEOUT`).
    pub wait: Duration,
    /// How long a path's generation is kept after a write: longer than any entry stored
    /// before the write can live (freshness + stale window + one fetch).
    pub generation_lifetime: Duration,
}

/// The second level: the Redis pool, its settings and statistics. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SharedCache {
    inner: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    pool: MonitoredPool<RedisManager>,
    config: L2Config,
    stats: L2Stats,
    /// This instance's name in invalidation messages (random, per process).
    instance: String,
    /// Paths written while Redis could not be told, invalidated once it answers again
    /// (at most [`MAX_PENDING_INVALIDATIONS`]; the count of those dropped beyond).
    pending: Mutex<(HashSet<Box<str>>, u64)>,
}

/// What a lookup found.
#[derive(Debug)]
pub(super) enum Looked {
    /// A fresh entry of the request's variant.
    Hit(Box<CachedResponse>),
    /// Nothing to serve; the path's generation to store a fetched entry under.
    Miss {
        /// The path's generation when looked up.
        generation: u64,
    },
    /// L2 unavailable or failing: go on without it.
    Unavailable,
}

/// Who fetches.
#[derive(Debug)]
pub(super) enum Leased {
    /// This instance, with this token.
    Won(u64),
    /// Another instance.
    Held,
    /// L2 unavailable or failing.
    Unavailable,
}

impl SharedCache {
    /// A second level over `pool` (a pool of the Redis or Redis Cluster named by
    /// `REDIS_URL`), recording into `stats`. It is unavailable until its listener has
    /// subscribed ([`Gateway::spawn_listener`](crate::gateway::Gateway::spawn_listener)).
    #[must_use]
    pub fn new(pool: MonitoredPool<RedisManager>, config: L2Config, stats: L2Stats) -> Self {
        stats.set_available(false, Some("invalidation listener not subscribed yet"));
        Self {
            inner: Arc::new(Shared {
                pool,
                config,
                stats,
                instance: format!("{:016x}", rand::random::<u64>()),
                pending: Mutex::new((HashSet::new(), 0)),
            }),
        }
    }

    /// The statistics it records.
    #[must_use]
    pub fn stats(&self) -> &L2Stats {
        &self.inner.stats
    }

    /// This instance's name in invalidation messages.
    #[must_use]
    pub fn instance(&self) -> &str {
        &self.inner.instance
    }

    /// Its settings.
    #[must_use]
    pub fn config(&self) -> &L2Config {
        &self.inner.config
    }

    /// The Redis pool.
    #[must_use]
    pub fn pool(&self) -> &MonitoredPool<RedisManager> {
        &self.inner.pool
    }

    /// Runs `pipe` on a pooled connection within the timeout. A failure is recorded under
    /// `op`; one that says Redis cannot be reached marks L2 unavailable.
    async fn query<T: FromRedisValue>(&self, op: L2Op, pipe: &redis::Pipeline) -> Option<T> {
        let shared = &*self.inner;
        let timeout = shared.config.timeout;
        let outcome = tokio::time::timeout(timeout, async {
            let mut conn = shared
                .pool
                .get()
                .await
                .map_err(|error| (true, error.to_string()))?;
            match pipe.query_async::<T>(&mut *conn).await {
                Ok(value) => Ok(value),
                Err(error) => {
                    let unreachable = error.is_io_error()
                        || error.is_connection_dropped()
                        || error.is_connection_refusal()
                        || error.is_timeout()
                        || error.is_unrecoverable_error();
                    if unreachable {
                        conn.report_error();
                    }
                    Err((unreachable, error.to_string()))
                }
            }
        })
        .await;
        match outcome {
            Ok(Ok(value)) => Some(value),
            Ok(Err((unreachable, message))) => {
                self.failed(op, unreachable, &message);
                None
            }
            Err(_elapsed) => {
                self.failed(op, true, &format!("no answer within {timeout:?}"));
                None
            }
        }
    }

    fn failed(&self, op: L2Op, unreachable: bool, message: &str) {
        let stats = &self.inner.stats;
        stats.record_error(op, message);
        if unreachable && stats.is_available() {
            tracing::warn!(
                ?op,
                error = message,
                "redis unreachable: L2 skipped until it answers"
            );
            stats.set_available(false, Some(&format!("redis unreachable: {message}")));
        } else {
            tracing::debug!(?op, error = message, "L2 operation failed");
        }
    }

    /// Whether L2 is to be used now; a skipped lookup is counted.
    fn usable(&self) -> bool {
        let available = self.inner.stats.is_available();
        if !available {
            self.inner.stats.record_lookup(L2Lookup::Skipped, None);
        }
        available
    }

    /// Reads the generation, the entry and its remaining life of `keys`, and judges the
    /// entry for a request with `request` headers.
    pub(super) async fn lookup(&self, keys: &L2Keys, request: &HeaderMap) -> Looked {
        if !self.usable() {
            return Looked::Unavailable;
        }
        let started = Instant::now();
        let mut pipe = redis::pipe();
        pipe.get(&keys.generation)
            .get(&keys.entry)
            .pttl(&keys.entry);
        let Some((generation, value, pttl)) = self
            .query::<(Option<u64>, Option<Vec<u8>>, i64)>(L2Op::Lookup, &pipe)
            .await
        else {
            self.inner
                .stats
                .record_lookup(L2Lookup::Error, Some(started.elapsed()));
            return Looked::Unavailable;
        };
        let generation = generation.unwrap_or(0);
        let (outcome, looked) = self.judge(generation, value, pttl, request);
        self.inner
            .stats
            .record_lookup(outcome, Some(started.elapsed()));
        looked
    }

    /// What a value read at `generation` with `pttl` left means for this request.
    fn judge(
        &self,
        generation: u64,
        value: Option<Vec<u8>>,
        pttl: i64,
        request: &HeaderMap,
    ) -> (L2Lookup, Looked) {
        let miss = Looked::Miss { generation };
        let Some(value) = value else {
            return (L2Lookup::Miss, miss);
        };
        // PTTL is -1 without an expiry, -2 without the key (gone between the two reads).
        let Ok(remaining) = u64::try_from(pttl) else {
            return (L2Lookup::Miss, miss);
        };
        let now = Instant::now();
        match decode(&value, Duration::from_millis(remaining), now) {
            Decoded::OtherVersion => (L2Lookup::OtherVersion, miss),
            Decoded::Entry {
                generation: stored,
                response,
            } if stored == generation && response.is_fresh(now) && response.matches(request) => {
                (L2Lookup::Hit, Looked::Hit(response))
            }
            Decoded::Entry { .. } => (L2Lookup::Miss, miss),
        }
    }

    /// Tries to take the fetch lease of `keys`.
    pub(super) async fn lease(&self, keys: &L2Keys) -> Leased {
        if !self.inner.stats.is_available() {
            return Leased::Unavailable;
        }
        let token = rand::random::<u64>() | 1;
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(&keys.lease)
            .arg(token)
            .arg("NX")
            .arg("PX")
            .arg(millis(self.inner.config.lease));
        match self.query::<(Option<String>,)>(L2Op::Lease, &pipe).await {
            Some((Some(_ok),)) => {
                self.inner.stats.record_lease(L2Lease::Won);
                Leased::Won(token)
            }
            Some((None,)) => Leased::Held,
            None => Leased::Unavailable,
        }
    }

    /// Waits for another instance's fetch of `keys` (looked up at `generation`): the entry
    /// once it is stored, or `None` when the lease disappears without one, L2 fails, or
    /// `TWS_READ_TIMEOUT` passes.
    pub(super) async fn wait_for(
        &self,
        keys: &L2Keys,
        generation: u64,
        request: &HeaderMap,
    ) -> Option<Box<CachedResponse>> {
        let deadline = Instant::now() + self.inner.config.wait;
        let mut pause = FIRST_POLL;
        let mut pipe = redis::pipe();
        pipe.get(&keys.generation)
            .get(&keys.entry)
            .pttl(&keys.entry)
            .exists(&keys.lease);
        loop {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(MAX_POLL);
            let Some((current, value, pttl, leased)) = self
                .query::<(Option<u64>, Option<Vec<u8>>, i64, bool)>(L2Op::Lease, &pipe)
                .await
            else {
                break;
            };
            let current = current.unwrap_or(0);
            if current != generation {
                // A write to the path meanwhile: whatever is fetched now is of a newer
                // generation than this request's lookup; fetch afresh.
                break;
            }
            if let (L2Lookup::Hit, Looked::Hit(response)) =
                self.judge(generation, value, pttl, request)
            {
                self.inner.stats.record_lease(L2Lease::Waited);
                return Some(response);
            }
            if !leased {
                break;
            }
        }
        self.inner.stats.record_lease(L2Lease::Expired);
        None
    }

    /// Stores `response` (fetched under `generation`) for the others, and releases the
    /// lease `token` if this instance held one; one round trip.
    pub(super) async fn store(
        &self,
        keys: &L2Keys,
        generation: u64,
        response: Option<&CachedResponse>,
        token: Option<u64>,
    ) {
        let mut pipe = redis::pipe();
        let mut stores = false;
        if let Some(response) = response {
            let left = response
                .keep_for()
                .saturating_sub(response.stored_at.elapsed());
            let px = millis(left);
            if px > 0 {
                pipe.cmd("SET")
                    .arg(&keys.entry)
                    .arg(encode(response, generation))
                    .arg("PX")
                    .arg(px)
                    .ignore();
                stores = true;
            }
        }
        if let Some(token) = token {
            pipe.cmd("EVAL")
                .arg(RELEASE)
                .arg(1)
                .arg(&keys.lease)
                .arg(token)
                .ignore();
        } else if !stores {
            return;
        }
        let started = Instant::now();
        let done = self.query::<()>(L2Op::Store, &pipe).await.is_some();
        if stores {
            self.inner.stats.record_store(done, started.elapsed());
        }
    }

    /// Makes every L2 entry of `path` unreachable (a new generation), and with `publish`
    /// tells every other instance to drop its L1 entries of the path. While Redis cannot be
    /// told, the path is kept and invalidated once it answers ([`Self::replay_pending`]).
    pub(super) async fn invalidate(&self, path: &str, publish: bool) {
        if !self.inner.stats.is_available() || !self.try_invalidate(path, publish).await {
            self.keep_pending(path);
        }
    }

    fn keep_pending(&self, path: &str) {
        let mut pending = self
            .inner
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (paths, dropped) = &mut *pending;
        if paths.len() < MAX_PENDING_INVALIDATIONS {
            paths.insert(path.into());
        } else if !paths.contains(path) {
            *dropped += 1;
        }
    }

    /// Invalidates, and publishes, every path written while Redis could not be told. Run
    /// when L2 becomes available again.
    pub(super) async fn replay_pending(&self) {
        let (paths, dropped) = std::mem::take(
            &mut *self
                .inner
                .pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        if dropped > 0 {
            tracing::warn!(
                dropped,
                kept = MAX_PENDING_INVALIDATIONS,
                "more paths were written while redis was unreachable than are kept: the others \
                 are not invalidated in L2 and may be served by other instances until they expire"
            );
        }
        if !paths.is_empty() {
            tracing::info!(
                paths = paths.len(),
                "invalidating paths written while redis was unreachable"
            );
        }
        for path in paths {
            self.invalidate(&path, true).await;
        }
    }

    /// One invalidation; whether Redis took it.
    async fn try_invalidate(&self, path: &str, publish: bool) -> bool {
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(generation_key(path))
            .arg(rand::random::<u64>() | 1)
            .arg("PX")
            .arg(millis(self.inner.config.generation_lifetime))
            .ignore();
        if self.query::<()>(L2Op::Invalidate, &pipe).await.is_none() {
            return false;
        }
        if !publish {
            return true;
        }
        let mut pipe = redis::pipe();
        pipe.cmd("PUBLISH")
            .arg(CHANNEL)
            .arg(format!("{} {path}", self.inner.instance))
            .ignore();
        let published = self.query::<()>(L2Op::Invalidate, &pipe).await.is_some();
        if published {
            self.inner.stats.record_invalidation_sent();
        }
        published
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
