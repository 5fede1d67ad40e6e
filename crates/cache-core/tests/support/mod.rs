//! Shared helpers for the integration tests.

pub(crate) mod zipf;
