//! Lease slots: checkouts count like `track`, leaks name the checkout's line, exact counts
//! under concurrency, drop semantics, and scans never mix two checkouts.

use std::collections::VecDeque;
use std::panic::Location;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use resync_resource_manager::{
    KindConfig, LeakThreshold, LeaseGroup, LeaseSlot, ResourceGuard, ResourceStats, ResourceTracker,
};

const DEADLINE: Duration = Duration::from_secs(20);

fn threshold(after: Duration) -> KindConfig {
    KindConfig {
        leak_threshold: LeakThreshold::After(after),
        ..KindConfig::default()
    }
}

/// An instant `ago` in the past (a checkout's time is the caller's to give).
fn ago(ago: Duration) -> Instant {
    Instant::now()
        .checked_sub(ago)
        .expect("the monotonic clock started long enough ago")
}

/// The counters two trackers must agree on (lifetimes differ: they are real times).
fn counts(stats: &ResourceStats) -> [u64; 8] {
    [
        stats.created,
        stats.released,
        stats.released_without_close,
        stats.active,
        stats.peak,
        stats.leaked_now,
        stats.leaked_total,
        stats.leaked_released,
    ]
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Checkout(usize),
    Checkin(usize),
    /// The resource is destroyed (slot dropped, guard dropped unclosed) and a new one made.
    Replace(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..4_usize).prop_map(Op::Checkout),
        (0..4_usize).prop_map(Op::Checkin),
        (0..4_usize).prop_map(Op::Replace),
    ]
}

fn closed(mut guard: ResourceGuard) {
    guard.mark_closed();
}

proptest! {
    #[test]
    fn checkouts_count_exactly_like_track_for_the_same_sequence(
        ops in proptest::collection::vec(op(), 0..80),
    ) {
        let leased = ResourceTracker::new();
        let tracked = ResourceTracker::new();
        let mut slots: Vec<LeaseSlot> = (0..4).map(|i| leased.lease_slot("conn", format!("#{i}"))).collect();
        let mut guards: Vec<Option<ResourceGuard>> = (0..4).map(|_| None).collect();
        for op in ops {
            match op {
                Op::Checkout(i) => {
                    slots[i].checkout(Location::caller(), Instant::now());
                    // A checkout of a checked-out slot checks it in first.
                    if let Some(guard) = guards[i].take() {
                        closed(guard);
                    }
                    guards[i] = Some(tracked.track("conn", ""));
                }
                Op::Checkin(i) => {
                    slots[i].checkin(Instant::now());
                    if let Some(guard) = guards[i].take() {
                        closed(guard);
                    }
                }
                Op::Replace(i) => {
                    slots[i] = leased.lease_slot("conn", format!("#{i} again"));
                    guards[i] = None;
                }
            }
            prop_assert_eq!(slots[i_of(op)].is_checked_out(), guards[i_of(op)].is_some());
        }
        if let (Some(lease), Some(track)) = (leased.stats_for("conn"), tracked.stats_for("conn")) {
            prop_assert_eq!(counts(&lease), counts(&track));
        }
        drop(slots);
        drop(guards);
        if let (Some(lease), Some(track)) = (leased.stats_for("conn"), tracked.stats_for("conn")) {
            prop_assert_eq!(counts(&lease), counts(&track));
            prop_assert_eq!(lease.active, 0);
            prop_assert_eq!(lease.created, lease.released);
        }
    }
}

fn i_of(op: Op) -> usize {
    match op {
        Op::Checkout(i) | Op::Checkin(i) | Op::Replace(i) => i,
    }
}

#[test]
fn a_checkout_past_its_threshold_is_a_leak_at_the_checkout_line_until_checked_in() {
    let tracker = ResourceTracker::new();
    tracker.configure_kind("db_conn", threshold(Duration::from_millis(50)));
    let slot = tracker.lease_slot("db_conn", "orders-db #3");
    let at = Instant::now();
    let (location, line) = (Location::caller(), line!());
    slot.checkout(location, at);
    assert!(slot.is_checked_out());

    // Wait (bounded) for the checkout to age past the threshold.
    let start = Instant::now();
    let leaks = loop {
        let leaks = tracker.leaks();
        if !leaks.is_empty() {
            break leaks;
        }
        assert!(start.elapsed() < DEADLINE, "the checkout never leaked");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(leaks.len(), 1);
    let leak = &leaks[0];
    assert_eq!(leak.id, slot.id());
    assert_eq!(
        (leak.kind.as_str(), leak.label.as_str()),
        ("db_conn", "orders-db #3")
    );
    assert!(leak.age > Duration::from_millis(50), "age {:?}", leak.age);
    assert!(
        leak.age <= at.elapsed(),
        "age is measured from the checkout's `at`"
    );
    assert!(
        leak.acquired_at
            .starts_with(&format!("{}:{line}:", file!())),
        "acquired_at {} is not this test's line {line}",
        leak.acquired_at
    );
    assert_eq!(leak.thread, None, "a checkout records no thread");
    assert!(slot.is_leaked());

    // Seen again, counted once.
    assert_eq!(tracker.leaks().len(), 1);
    let stats = tracker.stats_for("db_conn").expect("kind is known");
    assert_eq!(
        (stats.leaked_now, stats.leaked_total, stats.leaked_released),
        (1, 1, 0)
    );

    slot.checkin(Instant::now());
    assert!(!slot.is_checked_out() && !slot.is_leaked());
    assert!(tracker.leaks().is_empty());
    let stats = tracker.stats_for("db_conn").expect("kind is known");
    assert_eq!(
        (stats.leaked_now, stats.leaked_total, stats.leaked_released),
        (0, 1, 1)
    );
    assert_eq!(
        (stats.created, stats.released, stats.released_without_close),
        (1, 1, 0)
    );
    assert!(
        stats.max_lifetime > Duration::from_millis(50),
        "the hold time is the lifetime"
    );

    // Each checkout is its own leak: one checked out "an hour ago" is a second one.
    let (location, line) = (Location::caller(), line!());
    slot.checkout(location, ago(Duration::from_secs(3600)));
    let leaks = tracker.leaks();
    assert_eq!(leaks.len(), 1);
    assert!(leaks[0].age >= Duration::from_secs(3600));
    assert!(leaks[0]
        .acquired_at
        .starts_with(&format!("{}:{line}:", file!())));
    slot.checkin(Instant::now());
    let stats = tracker.stats_for("db_conn").expect("kind is known");
    assert_eq!((stats.leaked_total, stats.leaked_released), (2, 2));
    assert!(stats.max_lifetime >= Duration::from_secs(3600));
}

#[test]
fn a_kind_that_never_leaks_never_reports_a_checkout() {
    let tracker = ResourceTracker::new();
    tracker.configure_kind(
        "listener",
        KindConfig {
            leak_threshold: LeakThreshold::Never,
            ..KindConfig::default()
        },
    );
    let slot = tracker.lease_slot("listener", "");
    slot.checkout(Location::caller(), ago(Duration::from_secs(3600)));
    assert!(tracker.leaks().is_empty());
    assert_eq!(
        tracker.stats_for("listener").map(|s| s.leaked_total),
        Some(0)
    );
}

#[test]
fn concurrent_checkouts_on_many_slots_keep_exact_counts_and_peak() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<LeaseSlot>();

    const THREADS: usize = 4;
    const SLOTS: usize = 8;
    const ROUNDS: usize = 200;
    let tracker = ResourceTracker::new();
    // Phase 1: every thread checks out all its slots, waits for all threads, checks them in.
    let barrier = Barrier::new(THREADS);
    std::thread::scope(|scope| {
        for _ in 0..THREADS {
            scope.spawn(|| {
                let slots: Vec<LeaseSlot> =
                    (0..SLOTS).map(|_| tracker.lease_slot("held", "")).collect();
                for _ in 0..ROUNDS {
                    for slot in &slots {
                        slot.checkout(Location::caller(), Instant::now());
                    }
                    barrier.wait();
                    for slot in &slots {
                        slot.checkin(Instant::now());
                    }
                    barrier.wait();
                }
            });
        }
    });
    let held = tracker.stats_for("held").expect("kind is known");
    let total = (THREADS * SLOTS * ROUNDS) as u64;
    assert_eq!(
        (held.created, held.released, held.active),
        (total, total, 0)
    );
    assert_eq!(held.released_without_close, 0);
    assert_eq!(
        held.peak,
        (THREADS * SLOTS) as u64,
        "every slot was out at each barrier"
    );

    // Phase 2: like a pool, slots move between threads through a shared idle queue.
    let slots: Vec<LeaseSlot> = (0..SLOTS)
        .map(|i| tracker.lease_slot("pooled", format!("conn {i}")))
        .collect();
    let idle = Mutex::new((0..SLOTS).collect::<VecDeque<usize>>());
    const PER_THREAD: usize = 2_000;
    std::thread::scope(|scope| {
        for _ in 0..THREADS {
            scope.spawn(|| {
                let mut done = 0;
                while done < PER_THREAD {
                    let Some(index) = idle.lock().expect("no poison").pop_front() else {
                        std::thread::yield_now();
                        continue;
                    };
                    slots[index].checkout(Location::caller(), Instant::now());
                    slots[index].checkin(Instant::now());
                    idle.lock().expect("no poison").push_back(index);
                    done += 1;
                }
            });
        }
    });
    let pooled = tracker.stats_for("pooled").expect("kind is known");
    let total = (THREADS * PER_THREAD) as u64;
    assert_eq!(
        (pooled.created, pooled.released, pooled.active),
        (total, total, 0)
    );
    assert!(pooled.peak >= 1 && pooled.peak <= THREADS.min(SLOTS) as u64);
}

#[test]
fn stats_read_while_slots_are_dropped_count_every_checkout_once() {
    // A live slot keeps its counts itself and a dropped one folds them into its kind: a stats
    // read racing the drops must never see a count twice or lose one, so the totals it sees
    // only grow, and end exact.
    const SLOTS: u64 = 200;
    const CHECKOUTS: u64 = 5;
    let tracker = ResourceTracker::new();
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            let mut last = (0, 0);
            let mut reads = 0_u64;
            while !done.load(Ordering::Acquire) || reads == 0 {
                if let Some(stats) = tracker.stats_for("conn") {
                    let now = (stats.created, stats.released);
                    assert!(
                        now.0 >= last.0 && now.1 >= last.1,
                        "counts went back from {last:?} to {now:?}"
                    );
                    last = now;
                }
                reads += 1;
            }
            reads
        });
        for _ in 0..SLOTS {
            let slot = tracker.lease_slot("conn", "");
            for _ in 0..CHECKOUTS {
                slot.checkout(Location::caller(), Instant::now());
                slot.checkin(Instant::now());
            }
            drop(slot);
        }
        done.store(true, Ordering::Release);
        assert!(reader.join().expect("reader") > 0);
    });
    let stats = tracker.stats_for("conn").expect("kind is known");
    assert_eq!(
        (stats.created, stats.released, stats.active),
        (SLOTS * CHECKOUTS, SLOTS * CHECKOUTS, 0)
    );
    assert_eq!(stats.released_without_close, 0);
}

#[test]
fn dropping_a_checked_out_slot_releases_it() {
    let tracker = ResourceTracker::new();
    tracker.configure_kind("conn", threshold(Duration::from_secs(1)));
    let idle = tracker.lease_slot("conn", "idle");
    let out = tracker.lease_slot("conn", "out");
    out.checkout(Location::caller(), ago(Duration::from_secs(3600)));
    assert_eq!(tracker.leaks().len(), 1, "reported before the drop");
    drop(out);
    drop(idle);

    assert!(tracker.leaks().is_empty());
    let stats = tracker.stats_for("conn").expect("kind is known");
    assert_eq!((stats.created, stats.released, stats.active), (1, 1, 0));
    assert_eq!(
        stats.released_without_close, 1,
        "dropped while out: not a checkin"
    );
    assert_eq!((stats.leaked_total, stats.leaked_released), (1, 1));
}

#[test]
fn a_scan_never_pairs_one_checkout_location_with_another_checkout_time() {
    let tracker = ResourceTracker::new();
    tracker.configure_kind("conn", threshold(Duration::from_secs(60)));
    let slot = tracker.lease_slot("conn", "");
    let (old, old_line) = (Location::caller(), line!());
    let young = Location::caller();
    let stop = AtomicBool::new(false);
    let mut reports = 0_usize;
    let rounds = std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            // Alternate a checkout an hour old (always a leak) with a fresh one (never).
            let mut rounds = 0_u64;
            while !stop.load(Ordering::Acquire) {
                slot.checkout(old, ago(Duration::from_secs(3600)));
                slot.checkin(Instant::now());
                slot.checkout(young, Instant::now());
                slot.checkin(Instant::now());
                rounds += 1;
            }
            rounds
        });
        for _ in 0..3_000 {
            for leak in tracker.leaks() {
                assert!(
                    leak.acquired_at
                        .starts_with(&format!("{}:{old_line}:", file!())),
                    "a fresh checkout reported as a leak: {leak:?}"
                );
                // The scan reads its clock once, before it visits the slot: a checkout made after
                // that reads a little younger than an hour, still far past the threshold.
                assert!(leak.age > Duration::from_secs(3000), "age {:?}", leak.age);
                reports += 1;
            }
        }
        stop.store(true, Ordering::Release);
        writer.join().expect("the writer does not panic")
    });
    let stats = tracker.stats_for("conn").expect("kind is known");
    assert_eq!(
        (stats.created, stats.released, stats.active),
        (2 * rounds, 2 * rounds, 0)
    );
    assert_eq!(
        stats.leaked_total, stats.leaked_released,
        "every reported checkout ended"
    );
    assert!(stats.leaked_total <= rounds);
    println!("{reports} leak reports in {rounds} rounds of checkouts changing under the scans");
}

#[test]
fn a_group_counts_its_own_leaked_checkouts_as_of_the_last_scan() {
    let tracker = ResourceTracker::new();
    tracker.configure_kind("db_conn", threshold(Duration::from_secs(10)));
    let orders = tracker.lease_group("db_conn", "orders-db");
    let users = tracker.lease_group("db_conn", "users-db");
    let (a, b, c) = (orders.slot(), orders.slot(), orders.slot());
    let user = users.slot();
    let plain = tracker.lease_slot("db_conn", "orders-db");
    assert_eq!(
        (a.kind(), orders.kind(), orders.label()),
        ("db_conn", "db_conn", "orders-db")
    );

    // Two of the orders checkouts and the plain slot's are an hour old; one is fresh.
    a.checkout(Location::caller(), ago(Duration::from_secs(3600)));
    b.checkout(Location::caller(), ago(Duration::from_secs(3600)));
    c.checkout(Location::caller(), Instant::now());
    user.checkout(Location::caller(), Instant::now());
    plain.checkout(Location::caller(), ago(Duration::from_secs(3600)));
    assert_eq!(orders.leaked_now(), 0, "reading the count does not scan");

    let leaks = tracker.leaks();
    assert_eq!(leaks.len(), 3, "{leaks:?}");
    assert!(leaks.iter().all(|leak| leak.label == "orders-db"));
    assert_eq!(
        (orders.leaked_now(), users.leaked_now()),
        (2, 0),
        "a group counts its own slots, not every slot with its label"
    );
    assert_eq!(
        tracker.stats_for("db_conn").map(|s| s.leaked_now),
        Some(3),
        "the group slots are ordinary slots of the kind"
    );
    assert_eq!(orders.leaked_now(), 2, "later scans count nothing twice");
    let clone: LeaseGroup = orders.clone();
    assert_eq!(clone.leaked_now(), 2, "clones share the count");

    // A return uncounts at once, without a scan; so does dropping a slot that is out.
    a.checkin(Instant::now());
    assert_eq!(orders.leaked_now(), 1);
    drop(b);
    assert_eq!(orders.leaked_now(), 0);
    let stats = tracker.stats_for("db_conn").expect("kind is known");
    assert_eq!(
        (stats.leaked_now, stats.leaked_total, stats.leaked_released),
        (1, 3, 2)
    );

    // A counted checkout stays counted until returned, even when the threshold is raised.
    a.checkout(Location::caller(), ago(Duration::from_secs(3600)));
    assert_eq!(tracker.leaks().len(), 2);
    assert_eq!(orders.leaked_now(), 1);
    tracker.configure_kind("db_conn", threshold(Duration::from_secs(7200)));
    assert!(tracker.leaks().is_empty());
    assert_eq!(orders.leaked_now(), 1);
    a.checkin(Instant::now());
    assert_eq!(orders.leaked_now(), 0);
    c.checkin(Instant::now());
    user.checkin(Instant::now());
    plain.checkin(Instant::now());
}

#[test]
fn a_group_count_racing_scans_and_returns_never_goes_below_zero_and_ends_at_zero() {
    const SLOTS: usize = 4;
    const ROUNDS: usize = 2_000;
    let tracker = ResourceTracker::new();
    tracker.configure_kind("conn", threshold(Duration::from_millis(1)));
    let group = tracker.lease_group("conn", "pool");
    let slots: Vec<LeaseSlot> = (0..SLOTS).map(|_| group.slot()).collect();
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let scanner = scope.spawn(|| {
            let mut scans = 0_u64;
            while !done.load(Ordering::Acquire) || scans == 0 {
                drop(tracker.leaks());
                let leaked = group.leaked_now();
                assert!(leaked <= SLOTS as u64, "count {leaked} is past the slots");
                scans += 1;
            }
            scans
        });
        for _ in 0..ROUNDS {
            for slot in &slots {
                slot.checkout(Location::caller(), ago(Duration::from_secs(60)));
            }
            for slot in &slots {
                slot.checkin(Instant::now());
            }
        }
        done.store(true, Ordering::Release);
        assert!(scanner.join().expect("scanner") > 0);
    });
    assert_eq!(group.leaked_now(), 0);
    let stats = tracker.stats_for("conn").expect("kind is known");
    assert_eq!(stats.leaked_now, 0);
    assert_eq!(stats.leaked_total, stats.leaked_released);
}
