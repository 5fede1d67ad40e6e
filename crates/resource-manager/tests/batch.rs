//! Batches: rollback in reverse order naming the failed step, close_all reporting every
//! failure, mixed real kinds, drop without close_all.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use resync_resource_manager::{
    Batch, BatchError, Managed, ManagedFile, ManagedResource, ManagedTcpStream, ResourceTracker,
    FILE_KIND, TCP_SOCKET_KIND,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const DEADLINE: Duration = Duration::from_secs(20);
const JOURNAL_KIND: &str = "journal";

type CloseLog = Arc<Mutex<Vec<String>>>;

/// A real file that appends its name to a shared log when closed (to observe the order), and
/// can be told to fail its close.
#[derive(Debug)]
struct Journal {
    name: String,
    file: tokio::fs::File,
    log: CloseLog,
    fail_close: bool,
}

impl ManagedResource for Journal {
    type Error = io::Error;

    async fn close(mut self) -> Result<(), io::Error> {
        self.file.flush().await?;
        self.file.sync_all().await?;
        self.log.lock().expect("log lock").push(self.name.clone());
        if self.fail_close {
            return Err(io::Error::other(format!("{} refused to close", self.name)));
        }
        Ok(())
    }
}

async fn open_journal(
    tracker: &ResourceTracker,
    dir: &Path,
    name: &str,
    log: &CloseLog,
    fail_close: bool,
) -> io::Result<Managed<Journal>> {
    let mut file = tokio::fs::File::create(dir.join(name)).await?;
    file.write_all(name.as_bytes()).await?;
    let journal = Journal {
        name: name.to_owned(),
        file,
        log: Arc::clone(log),
        fail_close,
    };
    Ok(Managed::new(tracker, JOURNAL_KIND, name, journal))
}

fn logged(log: &CloseLog) -> Vec<String> {
    log.lock().expect("log lock").clone()
}

#[tokio::test]
async fn a_failure_on_the_third_of_five_closes_the_first_two_in_reverse_order() {
    let tracker = ResourceTracker::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let log = CloseLog::default();
    let mut batch = Batch::new();
    let steps = ["first", "second", "third", "fourth", "fifth"];
    let mut attempted = Vec::new();

    let mut failure = None;
    for step in steps {
        attempted.push(step);
        let acquisition = async {
            if step == "third" {
                // A real failure: the directory does not exist.
                let missing: PathBuf = dir.path().join("no-such-dir");
                open_journal(&tracker, &missing, step, &log, false).await
            } else {
                open_journal(&tracker, dir.path(), step, &log, false).await
            }
        };
        if let Err(error) = batch.acquire(step, acquisition).await {
            failure = Some(error);
            break;
        }
    }

    assert_eq!(attempted, ["first", "second", "third"]);
    assert_eq!(
        logged(&log),
        ["second", "first"],
        "rollback in reverse order"
    );
    assert!(batch.is_empty());
    match failure.expect("the third step fails") {
        BatchError::Acquire {
            index,
            step,
            source,
            rollback_failures,
        } => {
            assert_eq!((index, step.as_str()), (2, "third"));
            let source = source.downcast::<io::Error>().expect("an io error");
            assert_eq!(source.kind(), io::ErrorKind::NotFound);
            assert!(rollback_failures.is_empty());
        }
        other => panic!("expected Acquire, got {other:?}"),
    }
    let stats = tracker.stats_for(JOURNAL_KIND).expect("kind is known");
    assert_eq!((stats.created, stats.released, stats.active), (2, 2, 0));
    assert_eq!(stats.released_without_close, 0, "the rollback closed them");
    assert_eq!(
        std::fs::read(dir.path().join("second")).expect("flushed by the rollback close"),
        b"second"
    );
}

#[tokio::test]
async fn a_rollback_reports_its_own_close_failures() {
    let tracker = ResourceTracker::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let log = CloseLog::default();
    let mut batch = Batch::new();
    batch
        .acquire(
            "stubborn",
            open_journal(&tracker, dir.path(), "stubborn", &log, true),
        )
        .await
        .expect("first acquisition");
    let missing = dir.path().join("missing");
    let error = batch
        .acquire(
            "broken",
            open_journal(&tracker, &missing, "broken", &log, false),
        )
        .await
        .expect_err("the second acquisition fails");
    let message = error.to_string();
    assert!(message.contains("step 1 `broken`"), "{message}");
    assert!(message.contains("stubborn refused to close"), "{message}");
    assert_eq!(error.close_failures().len(), 1);
    assert_eq!(error.close_failures()[0].step, "stubborn");
}

#[tokio::test]
async fn close_all_closes_in_reverse_order_and_reports_every_failure() {
    let tracker = ResourceTracker::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let log = CloseLog::default();
    let mut batch = Batch::new();
    for (step, fail_close) in [
        ("a", false),
        ("b", true),
        ("c", false),
        ("d", true),
        ("e", false),
    ] {
        batch
            .acquire(
                step,
                open_journal(&tracker, dir.path(), step, &log, fail_close),
            )
            .await
            .expect("acquire");
    }
    assert_eq!(batch.steps().collect::<Vec<_>>(), ["a", "b", "c", "d", "e"]);

    let error = batch.close_all().await.expect_err("two closes fail");
    assert_eq!(
        logged(&log),
        ["e", "d", "c", "b", "a"],
        "every resource closed"
    );
    match &error {
        BatchError::Close {
            attempted,
            failures,
        } => {
            assert_eq!(*attempted, 5);
            let failed: Vec<(usize, &str)> = failures
                .iter()
                .map(|failure| (failure.index, failure.step.as_str()))
                .collect();
            assert_eq!(failed, [(3, "d"), (1, "b")]);
        }
        other => panic!("expected Close, got {other:?}"),
    }
    let message = error.to_string();
    assert!(message.contains("d refused to close"), "{message}");
    assert!(message.contains("b refused to close"), "{message}");
    let stats = tracker.stats_for(JOURNAL_KIND).expect("kind is known");
    assert_eq!((stats.released, stats.released_without_close), (5, 0));
}

#[tokio::test]
async fn a_batch_holds_real_kinds_together() {
    let tracker = ResourceTracker::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let path = dir.path().join("export.csv");

    let mut batch = Batch::new();
    let file = batch
        .acquire("export file", ManagedFile::create(&tracker, &path))
        .await
        .expect("file");
    let socket = batch
        .acquire("upstream", ManagedTcpStream::connect(&tracker, addr))
        .await
        .expect("socket");
    let (mut server, _) = listener.accept().await.expect("accept");

    batch
        .get_mut(file)
        .expect("file held")
        .write_all(b"id,name\n")
        .await
        .expect("write file");
    batch
        .get_mut(socket)
        .expect("socket held")
        .write_all(b"hello")
        .await
        .expect("write socket");
    assert!(batch
        .get(file)
        .is_some_and(|f| f.guard().kind() == FILE_KIND));
    batch.close_all().await.expect("close all");

    assert_eq!(std::fs::read(&path).expect("read back"), b"id,name\n");
    let mut received = Vec::new();
    tokio::time::timeout(DEADLINE, server.read_to_end(&mut received))
        .await
        .expect("the peer reads end-of-file")
        .expect("read");
    assert_eq!(received, b"hello");
    for kind in [FILE_KIND, TCP_SOCKET_KIND] {
        let stats = tracker.stats_for(kind).expect("kind is known");
        assert_eq!((stats.released, stats.released_without_close), (1, 0));
    }
}

#[tokio::test]
async fn a_batch_dropped_without_close_all_is_counted_and_cleaned_up() {
    let tracker = ResourceTracker::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let log = CloseLog::default();
    let mut batch = Batch::new();
    for step in ["x", "y"] {
        batch
            .acquire(step, open_journal(&tracker, dir.path(), step, &log, false))
            .await
            .expect("acquire");
    }
    drop(batch);

    let stats = tracker.stats_for(JOURNAL_KIND).expect("kind is known");
    assert_eq!((stats.released, stats.released_without_close), (2, 2));
    // The best-effort cleanup closes both in the background.
    let start = Instant::now();
    while logged(&log).len() < 2 {
        assert!(
            start.elapsed() < DEADLINE,
            "cleanup never ran: {:?}",
            logged(&log)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut closed = logged(&log);
    closed.sort();
    assert_eq!(closed, ["x", "y"]);
}

#[tokio::test]
async fn a_stale_slot_resolves_to_nothing_after_a_rollback_or_on_another_batch() {
    let tracker = ResourceTracker::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let log = CloseLog::default();
    let missing = dir.path().join("no-such-dir");

    let mut batch = Batch::new();
    let before = batch
        .acquire(
            "old",
            open_journal(&tracker, dir.path(), "old", &log, false),
        )
        .await
        .expect("first acquisition");
    assert_eq!(batch.get(before).map(|j| j.name.as_str()), Some("old"));
    batch
        .acquire(
            "broken",
            open_journal(&tracker, &missing, "broken", &log, false),
        )
        .await
        .expect_err("the second acquisition fails and rolls back");
    assert!(batch.is_empty());

    // A new resource of the same type now sits at the same position as the stale slot.
    let after = batch
        .acquire(
            "new",
            open_journal(&tracker, dir.path(), "new", &log, false),
        )
        .await
        .expect("acquisition after the rollback");
    assert_eq!(before.index(), after.index());
    assert!(batch.get(before).is_none(), "stale slot after a rollback");
    assert!(batch.get_mut(before).is_none());
    assert_eq!(batch.get(after).map(|j| j.name.as_str()), Some("new"));

    // Same type, same position, other batch.
    let mut other = Batch::new();
    let foreign = other
        .acquire(
            "other",
            open_journal(&tracker, dir.path(), "other", &log, false),
        )
        .await
        .expect("acquisition in the other batch");
    assert_eq!(foreign.index(), after.index());
    assert!(batch.get(foreign).is_none(), "slot of another batch");
    assert!(other.get_mut(after).is_none(), "slot of another batch");
    assert_eq!(other.get(foreign).map(|j| j.name.as_str()), Some("other"));

    batch.close_all().await.expect("close batch");
    other.close_all().await.expect("close other");
}
