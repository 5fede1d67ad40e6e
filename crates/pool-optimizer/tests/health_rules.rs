//! The pool health rules on synthetic windows built from `PoolMetrics` values: each rule
//! gives its code, status, measured figure and threshold, and a quiet window gives nothing.

use std::time::Duration;

use resync_perf_core::{HealthReason, HealthStatus, Histogram, HistogramSnapshot};
use resync_pool_optimizer::{
    evaluate_health, FnManager, HealthCheckRecord, HealthThresholds, MonitoredPool, PoolConfig,
    PoolHealth, PoolMetrics,
};
use resync_resource_manager::ResourceTracker;

const MS: u64 = 1_000_000;

fn histogram(values: &[(u64, u64)]) -> HistogramSnapshot {
    let histogram = Histogram::new();
    for &(value, times) in values {
        histogram.record_n(value, times);
    }
    histogram.snapshot()
}

/// A quiet window: 1 000 direct checkouts over 10 s, each held 5 ms, on 10 connections
/// (utilization 0.05), no error, no wait.
async fn quiet() -> PoolMetrics {
    let config = PoolConfig {
        min_size: 0,
        max_size: 10,
        ..PoolConfig::database()
    };
    let manager = FnManager::new(|| async { Ok::<_, std::io::Error>(()) });
    let base = MonitoredPool::new("judged", config, manager, &ResourceTracker::new())
        .expect("valid")
        .metrics();
    PoolMetrics {
        elapsed_secs: 10.0,
        acquires: 1_000,
        acquires_direct: 1_000,
        acquire_latency: histogram(&[(0, 1_000)]),
        hold_time: histogram(&[(5 * MS, 1_000)]),
        hold_secs_total: 5.0,
        ..base
    }
}

fn judge(window: &PoolMetrics) -> PoolHealth {
    evaluate_health(
        window,
        &HealthCheckRecord::default(),
        &HealthThresholds::default(),
    )
}

/// The only reason of `health`, which must have exactly one.
fn only(health: &PoolHealth) -> &HealthReason {
    assert_eq!(health.reasons.len(), 1, "{health:#?}");
    &health.reasons[0]
}

fn assert_close(actual: f64, expected: f64) {
    assert!((actual - expected).abs() < 1e-9, "{actual} vs {expected}");
}

#[tokio::test]
async fn a_quiet_pool_is_healthy_without_reasons() {
    let health = judge(&quiet().await);
    assert_eq!(health.name, "judged");
    assert_eq!(health.status, HealthStatus::Healthy);
    assert!(health.reasons.is_empty(), "{health:#?}");
}

#[tokio::test]
async fn utilization_above_the_maximum_is_critical() {
    // 10 connections held 9.5 s each of a 10 s window.
    let window = PoolMetrics {
        hold_secs_total: 95.0,
        ..quiet().await
    };
    let health = judge(&window);
    assert_eq!(health.status, HealthStatus::Critical);
    let reason = only(&health);
    assert_eq!(
        (reason.code.as_str(), reason.status),
        ("pool.utilization", HealthStatus::Critical)
    );
    assert_close(reason.measured, 0.95);
    assert_close(reason.threshold, 0.9);
    assert_eq!(reason.message, "utilization 0.95 is above 0.90");
}

#[tokio::test]
async fn any_exhaustion_is_critical() {
    let window = PoolMetrics {
        exhaustions: 3,
        ..quiet().await
    };
    let health = judge(&window);
    assert_eq!(health.status, HealthStatus::Critical);
    let reason = only(&health);
    assert_eq!(
        (
            reason.code.as_str(),
            reason.status,
            reason.measured,
            reason.threshold
        ),
        ("pool.exhausted", HealthStatus::Critical, 3.0, 0.0)
    );
    assert!(
        reason.message.starts_with("3 get(s) timed out"),
        "{}",
        reason.message
    );
}

#[tokio::test]
async fn a_failing_health_check_is_critical_and_quotes_the_error() {
    let check = HealthCheckRecord {
        checks: 5,
        failures: 2,
        consecutive_failures: 2,
        last_ok: Some(false),
        last_error: Some("connection refused".to_owned()),
        ..HealthCheckRecord::default()
    };
    let health = evaluate_health(&quiet().await, &check, &HealthThresholds::default());
    assert_eq!(health.status, HealthStatus::Critical);
    let reason = only(&health);
    assert_eq!(
        (
            reason.code.as_str(),
            reason.status,
            reason.measured,
            reason.threshold
        ),
        (
            "pool.health_check_failing",
            HealthStatus::Critical,
            2.0,
            0.0
        )
    );
    assert!(reason.message.contains("2 in a row"), "{}", reason.message);
    assert!(
        reason.message.ends_with(": connection refused"),
        "{}",
        reason.message
    );

    // A check that failed before but passed last is not failing.
    let recovered = HealthCheckRecord {
        last_ok: Some(true),
        consecutive_failures: 0,
        ..check
    };
    let health = evaluate_health(&quiet().await, &recovered, &HealthThresholds::default());
    assert_eq!(health.status, HealthStatus::Healthy, "{health:#?}");
}

#[tokio::test]
async fn leaked_connections_are_critical() {
    let window = PoolMetrics {
        leaked: 2,
        ..quiet().await
    };
    let health = judge(&window);
    assert_eq!(health.status, HealthStatus::Critical);
    let reason = only(&health);
    assert_eq!(
        (
            reason.code.as_str(),
            reason.status,
            reason.measured,
            reason.threshold
        ),
        ("pool.leaked", HealthStatus::Critical, 2.0, 0.0)
    );
    assert!(reason
        .message
        .starts_with("2 connection(s) held past the leak threshold"));
}

#[tokio::test]
async fn a_slow_p95_acquire_wait_is_degraded() {
    // Every checkout waited 250 ms.
    let window = PoolMetrics {
        acquires_direct: 0,
        acquires_waited: 1_000,
        acquire_latency: histogram(&[(250 * MS, 1_000)]),
        ..quiet().await
    };
    let health = judge(&window);
    assert_eq!(health.status, HealthStatus::Degraded);
    let reason = only(&health);
    assert_eq!(
        (reason.code.as_str(), reason.status, reason.threshold),
        ("pool.acquire_wait", HealthStatus::Degraded, 100.0)
    );
    // The histogram keeps values within 5 %.
    assert!(
        (reason.measured - 250.0).abs() <= 12.5,
        "{}",
        reason.measured
    );
    assert!(
        reason.message.starts_with("p95 acquire wait "),
        "{}",
        reason.message
    );
    assert!(
        reason.message.ends_with(" ms is above 100 ms"),
        "{}",
        reason.message
    );

    let custom = HealthThresholds {
        max_acquire_wait: Duration::from_millis(500),
        ..HealthThresholds::default()
    };
    let health = evaluate_health(&window, &HealthCheckRecord::default(), &custom);
    assert_eq!(health.status, HealthStatus::Healthy, "{health:#?}");
}

#[tokio::test]
async fn an_error_rate_above_the_maximum_is_degraded() {
    let window = PoolMetrics {
        connect_failures: 60,
        connect_attempts: 70,
        caller_errors: 40,
        ..quiet().await
    };
    let health = judge(&window);
    assert_eq!(health.status, HealthStatus::Degraded);
    let reason = only(&health);
    assert_eq!(
        (reason.code.as_str(), reason.status),
        ("pool.error_rate", HealthStatus::Degraded)
    );
    assert_close(reason.measured, 0.1);
    assert_close(reason.threshold, 0.05);
    assert_eq!(reason.message, "error rate 0.100 is above 0.050");
}

#[tokio::test]
async fn several_rules_give_the_worst_status_and_every_reason_in_rule_order() {
    let window = PoolMetrics {
        exhaustions: 1,
        leaked: 1,
        caller_errors: 100,
        ..quiet().await
    };
    let health = judge(&window);
    assert_eq!(health.status, HealthStatus::Critical);
    let codes: Vec<&str> = health.reasons.iter().map(|r| r.code.as_str()).collect();
    assert_eq!(codes, ["pool.exhausted", "pool.leaked", "pool.error_rate"]);
}
