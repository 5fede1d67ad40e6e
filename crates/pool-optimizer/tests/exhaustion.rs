//! A saturated pool under a short acquire timeout: every timed-out `get()` is an exhaustion,
//! never `Unavailable`, however the timeouts fall between releases and the next waiter's poll.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use resync_pool_optimizer::{Error, FnManager, MonitoredPool, PoolConfig};
use resync_resource_manager::ResourceTracker;

const MAX_SIZE: u32 = 4;
const TASKS: u64 = 32;
/// Rounds per task at most; the run also ends at [`TIME_BOUND`], whichever comes first.
const ROUNDS: u64 = 1_500;
const TIME_BOUND: Duration = Duration::from_secs(20);
/// Enough timed-out gets for the run to have tested the classification.
const MIN_EXHAUSTIONS: u64 = 200;

/// What the tasks saw, summed.
#[derive(Debug, Default)]
struct Seen {
    checkouts: AtomicU64,
    exhausted: AtomicU64,
    unavailable: AtomicU64,
    other: AtomicU64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saturated_pool_never_reports_exhaustion_as_unavailable() {
    let manager = FnManager::new(|| async { Ok::<_, std::io::Error>(()) });
    let config = PoolConfig {
        min_size: 0,
        max_size: MAX_SIZE,
        acquire_timeout: Some(Duration::from_millis(1)),
        connect_timeout: Duration::from_secs(10),
        ..PoolConfig::default()
    };
    let pool = MonitoredPool::new("saturated", config, manager, &ResourceTracker::new())
        .expect("valid config");
    // Every connection made before the run: a timeout during the warm-up would be a wait
    // for a connect, which is `Unavailable` by design.
    let warm = Instant::now();
    loop {
        let mut held = Vec::new();
        for _ in 0..MAX_SIZE {
            if let Ok(conn) = pool.get().await {
                held.push(conn);
            }
        }
        if held.len() == MAX_SIZE as usize {
            break;
        }
        assert!(warm.elapsed() < TIME_BOUND, "the pool never filled");
    }
    assert_eq!(pool.metrics().connections, MAX_SIZE);
    let before = pool.metrics();

    let seen = Arc::new(Seen::default());
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let pool = pool.clone();
            let seen = Arc::clone(&seen);
            let stop = Arc::clone(&stop);
            tokio::spawn(async move {
                for round in 0..ROUNDS {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    match pool.get().await {
                        Ok(conn) => {
                            seen.checkouts.fetch_add(1, Ordering::Relaxed);
                            // Held across yields (other tasks run, time out, return theirs);
                            // now and then across a timer tick, longer than the timeout.
                            for _ in 0..(task + round) % 7 {
                                tokio::task::yield_now().await;
                            }
                            if (task + round) % 5 == 0 {
                                tokio::time::sleep(Duration::from_millis(1)).await;
                            }
                            drop(conn);
                        }
                        Err(Error::Exhausted { .. }) => {
                            seen.exhausted.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(Error::Unavailable { source, .. }) => {
                            seen.unavailable.fetch_add(1, Ordering::Relaxed);
                            eprintln!("unavailable while saturated: {source}");
                        }
                        Err(other) => {
                            seen.other.fetch_add(1, Ordering::Relaxed);
                            eprintln!("unexpected error: {other}");
                        }
                    }
                    if started.elapsed() > TIME_BOUND {
                        stop.store(true, Ordering::Relaxed);
                    }
                    // Let the yielding holders and the timers in between rounds.
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    for task in tasks {
        tokio::time::timeout(TIME_BOUND * 3, task)
            .await
            .expect("every task ends within its bound")
            .expect("no task panics");
    }

    let metrics = pool.metrics();
    let seen = &*seen;
    let (checkouts, exhausted, unavailable, other) = (
        seen.checkouts.load(Ordering::Relaxed),
        seen.exhausted.load(Ordering::Relaxed),
        seen.unavailable.load(Ordering::Relaxed),
        seen.other.load(Ordering::Relaxed),
    );
    eprintln!(
        "{checkouts} checkouts, {exhausted} exhausted, {unavailable} unavailable, {other} \
         other in {:?}",
        started.elapsed()
    );
    assert_eq!(
        (unavailable, other),
        (0, 0),
        "{exhausted} timeouts were exhaustions, {unavailable} were called Unavailable"
    );
    assert_eq!(metrics.unavailable, before.unavailable);
    assert_eq!(metrics.exhaustions - before.exhaustions, exhausted);
    assert_eq!(metrics.connect_failures, 0);
    assert_eq!(metrics.connections, MAX_SIZE, "no connection was lost");
    assert!(
        exhausted >= MIN_EXHAUSTIONS,
        "only {exhausted} timed-out gets in {checkouts} checkouts: the pool was not saturated"
    );
}

/// Polls `condition` every 2 ms until it holds; panics after a minute.
async fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "gave up waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// One connection, then every connect refused; each validity round trip waits for a permit
/// of `gate` (the test hands them out), and counts itself in `validations` first.
#[derive(Debug)]
struct GatedValidation {
    connects: AtomicU64,
    validations: Arc<AtomicU64>,
    gate: Arc<tokio::sync::Semaphore>,
}

impl bb8::ManageConnection for GatedValidation {
    type Connection = u64;
    type Error = std::io::Error;

    async fn connect(&self) -> Result<u64, std::io::Error> {
        match self.connects.fetch_add(1, Ordering::Relaxed) {
            0 => Ok(0),
            _ => Err(std::io::Error::other("too many clients")),
        }
    }

    async fn is_valid(&self, _conn: &mut u64) -> Result<(), std::io::Error> {
        self.validations.fetch_add(1, Ordering::Relaxed);
        self.gate
            .acquire()
            .await
            .map_err(std::io::Error::other)?
            .forget();
        Ok(())
    }

    fn has_broken(&self, _conn: &mut u64) -> bool {
        false
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connect_failing_while_the_only_connection_goes_to_another_get_does_not_fail_the_waiter()
{
    // The `in_use` gauge reads 0 while the one connection is returned and being validated for
    // another get: a connect failing then must not end a waiter's wait as `Unavailable`, since
    // the connection is still open and comes back.
    const BOUND: Duration = Duration::from_secs(60);
    let validations = Arc::new(AtomicU64::new(0));
    let gate = Arc::new(tokio::sync::Semaphore::new(1));
    let manager = GatedValidation {
        connects: AtomicU64::new(0),
        validations: Arc::clone(&validations),
        gate: Arc::clone(&gate),
    };
    let config = PoolConfig {
        min_size: 0,
        max_size: 2,
        acquire_timeout: Some(BOUND),
        connect_timeout: BOUND,
        // Every checkout makes the round trip, so every checkout passes the gate.
        validation_skip_window: Duration::ZERO,
        ..PoolConfig::default()
    };
    let pool =
        MonitoredPool::new("gated", config, manager, &ResourceTracker::new()).expect("valid");
    // Connection 0, checked out and returned: the pool holds it idle.
    let first = tokio::time::timeout(BOUND, pool.get())
        .await
        .expect("bounded")
        .expect("the first connect succeeds");
    drop(first);
    // A get takes it and waits at the gate, validating: nothing is checked out now.
    let validating = {
        let pool = pool.clone();
        tokio::spawn(async move {
            let conn = pool.get().await.map(|conn| *conn);
            // Held a moment, then returned for the waiter.
            tokio::task::yield_now().await;
            conn
        })
    };
    wait_until("the second get to validate", || {
        validations.load(Ordering::Relaxed) == 2
    })
    .await;
    assert_eq!(pool.metrics().in_use, 0);
    // A third get finds nothing idle, asks for a connect, which is refused.
    let waiter = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.get().await.map(|conn| *conn) })
    };
    wait_until("the waiter's connect to fail", || {
        pool.metrics().connect_failures >= 1
    })
    .await;
    // The failure woke the waiter: give it time to (wrongly) give up. Nothing to wait for
    // when it rightly keeps waiting, so this is a grace period, not a synchronisation: on a
    // stalled machine it can only miss the fault, never invent one.
    let grace = Instant::now();
    while grace.elapsed() < Duration::from_millis(200) {
        assert!(
            !waiter.is_finished(),
            "the waiter gave up while connection 0 was open"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // Two permits: the validating get's round trip, then the waiter's.
    gate.add_permits(2);
    let got = tokio::time::timeout(BOUND, validating)
        .await
        .expect("bounded")
        .expect("joins");
    assert_eq!(got.expect("the validating get gets connection 0"), 0);
    let got = tokio::time::timeout(BOUND, waiter)
        .await
        .expect("bounded")
        .expect("joins");
    assert_eq!(got.expect("the waiter gets connection 0 back"), 0);
    let metrics = pool.metrics();
    assert_eq!((metrics.unavailable, metrics.exhaustions), (0, 0));
}
