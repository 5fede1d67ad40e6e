//! A minimal HTTP/1 client for the upstream's tests: one hyper `client::conn` connection,
//! plain or TLS, whose end the test can wait for.

#![allow(dead_code, unreachable_pub)] // reason: each test binary uses a different part.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// Generous bound for anything the tests wait for on a loaded machine.
pub const BOUND: Duration = Duration::from_secs(60);

/// One client connection.
pub struct Client {
    host: String,
    sender: SendRequest<Full<Bytes>>,
    connection: JoinHandle<hyper::Result<()>>,
}

/// A whole response.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|value| value.to_str().expect("ascii"))
    }

    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .get_all(name)
            .iter()
            .map(|value| value.to_str().expect("ascii"))
            .collect()
    }

    pub fn serial(&self) -> u64 {
        self.header(test_support::upstream::SERIAL_HEADER)
            .expect("a serial header")
            .parse()
            .expect("a number")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

impl Client {
    /// A plain connection to `addr`.
    pub async fn connect(addr: SocketAddr) -> std::io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        Self::over(stream, addr.to_string()).await
    }

    /// A TLS connection to `addr` checking the certificate against `server_name`.
    pub async fn connect_tls(
        addr: SocketAddr,
        config: rustls::ClientConfig,
        server_name: &str,
    ) -> std::io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        let name = rustls::pki_types::ServerName::try_from(server_name.to_owned())
            .map_err(std::io::Error::other)?;
        let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, stream)
            .await?;
        Self::over(stream, format!("{server_name}:{}", addr.port())).await
    }

    async fn over<T>(io: T, host: String) -> std::io::Result<Self>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(std::io::Error::other)?;
        Ok(Self {
            host,
            sender,
            connection: tokio::spawn(connection),
        })
    }

    /// `GET path` with the Host header and the given extra headers.
    pub async fn get(&mut self, path: &str) -> hyper::Result<Answer> {
        self.send(Method::GET, path, &[], Bytes::new()).await
    }

    /// One request; the whole response.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> hyper::Result<Answer> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, &self.host);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(body)).expect("a valid request");
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    /// Sends a request and returns the response's head and body stream as they come.
    pub async fn send_streaming(
        &mut self,
        path: &str,
    ) -> hyper::Result<hyper::Response<hyper::body::Incoming>> {
        let request = Request::get(path)
            .header(hyper::header::HOST, &self.host)
            .body(Full::new(Bytes::new()))
            .expect("a valid request");
        self.sender.ready().await?;
        self.sender.send_request(request).await
    }

    /// Waits until the server closed the connection.
    pub async fn closed(self) {
        let ended = tokio::time::timeout(BOUND, self.connection)
            .await
            .expect("the connection ends within the bound");
        assert!(ended.expect("the connection task joins").is_ok());
    }

    /// Whether the connection can still carry requests.
    pub fn is_open(&self) -> bool {
        !self.sender.is_closed()
    }
}

/// A plain `GET path` on a new connection.
pub async fn get(addr: SocketAddr, path: &str) -> Answer {
    let mut client = tokio::time::timeout(BOUND, Client::connect(addr))
        .await
        .expect("bounded")
        .expect("connects");
    tokio::time::timeout(BOUND, client.get(path))
        .await
        .expect("bounded")
        .expect("answered")
}
