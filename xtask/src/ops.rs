//! `cargo xtask ops` and a step of `cargo xtask ci`: the alert rules and the Grafana
//! dashboard of `docs/ops/` against promtool and the real server.
//!
//! * `promtool check rules docs/ops/alerts.yml` and `promtool test rules
//!   docs/ops/alerts.test.yml` (each alert fires on the series that should trigger it and
//!   stays quiet on healthy ones), and `promtool check config` over the example
//!   configuration that loads them (`docs/ops/prometheus.example.yml`);
//! * the dashboard (`docs/ops/grafana-dashboard.json`) is importable as it is (see
//!   [`dashboard::read`]) and every query is valid PromQL (promtool checks them as recording
//!   rules, Grafana's interval variables replaced by durations);
//! * every series selector of the alerts and of the dashboard's queries and variables names
//!   a series of the real server's `/metrics` — the exposition the promtool step just linted,
//!   of a server running with the database, Redis, a gateway and its Redis second level —
//!   and every label it matches on is one of that series' labels (or `job` / `instance`,
//!   which Prometheus adds), with a value the server exports when the matcher names literal
//!   values.

mod dashboard;
mod exposition;
mod promql;
mod rules;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};

use crate::{packages, promtool};
use exposition::{Exposition, TARGET_LABELS};
use promql::{MatchOp, Selector};

/// The alerting rules, relative to the workspace root.
const ALERTS: &str = "docs/ops/alerts.yml";
/// Their `promtool test rules` file.
const ALERT_TESTS: &str = "docs/ops/alerts.test.yml";
/// The Grafana dashboard.
const DASHBOARD: &str = "docs/ops/grafana-dashboard.json";
/// An example Prometheus configuration loading the alerts.
const PROMETHEUS_EXAMPLE: &str = "docs/ops/prometheus.example.yml";

/// `cargo xtask ops`: the rule checks first (no server needed), then the promtool step's
/// server run (against the servers of `services up` when exported, else fresh ones), then
/// the names against its `/metrics`.
pub(crate) fn run(root: &Path) -> Result<()> {
    let promtool = packages::ensure_promtool()?;
    let checked = check_files(root, &promtool)?;
    let exposition = promtool::exposition(root)?;
    check_names(&checked, &exposition)
}

/// The step of `ci`, given the `/metrics` text the promtool step fetched.
pub(crate) fn check(root: &Path, exposition: &str) -> Result<()> {
    let promtool = packages::ensure_promtool()?;
    let checked = check_files(root, &promtool)?;
    check_names(&checked, exposition)
}

/// What the file checks read, for the check against `/metrics`.
#[derive(Debug)]
struct Checked {
    rules: Vec<rules::Rule>,
    dashboard: dashboard::Dashboard,
}

/// promtool over the rules, their tests and the dashboard's queries; the dashboard's
/// structure.
fn check_files(root: &Path, promtool: &Path) -> Result<Checked> {
    eprintln!("\n==> ops: {ALERTS}, {ALERT_TESTS}, {DASHBOARD}");
    let alerts = root.join(ALERTS);
    let text = std::fs::read_to_string(&alerts)
        .with_context(|| format!("reading {}", alerts.display()))?;
    let rules = rules::rules(&text).with_context(|| format!("reading the rules of {ALERTS}"))?;
    let printed = promtool_ok(promtool, root, &["check", "rules", ALERTS])?;
    let found = rules_found(&printed).with_context(|| {
        format!("`promtool check rules` did not say how many rules it found:\n{printed}")
    })?;
    if found != rules.len() {
        bail!(
            "promtool found {found} rules in {ALERTS}, xtask read {}: write each rule as \
             `- alert: Name` with an `expr:` this reader understands (see xtask/src/ops/rules.rs)",
            rules.len()
        );
    }
    eprintln!("    promtool check rules: {found} rules, ok");
    promtool_ok(promtool, root, &["test", "rules", ALERT_TESTS])?;
    eprintln!("    promtool test rules {ALERT_TESTS}: ok");
    promtool_ok(promtool, root, &["check", "config", PROMETHEUS_EXAMPLE])?;
    eprintln!("    promtool check config {PROMETHEUS_EXAMPLE}: ok");

    let path = root.join(DASHBOARD);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let dashboard = dashboard::read(&text).with_context(|| format!("checking {DASHBOARD}"))?;
    check_dashboard_syntax(promtool, &dashboard.queries)?;
    eprintln!(
        "    dashboard: {} panels, {} queries (variables included), each valid PromQL",
        dashboard.panels,
        dashboard.queries.len()
    );
    Ok(Checked { rules, dashboard })
}

/// Runs promtool with `args` in `root`; its output, or an error quoting it.
fn promtool_ok(promtool: &Path, root: &Path, args: &[&str]) -> Result<String> {
    let output = Command::new(promtool)
        .args(args)
        .current_dir(root)
        .output()
        .with_context(|| format!("running {}", promtool.display()))?;
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if !output.status.success() {
        bail!(
            "`promtool {}` failed ({}):\n{}",
            args.join(" "),
            output.status,
            printed.trim_end()
        );
    }
    Ok(printed)
}

/// The `N` of promtool's `SUCCESS: N rules found`.
fn rules_found(printed: &str) -> Option<usize> {
    printed.lines().find_map(|line| {
        line.trim()
            .strip_prefix("SUCCESS: ")?
            .strip_suffix(" rules found")?
            .parse()
            .ok()
    })
}

/// `promtool check rules` over the dashboard's queries, written as recording rules to a
/// scratch file.
fn check_dashboard_syntax(promtool: &Path, queries: &[dashboard::Query]) -> Result<()> {
    let mut yaml = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (index, query) in queries.iter().enumerate() {
        // A JSON string is a YAML double-quoted scalar.
        let expr = serde_json::to_string(&dashboard::with_built_ins(&query.expr))?;
        yaml.push_str(&format!(
            "      - record: dashboard:query_{index}\n        expr: {expr}\n"
        ));
    }
    let scratch = Scratch::new("dashboard-rules.yml");
    std::fs::write(scratch.path(), yaml)
        .with_context(|| format!("writing {}", scratch.path().display()))?;
    let Some(file) = scratch.path().to_str() else {
        bail!("{} is not UTF-8", scratch.path().display());
    };
    promtool_ok(promtool, Path::new("/"), &["check", "rules", file]).map_err(|error| {
        let listing: Vec<String> = queries
            .iter()
            .enumerate()
            .map(|(index, query)| {
                format!("dashboard:query_{index} = {}: {}", query.place, query.expr)
            })
            .collect();
        error.context(format!(
            "a dashboard query is not valid PromQL; the rules are:\n{}",
            listing.join("\n")
        ))
    })?;
    Ok(())
}

/// Every selector of the rules and the dashboard against the exposition.
fn check_names(checked: &Checked, text: &str) -> Result<()> {
    let exposition = Exposition::parse(text).context("reading resync's /metrics")?;
    let mut problems = Vec::new();
    let mut names = BTreeSet::new();
    let mut selectors = 0;
    let places = checked
        .rules
        .iter()
        .map(|rule| (format!("{ALERTS}: {}", rule.name), rule.expr.as_str()))
        .chain(
            checked
                .dashboard
                .queries
                .iter()
                .map(|query| (format!("{DASHBOARD}: {}", query.place), query.expr.as_str())),
        );
    for (place, expr) in places {
        let found = match promql::selectors(expr) {
            Ok(found) => found,
            Err(error) => {
                problems.push(format!("{place}: {error:#}"));
                continue;
            }
        };
        if found.is_empty() {
            problems.push(format!("{place}: no metric name in {expr}"));
        }
        for selector in found {
            selectors += 1;
            names.insert(selector.name.clone());
            problems.extend(
                judge(&exposition, &selector)
                    .into_iter()
                    .map(|problem| format!("{place}: {problem}")),
            );
        }
    }
    if !problems.is_empty() {
        bail!(
            "names that resync's /metrics ({} series names) does not export:\n  {}",
            exposition.series_names(),
            problems.join("\n  ")
        );
    }
    eprintln!(
        "==> ops: {} rules and {} dashboard queries use {selectors} selectors of {} metric names, \
         each a series of resync's /metrics with the labels and values matched, ok",
        checked.rules.len(),
        checked.dashboard.queries.len(),
        names.len()
    );
    Ok(())
}

/// What is wrong with one selector, given the exposition: an unknown name, a label the
/// series do not carry, a literal value no series has.
fn judge(exposition: &Exposition, selector: &Selector) -> Vec<String> {
    let labels = match exposition.lookup(&selector.name) {
        Ok(labels) => labels,
        Err(error) => return vec![error.to_string()],
    };
    let mut problems = Vec::new();
    for matcher in &selector.matchers {
        if TARGET_LABELS.contains(&matcher.label.as_str()) {
            continue;
        }
        let Some(values) = labels.get(&matcher.label) else {
            let known: Vec<&str> = labels.keys().map(String::as_str).collect();
            problems.push(format!(
                "{} has no label {:?} (its labels: {})",
                selector.name,
                matcher.label,
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ));
            continue;
        };
        for value in literal_values(matcher.op, &matcher.value) {
            if !values.contains(value) {
                problems.push(format!(
                    "{}{{{}}} never has the value {value:?} (it has {})",
                    selector.name,
                    matcher.label,
                    values.iter().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
        }
    }
    problems
}

/// The literal values a matcher names: the value of `=` and `!=`, the alternatives of a
/// regex made only of `|`-separated words; none when it holds a Grafana variable or any
/// other regex.
fn literal_values(op: MatchOp, value: &str) -> Vec<&str> {
    if value.contains('$') {
        return Vec::new();
    }
    match op {
        MatchOp::Equal | MatchOp::NotEqual => vec![value],
        MatchOp::Regex | MatchOp::NotRegex => {
            let words: Vec<&str> = value.split('|').collect();
            let plain = words.iter().all(|word| {
                !word.is_empty()
                    && word
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            });
            if plain {
                words
            } else {
                Vec::new()
            }
        }
    }
}

/// A file in the system temporary directory, removed on drop.
#[derive(Debug)]
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.subsec_nanos());
        let path =
            std::env::temp_dir().join(format!("resync-ops-{}-{nanos}-{name}", std::process::id()));
        Self(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const METRICS: &str = "\
# TYPE resync_pool_connections gauge
resync_pool_connections{pool=\"db\",state=\"idle\"} 1
resync_pool_connections{pool=\"db\",state=\"max\"} 10
# TYPE resync_pool_acquire_seconds histogram
resync_pool_acquire_seconds_bucket{pool=\"db\",le=\"0.1\"} 1
resync_pool_acquire_seconds_bucket{pool=\"db\",le=\"+Inf\"} 1
resync_pool_acquire_seconds_sum{pool=\"db\"} 0
resync_pool_acquire_seconds_count{pool=\"db\"} 1
";

    fn problems(expr: &str) -> Vec<String> {
        let exposition = Exposition::parse(METRICS).expect("parses");
        promql::selectors(expr)
            .expect("reads")
            .iter()
            .flat_map(|selector| judge(&exposition, selector))
            .collect()
    }

    #[test]
    fn known_names_labels_and_values_pass() {
        assert_eq!(
            problems(
                r#"sum by (pool) (resync_pool_connections{job=~"$job", pool=~"$pool", state="max"})
                   / histogram_quantile(0.95, rate(resync_pool_acquire_seconds_bucket{le!="+Inf"}[5m]))
                   + resync_pool_acquire_seconds_count{pool=~"d.*"}"#
            ),
            Vec::<String>::new()
        );
        assert!(problems(
            r#"resync_pool_connections{state=~"idle|max", instance="a"} + resync_pool_acquire_seconds_sum"#
        )
        .is_empty());
    }

    #[test]
    fn unknown_names_labels_and_values_fail() {
        let found = problems(
            r#"resync_pool_conections + resync_pool_acquire_seconds + resync_pool_connections{sate="max"}
               + resync_pool_connections{state="maximum"} + resync_pool_connections{state=~"idle|busy"}"#,
        );
        assert_eq!(found.len(), 5, "{found:#?}");
        assert!(found[0].contains("no series named resync_pool_conections"));
        assert!(found[1].contains("histogram family"));
        assert!(found[2].contains("no label \"sate\" (its labels: pool, state)"));
        assert!(found[3].contains("never has the value \"maximum\""));
        assert!(found[4].contains("never has the value \"busy\""));
    }

    #[test]
    fn literal_values_only_from_plain_matchers() {
        assert_eq!(literal_values(MatchOp::Equal, "a"), ["a"]);
        assert_eq!(literal_values(MatchOp::Regex, "a|b_2"), ["a", "b_2"]);
        assert!(literal_values(MatchOp::Regex, "a.*").is_empty());
        assert!(literal_values(MatchOp::Regex, "a|").is_empty());
        assert!(literal_values(MatchOp::Equal, "$pool").is_empty());
    }

    #[test]
    fn promtool_rule_count() {
        assert_eq!(
            rules_found("Checking docs/ops/alerts.yml\n  SUCCESS: 14 rules found\n\n"),
            Some(14)
        );
        assert_eq!(rules_found("FAILED:"), None);
    }
}
