//! The list of alerts in the quick reference, read from the Prometheus rule file
//! `docs/ops/alerts.yml`: each rule's name, its `severity` label and its `for` duration. The
//! file is written by hand (and checked by `promtool`, `cargo xtask ops`); this only lists
//! it, so the reference never names an alert the file does not have.
//!
//! A line-based reader is enough for rule files as promtool formats them: `- alert: NAME`
//! opens a rule, and the rule's `for:` and `severity:` lines follow before the next one.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{ensure, Context, Result};

/// The rule file, relative to the workspace root.
pub(crate) const SOURCE: &str = "docs/ops/alerts.yml";

/// One alerting rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Alert {
    pub(crate) name: String,
    pub(crate) severity: String,
    pub(crate) for_: String,
}

/// Reads [`SOURCE`] under `root`.
pub(crate) fn read(root: &Path) -> Result<Vec<Alert>> {
    let path = root.join(SOURCE);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    parse(&text).with_context(|| format!("reading the alerts of {SOURCE}"))
}

/// Every alerting rule of `text`, in order.
pub(crate) fn parse(text: &str) -> Result<Vec<Alert>> {
    let mut alerts: Vec<Alert> = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix("- alert:") {
            alerts.push(Alert {
                name: unquote(name),
                severity: String::new(),
                for_: String::new(),
            });
        } else if let Some(last) = alerts.last_mut() {
            if let Some(value) = line.strip_prefix("for:") {
                last.for_ = unquote(value);
            } else if let Some(value) = line.strip_prefix("severity:") {
                last.severity = unquote(value);
            } else if line.starts_with("- record:") || line.starts_with("- name:") {
                // A recording rule or a new group: nothing more belongs to the last alert.
                alerts.push(Alert {
                    name: String::new(),
                    severity: String::new(),
                    for_: String::new(),
                });
            }
        }
    }
    alerts.retain(|alert| !alert.name.is_empty());
    ensure!(!alerts.is_empty(), "no `- alert:` rule");
    for alert in &alerts {
        ensure!(
            !alert.severity.is_empty(),
            "alert {} has no severity label",
            alert.name
        );
    }
    Ok(alerts)
}

fn unquote(value: &str) -> String {
    value.trim().trim_matches(['"', '\'']).to_owned()
}

/// The table of `alerts`.
pub(crate) fn table(alerts: &[Alert]) -> String {
    let mut out = String::from("| alert | severity | fires after |\n|---|---|---|\n");
    for alert in alerts {
        let for_ = if alert.for_.is_empty() {
            "at once"
        } else {
            &alert.for_
        };
        let _ = writeln!(out, "| `{}` | {} | {for_} |", alert.name, alert.severity);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_each_rule_with_its_severity_and_duration() {
        let text = "groups:\n  - name: a\n    rules:\n      # - alert: Commented\n\
                    \x20     - alert: First\n        expr: up == 0\n        for: 5m\n\
                    \x20       labels:\n          severity: critical\n\
                    \x20     - record: job:up:sum\n        expr: sum(up)\n\
                    \x20 - name: b\n    rules:\n      - alert: \"Second\"\n        expr: x\n\
                    \x20       labels:\n          severity: 'warning'\n";
        let alerts = parse(text).unwrap();
        assert_eq!(
            table(&alerts),
            "| alert | severity | fires after |\n|---|---|---|\n\
             | `First` | critical | 5m |\n| `Second` | warning | at once |\n"
        );
        assert!(parse("groups: []\n").is_err());
        assert!(parse("- alert: X\n  expr: y\n").is_err());
    }
}
