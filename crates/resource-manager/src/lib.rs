//! Resource tracking, leak detection with the acquiring source line, managed close and
//! batches with rollback.
//!
//! - [`ResourceTracker`] knows every open resource: [`track`](ResourceTracker::track)
//!   (`#[track_caller]`) returns a [`ResourceGuard`] whose drop records the lifetime. Per kind
//!   it keeps [`ResourceStats`] (active, peak, created, released, released without close,
//!   leaks, lifetimes, utilization against an optional limit). Tracking and releasing take no
//!   global lock: per-kind atomics and a sharded registry of live entries.
//! - Leaks are resources alive past their kind's [`LeakThreshold`] (a kind can be "never a
//!   leak", like a listening socket). [`leaks`](ResourceTracker::leaks) reports each with its
//!   kind, label, age, the `file:line:column` that acquired it, the thread or task, and a
//!   backtrace when enabled. Leak checks only run on demand or on a timer
//!   ([`spawn_leak_scanner`](ResourceTracker::spawn_leak_scanner)): each leak is counted once
//!   in `leaked_total`, and its later release is logged and counted in `leaked_released`.
//! - [`Managed`] pairs a resource implementing [`ManagedResource`] (async close) with its
//!   guard: `close().await` is the deterministic path; a drop without close is counted, logged
//!   with the acquiring line and cleaned up best-effort. [`SyncManaged`] is the blocking
//!   counterpart.
//! - Built-in kinds: [`ManagedFile`] and [`SyncFile`] (`"file"`: flush + sync on close),
//!   [`ManagedTcpStream`] (`"tcp_socket"`: shutdown on close) and [`ManagedTcpListener`]
//!   (`"tcp_listener"`, never a leak by default).
//! - [`Batch`] acquires several resources as one unit, rolls back in reverse order when a step
//!   fails and reports every close failure of [`close_all`](Batch::close_all).
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//!
//! use resync_resource_manager::{KindConfig, LeakThreshold, ManagedFile, ResourceTracker};
//! use tokio::io::AsyncWriteExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let tracker = ResourceTracker::new();
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("report.txt");
//!
//! // Acquire, use, close: the close flushes and syncs, and counts as a deliberate close.
//! let mut file = ManagedFile::create(&tracker, &path).await?;
//! file.write_all(b"hello").await?;
//! file.close().await?;
//! assert_eq!(std::fs::read(&path)?, b"hello");
//! let files = tracker.stats_for("file").ok_or("file kind is known")?;
//! assert_eq!((files.created, files.released, files.released_without_close), (1, 1, 0));
//!
//! // A kind with a tiny leak threshold: a resource held past it is reported.
//! tracker.configure_kind(
//!     "export_job",
//!     KindConfig {
//!         leak_threshold: LeakThreshold::After(Duration::from_millis(10)),
//!         ..KindConfig::default()
//!     },
//! );
//! let job = tracker.track("export_job", "nightly export");
//! tokio::time::sleep(Duration::from_millis(20)).await; // hold it past the threshold
//! let leaks = tracker.leaks();
//! assert_eq!(leaks[0].label, "nightly export");
//! println!("{} `{}` held for {:?}, acquired at {}",
//!     leaks[0].kind, leaks[0].label, leaks[0].age, leaks[0].acquired_at);
//!
//! drop(job); // released later: logged and counted
//! let jobs = tracker.stats_for("export_job").ok_or("kind is known")?;
//! assert_eq!((jobs.leaked_total, jobs.leaked_released, jobs.leaked_now), (1, 1, 0));
//! # Ok(())
//! # }
//! ```
//!
//! # Features
//!
//! - `serde`: `Serialize` for [`ResourceStats`] and [`LeakReport`]; durations become seconds
//!   as `f64` in fields suffixed `_secs` (`mean_lifetime_secs`, `max_lifetime_secs`,
//!   `age_secs`).

mod batch;
mod error;
mod file;
mod guard;
mod kinds;
mod leaks;
mod managed;
mod registry;
mod socket;
mod stats;
mod tracker;

pub use batch::{Batch, BatchSlot};
pub use error::{BatchError, BoxError, CloseFailure, Error};
pub use file::{ManagedFile, SyncFile, FILE_KIND};
pub use guard::ResourceGuard;
pub use leaks::LeakReport;
pub use managed::{Managed, ManagedResource, SyncManaged, SyncManagedResource};
pub use socket::{ManagedTcpListener, ManagedTcpStream, TCP_LISTENER_KIND, TCP_SOCKET_KIND};
pub use stats::ResourceStats;
pub use tracker::{KindConfig, LeakThreshold, ResourceTracker, DEFAULT_LEAK_THRESHOLD_SECS};
