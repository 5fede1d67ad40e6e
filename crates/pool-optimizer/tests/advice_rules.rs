//! The advisor's rules on synthetic windows built from `PoolMetrics` values: each rule fires
//! on its evidence, carries it, and changes the real settings key — and stays quiet without.

use std::time::Duration;

use resync_perf_core::{Histogram, HistogramSnapshot, Recommendation, SettingValue};
use resync_pool_optimizer::{
    advise, FnManager, HealthThresholds, MonitoredPool, PoolConfig, PoolMetrics,
};
use resync_resource_manager::ResourceTracker;

const MS: u64 = 1_000_000;
const SECS: u64 = 1_000_000_000;

fn histogram(values: &[(u64, u64)]) -> HistogramSnapshot {
    let histogram = Histogram::new();
    for &(value, times) in values {
        histogram.record_n(value, times);
    }
    histogram.snapshot()
}

/// An idle pool's snapshot as the template of synthetic windows.
async fn template(config: &PoolConfig) -> PoolMetrics {
    let manager = FnManager::new(|| async { Ok::<_, std::io::Error>(()) });
    MonitoredPool::new(
        "synthetic",
        config.clone(),
        manager,
        &ResourceTracker::new(),
    )
    .expect("valid")
    .metrics()
}

/// A window of `acquires` checkouts over `secs`, each held `hold_ns`, none waiting.
fn loaded(base: &PoolMetrics, acquires: u64, secs: f64, hold_ns: u64) -> PoolMetrics {
    PoolMetrics {
        elapsed_secs: secs,
        acquires,
        acquires_direct: acquires,
        acquire_latency: histogram(&[(0, acquires)]),
        hold_time: histogram(&[(hold_ns, acquires)]),
        hold_secs_total: (acquires * hold_ns) as f64 / 1e9,
        peak_in_use: 1,
        ..base.clone()
    }
}

fn config(min_size: u32, max_size: u32) -> PoolConfig {
    PoolConfig {
        min_size,
        max_size,
        ..PoolConfig::database()
    }
}

fn advice(window: &PoolMetrics, config: &PoolConfig) -> Vec<Recommendation> {
    advise(window, config, None, &HealthThresholds::default())
}

fn find<'a>(advice: &'a [Recommendation], code: &str) -> &'a Recommendation {
    advice
        .iter()
        .find(|rec| rec.code == code)
        .unwrap_or_else(|| panic!("no {code} in {advice:#?}"))
}

fn has(advice: &[Recommendation], code: &str) -> bool {
    advice.iter().any(|rec| rec.code == code)
}

fn change(rec: &Recommendation) -> (&str, &SettingValue, &SettingValue) {
    let change = rec.change.as_ref().expect("a setting change");
    (&change.key, &change.current, &change.suggested)
}

#[tokio::test]
async fn an_offered_load_above_max_size_suggests_growing() {
    let config = config(0, 10);
    // λ = 1000/s, W = 20 ms: L = 20 Erlangs on 10 connections.
    let window = loaded(&template(&config).await, 10_000, 10.0, 20 * MS);
    let advice = advice(&window, &config);
    let grow = find(&advice, "pool.grow_max_size");
    assert!((grow.evidence["offered_load"] - 20.0).abs() < 1e-6);
    assert!((grow.evidence["arrival_rate_per_sec"] - 1000.0).abs() < 1e-6);
    let size = grow.evidence["erlang_c_size"];
    assert!(size > 20.0 && size <= 40.0, "{size}");
    assert_eq!(grow.evidence["erlang_c_size_capped"], 0.0);
    let (key, current, suggested) = change(grow);
    assert_eq!(key, "DB_POOL_MAX_SIZE");
    assert_eq!(*current, SettingValue::Integer(10));
    assert_eq!(
        *suggested,
        SettingValue::Integer((size * 1.25).ceil() as i64)
    );
}

#[tokio::test]
async fn a_huge_load_is_answered_at_the_cap_without_searching_forever() {
    let config = config(0, 10);
    // L = 10⁸ Erlangs: the search stops at 4 × max_size.
    let window = loaded(&template(&config).await, 1_000_000, 1.0, 100 * SECS);
    let advice = advice(&window, &config);
    let grow = find(&advice, "pool.grow_max_size");
    assert_eq!(grow.evidence["erlang_c_size_capped"], 1.0);
    assert_eq!(grow.evidence["erlang_c_size"], 40.0);
    assert_eq!(*change(grow).2, SettingValue::Integer(40));
}

#[tokio::test]
async fn shrinking_never_goes_below_the_peak_nor_happens_while_callers_wait() {
    let config = config(0, 100);
    // L = 4 on 100 connections.
    let base = loaded(&template(&config).await, 2_000, 10.0, 20 * MS);
    let window = PoolMetrics {
        peak_in_use: 30,
        ..base.clone()
    };
    let shrink = advice(&window, &config);
    let shrink = find(&shrink, "pool.shrink_max_size");
    assert_eq!(*change(shrink).2, SettingValue::Integer(30));
    assert_eq!(shrink.evidence["peak_in_use"], 30.0);

    let waited = PoolMetrics {
        acquire_latency: histogram(&[(0, 1_800), (300 * MS, 200)]),
        ..base.clone()
    };
    assert!(!has(&advice(&waited, &config), "pool.shrink_max_size"));
    let exhausted = PoolMetrics {
        exhaustions: 1,
        ..base
    };
    assert!(!has(&advice(&exhausted, &config), "pool.shrink_max_size"));
}

#[tokio::test]
async fn idle_churn_raises_min_size_to_the_steady_load() {
    let config = config(0, 20);
    // L = 4; 6 connections closed idle and made again.
    let base = loaded(&template(&config).await, 2_000, 10.0, 20 * MS);
    let churn = PoolMetrics {
        created: 6,
        closed_idle_timeout: 6,
        ..base.clone()
    };
    let advice_churn = advice(&churn, &config);
    let raise = find(&advice_churn, "pool.raise_min_size");
    assert_eq!(raise.evidence["churned_connections"], 6.0);
    let (key, current, suggested) = change(raise);
    assert_eq!(key, "DB_POOL_MIN_SIZE");
    assert_eq!(*current, SettingValue::Integer(0));
    assert_eq!(*suggested, SettingValue::Integer(4));

    // Connections made by a warm-up (no idle close) are no evidence.
    let warm_up = PoolMetrics { created: 8, ..base };
    let quiet = advice(&warm_up, &config);
    assert!(!has(&quiet, "pool.raise_min_size"), "{quiet:#?}");
    assert!(!has(&quiet, "pool.raise_idle_timeout"), "{quiet:#?}");
}

#[tokio::test]
async fn the_suggested_min_size_never_exceeds_max_size() {
    let config = config(0, 4);
    // L = 8 on 4 connections, with idle churn.
    let window = PoolMetrics {
        created: 3,
        closed_idle_timeout: 3,
        ..loaded(&template(&config).await, 4_000, 10.0, 20 * MS)
    };
    let advice = advice(&window, &config);
    let raise = find(&advice, "pool.raise_min_size");
    assert_eq!(*change(raise).2, SettingValue::Integer(4));
}

#[tokio::test]
async fn idle_churn_above_a_sufficient_min_size_raises_the_idle_timeout() {
    let config = config(5, 20);
    let window = PoolMetrics {
        created: 4,
        closed_idle_timeout: 7,
        ..loaded(&template(&config).await, 2_000, 10.0, 20 * MS)
    };
    let advice = advice(&window, &config);
    let raise = find(&advice, "pool.raise_idle_timeout");
    assert_eq!(raise.evidence["churned_connections"], 4.0);
    let (key, current, suggested) = change(raise);
    assert_eq!(key, "DB_POOL_IDLE_TIMEOUT");
    assert_eq!(*current, SettingValue::Integer(1200));
    assert_eq!(*suggested, SettingValue::Integer(2400));
    assert!(!has(&advice, "pool.raise_min_size"));
}

#[tokio::test]
async fn lifetime_closes_dominating_creation_raise_the_max_lifetime() {
    let config = config(0, 20);
    let base = loaded(&template(&config).await, 2_000, 10.0, 20 * MS);
    let window = PoolMetrics {
        created: 10,
        closed_max_lifetime: 8,
        ..base.clone()
    };
    let advice_lifetime = advice(&window, &config);
    let raise = find(&advice_lifetime, "pool.raise_max_lifetime");
    assert_eq!(raise.evidence["closed_max_lifetime"], 8.0);
    let (key, current, suggested) = change(raise);
    assert_eq!(key, "DB_POOL_MAX_LIFETIME");
    assert_eq!(*current, SettingValue::Integer(1800));
    assert_eq!(*suggested, SettingValue::Integer(3600));

    let few = PoolMetrics {
        created: 10,
        closed_max_lifetime: 2,
        ..base
    };
    assert!(!has(&advice(&few, &config), "pool.raise_max_lifetime"));
}

#[tokio::test]
async fn a_slow_p95_wait_is_reported_with_its_evidence() {
    let config = config(0, 10);
    let window = PoolMetrics {
        acquire_latency: histogram(&[(0, 900), (250 * MS, 100)]),
        acquires_direct: 900,
        acquires_waited: 100,
        ..loaded(&template(&config).await, 1_000, 10.0, 5 * MS)
    };
    let advice = advice(&window, &config);
    let slow = find(&advice, "pool.slow_acquire");
    let p95 = slow.evidence["p95_wait_ms"];
    assert!(p95 > 100.0, "{p95}");
}

#[tokio::test]
async fn a_high_error_rate_is_reported_and_a_down_backend_gets_no_timeout_change() {
    let config = config(0, 10);
    let base = loaded(&template(&config).await, 1_000, 10.0, 5 * MS);
    let window = PoolMetrics {
        caller_errors: 100,
        ..base.clone()
    };
    let advice_errors = advice(&window, &config);
    let high = find(&advice_errors, "pool.high_error_rate");
    assert!((high.evidence["error_rate"] - 0.1).abs() < 1e-9);
    assert_eq!(high.evidence["caller_errors"], 100.0);
    assert!(high.change.is_none());

    // Every connect timed out and none succeeded: an outage, not a short timeout.
    let down = PoolMetrics {
        connect_attempts: 100,
        connect_failures: 100,
        connect_timeouts: 100,
        ..base
    };
    let advice_down = advice(&down, &config);
    let high = find(&advice_down, "pool.high_error_rate");
    assert!(high.change.is_none(), "{high:#?}");
    assert!(!has(&advice_down, "pool.raise_connect_timeout"));
}

#[tokio::test]
async fn connect_timeout_advice_goes_both_ways_from_connect_latency() {
    let config = PoolConfig {
        connect_timeout: Duration::from_secs(10),
        ..config(0, 10)
    };
    let base = loaded(&template(&config).await, 1_000, 10.0, 5 * MS);
    // Successful connects take up to 9 s against a 10 s timeout.
    let near = PoolMetrics {
        connect_attempts: 20,
        connect_latency: histogram(&[(9 * SECS, 20)]),
        ..base.clone()
    };
    let advice_near = advice(&near, &config);
    let raise = find(&advice_near, "pool.raise_connect_timeout");
    assert!(raise.evidence["connect_p99_secs"] >= 8.0);
    let (key, current, suggested) = change(raise);
    assert_eq!(key, "DB_POOL_CONNECT_TIMEOUT");
    assert_eq!(*current, SettingValue::Integer(10));
    let SettingValue::Integer(suggested) = *suggested else {
        panic!("integer seconds")
    };
    assert!(suggested >= 27, "3 × p99: {suggested}");

    // Connects take 50 ms: a 10 s timeout notices a down backend late.
    let fast = PoolMetrics {
        connect_attempts: 20,
        connect_latency: histogram(&[(50 * MS, 20)]),
        ..base.clone()
    };
    let advice_fast = advice(&fast, &config);
    let lower = find(&advice_fast, "pool.lower_connect_timeout");
    assert_eq!(lower.evidence["connects_succeeded"], 20.0);
    assert_eq!(*change(lower).2, SettingValue::Integer(1));
    assert!(!has(&advice_fast, "pool.raise_connect_timeout"));

    // Too few connects to judge lowering: quiet.
    let few = PoolMetrics {
        connect_attempts: 2,
        connect_latency: histogram(&[(50 * MS, 2)]),
        ..base
    };
    let advice_few = advice(&few, &config);
    assert!(!has(&advice_few, "pool.lower_connect_timeout"));
    assert!(!has(&advice_few, "pool.raise_connect_timeout"));
}

#[tokio::test]
async fn exhaustion_with_leaked_connections_says_fix_the_leak() {
    let config = config(0, 10);
    let window = PoolMetrics {
        exhaustions: 3,
        leaked: 2,
        ..loaded(&template(&config).await, 1_000, 10.0, 5 * MS)
    };
    let advice = advice(&window, &config);
    let exhausted = find(&advice, "pool.exhausted");
    assert_eq!(exhausted.evidence["leaked"], 2.0);
    assert!(exhausted.change.is_none(), "growing would hide the leak");
    assert!(exhausted.message.contains("leak"));
}
