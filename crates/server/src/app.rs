//! Composition: every component built from the settings as a value, and the router over them.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use resync_cache_core::CacheHealthThresholds;
use resync_perf_api::{
    router, GatewayHealthThresholds, GatewayStats, L2Stats, PerformanceService, PostgresHistory,
    ServiceConfig,
};
use resync_pool_optimizer::{
    HealthThresholds, HttpManager, MonitoredPool, PoolConfig, PoolManager, PostgresManager,
    RedisManager,
};
use resync_resource_manager::ResourceTracker;
use tokio::task::JoinHandle;

use crate::gateway::{
    response_cache_builder, CachePolicy, Gateway, GatewayConfig, L2Config, ResponseCache,
    SharedCache, Upstream,
};
use crate::settings::Settings;

/// The longest pause between two leak scans, whatever `LEAK_THRESHOLD_SECS` is.
pub const MAX_LEAK_SCAN_PERIOD: Duration = Duration::from_secs(30);
/// How much longer than any entry can live a path's L2 generation is kept after a write.
pub const L2_GENERATION_MARGIN: Duration = Duration::from_secs(60);
/// Longest one history write to Postgres may take.
pub const HISTORY_WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// The name of the gateway's response cache.
pub const RESPONSE_CACHE: &str = "responses";

/// Why the components could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A pool's settings or URL cannot be used.
    #[error("pool `{pool}`: {source}")]
    Pool {
        /// The pool's name.
        pool: &'static str,
        /// What is wrong.
        source: resync_pool_optimizer::Error,
    },
    /// The response cache's settings cannot be used.
    #[error("response cache: {0}")]
    Cache(#[from] resync_cache_core::Error),
    /// Two components of one name.
    #[error(transparent)]
    Registry(#[from] resync_perf_api::Error),
}

/// The composed application: every component as a value, shared with the service.
#[derive(Debug)]
pub struct App {
    /// The performance service the API reports from.
    pub service: PerformanceService,
    /// The tracker every pool and resource reports to.
    pub tracker: ResourceTracker,
    /// Every pool, health-checked in the background.
    pub pools: Arc<PoolManager>,
    /// The gateway's response cache (`ASYNC_CACHE_*`).
    pub responses: ResponseCache,
    /// The caching gateway (`/tws/*`), when `TWS_BASE_URL` is set.
    pub gateway: Option<Gateway>,
    /// The Postgres pool, when `DATABASE_URL` is set.
    pub database: Option<MonitoredPool<PostgresManager>>,
    /// The Redis pool, when `REDIS_URL` is set.
    pub redis: Option<MonitoredPool<RedisManager>>,
    /// The upstream HTTP pool, when `TWS_BASE_URL` is set.
    pub upstream: Option<MonitoredPool<HttpManager>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for App {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// A pool's settings, with the prefix's keys applied to the backend's defaults.
fn pool_config(defaults: &PoolConfig, settings: &Settings, sizes: PoolKeys) -> PoolConfig {
    PoolConfig {
        min_size: sizes.min_size,
        max_size: sizes.max_size,
        idle_timeout: Some(Duration::from_secs(sizes.idle_timeout)),
        max_lifetime: Some(Duration::from_secs(sizes.max_lifetime)),
        connect_timeout: Duration::from_secs(sizes.connect_timeout),
        health_check_interval: Duration::from_secs(sizes.health_check_interval),
        leak_threshold: Duration::from_secs(settings.leak_threshold_secs),
        ..defaults.clone()
    }
}

/// One prefix's keys (`DB_POOL_*`, `REDIS_POOL_*`, `HTTP_POOL_*`).
#[derive(Debug, Clone, Copy)]
struct PoolKeys {
    min_size: u32,
    max_size: u32,
    idle_timeout: u64,
    max_lifetime: u64,
    connect_timeout: u64,
    health_check_interval: u64,
}

impl Settings {
    fn db_pool(&self) -> PoolKeys {
        PoolKeys {
            min_size: self.db_pool_min_size,
            max_size: self.db_pool_max_size,
            idle_timeout: self.db_pool_idle_timeout,
            max_lifetime: self.db_pool_max_lifetime,
            connect_timeout: self.db_pool_connect_timeout,
            health_check_interval: self.db_pool_health_check_interval,
        }
    }

    fn redis_pool(&self) -> PoolKeys {
        PoolKeys {
            min_size: self.redis_pool_min_size,
            max_size: self.redis_pool_max_size,
            idle_timeout: self.redis_pool_idle_timeout,
            max_lifetime: self.redis_pool_max_lifetime,
            connect_timeout: self.redis_pool_connect_timeout,
            health_check_interval: self.redis_pool_health_check_interval,
        }
    }

    fn http_pool(&self) -> PoolKeys {
        PoolKeys {
            min_size: self.http_pool_min_size,
            max_size: self.http_pool_max_size,
            idle_timeout: self.http_pool_idle_timeout,
            max_lifetime: self.http_pool_max_lifetime,
            connect_timeout: self.http_pool_connect_timeout,
            health_check_interval: self.http_pool_health_check_interval,
        }
    }

    /// How the performance service samples and judges.
    #[must_use]
    pub fn service_config(&self) -> ServiceConfig {
        ServiceConfig {
            sample_interval: Duration::from_secs(self.perf_sample_interval),
            history_len: usize::try_from(self.perf_history_len).unwrap_or(usize::MAX),
            health_window: Duration::from_secs(self.perf_health_window_secs),
            cache_thresholds: CacheHealthThresholds {
                min_hit_rate: self.health_cache_min_hit_rate,
                max_memory_utilization: self.health_cache_max_memory_utilization,
                min_requests: self.health_cache_min_requests,
            },
            pool_thresholds: self.pool_thresholds(),
            gateway_thresholds: GatewayHealthThresholds {
                max_error_rate_degraded: self.health_gateway_max_error_rate,
                max_error_rate_critical: self.health_gateway_critical_error_rate,
                min_requests: self.health_gateway_min_requests,
            },
            ..ServiceConfig::default()
        }
    }

    fn pool_thresholds(&self) -> HealthThresholds {
        HealthThresholds {
            max_utilization: self.health_pool_max_utilization,
            max_acquire_wait: Duration::from_millis(self.health_pool_max_wait_ms),
            max_error_rate: self.health_pool_max_error_rate,
        }
    }

    /// The gateway's caching rules and body caps.
    #[must_use]
    pub fn gateway_config(&self) -> GatewayConfig {
        GatewayConfig {
            policy: CachePolicy {
                ttl: self.cache_ttl(),
                stale_if_error: Duration::from_secs(self.gateway_stale_if_error_secs),
                max_body_bytes: self.gateway_max_cached_body_bytes,
                cache_not_found: self.gateway_cache_not_found,
            },
            max_request_body_bytes: self.gateway_max_request_body_bytes,
        }
    }

    /// How the gateway's second level works: its lease, its bound on every Redis operation,
    /// the longest wait for another instance's fetch, and how long a path's generation
    /// outlives any entry stored before the write that replaced it.
    #[must_use]
    pub fn l2_config(&self) -> L2Config {
        let wait = Duration::from_secs(self.tws_read_timeout);
        let lease = Duration::from_millis(self.gateway_l2_lease_ms);
        L2Config {
            lease,
            timeout: self.redis_response_timeout(),
            wait,
            generation_lifetime: self.cache_ttl()
                + Duration::from_secs(self.gateway_stale_if_error_secs)
                + wait
                + lease
                + L2_GENERATION_MARGIN,
        }
    }

    /// `REDIS_RESPONSE_TIMEOUT_MS` as a duration.
    #[must_use]
    pub fn redis_response_timeout(&self) -> Duration {
        Duration::from_millis(self.redis_response_timeout_ms)
    }

    /// How often the leak scanner runs: a tenth of `LEAK_THRESHOLD_SECS`, at most 30 s.
    #[must_use]
    pub fn leak_scan_period(&self) -> Duration {
        (Duration::from_secs(self.leak_threshold_secs) / 10).min(MAX_LEAK_SCAN_PERIOD)
    }
}

impl App {
    /// Builds every component from (validated) settings: the tracker and its leak scanner,
    /// a monitored pool per configured backend, the pool manager, the response cache, the
    /// performance service with its sampler (and its Postgres history when `DATABASE_URL`
    /// is set). Nothing waits for a backend: a down one shows in health.
    ///
    /// # Errors
    ///
    /// When a URL or a pool or cache setting cannot be used.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime (pools and background tasks are spawned on it).
    pub fn build(settings: &Settings) -> Result<Self, BuildError> {
        let tracker = ResourceTracker::with_default_leak_threshold(Duration::from_secs(
            settings.leak_threshold_secs,
        ));
        let mut tasks = vec![tracker.spawn_leak_scanner(settings.leak_scan_period())];
        let pools = Arc::new(PoolManager::new(settings.pool_thresholds()));
        let pool_error = |pool| move |source| BuildError::Pool { pool, source };

        let database = (!settings.database_url.is_empty())
            .then(|| -> Result<_, BuildError> {
                let manager =
                    PostgresManager::new(&settings.database_url, None).map_err(pool_error("db"))?;
                let config = pool_config(&PoolConfig::database(), settings, settings.db_pool());
                let pool = MonitoredPool::new("db", config, manager, &tracker)
                    .map_err(pool_error("db"))?;
                pools.add(pool.clone()).map_err(pool_error("db"))?;
                Ok(pool)
            })
            .transpose()?;
        let redis = (!settings.redis_url.is_empty())
            .then(|| -> Result<_, BuildError> {
                let manager =
                    RedisManager::new(&settings.redis_url, settings.redis_response_timeout(), None)
                        .map_err(pool_error("redis"))?;
                let config = PoolConfig {
                    // The health probe is one PING: bounded like any Redis command.
                    health_check_timeout: Some(settings.redis_response_timeout()),
                    ..pool_config(&PoolConfig::redis(), settings, settings.redis_pool())
                };
                let pool = MonitoredPool::new("redis", config, manager, &tracker)
                    .map_err(pool_error("redis"))?;
                pools.add(pool.clone()).map_err(pool_error("redis"))?;
                Ok(pool)
            })
            .transpose()?;
        let upstream = (!settings.tws_base_url.is_empty())
            .then(|| -> Result<_, BuildError> {
                let ca_file =
                    (!settings.tws_ca_file.is_empty()).then(|| Path::new(&settings.tws_ca_file));
                let manager = HttpManager::new(&settings.tws_base_url, ca_file)
                    .map_err(pool_error("http"))?
                    .with_response_timeout(Duration::from_secs(settings.tws_read_timeout));
                let config = PoolConfig {
                    // The health probe is an upstream request: bounded like one.
                    health_check_timeout: Some(Duration::from_secs(settings.tws_read_timeout)),
                    ..pool_config(&PoolConfig::http(), settings, settings.http_pool())
                };
                let pool = MonitoredPool::new("http", config, manager, &tracker)
                    .map_err(pool_error("http"))?;
                pools.add(pool.clone()).map_err(pool_error("http"))?;
                Ok(pool)
            })
            .transpose()?;

        // Each entry lives for its own freshness (at most ASYNC_CACHE_TTL) plus the
        // stale-if-error window (the per-entry expiry); the cache-wide TTL is their sum,
        // the longest any entry stays.
        let responses: ResponseCache = response_cache_builder()
            .name(RESPONSE_CACHE)
            .ttl(settings.cache_ttl() + Duration::from_secs(settings.gateway_stale_if_error_secs))
            .max_entries(settings.async_cache_max_entries)
            .max_memory_bytes(settings.async_cache_max_memory_mb * 1024 * 1024)
            .cleanup_interval(Duration::from_secs(settings.async_cache_cleanup_interval))
            .stat_shards(usize::try_from(settings.async_cache_num_shards).unwrap_or(1))
            .build()?;

        // The second level, with GATEWAY_L2 (validation made sure Redis is configured).
        let l2 = redis
            .as_ref()
            .filter(|_| settings.gateway_l2)
            .map(|pool| SharedCache::new(pool.clone(), settings.l2_config(), L2Stats::new()));
        let gateway = upstream.as_ref().map(|pool| {
            Gateway::new(
                responses.clone(),
                Upstream::new(pool.clone(), Duration::from_secs(settings.tws_read_timeout)),
                settings.gateway_config(),
                GatewayStats::new(),
                l2.clone(),
            )
        });
        if let Some(listener) = gateway.as_ref().and_then(Gateway::spawn_listener) {
            tasks.push(listener);
        }

        let service = PerformanceService::new(settings.service_config())
            .with_api_token(&settings.perf_api_token);
        service.set_settings_report(settings.redacted_json());
        service.register_cache(responses.clone())?;
        service.set_pool_manager(Arc::clone(&pools));
        service.set_tracker(tracker.clone());
        if let Some(gateway) = &gateway {
            service.set_gateway(gateway.stats().clone());
            if let Some(l2) = gateway.l2() {
                service.set_gateway_l2(l2.stats().clone());
            }
        }
        if let Some(database) = &database {
            let span = Duration::from_secs(settings.perf_sample_interval)
                .saturating_mul(u32::try_from(settings.perf_history_len).unwrap_or(u32::MAX));
            service.persist_history(PostgresHistory::start(
                database.clone(),
                span,
                HISTORY_WRITE_TIMEOUT,
            ))?;
        }
        tasks.push(service.spawn_sampler());
        // A first health check of every pool now, so a backend that is down at start-up is
        // reported within moments rather than after one check interval.
        let first_checks = Arc::clone(&pools);
        tasks.push(tokio::spawn(async move {
            first_checks.check_all().await;
        }));

        Ok(Self {
            service,
            tracker,
            pools,
            responses,
            gateway,
            database,
            redis,
            upstream,
            tasks,
        })
    }

    /// The HTTP router of the whole application: the performance API, the gateway (with
    /// `TWS_BASE_URL` set), and a JSON 404 for unknown paths.
    pub fn router(&self) -> axum::Router {
        let api = router(self.service.clone());
        let api = match &self.gateway {
            Some(gateway) => api.merge(gateway.router()),
            None => api,
        };
        api.fallback(resync_perf_api::not_found)
    }

    /// Stops the background tasks, closes every pool (their idle connections close as the
    /// last handles drop) and logs every resource still held past its leak threshold, with
    /// the line that acquired it.
    pub fn shutdown(mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
        }
        for name in self.pools.names() {
            self.pools.remove(&name);
        }
        let leaks = self.tracker.leaks();
        for leak in &leaks {
            tracing::warn!(
                kind = %leak.kind,
                label = %leak.label,
                age_secs = leak.age.as_secs_f64(),
                acquired_at = %leak.acquired_at,
                "resource still held at shutdown past its leak threshold"
            );
        }
        tracing::info!(leaks = leaks.len(), "pools closed");
    }
}
