//! Leak reports and the periodic leak scanner.

use std::sync::Arc;
use std::time::Duration;

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
    /// was acquired inside a task: `task 12 on tokio-runtime-worker`.
    pub thread: Option<String>,
    /// The backtrace captured at acquisition, when the kind enables it.
    pub backtrace: Option<String>,
}

impl LeakReport {
    pub(crate) fn from_entry(entry: &LiveEntry, age: Duration) -> Self {
        let thread = entry
            .thread
            .name()
            .map_or_else(|| format!("{:?}", entry.thread.id()), str::to_owned);
        let thread = match entry.task {
            Some(task) => format!("task {task} on {thread}"),
            None => thread,
        };
        Self {
            id: entry.id,
            kind: entry.kind_name.to_owned(),
            label: entry.label.clone(),
            age,
            acquired_at: entry.location.to_string(),
            thread: Some(thread),
            backtrace: entry.backtrace.as_ref().map(ToString::to_string),
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
        let mut leaks = Vec::new();
        scan(self.shared(), |entry, age| {
            if age >= min_age {
                leaks.push(LeakReport::from_entry(entry, age));
            }
        });
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
                scan(&handle.shared, |_, _| {});
            }
        })
    }
}
