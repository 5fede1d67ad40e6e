//! [`ResourceTracker`]: the crate's public face, on top of every other module — it registers
//! resources, configures kinds, hands out lease slots, scans for leaks and reports stats.

use std::backtrace::Backtrace;
use std::panic::Location;
use std::sync::Arc;
use std::time::{Duration, Instant};

use resync_perf_core::HealthVerdict;

use crate::config::{KindConfig, DEFAULT_LEAK_THRESHOLD_SECS};
use crate::error::Error;
use crate::guard::ResourceGuard;
use crate::health::leak_health;
use crate::kinds::{current_stripe, KindState};
use crate::leaks::LeakReport;
use crate::lease::{LeaseGroup, LeaseSlot};
use crate::registry::LiveEntry;
use crate::shared::Shared;
use crate::stats::ResourceStats;

/// Knows every tracked resource: counts them per kind and reports the ones held too long.
///
/// Cloning is cheap (an `Arc`); clones share the same state. There is no global tracker:
/// create one and hand clones to whatever acquires resources.
#[derive(Clone, Debug)]
pub struct ResourceTracker {
    handle: Arc<TrackerHandle>,
}

/// What tracker clones share; the leak scanner holds it weakly so it stops with the last clone.
#[derive(Debug)]
struct TrackerHandle {
    shared: Arc<Shared>,
}

impl Default for ResourceTracker {
    fn default() -> Self {
        Self::new()
    }
}

impl ResourceTracker {
    /// A tracker whose kinds leak after [`DEFAULT_LEAK_THRESHOLD_SECS`] unless configured.
    #[must_use]
    pub fn new() -> Self {
        Self::with_default_leak_threshold(Duration::from_secs(DEFAULT_LEAK_THRESHOLD_SECS))
    }

    /// A tracker whose kinds leak after `threshold` unless configured otherwise.
    #[must_use]
    pub fn with_default_leak_threshold(threshold: Duration) -> Self {
        Self {
            handle: Arc::new(TrackerHandle {
                shared: Arc::new(Shared::new(threshold)),
            }),
        }
    }

    /// The instant this tracker counts time from (lease slots take nanoseconds since it).
    #[must_use]
    pub fn epoch(&self) -> Instant {
        self.shared().leases.epoch()
    }

    fn shared(&self) -> &Arc<Shared> {
        &self.handle.shared
    }

    /// The threshold used by kinds configured with
    /// [`LeakThreshold::Default`](crate::LeakThreshold::Default).
    #[must_use]
    pub fn default_leak_threshold(&self) -> Duration {
        self.shared().default_leak_threshold
    }

    /// Sets the configuration of `kind` (applies to live resources too: thresholds are read
    /// when scanning).
    pub fn configure_kind(&self, kind: &'static str, config: KindConfig) {
        self.shared().kinds.get_or_insert(kind).1.apply(config);
    }

    /// Replaces the configuration of `kind` with `update(current)`, where `current` is the
    /// kind's configuration if it was configured before (by [`configure_kind`](Self::configure_kind),
    /// a built-in default or an earlier update) and `None` otherwise; returns the configuration
    /// applied. The read and the write are one atomic step: a concurrent configuration of the
    /// kind is either seen by `update` or applied after it, never lost. `update` runs under the
    /// kind's configuration lock and must not configure the tracker itself.
    pub fn update_kind(
        &self,
        kind: &'static str,
        update: impl FnOnce(Option<KindConfig>) -> KindConfig,
    ) -> KindConfig {
        self.shared().kinds.get_or_insert(kind).1.apply_with(update)
    }

    /// Configures `kind` only if nobody configured it yet (built-in kinds use this so a
    /// user's own configuration always wins).
    pub(crate) fn configure_kind_if_unset(&self, kind: &'static str, config: KindConfig) {
        let (_, state) = self.shared().kinds.get_or_insert(kind);
        // One atomic step: a concurrent `configure_kind` is never overwritten by the default.
        state.apply_if_unset(config);
    }

    /// The configuration currently applied to `kind`, if the kind is known.
    #[must_use]
    pub fn kind_config(&self, kind: &str) -> Option<KindConfig> {
        let (_, state) = self
            .shared()
            .kinds
            .all()
            .into_iter()
            .find(|(_, state)| state.name == kind)?;
        Some(state.config())
    }

    /// Registers a resource of `kind` acquired at the caller's source line.
    ///
    /// Dropping the guard records its lifetime. Never fails: a kind's limit is only reported
    /// here (see [`try_track`](Self::try_track) to enforce it).
    #[track_caller]
    pub fn track(&self, kind: &'static str, label: impl Into<String>) -> ResourceGuard {
        self.track_at(kind, label, Location::caller())
    }

    /// Like [`track`](Self::track), with a location the caller captured itself (for example
    /// with `Location::caller()` in a `#[track_caller]` function returning a future).
    pub fn track_at(
        &self,
        kind: &'static str,
        label: impl Into<String>,
        location: &'static Location<'static>,
    ) -> ResourceGuard {
        let (index, state) = self.shared().kinds.get_or_insert(kind);
        let thread = std::thread::current();
        let stripe = current_stripe();
        state.acquire(stripe, None);
        self.register(index, &state, stripe, thread, label.into(), location)
    }

    /// Like [`track`](Self::track), but fails with [`Error::LimitReached`] when the kind
    /// already has as many active resources as its limit.
    #[track_caller]
    pub fn try_track(
        &self,
        kind: &'static str,
        label: impl Into<String>,
    ) -> Result<ResourceGuard, Error> {
        self.try_track_at(kind, label, Location::caller())
    }

    /// Like [`try_track`](Self::try_track), with a location the caller captured itself.
    pub fn try_track_at(
        &self,
        kind: &'static str,
        label: impl Into<String>,
        location: &'static Location<'static>,
    ) -> Result<ResourceGuard, Error> {
        let (index, state) = self.shared().kinds.get_or_insert(kind);
        let thread = std::thread::current();
        let stripe = current_stripe();
        let limit = state.limit();
        if !state.acquire(stripe, limit) {
            return Err(Error::LimitReached {
                kind,
                limit: limit.unwrap_or(usize::MAX),
            });
        }
        Ok(self.register(index, &state, stripe, thread, label.into(), location))
    }

    /// Registers a reusable slot for one long-lived resource of `kind` (e.g. one pooled
    /// connection), once, when the resource is created. Registering counts nothing: each
    /// [`LeaseSlot::checkout`] does. Takes a lock and allocates (the label, the slot); the
    /// checkouts do neither.
    #[track_caller]
    pub fn lease_slot(&self, kind: &'static str, label: impl Into<String>) -> LeaseSlot {
        self.shared()
            .leases
            .slot(kind, label.into(), None, Location::caller())
    }

    /// A group of lease slots of `kind` labelled `label` — one owner's resources, like a
    /// pool's connections — that keeps count of its checkouts currently leaked (see
    /// [`LeaseGroup::leaked_now`]). Registers nothing: [`LeaseGroup::slot`] does.
    pub fn lease_group(&self, kind: &'static str, label: impl Into<String>) -> LeaseGroup {
        self.shared().leases.group(kind, label.into())
    }

    /// Statistics of every kind seen or configured, sorted by kind. Scans for leaks (to fill
    /// `leaked_now`), which also counts newly leaked resources in `leaked_total`.
    #[must_use]
    pub fn stats(&self) -> Vec<ResourceStats> {
        self.shared().stats()
    }

    /// Statistics of one kind, if it was seen or configured. Scans for leaks like
    /// [`stats`](Self::stats).
    #[must_use]
    pub fn stats_for(&self, kind: &str) -> Option<ResourceStats> {
        self.shared().stats_for(kind)
    }

    /// [`leak_health`] of [`stats`](Self::stats) (which scans for leaks first).
    #[must_use]
    pub fn health(&self) -> HealthVerdict {
        leak_health(&self.stats())
    }

    /// Resources alive past their kind's threshold, oldest first. Newly seen leaks are
    /// counted in `leaked_total` and logged once.
    #[must_use]
    pub fn leaks(&self) -> Vec<LeakReport> {
        self.leaks_older_than(Duration::ZERO)
    }

    /// Like [`leaks`](Self::leaks), keeping only the leaks at least `min_age` old (the kind's
    /// threshold still decides what is a leak).
    #[must_use]
    pub fn leaks_older_than(&self, min_age: Duration) -> Vec<LeakReport> {
        self.shared().leaks_older_than(min_age)
    }

    /// Scans for leaks every `every` on the current tokio runtime: newly leaked resources are
    /// logged and counted in `leaked_total`. The task holds the tracker weakly and ends once
    /// every other clone of the tracker is dropped.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime (as `tokio::spawn`).
    pub fn spawn_leak_scanner(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(&self.handle);
        // `interval` refuses a zero period.
        let every = every.max(Duration::from_millis(1));
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(every);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                let Some(handle) = weak.upgrade() else {
                    break;
                };
                handle.shared.scan(|_| {});
            }
        })
    }

    fn register(
        &self,
        kind_index: u32,
        state: &KindState,
        stripe: usize,
        thread: std::thread::Thread,
        label: String,
        location: &'static Location<'static>,
    ) -> ResourceGuard {
        let shared = self.shared();
        let id = shared.ids.next(stripe);
        let acquired = Instant::now();
        let backtrace = state
            .capture_backtrace()
            .then(|| Arc::new(Backtrace::force_capture()));
        let shard = shared.registry.shard(id);
        let slot = shard.insert(LiveEntry {
            id,
            kind: kind_index,
            kind_name: state.name,
            label,
            acquired,
            location,
            thread,
            task: tokio::task::try_id(),
            backtrace,
            leak_reported: false,
        });
        ResourceGuard::new(Arc::clone(shard), id, slot, state.name, acquired, location)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Barrier;

    use super::*;
    use crate::config::LeakThreshold;

    #[test]
    fn a_concurrent_user_configuration_always_beats_the_built_in_default() {
        let user = KindConfig {
            leak_threshold: LeakThreshold::After(Duration::from_secs(7)),
            limit: Some(3),
            capture_backtrace: false,
        };
        let built_in = KindConfig {
            leak_threshold: LeakThreshold::Never,
            ..KindConfig::default()
        };
        // Whichever runs first, the user's configuration must be the one left in place.
        for _ in 0..200 {
            let tracker = ResourceTracker::new();
            let start = Barrier::new(2);
            std::thread::scope(|scope| {
                scope.spawn(|| {
                    start.wait();
                    tracker.configure_kind("race", user);
                });
                scope.spawn(|| {
                    start.wait();
                    tracker.configure_kind_if_unset("race", built_in);
                });
            });
            assert_eq!(tracker.kind_config("race"), Some(user));
        }
    }

    #[test]
    fn update_kind_sees_the_current_configuration_only_once_configured() {
        let tracker = ResourceTracker::new();
        drop(tracker.track("job", ""));
        let seen = std::cell::Cell::new(None);
        let applied = tracker.update_kind("job", |current| {
            seen.set(Some(current));
            KindConfig {
                limit: Some(2),
                ..KindConfig::default()
            }
        });
        assert_eq!(
            seen.get(),
            Some(None),
            "a kind only seen was never configured"
        );
        assert_eq!(tracker.kind_config("job"), Some(applied));
        let applied = tracker.update_kind("job", |current| {
            seen.set(Some(current));
            KindConfig {
                capture_backtrace: true,
                ..current.unwrap_or_default()
            }
        });
        assert_eq!(
            seen.get(),
            Some(Some(KindConfig {
                limit: Some(2),
                ..KindConfig::default()
            }))
        );
        assert_eq!((applied.limit, applied.capture_backtrace), (Some(2), true));
    }

    #[test]
    fn concurrent_updates_of_a_kind_are_never_lost() {
        let tracker = ResourceTracker::new();
        tracker.configure_kind(
            "counted",
            KindConfig {
                limit: Some(0),
                ..KindConfig::default()
            },
        );
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..250 {
                        tracker.update_kind("counted", |current| {
                            let current = current.unwrap_or_default();
                            KindConfig {
                                limit: current.limit.map(|limit| limit + 1),
                                ..current
                            }
                        });
                    }
                });
            }
        });
        assert_eq!(
            tracker
                .kind_config("counted")
                .and_then(|config| config.limit),
            Some(1000)
        );
    }

    #[test]
    fn the_built_in_default_applies_once_and_never_over_a_user_configuration() {
        let tracker = ResourceTracker::new();
        let built_in = KindConfig {
            leak_threshold: LeakThreshold::Never,
            ..KindConfig::default()
        };
        tracker.configure_kind_if_unset("listener", built_in);
        assert_eq!(tracker.kind_config("listener"), Some(built_in));
        let user = KindConfig {
            limit: Some(1),
            ..KindConfig::default()
        };
        tracker.configure_kind("listener", user);
        tracker.configure_kind_if_unset("listener", built_in);
        assert_eq!(tracker.kind_config("listener"), Some(user));
    }
}
