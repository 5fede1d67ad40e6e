//! Advice from a metrics snapshot (cumulative or a window).

use resync_perf_core::{ratio, Recommendation, SettingChange, Severity};

use crate::metrics::{CacheMetrics, MissRatioCurve};

/// Gets needed in the judged window before the cache is judged at all.
pub const MIN_REQUESTS: u64 = 1_000;
/// Predicted hit-rate gain at 2× that justifies growing (5 percentage points).
pub const GROW_MIN_GAIN: f64 = 0.05;
/// Largest hit-rate loss at ½× that still justifies shrinking (1 percentage point).
pub const SHRINK_MAX_LOSS: f64 = 0.01;
/// Below this hit rate the cache is called ineffective.
pub const LOW_HIT_RATE: f64 = 0.5;
/// Memory utilization at which the bound is considered reached.
pub const FULL_UTILIZATION: f64 = 0.9;
/// Size evictions per insert above which the cache is thrashing.
pub const PRESSURE_EVICTIONS_PER_INSERT: f64 = 0.5;
/// Share of misses matched by TTL expirations above which the TTL is called too short.
pub const TTL_EXPIRED_PER_MISS: f64 = 0.25;

/// Slack over the per-entry weight floor within which entries count as "at the floor"
/// (the entry bound, not the memory bound, then limits the cache).
pub const ENTRY_FLOOR_SLACK: f64 = 1.05;

const MIB: u64 = 1024 * 1024;

/// Advice for the cache `metrics` describes, usually a window (`newer.delta(&older)`).
///
/// Codes: `cache.insufficient_data` (fewer than [`MIN_REQUESTS`] gets: nothing else is
/// said), `cache.grow_memory` (the memory bound limits the cache), `cache.grow_entries` (the
/// entry bound limits it: entries sit at the per-entry weight floor or the entry count is full),
/// `cache.shrink_memory`, `cache.low_hit_rate`,
/// `cache.memory_pressure`, `cache.ttl_too_short`. Each carries the figures it rests on.
pub fn recommendations_from(metrics: &CacheMetrics) -> Vec<Recommendation> {
    let component = format!("cache:{}", metrics.name);
    let requests = metrics.requests();
    let Some(hit_rate) = metrics.hit_rate.filter(|_| requests >= MIN_REQUESTS) else {
        return vec![Recommendation::new(
            component,
            "cache.insufficient_data",
            Severity::Info,
            format!("only {requests} gets so far; at least {MIN_REQUESTS} are needed to judge this cache"),
        )
        .with_evidence("requests", requests as f64)
        .with_evidence("min_requests", MIN_REQUESTS as f64)];
    };

    let mut advice = Vec::new();
    let memory_mb = metrics.max_memory_bytes.div_ceil(MIB);
    let size_evictions_per_insert =
        ratio(metrics.evictions.size as f64, metrics.inserts as f64).unwrap_or(0.0);
    let predicted = |factor| {
        metrics
            .curve
            .as_ref()
            .and_then(|curve| curve.predicted(factor))
    };
    let with_curve = |mut recommendation: Recommendation| {
        for (name, factor) in [
            ("predicted_hit_rate_0_5x", 0.5),
            ("predicted_hit_rate_2x", 2.0),
            ("predicted_hit_rate_4x", 4.0),
        ] {
            if let Some(rate) = predicted(factor) {
                recommendation = recommendation.with_evidence(name, rate);
            }
        }
        recommendation
            .with_evidence("hit_rate", hit_rate)
            .with_evidence("requests", requests as f64)
            .with_evidence("weighted_bytes", metrics.weighted_bytes as f64)
            .with_evidence("max_memory_bytes", metrics.max_memory_bytes as f64)
            .with_evidence("memory_utilization", metrics.memory_utilization)
            .with_evidence("entry_utilization", metrics.entry_utilization)
            .with_evidence("evictions_size", metrics.evictions.size as f64)
    };

    let full = metrics.memory_utilization >= FULL_UTILIZATION
        || metrics.entry_utilization >= FULL_UTILIZATION;
    let grow_gain = predicted(2.0).map(|at_double| at_double - hit_rate);
    let grows = full && grow_gain.is_some_and(|gain| gain >= GROW_MIN_GAIN);
    if let (true, Some(gain), Some(at_double)) = (grows, grow_gain, predicted(2.0)) {
        let severity = if gain >= 3.0 * GROW_MIN_GAIN {
            Severity::Warning
        } else {
            Severity::Info
        };
        // The per-entry floor is ceil(max_memory / max_entries): when the entries sit at that
        // floor, the entry bound is what limits the cache, and doubling the memory only doubles
        // the floor, so it still holds the same number of entries.
        let min_weight = metrics
            .max_memory_bytes
            .div_ceil(metrics.max_entries.max(1))
            .max(1);
        let entries_at_floor = metrics.entries > 0
            && metrics.weighted_bytes as f64 / metrics.entries as f64
                <= min_weight as f64 * ENTRY_FLOOR_SLACK;
        let entries_full = metrics.entry_utilization >= FULL_UTILIZATION;
        let memory_full = metrics.memory_utilization >= FULL_UTILIZATION;
        // A full memory bound counts only when entries weigh more than the floor; a full entry
        // bound always counts. Both can bind at once: then each gets its own recommendation,
        // since a recommendation carries one change.
        let entries_bind = entries_full || (memory_full && entries_at_floor);
        let memory_binds = memory_full && !entries_at_floor;
        let message = |what: String| {
            format!(
                "{what} is predicted to raise the hit rate from {:.1}% to {:.1}%",
                hit_rate * 100.0,
                at_double * 100.0
            )
        };
        if entries_bind {
            let entries = metrics.max_entries;
            advice.push(with_curve(
                Recommendation::new(
                    component.clone(),
                    "cache.grow_entries",
                    severity,
                    message(format!(
                        "entries sit at the per-entry weight floor, so the entry bound limits the cache: doubling ASYNC_CACHE_MAX_ENTRIES to {}",
                        entries.saturating_mul(2)
                    )),
                )
                .with_evidence("entries", metrics.entries as f64)
                .with_evidence("max_entries", entries as f64)
                .with_evidence("min_weight_bytes", min_weight as f64)
                .with_change(SettingChange::new(
                    "ASYNC_CACHE_MAX_ENTRIES",
                    entries,
                    entries.saturating_mul(2),
                )),
            ));
        }
        if memory_binds {
            advice.push(with_curve(
                Recommendation::new(
                    component.clone(),
                    "cache.grow_memory",
                    severity,
                    message(format!("doubling the memory bound to {} MB", memory_mb * 2)),
                )
                .with_change(SettingChange::new(
                    "ASYNC_CACHE_MAX_MEMORY_MB",
                    memory_mb,
                    memory_mb * 2,
                )),
            ));
        }
    }

    if let Some(at_half) = predicted(0.5) {
        let loss = hit_rate - at_half;
        if !grows && loss <= SHRINK_MAX_LOSS && metrics.memory_utilization >= 0.5 && memory_mb >= 2
        {
            advice.push(with_curve(
                Recommendation::new(
                    component.clone(),
                    "cache.shrink_memory",
                    Severity::Info,
                    format!(
                        "halving the memory bound to {} MB is predicted to change the hit rate only from {:.1}% to {:.1}%",
                        memory_mb / 2,
                        hit_rate * 100.0,
                        at_half * 100.0
                    ),
                )
                .with_change(SettingChange::new("ASYNC_CACHE_MAX_MEMORY_MB", memory_mb, memory_mb / 2)),
            ));
        }
    }

    if hit_rate < LOW_HIT_RATE && !grows {
        let reason = match predicted(4.0) {
            Some(at_quadruple) => format!(
                "even 4x the memory is predicted to reach only {:.1}%, so the access pattern, not the size, limits it",
                at_quadruple * 100.0
            ),
            None => "too few sampled gets to predict the effect of a resize".to_owned(),
        };
        advice.push(with_curve(Recommendation::new(
            component.clone(),
            "cache.low_hit_rate",
            Severity::Warning,
            format!(
                "hit rate is {:.1}% over {requests} gets; {reason}",
                hit_rate * 100.0
            ),
        )));
    }

    if metrics.memory_utilization >= FULL_UTILIZATION
        && size_evictions_per_insert >= PRESSURE_EVICTIONS_PER_INSERT
        && metrics.inserts >= MIN_REQUESTS / 10
    {
        advice.push(with_curve(
            Recommendation::new(
                component.clone(),
                "cache.memory_pressure",
                Severity::Warning,
                format!(
                    "the cache is at {:.0}% of its memory bound and evicts {:.2} entries per insert to make room",
                    metrics.memory_utilization * 100.0,
                    size_evictions_per_insert
                ),
            )
            .with_evidence("inserts", metrics.inserts as f64)
            .with_evidence("size_evictions_per_insert", size_evictions_per_insert),
        ));
    }

    // Expirations per miss alone would also fire on one-off keys and scans (they expire
    // unread); the doubled-TTL miniature measures whether a longer TTL would turn misses
    // into hits on this traffic.
    let ttl_gain = metrics
        .curve
        .as_ref()
        .and_then(MissRatioCurve::predicted_2x_ttl)
        .map(|at_double_ttl| (at_double_ttl, at_double_ttl - hit_rate));
    if let (Some(ttl_seconds), Some((at_double_ttl, gain))) = (metrics.ttl_seconds, ttl_gain) {
        let expired_per_miss =
            ratio(metrics.evictions.expired as f64, metrics.misses as f64).unwrap_or(0.0);
        if expired_per_miss >= TTL_EXPIRED_PER_MISS && gain >= GROW_MIN_GAIN && hit_rate < 0.95 {
            let current = ttl_seconds.ceil().max(1.0) as u64;
            advice.push(with_curve(
                Recommendation::new(
                    component,
                    "cache.ttl_too_short",
                    Severity::Info,
                    format!(
                        "{} entries expired against {} misses, and a simulation with twice the TTL of {current} s at today's size predicts the hit rate rising from {:.1}% to {:.1}%",
                        metrics.evictions.expired,
                        metrics.misses,
                        hit_rate * 100.0,
                        at_double_ttl * 100.0
                    ),
                )
                .with_evidence("evictions_expired", metrics.evictions.expired as f64)
                .with_evidence("misses", metrics.misses as f64)
                .with_evidence("ttl_seconds", ttl_seconds)
                .with_evidence("predicted_hit_rate_2x_ttl", at_double_ttl)
                .with_change(SettingChange::new("ASYNC_CACHE_TTL", current, current * 2)),
            ));
        }
    }
    advice
}
