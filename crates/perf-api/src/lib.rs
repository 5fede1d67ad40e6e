//! The performance service and its HTTP API: JSON, Prometheus and OpenAPI over real caches,
//! pools, resources and the caching gateway.
//!
//! A [`PerformanceService`] holds the registered caches (any
//! [`Cache<K, V>`](resync_cache_core::Cache), as a [`CacheSource`]), a
//! [`PoolManager`](resync_pool_optimizer::PoolManager), a
//! [`ResourceTracker`](resync_resource_manager::ResourceTracker), the caching gateway's
//! [`GatewayStats`] (module [`gateway`]: the recorder the gateway writes every request into,
//! lock-free) and its Redis second level cache's [`L2Stats`], any other [`HealthSource`], and a bounded history of samples
//! ([`spawn_sampler`]) from which windowed figures come (health over `health_window`; before
//! the first sample, since start). [`router`] serves it all:
//!
//! | route | returns |
//! |---|---|
//! | `GET /api/performance/report` | everything below in one document, plus system info and settings |
//! | `GET /api/performance/cache/metrics` | per cache: counters, hit rate, bytes, bounds, latency, score, curve, window |
//! | `GET /api/performance/cache/recommendations` | cache advice with evidence |
//! | `GET /api/performance/pools/metrics` | per pool: size, use, checkouts, errors, latency, closes, checks, score, window |
//! | `GET /api/performance/pools/recommendations` | pool sizing advice with evidence |
//! | `GET /api/performance/resources/stats` | per resource kind |
//! | `GET /api/performance/resources/leaks` | leaked resources (`?min_age_secs=`) |
//! | `GET /api/performance/gateway/metrics` | the gateway: requests by method, status class and cache outcome, hit rate, bytes by source, upstream exchanges by outcome, latency, window, and `l2`, the gateway's L2 cache (`null` without a gateway) |
//! | `GET /api/performance/health` | verdict per component with measured reasons; 503 when critical |
//! | `GET /api/performance/history` | samples (`?since=` RFC 3339 or unix seconds, `?limit=`) |
//! | `GET /metrics` | Prometheus text (OpenMetrics when asked for) |
//! | `GET /openapi.json` | the OpenAPI document |
//! | `GET /livez`, `GET /readyz` | probes: status only |
//! | `GET /`, `GET /dashboard/assets/…` | the built-in [`dashboard`]: one page, assets compiled in |
//!
//! Errors are `{"error":{"code","message"}}` ([`ApiError`]). An optional bearer token guards
//! `/api/performance/*` and `/metrics`. [`api_router`] is [`router`] without the dashboard,
//! for an application that serves its own `GET /`.
//!
//! [`spawn_sampler`]: PerformanceService::spawn_sampler
//!
//! ```
//! use std::sync::Arc;
//! use resync_cache_core::Cache;
//! use resync_perf_api::{router, PerformanceService, ServiceConfig};
//! use resync_perf_core::HealthStatus;
//! use resync_pool_optimizer::PoolManager;
//! use resync_resource_manager::ResourceTracker;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let service = PerformanceService::new(ServiceConfig::default());
//! let users: Cache<u64, String> = Cache::builder().name("users").build()?;
//! service.register_cache(users.clone())?;
//! service.set_pool_manager(Arc::new(PoolManager::default()));
//! service.set_tracker(ResourceTracker::new());
//!
//! users.get_with(7, async { "user-7".to_owned() }).await;
//! service.sample().await; // what the sampler does every interval
//!
//! // An idle cache is not "low hit rate": too little traffic to judge is said as such.
//! let health = service.health().await;
//! assert_eq!(health.status, HealthStatus::Healthy);
//! let cache = &health.components["cache:users"];
//! assert_eq!(cache.reasons[0].code, "cache.insufficient_data");
//!
//! let app: axum::Router = router(service).fallback(resync_perf_api::not_found);
//! # let _ = app;
//! # Ok(()) }
//! ```

mod api_error;
mod auth;
pub mod dashboard;
mod error;
pub mod gateway;
mod health;
mod history;
mod openapi;
mod params;
mod prometheus;
mod routes;
mod service;
mod source;
mod views;

pub use api_error::{method_not_allowed, not_found, ApiError};
pub use error::Error;
pub use gateway::{
    CacheOutcome, GatewayExchange, GatewayHealthThresholds, GatewayMetrics, GatewayStats,
    L2ErrorCounts, L2InvalidationCounts, L2Lease, L2LeaseCounts, L2Lookup, L2LookupCounts,
    L2Metrics, L2Op, L2Stats, L2StoreCounts, MethodLabel, RequestCount, StatusClass,
    UpstreamCounts, UpstreamOutcome, L2_MAX_MESSAGE_BYTES,
};
pub use health::{ComponentHealth, HealthReport};
pub use history::{
    CacheSample, GatewaySample, HistorySample, KindSample, L2Sample, PoolSample, PostgresHistory,
    HISTORY_TABLE,
};
pub use openapi::document as openapi_document;
pub use routes::{api_router, route_paths, router, ProbeBody, DEFAULT_HISTORY_LIMIT};
pub use service::{PerformanceService, ServiceConfig};
pub use source::{BoxFuture, CacheSource, HealthSource};
pub use views::*;

/// The README's examples, compiled and run as doctests, so the README's code stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
