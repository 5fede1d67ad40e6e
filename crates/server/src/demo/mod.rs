//! `resync demo`: the whole system on one machine with one command.
//!
//! It starts, in this process:
//!
//! 1. a **sample upstream** (`demo/upstream.rs`) on a free loopback port: a stand-in for the
//!    upstream API that answers JSON plan and job documents after `--upstream-latency-ms`,
//!    padded to `--body-bytes`, and says in every answer that it is a sample;
//! 2. the server, built from the normal settings (`settings.toml`, `--config`, `RESYNC_*`)
//!    with `TWS_BASE_URL` pointing at the sample upstream, on a free loopback port (or
//!    `--bind`); with no `DATABASE_URL` or `REDIS_URL` it runs without them;
//! 3. a bounded load (`demo/load.rs`) through the gateway (`/tws/*`) for `--secs`:
//!    `--concurrency` workers, keys drawn from `--keys` by a Zipf distribution of exponent
//!    0.99, a share (`--write-ratio`) of them writes, with a progress bar;
//!
//! then prints the report (`demo/report.rs`): what the load saw, the gateway's figures, the
//! response cache, the pools, the health verdict and the recommendations with their evidence,
//! and says where the dashboard is. With `--stay` it keeps serving until Ctrl-C (SIGINT or
//! SIGTERM); otherwise it stops the server (draining it) and the sample upstream, and returns.

mod load;
mod report;
mod upstream;

use std::future::Future;
use std::io::IsTerminal;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use resync_perf_api::RecommendationView;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::app::{App, BuildError};
use crate::serve::{serve_app, ServeError};
use crate::settings::{Settings, SettingsError};

/// The Zipf exponent of the load's key popularity.
pub const ZIPF_EXPONENT: f64 = 0.99;

/// How long the sample upstream may take to finish its exchanges once the server is down.
const UPSTREAM_DRAIN: Duration = Duration::from_secs(5);

/// How often the progress bar (or, without a terminal, a progress line) is updated.
const PROGRESS_TICK: Duration = Duration::from_millis(250);

/// Seconds between two progress lines when standard error is not a terminal.
const PROGRESS_LINE_EVERY: Duration = Duration::from_secs(5);

/// The options of `resync demo`.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct DemoArgs {
    /// Seconds of load through the gateway.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub secs: u64,
    /// Workers sending requests, each with one request in flight.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub concurrency: u64,
    /// Distinct documents the load asks for (popularity: Zipf, exponent 0.99).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub keys: u64,
    /// Share of requests that are writes (`PUT`), which make the document's cached answers
    /// unreachable.
    #[arg(long, default_value_t = 0.02, value_parser = parse_ratio)]
    pub write_ratio: f64,
    /// Milliseconds the sample upstream takes to answer.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub upstream_latency_ms: u64,
    /// Bytes of each document the sample upstream serves.
    #[arg(long, default_value_t = 2048, value_parser = clap::value_parser!(u64).range(0..=8 * 1024 * 1024))]
    pub body_bytes: u64,
    /// Listen on this loopback address (e.g. 127.0.0.1:8000) instead of a free port.
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<SocketAddr>,
    /// Keep serving after the report (the dashboard stays up) until Ctrl-C.
    #[arg(long)]
    pub stay: bool,
}

fn parse_ratio(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(ratio) if (0.0..=1.0).contains(&ratio) => Ok(ratio),
        _ => Err(format!("`{text}` is not a ratio between 0 and 1")),
    }
}

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// `--bind` named an address other than a loopback one.
    #[error("--bind {0}: the demo listens on a loopback address only (127.0.0.1, ::1)")]
    NotLoopback(SocketAddr),
    /// The sample upstream could not listen.
    #[error("cannot start the sample upstream: {0}")]
    Upstream(#[source] std::io::Error),
    /// The server's address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The settings, with the demo's upstream, cannot be used.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// A component cannot be built from the settings.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// Serving failed.
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// Not one request through the gateway was answered with a 2xx.
    #[error("no request through the gateway succeeded ({errors} failed): see the log above")]
    NoTraffic {
        /// Requests that failed.
        errors: u64,
    },
}

/// Runs the demo with `settings` (loaded as for `serve`; `TWS_BASE_URL` and `BIND_ADDR` are
/// replaced) until the load is done — or, with `--stay`, until `shutdown` resolves — and
/// prints its report on standard output. `shutdown` also ends the load early.
///
/// # Errors
///
/// When the sample upstream or the server cannot start, serving fails, or no request of the
/// load succeeded.
pub async fn run(
    mut settings: Settings,
    args: &DemoArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), DemoError> {
    let bind = args
        .bind
        .unwrap_or_else(|| SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
    if !bind.ip().is_loopback() {
        return Err(DemoError::NotLoopback(bind));
    }
    let shape = upstream::Shape {
        latency: Duration::from_millis(args.upstream_latency_ms),
        body_bytes: usize::try_from(args.body_bytes).unwrap_or(usize::MAX),
    };
    let sample = upstream::SampleUpstream::start(shape)
        .await
        .map_err(DemoError::Upstream)?;

    let listener = TcpListener::bind(bind)
        .await
        .map_err(|source| DemoError::Bind { addr: bind, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| DemoError::Bind { addr: bind, source })?;
    settings.tws_base_url = sample.base_url();
    settings.bind_addr = local.to_string();
    settings.validate()?;
    let app = App::build(&settings)?;
    let service = app.service.clone();
    let responses = app.responses.clone();

    // One flag for "stop": the signal sets it; the load, `--stay` and the server watch it.
    let (stop_tx, stop_rx) = watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    {
        let stop_tx = Arc::clone(&stop_tx);
        tokio::spawn(async move {
            shutdown.await;
            stop_tx.send_replace(true);
        });
    }
    let server_stop = {
        let mut stop = stop_rx.clone();
        async move {
            let _ = stop.wait_for(|stopped| *stopped).await;
        }
    };
    let server = tokio::spawn(serve_app(listener, app, server_stop));

    let plan = load::Plan {
        target: local,
        duration: Duration::from_secs(args.secs),
        concurrency: usize::try_from(args.concurrency).unwrap_or(1),
        keys: usize::try_from(args.keys).unwrap_or(usize::MAX),
        exponent: ZIPF_EXPONENT,
        write_ratio: args.write_ratio,
    };
    print_intro(&settings, args, &sample.base_url(), local);

    let tally = Arc::new(load::Tally::default());
    let started = Instant::now();
    let progress = spawn_progress(Arc::clone(&tally), plan.duration, stop_rx.clone());
    let totals = load::run(plan, Arc::clone(&tally), stop_rx.clone()).await;
    let elapsed = started.elapsed();
    // It stops by itself at the end of the time or on the stop flag, a tick later at most.
    let _ = progress.await;

    // A history sample at the end of the load, so the dashboard's last point is this one.
    service.sample().await;
    let mut advice: Vec<RecommendationView> = service
        .cache_recommendations()
        .into_iter()
        .map(RecommendationView::from)
        .collect();
    advice.extend(
        service
            .pool_recommendations()
            .into_iter()
            .map(RecommendationView::from),
    );
    let report = report::Report {
        elapsed,
        concurrency: plan.concurrency,
        totals,
        gateway: service.gateway().map(|gateway| gateway.metrics()),
        l2: service.gateway_l2().map(|l2| l2.metrics()),
        cache: responses.settled_metrics().await,
        pools: service
            .pool_manager()
            .map(|pools| pools.reports())
            .unwrap_or_default(),
        upstream_reads: sample.counts().reads(),
        upstream_writes: sample.counts().writes(),
        health: service.health().await,
        advice,
    };
    print!("{}", report.render());
    println!("\ndashboard: http://{local}/   report: http://{local}/api/performance/report");

    if args.stay && !*stop_rx.borrow() {
        println!("serving until Ctrl-C (--stay); the load has stopped");
        let mut stop = stop_rx.clone();
        let _ = stop.wait_for(|stopped| *stopped).await;
    }
    stop_tx.send_replace(true);
    let served = server
        .await
        .map_err(|join| DemoError::Serve(ServeError::Serve(std::io::Error::other(join))))?;
    sample.stop(UPSTREAM_DRAIN).await;
    served?;
    if totals.ok == 0 {
        return Err(DemoError::NoTraffic {
            errors: totals.errors,
        });
    }
    Ok(())
}

fn on_off(url: &str) -> &'static str {
    if url.is_empty() {
        "off"
    } else {
        "on"
    }
}

fn print_intro(settings: &Settings, args: &DemoArgs, upstream: &str, local: SocketAddr) {
    println!(
        "resync demo: the server, a sample upstream and a Zipf load through the gateway for {} s",
        args.secs
    );
    println!(
        "  sample upstream  {upstream}  a stand-in for the upstream API (JSON plans and jobs, {} ms, {} B each), not a real one",
        args.upstream_latency_ms, args.body_bytes
    );
    println!(
        "  server           http://{local}  (TWS_BASE_URL = the sample upstream; DATABASE_URL {}, REDIS_URL {}, GATEWAY_L2 {})",
        on_off(&settings.database_url),
        on_off(&settings.redis_url),
        if settings.gateway_l2 { "on" } else { "off" },
    );
    println!(
        "  dashboard        http://{local}/  (live while the load runs; a history point every {} s, PERF_SAMPLE_INTERVAL)",
        settings.perf_sample_interval
    );
    if !settings.perf_api_token.is_empty() {
        println!("                   PERF_API_TOKEN is set: the API and the dashboard ask for it");
    }
    println!(
        "  load             {} workers, {} documents (Zipf {ZIPF_EXPONENT}), {:.0} % writes, on http://{local}/tws/…",
        args.concurrency,
        args.keys,
        args.write_ratio * 100.0
    );
}

/// Updates a progress bar on standard error while the load runs; without a terminal, prints
/// a progress line every few seconds instead.
fn spawn_progress(
    tally: Arc<load::Tally>,
    duration: Duration,
    stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let terminal = std::io::stderr().is_terminal();
    let bar = if terminal {
        ProgressBar::with_draw_target(Some(duration.as_secs()), ProgressDrawTarget::stderr())
    } else {
        ProgressBar::hidden()
    };
    if let Ok(style) = ProgressStyle::with_template("{spinner} {pos:>3}/{len} s [{bar:20}] {msg}") {
        bar.set_style(style.progress_chars("=> "));
    }
    tokio::spawn(async move {
        let started = Instant::now();
        let mut last_line = started;
        let mut ticks = tokio::time::interval(PROGRESS_TICK);
        loop {
            ticks.tick().await;
            let elapsed = started.elapsed().min(duration);
            let totals = tally.totals();
            let message = format!(
                "{} req, {:.0}/s, hit rate {}, {} errors",
                totals.requests(),
                totals.requests() as f64 / elapsed.as_secs_f64().max(PROGRESS_TICK.as_secs_f64()),
                totals
                    .hit_rate()
                    .map_or_else(|| "-".to_owned(), |rate| format!("{:.1} %", rate * 100.0)),
                totals.errors
            );
            if terminal {
                bar.set_position(elapsed.as_secs());
                bar.set_message(message);
            } else if last_line.elapsed() >= PROGRESS_LINE_EVERY {
                last_line = Instant::now();
                eprintln!("[{:>4.0} s] {message}", elapsed.as_secs_f64());
            }
            if elapsed >= duration || *stop.borrow() {
                break;
            }
        }
        bar.finish_and_clear();
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_are_between_zero_and_one() {
        assert_eq!(parse_ratio("0.02"), Ok(0.02));
        assert_eq!(parse_ratio("1"), Ok(1.0));
        assert!(parse_ratio("1.5").is_err());
        assert!(parse_ratio("-0.1").is_err());
        assert!(parse_ratio("NaN").is_err());
    }
}
