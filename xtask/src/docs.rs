//! `cargo xtask docs [--check] [--no-server]`: the generated sections of the docs.
//!
//! The hand-written text of `docs/PERFORMANCE_OPTIMIZATION.md`,
//! `docs/PERFORMANCE_QUICK_REFERENCE.md` and `README.md` holds sections between
//! `<!-- generated:NAME … -->` and `<!-- end generated:NAME -->` that only this command
//! writes ([`sections`]):
//!
//! - `settings`, `settings-most-used` — the settings tables, from the doc comments and the
//!   `Default` impl of the server's `Settings` struct ([`settings`]; no server needed);
//! - `alerts` — the alerting rules of `docs/ops/alerts.yml` ([`alerts`]; no server needed);
//! - `capture-note` — how the examples below were produced ([`capture`]'s settings and
//!   traffic);
//! - `metrics-families`, `metrics-excerpt` — the families of `/metrics` and a few of their
//!   series ([`metrics`]);
//! - `api-*` — an example response of each endpoint ([`capture::ENDPOINTS`]).
//!
//! The last three come from the real `resync` binary, run against Postgres, Redis and the
//! `test-upstream` binary with some traffic ([`capture`]).
//!
//! `--check` writes nothing: it regenerates every section and fails when the files differ —
//! the settings, the capture note and the metric families must match exactly (they do not
//! change from run to run); an example response must have the same *shape* as a fresh one
//! ([`shape`]: the same keys and kinds of values — its figures differ on every run), and the
//! metric excerpt the same series. `cargo xtask ci` runs the check after the tests (with
//! their binaries and services), and a unit test checks the sections that need no server in
//! every `cargo test`.

mod alerts;

mod capture;
mod json;
mod metrics;
mod sections;
mod settings;
mod shape;

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{bail, ensure, Context, Result};
use clap::Args;
use test_support::DATABASE_URL_ENV;

use crate::binaries::{Binaries, Profile};
use crate::{packages, services};

/// The guide.
const GUIDE: &str = "docs/PERFORMANCE_OPTIMIZATION.md";
/// The one-page reference.
const QUICK: &str = "docs/PERFORMANCE_QUICK_REFERENCE.md";
/// The project's README.
const README: &str = "README.md";

/// The families whose series the guide quotes (`metrics-excerpt`).
const EXCERPT_FAMILIES: &[&str] = &[
    "resync_cache_requests_total",
    "resync_pool_connections",
    "resync_health_status",
];

/// Members of the report that other endpoints show; the report's example names the endpoint
/// instead of repeating them: (member, section of the endpoint, member of that response, or
/// `""` for the whole response).
const REPORT_ELSEWHERE: &[(&str, &str, &str)] = &[
    ("caches", "api-cache-metrics", "caches"),
    (
        "cache_recommendations",
        "api-cache-recommendations",
        "recommendations",
    ),
    ("pools", "api-pools-metrics", "pools"),
    (
        "pool_recommendations",
        "api-pools-recommendations",
        "recommendations",
    ),
    ("resources", "api-resources-stats", "kinds"),
    ("leaks", "api-resources-leaks", "leaks"),
    ("gateway", "api-gateway-metrics", "gateway"),
    ("health", "api-health", ""),
];

/// Options of `cargo xtask docs`.
#[derive(Debug, Args)]
pub(crate) struct Options {
    /// Write nothing; fail when a generated section differs from what the code produces now
    /// (example responses by shape).
    #[arg(long)]
    check: bool,
    /// Only the sections that need no server: the settings tables and the alert list (no
    /// build).
    #[arg(long)]
    no_server: bool,
}

/// How a section is compared in `--check`.
#[derive(Debug, Clone, PartialEq)]
enum Compare {
    /// Byte for byte.
    Exact,
    /// The lines before the JSON block byte for byte, the JSON block by shape.
    JsonShape,
    /// Byte for byte once every sample's value is blanked.
    SeriesOnly,
}

/// A section's new body.
#[derive(Debug, Clone)]
struct Section {
    file: &'static str,
    name: &'static str,
    body: String,
    compare: Compare,
}

/// `cargo xtask docs`.
pub(crate) fn run(root: &Path, options: &Options) -> Result<()> {
    let mut generated = static_sections(root)?;
    if !options.no_server {
        let binaries = Binaries::build(root, Profile::Debug, None)?;
        let capture = with_database(|database| capture::capture(&binaries, database))?;
        generated.extend(capture_sections(&capture)?);
    }
    if options.check {
        check(root, &generated, !options.no_server)
    } else {
        write(root, &generated)
    }
}

/// The step of `cargo xtask ci`: captures with the binaries `cargo test` built and the
/// services the tests ran against, and checks every section.
pub(crate) fn check_in_ci(root: &Path, running: &services::Running) -> Result<()> {
    let binaries = Binaries::built(root, Profile::Debug, "the workspace's tests")?;
    eprintln!("\n==> docs: capturing the examples from the real server to check the docs");
    let capture = capture::capture(&binaries, &running.database_url())?;
    let mut generated = static_sections(root)?;
    generated.extend(capture_sections(&capture)?);
    check(root, &generated, true)
}

/// Runs `f` with the Postgres of `cargo xtask services up` when its variable is set, else
/// with fresh servers (stopped afterwards).
fn with_database<T>(f: impl FnOnce(&str) -> Result<T>) -> Result<T> {
    if let Some(database) = std::env::var(DATABASE_URL_ENV)
        .ok()
        .filter(|url| !url.trim().is_empty())
    {
        eprintln!("==> using the Postgres of {DATABASE_URL_ENV}");
        return f(&database);
    }
    packages::ensure_installed()?;
    let running = services::Running::start()?;
    let result = f(&running.database_url());
    drop(running);
    result
}

/// The sections that need no server: the settings tables and the alert list.
fn static_sections(root: &Path) -> Result<Vec<Section>> {
    let reference = settings::read(root)?;
    let most_used = settings::selected_table(&reference, settings::MOST_USED)?;
    Ok(vec![
        Section {
            file: GUIDE,
            name: "settings",
            body: settings::full_table(&reference),
            compare: Compare::Exact,
        },
        Section {
            file: QUICK,
            name: "settings-most-used",
            body: most_used.clone(),
            compare: Compare::Exact,
        },
        Section {
            file: README,
            name: "settings-most-used",
            body: most_used,
            compare: Compare::Exact,
        },
        Section {
            file: QUICK,
            name: "alerts",
            body: alerts::table(&alerts::read(root)?),
            compare: Compare::Exact,
        },
    ])
}

/// The sections made from a capture.
fn capture_sections(capture: &capture::Capture) -> Result<Vec<Section>> {
    let families = metrics::families(&capture.metrics)?;
    let mut out = vec![
        Section {
            file: GUIDE,
            name: "capture-note",
            body: capture_note(),
            compare: Compare::Exact,
        },
        Section {
            file: GUIDE,
            name: "metrics-families",
            body: metrics::table(&families),
            compare: Compare::Exact,
        },
        Section {
            file: GUIDE,
            name: "metrics-excerpt",
            body: format!(
                "```text\n{}```\n",
                metrics::excerpt(&families, EXCERPT_FAMILIES)?
            ),
            compare: Compare::SeriesOnly,
        },
    ];
    for endpoint in capture::ENDPOINTS {
        let captured = capture.get(endpoint.name)?;
        let body = if endpoint.name == "api-report" {
            abridged_report(capture, &captured.body)?
        } else {
            json::pretty(&captured.body)
                .with_context(|| format!("the response of GET {}", captured.target))?
        };
        out.push(Section {
            file: GUIDE,
            name: endpoint.name,
            body: example(captured, &body),
            compare: Compare::JsonShape,
        });
    }
    Ok(out)
}

/// How the examples were made, from the capture's own constants.
fn capture_note() -> String {
    let mut settings = String::new();
    for (index, (key, value)) in capture::SETTINGS.iter().enumerate() {
        if index > 0 {
            settings.push_str(", ");
        }
        let _ = write!(settings, "`{key}={value}`");
    }
    format!(
        "Captured by `cargo xtask docs` from the real `resync` binary (a debug build), run with \
         the defaults except {settings}, with `DATABASE_URL` and `REDIS_URL` set to throwaway \
         Postgres and Redis servers and `TWS_BASE_URL` to the `test-upstream` binary (1 KiB \
         of JSON after 2 ms, `Cache-Control: max-age=300`), all on loopback. Traffic before \
         the capture: {}. The figures are one run's; `cargo xtask docs --check` (a step of \
         `cargo xtask ci`) fails when the shape of a response — its keys and kinds of values \
         — no longer matches the example.\n",
        capture::TRAFFIC
    )
}

/// An example: the request, the status, and the body in a fenced block.
fn example(captured: &capture::Captured, body: &str) -> String {
    let auth = if captured.with_token {
        format!(" with `Authorization: Bearer {}`", capture::TOKEN)
    } else {
        " without a token".to_owned()
    };
    format!(
        "`GET {}`{auth} → {}\n\n```json\n{body}\n```\n",
        captured.target, captured.status
    )
}

/// The report with the members other endpoints show replaced by a note naming the
/// endpoint — after checking that each is shaped like that endpoint's response.
fn abridged_report(capture: &capture::Capture, raw: &str) -> Result<String> {
    let members = json::members(raw).context("the report")?;
    let mut kept = Vec::new();
    for (key, value) in members {
        let Some((_, section, member)) = REPORT_ELSEWHERE
            .iter()
            .find(|(elsewhere, _, _)| *elsewhere == key)
        else {
            kept.push((key, value));
            continue;
        };
        let other = capture.get(section)?;
        let other_json: serde_json::Value = serde_json::from_str(&other.body)?;
        let other_part = if member.is_empty() {
            &other_json
        } else {
            &other_json[*member]
        };
        let this: serde_json::Value = serde_json::from_str(&value)?;
        let differences = shape::differences(&this, other_part);
        ensure!(
            differences.is_empty(),
            "the report's {key} is not shaped like {} of GET {}: {differences:?}; \
             change REPORT_ELSEWHERE in xtask/src/docs.rs",
            if member.is_empty() {
                "the response"
            } else {
                member
            },
            other.target
        );
        let note = if member.is_empty() {
            format!("… as GET {}", other.target)
        } else {
            format!("… as `{member}` of GET {}", other.target)
        };
        kept.push((key, serde_json::Value::from(note).to_string()));
    }
    json::pretty(&json::object(&kept))
}

/// Writes every section into its file.
fn write(root: &Path, generated: &[Section]) -> Result<()> {
    for (file, sections_of_file) in by_file(generated) {
        let path = root.join(file);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let mut updated = text.clone();
        for section in sections_of_file {
            updated = sections::replace(&updated, section.name, &section.body)
                .with_context(|| format!("in {file}"))?;
        }
        if updated == text {
            eprintln!("==> docs: {file} is up to date");
        } else {
            std::fs::write(&path, updated)
                .with_context(|| format!("writing {}", path.display()))?;
            eprintln!("==> docs: wrote {file}");
        }
    }
    Ok(())
}

/// Compares every section with its file; fails listing every difference.
fn check(root: &Path, generated: &[Section], complete: bool) -> Result<()> {
    let problems = problems(root, generated, complete)?;
    if problems.is_empty() {
        eprintln!(
            "==> docs: {} generated sections match the code and the real server",
            generated.len()
        );
        return Ok(());
    }
    bail!(
        "the docs differ from what the code produces now (run `cargo xtask docs` and commit \
         the result):\n  {}",
        problems.join("\n  ")
    )
}

/// Every difference between the files and `generated`; with `complete`, also every section
/// of the files that `generated` lacks.
fn problems(root: &Path, generated: &[Section], complete: bool) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    for (file, sections_of_file) in by_file(generated) {
        let path = root.join(file);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        if complete {
            for name in sections::names(&text) {
                if !sections_of_file.iter().any(|section| section.name == name) {
                    problems.push(format!(
                        "{file}: section {name} is not generated by anything"
                    ));
                }
            }
        }
        for section in sections_of_file {
            let documented = match sections::get(&text, section.name) {
                Ok(documented) => documented,
                Err(error) => {
                    problems.push(format!("{file}: section {}: {error:#}", section.name));
                    continue;
                }
            };
            problems.extend(
                compare(documented, section)
                    .into_iter()
                    .map(|problem| format!("{file}: section {}: {problem}", section.name)),
            );
        }
    }
    Ok(problems)
}

/// What differs between a section as documented and as generated.
fn compare(documented: &str, section: &Section) -> Vec<String> {
    match section.compare {
        Compare::Exact if documented == section.body => Vec::new(),
        Compare::Exact => vec![first_difference(documented, &section.body)],
        Compare::SeriesOnly => {
            let (a, b) = (
                metrics::without_values(documented),
                metrics::without_values(&section.body),
            );
            if a == b {
                Vec::new()
            } else {
                vec![first_difference(&a, &b)]
            }
        }
        Compare::JsonShape => {
            let split = |text: &str| -> Option<(String, String)> {
                let (head, rest) = text.split_once("```json\n")?;
                let (block, _) = rest.rsplit_once("\n```")?;
                Some((head.to_owned(), block.to_owned()))
            };
            let (Some((head_a, json_a)), Some((head_b, json_b))) =
                (split(documented), split(&section.body))
            else {
                return vec!["no ```json block".to_owned()];
            };
            if head_a != head_b {
                return vec![first_difference(&head_a, &head_b)];
            }
            match (
                serde_json::from_str::<serde_json::Value>(&json_a),
                serde_json::from_str::<serde_json::Value>(&json_b),
            ) {
                (Ok(a), Ok(b)) => shape::differences(&a, &b),
                (Err(error), _) => vec![format!("the documented JSON does not parse: {error}")],
                (_, Err(error)) => vec![format!("the fresh JSON does not parse: {error}")],
            }
        }
    }
}

/// The first line where `documented` and `generated` differ, both ways.
fn first_difference(documented: &str, generated: &str) -> String {
    let mut a = documented.lines();
    let mut b = generated.lines();
    for line in 1.. {
        match (a.next(), b.next()) {
            (None, None) => break,
            (x, y) if x == y => {}
            (x, y) => {
                return format!(
                    "line {line}: documented {:?}, generated {:?}",
                    x.unwrap_or("<end>"),
                    y.unwrap_or("<end>")
                )
            }
        }
    }
    "they differ in whitespace at the end".to_owned()
}

/// The sections grouped by file, files in first-seen order.
fn by_file(generated: &[Section]) -> Vec<(&'static str, Vec<&Section>)> {
    let mut out: Vec<(&'static str, Vec<&Section>)> = Vec::new();
    for section in generated {
        match out.iter_mut().find(|(file, _)| *file == section.file) {
            Some((_, list)) => list.push(section),
            None => out.push((section.file, vec![section])),
        }
    }
    out
}

/// The files with generated sections, for tests.
#[cfg(test)]
fn files(root: &Path) -> Vec<std::path::PathBuf> {
    [GUIDE, QUICK, README]
        .iter()
        .map(|file| root.join(file))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The settings tables in the docs are what the `Settings` struct says now, and the
    /// alert list what `docs/ops/alerts.yml` has; run `cargo xtask docs --no-server` after
    /// changing either.
    #[test]
    fn the_sections_without_a_server_are_current() {
        let root = crate::project_root();
        let problems = problems(&root, &static_sections(&root).unwrap(), false).unwrap();
        assert!(
            problems.is_empty(),
            "run `cargo xtask docs --no-server`:\n{}",
            problems.join("\n")
        );
        for file in files(&root) {
            let text = std::fs::read_to_string(&file).unwrap();
            assert!(
                !sections::names(&text).is_empty(),
                "{} has no generated section",
                file.display()
            );
        }
    }

    #[test]
    fn a_json_example_is_compared_by_shape_and_request() {
        let section = Section {
            file: GUIDE,
            name: "api-x",
            body: "`GET /x` → 200\n\n```json\n{\n  \"a\": 2,\n  \"b\": null\n}\n```\n".to_owned(),
            compare: Compare::JsonShape,
        };
        let same_shape = "`GET /x` → 200\n\n```json\n{\"a\": 1, \"b\": [1]}\n```\n";
        assert!(compare(same_shape, &section).is_empty());
        let other_key = "`GET /x` → 200\n\n```json\n{\"a\": 1, \"c\": 1}\n```\n";
        assert_eq!(compare(other_key, &section).len(), 2);
        let other_status = "`GET /x` → 503\n\n```json\n{\"a\": 1, \"b\": 1}\n```\n";
        assert_eq!(compare(other_status, &section).len(), 1);
    }

    #[test]
    fn series_are_compared_without_their_values() {
        let section = Section {
            file: GUIDE,
            name: "metrics-excerpt",
            body: "```text\n# TYPE a counter\na{x=\"1\"} 5\n```\n".to_owned(),
            compare: Compare::SeriesOnly,
        };
        assert!(compare("```text\n# TYPE a counter\na{x=\"1\"} 7\n```\n", &section).is_empty());
        assert_eq!(
            compare("```text\n# TYPE a counter\na{x=\"2\"} 5\n```\n", &section).len(),
            1
        );
    }
}
