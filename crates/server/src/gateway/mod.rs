//! The caching gateway: `/tws` and `/tws/{*path}`, every method, to `TWS_BASE_URL`.
//!
//! A `GET` or `HEAD` is looked up in the response cache under its method, target, the
//! caller's credentials and the path's generation (`key`); a fresh entry that matches the
//! request's `Vary` headers is a `HIT`. Otherwise one request per key goes upstream (single
//! flight through cache-core's `try_get_with`: concurrent misses wait for it); the answer is
//! stored when the caching rules allow (`policy`) and served as a `MISS`, or passed through
//! as `BYPASS`. When the upstream fails and an entry expired less than its stale window
//! ago, that entry is served as `STALE` (RFC 5861 `stale-if-error`). Every other method
//! passes through with its body streamed (capped) and makes the path's entries unreachable.
//! Failures answer JSON: 502 unreachable or broken, 504 past `TWS_READ_TIMEOUT`, 503 with
//! `Retry-After` when the pool is exhausted, 413 past the request body cap.

mod headers;
mod key;
pub mod l2;
mod policy;
mod response;
mod upstream;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use http_body_util::{BodyExt, Limited};
use resync_cache_core::{Cache, CacheBuilder, Expiry};
use resync_perf_api::{CacheOutcome, GatewayExchange, GatewayStats, UpstreamOutcome};
use resync_pool_optimizer::{empty_body, HttpBody};

pub use headers::{new_traceparent, strip_hop_by_hop, valid_traceparent};
pub use key::{CacheKey, Generations};
pub use l2::{L2Config, SharedCache};
pub use policy::{CachePolicy, Storable, Uncacheable};
pub use response::{header_map_bytes, CachedResponse, Served, X_CACHE};
pub use upstream::{Failed, Failure, Upstream};

use l2::{L2Keys, Leased, Looked};
use upstream::{Answer, AnswerBody};

/// The `tracing` target of the access log (one debug event per request).
pub const ACCESS_LOG: &str = "resync::gateway::access";

/// The response cache's value: shared, so a hit clones a pointer.
pub type Entry = Arc<CachedResponse>;

/// The response cache the gateway reads and fills.
pub type ResponseCache = Cache<CacheKey, Entry>;

/// Keeps each entry for its freshness plus its stale window (moka's per-entry expiry).
#[derive(Debug, Clone, Copy, Default)]
pub struct EntryExpiry;

impl Expiry<CacheKey, Entry> for EntryExpiry {
    fn expire_after_create(
        &self,
        _key: &CacheKey,
        value: &Entry,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.life_left())
    }

    fn expire_after_update(
        &self,
        _key: &CacheKey,
        value: &Entry,
        _updated_at: std::time::Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.life_left())
    }
}

/// A cache builder for the gateway: per-entry expiry at freshness + stale window.
pub fn response_cache_builder() -> CacheBuilder<CacheKey, Entry> {
    Cache::builder().expiry(EntryExpiry)
}

/// The gateway's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GatewayConfig {
    /// When and for how long responses are stored.
    pub policy: CachePolicy,
    /// Request bodies past this many bytes get 413 (`GATEWAY_MAX_REQUEST_BODY_BYTES`).
    pub max_request_body_bytes: u64,
}

/// The gateway: cache, upstream, generations and statistics. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    cache: ResponseCache,
    upstream: Upstream,
    generations: Generations,
    config: GatewayConfig,
    stats: GatewayStats,
    /// The Redis second level (`GATEWAY_L2`), if on.
    l2: Option<SharedCache>,
}

/// An upstream fetch that produced nothing to store.
#[derive(Debug)]
enum NotStored {
    /// A response that may not be stored: the fetching caller serves it; callers that
    /// waited for it fetch for themselves.
    Pass(Mutex<Option<Response>>),
    /// The exchange failed.
    Failed(Failure),
}

/// What the cache said about a `GET` or `HEAD`.
enum Lookup {
    /// A fresh entry of the request's variant, answered.
    Hit((Response, Outcome)),
    /// Nothing to serve: the key to load, and a stale entry of the request's variant if any.
    Miss { key: CacheKey, stale: Option<Entry> },
}

/// What answering a request recorded about it.
struct Outcome {
    served: Served,
    upstream: Option<(Duration, UpstreamOutcome)>,
    body_bytes: u64,
}

impl Gateway {
    /// A gateway in front of `upstream`, storing in `cache` (build it with
    /// [`response_cache_builder`] so entries live for freshness plus stale window), counting
    /// into `stats`, and sharing responses with other instances through `l2` when given
    /// (then run [`Gateway::spawn_listener`] too).
    #[must_use]
    pub fn new(
        cache: ResponseCache,
        upstream: Upstream,
        config: GatewayConfig,
        stats: GatewayStats,
        l2: Option<SharedCache>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                cache,
                upstream,
                generations: Generations::default(),
                config,
                stats,
                l2,
            }),
        }
    }

    /// Starts the second level's invalidation listener (on the current tokio runtime), when
    /// the gateway has one; abort the task to stop it.
    #[must_use]
    pub fn spawn_listener(&self) -> Option<tokio::task::JoinHandle<()>> {
        let l2 = self.inner.l2.clone()?;
        Some(tokio::spawn(l2::listener::run(self.clone(), l2)))
    }

    /// The second level, if on.
    #[must_use]
    pub fn l2(&self) -> Option<&SharedCache> {
        self.inner.l2.as_ref()
    }

    /// Makes every cached entry unreachable and drops it (after invalidations may have been
    /// lost).
    pub async fn invalidate_all(&self) {
        self.inner.generations.bump_all();
        self.inner.cache.invalidate_all().await;
    }

    /// The routes `/tws` and `/tws/{*path}`, every method.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/tws", any(handle))
            .route("/tws/", any(handle))
            .route("/tws/{*path}", any(handle))
            .with_state(self.clone())
    }

    /// Makes every cached entry of `path` (the upstream path, without `/tws`; any query, any
    /// caller) unreachable.
    pub fn invalidate_path(&self, path: &str) {
        self.inner.generations.bump(key::path_of(path));
    }

    /// The response cache.
    #[must_use]
    pub fn cache(&self) -> &ResponseCache {
        &self.inner.cache
    }

    /// The statistics it records.
    #[must_use]
    pub fn stats(&self) -> &GatewayStats {
        &self.inner.stats
    }
}

/// A JSON error answer, with `Retry-After` for an exhausted pool.
fn failure_response(failure: Failure) -> Response {
    let body = serde_json::json!({
        "error": { "code": failure.code(), "message": failure.message() }
    });
    let mut response = (failure.status(), axum::Json(body)).into_response();
    if failure == Failure::Exhausted {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
        .headers_mut()
        .insert(X_CACHE, Served::Bypass.header_value());
    response
}

/// The upstream target: the path after `/tws` (at least `/`) and the query, byte for byte,
/// in one allocation of exactly its length.
fn upstream_target(request: &Request) -> Box<str> {
    let path = request.uri().path();
    let rest = path.strip_prefix("/tws").unwrap_or(path);
    let rest = if rest.is_empty() { "/" } else { rest };
    let query = request.uri().query();
    let mut target = String::with_capacity(rest.len() + query.map_or(0, |query| query.len() + 1));
    target.push_str(rest);
    if let Some(query) = query {
        target.push('?');
        target.push_str(query);
    }
    target.into_boxed_str()
}

fn status_outcome(status: StatusCode) -> UpstreamOutcome {
    UpstreamOutcome::Answered(status.as_u16())
}

/// An answer passed through as it came.
fn pass_through(answer: Answer, served: Served) -> (Response, u64) {
    let Answer {
        status,
        headers,
        body,
        ..
    } = answer;
    let (body, bytes) = match body {
        AnswerBody::Complete(bytes) => {
            let length = bytes.len() as u64;
            (Body::from(bytes), length)
        }
        AnswerBody::Streaming(stream) => {
            let declared = headers
                .get(header::CONTENT_LENGTH)
                .and_then(|value| value.to_str().ok()?.parse().ok())
                .unwrap_or(0);
            (Body::new(*stream), declared)
        }
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
        .headers_mut()
        .insert(X_CACHE, served.header_value());
    (response, bytes)
}

async fn handle(State(gateway): State<Gateway>, request: Request) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let target = upstream_target(&request);
    // Kept for the access log only when it is on.
    let logged_uri =
        tracing::enabled!(target: ACCESS_LOG, tracing::Level::DEBUG).then(|| request.uri().clone());
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip());
    // The hit path stays in this small future; the rest is boxed, so the future axum moves
    // for every request is not sized by the upstream exchange's state.
    let (response, outcome) = if matches!(method, Method::GET | Method::HEAD) {
        let (parts, _body) = request.into_parts();
        match gateway.lookup(&parts, target).await {
            Lookup::Hit(answer) => answer,
            Lookup::Miss { key, stale } => Box::pin(gateway.miss(parts, key, stale, peer)).await,
        }
    } else {
        Box::pin(gateway.write(request, &target, peer)).await
    };
    let status = response.status();
    gateway.inner.stats.record(&GatewayExchange {
        method: &method,
        status: status.as_u16(),
        cache: match outcome.served {
            Served::Hit => CacheOutcome::Hit,
            Served::Miss => CacheOutcome::Miss,
            Served::Stale => CacheOutcome::Stale,
            Served::Bypass => CacheOutcome::Bypass,
        },
        latency: started.elapsed(),
        upstream: outcome.upstream,
        body_bytes: outcome.body_bytes,
    });
    tracing::debug!(
        target: ACCESS_LOG,
        %method,
        uri = ?logged_uri,
        status = status.as_u16(),
        cache = ?outcome.served,
        latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        "gateway request"
    );
    response
}

impl Gateway {
    /// A `GET` or `HEAD` looked up in the cache: a fresh entry of the request's variant is a
    /// hit; a stale one is handed on (for `stale-if-error`) and removed, like another variant.
    async fn lookup(&self, parts: &Parts, target: Box<str>) -> Lookup {
        let inner = &*self.inner;
        let generation = inner.generations.current(key::path_of(&target));
        let key = CacheKey::new(
            generation,
            parts.method == Method::HEAD,
            target,
            &parts.headers,
        );
        let mut stale = None;
        let now = Instant::now();
        // A hit is counted only for a fresh entry of the request's variant; otherwise the
        // load below counts the miss (once).
        let found = inner
            .cache
            .get_if(&key, |entry| {
                entry.matches(&parts.headers) && entry.is_fresh(now)
            })
            .await;
        match found {
            Some(Ok(entry)) => return Lookup::Hit(served_from(&entry, Served::Hit, None, now)),
            Some(Err(entry)) => {
                if entry.matches(&parts.headers) {
                    stale = Some(entry);
                }
                // Stale, or another variant: fetch anew (the fetch replaces it).
                inner.cache.invalidate(&key).await;
            }
            None => {}
        }
        Lookup::Miss { key, stale }
    }

    /// A `GET` or `HEAD` the cache could not answer: one upstream request per key.
    async fn miss(
        &self,
        parts: Parts,
        key: CacheKey,
        stale: Option<Entry>,
        peer: Option<std::net::IpAddr>,
    ) -> (Response, Outcome) {
        let inner = &*self.inner;
        let method = parts.method.clone();
        // The key moves into the load; the target is needed beside it.
        let target_owned = key.target().to_owned();
        let target = target_owned.as_str();
        let (upstream_headers, traceparent) =
            headers::upstream_request_headers(parts.headers.clone(), peer);
        // Set by this caller's load only: the exchange it made, whether it loaded, and
        // whether the entry came from the second level.
        let exchanged: OnceLock<(Duration, UpstreamOutcome)> = OnceLock::new();
        let loaded_here = AtomicBool::new(false);
        let from_l2 = AtomicBool::new(false);
        let l2_keys = inner.l2.as_ref().map(|_| {
            L2Keys::new(
                key::path_of(target),
                key.is_head(),
                target,
                key.credentials(),
            )
        });
        let fetch = async {
            loaded_here.store(true, Ordering::Relaxed);
            let shared = match (&inner.l2, &l2_keys) {
                (Some(l2), Some(keys)) => Some((l2, keys)),
                _ => None,
            };
            let mut stored_under = None;
            let mut lease = None;
            if let Some((l2, keys)) = shared {
                match self.look_in_l2(l2, keys, &parts.headers, &from_l2).await {
                    Ok(entry) => return Ok(entry),
                    Err((generation, token)) => {
                        stored_under = generation;
                        lease = token;
                    }
                }
            }
            tracing::trace!(traceparent = ?traceparent, %target, "upstream fetch");
            let fetched = self
                .fetch(
                    &method,
                    target,
                    &upstream_headers,
                    &parts.headers,
                    &exchanged,
                )
                .await;
            if let Some((l2, keys)) = shared {
                if let Some(generation) = stored_under {
                    l2.store(keys, generation, fetched.as_deref().ok(), lease)
                        .await;
                }
            }
            fetched
        };
        let loaded = inner.cache.try_get_with(key, fetch).await;
        let now = Instant::now();
        let upstream = exchanged.get().copied();
        let not_stored = match loaded {
            Ok(entry) => {
                let served = if from_l2.load(Ordering::Relaxed) {
                    Served::Hit
                } else {
                    Served::Miss
                };
                return served_from(&entry, served, upstream, now);
            }
            Err(not_stored) => not_stored,
        };
        match &*not_stored {
            NotStored::Pass(response) if loaded_here.load(Ordering::Relaxed) => {
                let Some(response) = response.lock().ok().and_then(|mut slot| slot.take()) else {
                    // Only this caller takes the response it loaded.
                    return (
                        failure_response(Failure::Failed),
                        Outcome::bypass(upstream, 0),
                    );
                };
                match stale {
                    Some(stale)
                        if is_upstream_error(response.status()) && stale.serves_stale_at(now) =>
                    {
                        served_from(&stale, Served::Stale, upstream, now)
                    }
                    _ => {
                        let bytes = declared_length(response.headers());
                        (response, Outcome::bypass(upstream, bytes))
                    }
                }
            }
            // It waited for a response that may not be shared: it fetches for itself.
            NotStored::Pass(_) => {
                self.bypass(&method, target, &upstream_headers, empty_body())
                    .await
            }
            NotStored::Failed(failure) => match stale {
                Some(stale) if stale.serves_stale_at(now) => {
                    served_from(&stale, Served::Stale, upstream, now)
                }
                _ => (failure_response(*failure), Outcome::bypass(upstream, 0)),
            },
        }
    }

    /// The second level's part of a load: an entry from L2 (this instance's, or the one
    /// another instance holding the lease stored while this one waited), or, to fetch from
    /// the upstream, the generation to store the result under (none when L2 failed) and the
    /// lease token this instance holds.
    async fn look_in_l2(
        &self,
        l2: &SharedCache,
        keys: &L2Keys,
        request_headers: &HeaderMap,
        from_l2: &AtomicBool,
    ) -> Result<Entry, (Option<u64>, Option<u64>)> {
        let generation = match l2.lookup(keys, request_headers).await {
            Looked::Hit(response) => {
                from_l2.store(true, Ordering::Relaxed);
                return Ok(Arc::from(response));
            }
            Looked::Miss { generation } => generation,
            Looked::Unavailable => return Err((None, None)),
        };
        match l2.lease(keys).await {
            Leased::Won(token) => Err((Some(generation), Some(token))),
            Leased::Held => match l2.wait_for(keys, generation, request_headers).await {
                Some(response) => {
                    from_l2.store(true, Ordering::Relaxed);
                    Ok(Arc::from(response))
                }
                None => Err((Some(generation), None)),
            },
            Leased::Unavailable => Err((None, None)),
        }
    }

    /// The single-flight load: one upstream exchange, stored when the rules allow. The
    /// exchange's latency and outcome go to `exchanged`.
    async fn fetch(
        &self,
        method: &Method,
        target: &str,
        upstream_headers: &HeaderMap,
        request_headers: &HeaderMap,
        exchanged: &OnceLock<(Duration, UpstreamOutcome)>,
    ) -> Result<Entry, NotStored> {
        let inner = &*self.inner;
        let policy = inner.config.policy;
        let mut storable = None;
        let judge = |status, headers: &HeaderMap| match policy.judge(status, headers) {
            Ok(judged) => {
                storable = Some(judged);
                true
            }
            Err(reason) => {
                tracing::trace!(?reason, %status, "response not stored");
                false
            }
        };
        let exchange = inner.upstream.exchange(
            method,
            target,
            upstream_headers,
            empty_body(),
            judge,
            policy.max_body_bytes,
        );
        let answer = match exchange.await {
            Ok(answer) => answer,
            Err(failed) => {
                if let Some(outcome) = failed.failure.outcome() {
                    let _ = exchanged.set((failed.elapsed, outcome));
                }
                return Err(NotStored::Failed(failed.failure));
            }
        };
        let _ = exchanged.set((answer.latency, status_outcome(answer.status)));
        match (&answer.body, storable) {
            (AnswerBody::Complete(body), Some(storable)) => Ok(Arc::new(CachedResponse::new(
                answer.status,
                &answer.headers,
                body,
                &storable,
                request_headers,
            ))),
            _ => {
                let (response, _bytes) = pass_through(answer, Served::Bypass);
                Err(NotStored::Pass(Mutex::new(Some(response))))
            }
        }
    }

    /// An uncached exchange, passed through.
    async fn bypass(
        &self,
        method: &Method,
        target: &str,
        upstream_headers: &HeaderMap,
        body: HttpBody,
    ) -> (Response, Outcome) {
        let exchange =
            self.inner
                .upstream
                .exchange(method, target, upstream_headers, body, |_, _| false, 0);
        match exchange.await {
            Ok(answer) => {
                let upstream = Some((answer.latency, status_outcome(answer.status)));
                let (response, body_bytes) = pass_through(answer, Served::Bypass);
                (response, Outcome::bypass(upstream, body_bytes))
            }
            Err(failed) => {
                let upstream = failed
                    .failure
                    .outcome()
                    .map(|outcome| (failed.elapsed, outcome));
                (
                    failure_response(failed.failure),
                    Outcome::bypass(upstream, 0),
                )
            }
        }
    }

    /// Any other method: passed through with its body (capped), then the path's entries are
    /// made unreachable.
    async fn write(
        &self,
        request: Request,
        target: &str,
        peer: Option<std::net::IpAddr>,
    ) -> (Response, Outcome) {
        let inner = &*self.inner;
        let cap = inner.config.max_request_body_bytes;
        let path = key::path_of(target).to_owned();
        if declared_length(request.headers()) > cap {
            return (
                failure_response(Failure::RequestTooLarge),
                Outcome::bypass(None, 0),
            );
        }
        let method = request.method().clone();
        let (parts, body) = request.into_parts();
        let (upstream_headers, traceparent) =
            headers::upstream_request_headers(parts.headers, peer);
        tracing::trace!(traceparent = ?traceparent, %target, "upstream write");
        let over_cap = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&over_cap);
        let limited = Limited::new(body, usize::try_from(cap).unwrap_or(usize::MAX))
            .map_err(move |error| {
                if error.is::<http_body_util::LengthLimitError>() {
                    flag.store(true, Ordering::Relaxed);
                }
                error
            })
            .boxed_unsync();
        inner.generations.bump(&path);
        if let Some(l2) = &inner.l2 {
            l2.invalidate(&path, false).await;
        }
        let (mut response, mut outcome) = self
            .bypass(&method, target, &upstream_headers, limited)
            .await;
        // An entry stored while the write was in flight carries the generation bumped
        // above: bump again so it is unreachable too; then tell the other instances.
        inner.generations.bump(&path);
        if let Some(l2) = &inner.l2 {
            l2.invalidate(&path, true).await;
        }
        if over_cap.load(Ordering::Relaxed) {
            response = failure_response(Failure::RequestTooLarge);
            outcome.upstream = None;
        }
        (response, outcome)
    }
}

/// A stored entry served to a client.
fn served_from(
    entry: &CachedResponse,
    served: Served,
    upstream: Option<(Duration, UpstreamOutcome)>,
    now: Instant,
) -> (Response, Outcome) {
    let outcome = Outcome {
        served,
        upstream,
        body_bytes: entry.body().len() as u64,
    };
    (entry.to_response(served, now), outcome)
}

impl Outcome {
    fn bypass(upstream: Option<(Duration, UpstreamOutcome)>, body_bytes: u64) -> Self {
        Self {
            served: Served::Bypass,
            upstream,
            body_bytes,
        }
    }
}

/// Whether an upstream status lets a stale entry be served instead (RFC 5861: 500–504).
fn is_upstream_error(status: StatusCode) -> bool {
    (500..=504).contains(&status.as_u16())
}

fn declared_length(headers: &HeaderMap) -> u64 {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse().ok())
        .unwrap_or(0)
}
