//! The demo's load: workers sending requests through the gateway for a set time, keys drawn
//! from a Zipf distribution, a share of them writes.
//!
//! Each worker keeps one HTTP/1 keep-alive connection to the server (a new one after an
//! error) and sends one request at a time: a `GET` of the key's document, or with
//! probability `write_ratio` a `PUT` of it. Key `k` (rank `k` in the Zipf order, so small
//! keys are the hot ones) is `/tws/plans/{k / 10}` when `k` is a multiple of ten, else
//! `/tws/jobs/{k}`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{header, HeaderValue, Method, Request};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// What to send, for how long.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Plan {
    /// The server.
    pub(crate) target: SocketAddr,
    /// How long to send for.
    pub(crate) duration: Duration,
    /// Workers, each with one request in flight.
    pub(crate) concurrency: usize,
    /// Distinct keys.
    pub(crate) keys: usize,
    /// The Zipf exponent of the key popularity.
    pub(crate) exponent: f64,
    /// The share of requests that are writes.
    pub(crate) write_ratio: f64,
}

/// Samples ranks `0..n` with probability proportional to `1 / (rank + 1)^exponent`, by
/// inverting the cumulative distribution with a binary search.
#[derive(Debug)]
pub(crate) struct Zipf {
    cumulative: Vec<f64>,
}

impl Zipf {
    /// The distribution over `n` keys (at least one).
    pub(crate) fn new(n: usize, exponent: f64) -> Self {
        let mut cumulative = Vec::with_capacity(n.max(1));
        let mut total = 0.0;
        for rank in 0..n.max(1) {
            total += 1.0 / ((rank + 1) as f64).powf(exponent);
            cumulative.push(total);
        }
        for value in &mut cumulative {
            *value /= total;
        }
        Self { cumulative }
    }

    /// One rank.
    pub(crate) fn sample(&self, rng: &mut impl Rng) -> u64 {
        let u: f64 = rng.gen();
        let rank = self.cumulative.partition_point(|&c| c < u);
        rank.min(self.cumulative.len() - 1) as u64
    }
}

/// The path of key `key`.
pub(crate) fn path_of(key: u64) -> String {
    if key % 10 == 0 {
        format!("/tws/plans/{}", key / 10)
    } else {
        format!("/tws/jobs/{key}")
    }
}

/// Counters the workers add to as they go (the progress bar reads them).
#[derive(Debug, Default)]
pub(crate) struct Tally {
    reads: AtomicU64,
    writes: AtomicU64,
    /// Answered with a 2xx.
    ok: AtomicU64,
    /// Answered otherwise, or not at all.
    errors: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    stale: AtomicU64,
    bypass: AtomicU64,
    body_bytes: AtomicU64,
    latency_nanos: AtomicU64,
}

/// A [`Tally`] read at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    /// `GET`s sent.
    pub(crate) reads: u64,
    /// Writes sent.
    pub(crate) writes: u64,
    /// Requests answered with a 2xx.
    pub(crate) ok: u64,
    /// Requests answered otherwise, or failed.
    pub(crate) errors: u64,
    /// `X-Cache: HIT` answers.
    pub(crate) hits: u64,
    /// `X-Cache: MISS` answers.
    pub(crate) misses: u64,
    /// `X-Cache: STALE` answers.
    pub(crate) stale: u64,
    /// `X-Cache: BYPASS` answers.
    pub(crate) bypass: u64,
    /// Response body bytes received.
    pub(crate) body_bytes: u64,
    /// Summed request latency, in nanoseconds.
    pub(crate) latency_nanos: u64,
}

impl Totals {
    /// Requests sent.
    pub(crate) fn requests(&self) -> u64 {
        self.reads + self.writes
    }

    /// `(HIT + STALE) / (HIT + STALE + MISS)`: the share of cacheable answers that came from
    /// the cache (the gateway's own hit rate counts the same way).
    pub(crate) fn hit_rate(&self) -> Option<f64> {
        let from_cache = self.hits + self.stale;
        let cacheable = from_cache + self.misses;
        (cacheable > 0).then(|| from_cache as f64 / cacheable as f64)
    }

    /// Mean request latency.
    pub(crate) fn mean_latency(&self) -> Option<Duration> {
        let answered = self.ok + self.errors;
        (answered > 0).then(|| Duration::from_nanos(self.latency_nanos / answered))
    }
}

impl Tally {
    /// The counters now.
    pub(crate) fn totals(&self) -> Totals {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Totals {
            reads: load(&self.reads),
            writes: load(&self.writes),
            ok: load(&self.ok),
            errors: load(&self.errors),
            hits: load(&self.hits),
            misses: load(&self.misses),
            stale: load(&self.stale),
            bypass: load(&self.bypass),
            body_bytes: load(&self.body_bytes),
            latency_nanos: load(&self.latency_nanos),
        }
    }

    fn add(counter: &AtomicU64, value: u64) {
        counter.fetch_add(value, Ordering::Relaxed);
    }

    fn record(&self, answer: &Answer, took: Duration) {
        Self::add(
            &self.latency_nanos,
            u64::try_from(took.as_nanos()).unwrap_or(u64::MAX),
        );
        let Answer::Received {
            status,
            cache,
            body_bytes,
        } = answer
        else {
            Self::add(&self.errors, 1);
            return;
        };
        Self::add(
            if (200..300).contains(status) {
                &self.ok
            } else {
                &self.errors
            },
            1,
        );
        Self::add(&self.body_bytes, *body_bytes);
        let counter = match cache.as_deref() {
            Some("HIT") => &self.hits,
            Some("MISS") => &self.misses,
            Some("STALE") => &self.stale,
            Some("BYPASS") => &self.bypass,
            _ => return,
        };
        Self::add(counter, 1);
    }
}

/// How one request ended.
#[derive(Debug)]
enum Answer {
    Received {
        status: u16,
        cache: Option<String>,
        body_bytes: u64,
    },
    Failed,
}

/// Runs `plan` until its time is up or `stop` turns true; the final counts.
pub(crate) async fn run(plan: Plan, tally: Arc<Tally>, stop: watch::Receiver<bool>) -> Totals {
    let zipf = Arc::new(Zipf::new(plan.keys, plan.exponent));
    let deadline = Instant::now() + plan.duration;
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..plan.concurrency {
        let (zipf, tally, stop) = (Arc::clone(&zipf), Arc::clone(&tally), stop.clone());
        workers.spawn(async move {
            let mut rng = StdRng::seed_from_u64(worker as u64 + 1);
            let mut connection: Option<SendRequest<Full<Bytes>>> = None;
            while Instant::now() < deadline && !*stop.borrow() {
                let key = zipf.sample(&mut rng);
                let write = rng.gen_bool(plan.write_ratio.clamp(0.0, 1.0));
                Tally::add(if write { &tally.writes } else { &tally.reads }, 1);
                let started = Instant::now();
                let answer = send(&mut connection, plan.target, key, write).await;
                tally.record(&answer, started.elapsed());
                if matches!(answer, Answer::Failed) {
                    connection = None;
                    // A server that refuses connections is not asked again at once.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        });
    }
    while workers.join_next().await.is_some() {}
    tally.totals()
}

/// One request on the worker's connection (a new one when it has none).
async fn send(
    connection: &mut Option<SendRequest<Full<Bytes>>>,
    target: SocketAddr,
    key: u64,
    write: bool,
) -> Answer {
    if connection.as_ref().is_none_or(SendRequest::is_closed) {
        *connection = connect(target).await;
    }
    let Some(sender) = connection.as_mut() else {
        return Answer::Failed;
    };
    let (method, body) = if write {
        (Method::PUT, Bytes::from_static(br#"{"status":"HOLD"}"#))
    } else {
        (Method::GET, Bytes::new())
    };
    let request = Request::builder()
        .method(method)
        .uri(path_of(key))
        .header(header::HOST, target.to_string())
        .header(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )
        .body(Full::new(body));
    let Ok(request) = request else {
        return Answer::Failed;
    };
    if sender.ready().await.is_err() {
        return Answer::Failed;
    }
    let Ok(response) = sender.send_request(request).await else {
        return Answer::Failed;
    };
    let status = response.status().as_u16();
    let cache = response
        .headers()
        .get("x-cache")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    match response.into_body().collect().await {
        Ok(body) => Answer::Received {
            status,
            cache,
            body_bytes: body.to_bytes().len() as u64,
        },
        Err(_) => Answer::Failed,
    }
}

async fn connect(target: SocketAddr) -> Option<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(target).await.ok()?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .ok()?;
    tokio::spawn(async move {
        // Ends when the sender is dropped or the server closes; either is fine here.
        let _ = connection.await;
    });
    Some(sender)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipf_favours_small_ranks_and_stays_in_range() {
        let zipf = Zipf::new(1000, 0.99);
        let mut rng = StdRng::seed_from_u64(7);
        let draws: Vec<u64> = (0..20_000).map(|_| zipf.sample(&mut rng)).collect();
        assert!(draws.iter().all(|&rank| rank < 1000));
        let top_ten = draws.iter().filter(|&&rank| rank < 10).count();
        let last_hundred = draws.iter().filter(|&&rank| rank >= 900).count();
        // Zipf 0.99 over 1000 keys: the top 10 take ~39 %, the last 100 ~1.4 %.
        assert!(
            top_ten > 6_000 && last_hundred < 600,
            "{top_ten} {last_hundred}"
        );
    }

    #[test]
    fn keys_map_to_plans_and_jobs() {
        assert_eq!(path_of(0), "/tws/plans/0");
        assert_eq!(path_of(30), "/tws/plans/3");
        assert_eq!(path_of(31), "/tws/jobs/31");
    }

    #[test]
    fn the_hit_rate_counts_only_cache_lookups() {
        let totals = Totals {
            hits: 3,
            misses: 1,
            bypass: 10,
            ..Totals::default()
        };
        assert_eq!(totals.hit_rate(), Some(0.75));
        assert_eq!(Totals::default().hit_rate(), None);
    }
}
