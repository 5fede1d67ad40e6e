//! What `bench gateway` prints and writes: the machine, the commit and the command first (so
//! figures can cite them), then per workload and target the median requests per second with
//! its range, the median p50 and p99, and the per-round ratio resync / nginx.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, Result};
use serde::Serialize;

use super::wrk::{self, format_us};
use super::{Options, Run, Target, Workload, PATHS, TTL};

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
    nginx: String,
    wrk: String,
    secs: u64,
    rounds: u32,
    wrk_threads: u32,
    wrk_connections: u32,
    paths: u64,
    ttl_secs: u64,
}

impl Context {
    pub(super) fn probe(root: &Path, options: &Options, nginx: &Path, wrk: &Path) -> Result<Self> {
        let args: Vec<String> = std::env::args()
            .skip(1)
            .map(|arg| shell_word(&arg))
            .collect();
        let command = format!("cargo xtask {}", args.join(" "));
        let commit =
            output(
                Command::new("git")
                    .current_dir(root)
                    .args(["rev-parse", "--short", "HEAD"]),
            )
            .context("git rev-parse --short HEAD")?;
        let changed_paths = output(
            Command::new("git")
                .current_dir(root)
                .args(["status", "--porcelain"]),
        )
        .context("git status --porcelain")?
        .lines()
        .count();
        let nproc = output(&mut Command::new("nproc")).unwrap_or_else(|_| {
            std::thread::available_parallelism().map_or("?".to_owned(), |n| n.to_string())
        });
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find_map(|line| line.strip_prefix("model name"))
                    .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
            })
            .unwrap_or_else(|| "?".to_owned());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map_or_else(|_| "?".to_owned(), |text| text.trim().to_owned());
        // Both print their version on stderr; wrk exits 1 after it.
        let nginx = first_line(Command::new(nginx).arg("-v"));
        let wrk = first_line(Command::new(wrk).arg("-v"));
        Ok(Self {
            command,
            commit,
            changed_paths,
            nproc,
            cpu,
            kernel,
            load_average_before: loadavg(),
            nginx,
            wrk,
            secs: options.secs,
            rounds: options.rounds,
            wrk_threads: wrk::THREADS,
            wrk_connections: wrk::CONNECTIONS,
            paths: PATHS,
            ttl_secs: TTL.as_secs(),
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
            "\n==> bench gateway\n    command: {}\n    commit:  {} ({tree})\n    machine: nproc {}, {}, Linux {}, load average {}\n    tools:   {}, {}\n    runs:    wrk -t{} -c{} -d{}s --latency; {} rounds; {} warm paths; TTL {} s",
            self.command,
            self.commit,
            self.nproc,
            self.cpu,
            self.kernel,
            self.load_average_before,
            self.nginx,
            self.wrk,
            self.wrk_threads,
            self.wrk_connections,
            self.secs,
            self.rounds,
            self.paths,
            self.ttl_secs,
        );
    }
}

/// The load average (`/proc/loadavg`'s first three figures): other work on the machine
/// skews the figures.
pub(crate) fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or_else(
        |_| "?".to_owned(),
        |text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        },
    )
}

/// The trimmed stdout of a command that must succeed.
pub(crate) fn output(command: &mut Command) -> Result<String> {
    let out = command.output()?;
    anyhow::ensure!(out.status.success(), "exited with {}", out.status);
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The first line a command prints on stdout or stderr, whatever its exit status.
pub(crate) fn first_line(command: &mut Command) -> String {
    command.output().map_or_else(
        |error| format!("? ({error})"),
        |out| {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            text.lines().next().unwrap_or("?").trim().to_owned()
        },
    )
}

/// `word` quoted for a shell when it needs it.
pub(crate) fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Median, minimum and maximum.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct Spread {
    pub(crate) median: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
}

impl Spread {
    pub(crate) fn of(values: &[f64]) -> Option<Self> {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let (&min, &max) = (sorted.first()?, sorted.last()?);
        let middle = sorted.len() / 2;
        let median = if sorted.len() % 2 == 0 {
            (sorted[middle - 1] + sorted[middle]) / 2.0
        } else {
            sorted[middle]
        };
        Some(Self { median, min, max })
    }
}

/// One workload on one target over its runs.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Row {
    workload: Workload,
    target: Target,
    runs: usize,
    requests_per_sec: Spread,
    /// Median over the runs of each run's p50.
    p50_us: f64,
    /// Median over the runs of each run's p99.
    p99_us: f64,
    /// Runs with errors or non-2xx responses.
    troubled_runs: usize,
}

/// resync / nginx requests per second of one workload, round by round.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Ratio {
    workload: Workload,
    per_round: Vec<f64>,
    spread: Spread,
}

/// The table.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Summary {
    rows: Vec<Row>,
    ratios: Vec<Ratio>,
}

impl Summary {
    pub(super) fn of(runs: &[Run]) -> Self {
        let mut rows = Vec::new();
        let mut ratios = Vec::new();
        for workload in Workload::ALL {
            for target in [Target::Upstream, Target::Nginx, Target::Resync] {
                let of: Vec<&Run> = runs
                    .iter()
                    .filter(|run| run.workload == workload && run.target == target)
                    .collect();
                let values =
                    |field: fn(&Run) -> f64| of.iter().map(|run| field(run)).collect::<Vec<_>>();
                let Some(rate) = Spread::of(&values(|run| run.stats.requests_per_sec)) else {
                    continue;
                };
                let median =
                    |field: fn(&Run) -> f64| Spread::of(&values(field)).map_or(0.0, |s| s.median);
                rows.push(Row {
                    workload,
                    target,
                    runs: of.len(),
                    requests_per_sec: rate,
                    p50_us: median(|run| run.stats.p50_us),
                    p99_us: median(|run| run.stats.p99_us),
                    troubled_runs: of
                        .iter()
                        .filter(|run| run.stats.problems().is_some())
                        .count(),
                });
            }
            let rate = |target: Target, round: u32| {
                runs.iter()
                    .find(|run| {
                        run.workload == workload && run.target == target && run.round == Some(round)
                    })
                    .map(|run| run.stats.requests_per_sec)
            };
            let rounds = runs
                .iter()
                .filter_map(|run| run.round)
                .max()
                .map_or(0, |last| last + 1);
            let per_round: Vec<f64> = (0..rounds)
                .filter_map(|round| {
                    Some(rate(Target::Resync, round)? / rate(Target::Nginx, round)?)
                })
                .collect();
            if let Some(spread) = Spread::of(&per_round) {
                ratios.push(Ratio {
                    workload,
                    per_round,
                    spread,
                });
            }
        }
        Self { rows, ratios }
    }

    pub(super) fn print(&self) {
        println!("{}", self.render());
    }

    fn render(&self) -> String {
        let mut text = String::new();
        let _ = writeln!(
            text,
            "\n{:<15} {:<9} {:>30} {:>10} {:>10} {:>5}",
            "workload", "target", "req/s median (min–max)", "p50", "p99", "runs"
        );
        for row in &self.rows {
            let spread = &row.requests_per_sec;
            let rate = if row.runs == 1 {
                format!("{:.0}", spread.median)
            } else {
                format!("{:.0} ({:.0}–{:.0})", spread.median, spread.min, spread.max)
            };
            let trouble = if row.troubled_runs > 0 {
                format!("  ! {} run(s) with errors or non-2xx", row.troubled_runs)
            } else {
                String::new()
            };
            let _ = writeln!(
                text,
                "{:<15} {:<9} {rate:>30} {:>10} {:>10} {:>5}{trouble}",
                row.workload.label(),
                row.target.label(),
                format_us(row.p50_us),
                format_us(row.p99_us),
                row.runs,
            );
        }
        let _ = writeln!(
            text,
            "(p50, p99: medians of the runs' figures; ! marks runs with errors or non-2xx)"
        );
        let _ = writeln!(text, "\nresync / nginx, req/s of each round (paired):");
        for ratio in &self.ratios {
            let rounds: Vec<String> = ratio
                .per_round
                .iter()
                .map(|value| format!("{value:.3}"))
                .collect();
            let _ = writeln!(
                text,
                "{:<15} median {:.3}× ({:.3}–{:.3}); rounds: {}",
                ratio.workload.label(),
                ratio.spread.median,
                ratio.spread.min,
                ratio.spread.max,
                rounds.join(" ")
            );
        }
        text
    }
}

/// Writes the context, every run and the summary as JSON.
pub(super) fn write_json(
    path: &Path,
    context: &Context,
    runs: &[Run],
    summary: &Summary,
) -> Result<()> {
    let json = serde_json::json!({
        "context": context,
        "runs": runs,
        "summary": summary,
    });
    let text = serde_json::to_string_pretty(&json)?;
    std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(workload: Workload, target: Target, round: Option<u32>, rate: f64) -> Run {
        Run {
            workload,
            target,
            round,
            first: true,
            stats: wrk::Stats {
                requests_per_sec: rate,
                p50_us: rate / 100.0,
                p99_us: rate / 10.0,
                requests: 1,
                ..wrk::Stats::default()
            },
        }
    }

    #[test]
    fn spread_has_the_median_and_the_range() {
        let odd = Spread::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((odd.median, odd.min, odd.max), (2.0, 1.0, 3.0));
        let even = Spread::of(&[4.0, 1.0, 2.0, 3.0]).unwrap();
        assert!((even.median - 2.5).abs() < 1e-12);
        assert!(Spread::of(&[]).is_none());
    }

    #[test]
    fn ratios_pair_the_runs_of_each_round() {
        let runs = vec![
            run(Workload::Hot, Target::Upstream, None, 100.0),
            run(Workload::Hot, Target::Nginx, Some(0), 1000.0),
            run(Workload::Hot, Target::Resync, Some(0), 1100.0),
            run(Workload::Hot, Target::Resync, Some(1), 900.0),
            run(Workload::Hot, Target::Nginx, Some(1), 1000.0),
            run(Workload::Hot, Target::Nginx, Some(2), 2000.0),
            run(Workload::Hot, Target::Resync, Some(2), 2000.0),
        ];
        let summary = Summary::of(&runs);
        assert_eq!(summary.rows.len(), 3);
        let nginx = &summary.rows[1];
        assert_eq!(nginx.target, Target::Nginx);
        assert_eq!(nginx.requests_per_sec.median, 1000.0);
        assert_eq!(nginx.requests_per_sec.max, 2000.0);
        assert_eq!(summary.ratios.len(), 1);
        let ratio = &summary.ratios[0];
        assert_eq!(ratio.per_round.len(), 3);
        assert!((ratio.per_round[0] - 1.1).abs() < 1e-12);
        assert!((ratio.spread.median - 1.0).abs() < 1e-12);
        assert!((ratio.spread.min - 0.9).abs() < 1e-12);
        let text = summary.render();
        assert!(text.contains("median 1.000× (0.900–1.100)"), "{text}");
    }

    #[test]
    fn shell_words_are_quoted_when_needed() {
        assert_eq!(shell_word("--secs"), "--secs");
        assert_eq!(shell_word("a b"), "'a b'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
    }
}
