//! Tracking resources, one held past its kind's leak threshold, and the leak report naming
//! the line that acquired it.
//!
//! ```text
//! cargo run -p resync-resource-manager --example leak_report
//! ```
//!
//! Tasks track short-lived `upload`s (released at once) and `export_job`s, whose kind is
//! configured with a leak threshold of 300 ms and a limit of four at a time. One export job
//! is kept: once it is older than the threshold the tracker reports it as a leak, with its
//! label, age, the `file:line:column` and the task that acquired it. The example then prints
//! the per-kind statistics and the health verdict, releases the job (a leak released late is
//! counted too), and exits non-zero when the report does not name the acquiring line.

use std::error::Error;
use std::time::{Duration, Instant};

use resync_resource_manager::{KindConfig, LeakThreshold, ResourceTracker};

/// The export jobs' leak threshold.
const THRESHOLD: Duration = Duration::from_millis(300);
/// How long the example waits at most for the leak to show.
const PATIENCE: Duration = Duration::from_secs(10);

type BoxError = Box<dyn Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let tracker = ResourceTracker::new();
    tracker.configure_kind(
        "export_job",
        KindConfig {
            leak_threshold: LeakThreshold::After(THRESHOLD),
            limit: Some(4),
            ..KindConfig::default()
        },
    );

    // Work that releases what it takes: uploads and jobs tracked and dropped.
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..4 {
        let tracker = tracker.clone();
        tasks.spawn(async move {
            for n in 0..25 {
                let _upload = tracker.track("upload", format!("upload {task}-{n}"));
                let _job = tracker.try_track("export_job", format!("export {task}-{n}"));
                tokio::task::yield_now().await;
            }
        });
    }
    while let Some(finished) = tasks.join_next().await {
        finished?;
    }

    // One job that is kept: the report must name this line.
    let line = line!() + 1;
    let kept = tracker.track("export_job", "nightly export to s3://reports");
    println!(
        "holding `nightly export to s3://reports` past the {} ms threshold…",
        THRESHOLD.as_millis()
    );

    // Leaks are found by a scan (`leaks()` runs one; a server runs `spawn_leak_scanner`).
    let started = Instant::now();
    let leaks = loop {
        let leaks = tracker.leaks();
        if !leaks.is_empty() {
            break leaks;
        }
        if started.elapsed() > PATIENCE {
            return Err(format!("no leak reported within {PATIENCE:?}").into());
        }
        tokio::time::sleep(THRESHOLD / 10).await;
    };

    println!("\nleak report ({}):", leaks.len());
    for leak in &leaks {
        println!(
            "  #{} {} `{}` held {:.2} s (threshold {} ms)\n      acquired at {}{}",
            leak.id,
            leak.kind,
            leak.label,
            leak.age.as_secs_f64(),
            THRESHOLD.as_millis(),
            leak.acquired_at,
            leak.thread
                .as_deref()
                .map_or_else(String::new, |thread| format!(" ({thread})")),
        );
    }

    let verdict = tracker.health();
    println!("\nhealth: {}", verdict.status);
    for reason in &verdict.reasons {
        println!("  {} — {}", reason.code, reason.message);
    }

    drop(kept);
    println!("\nper kind, after the kept job was released:");
    for stats in tracker.stats() {
        println!(
            "  {:<10} created {:>3}  released {:>3}  active {}  peak {}  leaked {} (released late {})  mean lifetime {:.3} ms",
            stats.kind,
            stats.created,
            stats.released,
            stats.active,
            stats.peak,
            stats.leaked_total,
            stats.leaked_released,
            stats.mean_lifetime.as_secs_f64() * 1e3,
        );
    }

    let expected = format!("{}:{line}:", file!());
    match leaks.as_slice() {
        [leak] if leak.acquired_at.starts_with(&expected) => {
            println!(
                "\nok: the leak names its acquiring line, {}",
                leak.acquired_at
            );
            Ok(())
        }
        other => Err(format!("expected one leak acquired at {expected}…, got {other:?}").into()),
    }
}
