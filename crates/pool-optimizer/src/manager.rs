//! [`PoolManager`]: named pools, each health-checked in the background at its interval.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use resync_perf_core::sync::lock;
use resync_perf_core::{Delta, Recommendation};
use tokio::task::JoinHandle;

use crate::advisor::advise;
use crate::config::PoolConfig;
use crate::error::Error;
use crate::health::{evaluate_health, HealthCheckRecord, HealthThresholds, PoolHealth};
use crate::metrics::PoolMetrics;
use crate::pool::MonitoredPool;
use crate::probe::HealthProbe;

type CheckFuture<'a> = Pin<Box<dyn Future<Output = Result<(), Error>> + Send + 'a>>;

/// A pool of any backend, as the manager sees it.
trait ManagedPool: Send + Sync {
    fn config(&self) -> &PoolConfig;
    fn metrics(&self) -> PoolMetrics;
    fn check(&self) -> CheckFuture<'_>;
}

impl<M> ManagedPool for MonitoredPool<M>
where
    M: HealthProbe,
    M::Error: std::error::Error + Send + Sync + 'static,
{
    fn config(&self) -> &PoolConfig {
        MonitoredPool::config(self)
    }

    fn metrics(&self) -> PoolMetrics {
        MonitoredPool::metrics(self)
    }

    fn check(&self) -> CheckFuture<'_> {
        Box::pin(async move { self.check_health().await.map(drop) })
    }
}

/// The per-pool state the manager and its check task share.
struct Entry {
    name: Arc<str>,
    pool: Box<dyn ManagedPool>,
    state: Mutex<EntryState>,
    /// Held for the whole of a check: a pool's checks never overlap.
    checking: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct EntryState {
    record: HealthCheckRecord,
    /// Snapshots taken before the last two checks: the health window starts at the older.
    previous: Option<PoolMetrics>,
    latest: Option<PoolMetrics>,
}

impl Entry {
    /// One health check with its timeout; the outcome is recorded. Waits for a check in
    /// progress to finish first. Only the periodic checks (`rotate`) move the health
    /// window, so extra `check_all` calls never shrink it.
    async fn run_check(&self, rotate: bool) -> Result<(), Error> {
        let _checking = self.checking.lock().await;
        if rotate {
            let snapshot = self.pool.metrics();
            let mut state = lock(&self.state);
            state.previous = state.latest.replace(snapshot);
        }
        let config = self.pool.config();
        let timeout = config.effective_health_check_timeout();
        let started = Instant::now();
        let outcome = match tokio::time::timeout(timeout, self.pool.check()).await {
            Ok(outcome) => outcome,
            Err(_elapsed) => Err(Error::HealthCheckTimeout {
                pool: Arc::clone(&self.name),
                timeout,
            }),
        };
        let took = started.elapsed();
        let mut state = lock(&self.state);
        // One warning when a pool's checks start failing and one line when they pass again,
        // not one per check while a backend stays down.
        match (&outcome, state.record.is_failing()) {
            (Err(error), false) => {
                tracing::warn!(pool = %self.name, %error, ?took, "pool health check failing");
            }
            (Err(error), true) => {
                tracing::debug!(pool = %self.name, %error, ?took, "pool health check still failing");
            }
            (Ok(()), true) => {
                tracing::info!(pool = %self.name, ?took, "pool health check passes again");
            }
            (Ok(()), false) => {}
        }
        state
            .record
            .record(took, outcome.as_ref().map_err(ToString::to_string).copied());
        drop(state);
        outcome
    }

    /// The window the health verdict judges: since the snapshot before the previous check
    /// (one to two intervals), or since start before two checks ran.
    fn health_window(&self) -> (PoolMetrics, HealthCheckRecord) {
        let now = self.pool.metrics();
        let state = lock(&self.state);
        let window = match &state.previous {
            Some(older) => now.delta(older),
            None => now,
        };
        (window, state.record.clone())
    }
}

/// Everything known about one pool, in one value (for reports and APIs).
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct PoolReport {
    /// Cumulative metrics since the pool was built.
    pub metrics: PoolMetrics,
    /// Health verdict over the recent window.
    pub health: PoolHealth,
    /// What the background health checks have seen.
    pub health_check: HealthCheckRecord,
    /// Efficiency score 0–100 since start (`None` before any `get()`).
    pub efficiency_score: Option<f64>,
    /// Utilization since start, in `[0, 1]`.
    pub utilization: Option<f64>,
    /// Error rate since start.
    pub error_rate: Option<f64>,
}

/// Aborts a background task when dropped.
#[derive(Debug)]
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Named pools of any backend, each health-checked in the background at its
/// `health_check_interval` with a real round trip (its own task, so checks run concurrently,
/// each bounded by its `health_check_timeout`).
///
/// Dropping the manager stops the checks. Must be used within a tokio runtime.
pub struct PoolManager {
    thresholds: HealthThresholds,
    pools: Mutex<BTreeMap<String, (Arc<Entry>, AbortOnDrop)>>,
}

impl fmt::Debug for PoolManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolManager")
            .field("pools", &self.names())
            .field("thresholds", &self.thresholds)
            .finish()
    }
}

impl Default for PoolManager {
    fn default() -> Self {
        Self::new(HealthThresholds::default())
    }
}

impl PoolManager {
    /// An empty manager judging pools by `thresholds`.
    #[must_use]
    pub fn new(thresholds: HealthThresholds) -> Self {
        Self {
            thresholds,
            pools: Mutex::new(BTreeMap::new()),
        }
    }

    fn entries(&self) -> Vec<(String, Arc<Entry>)> {
        lock(&self.pools)
            .iter()
            .map(|(name, (entry, _task))| (name.clone(), Arc::clone(entry)))
            .collect()
    }

    fn entry(&self, name: &str) -> Option<Arc<Entry>> {
        lock(&self.pools)
            .get(name)
            .map(|(entry, _task)| Arc::clone(entry))
    }

    /// Registers `pool` under its name and starts its background health check (first check
    /// after one interval).
    ///
    /// # Errors
    ///
    /// [`Error::DuplicatePool`] when a pool of that name is registered.
    pub fn add<M>(&self, pool: MonitoredPool<M>) -> Result<(), Error>
    where
        M: HealthProbe,
        M::Error: std::error::Error + Send + Sync + 'static,
    {
        let name = pool.name().to_owned();
        let mut pools = lock(&self.pools);
        if pools.contains_key(&name) {
            return Err(Error::DuplicatePool(name));
        }
        let interval = pool.config().health_check_interval;
        let entry = Arc::new(Entry {
            name: Arc::from(name.as_str()),
            pool: Box::new(pool),
            state: Mutex::new(EntryState::default()),
            checking: tokio::sync::Mutex::new(()),
        });
        let weak = Arc::downgrade(&entry);
        let task = tokio::spawn(async move {
            let mut ticks =
                tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(entry) = weak.upgrade() else { break };
                // Failures are recorded and logged by `run_check`.
                let _outcome = entry.run_check(true).await;
            }
        });
        pools.insert(name, (entry, AbortOnDrop(task)));
        Ok(())
    }

    /// Stops checking and forgets the pool named `name`; whether it was registered.
    pub fn remove(&self, name: &str) -> bool {
        lock(&self.pools).remove(name).is_some()
    }

    /// Names of the registered pools, sorted.
    #[must_use]
    pub fn names(&self) -> Vec<String> {
        self.entries().into_iter().map(|(name, _)| name).collect()
    }

    /// Runs every pool's health check now, concurrently, each within its timeout. A pool
    /// whose background check is running is checked once that one has finished (checks of
    /// one pool never overlap); these checks are recorded but do not move the health window.
    pub async fn check_all(&self) -> BTreeMap<String, Result<(), Error>> {
        let handles: Vec<_> = self
            .entries()
            .into_iter()
            .map(|(name, entry)| {
                (
                    name,
                    tokio::spawn(async move { entry.run_check(false).await }),
                )
            })
            .collect();
        let mut results = BTreeMap::new();
        for (name, handle) in handles {
            let outcome = handle.await.unwrap_or_else(|join| {
                Err(Error::Backend(Arc::new(std::io::Error::other(
                    join.to_string(),
                ))))
            });
            results.insert(name, outcome);
        }
        results
    }

    /// Current metrics of every pool.
    #[must_use]
    pub fn metrics(&self) -> Vec<PoolMetrics> {
        self.entries()
            .iter()
            .map(|(_, entry)| entry.pool.metrics())
            .collect()
    }

    /// The configuration of the pool named `name`.
    #[must_use]
    pub fn config(&self, name: &str) -> Option<PoolConfig> {
        self.entry(name).map(|entry| entry.pool.config().clone())
    }

    /// The health-check record of the pool named `name`.
    #[must_use]
    pub fn health_check(&self, name: &str) -> Option<HealthCheckRecord> {
        self.entry(name)
            .map(|entry| lock(&entry.state).record.clone())
    }

    /// Health of every pool over its recent window (one to two check intervals).
    #[must_use]
    pub fn health(&self) -> Vec<PoolHealth> {
        self.entries()
            .iter()
            .map(|(_, entry)| {
                let (window, record) = entry.health_window();
                evaluate_health(&window, &record, &self.thresholds)
            })
            .collect()
    }

    /// Health of the pool named `name` over its recent window.
    #[must_use]
    pub fn pool_health(&self, name: &str) -> Option<PoolHealth> {
        self.entry(name).map(|entry| {
            let (window, record) = entry.health_window();
            evaluate_health(&window, &record, &self.thresholds)
        })
    }

    /// One [`PoolReport`] per pool, sorted by name.
    #[must_use]
    pub fn reports(&self) -> Vec<PoolReport> {
        self.entries()
            .iter()
            .map(|(_, entry)| {
                let (window, record) = entry.health_window();
                let health = evaluate_health(&window, &record, &self.thresholds);
                let metrics = entry.pool.metrics();
                PoolReport {
                    efficiency_score: metrics.efficiency_score(),
                    utilization: metrics.utilization(),
                    error_rate: metrics.error_rate(),
                    metrics,
                    health,
                    health_check: record,
                }
            })
            .collect()
    }

    /// Sizing advice for every pool over the window since `older` (a snapshot list from an
    /// earlier [`metrics`](Self::metrics) call), or since start for pools not in `older`.
    #[must_use]
    pub fn recommendations(&self, older: &[PoolMetrics]) -> Vec<Recommendation> {
        self.entries()
            .iter()
            .flat_map(|(name, entry)| {
                let now = entry.pool.metrics();
                let window = match older.iter().find(|m| &m.name == name) {
                    Some(older) => now.delta(older),
                    None => now,
                };
                let record = lock(&entry.state).record.clone();
                advise(
                    &window,
                    entry.pool.config(),
                    Some(&record),
                    &self.thresholds,
                )
            })
            .collect()
    }
}
