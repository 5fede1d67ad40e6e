//! The history: a bounded ring of compact samples for trends, and the few full snapshots
//! that windowed figures (health, pool advice) are computed from.
//!
//! Memory: the ring holds at most `capacity` [`HistorySample`]s of scalars only (names are
//! shared `Arc<str>`s); the full snapshots, with their histograms, are kept only as far back
//! as the window needs, and never more than `window / interval + 2` of them.
//!
//! The samples are also what [`PostgresHistory`] writes, one JSON row each: whatever a
//! sample carries (the gateway's figures included, with its L2's) is persisted with it.

mod postgres;
mod sample;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use resync_cache_core::CacheMetrics;
use resync_perf_core::HealthStatus;
use resync_pool_optimizer::PoolMetrics;
use resync_resource_manager::ResourceStats;

use crate::gateway::{GatewayMetrics, L2Metrics};

pub use postgres::{PostgresHistory, HISTORY_TABLE};
pub use sample::{CacheSample, GatewaySample, HistorySample, KindSample, L2Sample, PoolSample};

/// Every component's cumulative figures at one instant.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    pub(crate) at: Instant,
    pub(crate) wall: SystemTime,
    pub(crate) caches: Vec<CacheMetrics>,
    pub(crate) pools: Vec<PoolMetrics>,
    pub(crate) kinds: Vec<ResourceStats>,
    /// The gateway's figures, when one is set.
    pub(crate) gateway: Option<GatewayMetrics>,
    /// The gateway L2's figures, when one is set.
    pub(crate) gateway_l2: Option<L2Metrics>,
}

impl Snapshot {
    pub(crate) fn cache(&self, name: &str) -> Option<&CacheMetrics> {
        self.caches.iter().find(|cache| cache.name == name)
    }

    pub(crate) fn pool(&self, name: &str) -> Option<&PoolMetrics> {
        self.pools.iter().find(|pool| pool.name == name)
    }
}

/// The ring of samples and the window bases.
#[derive(Debug)]
pub(crate) struct History {
    capacity: usize,
    /// Window bases kept at most: one window's worth of samples at the configured interval,
    /// plus two (samples taken faster than the interval cannot grow it).
    max_bases: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    samples: VecDeque<HistorySample>,
    /// Full snapshots, oldest first, reaching back at least one window when they exist.
    bases: VecDeque<Snapshot>,
    names: HashMap<String, Arc<str>>,
}

impl State {
    fn intern(&mut self, name: &str) -> Arc<str> {
        if let Some(shared) = self.names.get(name) {
            return Arc::clone(shared);
        }
        let shared: Arc<str> = Arc::from(name);
        self.names.insert(name.to_owned(), Arc::clone(&shared));
        shared
    }
}

impl History {
    pub(crate) fn new(capacity: usize, window: Duration, interval: Duration) -> Self {
        let per_window = window.as_secs_f64() / interval.as_secs_f64().max(1e-3);
        Self {
            capacity: capacity.max(1),
            max_bases: (per_window.ceil() as usize).saturating_add(2),
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        resync_perf_core::sync::lock(&self.state)
    }

    /// Samples kept at most.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Appends a sample of `snapshot` (the interval figures against the previous snapshot)
    /// and keeps the snapshot as a window base for `window`.
    pub(crate) fn record(
        &self,
        snapshot: Snapshot,
        status: HealthStatus,
        window: Duration,
    ) -> HistorySample {
        let mut state = self.lock();
        let previous = state.bases.back().cloned();
        let caches = snapshot
            .caches
            .iter()
            .map(|cache| {
                let older = previous.as_ref().and_then(|p| p.cache(&cache.name));
                CacheSample::of(state.intern(&cache.name), cache, older)
            })
            .collect();
        let pools = snapshot
            .pools
            .iter()
            .map(|pool| {
                let older = previous.as_ref().and_then(|p| p.pool(&pool.name));
                PoolSample::of(state.intern(&pool.name), pool, older)
            })
            .collect();
        let resources = snapshot
            .kinds
            .iter()
            .map(|kind| KindSample::of(state.intern(&kind.kind), kind))
            .collect();
        let gateway = snapshot.gateway.as_ref().map(|gateway| {
            let older = previous.as_ref().and_then(|p| p.gateway.as_ref());
            let l2 = snapshot.gateway_l2.as_ref().map(|l2| {
                let older = previous.as_ref().and_then(|p| p.gateway_l2.as_ref());
                Box::new(L2Sample::of(l2, older))
            });
            Box::new(GatewaySample::of(gateway, older, l2))
        });
        let unix = snapshot
            .wall
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let sample = HistorySample {
            timestamp: humantime::format_rfc3339_millis(snapshot.wall).to_string(),
            unix_seconds: unix.as_secs_f64(),
            interval_seconds: previous
                .as_ref()
                .map_or(0.0, |p| snapshot.at.duration_since(p.at).as_secs_f64()),
            status,
            caches,
            pools,
            resources,
            gateway,
        };
        if state.samples.len() == self.capacity {
            state.samples.pop_front();
        }
        state.samples.push_back(sample.clone());
        let now = snapshot.at;
        state.bases.push_back(snapshot);
        // The oldest base is needed only while the next one is younger than the window.
        while state.bases.len() > self.max_bases
            || (state.bases.len() > 2
                && state
                    .bases
                    .get(1)
                    .is_some_and(|next| now.duration_since(next.at) >= window))
        {
            state.bases.pop_front();
        }
        sample
    }

    /// The snapshot a window of `window` ending now starts at: the newest base at least
    /// `window` old, else the oldest base; `None` before the first sample (figures are then
    /// since start).
    pub(crate) fn window_base(&self, now: Instant, window: Duration) -> Option<Snapshot> {
        let state = self.lock();
        state
            .bases
            .iter()
            .rev()
            .find(|base| now.duration_since(base.at) >= window)
            .or_else(|| state.bases.front())
            .cloned()
    }

    /// Samples taken at or after `since` (all without it), the newest `limit` of them, oldest
    /// first.
    pub(crate) fn samples(&self, since: Option<f64>, limit: usize) -> Vec<HistorySample> {
        let state = self.lock();
        let matching: Vec<&HistorySample> = state
            .samples
            .iter()
            .filter(|sample| since.is_none_or(|since| sample.unix_seconds >= since))
            .collect();
        let skip = matching.len().saturating_sub(limit);
        matching.into_iter().skip(skip).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(at: Instant) -> Snapshot {
        Snapshot {
            at,
            wall: SystemTime::now(),
            caches: Vec::new(),
            pools: Vec::new(),
            kinds: Vec::new(),
            gateway: None,
            gateway_l2: None,
        }
    }

    #[test]
    fn the_ring_keeps_the_newest_samples_and_the_bases_one_window() {
        let history = History::new(3, Duration::from_secs(20), Duration::from_secs(10));
        let start = Instant::now();
        let window = Duration::from_secs(20);
        for step in 0..10 {
            history.record(
                snapshot(start + Duration::from_secs(10 * step)),
                HealthStatus::Healthy,
                window,
            );
        }
        assert_eq!(history.lock().samples.len(), 3);
        let now = start + Duration::from_secs(90);
        let base = history.window_base(now, window).unwrap();
        assert_eq!(now.duration_since(base.at), window);
        // Bases reach back one window and no further than needed.
        assert!(history.lock().bases.len() <= 4);
        let samples = history.samples(None, 2);
        assert_eq!(samples.len(), 2);
        assert!(samples[0].unix_seconds <= samples[1].unix_seconds);
        assert!(samples
            .iter()
            .all(|s| (s.interval_seconds - 10.0).abs() < 1e-9));
    }

    #[test]
    fn before_a_window_has_passed_the_base_is_the_first_sample() {
        let history = History::new(10, Duration::from_secs(60), Duration::from_secs(10));
        let start = Instant::now();
        assert!(history
            .window_base(start, Duration::from_secs(60))
            .is_none());
        history.record(
            snapshot(start),
            HealthStatus::Healthy,
            Duration::from_secs(60),
        );
        let base = history
            .window_base(start + Duration::from_secs(5), Duration::from_secs(60))
            .unwrap();
        assert_eq!(base.at, start);
    }
}
