//! The stash inside a real pool over counted connections (each is its number).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use resync_resource_manager::ResourceTracker;
use tokio::sync::Notify;

use super::*;
use crate::{FnManager, MonitoredPool, PoolConfig};

/// Generous bound for what the tests wait for on a loaded machine.
const BOUND: Duration = Duration::from_secs(60);

fn config(max_size: u32, skip_window: Duration) -> PoolConfig {
    PoolConfig {
        min_size: 0,
        max_size,
        acquire_timeout: Some(BOUND),
        connect_timeout: BOUND,
        validation_skip_window: skip_window,
        ..PoolConfig::default()
    }
}

/// No connection is broken.
const NONE: u64 = u64::MAX;

/// A pool whose connections are `0, 1, 2, …`, the one numbered `broken` broken; `made`
/// counts connects.
fn counted(
    config: PoolConfig,
) -> (
    MonitoredPool<impl bb8::ManageConnection<Connection = u64, Error = crate::Error>>,
    Arc<AtomicU64>,
    Arc<AtomicU64>,
) {
    let made = Arc::new(AtomicU64::new(0));
    let broken = Arc::new(AtomicU64::new(NONE));
    let manager = FnManager::new({
        let made = Arc::clone(&made);
        move || {
            let made = Arc::clone(&made);
            async move { Ok::<_, std::io::Error>(made.fetch_add(1, Ordering::Relaxed)) }
        }
    })
    .with_check({
        let broken = Arc::clone(&broken);
        move |conn: &mut u64| *conn != broken.load(Ordering::Relaxed)
    });
    let pool = MonitoredPool::new("stash", config, manager, &ResourceTracker::new())
        .expect("valid config");
    (pool, made, broken)
}

/// Polls `check` every 2 ms until it holds; panics with `what` after [`BOUND`].
async fn until(what: &str, check: impl Fn() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < BOUND, "{what}: not in {BOUND:?}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test]
async fn a_returned_connection_is_taken_again_from_the_stash_without_bb8() {
    let (pool, made, _) = counted(config(2, Duration::from_secs(60)));
    let conn = pool.get().await.expect("get");
    assert_eq!(*conn, 0);
    drop(conn);
    let stash = &pool.inner.stash;
    assert_eq!(stash.len(), 1);
    assert_eq!(
        pool.inner.pool.state().idle_connections,
        0,
        "not back in bb8"
    );
    let metrics = pool.metrics();
    assert_eq!(
        (metrics.connections, metrics.idle, metrics.in_use),
        (1, 1, 0)
    );

    let conn = pool.get().await.expect("get");
    assert_eq!((*conn, stash.len()), (0, 0));
    drop(conn);
    let metrics = pool.metrics();
    assert_eq!(made.load(Ordering::Relaxed), 1);
    assert_eq!((metrics.acquires, metrics.acquires_direct), (2, 1));
    assert_eq!(metrics.validations_run, 0, "used within the skip window");
}

#[tokio::test]
async fn connections_idle_past_the_freshness_window_go_back_to_bb8() {
    let window = Duration::from_millis(30);
    let (pool, _, _) = counted(config(2, window));
    let returned = Instant::now();
    drop(pool.get().await.expect("get"));
    let stash = &pool.inner.stash;
    // The keeper hands it back (it may be gone already on a slow machine).
    until("the keeper empties the stash", || stash.len() == 0).await;
    assert!(returned.elapsed() >= window, "not before it went stale");
    assert_eq!(pool.inner.pool.state().idle_connections, 1);
    let metrics = pool.metrics();
    assert_eq!((metrics.connections, metrics.idle), (1, 1));
    // Checked out through bb8, whose checkout validation makes the round trip.
    let conn = pool.get().await.expect("get");
    assert_eq!(*conn, 0);
    assert_eq!(pool.metrics().validations_run, 1);
}

#[tokio::test]
async fn a_stale_top_sends_the_whole_stash_back_to_bb8() {
    let window = Duration::from_millis(30);
    let (pool, _, _) = counted(config(3, window));
    let (a, b) = (
        pool.get().await.expect("get"),
        pool.get().await.expect("get"),
    );
    drop((a, b));
    let stash = &pool.inner.stash;
    let left = Instant::now();
    // The keeper may take them first: either way they end in bb8, never handed out stale.
    tokio::time::sleep(window).await;
    assert!(left.elapsed() >= window);
    assert!(stash.take().is_none());
    assert_eq!(stash.len(), 0);
    assert_eq!(pool.inner.pool.state().idle_connections, 2);
}

#[tokio::test]
async fn reported_and_broken_connections_never_enter_the_stash() {
    let (pool, made, broken) = counted(config(2, Duration::from_secs(60)));
    let stash = &pool.inner.stash;
    let mut conn = pool.get().await.expect("get");
    conn.report_error();
    drop(conn);
    assert_eq!(stash.len(), 0);
    let metrics = pool.metrics();
    assert_eq!((metrics.caller_errors, metrics.closed_broken), (1, 1));
    assert_eq!(metrics.connections, 0);

    let conn = pool.get().await.expect("get");
    assert_eq!(*conn, 1);
    broken.store(1, Ordering::Relaxed);
    drop(conn);
    assert_eq!(stash.len(), 0);
    let metrics = pool.metrics();
    assert_eq!((metrics.broken, metrics.closed_broken), (1, 2));
    assert_eq!(metrics.connections, 0);
    assert_eq!(made.load(Ordering::Relaxed), 2);
}

#[tokio::test]
async fn a_connection_that_broke_in_the_stash_is_a_validation_failure_and_the_next_is_tried() {
    let (pool, made, broken) = counted(config(3, Duration::from_secs(60)));
    let (a, b) = (
        pool.get().await.expect("get"),
        pool.get().await.expect("get"),
    );
    assert_eq!((*a, *b), (0, 1));
    drop((a, b));
    assert_eq!(pool.inner.stash.len(), 2);
    // The top (1, returned last) broke while idle: closed, and 0 under it handed out.
    broken.store(1, Ordering::Relaxed);
    let conn = pool.get().await.expect("get");
    assert_eq!(*conn, 0);
    assert_eq!(made.load(Ordering::Relaxed), 2, "no connect");
    let metrics = pool.metrics();
    // Counted as checkout validation counts it, not as a pool error.
    assert_eq!(
        (metrics.validation_failures, metrics.closed_invalid),
        (1, 1)
    );
    assert_eq!((metrics.broken, metrics.closed_broken), (0, 0));
    assert_eq!(metrics.connections, 1);
}

#[tokio::test]
async fn min_size_is_kept_across_the_stash_and_bb8_without_churn() {
    let config = PoolConfig {
        min_size: 2,
        ..config(4, Duration::from_secs(60))
    };
    let (pool, made, broken) = counted(config);
    // The keeper opens them (bb8 is built without `min_idle`).
    until("the keeper opens min_size connections", || {
        pool.metrics().idle == 2
    })
    .await;
    for _ in 0..100 {
        drop(pool.get().await.expect("get"));
    }
    // One connection serves every checkout from the stash; bb8 opens none beside it.
    let metrics = pool.metrics();
    assert_eq!(
        (metrics.connections, metrics.idle, metrics.created),
        (2, 2, 2)
    );
    assert_eq!(made.load(Ordering::Relaxed), 2);
    // A connection closed as broken is replaced by the keeper, not by a get.
    let conn = pool.get().await.expect("get");
    broken.store(*conn, Ordering::Relaxed);
    drop(conn);
    until("the keeper replaces the broken connection", || {
        let metrics = pool.metrics();
        metrics.idle == 2 && metrics.created == 3
    })
    .await;
    assert_eq!(made.load(Ordering::Relaxed), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_return_goes_to_the_get_waiting_in_bb8_for_a_connect() {
    // The first connect is immediate; the second waits until released. A get waiting in bb8
    // for it must be handed a connection returned meanwhile, not find it stashed away.
    let made = Arc::new(AtomicU64::new(0));
    let release = Arc::new(Notify::new());
    let manager = FnManager::new({
        let (made, release) = (Arc::clone(&made), Arc::clone(&release));
        move || {
            let (made, release) = (Arc::clone(&made), Arc::clone(&release));
            async move {
                let n = made.fetch_add(1, Ordering::Relaxed);
                if n > 0 {
                    release.notified().await;
                }
                Ok::<_, std::io::Error>(n)
            }
        }
    });
    let pool = MonitoredPool::new(
        "stash-waiter",
        config(2, Duration::from_secs(60)),
        manager,
        &ResourceTracker::new(),
    )
    .expect("valid config");
    let held = pool.get().await.expect("get");
    assert_eq!(*held, 0);
    let waiter = tokio::spawn({
        let pool = pool.clone();
        async move { *pool.get().await.expect("get") }
    });
    until("the second get waits in bb8", || {
        pool.metrics().waiting == 1 && made.load(Ordering::Relaxed) == 2
    })
    .await;
    drop(held);
    // Straight to bb8, which wakes the waiter: stashed, it would wait for the keeper.
    assert_eq!(pool.inner.stash.len(), 0);
    let got = tokio::time::timeout(BOUND, waiter)
        .await
        .expect("the waiter got the returned connection")
        .expect("no panic");
    assert_eq!(got, 0);
    release.notify_waiters();
}

#[tokio::test]
async fn the_keeper_ends_with_its_pool_and_a_short_window_has_no_stash() {
    let (pool, _, _) = counted(config(1, Duration::from_secs(60)));
    let keeper = spawn_keeper(&pool.inner.stash).expect("a stash");
    drop(pool.get().await.expect("get"));
    drop(pool);
    tokio::time::timeout(BOUND, keeper)
        .await
        .expect("the keeper ends")
        .expect("no panic");

    let (pool, _, _) = counted(config(1, MIN_FRESH / 2));
    assert!(spawn_keeper(&pool.inner.stash).is_none());
    drop(pool.get().await.expect("get"));
    assert_eq!(pool.inner.stash.len(), 0, "no stash");
    assert_eq!(pool.inner.pool.state().idle_connections, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keeper_opens_min_size_connections_at_once() {
    // Each connect waits until all three are in flight: one at a time, none would finish.
    let in_flight = Arc::new(tokio::sync::Barrier::new(3));
    let manager = FnManager::new(move || {
        let in_flight = Arc::clone(&in_flight);
        async move {
            in_flight.wait().await;
            Ok::<_, std::io::Error>(0_u64)
        }
    });
    let config = PoolConfig {
        min_size: 3,
        ..config(4, Duration::from_secs(60))
    };
    let pool = MonitoredPool::new("stash-fill", config, manager, &ResourceTracker::new())
        .expect("valid config");
    until("the keeper opens three connections at once", || {
        pool.metrics().idle == 3
    })
    .await;
    let metrics = pool.metrics();
    assert_eq!((metrics.created, metrics.connect_failures), (3, 0));
}
