//! Track + drop of a `ResourceGuard`, on one thread and on two threads at once, beside two
//! baselines: the pair of clock reads every track + drop makes, and a bare registry behind one
//! global `Mutex<HashMap>` (no clock, no counters: what sharding avoids under contention).
//!
//! Beside them, `lease`: a `LeaseSlot` checkout + checkin (the path pools use for every
//! connection checkout), each thread on its own slot, with the caller's clock read outside the
//! measured pair (`pair`) and inside it (`pair_with_clock`, two `Instant::now()` like track +
//! drop).
//!
//! Two-thread figures are the wall time per pair of each thread while both run at once.

use std::collections::HashMap;
use std::hint::black_box;
use std::panic::Location;
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use criterion::{criterion_main, Criterion};
use resync_resource_manager::ResourceTracker;

/// Runs `pair(thread, i)` `iters` times on each of `threads` threads started together; returns the
/// slowest thread's time, i.e. the wall time of `iters` pairs under contention.
fn on_threads(threads: u64, iters: u64, pair: &(dyn Fn(u64, u64) + Sync)) -> Duration {
    let barrier = Barrier::new(threads as usize);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|thread| {
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    let start = Instant::now();
                    for i in 0..iters {
                        pair(thread, i);
                    }
                    start.elapsed()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().expect("bench thread does not panic"))
            .max()
            .unwrap_or_default()
    })
}

fn track_and_drop(c: &mut Criterion) {
    let tracker = ResourceTracker::new();
    let baseline: Mutex<HashMap<u64, &'static str>> = Mutex::new(HashMap::new());

    let mut group = c.benchmark_group("track_drop");
    group.bench_function("tracker/1_thread", |b| {
        b.iter(|| drop(black_box(tracker.track("bench", ""))));
    });
    group.bench_function("tracker/1_thread_with_label", |b| {
        b.iter(|| drop(black_box(tracker.track("bench", "orders-db #12"))));
    });
    group.bench_function("tracker/2_threads", |b| {
        b.iter_custom(|iters| {
            on_threads(2, iters, &|_, _| {
                drop(black_box(tracker.track("bench", "")));
            })
        });
    });
    // The two clock reads every pair makes (acquisition time, lifetime at release).
    group.bench_function("baseline_clock_pair/1_thread", |b| {
        b.iter(|| black_box(Instant::now()).elapsed());
    });
    group.bench_function("baseline_global_mutex_map/1_thread", |b| {
        let mut id = 0;
        b.iter(|| {
            id += 1;
            baseline.lock().expect("no poison").insert(id, "bench");
            black_box(baseline.lock().expect("no poison").remove(&id));
        });
    });
    group.bench_function("baseline_global_mutex_map/2_threads", |b| {
        b.iter_custom(|iters| {
            on_threads(2, iters, &|thread, i| {
                let id = i * 2 + thread;
                baseline.lock().expect("no poison").insert(id, "bench");
                black_box(baseline.lock().expect("no poison").remove(&id));
            })
        });
    });
    group.finish();
}

fn lease_checkout_checkin(c: &mut Criterion) {
    let tracker = ResourceTracker::new();
    let slots = [
        tracker.lease_slot("bench_conn", "conn #0"),
        tracker.lease_slot("bench_conn", "conn #1"),
    ];
    let location = Location::caller();
    let at = Instant::now();

    let mut group = c.benchmark_group("lease");
    group.bench_function("pair/1_thread", |b| {
        b.iter(|| {
            slots[0].checkout(black_box(location), black_box(at));
            slots[0].checkin(black_box(at));
        });
    });
    group.bench_function("pair_with_clock/1_thread", |b| {
        b.iter(|| {
            slots[0].checkout(black_box(location), Instant::now());
            slots[0].checkin(Instant::now());
        });
    });
    group.bench_function("pair/2_threads", |b| {
        b.iter_custom(|iters| {
            on_threads(2, iters, &|thread, _| {
                let slot = &slots[thread as usize];
                slot.checkout(black_box(location), black_box(at));
                slot.checkin(black_box(at));
            })
        });
    });
    group.bench_function("pair_with_clock/2_threads", |b| {
        b.iter_custom(|iters| {
            on_threads(2, iters, &|thread, _| {
                let slot = &slots[thread as usize];
                slot.checkout(black_box(location), Instant::now());
                slot.checkin(Instant::now());
            })
        });
    });
    group.finish();
}

/// Criterion's generated entry points, kept apart because `criterion_group!` emits an
/// undocumented `pub fn` that the workspace lints would reject.
#[allow(missing_docs, unreachable_pub)] // reason: macro-generated, not our API.
mod entry {
    use super::{lease_checkout_checkin, track_and_drop};
    criterion::criterion_group!(benches, track_and_drop, lease_checkout_checkin);
}

criterion_main!(entry::benches);
