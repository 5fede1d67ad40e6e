//! The demo's **sample upstream**: a stand-in for the upstream API (`TWS_BASE_URL`) on a free
//! loopback port, answering JSON documents shaped like the upstream's plans and jobs.
//!
//! - `GET /` — what this server is (`"sample": true`); the HTTP pool's health probe asks it.
//! - `GET /plans/{id}`, `GET /jobs/{id}` — a plan or job document, padded with a `log` field
//!   to `--body-bytes`, after `--upstream-latency-ms`. No `Cache-Control`: the gateway keeps
//!   it for `ASYNC_CACHE_TTL`.
//! - `PUT`, `POST`, `PATCH` or `DELETE` of a document — a write: acknowledged after the same
//!   latency (the gateway then drops the path's cached answers).
//!
//! Every answer carries `X-Sample-Upstream: resync demo`, and its documents `"sample": true`.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The header every answer of the sample upstream carries.
pub(crate) const SAMPLE_HEADER: &str = "x-sample-upstream";

/// How the sample upstream answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shape {
    /// How long each answer takes.
    pub(crate) latency: Duration,
    /// The size a document is padded to (a document is never cut below its own fields).
    pub(crate) body_bytes: usize,
}

/// What the sample upstream has answered.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    reads: AtomicU64,
    writes: AtomicU64,
}

impl Counts {
    /// Documents read (`GET`).
    pub(crate) fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    /// Documents written.
    pub(crate) fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }
}

#[derive(Debug)]
struct Shared {
    shape: Shape,
    counts: Arc<Counts>,
    /// ASCII filler, `shape.body_bytes` long, sliced for each document's `log`.
    filler: String,
}

/// The running sample upstream; stopped by [`SampleUpstream::stop`] (or aborted when dropped).
#[derive(Debug)]
pub(crate) struct SampleUpstream {
    addr: SocketAddr,
    counts: Arc<Counts>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Drop for SampleUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SampleUpstream {
    /// Listens on a free loopback port and serves until stopped.
    pub(crate) async fn start(shape: Shape) -> std::io::Result<Self> {
        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
        let addr = listener.local_addr()?;
        let counts = Arc::new(Counts::default());
        let shared = Arc::new(Shared {
            shape,
            counts: Arc::clone(&counts),
            filler: filler(shape.body_bytes),
        });
        let router = Router::new()
            .route("/", get(about))
            .route("/{kind}/{id}", any(document))
            .fallback(unknown)
            .with_state(shared);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
        });
        tracing::info!(
            %addr,
            latency_ms = shape.latency.as_millis(),
            body_bytes = shape.body_bytes,
            "sample upstream listening: a stand-in for the upstream API (not a real one)"
        );
        Ok(Self {
            addr,
            counts,
            stop: Some(stop),
            task,
        })
    }

    /// `http://127.0.0.1:<port>`, for `TWS_BASE_URL`.
    pub(crate) fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What it has answered so far.
    pub(crate) fn counts(&self) -> &Counts {
        &self.counts
    }

    /// Stops accepting and waits (at most `deadline`) for the open exchanges to end.
    pub(crate) async fn stop(mut self, deadline: Duration) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if tokio::time::timeout(deadline, &mut self.task)
            .await
            .is_err()
        {
            self.task.abort();
        }
    }
}

/// `filler(n)`: `n` bytes of printable ASCII that need no JSON escaping.
fn filler(len: usize) -> String {
    const LINE: &str = "sample job output: step completed, return code 0; ";
    LINE.chars().cycle().take(len).collect()
}

fn with_sample_header(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::HeaderName::from_static(SAMPLE_HEADER),
        HeaderValue::from_static("resync demo"),
    );
    response
}

async fn about() -> Response {
    with_sample_header(
        Json(json!({
            "service": "resync demo sample upstream",
            "sample": true,
            "note": "a stand-in for the upstream API, started by `resync demo`; not a real upstream",
            "documents": ["/plans/{id}", "/jobs/{id}"],
        }))
        .into_response(),
    )
}

async fn unknown() -> Response {
    with_sample_header(
        (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": "no such document in the sample upstream", "sample": true })),
        )
            .into_response(),
    )
}

/// The kinds of document the sample upstream serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Plan,
    Job,
}

async fn document(
    State(shared): State<Arc<Shared>>,
    method: Method,
    Path((kind, id)): Path<(String, String)>,
    // Read to its end, so the connection stays usable for the next request.
    _body: Bytes,
) -> Response {
    let kind = match kind.as_str() {
        "plans" => Kind::Plan,
        "jobs" => Kind::Job,
        _ => return unknown().await,
    };
    let Ok(id) = id.parse::<u64>() else {
        return unknown().await;
    };
    if !shared.shape.latency.is_zero() {
        tokio::time::sleep(shared.shape.latency).await;
    }
    let response = match method {
        Method::GET | Method::HEAD => {
            shared.counts.reads.fetch_add(1, Ordering::Relaxed);
            let body = padded(fields(kind, id), &shared.filler);
            (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                body,
            )
                .into_response()
        }
        Method::PUT | Method::POST | Method::PATCH | Method::DELETE => {
            shared.counts.writes.fetch_add(1, Ordering::Relaxed);
            Json(json!({
                "kind": kind_name(kind),
                "id": document_id(kind, id),
                "updated": true,
                "sample": true,
            }))
            .into_response()
        }
        _ => StatusCode::METHOD_NOT_ALLOWED.into_response(),
    };
    with_sample_header(response)
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Plan => "plan",
        Kind::Job => "job",
    }
}

fn document_id(kind: Kind, id: u64) -> String {
    match kind {
        Kind::Plan => format!("PLAN-{id:04}"),
        Kind::Job => format!("JOB-{id:06}"),
    }
}

/// A plan or job document's own fields (the same for the same id every time).
fn fields(kind: Kind, id: u64) -> Map<String, Value> {
    const PLAN_STATUS: [&str; 3] = ["RUNNING", "COMPLETE", "WAITING"];
    const JOB_STATUS: [&str; 5] = ["SUCC", "EXEC", "HOLD", "ABEND", "READY"];
    let pick = |choices: &[&'static str]| {
        let index = usize::try_from(id % choices.len() as u64).unwrap_or(0);
        choices.get(index).copied().unwrap_or("UNKNOWN")
    };
    let value = match kind {
        Kind::Plan => json!({
            "kind": "plan",
            "id": document_id(kind, id),
            "name": format!("daily-plan-{id}"),
            "status": pick(&PLAN_STATUS),
            "jobCount": 20 + id % 30,
            "jobs": (0..5).map(|n| document_id(Kind::Job, id * 10 + n)).collect::<Vec<_>>(),
            "sample": true,
        }),
        Kind::Job => json!({
            "kind": "job",
            "id": document_id(kind, id),
            "name": format!("job-{id}"),
            "plan": document_id(Kind::Plan, id / 10),
            "workstation": format!("WS-{:02}", id % 16),
            "status": pick(&JOB_STATUS),
            "priority": id % 100,
            "sample": true,
        }),
    };
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// The document as JSON, with a `log` field of filler making it `filler.len()` bytes when
/// its own fields are shorter.
fn padded(mut fields: Map<String, Value>, filler: &str) -> String {
    let bare = Value::Object(fields.clone()).to_string();
    // `,"log":""` around the filler.
    let overhead = 9;
    let room = filler.len().saturating_sub(bare.len() + overhead);
    if room == 0 {
        return bare;
    }
    fields.insert(
        "log".to_owned(),
        Value::String(filler.get(..room).unwrap_or_default().to_owned()),
    );
    Value::Object(fields).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_padded_to_the_size_asked_for() {
        for size in [0, 100, 512, 2048, 65_536] {
            let body = padded(fields(Kind::Job, 1234), &filler(size));
            let parsed: Value = serde_json::from_str(&body).expect("valid JSON");
            assert_eq!(parsed["id"], "JOB-001234");
            assert_eq!(parsed["sample"], true);
            let bare = Value::Object(fields(Kind::Job, 1234)).to_string().len();
            assert_eq!(body.len(), size.max(bare), "size {size}");
        }
    }

    #[test]
    fn a_plan_names_its_jobs() {
        let plan = Value::Object(fields(Kind::Plan, 7));
        assert_eq!(plan["id"], "PLAN-0007");
        assert_eq!(plan["jobs"][0], "JOB-000070");
    }
}
