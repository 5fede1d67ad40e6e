//! What `bench distributed` reads from each instance's `/metrics` (Prometheus text): the
//! gateway's requests by `cache` label, the second level's counters and its lookup time.
//!
//! The second level's families were being added while this bench was written, so nothing
//! here insists on them: every `resync_gateway_l2_*_total` family is read whatever its label
//! names, and a family that is missing gives an empty map or `None`, never an error.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use anyhow::{ensure, Context, Result};

/// The prefix of the second level's families.
const L2_PREFIX: &str = "resync_gateway_l2_";

/// The gateway's requests, by method, status class and `cache` (`hit`, `miss`, `stale`,
/// `bypass`).
pub(super) const REQUESTS: &str = "resync_gateway_requests_total";

/// The gateway's upstream exchanges, by outcome.
pub(super) const UPSTREAM: &str = "resync_gateway_upstream_requests_total";

/// One series: its sample name and its labels, sorted by name.
type Series = (String, Vec<(String, String)>);

/// Every sample of one scrape (or the difference of two, or the sum of several).
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Snapshot {
    samples: BTreeMap<Series, f64>,
}

impl Snapshot {
    /// `GET /metrics` of the instance at `addr`.
    pub(super) fn fetch(addr: SocketAddr) -> Result<Self> {
        let response = crate::http::get(addr, "/metrics", None)
            .with_context(|| format!("GET /metrics from {addr}"))?;
        ensure!(
            response.status == 200,
            "GET /metrics from {addr} answered {}",
            response.status
        );
        Ok(Self::parse(&response.body))
    }

    /// Reads Prometheus text; lines it cannot read are skipped.
    pub(super) fn parse(text: &str) -> Self {
        let samples = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .filter_map(parse_sample)
            .collect();
        Self { samples }
    }

    /// What grew since `before` (a series absent before counts from 0).
    pub(super) fn since(&self, before: &Self) -> Self {
        let samples = self
            .samples
            .iter()
            .map(|(series, value)| {
                let old = before.samples.get(series).copied().unwrap_or(0.0);
                (series.clone(), value - old)
            })
            .collect();
        Self { samples }
    }

    /// Adds every series of `other` to this one.
    pub(super) fn add(&mut self, other: &Self) {
        for (series, value) in &other.samples {
            *self.samples.entry(series.clone()).or_default() += value;
        }
    }

    /// The sum of every series of the sample `name`; `None` when there is none.
    pub(super) fn total(&self, name: &str) -> Option<f64> {
        let mut values = self
            .samples
            .iter()
            .filter(|((sample, _), _)| sample == name)
            .map(|(_, value)| *value)
            .peekable();
        values.peek()?;
        Some(values.sum())
    }

    /// The series of `name` summed by the value of `label` (empty when absent).
    pub(super) fn by_label(&self, name: &str, label: &str) -> BTreeMap<String, f64> {
        let mut sums = BTreeMap::new();
        for ((sample, labels), value) in &self.samples {
            if sample != name {
                continue;
            }
            if let Some((_, label_value)) = labels.iter().find(|(key, _)| key == label) {
                *sums.entry(label_value.clone()).or_default() += value;
            }
        }
        sums
    }

    /// Every `resync_gateway_l2_<what>_total` counter, keyed by `<what>`, each summed by its
    /// label values (joined with `,` when there are several; `total` when there are none).
    pub(super) fn l2_counters(&self) -> BTreeMap<String, BTreeMap<String, f64>> {
        let mut families: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
        for ((sample, labels), value) in &self.samples {
            let Some(what) = sample
                .strip_prefix(L2_PREFIX)
                .and_then(|rest| rest.strip_suffix("_total"))
            else {
                continue;
            };
            let key = if labels.is_empty() {
                "total".to_owned()
            } else {
                labels
                    .iter()
                    .map(|(_, value)| value.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            };
            *families
                .entry(what.to_owned())
                .or_default()
                .entry(key)
                .or_default() += value;
        }
        families
    }

    /// Requests answered from the second level: lookup hits, and waits that got the entry
    /// another instance fetched (a family whose name says `lookup`, label value `hit`; one
    /// whose name says `lease`, label value `waited`). `None` without a lookup family.
    pub(super) fn l2_served(&self) -> Option<f64> {
        let counters = self.l2_counters();
        let count = |family: &str, value: &str| {
            counters
                .iter()
                .filter(|(name, _)| name.contains(family))
                .filter_map(|(_, values)| values.get(value))
                .sum::<f64>()
        };
        counters
            .keys()
            .any(|name| name.contains("lookup"))
            .then(|| count("lookup", "hit") + count("lease", "waited"))
    }

    /// The mean of the second level's lookup time histogram (a family
    /// `resync_gateway_l2_…lookup…_seconds`) in microseconds; `None` without one or without
    /// a lookup.
    pub(super) fn l2_lookup_mean_us(&self) -> Option<f64> {
        let base = self.samples.keys().find_map(|(sample, _)| {
            sample
                .strip_suffix("_seconds_sum")
                .filter(|base| base.starts_with(L2_PREFIX) && base.contains("lookup"))
        })?;
        let sum = self.total(&format!("{base}_seconds_sum"))?;
        let count = self.total(&format!("{base}_seconds_count"))?;
        (count > 0.0).then(|| sum / count * 1e6)
    }
}

/// `name{label="value",…} value [timestamp]`, or `name value`.
fn parse_sample(line: &str) -> Option<(Series, f64)> {
    let name_end = line.find(|c: char| c == '{' || c.is_whitespace())?;
    let name = &line[..name_end];
    let (labels, rest) = if line[name_end..].starts_with('{') {
        parse_labels(&line[name_end + 1..])?
    } else {
        (Vec::new(), &line[name_end..])
    };
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other.parse().ok()?,
    };
    Some(((name.to_owned(), labels), value))
}

/// The labels after `{` up to the closing `}`, sorted by name, and what follows it.
fn parse_labels(mut rest: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    loop {
        rest = rest.trim_start_matches([' ', ',']);
        if let Some(after) = rest.strip_prefix('}') {
            labels.sort();
            return Some((labels, after));
        }
        let (key, after) = rest.split_once('=')?;
        let mut chars = after.strip_prefix('"')?.char_indices();
        let mut value = String::new();
        let end = loop {
            let (at, c) = chars.next()?;
            match c {
                '"' => break at,
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                other => value.push(other),
            }
        };
        labels.push((key.trim().to_owned(), value));
        rest = &after[1 + end + 1..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP resync_gateway_requests_total Gateway requests.
# TYPE resync_gateway_requests_total counter
resync_gateway_requests_total{method="GET",status_class="2xx",cache="hit"} 90
resync_gateway_requests_total{method="GET",status_class="2xx",cache="miss"} 10
resync_gateway_requests_total{method="HEAD",status_class="2xx",cache="hit"} 1
resync_gateway_upstream_requests_total{outcome="answered_2xx"} 10
resync_gateway_l2_lookups_total{result="hit"} 4
resync_gateway_l2_lookups_total{result="miss"} 6
resync_gateway_l2_leases_total{outcome="waited"} 2
resync_gateway_l2_leases_total{outcome="won"} 6
resync_gateway_l2_invalidations_total 0
resync_gateway_l2_lookup_duration_seconds_bucket{le="0.001"} 9
resync_gateway_l2_lookup_duration_seconds_bucket{le="+Inf"} 10
resync_gateway_l2_lookup_duration_seconds_sum 0.005
resync_gateway_l2_lookup_duration_seconds_count 10
odd{a="x \"quoted\", y\\z"} 3 1700000000
not a sample line
"#;

    #[test]
    fn reads_counters_by_label() {
        let snapshot = Snapshot::parse(TEXT);
        let cache = snapshot.by_label(REQUESTS, "cache");
        assert_eq!(cache.get("hit"), Some(&91.0));
        assert_eq!(cache.get("miss"), Some(&10.0));
        assert_eq!(snapshot.total(UPSTREAM), Some(10.0));
        assert_eq!(snapshot.total("absent_total"), None);
        assert!(snapshot.by_label("absent_total", "cache").is_empty());
        assert_eq!(
            snapshot.by_label("odd", "a").get(r#"x "quoted", y\z"#),
            Some(&3.0)
        );
    }

    #[test]
    fn reads_the_second_level_whatever_its_label_names() {
        let snapshot = Snapshot::parse(TEXT);
        let l2 = snapshot.l2_counters();
        assert_eq!(l2["lookups"]["hit"], 4.0);
        assert_eq!(l2["leases"]["won"], 6.0);
        assert_eq!(l2["invalidations"]["total"], 0.0);
        assert!(!l2.contains_key("lookup_duration_seconds_bucket"));
        assert_eq!(snapshot.l2_served(), Some(6.0));
        let mean = snapshot.l2_lookup_mean_us().unwrap();
        assert!((mean - 500.0).abs() < 1e-9, "{mean}");
    }

    #[test]
    fn without_the_second_level_nothing_is_made_up() {
        let snapshot = Snapshot::parse(
            "resync_gateway_requests_total{method=\"GET\",status_class=\"2xx\",cache=\"hit\"} 5\n",
        );
        assert!(snapshot.l2_counters().is_empty());
        assert_eq!(snapshot.l2_served(), None);
        assert_eq!(snapshot.l2_lookup_mean_us(), None);
    }

    #[test]
    fn differences_and_sums() {
        let before = Snapshot::parse("a_total{x=\"1\"} 5\nb_total 1\n");
        let after = Snapshot::parse("a_total{x=\"1\"} 8\na_total{x=\"2\"} 2\nb_total 1\n");
        let mut delta = after.since(&before);
        assert_eq!(delta.by_label("a_total", "x").get("1"), Some(&3.0));
        assert_eq!(delta.by_label("a_total", "x").get("2"), Some(&2.0));
        assert_eq!(delta.total("b_total"), Some(0.0));
        delta.add(&after);
        assert_eq!(delta.total("a_total"), Some(15.0));
    }
}
