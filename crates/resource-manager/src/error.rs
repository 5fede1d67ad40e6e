//! The crate's error types: [`Error`] for tracking, opening and connecting, and [`BatchError`]
//! for batches (a failed acquisition with its rollback, or every failure of `close_all`).

use std::fmt;
use std::path::PathBuf;

/// A boxed error from a resource's own close or acquisition, kept whole for `source()`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors of the resource manager.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Tracking one more resource of `kind` would exceed the kind's concurrency limit.
    #[error("limit of {limit} concurrent `{kind}` resources reached")]
    LimitReached {
        /// The kind whose limit was reached.
        kind: &'static str,
        /// The configured limit.
        limit: usize,
    },
    /// A file could not be opened or created.
    #[error("cannot open file {}", path.display())]
    OpenFile {
        /// The path given to `open` / `create`.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A TCP connection could not be established.
    #[error("cannot connect to {addr}")]
    Connect {
        /// The address given to `connect`, as text.
        addr: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A TCP listener could not be bound.
    #[error("cannot bind a tcp listener to {addr}")]
    Bind {
        /// The address given to `bind`, as text.
        addr: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

/// One resource of a batch whose close failed (during `close_all` or a rollback).
#[derive(Debug)]
pub struct CloseFailure {
    /// Zero-based position of the resource in the batch (the order of acquisition).
    pub index: usize,
    /// The step name given to `Batch::acquire`.
    pub step: String,
    /// The resource's close error.
    pub error: BoxError,
}

impl fmt::Display for CloseFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "step {} `{}`: {}", self.index, self.step, self.error)
    }
}

/// Errors of a [`Batch`](crate::Batch).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError {
    /// An acquisition failed; the resources already held were closed in reverse order.
    #[error(
        "batch acquisition failed at step {index} `{step}`{}",
        rollback_suffix(rollback_failures)
    )]
    Acquire {
        /// Zero-based position the failed resource would have taken in the batch.
        index: usize,
        /// The step name given to `Batch::acquire`.
        step: String,
        /// Why the acquisition failed.
        #[source]
        source: BoxError,
        /// Closes that failed during the rollback (empty when the rollback was clean).
        rollback_failures: Vec<CloseFailure>,
    },
    /// `close_all` closed every resource; these closes failed (in the order they were tried,
    /// which is reverse acquisition order).
    #[error("closing the batch failed for {} of {attempted} resources: {}", failures.len(), list(failures))]
    Close {
        /// How many resources `close_all` tried to close.
        attempted: usize,
        /// Every failed close, never only the first.
        failures: Vec<CloseFailure>,
    },
}

impl BatchError {
    /// Every close failure carried by this error (close failures of `close_all`, or of the
    /// rollback after a failed acquisition).
    #[must_use]
    pub fn close_failures(&self) -> &[CloseFailure] {
        match self {
            Self::Acquire {
                rollback_failures, ..
            } => rollback_failures,
            Self::Close { failures, .. } => failures,
        }
    }
}

fn list(failures: &[CloseFailure]) -> String {
    failures
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

fn rollback_suffix(failures: &[CloseFailure]) -> String {
    if failures.is_empty() {
        String::new()
    } else {
        format!(" (rollback close failures: {})", list(failures))
    }
}
