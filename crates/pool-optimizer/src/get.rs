//! The future [`MonitoredPool::get`](crate::MonitoredPool::get) returns: bb8's get, measured,
//! with the fail-fast wait for an unreachable backend.
//!
//! Written by hand rather than as an `async` block: the block needed a poll-once step to tell
//! a direct checkout from a waited one and carried the wait's `select!` state inline, which
//! cost ≈ 90 instructions per checkout (callgrind) over awaiting bb8's future alone. Here a
//! direct checkout is bb8's future ready at the first poll, and the wait's pieces (start
//! instant, waiting gauge, connect-failure listener) are set up only when that poll is
//! pending.

use std::future::Future;
use std::marker::PhantomData;
use std::panic::Location;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;

use crate::clock::{span, Nanos};
use crate::error::{Error, SharedError};
use crate::guard::{OwnedPoolConnection, PoolConnection};
use crate::pool::PoolShared;
use crate::stats::{ConnectFailed, Waiting};
use crate::wrapper::MonitoredManager;

/// What bb8 hands out for a pool over `M`.
pub(crate) type Checkout<'a, M> = bb8::PooledConnection<'a, MonitoredManager<M>>;

/// The guard a checkout of lifetime `'c` becomes: [`PoolConnection`] for `get()` (bb8's
/// borrowing get), [`OwnedPoolConnection`] for `get_owned()` (bb8's owned get).
pub(crate) trait FromCheckout<'a, 'c, M>
where
    M: bb8::ManageConnection,
    M::Error: std::error::Error + Send + Sync + 'static,
{
    fn from_checkout(conn: Checkout<'c, M>, shared: &'a PoolShared<M>, acquired_at: Nanos) -> Self;
}

impl<'a, M> FromCheckout<'a, 'a, M> for PoolConnection<'a, M>
where
    M: bb8::ManageConnection,
    M::Error: std::error::Error + Send + Sync + 'static,
{
    #[inline]
    fn from_checkout(conn: Checkout<'a, M>, shared: &'a PoolShared<M>, acquired_at: Nanos) -> Self {
        PoolConnection::new(conn, &shared.stats, acquired_at)
    }
}

impl<'a, M> FromCheckout<'a, 'static, M> for OwnedPoolConnection<M>
where
    M: bb8::ManageConnection,
    M::Error: std::error::Error + Send + Sync + 'static,
{
    fn from_checkout(
        conn: Checkout<'static, M>,
        shared: &'a PoolShared<M>,
        acquired_at: Nanos,
    ) -> Self {
        OwnedPoolConnection::pooled(conn, Arc::clone(&shared.stats), acquired_at)
    }
}

pin_project! {
    /// A checkout in progress: bb8's get future `F` (yielding a checkout of lifetime `'c`)
    /// plus what measuring it needs; it completes with the guard `G`.
    pub(crate) struct Get<'a, 'c, M, F, G>
    where
        M: bb8::ManageConnection,
        M::Error: std::error::Error,
        M::Error: Send,
        M::Error: Sync,
        M::Error: 'static,
    {
        shared: &'a PoolShared<M>,
        location: &'static Location<'static>,
        // Connect failures counted when the get started (read at its first poll), and again
        // after each failure that left it waiting because connections were checked out.
        failures_seen: Option<u64>,
        // Set when the first poll found no connection: the wait's start on the pool clock
        // and its place in the waiting gauge (left on drop, also when cancelled).
        waiting: Option<(Nanos, Waiting<'a>)>,
        // bb8's get; dropped when the get fails early (`Unavailable`), so that bb8's pending
        // get (its in-flight count, its wait registration, its timer) ends with it.
        #[pin]
        getting: Option<F>,
        #[pin]
        connect_failed: Option<ConnectFailed<'a>>,
        guard: PhantomData<fn(Checkout<'c, M>) -> G>,
    }
}

impl<'a, 'c, M, F, G> Get<'a, 'c, M, F, G>
where
    M: bb8::ManageConnection,
    M::Error: std::error::Error + Send + Sync + 'static,
{
    pub(crate) fn new(
        shared: &'a PoolShared<M>,
        location: &'static Location<'static>,
        getting: F,
    ) -> Self {
        Self {
            shared,
            location,
            failures_seen: None,
            waiting: None,
            getting: Some(getting),
            connect_failed: None,
            guard: PhantomData,
        }
    }
}

impl<'a, 'c, M, F, G> Future for Get<'a, 'c, M, F, G>
where
    M: bb8::ManageConnection,
    M::Error: std::error::Error + Send + Sync + 'static,
    F: Future<Output = Result<Checkout<'c, M>, bb8::RunError<SharedError>>>,
    G: FromCheckout<'a, 'c, M>,
{
    type Output = Result<G, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let shared: &'a PoolShared<M> = this.shared;
        let stats = &*shared.stats;
        let failures_seen = *this
            .failures_seen
            .get_or_insert_with(|| stats.connect_failure_count());
        let Some(getting) = this.getting.as_mut().as_pin_mut() else {
            // Only after it returned `Unavailable`: polling a completed future is a caller bug.
            panic!("pool get polled after it completed");
        };
        match getting.poll(cx) {
            Poll::Ready(Ok(conn)) => {
                // Stamped by the checkout validation: no clock read here.
                let acquired_at = conn.meta.checked_out_at;
                match this.waiting.take() {
                    None => stats.checked_out_direct(),
                    Some((started, _waiting)) => {
                        stats.checked_out_waited(Duration::from_nanos(span(started, acquired_at)));
                        this.connect_failed.set(None);
                    }
                }
                // The connection's slot, registered at connect: a few stores, with the
                // caller's line and the checkout instant the validation already read.
                conn.meta.lease.checkout_nanos(this.location, acquired_at);
                return Poll::Ready(Ok(G::from_checkout(conn, shared, acquired_at)));
            }
            Poll::Ready(Err(_timed_out)) => {
                let waited = match this.waiting.take() {
                    None => Duration::ZERO,
                    Some((started, _waiting)) => {
                        let waited = Duration::from_nanos(span(started, stats.clock.now()));
                        stats.failed_wait(waited);
                        waited
                    }
                };
                return Poll::Ready(Err(shared.timed_out(failures_seen, waited)));
            }
            Poll::Pending => {}
        }
        if this.waiting.is_none() {
            // The slow path begins: bb8 had no connection for the first poll.
            *this.waiting = Some((stats.clock.now(), Waiting::start(stats)));
            this.connect_failed
                .set(Some(ConnectFailed::new(stats, failures_seen)));
        }
        while let Some(connect_failed) = this.connect_failed.as_mut().as_pin_mut() {
            if connect_failed.poll(cx).is_pending() {
                return Poll::Pending;
            }
            if shared.open_connections() == 0 {
                // No connection is open, so none can come back: the backend is unreachable
                // now. (bb8's count, not the `in_use` gauge, which reads 0 while a connection
                // is on its way to another waiter: see `PoolShared::timed_out`.)
                if let Some(source) = stats.last_connect_error() {
                    if let Some((started, _waiting)) = this.waiting.take() {
                        stats.failed_wait(Duration::from_nanos(span(started, stats.clock.now())));
                    }
                    this.connect_failed.set(None);
                    this.getting.set(None);
                    return Poll::Ready(Err(shared.unavailable(source)));
                }
            }
            // Merely busy: checked-out connections will come back. Keep waiting, for bb8's
            // future and for the next failure.
            let failures_now = stats.connect_failure_count();
            *this.failures_seen = Some(failures_now);
            this.connect_failed
                .set(Some(ConnectFailed::new(stats, failures_now)));
        }
        Poll::Pending
    }
}
