//! Leak detection: thresholds, reports naming the caller's line, counting, the scanner.

use std::time::{Duration, Instant};

use resync_resource_manager::{KindConfig, LeakReport, LeakThreshold, ResourceTracker};

const DEADLINE: Duration = Duration::from_secs(20);

fn tiny_threshold() -> KindConfig {
    KindConfig {
        leak_threshold: LeakThreshold::After(Duration::from_millis(50)),
        ..KindConfig::default()
    }
}

/// Polls `leaks()` until `ready` accepts them, failing after a generous deadline.
async fn wait_for_leaks(
    tracker: &ResourceTracker,
    ready: impl Fn(&[LeakReport]) -> bool,
) -> Vec<LeakReport> {
    let start = Instant::now();
    loop {
        let leaks = tracker.leaks();
        if ready(&leaks) {
            return leaks;
        }
        assert!(start.elapsed() < DEADLINE, "leaks never became {leaks:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn leak_appears_past_threshold_then_its_release_is_counted() {
    let tracker = ResourceTracker::new();
    tracker.configure_kind("db_conn", tiny_threshold());
    let (guard, line) = (tracker.track("db_conn", "orders-db"), line!());

    let leaks = wait_for_leaks(&tracker, |leaks| !leaks.is_empty()).await;
    assert_eq!(leaks.len(), 1);
    let leak = &leaks[0];
    assert_eq!(leak.id, guard.id());
    assert_eq!(leak.kind, "db_conn");
    assert_eq!(leak.label, "orders-db");
    assert!(leak.age > Duration::from_millis(50), "age {:?}", leak.age);
    assert!(
        leak.acquired_at
            .starts_with(&format!("{}:{line}:", file!())),
        "acquired_at {} is not this test's line {line}",
        leak.acquired_at
    );
    assert!(leak.thread.as_deref().is_some_and(|t| !t.is_empty()));
    assert!(leak.backtrace.is_none(), "backtraces are off by default");
    assert!(guard.is_leaked());

    // Seen again by later scans, but counted once.
    assert_eq!(tracker.leaks().len(), 1);
    let stats = tracker.stats_for("db_conn").expect("kind is known");
    assert_eq!((stats.leaked_now, stats.leaked_total), (1, 1));

    drop(guard);
    assert!(tracker.leaks().is_empty());
    let stats = tracker.stats_for("db_conn").expect("kind is known");
    assert_eq!(stats.leaked_now, 0);
    assert_eq!(stats.leaked_total, 1);
    assert_eq!(stats.leaked_released, 1);
    assert_eq!(stats.released, 1);
    assert_eq!(stats.released_without_close, 1);
    assert_eq!(stats.active, 0);
}

#[tokio::test]
async fn a_never_kind_is_not_a_leak_however_old() {
    let tracker = ResourceTracker::with_default_leak_threshold(Duration::from_millis(50));
    tracker.configure_kind(
        "listener",
        KindConfig {
            leak_threshold: LeakThreshold::Never,
            ..KindConfig::default()
        },
    );
    let listener = tracker.track("listener", "0.0.0.0:8000");
    // Tracked after the listener: once it is a leak, the listener is older still.
    let connection = tracker.track("connection", "client");
    let leaks = wait_for_leaks(&tracker, |leaks| !leaks.is_empty()).await;
    assert_eq!(leaks.len(), 1);
    assert_eq!(leaks[0].kind, "connection");
    assert_eq!(
        tracker.stats_for("listener").map(|s| s.leaked_total),
        Some(0)
    );
    assert!(!listener.is_leaked());
    assert_eq!(leaks[0].id, connection.id());
}

#[tokio::test]
async fn leaks_are_listed_oldest_first_and_filtered_by_age() {
    let tracker = ResourceTracker::new();
    tracker.configure_kind("job", tiny_threshold());
    let first = tracker.track("job", "first");
    let second = tracker.track("job", "second");
    second.set_label("second, renamed");

    let leaks = wait_for_leaks(&tracker, |leaks| leaks.len() == 2).await;
    assert_eq!(leaks[0].id, first.id());
    assert_eq!(leaks[1].id, second.id());
    assert_eq!(leaks[1].label, "second, renamed");
    assert!(leaks[0].age >= leaks[1].age);

    assert!(tracker
        .leaks_older_than(Duration::from_secs(3600))
        .is_empty());
    let at_least_threshold = tracker.leaks_older_than(Duration::from_millis(50));
    assert_eq!(at_least_threshold.len(), 2);
    assert_eq!(tracker.stats_for("job").map(|s| s.leaked_total), Some(2));
}

#[tokio::test]
async fn backtrace_is_captured_when_the_kind_asks_for_it() {
    let tracker = ResourceTracker::new();
    tracker.configure_kind(
        "hunted",
        KindConfig {
            capture_backtrace: true,
            ..tiny_threshold()
        },
    );
    let _guard = tracker.track("hunted", "suspect");
    let leaks = wait_for_leaks(&tracker, |leaks| !leaks.is_empty()).await;
    let backtrace = leaks[0].backtrace.as_deref().expect("backtrace captured");
    assert!(!backtrace.is_empty());
}

#[tokio::test]
async fn a_resource_tracked_in_a_task_names_the_task() {
    let tracker = ResourceTracker::new();
    tracker.configure_kind("task_held", tiny_threshold());
    let task_tracker = tracker.clone();
    let guard = tokio::spawn(async move { task_tracker.track("task_held", "from a task") })
        .await
        .expect("the task does not panic");
    let leaks = wait_for_leaks(&tracker, |leaks| !leaks.is_empty()).await;
    let thread = leaks[0].thread.as_deref().expect("thread known");
    assert!(thread.starts_with("task "), "thread {thread}");
    drop(guard);
}

#[tokio::test]
async fn the_scanner_counts_leaks_and_stops_with_the_last_tracker_clone() {
    let tracker = ResourceTracker::new();
    tracker.configure_kind("held", tiny_threshold());
    let scanner = tracker.spawn_leak_scanner(Duration::from_millis(10));
    let guard = tracker.track("held", "by the test");
    let kept_alive = tracker.track("held", "outlives the tracker");

    // Only the scanner scans here: `is_leaked` reads the mark without scanning.
    let start = Instant::now();
    while !guard.is_leaked() {
        assert!(start.elapsed() < DEADLINE, "the scanner never saw the leak");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(guard);
    let stats = tracker.stats_for("held").expect("kind is known");
    assert_eq!(stats.leaked_released, 1);
    assert!(stats.leaked_total >= 1);

    // Live guards do not keep the scanner running; tracker clones do.
    let clone = tracker.clone();
    drop(tracker);
    tokio::task::yield_now().await;
    assert!(!scanner.is_finished(), "a tracker clone is still alive");
    drop(clone);
    tokio::time::timeout(DEADLINE, scanner)
        .await
        .expect("the scanner stops once the tracker is gone")
        .expect("the scanner does not panic");
    drop(kept_alive);
}
