//! Composition: build the components from settings and serve them until a shutdown signal.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use resync_perf_api::{router, PerformanceService};
use serde_json::json;
use tokio::net::TcpListener;

use crate::settings::{Settings, SettingsError};

/// How long in-flight requests may take to finish after a shutdown signal.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

/// Why the server stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The settings cannot be used.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address from `BIND_ADDR`.
        addr: SocketAddr,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("serving failed: {0}")]
    Serve(#[source] std::io::Error),
}

/// The composed application: the service registry and the HTTP router over it.
#[derive(Debug, Clone)]
pub struct App {
    /// The components the performance API reports on.
    pub service: PerformanceService,
}

impl App {
    /// Builds every component from the settings.
    #[must_use]
    pub fn build(settings: &Settings) -> Self {
        Self {
            service: PerformanceService::new().with_api_token(&settings.perf_api_token),
        }
    }

    /// The HTTP router of the whole application; unknown paths get a JSON 404.
    pub fn router(&self) -> axum::Router {
        router(self.service.clone()).fallback(not_found)
    }
}

/// Binds `BIND_ADDR`, serves until `shutdown` resolves, then drains in-flight requests for
/// at most [`DRAIN_DEADLINE`].
///
/// # Errors
///
/// When the address is invalid or cannot be bound, or serving fails.
pub async fn serve(
    settings: &Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let addr = settings.bind_addr()?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let app = App::build(settings);
    let local = listener.local_addr().map_err(ServeError::Serve)?;
    tracing::info!(%local, "resync listening");

    let (drain_tx, drain_rx) = tokio::sync::oneshot::channel::<()>();
    let signalled = async move {
        shutdown.await;
        tracing::info!("shutdown requested: no new connections, draining");
        let _ = drain_tx.send(());
    };
    let server = axum::serve(listener, app.router()).with_graceful_shutdown(signalled);
    let server = tokio::spawn(async move { server.await });
    // The drain deadline starts at the signal, not at start-up.
    let _ = drain_rx.await;
    match tokio::time::timeout(DRAIN_DEADLINE, server).await {
        Ok(Ok(result)) => result.map_err(ServeError::Serve)?,
        Ok(Err(join)) => return Err(ServeError::Serve(std::io::Error::other(join))),
        Err(_) => tracing::warn!("drain deadline passed with requests still in flight"),
    }
    tracing::info!("resync stopped");
    Ok(())
}

async fn not_found() -> impl IntoResponse {
    (
        StatusCode::NOT_FOUND,
        Json(json!({ "error": { "code": "not_found", "message": "no such route" } })),
    )
}

/// A future that resolves on SIGINT or SIGTERM.
///
/// The handlers are installed when this function is called, not when the future is first
/// polled, so a signal that arrives while the server is still starting is not lost (and
/// does not kill the process without a drain). Call it inside the runtime, before binding.
///
/// # Errors
///
/// When the signal handlers cannot be installed.
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {},
            _ = terminate.recv() => {},
        }
    })
}
