//! The stash's keeper: one task per pool that hands connections idle past the freshness
//! window back to bb8 and keeps `min_size` connections idle (see the stash's documentation).
//!
//! It runs every freshness window (at least 10 ms, at most 1 s). With no `min_size` to keep
//! it sleeps while the stash is empty, until a return fills it. It holds the stash weakly
//! and ends once the stash is dropped (with the pool and its last owned guard).
//!
//! Connections for `min_size` are opened in a task of their own, as many at once as are
//! wanted (as bb8 opened its `min_idle`); after a failed connect, or a connection bb8
//! refused, the next round waits twice as long as the last, from one period up to
//! [`MAX_RETRY`]. A failed
//! connect is a connect failure like any other: counted, and it wakes waiting gets, which
//! fail as unavailable if no connection is open (bb8's own `min_idle` connects did the same).

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use super::Stash;
use crate::stats::PoolStats;
use crate::wrapper::MonitoredManager;

/// The longest pause between two attempts to open connections for `min_size` after one
/// failed (doubling from the keeper's period).
const MAX_RETRY: Duration = Duration::from_secs(30);

/// Starts the keeper of `stash` (within a tokio runtime), unless the stash is off.
pub(crate) fn spawn_keeper<M>(stash: &Arc<Stash<M>>) -> Option<JoinHandle<()>>
where
    M: bb8::ManageConnection,
    M::Error: std::error::Error + Send + Sync + 'static,
{
    stash.enabled.then(|| {
        tokio::spawn(keeper(
            Arc::downgrade(stash),
            Arc::clone(&stash.wake),
            stash.keeper_period(),
        ))
    })
}

async fn keeper<M>(stash: Weak<Stash<M>>, wake: Arc<Notify>, period: Duration)
where
    M: bb8::ManageConnection,
    M::Error: std::error::Error + Send + Sync + 'static,
{
    let mut retry = Retry::new(period);
    // The connects for `min_size` run in a task of their own, so that sweeps go on meanwhile
    // (a connect may take up to the connect timeout).
    let mut topping_up: Option<JoinHandle<TopUp>> = None;
    loop {
        if topping_up.as_ref().is_some_and(JoinHandle::is_finished) {
            if let Some(task) = topping_up.take() {
                match task.await {
                    Ok(TopUp::Done) => retry.succeeded(),
                    Ok(TopUp::Stopped) => retry.failed(),
                    // Panicked (a manager's connect or `has_broken`): try again later.
                    Err(_) => retry.failed(),
                }
            }
        }
        let park = {
            let Some(strong) = stash.upgrade() else {
                return;
            };
            let park = strong.sweep();
            if topping_up.is_none() && retry.due() && strong.wanted() > 0 {
                topping_up = Some(tokio::spawn(top_up(
                    Weak::clone(&stash),
                    strong.pool.clone(),
                )));
            }
            park
        };
        if park {
            // Woken by the first connection stashed after this (or by the stash's drop).
            wake.notified().await;
        }
        tokio::time::sleep(period).await;
    }
}

/// How a round of connects for `min_size` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TopUp {
    /// Enough connections are idle (or the pool is gone).
    Done,
    /// A connect failed (counted by the wrapper, which also wakes waiting gets), or bb8
    /// refused the connection (broken, or no room: its own connects for gets took it).
    Stopped,
}

/// Opens connections for bb8 while fewer than `min_size` are idle in the stash and bb8
/// together (and fewer than `max_size` are open): as many connects at once as are wanted,
/// each bounded by the wrapper's connect timeout, then the need is read again. Holds the
/// stash only between connects, so a pool dropped meanwhile ends the round (the connections
/// it still made are closed).
async fn top_up<M>(stash: Weak<Stash<M>>, pool: bb8::Pool<MonitoredManager<M>>) -> TopUp
where
    M: bb8::ManageConnection,
    M::Error: std::error::Error + Send + Sync + 'static,
{
    loop {
        let wanted = stash.upgrade().map_or(0, |stash| stash.wanted());
        if wanted == 0 {
            return TopUp::Done;
        }
        let mut connects = JoinSet::new();
        for _ in 0..wanted {
            let pool = pool.clone();
            connects.spawn(async move { pool.dedicated_connection().await });
        }
        let mut stopped = false;
        while let Some(made) = connects.join_next().await {
            // A failed connect (counted by the wrapper), or a panicking one.
            let Ok(Ok(conn)) = made else {
                stopped = true;
                continue;
            };
            let Some(stash) = stash.upgrade() else {
                // The pool is gone: the connection is closed.
                continue;
            };
            match pool.add(conn) {
                Ok(()) => PoolStats::count(&stash.stats.keeper_connections),
                Err(bb8::AddError::Broken(_closed)) => {
                    // Made, then closed as broken (the wrapper's `has_broken` counted it).
                    PoolStats::count(&stash.stats.keeper_connections);
                    stopped = true;
                }
                // Never part of the pool: only its connect attempt is counted.
                Err(bb8::AddError::NoCapacity(_closed)) => stopped = true,
            }
        }
        if stopped {
            return TopUp::Stopped;
        }
    }
}

/// When the keeper may start connects for `min_size` again.
#[derive(Debug)]
struct Retry {
    period: Duration,
    pause: Duration,
    next: Option<Instant>,
}

impl Retry {
    fn new(period: Duration) -> Self {
        Self {
            period,
            pause: period,
            next: None,
        }
    }

    fn due(&self) -> bool {
        self.next.is_none_or(|next| Instant::now() >= next)
    }

    fn succeeded(&mut self) {
        self.pause = self.period;
        self.next = None;
    }

    fn failed(&mut self) {
        self.pause = self.pause.saturating_mul(2).min(MAX_RETRY);
        self.next = Some(Instant::now() + self.pause);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn retries_back_off_to_the_cap_and_reset_on_success() {
        let mut retry = Retry::new(Duration::from_millis(500));
        assert!(retry.due());
        retry.failed();
        assert_eq!(retry.pause, Duration::from_secs(1));
        assert!(!retry.due());
        for _ in 0..10 {
            retry.failed();
        }
        assert_eq!(retry.pause, MAX_RETRY);
        retry.succeeded();
        assert!(retry.due());
        assert_eq!(retry.pause, Duration::from_millis(500));
    }
}
