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
///
/// With a token set ([`PerformanceService::with_api_token`]), `/api/performance/*` answers
/// 401 without `Authorization: Bearer <token>`. The router sets no fallback (axum refuses
/// to merge two routers that both have one): the application adds its own.
pub fn router(service: PerformanceService) -> Router {
    Router::new()
        .route("/api/performance/health", get(health))
        .route("/livez", get(|| async { Json(json!({ "status": "ok" })) }))
        .route("/readyz", get(ready))
        .route_layer(axum::middleware::from_fn_with_state(
            service.clone(),
            crate::auth::require_token,
        ))
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
        get_json_with(app, Request::get(path)).await
    }

    async fn get_json_with(
        app: Router,
        request: axum::http::request::Builder,
    ) -> (StatusCode, serde_json::Value) {
        let response = app
            .oneshot(request.body(Body::empty()).unwrap())
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

        service
            .register(Arc::new(Fixed("cache:a", HealthStatus::Degraded)))
            .unwrap();
        let (status, body) = get_json(router(service.clone()), "/api/performance/health").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["status"], "degraded");
        assert_eq!(
            body["components"]["cache:a"]["reasons"][0],
            "cache:a says so"
        );

        service
            .register(Arc::new(Fixed("pool:db", HealthStatus::Critical)))
            .unwrap();
        let (status, body) = get_json(router(service.clone()), "/api/performance/health").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["status"], "critical");
        let (status, body) = get_json(router(service), "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body, serde_json::json!({ "status": "critical" }));
    }

    #[test]
    fn a_second_component_of_one_name_is_refused() {
        let service = PerformanceService::new();
        service
            .register(Arc::new(Fixed("pool:db", HealthStatus::Critical)))
            .unwrap();
        let error = service
            .register(Arc::new(Fixed("pool:db", HealthStatus::Healthy)))
            .unwrap_err();
        assert_eq!(error, crate::Error::DuplicateComponent("pool:db".into()));
        assert_eq!(service.health().status, HealthStatus::Critical);
    }

    #[tokio::test]
    async fn the_token_guards_the_api_but_not_the_probes() {
        let service = PerformanceService::new().with_api_token("s3cret");
        let app = router(service);
        let (status, body) = get_json(app.clone(), "/api/performance/health").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["error"]["code"], "unauthorized");
        let wrong = Request::get("/api/performance/health").header("authorization", "Bearer nope");
        assert_eq!(
            get_json_with(app.clone(), wrong).await.0,
            StatusCode::UNAUTHORIZED
        );
        let right =
            Request::get("/api/performance/health").header("authorization", "Bearer s3cret");
        let (status, body) = get_json_with(app.clone(), right).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["status"], "healthy");
        assert_eq!(get_json(app, "/livez").await.0, StatusCode::OK);
    }
}
