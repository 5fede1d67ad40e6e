//! A monitored Postgres pool under a short concurrent load, its figures and the advisor's
//! advice with the evidence behind it.
//!
//! ```text
//! cargo run -p resync-pool-optimizer --example monitored_pool -- postgres://user@127.0.0.1/db
//! ```
//!
//! The URL comes from the first argument, else from `RESYNC_TEST_DATABASE_URL` (which
//! `cargo xtask services up` prints). Sixteen tasks share a pool of at most four
//! connections; each checks one out forty times and runs a query that takes about 5 ms
//! (`SELECT pg_sleep(0.005)`) on it. That is more load than four connections carry without
//! queueing, and the advisor's queueing model (Erlang C over the measured arrival rate and
//! hold time) says how large the pool should be. The example prints the pool's metrics, its
//! health verdict and the advice, each item with its evidence, and exits non-zero when a
//! figure does not add up.

use std::error::Error;
use std::time::{Duration, Instant};

use resync_perf_core::Delta;
use resync_pool_optimizer::{MonitoredPool, PoolConfig, PoolManager, PoolMetrics, PostgresManager};
use resync_resource_manager::ResourceTracker;

/// Concurrent tasks.
const TASKS: u64 = 16;
/// Checkouts per task.
const QUERIES: u64 = 40;
/// The pool's largest size.
const MAX_SIZE: u32 = 4;

type BoxError = Box<dyn Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let url = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("RESYNC_TEST_DATABASE_URL").ok())
        .filter(|url| !url.trim().is_empty())
        .ok_or("give a Postgres URL as the argument or in RESYNC_TEST_DATABASE_URL")?;

    // Every checkout is tracked: a connection held past `leak_threshold` is a leak.
    let tracker = ResourceTracker::new();
    let config = PoolConfig {
        min_size: 1,
        max_size: MAX_SIZE,
        connect_timeout: Duration::from_secs(10),
        ..PoolConfig::database()
    };
    let pool = MonitoredPool::new("db", config, PostgresManager::new(&url, None)?, &tracker)?;
    let manager = PoolManager::default();
    manager.add(pool.clone())?;
    // One health check (`SELECT 1`) now; the manager also runs one every interval.
    for (name, outcome) in manager.check_all().await {
        println!("health check of pool `{name}`: {outcome:?}");
    }

    // The figures are cumulative: the load's window is the difference of two snapshots.
    let before = pool.metrics();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..TASKS {
        let pool = pool.clone();
        tasks.spawn(async move {
            for _ in 0..QUERIES {
                let conn = pool.get().await?;
                conn.execute("SELECT pg_sleep(0.005)", &[]).await?;
            }
            Ok::<(), BoxError>(())
        });
    }
    while let Some(finished) = tasks.join_next().await {
        finished??;
    }
    println!(
        "\n{TASKS} tasks × {QUERIES} queries of ~5 ms through at most {MAX_SIZE} connections in {:.2} s",
        started.elapsed().as_secs_f64()
    );

    let metrics = pool.metrics().delta(&before);
    print_metrics(&metrics);
    for health in manager.health() {
        println!("\nhealth of pool `{}`: {}", health.name, health.status);
        for reason in &health.reasons {
            println!(
                "  {} — {} (measured {}, threshold {})",
                reason.code, reason.message, reason.measured, reason.threshold
            );
        }
    }
    // Advice over the load's window (since the snapshot `before`).
    let advice = manager.recommendations(&[before]);
    println!("\nadvice ({}):", advice.len());
    for item in &advice {
        println!("  [{}] {} — {}", item.severity, item.code, item.message);
        for (name, value) in &item.evidence {
            println!("      {name} = {value}");
        }
        if let Some(change) = &item.change {
            println!(
                "      change {}: {} → {}",
                change.key, change.current, change.suggested
            );
        }
    }

    if metrics.acquires != TASKS * QUERIES {
        return Err(format!(
            "{} checkouts counted for {} made",
            metrics.acquires,
            TASKS * QUERIES
        )
        .into());
    }
    if advice.is_empty() {
        return Err("the advisor said nothing about a saturated pool".into());
    }
    println!(
        "\nok: the pool measured and judged {} checkouts",
        metrics.acquires
    );
    Ok(())
}

fn millis(nanos: u64) -> f64 {
    nanos as f64 / 1e6
}

fn print_metrics(metrics: &PoolMetrics) {
    println!(
        "  connections {} (peak in use {}, max {})   created {}   connect p50 {:.2} ms",
        metrics.connections,
        metrics.peak_in_use,
        metrics.max_size,
        metrics.created,
        millis(metrics.connect_latency.p50())
    );
    println!(
        "  checkouts {}: {} at once, {} waited   exhausted {}   errors {}",
        metrics.acquires,
        metrics.acquires_direct,
        metrics.acquires_waited,
        metrics.exhaustions,
        metrics.errors()
    );
    println!(
        "  acquire wait p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms   hold mean {:.2} ms",
        millis(metrics.acquire_latency.p50()),
        millis(metrics.acquire_latency.p95()),
        millis(metrics.acquire_latency.p99()),
        metrics.hold_time.mean() / 1e6
    );
    println!(
        "  validations run {}, skipped {}   utilization {}   efficiency score {}",
        metrics.validations_run,
        metrics.validations_skipped,
        metrics
            .utilization()
            .map_or_else(|| "-".to_owned(), |u| format!("{:.0} %", u * 100.0)),
        metrics
            .efficiency_score()
            .map_or_else(|| "-".to_owned(), |s| format!("{s:.0} / 100")),
    );
}
