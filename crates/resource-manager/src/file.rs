//! Built-in file kind: [`ManagedFile`] (tokio) and [`SyncFile`] (std), tracked as
//! [`FILE_KIND`]. Closing flushes and syncs the data to disk.

use std::future::Future;
use std::io::{self, Write};
use std::panic::Location;
use std::path::{Path, PathBuf};

use tokio::io::AsyncWriteExt;

use crate::error::Error;
use crate::managed::{Managed, ManagedResource, SyncManaged, SyncManagedResource};
use crate::tracker::ResourceTracker;

/// Kind name of files.
pub const FILE_KIND: &str = "file";

/// A tracked tokio file: `close().await` flushes and `sync_all`s it.
pub type ManagedFile = Managed<tokio::fs::File>;

/// A tracked std file for blocking code: `close()` flushes and `sync_all`s it.
pub type SyncFile = SyncManaged<std::fs::File>;

impl ManagedResource for tokio::fs::File {
    type Error = io::Error;

    async fn close(mut self) -> Result<(), io::Error> {
        // tokio writes in the background: flush waits for the last write to land.
        self.flush().await?;
        self.sync_all().await
    }
}

impl SyncManagedResource for std::fs::File {
    type Error = io::Error;

    fn close(mut self) -> Result<(), io::Error> {
        self.flush()?;
        self.sync_all()
    }
}

fn label(path: &Path) -> String {
    path.display().to_string()
}

impl Managed<tokio::fs::File> {
    /// Opens `path` read-only and tracks it as a [`FILE_KIND`] acquired at the caller's line.
    ///
    /// A plain `#[track_caller]` function returning a future, so the caller's location is
    /// read before the `async` block (the attribute does nothing on an `async fn`).
    #[track_caller]
    pub fn open(
        tracker: &ResourceTracker,
        path: impl AsRef<Path>,
    ) -> impl Future<Output = Result<Self, Error>> + Send + 'static {
        let mut options = tokio::fs::OpenOptions::new();
        options.read(true);
        Self::open_with(tracker, path, options)
    }

    /// Creates (or truncates) `path` for writing and tracks it, like [`open`](Self::open).
    #[track_caller]
    pub fn create(
        tracker: &ResourceTracker,
        path: impl AsRef<Path>,
    ) -> impl Future<Output = Result<Self, Error>> + Send + 'static {
        let mut options = tokio::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        Self::open_with(tracker, path, options)
    }

    /// Opens `path` with `options` and tracks it, like [`open`](Self::open).
    #[track_caller]
    pub fn open_with(
        tracker: &ResourceTracker,
        path: impl AsRef<Path>,
        options: tokio::fs::OpenOptions,
    ) -> impl Future<Output = Result<Self, Error>> + Send + 'static {
        let location = Location::caller();
        let tracker = tracker.clone();
        let path: PathBuf = path.as_ref().to_owned();
        async move {
            match options.open(&path).await {
                Ok(file) => {
                    let guard = tracker.track_at(FILE_KIND, label(&path), location);
                    Ok(Managed::with_guard(file, guard))
                }
                Err(source) => Err(Error::OpenFile { path, source }),
            }
        }
    }
}

impl SyncManaged<std::fs::File> {
    /// Opens `path` read-only and tracks it as a [`FILE_KIND`] acquired at the caller's line.
    #[track_caller]
    pub fn open(tracker: &ResourceTracker, path: impl AsRef<Path>) -> Result<Self, Error> {
        let mut options = std::fs::OpenOptions::new();
        options.read(true);
        Self::open_with(tracker, path, &options)
    }

    /// Creates (or truncates) `path` for writing and tracks it.
    #[track_caller]
    pub fn create(tracker: &ResourceTracker, path: impl AsRef<Path>) -> Result<Self, Error> {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        Self::open_with(tracker, path, &options)
    }

    /// Opens `path` with `options` and tracks it.
    #[track_caller]
    pub fn open_with(
        tracker: &ResourceTracker,
        path: impl AsRef<Path>,
        options: &std::fs::OpenOptions,
    ) -> Result<Self, Error> {
        let location = Location::caller();
        let path = path.as_ref();
        let file = options.open(path).map_err(|source| Error::OpenFile {
            path: path.to_owned(),
            source,
        })?;
        let guard = tracker.track_at(FILE_KIND, label(path), location);
        Ok(SyncManaged::with_guard(file, guard))
    }
}
