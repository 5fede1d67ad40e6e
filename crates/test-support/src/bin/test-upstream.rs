//! `test-upstream`: the [`TestUpstream`] on its own, as the upstream of a load benchmark.
//!
//! Listens on a loopback address only, prints `listening on http://ADDR` once bound, and
//! serves until SIGTERM or SIGINT. Every request is answered after `--latency-ms` with a
//! `--body-bytes` JSON body; the query string overrides that per request
//! (`?latency_ms=N&status=N&bytes=N&close=1&max_age=N&header=Name:Value`). Nothing is logged
//! or counted per path, so a long run stays flat in memory. With `--stats-path PATH`, a
//! request for exactly that path is answered at once with the number of requests served so
//! far, `{"requests":N}` (itself not counted), for a benchmark that watches the upstream.

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use test_support::{Reply, TestUpstream};
use tokio::signal::unix::{signal, SignalKind};

/// A loopback HTTP/1 upstream for load tests.
#[derive(Debug, Parser)]
#[command(name = "test-upstream", version)]
struct Args {
    /// Address to listen on; must be loopback (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:0")]
    addr: SocketAddr,
    /// Delay before each answer, in milliseconds.
    #[arg(long, default_value_t = 2)]
    latency_ms: u64,
    /// Size of each response body, in bytes.
    #[arg(long, default_value_t = 1024)]
    body_bytes: usize,
    /// Tokio worker threads (1: a current-thread runtime).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    threads: u16,
    /// A `Cache-Control` header for every response, e.g. "max-age=60".
    #[arg(long)]
    cache_control: Option<String>,
    /// A path answered with the request count so far, `{"requests":N}` (not counted itself);
    /// e.g. "/__upstream/stats". Without it, every path gets the configured reply.
    #[arg(long, value_name = "PATH")]
    stats_path: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if !args.addr.ip().is_loopback() {
        eprintln!(
            "test-upstream: {} is not a loopback address; it serves 127.0.0.1 or ::1 only",
            args.addr
        );
        return ExitCode::from(2);
    }
    let runtime = if args.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(usize::from(args.threads))
            .enable_all()
            .build()
    };
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("test-upstream: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("test-upstream: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: Args) -> std::io::Result<()> {
    let mut reply = Reply::new()
        .latency(Duration::from_millis(args.latency_ms))
        .body_bytes(args.body_bytes);
    if let Some(cache_control) = &args.cache_control {
        if hyper::header::HeaderValue::try_from(cache_control.as_str()).is_err() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("--cache-control {cache_control:?} is not a valid header value"),
            ));
        }
        reply = reply.header("cache-control", cache_control);
    }
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut builder = TestUpstream::builder()
        .addr(args.addr)
        .default_reply(reply)
        .request_log_capacity(0)
        .count_per_path(false);
    if let Some(path) = args.stats_path {
        if !path.starts_with('/') {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("--stats-path {path:?} must start with '/'"),
            ));
        }
        builder = builder.stats_path(path);
    }
    let mut upstream = builder.start().await?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on {}", upstream.url())?;
    stdout.flush()?;
    drop(stdout);
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    upstream.stop().await;
    Ok(())
}
