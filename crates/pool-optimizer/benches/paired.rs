//! Paired checkout rounds (issue 13, point 4): `MonitoredPool` beside bare bb8 and deadpool,
//! contended, in the same process and the same rounds.
//!
//! `cargo bench -p resync-pool-optimizer --bench paired` (no services needed).
//!
//! The workload: get + drop of a pooled connection with a trivial manager (no I/O), 16
//! connections, 32 tokio tasks on a 2-worker multi-thread runtime, each task doing `N`
//! checkouts; the whole run's wall clock gives checkouts/s. Two variants:
//!
//! - `plain`: get, drop, get again. A task never yields while it holds, so a get finds a
//!   connection unless the other worker is mid-checkout: this measures the pools' own cost.
//! - `holding`: get, one `yield_now` while holding, drop: the tasks really compete for the 16
//!   connections and a get waits whenever all 16 are held, so the queueing discipline (who
//!   gets a returned connection) shows in the tail: bb8 wakes one waiter and lets whoever
//!   asks first take the connection; deadpool and ours (its checkout gate) serve waiters in
//!   order.
//!
//! The contenders, each set up so that only the pool differs:
//!
//! - **bb8**: `bb8::Pool` of the bench's `Trivial` manager, `max_size` 16, `min_idle` 16,
//!   `test_on_check_out(true)` (bb8's default, and what `MonitoredPool` sets: its wrapper
//!   decides per checkout, and for a trivial manager the check is a no-op on both sides),
//!   bb8's default timeouts (connection 30 s, idle 10 min, lifetime 30 min) — the same
//!   timeouts the monitored pool is given, so both enforce an idle timeout and a lifetime.
//! - **ours**: `MonitoredPool` over the same `Trivial`, `min_size` = `max_size` = 16, connect
//!   timeout 30 s, idle 10 min, lifetime 30 min; every figure it reports is recorded as usual.
//! - **deadpool**: `deadpool::managed::Pool` of a trivial manager (`recycle` is a no-op: it
//!   runs on every checkout, deadpool's analogue of `test_on_check_out`), `max_size` 16,
//!   prefilled with 16 objects, no timeouts (deadpool has none without a runtime feature),
//!   FIFO queue (its default). Its semaphore serves waiters in order.
//!
//! Each round builds the three pools afresh (so where the allocator happens to put each
//! pool's hot fields, which moves a single process's figures by up to a third, varies from
//! round to round instead of favouring one pool for the whole run) and runs them, the order
//! alternating between rounds (bb8, ours, deadpool; then the reverse), so load
//! from elsewhere on a shared machine hits all alike. Each pool runs each workload twice per round: once untimed, for
//! checkouts/s (the wall clock of the whole run), and once with every get timed (a TSC read
//! before the get is called and one when its guard is obtained, recorded in a per-task
//! log-linear histogram: ±1.6 %), for p50 / p99 / p99.9 / max. The timing is kept out of the
//! throughput pass so that it does not dilute the ratio.
//!
//! Prints every pool's figures per round, the per-round ratio ours / bb8 with its median and
//! min–max, and ours' p99 against deadpool's (per round and the
//! median of the rounds). Per-get percentiles understate starvation (a starved task makes few
//! gets, each very long): an unfair pool shows it in p99.9 and max.
//!
//! Environment:
//! - `RESYNC_BENCH_ROUNDS`: rounds (default 5);
//! - `RESYNC_BENCH_CHECKOUTS`: checkouts per task and run (default 20 000, so 640 000 a run);
//! - `RESYNC_BENCH_WORKLOAD`: `plain`, `holding` or `both` (default);
//! - `RESYNC_BENCH_ONLY`: `bb8`, `ours` or `deadpool`: only that pool's untimed
//!   runs (the rounds of each workload), for a profiler such as `valgrind --tool=callgrind`.
//!
//! Run without `--bench` (as `cargo test --benches` does) it makes one short round as a
//! smoke test.

#![allow(missing_docs)] // reason: a bench binary.

mod common;

use std::fmt;
use std::time::{Duration, Instant};

use resync_perf_core::{Histogram, HistogramSnapshot};
use resync_pool_optimizer::MonitoredPool;
use resync_resource_manager::ResourceTracker;

use common::{bare_pool, median_min_max, monitored_config, runtime, BenchPool, Trivial, WORKERS};

/// Connections of every pool.
const CONNS: u32 = common::CONTENDED_CONNS;
/// Tasks checking out concurrently.
const TASKS: u64 = common::CONTENDED_TASKS;

/// A connection that costs nothing to make or recycle, for deadpool (bb8's side and ours
/// use the common `Trivial`).
#[derive(Debug)]
struct TrivialDeadpool;

impl deadpool::managed::Manager for TrivialDeadpool {
    type Type = ();
    type Error = std::io::Error;

    async fn create(&self) -> Result<(), std::io::Error> {
        Ok(())
    }

    async fn recycle(
        &self,
        _conn: &mut (),
        _metrics: &deadpool::managed::Metrics,
    ) -> deadpool::managed::RecycleResult<std::io::Error> {
        Ok(())
    }
}

// A pool under test is a `common::BenchPool<()>`: bb8's and ours are there, deadpool and the
// FIFO prototype are here.

impl BenchPool<()> for deadpool::managed::Pool<TrivialDeadpool> {
    type Conn<'a> = deadpool::managed::Object<TrivialDeadpool>;

    async fn checkout(&self) -> Self::Conn<'_> {
        self.get()
            .await
            .expect("deadpool get: no error with a trivial manager")
    }
}

/// The two workloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Workload {
    /// get + drop.
    Plain,
    /// get, one yield while holding, drop.
    Holding,
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Plain => "plain",
            Self::Holding => "holding",
        })
    }
}

/// The contenders, in the order of an even round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Bb8,
    Ours,
    Deadpool,
}

const SIDES: [Side; 3] = [Side::Bb8, Side::Ours, Side::Deadpool];

impl Side {
    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Self::Bb8 => "bb8",
            Self::Ours => "ours",
            Self::Deadpool => "deadpool",
        })
    }
}

/// One pool's figures in one round of one workload.
#[derive(Debug, Clone)]
struct Figures {
    /// Checkouts per second of the untimed run.
    rate: f64,
    /// Per-get latency of the timed run (nanoseconds).
    latency: HistogramSnapshot,
}

/// The bench's settings.
#[derive(Debug, Clone)]
struct Settings {
    /// Run without `--bench`: one short round, figures not meant to be read.
    smoke: bool,
    rounds: usize,
    per_task: u64,
    workloads: Vec<Workload>,
}

impl Settings {
    fn from_env() -> Self {
        // `cargo bench` passes `--bench`; without it (`cargo test --benches`) this is a
        // smoke test.
        let benching = std::env::args().any(|arg| arg == "--bench");
        let number = |name: &str, default: u64| -> u64 {
            match std::env::var(name) {
                Ok(text) => text
                    .trim()
                    .replace('_', "")
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .unwrap_or_else(|| panic!("{name}={text:?}: expected a positive integer")),
                Err(_) => default,
            }
        };
        let workloads = match std::env::var("RESYNC_BENCH_WORKLOAD").as_deref() {
            Ok("plain") => vec![Workload::Plain],
            Ok("holding") => vec![Workload::Holding],
            Ok("both") | Err(_) => vec![Workload::Plain, Workload::Holding],
            Ok(other) => panic!("RESYNC_BENCH_WORKLOAD={other:?}: expected plain, holding or both"),
        };
        if benching {
            Self {
                smoke: false,
                rounds: usize::try_from(number("RESYNC_BENCH_ROUNDS", 5)).unwrap_or(usize::MAX),
                per_task: number("RESYNC_BENCH_CHECKOUTS", 20_000),
                workloads,
            }
        } else {
            Self {
                smoke: true,
                rounds: 1,
                per_task: 200,
                workloads,
            }
        }
    }
}

/// The pools, built on `rt`, each with its 16 connections open.
struct Pools {
    bb8: bb8::Pool<Trivial>,
    ours: MonitoredPool<Trivial>,
    deadpool: deadpool::managed::Pool<TrivialDeadpool>,
    // Kept alive with the monitored pool (its leases are registered with it).
    _tracker: ResourceTracker,
}

impl Pools {
    fn new(rt: &tokio::runtime::Runtime) -> Self {
        rt.block_on(async {
            let bb8 = bare_pool(CONNS, CONNS).await;
            let tracker = ResourceTracker::new();
            let config = monitored_config(CONNS, CONNS);
            let ours = MonitoredPool::new("paired", config, Trivial, &tracker)
                .expect("a valid configuration");
            let deadpool = deadpool::managed::Pool::builder(TrivialDeadpool)
                .max_size(CONNS as usize)
                .build()
                .expect("deadpool of a trivial manager");
            // Every pool with all its connections open before the first measurement: ours
            // opens its `min_size` in the background, deadpool only on demand.
            fill(&ours).await;
            fill(&deadpool).await;
            fill(&bb8).await;
            Self {
                bb8,
                ours,
                deadpool,
                _tracker: tracker,
            }
        })
    }
}

/// Checks out every connection of `pool` at once (waiting for any not open yet), then
/// returns them.
async fn fill<P: BenchPool<()>>(pool: &P) {
    let mut held = Vec::new();
    for _ in 0..CONNS {
        held.push(pool.checkout().await);
    }
    drop(held);
}

/// Runs `workload` from `TASKS` tasks, each making `per_task` checkouts; the wall time, and
/// with `timed`, every get's latency.
async fn run<P: BenchPool<()>>(
    pool: &P,
    workload: Workload,
    per_task: u64,
    timed: Option<&quanta::Clock>,
) -> (Duration, Option<HistogramSnapshot>) {
    let hold = workload == Workload::Holding;
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..TASKS {
        let pool = pool.clone();
        let clock = timed.cloned();
        set.spawn(async move {
            match clock {
                None => {
                    for _ in 0..per_task {
                        let conn = pool.checkout().await;
                        if hold {
                            tokio::task::yield_now().await;
                        }
                        drop(conn);
                    }
                    None
                }
                Some(clock) => {
                    let latency = Histogram::new();
                    for _ in 0..per_task {
                        let called = clock.raw();
                        let conn = pool.checkout().await;
                        let obtained = clock.raw();
                        latency.record(clock.delta_as_nanos(called, obtained));
                        if hold {
                            tokio::task::yield_now().await;
                        }
                        drop(conn);
                    }
                    Some(latency.snapshot())
                }
            }
        });
    }
    let mut merged: Option<HistogramSnapshot> = None;
    for snapshot in set.join_all().await.into_iter().flatten() {
        merged
            .get_or_insert_with(HistogramSnapshot::default)
            .merge(&snapshot);
    }
    (started.elapsed(), merged)
}

/// One pool's untimed run (checkouts/s) and timed run (latency).
fn measure<P: BenchPool<()>>(
    rt: &tokio::runtime::Runtime,
    clock: &quanta::Clock,
    pool: &P,
    workload: Workload,
    per_task: u64,
) -> Figures {
    let checkouts = per_task as f64 * TASKS as f64;
    let (wall, _) = rt.block_on(run(pool, workload, per_task, None));
    let (_, latency) = rt.block_on(run(pool, workload, per_task, Some(clock)));
    Figures {
        rate: checkouts / wall.as_secs_f64(),
        latency: latency.expect("a timed run records latency"),
    }
}

fn measure_side(
    rt: &tokio::runtime::Runtime,
    clock: &quanta::Clock,
    pools: &Pools,
    side: Side,
    workload: Workload,
    per_task: u64,
) -> Figures {
    match side {
        Side::Bb8 => measure(rt, clock, &pools.bb8, workload, per_task),
        Side::Ours => measure(rt, clock, &pools.ours, workload, per_task),
        Side::Deadpool => measure(rt, clock, &pools.deadpool, workload, per_task),
    }
}

/// A latency in nanoseconds, in a readable unit.
fn human(nanos: u64) -> String {
    let nanos = nanos as f64;
    if nanos < 1e3 {
        format!("{nanos:.0} ns")
    } else if nanos < 1e6 {
        format!("{:.1} µs", nanos / 1e3)
    } else {
        format!("{:.2} ms", nanos / 1e6)
    }
}

/// p99.9 of a snapshot.
fn p999(latency: &HistogramSnapshot) -> u64 {
    latency.percentile(0.999)
}

fn main() {
    let settings = Settings::from_env();
    let rt = runtime();
    let clock = quanta::Clock::new();
    if let Ok(only) = std::env::var("RESYNC_BENCH_ONLY") {
        profile_one(&rt, &Pools::new(&rt), &only, &settings);
        return;
    }
    let per_run = settings.per_task * TASKS;
    if settings.smoke {
        println!("smoke test (run without --bench): one short round, not a measurement");
    }
    println!(
        "paired checkout: {} round(s), {TASKS} tasks × {} checkouts ({per_run} a run), \
         {CONNS} connections, {WORKERS} worker threads; the order alternates per round",
        settings.rounds, settings.per_task
    );
    // Warm-up: every pool through every workload once, unrecorded.
    let pools = Pools::new(&rt);
    for &workload in &settings.workloads {
        for side in SIDES {
            measure_side(
                &rt,
                &clock,
                &pools,
                side,
                workload,
                settings.per_task / 4 + 1,
            );
        }
    }
    for &workload in &settings.workloads {
        let mut rounds: Vec<Vec<Figures>> = Vec::new();
        println!("\n== {workload} ==");
        for round in 0..settings.rounds {
            let mut order = SIDES;
            if round % 2 == 1 {
                order.reverse();
            }
            let mut figures: Vec<Option<Figures>> = vec![None; SIDES.len()];
            let pools = Pools::new(&rt);
            for side in order {
                figures[side.index()] = Some(measure_side(
                    &rt,
                    &clock,
                    &pools,
                    side,
                    workload,
                    settings.per_task,
                ));
            }
            let figures: Vec<Figures> = figures
                .into_iter()
                .map(|f| f.expect("every side measured"))
                .collect();
            println!(
                "round {} (order {}):",
                round + 1,
                order.map(|side| side.to_string()).join(", ")
            );
            for side in SIDES {
                let f = &figures[side.index()];
                println!(
                    "  {side:<9}  {:>7.3} M/s   get latency p50 {:>9}  p99 {:>9}  p99.9 {:>9}  \
                     max {:>9}",
                    f.rate / 1e6,
                    human(f.latency.p50()),
                    human(f.latency.p99()),
                    human(p999(&f.latency)),
                    human(f.latency.max()),
                );
            }
            let of = |side: Side| &figures[side.index()];
            println!(
                "  ours / bb8 {:.3};   p99 / deadpool's: ours {:.2}, bb8 {:.2}",
                of(Side::Ours).rate / of(Side::Bb8).rate,
                p99_ratio(of(Side::Ours), of(Side::Deadpool)),
                p99_ratio(of(Side::Bb8), of(Side::Deadpool)),
            );
            rounds.push(figures);
        }
        summarize(workload, &rounds);
    }
}

/// `a`'s p99 over `b`'s.
fn p99_ratio(a: &Figures, b: &Figures) -> f64 {
    a.latency.p99() as f64 / b.latency.p99() as f64
}

/// `RESYNC_BENCH_ONLY=bb8|ours|deadpool`: that pool's untimed runs alone, for a
/// profiler (`perf record`, `valgrind --tool=callgrind`); prints each run's checkouts/s.
fn profile_one(rt: &tokio::runtime::Runtime, pools: &Pools, only: &str, settings: &Settings) {
    let side = SIDES
        .into_iter()
        .find(|side| side.to_string() == only)
        .unwrap_or_else(|| panic!("RESYNC_BENCH_ONLY={only:?}: expected bb8, ours or deadpool"));
    let checkouts = settings.per_task as f64 * TASKS as f64;
    for &workload in &settings.workloads {
        for round in 0..settings.rounds {
            let per_task = settings.per_task;
            let wall = match side {
                Side::Bb8 => rt.block_on(run(&pools.bb8, workload, per_task, None)).0,
                Side::Ours => rt.block_on(run(&pools.ours, workload, per_task, None)).0,
                Side::Deadpool => {
                    rt.block_on(run(&pools.deadpool, workload, per_task, None))
                        .0
                }
            };
            println!(
                "{side} {workload} run {}: {:.3} M/s",
                round + 1,
                checkouts / wall.as_secs_f64() / 1e6
            );
        }
    }
}

/// The medians over the rounds of one workload.
fn summarize(workload: Workload, rounds: &[Vec<Figures>]) {
    let of =
        |side: Side| -> Vec<&Figures> { rounds.iter().map(|round| &round[side.index()]).collect() };
    println!(
        "summary ({workload}, {} round(s); median [min–max] over the rounds):",
        rounds.len()
    );
    for side in SIDES {
        let figures = of(side);
        let pick = |f: fn(&Figures) -> f64| -> (f64, f64, f64) {
            median_min_max(&figures.iter().map(|x| f(x)).collect::<Vec<_>>())
        };
        let (rate, rate_min, rate_max) = pick(|f| f.rate / 1e6);
        let (p50, _, _) = pick(|f| f.latency.p50() as f64);
        let (p99, p99_min, p99_max) = pick(|f| f.latency.p99() as f64);
        let (p999_median, _, _) = pick(|f| p999(&f.latency) as f64);
        let max = figures.iter().map(|f| f.latency.max()).max().unwrap_or(0);
        println!(
            "  {side:<9}  {rate:.3} M/s [{rate_min:.3}–{rate_max:.3}]   p50 {}   p99 {} [{}–{}]   \
             p99.9 {}   max of all {}",
            human(p50 as u64),
            human(p99 as u64),
            human(p99_min as u64),
            human(p99_max as u64),
            human(p999_median as u64),
            human(max),
        );
    }
    let bb8 = of(Side::Bb8);
    let deadpool = of(Side::Deadpool);
    {
        let side = Side::Ours;
        let figures = of(side);
        let ratios: Vec<f64> = figures
            .iter()
            .zip(&bb8)
            .map(|(o, b)| o.rate / b.rate)
            .collect();
        let (median, min, max) = median_min_max(&ratios);
        let p99: Vec<f64> = figures
            .iter()
            .zip(&deadpool)
            .map(|(o, d)| p99_ratio(o, d))
            .collect();
        let (p99_median, p99_min, p99_max) = median_min_max(&p99);
        println!(
            "  {side} / bb8 throughput: median {median:.3} [{min:.3}–{max:.3}] (target ≥ 0.85);   \
             {side} p99 / deadpool p99: median {p99_median:.2} [{p99_min:.2}–{p99_max:.2}] \
             (moonshot ≤ 1)"
        );
    }
}
