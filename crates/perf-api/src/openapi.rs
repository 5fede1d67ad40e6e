//! The OpenAPI document, generated from the handlers' annotations and the view types.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::health::{ComponentHealth, HealthReport};
use crate::history::{CacheSample, GatewaySample, HistorySample, KindSample, L2Sample, PoolSample};
use crate::routes::ProbeBody;
use crate::views::{
    CacheOutcomesView, CacheView, CacheWindowView, CachesResponse, ChangeView, ClosedView,
    CurvePointView, CurveView, ErrorBody, ErrorDetail, EvictionsView, GatewayResponse, GatewayView,
    GatewayWindowView, HealthChecksView, HistoryResponse, KindView, L2ErrorsView,
    L2InvalidationsView, L2LastErrorView, L2LeasesView, L2LookupsView, L2StoresView, L2View,
    L2WindowView, LatencySeconds, LeakView, LeaksResponse, MethodsView, PoolConfigView, PoolView,
    PoolWindowView, PoolsResponse, ReasonView, RecommendationView, RecommendationsResponse,
    ReportResponse, ResourcesResponse, SettingValueView, StatusClassesView, SystemView,
    UpstreamView,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Resync performance API",
        description = "Caches, pools, resources, the caching gateway (with its L2 cache) and health of a Resync service. Ratios are numbers in 0-1; units are in field names."
    ),
    paths(
        crate::routes::report,
        crate::routes::cache_metrics,
        crate::routes::cache_recommendations,
        crate::routes::pool_metrics,
        crate::routes::pool_recommendations,
        crate::routes::resource_stats,
        crate::routes::resource_leaks,
        crate::routes::gateway_metrics,
        crate::routes::health,
        crate::routes::history,
        crate::routes::prometheus_metrics,
        crate::routes::openapi,
        crate::routes::live,
        crate::routes::ready,
    ),
    components(schemas(
        ReportResponse, SystemView, CachesResponse, CacheView, CacheWindowView, EvictionsView,
        LatencySeconds, CurveView, CurvePointView, PoolsResponse, PoolView, PoolConfigView, PoolWindowView,
        ClosedView, HealthChecksView, RecommendationsResponse, RecommendationView, ChangeView,
        SettingValueView, ResourcesResponse, KindView, LeaksResponse, LeakView, HealthReport,
        ComponentHealth, ReasonView, HistoryResponse, HistorySample, CacheSample, PoolSample,
        KindSample, GatewaySample, GatewayResponse, GatewayView, GatewayWindowView,
        CacheOutcomesView, StatusClassesView, MethodsView, UpstreamView, L2View, L2LookupsView,
        L2StoresView, L2LeasesView, L2InvalidationsView, L2ErrorsView, L2LastErrorView,
        L2WindowView, L2Sample, ErrorBody, ErrorDetail, ProbeBody,
    )),
    modifiers(&BearerToken),
    security(("bearer" = [])),
)]
struct ApiDoc;

/// Declares the optional bearer token (`PERF_API_TOKEN`).
struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
        }
    }
}

/// The OpenAPI 3.1 document of every route of [`router`](crate::router).
#[must_use]
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
