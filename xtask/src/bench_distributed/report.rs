//! What `bench distributed` prints and writes: the machine, the commit and the command first,
//! then the two configurations side by side (medians over the rounds with their ranges, and
//! the paired per-round ratios L2 on / L2 off), then the hit path's comparison.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, Result};
use serde::Serialize;

use super::{
    Config, HitRun, LoadRun, Options, HIT_LOAD, LOAD_CONNECTIONS, LOAD_THREADS, PATHS, SMALL_L1,
    TTL,
};
use crate::bench_gateway::report::{first_line, loadavg, output, shell_word, Spread};
use crate::bench_gateway::wrk::format_us;

/// Where and how the bench ran.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Context {
    command: String,
    commit: String,
    /// Paths `git status --porcelain` lists (the build includes their changes).
    changed_paths: usize,
    nproc: String,
    cpu: String,
    kernel: String,
    load_average_before: String,
    wrk: String,
    redis: String,
    secs: u64,
    rounds: u32,
    paths: u64,
    ttl_secs: u64,
    /// Each instance's wrk in the load: `-t<threads> -c<connections>`.
    load_wrk: String,
    /// The hit-path runs' wrk.
    hit_wrk: String,
    small_l1_entries: u64,
}

impl Context {
    pub(super) fn probe(root: &Path, options: &Options, wrk: &Path) -> Result<Self> {
        let args: Vec<String> = std::env::args()
            .skip(1)
            .map(|arg| shell_word(&arg))
            .collect();
        let git = |args: &[&str]| {
            output(Command::new("git").current_dir(root).args(args))
                .with_context(|| format!("git {}", args.join(" ")))
        };
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find_map(|line| line.strip_prefix("model name"))
                    .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
            })
            .unwrap_or_else(|| "?".to_owned());
        Ok(Self {
            command: format!("cargo xtask {}", args.join(" ")),
            commit: git(&["rev-parse", "--short", "HEAD"])?,
            changed_paths: git(&["status", "--porcelain"])?.lines().count(),
            nproc: output(&mut Command::new("nproc")).unwrap_or_else(|_| "?".to_owned()),
            cpu,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map_or_else(|_| "?".to_owned(), |text| text.trim().to_owned()),
            load_average_before: loadavg(),
            wrk: first_line(Command::new(wrk).arg("-v")),
            redis: first_line(Command::new("redis-server").arg("--version")),
            secs: options.secs,
            rounds: options.rounds,
            paths: PATHS,
            ttl_secs: TTL.as_secs(),
            load_wrk: format!("-t{LOAD_THREADS} -c{LOAD_CONNECTIONS}"),
            hit_wrk: format!("-t{} -c{}", HIT_LOAD.0, HIT_LOAD.1),
            small_l1_entries: SMALL_L1,
        })
    }

    pub(super) fn print(&self) {
        let tree = if self.changed_paths == 0 {
            "clean tree".to_owned()
        } else {
            format!(
                "DIRTY: {} paths changed or untracked, built as they are",
                self.changed_paths
            )
        };
        eprintln!(
            "\n==> bench distributed\n    command: {}\n    commit:  {} ({tree})\n    machine: nproc {}, {}, Linux {}, load average {}\n    tools:   {}, {}\n    load:    per configuration and round, wrk {} -d{}s --latency on each of the two instances at once, {} paths; {} rounds\n    hits:    wrk {} -d{}s --latency on A (every path in L1), then on a fresh B with an L1 of {} entries (its hits come from Redis)",
            self.command,
            self.commit,
            self.nproc,
            self.cpu,
            self.kernel,
            self.load_average_before,
            self.wrk,
            self.redis,
            self.load_wrk,
            self.secs,
            self.paths,
            self.rounds,
            self.hit_wrk,
            self.secs,
            self.small_l1_entries,
        );
    }
}

/// One configuration over its rounds.
#[derive(Debug, Clone, Serialize)]
pub(super) struct ConfigRow {
    config: Config,
    rounds: usize,
    upstream_requests: Spread,
    /// Both instances' wrk req/s added up.
    requests_per_sec: Spread,
    /// Medians over the rounds of each instance's wrk p50 and p99.
    p50_us_a: f64,
    p50_us_b: f64,
    p99_us_a: f64,
    p99_us_b: f64,
    /// Medians over the rounds of the gateway's requests by `cache` label (both instances).
    cache: BTreeMap<String, f64>,
    /// Median of the requests answered from L2 (lookup hits and lease waits), if exposed.
    from_l2: Option<f64>,
    /// Medians of the second level's counters, by family and label values.
    l2: BTreeMap<String, BTreeMap<String, f64>>,
    /// Median of the upstream exchanges the instances counted themselves, if exposed.
    gateway_upstream_exchanges: Option<f64>,
    redis_keys: Spread,
    troubled_runs: usize,
    /// Rounds in which an instance's wrk completed fewer requests than there are paths, so
    /// it may not have asked for every path.
    short_walks: usize,
}

/// L2 on / L2 off of one measure, round by round.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Ratio {
    per_round: Vec<f64>,
    spread: Spread,
}

impl Ratio {
    fn of(per_round: Vec<f64>) -> Option<Self> {
        let spread = Spread::of(&per_round)?;
        Some(Self { per_round, spread })
    }
}

/// One side of the hit-path comparison.
#[derive(Debug, Clone, Serialize)]
pub(super) struct HitRow {
    requests_per_sec: Spread,
    p50_us: f64,
    p99_us: f64,
}

/// The hit path over the rounds.
#[derive(Debug, Clone, Serialize)]
pub(super) struct HitSummary {
    rounds: usize,
    l1: HitRow,
    l2: HitRow,
    /// Median share of B's requests answered from L2 during its run.
    l2_share: Option<f64>,
    /// Median of B's mean L2 lookup time during its run, from its metrics.
    l2_lookup_mean_us: Option<f64>,
    /// Per-round differences L2 − L1.
    p50_cost_us: Spread,
    p99_cost_us: Spread,
    /// Per-round req/s L2 / L1.
    rate_ratio: Spread,
}

/// Everything printed.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Summary {
    configs: Vec<ConfigRow>,
    upstream_ratio: Option<Ratio>,
    rate_ratio: Option<Ratio>,
    hits: Option<HitSummary>,
}

fn median(values: &[f64]) -> Option<f64> {
    Spread::of(values).map(|spread| spread.median)
}

/// Medians, key by key, of maps that may lack some keys (a missing key counts as 0).
fn median_map(maps: &[&BTreeMap<String, f64>]) -> BTreeMap<String, f64> {
    let keys: std::collections::BTreeSet<&String> =
        maps.iter().flat_map(|map| map.keys()).collect();
    keys.into_iter()
        .map(|key| {
            let values: Vec<f64> = maps
                .iter()
                .map(|map| map.get(key).copied().unwrap_or(0.0))
                .collect();
            (key.clone(), median(&values).unwrap_or(0.0))
        })
        .collect()
}

impl Summary {
    pub(super) fn of(loads: &[LoadRun], hits: &[HitRun]) -> Self {
        let mut configs = Vec::new();
        for config in Config::ALL {
            let runs: Vec<&LoadRun> = loads.iter().filter(|run| run.config == config).collect();
            let values = |field: &dyn Fn(&LoadRun) -> f64| -> Vec<f64> {
                runs.iter().map(|run| field(run)).collect()
            };
            let (Some(upstream), Some(rate), Some(keys)) = (
                Spread::of(&values(&|run| run.upstream_requests as f64)),
                Spread::of(&values(&LoadRun::requests_per_sec)),
                Spread::of(&values(&|run| run.redis_keys as f64)),
            ) else {
                continue;
            };
            let med = |field: &dyn Fn(&LoadRun) -> f64| median(&values(field)).unwrap_or(0.0);
            let families: std::collections::BTreeSet<&String> =
                runs.iter().flat_map(|run| run.l2.keys()).collect();
            let empty = BTreeMap::new();
            let l2 = families
                .into_iter()
                .map(|family| {
                    let maps: Vec<&BTreeMap<String, f64>> = runs
                        .iter()
                        .map(|run| run.l2.get(family).unwrap_or(&empty))
                        .collect();
                    (family.clone(), median_map(&maps))
                })
                .collect();
            let optional = |field: &dyn Fn(&LoadRun) -> Option<f64>| {
                let present: Vec<f64> = runs.iter().filter_map(|run| field(run)).collect();
                median(&present)
            };
            configs.push(ConfigRow {
                config,
                rounds: runs.len(),
                upstream_requests: upstream,
                requests_per_sec: rate,
                p50_us_a: med(&|run| run.a.p50_us),
                p50_us_b: med(&|run| run.b.p50_us),
                p99_us_a: med(&|run| run.a.p99_us),
                p99_us_b: med(&|run| run.b.p99_us),
                cache: median_map(&runs.iter().map(|run| &run.cache).collect::<Vec<_>>()),
                from_l2: optional(&|run| run.from_l2),
                l2,
                gateway_upstream_exchanges: optional(&|run| run.gateway_upstream_exchanges),
                redis_keys: keys,
                troubled_runs: runs.iter().filter(|run| run.troubled()).count(),
                short_walks: runs.iter().filter(|run| !run.walked_all()).count(),
            });
        }
        let paired = |field: fn(&LoadRun) -> f64| {
            let rounds = loads.iter().map(|run| run.round).max().map_or(0, |r| r + 1);
            let per_round: Vec<f64> = (0..rounds)
                .filter_map(|round| {
                    let of = |config: Config| {
                        loads
                            .iter()
                            .find(|run| run.round == round && run.config == config)
                            .map(field)
                    };
                    let off = of(Config::L2Off)?;
                    (off > 0.0).then_some(of(Config::L2On)? / off)
                })
                .collect();
            Ratio::of(per_round)
        };
        Self {
            configs,
            upstream_ratio: paired(|run| run.upstream_requests as f64),
            rate_ratio: paired(LoadRun::requests_per_sec),
            hits: HitSummary::of(hits),
        }
    }

    pub(super) fn print(&self) {
        println!("{}", self.render());
    }

    fn render(&self) -> String {
        let mut text = String::new();
        let find = |config: Config| self.configs.iter().find(|row| row.config == config);
        let (off, on) = (find(Config::L2Off), find(Config::L2On));
        let cell = |row: Option<&ConfigRow>, show: &dyn Fn(&ConfigRow) -> String| {
            row.map_or_else(|| "—".to_owned(), show)
        };
        let ratio = |ratio: &Option<Ratio>| {
            ratio
                .as_ref()
                .map_or_else(String::new, |ratio| ratio_spread(&ratio.spread))
        };
        let mut line = |what: &str, show: &dyn Fn(&ConfigRow) -> String, last: String| {
            let _ = writeln!(
                text,
                "{what:<30} {:>32} {:>32}   {last}",
                cell(off, show),
                cell(on, show)
            );
        };
        line(
            "",
            &|row| format!("{} ({})", row.config.label(), rounds(row.rounds)),
            "on / off, paired rounds".to_owned(),
        );
        line(
            "upstream requests",
            &|row| spread(&row.upstream_requests, 0),
            ratio(&self.upstream_ratio),
        );
        line(
            "req/s, A + B",
            &|row| spread(&row.requests_per_sec, 0),
            ratio(&self.rate_ratio),
        );
        line(
            "p50, A / B",
            &|row| format!("{} / {}", format_us(row.p50_us_a), format_us(row.p50_us_b)),
            String::new(),
        );
        line(
            "p99, A / B",
            &|row| format!("{} / {}", format_us(row.p99_us_a), format_us(row.p99_us_b)),
            String::new(),
        );
        let caches: std::collections::BTreeSet<&String> = self
            .configs
            .iter()
            .flat_map(|row| row.cache.keys())
            .collect();
        for cache in caches {
            line(
                &format!("X-Cache {}", cache.to_uppercase()),
                &|row| format!("{:.0}", row.cache.get(cache).copied().unwrap_or(0.0)),
                String::new(),
            );
        }
        line(
            "  of the HITs, from L2",
            &|row| {
                row.from_l2
                    .map_or_else(|| "—".to_owned(), |n| format!("{n:.0}"))
            },
            String::new(),
        );
        let families: std::collections::BTreeSet<&String> =
            self.configs.iter().flat_map(|row| row.l2.keys()).collect();
        for family in families {
            line(
                &format!("L2 {family}"),
                &|row| {
                    row.l2.get(family).map_or_else(
                        || "—".to_owned(),
                        |values| {
                            let counted: Vec<String> = values
                                .iter()
                                .filter(|(_, count)| **count > 0.0)
                                .map(|(key, count)| format!("{key} {count:.0}"))
                                .collect();
                            if counted.is_empty() {
                                "0".to_owned()
                            } else {
                                counted.join(", ")
                            }
                        },
                    )
                },
                String::new(),
            );
        }
        line(
            "upstream, as resync counts it",
            &|row| {
                row.gateway_upstream_exchanges
                    .map_or_else(|| "—".to_owned(), |n| format!("{n:.0}"))
            },
            String::new(),
        );
        line(
            "Redis keys after the load",
            &|row| spread(&row.redis_keys, 0),
            String::new(),
        );
        let _ = writeln!(
            text,
            "(medians over the rounds, (min–max) when there are several; counts are of both instances during the load; \
             the upstream's own counter excludes the probes before each load)"
        );
        if let Some(ratio) = &self.upstream_ratio {
            let _ = writeln!(
                text,
                "upstream requests with L2 / without, measured: {:.3}× (rounds: {}); \
                 the design expects about 0.5 (each key fetched once, not once per instance)",
                ratio.spread.median,
                ratio
                    .per_round
                    .iter()
                    .map(|value| format!("{value:.3}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
        }
        for row in &self.configs {
            if row.troubled_runs > 0 {
                let _ = writeln!(
                    text,
                    "! {}: {} round(s) with socket errors or non-2xx answers",
                    row.config.label(),
                    row.troubled_runs
                );
            }
            if row.short_walks > 0 {
                let _ = writeln!(
                    text,
                    "! {}: in {} round(s) an instance completed fewer than {PATHS} requests, so it \
                     may not have asked for every path: its upstream count is low",
                    row.config.label(),
                    row.short_walks
                );
            }
        }
        if let Some(hits) = &self.hits {
            hits.render(&mut text);
        }
        text
    }
}

/// `median (min–max)`, or the median alone when they are equal.
fn spread(spread: &Spread, decimals: usize) -> String {
    if spread.min == spread.max {
        format!("{:.decimals$}", spread.median)
    } else {
        format!(
            "{:.decimals$} ({:.decimals$}–{:.decimals$})",
            spread.median, spread.min, spread.max
        )
    }
}

/// `1 round`, `3 rounds`.
fn rounds(count: usize) -> String {
    if count == 1 {
        "1 round".to_owned()
    } else {
        format!("{count} rounds")
    }
}

/// A spread of latency differences: `+75 µs`, or `+75 µs (+60 µs to +90 µs)`.
fn signed_spread(spread: &Spread) -> String {
    if spread.min == spread.max {
        signed_us(spread.median)
    } else {
        format!(
            "{} ({} to {})",
            signed_us(spread.median),
            signed_us(spread.min),
            signed_us(spread.max)
        )
    }
}

/// A spread of ratios: `0.356×`, or `0.356× (0.30–0.40)`.
fn ratio_spread(spread: &Spread) -> String {
    if spread.min == spread.max {
        format!("{:.3}×", spread.median)
    } else {
        format!(
            "{:.3}× ({:.3}–{:.3})",
            spread.median, spread.min, spread.max
        )
    }
}

/// `+12 µs` or `-1.20 ms`.
fn signed_us(us: f64) -> String {
    let sign = if us < 0.0 { "-" } else { "+" };
    format!("{sign}{}", format_us(us.abs()))
}

impl HitSummary {
    fn of(hits: &[HitRun]) -> Option<Self> {
        let values =
            |field: &dyn Fn(&HitRun) -> f64| -> Vec<f64> { hits.iter().map(field).collect() };
        let row = |stats: &dyn Fn(&HitRun) -> &crate::bench_gateway::wrk::Stats| {
            Some(HitRow {
                requests_per_sec: Spread::of(&values(&|run| stats(run).requests_per_sec))?,
                p50_us: median(&values(&|run| stats(run).p50_us))?,
                p99_us: median(&values(&|run| stats(run).p99_us))?,
            })
        };
        let optional = |field: &dyn Fn(&HitRun) -> Option<f64>| {
            median(&hits.iter().filter_map(field).collect::<Vec<_>>())
        };
        Some(Self {
            rounds: hits.len(),
            l1: row(&|run| &run.l1)?,
            l2: row(&|run| &run.l2)?,
            l2_share: optional(&|run| run.l2_share),
            l2_lookup_mean_us: optional(&|run| run.l2_lookup_mean_us),
            p50_cost_us: Spread::of(&values(&|run| run.l2.p50_us - run.l1.p50_us))?,
            p99_cost_us: Spread::of(&values(&|run| run.l2.p99_us - run.l1.p99_us))?,
            rate_ratio: Spread::of(&values(&|run| {
                run.l2.requests_per_sec / run.l1.requests_per_sec.max(f64::MIN_POSITIVE)
            }))?,
        })
    }

    fn render(&self, text: &mut String) {
        let _ = writeln!(
            text,
            "\nThe L2 hit path: one instance at a time, wrk -t{} -c{} (one request in flight, so \
             the latency is the path's own, not queueing), the same {PATHS} paths ({}):",
            HIT_LOAD.0,
            HIT_LOAD.1,
            rounds(self.rounds)
        );
        let _ = writeln!(
            text,
            "{:<34} {:>30} {:>10} {:>10} {:>10}",
            "", "req/s median (min–max)", "p50", "p99", "from L2"
        );
        let share = self
            .l2_share
            .map_or_else(|| "?".to_owned(), |share| format!("{:.1} %", share * 100.0));
        for (label, row, from) in [
            ("A: L1 hits (every path in L1)", &self.l1, "—".to_owned()),
            ("B: L2 hits (a fresh, tiny L1)", &self.l2, share),
        ] {
            let _ = writeln!(
                text,
                "{label:<34} {:>30} {:>10} {:>10} {from:>10}",
                spread(&row.requests_per_sec, 0),
                format_us(row.p50_us),
                format_us(row.p99_us),
            );
        }
        let _ = writeln!(
            text,
            "cost of an L2 hit over an L1 hit (per-round differences): p50 {}, p99 {}; req/s L2 / L1 {}",
            signed_spread(&self.p50_cost_us),
            signed_spread(&self.p99_cost_us),
            ratio_spread(&self.rate_ratio),
        );
        match self.l2_lookup_mean_us {
            Some(mean) => {
                let _ = writeln!(
                    text,
                    "B's own mean L2 lookup time during its run (its metrics: the Redis round trip and decoding): {}",
                    format_us(mean)
                );
            }
            None => {
                let _ = writeln!(
                    text,
                    "(B's /metrics has no L2 lookup time histogram: only wrk's figures above)"
                );
            }
        }
    }
}

/// Writes the context, every run and the summary as JSON.
pub(super) fn write_json(
    path: &Path,
    context: &Context,
    loads: &[LoadRun],
    hits: &[HitRun],
    summary: &Summary,
) -> Result<()> {
    let json = serde_json::json!({
        "context": context,
        "loads": loads,
        "hits": hits,
        "summary": summary,
    });
    let text = serde_json::to_string_pretty(&json)?;
    std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench_gateway::wrk::Stats;

    fn stats(rate: f64, p50_us: f64, p99_us: f64) -> Stats {
        Stats {
            requests_per_sec: rate,
            p50_us,
            p99_us,
            requests: PATHS * 3,
            ..Stats::default()
        }
    }

    fn load(round: u32, config: Config, upstream: u64, rate: f64) -> LoadRun {
        let on = config == Config::L2On;
        let l2 = if on {
            BTreeMap::from([
                (
                    "lookups".to_owned(),
                    BTreeMap::from([("hit".to_owned(), 9_900.0), ("miss".to_owned(), 10_100.0)]),
                ),
                (
                    "errors".to_owned(),
                    BTreeMap::from([("lookup".to_owned(), 0.0)]),
                ),
            ])
        } else {
            BTreeMap::new()
        };
        LoadRun {
            round,
            config,
            a: stats(rate / 2.0, 700.0, 6_000.0),
            b: stats(rate / 2.0, 710.0, 6_100.0),
            upstream_requests: upstream,
            gateway_upstream_exchanges: Some(upstream as f64),
            cache: BTreeMap::from([
                ("hit".to_owned(), 100_000.0),
                ("miss".to_owned(), upstream as f64),
            ]),
            from_l2: on.then_some(9_990.0),
            l2,
            redis_keys: if on { 10_001 } else { 0 },
        }
    }

    fn hit(round: u32, l2_p50: f64) -> HitRun {
        HitRun {
            round,
            l1_first: round % 2 == 0,
            l1: stats(20_000.0, 40.0, 120.0),
            l2: stats(8_000.0, l2_p50, 400.0),
            l2_share: Some(0.999),
            l2_lookup_mean_us: Some(60.0),
        }
    }

    #[test]
    fn the_configurations_side_by_side_with_measured_ratios() {
        let loads = vec![
            load(0, Config::L2Off, 20_000, 50_000.0),
            load(0, Config::L2On, 10_000, 40_000.0),
            load(1, Config::L2Off, 20_000, 50_000.0),
            load(1, Config::L2On, 12_000, 45_000.0),
        ];
        let hits = vec![hit(0, 100.0), hit(1, 140.0)];
        let summary = Summary::of(&loads, &hits);
        let ratio = summary.upstream_ratio.as_ref().unwrap();
        assert_eq!(ratio.per_round, vec![0.5, 0.6]);
        let text = summary.render();
        for needle in [
            "L2 off (2 rounds)",
            "upstream requests",
            "11000 (10000–12000)",
            "0.550× (0.500–0.600)",
            "L2 lookups",
            "hit 9900, miss 10100",
            "L2 errors",
            "measured: 0.550× (rounds: 0.500 0.600)",
            "+80 µs (+60 µs to +100 µs)",
            "99.9 %",
            "60 µs",
        ] {
            assert!(text.contains(needle), "no {needle:?} in:\n{text}");
        }
        let errors = text
            .lines()
            .find(|line| line.starts_with("L2 errors"))
            .unwrap();
        assert!(errors.trim_end().ends_with('0'), "{errors}");
    }

    #[test]
    fn one_round_prints_no_range() {
        let loads = vec![
            load(0, Config::L2Off, 20_000, 50_000.0),
            load(0, Config::L2On, 10_013, 40_000.0),
        ];
        let text = Summary::of(&loads, &[hit(0, 116.0)]).render();
        assert!(text.contains("L2 on (1 round)"), "{text}");
        assert!(text.contains("0.501×"), "{text}");
        let upstream = text
            .lines()
            .find(|line| line.starts_with("upstream requests "))
            .unwrap();
        assert!(
            upstream.trim_end().ends_with("10013   0.501×"),
            "{upstream}"
        );
        assert!(text.contains("p50 +76 µs, p99 +280 µs"), "{text}");
    }
}
