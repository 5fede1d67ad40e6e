//! Advice from a metrics snapshot (cumulative or a window): one function per rule, each
//! returning its recommendation when it fires, over the checks shared by every rule.

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
    let Some(judged) = Judged::new(metrics) else {
        return insufficient_data(metrics).into_iter().collect();
    };
    let rules: [fn(&Judged<'_>) -> Option<Recommendation>; 6] = [
        grow_entries,
        grow_memory,
        shrink_memory,
        low_hit_rate,
        memory_pressure,
        ttl_too_short,
    ];
    rules.iter().filter_map(|rule| rule(&judged)).collect()
}

/// The hit rate, when the snapshot has enough gets to judge it.
fn judged_hit_rate(metrics: &CacheMetrics) -> Option<f64> {
    metrics
        .hit_rate
        .filter(|_| metrics.requests() >= MIN_REQUESTS)
}

/// A snapshot with enough gets to judge, and what the rules past that check share.
struct Judged<'a> {
    metrics: &'a CacheMetrics,
    component: String,
    requests: u64,
    hit_rate: f64,
    /// The memory bound in whole MiB, as `ASYNC_CACHE_MAX_MEMORY_MB` writes it.
    memory_mb: u64,
    /// Set when a bound is full and doubling the memory is predicted to gain at least
    /// [`GROW_MIN_GAIN`]: the cache should grow (and neither shrink nor be called
    /// ineffective).
    growth: Option<Growth>,
}

/// A predicted gain from doubling the cache.
struct Growth {
    /// The predicted hit rate at 2×.
    at_double: f64,
    /// `at_double` less the measured hit rate.
    gain: f64,
}

impl<'a> Judged<'a> {
    /// `None` when the snapshot has too few gets (see [`insufficient_data`]).
    fn new(metrics: &'a CacheMetrics) -> Option<Self> {
        let hit_rate = judged_hit_rate(metrics)?;
        let full = metrics.memory_utilization >= FULL_UTILIZATION
            || metrics.entry_utilization >= FULL_UTILIZATION;
        let growth = predicted(metrics, 2.0)
            .map(|at_double| Growth {
                at_double,
                gain: at_double - hit_rate,
            })
            .filter(|growth| full && growth.gain >= GROW_MIN_GAIN);
        Some(Self {
            metrics,
            component: format!("cache:{}", metrics.name),
            requests: metrics.requests(),
            hit_rate,
            memory_mb: metrics.max_memory_bytes.div_ceil(MIB),
            growth,
        })
    }

    fn predicted(&self, capacity_factor: f64) -> Option<f64> {
        predicted(self.metrics, capacity_factor)
    }

    /// A recommendation about this cache.
    fn recommend(&self, code: &str, severity: Severity, message: String) -> Recommendation {
        Recommendation::new(self.component.clone(), code, severity, message)
    }

    /// `recommendation` with the figures every recommendation past the data check carries:
    /// the curve's predictions, the hit rate and the cache's fill.
    fn with_curve(&self, mut recommendation: Recommendation) -> Recommendation {
        let metrics = self.metrics;
        for (name, factor) in [
            ("predicted_hit_rate_0_5x", 0.5),
            ("predicted_hit_rate_2x", 2.0),
            ("predicted_hit_rate_4x", 4.0),
        ] {
            if let Some(rate) = self.predicted(factor) {
                recommendation = recommendation.with_evidence(name, rate);
            }
        }
        recommendation
            .with_evidence("hit_rate", self.hit_rate)
            .with_evidence("requests", self.requests as f64)
            .with_evidence("weighted_bytes", metrics.weighted_bytes as f64)
            .with_evidence("max_memory_bytes", metrics.max_memory_bytes as f64)
            .with_evidence("memory_utilization", metrics.memory_utilization)
            .with_evidence("entry_utilization", metrics.entry_utilization)
            .with_evidence("evictions_size", metrics.evictions.size as f64)
    }

    /// The message of a growth: `what` and the hit rate it is predicted to reach.
    fn growth_message(&self, growth: &Growth, what: &str) -> String {
        format!(
            "{what} is predicted to raise the hit rate from {:.1}% to {:.1}%",
            self.hit_rate * 100.0,
            growth.at_double * 100.0
        )
    }
}

impl Growth {
    /// A large gain (three times the minimum) is a warning, a smaller one information.
    fn severity(&self) -> Severity {
        if self.gain >= 3.0 * GROW_MIN_GAIN {
            Severity::Warning
        } else {
            Severity::Info
        }
    }
}

fn predicted(metrics: &CacheMetrics, capacity_factor: f64) -> Option<f64> {
    metrics
        .curve
        .as_ref()
        .and_then(|curve| curve.predicted(capacity_factor))
}

/// The per-entry weight floor, `⌈max_memory_bytes / max_entries⌉` (at least 1).
fn min_weight(metrics: &CacheMetrics) -> u64 {
    metrics
        .max_memory_bytes
        .div_ceil(metrics.max_entries.max(1))
        .max(1)
}

/// Whether the entries sit at the per-entry weight floor: then the entry bound is what limits
/// the cache, and doubling the memory only doubles the floor, so it still holds the same
/// number of entries.
fn entries_at_floor(metrics: &CacheMetrics) -> bool {
    metrics.entries > 0
        && metrics.weighted_bytes as f64 / metrics.entries as f64
            <= min_weight(metrics) as f64 * ENTRY_FLOOR_SLACK
}

/// `cache.insufficient_data`: fewer than [`MIN_REQUESTS`] gets (or none); nothing else is said.
fn insufficient_data(metrics: &CacheMetrics) -> Option<Recommendation> {
    if judged_hit_rate(metrics).is_some() {
        return None;
    }
    let requests = metrics.requests();
    Some(
        Recommendation::new(
            format!("cache:{}", metrics.name),
            "cache.insufficient_data",
            Severity::Info,
            format!("only {requests} gets so far; at least {MIN_REQUESTS} are needed to judge this cache"),
        )
        .with_evidence("requests", requests as f64)
        .with_evidence("min_requests", MIN_REQUESTS as f64),
    )
}

/// `cache.grow_entries`: growing pays, and the entry bound limits the cache — it is full, or
/// the memory bound is full with entries at the weight floor. Both grow rules can fire at
/// once (each recommendation carries one change).
fn grow_entries(judged: &Judged<'_>) -> Option<Recommendation> {
    let growth = judged.growth.as_ref()?;
    let metrics = judged.metrics;
    let entries_full = metrics.entry_utilization >= FULL_UTILIZATION;
    let memory_full = metrics.memory_utilization >= FULL_UTILIZATION;
    // A full entry bound always counts; a full memory bound only with entries at the floor.
    let entries_bind = entries_full || (memory_full && entries_at_floor(metrics));
    if !entries_bind {
        return None;
    }
    let entries = metrics.max_entries;
    Some(
        judged.with_curve(
            judged
                .recommend(
                    "cache.grow_entries",
                    growth.severity(),
                    judged.growth_message(growth, &format!(
                        "entries sit at the per-entry weight floor, so the entry bound limits the cache: doubling ASYNC_CACHE_MAX_ENTRIES to {}",
                        entries.saturating_mul(2)
                    )),
                )
                .with_evidence("entries", metrics.entries as f64)
                .with_evidence("max_entries", entries as f64)
                .with_evidence("min_weight_bytes", min_weight(metrics) as f64)
                .with_change(SettingChange::new(
                    "ASYNC_CACHE_MAX_ENTRIES",
                    entries,
                    entries.saturating_mul(2),
                )),
        ),
    )
}

/// `cache.grow_memory`: growing pays, and the memory bound limits the cache — it is full with
/// entries heavier than the weight floor.
fn grow_memory(judged: &Judged<'_>) -> Option<Recommendation> {
    let growth = judged.growth.as_ref()?;
    let metrics = judged.metrics;
    let memory_binds = metrics.memory_utilization >= FULL_UTILIZATION && !entries_at_floor(metrics);
    if !memory_binds {
        return None;
    }
    let memory_mb = judged.memory_mb;
    Some(
        judged.with_curve(
            judged
                .recommend(
                    "cache.grow_memory",
                    growth.severity(),
                    judged.growth_message(
                        growth,
                        &format!("doubling the memory bound to {} MB", memory_mb * 2),
                    ),
                )
                .with_change(SettingChange::new(
                    "ASYNC_CACHE_MAX_MEMORY_MB",
                    memory_mb,
                    memory_mb * 2,
                )),
        ),
    )
}

/// `cache.shrink_memory`: not growing, at least half the memory used, at least 2 MiB, and
/// halving it is predicted to lose at most [`SHRINK_MAX_LOSS`].
fn shrink_memory(judged: &Judged<'_>) -> Option<Recommendation> {
    let at_half = judged.predicted(0.5)?;
    let loss = judged.hit_rate - at_half;
    let memory_mb = judged.memory_mb;
    let shrinks = judged.growth.is_none()
        && loss <= SHRINK_MAX_LOSS
        && judged.metrics.memory_utilization >= 0.5
        && memory_mb >= 2;
    if !shrinks {
        return None;
    }
    Some(judged.with_curve(
        judged
            .recommend(
                "cache.shrink_memory",
                Severity::Info,
                format!(
                    "halving the memory bound to {} MB is predicted to change the hit rate only from {:.1}% to {:.1}%",
                    memory_mb / 2,
                    judged.hit_rate * 100.0,
                    at_half * 100.0
                ),
            )
            .with_change(SettingChange::new("ASYNC_CACHE_MAX_MEMORY_MB", memory_mb, memory_mb / 2)),
    ))
}

/// `cache.low_hit_rate`: a hit rate below [`LOW_HIT_RATE`] that growing would not fix.
fn low_hit_rate(judged: &Judged<'_>) -> Option<Recommendation> {
    let low = judged.hit_rate < LOW_HIT_RATE && judged.growth.is_none();
    if !low {
        return None;
    }
    let reason = match judged.predicted(4.0) {
        Some(at_quadruple) => format!(
            "even 4x the memory is predicted to reach only {:.1}%, so the access pattern, not the size, limits it",
            at_quadruple * 100.0
        ),
        None => "too few sampled gets to predict the effect of a resize".to_owned(),
    };
    Some(judged.with_curve(judged.recommend(
        "cache.low_hit_rate",
        Severity::Warning,
        format!(
            "hit rate is {:.1}% over {} gets; {reason}",
            judged.hit_rate * 100.0,
            judged.requests
        ),
    )))
}

/// `cache.memory_pressure`: the memory bound is full and at least
/// [`PRESSURE_EVICTIONS_PER_INSERT`] entries are evicted per insert, over enough inserts.
fn memory_pressure(judged: &Judged<'_>) -> Option<Recommendation> {
    let metrics = judged.metrics;
    let size_evictions_per_insert =
        ratio(metrics.evictions.size as f64, metrics.inserts as f64).unwrap_or(0.0);
    let pressed = metrics.memory_utilization >= FULL_UTILIZATION
        && size_evictions_per_insert >= PRESSURE_EVICTIONS_PER_INSERT
        && metrics.inserts >= MIN_REQUESTS / 10;
    if !pressed {
        return None;
    }
    Some(judged.with_curve(
        judged
            .recommend(
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
    ))
}

/// `cache.ttl_too_short`: with a TTL, expirations match at least [`TTL_EXPIRED_PER_MISS`] of
/// the misses, the hit rate is below 95 %, and the doubled-TTL miniature predicts a gain of
/// at least [`GROW_MIN_GAIN`].
fn ttl_too_short(judged: &Judged<'_>) -> Option<Recommendation> {
    let metrics = judged.metrics;
    let ttl_seconds = metrics.ttl_seconds?;
    // Expirations per miss alone would also fire on one-off keys and scans (they expire
    // unread); the doubled-TTL miniature measures whether a longer TTL would turn misses
    // into hits on this traffic.
    let at_double_ttl = metrics
        .curve
        .as_ref()
        .and_then(MissRatioCurve::predicted_2x_ttl)?;
    let gain = at_double_ttl - judged.hit_rate;
    let expired_per_miss =
        ratio(metrics.evictions.expired as f64, metrics.misses as f64).unwrap_or(0.0);
    let too_short =
        expired_per_miss >= TTL_EXPIRED_PER_MISS && gain >= GROW_MIN_GAIN && judged.hit_rate < 0.95;
    if !too_short {
        return None;
    }
    let current = ttl_seconds.ceil().max(1.0) as u64;
    Some(judged.with_curve(
        judged
            .recommend(
                "cache.ttl_too_short",
                Severity::Info,
                format!(
                    "{} entries expired against {} misses, and a simulation with twice the TTL of {current} s at today's size predicts the hit rate rising from {:.1}% to {:.1}%",
                    metrics.evictions.expired,
                    metrics.misses,
                    judged.hit_rate * 100.0,
                    at_double_ttl * 100.0
                ),
            )
            .with_evidence("evictions_expired", metrics.evictions.expired as f64)
            .with_evidence("misses", metrics.misses as f64)
            .with_evidence("ttl_seconds", ttl_seconds)
            .with_evidence("predicted_hit_rate_2x_ttl", at_double_ttl)
            .with_change(SettingChange::new("ASYNC_CACHE_TTL", current, current * 2)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::CurvePoint;

    /// `metrics` with a curve predicting `points` (capacity factor, hit rate) and, with a
    /// TTL, `ttl_doubled` at twice the TTL.
    fn with_curve(
        mut metrics: CacheMetrics,
        points: &[(f64, f64)],
        ttl_doubled: Option<f64>,
    ) -> CacheMetrics {
        let point = |(capacity_factor, rate): (f64, f64)| CurvePoint {
            capacity_factor,
            max_memory_bytes: (metrics.max_memory_bytes as f64 * capacity_factor) as u64,
            simulated_hits: 0,
            predicted_hit_rate: Some(rate),
        };
        metrics.curve = Some(MissRatioCurve {
            sample_rate: 0.01,
            sampled_gets: 10_000,
            skipped_gets: 0,
            points: points.iter().copied().map(point).collect(),
            ttl_doubled: ttl_doubled.map(|rate| point((1.0, rate))),
        });
        metrics
    }

    fn judged(metrics: &CacheMetrics) -> Judged<'_> {
        Judged::new(metrics).expect("enough gets to judge")
    }

    /// Hit rate 0.6 over 1 000 gets; both bounds 95 % full with entries at the 1 000-byte
    /// floor; the curve predicts `at_double` at 2×.
    fn full_at_floor(at_double: f64) -> CacheMetrics {
        with_curve(
            CacheMetrics::for_tests(600, 400, 950_000),
            &[(2.0, at_double)],
            None,
        )
    }

    /// Like [`full_at_floor`], but 500 entries of 1 900 bytes: the memory bound binds.
    fn memory_full_heavy_entries(at_double: f64) -> CacheMetrics {
        let mut metrics = CacheMetrics::for_tests(600, 400, 950_000);
        metrics.entries = 500;
        metrics.derive();
        with_curve(metrics, &[(2.0, at_double)], None)
    }

    #[test]
    fn insufficient_data_fires_below_the_minimum_of_gets_only() {
        for (hits, misses) in [(0, 0), (3, 7), (0, MIN_REQUESTS - 1)] {
            let metrics = CacheMetrics::for_tests(hits, misses, 0);
            let advice = insufficient_data(&metrics).expect("too few gets");
            assert_eq!(advice.code, "cache.insufficient_data");
            assert_eq!(advice.component, "cache:judged");
            assert_eq!(advice.severity, Severity::Info);
            assert_eq!(advice.evidence["requests"], (hits + misses) as f64);
            assert_eq!(advice.evidence["min_requests"], MIN_REQUESTS as f64);
            assert!(Judged::new(&metrics).is_none());
        }
        let enough = CacheMetrics::for_tests(600, 400, 0);
        assert!(insufficient_data(&enough).is_none());
        assert!(Judged::new(&enough).is_some());
    }

    #[test]
    fn grow_entries_fires_when_the_entry_bound_limits_a_cache_that_would_gain() {
        let metrics = full_at_floor(0.8);
        let advice = grow_entries(&judged(&metrics)).expect("entries at the floor");
        assert_eq!(advice.code, "cache.grow_entries");
        // A gain of 20 points is at least three times the minimum.
        assert_eq!(advice.severity, Severity::Warning);
        let change = advice.change.expect("a settings change");
        assert_eq!(change.key, "ASYNC_CACHE_MAX_ENTRIES");
        assert_eq!(
            (change.current, change.suggested),
            (1_000u64.into(), 2_000u64.into())
        );
        assert_eq!(advice.evidence["min_weight_bytes"], 1_000.0);
        assert_eq!(advice.evidence["predicted_hit_rate_2x"], 0.8);

        let small_gain = full_at_floor(0.7);
        let advice = grow_entries(&judged(&small_gain)).expect("a 10-point gain");
        assert_eq!(advice.severity, Severity::Info);
        assert!(grow_entries(&judged(&full_at_floor(0.62))).is_none());
        assert!(grow_entries(&judged(&memory_full_heavy_entries(0.8))).is_none());
    }

    #[test]
    fn grow_memory_fires_when_heavy_entries_fill_the_memory_bound() {
        let metrics = memory_full_heavy_entries(0.8);
        let advice = grow_memory(&judged(&metrics)).expect("memory binds");
        assert_eq!(advice.code, "cache.grow_memory");
        assert_eq!(advice.severity, Severity::Warning);
        let change = advice.change.expect("a settings change");
        assert_eq!(change.key, "ASYNC_CACHE_MAX_MEMORY_MB");
        assert_eq!(
            (change.current, change.suggested),
            (1u64.into(), 2u64.into())
        );
        assert!(
            advice
                .message
                .starts_with("doubling the memory bound to 2 MB"),
            "{}",
            advice.message
        );

        // At the floor doubling the memory only doubles the floor; without a gain, nothing.
        assert!(grow_memory(&judged(&full_at_floor(0.8))).is_none());
        assert!(grow_memory(&judged(&memory_full_heavy_entries(0.62))).is_none());
    }

    #[test]
    fn shrink_memory_fires_when_half_the_memory_loses_almost_nothing() {
        let shrinkable = |at_half| {
            let mut metrics = CacheMetrics::for_tests(600, 400, 3 * MIB);
            metrics.max_memory_bytes = 4 * MIB;
            metrics.entries = 100;
            metrics.derive();
            with_curve(metrics, &[(0.5, at_half), (2.0, 0.61)], None)
        };
        let metrics = shrinkable(0.595);
        let advice = shrink_memory(&judged(&metrics)).expect("a loss of half a point");
        assert_eq!(advice.code, "cache.shrink_memory");
        assert_eq!(advice.severity, Severity::Info);
        let change = advice.change.expect("a settings change");
        assert_eq!(
            (change.current, change.suggested),
            (4u64.into(), 2u64.into())
        );

        assert!(shrink_memory(&judged(&shrinkable(0.55))).is_none());
        // Under half the memory used, or 1 MiB, or growing: no shrink.
        let mut half_empty = shrinkable(0.595);
        half_empty.weighted_bytes = MIB;
        half_empty.derive();
        let half_empty = with_curve(half_empty, &[(0.5, 0.595)], None);
        assert!(shrink_memory(&judged(&half_empty)).is_none());
        let small = with_curve(
            CacheMetrics::for_tests(600, 400, 950_000),
            &[(0.5, 0.6)],
            None,
        );
        assert!(shrink_memory(&judged(&small)).is_none());
        let growing = with_curve(
            CacheMetrics::for_tests(600, 400, 950_000),
            &[(0.5, 0.6), (2.0, 0.8)],
            None,
        );
        assert!(shrink_memory(&judged(&growing)).is_none());
    }

    #[test]
    fn low_hit_rate_fires_below_the_threshold_unless_growing_would_fix_it() {
        let metrics = with_curve(CacheMetrics::for_tests(300, 700, 0), &[(4.0, 0.35)], None);
        let advice = low_hit_rate(&judged(&metrics)).expect("a 30 % hit rate");
        assert_eq!(advice.code, "cache.low_hit_rate");
        assert_eq!(advice.severity, Severity::Warning);
        assert_eq!(
            advice.message,
            "hit rate is 30.0% over 1000 gets; even 4x the memory is predicted to reach only 35.0%, so the access pattern, not the size, limits it"
        );
        assert_eq!(advice.change, None);

        let without_curve = CacheMetrics::for_tests(300, 700, 0);
        let advice = low_hit_rate(&judged(&without_curve)).expect("a 30 % hit rate");
        assert!(advice
            .message
            .ends_with("too few sampled gets to predict the effect of a resize"));
        assert!(low_hit_rate(&judged(&CacheMetrics::for_tests(500, 500, 0))).is_none());
        let growing = with_curve(
            CacheMetrics::for_tests(300, 700, 950_000),
            &[(2.0, 0.6)],
            None,
        );
        assert!(low_hit_rate(&judged(&growing)).is_none());
    }

    #[test]
    fn memory_pressure_fires_on_a_full_bound_that_evicts_to_make_room() {
        let pressed = |size_evictions| {
            let mut metrics = CacheMetrics::for_tests(600, 400, 950_000);
            metrics.evictions.size = size_evictions;
            metrics.derive();
            metrics
        };
        let metrics = pressed(300);
        let advice = memory_pressure(&judged(&metrics)).expect("0.75 evictions per insert");
        assert_eq!(advice.code, "cache.memory_pressure");
        assert_eq!(advice.severity, Severity::Warning);
        assert_eq!(advice.evidence["size_evictions_per_insert"], 0.75);
        assert_eq!(advice.evidence["inserts"], 400.0);

        assert!(memory_pressure(&judged(&pressed(100))).is_none());
        let mut roomy = pressed(300);
        roomy.weighted_bytes = 800_000;
        roomy.derive();
        assert!(memory_pressure(&judged(&roomy)).is_none());
        let mut few_inserts = pressed(90);
        few_inserts.inserts = MIN_REQUESTS / 10 - 1;
        few_inserts.derive();
        assert!(memory_pressure(&judged(&few_inserts)).is_none());
    }

    #[test]
    fn ttl_too_short_fires_when_a_doubled_ttl_is_predicted_to_pay() {
        let expiring = |ttl_seconds, at_double_ttl| {
            let mut metrics = CacheMetrics::for_tests(600, 400, 0);
            metrics.ttl_seconds = ttl_seconds;
            metrics.evictions.expired = 200;
            metrics.derive();
            with_curve(metrics, &[], Some(at_double_ttl))
        };
        let metrics = expiring(Some(0.5), 0.7);
        let advice = ttl_too_short(&judged(&metrics)).expect("a 10-point gain");
        assert_eq!(advice.code, "cache.ttl_too_short");
        assert_eq!(advice.severity, Severity::Info);
        let change = advice.change.expect("a settings change");
        assert_eq!(change.key, "ASYNC_CACHE_TTL");
        // A TTL under a second is written as 1 s.
        assert_eq!(
            (change.current, change.suggested),
            (1u64.into(), 2u64.into())
        );
        assert_eq!(advice.evidence["predicted_hit_rate_2x_ttl"], 0.7);

        assert!(ttl_too_short(&judged(&expiring(None, 0.7))).is_none());
        assert!(ttl_too_short(&judged(&expiring(Some(60.0), 0.62))).is_none());
        let mut unexpired = expiring(Some(60.0), 0.7);
        unexpired.evictions.expired = 50;
        assert!(ttl_too_short(&judged(&unexpired)).is_none());
    }
}
