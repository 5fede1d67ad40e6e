//! The HTTP routes.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use resync_perf_core::HealthStatus;
use serde_json::json;

use crate::service::PerformanceService;

/// The performance API as an [`axum::Router`] to serve or merge into an application.
///
/// * `GET /api/performance/health` — `{status, components:{name:{status, reasons[]}}}`;
///   200 unless the verdict is critical, then 503.
/// * `GET /livez` — 200 while the process serves requests.
/// * `GET /readyz` — 200 unless the verdict is critical, then 503; status only.
pub fn router(service: PerformanceService) -> Router {
    Router::new()
        .route("/api/performance/health", get(health))
        .route("/livez", get(|| async { Json(json!({ "status": "ok" })) }))
        .route("/readyz", get(ready))
        .fallback(not_found)
        .with_state(service)
}

fn status_code(status: HealthStatus) -> StatusCode {
    match status {
        HealthStatus::Critical => StatusCode::SERVICE_UNAVAILABLE,
        HealthStatus::Healthy | HealthStatus::Degraded => StatusCode::OK,
    }
}

async fn health(State(service): State<PerformanceService>) -> impl IntoResponse {
    let report = service.health();
    (status_code(report.status), Json(report))
}

async fn ready(State(service): State<PerformanceService>) -> impl IntoResponse {
    let status = service.health().status;
    (status_code(status), Json(json!({ "status": status })))
}

async fn not_found() -> impl IntoResponse {
    (
        StatusCode::NOT_FOUND,
        Json(json!({ "error": { "code": "not_found", "message": "no such route" } })),
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;
    use crate::{ComponentHealth, HealthSource};

    #[derive(Debug)]
    struct Fixed(&'static str, HealthStatus);

    impl HealthSource for Fixed {
        fn name(&self) -> String {
            self.0.to_owned()
        }
        fn health(&self) -> ComponentHealth {
            ComponentHealth::new(self.1).with_reason(format!("{} says so", self.0))
        }
    }

    async fn get_json(app: Router, path: &str) -> (StatusCode, serde_json::Value) {
        let response = app
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn health_is_the_worst_component_and_critical_is_503() {
        let service = PerformanceService::new();
        let (status, body) = get_json(router(service.clone()), "/api/performance/health").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["status"], "healthy");

        service.register(Arc::new(Fixed("cache:a", HealthStatus::Degraded)));
        let (status, body) = get_json(router(service.clone()), "/api/performance/health").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["status"], "degraded");
        assert_eq!(
            body["components"]["cache:a"]["reasons"][0],
            "cache:a says so"
        );

        service.register(Arc::new(Fixed("pool:db", HealthStatus::Critical)));
        let (status, body) = get_json(router(service.clone()), "/api/performance/health").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["status"], "critical");
        let (status, body) = get_json(router(service), "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body, serde_json::json!({ "status": "critical" }));
    }

    #[tokio::test]
    async fn unknown_paths_get_a_json_404() {
        let (status, body) = get_json(router(PerformanceService::new()), "/nope").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["error"]["code"], "not_found");
    }
}
