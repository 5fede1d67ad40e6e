//! Health verdicts and their aggregation.

use std::fmt;
use std::str::FromStr;

use crate::Error;

/// Health of a component or of the whole service, ordered from best to worst:
/// `Healthy < Degraded < Critical`. Aggregation is the worst of the parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum HealthStatus {
    /// Working as intended.
    #[default]
    Healthy,
    /// Working, but something needs attention (slow, close to a limit, partly failing).
    Degraded,
    /// Not doing its job; callers should expect failures.
    Critical,
}

impl HealthStatus {
    /// Every status, best first.
    pub const ALL: [HealthStatus; 3] = [Self::Healthy, Self::Degraded, Self::Critical];

    /// The worse of the two statuses.
    #[must_use]
    pub fn worst(self, other: HealthStatus) -> HealthStatus {
        self.max(other)
    }

    /// The worst status of all parts; [`Healthy`](Self::Healthy) when there are none.
    #[must_use]
    pub fn worst_of<I: IntoIterator<Item = HealthStatus>>(iter: I) -> HealthStatus {
        iter.into_iter()
            .fold(HealthStatus::Healthy, HealthStatus::worst)
    }

    /// Lower-case name: `"healthy"`, `"degraded"` or `"critical"`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::Degraded => "degraded",
            Self::Critical => "critical",
        }
    }

    /// Gauge value for the `resync_health_status` metric: 0 healthy, 1 degraded, 2 critical.
    #[must_use]
    pub fn as_gauge(self) -> i64 {
        match self {
            Self::Healthy => 0,
            Self::Degraded => 1,
            Self::Critical => 2,
        }
    }
}

impl fmt::Display for HealthStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for HealthStatus {
    type Err = Error;

    /// Parses the lower-case name produced by [`HealthStatus::as_str`], ignoring ASCII case.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str().eq_ignore_ascii_case(text))
            .ok_or_else(|| Error::UnknownHealthStatus(text.to_owned()))
    }
}

/// One health rule's finding: the figure it measured, the threshold it compared it with, and
/// the status it gives the component.
///
/// A rule that could not judge for lack of traffic says so with a reason whose status is
/// [`Healthy`](HealthStatus::Healthy) and whose code ends in `insufficient_data`, never with a
/// verdict.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct HealthReason {
    /// Stable machine id of the rule, e.g. `pool.utilization` or `cache.low_hit_rate`.
    pub code: String,
    /// The status this finding gives the component.
    pub status: HealthStatus,
    /// A sentence citing the measured figure and the threshold.
    pub message: String,
    /// The measured figure the rule judged.
    pub measured: f64,
    /// The threshold it was compared with.
    pub threshold: f64,
}

impl HealthReason {
    /// A finding of rule `code` giving `status`.
    #[must_use]
    pub fn new(
        code: impl Into<String>,
        status: HealthStatus,
        message: impl Into<String>,
        measured: f64,
        threshold: f64,
    ) -> Self {
        Self {
            code: code.into(),
            status,
            message: message.into(),
            measured,
            threshold,
        }
    }
}

/// A component's verdict: the worst status of its findings, and the findings.
#[derive(Debug, Clone, PartialEq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct HealthVerdict {
    /// The worst status any finding gave ([`Healthy`](HealthStatus::Healthy) without one).
    pub status: HealthStatus,
    /// Every finding, in the order the rules ran.
    pub reasons: Vec<HealthReason>,
}

impl HealthVerdict {
    /// A verdict from findings: its status is the worst of theirs.
    #[must_use]
    pub fn from_reasons(reasons: Vec<HealthReason>) -> Self {
        let status = HealthStatus::worst_of(reasons.iter().map(|reason| reason.status));
        Self { status, reasons }
    }

    /// Adds a finding, worsening the status when it is worse.
    pub fn push(&mut self, reason: HealthReason) {
        self.status = self.status.worst(reason.status);
        self.reasons.push(reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_ordered_best_to_worst() {
        assert!(HealthStatus::Healthy < HealthStatus::Degraded);
        assert!(HealthStatus::Degraded < HealthStatus::Critical);
        assert_eq!(HealthStatus::default(), HealthStatus::Healthy);
    }

    #[test]
    fn worst_picks_the_worse_side() {
        use HealthStatus::{Critical, Degraded, Healthy};
        let cases = [
            (Healthy, Healthy, Healthy),
            (Healthy, Degraded, Degraded),
            (Degraded, Healthy, Degraded),
            (Critical, Degraded, Critical),
            (Degraded, Critical, Critical),
        ];
        for (left, right, expected) in cases {
            assert_eq!(left.worst(right), expected, "{left} vs {right}");
        }
    }

    #[test]
    fn worst_of_aggregates_and_empty_is_healthy() {
        use HealthStatus::{Critical, Degraded, Healthy};
        assert_eq!(HealthStatus::worst_of([]), Healthy);
        assert_eq!(HealthStatus::worst_of([Healthy, Healthy]), Healthy);
        assert_eq!(
            HealthStatus::worst_of([Healthy, Degraded, Healthy]),
            Degraded
        );
        assert_eq!(
            HealthStatus::worst_of(vec![Degraded, Critical, Healthy]),
            Critical
        );
    }

    #[test]
    fn a_verdict_is_the_worst_of_its_reasons() {
        let verdict = HealthVerdict::from_reasons(vec![]);
        assert_eq!(verdict.status, HealthStatus::Healthy);
        let mut verdict = HealthVerdict::from_reasons(vec![HealthReason::new(
            "cache.insufficient_data",
            HealthStatus::Healthy,
            "only 3 gets",
            3.0,
            1000.0,
        )]);
        assert_eq!(verdict.status, HealthStatus::Healthy);
        verdict.push(HealthReason::new(
            "pool.utilization",
            HealthStatus::Critical,
            "u",
            0.95,
            0.9,
        ));
        verdict.push(HealthReason::new(
            "pool.wait",
            HealthStatus::Degraded,
            "w",
            0.2,
            0.1,
        ));
        assert_eq!(verdict.status, HealthStatus::Critical);
        assert_eq!(verdict.reasons.len(), 3);
    }

    #[test]
    fn names_gauges_and_parsing_agree() {
        let expected = [("healthy", 0), ("degraded", 1), ("critical", 2)];
        for (status, (name, gauge)) in HealthStatus::ALL.into_iter().zip(expected) {
            assert_eq!(status.as_str(), name);
            assert_eq!(status.to_string(), name);
            assert_eq!(status.as_gauge(), gauge);
            assert_eq!(name.parse::<HealthStatus>(), Ok(status));
            assert_eq!(name.to_uppercase().parse::<HealthStatus>(), Ok(status));
        }
        assert_eq!(
            "fine".parse::<HealthStatus>(),
            Err(Error::UnknownHealthStatus("fine".to_owned()))
        );
    }
}
