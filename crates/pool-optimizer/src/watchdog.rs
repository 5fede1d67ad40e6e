//! The wait watchdog: ends `get()` waits that pass the acquire timeout without a timer per
//! wait.
//!
//! A `get()` that waits already listens on its thread's connect-failure notifier (to fail fast
//! when the backend is unreachable) and checks its deadline whenever it is woken: by the
//! permit it waited for, by a connect failure, or by this watchdog. A timer of its own would
//! add a registration in tokio's timer wheel and its removal to every waited checkout — about
//! a fifth of the throughput of a contended pool (paired bench, `holding` workload). Instead
//! one task per pool wakes the waiting `get()` calls every [`tick`] while there are any, so a
//! wait that nothing else ends (every connection held past the timeout) fails at most one tick
//! after its deadline. With no `get()` waiting the task sleeps until one starts to wait.

use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::Notify;

use crate::stats::PoolStats;

/// The shortest and the longest tick.
const MIN_TICK: Duration = Duration::from_millis(1);
const MAX_TICK: Duration = Duration::from_millis(250);

/// How often the watchdog wakes the waiting `get()` calls of a pool with acquire timeout
/// `timeout`: an eighth of it, between 1 ms and 250 ms (so a wait ends at most 12.5 % or
/// 250 ms past its timeout, whichever is less).
pub(crate) fn tick(timeout: Duration) -> Duration {
    (timeout / 8).clamp(MIN_TICK, MAX_TICK)
}

/// What a pool's waits and its watchdog task share.
#[derive(Debug, Default)]
pub(crate) struct Watchdog {
    /// Set while the task sleeps for want of waiters.
    parked: AtomicBool,
    /// Wakes the parked task: a wait began, or the pool is gone.
    wake: Notify,
}

impl Watchdog {
    /// Called by a `get()` that starts to wait, after it counted itself as waiting: wakes the
    /// task if it sleeps.
    pub(crate) fn wait_started(&self) {
        // Pairs with the fence in `run`: either the task sees this wait counted, or this sees
        // the task parked (a Dekker handshake; the slow path only).
        fence(Ordering::SeqCst);
        if self.parked.load(Ordering::Relaxed) {
            self.wake.notify_one();
        }
    }

    /// Called when the pool's statistics are dropped: the task ends.
    pub(crate) fn pool_dropped(&self) {
        self.wake.notify_one();
    }
}

/// Starts the watchdog of the pool whose figures are `stats` (within a tokio runtime). The
/// task holds only a weak reference to them and ends when the pool is dropped.
pub(crate) fn spawn(stats: &Arc<PoolStats>, tick: Duration) {
    let watchdog = Arc::clone(&stats.watchdog);
    tokio::spawn(run(Arc::downgrade(stats), watchdog, tick));
}

async fn run(stats: Weak<PoolStats>, watchdog: Arc<Watchdog>, tick: Duration) {
    loop {
        {
            let Some(stats) = stats.upgrade() else {
                return;
            };
            if stats.waiting() == 0 {
                watchdog.parked.store(true, Ordering::Relaxed);
                fence(Ordering::SeqCst);
                if stats.waiting() == 0 {
                    // Not holding the pool while parked, so that dropping it ends the task.
                    drop(stats);
                    watchdog.wake.notified().await;
                }
                watchdog.parked.store(false, Ordering::Relaxed);
                continue;
            }
            stats.wake_waiters();
        }
        tokio::time::sleep(tick).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_an_eighth_of_the_timeout_within_bounds() {
        assert_eq!(tick(Duration::from_secs(1)), Duration::from_millis(125));
        assert_eq!(tick(Duration::from_secs(30)), MAX_TICK);
        assert_eq!(tick(Duration::from_millis(4)), MIN_TICK);
    }

    #[tokio::test]
    async fn the_task_ends_when_the_pool_is_dropped() {
        let stats = Arc::new(PoolStats::new(
            Arc::from("watchdog"),
            crate::clock::PoolClock::new(std::time::Instant::now()),
            1,
        ));
        let watchdog = Arc::clone(&stats.watchdog);
        let task = tokio::spawn(run(Arc::downgrade(&stats), watchdog, MIN_TICK));
        // Parked (no waiters) before the pool goes: wait for it to say so.
        while !stats.watchdog.parked.load(Ordering::Relaxed) {
            tokio::task::yield_now().await;
        }
        drop(stats);
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("the watchdog ends once its pool is dropped")
            .expect("no panic");
    }
}
