//! Per-kind statistics ([`ResourceStats`]) and the leak scan that feeds `leaked_now` and
//! `leaked_total`.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::kinds::{CounterTotals, KindState};
use crate::leaks::{LeakSnapshot, Leaked};
use crate::tracker::{ResourceTracker, Shared};

/// Statistics of one resource kind. Counters are cumulative since the tracker was created.
///
/// With the `serde` feature this serializes with durations as seconds (`f64`), under the
/// names `mean_lifetime_secs` and `max_lifetime_secs`.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct ResourceStats {
    /// The kind's name.
    pub kind: String,
    /// Resources of this kind alive now.
    pub active: u64,
    /// The most resources of this kind alive at once.
    pub peak: u64,
    /// Resources of this kind ever tracked.
    pub created: u64,
    /// Every release (guard dropped), closed or not.
    pub released: u64,
    /// The subset of `released` dropped without a deliberate close.
    pub released_without_close: u64,
    /// Resources alive now past the kind's leak threshold.
    pub leaked_now: u64,
    /// Resources ever seen past the threshold, each counted once, the first time a scan saw it.
    pub leaked_total: u64,
    /// The subset of `leaked_total` released afterwards (logged when it happens).
    pub leaked_released: u64,
    /// Mean lifetime of released resources (zero before the first release).
    #[cfg_attr(
        feature = "serde",
        serde(rename = "mean_lifetime_secs", serialize_with = "serialize_secs")
    )]
    pub mean_lifetime: Duration,
    /// Longest lifetime of a released resource.
    #[cfg_attr(
        feature = "serde",
        serde(rename = "max_lifetime_secs", serialize_with = "serialize_secs")
    )]
    pub max_lifetime: Duration,
    /// The kind's leak threshold in effect (the tracker's default for a kind configured with
    /// [`LeakThreshold::Default`](crate::LeakThreshold::Default)); `None` when its resources
    /// are never a leak.
    #[cfg_attr(
        feature = "serde",
        serde(rename = "leak_threshold_secs", serialize_with = "serialize_opt_secs")
    )]
    pub leak_threshold: Option<Duration>,
    /// The kind's concurrency limit, if any.
    pub limit: Option<usize>,
    /// `active / limit` when a limit exists (1.0 for a limit of 0).
    pub utilization: Option<f64>,
}

#[cfg(feature = "serde")]
pub(crate) fn serialize_secs<S: serde::Serializer>(
    duration: &Duration,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(duration.as_secs_f64())
}

#[cfg(feature = "serde")]
fn serialize_opt_secs<S: serde::Serializer>(
    duration: &Option<Duration>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match duration {
        Some(duration) => serializer.serialize_some(&duration.as_secs_f64()),
        None => serializer.serialize_none(),
    }
}

impl ResourceStats {
    /// The figures of `state`, whose live lease slots counted `leases` themselves, under a
    /// tracker whose default leak threshold is `default_threshold`.
    fn from_state(
        state: &KindState,
        default_threshold: Duration,
        leaked_now: u64,
        leases: CounterTotals,
    ) -> Self {
        // Counters are read one by one: exact when the kind is quiet, approximate (each figure
        // true at some instant of the read) while other threads track and release.
        let totals = state.totals().plus(leases);
        let released = totals.released;
        let released_without_close = totals.released_without_close;
        let lifetime_total = totals.lifetime_total_nanos;
        let active = state.active.0.load(Ordering::Relaxed);
        let created = totals.created;
        // In u128: the sum of lifetimes outgrows a u64 (see `CounterTotals`), the mean (at
        // most the longest lifetime) does not.
        let mean_lifetime = lifetime_total
            .checked_div(u128::from(released))
            .map_or(Duration::ZERO, |mean| {
                Duration::from_nanos(u64::try_from(mean).unwrap_or(u64::MAX))
            });
        let limit = state.limit();
        Self {
            kind: state.name.to_owned(),
            active,
            peak: state.peak.load(Ordering::Relaxed).max(active),
            created,
            released,
            released_without_close,
            leaked_now,
            leaked_total: state.leaked_total.load(Ordering::Relaxed),
            leaked_released: state.leaked_released.load(Ordering::Relaxed),
            mean_lifetime,
            max_lifetime: Duration::from_nanos(state.lifetime_max_nanos.load(Ordering::Relaxed)),
            leak_threshold: state.threshold(default_threshold),
            limit,
            utilization: limit.map(|limit| {
                if limit == 0 {
                    1.0
                } else {
                    active as f64 / limit as f64
                }
            }),
        }
    }
}

/// Visits every live resource and lease checkout past its kind's threshold. Marks and counts
/// the ones no scan saw before (`leaked_total`) and logs them once, after the locks are
/// released. `on_leak` runs under a registry lock: it must only copy cheap fields (see
/// [`LeakSnapshot`]), never format a backtrace.
pub(crate) fn scan(shared: &Shared, mut on_leak: impl FnMut(&Leaked<'_>)) {
    let now = Instant::now();
    let default = shared.default_leak_threshold;
    let mut newly_leaked = Vec::new();
    shared.registry.for_each(|entry| {
        let Some(kind) = shared.kinds.get(entry.kind) else {
            return;
        };
        let Some(threshold) = kind.threshold(default) else {
            return;
        };
        let age = now.saturating_duration_since(entry.acquired);
        if age <= threshold {
            return;
        }
        if !entry.leak_reported {
            entry.leak_reported = true;
            kind.leaked_total.fetch_add(1, Ordering::Relaxed);
            newly_leaked.push(LeakSnapshot::of(entry, age));
        }
        on_leak(&Leaked::guard(entry, age));
    });
    shared.leases.scan(shared, now, |leaked, newly| {
        if newly {
            newly_leaked.push(leaked.snapshot());
        }
        on_leak(leaked);
    });
    // Logged from snapshots after the locks are released; the backtrace is never formatted here.
    for leak in newly_leaked {
        tracing::warn!(
            id = leak.id,
            kind = leak.kind,
            label = %leak.label,
            acquired_at = %leak.location,
            age_secs = leak.age.as_secs_f64(),
            thread = leak.thread_text().as_deref().unwrap_or("not recorded"),
            "resource leaked: alive past its kind's threshold"
        );
    }
}

impl ResourceTracker {
    /// Statistics of every kind seen or configured, sorted by kind. Scans for leaks (to fill
    /// `leaked_now`), which also counts newly leaked resources in `leaked_total`.
    #[must_use]
    pub fn stats(&self) -> Vec<ResourceStats> {
        let shared = self.shared();
        let default = shared.default_leak_threshold;
        let leaked_now = leaked_now_by_kind(shared);
        let mut kinds = shared.kinds.all();
        kinds.sort_unstable_by_key(|(_, state)| state.name);
        shared.leases.totals_by_kind(|leases| {
            kinds
                .iter()
                .map(|(index, state)| {
                    let leaked = leaked_now.get(index).copied().unwrap_or(0);
                    let leased = leases.get(index).copied().unwrap_or_default();
                    ResourceStats::from_state(state, default, leaked, leased)
                })
                .collect()
        })
    }

    /// Statistics of one kind, if it was seen or configured. Scans for leaks like
    /// [`stats`](Self::stats).
    #[must_use]
    pub fn stats_for(&self, kind: &str) -> Option<ResourceStats> {
        let shared = self.shared();
        let (index, state) = shared
            .kinds
            .all()
            .into_iter()
            .find(|(_, state)| state.name == kind)?;
        let leaked = leaked_now_by_kind(shared).get(&index).copied().unwrap_or(0);
        Some(shared.leases.totals_by_kind(|leases| {
            let leased = leases.get(&index).copied().unwrap_or_default();
            ResourceStats::from_state(&state, shared.default_leak_threshold, leaked, leased)
        }))
    }
}

fn leaked_now_by_kind(shared: &Shared) -> HashMap<u32, u64> {
    let mut leaked_now = HashMap::new();
    scan(shared, |leaked| {
        *leaked_now.entry(leaked.kind).or_insert(0) += 1;
    });
    leaked_now
}
