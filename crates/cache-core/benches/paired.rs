//! Paired wall-clock rounds of the issue's write-path trace: the instrumented cache
//! (statistics and advisor on, the defaults) against bare `moka::future::Cache` of the same
//! capacity, each timed over a whole run, round after round, printed without Criterion.
//!
//! The trace: Zipf 0.99 over 1 000 000 keys; two Tokio tasks on a two-worker runtime, each
//! replaying its own pre-generated stream of `RESYNC_BENCH_OPS` keys (default 2 000 000);
//! each operation is a `get`, then an `insert` of a 128-byte `Bytes` value when the get
//! missed. The key space stays 1 000 000 keys at every capacity, so the small caches see the
//! same traffic as the large one and hit less (the hit rates are printed).
//!
//! Workloads: capacities `RESYNC_BENCH_ENTRIES` (comma-separated, default
//! `100000,1000,256`). For each, `RESYNC_BENCH_ROUNDS` rounds (default 5); a round builds a
//! fresh cache of each subject and times one whole run of the trace through it (from the
//! tasks' spawn to the last one's end; building and dropping the cache are not timed). The
//! subjects take turns going first. Printed per round: ops/s of each subject, the ratio
//! resync / moka and the hit rates; per workload: the median ratio with its min and max.
//! `RESYNC_BENCH_ADVISOR_OFF=1` adds a subject, the instrumented cache with its advisor off,
//! and the ratio resync / that (what the advisor costs); `RESYNC_BENCH_MOKA_AHASH=1` adds bare
//! moka built with the hasher this cache gives its moka (aHash instead of SipHash), and the
//! ratio resync / that (this cache's cost with the hasher's share taken out).
//!
//! Every inserted value is a fresh `Bytes` (one allocation and a 128-byte copy per miss, for
//! both subjects alike), so the values do not all share one reference count that the two
//! workers would bounce between their cores on every hit.
//!
//! ```text
//! cargo bench -p resync-cache-core --bench paired
//! RESYNC_BENCH_ROUNDS=3 RESYNC_BENCH_OPS=200000 cargo bench -p resync-cache-core --bench paired
//! ```
//!
//! Arguments are ignored (`cargo bench` passes `--bench`, and Criterion flags meant for the
//! other bench may follow).

#![allow(missing_docs)]

#[path = "../tests/support/zipf.rs"]
mod zipf;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use resync_cache_core::Cache;

const KEYS: usize = 1_000_000;
const EXPONENT: f64 = 0.99;
const TASKS: usize = 2;
const VALUE_BYTES: usize = 128;
const DEFAULT_OPS: usize = 2_000_000;
const DEFAULT_ROUNDS: usize = 5;
const DEFAULT_ENTRIES: [u64; 3] = [100_000, 1_000, 256];

/// A cache under test.
#[derive(Clone)]
enum Subject {
    Resync(Cache<u64, Bytes>),
    Moka(moka::future::Cache<u64, Bytes>),
    MokaAhash(moka::future::Cache<u64, Bytes, ahash::RandomState>),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Resync,
    Moka,
    ResyncNoAdvisor,
    MokaAhash,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Resync => "resync",
            Kind::Moka => "moka",
            Kind::ResyncNoAdvisor => "resync-no-advisor",
            Kind::MokaAhash => "moka-ahash",
        }
    }

    fn build(self, entries: u64) -> Subject {
        let resync = |advisor| {
            Subject::Resync(
                Cache::builder()
                    .name("paired")
                    .max_entries(entries)
                    .advisor(advisor)
                    .build()
                    .expect("valid settings"),
            )
        };
        match self {
            Kind::Resync => resync(true),
            Kind::ResyncNoAdvisor => resync(false),
            Kind::Moka => Subject::Moka(moka::future::Cache::new(entries)),
            Kind::MokaAhash => Subject::MokaAhash(
                moka::future::Cache::builder()
                    .max_capacity(entries)
                    .build_with_hasher(ahash::RandomState::new()),
            ),
        }
    }
}

impl Subject {
    /// Get, then insert a fresh value on a miss; returns the hits.
    async fn replay(&self, keys: &[u64]) -> u64 {
        let mut hits = 0;
        for &key in keys {
            match self {
                Subject::Resync(cache) => {
                    if cache.get(&key).await.is_some() {
                        hits += 1;
                    } else {
                        cache.insert(key, value()).await.expect("fits");
                    }
                }
                Subject::Moka(cache) => hits += u64::from(moka_step(cache, key).await),
                Subject::MokaAhash(cache) => hits += u64::from(moka_step(cache, key).await),
            }
        }
        hits
    }
}

/// Get, then insert a fresh value on a miss, through bare moka with hasher `S`; whether the
/// get hit.
#[inline]
async fn moka_step<S>(cache: &moka::future::Cache<u64, Bytes, S>, key: u64) -> bool
where
    S: std::hash::BuildHasher + Clone + Send + Sync + 'static,
{
    if cache.get(&key).await.is_some() {
        return true;
    }
    cache.insert(key, value()).await;
    false
}

fn value() -> Bytes {
    Bytes::copy_from_slice(&[0x5a; VALUE_BYTES])
}

/// One whole run: its wall-clock time and hit rate.
#[derive(Clone, Copy)]
struct Run {
    elapsed: Duration,
    hit_rate: f64,
}

fn run(
    runtime: &tokio::runtime::Runtime,
    kind: Kind,
    entries: u64,
    traces: &[Arc<Vec<u64>>],
) -> Run {
    let subject = kind.build(entries);
    let gets: usize = traces.iter().map(|trace| trace.len()).sum();
    let (elapsed, hits) = runtime.block_on(async {
        let start = Instant::now();
        let tasks: Vec<_> = traces
            .iter()
            .map(|trace| {
                let subject = subject.clone();
                let trace = Arc::clone(trace);
                tokio::spawn(async move { subject.replay(&trace).await })
            })
            .collect();
        let mut hits = 0;
        for task in tasks {
            hits += task.await.expect("replay task panicked");
        }
        (start.elapsed(), hits)
    });
    // Dropped outside the timed run (a cache of 100 000 entries takes a while to free).
    drop(subject);
    Run {
        elapsed,
        hit_rate: hits as f64 / gets as f64,
    }
}

fn env_number<T: std::str::FromStr>(name: &str) -> Option<T> {
    let text = std::env::var(name).ok()?;
    Some(
        text.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text}: not a number")),
    )
}

fn median(sorted: &[f64]) -> f64 {
    let middle = sorted.len() / 2;
    if sorted.len() % 2 == 0 {
        (sorted[middle - 1] + sorted[middle]) / 2.0
    } else {
        sorted[middle]
    }
}

fn sorted(mut values: Vec<f64>) -> Vec<f64> {
    values.sort_by(f64::total_cmp);
    values
}

/// Prints `min · median · max` of `values`.
fn spread(values: &[f64]) -> String {
    let values = sorted(values.to_vec());
    format!(
        "{:.3} · {:.3} · {:.3}",
        values[0],
        median(&values),
        values[values.len() - 1]
    )
}

fn main() {
    let rounds = env_number("RESYNC_BENCH_ROUNDS")
        .unwrap_or(DEFAULT_ROUNDS)
        .max(1);
    let ops = env_number("RESYNC_BENCH_OPS").unwrap_or(DEFAULT_OPS).max(1);
    let entries: Vec<u64> = match std::env::var("RESYNC_BENCH_ENTRIES") {
        Ok(list) => list
            .split(',')
            .map(|entries| {
                entries
                    .trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("RESYNC_BENCH_ENTRIES={list}: not a list"))
            })
            .collect(),
        Err(_) => DEFAULT_ENTRIES.to_vec(),
    };
    let flag = |name: &str| std::env::var(name).is_ok_and(|value| value == "1");
    // Resync and bare moka first, then the optional subjects, each compared with resync.
    let mut kinds = vec![Kind::Resync, Kind::Moka];
    if flag("RESYNC_BENCH_ADVISOR_OFF") {
        kinds.push(Kind::ResyncNoAdvisor);
    }
    if flag("RESYNC_BENCH_MOKA_AHASH") {
        kinds.push(Kind::MokaAhash);
    }
    let extras = &kinds[2..];

    let zipf = zipf::Zipf::new(KEYS, EXPONENT);
    let traces: Vec<Arc<Vec<u64>>> = (0..TASKS)
        .map(|task| Arc::new(zipf.trace(ops, 0xbe4c_0002 + task as u64)))
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(TASKS)
        .enable_all()
        .build()
        .expect("a two-worker runtime");
    let total_ops = (TASKS * ops) as f64;

    println!(
        "paired rounds: get then insert on a miss, Zipf {EXPONENT} over {KEYS} keys, \
         {TASKS} tasks x {ops} ops, {VALUE_BYTES}-byte Bytes values; {rounds} rounds per \
         capacity, whole-run wall clock, the subjects take turns going first"
    );
    let mut summary = Vec::new();
    for &capacity in &entries {
        println!("\ncapacity {capacity} entries");
        print!("{:>5}  {:<18}", "round", "first");
        for kind in &kinds {
            print!(" {:>23}", format!("{} Mop/s", kind.name()));
        }
        print!(" {:>13}", "resync/moka");
        for kind in extras {
            print!(" {:>17}", format!("resync/{}", short(*kind)));
        }
        for kind in &kinds {
            print!(" {:>12}", format!("hit {}", short(*kind)));
        }
        println!();
        let mut ratios = Vec::with_capacity(rounds);
        let mut extra_ratios: Vec<Vec<f64>> = vec![Vec::with_capacity(rounds); extras.len()];
        let mut rates: Vec<Vec<f64>> = vec![Vec::new(); kinds.len()];
        let mut hits: Vec<Vec<f64>> = vec![Vec::new(); kinds.len()];
        for round in 0..rounds {
            let mut runs: Vec<Option<Run>> = vec![None; kinds.len()];
            for offset in 0..kinds.len() {
                let index = (round + offset) % kinds.len();
                runs[index] = Some(run(&runtime, kinds[index], capacity, &traces));
            }
            let runs: Vec<Run> = runs.into_iter().map(|run| run.expect("ran")).collect();
            let rate = |index: usize| total_ops / runs[index].elapsed.as_secs_f64();
            print!(
                "{:>5}  {:<18}",
                round + 1,
                kinds[round % kinds.len()].name()
            );
            for index in 0..kinds.len() {
                print!(" {:>23.3}", rate(index) / 1e6);
                rates[index].push(rate(index));
                hits[index].push(runs[index].hit_rate);
            }
            let ratio = rate(0) / rate(1);
            ratios.push(ratio);
            print!(" {ratio:>13.3}");
            for (extra, ratios) in extra_ratios.iter_mut().enumerate() {
                let ratio = rate(0) / rate(2 + extra);
                ratios.push(ratio);
                print!(" {ratio:>17.3}");
            }
            for run in &runs {
                print!(" {:>11.2}%", 100.0 * run.hit_rate);
            }
            println!();
        }
        let mean = |values: &[f64]| values.iter().sum::<f64>() / values.len() as f64;
        println!(
            "capacity {capacity}: resync/moka min · median · max {}; median Mop/s resync {:.3}, moka {:.3}; mean hit rate resync {:.2} %, moka {:.2} %",
            spread(&ratios),
            median(&sorted(rates[0].clone())) / 1e6,
            median(&sorted(rates[1].clone())) / 1e6,
            100.0 * mean(&hits[0]),
            100.0 * mean(&hits[1]),
        );
        for (extra, kind) in extras.iter().enumerate() {
            println!(
                "capacity {capacity}: resync/{} min · median · max {}; mean hit rate {} {:.2} %",
                kind.name(),
                spread(&extra_ratios[extra]),
                kind.name(),
                100.0 * mean(&hits[2 + extra]),
            );
        }
        summary.push((capacity, sorted(ratios)));
    }
    println!("\nsummary (resync / bare moka, whole-run wall clock, {rounds} paired rounds):");
    for (capacity, ratios) in &summary {
        println!(
            "  {capacity:>7} entries: median {:.3} (min {:.3}, max {:.3})",
            median(ratios),
            ratios[0],
            ratios[ratios.len() - 1]
        );
    }
}

fn short(kind: Kind) -> &'static str {
    match kind {
        Kind::Resync => "resync",
        Kind::Moka => "moka",
        Kind::ResyncNoAdvisor => "no-adv",
        Kind::MokaAhash => "moka-ahash",
    }
}
