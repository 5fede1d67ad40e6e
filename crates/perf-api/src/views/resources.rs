//! Resource kinds and leaks as the API shows them.

use resync_resource_manager::{LeakReport, ResourceStats};
use serde::Serialize;
use utoipa::ToSchema;

/// One resource kind.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct KindView {
    /// The kind's name.
    pub kind: String,
    /// Alive now.
    pub active: u64,
    /// The most alive at once.
    pub peak: u64,
    /// Ever tracked.
    pub created: u64,
    /// Released (closed or not).
    pub released: u64,
    /// Released without a deliberate close.
    pub released_without_close: u64,
    /// Alive now past the leak threshold.
    pub leaked_now: u64,
    /// Ever seen past the threshold.
    pub leaked_total: u64,
    /// Of those, released later.
    pub leaked_released: u64,
    /// Mean lifetime of released resources, in seconds.
    pub mean_lifetime_seconds: f64,
    /// Longest lifetime of a released resource, in seconds.
    pub max_lifetime_seconds: f64,
    /// The kind's concurrency limit, if any.
    pub limit: Option<u64>,
    /// `active / limit` (0–1), when a limit exists.
    pub utilization: Option<f64>,
    /// Held longer than this, a resource of the kind is a leak; `null` when it never is.
    pub leak_threshold_seconds: Option<f64>,
}

impl From<&ResourceStats> for KindView {
    fn from(stats: &ResourceStats) -> Self {
        Self {
            leak_threshold_seconds: stats.leak_threshold.map(|after| after.as_secs_f64()),
            kind: stats.kind.clone(),
            active: stats.active,
            peak: stats.peak,
            created: stats.created,
            released: stats.released,
            released_without_close: stats.released_without_close,
            leaked_now: stats.leaked_now,
            leaked_total: stats.leaked_total,
            leaked_released: stats.leaked_released,
            mean_lifetime_seconds: stats.mean_lifetime.as_secs_f64(),
            max_lifetime_seconds: stats.max_lifetime.as_secs_f64(),
            limit: stats.limit.map(|limit| limit as u64),
            utilization: stats.utilization,
        }
    }
}

/// A resource alive past its kind's leak threshold.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LeakView {
    /// The resource's id.
    pub id: u64,
    /// Its kind.
    pub kind: String,
    /// Its label.
    pub label: String,
    /// How long it has been alive, in seconds.
    pub age_seconds: f64,
    /// The `file:line:column` that acquired it.
    pub acquired_at: String,
    /// The acquiring thread or task, when known.
    pub thread: Option<String>,
    /// The backtrace captured at acquisition, when the kind enables it.
    pub backtrace: Option<String>,
}

impl From<LeakReport> for LeakView {
    fn from(leak: LeakReport) -> Self {
        Self {
            id: leak.id,
            kind: leak.kind,
            label: leak.label,
            age_seconds: leak.age.as_secs_f64(),
            acquired_at: leak.acquired_at,
            thread: leak.thread,
            backtrace: leak.backtrace,
        }
    }
}
