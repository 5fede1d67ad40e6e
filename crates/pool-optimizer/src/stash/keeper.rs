//! The stash's keeper: one task per pool that hands connections idle past the freshness
//! window back to bb8 and keeps `min_size` connections idle (see the stash's documentation).
//!
//! It runs every freshness window (at least 10 ms, at most 1 s). With no `min_size` to keep
//! it sleeps while the stash is empty, until a return fills it. It holds the stash weakly
//! and ends once the stash is dropped (with the pool and its last owned guard).

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::Stash;
use crate::stats::PoolStats;

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
    loop {
        let park = {
            let Some(stash) = stash.upgrade() else {
                return;
            };
            let park = stash.sweep();
            top_up(&stash, &mut retry).await;
            park
        };
        if park {
            // Woken by the first connection stashed after this (or by the stash's drop).
            wake.notified().await;
        }
        tokio::time::sleep(period).await;
    }
}

/// Opens connections for bb8 while fewer than `min_size` are idle in the stash and bb8
/// together (and fewer than `max_size` are open), one at a time, each bounded by the
/// wrapper's connect timeout; stops at the first failure (counted by the wrapper, which
/// wakes waiting gets) and tries again after a pause that doubles up to [`MAX_RETRY`].
async fn top_up<M>(stash: &Stash<M>, retry: &mut Retry)
where
    M: bb8::ManageConnection,
    M::Error: std::error::Error + Send + Sync + 'static,
{
    if stash.min_size == 0 || !retry.due() {
        return;
    }
    let state = stash.pool.state();
    let idle = state.idle_connections.saturating_add(stash.len());
    let wanted = stash
        .min_size
        .saturating_sub(idle)
        .min(stash.max_size.saturating_sub(state.connections));
    for _ in 0..wanted {
        match stash.pool.dedicated_connection().await {
            Ok(conn) => {
                retry.succeeded();
                // bb8 keeps it if it has room (it may have opened connections for gets
                // meanwhile) and it is not broken; otherwise it is closed here.
                if stash.pool.add(conn).is_ok() {
                    PoolStats::count(&stash.stats.kept_idle);
                }
            }
            Err(_counted_by_the_wrapper) => {
                retry.failed();
                return;
            }
        }
    }
}

/// When the keeper may try to open connections again.
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

    #[test]
    fn retries_back_off_to_the_cap_and_reset_on_success() {
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
