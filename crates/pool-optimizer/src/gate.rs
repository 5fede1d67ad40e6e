//! The checkout gate: a fair counting semaphore of one permit per connection the pool may
//! open, whose uncontended take and give-back are one compare-and-swap each.
//!
//! A `get()` takes a permit before it asks bb8 and its guard gives it back once bb8 has the
//! connection again. Waiting gets queue in arrival order and a given-back permit goes to the
//! oldest of them; while anyone queues, no newcomer takes a permit. (bb8 alone wakes one
//! waiter but lets whoever asks first — usually the task that just returned the connection —
//! take it.)
//!
//! Why not tokio's `Semaphore`: its release takes the wait list's mutex on every call, queue
//! or no queue, which put a mutex on the path of every checkout's return (≈ 85 instructions
//! and a lock both workers share, in the paired bench). Here the free-permit count and a
//! `QUEUED` bit share one word: with nobody queued, taking and giving back are a CAS on it;
//! the queue's mutex is taken only to queue, to cancel, and to hand a permit to a waiter.
//!
//! Invariant: `QUEUED` is set exactly while the queue is not empty, and changes only under
//! the queue's lock. A permit given back while `QUEUED` is set goes to the queue's head (the
//! free count does not move), so a free permit is never seen while someone waits.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use resync_perf_core::sync::lock;

/// Set in [`Gate::state`] while someone queues.
const QUEUED: usize = 1;
/// One free permit in [`Gate::state`].
const ONE: usize = 2;

/// The gate. Not cloned: the pool's statistics own it and the guards borrow it.
#[derive(Debug)]
pub(crate) struct Gate {
    /// Free permits × [`ONE`], plus [`QUEUED`].
    state: AtomicUsize,
    /// The waiting gets, oldest first.
    queue: Mutex<VecDeque<Arc<Waiter>>>,
}

/// One queued get.
#[derive(Debug, Default)]
struct Waiter {
    /// Set (before the wake) when the head of the queue was handed a permit.
    granted: AtomicBool,
    /// The waiting task.
    waker: Mutex<Option<Waker>>,
}

impl Gate {
    /// A gate of `permits` permits, all free.
    pub(crate) fn new(permits: u32) -> Self {
        Self {
            state: AtomicUsize::new(permits as usize * ONE),
            queue: Mutex::new(VecDeque::new()),
        }
    }

    /// Takes a free permit if there is one and nobody queues.
    #[inline]
    pub(crate) fn try_acquire(&self) -> Option<Permit<'_>> {
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            if state & QUEUED != 0 || state < ONE {
                return None;
            }
            match self.state.compare_exchange_weak(
                state,
                state - ONE,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(Permit(self)),
                Err(now) => state = now,
            }
        }
    }

    /// Queues for a permit (or takes one, if one came free meanwhile and nobody queues).
    pub(crate) fn queue(&self) -> Ticket<'_> {
        let mut queue = lock(&self.queue);
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            let (next, taken) = if state & QUEUED == 0 && state >= ONE {
                (state - ONE, true)
            } else {
                (state | QUEUED, false)
            };
            match self
                .state
                .compare_exchange_weak(state, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) if taken => {
                    return Ticket {
                        gate: self,
                        waiter: None,
                        granted: true,
                    }
                }
                Ok(_) => break,
                Err(now) => state = now,
            }
        }
        let waiter = Arc::new(Waiter::default());
        queue.push_back(Arc::clone(&waiter));
        Ticket {
            gate: self,
            waiter: Some(waiter),
            granted: false,
        }
    }

    /// Gives back a permit whose [`Permit`] was [`forget`](Permit::forget)-ten.
    pub(crate) fn release_forgotten(&self) {
        self.release();
    }

    /// Gives a permit back: to the oldest waiter if anyone queues, else to the free count.
    #[inline]
    fn release(&self) {
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            if state & QUEUED != 0 {
                return self.hand_over();
            }
            match self.state.compare_exchange_weak(
                state,
                state + ONE,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(now) => state = now,
            }
        }
    }

    /// A permit given back while someone queued: the queue's head gets it.
    #[cold]
    fn hand_over(&self) {
        let mut queue = lock(&self.queue);
        match queue.pop_front() {
            Some(waiter) => {
                if queue.is_empty() {
                    self.state.fetch_and(!QUEUED, Ordering::Release);
                }
                // Granted under the queue's lock: a `cancel` of this waiter, which takes the
                // lock and then finds it gone from the queue, must see the grant and pass the
                // permit on (set after the unlock, a cancel in between would lose it).
                waiter.granted.store(true, Ordering::Release);
                drop(queue);
                if let Some(waker) = lock(&waiter.waker).take() {
                    waker.wake();
                }
            }
            // The last waiter left (cancelled) before the lock: `QUEUED` is clear again.
            None => {
                self.state.fetch_add(ONE, Ordering::Release);
            }
        }
    }

    /// A queued get gave up (dropped before it took its permit).
    #[cold]
    fn cancel(&self, waiter: &Arc<Waiter>) {
        let mut queue = lock(&self.queue);
        if let Some(at) = queue.iter().position(|queued| Arc::ptr_eq(queued, waiter)) {
            queue.remove(at);
            if queue.is_empty() {
                self.state.fetch_and(!QUEUED, Ordering::Release);
            }
            return;
        }
        drop(queue);
        // Not queued any more: it was handed a permit it will not use. Pass it on.
        if waiter.granted.load(Ordering::Acquire) {
            self.release();
        }
    }

    /// Free permits now (for tests and figures).
    #[cfg(test)]
    fn free(&self) -> usize {
        self.state.load(Ordering::Acquire) / ONE
    }
}

/// A permit of the gate, given back when dropped.
#[derive(Debug)]
pub(crate) struct Permit<'a>(&'a Gate);

impl Permit<'_> {
    /// Keeps the permit taken after this value is gone: the owner gives it back with
    /// [`Gate::release_forgotten`].
    pub(crate) fn forget(self) {
        std::mem::forget(self);
    }
}

impl Drop for Permit<'_> {
    #[inline]
    fn drop(&mut self) {
        self.0.release();
    }
}

/// A place in the gate's queue; leaves it when dropped before its permit was taken.
#[derive(Debug)]
pub(crate) struct Ticket<'a> {
    gate: &'a Gate,
    /// `None` when a permit was free at queueing time.
    waiter: Option<Arc<Waiter>>,
    /// The permit was taken (by `poll`) or came free at queueing time.
    granted: bool,
}

impl<'a> Ticket<'a> {
    /// The permit, once the queue's head was handed it.
    pub(crate) fn poll(&mut self, cx: &Context<'_>) -> Poll<Permit<'a>> {
        let Some(waiter) = &self.waiter else {
            // A permit came free at queueing time: taken once.
            return if std::mem::replace(&mut self.granted, false) {
                Poll::Ready(Permit(self.gate))
            } else {
                Poll::Pending
            };
        };
        if self.granted {
            return Poll::Pending;
        }
        {
            let mut slot = lock(&waiter.waker);
            match &*slot {
                Some(waker) if waker.will_wake(cx.waker()) => {}
                _ => *slot = Some(cx.waker().clone()),
            }
        }
        // After registering: a grant between the two is seen here, or wakes the new waker.
        if waiter.granted.load(Ordering::Acquire) {
            self.granted = true;
            return Poll::Ready(Permit(self.gate));
        }
        Poll::Pending
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        match &self.waiter {
            // Queued and never took its permit (granted or not yet).
            Some(waiter) if !self.granted => self.gate.cancel(waiter),
            Some(_) => {}
            // A permit came free at queueing time and was not taken: give it back.
            None if self.granted => self.gate.release(),
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;

    use super::*;

    fn cx() -> Context<'static> {
        Context::from_waker(Waker::noop())
    }

    #[test]
    fn free_permits_are_taken_and_given_back() {
        let gate = Gate::new(2);
        let a = gate.try_acquire().expect("first");
        let b = gate.try_acquire().expect("second");
        assert!(gate.try_acquire().is_none());
        drop(a);
        assert_eq!(gate.free(), 1);
        drop(b);
        assert_eq!(gate.free(), 2);
    }

    #[test]
    fn waiters_are_served_in_order_and_newcomers_queue_behind_them() {
        let gate = Gate::new(1);
        let held = gate.try_acquire().expect("the one permit");
        let mut first = gate.queue();
        let mut second = gate.queue();
        assert!(first.poll(&cx()).is_pending());
        assert!(second.poll(&cx()).is_pending());
        drop(held);
        // Handed to the oldest waiter, not to the free count: a newcomer finds none.
        assert!(gate.try_acquire().is_none());
        assert!(second.poll(&cx()).is_pending());
        let permit = match first.poll(&cx()) {
            Poll::Ready(permit) => permit,
            Poll::Pending => panic!("the first waiter was handed the permit"),
        };
        drop(permit);
        assert!(second.poll(&cx()).is_ready());
    }

    #[test]
    fn a_cancelled_waiter_leaves_and_a_granted_unused_permit_is_passed_on() {
        let gate = Gate::new(1);
        let held = gate.try_acquire().expect("the one permit");
        let first = gate.queue();
        let mut second = gate.queue();
        drop(held);
        // `first` was handed the permit but gives up without taking it: `second` gets it.
        drop(first);
        assert!(second.poll(&cx()).is_ready());
        // A waiter cancelled while still queued just leaves.
        let third = gate.queue();
        drop(third);
        drop(second);
        assert_eq!(gate.free(), 1);
        assert!(gate.try_acquire().is_some(), "nobody queues any more");
    }

    #[test]
    fn a_permit_free_at_queueing_time_is_taken_or_given_back() {
        let gate = Gate::new(1);
        let mut ticket = gate.queue();
        assert_eq!(gate.free(), 0);
        let permit = match ticket.poll(&cx()) {
            Poll::Ready(permit) => permit,
            Poll::Pending => panic!("the free permit"),
        };
        drop(permit);
        drop(ticket);
        assert_eq!(gate.free(), 1);
        drop(gate.queue());
        assert_eq!(gate.free(), 1, "an unused free permit goes back");
    }

    /// Many tasks on two workers take, hold across a yield and give back permits, some
    /// cancelling their wait: never more holders than permits, and every permit free at the
    /// end.
    #[test]
    fn under_contention_and_cancellation_no_permit_is_lost_or_doubled() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let gate = Arc::new(Gate::new(3));
        let holders = Arc::new(AtomicU64::new(0));
        let peak = Arc::new(AtomicU64::new(0));
        runtime.block_on(async {
            let mut tasks = tokio::task::JoinSet::new();
            for task in 0..16_u64 {
                let (gate, holders, peak) =
                    (Arc::clone(&gate), Arc::clone(&holders), Arc::clone(&peak));
                tasks.spawn(async move {
                    for round in 0..500_u64 {
                        let permit = match gate.try_acquire() {
                            Some(permit) => permit,
                            None => {
                                let mut ticket = gate.queue();
                                if (task + round) % 7 == 0 {
                                    // Give up after one look.
                                    let _ = std::future::poll_fn(|cx| {
                                        Poll::Ready(ticket.poll(cx).is_ready())
                                    })
                                    .await;
                                    continue;
                                }
                                std::future::poll_fn(|cx| ticket.poll(cx)).await
                            }
                        };
                        let now = holders.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        tokio::task::yield_now().await;
                        holders.fetch_sub(1, Ordering::SeqCst);
                        drop(permit);
                    }
                });
            }
            while let Some(joined) = tasks.join_next().await {
                joined.expect("no panic");
            }
        });
        assert!(peak.load(Ordering::SeqCst) <= 3);
        assert_eq!(gate.free(), 3);
        assert!(lock(&gate.queue).is_empty());
    }
}
