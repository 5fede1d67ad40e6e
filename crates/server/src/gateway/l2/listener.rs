//! The invalidation listener: one task per instance, subscribed to [`CHANNEL`] on its own
//! Redis connection (not a pooled one: a subscribed connection can do nothing else).
//!
//! - A message `<instance> <path>` from another instance drops this instance's L1 entries
//!   of `path` (its generation is bumped, as a local write would).
//! - Whenever it (re)subscribes after having been disconnected — messages may have been
//!   published meanwhile and lost — the whole of L1 is dropped before L2 is used again.
//! - L2 counts as available only while the listener is subscribed and Redis answered its
//!   last probe; while it is not, every request skips L2. An unavailable L2 is probed with a
//!   `PING` through the pool every [`PROBE_PERIOD`], so it resumes by itself; the paths
//!   written meanwhile are then invalidated in Redis and published.

use std::time::Duration;

use futures_util::StreamExt;
use resync_perf_api::L2Op;

use super::{SharedCache, CHANNEL};
use crate::gateway::Gateway;

/// How often an unavailable L2 is probed while the listener is subscribed.
pub(crate) const PROBE_PERIOD: Duration = Duration::from_millis(500);
/// The first pause before resubscribing after a failure; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest pause between two subscription attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Listens for invalidations for `gateway` until the task is aborted.
pub(crate) async fn run(gateway: Gateway, l2: SharedCache) {
    let mut subscribed_before = false;
    let mut backoff = FIRST_BACKOFF;
    loop {
        let subscription = tokio::time::timeout(l2.config().timeout, async {
            let mut pubsub = l2.pool().manager().pubsub(l2.config().timeout).await?;
            pubsub.subscribe(CHANNEL).await?;
            Ok::<_, redis::RedisError>(pubsub)
        })
        .await;
        let mut pubsub = match subscription {
            Ok(Ok(pubsub)) => pubsub,
            Ok(Err(error)) => {
                unavailable(&l2, &format!("cannot subscribe to invalidations: {error}"));
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
            Err(_elapsed) => {
                unavailable(&l2, "cannot subscribe to invalidations: timed out");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        backoff = FIRST_BACKOFF;
        if subscribed_before {
            // Invalidations may have been lost while unsubscribed.
            gateway.invalidate_all().await;
            l2.stats().record_l1_flush();
            tracing::info!("invalidation listener resubscribed: L1 dropped");
        }
        subscribed_before = true;
        probe(&l2).await;
        let mut messages = pubsub.on_message();
        let mut ticks = tokio::time::interval(PROBE_PERIOD);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                message = messages.next() => {
                    let Some(message) = message else { break };
                    let Ok(text) = message.get_payload::<String>() else { continue };
                    received(&gateway, &l2, &text);
                }
                _ = ticks.tick() => {
                    if !l2.stats().is_available() {
                        probe(&l2).await;
                    }
                }
            }
        }
        unavailable(&l2, "invalidation listener disconnected");
    }
}

/// One invalidation message: `<instance> <path>`; this instance's own are already applied.
fn received(gateway: &Gateway, l2: &SharedCache, text: &str) {
    let Some((instance, path)) = text.split_once(' ') else {
        tracing::debug!(message = text, "malformed invalidation ignored");
        return;
    };
    if instance == l2.instance() {
        return;
    }
    gateway.invalidate_path(path);
    l2.stats().record_invalidation_received();
    tracing::debug!(path, from = instance, "invalidation received");
}

/// Marks L2 available when Redis answers a `PING` through the pool within the timeout.
async fn probe(l2: &SharedCache) {
    let mut pipe = redis::pipe();
    pipe.cmd("PING");
    if l2
        .query::<(String,)>(L2Op::Subscribe, &pipe)
        .await
        .is_some()
    {
        if !l2.stats().is_available() {
            tracing::info!("redis answers: L2 in use");
        }
        l2.stats().set_available(true, None);
        l2.replay_pending().await;
    }
}

fn unavailable(l2: &SharedCache, reason: &str) {
    if l2.stats().is_available() {
        tracing::warn!(reason, "L2 skipped until redis answers");
    }
    l2.stats().record_error(L2Op::Subscribe, reason);
    l2.stats().set_available(false, Some(reason));
}
