//! JSON shapes of `ResourceStats` and `LeakReport` with the `serde` feature (the self
//! dev-dependency in Cargo.toml enables it for every test build): durations are seconds as
//! `f64` under `*_secs` names.
#![cfg(feature = "serde")]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use resync_resource_manager::{KindConfig, LeakReport, LeakThreshold, ResourceTracker};
use serde_json::{json, Value};

const DEADLINE: Duration = Duration::from_secs(20);

fn keys(value: &Value) -> BTreeSet<&str> {
    value
        .as_object()
        .expect("serializes as a JSON object")
        .keys()
        .map(String::as_str)
        .collect()
}

/// Polls `leaks()` until one is reported, failing after a generous deadline.
fn wait_for_leak(tracker: &ResourceTracker) -> LeakReport {
    let start = Instant::now();
    loop {
        if let Some(leak) = tracker.leaks().into_iter().next() {
            return leak;
        }
        assert!(start.elapsed() < DEADLINE, "no leak reported");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn resource_stats_serialize_durations_as_secs() {
    let tracker = ResourceTracker::new();
    tracker.configure_kind(
        "upload",
        KindConfig {
            limit: Some(4),
            ..KindConfig::default()
        },
    );
    let kept = tracker.track("upload", "kept");
    drop(tracker.track("upload", "released"));
    let stats = tracker.stats_for("upload").expect("kind is known");
    assert_eq!((stats.active, stats.released), (1, 1));

    let encoded = serde_json::to_value(&stats).expect("serializes");
    let expected_keys: BTreeSet<&str> = [
        "kind",
        "active",
        "peak",
        "created",
        "released",
        "released_without_close",
        "leaked_now",
        "leaked_total",
        "leaked_released",
        "mean_lifetime_secs",
        "max_lifetime_secs",
        "leak_threshold_secs",
        "limit",
        "utilization",
    ]
    .into();
    assert_eq!(keys(&encoded), expected_keys);
    assert_eq!(
        encoded,
        json!({
            "kind": stats.kind,
            "active": stats.active,
            "peak": stats.peak,
            "created": stats.created,
            "released": stats.released,
            "released_without_close": stats.released_without_close,
            "leaked_now": stats.leaked_now,
            "leaked_total": stats.leaked_total,
            "leaked_released": stats.leaked_released,
            "mean_lifetime_secs": stats.mean_lifetime.as_secs_f64(),
            "max_lifetime_secs": stats.max_lifetime.as_secs_f64(),
            "leak_threshold_secs": 300.0,
            "limit": stats.limit,
            "utilization": stats.utilization,
        })
    );
    assert!(encoded["mean_lifetime_secs"].is_f64());
    let never = ResourceTracker::new();
    never.configure_kind(
        "listener",
        KindConfig {
            leak_threshold: LeakThreshold::Never,
            ..KindConfig::default()
        },
    );
    let never = never.stats_for("listener").expect("configured");
    let never = serde_json::to_value(&never).expect("serializes");
    assert!(never["leak_threshold_secs"].is_null(), "{never}");
    assert!(
        encoded["utilization"].is_f64(),
        "a limited kind has a utilization"
    );
    drop(kept);
}

#[test]
fn leak_report_serializes_age_as_secs() {
    let tracker = ResourceTracker::new();
    tracker.configure_kind(
        "export_job",
        KindConfig {
            leak_threshold: LeakThreshold::After(Duration::from_millis(1)),
            capture_backtrace: true,
            ..KindConfig::default()
        },
    );
    let job = tracker.track("export_job", "nightly export");
    let leak = wait_for_leak(&tracker);
    assert_eq!(leak.id, job.id());

    let encoded = serde_json::to_value(&leak).expect("serializes");
    let expected_keys: BTreeSet<&str> = [
        "id",
        "kind",
        "label",
        "age_secs",
        "acquired_at",
        "thread",
        "backtrace",
    ]
    .into();
    assert_eq!(keys(&encoded), expected_keys);
    assert_eq!(
        encoded,
        json!({
            "id": leak.id,
            "kind": leak.kind,
            "label": leak.label,
            "age_secs": leak.age.as_secs_f64(),
            "acquired_at": leak.acquired_at,
            "thread": leak.thread,
            "backtrace": leak.backtrace,
        })
    );
    assert!(encoded["age_secs"].as_f64().is_some_and(|secs| secs > 0.0));
    assert!(
        encoded["backtrace"].is_string(),
        "the kind captures backtraces"
    );
    drop(job);
}
