//! A real hyper HTTP/1 server on loopback that can close connections, stop and restart.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::body::{Body, Frame};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

/// Answers `GET /close` with `Connection: close`, `GET /fail` with 503, `GET /endless` with a
/// body that sends one chunk and never ends, and anything else with
/// `200 path=<path> host=<Host header>`.
pub struct TestHttpServer {
    addr: SocketAddr,
    tls: Option<TlsAcceptor>,
    accept: Option<JoinHandle<()>>,
}

/// A response body that sends one chunk and then never finishes.
pub struct Endless {
    sent: bool,
}

impl Body for Endless {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.sent {
            // Never woken: the body stays open until the connection is dropped.
            return std::task::Poll::Pending;
        }
        self.sent = true;
        std::task::Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"first chunk")))))
    }
}

type AnswerBody = Either<Full<Bytes>, Endless>;

async fn answer(request: Request<Incoming>) -> Result<Response<AnswerBody>, Infallible> {
    if request.uri().path() == "/endless" {
        return Ok(Response::new(Either::Right(Endless { sent: false })));
    }
    answer_full(request)
        .await
        .map(|response| response.map(Either::Left))
}

async fn answer_full(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_owned();
    let host = request
        .headers()
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let mut response = Response::new(Full::new(Bytes::from(format!("path={path} host={host}"))));
    match path.as_str() {
        "/close" => {
            response.headers_mut().insert(
                hyper::header::CONNECTION,
                hyper::header::HeaderValue::from_static("close"),
            );
        }
        "/fail" => *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE,
        _ => {}
    }
    Ok(response)
}

impl TestHttpServer {
    pub async fn start(tls: Option<rustls::ServerConfig>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut server = Self {
            addr,
            tls: tls.map(|config| TlsAcceptor::from(Arc::new(config))),
            accept: None,
        };
        server.serve(listener);
        server
    }

    fn serve(&mut self, listener: TcpListener) {
        let tls = self.tls.clone();
        self.accept = Some(tokio::spawn(async move {
            // Dropping this task (abort) drops the set, which aborts every connection.
            let mut connections = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let tls = tls.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(answer);
                    let builder = hyper::server::conn::http1::Builder::new();
                    match tls {
                        None => {
                            let _ = builder
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                let _ = builder
                                    .serve_connection(TokioIo::new(stream), service)
                                    .await;
                            }
                        }
                    }
                });
                while connections.try_join_next().is_some() {}
            }
        }));
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting and closes every open connection; waits until the port is free.
    pub async fn stop(&mut self) {
        if let Some(accept) = self.accept.take() {
            accept.abort();
            let _ = accept.await;
        }
    }

    /// Listens again on the same port. Another socket may hold the port for a moment (or
    /// take it meanwhile), so binding is retried for up to 30 s before failing with a clear
    /// message.
    pub async fn start_again(&mut self) {
        let started = std::time::Instant::now();
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(listener) => break listener,
                Err(_in_use) if started.elapsed() < std::time::Duration::from_secs(30) => {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                Err(error) => panic!(
                    "cannot listen again on {} after 30 s of retries (another process took the port?): {error}",
                    self.addr
                ),
            }
        };
        self.serve(listener);
    }
}

impl Drop for TestHttpServer {
    fn drop(&mut self) {
        if let Some(accept) = self.accept.take() {
            accept.abort();
        }
    }
}

/// A rustls server configuration for the PEM certificate and key.
pub fn server_tls(cert_pem: &str, key_pem: &str) -> rustls::ServerConfig {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .expect("cert pem");
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("key pem");
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("protocols")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server config")
}
