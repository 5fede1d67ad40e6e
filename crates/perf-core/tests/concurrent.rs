//! Recording from several threads into one histogram loses nothing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use resync_perf_core::Histogram;

const THREADS: u64 = 4;
const RECORDS_PER_THREAD: u64 = 100_000;

/// The value thread `thread` records at step `step`: spread over several magnitudes.
fn value(thread: u64, step: u64) -> u64 {
    (step % 1_000) * 1_000 + thread * 17 + (step % 7)
}

#[test]
fn concurrent_recording_loses_no_count_and_keeps_the_exact_sum() {
    let histogram = Histogram::new();
    let writers_done = AtomicBool::new(false);

    thread::scope(|scope| {
        // A reader takes snapshots while the writers run: counts never go backwards.
        let reader = scope.spawn(|| {
            let mut previous = histogram.snapshot();
            loop {
                let done = writers_done.load(Ordering::Acquire);
                let current = histogram.snapshot();
                assert!(current.count() >= previous.count());
                let window = current.subtract(&previous);
                assert_eq!(
                    window.count(),
                    current.count() - previous.count(),
                    "no bucket shrank"
                );
                previous = current;
                if done {
                    break;
                }
            }
        });
        let writers: Vec<_> = (0..THREADS)
            .map(|thread| {
                let histogram = &histogram;
                scope.spawn(move || {
                    for step in 0..RECORDS_PER_THREAD {
                        histogram.record(value(thread, step));
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.join().expect("writer thread panicked");
        }
        writers_done.store(true, Ordering::Release);
        reader.join().expect("reader thread panicked");
    });

    let snapshot = histogram.snapshot();
    let expected_sum: u64 = (0..THREADS)
        .flat_map(|thread| (0..RECORDS_PER_THREAD).map(move |step| value(thread, step)))
        .sum();
    assert_eq!(snapshot.count(), THREADS * RECORDS_PER_THREAD);
    assert_eq!(snapshot.sum(), expected_sum);
}

#[test]
fn concurrent_record_n_and_durations_add_up() {
    let histogram = Histogram::new();
    thread::scope(|scope| {
        for thread in 0..THREADS {
            let histogram = &histogram;
            scope.spawn(move || {
                for step in 0..10_000 {
                    histogram.record_n(thread + 1, 3);
                    histogram.record_duration(std::time::Duration::from_nanos(step));
                }
            });
        }
    });
    let snapshot = histogram.snapshot();
    assert_eq!(snapshot.count(), THREADS * 10_000 * 4);
    let record_n_sum: u64 = (1..=THREADS).map(|value| value * 3 * 10_000).sum();
    let durations_sum = THREADS * (0..10_000_u64).sum::<u64>();
    assert_eq!(snapshot.sum(), record_n_sum + durations_sum);
}
