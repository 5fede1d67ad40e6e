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
//! [`Striped`]: resync_perf_core::stripes::Striped

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use resync_perf_core::stripes::Striped;
use resync_perf_core::sync::lock;
use resync_perf_core::{
    ratio, Delta, HealthReason, HealthStatus, HealthVerdict, Histogram, HistogramSnapshot,
};
use serde::{Serialize, Serializer};

use super::GatewayHealthThresholds;

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

/// Labels serialize as their label values.
macro_rules! serialize_as_label {
    ($($label:ty),*) => {$(
        impl Serialize for $label {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }
    )*};
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
/// Memory: one stripe per thread group (the machine's parallelism rounded up to a power of
/// two, at most 16), each with two 15 KiB histograms and 18 counters: at most ≈ 490 KiB.
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

/// What the requests of one thread group record.
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

/// A snapshot of an [`L2Stats`]: cumulative counters since it was built, its two latency
/// histograms (nanoseconds), and the state at the snapshot (availability, last error).
/// Subtract an older snapshot ([`Delta`]) for a window's counters; the state is the newer
/// snapshot's.
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
    /// Failed operations by operation ([`L2Stats::record_error`]).
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct L2StoreCounts {
    /// Written.
    pub stored: u64,
    /// Failed.
    pub error: u64,
}

/// Cross-instance fetch leases by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct L2LeaseCounts {
    /// This instance fetched.
    pub won: u64,
    /// Another instance's value arrived in time.
    pub waited: u64,
    /// Waited in vain, then fetched itself.
    pub expired: u64,
}

/// Invalidations between instances.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct L2InvalidationCounts {
    /// Published by this instance.
    pub sent: u64,
    /// Received from the others.
    pub received: u64,
}

/// Failed L2 operations by operation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
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

    /// Judges the L2 these figures describe, usually a window (`newer.delta(&older)`, whose
    /// availability is the newer snapshot's). Never critical: L2 is an optimisation, requests
    /// go on without it.
    ///
    /// | code | fires when | status | `measured` | `threshold` |
    /// |---|---|---|---|---|
    /// | `gateway_l2.unavailable` | L2 is not usable | degraded | 0 | 1 |
    /// | `gateway_l2.insufficient_data` | fewer than `min_requests` attempted lookups (or none) | healthy | attempted lookups | `min_requests` |
    /// | `gateway_l2.error_rate` | otherwise, error rate > `max_error_rate_degraded` | degraded | error rate (0–1) | `max_error_rate_degraded` |
    /// | `gateway_l2.error_rate` | otherwise | healthy (the evidence) | error rate (0–1) | `max_error_rate_degraded` |
    ///
    /// The reason of `gateway_l2.unavailable` is the one given to
    /// [`L2Stats::set_available`], else the last error recorded.
    #[must_use]
    pub fn health(&self, thresholds: &GatewayHealthThresholds) -> HealthVerdict {
        let mut verdict = HealthVerdict::default();
        if !self.available {
            let why = self
                .unavailable_reason
                .as_deref()
                .map(str::to_owned)
                .or_else(|| {
                    self.last_error.as_deref().map(|error| {
                        let op = self.last_error_op.map_or("", L2Op::as_str);
                        let age = self.last_error_age_seconds.unwrap_or_default();
                        format!("last error ({op}, {age:.0} s ago): {error}")
                    })
                })
                .unwrap_or_else(|| "not reported available yet".to_owned());
            verdict.push(HealthReason::new(
                "gateway_l2.unavailable",
                HealthStatus::Degraded,
                format!(
                    "the L2 cache (Redis) is unavailable: {why}; requests go on with the in-process cache only ({} lookups skipped in the window)",
                    self.lookups.skipped
                ),
                0.0,
                1.0,
            ));
        }
        let lookups = self.lookups.attempted();
        let operations = self.operations();
        let errors = self.operation_errors();
        let evidence = format!(
            "{lookups} lookups ({} hits, {} misses, {} of another version, {} failed, {} skipped) and {} stores ({} failed)",
            self.lookups.hit,
            self.lookups.miss,
            self.lookups.other_version,
            self.lookups.error,
            self.lookups.skipped,
            self.stores.total(),
            self.stores.error,
        );
        let judged = self
            .error_rate()
            .filter(|_| lookups >= thresholds.min_requests.max(1));
        let Some(error_rate) = judged else {
            verdict.push(HealthReason::new(
                "gateway_l2.insufficient_data",
                HealthStatus::Healthy,
                format!(
                    "only {evidence} in the window; at least {} lookups are needed to judge the L2 error rate",
                    thresholds.min_requests.max(1)
                ),
                lookups as f64,
                thresholds.min_requests as f64,
            ));
            return verdict;
        };
        let threshold = thresholds.max_error_rate_degraded;
        let (status, comparison) = if error_rate > threshold {
            (HealthStatus::Degraded, "above")
        } else {
            (HealthStatus::Healthy, "within")
        };
        verdict.push(HealthReason::new(
            "gateway_l2.error_rate",
            status,
            format!(
                "L2 error rate {error_rate:.3} ({errors} of {operations} operations) is {comparison} {threshold:.3}: {evidence}"
            ),
            error_rate,
            threshold,
        ));
        verdict
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn counter_indices_are_distinct_and_cover_the_stripe() {
        let mut seen = [false; COUNTERS];
        let indices = L2Lookup::ALL
            .map(|outcome| LOOKUPS + outcome.index())
            .into_iter()
            .chain([STORED, STORE_ERRORS])
            .chain(L2Lease::ALL.map(|lease| LEASES + lease.index()))
            .chain([INVALIDATIONS_SENT, INVALIDATIONS_RECEIVED, L1_FLUSHES])
            .chain(L2Op::ALL.map(|op| ERRORS + op.index()));
        for index in indices {
            assert!(!seen[index], "{index} twice");
            seen[index] = true;
        }
        assert!(seen.iter().all(|seen| *seen));
        for (index, outcome) in L2Lookup::ALL.into_iter().enumerate() {
            assert_eq!(outcome.index(), index);
        }
        for (index, op) in L2Op::ALL.into_iter().enumerate() {
            assert_eq!(op.index(), index);
        }
    }

    #[test]
    fn every_recorder_lands_in_its_figure() {
        let l2 = L2Stats::new();
        assert!(!l2.is_available(), "unavailable until said otherwise");
        let micros = Duration::from_micros;
        l2.record_lookup(L2Lookup::Hit, Some(micros(100)));
        l2.record_lookup(L2Lookup::Hit, Some(micros(100)));
        l2.record_lookup(L2Lookup::Miss, Some(micros(200)));
        l2.record_lookup(L2Lookup::OtherVersion, Some(micros(300)));
        l2.record_lookup(L2Lookup::Error, Some(micros(50_000)));
        l2.record_lookup(L2Lookup::Skipped, None);
        l2.record_store(true, micros(400));
        l2.record_store(false, micros(500));
        l2.record_lease(L2Lease::Won);
        l2.record_lease(L2Lease::Waited);
        l2.record_lease(L2Lease::Waited);
        l2.record_lease(L2Lease::Expired);
        l2.record_invalidation_sent();
        l2.record_invalidation_received();
        l2.record_invalidation_received();
        l2.record_l1_flush();
        l2.record_error(
            L2Op::Store,
            "READONLY You can't write against a read only replica",
        );
        l2.record_error(L2Op::Subscribe, "connection reset");
        l2.set_available(true, Some("ignored when available"));

        let metrics = l2.metrics();
        assert_eq!(
            metrics.lookups,
            L2LookupCounts {
                hit: 2,
                miss: 1,
                other_version: 1,
                error: 1,
                skipped: 1
            }
        );
        assert_eq!(metrics.lookups.attempted(), 5);
        assert_eq!(metrics.lookups.total(), 6);
        assert_eq!(metrics.hit_rate(), Some(0.5), "2 of 4 answered lookups");
        assert_eq!(
            metrics.stores,
            L2StoreCounts {
                stored: 1,
                error: 1
            }
        );
        assert_eq!(
            metrics.lookup_latency.count(),
            5,
            "skipped lookups are not timed"
        );
        assert_eq!(metrics.store_latency.count(), 2);
        assert_eq!(
            metrics.leases,
            L2LeaseCounts {
                won: 1,
                waited: 2,
                expired: 1
            }
        );
        assert_eq!(metrics.invalidations.sent, 1);
        assert_eq!(metrics.invalidations.received, 2);
        assert_eq!(metrics.l1_flushes, 1);
        assert_eq!(metrics.errors.store, 1);
        assert_eq!(metrics.errors.subscribe, 1);
        assert_eq!(metrics.errors.total(), 2);
        assert!(metrics.available);
        assert_eq!(metrics.unavailable_reason, None);
        assert_eq!(metrics.last_error.as_deref(), Some("connection reset"));
        assert_eq!(metrics.last_error_op, Some(L2Op::Subscribe));
        assert!(metrics.last_error_age_seconds.is_some_and(|age| age < 60.0));
        assert_eq!(metrics.operations(), 7);
        assert_eq!(metrics.error_rate(), Some(2.0 / 7.0));
        assert!(format!("{l2:?}").contains("lookups: 6"));
    }

    #[test]
    fn availability_keeps_its_reason_only_while_unavailable() {
        let l2 = L2Stats::new();
        l2.set_available(false, Some("redis: connection refused"));
        let down = l2.metrics();
        assert!(!down.available);
        assert_eq!(
            down.unavailable_reason.as_deref(),
            Some("redis: connection refused")
        );
        l2.set_available(true, None);
        assert!(l2.is_available());
        assert_eq!(l2.metrics().unavailable_reason, None);
        // A long message is cut at a character boundary.
        let long = "é".repeat(L2_MAX_MESSAGE_BYTES);
        l2.set_available(false, Some(&long));
        l2.record_error(L2Op::Lookup, &long);
        let cut = l2.metrics();
        let reason = cut.unavailable_reason.unwrap_or_default();
        assert_eq!(reason.len(), L2_MAX_MESSAGE_BYTES);
        assert!(reason.chars().all(|c| c == 'é'));
        assert_eq!(
            cut.last_error.unwrap_or_default().len(),
            L2_MAX_MESSAGE_BYTES
        );
        l2.set_available(false, None);
        assert_eq!(l2.metrics().unavailable_reason, None);
    }

    #[test]
    fn a_window_subtracts_the_counters_and_keeps_the_newer_state() {
        let l2 = L2Stats::new();
        l2.record_lookup(L2Lookup::Hit, Some(Duration::from_micros(10)));
        l2.record_error(L2Op::Lookup, "old");
        let older = l2.metrics();
        l2.record_lookup(L2Lookup::Miss, Some(Duration::from_micros(10)));
        l2.record_lease(L2Lease::Won);
        l2.record_error(L2Op::Invalidate, "new");
        l2.set_available(false, Some("down"));
        let window = l2.metrics().delta(&older);
        assert_eq!(window.lookups.hit, 0);
        assert_eq!(window.lookups.miss, 1);
        assert_eq!(window.lookup_latency.count(), 1);
        assert_eq!(window.leases.won, 1);
        assert_eq!(window.errors.lookup, 0);
        assert_eq!(window.errors.invalidate, 1);
        assert_eq!(window.hit_rate(), Some(0.0));
        assert!(!window.available);
        assert_eq!(window.unavailable_reason.as_deref(), Some("down"));
        assert_eq!(window.last_error.as_deref(), Some("new"));
        // An older snapshot that is larger (a recreated recorder) is "nothing happened".
        assert_eq!(older.delta(&l2.metrics()).lookups.total(), 0);
    }

    #[test]
    fn serializes_counts_and_state_with_labels() {
        let l2 = L2Stats::new();
        l2.record_lookup(L2Lookup::OtherVersion, Some(Duration::from_micros(10)));
        l2.record_error(L2Op::Lease, "timeout");
        let json = serde_json::to_value(l2.metrics()).unwrap_or_default();
        assert_eq!(json["lookups"]["other_version"], 1);
        assert_eq!(json["errors"]["lease"], 1);
        assert_eq!(json["last_error_op"], "lease");
        assert_eq!(json["last_error"], "timeout");
        assert_eq!(json["available"], false);
        assert_eq!(json["unavailable_reason"], serde_json::Value::Null);
        assert_eq!(json["lookup_latency"]["count"], 1);
    }

    fn window(available: bool, hits: u64, errors: u64, store_errors: u64) -> L2Metrics {
        L2Metrics {
            lookups: L2LookupCounts {
                hit: hits,
                error: errors,
                ..L2LookupCounts::default()
            },
            stores: L2StoreCounts {
                stored: 0,
                error: store_errors,
            },
            available,
            ..L2Metrics::default()
        }
    }

    fn judge(metrics: &L2Metrics) -> HealthVerdict {
        metrics.health(&GatewayHealthThresholds::default())
    }

    #[test]
    fn health_is_degraded_when_unavailable_or_failing_and_never_critical() {
        // Too few lookups: not judged, whatever fails.
        let quiet = judge(&window(true, 5, 14, 100));
        assert_eq!(quiet.status, HealthStatus::Healthy);
        assert_eq!(quiet.reasons[0].code, "gateway_l2.insufficient_data");
        assert_eq!(quiet.reasons[0].measured, 19.0);
        assert_eq!(quiet.reasons[0].threshold, 20.0);
        // Enough, failing rarely: healthy, with the evidence.
        let fine = judge(&window(true, 95, 5, 0));
        assert_eq!(fine.status, HealthStatus::Healthy);
        assert_eq!(fine.reasons.len(), 1);
        assert_eq!(fine.reasons[0].code, "gateway_l2.error_rate");
        assert_eq!(fine.reasons[0].measured, 0.05);
        assert!(fine.reasons[0].message.contains("5 of 100 operations"));
        // Failing often (stores count too): degraded, never critical.
        for (hits, errors, store_errors) in [(94, 6, 0), (20, 0, 5), (0, 100, 100)] {
            let failing = judge(&window(true, hits, errors, store_errors));
            assert_eq!(failing.status, HealthStatus::Degraded, "{hits}/{errors}");
            assert_eq!(failing.reasons[0].code, "gateway_l2.error_rate");
            assert_eq!(failing.reasons[0].threshold, 0.05);
        }
        // Unavailable: degraded with the reason given, else the last error.
        let mut down = window(false, 0, 0, 0);
        down.unavailable_reason = Some("subscriber disconnected".to_owned());
        let verdict = judge(&down);
        assert_eq!(verdict.status, HealthStatus::Degraded);
        assert_eq!(verdict.reasons[0].code, "gateway_l2.unavailable");
        assert!(verdict.reasons[0]
            .message
            .contains("unavailable: subscriber disconnected"));
        down.unavailable_reason = None;
        down.last_error = Some("connection refused".to_owned());
        down.last_error_op = Some(L2Op::Subscribe);
        down.last_error_age_seconds = Some(3.0);
        let verdict = judge(&down);
        assert!(
            verdict.reasons[0]
                .message
                .contains("last error (subscribe, 3 s ago): connection refused"),
            "{verdict:?}"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// Whatever several threads record, each figure is the exact sum of their records.
        #[test]
        fn counters_sum_exactly_across_threads(
            plans in proptest::collection::vec(
                proptest::collection::vec((0_usize..14, 0_u64..5_000), 0..200),
                1..5,
            ),
        ) {
            let l2 = L2Stats::new();
            std::thread::scope(|scope| {
                for plan in &plans {
                    let l2 = l2.clone();
                    scope.spawn(move || {
                        for &(what, micros) in plan {
                            let took = Duration::from_micros(micros);
                            match what {
                                0..=3 => l2.record_lookup(L2Lookup::ALL[what], Some(took)),
                                4 => l2.record_lookup(L2Lookup::Skipped, None),
                                5 => l2.record_store(true, took),
                                6 => l2.record_store(false, took),
                                7..=9 => l2.record_lease(L2Lease::ALL[what - 7]),
                                10 => l2.record_invalidation_sent(),
                                11 => l2.record_invalidation_received(),
                                12 => l2.record_l1_flush(),
                                _ => l2.record_error(L2Op::ALL[(micros % 5) as usize], "failed"),
                            }
                        }
                    });
                }
            });
            let mut expected = [0_u64; 14];
            let mut by_op = [0_u64; 5];
            for &(what, micros) in plans.iter().flatten() {
                expected[what] += 1;
                if what == 13 {
                    by_op[(micros % 5) as usize] += 1;
                }
            }
            let m = l2.metrics();
            let shown = [
                m.lookups.hit, m.lookups.miss, m.lookups.other_version, m.lookups.error,
                m.lookups.skipped, m.stores.stored, m.stores.error, m.leases.won,
                m.leases.waited, m.leases.expired, m.invalidations.sent,
                m.invalidations.received, m.l1_flushes, m.errors.total(),
            ];
            prop_assert_eq!(shown, expected);
            prop_assert_eq!(m.errors.by_label().map(|(_, count)| count), by_op);
            prop_assert_eq!(m.lookup_latency.count(), expected[..4].iter().sum::<u64>());
            prop_assert_eq!(m.store_latency.count(), expected[5] + expected[6]);
            prop_assert_eq!(m.last_error.is_some(), expected[13] > 0);
        }
    }
}
