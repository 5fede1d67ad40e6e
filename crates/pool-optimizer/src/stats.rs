//! The pool's own counters, shared by the wrapper manager, `get()` and the guards.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use resync_perf_core::Histogram;
use tokio::sync::Notify;

use crate::error::SharedError;

/// Counters and histograms of one pool. Cumulative; recorded lock-free.
#[derive(Debug)]
pub(crate) struct PoolStats {
    pub(crate) name: Arc<str>,
    pub(crate) started: Instant,
    pub(crate) acquires: AtomicU64,
    pub(crate) exhaustions: AtomicU64,
    pub(crate) unavailable: AtomicU64,
    pub(crate) connect_attempts: AtomicU64,
    pub(crate) connect_failures: AtomicU64,
    pub(crate) connect_timeouts: AtomicU64,
    pub(crate) broken: AtomicU64,
    pub(crate) caller_errors: AtomicU64,
    pub(crate) validations_run: AtomicU64,
    pub(crate) validations_skipped: AtomicU64,
    pub(crate) validation_failures: AtomicU64,
    pub(crate) in_use: AtomicU64,
    pub(crate) peak_in_use: AtomicU64,
    pub(crate) hold_nanos_total: AtomicU64,
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
            acquires: AtomicU64::new(0),
            exhaustions: AtomicU64::new(0),
            unavailable: AtomicU64::new(0),
            connect_attempts: AtomicU64::new(0),
            connect_failures: AtomicU64::new(0),
            connect_timeouts: AtomicU64::new(0),
            broken: AtomicU64::new(0),
            caller_errors: AtomicU64::new(0),
            validations_run: AtomicU64::new(0),
            validations_skipped: AtomicU64::new(0),
            validation_failures: AtomicU64::new(0),
            in_use: AtomicU64::new(0),
            peak_in_use: AtomicU64::new(0),
            hold_nanos_total: AtomicU64::new(0),
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

    /// Called by a `get()` that obtained a connection.
    pub(crate) fn checked_out(&self) {
        self.acquires.fetch_add(1, Ordering::Relaxed);
        let in_use = self.in_use.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak_in_use.fetch_max(in_use, Ordering::Relaxed);
    }

    /// Called by the guard's drop.
    pub(crate) fn checked_in(&self, held_nanos: u64) {
        self.in_use.fetch_sub(1, Ordering::Relaxed);
        self.hold_nanos_total
            .fetch_add(held_nanos, Ordering::Relaxed);
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
