//! Serving: bind, serve until a shutdown signal, drain with a deadline, close the pools.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::app::{App, BuildError};
use crate::settings::{Settings, SettingsError};

/// How long in-flight requests may take to finish after a shutdown signal.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

/// Why the server stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The settings cannot be used.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// A component cannot be built from the settings.
    #[error(transparent)]
    Build(#[from] BuildError),
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

/// Binds `BIND_ADDR`, builds the application, serves until `shutdown` resolves, then stops
/// accepting, drains in-flight requests for at most [`DRAIN_DEADLINE`], closes the pools and
/// logs outstanding leaks.
///
/// # Errors
///
/// When the address is invalid or cannot be bound, a component cannot be built, or serving
/// fails.
pub async fn serve(
    settings: &Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let addr = settings.bind_addr()?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let app = App::build(settings)?;
    serve_app(listener, app, shutdown).await
}

/// Serves `app` on a bound `listener` until `shutdown` resolves, then stops accepting,
/// drains in-flight requests for at most [`DRAIN_DEADLINE`], closes the pools and logs
/// outstanding leaks ([`serve`] after binding and building; `resync demo` binds and builds
/// itself, to keep handles on the components it reports from).
///
/// # Errors
///
/// When serving fails.
pub async fn serve_app(
    listener: TcpListener,
    app: App,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let local = listener.local_addr().map_err(ServeError::Serve)?;
    tracing::info!(%local, "resync listening");

    let (drain_tx, drain_rx) = tokio::sync::oneshot::channel::<()>();
    let signalled = async move {
        shutdown.await;
        tracing::info!("shutdown requested: no new connections, draining");
        let _ = drain_tx.send(());
    };
    // The peer address feeds the gateway's `X-Forwarded-For`.
    let service = app
        .router()
        .into_make_service_with_connect_info::<SocketAddr>();
    let server = axum::serve(listener, service).with_graceful_shutdown(signalled);
    let mut server = tokio::spawn(async move { server.await });
    let joined = |finished: Result<std::io::Result<()>, tokio::task::JoinError>| match finished {
        Ok(result) => result.map_err(ServeError::Serve),
        Err(join) => Err(ServeError::Serve(std::io::Error::other(join))),
    };
    let outcome = tokio::select! {
        // The signal is sent before the server starts draining: when both are ready, it was
        // a shutdown, and the drain deadline starts at the signal, not at start-up.
        biased;
        _ = drain_rx => match tokio::time::timeout(DRAIN_DEADLINE, &mut server).await {
            Ok(finished) => joined(finished),
            Err(_) => {
                tracing::warn!("drain deadline passed with requests still in flight");
                server.abort();
                Ok(())
            }
        },
        // Serving ended without a signal: only an error does that.
        finished = &mut server => joined(finished),
    };
    app.shutdown();
    tracing::info!("resync stopped");
    outcome
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
