//! [`HttpManager`]: hyper 1 HTTP/1 client connections to one base URL, `https://` over rustls.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper::header::{HeaderValue, HOST};
use hyper::{Method, Request, Response, Uri};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::error::Error;
use crate::probe::HealthProbe;
use crate::tls::client_config;

/// The request body type of pooled HTTP connections.
pub type HttpBody = Full<Bytes>;

/// HTTP/1 connections to one upstream (the original's TWS pool) for a
/// [`MonitoredPool`](crate::MonitoredPool).
///
/// Each connection is one keep-alive TCP (or TLS) connection driven by hyper 1. `has_broken`
/// is true once hyper has closed the connection (peer closed, `Connection: close`, I/O
/// error); the checkout validation waits (bounded) until the connection can take a request —
/// a local check, so [`PoolConfig::http`](crate::PoolConfig::http) validates every checkout. The health
/// probe is a `GET` of a configurable path (default `/`) that must not answer 5xx.
pub struct HttpManager {
    host: String,
    port: u16,
    authority: HeaderValue,
    base_path: String,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    health_path: String,
    ready_timeout: Duration,
}

/// How long a connection may take to become ready for the next request by default.
const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Waits until `sender` can take a request, at most `limit`.
async fn ready(sender: &mut http1::SendRequest<HttpBody>, limit: Duration) -> Result<(), Error> {
    match tokio::time::timeout(limit, sender.ready()).await {
        Ok(ready) => ready.map_err(Error::backend),
        Err(_elapsed) => Err(Error::backend(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!(
                "connection not ready for a request within {limit:?} (an earlier response still streaming?)"
            ),
        ))),
    }
}

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
        })
    }

    /// Sets how long a connection may take to become ready for the next request (10 s by
    /// default) — in checkout validation and in [`HttpConnection::send`]. A connection
    /// returned to the pool while a response body was still streaming is not ready until
    /// that body is read; past this limit it is rejected instead of waited for without end.
    #[must_use]
    pub fn with_ready_timeout(mut self, limit: Duration) -> Self {
        self.ready_timeout = limit;
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
            .finish()
    }
}

/// One pooled HTTP/1 connection to the manager's base URL.
pub struct HttpConnection {
    sender: http1::SendRequest<HttpBody>,
    authority: HeaderValue,
    base_path: String,
    ready_timeout: Duration,
}

impl fmt::Debug for HttpConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpConnection")
            .field("authority", &self.authority)
            .field("closed", &self.sender.is_closed())
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
    /// body still streaming. Read the body before dropping the pool guard: until then the
    /// connection cannot take another request.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`] when the connection is closed, not ready in time, or the exchange
    /// fails; report it with
    /// [`PoolConnection::report_error`](crate::PoolConnection::report_error).
    pub async fn send(
        &mut self,
        mut request: Request<HttpBody>,
    ) -> Result<Response<Incoming>, Error> {
        if !request.headers().contains_key(HOST) {
            request.headers_mut().insert(HOST, self.authority.clone());
        }
        ready(&mut self.sender, self.ready_timeout).await?;
        self.sender
            .send_request(request)
            .await
            .map_err(Error::backend)
    }

    /// `GET path_and_query` with the whole body read.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send), or when reading the body fails.
    pub async fn get(&mut self, path_and_query: &str) -> Result<Response<Bytes>, Error> {
        let request = self
            .request(Method::GET, path_and_query)
            .body(HttpBody::default())
            .map_err(Error::backend)?;
        let response = self.send(request).await?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map_err(Error::backend)?.to_bytes();
        Ok(Response::from_parts(parts, body))
    }

    /// Whether hyper has closed the connection.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }
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
        })
    }

    async fn is_valid(&self, conn: &mut HttpConnection) -> Result<(), Error> {
        ready(&mut conn.sender, self.ready_timeout).await
    }

    fn has_broken(&self, conn: &mut HttpConnection) -> bool {
        conn.sender.is_closed()
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
