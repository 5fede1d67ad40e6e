//! The accept loop and the request handler: hyper 1, HTTP/1, one task per connection.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue, CONNECTION, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use super::body::ReplyBody;
use super::observe::Observations;
use super::reply::{BodyKind, Reply};

/// The header carrying a response's request serial number.
const SERIAL_HEADER: HeaderName = HeaderName::from_static(super::SERIAL_HEADER);

/// What every connection of one upstream shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) rules: RwLock<Rules>,
    pub(crate) close_after_each_response: AtomicBool,
    pub(crate) observations: Observations,
    /// The path answered with the request count (not counted itself), if any.
    pub(crate) stats_path: Option<String>,
}

/// The default reply and the per-prefix ones, longest prefix first.
#[derive(Debug)]
pub(crate) struct Rules {
    pub(crate) default: Arc<Reply>,
    pub(crate) by_prefix: Vec<(String, Arc<Reply>)>,
}

impl Rules {
    /// The reply of the longest prefix of `path`, or the default.
    fn reply_for(&self, path: &str) -> Arc<Reply> {
        self.by_prefix
            .iter()
            .find(|(prefix, _)| path.starts_with(prefix.as_str()))
            .map_or(&self.default, |(_, reply)| reply)
            .clone()
    }

    /// Sets the reply of `prefix`, keeping the longest prefixes first.
    pub(crate) fn set(&mut self, prefix: String, reply: Reply) {
        self.by_prefix.retain(|(existing, _)| *existing != prefix);
        let at = self
            .by_prefix
            .partition_point(|(existing, _)| existing.len() >= prefix.len());
        self.by_prefix.insert(at, (prefix, Arc::new(reply)));
    }
}

/// Serves `listener` until `shutdown` fires (or its sender is dropped); then closes the
/// listener and every connection before the task ends.
pub(crate) fn spawn_accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    mut shutdown: oneshot::Receiver<()>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        // Dropping this set (when the task is aborted) aborts every connection too.
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        connections.spawn(serve_connection(stream, tls.clone(), Arc::clone(&shared)));
                    }
                    // Out of descriptors, say: let connections finish before trying again.
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                },
            }
            while connections.try_join_next().is_some() {}
        }
        drop(listener);
        connections.shutdown().await;
    })
}

async fn serve_connection(stream: TcpStream, tls: Option<TlsAcceptor>, shared: Arc<Shared>) {
    // Responses go out in one write; Nagle's delay would only add latency.
    let _ = stream.set_nodelay(true);
    let service = hyper::service::service_fn(move |request| answer(Arc::clone(&shared), request));
    let http = hyper::server::conn::http1::Builder::new();
    match tls {
        None => {
            let _ = http.serve_connection(TokioIo::new(stream), service).await;
        }
        Some(acceptor) => {
            if let Ok(stream) = acceptor.accept(stream).await {
                let _ = http.serve_connection(TokioIo::new(stream), service).await;
            }
        }
    }
}

/// Reads the request's body to its end, records the request, and answers per its rule and
/// query string; a request for the stats path is answered with the count instead.
async fn answer(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<ReplyBody>, Infallible> {
    let (parts, body) = request.into_parts();
    let Ok(body) = body
        .collect()
        .await
        .map(http_body_util::Collected::to_bytes)
    else {
        // The client went away mid-body: nobody reads an answer.
        return Ok(plain(StatusCode::BAD_REQUEST, "the request body broke off"));
    };
    if shared.stats_path.as_deref() == Some(parts.uri.path()) {
        return Ok(stats(&shared.observations));
    }
    let serial = shared.observations.record(&parts, body.len());
    let rule = read(&shared.rules).reply_for(parts.uri.path());
    let overridden;
    let reply = match parts.uri.query().map(|query| rule.overridden_by(query)) {
        None | Some(Ok(None)) => &*rule,
        Some(Ok(Some(reply))) => {
            overridden = reply;
            &overridden
        }
        Some(Err(message)) => return Ok(plain(StatusCode::BAD_REQUEST, &message)),
    };
    if !reply.latency.is_zero() {
        tokio::time::sleep(reply.latency).await;
    }
    let body = match &reply.body {
        BodyKind::Generated { filler } => {
            let path_and_query = parts.uri.path_and_query().map_or_else(
                || parts.uri.path(),
                |path_and_query| path_and_query.as_str(),
            );
            ReplyBody::generated(
                serial,
                parts.method.as_str(),
                path_and_query,
                filler.as_ref(),
            )
        }
        BodyKind::Endless => ReplyBody::endless(),
        BodyKind::Echo => ReplyBody::full(body),
        BodyKind::Hang => std::future::pending().await,
    };

    let mut response = Response::new(body);
    *response.status_mut() = reply.status;
    let headers = response.headers_mut();
    headers.insert(SERIAL_HEADER, HeaderValue::from(serial));
    if !reply.headers.iter().any(|(name, _)| name == CONTENT_TYPE) {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    for (name, value) in &reply.headers {
        headers.append(name.clone(), value.clone());
    }
    if reply.close_connection || shared.close_after_each_response.load(Ordering::Relaxed) {
        // hyper closes the connection after a response that says so.
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    Ok(response)
}

/// `{"requests":N}`: how many requests were counted so far.
fn stats(observations: &Observations) -> Response<ReplyBody> {
    let body = format!("{{\"requests\":{}}}\n", observations.requests());
    let mut response = Response::new(ReplyBody::full(Bytes::from(body)));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn plain(status: StatusCode, message: &str) -> Response<ReplyBody> {
    let mut response = Response::new(ReplyBody::full(Bytes::from(format!("{message}\n"))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Reads `rules`, also after a panic elsewhere while they were written (each write is one
/// whole assignment, so they are never half-made).
pub(crate) fn read(rules: &RwLock<Rules>) -> std::sync::RwLockReadGuard<'_, Rules> {
    rules
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Writes `rules`, also after a panic elsewhere (see [`read`]).
pub(crate) fn write(rules: &RwLock<Rules>) -> std::sync::RwLockWriteGuard<'_, Rules> {
    rules
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_matching_prefix_wins() {
        let mut rules = Rules {
            default: Arc::new(Reply::new()),
            by_prefix: Vec::new(),
        };
        rules.set("/a".to_owned(), Reply::new().status(201));
        rules.set("/a/b/c".to_owned(), Reply::new().status(203));
        rules.set("/a/b".to_owned(), Reply::new().status(202));
        let status = |rules: &Rules, path: &str| rules.reply_for(path).status.as_u16();
        assert_eq!(status(&rules, "/a/b/c/d"), 203);
        assert_eq!(status(&rules, "/a/b/x"), 202);
        assert_eq!(status(&rules, "/a"), 201);
        assert_eq!(status(&rules, "/b"), 200);
        rules.set("/a/b".to_owned(), Reply::new().status(204));
        assert_eq!(
            status(&rules, "/a/b/x"),
            204,
            "a prefix set again replaces its reply"
        );
        assert_eq!(rules.by_prefix.len(), 3);
    }
}
