//! The checkout gate: waiting `get()` calls are served in the order they came, a caller that
//! returns a connection cannot take it straight back past the waiters, and no wait that ends
//! without a connection (cancelled, timed out) keeps a place in the pool.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use resync_pool_optimizer::{Error, MonitoredPool};

mod common;

use common::counter::counter_pool;

const BOUND: Duration = Duration::from_secs(30);

/// Waits (yielding, bounded) until `n` gets of `pool` are waiting.
async fn until_waiting<M>(pool: &MonitoredPool<M>, n: u64)
where
    M: bb8::ManageConnection,
    M::Error: std::error::Error + Send + Sync + 'static,
{
    let started = Instant::now();
    while pool.metrics().waiting < n {
        assert!(started.elapsed() < BOUND, "{n} waiters never queued");
        tokio::task::yield_now().await;
    }
}

/// Polls `future` once: its output if it is ready at once.
async fn poll_once<F: std::future::Future>(future: F) -> Option<F::Output> {
    tokio::select! {
        biased;
        output = future => Some(output),
        () = std::future::ready(()) => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_gets_are_served_in_the_order_they_came() {
    let pool = counter_pool(1, BOUND);
    let held = pool.get().await.expect("first");
    let served = Arc::new(Mutex::new(Vec::new()));
    let mut waiters = Vec::new();
    for i in 0..8_u64 {
        let (pool2, served) = (pool.clone(), Arc::clone(&served));
        waiters.push(tokio::spawn(async move {
            let conn = pool2.get().await.expect("served");
            served.lock().expect("not poisoned").push(i);
            // Held across a yield, so the next in line really waits for it.
            tokio::task::yield_now().await;
            drop(conn);
        }));
        // The next one is spawned only once this one waits: arrival order is known.
        until_waiting(&pool, i + 1).await;
    }
    drop(held);
    for waiter in waiters {
        tokio::time::timeout(BOUND, waiter)
            .await
            .expect("bounded")
            .expect("no panic");
    }
    assert_eq!(
        *served.lock().expect("not poisoned"),
        (0..8).collect::<Vec<_>>()
    );
    let metrics = pool.metrics();
    // The eight, and the first get, which waited for the pool's first connect.
    assert_eq!(metrics.acquires_waited, 9);
    assert_eq!(metrics.waiting, 0);
    assert_eq!(metrics.in_use, 0);
}

#[tokio::test]
async fn a_returned_connection_goes_to_the_waiter_not_back_to_the_caller() {
    let pool = counter_pool(1, BOUND);
    let held = pool.get().await.expect("first");
    let waiter = {
        let pool = pool.clone();
        tokio::spawn(async move { *pool.get().await.expect("the waiter is served") })
    };
    until_waiting(&pool, 1).await;
    drop(held);
    // bb8 alone would hand the idle connection to whoever asks first: this caller, before
    // the woken waiter runs. The gate gave the permit to the waiter.
    let again = poll_once(pool.get()).await;
    assert!(again.is_none(), "the caller queued behind the waiter");
    let served = tokio::time::timeout(BOUND, waiter)
        .await
        .expect("bounded")
        .expect("no panic");
    assert_eq!(served, 0, "the waiter got the one connection");
    let conn = tokio::time::timeout(BOUND, pool.get())
        .await
        .expect("bounded")
        .expect("then the caller is served");
    assert_eq!(*conn, 0);
}

#[tokio::test]
async fn cancelled_and_timed_out_waits_leave_every_place_free() {
    let pool = counter_pool(2, Duration::from_millis(100));
    let held = (
        pool.get().await.expect("first"),
        pool.get().await.expect("second"),
    );
    // A waiter cancelled while queued.
    let waiter = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.get().await.map(drop) })
    };
    until_waiting(&pool, 1).await;
    waiter.abort();
    assert!(waiter.await.is_err(), "cancelled");
    // A wait nothing ends: it times out (the watchdog wakes it past its deadline).
    let started = Instant::now();
    let timed_out = tokio::time::timeout(BOUND, pool.get())
        .await
        .expect("bounded by the acquire timeout, not hanging");
    assert!(
        matches!(timed_out, Err(Error::Exhausted { .. })),
        "{timed_out:?}"
    );
    assert!(started.elapsed() >= Duration::from_millis(100));
    drop(held);
    // Both places are free again: two checkouts at once, neither waiting.
    let waited_before = pool.metrics().acquires_waited;
    let both = (
        poll_once(pool.get()).await.expect("ready").expect("first"),
        poll_once(pool.get()).await.expect("ready").expect("second"),
    );
    assert_ne!(*both.0, *both.1);
    let metrics = pool.metrics();
    assert_eq!(metrics.acquires_waited, waited_before, "neither waited");
    assert_eq!(metrics.exhaustions, 1);
    assert_eq!(metrics.waiting, 0);
}

#[tokio::test]
async fn an_owned_checkout_gives_its_place_back_when_dropped_elsewhere() {
    let pool = counter_pool(1, BOUND);
    for _ in 0..3 {
        let owned = pool.get_owned().await.expect("owned");
        let waiter = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.get().await.map(|conn| *conn) })
        };
        until_waiting(&pool, 1).await;
        // Dropped by another task: the connection, then the place, go to the waiter.
        tokio::spawn(async move { drop(owned) })
            .await
            .expect("no panic");
        let served = tokio::time::timeout(BOUND, waiter)
            .await
            .expect("bounded")
            .expect("no panic");
        assert_eq!(served.expect("the waiter is served"), 0);
    }
    assert_eq!(pool.metrics().in_use, 0);
}
