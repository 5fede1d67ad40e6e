//! The gateway's cumulative figures at one instant, and the figures derived from them.

use resync_perf_core::{ratio, Delta, HistogramSnapshot};
use serde::ser::SerializeSeq;
use serde::{Serialize, Serializer};

use super::labels::{serialize_by_label, CacheOutcome, MethodLabel, StatusClass, UPSTREAM_LABELS};

/// Request counters: one per (method, status class, cache outcome).
pub(crate) const REQUEST_CELLS: usize =
    MethodLabel::ALL.len() * StatusClass::ALL.len() * CacheOutcome::ALL.len();

/// The index of a (method, status class, cache outcome) counter.
#[inline]
pub(crate) const fn request_cell(
    method: MethodLabel,
    class: StatusClass,
    cache: CacheOutcome,
) -> usize {
    (method.index() * StatusClass::ALL.len() + class.index()) * CacheOutcome::ALL.len()
        + cache.index()
}

/// A snapshot of a [`GatewayStats`](super::GatewayStats): cumulative counters since it was
/// built and its two latency histograms (nanoseconds). Subtract an older snapshot
/// ([`Delta`]) for a window's figures.
///
/// Serializes as `{requests: [{method, status_class, cache, count}, …] (non-zero ones),
/// upstream: {…}, bytes_from_cache, bytes_from_upstream, request_latency, upstream_latency}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GatewayMetrics {
    /// By [`request_cell`].
    #[serde(serialize_with = "serialize_requests")]
    pub(crate) requests: [u64; REQUEST_CELLS],
    /// Upstream exchanges by outcome.
    pub upstream: UpstreamCounts,
    /// Body bytes sent to clients from the cache (hits and stale answers).
    pub bytes_from_cache: u64,
    /// Body bytes sent to clients otherwise (misses and bypasses: the upstream's bodies, and
    /// the gateway's own error bodies).
    pub bytes_from_upstream: u64,
    /// Every request, first byte in to response head out, in nanoseconds.
    pub request_latency: HistogramSnapshot,
    /// Every upstream exchange, in nanoseconds.
    pub upstream_latency: HistogramSnapshot,
}

/// Upstream exchanges by how they ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpstreamCounts {
    /// Answered below 300.
    pub answered_2xx: u64,
    /// Answered 3xx.
    pub answered_3xx: u64,
    /// Answered 4xx.
    pub answered_4xx: u64,
    /// Answered 5xx (or above): an upstream error.
    pub answered_5xx: u64,
    /// No connection could be made: an upstream error.
    pub unreachable: u64,
    /// The exchange broke mid-way: an upstream error.
    pub failed: u64,
    /// No answer within the read timeout: an upstream error.
    pub timed_out: u64,
    /// The HTTP pool was exhausted: an upstream error.
    pub exhausted: u64,
}

/// One (method, status class, cache outcome) counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RequestCount {
    /// The method's label.
    pub method: MethodLabel,
    /// The class of the status sent to the client.
    pub status_class: StatusClass,
    /// How the cache took part.
    pub cache: CacheOutcome,
    /// Requests counted.
    pub count: u64,
}

impl Default for GatewayMetrics {
    fn default() -> Self {
        Self {
            requests: [0; REQUEST_CELLS],
            upstream: UpstreamCounts::default(),
            bytes_from_cache: 0,
            bytes_from_upstream: 0,
            request_latency: HistogramSnapshot::default(),
            upstream_latency: HistogramSnapshot::default(),
        }
    }
}

impl GatewayMetrics {
    pub(crate) fn set_request_cells(&mut self, requests: [u64; REQUEST_CELLS]) {
        self.requests = requests;
    }

    /// Requests of `method` answered with a status of `class`, with cache outcome `cache`.
    #[must_use]
    pub fn requests(&self, method: MethodLabel, class: StatusClass, cache: CacheOutcome) -> u64 {
        self.requests[request_cell(method, class, cache)]
    }

    /// Every counter, zeros included, in label order (method, then status class, then cache
    /// outcome).
    pub fn request_counts(&self) -> impl Iterator<Item = RequestCount> + '_ {
        MethodLabel::ALL.into_iter().flat_map(move |method| {
            StatusClass::ALL.into_iter().flat_map(move |status_class| {
                CacheOutcome::ALL
                    .into_iter()
                    .map(move |cache| RequestCount {
                        method,
                        status_class,
                        cache,
                        count: self.requests(method, status_class, cache),
                    })
            })
        })
    }

    /// Requests served.
    #[must_use]
    pub fn total_requests(&self) -> u64 {
        self.requests.iter().sum()
    }

    /// Requests with cache outcome `cache`.
    #[must_use]
    pub fn requests_with_cache(&self, cache: CacheOutcome) -> u64 {
        self.request_counts()
            .filter(|row| row.cache == cache)
            .map(|row| row.count)
            .sum()
    }

    /// Requests answered with a status of `class`.
    #[must_use]
    pub fn requests_with_status(&self, class: StatusClass) -> u64 {
        self.request_counts()
            .filter(|row| row.status_class == class)
            .map(|row| row.count)
            .sum()
    }

    /// Requests of `method`.
    #[must_use]
    pub fn requests_with_method(&self, method: MethodLabel) -> u64 {
        self.request_counts()
            .filter(|row| row.method == method)
            .map(|row| row.count)
            .sum()
    }

    /// The share of cacheable requests answered from the cache: `(hit + stale) / (hit +
    /// stale + miss)`, 0–1; bypasses are not cacheable and left out. `None` without a
    /// cacheable request.
    #[must_use]
    pub fn hit_rate(&self) -> Option<f64> {
        let from_cache = self.requests_with_cache(CacheOutcome::Hit)
            + self.requests_with_cache(CacheOutcome::Stale);
        let cacheable = from_cache + self.requests_with_cache(CacheOutcome::Miss);
        ratio(from_cache as f64, cacheable as f64)
    }
}

impl Delta for GatewayMetrics {
    fn delta(&self, older: &Self) -> Self {
        let mut requests = self.requests;
        for (newer, older) in requests.iter_mut().zip(&older.requests) {
            *newer = newer.saturating_sub(*older);
        }
        Self {
            requests,
            upstream: self.upstream.delta(&older.upstream),
            bytes_from_cache: self.bytes_from_cache.delta(&older.bytes_from_cache),
            bytes_from_upstream: self.bytes_from_upstream.delta(&older.bytes_from_upstream),
            request_latency: self.request_latency.delta(&older.request_latency),
            upstream_latency: self.upstream_latency.delta(&older.upstream_latency),
        }
    }
}

impl UpstreamCounts {
    pub(crate) fn from_cells(cells: [u64; UPSTREAM_LABELS.len()]) -> Self {
        let [answered_2xx, answered_3xx, answered_4xx, answered_5xx, unreachable, failed, timed_out, exhausted] =
            cells;
        Self {
            answered_2xx,
            answered_3xx,
            answered_4xx,
            answered_5xx,
            unreachable,
            failed,
            timed_out,
            exhausted,
        }
    }

    /// Every counter with its label value, in [`UpstreamOutcome`](super::UpstreamOutcome)
    /// label order.
    #[must_use]
    pub fn by_label(&self) -> [(&'static str, u64); UPSTREAM_LABELS.len()] {
        let values = [
            self.answered_2xx,
            self.answered_3xx,
            self.answered_4xx,
            self.answered_5xx,
            self.unreachable,
            self.failed,
            self.timed_out,
            self.exhausted,
        ];
        std::array::from_fn(|index| (UPSTREAM_LABELS[index], values[index]))
    }

    /// Upstream exchanges attempted (answered or not).
    #[must_use]
    pub fn total(&self) -> u64 {
        self.by_label().iter().map(|(_, count)| count).sum()
    }

    /// Exchanges that count as upstream errors: 5xx answers, unreachable, failed, timed
    /// out, pool exhausted.
    #[must_use]
    pub fn errors(&self) -> u64 {
        self.answered_5xx + self.unreachable + self.failed + self.timed_out + self.exhausted
    }

    /// `errors / total`, 0–1; `None` without an exchange.
    #[must_use]
    pub fn error_rate(&self) -> Option<f64> {
        ratio(self.errors() as f64, self.total() as f64)
    }
}

serialize_by_label!(UpstreamCounts);

impl Delta for UpstreamCounts {
    fn delta(&self, older: &Self) -> Self {
        Self {
            answered_2xx: self.answered_2xx.delta(&older.answered_2xx),
            answered_3xx: self.answered_3xx.delta(&older.answered_3xx),
            answered_4xx: self.answered_4xx.delta(&older.answered_4xx),
            answered_5xx: self.answered_5xx.delta(&older.answered_5xx),
            unreachable: self.unreachable.delta(&older.unreachable),
            failed: self.failed.delta(&older.failed),
            timed_out: self.timed_out.delta(&older.timed_out),
            exhausted: self.exhausted.delta(&older.exhausted),
        }
    }
}

/// The non-zero request counters, as `{method, status_class, cache, count}` rows.
fn serialize_requests<S: Serializer>(
    requests: &[u64; REQUEST_CELLS],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let metrics = GatewayMetrics {
        requests: *requests,
        ..GatewayMetrics::default()
    };
    let nonzero = requests.iter().filter(|count| **count > 0).count();
    let mut rows = serializer.serialize_seq(Some(nonzero))?;
    for row in metrics.request_counts().filter(|row| row.count > 0) {
        rows.serialize_element(&row)?;
    }
    rows.end()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_distinct_and_cover_the_array() {
        let mut seen = [false; REQUEST_CELLS];
        for method in MethodLabel::ALL {
            for class in StatusClass::ALL {
                for cache in CacheOutcome::ALL {
                    let cell = request_cell(method, class, cache);
                    assert!(!seen[cell], "{method:?} {class:?} {cache:?}");
                    seen[cell] = true;
                }
            }
        }
        assert!(seen.iter().all(|cell| *cell));
    }

    #[test]
    fn a_window_is_the_difference_and_ratios_need_data() {
        let mut older = GatewayMetrics::default();
        assert_eq!(older.hit_rate(), None);
        assert_eq!(older.upstream.error_rate(), None);
        older.requests[request_cell(MethodLabel::Get, StatusClass::Success, CacheOutcome::Hit)] = 5;
        older.upstream.answered_2xx = 3;
        let mut newer = older.clone();
        newer.requests[request_cell(MethodLabel::Get, StatusClass::Success, CacheOutcome::Hit)] = 8;
        newer.requests[request_cell(MethodLabel::Get, StatusClass::Success, CacheOutcome::Miss)] =
            1;
        newer.requests[request_cell(
            MethodLabel::Post,
            StatusClass::ServerError,
            CacheOutcome::Bypass,
        )] = 4;
        newer.upstream.answered_2xx = 4;
        newer.upstream.timed_out = 1;
        let window = newer.delta(&older);
        assert_eq!(window.total_requests(), 8);
        assert_eq!(window.requests_with_cache(CacheOutcome::Hit), 3);
        assert_eq!(window.requests_with_status(StatusClass::ServerError), 4);
        assert_eq!(window.requests_with_method(MethodLabel::Get), 4);
        assert_eq!(window.hit_rate(), Some(0.75), "bypasses are not cacheable");
        assert_eq!(window.upstream.total(), 2);
        assert_eq!(window.upstream.error_rate(), Some(0.5));
        // An older snapshot that is larger (a recreated recorder) is "nothing happened".
        assert_eq!(older.delta(&newer).total_requests(), 0);
    }

    #[test]
    fn serializes_the_non_zero_counters_with_their_labels() {
        let mut metrics = GatewayMetrics::default();
        metrics.requests[request_cell(
            MethodLabel::Delete,
            StatusClass::ClientError,
            CacheOutcome::Bypass,
        )] = 2;
        metrics.upstream.failed = 1;
        let json = serde_json::to_value(&metrics).unwrap_or_default();
        assert_eq!(
            json["requests"],
            serde_json::json!([{"method": "DELETE", "status_class": "4xx", "cache": "bypass", "count": 2}])
        );
        assert_eq!(json["upstream"]["failed"], 1);
        assert_eq!(json["request_latency"]["count"], 0);
    }
}
