//! The pool engine itself, over closure-built resources (no backend needed).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use resync_pool_optimizer::{Error, FnManager, MonitoredPool, PoolConfig};
use resync_resource_manager::{KindConfig, LeakThreshold, ResourceTracker};

mod common;

use common::counter::{counter_pool, small_config};
use common::wait::wait_for_metrics;

const BOUND: Duration = Duration::from_secs(30);

#[tokio::test]
async fn every_get_is_an_acquire_with_latency_and_hold_time() {
    let pool = counter_pool(4, BOUND);
    for _ in 0..25 {
        let conn = tokio::time::timeout(BOUND, pool.get())
            .await
            .expect("bounded")
            .expect("get");
        assert!(*conn < 4, "at most max_size connections are made");
    }
    let metrics = pool.metrics();
    assert_eq!(metrics.acquires, 25);
    assert_eq!(metrics.acquire_latency.count(), 25);
    assert_eq!(metrics.hold_time.count(), 25);
    assert_eq!(metrics.in_use, 0);
    assert_eq!(metrics.peak_in_use, 1);
    assert_eq!(metrics.exhaustions, 0);
    assert_eq!(metrics.acquires_direct + metrics.acquires_waited, 25);
}

#[tokio::test]
async fn a_third_get_on_a_full_pool_of_two_is_an_exhaustion() {
    let pool = counter_pool(2, Duration::from_millis(200));
    let first = pool.get().await.expect("first");
    let second = pool.get().await.expect("second");
    let third = tokio::time::timeout(BOUND, pool.get())
        .await
        .expect("bounded");
    match third {
        Err(Error::Exhausted { pool: name, waited }) => {
            assert_eq!(&*name, "counter");
            assert!(
                waited >= Duration::from_millis(200),
                "waited the timeout: {waited:?}"
            );
        }
        other => panic!("expected Exhausted, got {other:?}"),
    }
    let metrics = pool.metrics();
    assert_eq!(metrics.exhaustions, 1);
    assert_eq!(metrics.acquires, 2);
    assert_eq!(metrics.peak_in_use, 2);
    drop((first, second));
    assert!(
        pool.get().await.is_ok(),
        "connections come back after release"
    );
}

#[tokio::test]
async fn a_busy_pool_waits_for_a_release_instead_of_failing() {
    let pool = counter_pool(1, BOUND);
    let held = pool.get().await.expect("first");
    let waiter = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.get().await.map(|conn| *conn) })
    };
    // The pool's own gauge counts the waiter once its first poll found no connection.
    let queued = Instant::now();
    while pool.metrics().waiting < 1 {
        assert!(queued.elapsed() < BOUND, "waiter never queued");
        tokio::task::yield_now().await;
    }
    drop(held);
    let got = tokio::time::timeout(BOUND, waiter)
        .await
        .expect("bounded")
        .expect("joins");
    assert_eq!(got.expect("the waiter gets the released connection"), 0);
}

#[tokio::test]
async fn failing_connects_make_get_unavailable_without_waiting_the_timeout() {
    let acquire_timeout = Duration::from_secs(20);
    let manager = FnManager::new(|| async {
        Err::<u64, _>(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "refused",
        ))
    });
    let pool = MonitoredPool::new(
        "down",
        small_config(3, acquire_timeout),
        manager,
        &ResourceTracker::new(),
    )
    .expect("valid config");
    let started = Instant::now();
    let result = tokio::time::timeout(BOUND, pool.get())
        .await
        .expect("bounded");
    let elapsed = started.elapsed();
    match result {
        Err(Error::Unavailable { source, .. }) => assert!(source.to_string().contains("refused")),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(elapsed < acquire_timeout, "failed fast, took {elapsed:?}");
    let metrics = pool.metrics();
    assert_eq!(metrics.unavailable, 1);
    assert!(metrics.connect_failures >= 1);
    assert_eq!(metrics.exhaustions, 0);
}

#[tokio::test]
async fn a_hanging_connect_is_timed_out_by_the_wrapper() {
    let connect_timeout = Duration::from_millis(100);
    let manager = FnManager::new(std::future::pending::<Result<u64, std::io::Error>>);
    let config = PoolConfig {
        connect_timeout,
        acquire_timeout: Some(Duration::from_secs(20)),
        min_size: 0,
        max_size: 1,
        ..PoolConfig::default()
    };
    let pool = MonitoredPool::new("hang", config, manager, &ResourceTracker::new()).expect("valid");
    let started = Instant::now();
    let result = tokio::time::timeout(BOUND, pool.get())
        .await
        .expect("bounded");
    assert!(
        matches!(result, Err(Error::Unavailable { .. })),
        "{result:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(pool.metrics().connect_timeouts, 1);
}

#[tokio::test]
async fn recently_used_connections_skip_validation_and_reported_ones_are_discarded() {
    let alive = Arc::new(AtomicBool::new(true));
    let manager = {
        let alive = Arc::clone(&alive);
        FnManager::new(|| async { Ok::<_, std::io::Error>(0_u64) })
            .with_check(move |_: &mut u64| alive.load(Ordering::Relaxed))
    };
    let config = PoolConfig {
        validation_skip_window: Duration::from_secs(3600),
        ..small_config(1, BOUND)
    };
    let pool = MonitoredPool::new("skip", config, manager, &ResourceTracker::new()).expect("valid");
    drop(pool.get().await.expect("first"));
    drop(pool.get().await.expect("second"));
    let metrics = pool.metrics();
    assert_eq!(metrics.validations_run, 0);
    assert!(metrics.validations_skipped >= 1, "{metrics:?}");

    let mut conn = pool.get().await.expect("third");
    conn.report_error();
    drop(conn);
    let metrics = pool.metrics();
    // One reported connection is one error: a caller error, not also "broken".
    assert_eq!(metrics.caller_errors, 1);
    assert_eq!(metrics.broken, 0);
    assert_eq!(metrics.errors(), 1);
    assert_eq!(metrics.closed_broken, 1);
    assert_eq!(metrics.closed_invalid, 0);
    let rate = metrics.error_rate().expect("has acquires");
    assert!((rate - 1.0 / 3.0).abs() < 1e-9, "{rate}");

    // A connection that fails checkout validation is closed once, as invalid.
    let dead_below = Arc::new(AtomicU64::new(0));
    let made = Arc::new(AtomicU64::new(0));
    let numbered = {
        let dead_below = Arc::clone(&dead_below);
        FnManager::new(move || {
            let id = made.fetch_add(1, Ordering::Relaxed);
            async move { Ok::<_, std::io::Error>(id) }
        })
        .with_check(move |id: &mut u64| *id >= dead_below.load(Ordering::Relaxed))
    };
    let config = PoolConfig {
        validation_skip_window: Duration::ZERO,
        ..small_config(1, BOUND)
    };
    let pool =
        MonitoredPool::new("numbered", config, numbered, &ResourceTracker::new()).expect("valid");
    assert_eq!(*pool.get().await.expect("first connection"), 0);
    dead_below.store(1, Ordering::Relaxed);
    assert_eq!(*pool.get().await.expect("a fresh connection"), 1);
    let metrics = pool.metrics();
    assert_eq!(metrics.validation_failures, 1);
    assert_eq!(metrics.closed_invalid, 1);
    assert_eq!(metrics.closed_broken, 0);
    assert_eq!(metrics.broken, 0);
    assert_eq!(metrics.errors(), 0);
}

#[tokio::test]
async fn a_connect_that_never_completes_is_unavailable_not_exhausted() {
    // Acquire timeout = connect timeout (the default): bb8's timer starts before the
    // wrapper's connect timer, so bb8 times out first — with nothing checked out.
    let manager = FnManager::new(std::future::pending::<Result<u64, std::io::Error>>);
    let config = PoolConfig {
        connect_timeout: Duration::from_millis(100),
        acquire_timeout: None,
        min_size: 0,
        max_size: 2,
        ..PoolConfig::default()
    };
    let pool = MonitoredPool::new("hang", config, manager, &ResourceTracker::new()).expect("valid");
    let result = tokio::time::timeout(BOUND, pool.get())
        .await
        .expect("bounded");
    assert!(
        matches!(result, Err(Error::Unavailable { .. })),
        "{result:?}"
    );
    let metrics = pool.metrics();
    assert_eq!(metrics.exhaustions, 0);
    assert_eq!(metrics.unavailable, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_connect_while_connections_are_checked_out_does_not_fail_waiters() {
    // Two connects succeed, every later one fails ("too many clients").
    let made = Arc::new(AtomicU64::new(0));
    let manager = {
        let made = Arc::clone(&made);
        FnManager::new(move || {
            let attempt = made.fetch_add(1, Ordering::Relaxed);
            async move {
                if attempt < 2 {
                    Ok(attempt)
                } else {
                    Err(std::io::Error::other("too many clients"))
                }
            }
        })
    };
    let pool = MonitoredPool::new(
        "busy",
        small_config(2, BOUND),
        manager,
        &ResourceTracker::new(),
    )
    .expect("valid");
    let mut first = pool.get().await.expect("first");
    let second = pool.get().await.expect("second");
    let waiter = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.get().await.map(|conn| *conn) })
    };
    let started = Instant::now();
    while pool.metrics().waiting < 1 {
        assert!(started.elapsed() < BOUND, "waiter never queued");
        tokio::task::yield_now().await;
    }
    // The first connection breaks; its replacement connect fails while `second` is out.
    first.report_error();
    drop(first);
    while pool.metrics().connect_failures < 1 {
        assert!(
            started.elapsed() < BOUND,
            "the replacement connect never failed"
        );
        tokio::task::yield_now().await;
    }
    drop(second);
    let got = tokio::time::timeout(BOUND, waiter)
        .await
        .expect("bounded")
        .expect("joins");
    assert_eq!(
        got.expect("the waiter gets the connection that came back"),
        1
    );
    let metrics = pool.metrics();
    assert_eq!(metrics.unavailable, 0);
    assert_eq!(metrics.exhaustions, 0);
}

#[tokio::test]
async fn connections_are_retired_at_max_lifetime_when_returned_and_when_found_idle() {
    const LIFETIME: Duration = Duration::from_millis(300);
    let (pool, made) = lifetime_pool(1, LIFETIME);
    let get = || async {
        tokio::time::timeout(BOUND, pool.get())
            .await
            .expect("bounded")
    };

    // Held past its lifetime: closed when returned, as a lifetime closure, not as broken.
    let conn = get().await.expect("get");
    let got_at = Instant::now();
    assert_eq!(*conn, 0);
    outlive(got_at, LIFETIME).await;
    drop(conn);
    let metrics = pool.metrics();
    assert_eq!(metrics.closed_max_lifetime, 1);
    assert_eq!((metrics.closed_broken, metrics.broken), (0, 0));
    assert_eq!(metrics.connections, 0, "the expired connection is gone");

    // Aged past its lifetime while idle: the next checkout closes it and makes a new one.
    let conn = get().await.expect("get");
    let got_at = Instant::now();
    assert_eq!(*conn, 1, "a new connection replaced the expired one");
    drop(conn);
    outlive(got_at, LIFETIME).await;
    let conn = get().await.expect("get");
    assert_eq!(
        *conn, 2,
        "the idle connection past its lifetime is never handed out"
    );
    drop(conn);
    let metrics = pool.metrics();
    assert_eq!(metrics.closed_max_lifetime, 2);
    assert_eq!(
        (metrics.closed_invalid, metrics.validation_failures),
        (0, 0)
    );
    assert_eq!(metrics.created, 3);
    assert_eq!(made.load(Ordering::Relaxed), 3);
    assert_eq!(metrics.acquires, 3);
}

/// Sleeps until a connection made before `since` is past `lifetime`, with room for the pool
/// clock's re-alignment with the OS clock (microseconds).
async fn outlive(since: Instant, lifetime: Duration) {
    tokio::time::sleep((lifetime + Duration::from_millis(50)).saturating_sub(since.elapsed()))
        .await;
}

/// A pool of counted connections (each is its number), with the given lifetime and an idle
/// timeout (the default one).
fn lifetime_pool(
    max_size: u32,
    lifetime: Duration,
) -> (
    MonitoredPool<impl bb8::ManageConnection<Connection = u64, Error = Error>>,
    Arc<AtomicU64>,
) {
    lifetime_pool_with(
        max_size,
        lifetime,
        PoolConfig::default().validation_skip_window,
    )
}

/// [`lifetime_pool`] with the given validation skip window.
fn lifetime_pool_with(
    max_size: u32,
    lifetime: Duration,
    skip_window: Duration,
) -> (
    MonitoredPool<impl bb8::ManageConnection<Connection = u64, Error = Error>>,
    Arc<AtomicU64>,
) {
    let made = Arc::new(AtomicU64::new(0));
    let manager = FnManager::new({
        let made = Arc::clone(&made);
        move || {
            let made = Arc::clone(&made);
            async move { Ok::<_, std::io::Error>(made.fetch_add(1, Ordering::Relaxed)) }
        }
    });
    let config = PoolConfig {
        max_lifetime: Some(lifetime),
        validation_skip_window: skip_window,
        ..small_config(max_size, BOUND)
    };
    let pool = MonitoredPool::new("lifetime", config, manager, &ResourceTracker::new())
        .expect("valid config");
    (pool, made)
}

#[tokio::test]
async fn a_checkout_skips_an_expired_idle_connection_for_a_fresh_one_without_connecting() {
    // Two idle connections, the older past its lifetime, the younger not: the checkout hands
    // out the younger with no new connect, and the older is closed as expired. Through bb8
    // (no stash: a round trip on every checkout) the checkout itself closes the older, which
    // bb8's idle queue (first in, first out) offers first; through the stash (the default) the
    // checkout takes the most recently returned, the younger, and the stash's keeper closes
    // the older. That needs the get to run after the older's lifetime ends and before the
    // younger's does; a machine that stalls past that window makes the attempt inconclusive
    // (never wrong), and it is tried again with a lifetime twice as long.
    for skip_window in [Duration::ZERO, PoolConfig::default().validation_skip_window] {
        let mut lifetime = Duration::from_millis(400);
        let mut decided = false;
        for _ in 0..5 {
            if expired_idle_connection_is_skipped(lifetime, skip_window).await {
                decided = true;
                break;
            }
            lifetime *= 2;
        }
        assert!(
            decided,
            "the machine stalled past the younger connection's lifetime in every attempt"
        );
    }
}

/// One attempt of the test above with connections living `lifetime`; false when it could
/// not tell (the younger connection may have expired too before the get).
async fn expired_idle_connection_is_skipped(lifetime: Duration, skip_window: Duration) -> bool {
    let (pool, made) = lifetime_pool_with(2, lifetime, skip_window);
    let get = || async {
        tokio::time::timeout(BOUND, pool.get())
            .await
            .expect("bounded")
            .expect("get")
    };
    let older = get().await;
    // Taken after the older was made, so its age is at least the time since.
    let older_made = Instant::now();
    // Half a lifetime between the two connects: time that must pass, not a synchronisation.
    tokio::time::sleep(lifetime / 2).await;
    // Taken before the younger is made, so its age is at most the time since.
    let younger_asked = Instant::now();
    let younger = get().await;
    assert_eq!((*older, *younger), (0, 1));
    drop(older);
    drop(younger);
    outlive(older_made, lifetime).await;
    let conn = get().await;
    // Room for the pool clock's re-alignment with the OS clock (microseconds).
    if younger_asked.elapsed() + Duration::from_millis(20) >= lifetime {
        return false;
    }
    assert_eq!(*conn, 1, "the younger connection, not a new one");
    drop(conn);
    // Through the stash the older is closed by the keeper, within a second or so.
    let metrics = wait_for_metrics(&pool, "the older connection closed as expired", |metrics| {
        metrics.closed_max_lifetime == 1
    })
    .await;
    assert_eq!(made.load(Ordering::Relaxed), 2, "no connect");
    assert_eq!((metrics.closed_invalid, metrics.closed_broken), (0, 0));
    // The first two waited for their connects; the third found the younger one idle.
    assert_eq!((metrics.acquires, metrics.acquires_direct), (3, 1));
    true
}

#[tokio::test]
async fn a_reported_connection_past_its_lifetime_is_closed_as_broken_not_as_expired() {
    const LIFETIME: Duration = Duration::from_millis(200);
    let (pool, _made) = lifetime_pool(1, LIFETIME);
    let mut conn = tokio::time::timeout(BOUND, pool.get())
        .await
        .expect("bounded")
        .expect("get");
    let got_at = Instant::now();
    conn.report_error();
    outlive(got_at, LIFETIME).await;
    drop(conn);
    let metrics = pool.metrics();
    assert_eq!((metrics.caller_errors, metrics.closed_broken), (1, 1));
    assert_eq!((metrics.broken, metrics.closed_max_lifetime), (0, 0));
}

/// 32 tasks on two workers check out of a pool of 4, mixing `get` and `get_owned`, holding
/// across a yield, reporting some connections broken and cancelling some waits: no checkout
/// is lost, never more than 4 are out, and at the end every open connection is idle (in the
/// stash or in bb8) and the figures add up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_contention_every_checkout_is_counted_and_every_connection_comes_back() {
    const TASKS: u64 = 32;
    const ROUNDS: u64 = 300;
    let pool = counter_pool(4, BOUND);
    let out = Arc::new(AtomicU64::new(0));
    let peak = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..TASKS {
        let (pool, out, peak) = (pool.clone(), Arc::clone(&out), Arc::clone(&peak));
        tasks.spawn(async move {
            let mut acquired = 0_u64;
            for round in 0..ROUNDS {
                let pick = (task * 7 + round * 13) % 11;
                if pick == 0 {
                    // Give up at once if no connection is free (a cancelled get).
                    let got = tokio::time::timeout(Duration::ZERO, pool.get()).await;
                    if let Ok(conn) = got {
                        drop(conn.expect("get"));
                        acquired += 1;
                    }
                    continue;
                }
                let now_out = |out: &AtomicU64| {
                    let n = out.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(n, Ordering::SeqCst);
                };
                if pick % 2 == 0 {
                    let mut conn = pool.get_owned().await.expect("get_owned");
                    now_out(&out);
                    if pick == 4 {
                        conn.report_error();
                    }
                    tokio::task::yield_now().await;
                    out.fetch_sub(1, Ordering::SeqCst);
                } else {
                    let mut conn = pool.get().await.expect("get");
                    now_out(&out);
                    if pick == 3 {
                        conn.report_error();
                    }
                    if pick % 3 == 0 {
                        tokio::task::yield_now().await;
                    }
                    out.fetch_sub(1, Ordering::SeqCst);
                }
                acquired += 1;
            }
            acquired
        });
    }
    let mut acquired = 0;
    while let Some(joined) = tasks.join_next().await {
        acquired += joined.expect("no panic");
    }
    assert!(peak.load(Ordering::SeqCst) <= 4);
    let metrics = pool.metrics();
    assert_eq!(metrics.acquires, acquired);
    assert_eq!((metrics.in_use, metrics.waiting), (0, 0));
    assert!(metrics.caller_errors > 0);
    assert_eq!(metrics.closed_broken, metrics.caller_errors);
    assert!(metrics.connections <= 4);
    assert_eq!(
        metrics.idle, metrics.connections,
        "every open connection is idle"
    );
    assert_eq!(
        metrics.created - metrics.closed_broken,
        u64::from(metrics.connections)
    );
}

#[tokio::test]
async fn cancelled_gets_leave_the_waiting_gauge() {
    let pool = counter_pool(1, BOUND);
    let held = pool.get().await.expect("first");
    for _ in 0..5 {
        let waiter = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.get().await.map(drop) })
        };
        let started = Instant::now();
        while pool.metrics().waiting < 1 {
            assert!(started.elapsed() < BOUND, "waiter never queued");
            tokio::task::yield_now().await;
        }
        waiter.abort();
        assert!(waiter.await.is_err(), "the waiter was cancelled");
        assert_eq!(pool.metrics().waiting, 0);
    }
    drop(held);
    assert_eq!(pool.metrics().waiting, 0);
}

#[tokio::test]
async fn a_returned_connection_is_a_proper_close_for_the_tracker() {
    let tracker = ResourceTracker::new();
    let config = PoolConfig {
        resource_kind: "closed_check_connection",
        ..small_config(2, BOUND)
    };
    let manager = FnManager::new(|| async { Ok::<_, std::io::Error>(()) });
    let pool = MonitoredPool::new("closing", config, manager, &tracker).expect("valid");
    for _ in 0..3 {
        drop(pool.get().await.expect("get"));
    }
    let stats = tracker
        .stats_for("closed_check_connection")
        .expect("kind tracked");
    assert_eq!(stats.released, 3);
    assert_eq!(stats.released_without_close, 0);
}

#[tokio::test]
async fn the_tracker_counts_checkouts_not_connections_and_a_discarded_one_is_closed() {
    let tracker = ResourceTracker::new();
    let config = PoolConfig {
        resource_kind: "per_checkout_connection",
        ..small_config(1, BOUND)
    };
    let manager = FnManager::new(|| async { Ok::<_, std::io::Error>(()) });
    let pool = MonitoredPool::new("per-checkout", config, manager, &tracker).expect("valid");
    let first = pool.get().await.expect("get");
    let stats = tracker
        .stats_for("per_checkout_connection")
        .expect("kind tracked");
    assert_eq!((stats.created, stats.active), (1, 1));
    drop(first);
    drop(pool.get().await.expect("get again"));
    // Reported broken: bb8 discards the connection on return, which drops its slot after the
    // checkin, so the checkout still counts as a proper close.
    let mut reported = pool.get().await.expect("get a third time");
    reported.report_error();
    drop(reported);
    drop(pool.get().await.expect("get a replacement"));
    let stats = tracker
        .stats_for("per_checkout_connection")
        .expect("kind tracked");
    assert_eq!(stats.created, 4, "one per checkout: {stats:?}");
    assert_eq!(stats.released, 4);
    assert_eq!(stats.active, 0);
    assert_eq!(stats.released_without_close, 0);
    assert!(
        pool.metrics().created >= 2,
        "the reported connection was replaced"
    );
}

#[tokio::test]
async fn a_connection_held_past_the_threshold_is_a_leak_naming_this_line() {
    let tracker = ResourceTracker::new();
    let config = PoolConfig {
        leak_threshold: Duration::from_millis(50),
        ..small_config(2, BOUND)
    };
    let manager = FnManager::new(|| async { Ok::<_, std::io::Error>(()) });
    let pool = MonitoredPool::new("leaky", config.clone(), manager, &tracker).expect("valid");
    // Another pool of the same kind, its connection held as long: its leak is its own.
    let manager = FnManager::new(|| async { Ok::<_, std::io::Error>(()) });
    let other = MonitoredPool::new("other", config, manager, &tracker).expect("valid");
    let scanner = tracker.spawn_leak_scanner(Duration::from_millis(10));
    let line = line!() + 1;
    let held = pool.get().await.expect("get");
    let other_held = other.get().await.expect("get");
    // The figure comes from the scanner's marks: wait (bounded) for the scan that sees it.
    let started = Instant::now();
    while pool.metrics().leaked == 0 {
        assert!(started.elapsed() < BOUND, "no leak reported");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(pool.metrics().leaked, 1);
    let leaks: Vec<_> = tracker
        .leaks()
        .into_iter()
        .filter(|leak| leak.label == "leaky")
        .collect();
    assert_eq!(leaks.len(), 1);
    let expected = format!("{}:{line}:", file!());
    assert!(
        leaks[0].acquired_at.starts_with(&expected),
        "{} vs {expected}",
        leaks[0].acquired_at
    );
    drop(held);
    assert_eq!(pool.metrics().leaked, 0, "a return uncounts at once");
    assert_eq!(
        other.metrics().leaked,
        1,
        "the other pool's leak stays its own"
    );
    drop(other_held);
    assert_eq!(other.metrics().leaked, 0);
    scanner.abort();
}

#[tokio::test]
async fn metrics_read_the_leak_count_of_the_last_scan_without_scanning() {
    let tracker = ResourceTracker::new();
    let config = PoolConfig {
        leak_threshold: Duration::from_millis(20),
        ..small_config(1, BOUND)
    };
    let manager = FnManager::new(|| async { Ok::<_, std::io::Error>(()) });
    let pool = MonitoredPool::new("unscanned", config, manager, &tracker).expect("valid");
    let held = pool.get().await.expect("get");
    // Wait (bounded) until a scan sees the checkout past its threshold; `metrics()` alone
    // never scans, so before that scan it reads 0.
    let started = Instant::now();
    loop {
        assert_eq!(pool.metrics().leaked, 0, "metrics() does not scan");
        if !tracker.leaks().is_empty() {
            break;
        }
        assert!(started.elapsed() < BOUND, "no leak reported");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(pool.metrics().leaked, 1);
    drop(held);
    assert_eq!(pool.metrics().leaked, 0);
}

#[tokio::test]
async fn pools_sharing_a_kind_merge_its_configuration_and_the_smallest_threshold_wins() {
    let tracker = ResourceTracker::new();
    let kind = "shared_connection";
    tracker.configure_kind(
        kind,
        KindConfig {
            leak_threshold: LeakThreshold::After(Duration::from_secs(60)),
            limit: Some(7),
            capture_backtrace: true,
        },
    );
    let build = |name: &str, threshold_secs: u64| {
        let config = PoolConfig {
            resource_kind: kind,
            leak_threshold: Duration::from_secs(threshold_secs),
            ..small_config(1, BOUND)
        };
        let manager = FnManager::new(|| async { Ok::<_, std::io::Error>(()) });
        MonitoredPool::new(name, config, manager, &tracker).expect("valid")
    };
    let expect = |threshold_secs: u64| {
        Some(KindConfig {
            leak_threshold: LeakThreshold::After(Duration::from_secs(threshold_secs)),
            limit: Some(7),
            capture_backtrace: true,
        })
    };
    let _a = build("a", 30);
    assert_eq!(
        tracker.kind_config(kind),
        expect(30),
        "the user's limit and flag stay"
    );
    let _b = build("b", 120);
    assert_eq!(
        tracker.kind_config(kind),
        expect(30),
        "a laxer pool does not relax it"
    );
    let _c = build("c", 10);
    assert_eq!(
        tracker.kind_config(kind),
        expect(10),
        "a stricter pool tightens it"
    );

    // A kind nobody configured takes the pool's threshold, even above the tracker's default.
    let fresh = PoolConfig {
        leak_threshold: Duration::from_secs(600),
        ..small_config(1, BOUND)
    };
    let manager = FnManager::new(|| async { Ok::<_, std::io::Error>(()) });
    let _d = MonitoredPool::new("d", fresh.clone(), manager, &tracker).expect("valid");
    assert_eq!(
        tracker.kind_config(fresh.resource_kind),
        Some(KindConfig {
            leak_threshold: LeakThreshold::After(Duration::from_secs(600)),
            ..KindConfig::default()
        })
    );

    // A configured kind's `Default` stands for the tracker's default, `Never` for no bound.
    let tracker = ResourceTracker::with_default_leak_threshold(Duration::from_secs(100));
    for (configured, pool_secs, expected_secs) in [
        (LeakThreshold::Default, 300, 100),
        (LeakThreshold::Default, 50, 50),
        (LeakThreshold::Never, 300, 300),
    ] {
        tracker.configure_kind(
            kind,
            KindConfig {
                leak_threshold: configured,
                ..KindConfig::default()
            },
        );
        let config = PoolConfig {
            resource_kind: kind,
            leak_threshold: Duration::from_secs(pool_secs),
            ..small_config(1, BOUND)
        };
        let manager = FnManager::new(|| async { Ok::<_, std::io::Error>(()) });
        let _pool = MonitoredPool::new("e", config, manager, &tracker).expect("valid");
        assert_eq!(
            tracker
                .kind_config(kind)
                .map(|config| config.leak_threshold),
            Some(LeakThreshold::After(Duration::from_secs(expected_secs))),
            "{configured:?} merged with {pool_secs} s"
        );
    }
}

#[tokio::test]
async fn invalid_configs_are_rejected_before_bb8_could_panic() {
    let config = PoolConfig {
        max_size: 0,
        min_size: 1,
        ..PoolConfig::http()
    };
    let manager = FnManager::new(|| async { Ok::<_, std::io::Error>(()) });
    match MonitoredPool::new("bad", config, manager, &ResourceTracker::new()) {
        Err(Error::InvalidConfig(problems)) => {
            let keys: Vec<_> = problems.iter().filter_map(|p| p.key.as_deref()).collect();
            assert_eq!(keys, ["HTTP_POOL_MAX_SIZE", "HTTP_POOL_MIN_SIZE"]);
        }
        other => panic!("expected InvalidConfig, got {other:?}"),
    }
}

#[cfg(feature = "serde")]
#[tokio::test]
async fn metrics_serialize_with_numbers_not_strings() {
    let pool = counter_pool(2, BOUND);
    drop(pool.get().await.expect("get"));
    let json = serde_json::to_value(pool.metrics()).expect("serializes");
    assert_eq!(json["name"], "counter");
    assert_eq!(json["acquires"], 1);
    assert!(json["elapsed_secs"].is_f64());
    assert_eq!(json["hold_time"]["count"], 1);
}
