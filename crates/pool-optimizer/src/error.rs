//! The crate's one error type.

use std::sync::Arc;
use std::time::Duration;

use crate::config::ConfigProblem;

/// A backend error shared between the pool's bookkeeping and every caller that sees it.
///
/// Connect errors are kept as the pool's "last connect error" and handed to each `get()`
/// that fails because of them, so they are reference-counted rather than boxed.
pub type SharedError = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in this crate.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The pool configuration is invalid; every problem is listed, each naming its key.
    #[error("invalid pool configuration: {}", join_problems(.0))]
    InvalidConfig(Vec<ConfigProblem>),
    /// Every connection stayed in use until the acquire timeout ran out.
    #[error("pool {pool} exhausted: no connection became free within {waited:?}")]
    Exhausted {
        /// The pool's name.
        pool: Arc<str>,
        /// How long the caller waited.
        waited: Duration,
    },
    /// No connection could be made to the backend: a connect failed while nothing was
    /// checked out, or the wait ended with free slots (the connect failed or still hangs:
    /// `source` is then the last connect error or [`Error::ConnectTimeout`]).
    #[error("pool {pool} unavailable: {source}")]
    Unavailable {
        /// The pool's name.
        pool: Arc<str>,
        /// The last connect error (or [`Error::ConnectTimeout`] for a hanging connect).
        source: SharedError,
    },
    /// A connect attempt did not finish within the pool's connect timeout.
    #[error("connect timed out after {0:?}")]
    ConnectTimeout(Duration),
    /// An HTTP exchange got no response within the manager's response timeout
    /// ([`HttpManager::with_response_timeout`](crate::HttpManager::with_response_timeout)):
    /// the connection was made and the request sent, unlike [`Error::ConnectTimeout`] and
    /// [`Error::Unavailable`].
    #[error("no response within {0:?}")]
    ResponseTimeout(Duration),
    /// A connection was found broken (closed by the peer, or reported by a caller).
    #[error("connection is broken")]
    Broken,
    /// A connection outlived the pool's `max_lifetime`: it is closed, never handed out.
    #[error("connection outlived the pool's max lifetime")]
    Expired,
    /// A request or probe on a connection failed.
    #[error("backend error: {0}")]
    Backend(SharedError),
    /// A health check did not finish within its timeout.
    #[error("health check of pool {pool} timed out after {timeout:?}")]
    HealthCheckTimeout {
        /// The pool's name.
        pool: Arc<str>,
        /// The check's timeout.
        timeout: Duration,
    },
    /// A URL or address could not be used.
    #[error("invalid url {url:?}: {reason}")]
    InvalidUrl {
        /// The offending URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// TLS could not be set up (bad CA file, no usable roots, bad server name).
    #[error("tls setup failed: {0}")]
    Tls(String),
    /// A pool with this name is already registered with the manager.
    #[error("a pool named {0} is already registered")]
    DuplicatePool(String),
}

impl Error {
    /// Wraps any backend error.
    pub fn backend<E: std::error::Error + Send + Sync + 'static>(error: E) -> Self {
        Self::Backend(Arc::new(error))
    }

    /// Whether a request failed on a stale connection, so that it provably was not processed
    /// by the upstream and may be sent again on a fresh connection
    /// ([`MonitoredPool::get_fresh_owned`](crate::MonitoredPool::get_fresh_owned)).
    ///
    /// True only for [`HttpConnection`](crate::HttpConnection) exchanges that failed before
    /// the request could reach the upstream's application: the connection was closed before
    /// the request was handed over, hyper gave the request back unsent or canceled it, or a
    /// kept-alive connection (one that had carried a response before) was closed or reset by
    /// the peer (end of stream, `EPIPE`, `ECONNRESET`) before any byte of the response — the
    /// race of an upstream closing an idle keep-alive connection as the request goes out.
    /// False for everything else, timeouts included: a request that timed out may have been
    /// processed, and so may one a new connection's peer closed without answering.
    ///
    /// HTTP/1 cannot tell that race from an upstream that read the request on a kept-alive
    /// connection and then closed it without answering, so only idempotent requests (`GET`,
    /// `HEAD`) should be sent again, once; that rule is the caller's.
    #[must_use]
    pub fn is_stale_connection(&self) -> bool {
        matches!(self, Self::Backend(error) if error.is::<StaleConnection>())
    }
}

/// The source of an [`Error::Backend`] for which [`Error::is_stale_connection`] is true.
#[derive(Debug, thiserror::Error)]
#[error("stale connection, the request was not processed: {source}")]
pub(crate) struct StaleConnection {
    source: Box<dyn std::error::Error + Send + Sync + 'static>,
}

impl StaleConnection {
    pub(crate) fn new(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self {
            source: Box::new(source),
        }
    }
}

fn join_problems(problems: &[ConfigProblem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
