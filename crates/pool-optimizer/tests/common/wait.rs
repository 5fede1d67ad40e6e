//! Waiting for a pool's figures or health verdict: by polling events, with a generous bound.

use std::time::{Duration, Instant};

use resync_perf_core::HealthStatus;
use resync_pool_optimizer::{HealthCheckRecord, MonitoredPool, PoolManager, PoolMetrics};

/// Generous bound for anything the tests wait for on a loaded machine.
pub const WAIT_BOUND: Duration = Duration::from_secs(60);

/// Reads `read` every 10 ms until `done` accepts the reading, and returns it. Panics with
/// `what` and the last reading after [`WAIT_BOUND`].
async fn poll<T: std::fmt::Debug>(
    what: &str,
    read: impl Fn() -> T,
    done: impl Fn(&T) -> bool,
) -> T {
    let started = Instant::now();
    loop {
        let reading = read();
        if done(&reading) {
            return reading;
        }
        assert!(started.elapsed() < WAIT_BOUND, "{what}: still {reading:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Polls `pool`'s metrics until `done` accepts them, and returns them. Panics with `what`
/// after [`WAIT_BOUND`].
pub async fn wait_for_metrics<M>(
    pool: &MonitoredPool<M>,
    what: &str,
    done: impl Fn(&PoolMetrics) -> bool,
) -> PoolMetrics
where
    M: bb8::ManageConnection,
    M::Error: std::error::Error + Send + Sync + 'static,
{
    poll(what, || pool.metrics(), done).await
}

/// Waits until the pool `name` is judged `wanted` after at least one health check, and
/// returns its check record at that moment. Panics with `what` after [`WAIT_BOUND`].
pub async fn wait_for_status(
    manager: &PoolManager,
    name: &str,
    wanted: HealthStatus,
    what: &str,
) -> HealthCheckRecord {
    wait_until(manager, name, what, |status, record| {
        status == wanted && record.checks > 0
    })
    .await
}

/// Waits until the pool `name` is judged critical *and* its last health check failed, and
/// returns its check record then: the verdict can turn critical from the pool's own figures
/// (a get that said `Unavailable`) before the next check has run. Panics with `what` after
/// [`WAIT_BOUND`].
pub async fn wait_for_failed_check(
    manager: &PoolManager,
    name: &str,
    what: &str,
) -> HealthCheckRecord {
    wait_until(manager, name, what, |status, record| {
        status == HealthStatus::Critical && record.is_failing()
    })
    .await
}

/// Polls the pool `name`'s verdict and check record every 10 ms until `done` accepts them;
/// returns the record. Panics with `what` after [`WAIT_BOUND`].
async fn wait_until(
    manager: &PoolManager,
    name: &str,
    what: &str,
    done: impl Fn(HealthStatus, &HealthCheckRecord) -> bool,
) -> HealthCheckRecord {
    let read = || {
        let health = manager.pool_health(name).expect("registered");
        let record = manager.health_check(name).expect("registered");
        (health, record)
    };
    let (_health, record) = poll(what, read, |(health, record)| done(health.status, record)).await;
    record
}
