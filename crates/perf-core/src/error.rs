//! The crate's one error type.

/// Errors of `resync-perf-core`: only parsing can fail, since the crate does no I/O.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A health status name other than `healthy`, `degraded` or `critical`.
    #[error("unknown health status {0:?}, expected healthy, degraded or critical")]
    UnknownHealthStatus(String),
    /// A severity name other than `info`, `warning` or `critical`.
    #[error("unknown severity {0:?}, expected info, warning or critical")]
    UnknownSeverity(String),
}
