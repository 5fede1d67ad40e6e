//! Read-through: `get_with` and `try_get_with`, one coalesced moka lookup-or-load per call.
//!
//! A call counts a hit when the value it returns was stored (stamped) before the call was
//! made, a miss otherwise, so it looks the key up once (see `stored.rs`). A loaded value
//! too heavy to cache is handed to every waiting caller as moka's shared "error", so moka
//! never stores it; a load's write counts itself in flight only from the moment its value is
//! ready until moka has stored it.

use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use super::causes::{InFlight, Tracked};
use super::{narrow, Cache};
use crate::advisor::SampleKind;
use crate::stats::{latency_tick, Counter};
use crate::stored::{self, Stamp, Stored};

impl<K, V> Cache<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// The cached value, or the value `init` produces, cached and returned.
    ///
    /// Concurrent calls for one missing key run one `init`; the others wait for its value.
    /// A loaded value weighing more than the memory bound (or `u32::MAX` bytes) is returned
    /// to every waiting caller but never cached, so the bound holds; it is counted in
    /// [`CacheMetrics::loads_uncached`](crate::CacheMetrics::loads_uncached) (and in `loads_ok`), not in `inserts`.
    ///
    /// The call counts a hit when it returns a value that was produced (stamped) before
    /// `get_with` was called — not when its future is first polled — and a miss otherwise:
    /// its own load, a load it waited for, a failed one, or a value inserted after the call. Each entry carries the instant it was stored for
    /// this (see the crate README, *Statistics*), so a read-through looks the key up once.
    ///
    /// `K: Clone` because the weight is checked before moka stores the value, while the
    /// key is still the caller's; moka clones it on each call that does not find the value.
    pub fn get_with<'a>(
        &'a self,
        key: K,
        init: impl Future<Output = V> + 'a,
    ) -> impl Future<Output = V> + 'a
    where
        K: Clone,
    {
        let called_at = stored::now();
        async move {
            let loaded = self
                .load(called_at, key, async {
                    Ok::<V, std::convert::Infallible>(init.await)
                })
                .await;
            match loaded {
                Ok(value) => value,
                Err(never) => match *never {},
            }
        }
    }

    /// Like [`get_with`](Self::get_with) for a fallible load. A failed load is counted,
    /// not cached, and its error is shared with every caller that waited for it.
    ///
    /// # Errors
    ///
    /// The error `init` returned, shared in an `Arc`.
    pub fn try_get_with<'a, F, E>(
        &'a self,
        key: K,
        init: F,
    ) -> impl Future<Output = Result<V, Arc<E>>> + 'a
    where
        K: Clone,
        F: Future<Output = Result<V, E>> + 'a,
        E: Send + Sync + 'static,
    {
        self.load(stored::now(), key, init)
    }

    /// One coalesced lookup-or-load through moka, counted as a hit when the value it
    /// returns was stored before `called_at`. An oversized value travels to the waiters as
    /// the shared "error" so moka never stores it; so does the first value heavier than the
    /// per-entry floor while the cache weighs entries, which this call then stores once the
    /// cache weighs bytes (see `store`).
    async fn load<F, E>(&self, called_at: Stamp, key: K, init: F) -> Result<V, Arc<E>>
    where
        K: Clone,
        F: Future<Output = Result<V, E>>,
        E: Send + Sync + 'static,
    {
        let inner = &*self.inner;
        let lookup_start = latency_tick().then(Instant::now);
        // Set, with the value's weight, when this call's `init` produced the value moka is
        // about to store. It holds the write's in-flight count (without expiration, see
        // `settle`) from then until moka has stored the value, so that a slow load does not
        // count as a write in flight.
        let stored_by_load: OnceLock<(u64, Option<InFlight<'_>>)> = OnceLock::new();
        // Set, with the weight, when this call's value outweighs the floor of a cache that
        // weighs entries: moka does not store it, this call does after the move.
        let heavier_here: OnceLock<u64> = OnceLock::new();
        let load = async {
            let start = Instant::now();
            let result = init.await;
            inner.stats.record_load(start.elapsed(), result.is_ok());
            match result {
                Ok(value) => {
                    let weight = inner.weigh(&key, &value);
                    if weight > inner.max_entry_weight {
                        inner.stats.incr(Counter::LoadsUncached);
                        return Err(NotCached::Oversized(value));
                    }
                    if inner.store.needs_bytes(weight) {
                        let _ = heavier_here.set(weight);
                        return Err(NotCached::Heavier(value));
                    }
                    let in_flight = inner.in_flight(Tracked::Write);
                    let _ = stored_by_load.set((weight, in_flight));
                    Ok(Stored::now(value))
                }
                Err(error) => Err(NotCached::Failed(Arc::new(error))),
            }
        };
        let result = inner.store.active().try_get_with_by_ref(&key, load).await;
        // Taking the cell ends the in-flight count: moka has stored the value by now. (A
        // caller that drops this future before then leaves the write abandoned.)
        let loaded_weight = stored_by_load.into_inner().map(|(weight, in_flight)| {
            if let Some(in_flight) = in_flight {
                in_flight.done();
            }
            weight
        });
        let loaded_here = loaded_weight.is_some();
        // A hit: a value this call did not load, stored before the call was made.
        let (hit, outcome) = match result {
            Ok(stored) => (
                !loaded_here && stored.stored_before(called_at),
                Ok(stored.value),
            ),
            Err(not_cached) => (
                false,
                match &*not_cached {
                    NotCached::Oversized(value) | NotCached::Heavier(value) => Ok(value.clone()),
                    NotCached::Failed(error) => Err(Arc::clone(error)),
                },
            ),
        };
        if let (true, Some(start)) = (hit, lookup_start) {
            inner.stats.record_get_latency(start.elapsed());
        }
        let sampled = inner.record_lookup(&key, hit);
        // `loaded_weight` is set only when this call's load returned `Ok`, i.e. when moka
        // stored its value.
        if let Some(weight) = loaded_weight {
            inner.stats.incr(Counter::Inserts);
            if let (Some(advisor), Some(hash)) = (&inner.advisor, sampled) {
                advisor.record(hash, SampleKind::Write(narrow(weight)));
            }
        }
        if let (Some(&weight), Ok(value)) = (heavier_here.get(), &outcome) {
            self.store_heavier(key, value.clone(), weight, sampled)
                .await;
        }
        outcome
    }

    /// Stores a value this call loaded that outweighs the floor of a cache weighing entries:
    /// moves the cache to weighing bytes, then writes it there like an `insert`.
    #[cold]
    async fn store_heavier(&self, key: K, value: V, weight: u64, sampled: Option<u64>) {
        let inner = &*self.inner;
        inner.weigh_bytes().await;
        let in_flight = inner.in_flight(Tracked::Write);
        inner.store.active().insert(key, Stored::now(value)).await;
        if let Some(in_flight) = in_flight {
            in_flight.done();
        }
        inner.stats.incr(Counter::Inserts);
        if let (Some(advisor), Some(hash)) = (&inner.advisor, sampled) {
            advisor.record(hash, SampleKind::Write(narrow(weight)));
        }
    }
}

/// Why a load's result is not stored: moka shares it with every waiting caller.
enum NotCached<V, E> {
    /// The value weighs more than the cache may hold; each caller gets a clone.
    Oversized(V),
    /// The value outweighs the per-entry floor of a cache that weighs entries: the loading
    /// call stores it once the cache weighs bytes; each caller gets a clone.
    Heavier(V),
    /// The load failed; each caller gets the same error.
    Failed(Arc<E>),
}
