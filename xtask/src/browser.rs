//! `cargo xtask browser` and a step of `cargo xtask ci`: the built-in dashboard (`GET /`)
//! in headless Chromium (Debian's `chromium`, installed when missing), against the real
//! `resync` binary.
//!
//! The binary runs in an empty temporary directory (no `settings.toml`) on a free loopback
//! port in front of a `test-upstream` (crates/test-support's binary), with the throwaway
//! Postgres and Redis, the gateway's Redis second level on, a history sample every second
//! and an API token. Traffic goes through `/tws/…` at a steady pace for the whole step (new
//! paths, which miss, and hot ones, which hit); once the history holds at least
//! [`MIN_SAMPLES`] samples that saw it (`--samples N` waits for more; polled through the
//! API), Chromium loads the page three times, each in a new profile, with virtual time
//! (`--virtual-time-budget`: the page's timers run and network fetches pause the clock, so
//! nothing waits on the wall clock) and its console on stderr (`--enable-logging=stderr
//! --v=0`):
//!
//! 1. `/` without the token (`--dump-dom`): the page asks for it (`data-auth="required"`,
//!    the token form shown), with no JavaScript error;
//! 2. `/#token=…` (`--dump-dom`): the page stores the token as its form does and refreshes
//!    with it: `data-ready="1"`, `data-auth="ok"`, `data-errors` empty, every chart's
//!    `data-points` above 0, the health components listed;
//! 3. the same with `--screenshot` at 1400×1000: the PNG is written where asked
//!    (`cargo xtask browser`: docs/images/dashboard.png; `ci`: under the target directory,
//!    so a CI run leaves the work tree as it was).
//!
//! Chromium's console log does not carry a message's level (every line is `INFO:CONSOLE`),
//! so the check is stricter than "no errors": each run's console must hold only the page's
//! own `resync dashboard: …` lines, and runs 2 and 3 must hold its first-refresh line (so a
//! console that was not captured cannot pass). Uncaught exceptions, console errors and
//! warnings, and content-security-policy reports all fail it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, ensure, Context, Result};
use clap::Args;

use crate::bench_gateway::client::Client;
use crate::bench_gateway::services::{alive, start_upstream, Resync, Scratch, Service};
use crate::binaries::{cargo_target_dir, Binaries, Profile};
use crate::{interrupt, packages, services};
use test_support::{DATABASE_URL_ENV, REDIS_URL_ENV};

/// Every wait gives up after this long (a loaded 2-core machine is slow).
const BOUND: Duration = Duration::from_secs(60);

/// The pause between two requests of the background traffic (at most 40 a second).
const PACE: Duration = Duration::from_millis(25);
/// The most requests the background traffic sends, however long the step takes.
const MAX_REQUESTS: u64 = 20_000;

/// Longest one Chromium run may take (wall clock).
const CHROMIUM_LIMIT: Duration = Duration::from_secs(120);

/// History samples that must exist, with gateway traffic in them, before the page loads
/// (`cargo xtask browser --samples` asks for more, for a screenshot with a longer history).
pub(crate) const MIN_SAMPLES: usize = 3;

/// The charts the page draws, by the id of their container (`chart-<id>`).
pub(crate) const CHARTS: &[&str] = &[
    "cache-hit-rate",
    "cache-memory",
    "pool-utilization",
    "pool-acquire",
    "gateway-traffic",
    "gateway-l2",
];

/// Virtual milliseconds the page runs before the token-less DOM is read (one refresh).
const ASK_BUDGET_MS: u32 = 3_000;
/// Virtual milliseconds before the DOM is read or the screenshot taken with the token (the
/// page refreshes every 5 s: the first refresh and two more).
const READY_BUDGET_MS: u32 = 12_000;

/// What the page logs on its first successful refresh.
const FIRST_REFRESH: &str = "resync dashboard: first refresh";
/// The prefix of every line the page itself logs when nothing is wrong.
const OWN_PREFIX: &str = "resync dashboard: ";

/// `cargo xtask browser`'s options.
#[derive(Debug, Args)]
pub(crate) struct Options {
    /// Where the screenshot goes (relative to the workspace root).
    #[arg(long, default_value = "docs/images/dashboard.png")]
    screenshot: PathBuf,
    /// History samples (one a second) to wait for before the page loads.
    #[arg(long, default_value_t = MIN_SAMPLES,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(3..=300))]
    samples: usize,
}

/// `cargo xtask browser`: builds the two binaries, then checks against the servers of
/// `cargo xtask services up` when both of their variables are set, else fresh ones.
pub(crate) fn run(root: &Path, options: &Options) -> Result<()> {
    let chromium = packages::ensure_chromium()?;
    let binaries = Binaries::build(root, Profile::Debug, None)?;
    let screenshot = root.join(&options.screenshot);
    let shared = |var: &str| std::env::var(var).ok().filter(|url| !url.trim().is_empty());
    if let (Some(database), Some(redis)) = (shared(DATABASE_URL_ENV), shared(REDIS_URL_ENV)) {
        eprintln!("==> using the servers of {DATABASE_URL_ENV} and {REDIS_URL_ENV}");
        return check_with(
            &binaries,
            &chromium,
            &database,
            &redis,
            &screenshot,
            options.samples,
        );
    }
    packages::ensure_installed()?;
    let running = services::Running::start()?;
    let result = check_with(
        &binaries,
        &chromium,
        &running.database_url(),
        &running.redis_url(),
        &screenshot,
        options.samples,
    );
    drop(running);
    result
}

/// The step of `ci`, after the tests and against their services, with the binaries the
/// tests built; the screenshot goes under the target directory.
pub(crate) fn check(root: &Path, running: &services::Running) -> Result<()> {
    let chromium = packages::ensure_chromium()?;
    let binaries = Binaries::built(
        root,
        Profile::Debug,
        "the workspace's tests (or `cargo xtask browser`)",
    )?;
    let screenshot = cargo_target_dir(root).join("browser").join("dashboard.png");
    check_with(
        &binaries,
        &chromium,
        &running.database_url(),
        &running.redis_url(),
        &screenshot,
        MIN_SAMPLES,
    )
}

fn check_with(
    binaries: &Binaries,
    chromium: &Path,
    database_url: &str,
    redis_url: &str,
    screenshot: &Path,
    samples: usize,
) -> Result<()> {
    let started = Instant::now();
    let scratch = Scratch::new("browser")?;
    let dir = scratch.path();
    let token = fresh_token();

    let mut upstream = start_upstream(&binaries.upstream, dir, &[])?;
    let extra_env = [
        ("RESYNC_DATABASE_URL", database_url.to_owned()),
        ("RESYNC_REDIS_URL", redis_url.to_owned()),
        ("RESYNC_GATEWAY_L2", "true".to_owned()),
        ("RESYNC_PERF_SAMPLE_INTERVAL", "1".to_owned()),
        ("RESYNC_PERF_API_TOKEN", token.clone()),
        ("RESYNC_DB_POOL_HEALTH_CHECK_INTERVAL", "1".to_owned()),
        ("RESYNC_REDIS_POOL_HEALTH_CHECK_INTERVAL", "1".to_owned()),
    ];
    let resync = Resync {
        binary: &binaries.resync,
        name: "resync",
        upstream: upstream.addr,
        ttl: Duration::from_secs(60),
        entries: 10_000,
        // A small bound, so that the memory chart shows the bytes against it.
        memory_mb: 1,
        extra_env: &extra_env,
    };
    let mut server = resync.start(dir)?;
    eprintln!(
        "==> browser: resync on http://{} in front of test-upstream on {}",
        server.addr, upstream.addr
    );

    let result = exercise(&mut server, &token, chromium, dir, screenshot, samples);
    let stopped = [&mut server, &mut upstream].map(|service| service.process.stop());
    let report = result.with_context(|| {
        format!(
            "the browser step failed; resync's log ends with:\n{}",
            server.process.log_tail(30)
        )
    })?;
    for stop in stopped {
        stop.context("stopping a server of the browser step")?;
    }
    eprintln!(
        "==> browser: {} in {:.1?}; screenshot {}",
        report,
        started.elapsed(),
        screenshot.display()
    );
    Ok(())
}

/// A token for one run: the time and the process id (the server listens on loopback only).
fn fresh_token() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos());
    format!("browser-{nanos:x}-{}", std::process::id())
}

fn exercise(
    server: &mut Service,
    token: &str,
    chromium: &Path,
    dir: &Path,
    screenshot: &Path,
    samples: usize,
) -> Result<String> {
    let addr = server.addr;
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let traffic = scope.spawn(|| traffic(addr, &stop));
        let result = wait_for_samples(server, token, &traffic, samples)
            .and_then(|samples| load_the_page(addr, token, chromium, dir, screenshot, samples));
        stop.store(true, Ordering::Relaxed);
        let sent = traffic
            .join()
            .map_err(|_| anyhow!("the traffic thread panicked"))?
            .context("the traffic through /tws/ failed")?;
        Ok(format!("{sent} gateway requests; {}", result?))
    })
}

/// Requests through `/tws/…` at a steady pace until `stop` (at most [`MAX_REQUESTS`]): one
/// in four to a new path (a miss: the upstream, its pool and the L2 are used), the rest to
/// a few hot ones (hits). Returns how many were sent.
fn traffic(addr: SocketAddr, stop: &AtomicBool) -> Result<u64> {
    let mut client = Client::new(addr, None);
    let mut sent = 0_u64;
    while !stop.load(Ordering::Relaxed) && !interrupt::interrupted() && sent < MAX_REQUESTS {
        let path = if sent % 4 == 0 {
            format!("/tws/dashboard/new-{sent}")
        } else {
            format!("/tws/dashboard/hot-{}", sent % 12)
        };
        let response = client.get(&path)?;
        ensure!(
            response.status == 200,
            "GET {path} answered {}",
            response.status
        );
        sent += 1;
        std::thread::sleep(PACE);
    }
    Ok(sent)
}

/// Polls the history until it holds `wanted` samples, the last two with gateway requests
/// and the gateway's L2 in them; returns how many it holds.
fn wait_for_samples(
    server: &mut Service,
    token: &str,
    traffic: &std::thread::ScopedJoinHandle<'_, Result<u64>>,
    wanted: usize,
) -> Result<usize> {
    // One sample a second, and start-up's slack.
    let bound = BOUND + Duration::from_secs(u64::try_from(wanted).unwrap_or(u64::MAX));
    let deadline = Instant::now() + bound;
    loop {
        alive(&mut server.process, server.name)?;
        ensure!(
            !traffic.is_finished(),
            "the traffic stopped before the history had {wanted} samples"
        );
        let history = api_get(server.addr, "/api/performance/history", token)?;
        let samples = history["samples"].as_array().map_or(&[][..], Vec::as_slice);
        let with_traffic = samples
            .iter()
            .rev()
            .take(2)
            .filter(|sample| {
                sample["gateway"]["requests"].as_u64().unwrap_or(0) > 0
                    && sample["gateway"]["l2"].is_object()
            })
            .count();
        if samples.len() >= wanted && with_traffic == 2 {
            return Ok(samples.len());
        }
        ensure!(
            Instant::now() < deadline,
            "within {bound:?} the history did not reach {wanted} samples with gateway \
             traffic and its L2 (it has {}; the last: {})",
            samples.len(),
            samples
                .last()
                .map_or("none".to_owned(), ToString::to_string)
        );
        // A sample is taken every second: poll a few times a second.
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The three Chromium runs and their checks.
fn load_the_page(
    addr: SocketAddr,
    token: &str,
    chromium: &Path,
    dir: &Path,
    screenshot: &Path,
    samples: usize,
) -> Result<String> {
    let base = format!("http://{addr}");

    // 1. Without the token: the page asks for it.
    let asked = Chromium::new(chromium, dir, "ask")?
        .budget(ASK_BUDGET_MS)
        .dump_dom(&format!("{base}/"))?;
    let body = start_tag(&asked.dom, "<body").context("the page has no <body>")?;
    ensure!(
        attribute(body, "data-auth") == Some("required"),
        "without the token the page does not ask for it: {body}"
    );
    let form = start_tag(&asked.dom, "id=\"token-form\"").context("no token form")?;
    ensure!(
        attribute(form, "hidden").is_none(),
        "the token form stays hidden: {form}"
    );
    ensure!(
        attribute(body, "data-errors") == Some(""),
        "JavaScript errors without the token: {body}"
    );
    asked.console_is_clean(false)?;

    // 2. With the token: the page is ready, without errors, and every chart has points.
    let page = format!("{base}/#token={token}");
    let ready = Chromium::new(chromium, dir, "ready")?
        .budget(READY_BUDGET_MS)
        .dump_dom(&page)?;
    let body = start_tag(&ready.dom, "<body").context("the page has no <body>")?;
    ensure!(
        attribute(body, "data-errors") == Some(""),
        "JavaScript errors: {body}"
    );
    ensure!(
        attribute(body, "data-ready") == Some("1"),
        "the page never finished a refresh: {body}"
    );
    ensure!(
        attribute(body, "data-auth") == Some("ok"),
        "the token was not accepted: {body}"
    );
    let mut points = Vec::new();
    for chart in CHARTS {
        let id = format!("id=\"chart-{chart}\"");
        let tag = start_tag(&ready.dom, &id).with_context(|| format!("no #chart-{chart}"))?;
        let count: u64 = attribute(tag, "data-points")
            .and_then(|value| value.parse().ok())
            .with_context(|| format!("#chart-{chart} has no data-points: {tag}"))?;
        ensure!(count > 0, "the chart {chart} has no data points: {tag}");
        points.push(format!("{chart} {count}"));
    }
    let health = start_tag(&ready.dom, "id=\"health\"").context("no #health")?;
    let components: u64 = attribute(health, "data-components")
        .and_then(|value| value.parse().ok())
        .unwrap_or(0);
    ensure!(components > 0, "no health component shown: {health}");
    let advice = start_tag(&ready.dom, "id=\"advice\"").context("no #advice")?;
    let recommendations = attribute(advice, "data-count").unwrap_or("?").to_owned();
    ready.console_is_clean(true)?;

    // 3. The screenshot.
    if let Some(parent) = screenshot.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let shot = Chromium::new(chromium, dir, "screenshot")?
        .budget(READY_BUDGET_MS)
        .screenshot(&page, screenshot)?;
    shot.console_is_clean(true)?;
    let png = std::fs::read(screenshot)
        .with_context(|| format!("reading the screenshot {}", screenshot.display()))?;
    ensure!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
        "{} is not a PNG of a drawn page ({} bytes)",
        screenshot.display(),
        png.len()
    );

    Ok(format!(
        "{samples} samples before the page loaded; the page asked for the token, then drew \
         {} ({components} health components, {recommendations} recommendations), no \
         JavaScript error, console clean ({} line(s), all the page's own)",
        points.join(", "),
        ready.console.len()
    ))
}

/// `GET path` with the token; the body as JSON.
fn api_get(addr: SocketAddr, path: &str, token: &str) -> Result<serde_json::Value> {
    let authorization = format!("Bearer {token}");
    let response =
        crate::http::request(addr, "GET", path, &[("Authorization", &authorization)], "")?;
    let body = &response.body;
    ensure!(
        response.status == 200,
        "GET {path} answered {}: {body}",
        response.status
    );
    serde_json::from_str(body).with_context(|| format!("GET {path}: not JSON: {body}"))
}

/// One headless Chromium run in a fresh profile.
#[derive(Debug)]
struct Chromium {
    command: Command,
    dir: PathBuf,
    label: &'static str,
}

/// What a run left: the DOM (with `--dump-dom`) and the page's console lines.
#[derive(Debug)]
struct Run {
    label: &'static str,
    dom: String,
    console: Vec<String>,
    log: PathBuf,
}

impl Chromium {
    fn new(binary: &Path, dir: &Path, label: &'static str) -> Result<Self> {
        let profile = dir.join(format!("chromium-{label}"));
        std::fs::create_dir_all(&profile)
            .with_context(|| format!("creating {}", profile.display()))?;
        let mut command = Command::new(binary);
        command
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--enable-logging=stderr",
                "--v=0",
                "--window-size=1400,1000",
                "--hide-scrollbars",
            ])
            .arg(format!("--user-data-dir={}", profile.display()));
        Ok(Self {
            command,
            dir: dir.to_owned(),
            label,
        })
    }

    fn budget(mut self, milliseconds: u32) -> Self {
        self.command
            .arg(format!("--virtual-time-budget={milliseconds}"));
        self
    }

    fn dump_dom(mut self, url: &str) -> Result<Run> {
        self.command.args(["--dump-dom", url]);
        self.run()
    }

    fn screenshot(mut self, url: &str, file: &Path) -> Result<Run> {
        // Chromium writes the file itself; an old one must not pass for a new one.
        let _ = std::fs::remove_file(file);
        self.command
            .arg(format!("--screenshot={}", file.display()))
            .arg(url);
        self.run()
    }

    fn run(mut self) -> Result<Run> {
        let out = self.dir.join(format!("chromium-{}.out", self.label));
        let log = self.dir.join(format!("chromium-{}.log", self.label));
        let stdout =
            std::fs::File::create(&out).with_context(|| format!("creating {}", out.display()))?;
        let stderr =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        self.command.stdout(stdout).stderr(stderr);
        // The token is in the URL: not echoed.
        eprintln!("==> browser: headless chromium, {}", self.label);
        let status = interrupt::run_bounded(self.command, Some(CHROMIUM_LIMIT))
            .with_context(|| format!("running chromium ({})", self.label))?;
        let errors = std::fs::read_to_string(&log).unwrap_or_default();
        ensure!(
            status.success(),
            "chromium ({}) failed ({status}); its log ends with:\n{}",
            self.label,
            tail_lines(&errors, 30)
        );
        Ok(Run {
            label: self.label,
            dom: std::fs::read_to_string(&out).unwrap_or_default(),
            console: console_lines(&errors),
            log,
        })
    }
}

impl Run {
    /// Fails unless every console line is the page's own (and, when `expect_ready`, its
    /// first-refresh line is among them).
    fn console_is_clean(&self, expect_ready: bool) -> Result<()> {
        let foreign: Vec<&String> = self.console.iter().filter(|line| !is_own(line)).collect();
        ensure!(
            foreign.is_empty(),
            "the page's console ({}) has messages other than its own:\n{}",
            self.label,
            foreign
                .iter()
                .map(|line| line.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        );
        if expect_ready && !self.console.iter().any(|line| line.contains(FIRST_REFRESH)) {
            bail!(
                "the page's console ({}) lacks its first-refresh line: was the console \
                 captured? {} console lines; chromium's log is {}",
                self.label,
                self.console.len(),
                self.log.display()
            );
        }
        Ok(())
    }
}

/// The console messages in Chromium's log: the lines `[…:INFO:CONSOLE…] "message", source:
/// url (line)`, as the message and its source.
fn console_lines(log: &str) -> Vec<String> {
    log.lines()
        .filter(|line| line.contains(":CONSOLE"))
        .map(|line| {
            line.split_once("] ")
                .map_or(line, |(_, message)| message)
                .to_owned()
        })
        .collect()
}

/// Whether a console line is one the page logs when all is well.
fn is_own(line: &str) -> bool {
    line.strip_prefix('"')
        .is_some_and(|message| message.starts_with(OWN_PREFIX))
}

/// The start tag that contains `marker` (`<body` or `id="…"`).
fn start_tag<'a>(dom: &'a str, marker: &str) -> Option<&'a str> {
    let at = dom.find(marker)?;
    let start = dom[..=at].rfind('<')?;
    let end = at + dom[at..].find('>')?;
    Some(&dom[start..=end])
}

/// The value of `name` in a start tag: `Some("")` for a bare or empty attribute.
fn attribute<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let mut rest = tag;
    while let Some(at) = rest.find(name) {
        let before = rest[..at].chars().next_back();
        let after = &rest[at + name.len()..];
        rest = after;
        if !before.is_some_and(char::is_whitespace) {
            continue;
        }
        if let Some(value) = after.strip_prefix("=\"") {
            return value.find('"').map(|end| &value[..end]);
        }
        if after.starts_with([' ', '>', '/']) {
            return Some("");
        }
    }
    None
}

/// The last `count` lines of `text`.
fn tail_lines(text: &str, count: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(count)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
[1:1:1202/082457.273330:INFO:CONSOLE:2] \"resync dashboard: first refresh: 4 samples\", source: http://127.0.0.1:1/dashboard/assets/dashboard.js (2)
[1:1:1202/082457.273404:WARNING:dbus] not a console line
[1:1:1202/082457.327289:INFO:CONSOLE(5)] \"Uncaught TypeError: Cannot read properties of null (reading 'foo')\", source: http://127.0.0.1:1/ (5)
";

    #[test]
    fn console_lines_are_read_off_the_log_and_only_the_pages_own_pass() {
        let lines = console_lines(LOG);
        assert_eq!(lines.len(), 2);
        assert!(is_own(&lines[0]), "{}", lines[0]);
        assert!(!is_own(&lines[1]), "{}", lines[1]);
        assert!(lines[1].starts_with("\"Uncaught TypeError"));
        let run = Run {
            label: "test",
            dom: String::new(),
            console: lines,
            log: PathBuf::from("x.log"),
        };
        assert!(run.console_is_clean(true).is_err());
        let clean = Run {
            console: console_lines(LOG).into_iter().take(1).collect(),
            ..run
        };
        assert!(clean.console_is_clean(true).is_ok());
        let silent = Run {
            console: Vec::new(),
            ..clean
        };
        assert!(silent.console_is_clean(false).is_ok());
        assert!(silent.console_is_clean(true).is_err());
    }

    #[test]
    fn attributes_are_read_from_start_tags() {
        let dom = "<html><body data-ready=\"1\" data-errors=\"\" data-auth=\"ok\">\
                   <form id=\"token-form\" class=\"token-form\" hidden=\"\">\
                   <div id=\"chart-gateway-l2\" class=\"plot\" data-points=\"12\"></div>";
        let body = start_tag(dom, "<body").unwrap();
        assert_eq!(attribute(body, "data-ready"), Some("1"));
        assert_eq!(attribute(body, "data-errors"), Some(""));
        assert_eq!(attribute(body, "data-auth"), Some("ok"));
        assert_eq!(attribute(body, "data-missing"), None);
        let form = start_tag(dom, "id=\"token-form\"").unwrap();
        assert_eq!(attribute(form, "hidden"), Some(""));
        let chart = start_tag(dom, "id=\"chart-gateway-l2\"").unwrap();
        assert_eq!(attribute(chart, "data-points"), Some("12"));
        assert_eq!(attribute("<form id=\"token-form\">", "hidden"), None);
        // A name inside another attribute's name or value is not the attribute.
        assert_eq!(
            attribute("<div data-x=\"hidden\" xhidden=\"1\">", "hidden"),
            None
        );
    }
}
