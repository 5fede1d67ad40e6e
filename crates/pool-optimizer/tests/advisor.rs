//! The sizing advisor against a synthetic load with a known arrival rate and hold time.

use std::time::{Duration, Instant};

use resync_perf_core::Delta;
use resync_pool_optimizer::{
    advise, Error, FnManager, HealthProbe, HealthThresholds, MonitoredPool, PoolConfig,
    MAX_WAIT_PROBABILITY, MIN_ACQUIRES,
};
use resync_resource_manager::ResourceTracker;

/// Erlang C written independently of the crate: the textbook factorial form in log space.
fn wait_probability(servers: u32, load: f64) -> f64 {
    let c = f64::from(servers);
    if c <= load {
        return 1.0;
    }
    let ln_term =
        |k: u32| f64::from(k) * load.ln() - (1..=k).map(|i| f64::from(i).ln()).sum::<f64>();
    let sum: f64 = (0..servers).map(|k| ln_term(k).exp()).sum();
    let top = ln_term(servers).exp() * c / (c - load);
    top / (sum + top)
}

fn smallest_size(load: f64) -> u32 {
    (1..)
        .find(|&c| wait_probability(c, load) <= MAX_WAIT_PROBABILITY)
        .expect("finite")
}

fn pool(max_size: u32) -> MonitoredPool<impl HealthProbe<Connection = (), Error = Error>> {
    let config = PoolConfig {
        min_size: 0,
        max_size,
        ..PoolConfig::database()
    };
    let manager = FnManager::new(|| async { Ok::<_, std::io::Error>(()) });
    MonitoredPool::new("synthetic", config, manager, &ResourceTracker::new()).expect("valid")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erlang_c_size_matches_an_independent_computation_from_measured_load() {
    let pool = pool(100);
    let older = pool.metrics();
    // 200 acquires per second, each held 20 ms: L = 4.
    let mut ticks = tokio::time::interval(Duration::from_millis(5));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut holders = tokio::task::JoinSet::new();
    let started = Instant::now();
    let mut spawned = 0_u64;
    while started.elapsed() < Duration::from_secs(3) {
        ticks.tick().await;
        spawned += 1;
        let pool = pool.clone();
        holders.spawn(async move {
            let conn = pool.get().await.expect("get");
            tokio::time::sleep(Duration::from_millis(20)).await;
            drop(conn);
        });
    }
    while let Some(joined) = tokio::time::timeout(Duration::from_secs(30), holders.join_next())
        .await
        .expect("holders finish")
    {
        joined.expect("holder ran");
    }
    let window = pool.metrics().delta(&older);
    // Counted, not timed: every holder checked out once and held at least its 20 ms sleep.
    assert_eq!(window.acquires, spawned);
    assert!(spawned >= MIN_ACQUIRES, "only {spawned} acquires");
    let lambda = window.acquires as f64 / window.elapsed_secs;
    let hold = window.hold_time.sum() as f64 / window.hold_time.count() as f64 / 1e9;
    assert!(
        hold >= 0.020,
        "mean hold {hold} s is below the 20 ms each holder slept"
    );
    let expected = smallest_size(lambda * hold);

    let advice = advise(&window, pool.config(), None, &HealthThresholds::default());
    let sized = advice
        .iter()
        .find(|rec| rec.evidence.contains_key("erlang_c_size"))
        .unwrap_or_else(|| panic!("no sizing advice in {advice:#?}"));
    let size = sized.evidence["erlang_c_size"];
    assert!(
        (size - f64::from(expected)).abs() <= 1.0,
        "advisor says {size}, independent Erlang C says {expected} (λ={lambda:.1}/s, W={hold:.4}s)"
    );
    assert_eq!(
        sized.code, "pool.shrink_max_size",
        "a 100-connection pool for L≈4 is too big"
    );
    let change = sized.change.as_ref().expect("a setting change");
    assert_eq!(change.key, "DB_POOL_MAX_SIZE");
    for name in [
        "arrival_rate_per_sec",
        "mean_hold_secs",
        "offered_load",
        "p95_wait_ms",
        "utilization",
    ] {
        assert!(sized.evidence.contains_key(name), "evidence {name} missing");
    }
}

#[tokio::test]
async fn an_idle_pool_has_insufficient_data() {
    let pool = pool(10);
    let advice = advise(
        &pool.metrics(),
        pool.config(),
        None,
        &HealthThresholds::default(),
    );
    assert_eq!(advice.len(), 1, "{advice:#?}");
    assert_eq!(advice[0].code, "pool.insufficient_data");
}

#[tokio::test]
async fn exhaustion_is_critical_and_suggests_a_larger_max_size() {
    let config = PoolConfig {
        min_size: 0,
        max_size: 1,
        acquire_timeout: Some(Duration::from_millis(50)),
        ..PoolConfig::redis()
    };
    let manager = FnManager::new(|| async { Ok::<_, std::io::Error>(()) });
    let pool = MonitoredPool::new("tiny", config, manager, &ResourceTracker::new()).expect("valid");
    for _ in 0..60 {
        drop(pool.get().await.expect("get"));
    }
    let held = pool.get().await.expect("get");
    assert!(pool.get().await.is_err());
    drop(held);
    let advice = advise(
        &pool.metrics(),
        pool.config(),
        None,
        &HealthThresholds::default(),
    );
    let exhausted = advice
        .iter()
        .find(|rec| rec.code == "pool.exhausted")
        .unwrap_or_else(|| panic!("no exhaustion advice in {advice:#?}"));
    let change = exhausted.change.as_ref().expect("change");
    assert_eq!(change.key, "REDIS_POOL_MAX_SIZE");
    assert_eq!(exhausted.evidence["exhaustions"], 1.0);
}
