//! Shared fixtures of the integration tests. The loopback HTTP upstream and the test CA
//! live in `test-support` (`TestUpstream`, `TestCa`).

#![allow(dead_code, unreachable_pub)] // reason: each test binary uses a different part.

pub mod counter;
pub mod wait;

/// The path test-support's `TestUpstream` says it answered, from the JSON object its default
/// reply sends as the body.
pub fn answered_path(body: impl AsRef<[u8]>) -> String {
    let json: serde_json::Value = serde_json::from_slice(body.as_ref()).expect("a JSON body");
    json["path"].as_str().expect("a path").to_owned()
}
