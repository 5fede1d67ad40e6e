//! Leak reports, and what a scan copies of a leaked resource to make one.

use std::backtrace::Backtrace;
use std::panic::Location;
use std::sync::Arc;
use std::time::Duration;

use crate::registry::LiveEntry;

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
        serde(
            rename = "age_secs",
            serialize_with = "crate::serde_secs::serialize_secs"
        )
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
    /// A lease slot's checkout: the slot's id, kind and label, the checkout's location.
    Lease {
        id: u64,
        kind_name: &'static str,
        label: &'a str,
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
        id: u64,
        kind: u32,
        kind_name: &'static str,
        label: &'a str,
        location: &'static Location<'static>,
        age: Duration,
    ) -> Self {
        Self {
            kind,
            age,
            source: LeakSource::Lease {
                id,
                kind_name,
                label,
                location,
            },
        }
    }

    /// Copies what a report needs (called under a lock: no formatting).
    pub(crate) fn snapshot(&self) -> LeakSnapshot {
        match self.source {
            LeakSource::Guard(entry) => LeakSnapshot::of(entry, self.age),
            LeakSource::Lease {
                id,
                kind_name,
                label,
                location,
            } => LeakSnapshot {
                id,
                kind: kind_name,
                label: label.to_owned(),
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
