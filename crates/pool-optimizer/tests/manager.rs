//! PoolManager over closure-built pools: background checks, health verdicts, timeouts.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use resync_perf_core::HealthStatus;
use resync_pool_optimizer::{
    Error, FnManager, HealthProbe, MonitoredPool, PoolConfig, PoolManager,
};
use resync_resource_manager::ResourceTracker;

use common::wait::wait_for_status;

const BOUND: Duration = Duration::from_secs(30);

fn switchable_pool(
    name: &str,
    alive: &Arc<AtomicBool>,
    config: PoolConfig,
) -> MonitoredPool<impl HealthProbe<Connection = (), Error = Error>> {
    let alive = Arc::clone(alive);
    let manager = FnManager::new(|| async { Ok::<_, std::io::Error>(()) })
        .with_check(move |_: &mut ()| alive.load(Ordering::Relaxed));
    MonitoredPool::new(name, config, manager, &ResourceTracker::new()).expect("valid")
}

fn config() -> PoolConfig {
    PoolConfig {
        min_size: 0,
        max_size: 2,
        health_check_interval: Duration::from_millis(100),
        acquire_timeout: Some(Duration::from_secs(1)),
        ..PoolConfig::default()
    }
}

#[tokio::test]
async fn background_checks_turn_a_failing_pool_critical_and_back() {
    let alive = Arc::new(AtomicBool::new(true));
    let manager = PoolManager::default();
    manager
        .add(switchable_pool("switch", &alive, config()))
        .expect("added");
    wait_for_status(&manager, "switch", HealthStatus::Healthy, "switch").await;

    alive.store(false, Ordering::Relaxed);
    wait_for_status(&manager, "switch", HealthStatus::Critical, "switch").await;
    let record = manager.health_check("switch").expect("registered");
    assert!(record.consecutive_failures >= 1);
    assert!(record.last_duration_secs.is_some());
    let health = manager.pool_health("switch").expect("registered");
    assert!(
        health
            .reasons
            .iter()
            .any(|r| r.code == "pool.health_check_failing"
                && r.status == HealthStatus::Critical
                && r.message.contains("health check failing")),
        "{health:?}"
    );
    let advice = manager.recommendations(&[]);
    assert!(
        advice.iter().any(|rec| rec.code == "pool.unhealthy"),
        "{advice:#?}"
    );

    alive.store(true, Ordering::Relaxed);
    wait_for_status(&manager, "switch", HealthStatus::Healthy, "switch").await;
}

#[tokio::test]
async fn check_all_runs_every_pool_and_a_stuck_check_times_out() {
    let alive = Arc::new(AtomicBool::new(true));
    let manager = PoolManager::default();
    manager
        .add(switchable_pool("ok", &alive, config()))
        .expect("added");
    let stuck_config = PoolConfig {
        max_size: 1,
        health_check_interval: Duration::from_secs(3600),
        health_check_timeout: Some(Duration::from_millis(100)),
        acquire_timeout: Some(Duration::from_secs(20)),
        ..config()
    };
    let stuck = switchable_pool("stuck", &alive, stuck_config);
    manager.add(stuck.clone()).expect("added");
    assert!(matches!(
        manager.add(switchable_pool("ok", &alive, config())),
        Err(Error::DuplicatePool(_))
    ));
    // The only connection of "stuck" is held, so its check cannot get one in time.
    let held = stuck.get().await.expect("get");
    let results = tokio::time::timeout(BOUND, manager.check_all())
        .await
        .expect("bounded");
    assert!(results["ok"].is_ok(), "{results:?}");
    assert!(
        matches!(results["stuck"], Err(Error::HealthCheckTimeout { .. })),
        "{results:?}"
    );
    assert_eq!(manager.names(), ["ok", "stuck"]);
    assert_eq!(manager.metrics().len(), 2);
    let reports = manager.reports();
    assert_eq!(reports.len(), 2);
    assert_eq!(reports[1].metrics.name, "stuck");
    assert!(reports[1].health_check.is_failing());
    assert_eq!(reports[1].health.status, HealthStatus::Critical);
    drop(held);
    assert!(manager.remove("stuck"));
    assert_eq!(manager.names(), ["ok"]);
}

/// A manager whose health probe waits at a gate and records how many probes overlap.
#[derive(Debug)]
struct GatedProbe {
    gate: tokio::sync::Semaphore,
    active: std::sync::atomic::AtomicU64,
    most_active: std::sync::atomic::AtomicU64,
    probes: std::sync::atomic::AtomicU64,
}

#[derive(Debug, Clone)]
struct GatedManager(Arc<GatedProbe>);

impl GatedManager {
    /// The gate starts closed.
    fn closed() -> Self {
        Self(Arc::new(GatedProbe {
            gate: tokio::sync::Semaphore::new(0),
            active: std::sync::atomic::AtomicU64::new(0),
            most_active: std::sync::atomic::AtomicU64::new(0),
            probes: std::sync::atomic::AtomicU64::new(0),
        }))
    }
}

impl bb8::ManageConnection for GatedManager {
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

impl HealthProbe for GatedManager {
    async fn probe(&self, _conn: &mut ()) -> Result<(), std::io::Error> {
        let probe = &self.0;
        let now_active = probe.active.fetch_add(1, Ordering::SeqCst) + 1;
        probe.most_active.fetch_max(now_active, Ordering::SeqCst);
        probe.probes.fetch_add(1, Ordering::SeqCst);
        let permit = probe.gate.acquire().await;
        drop(permit);
        probe.active.fetch_sub(1, Ordering::SeqCst);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_all_waits_for_a_background_check_in_progress() {
    let probe = GatedManager::closed();
    let config = PoolConfig {
        health_check_interval: Duration::from_millis(20),
        health_check_timeout: Some(BOUND),
        ..config()
    };
    let pool =
        MonitoredPool::new("gated", config, probe.clone(), &ResourceTracker::new()).expect("valid");
    let manager = Arc::new(PoolManager::default());
    manager.add(pool).expect("added");
    // A background check is in its probe, held at the closed gate.
    let started = std::time::Instant::now();
    while probe.0.active.load(Ordering::SeqCst) == 0 {
        assert!(started.elapsed() < BOUND, "no background check started");
        tokio::task::yield_now().await;
    }
    let check_all = {
        let manager = Arc::clone(&manager);
        tokio::spawn(async move { manager.check_all().await })
    };
    // Give check_all every chance to start an overlapping probe (it must not).
    for _ in 0..1_000 {
        tokio::task::yield_now().await;
    }
    assert_eq!(probe.0.active.load(Ordering::SeqCst), 1);
    probe.0.gate.add_permits(1);
    let results = tokio::time::timeout(BOUND, check_all)
        .await
        .expect("bounded")
        .expect("joins");
    assert!(results["gated"].is_ok(), "{results:?}");
    assert_eq!(probe.0.most_active.load(Ordering::SeqCst), 1);
    assert!(probe.0.probes.load(Ordering::SeqCst) >= 2);
}
