//! [`L2Metrics`], the snapshot of an [`L2Stats`](super::L2Stats), its count types and the
//! figures derived from them; a window is the [`Delta`] of two snapshots.

use resync_perf_core::{ratio, Delta, HistogramSnapshot};
use serde::Serialize;

use super::{L2Lease, L2Lookup, L2Op};
use crate::gateway::labels::serialize_by_label;

/// A snapshot of an [`L2Stats`](super::L2Stats): cumulative counters since it was built,
/// its two latency histograms (nanoseconds), and the state at the snapshot (availability,
/// last error). Subtract an older snapshot ([`Delta`]) for a window's counters; the state is
/// the newer snapshot's.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct L2Metrics {
    /// Lookups by outcome.
    pub lookups: L2LookupCounts,
    /// Stores (`SET … PX`) by result.
    pub stores: L2StoreCounts,
    /// Every timed lookup (all but the skipped ones), in nanoseconds.
    pub lookup_latency: HistogramSnapshot,
    /// Every store, failed ones included, in nanoseconds.
    pub store_latency: HistogramSnapshot,
    /// Cross-instance fetch leases by outcome.
    pub leases: L2LeaseCounts,
    /// Invalidations sent to and received from the other instances.
    pub invalidations: L2InvalidationCounts,
    /// Times the whole L1 was dropped after the invalidation subscriber reconnected.
    pub l1_flushes: u64,
    /// Failed operations by operation
    /// ([`L2Stats::record_error`](super::L2Stats::record_error)).
    pub errors: L2ErrorCounts,
    /// Whether L2 was usable at the snapshot.
    pub available: bool,
    /// Why L2 was unusable at the snapshot, when a reason was given.
    pub unavailable_reason: Option<String>,
    /// The message of the last error recorded, if any.
    pub last_error: Option<String>,
    /// The operation of the last error recorded.
    pub last_error_op: Option<L2Op>,
    /// How long before the snapshot the last error was recorded, in seconds.
    pub last_error_age_seconds: Option<f64>,
}

/// L2 lookups by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct L2LookupCounts {
    /// Found, of the current version.
    pub hit: u64,
    /// Not found.
    pub miss: u64,
    /// Found, of another version: not used.
    pub other_version: u64,
    /// Failed (Redis error or timeout).
    pub error: u64,
    /// Not asked: L2 was unavailable.
    pub skipped: u64,
}

/// L2 stores by result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct L2StoreCounts {
    /// Written.
    pub stored: u64,
    /// Failed.
    pub error: u64,
}

/// Cross-instance fetch leases by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct L2LeaseCounts {
    /// This instance fetched.
    pub won: u64,
    /// Another instance's value arrived in time.
    pub waited: u64,
    /// Waited in vain, then fetched itself.
    pub expired: u64,
}

/// Invalidations between instances.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct L2InvalidationCounts {
    /// Published by this instance.
    pub sent: u64,
    /// Received from the others.
    pub received: u64,
}

/// Failed L2 operations by operation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct L2ErrorCounts {
    /// Lookups.
    pub lookup: u64,
    /// Stores.
    pub store: u64,
    /// Fetch leases.
    pub lease: u64,
    /// Invalidations published.
    pub invalidate: u64,
    /// The invalidation subscriber.
    pub subscribe: u64,
}

impl L2LookupCounts {
    /// Every counter with its label value, in [`L2Lookup`] label order.
    #[must_use]
    pub fn by_label(&self) -> [(&'static str, u64); 5] {
        [
            (L2Lookup::Hit.as_str(), self.hit),
            (L2Lookup::Miss.as_str(), self.miss),
            (L2Lookup::OtherVersion.as_str(), self.other_version),
            (L2Lookup::Error.as_str(), self.error),
            (L2Lookup::Skipped.as_str(), self.skipped),
        ]
    }

    /// Lookups sent to Redis: every outcome but `skipped`.
    #[must_use]
    pub fn attempted(&self) -> u64 {
        self.hit + self.miss + self.other_version + self.error
    }

    /// Every lookup, skipped ones included.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.attempted() + self.skipped
    }
}

impl L2StoreCounts {
    /// Both counters with their label values (`result` of
    /// `resync_gateway_l2_stores_total`): `stored`, `error`.
    pub(crate) fn by_label(&self) -> [(&'static str, u64); 2] {
        [("stored", self.stored), ("error", self.error)]
    }

    /// Stores attempted.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.stored + self.error
    }
}

impl L2LeaseCounts {
    /// Every counter with its label value, in [`L2Lease`] label order.
    #[must_use]
    pub fn by_label(&self) -> [(&'static str, u64); 3] {
        [
            (L2Lease::Won.as_str(), self.won),
            (L2Lease::Waited.as_str(), self.waited),
            (L2Lease::Expired.as_str(), self.expired),
        ]
    }

    /// Leases taken or waited on.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.won + self.waited + self.expired
    }
}

impl L2InvalidationCounts {
    /// Both counters with their label values (`direction` of
    /// `resync_gateway_l2_invalidations_total`): `sent`, `received`.
    pub(crate) fn by_label(&self) -> [(&'static str, u64); 2] {
        [("sent", self.sent), ("received", self.received)]
    }
}

impl L2ErrorCounts {
    /// Every counter with its label value, in [`L2Op`] label order.
    #[must_use]
    pub fn by_label(&self) -> [(&'static str, u64); 5] {
        [
            (L2Op::Lookup.as_str(), self.lookup),
            (L2Op::Store.as_str(), self.store),
            (L2Op::Lease.as_str(), self.lease),
            (L2Op::Invalidate.as_str(), self.invalidate),
            (L2Op::Subscribe.as_str(), self.subscribe),
        ]
    }

    /// Errors of every operation.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.lookup + self.store + self.lease + self.invalidate + self.subscribe
    }
}

impl L2Metrics {
    /// The share of lookups answered with a usable entry: `hit / (hit + miss +
    /// other_version)`, 0–1; failed and skipped lookups are left out. `None` without such a
    /// lookup.
    #[must_use]
    pub fn hit_rate(&self) -> Option<f64> {
        let lookups = &self.lookups;
        let answered = lookups.hit + lookups.miss + lookups.other_version;
        ratio(lookups.hit as f64, answered as f64)
    }

    /// Failed lookups and stores: `lookups.error + stores.error`.
    #[must_use]
    pub fn operation_errors(&self) -> u64 {
        self.lookups.error + self.stores.error
    }

    /// Lookups sent to Redis and stores: the denominator of the error rate.
    #[must_use]
    pub fn operations(&self) -> u64 {
        self.lookups.attempted() + self.stores.total()
    }

    /// `(lookups.error + stores.error) / (attempted lookups + stores)`, 0–1; `None` without
    /// an operation. Skipped lookups are not operations: an unavailable L2 is judged by its
    /// availability, not as errors.
    #[must_use]
    pub fn error_rate(&self) -> Option<f64> {
        ratio(self.operation_errors() as f64, self.operations() as f64)
    }
}

serialize_by_label!(
    L2LookupCounts,
    L2StoreCounts,
    L2LeaseCounts,
    L2InvalidationCounts,
    L2ErrorCounts
);

impl Delta for L2Metrics {
    fn delta(&self, older: &Self) -> Self {
        Self {
            lookups: self.lookups.delta(&older.lookups),
            stores: L2StoreCounts {
                stored: self.stores.stored.delta(&older.stores.stored),
                error: self.stores.error.delta(&older.stores.error),
            },
            lookup_latency: self.lookup_latency.delta(&older.lookup_latency),
            store_latency: self.store_latency.delta(&older.store_latency),
            leases: L2LeaseCounts {
                won: self.leases.won.delta(&older.leases.won),
                waited: self.leases.waited.delta(&older.leases.waited),
                expired: self.leases.expired.delta(&older.leases.expired),
            },
            invalidations: L2InvalidationCounts {
                sent: self.invalidations.sent.delta(&older.invalidations.sent),
                received: self
                    .invalidations
                    .received
                    .delta(&older.invalidations.received),
            },
            l1_flushes: self.l1_flushes.delta(&older.l1_flushes),
            errors: L2ErrorCounts {
                lookup: self.errors.lookup.delta(&older.errors.lookup),
                store: self.errors.store.delta(&older.errors.store),
                lease: self.errors.lease.delta(&older.errors.lease),
                invalidate: self.errors.invalidate.delta(&older.errors.invalidate),
                subscribe: self.errors.subscribe.delta(&older.errors.subscribe),
            },
            // The state is the newer snapshot's.
            available: self.available,
            unavailable_reason: self.unavailable_reason.clone(),
            last_error: self.last_error.clone(),
            last_error_op: self.last_error_op,
            last_error_age_seconds: self.last_error_age_seconds,
        }
    }
}

impl Delta for L2LookupCounts {
    fn delta(&self, older: &Self) -> Self {
        Self {
            hit: self.hit.delta(&older.hit),
            miss: self.miss.delta(&older.miss),
            other_version: self.other_version.delta(&older.other_version),
            error: self.error.delta(&older.error),
            skipped: self.skipped.delta(&older.skipped),
        }
    }
}
