//! Running `wrk -t<threads> -c<connections> -d<secs>s --latency` (`bench gateway`: `-t2
//! -c64`) and reading its report: requests per second, p50 and p99 latency, socket errors and
//! non-2xx responses.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::{describe, interrupt};

/// wrk's threads in `bench gateway`.
pub(crate) const THREADS: u32 = 2;

/// wrk's connections in `bench gateway`.
pub(crate) const CONNECTIONS: u32 = 64;

/// How long past its duration a wrk run may take before it is stopped.
const GRACE: Duration = Duration::from_secs(30);

/// A wrk script drawing each request's path uniformly from `<prefix><n>`, `n` in
/// `first .. first + count`, given as `-- <prefix> <first> <count>`; each thread seeds its
/// own generator.
const RANDOM_SCRIPT: &str = r#"-- Written by `cargo xtask bench gateway`.
local prefix, first, count
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("thread_number", threads)
end

function init(args)
  prefix = args[1]
  first = tonumber(args[2])
  count = tonumber(args[3])
  math.randomseed(os.time() * 1000 + (thread_number or 0))
  for _ = 1, 10 do math.random() end
end

function request()
  return wrk.format("GET", prefix .. (first + math.random(0, count - 1)))
end
"#;

/// Writes the random-path script into `dir`; returns its path.
pub(crate) fn write_random_script(dir: &Path) -> Result<PathBuf> {
    let path = dir.join("random-paths.lua");
    std::fs::write(&path, RANDOM_SCRIPT).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// What one wrk run reported.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub(crate) struct Stats {
    pub(crate) requests_per_sec: f64,
    pub(crate) p50_us: f64,
    pub(crate) p99_us: f64,
    pub(crate) requests: u64,
    pub(crate) seconds: f64,
    pub(crate) connect_errors: u64,
    pub(crate) read_errors: u64,
    pub(crate) write_errors: u64,
    pub(crate) timeouts: u64,
    /// wrk's "Non-2xx or 3xx responses" (statuses above 399).
    pub(crate) non_2xx: u64,
    /// The command, as a shell line.
    pub(crate) command: String,
}

impl Stats {
    /// `None` for a clean run, else what went wrong.
    pub(crate) fn problems(&self) -> Option<String> {
        let mut problems = Vec::new();
        for (count, what) in [
            (self.non_2xx, "non-2xx responses"),
            (self.connect_errors, "connect errors"),
            (self.read_errors, "read errors"),
            (self.write_errors, "write errors"),
            (self.timeouts, "timeouts"),
        ] {
            if count > 0 {
                problems.push(format!("{count} {what}"));
            }
        }
        if self.requests == 0 {
            problems.push("no request completed".to_owned());
        }
        (!problems.is_empty()).then(|| problems.join(", "))
    }

    /// One line for the progress log.
    pub(crate) fn line(&self) -> String {
        let problems = self
            .problems()
            .map_or(String::new(), |problems| format!("  ! {problems}"));
        format!(
            "{:>10.0} req/s  p50 {:>9}  p99 {:>9}{problems}",
            self.requests_per_sec,
            format_us(self.p50_us),
            format_us(self.p99_us)
        )
    }
}

/// A latency in microseconds, as `812 µs` or `2.31 ms`.
pub(crate) fn format_us(us: f64) -> String {
    if us < 1000.0 {
        format!("{us:.0} µs")
    } else {
        format!("{:.2} ms", us / 1000.0)
    }
}

/// How hard and how long one wrk run loads its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Load {
    pub(crate) threads: u32,
    pub(crate) connections: u32,
    pub(crate) secs: u64,
}

/// Runs wrk against `url` (with `script` and its arguments) under `load`, its output kept in
/// `out_dir` under `label`; fails when wrk fails or its report cannot be read.
pub(crate) fn run(
    wrk: &Path,
    url: &str,
    script: Option<(&Path, &[String])>,
    load: Load,
    out_dir: &Path,
    label: &str,
) -> Result<Stats> {
    let Load {
        threads,
        connections,
        secs,
    } = load;
    let mut command = Command::new(wrk);
    command.args([
        format!("-t{threads}"),
        format!("-c{connections}"),
        format!("-d{secs}s"),
        "--latency".to_owned(),
    ]);
    if let Some((script, _)) = script {
        command.arg("-s").arg(script);
    }
    command.arg(url);
    if let Some((_, args)) = script {
        command.arg("--").args(args);
    }
    let shell = describe(&command);
    let file = out_dir.join(format!("wrk-{}.txt", label.replace(' ', "-")));
    let out = File::create(&file).with_context(|| format!("creating {}", file.display()))?;
    command.stdout(out.try_clone()?).stderr(out);
    let status = interrupt::run_bounded(command, Some(Duration::from_secs(secs) + GRACE))
        .with_context(|| format!("running {shell}"))?;
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    if !status.success() {
        bail!("{shell} failed ({status}):\n{}", text.trim_end());
    }
    let mut stats =
        parse(&text).with_context(|| format!("reading the report of {shell}:\n{text}"))?;
    stats.command = shell;
    Ok(stats)
}

/// Reads wrk's report (with `--latency`).
fn parse(text: &str) -> Result<Stats> {
    let mut stats = Stats::default();
    let (mut rate, mut p50, mut p99, mut total) = (None, None, None, None);
    for line in text.lines() {
        let line = line.trim();
        if let Some(value) = line.strip_prefix("Requests/sec:") {
            rate = Some(value.trim().parse::<f64>().context("bad Requests/sec")?);
        } else if let Some(value) = line.strip_prefix("50%") {
            p50 = Some(duration_us(value.trim())?);
        } else if let Some(value) = line.strip_prefix("99%") {
            p99 = Some(duration_us(value.trim())?);
        } else if let Some((count, rest)) = line.split_once(" requests in ") {
            let elapsed = rest.split(',').next().unwrap_or_default().trim();
            total = Some((
                count.trim().parse::<u64>().context("bad request count")?,
                duration_us(elapsed)? / 1e6,
            ));
        } else if let Some(value) = line.strip_prefix("Socket errors:") {
            for part in value.split(',') {
                let mut words = part.split_whitespace();
                let (Some(kind), Some(count)) = (words.next(), words.next()) else {
                    bail!("bad socket error line {line:?}");
                };
                let count: u64 = count.parse().context("bad socket error count")?;
                match kind {
                    "connect" => stats.connect_errors = count,
                    "read" => stats.read_errors = count,
                    "write" => stats.write_errors = count,
                    "timeout" => stats.timeouts = count,
                    _ => bail!("unknown socket error kind in {line:?}"),
                }
            }
        } else if let Some(value) = line.strip_prefix("Non-2xx or 3xx responses:") {
            stats.non_2xx = value.trim().parse().context("bad non-2xx count")?;
        }
    }
    stats.requests_per_sec = rate.context("no Requests/sec line")?;
    stats.p50_us = p50.context("no 50% latency line (was --latency given?)")?;
    stats.p99_us = p99.context("no 99% latency line")?;
    (stats.requests, stats.seconds) = total.context("no `N requests in T` line")?;
    Ok(stats)
}

/// wrk's time (`812.00us`, `2.31ms`, `1.00s`, `1.50m`, `1.00h`) in microseconds.
fn duration_us(text: &str) -> Result<f64> {
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .with_context(|| format!("no unit in {text:?}"))?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .trim()
        .parse()
        .with_context(|| format!("bad time {text:?}"))?;
    let scale = match unit.trim() {
        "us" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "m" => 60e6,
        "h" => 3600e6,
        other => bail!("unknown time unit {other:?} in {text:?}"),
    };
    Ok(number * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLEAN: &str = "Running 2s test @ http://127.0.0.1:8080/items/0
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   635.91us    0.89ms  12.92ms   93.69%
    Req/Sec    56.20k     8.07k   62.00k    86.54%
  Latency Distribution
     50%  250.00us
     75%  491.00us
     90%  700.00us
     99%    5.00ms
  224736 requests in 2.00s, 180.12MB read
Requests/sec: 112153.25
Transfer/sec:     90.06MB
";

    #[test]
    fn reads_a_clean_report() {
        let stats = parse(CLEAN).unwrap();
        assert!((stats.requests_per_sec - 112_153.25).abs() < 1e-6);
        assert!((stats.p50_us - 250.0).abs() < 1e-9);
        assert!((stats.p99_us - 5000.0).abs() < 1e-9);
        assert_eq!(stats.requests, 224_736);
        assert!((stats.seconds - 2.0).abs() < 1e-9);
        assert_eq!(stats.problems(), None);
    }

    #[test]
    fn reports_errors_and_non_2xx() {
        let text = CLEAN.replace(
            "Requests/sec:",
            "  Socket errors: connect 0, read 3, write 0, timeout 7\n  \
             Non-2xx or 3xx responses: 12\nRequests/sec:",
        );
        let stats = parse(&text).unwrap();
        assert_eq!(
            (stats.read_errors, stats.timeouts, stats.non_2xx),
            (3, 7, 12)
        );
        assert_eq!(
            stats.problems().as_deref(),
            Some("12 non-2xx responses, 3 read errors, 7 timeouts")
        );
    }

    #[test]
    fn rejects_a_report_without_latency() {
        let text: String = CLEAN
            .lines()
            .filter(|line| !line.contains('%') || line.contains("Stdev"))
            .map(|line| format!("{line}\n"))
            .collect();
        assert!(parse(&text).is_err());
    }

    #[test]
    fn reads_every_time_unit() {
        assert!((duration_us("812.00us").unwrap() - 812.0).abs() < 1e-9);
        assert!((duration_us("2.31ms").unwrap() - 2310.0).abs() < 1e-9);
        assert!((duration_us("1.50m").unwrap() - 90e6).abs() < 1e-3);
        assert!(duration_us("3.0x").is_err());
        assert!(duration_us("12").is_err());
    }
}
