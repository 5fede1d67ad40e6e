//! The pool's own counters, shared by the wrapper manager, `get()` and the guards.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use resync_perf_core::Histogram;
use tokio::sync::Notify;

use crate::error::SharedError;

/// Counters and histograms of one pool. Cumulative; recorded lock-free.
///
/// Checkout path cost: a direct checkout touches `direct`, `in_use` and (only when a new
/// peak is reached) `peak_in_use`; a release touches `in_use` and the hold-time histogram.
/// Figures that can be derived are not stored: acquires = direct + waited, validations
/// skipped = acquires − passed round trips, Σ hold time = the hold histogram's sum.
#[derive(Debug)]
pub(crate) struct PoolStats {
    pub(crate) name: Arc<str>,
    pub(crate) started: Instant,
    /// Checkouts whose first poll returned a connection (no clock read, no wait).
    pub(crate) direct: AtomicU64,
    /// Checkouts that had to wait (timed; recorded in `acquire_latency`).
    pub(crate) waited: AtomicU64,
    /// `get()` calls waiting now (gauge, kept by a drop guard so cancelled gets leave it).
    pub(crate) waiting: AtomicU64,
    pub(crate) exhaustions: AtomicU64,
    pub(crate) unavailable: AtomicU64,
    pub(crate) connect_attempts: AtomicU64,
    pub(crate) connect_failures: AtomicU64,
    pub(crate) connect_timeouts: AtomicU64,
    pub(crate) broken: AtomicU64,
    pub(crate) caller_errors: AtomicU64,
    pub(crate) validations_run: AtomicU64,
    /// Round trips that failed (a subset of `validations_run`).
    pub(crate) validation_run_failures: AtomicU64,
    pub(crate) validation_failures: AtomicU64,
    pub(crate) in_use: AtomicU64,
    pub(crate) peak_in_use: AtomicU64,
    /// Waited gets only (successful or not); direct checkouts are added as zeros at
    /// snapshot time.
    pub(crate) acquire_latency: Histogram,
    pub(crate) hold_time: Histogram,
    pub(crate) connect_latency: Histogram,
    /// Only touched when a connect fails.
    last_connect_error: Mutex<Option<SharedError>>,
    /// Woken on every connect failure so a waiting `get()` can fail fast.
    connect_failed: Notify,
}

impl PoolStats {
    pub(crate) fn new(name: Arc<str>) -> Self {
        Self {
            name,
            started: Instant::now(),
            direct: AtomicU64::new(0),
            waited: AtomicU64::new(0),
            waiting: AtomicU64::new(0),
            exhaustions: AtomicU64::new(0),
            unavailable: AtomicU64::new(0),
            connect_attempts: AtomicU64::new(0),
            connect_failures: AtomicU64::new(0),
            connect_timeouts: AtomicU64::new(0),
            broken: AtomicU64::new(0),
            caller_errors: AtomicU64::new(0),
            validations_run: AtomicU64::new(0),
            validation_run_failures: AtomicU64::new(0),
            validation_failures: AtomicU64::new(0),
            in_use: AtomicU64::new(0),
            peak_in_use: AtomicU64::new(0),
            acquire_latency: Histogram::new(),
            hold_time: Histogram::new(),
            connect_latency: Histogram::new(),
            last_connect_error: Mutex::new(None),
            connect_failed: Notify::new(),
        }
    }

    pub(crate) fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn load(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Connections checked out now.
    pub(crate) fn in_use(&self) -> u64 {
        self.in_use.load(Ordering::Relaxed)
    }

    /// Called by a `get()` that obtained a connection (after counting it direct or waited).
    #[inline]
    pub(crate) fn checked_out(&self) {
        let in_use = self.in_use.fetch_add(1, Ordering::Relaxed) + 1;
        // A plain load first: the read-modify-write only when a new peak is reached.
        if in_use > self.peak_in_use.load(Ordering::Relaxed) {
            self.peak_in_use.fetch_max(in_use, Ordering::Relaxed);
        }
    }

    /// Called by the guard's drop.
    #[inline]
    pub(crate) fn checked_in(&self, held_nanos: u64) {
        self.in_use.fetch_sub(1, Ordering::Relaxed);
        self.hold_time.record(held_nanos);
    }

    /// Records a failed connect and wakes every `get()` waiting for one.
    pub(crate) fn connect_failed(&self, error: SharedError) {
        *self
            .last_connect_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(error);
        // Release pairs with the Acquire in `wait_for_connect_failure`, so a waiter that
        // sees the new count also sees the error stored above.
        self.connect_failures.fetch_add(1, Ordering::Release);
        self.connect_failed.notify_waiters();
    }

    pub(crate) fn connect_failure_count(&self) -> u64 {
        self.connect_failures.load(Ordering::Acquire)
    }

    pub(crate) fn last_connect_error(&self) -> Option<SharedError> {
        self.last_connect_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Resolves once a connect attempt has failed after `seen` failures were counted.
    pub(crate) async fn wait_for_connect_failure(&self, seen: u64) {
        loop {
            let notified = self.connect_failed.notified();
            tokio::pin!(notified);
            // Register before checking the count, so a failure in between is not missed.
            notified.as_mut().enable();
            if self.connect_failure_count() > seen {
                return;
            }
            notified.await;
        }
    }
}

/// Keeps the `waiting` gauge while a `get()` waits; dropping it (also on cancellation)
/// takes the caller off the gauge.
#[derive(Debug)]
pub(crate) struct Waiting<'a>(&'a AtomicU64);

impl<'a> Waiting<'a> {
    pub(crate) fn start(gauge: &'a AtomicU64) -> Self {
        gauge.fetch_add(1, Ordering::Relaxed);
        Self(gauge)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
