//! [`ResourceGuard`]: the proof that a resource is registered; dropping it records the release.

use std::fmt;
use std::panic::Location;
use std::sync::Arc;
use std::time::{Duration, Instant};

use resync_perf_core::stripes::Padded;

use crate::registry::{stripe_of_id, Shard};

/// A registered resource. Dropping it records the resource's lifetime as a release —
/// "released without close" unless [`mark_closed`](Self::mark_closed) was called first.
///
/// `Send + Sync + 'static`: it may travel with the resource to any task or thread.
#[must_use = "dropping the guard records the release at once"]
pub struct ResourceGuard {
    shard: Arc<Padded<Shard>>,
    id: u64,
    slot: u32,
    kind: &'static str,
    acquired: Instant,
    location: &'static Location<'static>,
    closed: bool,
}

impl fmt::Debug for ResourceGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResourceGuard")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("acquired_at", &format_args!("{}", self.location))
            .field("age", &self.age())
            .field("closed", &self.closed)
            .finish()
    }
}

impl ResourceGuard {
    pub(crate) fn new(
        shard: Arc<Padded<Shard>>,
        id: u64,
        slot: u32,
        kind: &'static str,
        acquired: Instant,
        location: &'static Location<'static>,
    ) -> Self {
        Self {
            shard,
            id,
            slot,
            kind,
            acquired,
            location,
            closed: false,
        }
    }

    /// The resource's id, unique within its tracker.
    #[must_use]
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The resource's kind.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// How long the resource has been alive.
    #[must_use]
    pub fn age(&self) -> Duration {
        self.acquired.elapsed()
    }

    /// The source location that acquired the resource.
    #[must_use]
    pub fn acquired_at(&self) -> &'static Location<'static> {
        self.location
    }

    /// The resource's current label.
    #[must_use]
    pub fn label(&self) -> String {
        self.shard
            .with_entry(self.slot, |entry| entry.label.clone())
            .unwrap_or_default()
    }

    /// Replaces the label shown in leak reports (e.g. once a connection knows its peer).
    pub fn set_label(&self, label: impl Into<String>) {
        let label = label.into();
        self.shard
            .with_entry(self.slot, |entry| entry.label = label);
    }

    /// Whether a leak scan (`leaks()`, `stats()` or the scanner) has reported this resource as
    /// leaked. Reading it does not scan.
    #[must_use]
    pub fn is_leaked(&self) -> bool {
        self.shard
            .with_entry(self.slot, |entry| entry.leak_reported)
            .unwrap_or(false)
    }

    /// Records that the resource was closed deliberately: the release will not count as
    /// "released without close".
    pub fn mark_closed(&mut self) {
        self.closed = true;
    }

    /// Whether [`mark_closed`](Self::mark_closed) was called.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.closed
    }
}

impl Drop for ResourceGuard {
    fn drop(&mut self) {
        let lifetime = self.acquired.elapsed();
        // The entry and its kind are always present: only this guard removes the entry, and
        // kinds are never removed.
        let Some(entry) = self.shard.remove(self.slot) else {
            return;
        };
        let Some(kind) = self.shard.kinds.get(entry.kind) else {
            return;
        };
        kind.release(stripe_of_id(self.id), lifetime, self.closed);
        if entry.leak_reported {
            kind.leaked_released
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::info!(
                kind = entry.kind_name,
                label = %entry.label,
                acquired_at = %entry.location,
                lifetime_secs = lifetime.as_secs_f64(),
                closed = self.closed,
                "leaked resource released"
            );
        }
    }
}
