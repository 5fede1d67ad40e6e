//! `Managed` and `SyncManaged` close paths: a failed close is returned, logged with the
//! acquiring line, and still counts as a deliberate close.

use std::io;
use std::sync::{Arc, Mutex};

use resync_resource_manager::{
    Managed, ManagedResource, ResourceTracker, SyncManaged, SyncManagedResource,
};

/// Log lines written by a `tracing` subscriber, kept for inspection.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().expect("log lock").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl LogBuffer {
    fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync {
        let buffer = self.clone();
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::WARN)
            .with_writer(move || buffer.clone())
            .finish()
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log lock")).into_owned()
    }
}

/// A real temporary file whose close is refused (to observe the failure path).
#[derive(Debug)]
struct Stubborn {
    _file: std::fs::File,
}

impl Stubborn {
    fn open(dir: &tempfile::TempDir) -> Self {
        Self {
            _file: std::fs::File::create(dir.path().join("stubborn")).expect("create"),
        }
    }
}

fn refusal() -> io::Error {
    io::Error::other("stubborn refused to close")
}

impl SyncManagedResource for Stubborn {
    type Error = io::Error;

    fn close(self) -> Result<(), io::Error> {
        Err(refusal())
    }
}

impl ManagedResource for Stubborn {
    type Error = io::Error;

    async fn close(self) -> Result<(), io::Error> {
        Err(refusal())
    }
}

fn assert_close_failure_logged(logs: &str, acquired_at: &str) {
    assert!(
        acquired_at.starts_with(file!()),
        "acquired here: {acquired_at}"
    );
    assert!(logs.contains("closing resource failed"), "{logs}");
    assert!(logs.contains("stubborn refused to close"), "{logs}");
    assert!(logs.contains("audit log"), "the label is named: {logs}");
    assert!(
        logs.contains(&format!("acquired_at={acquired_at}")),
        "the acquiring line is named: {logs}"
    );
}

#[test]
fn sync_close_failure_is_returned_logged_and_counted_as_closed() {
    let tracker = ResourceTracker::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let logs = LogBuffer::default();
    let managed = SyncManaged::new(&tracker, "audit", "audit log", Stubborn::open(&dir));
    let acquired_at = managed.guard().acquired_at().to_string();

    let result = tracing::subscriber::with_default(logs.subscriber(), || managed.close());

    let error = result.expect_err("the close is refused");
    assert_eq!(error.to_string(), "stubborn refused to close");
    assert_close_failure_logged(&logs.text(), &acquired_at);
    let stats = tracker.stats_for("audit").expect("kind is known");
    assert_eq!((stats.released, stats.released_without_close), (1, 0));
}

#[test]
fn async_close_failure_is_returned_logged_and_counted_as_closed() {
    let tracker = ResourceTracker::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let logs = LogBuffer::default();
    let managed = Managed::new(&tracker, "audit", "audit log", Stubborn::open(&dir));
    let acquired_at = managed.guard().acquired_at().to_string();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");

    let result =
        tracing::subscriber::with_default(logs.subscriber(), || runtime.block_on(managed.close()));

    let error = result.expect_err("the close is refused");
    assert_eq!(error.to_string(), "stubborn refused to close");
    assert_close_failure_logged(&logs.text(), &acquired_at);
    let stats = tracker.stats_for("audit").expect("kind is known");
    assert_eq!((stats.released, stats.released_without_close), (1, 0));
}
