//! Writing history samples to Postgres through a monitored pool, without ever holding up the
//! in-memory history: samples go through a small queue to a writer task, each write bounded
//! by a timeout; a full queue drops the sample and counts it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use resync_perf_core::sync::lock;
use resync_perf_core::{HealthReason, HealthStatus, HealthVerdict};
use resync_pool_optimizer::{MonitoredPool, PostgresManager};
use tokio::sync::mpsc;

use super::HistorySample;
use crate::source::{BoxFuture, HealthSource};

/// The table samples are written to (created at start-up when missing).
pub const HISTORY_TABLE: &str = "resync_history";

/// Samples waiting to be written; more are dropped (and counted) rather than queued.
const QUEUE: usize = 64;
/// Rows older than the ring's span are deleted every this many writes.
const PRUNE_EVERY: u64 = 10;

/// What the writer has done so far.
#[derive(Debug, Default)]
struct Progress {
    written: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    consecutive_failures: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// History samples persisted to Postgres (`DATABASE_URL`), one JSONB row per sample in
/// [`HISTORY_TABLE`]; rows older than the in-memory ring's span are deleted.
///
/// A database that fails or hangs costs at most `timeout` per sample in the writer task and
/// shows as a degraded `history:postgres` component; the in-memory history and the server
/// are never held up.
#[derive(Debug, Clone)]
pub struct PostgresHistory {
    queue: mpsc::Sender<HistorySample>,
    progress: Arc<Progress>,
    timeout: Duration,
}

impl PostgresHistory {
    /// Starts the writer task on the current runtime: it creates the table, then writes
    /// every queued sample, each attempt (checkout, create, insert, prune) bounded by
    /// `timeout`, and deletes rows older than `span`.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime (as `tokio::spawn`).
    #[must_use]
    pub fn start(pool: MonitoredPool<PostgresManager>, span: Duration, timeout: Duration) -> Self {
        let (queue, mut receiver) = mpsc::channel::<HistorySample>(QUEUE);
        let progress = Arc::new(Progress::default());
        let writer = Arc::clone(&progress);
        tokio::spawn(async move {
            let mut table_ready = false;
            while let Some(sample) = receiver.recv().await {
                let attempt = write(&pool, &sample, span, &mut table_ready, &writer);
                let outcome = match tokio::time::timeout(timeout, attempt).await {
                    Ok(outcome) => outcome,
                    Err(_elapsed) => Err(format!("write did not finish within {timeout:?}")),
                };
                writer.record(outcome);
            }
        });
        Self {
            queue,
            progress,
            timeout,
        }
    }

    /// Queues a sample; when the queue is full (the database is slow) it is dropped and
    /// counted.
    pub fn push(&self, sample: HistorySample) {
        if self.queue.try_send(sample).is_err() {
            self.progress.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Samples written so far.
    #[must_use]
    pub fn written(&self) -> u64 {
        self.progress.written.load(Ordering::Relaxed)
    }

    /// Writes that failed or timed out so far.
    #[must_use]
    pub fn failed(&self) -> u64 {
        self.progress.failed.load(Ordering::Relaxed)
    }

    /// Samples dropped because the queue was full.
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.progress.dropped.load(Ordering::Relaxed)
    }

    fn verdict(&self) -> HealthVerdict {
        let progress = &self.progress;
        let failing = progress.consecutive_failures.load(Ordering::Relaxed);
        let mut verdict = HealthVerdict::default();
        if failing > 0 {
            let error = lock(&progress.last_error).clone().unwrap_or_default();
            verdict.push(HealthReason::new(
                "history.write_failing",
                HealthStatus::Degraded,
                format!(
                    "{failing} history write(s) in a row failed (each bounded by {:?}): {error}",
                    self.timeout
                ),
                failing as f64,
                0.0,
            ));
        }
        let dropped = self.dropped();
        if dropped > 0 && failing > 0 {
            verdict.push(HealthReason::new(
                "history.samples_dropped",
                HealthStatus::Degraded,
                format!("{dropped} sample(s) dropped while the database was slow"),
                dropped as f64,
                0.0,
            ));
        }
        verdict
    }
}

impl Progress {
    fn record(&self, outcome: Result<(), String>) {
        match outcome {
            Ok(()) => {
                self.written.fetch_add(1, Ordering::Relaxed);
                if self.consecutive_failures.swap(0, Ordering::Relaxed) > 0 {
                    tracing::info!("history samples are written to Postgres again");
                }
            }
            Err(error) => {
                // One warning when writes start failing, not one per sample.
                if self.consecutive_failures.fetch_add(1, Ordering::Relaxed) == 0 {
                    tracing::warn!(%error, "history samples cannot be written to Postgres");
                }
                self.failed.fetch_add(1, Ordering::Relaxed);
                *lock(&self.last_error) = Some(error);
            }
        }
    }
}

async fn write(
    pool: &MonitoredPool<PostgresManager>,
    sample: &HistorySample,
    span: Duration,
    table_ready: &mut bool,
    progress: &Progress,
) -> Result<(), String> {
    let json = serde_json::to_string(sample).map_err(|error| error.to_string())?;
    let conn = pool.get().await.map_err(|error| error.to_string())?;
    if !*table_ready {
        conn.batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {HISTORY_TABLE} (
                 taken_at timestamptz NOT NULL,
                 sample jsonb NOT NULL
             );
             CREATE INDEX IF NOT EXISTS {HISTORY_TABLE}_taken_at ON {HISTORY_TABLE} (taken_at);"
        ))
        .await
        .map_err(|error| error.to_string())?;
        *table_ready = true;
    }
    conn.execute(
        &format!("INSERT INTO {HISTORY_TABLE} (taken_at, sample) VALUES (to_timestamp($1), $2::text::jsonb)"),
        &[&sample.unix_seconds, &json],
    )
    .await
    .map_err(|error| error.to_string())?;
    if progress.written.load(Ordering::Relaxed) % PRUNE_EVERY == 0 {
        conn.execute(
            &format!("DELETE FROM {HISTORY_TABLE} WHERE taken_at < to_timestamp($1)"),
            &[&(sample.unix_seconds - span.as_secs_f64())],
        )
        .await
        .map_err(|error| error.to_string())?;
    }
    Ok(())
}

impl HealthSource for PostgresHistory {
    fn name(&self) -> String {
        "history:postgres".to_owned()
    }

    fn check(&self) -> BoxFuture<'_, HealthVerdict> {
        Box::pin(async move { self.verdict() })
    }
}
