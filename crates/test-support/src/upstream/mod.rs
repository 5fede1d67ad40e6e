//! [`TestUpstream`]: a real hyper HTTP/1 server on loopback whose answers a test controls —
//! per path prefix in code, or per request through the query string — and which records what
//! it received.
//!
//! Layout: the reply and its query overrides (`reply.rs`), the response body (`body.rs`),
//! the counters and the request log (`observe.rs`), the accept loop and the handler
//! (`serve.rs`); this file holds the public type and its builder.

mod body;
mod observe;
mod reply;
mod serve;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

pub use observe::RecordedRequest;
pub use reply::Reply;

use crate::TestCa;
use observe::Observations;
use serve::{Rules, Shared};

/// The response header carrying the request's serial number (from 1, per upstream).
pub const SERIAL_HEADER: &str = "x-upstream-serial";

/// How long [`TestUpstream::restart`] retries while another socket holds the port.
const RESTART_TIMEOUT: Duration = Duration::from_secs(30);

/// A hyper HTTP/1 server on 127.0.0.1 (a free port unless told otherwise), plain or TLS.
///
/// **Answers.** Each request is answered by the [`Reply`] of the longest path prefix set
/// with [`set_reply`](Self::set_reply), or by the default reply. The query string overrides
/// that rule per request, so a load tool needs no code: `?latency_ms=N&status=N&bytes=N`
/// `&close=1&max_age=N&header=Name:Value` (`header` repeatable; a malformed value is
/// answered `400`). Request bodies are read to their end whatever the method.
///
/// **Observation.** A request is counted and logged once its body has been read, before
/// its reply's latency: [`requests`](Self::requests), [`requests_for`](Self::requests_for),
/// [`request_log`](Self::request_log) (the last 1024 by default), and
/// [`wait_for_requests`](Self::wait_for_requests), which wakes on each request. For a process
/// that watches the upstream from outside (a load benchmark), the builder's
/// [`stats_path`](TestUpstreamBuilder::stats_path) serves the request count over HTTP.
///
/// **Faults.** [`stop`](Self::stop) closes the listener and every connection;
/// [`restart`](Self::restart) listens again on the same port. Dropping the value stops it.
///
/// ```
/// use std::time::Duration;
/// use test_support::{Reply, TestUpstream};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let upstream = TestUpstream::start().await.expect("upstream starts");
/// upstream.set_reply("/slow", Reply::new().latency(Duration::from_millis(5)));
/// upstream.set_reply("/down", Reply::new().status(503));
/// assert!(upstream.url().starts_with("http://127.0.0.1:"));
/// assert_eq!(upstream.requests(), 0);
/// # }
/// ```
pub struct TestUpstream {
    addr: SocketAddr,
    tls: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    running: Option<Running>,
}

/// Options for a [`TestUpstream`] before it starts.
#[must_use]
pub struct TestUpstreamBuilder {
    addr: SocketAddr,
    tls: Option<TlsAcceptor>,
    default_reply: Reply,
    request_log_capacity: usize,
    count_per_path: bool,
    stats_path: Option<String>,
}

/// The accept loop of a running upstream and the way to end it.
struct Running {
    shutdown: oneshot::Sender<()>,
    accept: JoinHandle<()>,
}

impl TestUpstream {
    /// Options: address, TLS, default reply, how much to record.
    pub fn builder() -> TestUpstreamBuilder {
        TestUpstreamBuilder {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: None,
            default_reply: Reply::new(),
            request_log_capacity: 1024,
            count_per_path: true,
            stats_path: None,
        }
    }

    /// A plain HTTP upstream on a free loopback port, answering [`Reply::new`] by default.
    ///
    /// # Errors
    ///
    /// When no loopback port can be bound.
    pub async fn start() -> io::Result<Self> {
        Self::builder().start().await
    }

    /// An HTTPS upstream on a free loopback port presenting `ca`'s server certificate.
    ///
    /// # Errors
    ///
    /// When no loopback port can be bound.
    pub async fn start_tls(ca: &TestCa) -> io::Result<Self> {
        Self::builder().tls(ca).start().await
    }

    /// The address it listens on.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, or `https://localhost:PORT` with TLS (the name the
    /// certificate is checked against).
    #[must_use]
    pub fn url(&self) -> String {
        match self.tls {
            None => format!("http://{}", self.addr),
            Some(_) => format!("https://localhost:{}", self.addr.port()),
        }
    }

    /// Answers requests whose path starts with `path_prefix` with `reply` (the longest
    /// matching prefix wins; setting a prefix again replaces its reply).
    pub fn set_reply(&self, path_prefix: impl Into<String>, reply: Reply) {
        serve::write(&self.shared.rules).set(path_prefix.into(), reply);
    }

    /// Answers requests no prefix matches with `reply`.
    pub fn set_default_reply(&self, reply: Reply) {
        serve::write(&self.shared.rules).default = Arc::new(reply);
    }

    /// Forgets every prefix's reply (the default reply stays).
    pub fn clear_replies(&self) {
        serve::write(&self.shared.rules).by_prefix.clear();
    }

    /// With `true`, every response says `Connection: close` and its connection is closed
    /// after it, whatever the reply.
    pub fn close_after_each_response(&self, close: bool) {
        self.shared
            .close_after_each_response
            .store(close, Ordering::Relaxed);
    }

    /// How many requests arrived (counted once each body was read), across restarts.
    #[must_use]
    pub fn requests(&self) -> u64 {
        self.shared.observations.requests()
    }

    /// How many requests arrived for exactly `path` (the query string not included).
    ///
    /// # Panics
    ///
    /// When the upstream was built with [`count_per_path(false)`](TestUpstreamBuilder::count_per_path).
    #[must_use]
    pub fn requests_for(&self, path: &str) -> u64 {
        self.shared.observations.requests_for(path)
    }

    /// The last requests received, oldest first (at most the builder's
    /// [`request_log_capacity`](TestUpstreamBuilder::request_log_capacity)).
    #[must_use]
    pub fn request_log(&self) -> Vec<RecordedRequest> {
        self.shared.observations.log()
    }

    /// The last request received, if any was logged.
    #[must_use]
    pub fn last_request(&self) -> Option<RecordedRequest> {
        self.shared.observations.last()
    }

    /// Waits until at least `requests` requests arrived in all, woken by each arrival, and
    /// returns the count then.
    ///
    /// # Errors
    ///
    /// Of kind [`io::ErrorKind::TimedOut`], saying how many arrived, after `timeout`.
    pub async fn wait_for_requests(&self, requests: u64, timeout: Duration) -> io::Result<u64> {
        self.shared.observations.wait_for(requests, timeout).await
    }

    /// Whether it is listening.
    #[must_use]
    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// Stops listening and closes every open connection; when it returns, the port is free
    /// and every connection is closed. The counters, the log and the replies are kept.
    pub async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            let _ = running.shutdown.send(());
            let _ = running.accept.await;
        }
    }

    /// Listens again on the same port (stopping first if running). While another socket
    /// holds the port (a client's connection given it as its local port, say), binding is
    /// retried for up to 30 s.
    ///
    /// # Errors
    ///
    /// When the port is still taken after 30 s, or binding fails otherwise.
    pub async fn restart(&mut self) -> io::Result<()> {
        self.stop().await;
        let started = Instant::now();
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(listener) => break listener,
                Err(error)
                    if error.kind() == io::ErrorKind::AddrInUse
                        && started.elapsed() < RESTART_TIMEOUT =>
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(error) => {
                    return Err(io::Error::new(
                        error.kind(),
                        format!("cannot listen again on {}: {error}", self.addr),
                    ))
                }
            }
        };
        self.serve(listener);
        Ok(())
    }

    fn serve(&mut self, listener: TcpListener) {
        let (shutdown, stopped) = oneshot::channel();
        let accept = serve::spawn_accept_loop(
            listener,
            self.tls.clone(),
            Arc::clone(&self.shared),
            stopped,
        );
        self.running = Some(Running { shutdown, accept });
    }
}

impl Drop for TestUpstream {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            // Aborting drops the loop's listener and its set of connections, which aborts
            // every connection.
            running.accept.abort();
        }
    }
}

impl fmt::Debug for TestUpstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestUpstream")
            .field("url", &self.url())
            .field("running", &self.is_running())
            .field("requests", &self.requests())
            .finish_non_exhaustive()
    }
}

impl TestUpstreamBuilder {
    /// Listens on `addr` (default `127.0.0.1:0`, a free port). Must be a loopback address.
    pub fn addr(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// Speaks HTTPS with `ca`'s server certificate.
    pub fn tls(mut self, ca: &TestCa) -> Self {
        self.tls = Some(ca.acceptor());
        self
    }

    /// Answers requests no prefix matches with `reply` (default [`Reply::new`]).
    pub fn default_reply(mut self, reply: Reply) -> Self {
        self.default_reply = reply;
        self
    }

    /// Keeps the last `capacity` requests in the log (default 1024; 0 keeps none and copies
    /// no headers, for load).
    pub fn request_log_capacity(mut self, capacity: usize) -> Self {
        self.request_log_capacity = capacity;
        self
    }

    /// Counts requests per path (default `true`; the map grows with every new path, so a
    /// long load run turns it off).
    pub fn count_per_path(mut self, count: bool) -> Self {
        self.count_per_path = count;
        self
    }

    /// Answers requests for exactly `path` (any method, the query string ignored) with the
    /// request count so far, `{"requests":N}`, at once and whatever the rules say, and does
    /// not count or log them. Default: no such path, every path is answered by its rule. For
    /// a process that watches the upstream from outside, such as a load benchmark reading
    /// how many requests a cache in front of it let through.
    pub fn stats_path(mut self, path: impl Into<String>) -> Self {
        self.stats_path = Some(path.into());
        self
    }

    /// Binds and starts serving.
    ///
    /// # Errors
    ///
    /// Of kind [`io::ErrorKind::InvalidInput`] for an address that is not loopback; any
    /// binding error.
    pub async fn start(self) -> io::Result<TestUpstream> {
        if !self.addr.ip().is_loopback() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a loopback address", self.addr),
            ));
        }
        let listener = TcpListener::bind(self.addr).await?;
        let mut upstream = TestUpstream {
            addr: listener.local_addr()?,
            tls: self.tls,
            shared: Arc::new(Shared {
                rules: RwLock::new(Rules {
                    default: Arc::new(self.default_reply),
                    by_prefix: Vec::new(),
                }),
                close_after_each_response: AtomicBool::new(false),
                observations: Observations::new(self.request_log_capacity, self.count_per_path),
                stats_path: self.stats_path,
            }),
            running: None,
        };
        upstream.serve(listener);
        Ok(upstream)
    }
}

impl fmt::Debug for TestUpstreamBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestUpstreamBuilder")
            .field("addr", &self.addr)
            .field("tls", &self.tls.is_some())
            .field("default_reply", &self.default_reply)
            .field("request_log_capacity", &self.request_log_capacity)
            .field("count_per_path", &self.count_per_path)
            .field("stats_path", &self.stats_path)
            .finish()
    }
}
