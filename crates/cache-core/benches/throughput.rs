//! Instrumented cache (statistics and advisor on) against bare moka, side by side, on one
//! pre-generated key stream: Zipf 0.99 over 1 000 000 keys, capacity 100 000, 1 and 2 threads.
//!
//! Groups: `get_hit` (gets of keys that are cached), `get_with` (read-through), `insert`;
//! subjects: the instrumented cache without expiration (no eviction listener), bare moka
//! (the instrumented cache's policy: its entries all weigh the per-entry floor, so its moka
//! counts them without a weigher), moka with a 512 B weigher, moka with the weigher and an
//! empty eviction listener, and an expiring pair (the instrumented cache with a TTL, so with
//! the listener, against moka with the weigher and TTL). `CACHE_BENCH_GROUPS=insert,get_hit` runs only those groups.
//! After Criterion's report (wall time) the bench measures each pair's ratio again in
//! interleaved rounds whose order rotates, from the threads' on-CPU time (Linux schedstat), so
//! that other processes on a shared machine do not decide the ratio; it prints min, median
//! and max of the per-round ratios.

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

/// TTL of the expiring pair (`resync_ttl`, `moka_ttl`): long enough that nothing expires
/// during the bench, so it measures what an expiring configuration costs, not expirations.
const TTL: Duration = Duration::from_secs(3_600);

/// One cache under test.
#[derive(Clone)]
struct Subject {
    name: &'static str,
    cache: Kind,
}

#[derive(Clone)]
enum Kind {
    Instrumented(Cache<u64, u64>),
    Moka(moka::future::Cache<u64, u64>),
}

impl Subject {
    async fn get(&self, key: u64) -> Option<u64> {
        match &self.cache {
            Kind::Instrumented(cache) => cache.get(&key).await,
            Kind::Moka(cache) => cache.get(&key).await,
        }
    }

    async fn get_with(&self, key: u64) -> u64 {
        match &self.cache {
            Kind::Instrumented(cache) => cache.get_with(key, async move { key }).await,
            Kind::Moka(cache) => cache.get_with(key, async move { key }).await,
        }
    }

    async fn insert(&self, key: u64) {
        match &self.cache {
            Kind::Instrumented(cache) => {
                cache.insert(key, key).await.expect("small entries fit");
            }
            Kind::Moka(cache) => cache.insert(key, key).await,
        }
    }

    async fn settle(&self) {
        match &self.cache {
            Kind::Instrumented(cache) => cache.run_pending_tasks().await,
            Kind::Moka(cache) => cache.run_pending_tasks().await,
        }
    }

    fn contains(&self, key: u64) -> bool {
        match &self.cache {
            Kind::Instrumented(cache) => cache.contains_key(&key),
            Kind::Moka(cache) => cache.contains_key(&key),
        }
    }
}

/// Subjects, in this order: resync, moka, moka_weighted, moka_listener, resync_ttl, moka_ttl.
const SUBJECTS: usize = 6;

fn weighted_moka() -> moka::future::CacheBuilder<u64, u64, moka::future::Cache<u64, u64>> {
    moka::future::Cache::builder()
        .max_capacity(CAPACITY * 512)
        .weigher(|_key: &u64, _value: &u64| 512)
}

fn subjects() -> [Subject; SUBJECTS] {
    let instrumented = |ttl: Option<Duration>| {
        let builder = Cache::builder()
            .name("bench")
            .max_entries(CAPACITY)
            .max_memory_bytes(CAPACITY * 512);
        match ttl {
            Some(ttl) => builder.ttl(ttl),
            None => builder,
        }
        .build()
        .expect("valid settings")
    };
    let subject = |name, cache| Subject { name, cache };
    [
        // Statistics and advisor on; no expiration, so no eviction listener.
        subject("resync", Kind::Instrumented(instrumented(None))),
        // Bare, unweighted moka: the same policy as the instrumented cache's, whose entries
        // all weigh the 512 B floor, so it counts them without a weigher (see
        // `src/cache/store.rs`); read-through ratios compare equal miss counts.
        subject("moka", Kind::Moka(moka::future::Cache::new(CAPACITY))),
        // moka with a 512 B weigher and the memory bound, nothing else: what a weigher costs
        // moka (a weighed moka sizes its frequency sketch at a quarter of the entries, so it
        // misses more on get_with).
        subject("moka_weighted", Kind::Moka(weighted_moka().build())),
        // The weigher plus an empty eviction listener: what the listener alone costs moka.
        subject(
            "moka_listener",
            Kind::Moka(
                weighted_moka()
                    .eviction_listener(|_key, _value, _cause| {})
                    .build(),
            ),
        ),
        // The expiring configuration: the instrumented cache with a TTL (eviction listener
        // on, exact causes) against moka with the same weigher and TTL.
        subject("resync_ttl", Kind::Instrumented(instrumented(Some(TTL)))),
        subject(
            "moka_ttl",
            Kind::Moka(weighted_moka().time_to_live(TTL).build()),
        ),
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

/// Nanoseconds the calling thread has spent on a CPU (Linux `schedstat`); `None` elsewhere.
fn thread_cpu_ns() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// Wall time of a run, and the on-CPU time summed over its threads (time a thread waited
/// for a CPU while other processes ran is excluded).
#[derive(Clone, Copy)]
struct Timing {
    wall: Duration,
    cpu: Option<Duration>,
}

/// Runs `iters` operations on each of `threads` threads over the stream.
fn run(
    subject: &Subject,
    operation: Operation,
    stream: &Arc<Vec<u64>>,
    threads: usize,
    iters: u64,
) -> Timing {
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
                let cpu_before = thread_cpu_ns();
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
                Some(thread_cpu_ns()? - cpu_before?)
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    let mut cpu = Some(0u64);
    for handle in handles {
        let used = handle.join().expect("bench thread panicked");
        cpu = cpu.zip(used).map(|(total, used)| total + used);
    }
    Timing {
        wall: start.elapsed(),
        cpu: cpu.map(Duration::from_nanos),
    }
}

type Totals = Arc<Mutex<BTreeMap<(String, usize, &'static str), (Duration, u64)>>>;

/// Operations per thread in one paired round.
const PAIRED_OPS: u64 = 300_000;
const PAIRED_ROUNDS: usize = 7;

/// Results of the interleaved rounds for one group and thread count.
struct PairedResult {
    group: &'static str,
    threads: usize,
    /// Best throughput of each subject (in [`subjects`]' order), ops/s.
    best: [f64; SUBJECTS],
    /// Sorted per-round ratios resync / moka.
    versus_moka: Vec<f64>,
    /// Sorted per-round ratios resync / moka_weighted.
    versus_weighted: Vec<f64>,
    /// Sorted per-round ratios resync / moka_listener.
    versus_listener: Vec<f64>,
    /// Sorted per-round ratios resync_ttl / moka_ttl.
    ttl_versus_moka_ttl: Vec<f64>,
}

/// Runs the subjects in interleaved rounds (the order rotates every round).
fn paired(
    caches: &[Subject; SUBJECTS],
    operation: Operation,
    keys: &Arc<Vec<u64>>,
    threads: usize,
) -> PairedResult {
    // Throughput per unit of on-CPU time, times the thread count: what the threads would
    // reach if nothing else ran on their cores (wall time when schedstat is unavailable).
    let rate = |subject: &Subject| {
        let timing = run(subject, operation, keys, threads, PAIRED_OPS);
        let seconds = timing.cpu.map_or(timing.wall.as_secs_f64(), |cpu| {
            cpu.as_secs_f64() / threads as f64
        });
        (PAIRED_OPS * threads as u64) as f64 / seconds
    };
    let mut result = PairedResult {
        group: operation.group(),
        threads,
        best: [0.0; SUBJECTS],
        versus_moka: Vec::with_capacity(PAIRED_ROUNDS),
        versus_weighted: Vec::with_capacity(PAIRED_ROUNDS),
        versus_listener: Vec::with_capacity(PAIRED_ROUNDS),
        ttl_versus_moka_ttl: Vec::with_capacity(PAIRED_ROUNDS),
    };
    for round in 0..PAIRED_ROUNDS {
        let mut rates = [0.0; SUBJECTS];
        for offset in 0..SUBJECTS {
            let index = (round + offset) % SUBJECTS;
            rates[index] = rate(&caches[index]);
        }
        for (best, rate) in result.best.iter_mut().zip(rates) {
            *best = best.max(rate);
        }
        result.versus_moka.push(rates[0] / rates[1]);
        result.versus_weighted.push(rates[0] / rates[2]);
        result.versus_listener.push(rates[0] / rates[3]);
        result.ttl_versus_moka_ttl.push(rates[4] / rates[5]);
    }
    result.versus_moka.sort_by(f64::total_cmp);
    result.versus_weighted.sort_by(f64::total_cmp);
    result.versus_listener.sort_by(f64::total_cmp);
    result.ttl_versus_moka_ttl.sort_by(f64::total_cmp);
    result
}

type Paired = Vec<PairedResult>;

fn bench(c: &mut Criterion, totals: &Totals, paired_results: &mut Paired) {
    let zipf = zipf::Zipf::new(KEYS, 0.99);
    let stream = Arc::new(zipf.trace(STREAM, 0xbe4c_0001));
    let runtime = runtime();

    // CACHE_BENCH_GROUPS=insert,get_with runs only those groups (for quick experiments).
    let only = std::env::var("CACHE_BENCH_GROUPS").ok();
    for operation in [Operation::GetHit, Operation::GetWith, Operation::Insert] {
        if let Some(only) = &only {
            if !only.split(',').any(|group| group == operation.group()) {
                continue;
            }
        }
        let caches = subjects();
        // Warm the caches with the stream, read-through, so they hold the popular keys.
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
            .measurement_time(Duration::from_secs(2))
            .sample_size(20);
        for threads in THREADS {
            group.throughput(Throughput::Elements(threads as u64));
            for subject in &caches {
                let id = BenchmarkId::new(subject.name, format!("{threads}_threads"));
                group.bench_function(id, |b| {
                    b.iter_custom(|iters| {
                        let elapsed = run(subject, operation, &keys, threads, iters).wall;
                        let key = (operation.group().to_owned(), threads, subject.name);
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
            paired_results.push(paired(&caches, operation, &keys, threads));
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
        "\npaired rounds ({PAIRED_ROUNDS} interleaved rounds of {PAIRED_OPS} ops per thread, throughput from on-CPU time); ratios are resync / baseline, min median max"
    );
    println!(
        "{:<10} {:>7} {:>8} {:>8} {:>8} {:>8} {:>16} {:>16} {:>16} {:>8} {:>8} {:>16}",
        "group",
        "threads",
        "resync",
        "moka",
        "moka+w",
        "moka+l",
        "vs moka",
        "vs moka+weigher",
        "vs moka+listener",
        "resync+t",
        "moka+t",
        "ttl vs moka+ttl"
    );
    let triple = |ratios: &[f64]| {
        format!(
            "{:.2} {:.2} {:.2}",
            ratios[0],
            ratios[ratios.len() / 2],
            ratios[ratios.len() - 1]
        )
    };
    for result in &paired_results {
        println!(
            "{:<10} {:>7} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>16} {:>16} {:>16} {:>8.3} {:>8.3} {:>16}",
            result.group,
            result.threads,
            result.best[0] / 1e6,
            result.best[1] / 1e6,
            result.best[2] / 1e6,
            result.best[3] / 1e6,
            triple(&result.versus_moka),
            triple(&result.versus_weighted),
            triple(&result.versus_listener),
            result.best[4] / 1e6,
            result.best[5] / 1e6,
            triple(&result.ttl_versus_moka_ttl)
        );
    }
    println!("(throughput columns: best round, Mop/s; moka = unweighted Cache::new, the instrumented cache's policy (its entries all weigh the floor); moka+w = moka with a 512 B weigher, no listener, which misses more on get_with; moka+l = same weigher plus an eviction listener; resync+t / moka+t = the instrumented cache / moka+w with a 1 h TTL, i.e. with the eviction listener and exact causes)");

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
            if let (Some(ours), Some(moka)) = (rate("resync_ttl"), rate("moka_ttl")) {
                println!(
                    "{:<10} {threads:>7} {ours:>10.3} {moka:>10.3} {:>7.3}   (resync_ttl vs moka_ttl)",
                    "",
                    ours / moka
                );
            }
        }
    }
}
