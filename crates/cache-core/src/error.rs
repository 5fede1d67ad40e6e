//! The crate's one error type.

use std::fmt;

/// Everything that can go wrong when building or writing to a [`Cache`](crate::Cache).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The builder was given settings that cannot work; every problem is listed.
    #[error("invalid cache configuration: {}", ConfigProblems(.problems))]
    InvalidConfig {
        /// Each invalid setting, with the field it came from.
        problems: Vec<ConfigProblem>,
    },
    /// The entry weighs more than the whole memory bound, so it can never be kept.
    #[error("entry of {weight} bytes is larger than the cache's memory bound of {max_memory_bytes} bytes")]
    EntryTooLarge {
        /// The entry's weight in bytes (estimated size plus per-entry overhead).
        weight: u64,
        /// The cache's memory bound in bytes.
        max_memory_bytes: u64,
    },
    /// A `cleanup_interval` was set but `build()` ran outside a Tokio runtime.
    #[error("cleanup_interval needs a tokio runtime; build the cache inside one")]
    NoRuntime,
}

/// One invalid builder setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The builder field, e.g. `max_entries`.
    pub field: &'static str,
    /// Why its value was refused.
    pub reason: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

struct ConfigProblems<'a>(&'a [ConfigProblem]);

impl fmt::Display for ConfigProblems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, problem) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}
