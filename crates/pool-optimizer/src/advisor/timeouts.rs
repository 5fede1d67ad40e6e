//! Timeout advice: connect timeout from observed connect latency, idle timeout and
//! `min_size` from idle churn, max lifetime from lifetime churn.

use std::time::Duration;

use resync_perf_core::{Recommendation, SettingChange, Severity};

use crate::config::PoolConfig;
use crate::metrics::PoolMetrics;

/// Fewest successful connects in a window before the advisor suggests a shorter connect
/// timeout (a longer one needs only evidence of connects near or past the limit).
pub const MIN_CONNECTS: u64 = 10;
/// Successful connects whose p99 reaches this share of the connect timeout are "near" it.
pub const NEAR_TIMEOUT: f64 = 0.8;
/// The connect timeout is "generous" when p99 connect latency × this is still below it.
pub const GENEROUS_FACTOR: f64 = 10.0;

fn whole_secs(duration: Duration) -> u64 {
    duration.as_secs_f64().ceil().max(1.0) as u64
}

/// Connect-timeout advice, both ways, from the window's connect latency and timeouts:
///
/// - `pool.raise_connect_timeout` when connects timed out while the backend answered others
///   in the window (a slow backend, not a down one), or the p99 of successful connects is at
///   least [`NEAR_TIMEOUT`] of the timeout: suggest ⌈3 × p99⌉ s (at least current + 1 s).
/// - `pool.lower_connect_timeout` when no connect timed out, at least [`MIN_CONNECTS`]
///   succeeded and p99 × [`GENEROUS_FACTOR`] is below the timeout: suggest ⌈10 × p99⌉ s (at
///   least 1 s), so a down backend is noticed sooner.
///
/// A backend that answered no connect at all gets no advice here: that is an outage
/// (`pool.unhealthy`, `Unavailable`), which no timeout fixes.
pub(crate) fn connect_timeout_advice(
    component: &str,
    window: &PoolMetrics,
    config: &PoolConfig,
) -> Option<Recommendation> {
    let succeeded = window.connect_latency.count();
    if succeeded == 0 {
        return None;
    }
    let timeout = config.connect_timeout;
    let p99 = Duration::from_nanos(window.connect_latency.p99());
    let current = whole_secs(timeout);
    let evidence = |rec: Recommendation| {
        rec.with_evidence("connect_p99_secs", p99.as_secs_f64())
            .with_evidence("connect_timeout_secs", timeout.as_secs_f64())
            .with_evidence("connects_succeeded", succeeded as f64)
            .with_evidence("connect_timeouts", window.connect_timeouts as f64)
    };
    let near = p99.as_secs_f64() >= NEAR_TIMEOUT * timeout.as_secs_f64();
    if window.connect_timeouts > 0 || near {
        let suggested = whole_secs(p99 * 3).max(current + 1);
        return Some(
            evidence(Recommendation::new(
                component,
                "pool.raise_connect_timeout",
                Severity::Warning,
                format!(
                    "connects take up to {:.2} s (p99) against a {:.1} s timeout; {} timed out while others succeeded",
                    p99.as_secs_f64(),
                    timeout.as_secs_f64(),
                    window.connect_timeouts
                ),
            ))
            .with_change(SettingChange::new(
                config.key("CONNECT_TIMEOUT"),
                current,
                suggested,
            )),
        );
    }
    let generous = p99.as_secs_f64() * GENEROUS_FACTOR < timeout.as_secs_f64();
    let suggested = whole_secs(p99.mul_f64(GENEROUS_FACTOR));
    if succeeded >= MIN_CONNECTS && generous && suggested < current {
        return Some(
            evidence(Recommendation::new(
                component,
                "pool.lower_connect_timeout",
                Severity::Info,
                format!(
                    "connects take at most {:.3} s (p99) but the timeout is {:.1} s: a down backend is noticed late",
                    p99.as_secs_f64(),
                    timeout.as_secs_f64()
                ),
            ))
            .with_change(SettingChange::new(
                config.key("CONNECT_TIMEOUT"),
                current,
                suggested,
            )),
        );
    }
    None
}

/// Lifetime advice: `pool.raise_max_lifetime` when connections closed at `max_lifetime` are
/// at least half of the connections created in the window (the pool mostly re-creates
/// connections it aged out): suggest twice the current lifetime.
pub(crate) fn lifetime_advice(
    component: &str,
    window: &PoolMetrics,
    config: &PoolConfig,
) -> Option<Recommendation> {
    let lifetime = config.max_lifetime?;
    let expired = window.closed_max_lifetime;
    if expired == 0 || window.created == 0 || expired * 2 < window.created {
        return None;
    }
    let current = whole_secs(lifetime);
    Some(
        Recommendation::new(
            component,
            "pool.raise_max_lifetime",
            Severity::Info,
            format!(
                "{expired} of the {} connections made in the window replaced ones closed at max_lifetime {current} s",
                window.created
            ),
        )
        .with_evidence("closed_max_lifetime", expired as f64)
        .with_evidence("connections_created", window.created as f64)
        .with_evidence("max_lifetime_secs", lifetime.as_secs_f64())
        .with_change(SettingChange::new(
            config.key("MAX_LIFETIME"),
            current,
            current.saturating_mul(2),
        )),
    )
}

/// Idle-churn advice. Connections closed at `idle_timeout` and made again within the window
/// (`min(closed_idle_timeout, created)` of them) cost callers connects:
///
/// - `pool.raise_min_size` when the steady load ⌈L⌉ is above `min_size`: suggest ⌈L⌉ (never
///   above the current `max_size`);
/// - otherwise `pool.raise_idle_timeout` (the load comes in bursts above the steady minimum):
///   suggest twice the idle timeout.
pub(crate) fn idle_churn_advice(
    component: &str,
    window: &PoolMetrics,
    config: &PoolConfig,
    steady_load: Option<u32>,
) -> Option<Recommendation> {
    let churned = window.closed_idle_timeout.min(window.created);
    if churned == 0 {
        return None;
    }
    let rec = |code: &str, message: String| {
        Recommendation::new(component, code, Severity::Info, message)
            .with_evidence("churned_connections", churned as f64)
            .with_evidence("closed_idle_timeout", window.closed_idle_timeout as f64)
            .with_evidence("connections_created", window.created as f64)
            .with_evidence("min_size", f64::from(window.min_size))
    };
    let wanted_min = steady_load.map(|load| load.min(window.max_size));
    if let Some(wanted_min) = wanted_min.filter(|&wanted| wanted > window.min_size) {
        return Some(
            rec(
                "pool.raise_min_size",
                format!(
                    "steady load keeps {wanted_min} connections busy but min_size is {}; {churned} connections were closed idle and made again in the window",
                    window.min_size
                ),
            )
            .with_evidence("steady_load", f64::from(wanted_min))
            .with_change(SettingChange::new(
                config.key("MIN_SIZE"),
                window.min_size,
                wanted_min,
            )),
        );
    }
    let idle = config.idle_timeout?;
    let current = whole_secs(idle);
    Some(
        rec(
            "pool.raise_idle_timeout",
            format!(
                "{churned} connections were closed after {current} s idle and made again in the window"
            ),
        )
        .with_evidence("idle_timeout_secs", idle.as_secs_f64())
        .with_change(SettingChange::new(
            config.key("IDLE_TIMEOUT"),
            current,
            current.saturating_mul(2),
        )),
    )
}
