//! Configuration types of resource kinds, at the bottom of the crate: every other module may
//! use them, they use nothing of the crate.

use std::time::Duration;

/// Leak threshold used by [`ResourceTracker::new`](crate::ResourceTracker::new), in seconds
/// (the `LEAK_THRESHOLD_SECS` setting's default).
pub const DEFAULT_LEAK_THRESHOLD_SECS: u64 = 300;

/// When a live resource of a kind counts as leaked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LeakThreshold {
    /// The tracker's default threshold.
    #[default]
    Default,
    /// Leaked once alive longer than this.
    After(Duration),
    /// Never a leak, however long it lives (e.g. a listening socket).
    Never,
}

/// Configuration of one resource kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KindConfig {
    /// When a resource of this kind counts as leaked.
    pub leak_threshold: LeakThreshold,
    /// Concurrency limit: reported as utilization, enforced by
    /// [`ResourceTracker::try_track`](crate::ResourceTracker::try_track). A limit of 0
    /// refuses every `try_track`.
    pub limit: Option<usize>,
    /// Capture a backtrace at every acquisition of this kind (costly: for hunting a leak).
    pub capture_backtrace: bool,
}
