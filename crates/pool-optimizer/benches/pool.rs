//! Benches, each beside its baseline: MonitoredPool vs bare bb8.
//!
//! - `checkout`: get + drop with the same trivial manager (no I/O) on both sides, one task;
//!   the monitored pool gets bb8's default timeouts so only the instrumentation differs.
//! - `select_1`: `SELECT 1` from `CLIENTS` concurrent tasks through MonitoredPool vs bare
//!   bb8-postgres with bb8's defaults (a validity round trip on every checkout), against the
//!   shared server (`cargo xtask services up`; `RESYNC_TEST_DATABASE_URL`).

#![allow(missing_docs)] // reason: criterion_group! generates an undocumented function.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use resync_pool_optimizer::{MonitoredPool, PoolConfig, PostgresManager};
use resync_resource_manager::ResourceTracker;

/// Concurrent clients (and pool size) of the `SELECT 1` bench; pgbench runs with the same.
const CLIENTS: u32 = 8;

#[derive(Debug)]
struct Trivial;

impl bb8::ManageConnection for Trivial {
    type Connection = ();
    type Error = std::io::Error;

    async fn connect(&self) -> Result<(), std::io::Error> {
        Ok(())
    }

    async fn is_valid(&self, _conn: &mut ()) -> Result<(), std::io::Error> {
        Ok(())
    }

    fn has_broken(&self, _conn: &mut ()) -> bool {
        false
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn checkout(c: &mut Criterion) {
    let rt = runtime();
    let tracker = ResourceTracker::new();
    // bb8's defaults, as the bare pool below has them: idle 10 min, lifetime 30 min.
    let config = PoolConfig {
        min_size: 1,
        max_size: 4,
        idle_timeout: Some(Duration::from_secs(600)),
        max_lifetime: Some(Duration::from_secs(1800)),
        ..PoolConfig::default()
    };
    let monitored = rt
        .block_on(async { MonitoredPool::new("bench", config, Trivial, &tracker).expect("valid") });
    let bare = rt.block_on(async {
        bb8::Pool::builder()
            .max_size(4)
            .min_idle(Some(1))
            .build(Trivial)
            .await
            .expect("bare pool")
    });
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

/// Runs `iters` `SELECT 1`s spread over `CLIENTS` tasks and returns the wall time.
async fn concurrent<F, Fut>(iters: u64, one: F) -> Duration
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..u64::from(CLIENTS) {
        let share = iters / u64::from(CLIENTS) + u64::from(client < iters % u64::from(CLIENTS));
        let one = one.clone();
        tasks.spawn(async move {
            for _ in 0..share {
                one().await;
            }
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.expect("client task");
    }
    started.elapsed()
}

fn select_1(c: &mut Criterion) {
    let url = test_support::shared_database_url();
    let rt = runtime();
    let tracker = ResourceTracker::new();
    let monitored = rt.block_on(async {
        let config = PoolConfig {
            min_size: CLIENTS,
            max_size: CLIENTS,
            ..PoolConfig::database()
        };
        let manager = PostgresManager::new(&url, None).expect("url");
        MonitoredPool::new("bench-pg", config, manager, &tracker).expect("valid")
    });
    let bare = rt.block_on(async {
        let manager = bb8_postgres::PostgresConnectionManager::new_from_stringlike(
            &url,
            tokio_postgres::NoTls,
        )
        .expect("url");
        bb8::Pool::builder()
            .max_size(CLIENTS)
            .build(manager)
            .await
            .expect("bare bb8-postgres pool")
    });
    let mut group = c.benchmark_group("select_1");
    group.throughput(Throughput::Elements(1));
    group.sample_size(20);
    group.bench_function("bare_bb8_postgres", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let bare = bare.clone();
            concurrent(iters, move || {
                let bare = bare.clone();
                async move {
                    let conn = bare.get().await.expect("get");
                    conn.simple_query("SELECT 1").await.expect("select");
                }
            })
        });
    });
    group.bench_function("monitored_pool", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let pool = monitored.clone();
            concurrent(iters, move || {
                let pool = pool.clone();
                async move {
                    let conn = pool.get().await.expect("get");
                    conn.simple_query("SELECT 1").await.expect("select");
                }
            })
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = checkout, select_1
}
criterion_main!(benches);
