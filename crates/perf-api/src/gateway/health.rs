//! The gateway's health rule: the upstream error rate over the window.

use resync_perf_core::{HealthReason, HealthStatus, HealthVerdict};

use super::GatewayMetrics;

/// Thresholds of the gateway health rule (settings `HEALTH_GATEWAY_*`; these are the
/// defaults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GatewayHealthThresholds {
    /// An upstream error rate above this is degraded (`HEALTH_GATEWAY_MAX_ERROR_RATE`, 0.05).
    pub max_error_rate_degraded: f64,
    /// An upstream error rate above this is critical (`HEALTH_GATEWAY_CRITICAL_ERROR_RATE`,
    /// 0.25).
    pub max_error_rate_critical: f64,
    /// Fewer upstream exchanges in the window than this are too few to judge
    /// (`HEALTH_GATEWAY_MIN_REQUESTS`, 20).
    pub min_requests: u64,
}

impl Default for GatewayHealthThresholds {
    fn default() -> Self {
        Self {
            max_error_rate_degraded: 0.05,
            max_error_rate_critical: 0.25,
            min_requests: 20,
        }
    }
}

impl GatewayMetrics {
    /// Judges the gateway these figures describe, usually a window (`newer.delta(&older)`),
    /// by its upstream error rate: (5xx answers + unreachable + failed + timed out + pool
    /// exhausted) / upstream exchanges.
    ///
    /// | code | fires when | status | `measured` | `threshold` |
    /// |---|---|---|---|---|
    /// | `gateway.insufficient_data` | fewer than `min_requests` upstream exchanges (or none) | healthy | exchanges | `min_requests` |
    /// | `gateway.upstream_error_rate` | otherwise, error rate > `max_error_rate_critical` | critical | error rate (0–1) | `max_error_rate_critical` |
    /// | `gateway.upstream_error_rate` | otherwise, error rate > `max_error_rate_degraded` | degraded | error rate (0–1) | `max_error_rate_degraded` |
    ///
    /// With too few exchanges the error rate is not judged — a quiet gateway is never
    /// "0 % errors" — and the verdict says so. Healthy, without reasons, when enough
    /// exchanges fail rarely enough.
    #[must_use]
    pub fn health(&self, thresholds: &GatewayHealthThresholds) -> HealthVerdict {
        let mut verdict = HealthVerdict::default();
        let upstream = &self.upstream;
        let exchanges = upstream.total();
        let error_rate = upstream.error_rate();
        let judged = error_rate.filter(|_| exchanges >= thresholds.min_requests);
        let Some(error_rate) = judged else {
            verdict.push(HealthReason::new(
                "gateway.insufficient_data",
                HealthStatus::Healthy,
                format!(
                    "only {exchanges} upstream exchanges in the window ({} requests); at least {} are needed to judge the upstream error rate",
                    self.total_requests(),
                    thresholds.min_requests.max(1)
                ),
                exchanges as f64,
                thresholds.min_requests as f64,
            ));
            return verdict;
        };
        let (status, threshold) = if error_rate > thresholds.max_error_rate_critical {
            (HealthStatus::Critical, thresholds.max_error_rate_critical)
        } else if error_rate > thresholds.max_error_rate_degraded {
            (HealthStatus::Degraded, thresholds.max_error_rate_degraded)
        } else {
            return verdict;
        };
        verdict.push(HealthReason::new(
            "gateway.upstream_error_rate",
            status,
            format!(
                "upstream error rate {error_rate:.3} over {exchanges} exchanges is above {threshold:.3} \
                 ({} 5xx answers, {} unreachable, {} failed, {} timed out, {} with the pool exhausted)",
                upstream.answered_5xx,
                upstream.unreachable,
                upstream.failed,
                upstream.timed_out,
                upstream.exhausted,
            ),
            error_rate,
            threshold,
        ));
        verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::UpstreamCounts;

    fn window(answered_2xx: u64, answered_5xx: u64, unreachable: u64) -> GatewayMetrics {
        GatewayMetrics {
            upstream: UpstreamCounts {
                answered_2xx,
                answered_5xx,
                unreachable,
                ..UpstreamCounts::default()
            },
            ..GatewayMetrics::default()
        }
    }

    fn judge(metrics: &GatewayMetrics) -> HealthVerdict {
        metrics.health(&GatewayHealthThresholds::default())
    }

    #[test]
    fn too_few_exchanges_are_not_judged() {
        for (ok, errors) in [(0, 0), (0, 19), (10, 9)] {
            let verdict = judge(&window(ok, errors, 0));
            assert_eq!(verdict.status, HealthStatus::Healthy);
            let reason = &verdict.reasons[0];
            assert_eq!(reason.code, "gateway.insufficient_data");
            assert_eq!(reason.measured, (ok + errors) as f64);
            assert_eq!(reason.threshold, 20.0);
            assert!(reason
                .message
                .starts_with(&format!("only {} upstream", ok + errors)));
        }
        // Without a threshold, no data is still no verdict.
        let none = window(0, 0, 0).health(&GatewayHealthThresholds {
            min_requests: 0,
            ..GatewayHealthThresholds::default()
        });
        assert_eq!(none.reasons[0].code, "gateway.insufficient_data");
    }

    #[test]
    fn the_error_rate_picks_the_status_at_each_threshold() {
        let cases = [
            // (2xx, 5xx, unreachable) → status, threshold
            ((100, 0, 0), None),
            ((95, 5, 0), None),
            ((94, 3, 3), Some((HealthStatus::Degraded, 0.05))),
            ((75, 25, 0), Some((HealthStatus::Degraded, 0.05))),
            ((74, 13, 13), Some((HealthStatus::Critical, 0.25))),
            ((0, 0, 20), Some((HealthStatus::Critical, 0.25))),
        ];
        for ((ok, errors, unreachable), expected) in cases {
            let verdict = judge(&window(ok, errors, unreachable));
            match expected {
                None => assert_eq!(verdict, HealthVerdict::default(), "{ok}/{errors}"),
                Some((status, threshold)) => {
                    assert_eq!(verdict.status, status, "{ok}/{errors}/{unreachable}");
                    let reason = &verdict.reasons[0];
                    assert_eq!(reason.code, "gateway.upstream_error_rate");
                    assert_eq!(reason.threshold, threshold);
                    let total = (ok + errors + unreachable) as f64;
                    assert_eq!(reason.measured, (errors + unreachable) as f64 / total);
                }
            }
        }
    }
}
