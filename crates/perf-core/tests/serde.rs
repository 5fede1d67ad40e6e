//! Serde shapes and round trips of the snapshot types (the self dev-dependency in Cargo.toml
//! enables `serde` for every test build).
#![cfg(feature = "serde")]

use std::collections::BTreeMap;

use resync_perf_core::{
    HealthStatus, Histogram, HistogramSnapshot, HistogramSummary, Recommendation, SettingChange,
    SettingValue, Severity,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

/// Serializes `value`, checks the JSON shape, deserializes it back and returns it.
fn round_trip<T: Serialize + DeserializeOwned>(value: &T, expected: &Value) -> T {
    let encoded = serde_json::to_value(value).expect("serializes");
    assert_eq!(&encoded, expected);
    serde_json::from_value(encoded).expect("deserializes")
}

#[test]
fn health_and_severity_are_lowercase_strings() {
    for status in HealthStatus::ALL {
        assert_eq!(round_trip(&status, &json!(status.as_str())), status);
    }
    for severity in Severity::ALL {
        assert_eq!(round_trip(&severity, &json!(severity.as_str())), severity);
    }
    assert!(serde_json::from_value::<HealthStatus>(json!("Healthy")).is_err());
}

#[test]
fn setting_values_are_untagged() {
    let cases = [
        (SettingValue::Integer(-3), json!(-3)),
        (SettingValue::Float(0.75), json!(0.75)),
        (SettingValue::Text("lru".to_owned()), json!("lru")),
    ];
    for (value, expected) in cases {
        assert_eq!(round_trip(&value, &expected), value);
    }
}

#[test]
fn recommendation_has_flat_fields_and_round_trips() {
    let advice = Recommendation::new(
        "cache:responses",
        "cache.grow_memory",
        Severity::Warning,
        "evictions",
    )
    .with_evidence("hit_ratio", 0.5)
    .with_change(SettingChange::new(
        "ASYNC_CACHE_MAX_MEMORY_MB",
        64_u32,
        128_u32,
    ));
    let expected = json!({
        "component": "cache:responses",
        "code": "cache.grow_memory",
        "severity": "warning",
        "message": "evictions",
        "evidence": {"hit_ratio": 0.5},
        "change": {"key": "ASYNC_CACHE_MAX_MEMORY_MB", "current": 64, "suggested": 128},
    });
    assert_eq!(round_trip(&advice, &expected), advice);

    let bare = Recommendation::insufficient_data("pool:db", "pool", "3 checkouts");
    let decoded: Recommendation = serde_json::from_value(json!({
        "component": "pool:db",
        "code": "pool.insufficient_data",
        "severity": "info",
        "message": "3 checkouts",
    }))
    .expect("evidence and change are optional on input");
    assert_eq!(decoded, bare);
    assert_eq!(decoded.evidence, BTreeMap::new());
}

fn recorded() -> HistogramSnapshot {
    let histogram = Histogram::new();
    for value in [1, 1, 1_201] {
        histogram.record(value);
    }
    histogram.snapshot()
}

#[test]
fn summary_round_trips() {
    let summary = recorded().summary();
    let expected = json!({
        "count": 3, "sum": 1_203, "mean": 401.0, "min": 1,
        "p50": 1, "p95": 1_199, "p99": 1_199, "max": 1_215,
    });
    assert_eq!(round_trip::<HistogramSummary>(&summary, &expected), summary);
}

#[test]
fn snapshot_serializes_as_summary_plus_buckets_and_round_trips() {
    let snapshot = recorded();
    let expected = json!({
        "count": 3, "sum": 1_203, "mean": 401.0, "min": 1,
        "p50": 1, "p95": 1_199, "p99": 1_199, "max": 1_215,
        "buckets": [[1, 2], [1_215, 1]],
    });
    assert_eq!(round_trip(&snapshot, &expected), snapshot);
    assert_eq!(
        round_trip(
            &HistogramSnapshot::default(),
            &json!({
                "count": 0, "sum": 0, "mean": 0.0, "min": 0,
                "p50": 0, "p95": 0, "p99": 0, "max": 0, "buckets": [],
            })
        ),
        HistogramSnapshot::default()
    );
}
