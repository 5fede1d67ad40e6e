//! Resource tracking, leak detection with the acquiring source line, managed close and
//! batches with rollback.
//!
//! - [`ResourceTracker`] knows every open resource: [`track`](ResourceTracker::track)
//!   (`#[track_caller]`) returns a [`ResourceGuard`] whose drop records the lifetime. Per kind
//!   it keeps [`ResourceStats`] (active, peak, created, released, released without close,
//!   leaks, lifetimes, utilization against an optional limit). Tracking and releasing take no
//!   global lock: per-kind atomics and a sharded registry of live entries.
//! - [`LeaseSlot`] ([`lease_slot`](ResourceTracker::lease_slot)) tracks a long-lived resource
//!   that is checked out again and again, like a pooled connection: register the slot once
//!   when the resource is created, then each [`checkout`](LeaseSlot::checkout) /
//!   [`checkin`](LeaseSlot::checkin) counts exactly as a `track` + guard drop would, without a
//!   lock or an allocation (see [Guards or lease slots](#guards-or-lease-slots)).
//! - Leaks are resources alive past their kind's [`LeakThreshold`] (a kind can be "never a
//!   leak", like a listening socket). [`leaks`](ResourceTracker::leaks) reports each with its
//!   kind, label, age, the `file:line:column` that acquired it, the thread or task, and a
//!   backtrace when enabled. Leak checks only run on demand or on a timer
//!   ([`spawn_leak_scanner`](ResourceTracker::spawn_leak_scanner)): each leak is counted once
//!   in `leaked_total`, and its later release is logged and counted in `leaked_released`.
//! - [`LeaseGroup`] ([`lease_group`](ResourceTracker::lease_group)) makes the slots of one
//!   owner (a pool's connections) and counts their checkouts currently leaked, so the owner
//!   reads its leak figure with one atomic load instead of a scan.
//! - [`leak_health`] / [`health`](ResourceTracker::health) judge the kinds' stats: any
//!   resource leaked now is a critical [`LEAKED_CODE`] reason naming its kind and threshold.
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
//! # Guards or lease slots
//!
//! Use a [`ResourceGuard`] (or [`Managed`]) for a resource acquired once and released once: a
//! file, a socket, a job. `track` allocates the label, records the thread, task and (when
//! enabled) a backtrace, and takes a shard lock to register and to release (about 250 ns per
//! pair, see the README).
//!
//! Use a [`LeaseSlot`] when one resource is lent out repeatedly and every loan must be counted
//! — a pool's connections. The slot, with its label, is registered once (a lock, an
//! allocation); each checkout then stores its location and time in the slot's atomics and
//! bumps the kind's counters (tens of nanoseconds per checkout + checkin, the caller's clock
//! reads aside). A checkout held past its kind's threshold is a leak like a guard's, reported
//! with the checkout's `file:line:column`, but without thread or backtrace.
//!
//! ```
//! use std::panic::Location;
//! use std::time::{Duration, Instant};
//!
//! use resync_resource_manager::{KindConfig, LeakThreshold, ResourceTracker};
//!
//! let tracker = ResourceTracker::new();
//! tracker.configure_kind("db_conn", KindConfig {
//!     leak_threshold: LeakThreshold::After(Duration::from_secs(30)),
//!     ..KindConfig::default()
//! });
//! // Once, when the pool opens the connection.
//! let slot = tracker.lease_slot("db_conn", "orders-db #1");
//!
//! // On every checkout and return.
//! slot.checkout(Location::caller(), Instant::now());
//! assert!(slot.is_checked_out());
//! slot.checkin(Instant::now());
//!
//! let stats = tracker.stats_for("db_conn").expect("the kind is known");
//! assert_eq!((stats.created, stats.released, stats.active), (1, 1, 0));
//! ```
//!
//! # Layers
//!
//! The modules form layers, and a module uses only modules of layers below its own (its
//! `use crate::` lines point down), so each can be read knowing only what is beneath it:
//!
//! | layer | modules | what they hold |
//! |---|---|---|
//! | 0 | `config`, `error`, `locations`, `serde_secs` | kind configuration types, errors, interned source locations, serde helpers |
//! | 1 | `kinds` | per-kind counters (striped per thread) and configuration mirrors; the kind table |
//! | 2 | `registry` | the sharded registry of live guards and the id sequences |
//! | 3 | `guard`, `leaks`, `stats` | [`ResourceGuard`]; leak reports and snapshots; [`ResourceStats`] |
//! | 4 | `health`, `lease` | [`leak_health`]; lease slots and groups, their registry and scan |
//! | 5 | `shared` | the tracker's state and what spans all of it: the leak scan, reports, stats |
//! | 6 | `tracker` | [`ResourceTracker`], the public face over `shared` |
//! | 7 | `managed` | [`Managed`] / [`SyncManaged`]: a resource and its guard |
//! | 8 | `batch`, `file`, `socket` | [`Batch`] and the built-in kinds, built on `managed` |
//!
//! Only `tracker` adds methods to [`ResourceTracker`]; lower layers offer functions on their
//! own types that its methods call. Per-thread striping and poison-tolerant locking come from
//! `resync_perf_core::stripes` and `resync_perf_core::sync`.
//!
//! # Features
//!
//! - `serde`: `Serialize` for [`ResourceStats`] and [`LeakReport`]; durations become seconds
//!   as `f64` in fields suffixed `_secs` (`mean_lifetime_secs`, `max_lifetime_secs`,
//!   `leak_threshold_secs`, `age_secs`).

// The layers, bottom first (see "Layers" above): a module uses only modules of lower layers.
mod config;
mod error;
mod locations;
#[cfg(feature = "serde")]
mod serde_secs;

mod kinds;

mod registry;

mod guard;
mod leaks;
mod stats;

mod health;
mod lease;

mod shared;

mod tracker;

mod managed;

mod batch;
mod file;
mod socket;

pub use batch::{Batch, BatchSlot};
pub use config::{KindConfig, LeakThreshold, DEFAULT_LEAK_THRESHOLD_SECS};
pub use error::{BatchError, BoxError, CloseFailure, Error};
pub use file::{ManagedFile, SyncFile, FILE_KIND};
pub use guard::ResourceGuard;
pub use health::{leak_health, LEAKED_CODE};
pub use leaks::LeakReport;
pub use lease::{LeaseGroup, LeaseSlot};
pub use managed::{Managed, ManagedResource, SyncManaged, SyncManagedResource};
pub use socket::{ManagedTcpListener, ManagedTcpStream, TCP_LISTENER_KIND, TCP_SOCKET_KIND};
pub use stats::ResourceStats;
pub use tracker::ResourceTracker;

/// The README's examples, compiled and run as doctests, so the README's code stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
