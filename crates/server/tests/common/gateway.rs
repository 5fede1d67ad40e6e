//! The application in process on loopback, in front of a test upstream, and a plain HTTP/1
//! client for it.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)] // reason: shared by several test files.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper::header::HeaderMap;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use resync_server::app::App;
use resync_server::settings::Settings;
use test_support::TestUpstream;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Every wait gives up after this long (a loaded 2-core machine is slow).
pub const BOUND: Duration = Duration::from_secs(60);

/// Settings for a gateway in front of `upstream_url`, with small pools and no other backend.
pub fn settings(upstream_url: &str) -> Settings {
    Settings {
        tws_base_url: upstream_url.to_owned(),
        database_url: String::new(),
        redis_url: String::new(),
        http_pool_min_size: 1,
        http_pool_max_size: 16,
        bind_addr: "127.0.0.1:0".to_owned(),
        ..Settings::default()
    }
}

/// The composed application served on a loopback port.
pub struct Gateway {
    pub app: App,
    pub addr: SocketAddr,
    server: JoinHandle<()>,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// One answer as the client saw it.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    /// A header as text ("" when absent).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
    }

    /// `X-Cache`.
    pub fn cache(&self) -> &str {
        self.header("x-cache")
    }

    /// The upstream's serial number of the response (which upstream request produced it).
    pub fn serial(&self) -> u64 {
        self.header(test_support::upstream::SERIAL_HEADER)
            .parse()
            .unwrap_or(0)
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

impl Gateway {
    /// Builds the application from `settings` and serves it.
    pub async fn start(settings: &Settings) -> Self {
        settings.validate().unwrap();
        let app = App::build(settings).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let service = app
            .router()
            .into_make_service_with_connect_info::<SocketAddr>();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, service).await;
        });
        Self { app, addr, server }
    }

    /// In front of `upstream` with the test settings changed by `tweak`.
    pub async fn before(upstream: &TestUpstream, tweak: impl FnOnce(&mut Settings)) -> Self {
        let mut settings = settings(&upstream.url());
        tweak(&mut settings);
        Self::start(&settings).await
    }

    /// Sends one request on a new connection and reads the whole answer.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Answer {
        let stream = TcpStream::connect(self.addr).await.unwrap();
        let (mut sender, connection) = http1::handshake(TokioIo::new(stream)).await.unwrap();
        tokio::spawn(connection);
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.addr.to_string());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(body.into())).unwrap();
        let response = tokio::time::timeout(BOUND, sender.send_request(request))
            .await
            .expect("an answer within the bound")
            .unwrap();
        let (parts, body) = response.into_parts();
        let body = tokio::time::timeout(BOUND, body.collect())
            .await
            .expect("a body within the bound")
            .unwrap()
            .to_bytes();
        Answer {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        }
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Answer {
        self.send(Method::GET, path, &[], Bytes::new()).await
    }

    /// `GET path` with headers.
    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Answer {
        self.send(Method::GET, path, headers, Bytes::new()).await
    }
}
