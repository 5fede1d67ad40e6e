//! The cached value: one upstream response with the end-to-end headers it is served with,
//! its body, when it was stored and for how long it is fresh — weighed by what it really
//! holds in memory.

use std::mem::size_of;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::{Response, StatusCode};
use bytes::Bytes;
use resync_cache_core::MemorySize;

use super::policy::Storable;

/// `X-Cache`: where a response came from.
pub const X_CACHE: HeaderName = HeaderName::from_static("x-cache");

/// How a response was served, as `X-Cache` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// From the cache, fresh.
    Hit,
    /// From the upstream, for this key (and stored when storable).
    Miss,
    /// From the cache past its freshness, because the upstream failed (`stale-if-error`).
    Stale,
    /// Not cacheable: passed through.
    Bypass,
}

impl Served {
    /// The `X-Cache` value.
    #[must_use]
    pub fn header_value(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Self::Hit => "HIT",
            Self::Miss => "MISS",
            Self::Stale => "STALE",
            Self::Bypass => "BYPASS",
        })
    }
}

/// A stored response.
#[derive(Debug)]
pub struct CachedResponse {
    pub(super) status: StatusCode,
    /// The end-to-end headers, copied out of hyper's read buffer into their own allocations.
    pub(super) headers: HeaderMap,
    /// The body, copied into one allocation of exactly its length.
    pub(super) body: Bytes,
    pub(super) stored_at: Instant,
    pub(super) initial_age: u64,
    pub(super) fresh_for: Duration,
    pub(super) stale_for: Duration,
    /// The request's values of the headers `Vary` names, as stored.
    pub(super) vary: Box<[(HeaderName, Option<HeaderValue>)]>,
}

/// Copies a header map so that no value shares (and keeps alive) a larger buffer.
fn owned_headers(source: &HeaderMap) -> HeaderMap {
    let mut copy = HeaderMap::with_capacity(source.keys_len());
    for (name, value) in source {
        let mut owned = HeaderValue::from_bytes(value.as_bytes()).unwrap_or_else(|_| value.clone());
        owned.set_sensitive(value.is_sensitive());
        copy.append(name.clone(), owned);
    }
    copy
}

impl CachedResponse {
    /// A response to store: `headers` are the upstream's end-to-end headers (hop-by-hop
    /// already removed), `body` the whole body, `request` the headers of the request it
    /// answered (for `Vary`).
    #[must_use]
    pub fn new(
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
        storable: &Storable,
        request: &HeaderMap,
    ) -> Self {
        let mut headers = owned_headers(headers);
        // The gateway sets these per answer.
        headers.remove(header::AGE);
        headers.remove(&X_CACHE);
        let vary = storable
            .vary
            .iter()
            .map(|name| {
                (
                    name.clone(),
                    request.get(name).map(|value| {
                        HeaderValue::from_bytes(value.as_bytes()).unwrap_or_else(|_| value.clone())
                    }),
                )
            })
            .collect();
        Self {
            status,
            headers,
            body: Bytes::from(Box::<[u8]>::from(body)),
            stored_at: Instant::now(),
            initial_age: storable.initial_age,
            fresh_for: storable.fresh_for,
            stale_for: storable.stale_for,
            vary,
        }
    }

    /// The stored status.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stored body.
    #[must_use]
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// How long the entry must stay in memory: its freshness plus its stale window.
    #[must_use]
    pub fn keep_for(&self) -> Duration {
        self.fresh_for.saturating_add(self.stale_for)
    }

    /// How much longer it must stay in memory from now: [`keep_for`](Self::keep_for) less
    /// the time since it was stored (an entry from the second level arrives part-way).
    #[must_use]
    pub fn life_left(&self) -> Duration {
        self.keep_for().saturating_sub(self.stored_at.elapsed())
    }

    /// Whether it is still fresh at `now`.
    #[must_use]
    pub fn is_fresh(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.stored_at) < self.fresh_for
    }

    /// Whether it may be served at `now` because the upstream failed: fresh, or stale by no
    /// more than its stale window.
    #[must_use]
    pub fn serves_stale_at(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.stored_at) < self.keep_for()
    }

    /// Its age in seconds at `now` (RFC 9111 §4.2.3): the upstream's `Age` plus the time held.
    #[must_use]
    pub fn age(&self, now: Instant) -> u64 {
        self.initial_age + now.saturating_duration_since(self.stored_at).as_secs()
    }

    /// Whether a request with these headers selects this stored variant (`Vary`).
    #[must_use]
    pub fn matches(&self, request: &HeaderMap) -> bool {
        self.vary.iter().all(|(name, stored)| {
            request.get(name).map(HeaderValue::as_bytes)
                == stored.as_ref().map(HeaderValue::as_bytes)
        })
    }

    /// The answer to a client: the stored head and body with `Age` and `X-Cache`.
    #[must_use]
    pub fn to_response(&self, served: Served, now: Instant) -> Response<Body> {
        let mut response = Response::new(Body::from(self.body.clone()));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.clone_from(&self.headers);
        headers.insert(header::AGE, age_value(self.age(now)));
        headers.insert(X_CACHE, served.header_value());
        response
    }
}

/// Ages below this are answered from a table of static header values.
const AGE_TABLE: u64 = 4096;

/// The `Age` header value for `seconds`: from a table of static values for ages below
/// [`AGE_TABLE`] (no allocation and no shared reference count on the hit path), formatted
/// otherwise.
fn age_value(seconds: u64) -> HeaderValue {
    static TABLE: LazyLock<Vec<HeaderValue>> = LazyLock::new(|| {
        // One string of every age, kept for the life of the process (about 16 KiB), so each
        // value is a static slice of it.
        let text: &'static str = Box::leak(
            (0..AGE_TABLE)
                .map(|age| age.to_string())
                .collect::<String>()
                .into_boxed_str(),
        );
        let mut values = Vec::with_capacity(AGE_TABLE as usize);
        let mut start = 0;
        for age in 0..AGE_TABLE {
            let end = start + age.to_string().len();
            values.push(HeaderValue::from_static(&text[start..end]));
            start = end;
        }
        values
    });
    usize::try_from(seconds)
        .ok()
        .and_then(|index| TABLE.get(index))
        .cloned()
        .unwrap_or_else(|| HeaderValue::from(seconds))
}

/// Bytes a `HeaderMap` owns on the heap: its entry and index tables (from its capacity) and
/// every name and value. Custom names are copied on the heap, standard ones are static; all
/// names are counted (an upper estimate by at most the standard names' lengths).
#[must_use]
pub fn header_map_bytes(headers: &HeaderMap) -> usize {
    // http's `Bucket`: a 16-bit hash, an optional pair of links, the name and the value.
    let bucket = size_of::<HeaderName>() + size_of::<HeaderValue>() + 3 * size_of::<usize>();
    // `ExtraValue`: a value and two links (an enum of a tag and an index each).
    let extra = size_of::<HeaderValue>() + 4 * size_of::<usize>();
    let capacity = headers.capacity();
    // The index table has a power-of-two number of 4-byte slots, at most 3/4 used.
    let indices = (capacity + capacity / 3).next_power_of_two() * 4;
    let extras = headers.len() - headers.keys_len();
    let strings: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    capacity * bucket + indices + extras * extra + strings
}

impl MemorySize for CachedResponse {
    fn heap_bytes(&self) -> usize {
        let vary: usize = self
            .vary
            .iter()
            .map(|(name, value)| {
                size_of::<(HeaderName, Option<HeaderValue>)>()
                    + name.as_str().len()
                    + value.as_ref().map_or(0, HeaderValue::len)
            })
            .sum();
        header_map_bytes(&self.headers) + self.body.heap_bytes() + vary
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn storable(fresh: u64, stale: u64, vary: &[&'static str]) -> Storable {
        Storable {
            fresh_for: Duration::from_secs(fresh),
            stale_for: Duration::from_secs(stale),
            initial_age: 3,
            vary: vary
                .iter()
                .map(|name| HeaderName::from_static(name))
                .collect(),
        }
    }

    #[test]
    fn freshness_staleness_and_age_count_from_the_store() {
        let stored = CachedResponse::new(
            StatusCode::OK,
            &HeaderMap::new(),
            b"body",
            &storable(10, 5, &[]),
            &HeaderMap::new(),
        );
        let now = Instant::now();
        assert!(stored.is_fresh(now));
        assert!(!stored.is_fresh(now + Duration::from_secs(10)));
        assert!(stored.serves_stale_at(now + Duration::from_secs(14)));
        assert!(!stored.serves_stale_at(now + Duration::from_secs(16)));
        assert_eq!(stored.age(now + Duration::from_secs(4)), 7);
        assert_eq!(stored.keep_for(), Duration::from_secs(15));
    }

    #[test]
    fn a_variant_matches_only_the_request_values_it_was_stored_for() {
        let mut request = HeaderMap::new();
        request.insert("accept-language", HeaderValue::from_static("fr"));
        let stored = CachedResponse::new(
            StatusCode::OK,
            &HeaderMap::new(),
            b"bonjour",
            &storable(10, 0, &["accept-language", "accept"]),
            &request,
        );
        assert!(stored.matches(&request));
        let mut other = request.clone();
        other.insert("accept-language", HeaderValue::from_static("de"));
        assert!(!stored.matches(&other));
        other.insert("accept-language", HeaderValue::from_static("fr"));
        other.insert("accept", HeaderValue::from_static("text/html"));
        assert!(
            !stored.matches(&other),
            "a header absent at store time must be absent"
        );
    }

    #[test]
    fn the_answer_carries_the_stored_head_age_and_x_cache() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(header::AGE, HeaderValue::from_static("3"));
        let stored = CachedResponse::new(
            StatusCode::CREATED,
            &headers,
            b"{}",
            &storable(10, 0, &[]),
            &HeaderMap::new(),
        );
        let response = stored.to_response(Served::Hit, Instant::now());
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(response.headers()[X_CACHE], "HIT");
        assert_eq!(response.headers()[header::AGE], "3");
        assert_eq!(response.headers().get_all(header::AGE).iter().count(), 1);
    }

    #[test]
    fn age_values_are_the_decimal_seconds_inside_and_outside_the_table() {
        for age in [0, 1, 9, 10, 99, 100, 4095, 4096, 86_400, u64::MAX] {
            assert_eq!(age_value(age), age.to_string().as_str(), "{age}");
        }
    }

    #[test]
    fn the_weight_counts_body_headers_and_tables() {
        let mut headers = HeaderMap::new();
        headers.insert("x-custom-header", HeaderValue::from_static("some value"));
        let small = CachedResponse::new(
            StatusCode::OK,
            &headers,
            &[0; 10],
            &storable(10, 0, &[]),
            &HeaderMap::new(),
        );
        let large = CachedResponse::new(
            StatusCode::OK,
            &headers,
            &[0; 10_010],
            &storable(10, 0, &[]),
            &HeaderMap::new(),
        );
        assert_eq!(large.heap_bytes() - small.heap_bytes(), 10_000);
        assert!(
            small.heap_bytes()
                >= 10 + "x-custom-header".len() + "some value".len() + size_of::<HeaderValue>()
        );
        assert!(header_map_bytes(&HeaderMap::new()) < header_map_bytes(&headers));
    }
}
