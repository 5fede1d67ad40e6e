//! The metric families of a Prometheus text exposition, as the docs list them: name, type,
//! the label names its series carry, and its `HELP` text — read from the `/metrics` of the
//! real server, so the table is exactly what a scrape gets.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::{ensure, Result};

/// One family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Family {
    pub(crate) name: String,
    pub(crate) kind: String,
    pub(crate) help: String,
    /// Label names over all its series, each with the values seen, `le` (a histogram's
    /// bucket bound) left out.
    pub(crate) labels: BTreeMap<String, Vec<String>>,
    /// Its sample lines, as exposed.
    pub(crate) samples: Vec<String>,
}

/// Every family of `text`, in the exposition's order.
pub(crate) fn families(text: &str) -> Result<Vec<Family>> {
    let mut families: Vec<Family> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            family(&mut families, name).help = unescape_help(help);
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            family(&mut families, name).kind = kind.trim().to_owned();
        } else if !line.trim().is_empty() && !line.starts_with('#') {
            let name_end = line.find(['{', ' ']).unwrap_or(line.len());
            let sample = &line[..name_end];
            let owner = families
                .iter_mut()
                .rev()
                .find(|family| belongs(sample, &family.name));
            ensure!(owner.is_some(), "sample {line:?} has no family before it");
            if let Some(family) = owner {
                for (name, value) in labels(line) {
                    let values = family.labels.entry(name).or_default();
                    if !values.contains(&value) {
                        values.push(value);
                    }
                }
                family.samples.push(line.to_owned());
            }
        }
    }
    Ok(families)
}

fn family<'a>(families: &'a mut Vec<Family>, name: &str) -> &'a mut Family {
    let index = match families.iter().position(|family| family.name == name) {
        Some(index) => index,
        None => {
            families.push(Family {
                name: name.to_owned(),
                kind: String::new(),
                help: String::new(),
                labels: BTreeMap::new(),
                samples: Vec::new(),
            });
            families.len() - 1
        }
    };
    &mut families[index]
}

/// Whether a sample named `sample` is of family `family` (a histogram's `_bucket`, `_sum`
/// and `_count` are).
fn belongs(sample: &str, family: &str) -> bool {
    sample == family
        || sample
            .strip_prefix(family)
            .and_then(|suffix| suffix.strip_prefix('_'))
            .is_some_and(|suffix| ["bucket", "sum", "count", "created"].contains(&suffix))
}

/// `HELP` text escapes `\\` and `\n`.
fn unescape_help(help: &str) -> String {
    help.replace("\\n", " ").replace("\\\\", "\\")
}

/// The labels of a sample line, `(name, value)`, `le` left out.
fn labels(line: &str) -> Vec<(String, String)> {
    let Some(open) = line.find('{') else {
        return Vec::new();
    };
    let mut names = Vec::new();
    let mut rest = &line[open + 1..];
    loop {
        let Some(eq) = rest.find('=') else {
            return names;
        };
        let name = rest[..eq].trim_start_matches([',', ' ']).trim().to_owned();
        // Past the quoted value.
        let value = &rest[eq + 1..];
        let mut end = None;
        let mut escaped = false;
        for (index, c) in value.char_indices().skip(1) {
            match c {
                '\\' if !escaped => escaped = true,
                '"' if !escaped => {
                    end = Some(index);
                    break;
                }
                _ => escaped = false,
            }
        }
        let Some(end) = end else {
            return names;
        };
        if !name.is_empty() && name != "le" {
            names.push((name, value[1..end].replace("\\\"", "\"")));
        }
        rest = &value[end + 1..];
        if rest.starts_with('}') {
            return names;
        }
    }
}

/// Labels that name an instance (a cache, a pool, a resource kind, a health component) or
/// the build: the table gives their name only, not the values one capture happened to see.
const INSTANCE_LABELS: &[&str] = &["cache", "pool", "kind", "component", "version"];

/// The Markdown table of `families`: each label with its values, but for [`INSTANCE_LABELS`].
pub(crate) fn table(families: &[Family]) -> String {
    let mut out = String::from("| family | type | labels | help |\n|---|---|---|---|\n");
    for family in families {
        let labels = if family.labels.is_empty() {
            "—".to_owned()
        } else {
            family
                .labels
                .iter()
                .map(|(label, values)| {
                    // The gateway's `cache` label is its cache outcome, not a cache's name.
                    let names_instance = INSTANCE_LABELS.contains(&label.as_str())
                        && !(label == "cache" && family.name.starts_with("resync_gateway_"));
                    if names_instance {
                        format!("`{label}`")
                    } else {
                        let values: Vec<String> =
                            values.iter().map(|value| format!("`{value}`")).collect();
                        format!("`{label}` = {}", values.join(" \\| "))
                    }
                })
                .collect::<Vec<_>>()
                .join("; ")
        };
        let _ = writeln!(
            out,
            "| `{}` | {} | {labels} | {} |",
            family.name,
            family.kind,
            family.help.replace('|', "\\|")
        );
    }
    out
}

/// The `HELP`, `TYPE` and sample lines of the families named in `names`, in that order.
pub(crate) fn excerpt(families: &[Family], names: &[&str]) -> Result<String> {
    let mut out = String::new();
    for name in names {
        let family = families.iter().find(|family| family.name == *name);
        ensure!(family.is_some(), "/metrics has no family {name}");
        if let Some(family) = family {
            let _ = writeln!(out, "# HELP {} {}", family.name, family.help);
            let _ = writeln!(out, "# TYPE {} {}", family.name, family.kind);
            for sample in &family.samples {
                let _ = writeln!(out, "{sample}");
            }
        }
    }
    Ok(out)
}

/// `text` with each sample's value (the last word of a sample line) replaced by `_`: what an
/// excerpt must keep from one capture to the next.
pub(crate) fn without_values(text: &str) -> String {
    text.lines()
        .map(|line| {
            if line.starts_with('#') || line.trim().is_empty() {
                line.to_owned()
            } else {
                match line.rsplit_once(' ') {
                    Some((series, _)) => format!("{series} _"),
                    None => line.to_owned(),
                }
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP a_total Things, by result.\n\
        # TYPE a_total counter\n\
        a_total{cache=\"responses\",result=\"hit\"} 3\n\
        a_total{cache=\"responses\",result=\"mi,s=s\\\"\"} 1\n\
        # HELP b_seconds Time | taken.\n\
        # TYPE b_seconds histogram\n\
        b_seconds_bucket{pool=\"db\",le=\"0.001\"} 1\n\
        b_seconds_sum{pool=\"db\"} 0.0005\n\
        b_seconds_count{pool=\"db\"} 1\n\
        # HELP c Up.\n\
        # TYPE c gauge\n\
        c 1\n";

    #[test]
    fn reads_families_their_labels_and_samples() {
        let families = families(TEXT).unwrap();
        let summary: Vec<(&str, &str, Vec<&str>, usize)> = families
            .iter()
            .map(|f| {
                (
                    f.name.as_str(),
                    f.kind.as_str(),
                    f.labels.keys().map(String::as_str).collect(),
                    f.samples.len(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("a_total", "counter", vec!["cache", "result"], 2),
                ("b_seconds", "histogram", vec!["pool"], 3),
                ("c", "gauge", vec![], 1),
            ]
        );
        let table = table(&families);
        assert!(table.contains("| `b_seconds` | histogram | `pool` | Time \\| taken. |"));
        assert!(
            table.contains("| `a_total` | counter | `cache`; `result` = `hit` \\| `mi,s=s\"` |"),
            "{table}"
        );
        assert!(table.contains("| `c` | gauge | — | Up. |"));
        let excerpt = excerpt(&families, &["c", "a_total"]).unwrap();
        assert!(excerpt.starts_with("# HELP c Up.\n# TYPE c gauge\nc 1\n# HELP a_total"));
        assert!(without_values(&excerpt).contains("\nc _\n"));
        assert!(super::excerpt(&families, &["d"]).is_err());
        assert!(super::families("x 1\n").is_err());
    }
}
