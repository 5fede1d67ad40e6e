//! Files: really flushed on close, cleaned up when dropped without close, acquiring line.

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use resync_resource_manager::{Error, ManagedFile, ResourceTracker, SyncFile, FILE_KIND};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const DEADLINE: Duration = Duration::from_secs(20);

fn payload() -> Vec<u8> {
    // Large enough that tokio writes it in several background chunks.
    (0..1_000_000u32).map(|i| (i % 251) as u8).collect()
}

/// Polls the file until it holds `expected`, failing after a generous deadline.
async fn wait_for_contents(path: &Path, expected: &[u8]) {
    let start = Instant::now();
    loop {
        if std::fs::read(path).is_ok_and(|contents| contents == expected) {
            return;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "{} never got its data",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn close_flushes_and_syncs_the_file() {
    let tracker = ResourceTracker::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("data.bin");
    let data = payload();

    let (created, line) = (ManagedFile::create(&tracker, &path), line!());
    let mut file = created.await.expect("create");
    assert!(file
        .guard()
        .acquired_at()
        .to_string()
        .starts_with(&format!("{}:{line}:", file!())));
    assert_eq!(file.guard().kind(), FILE_KIND);
    assert_eq!(file.guard().label(), path.display().to_string());
    file.write_all(&data).await.expect("write");
    file.close().await.expect("close");

    // Read back right after close: no waiting, the close flushed and synced it.
    assert_eq!(std::fs::read(&path).expect("read back"), data);

    let mut reader = ManagedFile::open(&tracker, &path).await.expect("open");
    let mut read = Vec::new();
    reader.read_to_end(&mut read).await.expect("read");
    reader.close().await.expect("close reader");
    assert_eq!(read, data);

    let stats = tracker.stats_for(FILE_KIND).expect("kind is known");
    assert_eq!((stats.created, stats.released, stats.active), (2, 2, 0));
    assert_eq!(stats.released_without_close, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_dropped_without_close_is_counted_and_still_flushed() {
    let tracker = ResourceTracker::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("dropped.bin");
    let data = payload();

    let mut file = ManagedFile::create(&tracker, &path).await.expect("create");
    file.write_all(&data).await.expect("write");
    drop(file);

    let stats = tracker.stats_for(FILE_KIND).expect("kind is known");
    assert_eq!(stats.released, 1);
    assert_eq!(stats.released_without_close, 1);
    assert_eq!(stats.active, 0);
    // The background close flushes what the dropped file still had in flight.
    wait_for_contents(&path, &data).await;
}

#[test]
fn a_file_dropped_outside_any_runtime_is_counted_without_panicking() {
    let tracker = ResourceTracker::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("outside.txt");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let file = runtime.block_on(async {
        let mut file = ManagedFile::create(&tracker, &path).await.expect("create");
        file.write_all(b"written inside").await.expect("write");
        file.flush().await.expect("flush");
        file
    });
    drop(runtime);
    assert!(tokio::runtime::Handle::try_current().is_err());
    drop(file);
    let stats = tracker.stats_for(FILE_KIND).expect("kind is known");
    assert_eq!(stats.released_without_close, 1);
    assert_eq!(std::fs::read(&path).expect("read back"), b"written inside");
}

#[test]
fn sync_file_close_flushes_and_a_drop_still_cleans_up() {
    let tracker = ResourceTracker::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let closed_path = dir.path().join("closed.txt");
    let dropped_path = dir.path().join("dropped.txt");

    let (file, line) = (SyncFile::create(&tracker, &closed_path), line!());
    let mut file = file.expect("create");
    assert!(file
        .guard()
        .acquired_at()
        .to_string()
        .starts_with(&format!("{}:{line}:", file!())));
    file.write_all(b"closed properly").expect("write");
    file.close().expect("close");
    assert_eq!(
        std::fs::read(&closed_path).expect("read"),
        b"closed properly"
    );

    let mut file = SyncFile::create(&tracker, &dropped_path).expect("create");
    // A buffered writer over the managed file: data only reaches the file when flushed.
    {
        let mut writer = std::io::BufWriter::new(&mut file);
        writer.write_all(b"dropped").expect("write");
        writer.flush().expect("flush");
    }
    drop(file);
    assert_eq!(std::fs::read(&dropped_path).expect("read"), b"dropped");

    let mut reader = SyncFile::open(&tracker, &closed_path).expect("open");
    let mut text = String::new();
    reader.read_to_string(&mut text).expect("read");
    reader.close().expect("close");
    assert_eq!(text, "closed properly");

    let stats = tracker.stats_for(FILE_KIND).expect("kind is known");
    assert_eq!((stats.created, stats.released), (3, 3));
    assert_eq!(stats.released_without_close, 1);
}

#[tokio::test]
async fn opening_a_missing_file_fails_and_tracks_nothing() {
    let tracker = ResourceTracker::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("missing.txt");
    match ManagedFile::open(&tracker, &missing).await {
        Err(Error::OpenFile { path, source }) => {
            assert_eq!(path, missing);
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected OpenFile, got {other:?}"),
    }
    assert!(matches!(
        SyncFile::open(&tracker, &missing),
        Err(Error::OpenFile { .. })
    ));
    assert!(tracker.stats_for(FILE_KIND).is_none_or(|s| s.created == 0));
}
