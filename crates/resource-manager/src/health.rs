//! The leak health rule: any resource alive past its kind's leak threshold is critical.

use std::time::Duration;

use resync_perf_core::{HealthReason, HealthStatus, HealthVerdict};

use crate::stats::ResourceStats;

/// Code of the reason [`leak_health`] gives for each kind with leaked resources.
pub const LEAKED_CODE: &str = "resources.leaked";

/// Judges resources by the rule "leaked resources > 0 → critical" (`docs/ARCHITECTURE.md`,
/// *Health rules*): one [`LEAKED_CODE`] reason per kind whose `leaked_now` is above zero —
/// status [`Critical`](HealthStatus::Critical), `measured` = `leaked_now`, `threshold` = 0,
/// and a message naming the kind and its leak threshold. [`Healthy`](HealthStatus::Healthy)
/// with no reasons otherwise.
///
/// `leaked_now` is as of the scan that produced `stats`
/// ([`ResourceTracker::stats`](crate::ResourceTracker::stats) scans).
#[must_use]
pub fn leak_health(stats: &[ResourceStats]) -> HealthVerdict {
    HealthVerdict::from_reasons(
        stats
            .iter()
            .filter(|kind| kind.leaked_now > 0)
            .map(leaked_reason)
            .collect(),
    )
}

fn leaked_reason(kind: &ResourceStats) -> HealthReason {
    HealthReason::new(
        LEAKED_CODE,
        HealthStatus::Critical,
        format!(
            "{} `{}` resource(s) alive past the kind's leak threshold of {}",
            kind.leaked_now,
            kind.kind,
            threshold_text(kind.leak_threshold)
        ),
        kind.leaked_now as f64,
        0.0,
    )
}

/// `300 s`, `0.05 s`; "none" for a kind that never leaks (it then has no leaks to report).
fn threshold_text(threshold: Option<Duration>) -> String {
    threshold.map_or_else(|| "none".to_owned(), |t| format!("{} s", t.as_secs_f64()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(name: &str, leaked_now: u64, threshold: Option<Duration>) -> ResourceStats {
        ResourceStats {
            kind: name.to_owned(),
            active: leaked_now + 1,
            peak: leaked_now + 1,
            created: leaked_now + 1,
            released: 0,
            released_without_close: 0,
            leaked_now,
            leaked_total: leaked_now,
            leaked_released: 0,
            mean_lifetime: Duration::ZERO,
            max_lifetime: Duration::ZERO,
            leak_threshold: threshold,
            limit: None,
            utilization: None,
        }
    }

    #[test]
    fn no_leak_is_healthy_without_reasons() {
        let verdict = leak_health(&[
            kind("file", 0, Some(Duration::from_secs(300))),
            kind("tcp_listener", 0, None),
        ]);
        assert_eq!(verdict, HealthVerdict::default());
        assert_eq!(leak_health(&[]).status, HealthStatus::Healthy);
    }

    #[test]
    fn each_leaking_kind_is_one_critical_reason_naming_it_and_its_threshold() {
        let verdict = leak_health(&[
            kind("db_connection", 2, Some(Duration::from_millis(50))),
            kind("file", 0, Some(Duration::from_secs(300))),
            kind("export_job", 1, Some(Duration::from_secs(300))),
        ]);
        assert_eq!(verdict.status, HealthStatus::Critical);
        let found: Vec<(&str, HealthStatus, f64, f64)> = verdict
            .reasons
            .iter()
            .map(|r| (r.code.as_str(), r.status, r.measured, r.threshold))
            .collect();
        assert_eq!(
            found,
            [
                (LEAKED_CODE, HealthStatus::Critical, 2.0, 0.0),
                (LEAKED_CODE, HealthStatus::Critical, 1.0, 0.0),
            ]
        );
        assert_eq!(
            verdict.reasons[0].message,
            "2 `db_connection` resource(s) alive past the kind's leak threshold of 0.05 s"
        );
        assert!(verdict.reasons[1].message.contains("`export_job`"));
        assert!(verdict.reasons[1].message.contains("300 s"));
    }
}
