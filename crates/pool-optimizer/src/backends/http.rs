//! [`HttpManager`]: hyper 1 HTTP/1 client connections to one base URL, `https://` over rustls.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::client::conn::{http1, TrySendError};
use hyper::header::{HeaderValue, HOST};
use hyper::{Method, Request, Response, Uri};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::error::{Error, StaleConnection};
use crate::probe::HealthProbe;
use crate::tls::client_config;

/// The error type of [`HttpBody`]: any error a request body's source may fail with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The request body type of pooled HTTP connections: any body of [`Bytes`] frames, boxed, so
/// a request can stream its body (an incoming client request's, a channel's) as well as send
/// one from memory ([`full_body`], [`empty_body`]).
///
/// Any [`http_body::Body`](hyper::body::Body) with `Bytes` data whose error converts into a
/// [`BoxError`] becomes one with `body.map_err(Into::into).boxed_unsync()`
/// ([`BodyExt`](http_body_util::BodyExt)); an `axum::body::Body` does.
pub type HttpBody = UnsyncBoxBody<Bytes, BoxError>;

/// A request body of `bytes`, sent whole.
#[must_use]
pub fn full_body(bytes: impl Into<Bytes>) -> HttpBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// An empty request body.
#[must_use]
pub fn empty_body() -> HttpBody {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// HTTP/1 connections to one upstream (the original's TWS pool) for a
/// [`MonitoredPool`](crate::MonitoredPool).
///
/// Each connection is one keep-alive TCP (or TLS) connection driven by hyper 1. `has_broken`
/// is true once hyper has closed the connection (peer closed, `Connection: close`, I/O
/// error) or an exchange on it failed or timed out; with
/// [`PoolConfig::http`](crate::PoolConfig::http) that synchronous check is the whole checkout
/// validation (no round trip, no allocation). A connection is ready for the next request once
/// the previous response's body has been read to its end, so keep the guard (an
/// [`OwnedPoolConnection`](crate::OwnedPoolConnection) can outlive the handler) until then;
/// [`HttpConnection::send`] still waits, bounded by
/// [`with_ready_timeout`](Self::with_ready_timeout), for a connection that is not ready. The
/// health probe is a `GET` of a configurable path (default `/`) that must not answer 5xx.
pub struct HttpManager {
    host: String,
    port: u16,
    authority: HeaderValue,
    base_path: String,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    health_path: String,
    ready_timeout: Duration,
    response_timeout: Option<Duration>,
}

/// How long a connection may take to become ready for the next request by default.
const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(10);

impl HttpManager {
    /// A manager for `base_url` (`http://host[:port][/prefix]` or `https://…`). HTTPS trusts
    /// the system roots plus, when given, the certificates of `ca_file`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidUrl`] for an unusable URL, [`Error::Tls`] for an unusable CA file.
    pub fn new(base_url: &str, ca_file: Option<&Path>) -> Result<Self, Error> {
        let invalid = |reason: &str| Error::InvalidUrl {
            url: base_url.to_owned(),
            reason: reason.to_owned(),
        };
        let uri: Uri = base_url.parse().map_err(|_| invalid("not a URL"))?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(invalid("the scheme must be http or https")),
        };
        let host = uri.host().ok_or_else(|| invalid("no host"))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let authority = uri
            .authority()
            .ok_or_else(|| invalid("no host"))?
            .as_str()
            .rsplit('@')
            .next()
            .unwrap_or_default();
        let authority = HeaderValue::from_str(authority).map_err(|_| invalid("bad host"))?;
        let base_path = uri.path().trim_end_matches('/').to_owned();
        let tls = if https {
            let server_name = ServerName::try_from(host.clone())
                .map_err(|e| Error::Tls(format!("bad server name {host:?}: {e}")))?;
            let mut config = client_config(ca_file)?;
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Some((TlsConnector::from(Arc::new(config)), server_name))
        } else {
            None
        };
        Ok(Self {
            host,
            port,
            authority,
            base_path,
            tls,
            health_path: "/".to_owned(),
            ready_timeout: DEFAULT_READY_TIMEOUT,
            response_timeout: None,
        })
    }

    /// Sets how long a connection may take to become ready for the next request (10 s by
    /// default) in [`HttpConnection::send`] (and in bb8's `is_valid`, which a pool runs only
    /// with a finite `validation_skip_window`, unlike [`PoolConfig::http`](crate::PoolConfig::http)).
    /// A connection returned to the pool while a response body was still streaming is not
    /// ready until that body is read; past this limit the request fails (the connection is
    /// then discarded on return) instead of waiting without end.
    #[must_use]
    pub fn with_ready_timeout(mut self, limit: Duration) -> Self {
        self.ready_timeout = limit;
        self
    }

    /// Bounds every exchange on this manager's connections (none by default):
    /// [`HttpConnection::send`] waits at most `limit` for the response head once the
    /// connection is ready (writing the request body is part of that time), and
    /// [`HttpConnection::get`] for the head and the whole body. Past it the request fails with
    /// [`Error::ResponseTimeout`] and the connection, its exchange abandoned halfway (HTTP/1
    /// cannot cancel one request and keep the connection), is discarded on return. A caller streaming a body after `send` applies the rest of the deadline
    /// itself, from [`HttpConnection::response_timeout`].
    #[must_use]
    pub fn with_response_timeout(mut self, limit: Duration) -> Self {
        self.response_timeout = Some(limit);
        self
    }

    /// Sets the path the health probe requests (relative to the base URL).
    #[must_use]
    pub fn with_health_path(mut self, path: impl Into<String>) -> Self {
        self.health_path = path.into();
        self
    }
}

impl fmt::Debug for HttpManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpManager")
            .field("authority", &self.authority)
            .field("base_path", &self.base_path)
            .field("https", &self.tls.is_some())
            .field("health_path", &self.health_path)
            .field("ready_timeout", &self.ready_timeout)
            .field("response_timeout", &self.response_timeout)
            .finish()
    }
}

/// One pooled HTTP/1 connection to the manager's base URL.
pub struct HttpConnection {
    sender: http1::SendRequest<HttpBody>,
    authority: HeaderValue,
    base_path: String,
    ready_timeout: Duration,
    response_timeout: Option<Duration>,
    /// A response head has arrived on this connection: it is a kept-alive one now.
    reused: bool,
    /// An exchange failed or timed out: the connection is discarded when returned.
    failed: bool,
}

impl fmt::Debug for HttpConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpConnection")
            .field("authority", &self.authority)
            .field("closed", &self.sender.is_closed())
            .field("reused", &self.reused)
            .field("failed", &self.failed)
            .finish()
    }
}

impl HttpConnection {
    /// A request builder for `path_and_query` below the base URL, with `Host` set.
    #[must_use]
    pub fn request(&self, method: Method, path_and_query: &str) -> hyper::http::request::Builder {
        Request::builder()
            .method(method)
            .uri(format!("{}{path_and_query}", self.base_path))
            .header(HOST, self.authority.clone())
    }

    /// Sends `request` (its `Host` header is set when missing) once the connection can take
    /// it (waiting at most the manager's ready timeout), and returns the response with its
    /// body still streaming, waiting at most the manager's response timeout for its head.
    /// Read the body to its end before dropping the pool guard: until then the connection
    /// cannot take another request (an [`OwnedPoolConnection`](crate::OwnedPoolConnection)
    /// can travel with the body).
    ///
    /// # Errors
    ///
    /// [`Error::ResponseTimeout`] when the head did not arrive in time; [`Error::Backend`]
    /// when the connection is closed, not ready in time, or the exchange fails.
    /// [`Error::is_stale_connection`] tells the failures that provably left the request
    /// unprocessed (the connection was closed before the request went out, or a kept-alive
    /// connection was closed or reset before any response byte), which are safe to retry on
    /// a fresh connection ([`MonitoredPool::get_fresh_owned`](crate::MonitoredPool::get_fresh_owned)).
    /// After any error the connection is discarded when returned; report a connection error
    /// with [`PoolConnection::report_error`](crate::PoolConnection::report_error) to count it.
    pub async fn send(
        &mut self,
        mut request: Request<HttpBody>,
    ) -> Result<Response<Incoming>, Error> {
        if !request.headers().contains_key(HOST) {
            request.headers_mut().insert(HOST, self.authority.clone());
        }
        self.wait_ready().await?;
        match self.response_timeout {
            None => self.exchange(request).await,
            Some(limit) => match tokio::time::timeout(limit, self.exchange(request)).await {
                Ok(result) => result,
                Err(_elapsed) => Err(self.timed_out(limit)),
            },
        }
    }

    /// `GET path_and_query` with the whole body read, head and body within the manager's
    /// response timeout.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send), or when reading the body fails ([`Error::Backend`]) or does not
    /// end in time ([`Error::ResponseTimeout`]).
    pub async fn get(&mut self, path_and_query: &str) -> Result<Response<Bytes>, Error> {
        let request = self
            .request(Method::GET, path_and_query)
            .body(empty_body())
            .map_err(Error::backend)?;
        self.wait_ready().await?;
        let limit = self.response_timeout;
        let exchange = async {
            let response = self.exchange(request).await?;
            let (parts, body) = response.into_parts();
            match body.collect().await {
                Ok(body) => Ok(Response::from_parts(parts, body.to_bytes())),
                Err(error) => {
                    self.failed = true;
                    Err(Error::backend(error))
                }
            }
        };
        match limit {
            None => exchange.await,
            Some(limit) => match tokio::time::timeout(limit, exchange).await {
                Ok(result) => result,
                Err(_elapsed) => Err(self.timed_out(limit)),
            },
        }
    }

    /// The manager's response timeout (see
    /// [`HttpManager::with_response_timeout`]): what a caller streaming a response body after
    /// [`send`](Self::send) has as its whole deadline.
    #[must_use]
    pub fn response_timeout(&self) -> Option<Duration> {
        self.response_timeout
    }

    /// Whether hyper has closed the connection.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }

    /// Waits until the connection can take a request, at most the ready timeout.
    async fn wait_ready(&mut self) -> Result<(), Error> {
        let limit = self.ready_timeout;
        match tokio::time::timeout(limit, self.sender.ready()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(closed)) => {
                // hyper's only readiness error: the connection is closed, so the request never
                // left this side.
                self.failed = true;
                Err(Error::Backend(Arc::new(StaleConnection::new(closed))))
            }
            Err(_elapsed) => {
                self.failed = true;
                Err(Error::backend(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "connection not ready for a request within {limit:?} (an earlier response still streaming?)"
                    ),
                )))
            }
        }
    }

    /// Hands `request` to hyper and waits for the response head.
    async fn exchange(&mut self, request: Request<HttpBody>) -> Result<Response<Incoming>, Error> {
        let reused = self.reused;
        match self.sender.try_send_request(request).await {
            Ok(response) => {
                self.reused = true;
                Ok(response)
            }
            Err(error) => {
                self.failed = true;
                Err(send_error(error, reused))
            }
        }
    }

    /// The exchange ran out of time: the connection is left with a request in flight.
    #[cold]
    fn timed_out(&mut self, limit: Duration) -> Error {
        self.failed = true;
        Error::ResponseTimeout(limit)
    }
}

/// The error of a failed `try_send_request`, marked stale when the request provably was not
/// processed by the upstream: hyper gave it back unsent, it was canceled before it went out,
/// or the kept-alive connection (`reused`) was closed or reset before any response byte —
/// the upstream closed an idle connection just as the request was sent.
fn send_error(error: TrySendError<Request<HttpBody>>, reused: bool) -> Error {
    let unsent = error.message().is_some();
    let error = error.into_error();
    let stale = unsent
        || error.is_canceled()
        || (reused && (error.is_incomplete_message() || closed_by_peer(&error)));
    if stale {
        Error::Backend(Arc::new(StaleConnection::new(error)))
    } else {
        Error::backend(error)
    }
}

/// Whether an I/O error in `error`'s chain says the peer had closed the connection (a write
/// into a closed socket, or a reset).
fn closed_by_peer(error: &hyper::Error) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
            );
        }
        source = cause.source();
    }
    false
}

impl bb8::ManageConnection for HttpManager {
    type Connection = HttpConnection;
    type Error = Error;

    async fn connect(&self) -> Result<HttpConnection, Error> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(Error::backend)?;
        tcp.set_nodelay(true).map_err(Error::backend)?;
        let sender = match &self.tls {
            None => {
                let (sender, connection) = http1::handshake(TokioIo::new(tcp))
                    .await
                    .map_err(Error::backend)?;
                tokio::spawn(drive(connection));
                sender
            }
            Some((connector, server_name)) => {
                let tls = connector
                    .connect(server_name.clone(), tcp)
                    .await
                    .map_err(Error::backend)?;
                let (sender, connection) = http1::handshake(TokioIo::new(tls))
                    .await
                    .map_err(Error::backend)?;
                tokio::spawn(drive(connection));
                sender
            }
        };
        Ok(HttpConnection {
            sender,
            authority: self.authority.clone(),
            base_path: self.base_path.clone(),
            ready_timeout: self.ready_timeout,
            response_timeout: self.response_timeout,
            reused: false,
            failed: false,
        })
    }

    /// Waits (bounded) until the connection can take a request. Runs only for a pool with a
    /// finite `validation_skip_window`; [`PoolConfig::http`](crate::PoolConfig::http) relies on
    /// `has_broken` alone.
    async fn is_valid(&self, conn: &mut HttpConnection) -> Result<(), Error> {
        conn.wait_ready().await
    }

    fn has_broken(&self, conn: &mut HttpConnection) -> bool {
        conn.failed || conn.sender.is_closed()
    }
}

impl HealthProbe for HttpManager {
    async fn probe(&self, conn: &mut HttpConnection) -> Result<(), Error> {
        let response = conn.get(&self.health_path).await?;
        if response.status().is_server_error() {
            return Err(Error::backend(std::io::Error::other(format!(
                "GET {} answered {}",
                self.health_path,
                response.status()
            ))));
        }
        Ok(())
    }
}

/// Runs a connection until it closes; its end is seen by `has_broken`.
async fn drive<T>(connection: http1::Connection<T, HttpBody>)
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send,
{
    if let Err(error) = connection.await {
        tracing::debug!(%error, "http connection ended with an error");
    }
}
