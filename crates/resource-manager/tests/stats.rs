//! Statistics: exact counts under concurrency, invariants under random interleavings, limits.

use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use resync_resource_manager::{Error, KindConfig, ResourceGuard, ResourceTracker};

const TASKS: usize = 100;
const PER_TASK: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stats_are_exact_after_ten_thousand_concurrent_track_and_drop() {
    let tracker = ResourceTracker::new();
    // Phase 1: every task tracks and releases one at a time, closing every other resource.
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let tracker = tracker.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..PER_TASK {
                let mut guard = tracker.track("churn", format!("task {task} #{i}"));
                if i % 2 == 0 {
                    guard.mark_closed();
                }
                if i % 10 == 0 {
                    tokio::task::yield_now().await;
                }
                drop(guard);
            }
        }));
    }
    for task in tasks {
        task.await.expect("no task panics");
    }
    let total = (TASKS * PER_TASK) as u64;
    let churn = tracker.stats_for("churn").expect("kind is known");
    assert_eq!(churn.created, total);
    assert_eq!(churn.released, total);
    assert_eq!(churn.released_without_close, total / 2);
    assert_eq!(churn.active, 0);
    assert!(churn.peak >= 1 && churn.peak <= TASKS as u64);

    // Phase 2: every task holds all its resources until every task has acquired its own, so
    // the peak is exactly the total.
    let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let tracker = tracker.clone();
        let barrier = Arc::clone(&barrier);
        tasks.push(tokio::spawn(async move {
            let held: Vec<ResourceGuard> =
                (0..PER_TASK).map(|_| tracker.track("held", "")).collect();
            barrier.wait().await;
            drop(held);
        }));
    }
    for task in tasks {
        task.await.expect("no task panics");
    }
    let held = tracker.stats_for("held").expect("kind is known");
    assert_eq!(held.created, total);
    assert_eq!(held.released, total);
    assert_eq!(held.released_without_close, total);
    assert_eq!(held.active, 0);
    assert_eq!(held.peak, total);
    assert!(tracker.leaks().is_empty());

    let kinds: Vec<String> = tracker.stats().into_iter().map(|s| s.kind).collect();
    assert_eq!(kinds, ["churn", "held"]);
}

#[test]
fn std_threads_track_concurrently_with_exact_counts() {
    // Guards and trackers travel to any thread (checked at compile time).
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<ResourceGuard>();
    assert_send_sync::<ResourceTracker>();

    let tracker = ResourceTracker::new();
    let ids: Vec<u64> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..8)
            .map(|_| {
                scope.spawn(|| {
                    (0..1_000)
                        .map(|_| {
                            let mut guard = tracker.track("thread_churn", "");
                            guard.mark_closed();
                            guard.id()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|thread| thread.join().expect("no thread panics"))
            .collect()
    });
    let distinct: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(distinct.len(), ids.len(), "ids are unique across threads");
    let stats = tracker.stats_for("thread_churn").expect("kind is known");
    assert_eq!(
        (stats.created, stats.released, stats.active),
        (8_000, 8_000, 0)
    );
    assert_eq!(stats.released_without_close, 0);
}

#[test]
fn the_limit_is_reported_and_enforced_by_try_track() {
    let tracker = ResourceTracker::new();
    tracker.configure_kind(
        "slot",
        KindConfig {
            limit: Some(2),
            ..KindConfig::default()
        },
    );
    let first = tracker.try_track("slot", "a").expect("under the limit");
    let _second = tracker.try_track("slot", "b").expect("at the limit");
    match tracker.try_track("slot", "c") {
        Err(Error::LimitReached { kind, limit }) => assert_eq!((kind, limit), ("slot", 2)),
        other => panic!("expected LimitReached, got {other:?}"),
    }
    let stats = tracker.stats_for("slot").expect("kind is known");
    assert_eq!(stats.limit, Some(2));
    assert_eq!(stats.utilization, Some(1.0));
    assert_eq!(stats.created, 2, "a refused try_track creates nothing");

    drop(first);
    let _third = tracker.try_track("slot", "c").expect("room again");
    // `track` reports the limit but never refuses.
    let _over = tracker.track("slot", "d");
    let stats = tracker.stats_for("slot").expect("kind is known");
    assert_eq!(stats.active, 3);
    assert_eq!(stats.utilization, Some(1.5));
    assert!(tracker.stats_for("unknown").is_none());
}

#[tokio::test]
async fn lifetimes_are_recorded_on_release() {
    let tracker = ResourceTracker::new();
    tracker.configure_kind("configured_only", KindConfig::default());
    let guard = tracker.track("timed", "");
    // Wait for the guard to reach an age (an event), not for a fixed time.
    while guard.age() < Duration::from_millis(20) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let age_before_drop = guard.age();
    drop(guard);
    let quick = tracker.track("timed", "");
    drop(quick);
    let stats = tracker.stats_for("timed").expect("kind is known");
    assert!(stats.max_lifetime >= age_before_drop);
    assert!(stats.mean_lifetime >= age_before_drop / 2);
    assert!(stats.mean_lifetime <= stats.max_lifetime);
    let configured = tracker
        .stats_for("configured_only")
        .expect("configured kinds are listed");
    assert_eq!(configured.created, 0);
    assert_eq!(configured.mean_lifetime, Duration::ZERO);
    assert_eq!(configured.utilization, None);
}

#[test]
fn mean_and_max_lifetimes_stay_exact_past_the_u64_nanosecond_range() {
    // 10 000 resources each held 30 days (and i ns): their lifetimes add up to 2.6e19 ns,
    // past u64::MAX (1.8e19), where a u64 sum in nanoseconds wraps after three weeks. The
    // checkouts and checkins are stamped with made-up instants (nanoseconds since the
    // tracker's epoch), as a pool with its own clock stamps them.
    const SLOTS: u64 = 10_000;
    const HELD: Duration = Duration::from_secs(30 * 86_400);
    let held_nanos = u64::try_from(HELD.as_nanos()).expect("fits");
    let tracker = ResourceTracker::new();
    let slots: Vec<_> = (0..SLOTS)
        .map(|_| tracker.lease_slot("long_lived", ""))
        .collect();
    let here = std::panic::Location::caller();
    for (i, slot) in (0_u64..).zip(&slots) {
        let checked_in = i64::try_from(held_nanos + i).expect("fits");
        slot.checkout_nanos(here, 0);
        slot.checkin_nanos(checked_in);
    }
    let total: u128 = (0..SLOTS).map(|i| u128::from(held_nanos + i)).sum();
    assert!(total > u128::from(u64::MAX));
    let mean = Duration::from_nanos(u64::try_from(total / u128::from(SLOTS)).expect("fits"));
    let max = HELD + Duration::from_nanos(SLOTS - 1);
    assert_eq!(mean, HELD + Duration::from_nanos((SLOTS - 1) / 2));
    let expect_exact = |what: &str| {
        let stats = tracker.stats_for("long_lived").expect("kind is known");
        assert_eq!(
            (stats.created, stats.released, stats.active),
            (SLOTS, SLOTS, 0),
            "{what}"
        );
        assert_eq!(stats.mean_lifetime, mean, "{what}");
        assert_eq!(stats.max_lifetime, max, "{what}");
    };
    // Summed over the live slots' own counts...
    expect_exact("live slots");
    // ...and after every slot folded its counts into the kind, from one thread (one stripe).
    drop(slots);
    expect_exact("dropped slots");
}

#[derive(Debug, Clone)]
enum Op {
    Track(usize),
    Release(usize),
    Close(usize),
    Check,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..3usize).prop_map(Op::Track),
        2 => any::<usize>().prop_map(Op::Release),
        1 => any::<usize>().prop_map(Op::Close),
        1 => Just(Op::Check),
    ]
}

const KINDS: [&str; 3] = ["alpha", "beta", "gamma"];

proptest! {
    #[test]
    fn counters_hold_their_invariants_for_any_interleaving(ops in prop::collection::vec(op(), 1..200)) {
        let started = Instant::now();
        let tracker = ResourceTracker::new();
        let mut live: Vec<ResourceGuard> = Vec::new();
        // Model: (created, released, without close, peak) per kind.
        let mut model = [(0u64, 0u64, 0u64, 0u64); 3];
        for op in ops {
            match op {
                Op::Track(kind) => {
                    live.push(tracker.track(KINDS[kind], "p"));
                    let m = &mut model[kind];
                    m.0 += 1;
                    m.3 = m.3.max(m.0 - m.1);
                }
                Op::Release(i) | Op::Close(i) if !live.is_empty() => {
                    let mut guard = live.swap_remove(i % live.len());
                    let kind = KINDS.iter().position(|k| *k == guard.kind()).expect("known kind");
                    model[kind].1 += 1;
                    if matches!(op, Op::Close(_)) {
                        guard.mark_closed();
                    } else {
                        model[kind].2 += 1;
                    }
                }
                Op::Release(_) | Op::Close(_) | Op::Check => {}
            }
            for stats in tracker.stats() {
                prop_assert_eq!(stats.created, stats.released + stats.active);
                prop_assert!(stats.peak >= stats.active);
                prop_assert!(stats.released_without_close <= stats.released);
                let kind = KINDS.iter().position(|k| *k == stats.kind).expect("known kind");
                let (created, released, without_close, peak) = model[kind];
                prop_assert_eq!(
                    (stats.created, stats.released, stats.released_without_close, stats.peak),
                    (created, released, without_close, peak)
                );
            }
        }
        // Default threshold is 300 s: nothing in a short case is a leak.
        prop_assume!(started.elapsed() < Duration::from_secs(300));
        prop_assert!(tracker.leaks().is_empty());
    }
}
