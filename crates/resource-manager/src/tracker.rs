//! [`ResourceTracker`]: registers resources, per-kind configuration and counters.

use std::backtrace::Backtrace;
use std::panic::Location;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::guard::ResourceGuard;
use crate::kinds::{KindState, KindTable};
use crate::lease::LeaseRegistry;
use crate::locations::LocationTable;
use crate::registry::{stripe_of, IdSequences, LiveEntry, Registry};

/// Leak threshold used by [`ResourceTracker::new`], in seconds (the `LEAK_THRESHOLD_SECS`
/// setting's default).
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
    /// [`ResourceTracker::try_track`]. A limit of 0 refuses every `try_track`.
    pub limit: Option<usize>,
    /// Capture a backtrace at every acquisition of this kind (costly: for hunting a leak).
    pub capture_backtrace: bool,
}

/// Knows every tracked resource: counts them per kind and reports the ones held too long.
///
/// Cloning is cheap (an `Arc`); clones share the same state. There is no global tracker:
/// create one and hand clones to whatever acquires resources.
#[derive(Clone, Debug)]
pub struct ResourceTracker {
    pub(crate) handle: Arc<TrackerHandle>,
}

/// What tracker clones share; the leak scanner holds it weakly so it stops with the last clone.
#[derive(Debug)]
pub(crate) struct TrackerHandle {
    pub(crate) shared: Arc<Shared>,
}

/// State shared by the tracker and every guard (guards keep it alive, not the scanner).
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) default_leak_threshold: Duration,
    pub(crate) kinds: Arc<KindTable>,
    pub(crate) registry: Registry,
    pub(crate) ids: IdSequences,
    /// Time zero of lease checkouts (they store nanoseconds since it).
    pub(crate) epoch: Instant,
    pub(crate) locations: LocationTable,
    pub(crate) leases: LeaseRegistry,
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
        let kinds = Arc::new(KindTable::new());
        Self {
            handle: Arc::new(TrackerHandle {
                shared: Arc::new(Shared {
                    default_leak_threshold: threshold,
                    registry: Registry::new(&kinds),
                    kinds,
                    ids: IdSequences::new(),
                    epoch: Instant::now(),
                    locations: LocationTable::new(),
                    leases: LeaseRegistry::new(),
                }),
            }),
        }
    }

    /// The instant this tracker counts time from (lease slots take nanoseconds since it).
    #[must_use]
    pub fn epoch(&self) -> Instant {
        self.shared().epoch
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.handle.shared
    }

    /// The threshold used by kinds configured with [`LeakThreshold::Default`].
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
        let stripe = stripe_of(&thread);
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
        let stripe = stripe_of(&thread);
        let limit = state.limit();
        if !state.acquire(stripe, limit) {
            return Err(Error::LimitReached {
                kind,
                limit: limit.unwrap_or(usize::MAX),
            });
        }
        Ok(self.register(index, &state, stripe, thread, label.into(), location))
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
