//! Benches, each beside its baseline: MonitoredPool vs bare bb8.
//!
//! - `checkout`: get + drop with the same trivial manager (no I/O) on both sides, one task;
//!   the monitored pool gets bb8's default timeouts so only the instrumentation differs.
//! - `checkout_contended`: the same from 32 tasks over 16 connections on 2 worker threads
//!   (the brief's peer setting), plain and with each task yielding while it holds its
//!   connection (so that gets really wait); then interleaved paired rounds print the ratio's
//!   spread.
//! - `select_1`: `SELECT 1` from `SELECT_TASKS` concurrent tasks over `SELECT_CONNS`
//!   connections through MonitoredPool vs bare bb8-postgres with bb8's defaults (a validity
//!   round trip on every checkout), against the shared server (`cargo xtask services up`;
//!   `RESYNC_TEST_DATABASE_URL`); then paired rounds and pgbench with the same client count
//!   against the same server, in one run.

#![allow(missing_docs)] // reason: criterion_group! generates an undocumented function.

mod common;

use std::future::Future;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion, Throughput};
use resync_pool_optimizer::{MonitoredPool, PoolConfig, PostgresManager};
use resync_resource_manager::ResourceTracker;

use common::{
    bare_pool, median_min_max, monitored_config, runtime, BenchPool, Trivial, CONTENDED_CONNS,
    CONTENDED_TASKS, WORKERS,
};

/// Pool size of the `SELECT 1` bench (the brief's setting: 16 connections, 32 tasks);
/// pgbench runs with as many clients (each of its clients is one connection).
const SELECT_CONNS: u32 = 16;
/// Concurrent tasks of the `SELECT 1` bench.
const SELECT_TASKS: u64 = 32;

/// The two pools of the single-task checkout bench: the same trivial manager, 1 to 4
/// connections, bb8's default timeouts on both sides.
fn single_pools(
    rt: &tokio::runtime::Runtime,
    tracker: &ResourceTracker,
) -> (bb8::Pool<Trivial>, MonitoredPool<Trivial>) {
    let config = monitored_config(1, 4);
    let monitored = rt
        .block_on(async { MonitoredPool::new("bench", config, Trivial, tracker).expect("valid") });
    let bare = rt.block_on(bare_pool(4, 1));
    (bare, monitored)
}

fn checkout(c: &mut Criterion) {
    let rt = runtime();
    let tracker = ResourceTracker::new();
    let (bare, monitored) = single_pools(&rt, &tracker);
    let mut group = c.benchmark_group("checkout");
    group.throughput(Throughput::Elements(1));
    group.bench_function("bare_bb8", |b| {
        b.to_async(&rt)
            .iter(|| async { drop(bare.get().await.expect("get")) });
    });
    group.bench_function("monitored_pool", |b| {
        b.to_async(&rt)
            .iter(|| async { drop(monitored.get().await.expect("get")) });
    });
    // The share of the ResourceTracker alone: the connection's lease slot checked out (kind,
    // caller's line, an instant already read) and checked in, as `get()` and the guard do it.
    let location = std::panic::Location::caller();
    let slot = tracker.lease_slot("db_connection", "bench");
    let at = Instant::now();
    group.bench_function("tracker_share", |b| {
        b.iter(|| {
            slot.checkout(location, at);
            slot.checkin(at);
        });
    });
    // One `Instant::now()`: a checkout + return makes two of this crate's own.
    group.bench_function("clock_read", |b| b.iter(Instant::now));
    group.finish();
}

/// The two pools of the contended checkout bench (`CONTENDED_CONNS`, 16, from
/// `CONTENDED_TASKS`, 32, tasks: the brief's peer figure was bare bb8's 1.29 M get+drop/s on
/// 2 cores): 16 connections each, the same trivial manager and bb8's default timeouts.
struct Contended {
    bare: bb8::Pool<Trivial>,
    monitored: MonitoredPool<Trivial>,
}

impl Contended {
    fn new(rt: &tokio::runtime::Runtime, tracker: &ResourceTracker) -> Self {
        let config = monitored_config(CONTENDED_CONNS, CONTENDED_CONNS);
        rt.block_on(async {
            Self {
                bare: bare_pool(CONTENDED_CONNS, CONTENDED_CONNS).await,
                monitored: MonitoredPool::new("bench", config, Trivial, tracker).expect("valid"),
            }
        })
    }
}

/// get + drop from `CONTENDED_TASKS` tasks over a pool of `CONTENDED_CONNS`, side by side.
fn checkout_contended(c: &mut Criterion) {
    let rt = runtime();
    let tracker = ResourceTracker::new();
    let pools = Contended::new(&rt, &tracker);
    let mut group = c.benchmark_group("checkout_contended");
    group.throughput(Throughput::Elements(1));
    for hold in [false, true] {
        let suffix = if hold { "_holding" } else { "" };
        group.bench_function(format!("bare_bb8{suffix}"), |b| {
            b.to_async(&rt)
                .iter_custom(|iters| spread(&pools.bare, Hold(hold), iters, CONTENDED_TASKS));
        });
        group.bench_function(format!("monitored_pool{suffix}"), |b| {
            b.to_async(&rt)
                .iter_custom(|iters| spread(&pools.monitored, Hold(hold), iters, CONTENDED_TASKS));
        });
    }
    group.finish();
}

/// On-CPU nanoseconds of every thread of this process so far (Linux `schedstat`), or
/// `None` where that is not available.
fn process_cpu_ns() -> Option<u64> {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let path = task.ok()?.path().join("schedstat");
        // A thread may end between the listing and the read: it is not ours to count then.
        if let Ok(text) = std::fs::read_to_string(path) {
            total += text.split_whitespace().next()?.parse::<u64>().ok()?;
        }
    }
    Some(total)
}

/// get + drop per round and pool in the single-task paired measurement.
const SINGLE_PAIRED_OPS: u64 = 200_000;

/// The single-task checkout measured again in interleaved rounds (the order alternates), as
/// the Criterion group runs it (one task on the runtime's `block_on` thread); prints the
/// per-round ratios monitored / bare (min, median, max). Single Criterion runs of this group
/// swing by ±10 % from run to run on this machine, more than the gap being measured.
fn paired_checkout_single() {
    let rt = runtime();
    let tracker = ResourceTracker::new();
    let (bare, monitored) = single_pools(&rt, &tracker);
    let measure = |monitored_side: bool| {
        rt.block_on(async {
            let started = Instant::now();
            for _ in 0..SINGLE_PAIRED_OPS {
                if monitored_side {
                    drop(monitored.get().await.expect("get"));
                } else {
                    drop(bare.get().await.expect("get"));
                }
            }
            SINGLE_PAIRED_OPS as f64 / started.elapsed().as_secs_f64()
        })
    };
    let mut ratios = Vec::new();
    let mut best = [0.0_f64; 2];
    for (bare, monitored) in interleaved(PAIRED_ROUNDS, measure) {
        ratios.push(monitored / bare);
        best[0] = best[0].max(bare);
        best[1] = best[1].max(monitored);
    }
    println!(
        "\ncheckout paired: {PAIRED_ROUNDS} interleaved rounds of {SINGLE_PAIRED_OPS} get+drop, one task"
    );
    println!(
        "  best round: bare bb8 {:.3} M/s, monitored {:.3} M/s",
        best[0] / 1e6,
        best[1] / 1e6
    );
    println!(
        "  monitored / bare (min median max): {}",
        min_median_max(&mut ratios)
    );
    if std::env::var_os("RESYNC_BENCH_ROUNDS").is_some() {
        println!("  every round (sorted): {ratios:.3?}");
    }
}

/// get + drop per round and pool in the paired measurement.
const PAIRED_OPS: u64 = 500_000;
const PAIRED_ROUNDS: usize = 21;

/// The contended checkout measured again in interleaved rounds (the order alternates), each
/// pool's throughput taken from the process's on-CPU time (so that other processes on a
/// shared machine do not decide the ratio) as well as from wall time; prints the per-round
/// ratios monitored / bare (min, median, max).
fn paired_checkout(hold: bool) {
    let rt = runtime();
    let tracker = ResourceTracker::new();
    let pools = Contended::new(&rt, &tracker);
    // Throughput of a run from on-CPU time (per worker thread), and from wall time.
    let measure = |monitored: bool| {
        let cpu_before = process_cpu_ns();
        let wall = rt.block_on(async {
            if monitored {
                spread(&pools.monitored, Hold(hold), PAIRED_OPS, CONTENDED_TASKS).await
            } else {
                spread(&pools.bare, Hold(hold), PAIRED_OPS, CONTENDED_TASKS).await
            }
        });
        let cpu = process_cpu_ns()
            .zip(cpu_before)
            .map(|(after, before)| Duration::from_nanos(after - before));
        let ops = PAIRED_OPS as f64;
        let by_cpu = cpu.map(|cpu| ops / (cpu.as_secs_f64() / WORKERS as f64));
        (by_cpu, ops / wall.as_secs_f64())
    };
    let mut by_cpu = Vec::new();
    let mut by_wall = Vec::new();
    let mut best = [0.0_f64; 2];
    for (bare, monitored) in interleaved(PAIRED_ROUNDS, measure) {
        if let (Some(bare_cpu), Some(monitored_cpu)) = (bare.0, monitored.0) {
            by_cpu.push(monitored_cpu / bare_cpu);
            best[0] = best[0].max(bare_cpu);
            best[1] = best[1].max(monitored_cpu);
        }
        by_wall.push(monitored.1 / bare.1);
    }
    println!(
        "\ncheckout_contended paired{}: {PAIRED_ROUNDS} interleaved rounds of {PAIRED_OPS} get+drop, \
         {CONTENDED_TASKS} tasks, {CONTENDED_CONNS} connections, {WORKERS} worker threads",
        if hold { " (holding across a yield)" } else { "" }
    );
    println!(
        "  best round from on-CPU time: bare bb8 {:.3} M/s, monitored {:.3} M/s",
        best[0] / 1e6,
        best[1] / 1e6
    );
    println!(
        "  monitored / bare, from on-CPU time (min median max): {}",
        min_median_max(&mut by_cpu)
    );
    println!(
        "  monitored / bare, from wall time   (min median max): {}",
        min_median_max(&mut by_wall)
    );
    if std::env::var_os("RESYNC_BENCH_ROUNDS").is_some() {
        println!("  every round (wall, sorted): {by_wall:.3?}");
        println!("  every round (on-CPU, sorted): {by_cpu:.3?}");
    }
}

/// What a bench task does with each connection it checks out.
trait Work<C>: Copy + Send + Sync + 'static {
    fn run(self, conn: &C) -> impl Future<Output = ()> + Send;
}

/// Nothing (`Hold(false)`), or one yield to the scheduler while the connection is held, so
/// that tasks really compete for the connections and gets wait.
#[derive(Debug, Clone, Copy)]
struct Hold(bool);

impl Work<()> for Hold {
    async fn run(self, _conn: &()) {
        if self.0 {
            tokio::task::yield_now().await;
        }
    }
}

/// One `SELECT 1` (simple protocol, as pgbench `-M simple`).
#[derive(Debug, Clone, Copy)]
struct SelectOne;

impl Work<tokio_postgres::Client> for SelectOne {
    async fn run(self, conn: &tokio_postgres::Client) {
        conn.simple_query("SELECT 1").await.expect("select");
    }
}

/// `iters` checkouts spread over `tasks` tasks, each doing `work` with its connection before
/// returning it; the wall time.
async fn spread<C, P, W>(pool: &P, work: W, iters: u64, tasks: u64) -> Duration
where
    C: Sync + 'static,
    P: BenchPool<C>,
    W: Work<C>,
{
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for share in shares(iters, tasks) {
        let pool = pool.clone();
        set.spawn(async move {
            for _ in 0..share {
                let conn = pool.checkout().await;
                work.run(&conn).await;
                drop(conn);
            }
        });
    }
    set.join_all().await;
    started.elapsed()
}

/// Measures the bare (`false`) and the monitored (`true`) side once each to warm up, then in
/// `rounds` rounds whose order alternates, so that load from elsewhere hits both alike;
/// returns (bare, monitored) per round.
fn interleaved<T>(rounds: usize, mut measure: impl FnMut(bool) -> T) -> Vec<(T, T)> {
    measure(false);
    measure(true);
    (0..rounds)
        .map(|round| {
            if round % 2 == 0 {
                let bare = measure(false);
                (bare, measure(true))
            } else {
                let monitored = measure(true);
                (measure(false), monitored)
            }
        })
        .collect()
}

/// Sorts `ratios` (for the listing of every round) and formats their min, median and max
/// ("n/a" when empty).
fn min_median_max(ratios: &mut [f64]) -> String {
    ratios.sort_by(f64::total_cmp);
    if ratios.is_empty() {
        return "n/a".to_owned();
    }
    let (median, min, max) = median_min_max(ratios);
    format!("{min:.3} {median:.3} {max:.3}")
}

/// `iters` split into `tasks` near-equal shares.
fn shares(iters: u64, tasks: u64) -> impl Iterator<Item = u64> {
    (0..tasks).map(move |task| iters / tasks + u64::from(task < iters % tasks))
}

/// The two pools of the `SELECT 1` bench against the shared server.
type PgPools = (
    MonitoredPool<PostgresManager>,
    bb8::Pool<bb8_postgres::PostgresConnectionManager<tokio_postgres::NoTls>>,
);

/// MonitoredPool with its database defaults, and bare bb8-postgres with bb8's defaults (a
/// validity round trip on every checkout), both of `SELECT_CONNS` connections.
fn pg_pools(rt: &tokio::runtime::Runtime, url: &str, tracker: &ResourceTracker) -> PgPools {
    let monitored = rt.block_on(async {
        let config = PoolConfig {
            min_size: SELECT_CONNS,
            max_size: SELECT_CONNS,
            ..PoolConfig::database()
        };
        let manager = PostgresManager::new(url, None).expect("url");
        MonitoredPool::new("bench-pg", config, manager, tracker).expect("valid")
    });
    let bare = rt.block_on(async {
        let manager = bb8_postgres::PostgresConnectionManager::new_from_stringlike(
            url,
            tokio_postgres::NoTls,
        )
        .expect("url");
        bb8::Pool::builder()
            .max_size(SELECT_CONNS)
            .build(manager)
            .await
            .expect("bare bb8-postgres pool")
    });
    (monitored, bare)
}

fn select_1(c: &mut Criterion) {
    let url = test_support::shared_database_url();
    let rt = runtime();
    let tracker = ResourceTracker::new();
    let (monitored, bare) = pg_pools(&rt, &url, &tracker);
    let mut group = c.benchmark_group("select_1");
    group.throughput(Throughput::Elements(1));
    group.sample_size(20);
    group.bench_function("bare_bb8_postgres", |b| {
        b.to_async(&rt)
            .iter_custom(|iters| spread(&bare, SelectOne, iters, SELECT_TASKS));
    });
    group.bench_function("monitored_pool", |b| {
        b.to_async(&rt)
            .iter_custom(|iters| spread(&monitored, SelectOne, iters, SELECT_TASKS));
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().configure_from_args();
    targets = checkout, checkout_contended, select_1
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    // The paired rounds run when the contended group is selected (no filter, or a filter
    // that the group's name contains).
    if filter_selects("select_1") {
        paired_select_1();
    }
    if filter_selects("checkout/") {
        paired_checkout_single();
    }
    if filter_selects("checkout_contended") {
        paired_checkout(false);
        paired_checkout(true);
    }
}

/// `SELECT 1`s per pool and round in the paired measurement.
const SELECT_PAIRED_OPS: u64 = 40_000;
const SELECT_PAIRED_ROUNDS: usize = 5;

/// `SELECT 1` throughput of both pools in interleaved rounds, then pgbench with a `SELECT 1`
/// script and `SELECT_CONNS` clients against the same server, all in one run.
fn paired_select_1() {
    let url = test_support::shared_database_url();
    let rt = runtime();
    let tracker = ResourceTracker::new();
    let (monitored, bare) = pg_pools(&rt, &url, &tracker);
    let rate = |use_monitored: bool| {
        let elapsed = rt.block_on(async {
            if use_monitored {
                spread(&monitored, SelectOne, SELECT_PAIRED_OPS, SELECT_TASKS).await
            } else {
                spread(&bare, SelectOne, SELECT_PAIRED_OPS, SELECT_TASKS).await
            }
        });
        SELECT_PAIRED_OPS as f64 / elapsed.as_secs_f64()
    };
    let mut ratios = Vec::new();
    let mut best = [0.0_f64; 2];
    for (bare_rate, monitored_rate) in interleaved(SELECT_PAIRED_ROUNDS, rate) {
        best[0] = best[0].max(bare_rate);
        best[1] = best[1].max(monitored_rate);
        ratios.push(monitored_rate / bare_rate);
    }
    println!(
        "\nselect_1 paired: {SELECT_PAIRED_ROUNDS} interleaved rounds of {SELECT_PAIRED_OPS} \
         SELECT 1, {SELECT_TASKS} tasks, {SELECT_CONNS} connections"
    );
    println!(
        "  best round: bare bb8-postgres {:.1} k/s, monitored {:.1} k/s; monitored / bare \
         (min median max): {}",
        best[0] / 1e3,
        best[1] / 1e3,
        min_median_max(&mut ratios)
    );
    drop((monitored, bare));
    match pgbench(&url) {
        Some(tps) => println!(
            "  pgbench -n -M simple -c {SELECT_CONNS} -j {WORKERS} -T 10 (SELECT 1 script): \
             {:.1} k tps; monitored best / pgbench = {:.2}",
            tps / 1e3,
            best[1] / tps
        ),
        None => println!("  pgbench: not run (not on PATH, or it failed)"),
    }
}

/// Runs pgbench for 10 s with a `SELECT 1` script against `url` and returns its tps.
fn pgbench(url: &str) -> Option<f64> {
    let script = std::env::temp_dir().join(format!("resync-select1-{}.sql", std::process::id()));
    std::fs::write(&script, "SELECT 1;\n").ok()?;
    let output = std::process::Command::new("pgbench")
        .args(["-n", "-M", "simple", "-T", "10"])
        .arg(format!("-c{SELECT_CONNS}"))
        .arg(format!("-j{WORKERS}"))
        .arg("-f")
        .arg(&script)
        .arg(url)
        .output();
    let _ = std::fs::remove_file(&script);
    let output = output.ok().filter(|output| output.status.success())?;
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|tps| tps.parse().ok())
}

/// Whether Criterion's name filter (the first positional argument) selects `group`.
fn filter_selects(group: &str) -> bool {
    /// Criterion options followed by a value.
    const WITH_VALUE: [&str; 9] = [
        "--warm-up-time",
        "--measurement-time",
        "--sample-size",
        "--profile-time",
        "--save-baseline",
        "--baseline",
        "--output-format",
        "--noise-threshold",
        "--significance-level",
    ];
    let mut args = std::env::args().skip(1);
    if std::env::args().any(|arg| arg == "--profile-time") {
        // Profiling one benchmark: nothing else may run in the process.
        return false;
    }
    while let Some(arg) = args.next() {
        if WITH_VALUE.contains(&arg.as_str()) {
            args.next();
        } else if !arg.starts_with('-') {
            return group.contains(arg.as_str()) || arg.contains(group);
        }
    }
    true
}
