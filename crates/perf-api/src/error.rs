//! The crate's error type.

/// What can go wrong when composing the performance service.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Two components were registered under one name; the second would hide the first's
    /// verdict.
    #[error("a component named `{0}` is already registered")]
    DuplicateComponent(String),
}
