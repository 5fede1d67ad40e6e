//! Per-kind statistics ([`ResourceStats`]): the figures of one kind's counters.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::kinds::{CounterTotals, KindState};

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
        serde(
            rename = "mean_lifetime_secs",
            serialize_with = "crate::serde_secs::serialize_secs"
        )
    )]
    pub mean_lifetime: Duration,
    /// Longest lifetime of a released resource.
    #[cfg_attr(
        feature = "serde",
        serde(
            rename = "max_lifetime_secs",
            serialize_with = "crate::serde_secs::serialize_secs"
        )
    )]
    pub max_lifetime: Duration,
    /// The kind's leak threshold in effect (the tracker's default for a kind configured with
    /// [`LeakThreshold::Default`](crate::LeakThreshold::Default)); `None` when its resources
    /// are never a leak.
    #[cfg_attr(
        feature = "serde",
        serde(
            rename = "leak_threshold_secs",
            serialize_with = "crate::serde_secs::serialize_opt_secs"
        )
    )]
    pub leak_threshold: Option<Duration>,
    /// The kind's concurrency limit, if any.
    pub limit: Option<usize>,
    /// `active / limit` when a limit exists (1.0 for a limit of 0).
    pub utilization: Option<f64>,
}

impl ResourceStats {
    /// The figures of `state`, whose live lease slots counted `leases` themselves, under a
    /// tracker whose default leak threshold is `default_threshold`.
    pub(crate) fn from_state(
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
        let active = state.active.load(Ordering::Relaxed);
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
