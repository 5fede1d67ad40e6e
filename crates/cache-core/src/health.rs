//! Health of one cache by the cache rules of `docs/ARCHITECTURE.md` (*Health rules*): a low
//! hit rate (with enough traffic to judge) and memory pressure are degraded.

use resync_perf_core::{ratio, HealthReason, HealthStatus, HealthVerdict};

use crate::metrics::CacheMetrics;
use crate::recommend::MIN_REQUESTS;

/// Thresholds of the cache health rules (these are the defaults; `HEALTH_CACHE_MIN_HIT_RATE`
/// sets the hit rate).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CacheHealthThresholds {
    /// A hit rate below this is degraded (0.5), once the window has `min_requests` gets.
    pub min_hit_rate: f64,
    /// Weighted bytes above this share of the memory bound are degraded (0.8).
    pub max_memory_utilization: f64,
    /// Gets the window needs before its hit rate is judged ([`MIN_REQUESTS`]).
    pub min_requests: u64,
}

impl Default for CacheHealthThresholds {
    fn default() -> Self {
        Self {
            min_hit_rate: 0.5,
            max_memory_utilization: 0.8,
            min_requests: MIN_REQUESTS,
        }
    }
}

/// Judges the cache `metrics` describes, usually a window (`newer.delta(&older)`):
///
/// | code | fires when | status | `measured` | `threshold` |
/// |---|---|---|---|---|
/// | `cache.insufficient_data` | fewer than `min_requests` gets | healthy | gets | `min_requests` |
/// | `cache.low_hit_rate` | otherwise, hit rate < `min_hit_rate` | degraded | hit rate (0–1) | `min_hit_rate` |
/// | `cache.memory_pressure` | `weighted_bytes / max_memory_bytes` > `max_memory_utilization` | degraded | that share | `max_memory_utilization` |
///
/// With too few gets the hit rate is not judged at all — an idle cache is never called
/// ineffective — and the verdict says so with its `cache.insufficient_data` reason. Memory
/// pressure is judged whatever the traffic, on the snapshot's bytes and bound (a gauge: a
/// window keeps the newer snapshot's). Healthy, without reasons, when enough gets hit often
/// enough and memory is below the threshold.
#[must_use]
pub fn health(metrics: &CacheMetrics, thresholds: &CacheHealthThresholds) -> HealthVerdict {
    let mut verdict = HealthVerdict::default();
    let requests = metrics.requests();
    if requests < thresholds.min_requests {
        verdict.push(HealthReason::new(
            "cache.insufficient_data",
            HealthStatus::Healthy,
            format!(
                "only {requests} gets in the window; at least {} are needed to judge the hit rate",
                thresholds.min_requests
            ),
            requests as f64,
            thresholds.min_requests as f64,
        ));
    } else if let Some(hit_rate) = ratio(metrics.hits as f64, requests as f64) {
        if hit_rate < thresholds.min_hit_rate {
            verdict.push(HealthReason::new(
                "cache.low_hit_rate",
                HealthStatus::Degraded,
                format!(
                    "hit rate {hit_rate:.3} over {requests} gets is below {:.3}",
                    thresholds.min_hit_rate
                ),
                hit_rate,
                thresholds.min_hit_rate,
            ));
        }
    }
    let memory = ratio(
        metrics.weighted_bytes as f64,
        metrics.max_memory_bytes as f64,
    );
    if let Some(utilization) = memory.filter(|&u| u > thresholds.max_memory_utilization) {
        verdict.push(HealthReason::new(
            "cache.memory_pressure",
            HealthStatus::Degraded,
            format!(
                "{} of {} bytes used: memory utilization {utilization:.3} is above {:.3}",
                metrics.weighted_bytes, metrics.max_memory_bytes, thresholds.max_memory_utilization
            ),
            utilization,
            thresholds.max_memory_utilization,
        ));
    }
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A snapshot with `hits` and `misses`, `weighted_bytes` of a 1 000 000-byte bound.
    fn metrics(hits: u64, misses: u64, weighted_bytes: u64) -> CacheMetrics {
        CacheMetrics::for_tests(hits, misses, weighted_bytes)
    }

    fn judge(metrics: &CacheMetrics) -> HealthVerdict {
        health(metrics, &CacheHealthThresholds::default())
    }

    fn codes(verdict: &HealthVerdict) -> Vec<&str> {
        verdict.reasons.iter().map(|r| r.code.as_str()).collect()
    }

    #[test]
    fn defaults_follow_the_design() {
        let defaults = CacheHealthThresholds::default();
        assert_eq!(defaults.min_hit_rate, 0.5);
        assert_eq!(defaults.max_memory_utilization, 0.8);
        assert_eq!(defaults.min_requests, MIN_REQUESTS);
    }

    #[test]
    fn enough_hits_and_room_is_healthy_without_reasons() {
        let verdict = judge(&metrics(900, 100, 500_000));
        assert_eq!(verdict, HealthVerdict::default());
    }

    #[test]
    fn an_idle_cache_says_insufficient_data_and_is_never_called_low_hit_rate() {
        for (hits, misses) in [(0, 0), (0, MIN_REQUESTS - 1), (3, 7)] {
            let verdict = judge(&metrics(hits, misses, 0));
            assert_eq!(verdict.status, HealthStatus::Healthy, "{verdict:?}");
            assert_eq!(codes(&verdict), ["cache.insufficient_data"]);
            let reason = &verdict.reasons[0];
            assert_eq!(reason.status, HealthStatus::Healthy);
            assert_eq!(reason.measured, (hits + misses) as f64);
            assert_eq!(reason.threshold, MIN_REQUESTS as f64);
            assert!(
                reason
                    .message
                    .starts_with(&format!("only {} gets", hits + misses)),
                "{}",
                reason.message
            );
        }
    }

    #[test]
    fn a_low_hit_rate_with_enough_gets_is_degraded() {
        let verdict = judge(&metrics(300, 700, 0));
        assert_eq!(verdict.status, HealthStatus::Degraded);
        assert_eq!(codes(&verdict), ["cache.low_hit_rate"]);
        let reason = &verdict.reasons[0];
        assert_eq!(reason.status, HealthStatus::Degraded);
        assert_eq!((reason.measured, reason.threshold), (0.3, 0.5));
        assert_eq!(
            reason.message,
            "hit rate 0.300 over 1000 gets is below 0.500"
        );

        // At the threshold exactly it is not low; the minimum of gets is a setting.
        assert_eq!(judge(&metrics(500, 500, 0)).status, HealthStatus::Healthy);
        let lenient = CacheHealthThresholds {
            min_requests: 2_000,
            ..CacheHealthThresholds::default()
        };
        assert_eq!(
            codes(&health(&metrics(300, 700, 0), &lenient)),
            ["cache.insufficient_data"]
        );
    }

    #[test]
    fn memory_pressure_is_degraded_whatever_the_traffic() {
        let verdict = judge(&metrics(900, 100, 850_000));
        assert_eq!(verdict.status, HealthStatus::Degraded);
        assert_eq!(codes(&verdict), ["cache.memory_pressure"]);
        let reason = &verdict.reasons[0];
        assert_eq!(reason.status, HealthStatus::Degraded);
        assert!(
            (reason.measured - 0.85).abs() < 1e-12,
            "{}",
            reason.measured
        );
        assert_eq!(reason.threshold, 0.8);
        assert_eq!(
            reason.message,
            "850000 of 1000000 bytes used: memory utilization 0.850 is above 0.800"
        );

        // An idle cache full of entries loaded earlier is still judged on memory.
        let idle = judge(&metrics(0, 0, 900_000));
        assert_eq!(idle.status, HealthStatus::Degraded);
        assert_eq!(
            codes(&idle),
            ["cache.insufficient_data", "cache.memory_pressure"]
        );
        // At the threshold exactly there is no pressure.
        assert!(judge(&metrics(900, 100, 800_000)).reasons.is_empty());
    }

    #[test]
    fn both_rules_can_fire_together() {
        let verdict = judge(&metrics(100, 900, 990_000));
        assert_eq!(verdict.status, HealthStatus::Degraded);
        assert_eq!(
            codes(&verdict),
            ["cache.low_hit_rate", "cache.memory_pressure"]
        );
    }
}
