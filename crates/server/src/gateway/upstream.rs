//! One exchange with the upstream through the HTTP pool: checkout, send (a GET or HEAD that
//! failed on a stale keep-alive connection is retried once on a fresh connection), the
//! response head, and its body — read whole when it may be cached and fits the cap,
//! streamed otherwise — all within `TWS_READ_TIMEOUT`.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::header::{self, HeaderMap};
use axum::http::{Method, Response, StatusCode};
use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use resync_perf_api::UpstreamOutcome;
use resync_pool_optimizer::{
    empty_body, BoxError, Error as PoolError, HttpBody, HttpManager, MonitoredPool,
    OwnedPoolConnection,
};
use tokio::time::{Instant, Sleep};

use super::headers::strip_hop_by_hop;

/// A checked-out upstream connection that stays checked out while its body streams.
type Connection = OwnedPoolConnection<HttpManager>;

/// Why an exchange produced no response from the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No connection could be made (502, at once).
    Unreachable,
    /// The exchange broke mid-way (502).
    Failed,
    /// No complete answer within `TWS_READ_TIMEOUT` (504).
    TimedOut,
    /// Every pooled connection stayed in use for the acquire timeout (503 + `Retry-After`).
    Exhausted,
    /// The request body passed `GATEWAY_MAX_REQUEST_BODY_BYTES` (413).
    RequestTooLarge,
}

impl Failure {
    fn from_pool(error: &PoolError) -> Self {
        match error {
            PoolError::Exhausted { .. } => Self::Exhausted,
            PoolError::Unavailable { .. } | PoolError::ConnectTimeout(_) => Self::Unreachable,
            PoolError::ResponseTimeout(_) => Self::TimedOut,
            _ => Self::Failed,
        }
    }

    /// The status the client gets.
    #[must_use]
    pub fn status(self) -> StatusCode {
        match self {
            Self::Unreachable | Self::Failed => StatusCode::BAD_GATEWAY,
            Self::TimedOut => StatusCode::GATEWAY_TIMEOUT,
            Self::Exhausted => StatusCode::SERVICE_UNAVAILABLE,
            Self::RequestTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        }
    }

    /// The machine-readable code of the JSON error.
    #[must_use]
    pub fn code(self) -> &'static str {
        match self {
            Self::Unreachable => "upstream_unreachable",
            Self::Failed => "upstream_failed",
            Self::TimedOut => "upstream_timeout",
            Self::Exhausted => "upstream_pool_exhausted",
            Self::RequestTooLarge => "request_body_too_large",
        }
    }

    /// A message for the client, without internal error text.
    #[must_use]
    pub fn message(self) -> &'static str {
        match self {
            Self::Unreachable => "the upstream API cannot be reached",
            Self::Failed => "the upstream API broke off the exchange",
            Self::TimedOut => "the upstream API did not answer in time",
            Self::Exhausted => "every upstream connection is busy; retry shortly",
            Self::RequestTooLarge => "the request body is larger than the gateway accepts",
        }
    }

    /// How the failure shows in the gateway's metrics.
    #[must_use]
    pub fn outcome(self) -> Option<UpstreamOutcome> {
        match self {
            Self::Unreachable => Some(UpstreamOutcome::Unreachable),
            Self::Failed => Some(UpstreamOutcome::Failed),
            Self::TimedOut => Some(UpstreamOutcome::TimedOut),
            Self::Exhausted => Some(UpstreamOutcome::Exhausted),
            // The client's fault: the upstream was not at fault.
            Self::RequestTooLarge => None,
        }
    }
}

/// A failed exchange and how long it took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failed {
    /// What went wrong.
    pub failure: Failure,
    /// From the start of the exchange to the failure.
    pub elapsed: Duration,
}

/// A connection that is discarded (reported broken) unless the exchange on it finished: a
/// timeout or a client that went away leaves a request or a body half done on it.
struct Exchanging(Option<Connection>);

impl Exchanging {
    fn get(&mut self) -> &mut Connection {
        // Only `finish` takes the connection, and it consumes `self`.
        self.0
            .as_mut()
            .expect("the connection is present until finish")
    }

    fn finish(mut self) -> Option<Connection> {
        self.0.take()
    }
}

impl Drop for Exchanging {
    fn drop(&mut self) {
        if let Some(connection) = &mut self.0 {
            connection.report_error();
        }
    }
}

/// What the upstream answered.
#[derive(Debug)]
pub struct Answer {
    /// Its status.
    pub status: StatusCode,
    /// Its end-to-end headers.
    pub headers: HeaderMap,
    /// Its body.
    pub body: AnswerBody,
    /// From checkout to the response head.
    pub latency: Duration,
}

/// The body of an [`Answer`].
#[derive(Debug)]
pub enum AnswerBody {
    /// Read whole.
    Complete(Bytes),
    /// Still streaming from the upstream (its connection stays checked out until the end).
    Streaming(Box<UpstreamBody>),
}

/// The HTTP pool and the exchange's time bound.
#[derive(Clone)]
pub struct Upstream {
    pool: MonitoredPool<HttpManager>,
    read_timeout: Duration,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("pool", &self.pool.name())
            .field("read_timeout", &self.read_timeout)
            .finish()
    }
}

impl Upstream {
    /// Exchanges through `pool`, each bounded by `read_timeout`.
    #[must_use]
    pub fn new(pool: MonitoredPool<HttpManager>, read_timeout: Duration) -> Self {
        Self { pool, read_timeout }
    }

    /// The bound on one exchange.
    #[must_use]
    pub fn read_timeout(&self) -> Duration {
        self.read_timeout
    }

    /// Sends a request and returns the response head with the connection, within
    /// `deadline`. A GET or HEAD whose send failed on a stale keep-alive connection is sent
    /// once more on a fresh connection.
    async fn send(
        &self,
        method: &Method,
        target: &str,
        headers: &HeaderMap,
        body: HttpBody,
    ) -> Result<(Response<Incoming>, Exchanging), Failure> {
        let retryable = matches!(*method, Method::GET | Method::HEAD);
        let request = |connection: &Connection, body: HttpBody| {
            let mut request = connection
                .request(method.clone(), target)
                .body(body)
                .map_err(|_| Failure::Failed)?;
            request
                .headers_mut()
                .extend(headers.iter().map(|(n, v)| (n.clone(), v.clone())));
            Ok::<_, Failure>(request)
        };
        let mut connection = Exchanging(Some(
            self.pool
                .get_owned()
                .await
                .map_err(|e| Failure::from_pool(&e))?,
        ));
        let first = request(connection.get(), body)?;
        match connection.get().send(first).await {
            Ok(response) => return Ok((response, connection)),
            Err(error) if retryable && error.is_stale_connection() => {
                tracing::debug!(%error, "stale keep-alive connection; retrying on a fresh one");
            }
            Err(error) => {
                tracing::debug!(%error, "upstream exchange failed");
                return Err(Failure::from_pool(&error));
            }
        }
        drop(connection);
        let mut fresh = Exchanging(Some(
            self.pool
                .get_fresh_owned()
                .await
                .map_err(|e| Failure::from_pool(&e))?,
        ));
        let second = request(fresh.get(), empty_body())?;
        match fresh.get().send(second).await {
            Ok(response) => Ok((response, fresh)),
            Err(error) => {
                tracing::debug!(%error, "upstream exchange failed on a fresh connection");
                Err(Failure::from_pool(&error))
            }
        }
    }

    /// One exchange. The body is read whole when `cacheable` says the head may be stored
    /// and it fits `max_body_bytes`; otherwise (or once it outgrows the cap) it streams.
    /// The whole exchange — checkout, head and body — is bounded by the read timeout.
    ///
    /// # Errors
    ///
    /// The [`Failure`] that ended it.
    pub async fn exchange(
        &self,
        method: &Method,
        target: &str,
        headers: &HeaderMap,
        body: HttpBody,
        cacheable: impl FnOnce(StatusCode, &HeaderMap) -> bool,
        max_body_bytes: u64,
    ) -> Result<Answer, Failed> {
        let started = Instant::now();
        let failed = |failure| Failed {
            failure,
            elapsed: started.elapsed(),
        };
        let deadline = started + self.read_timeout;
        let head = tokio::time::timeout_at(deadline, self.send(method, target, headers, body));
        let (response, connection) = match head.await {
            Ok(Ok(sent)) => sent,
            Ok(Err(failure)) => return Err(failed(failure)),
            Err(_elapsed) => return Err(failed(Failure::TimedOut)),
        };
        let latency = started.elapsed();
        let (parts, mut incoming) = response.into_parts();
        let mut headers = parts.headers;
        strip_hop_by_hop(&mut headers);
        if !cacheable(parts.status, &headers) {
            let body = UpstreamBody::new(VecDeque::new(), incoming, connection.finish(), deadline);
            return Ok(Answer {
                status: parts.status,
                headers,
                body: AnswerBody::Streaming(Box::new(body)),
                latency,
            });
        }
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
        let read = tokio::time::timeout_at(
            deadline,
            read_capped(&mut incoming, max_body_bytes, declared),
        );
        let body = match read.await {
            Err(_elapsed) => return Err(failed(Failure::TimedOut)),
            Ok(Err(error)) => {
                tracing::debug!(%error, "upstream body broke off");
                return Err(failed(Failure::Failed));
            }
            Ok(Ok(Capped::Whole(body))) => {
                drop(connection.finish());
                AnswerBody::Complete(body)
            }
            Ok(Ok(Capped::Over(prefix))) => AnswerBody::Streaming(Box::new(UpstreamBody::new(
                prefix,
                incoming,
                connection.finish(),
                deadline,
            ))),
        };
        Ok(Answer {
            status: parts.status,
            headers,
            body,
            latency,
        })
    }
}

/// A body read up to a cap.
enum Capped {
    /// All of it, in one allocation of exactly its length.
    Whole(Bytes),
    /// It passed the cap: the chunks read so far.
    Over(VecDeque<Bytes>),
}

async fn read_capped(
    incoming: &mut Incoming,
    cap: u64,
    declared: Option<u64>,
) -> Result<Capped, hyper::Error> {
    use http_body_util::BodyExt;
    let mut whole: Vec<u8> =
        Vec::with_capacity(usize::try_from(declared.unwrap_or(0).min(cap)).unwrap_or(0));
    while let Some(frame) = incoming.frame().await {
        let Ok(data) = frame?.into_data() else {
            // Trailers are not forwarded.
            continue;
        };
        if (whole.len() + data.len()) as u64 > cap {
            let mut prefix = VecDeque::with_capacity(2);
            if !whole.is_empty() {
                prefix.push_back(Bytes::from(whole));
            }
            prefix.push_back(data);
            return Ok(Capped::Over(prefix));
        }
        whole.extend_from_slice(&data);
    }
    Ok(Capped::Whole(Bytes::from(whole.into_boxed_slice())))
}

/// An upstream body streamed to the client: the chunks already read, then the rest, with
/// the connection checked out until the end and the exchange's deadline still running.
pub struct UpstreamBody {
    prefix: VecDeque<Bytes>,
    incoming: Incoming,
    connection: Option<Connection>,
    deadline: Pin<Box<Sleep>>,
    done: bool,
}

impl std::fmt::Debug for UpstreamBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamBody")
            .field("buffered_chunks", &self.prefix.len())
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl UpstreamBody {
    fn new(
        prefix: VecDeque<Bytes>,
        incoming: Incoming,
        connection: Option<Connection>,
        deadline: Instant,
    ) -> Self {
        Self {
            prefix,
            incoming,
            connection,
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
            done: false,
        }
    }

    /// Returns the connection: cleanly after the last byte, reported broken otherwise.
    fn release(&mut self, clean: bool) {
        self.done = true;
        if let Some(mut connection) = self.connection.take() {
            if !clean {
                connection.report_error();
            }
        }
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        // A client that went away leaves the rest of the body unread on the connection.
        // A body whose end was announced (`is_end_stream`) was read whole, though: hyper
        // stops polling a body that says it has ended, so it never saw `None`.
        if !self.done {
            let finished = self.prefix.is_empty() && self.incoming.is_end_stream();
            self.release(finished);
        }
    }
}

/// The body passed the exchange's deadline.
#[derive(Debug, thiserror::Error)]
#[error("the upstream body did not finish within the read timeout")]
struct BodyTimedOut;

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Some(chunk) = this.prefix.pop_front() {
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        if this.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.incoming).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) => {
                    if this.incoming.is_end_stream() {
                        // The last chunk: the connection can go back now.
                        this.release(true);
                    }
                    Poll::Ready(Some(Ok(Frame::data(data))))
                }
                // Trailers are not forwarded; ask for the next frame.
                Err(_trailers) => {
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
            },
            Poll::Ready(Some(Err(error))) => {
                this.release(false);
                Poll::Ready(Some(Err(error.into())))
            }
            Poll::Ready(None) => {
                this.release(true);
                Poll::Ready(None)
            }
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    this.release(false);
                    Poll::Ready(Some(Err(Box::new(BodyTimedOut))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_empty() && (self.done || self.incoming.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        let buffered: u64 = self.prefix.iter().map(|chunk| chunk.len() as u64).sum();
        let rest = self.incoming.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(rest.lower() + buffered);
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper + buffered);
        }
        hint
    }
}
