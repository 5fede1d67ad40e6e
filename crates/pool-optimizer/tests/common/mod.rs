//! Shared fixtures of the integration tests. The loopback HTTP upstream and the test CA
//! live in `test-support` (`TestUpstream`, `TestCa`).

#![allow(dead_code, unreachable_pub)] // reason: each test binary uses a different part.

pub mod wait;
