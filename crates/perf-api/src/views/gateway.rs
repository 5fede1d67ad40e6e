//! The caching gateway as the API shows it.

use std::time::Duration;

use resync_perf_core::per_second;
use serde::Serialize;
use utoipa::ToSchema;

use super::labelled::labelled_view;
use super::LatencySeconds;
use crate::gateway::{
    CacheOutcome, GatewayMetrics, L2Lease, L2Lookup, L2Metrics, L2Op, MethodLabel, StatusClass,
    UpstreamOutcome,
};

// The views keyed by label values take their keys from the label enums (`labelled_view!`).

labelled_view! {
    /// Requests by how the response cache took part.
    pub struct CacheOutcomesView {
        /// Answered from a fresh cached response.
        pub hit: u64 = CacheOutcome::Hit.as_str(),
        /// Not cached (or not fresh): fetched from the upstream.
        pub miss: u64 = CacheOutcome::Miss.as_str(),
        /// Answered from a stale cached response.
        pub stale: u64 = CacheOutcome::Stale.as_str(),
        /// The cache was not consulted (writes, `no-store`, bodies too large to cache).
        pub bypass: u64 = CacheOutcome::Bypass.as_str(),
    }
}

labelled_view! {
    /// Requests by the class of the status sent to the client.
    pub struct StatusClassesView {
        /// 1xx.
        pub informational: u64 = StatusClass::Informational.as_str(),
        /// 2xx.
        pub success: u64 = StatusClass::Success.as_str(),
        /// 3xx.
        pub redirection: u64 = StatusClass::Redirection.as_str(),
        /// 4xx.
        pub client_error: u64 = StatusClass::ClientError.as_str(),
        /// 5xx.
        pub server_error: u64 = StatusClass::ServerError.as_str(),
    }
}

labelled_view! {
    /// Requests by method.
    pub struct MethodsView {
        /// `GET`.
        pub get: u64 = MethodLabel::Get.as_str(),
        /// `HEAD`.
        pub head: u64 = MethodLabel::Head.as_str(),
        /// `POST`.
        pub post: u64 = MethodLabel::Post.as_str(),
        /// `PUT`.
        pub put: u64 = MethodLabel::Put.as_str(),
        /// `PATCH`.
        pub patch: u64 = MethodLabel::Patch.as_str(),
        /// `DELETE`.
        pub delete: u64 = MethodLabel::Delete.as_str(),
        /// `OPTIONS`.
        pub options: u64 = MethodLabel::Options.as_str(),
        /// Any other method.
        pub other: u64 = MethodLabel::Other.as_str(),
    }
}

labelled_view! {
    /// The upstream exchanges the gateway made.
    pub struct UpstreamView {
        /// Exchanges attempted.
        pub requests: u64,
        /// Answered below 300.
        pub answered_2xx: u64 = UpstreamOutcome::Answered(200).as_str(),
        /// Answered 3xx.
        pub answered_3xx: u64 = UpstreamOutcome::Answered(300).as_str(),
        /// Answered 4xx.
        pub answered_4xx: u64 = UpstreamOutcome::Answered(400).as_str(),
        /// Answered 5xx.
        pub answered_5xx: u64 = UpstreamOutcome::Answered(500).as_str(),
        /// No connection could be made (the gateway answered 502).
        pub unreachable: u64 = UpstreamOutcome::Unreachable.as_str(),
        /// Broke mid-way (502).
        pub failed: u64 = UpstreamOutcome::Failed.as_str(),
        /// No answer within the read timeout (504).
        pub timed_out: u64 = UpstreamOutcome::TimedOut.as_str(),
        /// The HTTP pool was exhausted (503).
        pub exhausted: u64 = UpstreamOutcome::Exhausted.as_str(),
        /// 5xx answers + unreachable + failed + timed out + exhausted.
        pub errors: u64,
        /// `errors / requests` (0–1), `null` without an exchange.
        pub error_rate: Option<f64>,
        /// Exchange latency.
        pub latency_seconds: LatencySeconds,
    }
}

/// The gateway's figures over the health window.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GatewayWindowView {
    /// The window's length in seconds.
    pub seconds: f64,
    /// Requests in the window.
    pub requests: u64,
    /// Requests per second over the window, `null` for an empty window.
    pub requests_per_second: Option<f64>,
    /// Hit rate in the window (0–1), `null` without a cacheable request.
    pub hit_rate: Option<f64>,
    /// Requests answered 5xx in the window.
    pub responses_5xx: u64,
    /// Upstream exchanges in the window.
    pub upstream_requests: u64,
    /// Upstream errors in the window.
    pub upstream_errors: u64,
    /// Upstream error rate in the window (0–1), `null` without an exchange; health judges it.
    pub upstream_error_rate: Option<f64>,
    /// Body bytes sent from the cache in the window.
    pub bytes_from_cache: u64,
    /// Body bytes sent otherwise in the window.
    pub bytes_from_upstream: u64,
    /// 95th percentile request latency in the window, in seconds.
    pub request_p95_seconds: Option<f64>,
    /// 95th percentile upstream latency in the window, in seconds.
    pub upstream_p95_seconds: Option<f64>,
}

/// The caching gateway: counters since start, latency and the recent window.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GatewayView {
    /// Requests served.
    pub requests: u64,
    /// Requests by cache outcome.
    pub by_cache: CacheOutcomesView,
    /// Requests by the class of the status sent.
    pub by_status_class: StatusClassesView,
    /// Requests by method.
    pub by_method: MethodsView,
    /// `(hit + stale) / (hit + stale + miss)` since start (0–1; bypasses are not cacheable),
    /// `null` without a cacheable request.
    pub hit_rate: Option<f64>,
    /// Body bytes sent from the cache (hits and stale answers).
    pub bytes_from_cache: u64,
    /// Body bytes sent otherwise (the upstream's, and the gateway's own error bodies).
    pub bytes_from_upstream: u64,
    /// Request latency, first byte in to response head out.
    pub latency_seconds: LatencySeconds,
    /// The upstream exchanges.
    pub upstream: UpstreamView,
    /// The recent window.
    pub window: GatewayWindowView,
    /// The second level cache (Redis) shared by the gateway's instances, `null` when none is
    /// set.
    pub l2: Option<L2View>,
}

labelled_view! {
    /// L2 lookups by outcome.
    pub struct L2LookupsView {
        /// Found, of the current version.
        pub hit: u64 = L2Lookup::Hit.as_str(),
        /// Not found.
        pub miss: u64 = L2Lookup::Miss.as_str(),
        /// Found, of another version: not used.
        pub other_version: u64 = L2Lookup::OtherVersion.as_str(),
        /// Failed (Redis error or timeout).
        pub error: u64 = L2Lookup::Error.as_str(),
        /// Not asked: L2 was unavailable.
        pub skipped: u64 = L2Lookup::Skipped.as_str(),
        /// Sent to Redis: every outcome but `skipped`.
        pub attempted: u64,
    }
}

/// L2 stores (`SET … PX`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct L2StoresView {
    /// Written.
    pub stored: u64,
    /// Failed.
    pub error: u64,
    /// Store latency, failed ones included.
    pub latency_seconds: LatencySeconds,
}

labelled_view! {
    /// Cross-instance fetch leases by outcome.
    pub struct L2LeasesView {
        /// This instance took the lease and fetched.
        pub won: u64 = L2Lease::Won.as_str(),
        /// Another instance fetched; its value arrived in time.
        pub waited: u64 = L2Lease::Waited.as_str(),
        /// Waited in vain (no value in time, or the holder gave up); fetched itself.
        pub expired: u64 = L2Lease::Expired.as_str(),
    }
}

/// Invalidations between the gateway's instances.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct L2InvalidationsView {
    /// Published by this instance.
    pub sent: u64,
    /// Received from the others.
    pub received: u64,
}

labelled_view! {
    /// Failed L2 operations by operation.
    pub struct L2ErrorsView {
        /// Lookups.
        pub lookup: u64 = L2Op::Lookup.as_str(),
        /// Stores.
        pub store: u64 = L2Op::Store.as_str(),
        /// Fetch leases.
        pub lease: u64 = L2Op::Lease.as_str(),
        /// Invalidations published.
        pub invalidate: u64 = L2Op::Invalidate.as_str(),
        /// The invalidation subscriber.
        pub subscribe: u64 = L2Op::Subscribe.as_str(),
    }
}

/// The last L2 error recorded.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct L2LastErrorView {
    /// The operation: `lookup`, `store`, `lease`, `invalidate` or `subscribe`.
    pub op: String,
    /// Its message.
    pub message: String,
    /// How long ago it was recorded, in seconds.
    pub age_seconds: f64,
}

/// The L2's figures over the health window.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct L2WindowView {
    /// The window's length in seconds.
    pub seconds: f64,
    /// Lookups sent to Redis in the window.
    pub lookups: u64,
    /// Lookups skipped (L2 unavailable) in the window.
    pub skipped: u64,
    /// Hit rate in the window (0–1), `null` without an answered lookup.
    pub hit_rate: Option<f64>,
    /// Failed lookups and stores in the window.
    pub errors: u64,
    /// Failed / attempted lookups and stores in the window (0–1), `null` without one;
    /// health judges it.
    pub error_rate: Option<f64>,
    /// 95th percentile lookup latency in the window, in seconds.
    pub lookup_p95_seconds: Option<f64>,
}

/// The gateway's second level cache (Redis): counters since start, latency, state and the
/// recent window.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct L2View {
    /// Whether L2 is usable now (the invalidation subscriber is connected and Redis
    /// answers).
    pub available: bool,
    /// Why it is not usable, when a reason was given; `null` while available.
    pub unavailable_reason: Option<String>,
    /// Lookups by outcome.
    pub lookups: L2LookupsView,
    /// `hit / (hit + miss + other_version)` since start (0–1), `null` without such a lookup.
    pub hit_rate: Option<f64>,
    /// Lookup latency (skipped lookups are not timed).
    pub lookup_latency_seconds: LatencySeconds,
    /// Stores by result, and their latency.
    pub stores: L2StoresView,
    /// Cross-instance fetch leases.
    pub leases: L2LeasesView,
    /// Invalidations between instances.
    pub invalidations: L2InvalidationsView,
    /// Times the whole L1 was dropped after the invalidation subscriber reconnected.
    pub l1_flushes: u64,
    /// Failed operations by operation.
    pub errors: L2ErrorsView,
    /// `(lookup errors + store errors) / (attempted lookups + stores)` since start (0–1),
    /// `null` without one.
    pub error_rate: Option<f64>,
    /// The last error, `null` if none was recorded.
    pub last_error: Option<L2LastErrorView>,
    /// The recent window.
    pub window: L2WindowView,
}

impl L2View {
    pub(crate) fn of(total: &L2Metrics, window: &L2Metrics, seconds: Duration) -> Self {
        let lookups = &total.lookups;
        let errors = &total.errors;
        let last_error = total.last_error.as_ref().map(|message| L2LastErrorView {
            op: total
                .last_error_op
                .map(|op| op.as_str().to_owned())
                .unwrap_or_default(),
            message: message.clone(),
            age_seconds: total.last_error_age_seconds.unwrap_or_default(),
        });
        let p95 = &window.lookup_latency;
        Self {
            available: total.available,
            unavailable_reason: total.unavailable_reason.clone(),
            lookups: L2LookupsView {
                hit: lookups.hit,
                miss: lookups.miss,
                other_version: lookups.other_version,
                error: lookups.error,
                skipped: lookups.skipped,
                attempted: lookups.attempted(),
            },
            hit_rate: total.hit_rate(),
            lookup_latency_seconds: LatencySeconds::of(&total.lookup_latency),
            stores: L2StoresView {
                stored: total.stores.stored,
                error: total.stores.error,
                latency_seconds: LatencySeconds::of(&total.store_latency),
            },
            leases: L2LeasesView {
                won: total.leases.won,
                waited: total.leases.waited,
                expired: total.leases.expired,
            },
            invalidations: L2InvalidationsView {
                sent: total.invalidations.sent,
                received: total.invalidations.received,
            },
            l1_flushes: total.l1_flushes,
            errors: L2ErrorsView {
                lookup: errors.lookup,
                store: errors.store,
                lease: errors.lease,
                invalidate: errors.invalidate,
                subscribe: errors.subscribe,
            },
            error_rate: total.error_rate(),
            last_error,
            window: L2WindowView {
                seconds: seconds.as_secs_f64(),
                lookups: window.lookups.attempted(),
                skipped: window.lookups.skipped,
                hit_rate: window.hit_rate(),
                errors: window.operation_errors(),
                error_rate: window.error_rate(),
                lookup_p95_seconds: (!p95.is_empty())
                    .then(|| Duration::from_nanos(p95.p95()).as_secs_f64()),
            },
        }
    }
}

/// `{"gateway": …}`: `null` when the service has no gateway.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GatewayResponse {
    /// The gateway, if one is set.
    pub gateway: Option<GatewayView>,
}

impl GatewayView {
    /// `l2`: the L2's figures since start and over the window, when one is set.
    pub(crate) fn of(
        total: &GatewayMetrics,
        window: &GatewayMetrics,
        seconds: Duration,
        l2: Option<(&L2Metrics, &L2Metrics)>,
    ) -> Self {
        let cache = |outcome| total.requests_with_cache(outcome);
        let class = |class| total.requests_with_status(class);
        let method = |method| total.requests_with_method(method);
        let upstream = &total.upstream;
        let p95_seconds = |histogram: &resync_perf_core::HistogramSnapshot| {
            (!histogram.is_empty()).then(|| Duration::from_nanos(histogram.p95()).as_secs_f64())
        };
        let window_requests = window.total_requests();
        Self {
            requests: total.total_requests(),
            by_cache: CacheOutcomesView {
                hit: cache(CacheOutcome::Hit),
                miss: cache(CacheOutcome::Miss),
                stale: cache(CacheOutcome::Stale),
                bypass: cache(CacheOutcome::Bypass),
            },
            by_status_class: StatusClassesView {
                informational: class(StatusClass::Informational),
                success: class(StatusClass::Success),
                redirection: class(StatusClass::Redirection),
                client_error: class(StatusClass::ClientError),
                server_error: class(StatusClass::ServerError),
            },
            by_method: MethodsView {
                get: method(MethodLabel::Get),
                head: method(MethodLabel::Head),
                post: method(MethodLabel::Post),
                put: method(MethodLabel::Put),
                patch: method(MethodLabel::Patch),
                delete: method(MethodLabel::Delete),
                options: method(MethodLabel::Options),
                other: method(MethodLabel::Other),
            },
            hit_rate: total.hit_rate(),
            bytes_from_cache: total.bytes_from_cache,
            bytes_from_upstream: total.bytes_from_upstream,
            latency_seconds: LatencySeconds::of(&total.request_latency),
            upstream: UpstreamView {
                requests: upstream.total(),
                answered_2xx: upstream.answered_2xx,
                answered_3xx: upstream.answered_3xx,
                answered_4xx: upstream.answered_4xx,
                answered_5xx: upstream.answered_5xx,
                unreachable: upstream.unreachable,
                failed: upstream.failed,
                timed_out: upstream.timed_out,
                exhausted: upstream.exhausted,
                errors: upstream.errors(),
                error_rate: upstream.error_rate(),
                latency_seconds: LatencySeconds::of(&total.upstream_latency),
            },
            window: GatewayWindowView {
                seconds: seconds.as_secs_f64(),
                requests: window_requests,
                requests_per_second: per_second(window_requests, seconds),
                hit_rate: window.hit_rate(),
                responses_5xx: window.requests_with_status(StatusClass::ServerError),
                upstream_requests: window.upstream.total(),
                upstream_errors: window.upstream.errors(),
                upstream_error_rate: window.upstream.error_rate(),
                bytes_from_cache: window.bytes_from_cache,
                bytes_from_upstream: window.bytes_from_upstream,
                request_p95_seconds: p95_seconds(&window.request_latency),
                upstream_p95_seconds: p95_seconds(&window.upstream_latency),
            },
            l2: l2.map(|(total, window)| L2View::of(total, window, seconds)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::gateway::UPSTREAM_LABELS;

    /// The keys of the JSON object `view` serializes as.
    fn keys(view: &impl Serialize) -> BTreeSet<String> {
        match serde_json::to_value(view) {
            Ok(serde_json::Value::Object(object)) => object.keys().cloned().collect(),
            other => panic!("not an object: {other:?}"),
        }
    }

    /// `labels` and `others` as one set of keys.
    fn expected(labels: &[&str], others: &[&str]) -> BTreeSet<String> {
        labels
            .iter()
            .chain(others)
            .map(|&key| key.to_owned())
            .collect()
    }

    #[test]
    fn labelled_views_are_keyed_by_every_label_value() {
        let metrics = GatewayMetrics::default();
        let l2 = L2Metrics::default();
        let view = GatewayView::of(&metrics, &metrics, Duration::ZERO, Some((&l2, &l2)));
        let cache = CacheOutcome::ALL.map(CacheOutcome::as_str);
        assert_eq!(keys(&view.by_cache), expected(&cache, &[]));
        let classes = StatusClass::ALL.map(StatusClass::as_str);
        assert_eq!(keys(&view.by_status_class), expected(&classes, &[]));
        let methods = MethodLabel::ALL.map(MethodLabel::as_str);
        assert_eq!(keys(&view.by_method), expected(&methods, &[]));
        let figures = ["requests", "errors", "error_rate", "latency_seconds"];
        assert_eq!(keys(&view.upstream), expected(&UPSTREAM_LABELS, &figures));
        let l2 = view.l2.unwrap_or_else(|| unreachable!("an L2 was given"));
        let lookups = L2Lookup::ALL.map(L2Lookup::as_str);
        assert_eq!(keys(&l2.lookups), expected(&lookups, &["attempted"]));
        let leases = L2Lease::ALL.map(L2Lease::as_str);
        assert_eq!(keys(&l2.leases), expected(&leases, &[]));
        let ops = L2Op::ALL.map(L2Op::as_str);
        assert_eq!(keys(&l2.errors), expected(&ops, &[]));
    }
}
