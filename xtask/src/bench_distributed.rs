//! `cargo xtask bench distributed`: two resync instances in front of one upstream, without
//! and with the Redis second level (`GATEWAY_L2`), under the same client load.
//!
//! One throwaway `redis-server` (test-support's fixture, on a free loopback port in a
//! temporary directory), one `test-upstream` (1 KiB of JSON after 2 ms, one thread, as in
//! `bench gateway`, with its request counter served at [`STATS_PATH`]), and two `resync`
//! release instances A and B, all on loopback. Both instances have `TWS_BASE_URL` at the
//! upstream, `REDIS_URL` at the Redis and an L1 holding every path; they differ from one
//! configuration to the other only in `GATEWAY_L2`.
//!
//! **Load.** For each configuration — L2 off, then L2 on, in each of `--rounds` rounds — the
//! instances are started afresh and Redis is emptied (`FLUSHALL`); a probe checks the
//! configuration (with L2 on, a path fetched through A is a `HIT` on B; with it off, a
//! `MISS`). Then one wrk per instance runs at once for `--secs`, each walking the same
//! [`PATHS`] paths over and over in a shuffled order of its own (a client load spread
//! round-robin over the two instances, which wrk alone cannot do: a run has one host). The
//! upstream's counter, read before and after, gives the requests the instances let through;
//! each instance's `/metrics` gives the `X-Cache` split (`resync_gateway_requests_total` by
//! `cache`) and the second level's counters (`resync_gateway_l2_*_total`, read whatever their
//! labels). Without L2 every instance fetches every path once; with it, a path fetched by one
//! is an L2 hit on the other, so the expectation is about half the upstream requests — the
//! ratio printed is the measured one.
//!
//! **The L2 hit path.** After the L2-on load of each round, every path is made an L1 hit on
//! A (one pass, checked), and B is replaced by a fresh instance whose L1 holds only
//! [`SMALL_L1`] entries, so that nearly every one of its requests misses L1 and is answered
//! from Redis (the share is read from its metrics and printed). wrk with one connection then
//! runs on A alone and on B alone (the order alternating by round): the difference of their
//! latencies is what a hit from L2 costs over one from L1, measured without queueing. B's own
//! mean L2 lookup time, when its metrics expose one, is printed beside it.
//!
//! Entries live [`TTL`], longer than a configuration's runs, so nothing expires while it is
//! measured (hence the bound on `--secs`).

mod metrics;
mod report;
mod setup;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use serde::Serialize;

use crate::bench_gateway::client::{self, Client};
use crate::bench_gateway::services::Scratch;
use crate::bench_gateway::wrk::{self, Load};
use crate::binaries::{Binaries, Profile};
use crate::{interrupt, packages};

use self::metrics::Snapshot;
use self::setup::{Instance, Setup};

/// Distinct paths of the load.
pub(crate) const PATHS: u64 = 10_000;

/// How long a cached entry lives (the upstream's `max-age`, resync's `ASYNC_CACHE_TTL`).
const TTL: Duration = Duration::from_secs(600);

/// The longest run: a configuration's load and hit runs, and the passes between them, must
/// end before its first entries expire.
const MAX_SECS: u64 = 60;

/// Where the test upstream answers its request count.
const STATS_PATH: &str = "/__upstream/stats";

/// Each instance's wrk during the load: one thread, 32 connections (64 in all, as in `bench
/// gateway`'s single wrk).
const LOAD_THREADS: u32 = 1;
const LOAD_CONNECTIONS: u32 = 32;

/// The hit-path runs' wrk: one thread, one connection.
const HIT_LOAD: (u32, u32) = (1, 1);

/// B's L1 in the hit-path runs, in entries: far fewer than the paths walked.
const SMALL_L1: u64 = 16;

/// Connections of the pass that puts every path in A's L1.
const WARM_CONNECTIONS: usize = 16;

/// Every wait (start-up, a pass over the paths) gives up after this long.
const BOUND: Duration = Duration::from_secs(120);

/// How long a fresh instance may take before the second level answers (its invalidation
/// listener subscribes first).
const L2_READY: Duration = Duration::from_secs(60);

/// A pause after a load before the counters are read: fetches under way when wrk stopped
/// finish meanwhile.
const SETTLE: Duration = Duration::from_millis(300);

/// What `cargo xtask bench distributed` takes.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Options {
    /// Seconds of each wrk run (at most 60).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=MAX_SECS))]
    secs: u64,
    /// Rounds, each: L2 off, then L2 on, then the hit-path runs.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=50))]
    rounds: u32,
    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
}

/// Whether the instances share the second level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Config {
    /// `GATEWAY_L2=false`: each instance on its own.
    L2Off,
    /// `GATEWAY_L2=true`.
    L2On,
}

impl Config {
    const ALL: [Self; 2] = [Self::L2Off, Self::L2On];

    fn label(self) -> &'static str {
        match self {
            Self::L2Off => "L2 off",
            Self::L2On => "L2 on",
        }
    }

    fn l2(self) -> bool {
        self == Self::L2On
    }
}

/// One configuration's load in one round.
#[derive(Debug, Clone, Serialize)]
struct LoadRun {
    round: u32,
    config: Config,
    /// wrk on instance A and on instance B, run at once.
    a: wrk::Stats,
    b: wrk::Stats,
    /// Requests the upstream received during the load (its own counter).
    upstream_requests: u64,
    /// The upstream exchanges both instances counted (`resync_gateway_upstream_requests_total`).
    gateway_upstream_exchanges: Option<f64>,
    /// Both instances' requests by `X-Cache` (`resync_gateway_requests_total` by `cache`).
    cache: BTreeMap<String, f64>,
    /// Of the hits, those answered from L2 (lookup hits and lease waits), if exposed.
    from_l2: Option<f64>,
    /// Both instances' `resync_gateway_l2_<family>_total`, by label values.
    l2: BTreeMap<String, BTreeMap<String, f64>>,
    /// Keys in Redis after the load.
    redis_keys: u64,
}

impl LoadRun {
    fn requests_per_sec(&self) -> f64 {
        self.a.requests_per_sec + self.b.requests_per_sec
    }

    /// Whether each instance completed at least one request per path (each walk then asked
    /// for every path).
    fn walked_all(&self) -> bool {
        self.a.requests >= PATHS && self.b.requests >= PATHS
    }

    fn troubled(&self) -> bool {
        self.a.problems().is_some() || self.b.problems().is_some()
    }
}

/// The hit-path runs of one round.
#[derive(Debug, Clone, Serialize)]
struct HitRun {
    round: u32,
    /// Whether A's run came first.
    l1_first: bool,
    /// wrk on A, every path in its L1.
    l1: wrk::Stats,
    /// wrk on the fresh B with a tiny L1.
    l2: wrk::Stats,
    /// Of B's requests during its run, the share answered from L2.
    l2_share: Option<f64>,
    /// B's mean L2 lookup time during its run, from its metrics.
    l2_lookup_mean_us: Option<f64>,
}

/// `cargo xtask bench distributed`.
pub(crate) fn run(root: &Path, options: &Options) -> Result<()> {
    let started = Instant::now();
    let wrk_bin = packages::ensure_wrk_and_redis()?;
    let Binaries { resync, upstream } = Binaries::build(root, Profile::Release, None)?;
    let context = report::Context::probe(root, options, &wrk_bin)?;
    context.print();

    // Dropped last: the processes write into it.
    let scratch = Scratch::new("distributed")?;
    let mut setup = Setup::start(&scratch, &resync, &upstream)?;
    let result = measure(&mut setup, &scratch, &wrk_bin, options);
    let logs = setup.log_tails(20);
    let stopped = setup.stop();
    let (loads, hits) = match result {
        Err(error) if interrupt::interrupted() => return Err(error),
        other => other.with_context(|| format!("the distributed bench failed\n{logs}"))?,
    };
    stopped?;

    let summary = report::Summary::of(&loads, &hits);
    summary.print();
    if let Some(path) = &options.json {
        report::write_json(path, &context, &loads, &hits, &summary)?;
        eprintln!("==> results written to {}", path.display());
    }
    eprintln!(
        "==> bench distributed done in {:.0?}; load average now {}",
        started.elapsed(),
        crate::bench_gateway::report::loadavg()
    );
    let mut troubled = Vec::new();
    for run in &loads {
        for (instance, stats) in [("A", &run.a), ("B", &run.b)] {
            if let Some(problems) = stats.problems() {
                troubled.push(format!(
                    "{} on {instance} (round {}): {problems}",
                    run.config.label(),
                    run.round + 1
                ));
            }
        }
    }
    for run in &hits {
        for (what, stats) in [("L1 hits on A", &run.l1), ("L2 hits on B", &run.l2)] {
            if let Some(problems) = stats.problems() {
                troubled.push(format!("{what} (round {}): {problems}", run.round + 1));
            }
        }
    }
    if !troubled.is_empty() {
        bail!(
            "{} run(s) had errors or non-2xx responses:\n  {}",
            troubled.len(),
            troubled.join("\n  ")
        );
    }
    Ok(())
}

/// A wrk script walking `<prefix><first>` … `<prefix><first + count - 1>` over and over in
/// a shuffled order seeded by its fourth argument (and the thread's number), given as
/// `-- <prefix> <first> <count> <seed>`.
const WALK_SCRIPT: &str = r#"-- Written by `cargo xtask bench distributed`.
local prefix, order
local at = 0
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("thread_number", threads)
end

function init(args)
  prefix = args[1]
  local first, count, seed = tonumber(args[2]), tonumber(args[3]), tonumber(args[4])
  math.randomseed(seed * 1000 + (thread_number or 0))
  for _ = 1, 10 do math.random() end
  order = {}
  for i = 1, count do order[i] = first + i - 1 end
  for i = count, 2, -1 do
    local j = math.random(1, i)
    order[i], order[j] = order[j], order[i]
  end
end

function request()
  at = at % #order + 1
  return wrk.format("GET", prefix .. order[at])
end
"#;

/// What every wrk run shares.
struct Bench<'a> {
    wrk: &'a Path,
    script: PathBuf,
    out: &'a Path,
    secs: u64,
}

impl Bench<'_> {
    /// wrk on `setup`'s `instance` walking every path in the order of `seed`.
    fn run(
        &self,
        setup: &Setup,
        instance: Instance,
        (threads, connections): (u32, u32),
        seed: u32,
        label: &str,
    ) -> Result<wrk::Stats> {
        let url = format!("http://{}", setup.addr(instance)?);
        let args = [
            "/tws/items/".to_owned(),
            "1".to_owned(),
            PATHS.to_string(),
            seed.to_string(),
        ];
        let load = Load {
            threads,
            connections,
            secs: self.secs,
        };
        wrk::run(
            self.wrk,
            &url,
            Some((&self.script, &args)),
            load,
            self.out,
            label,
        )
        .with_context(|| format!("wrk on instance {instance:?} ({label})"))
    }
}

/// Every round: L2 off, L2 on, the hit path.
fn measure(
    setup: &mut Setup,
    scratch: &Scratch,
    wrk_bin: &Path,
    options: &Options,
) -> Result<(Vec<LoadRun>, Vec<HitRun>)> {
    let script = scratch.path().join("walk-paths.lua");
    std::fs::write(&script, WALK_SCRIPT)
        .with_context(|| format!("writing {}", script.display()))?;
    let bench = Bench {
        wrk: wrk_bin,
        script,
        out: scratch.path(),
        secs: options.secs,
    };
    eprintln!(
        "\n==> measuring: {} rounds of 2 loads (two wrk runs of {} s at once) and 2 hit-path runs of {} s (about {:.0?} of wrk, plus start-ups and passes)",
        options.rounds,
        options.secs,
        options.secs,
        Duration::from_secs(4 * options.secs * u64::from(options.rounds))
    );
    let mut loads = Vec::new();
    let mut hits = Vec::new();
    for round in 0..options.rounds {
        for config in Config::ALL {
            setup.ensure_running()?;
            setup.flush_redis()?;
            eprintln!(
                "\n    round {}/{}, {}: fresh instances, empty Redis",
                round + 1,
                options.rounds,
                config.label()
            );
            setup.start_pair(config)?;
            preflight(setup, config, round)?;
            let run = load(setup, &bench, config, round)?;
            eprintln!(
                "    round {}/{} {:<7} A {}\n    {:>20} B {}\n    {:>20} upstream requests {}, req/s A + B {:.0}, Redis keys {}",
                round + 1,
                options.rounds,
                config.label(),
                run.a.line(),
                "",
                run.b.line(),
                "",
                run.upstream_requests,
                run.requests_per_sec(),
                run.redis_keys,
            );
            loads.push(run);
            if config == Config::L2On {
                hits.push(hit_path(setup, &bench, round)?);
            }
            setup.ensure_running()?;
            setup.stop_instances()?;
        }
    }
    Ok((loads, hits))
}

/// Checks the configuration with a path no load uses: fetched through A, it must be an L2
/// `HIT` on B with L2 on (retried with new paths until the fresh instances' second level
/// answers), a `MISS` with L2 off.
fn preflight(setup: &Setup, config: Config, round: u32) -> Result<()> {
    let mut a = Client::new(setup.addr(Instance::A)?, Some("x-cache"));
    let mut b = Client::new(setup.addr(Instance::B)?, Some("x-cache"));
    let deadline = Instant::now() + L2_READY;
    for attempt in 1_u32.. {
        let path = format!("/tws/probe/{}-{}-{attempt}", round + 1, config.l2());
        let first = a.get(&path).with_context(|| format!("GET {path} on A"))?;
        if first.status != 200 {
            let hint = if first.status == 404 {
                ": this resync build has no caching gateway (GET /tws/{*path} is not routed)"
            } else {
                ""
            };
            bail!(
                "A answered GET {path} with {} (expected 200){hint}",
                first.status
            );
        }
        ensure!(
            first.cache.is_some(),
            "A answered GET {path} without an X-Cache header: is it caching?"
        );
        let second = b.get(&path).with_context(|| format!("GET {path} on B"))?;
        ensure!(
            second.status == 200,
            "B answered GET {path} with {}",
            second.status
        );
        let cache = second.cache.unwrap_or_default();
        match config {
            Config::L2Off => {
                ensure!(
                    cache == "MISS",
                    "with GATEWAY_L2=false, B answered a path A had fetched with X-Cache: {cache} \
                     (expected MISS): the instances share something"
                );
                eprintln!("    preflight: a path fetched through A is a MISS on B");
                return Ok(());
            }
            Config::L2On if cache == "HIT" => {
                eprintln!(
                    "    preflight: a path fetched through A is a HIT on B (attempt {attempt})"
                );
                return Ok(());
            }
            Config::L2On => {
                if interrupt::interrupted() {
                    bail!("interrupted");
                }
                ensure!(
                    Instant::now() < deadline,
                    "with GATEWAY_L2=true, B never answered a path A had fetched from L2 within \
                     {L2_READY:?} (last X-Cache: {cache}): is this resync built with the second \
                     level (crates/server/src/gateway/l2), and does it reach Redis?"
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
    bail!("no preflight attempt left")
}

/// The load of one configuration: one wrk per instance at once, each walking every path in
/// its own order; the upstream's counter and the instances' metrics around it.
fn load(setup: &Setup, bench: &Bench<'_>, config: Config, round: u32) -> Result<LoadRun> {
    let addrs = [setup.addr(Instance::A)?, setup.addr(Instance::B)?];
    let before_upstream = setup.upstream_requests()?;
    let before = addrs
        .iter()
        .map(|addr| Snapshot::fetch(*addr))
        .collect::<Result<Vec<_>>>()?;
    let seed = |instance: u32| round * 4 + u32::from(config.l2()) * 2 + instance + 1;
    let label = |instance: &str| format!("load-{}-{instance}-{round}", config.label());
    let load = (LOAD_THREADS, LOAD_CONNECTIONS);
    let (a, b) = std::thread::scope(|scope| {
        let a = scope.spawn(|| bench.run(setup, Instance::A, load, seed(0), &label("a")));
        let b = scope.spawn(|| bench.run(setup, Instance::B, load, seed(1), &label("b")));
        let join = |handle: std::thread::ScopedJoinHandle<'_, Result<wrk::Stats>>| {
            handle
                .join()
                .map_err(|_| anyhow!("a wrk thread panicked"))
                .and_then(|stats| stats)
        };
        (join(a), join(b))
    });
    let (a, b) = (a?, b?);
    std::thread::sleep(SETTLE);
    let upstream_requests = setup.upstream_requests()? - before_upstream;
    let mut delta = Snapshot::default();
    for (addr, before) in addrs.iter().zip(&before) {
        delta.add(&Snapshot::fetch(*addr)?.since(before));
    }
    Ok(LoadRun {
        round,
        config,
        a,
        b,
        upstream_requests,
        gateway_upstream_exchanges: delta.total(metrics::UPSTREAM),
        cache: delta.by_label(metrics::REQUESTS, "cache"),
        from_l2: delta.l2_served(),
        l2: delta.l2_counters(),
        redis_keys: setup.redis_keys()?,
    })
}

/// After the L2-on load: every path an L1 hit on A, B replaced by an instance with a tiny
/// L1, then wrk with one connection on A alone and on B alone.
fn hit_path(setup: &mut Setup, bench: &Bench<'_>, round: u32) -> Result<HitRun> {
    let paths: Vec<String> = (1..=PATHS).map(|n| format!("/tws/items/{n}")).collect();
    let a = setup.addr(Instance::A)?;
    let warm = client::pass(a, Some("x-cache"), &paths, WARM_CONNECTIONS, BOUND)
        .context("putting every path in A's L1")?;
    let check = client::pass(a, Some("x-cache"), &paths, WARM_CONNECTIONS, BOUND)
        .context("checking A's L1")?;
    let l1_hits = check.count("HIT");
    eprintln!(
        "    hit path: A warmed in {:.1?} (X-Cache: {}); check: {l1_hits} HIT",
        warm.elapsed,
        warm.summary()
    );
    ensure!(
        l1_hits == paths.len(),
        "after the warm pass only {l1_hits} of {} paths were hits on A ({})",
        paths.len(),
        check.summary()
    );

    setup.restart_b_with_a_small_l1()?;
    let b = setup.addr(Instance::B)?;
    wait_for_l2(b, &paths)?;

    let l1_first = round % 2 == 0;
    let mut l1 = None;
    let mut l2 = None;
    let mut l2_share = None;
    let mut l2_lookup_mean_us = None;
    let order = if l1_first {
        [Instance::A, Instance::B]
    } else {
        [Instance::B, Instance::A]
    };
    for instance in order {
        let seed = 1000 + round;
        match instance {
            Instance::A => {
                let stats = bench.run(
                    setup,
                    Instance::A,
                    HIT_LOAD,
                    seed,
                    &format!("hits-l1-{round}"),
                )?;
                eprintln!("    hit path: L1 hits on A {}", stats.line());
                l1 = Some(stats);
            }
            Instance::B => {
                let before = Snapshot::fetch(b)?;
                let stats = bench.run(
                    setup,
                    Instance::B,
                    HIT_LOAD,
                    seed,
                    &format!("hits-l2-{round}"),
                )?;
                std::thread::sleep(SETTLE);
                let delta = Snapshot::fetch(b)?.since(&before);
                let requests: f64 = delta.by_label(metrics::REQUESTS, "cache").values().sum();
                l2_share = delta
                    .l2_served()
                    .filter(|_| requests > 0.0)
                    .map(|served| served / requests);
                l2_lookup_mean_us = delta.l2_lookup_mean_us();
                let share = l2_share.map_or_else(
                    || "unknown (no L2 metrics)".to_owned(),
                    |share| format!("{:.1} %", share * 100.0),
                );
                eprintln!(
                    "    hit path: L2 hits on B {} (from L2: {share})",
                    stats.line()
                );
                l2 = Some(stats);
            }
        }
    }
    Ok(HitRun {
        round,
        l1_first,
        l1: l1.context("no L1 run")?,
        l2: l2.context("no L2 run")?,
        l2_share,
        l2_lookup_mean_us,
    })
}

/// Asks the fresh instance at `b` for paths A fetched until one is an L2 `HIT` (its second
/// level is unavailable until its listener subscribes).
fn wait_for_l2(b: std::net::SocketAddr, paths: &[String]) -> Result<()> {
    let mut client = Client::new(b, Some("x-cache"));
    let deadline = Instant::now() + L2_READY;
    let mut seen = BTreeMap::<String, usize>::new();
    for path in paths.iter().rev() {
        let response = client.get(path)?;
        ensure!(
            response.status == 200,
            "the fresh B answered GET {path} with {}",
            response.status
        );
        let cache = response.cache.unwrap_or_default();
        if cache == "HIT" {
            return Ok(());
        }
        *seen.entry(cache).or_default() += 1;
        if interrupt::interrupted() {
            bail!("interrupted");
        }
        ensure!(
            Instant::now() < deadline,
            "the fresh B answered no path from L2 within {L2_READY:?} (X-Cache: {seen:?})"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!(
        "the fresh B answered none of the {} paths from L2 ({seen:?})",
        paths.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_takes_four_arguments_and_walks_a_shuffle() {
        for needle in [
            "args[4]",
            "math.randomseed(seed",
            "order[i], order[j] = order[j], order[i]",
            "at = at % #order + 1",
        ] {
            assert!(WALK_SCRIPT.contains(needle), "no {needle:?} in the script");
        }
    }

    #[test]
    fn a_walk_is_complete_once_each_instance_did_one_request_per_path() {
        let stats = |requests| wrk::Stats {
            requests,
            requests_per_sec: 100.0,
            ..wrk::Stats::default()
        };
        let run = |a, b| LoadRun {
            round: 0,
            config: Config::L2On,
            a: stats(a),
            b: stats(b),
            upstream_requests: 0,
            gateway_upstream_exchanges: None,
            cache: BTreeMap::new(),
            from_l2: None,
            l2: BTreeMap::new(),
            redis_keys: 0,
        };
        assert!(run(PATHS, PATHS + 5).walked_all());
        assert!(!run(PATHS - 1, PATHS).walked_all());
        assert!((run(1, 1).requests_per_sec() - 200.0).abs() < 1e-9);
    }
}
