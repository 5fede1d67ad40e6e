//! `cargo xtask bench gateway`: resync's caching gateway beside nginx's `proxy_cache`, both in
//! front of the same slow test upstream, measured with wrk in paired, interleaved rounds.
//!
//! Three targets, all on loopback ports: the upstream itself (`test-upstream`: 1 KiB of JSON
//! after 2 ms, one thread; the baseline), nginx with `proxy_cache` (see [`services`]) and the
//! `resync` binary's gateway (`GET /tws/{*path}`), both built in release. Two workloads, each
//! `wrk -t2 -c64 -d<secs>s --latency`: one hot URL, and a path drawn uniformly from 10 000
//! paths, every one of them fetched through the cache just before the run (and checked to be a
//! cache hit afterwards, so the run measures a warm cache). Each round runs both workloads on
//! nginx and resync back to back, alternating which goes first; the upstream is measured once
//! per workload. The report gives each target's median requests per second with its range,
//! the median p50 and p99 latency, and the ratio resync / nginx of each round, with their
//! median and range; runs with socket errors or non-2xx responses are marked and fail the
//! command once everything is printed.
//!
//! Cached entries live [`TTL`]: each round warms a fresh set of 10 000 paths, so no entry
//! expires during the run it is measured in (hence the bound on `--secs`).

// Shared with `bench distributed`.
pub(crate) mod client;
pub(crate) mod report;
pub(crate) mod services;
pub(crate) mod wrk;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serde::Serialize;

use crate::binaries::{Binaries, Profile};
use crate::{interrupt, packages};

use self::client::Pass;
use self::services::{Scratch, Services};

/// How long a cached entry lives in both caches (resync's `ASYNC_CACHE_TTL`, nginx's
/// `proxy_cache_valid 200`, the upstream's `Cache-Control: max-age`).
const TTL: Duration = Duration::from_secs(60);

/// The longest run: the entries a warm pass writes must outlive the check after it and the
/// run itself.
const MAX_SECS: u64 = 45;

/// Distinct paths of the warm workload.
const PATHS: u64 = 10_000;

/// Connections that warm and check a cache at once.
const WARM_CONNECTIONS: usize = 16;

/// Every wait (start-up, a warm pass) gives up after this long.
const BOUND: Duration = Duration::from_secs(120);

/// What `cargo xtask bench gateway` takes.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Options {
    /// Seconds of each wrk run (at most 45: entries live 60 s).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=MAX_SECS))]
    secs: u64,
    /// Paired rounds (each: both workloads on nginx and on resync).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    rounds: u32,
    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    /// Run this upstream binary (with test-upstream's command line) instead of building
    /// `test-upstream`.
    #[arg(long, value_name = "PATH")]
    upstream_bin: Option<PathBuf>,
}

/// What is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Workload {
    /// One URL, over and over.
    Hot,
    /// A path drawn uniformly from [`PATHS`], all cached beforehand.
    Warm,
}

impl Workload {
    const ALL: [Self; 2] = [Self::Hot, Self::Warm];

    fn label(self) -> &'static str {
        match self {
            Self::Hot => "hot URL",
            Self::Warm => "10k warm paths",
        }
    }
}

/// Where the requests go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Target {
    /// The test upstream, directly: the baseline.
    Upstream,
    /// nginx with `proxy_cache`.
    Nginx,
    /// resync's gateway.
    Resync,
}

impl Target {
    fn label(self) -> &'static str {
        match self {
            Self::Upstream => "upstream",
            Self::Nginx => "nginx",
            Self::Resync => "resync",
        }
    }

    /// What the target puts before the upstream's path.
    fn prefix(self) -> &'static str {
        match self {
            Self::Resync => "/tws",
            Self::Upstream | Self::Nginx => "",
        }
    }

    /// The response header saying whether the cache answered (lower case).
    fn cache_header(self) -> Option<&'static str> {
        match self {
            Self::Upstream => None,
            Self::Nginx => Some("x-cache-status"),
            Self::Resync => Some("x-cache"),
        }
    }

    /// The path of upstream item `n` on this target.
    fn item(self, n: u64) -> String {
        format!("{}/items/{n}", self.prefix())
    }

    /// The one URL of the hot workload.
    fn hot_path(self) -> String {
        self.item(0)
    }
}

/// The items of round `round`'s warm set: fresh in each round, so that every entry a run
/// reads was written just before it.
fn warm_items(round: u32) -> (u64, u64) {
    (1 + u64::from(round) * PATHS, PATHS)
}

/// One wrk run.
#[derive(Debug, Clone, Serialize)]
struct Run {
    workload: Workload,
    target: Target,
    /// `None` for the upstream's single run per workload.
    round: Option<u32>,
    /// Whether this target went first in its pair.
    first: bool,
    stats: wrk::Stats,
}

/// `cargo xtask bench gateway`.
pub(crate) fn run(root: &Path, options: &Options) -> Result<()> {
    let started = Instant::now();
    let (nginx, wrk) = packages::ensure_nginx_and_wrk()?;
    // `--upstream-bin PATH` runs another upstream with test-upstream's command line.
    let Binaries { resync, upstream } =
        Binaries::build(root, Profile::Release, options.upstream_bin.as_deref())?;
    let context = report::Context::probe(root, options, &nginx, &wrk)?;
    context.print();

    // Dropped last: the services write into it.
    let scratch = Scratch::new("gateway")?;
    let mut services = Services::start(&scratch, &nginx, &resync, &upstream, options.rounds)?;
    let result = measure(&mut services, &scratch, &wrk, options);
    let logs = services.log_tails(20);
    let stopped = services.stop();
    let runs = match result {
        Err(error) if interrupt::interrupted() => return Err(error),
        other => other.with_context(|| format!("the gateway bench failed\n{logs}"))?,
    };
    stopped?;

    let summary = report::Summary::of(&runs);
    summary.print();
    if let Some(path) = &options.json {
        report::write_json(path, &context, &runs, &summary)?;
        eprintln!("==> results written to {}", path.display());
    }
    eprintln!(
        "==> bench gateway done in {:.0?}; load average now {}",
        started.elapsed(),
        report::loadavg()
    );
    let troubled: Vec<String> = runs
        .iter()
        .filter_map(|run| {
            run.stats.problems().map(|problems| {
                let round = run
                    .round
                    .map_or("once".to_owned(), |r| format!("round {}", r + 1));
                format!(
                    "{} on {} ({round}): {problems}",
                    run.workload.label(),
                    run.target.label()
                )
            })
        })
        .collect();
    if !troubled.is_empty() {
        bail!(
            "{} run(s) had errors or non-2xx responses (marked ! above):\n  {}",
            troubled.len(),
            troubled.join("\n  ")
        );
    }
    Ok(())
}

/// The baseline, then the paired rounds.
fn measure(
    services: &mut Services,
    scratch: &Scratch,
    wrk_bin: &Path,
    options: &Options,
) -> Result<Vec<Run>> {
    let script = wrk::write_random_script(scratch.path())?;
    let bench = Bench {
        wrk: wrk_bin,
        script: &script,
        out: scratch.path(),
        secs: options.secs,
    };
    let estimate = Duration::from_secs(options.secs * (2 + 4 * u64::from(options.rounds)));
    eprintln!(
        "\n==> measuring: {} wrk runs of {} s (about {:.0?} of wrk, plus warm passes)",
        2 + 4 * options.rounds,
        options.secs,
        estimate
    );
    preflight(services)?;

    let mut runs = Vec::new();
    for workload in Workload::ALL {
        let stats = bench.run(services, Target::Upstream, workload, 0)?;
        eprintln!(
            "    baseline  {:<14} {:<8} {}",
            workload.label(),
            Target::Upstream.label(),
            stats.line()
        );
        runs.push(Run {
            workload,
            target: Target::Upstream,
            round: None,
            first: true,
            stats,
        });
    }
    for round in 0..options.rounds {
        for (index, workload) in Workload::ALL.into_iter().enumerate() {
            let order = if (round as usize + index) % 2 == 0 {
                [Target::Nginx, Target::Resync]
            } else {
                [Target::Resync, Target::Nginx]
            };
            for (position, target) in order.into_iter().enumerate() {
                services.ensure_running()?;
                prepare(services, target, workload, round)?;
                let stats = bench.run(services, target, workload, round)?;
                eprintln!(
                    "    round {}/{} {:<14} {:<8} {}",
                    round + 1,
                    options.rounds,
                    workload.label(),
                    target.label(),
                    stats.line()
                );
                runs.push(Run {
                    workload,
                    target,
                    round: Some(round),
                    first: position == 0,
                    stats,
                });
            }
        }
    }
    services.ensure_running()?;
    Ok(runs)
}

/// One request to each target, which must answer 200 with the same body length as the
/// upstream, and through a cache with its cache header.
fn preflight(services: &Services) -> Result<()> {
    let upstream = probe(services, Target::Upstream)?;
    for target in [Target::Nginx, Target::Resync] {
        let response = probe(services, target)?;
        let header = target.cache_header().unwrap_or_default();
        ensure!(
            response.cache.is_some(),
            "{} answered GET {} without an {header} header: is it caching?",
            target.label(),
            target.hot_path()
        );
        if response.body_len != upstream.body_len {
            eprintln!(
                "    warning: {} answers {} bytes of body where the upstream answers {}",
                target.label(),
                response.body_len,
                upstream.body_len
            );
        }
    }
    eprintln!(
        "    preflight: each target answers GET …/items/0 with 200 and {} bytes",
        upstream.body_len
    );
    Ok(())
}

fn probe(services: &Services, target: Target) -> Result<client::Response> {
    let path = target.hot_path();
    let mut client = client::Client::new(services.addr(target), target.cache_header());
    let response = client
        .get(&path)
        .with_context(|| format!("GET {path} on {}", target.label()))?;
    if response.status != 200 {
        let hint = if target == Target::Resync && response.status == 404 {
            ": this resync build has no caching gateway (GET /tws/{*path} is not routed); \
             build it from a tree that has one"
        } else {
            ""
        };
        bail!(
            "{} answered GET {path} with {} (expected 200){hint}",
            target.label(),
            response.status
        );
    }
    Ok(response)
}

/// Puts `target`'s cache in the state the workload measures: the hot URL cached, or every
/// path of the round's warm set cached (and checked: all hits).
fn prepare(services: &Services, target: Target, workload: Workload, round: u32) -> Result<()> {
    let addr = services.addr(target);
    let header = target.cache_header().unwrap_or_default();
    match workload {
        Workload::Hot => {
            let path = target.hot_path();
            let mut client = client::Client::new(addr, target.cache_header());
            let mut seen = Vec::new();
            for _ in 0..3 {
                let response = client.get(&path)?;
                ensure!(
                    response.status == 200,
                    "{} answered GET {path} with {}",
                    target.label(),
                    response.status
                );
                let cache = response.cache.unwrap_or_default();
                if cache == "HIT" {
                    return Ok(());
                }
                seen.push(cache);
            }
            bail!(
                "{} never answered GET {path} from its cache: {header} was {}",
                target.label(),
                seen.join(", ")
            );
        }
        Workload::Warm => {
            let (first, count) = warm_items(round);
            let paths: Vec<String> = (first..first + count).map(|n| target.item(n)).collect();
            let warm = client::pass(addr, target.cache_header(), &paths, WARM_CONNECTIONS, BOUND)
                .with_context(|| format!("warming {}", target.label()))?;
            let check = client::pass(addr, target.cache_header(), &paths, WARM_CONNECTIONS, BOUND)
                .with_context(|| format!("checking {}'s cache", target.label()))?;
            let hits = check.count("HIT");
            eprintln!(
                "    warm {:<6} {} paths in {:.1?} ({header}: {}); check in {:.1?}: {hits} HIT",
                target.label(),
                paths.len(),
                warm.elapsed,
                warm.summary(),
                check.elapsed,
            );
            ensure!(
                hits == paths.len(),
                "after the warm pass only {hits} of {} paths were cache hits on {} ({header}: {})",
                paths.len(),
                target.label(),
                check.summary()
            );
            Ok(())
        }
    }
}

/// What every wrk run shares.
struct Bench<'a> {
    wrk: &'a Path,
    script: &'a Path,
    out: &'a Path,
    secs: u64,
}

impl Bench<'_> {
    fn run(
        &self,
        services: &Services,
        target: Target,
        workload: Workload,
        round: u32,
    ) -> Result<wrk::Stats> {
        let base = format!("http://{}", services.addr(target));
        let label = format!("{}-{}-{round}", target.label(), workload.label());
        let (url, script_args) = match workload {
            Workload::Hot => (format!("{base}{}", target.hot_path()), None),
            Workload::Warm => {
                let (first, count) = warm_items(round);
                let prefix = format!("{}/items/", target.prefix());
                (base, Some([prefix, first.to_string(), count.to_string()]))
            }
        };
        let script = script_args
            .as_ref()
            .map(|args| (self.script, args.as_slice()));
        let load = wrk::Load {
            threads: wrk::THREADS,
            connections: wrk::CONNECTIONS,
            secs: self.secs,
        };
        wrk::run(self.wrk, &url, script, load, self.out, &label)
            .with_context(|| format!("wrk on {} ({})", target.label(), workload.label()))
    }
}

impl Pass {
    /// `MISS 9998, HIT 2`: the cache header's values and their counts.
    pub(crate) fn summary(&self) -> String {
        self.cache
            .iter()
            .map(|(value, count)| format!("{value} {count}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}
