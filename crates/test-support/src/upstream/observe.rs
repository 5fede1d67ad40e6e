//! What the upstream saw: a request counter that can be waited on, per-path counts, and a
//! bounded log of the last requests.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use hyper::http::request::Parts;
use hyper::{HeaderMap, Method};
use tokio::sync::watch;

/// One request as the upstream received it.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// The request's serial number (from 1), as sent back in `x-upstream-serial`.
    pub serial: u64,
    /// The method.
    pub method: Method,
    /// The path and query of the request line, e.g. `/items/1?x=2`.
    pub path_and_query: String,
    /// Every header received, hop-by-hop ones included.
    pub headers: HeaderMap,
    /// The length of the body, read to its end.
    pub body_len: usize,
}

impl RecordedRequest {
    /// The first value of the header `name` as text, if present and visible ASCII.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }
}

/// The counters and the log, shared by every connection.
#[derive(Debug)]
pub(crate) struct Observations {
    next_serial: AtomicU64,
    /// How many requests were recorded; watched by `wait_for_requests`.
    recorded: watch::Sender<u64>,
    per_path: Option<Mutex<HashMap<String, u64>>>,
    log: Mutex<VecDeque<RecordedRequest>>,
    log_capacity: usize,
}

impl Observations {
    pub(crate) fn new(log_capacity: usize, count_per_path: bool) -> Self {
        Self {
            next_serial: AtomicU64::new(1),
            recorded: watch::Sender::new(0),
            per_path: count_per_path.then(|| Mutex::new(HashMap::new())),
            log: Mutex::new(VecDeque::with_capacity(log_capacity.min(1024))),
            log_capacity,
        }
    }

    /// Records a request whose body (of `body_len` bytes) was read; returns its serial.
    pub(crate) fn record(&self, parts: &Parts, body_len: usize) -> u64 {
        let serial = self.next_serial.fetch_add(1, Ordering::Relaxed);
        if let Some(per_path) = &self.per_path {
            let mut per_path = lock(per_path);
            let path = parts.uri.path();
            match per_path.get_mut(path) {
                Some(count) => *count += 1,
                None => {
                    per_path.insert(path.to_owned(), 1);
                }
            }
        }
        if self.log_capacity > 0 {
            let entry = RecordedRequest {
                serial,
                method: parts.method.clone(),
                path_and_query: parts
                    .uri
                    .path_and_query()
                    .map_or_else(|| parts.uri.path().to_owned(), ToString::to_string),
                headers: parts.headers.clone(),
                body_len,
            };
            let mut log = lock(&self.log);
            if log.len() == self.log_capacity {
                log.pop_front();
            }
            log.push_back(entry);
        }
        self.recorded.send_modify(|recorded| *recorded += 1);
        serial
    }

    pub(crate) fn requests(&self) -> u64 {
        *self.recorded.borrow()
    }

    pub(crate) fn requests_for(&self, path: &str) -> u64 {
        let per_path = self
            .per_path
            .as_ref()
            .expect("per-path counting is on (TestUpstreamBuilder::count_per_path)");
        lock(per_path).get(path).copied().unwrap_or(0)
    }

    pub(crate) fn log(&self) -> Vec<RecordedRequest> {
        lock(&self.log).iter().cloned().collect()
    }

    pub(crate) fn last(&self) -> Option<RecordedRequest> {
        lock(&self.log).back().cloned()
    }

    pub(crate) async fn wait_for(&self, requests: u64, timeout: Duration) -> io::Result<u64> {
        let mut recorded = self.recorded.subscribe();
        let reached = tokio::time::timeout(timeout, recorded.wait_for(|seen| *seen >= requests))
            .await
            .map(|seen| seen.map(|seen| *seen));
        match reached {
            Ok(Ok(seen)) => Ok(seen),
            // The sender lives in `self`: it cannot be dropped while borrowed here.
            Ok(Err(_closed)) => Err(io::Error::other("the upstream is gone")),
            Err(_elapsed) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "{} of {requests} requests arrived within {timeout:?}",
                    self.requests()
                ),
            )),
        }
    }
}

/// Locks `mutex`, also after a panic elsewhere while it was held (the data are counters and
/// a log: still meaningful).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
