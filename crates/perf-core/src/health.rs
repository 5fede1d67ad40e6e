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
