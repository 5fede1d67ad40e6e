//! The HTTP pool as a caching gateway uses it, against real hyper servers on loopback:
//! streamed request bodies, the response timeout, owned checkouts that outlive the code that
//! took them, stale keep-alive connections and the fresh connection a retry takes, and the
//! checkout that makes no validation round trip.
//!
//! The response timeout and the owned checkouts run against test-support's `TestUpstream`
//! (an answer that never comes, a body that never ends). The other tests need what that one
//! does not do, and run against the `Upstream` below: it reports a request body's progress
//! as it streams in, counts the connections it accepted, closes every connection while still
//! listening, and drops a request without an answer; and it runs on its own runtime thread,
//! so that a test on a current-thread runtime can have it close a connection while the
//! client side has not yet run to notice.

mod common;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use resync_pool_optimizer::{
    empty_body, full_body, Error, HttpBody, HttpManager, MonitoredPool, PoolConfig,
};
use resync_resource_manager::ResourceTracker;
use test_support::{Reply, TestUpstream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use common::answered_path;
use common::wait::WAIT_BOUND as BOUND;

/// test-support's upstream with `GET /hang` never answered and `GET /trickle` sending its
/// head and one body chunk, then nothing; anything else answers `200` with the JSON object
/// naming the request.
async fn test_upstream() -> TestUpstream {
    let upstream = TestUpstream::start().await.expect("the upstream starts");
    upstream.set_reply("/hang", Reply::new().hang());
    upstream.set_reply("/trickle", Reply::new().endless());
    upstream
}

/// A hyper HTTP/1 server on 127.0.0.1, on a runtime of its own.
///
/// `POST /echo` answers with the request body it read (frame by frame, counting the bytes
/// in `received` as they arrive) and `x-chunked: true|false`; `GET /abort` closes the
/// connection without an answer (the service fails); anything else is `200 ok <path>`.
struct Upstream {
    addr: SocketAddr,
    state: Arc<State>,
    runtime: Option<tokio::runtime::Runtime>,
}

struct State {
    /// Connections accepted.
    accepted: AtomicUsize,
    /// Request-body bytes `/echo` has read so far (all requests).
    received: watch::Sender<usize>,
    /// The connections' tasks, for `close_connections`.
    connections: Mutex<Vec<JoinHandle<()>>>,
}

async fn answer(
    request: Request<Incoming>,
    state: Arc<State>,
) -> Result<Response<Full<Bytes>>, std::io::Error> {
    let path = request.uri().path().to_owned();
    match path.as_str() {
        "/echo" => {
            let chunked = request
                .headers()
                .get(hyper::header::TRANSFER_ENCODING)
                .is_some_and(|value| value == "chunked");
            let mut body = request.into_body();
            let mut read = Vec::new();
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(std::io::Error::other)?;
                if let Ok(data) = frame.into_data() {
                    read.extend_from_slice(&data);
                    state.received.send_modify(|total| *total += data.len());
                }
            }
            let mut response = Response::new(Full::new(Bytes::from(read)));
            response.headers_mut().insert(
                "x-chunked",
                hyper::header::HeaderValue::from_static(if chunked { "true" } else { "false" }),
            );
            Ok(response)
        }
        "/abort" => Err(std::io::Error::other(
            "the upstream gives up on this request",
        )),
        _ => Ok(Response::new(Full::new(Bytes::from(format!("ok {path}"))))),
    }
}

impl Upstream {
    fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("upstream runtime");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(State {
            accepted: AtomicUsize::new(0),
            received: watch::Sender::new(0),
            connections: Mutex::new(Vec::new()),
        });
        let accepting = Arc::clone(&state);
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                accepting.accepted.fetch_add(1, Ordering::SeqCst);
                let state = Arc::clone(&accepting);
                let connection = tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        answer(request, Arc::clone(&state))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                let mut connections = accepting.connections.lock().expect("not poisoned");
                connections.retain(|task| !task.is_finished());
                connections.push(connection);
            }
        });
        Self {
            addr,
            state,
            runtime: Some(runtime),
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn accepted(&self) -> usize {
        self.state.accepted.load(Ordering::SeqCst)
    }

    /// Closes every open connection (as an upstream closing idle keep-alive connections
    /// does) and returns once their sockets are closed. Blocks the calling thread instead of
    /// awaiting, so that a current-thread test runtime runs nothing meanwhile.
    fn close_connections(&self) {
        let (done, closed) = std::sync::mpsc::channel();
        let state = Arc::clone(&self.state);
        self.runtime().spawn(async move {
            let tasks = std::mem::take(&mut *state.connections.lock().expect("not poisoned"));
            for task in &tasks {
                task.abort();
            }
            for task in tasks {
                // Aborted: the task's end drops (closes) its socket.
                let _ = task.await;
            }
            let _ = done.send(());
        });
        closed
            .recv_timeout(BOUND)
            .expect("the upstream closes its connections");
    }

    /// Waits until `/echo` has read at least `bytes` request-body bytes in all.
    async fn wait_received(&self, bytes: usize) {
        let mut received = self.state.received.subscribe();
        tokio::time::timeout(BOUND, received.wait_for(|&total| total >= bytes))
            .await
            .expect("bounded")
            .expect("the upstream lives");
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime.as_ref().expect("until dropped")
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn config() -> PoolConfig {
    PoolConfig {
        min_size: 0,
        max_size: 2,
        connect_timeout: Duration::from_secs(5),
        acquire_timeout: Some(Duration::from_secs(5)),
        ..PoolConfig::http()
    }
}

fn pool(manager: HttpManager, tracker: &ResourceTracker) -> MonitoredPool<HttpManager> {
    MonitoredPool::new("tws", config(), manager, tracker).expect("valid")
}

/// A request body fed chunk by chunk from a channel: a stream, not a buffer.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|chunk| Ok(Frame::data(chunk))))
    }
}

async fn bounded<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(BOUND, future)
        .await
        .unwrap_or_else(|_| panic!("{what}: not within {BOUND:?}"))
}

async fn read_body(response: Response<Incoming>) -> Bytes {
    bounded("body", response.into_body().collect())
        .await
        .expect("body")
        .to_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_request_body_reaches_the_upstream_intact() {
    let upstream = Upstream::start();
    let manager = HttpManager::new(&upstream.url(), None).expect("manager");
    let pool = pool(manager, &ResourceTracker::new());
    let mut conn = bounded("checkout", pool.get_owned()).await.expect("get");

    // 1 MiB in 64 chunks of a pattern that shows any lost, doubled or reordered byte.
    let chunks: Vec<Bytes> = (0..64u32)
        .map(|i| {
            Bytes::from(
                (0..16 * 1024u32)
                    .map(|j| ((i * 7 + j * 13) % 251) as u8)
                    .collect::<Vec<u8>>(),
            )
        })
        .collect();
    let expected: Vec<u8> = chunks.iter().flatten().copied().collect();
    let (chunk_tx, chunk_rx) = mpsc::channel(1);
    // The way a gateway forwards a client's body (an axum `Body` converts the same way).
    let body: HttpBody = ChannelBody(chunk_rx).map_err(Into::into).boxed_unsync();
    let request = conn
        .request(Method::POST, "/echo")
        .body(body)
        .expect("request");

    let first_len = chunks[0].len();
    let feeding = {
        let chunks = chunks.clone();
        let (seen_first_tx, seen_first_rx) = oneshot::channel::<()>();
        let feeder = tokio::spawn(async move {
            let mut chunks = chunks.into_iter();
            chunk_tx
                .send(chunks.next().expect("64 chunks"))
                .await
                .expect("hyper reads the body");
            // The rest only once the upstream has read the first: the body streams, it is
            // not collected before the request goes out.
            seen_first_rx
                .await
                .expect("the test saw the first chunk arrive");
            for chunk in chunks {
                chunk_tx.send(chunk).await.expect("hyper reads the body");
            }
        });
        (feeder, seen_first_tx)
    };
    let exchange = tokio::spawn(async move {
        let response = conn.send(request).await;
        (conn, response)
    });
    upstream.wait_received(first_len).await;
    assert_eq!(
        *upstream.state.received.borrow(),
        first_len,
        "the upstream has the first chunk before the second exists"
    );
    let (feeder, seen_first_tx) = feeding;
    seen_first_tx.send(()).expect("the feeder waits");
    let (mut conn, response) = bounded("exchange", exchange).await.expect("joined");
    let response = response.expect("echo");
    bounded("feeder", feeder).await.expect("fed");
    assert_eq!(response.headers()["x-chunked"], "true", "sent chunked");
    let echoed = read_body(response).await;
    assert_eq!(echoed.len(), expected.len());
    assert!(echoed == expected, "the upstream read the body intact");

    // A body from memory, on the same kept-alive connection.
    let request = conn
        .request(Method::POST, "/echo")
        .body(full_body("hello upstream"))
        .expect("request");
    let response = bounded("send", conn.send(request)).await.expect("echo");
    assert_eq!(response.headers()["x-chunked"], "false");
    assert_eq!(read_body(response).await, "hello upstream");
    drop(conn);
    assert_eq!(upstream.accepted(), 1);
    assert_eq!(pool.metrics().created, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exchange_past_the_response_timeout_fails_with_response_timeout() {
    let upstream = test_upstream().await;
    let limit = Duration::from_millis(200);
    let manager = HttpManager::new(&upstream.url(), None)
        .expect("manager")
        .with_response_timeout(limit);
    let pool = pool(manager, &ResourceTracker::new());

    // `send`: no head in time.
    let mut conn = bounded("checkout", pool.get()).await.expect("get");
    assert_eq!(conn.response_timeout(), Some(limit));
    let request = conn
        .request(Method::GET, "/hang")
        .body(empty_body())
        .expect("request");
    let started = Instant::now();
    let result = bounded("send", conn.send(request)).await;
    let elapsed = started.elapsed();
    match result {
        Err(Error::ResponseTimeout(after)) => assert_eq!(after, limit),
        other => panic!("expected a response timeout: {other:?}"),
    }
    assert!(elapsed >= limit, "{elapsed:?}");
    let error = Error::ResponseTimeout(limit);
    assert!(!error.is_stale_connection(), "it may have been processed");
    assert_eq!(error.to_string(), "no response within 200ms");
    drop(conn);
    // The connection, its request still in flight, is discarded on return.
    let metrics = pool.metrics();
    assert_eq!(metrics.broken, 1, "{metrics:?}");
    assert_eq!(metrics.closed_broken, 1);

    // `get`: the head arrives, the body does not end in time.
    let mut conn = bounded("checkout", pool.get()).await.expect("get");
    let started = Instant::now();
    let result = bounded("get", conn.get("/trickle")).await;
    assert!(
        matches!(result, Err(Error::ResponseTimeout(after)) if after == limit),
        "{result:?}"
    );
    assert!(started.elapsed() >= limit);
    // `send` returns with the head; the body is the caller's to bound.
    drop(conn);
    let mut conn = bounded("checkout", pool.get()).await.expect("get");
    let request = conn
        .request(Method::GET, "/trickle")
        .body(empty_body())
        .expect("request");
    let response = bounded("send", conn.send(request))
        .await
        .expect("the head comes at once");
    assert!(response.status().is_success());
    drop(response);
    conn.report_error();
    drop(conn);

    // The pool is not the worse for it: a fresh connection answers.
    let mut conn = bounded("checkout", pool.get()).await.expect("get");
    let body = bounded("get", conn.get("/after")).await.expect("get");
    assert_eq!(answered_path(body.body()), "/after");
    let metrics = pool.metrics();
    assert_eq!(metrics.connect_failures, 0, "{metrics:?}");
    assert_eq!(
        metrics.created, 4,
        "each timed-out or reported connection replaced"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owned_checkout_in_a_spawned_task_is_in_use_and_leak_tracked_at_this_line() {
    let upstream = test_upstream().await;
    let tracker = ResourceTracker::new();
    let config = PoolConfig {
        leak_threshold: Duration::from_millis(50),
        ..config()
    };
    let manager = HttpManager::new(&upstream.url(), None).expect("manager");
    let pool = MonitoredPool::new("owned", config, manager, &tracker).expect("valid");
    let scanner = tracker.spawn_leak_scanner(Duration::from_millis(10));

    let line = line!() + 1;
    let conn = bounded("checkout", pool.get_owned()).await.expect("get");
    let (release_tx, release_rx) = oneshot::channel::<()>();
    let (streaming_tx, streaming_rx) = oneshot::channel::<()>();
    // The guard travels with the response body into a task that outlives this scope.
    let holder = tokio::spawn(async move {
        let mut conn = conn;
        let request = conn
            .request(Method::GET, "/trickle")
            .body(empty_body())
            .expect("request");
        let response = conn.send(request).await.expect("head");
        let mut body = response.into_body();
        let first = body.frame().await.expect("a frame").expect("data");
        assert_eq!(first.into_data().expect("data"), "first chunk");
        streaming_tx.send(()).expect("the test waits");
        release_rx.await.expect("released");
        // The body never ended: the connection cannot serve again.
        conn.report_error();
        drop(body);
        drop(conn);
    });
    bounded("streaming", streaming_rx).await.expect("streaming");
    let metrics = pool.metrics();
    assert_eq!(metrics.in_use, 1, "{metrics:?}");
    assert_eq!(metrics.acquires, 1);
    assert_eq!(metrics.hold_time.count(), 0, "still held");

    let started = Instant::now();
    while pool.metrics().leaked == 0 {
        assert!(started.elapsed() < BOUND, "no leak reported");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let leaks: Vec<_> = tracker
        .leaks()
        .into_iter()
        .filter(|leak| leak.label == "owned")
        .collect();
    assert_eq!(leaks.len(), 1);
    let expected = format!("{}:{line}:", file!());
    assert!(
        leaks[0].acquired_at.starts_with(&expected),
        "{} vs {expected}",
        leaks[0].acquired_at
    );

    release_tx.send(()).expect("the holder waits");
    bounded("holder", holder).await.expect("joined");
    let metrics = pool.metrics();
    assert_eq!(metrics.in_use, 0, "{metrics:?}");
    assert_eq!(metrics.leaked, 0, "a return uncounts at once");
    assert_eq!(metrics.hold_time.count(), 1);
    assert_eq!(metrics.caller_errors, 1);
    assert_eq!(metrics.closed_broken, 1);
    scanner.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owned_checkouts_fail_as_get_does() {
    let upstream = test_upstream().await;
    let config = PoolConfig {
        max_size: 1,
        acquire_timeout: Some(Duration::from_millis(100)),
        ..config()
    };
    let manager = HttpManager::new(&upstream.url(), None).expect("manager");
    let pool = MonitoredPool::new("small", config.clone(), manager, &ResourceTracker::new())
        .expect("valid");
    let held = bounded("checkout", pool.get_owned()).await.expect("get");
    let result = bounded("exhausted", pool.get_owned()).await;
    assert!(matches!(result, Err(Error::Exhausted { .. })), "{result:?}");
    // A fresh connection does not wait for a free one.
    let mut fresh = bounded("fresh", pool.get_fresh_owned())
        .await
        .expect("a fresh connection");
    assert!(fresh.is_fresh() && !held.is_fresh());
    let response = bounded("get", fresh.get("/fresh")).await.expect("get");
    assert_eq!(answered_path(response.body()), "/fresh");
    let metrics = pool.metrics();
    assert_eq!(metrics.in_use, 2, "{metrics:?}");
    assert_eq!(metrics.exhaustions, 1);
    drop(held);
    // The pool is full again: the fresh connection is closed, not kept.
    drop(fresh);
    let metrics = pool.metrics();
    assert_eq!(metrics.in_use, 0, "{metrics:?}");
    assert_eq!(metrics.connections, 1);
    assert_eq!(metrics.created, 2);
    assert_eq!(metrics.connect_attempts, 2);
    assert_eq!(metrics.hold_time.count(), 2);

    // Nothing listens: both fail fast as unavailable, with the connect error.
    let refused = test_support::RefusedPort::reserve().expect("a refused port");
    let manager =
        HttpManager::new(&format!("http://127.0.0.1:{}", refused.port()), None).expect("manager");
    let down = MonitoredPool::new("down", config, manager, &ResourceTracker::new()).expect("valid");
    let result = bounded("unavailable", down.get_owned()).await;
    assert!(
        matches!(result, Err(Error::Unavailable { .. })),
        "{result:?}"
    );
    let result = bounded("unavailable", down.get_fresh_owned()).await;
    assert!(
        matches!(result, Err(Error::Unavailable { .. })),
        "{result:?}"
    );
    let metrics = down.metrics();
    assert!(metrics.connect_failures >= 2, "{metrics:?}");
    assert_eq!(metrics.unavailable, 2);
    assert_eq!(metrics.acquires, 0);
}

/// Checks out a kept-alive connection: one that has carried a response already.
async fn kept_alive(
    pool: &MonitoredPool<HttpManager>,
) -> resync_pool_optimizer::OwnedPoolConnection<HttpManager> {
    let mut conn = bounded("checkout", pool.get_owned()).await.expect("get");
    let response = bounded("get", conn.get("/first")).await.expect("get");
    assert_eq!(response.body(), "ok /first");
    conn
}

/// The gateway's retry: after a stale failure, report the connection and send again on a
/// fresh one, which serves and then joins the pool.
async fn retry_on_a_fresh_connection(
    pool: &MonitoredPool<HttpManager>,
    upstream: &Upstream,
    error: &Error,
) {
    assert!(error.is_stale_connection(), "{error}");
    let mut fresh = bounded("fresh", pool.get_fresh_owned())
        .await
        .expect("a fresh connection");
    assert!(fresh.is_fresh());
    let response = bounded("retry", fresh.get("/retry")).await.expect("retry");
    assert_eq!(response.body(), "ok /retry");
    drop(fresh);
    assert_eq!(upstream.accepted(), 2);
    let metrics = pool.metrics();
    assert_eq!(metrics.connect_attempts, 2, "{metrics:?}");
    assert_eq!(metrics.created, 2);
    assert_eq!(metrics.caller_errors, 1);
    assert_eq!(metrics.closed_broken, 1);
    assert_eq!(metrics.acquires, 2);
    assert_eq!(metrics.in_use, 0);
    assert_eq!(
        metrics.connections, 1,
        "the fresh connection joined the pool"
    );
    // ... and serves the next checkout.
    let mut conn = bounded("checkout", pool.get()).await.expect("get");
    let response = bounded("get", conn.get("/again")).await.expect("get");
    assert_eq!(response.body(), "ok /again");
    assert_eq!(pool.metrics().created, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_alive_connection_closed_by_the_upstream_is_stale() {
    let upstream = Upstream::start();
    let manager = HttpManager::new(&upstream.url(), None).expect("manager");
    let pool = pool(manager, &ResourceTracker::new());
    let mut conn = kept_alive(&pool).await;
    upstream.close_connections();
    // Wait until hyper has seen the close (a checkout would now reject the connection).
    let started = Instant::now();
    while !conn.is_closed() {
        assert!(started.elapsed() < BOUND, "hyper never saw the close");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let request = conn
        .request(Method::GET, "/second")
        .body(empty_body())
        .expect("request");
    let error = bounded("send", conn.send(request))
        .await
        .expect_err("the connection is closed");
    conn.report_error();
    drop(conn);
    retry_on_a_fresh_connection(&pool, &upstream, &error).await;
}

/// The race a gateway meets: the upstream closes an idle keep-alive connection just as a
/// request goes out on it. On a current-thread runtime the client's connection task does not
/// run between the close and the send, so hyper has not seen the close when the request is
/// handed to it.
#[tokio::test(flavor = "current_thread")]
async fn a_request_racing_the_upstreams_close_is_stale() {
    let upstream = Upstream::start();
    let manager = HttpManager::new(&upstream.url(), None).expect("manager");
    let pool = pool(manager, &ResourceTracker::new());
    let mut conn = kept_alive(&pool).await;
    upstream.close_connections();
    assert!(
        !conn.is_closed(),
        "the client side has not run since the close"
    );
    let request = conn
        .request(Method::GET, "/second")
        .body(empty_body())
        .expect("request");
    let error = bounded("send", conn.send(request))
        .await
        .expect_err("the connection is closed");
    conn.report_error();
    drop(conn);
    retry_on_a_fresh_connection(&pool, &upstream, &error).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_closing_a_new_connection_without_an_answer_is_not_stale() {
    let upstream = Upstream::start();
    let manager = HttpManager::new(&upstream.url(), None).expect("manager");
    let pool = pool(manager, &ResourceTracker::new());
    // The upstream read the request on a connection that carried nothing before, then
    // closed it without answering: the request may have been processed.
    let mut conn = bounded("checkout", pool.get()).await.expect("get");
    let error = bounded("get", conn.get("/abort"))
        .await
        .expect_err("no answer");
    assert!(matches!(error, Error::Backend(_)), "{error:?}");
    assert!(!error.is_stale_connection(), "{error}");
    conn.report_error();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_checkout_makes_no_validation_round_trip() {
    let upstream = Upstream::start();
    let manager = HttpManager::new(&upstream.url(), None).expect("manager");
    let pool = pool(manager, &ResourceTracker::new());
    assert_eq!(pool.config().validation_skip_window, Duration::MAX);
    for i in 0..5 {
        let mut conn = bounded("checkout", pool.get()).await.expect("get");
        let path = format!("/round/{i}");
        let response = bounded("get", conn.get(&path)).await.expect("get");
        assert_eq!(response.body(), &format!("ok {path}"));
    }
    for _ in 0..3 {
        let conn = bounded("checkout", pool.get_owned()).await.expect("get");
        drop(conn);
    }
    let metrics = pool.metrics();
    assert_eq!(metrics.acquires, 8, "{metrics:?}");
    assert_eq!(metrics.validations_run, 0, "no checkout made a round trip");
    assert_eq!(metrics.validations_skipped, 8);
    assert_eq!(metrics.validation_failures, 0);
    assert_eq!(
        metrics.created, 1,
        "one kept-alive connection served them all"
    );
    assert_eq!(upstream.accepted(), 1);
}
