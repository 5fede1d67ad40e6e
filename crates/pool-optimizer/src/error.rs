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
}

fn join_problems(problems: &[ConfigProblem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
