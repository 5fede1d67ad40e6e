//! The sizing advisor's rules, each called directly on a synthetic window.

use resync_perf_core::{Histogram, HistogramSnapshot, SettingValue};

use super::*;

const MS: u64 = 1_000_000;

fn histogram(values: &[(u64, u64)]) -> HistogramSnapshot {
    let histogram = Histogram::new();
    for &(value, times) in values {
        histogram.record_n(value, times);
    }
    histogram.snapshot()
}

/// A window of a `DB_POOL` of `max_size`: `acquires` direct checkouts over `secs`, each held
/// `hold_ns`, one in use at the peak, nothing else.
fn window(max_size: u32, acquires: u64, secs: f64, hold_ns: u64) -> PoolMetrics {
    PoolMetrics {
        name: "synthetic".to_owned(),
        settings_prefix: "DB_POOL".to_owned(),
        elapsed_secs: secs,
        max_size,
        min_size: 0,
        connections: 1,
        idle: 1,
        in_use: 0,
        waiting: 0,
        peak_in_use: 1,
        acquires,
        acquires_direct: acquires,
        acquires_waited: 0,
        exhaustions: 0,
        unavailable: 0,
        connect_attempts: 0,
        connect_failures: 0,
        connect_timeouts: 0,
        broken: 0,
        caller_errors: 0,
        validations_run: 0,
        validations_skipped: 0,
        validation_failures: 0,
        created: 0,
        closed_broken: 0,
        closed_invalid: 0,
        closed_max_lifetime: 0,
        closed_idle_timeout: 0,
        hold_secs_total: (acquires * hold_ns) as f64 / 1e9,
        leaked: 0,
        acquire_latency: histogram(&[(0, acquires)]),
        hold_time: histogram(&[(hold_ns, acquires)]),
        connect_latency: HistogramSnapshot::default(),
    }
}

/// λ = 1000/s, W = 20 ms: an offered load of 20 Erlangs on 10 connections.
fn overloaded() -> PoolMetrics {
    window(10, 10_000, 10.0, 20 * MS)
}

/// λ = 10/s, W = 1 ms: almost nothing on 20 connections.
fn light() -> PoolMetrics {
    window(20, 100, 10.0, MS)
}

/// `window` with 10 % of its checkouts waiting 300 ms (p95 above the 100 ms threshold).
fn waited(window: PoolMetrics) -> PoolMetrics {
    let waited = window.acquires / 10;
    PoolMetrics {
        acquire_latency: histogram(&[(0, window.acquires - waited), (300 * MS, waited)]),
        ..window
    }
}

/// Runs `rule` on `window` judged with the default thresholds and the database config of the
/// window's size.
fn judge(
    window: &PoolMetrics,
    rule: impl FnOnce(&Judged<'_>) -> Option<Recommendation>,
) -> Option<Recommendation> {
    let config = PoolConfig {
        min_size: window.min_size,
        max_size: window.max_size,
        ..PoolConfig::database()
    };
    let thresholds = HealthThresholds::default();
    rule(&Judged::new(
        "pool:synthetic".to_owned(),
        window,
        &config,
        &thresholds,
    ))
}

fn change(rec: &Recommendation) -> (&str, &SettingValue, &SettingValue) {
    let change = rec.change.as_ref().expect("a setting change");
    (&change.key, &change.current, &change.suggested)
}

#[test]
fn unhealthy_fires_while_the_last_check_fails() {
    let failing = HealthCheckRecord {
        checks: 5,
        failures: 3,
        consecutive_failures: 3,
        last_ok: Some(false),
        last_error: Some("connection refused".to_owned()),
        last_duration_secs: Some(0.5),
        ..HealthCheckRecord::default()
    };
    let rec = unhealthy("pool:synthetic", &failing).expect("a failing check");
    assert_eq!(rec.code, "pool.unhealthy");
    assert_eq!(rec.severity, Severity::Critical);
    assert_eq!(rec.message, "health check failing: connection refused");
    assert_eq!(rec.evidence["consecutive_failures"], 3.0);
    assert_eq!(rec.evidence["last_check_secs"], 0.5);

    let recovered = HealthCheckRecord {
        last_ok: Some(true),
        ..failing
    };
    assert!(unhealthy("pool:synthetic", &recovered).is_none());
    assert!(unhealthy("pool:synthetic", &HealthCheckRecord::default()).is_none());
}

#[test]
fn insufficient_data_fires_below_the_minimum_of_checkouts() {
    let few = window(10, MIN_ACQUIRES - 1, 30.0, MS);
    let rec = insufficient_data("pool:synthetic", &few).expect("too few checkouts");
    assert_eq!(rec.code, "pool.insufficient_data");
    assert_eq!(rec.severity, Severity::Info);
    assert_eq!(rec.evidence["acquires"], (MIN_ACQUIRES - 1) as f64);
    assert_eq!(rec.evidence["window_secs"], 30.0);
    assert!(insufficient_data("pool:synthetic", &window(10, MIN_ACQUIRES, 30.0, MS)).is_none());
}

#[test]
fn exhausted_suggests_growing_or_fixing_the_leak() {
    let exhausted_light = PoolMetrics {
        exhaustions: 2,
        ..light()
    };
    let rec = judge(&exhausted_light, exhausted).expect("timed-out gets");
    assert_eq!(rec.code, "pool.exhausted");
    assert_eq!(rec.severity, Severity::Critical);
    // The light load suggests less than max_size: a quarter more is the floor.
    assert_eq!(
        change(&rec),
        (
            "DB_POOL_MAX_SIZE",
            &SettingValue::Integer(20),
            &SettingValue::Integer(25)
        )
    );
    assert_eq!(rec.evidence["exhaustions"], 2.0);

    let exhausted_overloaded = PoolMetrics {
        exhaustions: 2,
        ..overloaded()
    };
    let rec = judge(&exhausted_overloaded, exhausted).expect("timed-out gets");
    let sizing = Sizing::from_window(&exhausted_overloaded).expect("a load");
    assert!(sizing.suggested_max_size > 13, "{sizing:?}");
    assert_eq!(
        *change(&rec).2,
        SettingValue::from(sizing.suggested_max_size)
    );

    let leaking = PoolMetrics {
        leaked: 3,
        ..exhausted_light
    };
    let rec = judge(&leaking, exhausted).expect("timed-out gets");
    assert_eq!(rec.change, None, "growing would hide the leak");
    assert_eq!(rec.evidence["leaked"], 3.0);
    assert!(rec.message.contains("fix the leak"), "{}", rec.message);

    assert!(judge(&light(), exhausted).is_none());
}

#[test]
fn grow_max_size_fires_when_the_offered_load_needs_more_connections() {
    let rec = judge(&overloaded(), grow_max_size).expect("20 Erlangs on 10 connections");
    assert_eq!(rec.code, "pool.grow_max_size");
    assert_eq!(rec.severity, Severity::Warning);
    assert!((rec.evidence["offered_load"] - 20.0).abs() < 1e-6);
    let size = rec.evidence["erlang_c_size"];
    assert_eq!(
        change(&rec),
        (
            "DB_POOL_MAX_SIZE",
            &SettingValue::Integer(10),
            &SettingValue::Integer((size * HEADROOM).ceil() as i64)
        )
    );

    // Exhaustion says it instead; a light load needs nothing.
    let exhausted = PoolMetrics {
        exhaustions: 1,
        ..overloaded()
    };
    assert!(judge(&exhausted, grow_max_size).is_none());
    assert!(judge(&light(), grow_max_size).is_none());
}

#[test]
fn shrink_max_size_keeps_the_peak_and_never_fires_while_callers_wait() {
    // λ = 200/s, W = 20 ms: 4 Erlangs on 100 connections.
    let idle_capacity = |peak_in_use| PoolMetrics {
        peak_in_use,
        ..window(100, 2_000, 10.0, 20 * MS)
    };
    let rec = judge(&idle_capacity(30), shrink_max_size).expect("4 Erlangs on 100");
    assert_eq!(rec.code, "pool.shrink_max_size");
    assert_eq!(rec.severity, Severity::Info);
    assert_eq!(*change(&rec).2, SettingValue::Integer(30));
    assert_eq!(rec.evidence["peak_in_use"], 30.0);

    assert!(judge(&idle_capacity(100), shrink_max_size).is_none());
    assert!(judge(&waited(idle_capacity(30)), shrink_max_size).is_none());
    let exhausted = PoolMetrics {
        exhaustions: 1,
        ..idle_capacity(30)
    };
    assert!(judge(&exhausted, shrink_max_size).is_none());
    assert!(judge(&overloaded(), shrink_max_size).is_none());
}

#[test]
fn slow_acquire_fires_above_the_wait_threshold_with_a_size_when_one_helps() {
    let rec = judge(&waited(overloaded()), slow_acquire).expect("p95 of 300 ms");
    assert_eq!(rec.code, "pool.slow_acquire");
    assert_eq!(rec.severity, Severity::Warning);
    // 300 ms at the histogram's resolution.
    let p95_ms = rec.evidence["p95_wait_ms"];
    assert!((290.0..=310.0).contains(&p95_ms), "{p95_ms}");
    assert_eq!(
        rec.message,
        format!("p95 acquire wait {p95_ms:.1} ms is above 100 ms")
    );
    let (key, current, suggested) = change(&rec);
    assert_eq!(
        (key, current),
        ("DB_POOL_MAX_SIZE", &SettingValue::Integer(10))
    );
    let sizing = Sizing::from_window(&overloaded()).expect("a load");
    assert_eq!(*suggested, SettingValue::from(sizing.suggested_max_size));

    // Waits on a lightly loaded pool: no size would help.
    let rec = judge(&waited(light()), slow_acquire).expect("p95 of 300 ms");
    assert_eq!(rec.change, None);
    assert!(judge(&overloaded(), slow_acquire).is_none());
}

#[test]
fn high_error_rate_fires_above_the_threshold_with_a_backed_timeout_raise() {
    let failing = PoolMetrics {
        connect_failures: 60,
        broken: 40,
        ..window(10, 1_000, 10.0, MS)
    };
    let rec = judge(&failing, |judged| high_error_rate(judged, None)).expect("rate 0.1");
    assert_eq!(rec.code, "pool.high_error_rate");
    assert_eq!(rec.severity, Severity::Warning);
    assert_eq!(rec.evidence["error_rate"], 0.1);
    assert_eq!(rec.evidence["connect_failures"], 60.0);
    assert_eq!(rec.evidence["broken"], 40.0);
    assert_eq!(rec.change, None);

    let connect = |code: &str| {
        Recommendation::new("pool:synthetic", code, Severity::Warning, "connects")
            .with_change(SettingChange::new("DB_POOL_CONNECT_TIMEOUT", 5u64, 15u64))
    };
    let raise = connect("pool.raise_connect_timeout");
    let rec = judge(&failing, |judged| high_error_rate(judged, Some(&raise))).expect("rate 0.1");
    assert_eq!(change(&rec).0, "DB_POOL_CONNECT_TIMEOUT");
    let lower = connect("pool.lower_connect_timeout");
    let rec = judge(&failing, |judged| high_error_rate(judged, Some(&lower))).expect("rate 0.1");
    assert_eq!(rec.change, None, "only a raise belongs with errors");

    let few_errors = PoolMetrics {
        connect_failures: 50,
        broken: 0,
        ..failing
    };
    assert!(judge(&few_errors, |judged| high_error_rate(judged, None)).is_none());
}
