//! What a Prometheus text exposition (0.0.4) holds: each family's type and, for every
//! series name, the labels and label values its samples carry.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Context, Result};

/// Labels Prometheus adds to every series of a scrape: no exposition carries them.
pub(crate) const TARGET_LABELS: &[&str] = &["job", "instance"];

/// The series names, families and label values of one exposition.
#[derive(Debug, Default)]
pub(crate) struct Exposition {
    /// `# TYPE` of each family.
    types: BTreeMap<String, String>,
    /// Series name (a histogram's `_bucket`, `_sum`, `_count` included) -> label -> values.
    series: BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
}

impl Exposition {
    /// Reads the exposition; fails on a sample line it cannot read.
    pub(crate) fn parse(text: &str) -> Result<Self> {
        let mut exposition = Self::default();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut words = rest.split_whitespace();
                if let (Some(name), Some(kind)) = (words.next(), words.next()) {
                    exposition.types.insert(name.to_owned(), kind.to_owned());
                }
                continue;
            }
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (name, labels) =
                sample(line).with_context(|| format!("line {} of /metrics: {line}", number + 1))?;
            let entry = exposition.series.entry(name).or_default();
            for (label, value) in labels {
                entry.entry(label).or_default().insert(value);
            }
        }
        Ok(exposition)
    }

    /// How many series names it holds.
    pub(crate) fn series_names(&self) -> usize {
        self.series.len()
    }

    /// The labels and values of the series `name`, or why there is none: the name of a
    /// histogram's or summary's family itself (only its `_bucket`, `_sum`, `_count` series
    /// exist), or a name not exported at all.
    pub(crate) fn lookup(&self, name: &str) -> Result<&BTreeMap<String, BTreeSet<String>>> {
        if let Some(labels) = self.series.get(name) {
            return Ok(labels);
        }
        if let Some(kind) = self.types.get(name) {
            bail!("{name} is a {kind} family: query its _bucket, _sum or _count series");
        }
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = name.strip_suffix(suffix) {
                let kind = self.types.get(base).map(String::as_str);
                if let Some(kind @ ("histogram" | "summary" | "gaugehistogram")) = kind {
                    bail!("{base} is a {kind} without {suffix} series");
                }
            }
        }
        bail!("no series named {name}")
    }
}

/// The name and labels of a sample line `name{a="b",…} value [timestamp]`.
fn sample(line: &str) -> Result<(String, Vec<(String, String)>)> {
    let end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .context("a sample without a value")?;
    let name = line[..end].to_owned();
    if name.is_empty() {
        bail!("a sample without a name");
    }
    let mut labels = Vec::new();
    let rest = &line[end..];
    if let Some(mut rest) = rest.strip_prefix('{') {
        loop {
            rest = rest.trim_start_matches([' ', ',']);
            if let Some(after) = rest.strip_prefix('}') {
                if after.trim().is_empty() {
                    bail!("a sample without a value");
                }
                break;
            }
            let (label, after) = rest.split_once("=\"").context("a label without =\"")?;
            let mut value = String::new();
            let mut chars = after.char_indices();
            let close = loop {
                match chars.next() {
                    Some((at, '"')) => break at,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, other)) => value.push(other),
                        None => bail!("an unterminated label value"),
                    },
                    Some((_, c)) => value.push(c),
                    None => bail!("an unterminated label value"),
                }
            };
            labels.push((label.trim().to_owned(), value));
            rest = &after[close + 1..];
        }
    }
    Ok((name, labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
# HELP a_total A.
# TYPE a_total counter
a_total{pool=\"db\",kind=\"connect\"} 1
a_total{pool=\"http\",kind=\"broken\"} 0
# TYPE h_seconds histogram
h_seconds_bucket{pool=\"db\",le=\"0.1\"} 1
h_seconds_bucket{pool=\"db\",le=\"+Inf\"} 1
h_seconds_sum{pool=\"db\"} 0.01
h_seconds_count{pool=\"db\"} 1
# TYPE g gauge
g 3
e{v=\"a \\\"q\\\", b\\\\c}\"} 1 1700000000
";

    #[test]
    fn series_labels_and_values() {
        let exposition = Exposition::parse(TEXT).expect("parses");
        assert_eq!(exposition.series_names(), 6);
        let labels = exposition.lookup("a_total").expect("there");
        assert_eq!(
            labels["kind"].iter().collect::<Vec<_>>(),
            ["broken", "connect"]
        );
        assert!(exposition.lookup("h_seconds_bucket").expect("there")["le"].contains("+Inf"));
        assert!(exposition.lookup("g").expect("there").is_empty());
        assert!(exposition.lookup("e").expect("there")["v"].contains("a \"q\", b\\c}"));
    }

    #[test]
    fn unknown_names_say_why() {
        let exposition = Exposition::parse(TEXT).expect("parses");
        let why = |name: &str| {
            exposition
                .lookup(name)
                .err()
                .map(|error| error.to_string())
                .unwrap_or_default()
        };
        assert!(
            why("h_seconds").contains("histogram family"),
            "{}",
            why("h_seconds")
        );
        assert_eq!(why("a_total_count"), "no series named a_total_count");
        let text = "# TYPE s summary\ns_sum 1\n";
        let summary = Exposition::parse(text).expect("parses");
        assert_eq!(
            summary.lookup("s_count").err().map(|e| e.to_string()),
            Some("s is a summary without _count series".to_owned())
        );
        assert_eq!(why("nope"), "no series named nope");
    }

    #[test]
    fn bad_lines_are_errors() {
        for bad in ["x{a=\"b\"", "x{a=\"b\"}", "x{a}", "{a=\"b\"} 1"] {
            assert!(Exposition::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
