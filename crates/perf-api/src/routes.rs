//! The HTTP routes.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, MethodRouter};
use axum::{Json, Router};
use resync_perf_core::HealthStatus;
use resync_resource_manager::ResourceTracker;
use serde_json::json;

use crate::api_error::ApiError;
use crate::health::HealthReport;
use crate::params::Params;
use crate::prometheus::{Exposition, TextFormat};
use crate::service::{PerformanceService, Window};
use crate::views::{
    CacheView, CachesResponse, ErrorBody, GatewayResponse, GatewayView, HistoryResponse, KindView,
    LeakView, LeaksResponse, PoolView, PoolsResponse, RecommendationView, RecommendationsResponse,
    ReportResponse, ResourcesResponse, SystemView,
};

type QueryMap = Result<Query<BTreeMap<String, String>>, QueryRejection>;

/// Samples `history` returns when no `limit` is given.
pub const DEFAULT_HISTORY_LIMIT: usize = 1000;

/// The performance API and its dashboard as an [`axum::Router`] to serve or merge into an
/// application.
///
/// Routes: `GET /api/performance/{report, cache/metrics, cache/recommendations,
/// pools/metrics, pools/recommendations, resources/stats, resources/leaks, gateway/metrics,
/// health, history}`,
/// `GET /metrics` (Prometheus text, or OpenMetrics when asked for), `GET /openapi.json`,
/// `GET /livez` and `GET /readyz`, and the [dashboard](crate::dashboard): the page at `GET /`
/// and its assets under `GET /dashboard/assets/`. Another method on a route answers a JSON
/// 405. An application that serves its own `GET /` merges [`api_router`] instead (axum
/// refuses to merge two routers that both route `/`).
///
/// With a token set ([`PerformanceService::with_api_token`]), `/api/performance/*` and
/// `/metrics` answer 401 without `Authorization: Bearer <token>`; the probes, the OpenAPI
/// document and the dashboard's page and assets stay open (the page sends the token with
/// its data calls). The router sets no fallback (axum refuses to merge two routers that
/// both have one): the application adds its own, e.g. [`not_found`](crate::not_found).
pub fn router(service: PerformanceService) -> Router {
    with_layers(api_routes().merge(crate::dashboard::routes()), service)
}

/// [`router`] without the dashboard: the API routes only, for an application that serves
/// its own `GET /`.
pub fn api_router(service: PerformanceService) -> Router {
    with_layers(api_routes(), service)
}

fn api_routes() -> Router<PerformanceService> {
    ROUTES
        .iter()
        .fold(Router::new(), |router, (path, handler)| {
            router.route(path, handler())
        })
}

/// The 405 fallback, the token check and the panic catcher over `routes`.
fn with_layers(routes: Router<PerformanceService>, service: PerformanceService) -> Router {
    routes
        .method_not_allowed_fallback(crate::api_error::method_not_allowed)
        // `layer`, not `route_layer`: every route above is behind it, whenever it was added.
        .layer(axum::middleware::from_fn_with_state(
            service.clone(),
            crate::auth::require_token,
        ))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            answer_panic,
        ))
        .with_state(service)
}

type Route = (&'static str, fn() -> MethodRouter<PerformanceService>);

/// Every route of [`router`], in one table (the OpenAPI test checks the document against it).
const ROUTES: [Route; 14] = [
    ("/api/performance/report", || get(report)),
    ("/api/performance/cache/metrics", || get(cache_metrics)),
    ("/api/performance/cache/recommendations", || {
        get(cache_recommendations)
    }),
    ("/api/performance/pools/metrics", || get(pool_metrics)),
    ("/api/performance/pools/recommendations", || {
        get(pool_recommendations)
    }),
    ("/api/performance/resources/stats", || get(resource_stats)),
    ("/api/performance/resources/leaks", || get(resource_leaks)),
    ("/api/performance/gateway/metrics", || get(gateway_metrics)),
    ("/api/performance/health", || get(health)),
    ("/api/performance/history", || get(history)),
    ("/metrics", || get(prometheus_metrics)),
    ("/openapi.json", || get(openapi)),
    ("/livez", || get(live)),
    ("/readyz", || get(ready)),
];

/// The path of every API route [`router`] serves (all `GET`; the dashboard's page and
/// assets, which are not part of the OpenAPI document, aside).
pub fn route_paths() -> impl Iterator<Item = &'static str> {
    ROUTES.iter().map(|(path, _)| *path)
}

/// A handler that panicked answers a JSON 500; the panic's text goes to the log only.
#[allow(clippy::needless_pass_by_value)] // reason: the signature CatchPanicLayer::custom takes.
fn answer_panic(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let what = panic
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a handler panicked".to_owned());
    ApiError::internal(&what).into_response()
}

fn status_code(status: HealthStatus) -> StatusCode {
    match status {
        HealthStatus::Critical => StatusCode::SERVICE_UNAVAILABLE,
        HealthStatus::Healthy | HealthStatus::Degraded => StatusCode::OK,
    }
}

fn cache_views(window: &Window, now: &crate::history::Snapshot) -> Vec<CacheView> {
    now.caches
        .iter()
        .zip(&window.caches)
        .map(|(total, recent)| CacheView::of(total, recent, window.seconds))
        .collect()
}

fn pool_views(
    service: &PerformanceService,
    window: &Window,
    now: &crate::history::Snapshot,
) -> Vec<PoolView> {
    let manager = service.pool_manager();
    now.pools
        .iter()
        .zip(&window.pools)
        .map(|(total, recent)| {
            let record = manager
                .as_ref()
                .and_then(|manager| manager.health_check(&total.name))
                .unwrap_or_default();
            let config = manager
                .as_ref()
                .and_then(|manager| manager.config(&total.name));
            PoolView::of(total, recent, window.seconds, &record, config.as_ref())
        })
        .collect()
}

fn gateway_view(window: &Window, now: &crate::history::Snapshot) -> Option<GatewayView> {
    let total = now.gateway.as_ref()?;
    let recent = window.gateway.as_ref()?;
    let l2 = now.gateway_l2.as_ref().zip(window.gateway_l2.as_ref());
    Some(GatewayView::of(total, recent, window.seconds, l2))
}

fn advice(recommendations: Vec<resync_perf_core::Recommendation>) -> Vec<RecommendationView> {
    recommendations.into_iter().map(Into::into).collect()
}

async fn leaks_of(
    service: PerformanceService,
    min_age: Duration,
) -> Result<Vec<LeakView>, ApiError> {
    // A scan formats every leak (and resolves backtraces when enabled): off the async workers.
    tokio::task::spawn_blocking(move || service.leaks(min_age))
        .await
        .map(|leaks| leaks.into_iter().map(Into::into).collect())
        .map_err(|join| ApiError::internal(&join))
}

/// Everything in one document.
#[utoipa::path(get, path = "/api/performance/report", tag = "performance",
    responses(
        (status = 200, description = "Every figure, recommendation and verdict", body = ReportResponse),
        (status = 400, description = "A bad query parameter", body = ErrorBody),
        (status = 401, description = "The bearer token is missing or wrong", body = ErrorBody),
    ))]
pub(crate) async fn report(
    State(service): State<PerformanceService>,
    query: QueryMap,
) -> Result<Json<ReportResponse>, ApiError> {
    Params::parse(query, &[])?;
    // One window for every figure of the document.
    let (now, window) = service.window();
    let leaks = leaks_of(service.clone(), Duration::ZERO).await?;
    Ok(Json(ReportResponse {
        generated_at: humantime::format_rfc3339_millis(now.wall).to_string(),
        system: system(&service),
        config: service.settings_report(),
        caches: cache_views(&window, &now),
        cache_recommendations: advice(PerformanceService::cache_advice(&window)),
        pools: pool_views(&service, &window, &now),
        pool_recommendations: advice(service.pool_advice(&window)),
        resources: now.kinds.iter().map(KindView::from).collect(),
        leaks,
        gateway: gateway_view(&window, &now),
        health: service.health_of(window).await,
    }))
}

fn system(service: &PerformanceService) -> SystemView {
    let process = crate::prometheus::process::ProcessStats::read();
    SystemView {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        pid: std::process::id(),
        uptime_seconds: service.uptime().as_secs_f64(),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get() as u64),
        resident_memory_bytes: process.resident_memory_bytes,
        open_fds: process.open_fds,
    }
}

/// Every cache's figures.
#[utoipa::path(get, path = "/api/performance/cache/metrics", tag = "performance",
    responses(
        (status = 200, description = "Per cache: counters, hit rate, bytes, bounds, latency, score, curve, window", body = CachesResponse),
        (status = 400, description = "A bad query parameter", body = ErrorBody),
        (status = 401, description = "The bearer token is missing or wrong", body = ErrorBody),
    ))]
pub(crate) async fn cache_metrics(
    State(service): State<PerformanceService>,
    query: QueryMap,
) -> Result<Json<CachesResponse>, ApiError> {
    Params::parse(query, &[])?;
    let (now, window) = service.window();
    Ok(Json(CachesResponse {
        caches: cache_views(&window, &now),
    }))
}

/// Advice for the caches over the health window.
#[utoipa::path(get, path = "/api/performance/cache/recommendations", tag = "performance",
    responses(
        (status = 200, description = "Cache advice, each with its evidence", body = RecommendationsResponse),
        (status = 400, description = "A bad query parameter", body = ErrorBody),
        (status = 401, description = "The bearer token is missing or wrong", body = ErrorBody),
    ))]
pub(crate) async fn cache_recommendations(
    State(service): State<PerformanceService>,
    query: QueryMap,
) -> Result<Json<RecommendationsResponse>, ApiError> {
    Params::parse(query, &[])?;
    Ok(Json(RecommendationsResponse {
        recommendations: advice(service.cache_recommendations()),
    }))
}

/// Every pool's figures.
#[utoipa::path(get, path = "/api/performance/pools/metrics", tag = "performance",
    responses(
        (status = 200, description = "Per pool: size, use, checkouts, errors, latency, closes, health checks, score, window", body = PoolsResponse),
        (status = 400, description = "A bad query parameter", body = ErrorBody),
        (status = 401, description = "The bearer token is missing or wrong", body = ErrorBody),
    ))]
pub(crate) async fn pool_metrics(
    State(service): State<PerformanceService>,
    query: QueryMap,
) -> Result<Json<PoolsResponse>, ApiError> {
    Params::parse(query, &[])?;
    let (now, window) = service.window();
    Ok(Json(PoolsResponse {
        pools: pool_views(&service, &window, &now),
    }))
}

/// Sizing advice for the pools over the health window.
#[utoipa::path(get, path = "/api/performance/pools/recommendations", tag = "performance",
    responses(
        (status = 200, description = "Pool advice, each with its evidence", body = RecommendationsResponse),
        (status = 400, description = "A bad query parameter", body = ErrorBody),
        (status = 401, description = "The bearer token is missing or wrong", body = ErrorBody),
    ))]
pub(crate) async fn pool_recommendations(
    State(service): State<PerformanceService>,
    query: QueryMap,
) -> Result<Json<RecommendationsResponse>, ApiError> {
    Params::parse(query, &[])?;
    Ok(Json(RecommendationsResponse {
        recommendations: advice(service.pool_recommendations()),
    }))
}

/// Statistics per resource kind.
#[utoipa::path(get, path = "/api/performance/resources/stats", tag = "performance",
    responses(
        (status = 200, description = "Per kind: active, peak, created, released, leaks, lifetimes", body = ResourcesResponse),
        (status = 400, description = "A bad query parameter", body = ErrorBody),
        (status = 401, description = "The bearer token is missing or wrong", body = ErrorBody),
    ))]
pub(crate) async fn resource_stats(
    State(service): State<PerformanceService>,
    query: QueryMap,
) -> Result<Json<ResourcesResponse>, ApiError> {
    Params::parse(query, &[])?;
    let kinds = service
        .tracker()
        .as_ref()
        .map(ResourceTracker::stats)
        .unwrap_or_default();
    Ok(Json(ResourcesResponse {
        kinds: kinds.iter().map(KindView::from).collect(),
    }))
}

/// Resources held past their kind's leak threshold.
#[utoipa::path(get, path = "/api/performance/resources/leaks", tag = "performance",
    params(("min_age_secs" = Option<f64>, Query, description = "Only leaks at least this many seconds old")),
    responses(
        (status = 200, description = "Leaked resources with the line that acquired them", body = LeaksResponse),
        (status = 400, description = "A bad query parameter", body = ErrorBody),
        (status = 401, description = "The bearer token is missing or wrong", body = ErrorBody),
    ))]
pub(crate) async fn resource_leaks(
    State(service): State<PerformanceService>,
    query: QueryMap,
) -> Result<Json<LeaksResponse>, ApiError> {
    let params = Params::parse(query, &["min_age_secs"])?;
    let min_age = params.seconds("min_age_secs")?.unwrap_or(0.0);
    let leaks = leaks_of(service, Duration::from_secs_f64(min_age)).await?;
    Ok(Json(LeaksResponse {
        min_age_seconds: min_age,
        leaks,
    }))
}

/// The caching gateway's figures.
#[utoipa::path(get, path = "/api/performance/gateway/metrics", tag = "performance",
    responses(
        (status = 200, description = "Requests by method, status class and cache outcome, hit rate, bytes by source, upstream exchanges by outcome, latency, window, and the L2 (Redis) cache's figures (l2, null without one); gateway null when the service has none", body = GatewayResponse),
        (status = 400, description = "A bad query parameter", body = ErrorBody),
        (status = 401, description = "The bearer token is missing or wrong", body = ErrorBody),
    ))]
pub(crate) async fn gateway_metrics(
    State(service): State<PerformanceService>,
    query: QueryMap,
) -> Result<Json<GatewayResponse>, ApiError> {
    Params::parse(query, &[])?;
    let (now, window) = service.window();
    Ok(Json(GatewayResponse {
        gateway: gateway_view(&window, &now),
    }))
}

/// The health verdict.
#[utoipa::path(get, path = "/api/performance/health", tag = "performance",
    responses(
        (status = 200, description = "Healthy or degraded", body = HealthReport),
        (status = 503, description = "Critical", body = HealthReport),
        (status = 400, description = "A bad query parameter", body = ErrorBody),
        (status = 401, description = "The bearer token is missing or wrong", body = ErrorBody),
    ))]
pub(crate) async fn health(
    State(service): State<PerformanceService>,
    query: QueryMap,
) -> Result<Response, ApiError> {
    Params::parse(query, &[])?;
    let report = service.health().await;
    Ok((status_code(report.status), Json(report)).into_response())
}

/// Samples over time.
#[utoipa::path(get, path = "/api/performance/history", tag = "performance",
    params(
        ("since" = Option<String>, Query, description = "Only samples at or after this time: RFC 3339 or unix seconds"),
        ("limit" = Option<u64>, Query, description = "At most this many samples, the newest (default 1000)"),
    ),
    responses(
        (status = 200, description = "Samples, oldest first", body = HistoryResponse),
        (status = 400, description = "A bad query parameter", body = ErrorBody),
        (status = 401, description = "The bearer token is missing or wrong", body = ErrorBody),
    ))]
pub(crate) async fn history(
    State(service): State<PerformanceService>,
    query: QueryMap,
) -> Result<Json<HistoryResponse>, ApiError> {
    let params = Params::parse(query, &["since", "limit"])?;
    let since = params.instant("since")?;
    let capacity = service.history_capacity();
    let limit = params
        .count("limit", capacity)?
        .unwrap_or(DEFAULT_HISTORY_LIMIT.min(capacity));
    Ok(Json(HistoryResponse {
        sample_interval_seconds: service.config().sample_interval.as_secs_f64(),
        health_window_seconds: service.config().health_window.as_secs_f64(),
        capacity: capacity as u64,
        samples: service.history(since, limit),
    }))
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "metrics",
    responses(
        (status = 200, description = "Prometheus text 0.0.4, or OpenMetrics 1.0 when the Accept header asks for it", body = String, content_type = "text/plain"),
        (status = 401, description = "The bearer token is missing or wrong", body = ErrorBody),
    ))]
pub(crate) async fn prometheus_metrics(
    State(service): State<PerformanceService>,
    headers: HeaderMap,
) -> Response {
    let format = TextFormat::negotiate(headers.get(header::ACCEPT));
    let now = service.snapshot();
    let report = service.health().await;
    let mut health: Vec<(String, HealthStatus)> = report
        .components
        .iter()
        .map(|(name, component)| (name.clone(), component.status))
        .collect();
    health.push(("overall".to_owned(), report.status));
    let text = crate::prometheus::render(
        &Exposition {
            caches: &now.caches,
            pools: &now.pools,
            kinds: &now.kinds,
            gateway: now.gateway.as_ref(),
            gateway_l2: now.gateway_l2.as_ref(),
            health: &health,
        },
        format,
    );
    ([(header::CONTENT_TYPE, format.content_type())], text).into_response()
}

/// The OpenAPI document of this API.
#[utoipa::path(get, path = "/openapi.json", tag = "meta",
    responses((status = 200, description = "OpenAPI 3.1 document", body = Object)))]
pub(crate) async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(crate::openapi::document())
}

/// Liveness: 200 while the process serves requests.
#[utoipa::path(get, path = "/livez", tag = "probes",
    responses((status = 200, description = "The process serves requests", body = ProbeBody)))]
pub(crate) async fn live() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// Readiness: 200 unless the verdict is critical; status only.
#[utoipa::path(get, path = "/readyz", tag = "probes",
    responses(
        (status = 200, description = "Healthy or degraded", body = ProbeBody),
        (status = 503, description = "Critical", body = ProbeBody),
    ))]
pub(crate) async fn ready(State(service): State<PerformanceService>) -> Response {
    let status = service.health().await.status;
    (status_code(status), Json(json!({ "status": status }))).into_response()
}

/// The body of `/livez` and `/readyz`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ProbeBody {
    /// `ok` for `/livez`; `healthy`, `degraded` or `critical` for `/readyz`.
    pub status: String,
}
