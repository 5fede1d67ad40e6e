//! The registry of components the API reports on, and the figures it derives from them.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use resync_cache_core::{CacheHealthThresholds, CacheMetrics};

use resync_perf_core::sync::{read, write};
use resync_perf_core::{Delta, HealthStatus, HealthVerdict, Recommendation};
use resync_pool_optimizer::{evaluate_health, HealthThresholds, PoolManager, PoolMetrics};
use resync_resource_manager::{LeakReport, ResourceTracker};
use tokio::task::JoinSet;

use crate::error::Error;
use crate::gateway::{GatewayHealthThresholds, GatewayMetrics, GatewayStats, L2Metrics, L2Stats};
use crate::health::{ComponentHealth, HealthReport};
use crate::history::{History, HistorySample, PostgresHistory, Snapshot};
use crate::source::{BoxFuture, CacheSource, HealthSource};

/// How the service samples, windows and judges (settings `PERF_*` and `HEALTH_*`).
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceConfig {
    /// Seconds between history samples (`PERF_SAMPLE_INTERVAL`, 10 s).
    pub sample_interval: Duration,
    /// Samples kept in memory (`PERF_HISTORY_LEN`, 8640 = one day at 10 s).
    pub history_len: usize,
    /// The window health and advice judge (`PERF_HEALTH_WINDOW_SECS`, 60 s).
    pub health_window: Duration,
    /// Cache health thresholds (`HEALTH_CACHE_*`).
    pub cache_thresholds: CacheHealthThresholds,
    /// Pool health thresholds (`HEALTH_POOL_*`).
    pub pool_thresholds: HealthThresholds,
    /// Gateway health thresholds (`HEALTH_GATEWAY_*`).
    pub gateway_thresholds: GatewayHealthThresholds,
    /// Longest one component's health evaluation may take before it counts as critical.
    pub check_timeout: Duration,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            sample_interval: Duration::from_secs(10),
            history_len: 8640,
            health_window: Duration::from_secs(60),
            cache_thresholds: CacheHealthThresholds::default(),
            pool_thresholds: HealthThresholds::default(),
            gateway_thresholds: GatewayHealthThresholds::default(),
            check_timeout: Duration::from_secs(2),
        }
    }
}

/// The components the performance API reports on, and their history. Cheap to clone (clones
/// share everything); built in `main` and passed down, never global: two services in one
/// process know nothing of each other.
#[derive(Debug, Clone)]
pub struct PerformanceService {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: ServiceConfig,
    api_token: RwLock<Option<Arc<str>>>,
    started: Instant,
    caches: RwLock<Vec<Arc<dyn CacheSource>>>,
    pools: RwLock<Option<Arc<PoolManager>>>,
    tracker: RwLock<Option<ResourceTracker>>,
    gateway: RwLock<Option<GatewayStats>>,
    gateway_l2: RwLock<Option<L2Stats>>,
    sources: RwLock<Vec<Arc<dyn HealthSource>>>,
    history: History,
    persisted: RwLock<Option<PostgresHistory>>,
    settings: RwLock<serde_json::Value>,
}

impl Default for PerformanceService {
    fn default() -> Self {
        Self::new(ServiceConfig::default())
    }
}

impl PerformanceService {
    /// An empty registry whose API is open.
    #[must_use]
    pub fn new(config: ServiceConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                history: History::new(
                    config.history_len,
                    config.health_window,
                    config.sample_interval,
                ),
                config,
                api_token: RwLock::new(None),
                started: Instant::now(),
                caches: RwLock::default(),
                pools: RwLock::default(),
                tracker: RwLock::default(),
                gateway: RwLock::default(),
                gateway_l2: RwLock::default(),
                sources: RwLock::default(),
                persisted: RwLock::default(),
                settings: RwLock::new(serde_json::Value::Object(serde_json::Map::new())),
            }),
        }
    }

    /// Requires `Authorization: Bearer <token>` on `/api/performance/*` and `/metrics`
    /// (`PERF_API_TOKEN`); an empty token leaves the API open. Applies to every clone.
    #[must_use]
    pub fn with_api_token(self, token: &str) -> Self {
        *write(&self.inner.api_token) = (!token.is_empty()).then(|| Arc::from(token));
        self
    }

    /// The bearer token guarding the API, if any.
    #[must_use]
    pub fn api_token(&self) -> Option<Arc<str>> {
        read(&self.inner.api_token).clone()
    }

    /// How the service samples and judges.
    #[must_use]
    pub fn config(&self) -> &ServiceConfig {
        &self.inner.config
    }

    /// Registers a cache (any [`Cache<K, V>`](resync_cache_core::Cache) is a
    /// [`CacheSource`]); it appears as component `cache:<name>`.
    ///
    /// # Errors
    ///
    /// [`Error::DuplicateComponent`] when a cache of that name is registered.
    pub fn register_cache(&self, cache: impl CacheSource + 'static) -> Result<(), Error> {
        let mut caches = write(&self.inner.caches);
        if caches.iter().any(|known| known.name() == cache.name()) {
            return Err(Error::DuplicateComponent(format!("cache:{}", cache.name())));
        }
        caches.push(Arc::new(cache));
        Ok(())
    }

    /// Reports on the pools of `manager` (components `pool:<name>`).
    pub fn set_pool_manager(&self, manager: Arc<PoolManager>) {
        *write(&self.inner.pools) = Some(manager);
    }

    /// The pool manager, if one is set.
    #[must_use]
    pub fn pool_manager(&self) -> Option<Arc<PoolManager>> {
        read(&self.inner.pools).clone()
    }

    /// Reports on the resources of `tracker` (component `resources`, the leaks endpoint).
    pub fn set_tracker(&self, tracker: ResourceTracker) {
        *write(&self.inner.tracker) = Some(tracker);
    }

    /// The resource tracker, if one is set.
    #[must_use]
    pub fn tracker(&self) -> Option<ResourceTracker> {
        read(&self.inner.tracker).clone()
    }

    /// Reports on the caching gateway that records into `stats` (component `gateway`: the
    /// `/metrics` families `resync_gateway_*`, the report's and
    /// `/api/performance/gateway/metrics`'s view, the history, health by the upstream error
    /// rate). Setting another replaces it.
    pub fn set_gateway(&self, stats: GatewayStats) {
        *write(&self.inner.gateway) = Some(stats);
    }

    /// The gateway's recorder, if one is set.
    #[must_use]
    pub fn gateway(&self) -> Option<GatewayStats> {
        read(&self.inner.gateway).clone()
    }

    /// Reports on the gateway's second level cache (Redis) that records into `stats`
    /// (component `gateway_l2`: the `/metrics` families `resync_gateway_l2_*` and
    /// `resync_gateway_l1_flushes_total`, the `l2` object of the gateway's view in the
    /// report and `/api/performance/gateway/metrics`, the `l2` figures of the gateway's
    /// history sample, health by availability and the L2 error rate — degraded at worst).
    /// Setting another replaces it.
    pub fn set_gateway_l2(&self, stats: L2Stats) {
        *write(&self.inner.gateway_l2) = Some(stats);
    }

    /// The gateway L2's recorder, if one is set.
    #[must_use]
    pub fn gateway_l2(&self) -> Option<L2Stats> {
        read(&self.inner.gateway_l2).clone()
    }

    /// Adds another component that judges its own health.
    ///
    /// # Errors
    ///
    /// [`Error::DuplicateComponent`] when one of that name is registered.
    pub fn register(&self, source: Arc<dyn HealthSource>) -> Result<(), Error> {
        let name = source.name();
        let mut sources = write(&self.inner.sources);
        if sources.iter().any(|existing| existing.name() == name) {
            return Err(Error::DuplicateComponent(name));
        }
        sources.push(source);
        Ok(())
    }

    /// Also writes every history sample to Postgres, and reports the writer's health as the
    /// component `history:postgres`.
    ///
    /// # Errors
    ///
    /// [`Error::DuplicateComponent`] when a persisted history is already set.
    pub fn persist_history(&self, sink: PostgresHistory) -> Result<(), Error> {
        self.register(Arc::new(sink.clone()))?;
        *write(&self.inner.persisted) = Some(sink);
        Ok(())
    }

    /// The effective settings to show in the report's `config` section (secrets redacted by
    /// the caller).
    pub fn set_settings_report(&self, settings: serde_json::Value) {
        *write(&self.inner.settings) = settings;
    }

    pub(crate) fn settings_report(&self) -> serde_json::Value {
        read(&self.inner.settings).clone()
    }

    /// How long ago the service was built.
    #[must_use]
    pub fn uptime(&self) -> Duration {
        self.inner.started.elapsed()
    }

    /// Every component's cumulative figures now.
    pub(crate) fn snapshot(&self) -> Snapshot {
        let caches: Vec<Arc<dyn CacheSource>> = read(&self.inner.caches).clone();
        let pools = self.pool_manager();
        let tracker = self.tracker();
        let gateway = self.gateway();
        let gateway_l2 = self.gateway_l2();
        Snapshot {
            at: Instant::now(),
            wall: SystemTime::now(),
            caches: caches.iter().map(|cache| cache.metrics()).collect(),
            pools: pools.map(|manager| manager.metrics()).unwrap_or_default(),
            kinds: tracker.map(|tracker| tracker.stats()).unwrap_or_default(),
            gateway: gateway.map(|gateway| gateway.metrics()),
            gateway_l2: gateway_l2.map(|l2| l2.metrics()),
        }
    }

    /// The window judged now: `(now, the figures since the window base)`; before the first
    /// history sample the window is since start.
    pub(crate) fn window(&self) -> (Snapshot, Window) {
        let now = self.snapshot();
        let base = self
            .inner
            .history
            .window_base(now.at, self.inner.config.health_window);
        let window = Window::between(&now, base.as_ref(), self.uptime());
        (now, window)
    }

    /// Advice for every cache over the health window.
    #[must_use]
    pub fn cache_recommendations(&self) -> Vec<Recommendation> {
        Self::cache_advice(&self.window().1)
    }

    pub(crate) fn cache_advice(window: &Window) -> Vec<Recommendation> {
        window
            .caches
            .iter()
            .flat_map(resync_cache_core::recommendations_from)
            .collect()
    }

    /// Sizing advice for every pool over the health window.
    #[must_use]
    pub fn pool_recommendations(&self) -> Vec<Recommendation> {
        self.pool_advice(&self.window().1)
    }

    pub(crate) fn pool_advice(&self, window: &Window) -> Vec<Recommendation> {
        self.pool_manager()
            .map(|manager| manager.recommendations(&window.base_pools))
            .unwrap_or_default()
    }

    /// Leaked resources at least `min_age` old (the kind's threshold decides what is a leak).
    #[must_use]
    pub fn leaks(&self, min_age: Duration) -> Vec<LeakReport> {
        self.tracker()
            .map(|tracker| tracker.leaks_older_than(min_age))
            .unwrap_or_default()
    }

    /// Every component's verdict over the health window, evaluated concurrently, each within
    /// the check timeout, and the overall one (the worst).
    pub async fn health(&self) -> HealthReport {
        let (_, window) = self.window();
        self.health_of(window).await
    }

    /// The verdict over `window` (see [`health`](Self::health)).
    pub(crate) async fn health_of(&self, window: Window) -> HealthReport {
        let config = &self.inner.config;
        let window_length = window.seconds;
        let mut checks: Vec<(String, BoxFuture<'static, HealthVerdict>)> = Vec::new();
        for cache in window.caches {
            let thresholds = config.cache_thresholds;
            checks.push((
                format!("cache:{}", cache.name),
                Box::pin(async move { resync_cache_core::health(&cache, &thresholds) }),
            ));
        }
        if let Some(manager) = self.pool_manager() {
            for pool in window.pools {
                let record = manager.health_check(&pool.name).unwrap_or_default();
                let thresholds = config.pool_thresholds;
                checks.push((
                    format!("pool:{}", pool.name),
                    Box::pin(async move {
                        let health = evaluate_health(&pool, &record, &thresholds);
                        HealthVerdict::from_reasons(health.reasons)
                    }),
                ));
            }
        }
        if self.tracker().is_some() {
            let kinds = window.kinds;
            checks.push((
                "resources".to_owned(),
                Box::pin(async move { resync_resource_manager::leak_health(&kinds) }),
            ));
        }
        if let Some(gateway) = window.gateway {
            let thresholds = config.gateway_thresholds;
            checks.push((
                "gateway".to_owned(),
                Box::pin(async move { gateway.health(&thresholds) }),
            ));
        }
        if let Some(l2) = window.gateway_l2 {
            let thresholds = config.gateway_thresholds;
            checks.push((
                "gateway_l2".to_owned(),
                Box::pin(async move { l2.health(&thresholds) }),
            ));
        }
        let sources: Vec<Arc<dyn HealthSource>> = read(&self.inner.sources).clone();
        for source in sources {
            checks.push((source.name(), Box::pin(async move { source.check().await })));
        }

        let timeout = config.check_timeout;
        let mut running = JoinSet::new();
        let mut names = BTreeMap::new();
        let started = Instant::now();
        for (name, check) in checks {
            let task = running.spawn(async move {
                let started = Instant::now();
                let outcome = tokio::time::timeout(timeout, check).await;
                (outcome, started.elapsed())
            });
            names.insert(task.id(), name);
        }
        let mut components = BTreeMap::new();
        while let Some(joined) = running.join_next_with_id().await {
            let (id, verdict, took) = match joined {
                Ok((id, (outcome, took))) => (
                    id,
                    outcome.unwrap_or_else(|_elapsed| timed_out(timeout)),
                    took,
                ),
                // A check that panicked is a component that cannot say it is fine.
                Err(failed) => (failed.id(), panicked(), started.elapsed()),
            };
            if let Some(name) = names.remove(&id) {
                components.insert(name, ComponentHealth::new(verdict, took));
            }
        }
        HealthReport::from_components(components, window_length, self.thresholds())
    }

    /// Takes one history sample now (what the sampler does every interval) and returns it.
    pub async fn sample(&self) -> HistorySample {
        let (now, window) = self.window();
        let status = self.health_of(window).await.status;
        let sample = self
            .inner
            .history
            .record(now, status, self.inner.config.health_window);
        if let Some(sink) = read(&self.inner.persisted).as_ref() {
            sink.push(sample.clone());
        }
        sample
    }

    /// Samples kept, oldest first: those at or after `since` (unix seconds), the newest
    /// `limit` of them.
    #[must_use]
    pub fn history(&self, since: Option<f64>, limit: usize) -> Vec<HistorySample> {
        self.inner.history.samples(since, limit)
    }

    /// The most samples the in-memory history keeps.
    #[must_use]
    pub fn history_capacity(&self) -> usize {
        self.inner.history.capacity()
    }

    /// Samples every `PERF_SAMPLE_INTERVAL` until the service's last clone is dropped (the
    /// task holds it weakly) or the handle is aborted. The first sample is taken at once.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime (as `tokio::spawn`).
    pub fn spawn_sampler(&self) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(&self.inner);
        let every = self
            .inner
            .config
            .sample_interval
            .max(Duration::from_millis(1));
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                let service = PerformanceService { inner };
                service.sample().await;
            }
        })
    }
}

impl PerformanceService {
    /// The thresholds health applies, by name.
    fn thresholds(&self) -> BTreeMap<String, f64> {
        let config = &self.inner.config;
        BTreeMap::from([
            (
                "cache_min_hit_rate".to_owned(),
                config.cache_thresholds.min_hit_rate,
            ),
            (
                "cache_max_memory_utilization".to_owned(),
                config.cache_thresholds.max_memory_utilization,
            ),
            (
                "cache_min_requests".to_owned(),
                config.cache_thresholds.min_requests as f64,
            ),
            (
                "pool_max_utilization".to_owned(),
                config.pool_thresholds.max_utilization,
            ),
            (
                "pool_max_acquire_wait_seconds".to_owned(),
                config.pool_thresholds.max_acquire_wait.as_secs_f64(),
            ),
            (
                "pool_max_error_rate".to_owned(),
                config.pool_thresholds.max_error_rate,
            ),
            (
                "gateway_max_error_rate".to_owned(),
                config.gateway_thresholds.max_error_rate_degraded,
            ),
            (
                "gateway_critical_error_rate".to_owned(),
                config.gateway_thresholds.max_error_rate_critical,
            ),
            (
                "gateway_min_requests".to_owned(),
                config.gateway_thresholds.min_requests as f64,
            ),
            (
                "health_window_seconds".to_owned(),
                config.health_window.as_secs_f64(),
            ),
        ])
    }
}

fn panicked() -> HealthVerdict {
    tracing::error!("a health check panicked");
    HealthVerdict::from_reasons(vec![resync_perf_core::HealthReason::new(
        "health.check_panicked",
        HealthStatus::Critical,
        "the health evaluation panicked (see the server log)",
        1.0,
        0.0,
    )])
}

fn timed_out(timeout: Duration) -> HealthVerdict {
    HealthVerdict::from_reasons(vec![resync_perf_core::HealthReason::new(
        "health.check_timeout",
        HealthStatus::Critical,
        format!("the health evaluation did not finish within {timeout:?}"),
        timeout.as_secs_f64(),
        timeout.as_secs_f64(),
    )])
}

/// The figures of a window: each component's newer snapshot minus its base (or since start
/// when the base does not know it).
#[derive(Debug, Clone)]
pub(crate) struct Window {
    pub(crate) seconds: Duration,
    pub(crate) caches: Vec<CacheMetrics>,
    pub(crate) pools: Vec<PoolMetrics>,
    pub(crate) kinds: Vec<resync_resource_manager::ResourceStats>,
    /// The pools' figures at the window's start (empty when the window is since start).
    pub(crate) base_pools: Vec<PoolMetrics>,
    /// The gateway's figures in the window, when one is set.
    pub(crate) gateway: Option<GatewayMetrics>,
    /// The gateway L2's figures in the window (its state: now), when one is set.
    pub(crate) gateway_l2: Option<L2Metrics>,
}

impl Window {
    fn between(now: &Snapshot, base: Option<&Snapshot>, since_start: Duration) -> Self {
        let caches = now
            .caches
            .iter()
            .map(
                |cache| match base.and_then(|base| base.cache(&cache.name)) {
                    Some(older) => cache.delta(older),
                    None => cache.clone(),
                },
            )
            .collect();
        let pools = now
            .pools
            .iter()
            .map(|pool| match base.and_then(|base| base.pool(&pool.name)) {
                Some(older) => pool.delta(older),
                None => pool.clone(),
            })
            .collect();
        let gateway =
            now.gateway.as_ref().map(
                |gateway| match base.and_then(|base| base.gateway.as_ref()) {
                    Some(older) => gateway.delta(older),
                    None => gateway.clone(),
                },
            );
        let gateway_l2 = now.gateway_l2.as_ref().map(|l2| {
            match base.and_then(|base| base.gateway_l2.as_ref()) {
                Some(older) => l2.delta(older),
                None => l2.clone(),
            }
        });
        let seconds = base.map_or(since_start, |base| now.at.duration_since(base.at));
        Self {
            seconds,
            caches,
            pools,
            kinds: now.kinds.clone(),
            base_pools: base.map(|base| base.pools.clone()).unwrap_or_default(),
            gateway,
            gateway_l2,
        }
    }
}
