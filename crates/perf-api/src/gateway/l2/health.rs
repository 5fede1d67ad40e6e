//! The health rule of the component `gateway_l2`: availability, then the error rate of
//! lookups and stores over the window.

use resync_perf_core::{HealthReason, HealthStatus, HealthVerdict};

use super::{L2Metrics, L2Op};
use crate::gateway::GatewayHealthThresholds;

impl L2Metrics {
    /// Judges the L2 these figures describe, usually a window (`newer.delta(&older)`, whose
    /// availability is the newer snapshot's). Never critical: L2 is an optimisation, requests
    /// go on without it.
    ///
    /// | code | fires when | status | `measured` | `threshold` |
    /// |---|---|---|---|---|
    /// | `gateway_l2.unavailable` | L2 is not usable | degraded | 0 | 1 |
    /// | `gateway_l2.insufficient_data` | fewer than `min_requests` attempted lookups (or none) | healthy | attempted lookups | `min_requests` |
    /// | `gateway_l2.error_rate` | otherwise, error rate > `max_error_rate_degraded` | degraded | error rate (0–1) | `max_error_rate_degraded` |
    /// | `gateway_l2.error_rate` | otherwise | healthy (the evidence) | error rate (0–1) | `max_error_rate_degraded` |
    ///
    /// The reason of `gateway_l2.unavailable` is the one given to
    /// [`L2Stats::set_available`](super::L2Stats::set_available), else the last error recorded.
    #[must_use]
    pub fn health(&self, thresholds: &GatewayHealthThresholds) -> HealthVerdict {
        let mut verdict = HealthVerdict::default();
        if !self.available {
            let why = self
                .unavailable_reason
                .as_deref()
                .map(str::to_owned)
                .or_else(|| {
                    self.last_error.as_deref().map(|error| {
                        let op = self.last_error_op.map_or("", L2Op::as_str);
                        let age = self.last_error_age_seconds.unwrap_or_default();
                        format!("last error ({op}, {age:.0} s ago): {error}")
                    })
                })
                .unwrap_or_else(|| "not reported available yet".to_owned());
            verdict.push(HealthReason::new(
                "gateway_l2.unavailable",
                HealthStatus::Degraded,
                format!(
                    "the L2 cache (Redis) is unavailable: {why}; requests go on with the in-process cache only ({} lookups skipped in the window)",
                    self.lookups.skipped
                ),
                0.0,
                1.0,
            ));
        }
        let lookups = self.lookups.attempted();
        let operations = self.operations();
        let errors = self.operation_errors();
        let evidence = format!(
            "{lookups} lookups ({} hits, {} misses, {} of another version, {} failed, {} skipped) and {} stores ({} failed)",
            self.lookups.hit,
            self.lookups.miss,
            self.lookups.other_version,
            self.lookups.error,
            self.lookups.skipped,
            self.stores.total(),
            self.stores.error,
        );
        let judged = self
            .error_rate()
            .filter(|_| lookups >= thresholds.min_requests.max(1));
        let Some(error_rate) = judged else {
            verdict.push(HealthReason::new(
                "gateway_l2.insufficient_data",
                HealthStatus::Healthy,
                format!(
                    "only {evidence} in the window; at least {} lookups are needed to judge the L2 error rate",
                    thresholds.min_requests.max(1)
                ),
                lookups as f64,
                thresholds.min_requests as f64,
            ));
            return verdict;
        };
        let threshold = thresholds.max_error_rate_degraded;
        let (status, comparison) = if error_rate > threshold {
            (HealthStatus::Degraded, "above")
        } else {
            (HealthStatus::Healthy, "within")
        };
        verdict.push(HealthReason::new(
            "gateway_l2.error_rate",
            status,
            format!(
                "L2 error rate {error_rate:.3} ({errors} of {operations} operations) is {comparison} {threshold:.3}: {evidence}"
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
    use crate::gateway::{L2LookupCounts, L2StoreCounts};

    fn window(available: bool, hits: u64, errors: u64, store_errors: u64) -> L2Metrics {
        L2Metrics {
            lookups: L2LookupCounts {
                hit: hits,
                error: errors,
                ..L2LookupCounts::default()
            },
            stores: L2StoreCounts {
                stored: 0,
                error: store_errors,
            },
            available,
            ..L2Metrics::default()
        }
    }

    fn judge(metrics: &L2Metrics) -> HealthVerdict {
        metrics.health(&GatewayHealthThresholds::default())
    }

    #[test]
    fn health_is_degraded_when_unavailable_or_failing_and_never_critical() {
        // Too few lookups: not judged, whatever fails.
        let quiet = judge(&window(true, 5, 14, 100));
        assert_eq!(quiet.status, HealthStatus::Healthy);
        assert_eq!(quiet.reasons[0].code, "gateway_l2.insufficient_data");
        assert_eq!(quiet.reasons[0].measured, 19.0);
        assert_eq!(quiet.reasons[0].threshold, 20.0);
        // Enough, failing rarely: healthy, with the evidence.
        let fine = judge(&window(true, 95, 5, 0));
        assert_eq!(fine.status, HealthStatus::Healthy);
        assert_eq!(fine.reasons.len(), 1);
        assert_eq!(fine.reasons[0].code, "gateway_l2.error_rate");
        assert_eq!(fine.reasons[0].measured, 0.05);
        assert!(fine.reasons[0].message.contains("5 of 100 operations"));
        // Failing often (stores count too): degraded, never critical.
        for (hits, errors, store_errors) in [(94, 6, 0), (20, 0, 5), (0, 100, 100)] {
            let failing = judge(&window(true, hits, errors, store_errors));
            assert_eq!(failing.status, HealthStatus::Degraded, "{hits}/{errors}");
            assert_eq!(failing.reasons[0].code, "gateway_l2.error_rate");
            assert_eq!(failing.reasons[0].threshold, 0.05);
        }
        // Unavailable: degraded with the reason given, else the last error.
        let mut down = window(false, 0, 0, 0);
        down.unavailable_reason = Some("subscriber disconnected".to_owned());
        let verdict = judge(&down);
        assert_eq!(verdict.status, HealthStatus::Degraded);
        assert_eq!(verdict.reasons[0].code, "gateway_l2.unavailable");
        assert!(verdict.reasons[0]
            .message
            .contains("unavailable: subscriber disconnected"));
        down.unavailable_reason = None;
        down.last_error = Some("connection refused".to_owned());
        down.last_error_op = Some(L2Op::Subscribe);
        down.last_error_age_seconds = Some(3.0);
        let verdict = judge(&down);
        assert!(
            verdict.reasons[0]
                .message
                .contains("last error (subscribe, 3 s ago): connection refused"),
            "{verdict:?}"
        );
    }
}
