//! Durations as seconds (`f64`) in the serialized snapshots (`ResourceStats`, `LeakReport`).

use std::time::Duration;

/// Serializes `duration` as seconds.
pub(crate) fn serialize_secs<S: serde::Serializer>(
    duration: &Duration,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(duration.as_secs_f64())
}

/// Serializes `duration` as seconds, `None` as null.
pub(crate) fn serialize_opt_secs<S: serde::Serializer>(
    duration: &Option<Duration>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match duration {
        Some(duration) => serializer.serialize_some(&duration.as_secs_f64()),
        None => serializer.serialize_none(),
    }
}
