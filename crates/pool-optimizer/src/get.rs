//! The future [`MonitoredPool::get`](crate::MonitoredPool::get) returns: a permit of the
//! pool's checkout gate, then a connection from the pool's stash (see `stash.rs`) or else
//! bb8's get, measured, with the fail-fast wait for an unreachable backend.
//!
//! Written by hand rather than as an `async` block: the block needed a poll-once step to tell
//! a direct checkout from a waited one and carried the wait's `select!` state inline, which
//! cost ≈ 90 instructions per checkout (callgrind) over awaiting bb8's future alone. Here a
//! direct checkout is a gate permit taken at once (one compare-and-swap, see `gate.rs`)
//! and a stashed connection (or bb8's future ready at the first poll); the wait's pieces
//! (start instant, waiting gauge, connect-failure listener, the queued permit request) are
//! set up only when one of them is not.
//!
//! The gate (see `PoolStats::gate`) serves waiting checkouts in arrival order. A permit
//! holder finds an idle connection in the stash or in bb8 unless one is being made, so bb8's
//! own waiting (unfair: a returned connection goes to whoever asks first) is left for
//! connects; while a permit holder waits there, returns go to bb8, which wakes it.

use std::future::Future;
use std::marker::PhantomData;
use std::panic::Location;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;

use crate::clock::{nanos, span, Nanos};
use crate::error::{Error, SharedError};
use crate::gate::{Permit, Ticket};
use crate::guard::{OwnedPoolConnection, PoolConnection};
use crate::pool::PoolShared;
use crate::stash::{Checkout, InBb8};
use crate::stats::{ConnectFailed, Waiting};

/// The guard a checkout becomes: [`PoolConnection`] for `get()`, [`OwnedPoolConnection`] for
/// `get_owned()`.
pub(crate) trait FromCheckout<'a, M>
where
    M: bb8::ManageConnection,
    M::Error: std::error::Error + Send + Sync + 'static,
{
    fn from_checkout(
        conn: Checkout<M>,
        permit: Permit<'a>,
        shared: &'a PoolShared<M>,
        acquired_at: Nanos,
    ) -> Self;
}

impl<'a, M> FromCheckout<'a, M> for PoolConnection<'a, M>
where
    M: bb8::ManageConnection,
    M::Error: std::error::Error + Send + Sync + 'static,
{
    #[inline]
    fn from_checkout(
        conn: Checkout<M>,
        permit: Permit<'a>,
        shared: &'a PoolShared<M>,
        acquired_at: Nanos,
    ) -> Self {
        PoolConnection::new(conn, permit, shared, acquired_at)
    }
}

impl<'a, M> FromCheckout<'a, M> for OwnedPoolConnection<M>
where
    M: bb8::ManageConnection,
    M::Error: std::error::Error + Send + Sync + 'static,
{
    fn from_checkout(
        conn: Checkout<M>,
        permit: Permit<'a>,
        shared: &'a PoolShared<M>,
        acquired_at: Nanos,
    ) -> Self {
        // The owned guard cannot borrow the gate: it gives the permit back itself, from the
        // pool's stash (and statistics) it keeps alive.
        permit.forget();
        OwnedPoolConnection::pooled(conn, Arc::clone(&shared.stash), acquired_at)
    }
}

pin_project! {
    /// A checkout in progress: a gate permit, then the pool's stash or bb8's (owned) get
    /// future `F`, plus what measuring it needs; it completes with the guard `G`.
    pub(crate) struct Get<'a, M, F, G>
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
        // Set once the permit holder has looked in the stash (before bb8's get is polled).
        stash_tried: bool,
        // Set while the permit holder waits in bb8 (for a connect): returns then go to bb8.
        in_bb8: Option<InBb8<'a>>,
        // bb8's get, polled once the permit is held; dropped when the get fails early
        // (`Unavailable`, or the gate wait's deadline), so that bb8's pending get (its
        // in-flight count, its wait registration, its timer) ends with it.
        #[pin]
        getting: Option<F>,
        #[pin]
        connect_failed: Option<ConnectFailed<'a>>,
        // Only when the gate had no free permit at the first poll: the place in its queue
        // (left when dropped before the permit was taken).
        queued: Option<Ticket<'a>>,
        // The gate's permit from when it is taken until it goes to the guard. Declared after
        // `getting`: a get that fails or is cancelled ends bb8's get first, then gives the
        // permit to the next in line.
        permit: Option<Permit<'a>>,
        guard: PhantomData<fn(Checkout<M>) -> G>,
    }
}

impl<'a, M, F, G> Get<'a, M, F, G>
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
            stash_tried: false,
            in_bb8: None,
            getting: Some(getting),
            connect_failed: None,
            queued: None,
            permit: None,
            guard: PhantomData,
        }
    }
}

impl<'a, M, F, G> Future for Get<'a, M, F, G>
where
    M: bb8::ManageConnection,
    M::Error: std::error::Error + Send + Sync + 'static,
    F: Future<Output = Result<Checkout<M>, bb8::RunError<SharedError>>>,
    G: FromCheckout<'a, M>,
{
    type Output = Result<G, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let shared: &'a PoolShared<M> = this.shared;
        let stats = &*shared.stats;
        let failures_seen = *this
            .failures_seen
            .get_or_insert_with(|| stats.connect_failure_count());
        if this.permit.is_none() {
            if this.queued.is_none() {
                // The first poll. A permit is free only while nobody queues (a given-back
                // permit goes straight to the oldest waiter), so taking it jumps no queue.
                match stats.gate().try_acquire() {
                    Some(permit) => *this.permit = Some(permit),
                    None => *this.queued = Some(stats.gate().queue()),
                }
            }
            if this.permit.is_none() {
                if let Some(ticket) = this.queued.as_mut() {
                    if let Poll::Ready(permit) = ticket.poll(cx) {
                        *this.permit = Some(permit);
                    }
                }
            }
        }
        if let Some(permit) = this.permit.take() {
            // The permit's first use: the most recently returned connection, if fresh.
            let stashed = if *this.stash_tried {
                None
            } else {
                *this.stash_tried = true;
                shared.stash.take()
            };
            let found = if stashed.is_some() {
                this.getting.set(None);
                stashed
            } else {
                let Some(getting) = this.getting.as_mut().as_pin_mut() else {
                    // Only after it failed: polling a completed future is a caller bug.
                    panic!("pool get polled after it completed");
                };
                match getting.poll(cx) {
                    Poll::Ready(Ok(conn)) => {
                        *this.in_bb8 = None;
                        Some(conn)
                    }
                    Poll::Ready(Err(_timed_out)) => {
                        // bb8's own timeout: the permit goes back (dropped here).
                        *this.in_bb8 = None;
                        return Poll::Ready(Err(timed_out(shared, this.waiting, failures_seen)));
                    }
                    Poll::Pending => {
                        if this.in_bb8.is_none() {
                            // Waiting in bb8 (for a connect or a return): from now on returns
                            // go to bb8, which wakes this get, and so does what the stash
                            // holds.
                            *this.in_bb8 = Some(shared.stash.wait_in_bb8());
                        }
                        None
                    }
                }
            };
            match found {
                Some(conn) => {
                    let (waiting, connect_failed) = (this.waiting, this.connect_failed);
                    return Poll::Ready(Ok(checked_out(
                        shared,
                        this.location,
                        waiting,
                        connect_failed,
                        conn,
                        permit,
                    )));
                }
                None => *this.permit = Some(permit),
            }
        }
        if this.waiting.is_none() {
            // The slow path begins: no permit, or bb8 had no connection, at the first poll.
            *this.waiting = Some((stats.clock.now(), Waiting::start(stats)));
            this.connect_failed
                .set(Some(ConnectFailed::new(stats, failures_seen)));
        }
        if let Some((started, _)) = *this.waiting {
            // Woken (by the permit, a connect failure or the watchdog's tick) or just begun:
            // past the acquire timeout, in the gate and in bb8 together, the wait ends. Only a
            // gate wait needs this (bb8 times its own wait out), but it costs one clock read.
            let timeout = nanos(shared.config.effective_acquire_timeout());
            if span(started, stats.clock.now()) >= u64::try_from(timeout).unwrap_or(u64::MAX) {
                this.getting.set(None);
                *this.in_bb8 = None;
                this.connect_failed.set(None);
                *this.queued = None;
                *this.permit = None;
                return Poll::Ready(Err(timed_out(shared, this.waiting, failures_seen)));
            }
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
                    *this.in_bb8 = None;
                    *this.queued = None;
                    *this.permit = None;
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

/// A checkout's connection `conn`, found with `permit`: counted (direct, or waited since the
/// wait began), its lease checked out with the caller's `location`, made the guard `G`.
#[inline]
fn checked_out<'a, M, G>(
    shared: &'a PoolShared<M>,
    location: &'static Location<'static>,
    waiting: &mut Option<(Nanos, Waiting<'a>)>,
    mut connect_failed: Pin<&mut Option<ConnectFailed<'a>>>,
    conn: Checkout<M>,
    permit: Permit<'a>,
) -> G
where
    M: bb8::ManageConnection,
    M::Error: std::error::Error + Send + Sync + 'static,
    G: FromCheckout<'a, M>,
{
    let stats = &*shared.stats;
    // Stamped by the stash or the checkout validation: no clock read here.
    let acquired_at = conn.meta.checked_out_at;
    match waiting.take() {
        None => stats.checked_out_direct(),
        Some((started, _waiting)) => {
            stats.checked_out_waited(Duration::from_nanos(span(started, acquired_at)));
            connect_failed.set(None);
        }
    }
    // The connection's slot, registered at connect: a few stores, with the caller's line and
    // the checkout instant already read.
    conn.meta.lease.checkout_nanos(location, acquired_at);
    G::from_checkout(conn, permit, shared, acquired_at)
}

/// The error of a get that timed out (bb8's timeout, or the wait's deadline), its wait
/// recorded.
fn timed_out<M>(
    shared: &PoolShared<M>,
    waiting: &mut Option<(Nanos, Waiting<'_>)>,
    failures_seen: u64,
) -> Error
where
    M: bb8::ManageConnection,
    M::Error: std::error::Error + Send + Sync + 'static,
{
    let stats = &*shared.stats;
    let waited = match waiting.take() {
        None => Duration::ZERO,
        Some((started, _waiting)) => {
            let waited = Duration::from_nanos(span(started, stats.clock.now()));
            stats.failed_wait(waited);
            waited
        }
    };
    shared.timed_out(failures_seen, waited)
}
