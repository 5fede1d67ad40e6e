//! The gateway's second level cache ("L2", shared by every instance through Redis): what the
//! gateway records about it ([`L2Stats`]), the cumulative snapshot ([`L2Metrics`]) and the
//! health rule of the component `gateway_l2`.
//!
//! Recording is on the request path, so every counter and both latency histograms live in
//! per-thread stripes (perf-core's [`Striped`]), as [`GatewayStats`](super::GatewayStats)'
//! do: a record is one or two relaxed `fetch_add`s on the calling thread's stripe, no lock,
//! no allocation. Only the rare [`record_error`](L2Stats::record_error) and
//! [`set_available`](L2Stats::set_available) take a short lock, to keep their message.
//!
//! Every label set is bounded: a lookup ends `hit`, `miss`, `other_version`, `error` or
//! `skipped` ([`L2Lookup`]); a fetch lease is `won`, `waited` or `expired` ([`L2Lease`]); an
//! error is counted by operation, `lookup`, `store`, `lease`, `invalidate` or `subscribe`
//! ([`L2Op`]).
//!
//! ```
//! use std::time::Duration;
//! use resync_perf_api::{L2Lease, L2Lookup, L2Op, L2Stats, PerformanceService};
//!
//! let l2 = L2Stats::new();
//! let service = PerformanceService::default();
//! service.set_gateway_l2(l2.clone()); // the component `gateway_l2`
//!
//! l2.set_available(true, None); // the invalidation subscriber is connected
//! l2.record_lookup(L2Lookup::Hit, Some(Duration::from_micros(300)));
//! l2.record_lookup(L2Lookup::Miss, Some(Duration::from_micros(250)));
//! l2.record_lease(L2Lease::Won);
//! l2.record_store(true, Duration::from_micros(400));
//! l2.record_invalidation_sent();
//!
//! // Redis goes away: lookups are skipped, the error is kept for health.
//! l2.record_error(L2Op::Subscribe, "connection refused");
//! l2.set_available(false, Some("the invalidation subscriber is disconnected"));
//! l2.record_lookup(L2Lookup::Skipped, None);
//!
//! let metrics = l2.metrics();
//! assert_eq!(metrics.hit_rate(), Some(0.5));
//! assert_eq!(metrics.lookups.skipped, 1);
//! assert_eq!(metrics.errors.subscribe, 1);
//! assert!(!metrics.available);
//! assert_eq!(metrics.last_error.as_deref(), Some("connection refused"));
//! ```
//!
//! Layout: the label enums and the recorder (this file), the snapshot and its count types
//! (`metrics.rs`), the health rule of `gateway_l2` (`health.rs`), the unit tests
//! (`tests.rs`).
//!
//! [`Striped`]: resync_perf_core::stripes::Striped

mod health;
mod metrics;
#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use resync_perf_core::stripes::Striped;
use resync_perf_core::sync::lock;
use resync_perf_core::{Histogram, HistogramSnapshot};

use super::labels::serialize_as_label;

pub use metrics::{
    L2ErrorCounts, L2InvalidationCounts, L2LeaseCounts, L2LookupCounts, L2Metrics, L2StoreCounts,
};

/// How one L2 lookup ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L2Lookup {
    /// Redis had the entry, of the current version: served without the upstream.
    Hit,
    /// Redis had no entry.
    Miss,
    /// Redis had an entry of another version (an older generation of its path): not used.
    OtherVersion,
    /// The lookup failed (Redis error or timeout); the request went on without L2.
    Error,
    /// L2 was not asked: it is unavailable (see [`L2Stats::set_available`]).
    Skipped,
}

impl L2Lookup {
    /// Every outcome, in label order.
    pub const ALL: [Self; 5] = [
        Self::Hit,
        Self::Miss,
        Self::OtherVersion,
        Self::Error,
        Self::Skipped,
    ];

    /// The label value: `hit`, `miss`, `other_version`, `error` or `skipped`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::OtherVersion => "other_version",
            Self::Error => "error",
            Self::Skipped => "skipped",
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

/// How a cross-instance fetch lease (one instance fetches a missing entry, the others wait
/// for its value in L2) ended for this instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L2Lease {
    /// This instance took the lease and fetched from the upstream.
    Won,
    /// Another instance held it, and its value arrived in L2 in time.
    Waited,
    /// Another instance held it, but no value came in time (or the holder gave up): this
    /// instance fetched itself.
    Expired,
}

impl L2Lease {
    /// Every outcome, in label order.
    pub const ALL: [Self; 3] = [Self::Won, Self::Waited, Self::Expired];

    /// The label value: `won`, `waited` or `expired`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Won => "won",
            Self::Waited => "waited",
            Self::Expired => "expired",
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

/// An L2 operation, as errors are counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L2Op {
    /// Reading an entry (`GET`).
    Lookup,
    /// Writing an entry (`SET … PX`).
    Store,
    /// Taking, waiting on or releasing a fetch lease.
    Lease,
    /// Publishing an invalidation to the other instances.
    Invalidate,
    /// The invalidation subscriber (connecting, or its connection breaking).
    Subscribe,
}

impl L2Op {
    /// Every operation, in label order.
    pub const ALL: [Self; 5] = [
        Self::Lookup,
        Self::Store,
        Self::Lease,
        Self::Invalidate,
        Self::Subscribe,
    ];

    /// The label value: `lookup`, `store`, `lease`, `invalidate` or `subscribe`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Lookup => "lookup",
            Self::Store => "store",
            Self::Lease => "lease",
            Self::Invalidate => "invalidate",
            Self::Subscribe => "subscribe",
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

serialize_as_label!(L2Lookup, L2Lease, L2Op);

// The counters of one stripe, by index.
const LOOKUPS: usize = 0;
const STORED: usize = LOOKUPS + L2Lookup::ALL.len();
const STORE_ERRORS: usize = STORED + 1;
const LEASES: usize = STORE_ERRORS + 1;
const INVALIDATIONS_SENT: usize = LEASES + L2Lease::ALL.len();
const INVALIDATIONS_RECEIVED: usize = INVALIDATIONS_SENT + 1;
const L1_FLUSHES: usize = INVALIDATIONS_RECEIVED + 1;
const ERRORS: usize = L1_FLUSHES + 1;
const COUNTERS: usize = ERRORS + L2Op::ALL.len();

/// The longest error or unavailability message kept, in bytes (a longer one is cut at a
/// character boundary).
pub const L2_MAX_MESSAGE_BYTES: usize = 512;

/// The recorder of the gateway's L2: lookups by outcome, stores, fetch leases,
/// invalidations, L1 flushes, errors by operation, lookup and store latency, and whether L2
/// is usable now with the reason when not.
///
/// Cheap to clone; clones share. Counters are cumulative and never reset. A new recorder is
/// *unavailable* until [`set_available(true, …)`](Self::set_available): L2 is not usable
/// before the gateway has connected to it.
///
/// Memory: one stripe per thread slot (the machine's parallelism plus two, rounded up to a
/// power of two, at most 16) and the overflow stripe, each with two 15 KiB histograms and 18
/// counters: at most ≈ 515 KiB.
#[derive(Clone, Default)]
pub struct L2Stats {
    inner: Arc<Inner>,
}

/// What one recorder holds.
struct Inner {
    stripes: Striped<Stripe>,
    available: AtomicBool,
    status: Mutex<Status>,
}

/// What the requests of one thread slot (or of the overflow stripe's threads) record, written
/// atomically through `local()`.
struct Stripe {
    counters: [AtomicU64; COUNTERS],
    lookup_latency: Histogram,
    store_latency: Histogram,
}

/// The messages: set rarely, read by snapshots.
#[derive(Default)]
struct Status {
    unavailable_reason: Option<String>,
    last_error: Option<LastError>,
}

struct LastError {
    op: L2Op,
    message: String,
    at: Instant,
}

impl Default for Inner {
    fn default() -> Self {
        Self {
            stripes: Striped::new(super::stripe_count(), || Stripe {
                counters: std::array::from_fn(|_| AtomicU64::new(0)),
                lookup_latency: Histogram::new(),
                store_latency: Histogram::new(),
            }),
            available: AtomicBool::new(false),
            status: Mutex::new(Status::default()),
        }
    }
}

impl fmt::Debug for L2Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The counters of every stripe help nobody; the totals say what is inside.
        let lookups: u64 = self
            .inner
            .stripes
            .iter()
            .flat_map(|stripe| &stripe.counters[LOOKUPS..STORED])
            .map(|count| count.load(Ordering::Relaxed))
            .sum();
        f.debug_struct("L2Stats")
            .field("stripes", &self.inner.stripes.stripe_count())
            .field("lookups", &lookups)
            .field("available", &self.is_available())
            .finish()
    }
}

/// `message`, at most [`L2_MAX_MESSAGE_BYTES`] long, into `buffer` (reusing its allocation).
fn keep_message(buffer: &mut String, message: &str) {
    let mut end = message.len().min(L2_MAX_MESSAGE_BYTES);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    buffer.clear();
    buffer.push_str(&message[..end]);
}

impl L2Stats {
    /// An empty recorder (allocates its stripes once), unavailable until said otherwise.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    #[inline]
    fn add(&self, counter: usize) {
        self.inner.stripes.local().counters[counter].fetch_add(1, Ordering::Relaxed);
    }

    /// One L2 lookup and how long it took (None for Skipped: L2 unavailable, not asked).
    ///
    /// A relaxed atomic add (and a histogram record when timed) on the calling thread's
    /// stripe: no lock, no allocation.
    #[inline]
    pub fn record_lookup(&self, outcome: L2Lookup, latency: Option<Duration>) {
        let stripe = self.inner.stripes.local();
        stripe.counters[LOOKUPS + outcome.index()].fetch_add(1, Ordering::Relaxed);
        if let Some(latency) = latency {
            stripe.lookup_latency.record_duration(latency);
        }
    }

    /// One store (SET PX): Ok or an error.
    ///
    /// Counted as `stored` or `error`, its latency recorded either way; no lock, no
    /// allocation.
    #[inline]
    pub fn record_store(&self, stored: bool, latency: Duration) {
        let stripe = self.inner.stripes.local();
        let counter = if stored { STORED } else { STORE_ERRORS };
        stripe.counters[counter].fetch_add(1, Ordering::Relaxed);
        stripe.store_latency.record_duration(latency);
    }

    /// A cross-instance fetch lease: won (this instance fetched), waited (another instance's value arrived), expired (waited, no value came in time or the holder gave up; fetched itself).
    #[inline]
    pub fn record_lease(&self, outcome: L2Lease) {
        self.add(LEASES + outcome.index());
    }

    /// One invalidation published to the other instances.
    #[inline]
    pub fn record_invalidation_sent(&self) {
        self.add(INVALIDATIONS_SENT);
    }

    /// One invalidation received from another instance (and applied to this one's L1).
    #[inline]
    pub fn record_invalidation_received(&self) {
        self.add(INVALIDATIONS_RECEIVED);
    }

    /// The whole L1 was dropped after the invalidation subscriber reconnected.
    #[inline]
    pub fn record_l1_flush(&self) {
        self.add(L1_FLUSHES);
    }

    /// An operation failed: counted by op, and the message kept as the last error (with when) for health.
    ///
    /// The count takes no lock; the message takes a short one (and reuses the previous
    /// message's buffer). Messages longer than [`L2_MAX_MESSAGE_BYTES`] are cut.
    pub fn record_error(&self, op: L2Op, message: &str) {
        self.add(ERRORS + op.index());
        let mut status = lock(&self.inner.status);
        let last = status.last_error.get_or_insert_with(|| LastError {
            op,
            message: String::new(),
            at: Instant::now(),
        });
        last.op = op;
        last.at = Instant::now();
        keep_message(&mut last.message, message);
    }

    /// Whether L2 is usable now (the subscriber is connected and Redis answers); false with the reason.
    ///
    /// The reason is kept while unavailable (cut at [`L2_MAX_MESSAGE_BYTES`]) and dropped when
    /// available again; a reason given with `true` is ignored.
    pub fn set_available(&self, available: bool, reason: Option<&str>) {
        let mut status = lock(&self.inner.status);
        match reason.filter(|_| !available) {
            Some(reason) => keep_message(
                status.unavailable_reason.get_or_insert_with(String::new),
                reason,
            ),
            None => status.unavailable_reason = None,
        }
        // Under the lock, so that a snapshot never pairs the flag with another call's reason.
        self.inner.available.store(available, Ordering::Relaxed);
    }

    /// Whether L2 is usable now (as last set; `false` for a new recorder).
    #[must_use]
    pub fn is_available(&self) -> bool {
        self.inner.available.load(Ordering::Relaxed)
    }

    /// A snapshot of the cumulative figures (sums the stripes; allocates only the
    /// histograms' non-empty buckets and the messages).
    ///
    /// Records made while the snapshot is taken may show in some figures and not yet in
    /// others (a count but not its latency); the next snapshot has them fully.
    #[must_use]
    pub fn metrics(&self) -> L2Metrics {
        let mut counters = [0_u64; COUNTERS];
        let mut lookup_latency = HistogramSnapshot::default();
        let mut store_latency = HistogramSnapshot::default();
        for stripe in self.inner.stripes.iter() {
            for (total, count) in counters.iter_mut().zip(&stripe.counters) {
                *total += count.load(Ordering::Relaxed);
            }
            lookup_latency.merge(&stripe.lookup_latency.snapshot());
            store_latency.merge(&stripe.store_latency.snapshot());
        }
        let count = |index: usize| counters[index];
        let mut metrics = L2Metrics {
            lookups: L2LookupCounts {
                hit: count(LOOKUPS + L2Lookup::Hit.index()),
                miss: count(LOOKUPS + L2Lookup::Miss.index()),
                other_version: count(LOOKUPS + L2Lookup::OtherVersion.index()),
                error: count(LOOKUPS + L2Lookup::Error.index()),
                skipped: count(LOOKUPS + L2Lookup::Skipped.index()),
            },
            stores: L2StoreCounts {
                stored: count(STORED),
                error: count(STORE_ERRORS),
            },
            lookup_latency,
            store_latency,
            leases: L2LeaseCounts {
                won: count(LEASES + L2Lease::Won.index()),
                waited: count(LEASES + L2Lease::Waited.index()),
                expired: count(LEASES + L2Lease::Expired.index()),
            },
            invalidations: L2InvalidationCounts {
                sent: count(INVALIDATIONS_SENT),
                received: count(INVALIDATIONS_RECEIVED),
            },
            l1_flushes: count(L1_FLUSHES),
            errors: L2ErrorCounts {
                lookup: count(ERRORS + L2Op::Lookup.index()),
                store: count(ERRORS + L2Op::Store.index()),
                lease: count(ERRORS + L2Op::Lease.index()),
                invalidate: count(ERRORS + L2Op::Invalidate.index()),
                subscribe: count(ERRORS + L2Op::Subscribe.index()),
            },
            ..L2Metrics::default()
        };
        let status = lock(&self.inner.status);
        metrics.available = self.inner.available.load(Ordering::Relaxed);
        metrics.unavailable_reason = status.unavailable_reason.clone();
        if let Some(last) = &status.last_error {
            metrics.last_error = Some(last.message.clone());
            metrics.last_error_op = Some(last.op);
            metrics.last_error_age_seconds = Some(last.at.elapsed().as_secs_f64());
        }
        metrics
    }
}
