//! The optional bearer token on `/api/performance/*` and `/metrics`.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use crate::api_error::ApiError;
use crate::service::PerformanceService;

/// Paths the token guards; `/livez` and `/readyz` stay open for load balancers.
fn is_guarded(path: &str) -> bool {
    path == "/metrics" || path == "/api/performance" || path.starts_with("/api/performance/")
}

/// Rejects guarded requests without the right `Authorization: Bearer` token with a JSON 401.
pub(crate) async fn require_token(
    State(service): State<PerformanceService>,
    request: Request,
    next: Next,
) -> Response {
    let Some(expected) = service.api_token() else {
        return next.run(request).await;
    };
    if !is_guarded(request.uri().path()) {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or("");
    if constant_time_eq(presented.as_bytes(), expected.as_bytes()) {
        return next.run(request).await;
    }
    ApiError::unauthorized().into_response()
}

/// Compares in constant time (`subtle`), so the time taken does not reveal how many leading
/// bytes matched; only a length mismatch returns early (the length is not secret).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparison_and_guarded_paths() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(is_guarded("/api/performance/health"));
        assert!(is_guarded("/metrics"));
        assert!(!is_guarded("/livez"));
        assert!(!is_guarded("/api/performances"));
    }
}
