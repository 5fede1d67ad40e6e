//! Shared vocabulary of Resync: health, recommendations, lock-free histograms, efficiency
//! scores and windowed figures.
//!
//! Every other Resync crate speaks these types: the cache and the pools record latencies into
//! a [`Histogram`], judge themselves with a [`HealthStatus`], explain what to change with
//! [`Recommendation`]s whose [`evidence`](Recommendation::evidence) holds the measured figures,
//! and rate their efficiency 0–100 with [`weighted_score`]. The crate does no I/O and has no
//! global state (beyond the table of thread slots for [`stripes`]): it only holds numbers and
//! the rules for combining them.
//!
//! Two helpers every crate shares: [`stripes`] (values padded to their own cache lines and
//! striped per thread: [`Padded`](stripes::Padded), [`Striped`](stripes::Striped),
//! [`stripe_index`](stripes::stripe_index); a thread that owns its stripe adds to it without
//! a locked instruction through [`Striped::with_local`](stripes::Striped::with_local)) and
//! [`sync`] (poison-tolerant [`lock`](sync::lock)).
//!
//! Counters are cumulative and never reset. Windowed figures (rates, recent percentiles) are
//! the difference of two snapshots, through [`Sample::window`] and the [`Delta`] trait.
//!
//! With the `serde` feature, the snapshot types (`HealthStatus`, `Severity`, `SettingValue`,
//! `SettingChange`, `Recommendation`, `HistogramSummary`, `HistogramSnapshot`) implement
//! `Serialize` and `Deserialize`.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use resync_perf_core::{
//!     per_second, HealthStatus, Histogram, Recommendation, Sample, SettingChange, Severity,
//! };
//!
//! // Record latencies (lock-free; share the histogram between threads through an `Arc`).
//! let latency = Histogram::new();
//! for millis in [3, 4, 5] {
//!     latency.record_duration(Duration::from_millis(millis));
//! }
//! let older = Sample::now(latency.snapshot());
//!
//! // More traffic arrives, some of it slow.
//! for millis in [2, 3, 90, 120] {
//!     latency.record_duration(Duration::from_millis(millis));
//! }
//! let newer = Sample::new(older.at + Duration::from_secs(2), latency.snapshot());
//!
//! // The window holds only the four recent values.
//! let window = newer.window(&older);
//! assert_eq!(window.delta.count(), 4);
//! assert_eq!(per_second(window.delta.count(), window.elapsed), Some(2.0));
//! let p95 = window.delta.p95();
//! assert!(p95.abs_diff(120_000_000) * 64 <= 120_000_000, "p95 within 1/64: {p95}");
//!
//! // Turn the measurement into advice, with the figures it rests on.
//! let advice = Recommendation::new(
//!     "pool:db",
//!     "pool.grow_max_size",
//!     Severity::Warning,
//!     "p95 acquire wait is above its target",
//! )
//! .with_evidence("acquire_wait_p95_ms", p95 as f64 / 1e6)
//! .with_change(SettingChange::new("DB_POOL_MAX_SIZE", 10_u32, 16_u32));
//! assert_eq!(advice.severity.health(), HealthStatus::Degraded);
//! assert_eq!(HealthStatus::worst_of([HealthStatus::Healthy, advice.severity.health()]).as_str(), "degraded");
//! ```

mod error;
mod health;
mod histogram;
mod recommendation;
mod score;
pub mod stripes;
pub mod sync;
mod window;

pub use error::Error;
pub use health::{HealthReason, HealthStatus, HealthVerdict};
pub use histogram::{Histogram, HistogramSnapshot, HistogramSummary};
pub use recommendation::{Recommendation, SettingChange, SettingValue, Severity};
pub use score::{clamp_unit, falloff, ratio, weighted_score};
pub use window::{per_second, Delta, Sample, Window};

/// The README's examples, compiled and run as doctests, so the README's code stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
