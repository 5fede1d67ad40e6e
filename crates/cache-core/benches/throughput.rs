//! Instrumented cache (statistics and advisor on) against bare moka, side by side, on one
//! pre-generated key stream: Zipf 0.99 over 1 000 000 keys, capacity 100 000, 1 and 2 threads.
//!
//! Groups: `get_hit` (gets of keys that are cached), `get_with` (read-through), `insert`.
//! After Criterion's report the bench prints each pair's ratio, measured again in
//! interleaved rounds (moka, resync, resync, moka, …) so that load from other processes on a
//! shared machine hits both sides alike; the median of the per-round ratios is reported.

#![allow(missing_docs)]

#[path = "../tests/support/zipf.rs"]
mod zipf;

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use resync_cache_core::Cache;

const KEYS: usize = 1_000_000;
const CAPACITY: u64 = 100_000;
const STREAM: usize = 1 << 21;
const THREADS: [usize; 2] = [1, 2];

/// The two caches under test behind one interface.
#[derive(Clone)]
enum Subject {
    Instrumented(Cache<u64, u64>),
    Moka(moka::future::Cache<u64, u64>),
}

impl Subject {
    fn name(&self) -> &'static str {
        match self {
            Subject::Instrumented(_) => "resync",
            Subject::Moka(_) => "moka",
        }
    }

    async fn get(&self, key: u64) -> Option<u64> {
        match self {
            Subject::Instrumented(cache) => cache.get(&key).await,
            Subject::Moka(cache) => cache.get(&key).await,
        }
    }

    async fn get_with(&self, key: u64) -> u64 {
        match self {
            Subject::Instrumented(cache) => cache.get_with(key, async move { key }).await,
            Subject::Moka(cache) => cache.get_with(key, async move { key }).await,
        }
    }

    async fn insert(&self, key: u64) {
        match self {
            Subject::Instrumented(cache) => {
                cache.insert(key, key).await.expect("small entries fit");
            }
            Subject::Moka(cache) => cache.insert(key, key).await,
        }
    }

    async fn settle(&self) {
        match self {
            Subject::Instrumented(cache) => cache.run_pending_tasks().await,
            Subject::Moka(cache) => cache.run_pending_tasks().await,
        }
    }

    fn contains(&self, key: u64) -> bool {
        match self {
            Subject::Instrumented(cache) => cache.contains_key(&key),
            Subject::Moka(cache) => cache.contains_key(&key),
        }
    }
}

fn subjects() -> [Subject; 2] {
    let instrumented = Cache::builder()
        .name("bench")
        .max_entries(CAPACITY)
        .max_memory_bytes(CAPACITY * 512)
        .build()
        .expect("valid settings");
    [
        Subject::Instrumented(instrumented),
        Subject::Moka(moka::future::Cache::new(CAPACITY)),
    ]
}

#[derive(Clone, Copy)]
enum Operation {
    GetHit,
    GetWith,
    Insert,
}

impl Operation {
    fn group(self) -> &'static str {
        match self {
            Operation::GetHit => "get_hit",
            Operation::GetWith => "get_with",
            Operation::Insert => "insert",
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime")
}

/// Runs `iters` operations on each of `threads` threads over the stream; returns wall time.
fn run(
    subject: &Subject,
    operation: Operation,
    stream: &Arc<Vec<u64>>,
    threads: usize,
    iters: u64,
) -> Duration {
    let barrier = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|thread| {
            let subject = subject.clone();
            let stream = Arc::clone(stream);
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let runtime = runtime();
                let mut position = thread * stream.len() / threads;
                barrier.wait();
                runtime.block_on(async {
                    for _ in 0..iters {
                        let key = stream[position];
                        position = (position + 1) % stream.len();
                        match operation {
                            Operation::GetHit => {
                                black_box(subject.get(key).await);
                            }
                            Operation::GetWith => {
                                black_box(subject.get_with(key).await);
                            }
                            Operation::Insert => subject.insert(key).await,
                        }
                    }
                });
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    for handle in handles {
        handle.join().expect("bench thread panicked");
    }
    start.elapsed()
}

type Totals = Arc<Mutex<BTreeMap<(String, usize, &'static str), (Duration, u64)>>>;

/// Operations per thread in one paired round.
const PAIRED_OPS: u64 = 400_000;
const PAIRED_ROUNDS: usize = 9;

/// Per-round throughput ratios (resync / moka) in interleaved rounds, and the best rates.
fn paired(
    caches: &[Subject; 2],
    operation: Operation,
    keys: &Arc<Vec<u64>>,
    threads: usize,
) -> (Vec<f64>, f64, f64) {
    let rate = |subject: &Subject| {
        let elapsed = run(subject, operation, keys, threads, PAIRED_OPS);
        (PAIRED_OPS * threads as u64) as f64 / elapsed.as_secs_f64()
    };
    let mut ratios = Vec::with_capacity(PAIRED_ROUNDS);
    let (mut best_ours, mut best_moka) = (0.0f64, 0.0f64);
    for round in 0..PAIRED_ROUNDS {
        let (ours, moka) = if round % 2 == 0 {
            let moka = rate(&caches[1]);
            (rate(&caches[0]), moka)
        } else {
            let ours = rate(&caches[0]);
            (ours, rate(&caches[1]))
        };
        best_ours = best_ours.max(ours);
        best_moka = best_moka.max(moka);
        ratios.push(ours / moka);
    }
    ratios.sort_by(f64::total_cmp);
    (ratios, best_ours, best_moka)
}

type Paired = Vec<(&'static str, usize, Vec<f64>, f64, f64)>;

fn bench(c: &mut Criterion, totals: &Totals, paired_results: &mut Paired) {
    let zipf = zipf::Zipf::new(KEYS, 0.99);
    let stream = Arc::new(zipf.trace(STREAM, 0xbe4c_0001));
    let runtime = runtime();

    for operation in [Operation::GetHit, Operation::GetWith, Operation::Insert] {
        let caches = subjects();
        // Warm both caches with the stream, read-through, so they hold the popular keys.
        runtime.block_on(async {
            for subject in &caches {
                for &key in stream.iter() {
                    subject.get_with(key).await;
                }
                subject.settle().await;
            }
        });
        let keys = match operation {
            // The same stream minus the keys either cache lacks, so every get is a hit.
            Operation::GetHit => Arc::new(
                stream
                    .iter()
                    .copied()
                    .filter(|&key| caches.iter().all(|subject| subject.contains(key)))
                    .collect::<Vec<_>>(),
            ),
            Operation::GetWith | Operation::Insert => Arc::clone(&stream),
        };
        let mut group = c.benchmark_group(operation.group());
        group
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3))
            .sample_size(20);
        for threads in THREADS {
            group.throughput(Throughput::Elements(threads as u64));
            for subject in &caches {
                let id = BenchmarkId::new(subject.name(), format!("{threads}_threads"));
                group.bench_function(id, |b| {
                    b.iter_custom(|iters| {
                        let elapsed = run(subject, operation, &keys, threads, iters);
                        let key = (operation.group().to_owned(), threads, subject.name());
                        let mut totals = totals.lock().expect("totals lock");
                        let entry = totals.entry(key).or_default();
                        entry.0 += elapsed;
                        entry.1 += iters * threads as u64;
                        elapsed
                    });
                });
            }
        }
        group.finish();
        for threads in THREADS {
            let (ratios, ours, moka) = paired(&caches, operation, &keys, threads);
            paired_results.push((operation.group(), threads, ratios, ours, moka));
        }
    }
}

fn main() {
    let totals = Totals::default();
    let mut paired_results = Paired::new();
    let mut criterion = Criterion::default().configure_from_args();
    bench(&mut criterion, &totals, &mut paired_results);
    criterion.final_summary();

    println!(
        "\npaired rounds ({PAIRED_ROUNDS} interleaved rounds of {PAIRED_OPS} ops per thread): resync / moka throughput"
    );
    println!(
        "{:<10} {:>7} {:>12} {:>12} {:>8} {:>8} {:>8}",
        "group", "threads", "resync Mop/s", "moka Mop/s", "min", "median", "max"
    );
    for (group, threads, ratios, ours, moka) in &paired_results {
        println!(
            "{group:<10} {threads:>7} {:>12.3} {:>12.3} {:>8.3} {:>8.3} {:>8.3}",
            ours / 1e6,
            moka / 1e6,
            ratios[0],
            ratios[ratios.len() / 2],
            ratios[ratios.len() - 1]
        );
    }

    let totals = totals.lock().expect("totals lock");
    println!("\ncriterion runs, all timed iterations (Mop/s), resync with statistics and advisor on vs bare moka:");
    println!(
        "{:<10} {:>7} {:>10} {:>10} {:>7}",
        "group", "threads", "resync", "moka", "ratio"
    );
    for operation in ["get_hit", "get_with", "insert"] {
        for threads in THREADS {
            let rate = |name| {
                totals
                    .get(&(operation.to_owned(), threads, name))
                    .map(|(elapsed, ops)| *ops as f64 / elapsed.as_secs_f64() / 1e6)
            };
            if let (Some(ours), Some(moka)) = (rate("resync"), rate("moka")) {
                println!(
                    "{operation:<10} {threads:>7} {ours:>10.3} {moka:>10.3} {:>7.3}",
                    ours / moka
                );
            }
        }
    }
}
