//! Leak reports and the periodic leak scanner.

use std::backtrace::Backtrace;
use std::panic::Location;
use std::sync::Arc;
use std::time::Duration;

use crate::lease::LeaseCell;
use crate::registry::LiveEntry;
use crate::stats::scan;
use crate::tracker::ResourceTracker;

/// A resource alive past its kind's leak threshold.
///
/// With the `serde` feature this serializes with `age` as seconds (`f64`) named `age_secs`.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct LeakReport {
    /// The resource's id.
    pub id: u64,
    /// The resource's kind.
    pub kind: String,
    /// The resource's label.
    pub label: String,
    /// How long it has been alive.
    #[cfg_attr(
        feature = "serde",
        serde(rename = "age_secs", serialize_with = "crate::stats::serialize_secs")
    )]
    pub age: Duration,
    /// The source location that acquired it, as `file:line:column`.
    pub acquired_at: String,
    /// The acquiring thread (name, or id when unnamed), prefixed by the tokio task id when it
    /// was acquired inside a task: `task 12 on tokio-runtime-worker`. `None` for a
    /// [`LeaseSlot`](crate::LeaseSlot) checkout (its checkout records no thread).
    pub thread: Option<String>,
    /// The backtrace captured at acquisition, when the kind enables it (never for a lease
    /// slot checkout).
    pub backtrace: Option<String>,
}

/// What a leak report needs from a live entry, copied under the shard lock: cheap fields and
/// `Arc`s only. Formatting (thread name, location, and above all the backtrace, whose symbol
/// resolution can take hundreds of milliseconds) happens in
/// [`into_report`](Self::into_report), after the lock is released.
#[derive(Debug)]
pub(crate) struct LeakSnapshot {
    pub(crate) id: u64,
    pub(crate) kind: &'static str,
    pub(crate) label: String,
    pub(crate) age: Duration,
    pub(crate) location: &'static Location<'static>,
    pub(crate) thread: Option<std::thread::Thread>,
    pub(crate) task: Option<tokio::task::Id>,
    pub(crate) backtrace: Option<Arc<Backtrace>>,
}

/// A resource a scan found past its threshold: a live guard's entry or a lease checkout.
#[derive(Debug)]
pub(crate) struct Leaked<'a> {
    /// Index of its kind in the tracker's kind table.
    pub(crate) kind: u32,
    pub(crate) age: Duration,
    source: LeakSource<'a>,
}

#[derive(Debug)]
enum LeakSource<'a> {
    Guard(&'a LiveEntry),
    Lease {
        cell: &'a LeaseCell,
        location: &'static Location<'static>,
    },
}

impl<'a> Leaked<'a> {
    pub(crate) fn guard(entry: &'a LiveEntry, age: Duration) -> Self {
        Self {
            kind: entry.kind,
            age,
            source: LeakSource::Guard(entry),
        }
    }

    pub(crate) fn lease(
        cell: &'a LeaseCell,
        kind: u32,
        location: &'static Location<'static>,
        age: Duration,
    ) -> Self {
        Self {
            kind,
            age,
            source: LeakSource::Lease { cell, location },
        }
    }

    /// Copies what a report needs (called under a lock: no formatting).
    pub(crate) fn snapshot(&self) -> LeakSnapshot {
        match self.source {
            LeakSource::Guard(entry) => LeakSnapshot::of(entry, self.age),
            LeakSource::Lease { cell, location } => LeakSnapshot {
                id: cell.id,
                kind: cell.kind_name,
                label: cell.label.clone(),
                age: self.age,
                location,
                thread: None,
                task: None,
                backtrace: None,
            },
        }
    }
}

impl LeakSnapshot {
    /// Copies `entry` (called under its shard's lock: no formatting here).
    pub(crate) fn of(entry: &LiveEntry, age: Duration) -> Self {
        Self {
            id: entry.id,
            kind: entry.kind_name,
            label: entry.label.clone(),
            age,
            location: entry.location,
            thread: Some(entry.thread.clone()),
            task: entry.task,
            backtrace: entry.backtrace.clone(),
        }
    }

    /// The acquiring thread (name, or id when unnamed), prefixed by the tokio task id; `None`
    /// when it was not recorded (lease checkouts).
    pub(crate) fn thread_text(&self) -> Option<String> {
        let thread = self.thread.as_ref()?;
        let name = thread
            .name()
            .map_or_else(|| format!("{:?}", thread.id()), str::to_owned);
        Some(match self.task {
            Some(task) => format!("task {task} on {name}"),
            None => name,
        })
    }

    /// Formats the report (call it without holding any shard lock).
    pub(crate) fn into_report(self) -> LeakReport {
        LeakReport {
            thread: self.thread_text(),
            id: self.id,
            kind: self.kind.to_owned(),
            label: self.label,
            age: self.age,
            acquired_at: self.location.to_string(),
            backtrace: self.backtrace.as_deref().map(ToString::to_string),
        }
    }
}

impl ResourceTracker {
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
        let mut snapshots = Vec::new();
        scan(self.shared(), |leaked| {
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
                scan(&handle.shared, |_| {});
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    #[test]
    fn snapshot_shares_the_backtrace_and_the_report_formats_it_afterwards() {
        let backtrace = Arc::new(Backtrace::force_capture());
        let entry = LiveEntry {
            id: 7,
            kind: 0,
            kind_name: "export_job",
            label: "nightly".to_owned(),
            acquired: Instant::now(),
            location: Location::caller(),
            thread: std::thread::current(),
            task: None,
            backtrace: Some(Arc::clone(&backtrace)),
            leak_reported: false,
        };
        let age = Duration::from_secs(1);
        let snapshot = LeakSnapshot::of(&entry, age);
        let shared = snapshot.backtrace.as_ref().expect("backtrace copied");
        assert!(
            Arc::ptr_eq(shared, &backtrace),
            "the snapshot shares the captured backtrace instead of formatting it"
        );

        let report = snapshot.into_report();
        assert_eq!(report.backtrace, Some(backtrace.to_string()));
        assert_eq!((report.id, report.kind.as_str()), (7, "export_job"));
        assert_eq!(report.acquired_at, entry.location.to_string());
        assert_eq!(report.age, age);
        assert!(report.thread.is_some_and(|thread| !thread.is_empty()));
    }
}
