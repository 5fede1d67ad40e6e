//! [`Shared`]: the state a tracker, its clones and its guards share, and the work that spans
//! all of it: the leak scan (live guards and lease checkouts), leak reports and per-kind
//! statistics. The public methods on [`ResourceTracker`](crate::ResourceTracker) call these.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::kinds::KindTable;
use crate::leaks::{LeakReport, LeakSnapshot, Leaked};
use crate::lease::LeaseRegistry;
use crate::registry::{IdSequences, Registry};
use crate::stats::ResourceStats;

/// State shared by the tracker and every guard and lease slot (they keep it alive, not the
/// leak scanner).
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) default_leak_threshold: Duration,
    pub(crate) kinds: Arc<KindTable>,
    pub(crate) registry: Registry,
    pub(crate) ids: Arc<IdSequences>,
    pub(crate) leases: Arc<LeaseRegistry>,
}

impl Shared {
    /// Empty state whose kinds leak after `default_leak_threshold` unless configured.
    pub(crate) fn new(default_leak_threshold: Duration) -> Self {
        let kinds = Arc::new(KindTable::new());
        let ids = Arc::new(IdSequences::new());
        Self {
            default_leak_threshold,
            registry: Registry::new(&kinds),
            leases: Arc::new(LeaseRegistry::new(Arc::clone(&kinds), Arc::clone(&ids))),
            kinds,
            ids,
        }
    }

    /// Visits every live resource and lease checkout past its kind's threshold. Marks and
    /// counts the ones no scan saw before (`leaked_total`) and logs them once, after the locks
    /// are released. `on_leak` runs under a registry lock: it must only copy cheap fields
    /// (see [`LeakSnapshot`]), never format a backtrace.
    pub(crate) fn scan(&self, mut on_leak: impl FnMut(&Leaked<'_>)) {
        let now = Instant::now();
        let default = self.default_leak_threshold;
        let mut newly_leaked = Vec::new();
        self.registry.for_each(|entry| {
            let Some(kind) = self.kinds.get(entry.kind) else {
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
        self.leases.scan(default, now, |leaked, newly| {
            if newly {
                newly_leaked.push(leaked.snapshot());
            }
            on_leak(leaked);
        });
        // Logged from snapshots after the locks are released; the backtrace is never
        // formatted here.
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

    /// The leaks at least `min_age` old, oldest first (a scan: newly seen ones are counted).
    pub(crate) fn leaks_older_than(&self, min_age: Duration) -> Vec<LeakReport> {
        let mut snapshots = Vec::new();
        self.scan(|leaked| {
            if leaked.age >= min_age {
                snapshots.push(leaked.snapshot());
            }
        });
        // The shard locks are released: format (and resolve backtraces) now.
        let mut leaks: Vec<LeakReport> = snapshots
            .into_iter()
            .map(LeakSnapshot::into_report)
            .collect();
        leaks.sort_by(|a, b| b.age.cmp(&a.age).then(a.id.cmp(&b.id)));
        leaks
    }

    /// Statistics of every kind, sorted by kind (a scan fills `leaked_now`).
    pub(crate) fn stats(&self) -> Vec<ResourceStats> {
        let default = self.default_leak_threshold;
        let leaked_now = self.leaked_now_by_kind();
        let mut kinds = self.kinds.all();
        kinds.sort_unstable_by_key(|(_, state)| state.name);
        self.leases.totals_by_kind(|leases| {
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

    /// Statistics of the kind named `kind`, if it is known (a scan fills `leaked_now`).
    pub(crate) fn stats_for(&self, kind: &str) -> Option<ResourceStats> {
        let (index, state) = self
            .kinds
            .all()
            .into_iter()
            .find(|(_, state)| state.name == kind)?;
        let leaked = self.leaked_now_by_kind().get(&index).copied().unwrap_or(0);
        Some(self.leases.totals_by_kind(|leases| {
            let leased = leases.get(&index).copied().unwrap_or_default();
            ResourceStats::from_state(&state, self.default_leak_threshold, leaked, leased)
        }))
    }

    fn leaked_now_by_kind(&self) -> HashMap<u32, u64> {
        let mut leaked_now = HashMap::new();
        self.scan(|leaked| {
            *leaked_now.entry(leaked.kind).or_insert(0) += 1;
        });
        leaked_now
    }
}
