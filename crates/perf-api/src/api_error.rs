//! Every error the API answers, as `{"error":{"code","message"}}` with its status.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::views::{ErrorBody, ErrorDetail};

/// An error response: a status, a stable code and a message for people. 5xx messages never
/// carry internal error text (it goes to the log instead).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// Stable machine id.
    pub code: &'static str,
    /// A sentence for people.
    pub message: String,
}

impl ApiError {
    /// 400: `parameter` was wrong; `expected` says what is accepted.
    #[must_use]
    pub fn bad_parameter(parameter: &str, value: &str, expected: &str) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "bad_request",
            message: format!("query parameter `{parameter}` = {value:?}: expected {expected}"),
        }
    }

    /// 401: a valid bearer token is required.
    #[must_use]
    pub fn unauthorized() -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            code: "unauthorized",
            message: "a valid bearer token is required".to_owned(),
        }
    }

    /// 404: no such route.
    #[must_use]
    pub fn not_found() -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message: "no such route".to_owned(),
        }
    }

    /// 405: the route exists but not for this method.
    #[must_use]
    pub fn method_not_allowed() -> Self {
        Self {
            status: StatusCode::METHOD_NOT_ALLOWED,
            code: "method_not_allowed",
            message: "this route does not accept that method".to_owned(),
        }
    }

    /// 500: something failed inside; `what` is logged, never sent.
    #[must_use]
    pub fn internal(what: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %what, "internal error answering a request");
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal",
            message: "internal error; see the server log".to_owned(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
            },
        });
        if self.status == StatusCode::UNAUTHORIZED {
            return (self.status, [(header::WWW_AUTHENTICATE, "Bearer")], body).into_response();
        }
        (self.status, body).into_response()
    }
}

/// The JSON 404 for an application's fallback.
pub async fn not_found() -> ApiError {
    ApiError::not_found()
}

/// The JSON 405 for routes called with another method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}
