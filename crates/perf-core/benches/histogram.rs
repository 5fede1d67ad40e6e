//! Cost of `Histogram::record` from one and two threads, beside a bare `AtomicU64::fetch_add`
//! baseline, and the cost of `Histogram::snapshot`.
//!
//! Multi-thread figures are wall-clock time per record with all threads recording into one
//! shared histogram (aggregate throughput), measured with `iter_custom`.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use criterion::{criterion_main, Criterion, Throughput};
use resync_perf_core::Histogram;

/// Latency-like values (100 ns … ~100 ms), so records spread over many buckets.
fn sample_values() -> Vec<u64> {
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    (0..1_024)
        .map(|_| {
            // xorshift64: cheap, deterministic, good enough to scatter bucket indices.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            100 + (state >> (40 + state % 8))
        })
        .collect()
}

/// Runs `iters` records split over `threads` threads and returns the wall-clock time from the
/// common start to the last thread's end.
fn record_on_threads(histogram: &Histogram, values: &[u64], threads: u64, iters: u64) -> Duration {
    let start_line = Barrier::new(threads as usize + 1);
    thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|thread| {
                let (histogram, start_line) = (histogram, &start_line);
                let share = iters / threads + u64::from(thread < iters % threads);
                scope.spawn(move || {
                    start_line.wait();
                    for step in 0..share {
                        histogram.record(black_box(
                            values[(step as usize + thread as usize * 512) & 1_023],
                        ));
                    }
                })
            })
            .collect();
        start_line.wait();
        let started = Instant::now();
        for worker in workers {
            worker.join().expect("bench thread panicked");
        }
        started.elapsed()
    })
}

fn record(c: &mut Criterion) {
    let values = sample_values();
    let mut group = c.benchmark_group("histogram_record");
    group.throughput(Throughput::Elements(1));

    let counter = AtomicU64::new(0);
    group.bench_function("baseline_atomic_fetch_add_1_thread", |b| {
        let mut step = 0_usize;
        b.iter(|| {
            step = step.wrapping_add(1);
            counter.fetch_add(black_box(values[step & 1_023]), Ordering::Relaxed);
        });
    });

    let histogram = Histogram::new();
    group.bench_function("record_1_thread", |b| {
        let mut step = 0_usize;
        b.iter(|| {
            step = step.wrapping_add(1);
            histogram.record(black_box(values[step & 1_023]));
        });
    });

    let shared = Histogram::new();
    group.bench_function("record_2_threads_shared", |b| {
        b.iter_custom(|iters| record_on_threads(&shared, &values, 2, iters));
    });

    let filled = Histogram::new();
    values.iter().for_each(|&value| filled.record(value));
    group.throughput(Throughput::Elements(1));
    group.bench_function("snapshot", |b| b.iter(|| black_box(filled.snapshot())));
    group.finish();
}

/// Criterion's generated entry points, kept apart because `criterion_group!` emits an
/// undocumented `pub fn` that the workspace lints would reject.
#[allow(missing_docs, unreachable_pub)] // reason: macro-generated, not our API.
mod entry {
    use super::record;
    criterion::criterion_group!(benches, record);
}

criterion_main!(entry::benches);
