//! The leak health rule on a live tracker: healthy until a resource outlives its kind's
//! threshold, critical while it is held, healthy again once it is released.

use std::time::{Duration, Instant};

use resync_perf_core::HealthStatus;
use resync_resource_manager::{leak_health, KindConfig, LeakThreshold, ResourceTracker};

const DEADLINE: Duration = Duration::from_secs(20);

#[tokio::test]
async fn a_leak_turns_the_tracker_critical_until_it_is_released() {
    let tracker = ResourceTracker::new();
    tracker.configure_kind(
        "export_job",
        KindConfig {
            leak_threshold: LeakThreshold::After(Duration::from_millis(20)),
            ..KindConfig::default()
        },
    );
    let _file = tracker.track("file", "report.csv");
    let job = tracker.track("export_job", "nightly export");
    let verdict = tracker.health();
    assert_eq!(verdict.status, HealthStatus::Healthy, "{verdict:?}");
    assert!(verdict.reasons.is_empty());

    // Wait (bounded) for the scan that sees the job past its threshold.
    let start = Instant::now();
    let stats = loop {
        let stats = tracker.stats();
        if stats.iter().any(|kind| kind.leaked_now > 0) {
            break stats;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "the job never leaked: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let verdict = leak_health(&stats);
    assert_eq!(verdict.status, HealthStatus::Critical);
    assert_eq!(verdict.reasons.len(), 1, "{verdict:?}");
    let reason = &verdict.reasons[0];
    assert_eq!(reason.code, "resources.leaked");
    assert_eq!(reason.status, HealthStatus::Critical);
    assert_eq!((reason.measured, reason.threshold), (1.0, 0.0));
    assert_eq!(
        reason.message,
        "1 `export_job` resource(s) alive past the kind's leak threshold of 0.02 s"
    );
    assert_eq!(
        tracker.health(),
        verdict,
        "the method judges the tracker's stats"
    );

    drop(job);
    let verdict = tracker.health();
    assert_eq!(verdict.status, HealthStatus::Healthy, "{verdict:?}");
    assert!(verdict.reasons.is_empty());
}
