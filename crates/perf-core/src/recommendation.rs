//! Recommendations: what a component's advisor found, why, and which setting to change.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::{Error, HealthStatus};

/// How urgent a [`Recommendation`] is, ordered `Info < Warning < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum Severity {
    /// Worth knowing; nothing is wrong (also used for "too little traffic to judge").
    Info,
    /// Performance or headroom suffers; act when convenient.
    Warning,
    /// The component is failing or about to; act now.
    Critical,
}

impl Severity {
    /// Every severity, mildest first.
    pub const ALL: [Severity; 3] = [Self::Info, Self::Warning, Self::Critical];

    /// Lower-case name: `"info"`, `"warning"` or `"critical"`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }

    /// The health a component has when its worst open recommendation has this severity:
    /// info → healthy, warning → degraded, critical → critical.
    #[must_use]
    pub fn health(self) -> HealthStatus {
        match self {
            Self::Info => HealthStatus::Healthy,
            Self::Warning => HealthStatus::Degraded,
            Self::Critical => HealthStatus::Critical,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = Error;

    /// Parses the lower-case name produced by [`Severity::as_str`], ignoring ASCII case.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|severity| severity.as_str().eq_ignore_ascii_case(text))
            .ok_or_else(|| Error::UnknownSeverity(text.to_owned()))
    }
}

/// The value of a setting, as the settings file would hold it.
///
/// Serializes untagged: a JSON integer, a JSON number or a JSON string.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(untagged))]
pub enum SettingValue {
    /// A whole number (sizes, counts, durations in the key's unit).
    Integer(i64),
    /// A fractional number (ratios, factors).
    Float(f64),
    /// Anything else (policies, names).
    Text(String),
}

impl From<i64> for SettingValue {
    fn from(value: i64) -> Self {
        Self::Integer(value)
    }
}

impl From<u64> for SettingValue {
    /// Saturates at `i64::MAX`.
    fn from(value: u64) -> Self {
        Self::Integer(i64::try_from(value).unwrap_or(i64::MAX))
    }
}

impl From<u32> for SettingValue {
    fn from(value: u32) -> Self {
        Self::Integer(i64::from(value))
    }
}

impl From<usize> for SettingValue {
    /// Saturates at `i64::MAX`.
    fn from(value: usize) -> Self {
        Self::Integer(i64::try_from(value).unwrap_or(i64::MAX))
    }
}

impl From<f64> for SettingValue {
    fn from(value: f64) -> Self {
        Self::Float(value)
    }
}

impl From<&str> for SettingValue {
    fn from(value: &str) -> Self {
        Self::Text(value.to_owned())
    }
}

impl From<String> for SettingValue {
    fn from(value: String) -> Self {
        Self::Text(value)
    }
}

impl fmt::Display for SettingValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Integer(value) => write!(f, "{value}"),
            Self::Float(value) => write!(f, "{value}"),
            Self::Text(value) => f.write_str(value),
        }
    }
}

/// A proposed change of one setting, named by its settings key (e.g. `DB_POOL_MAX_SIZE`).
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SettingChange {
    /// Settings key, exactly as in `settings.toml`.
    pub key: String,
    /// The value in effect now.
    pub current: SettingValue,
    /// The value the advisor suggests.
    pub suggested: SettingValue,
}

impl SettingChange {
    /// A change of `key` from `current` to `suggested`.
    #[must_use]
    pub fn new(
        key: impl Into<String>,
        current: impl Into<SettingValue>,
        suggested: impl Into<SettingValue>,
    ) -> Self {
        Self {
            key: key.into(),
            current: current.into(),
            suggested: suggested.into(),
        }
    }
}

/// One finding of an advisor: what, how urgent, the measurements it rests on, and optionally
/// the setting change that addresses it.
///
/// ```
/// use resync_perf_core::{Recommendation, SettingChange, Severity};
///
/// let advice = Recommendation::new(
///     "cache:responses",
///     "cache.grow_memory",
///     Severity::Warning,
///     "evictions by size are frequent; more memory would raise the hit ratio",
/// )
/// .with_evidence("hit_ratio", 0.41)
/// .with_evidence("evicted_by_size_per_second", 120.0)
/// .with_change(SettingChange::new("ASYNC_CACHE_MAX_MEMORY_MB", 64_u32, 128_u32));
/// assert_eq!(advice.evidence["hit_ratio"], 0.41);
/// assert_eq!(
///     advice.change.map(|change| change.key).as_deref(),
///     Some("ASYNC_CACHE_MAX_MEMORY_MB")
/// );
/// ```
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Recommendation {
    /// Component the finding is about, `kind:name`, e.g. `cache:responses`, `pool:db`.
    pub component: String,
    /// Stable machine id, `domain.finding`, e.g. `cache.grow_memory`, `pool.shrink_max_size`.
    pub code: String,
    /// How urgent it is.
    pub severity: Severity,
    /// One human sentence explaining the finding.
    pub message: String,
    /// Measured figures the finding rests on, by name (ratios in 0–1, durations in the unit
    /// their name says). Values should be finite: JSON has no NaN.
    #[cfg_attr(feature = "serde", serde(default))]
    pub evidence: BTreeMap<String, f64>,
    /// The setting change that addresses the finding, if a setting can.
    #[cfg_attr(feature = "serde", serde(default))]
    pub change: Option<SettingChange>,
}

impl Recommendation {
    /// A recommendation without evidence or change; add them with the `with_*` builders.
    #[must_use]
    pub fn new(
        component: impl Into<String>,
        code: impl Into<String>,
        severity: Severity,
        message: impl Into<String>,
    ) -> Self {
        Self {
            component: component.into(),
            code: code.into(),
            severity,
            message: message.into(),
            evidence: BTreeMap::new(),
            change: None,
        }
    }

    /// The one `<domain>.insufficient_data` info item a component yields when it has seen too
    /// little traffic to judge (instead of a verdict such as "low hit rate (0 %)").
    #[must_use]
    pub fn insufficient_data(
        component: impl Into<String>,
        domain: &str,
        message: impl Into<String>,
    ) -> Self {
        Self::new(
            component,
            format!("{domain}.insufficient_data"),
            Severity::Info,
            message,
        )
    }

    /// Adds (or replaces) one measured figure.
    #[must_use]
    pub fn with_evidence(mut self, name: impl Into<String>, value: f64) -> Self {
        self.evidence.insert(name.into(), value);
        self
    }

    /// Sets the proposed setting change.
    #[must_use]
    pub fn with_change(mut self, change: SettingChange) -> Self {
        self.change = Some(change);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_are_ordered_and_map_to_health() {
        assert!(Severity::Info < Severity::Warning && Severity::Warning < Severity::Critical);
        let health: Vec<_> = Severity::ALL.into_iter().map(Severity::health).collect();
        assert_eq!(health, HealthStatus::ALL);
        for severity in Severity::ALL {
            assert_eq!(severity.to_string().parse::<Severity>(), Ok(severity));
        }
        assert!(matches!(
            "urgent".parse::<Severity>(),
            Err(Error::UnknownSeverity(_))
        ));
    }

    #[test]
    fn setting_values_convert_and_display() {
        let cases: [(SettingValue, SettingValue, &str); 7] = [
            (5_i64.into(), SettingValue::Integer(5), "5"),
            (
                u64::MAX.into(),
                SettingValue::Integer(i64::MAX),
                "9223372036854775807",
            ),
            (7_u32.into(), SettingValue::Integer(7), "7"),
            (
                usize::MAX.into(),
                SettingValue::Integer(i64::MAX),
                "9223372036854775807",
            ),
            (0.25.into(), SettingValue::Float(0.25), "0.25"),
            ("lru".into(), SettingValue::Text("lru".to_owned()), "lru"),
            (
                String::from("x").into(),
                SettingValue::Text("x".to_owned()),
                "x",
            ),
        ];
        for (converted, expected, shown) in cases {
            assert_eq!(converted, expected);
            assert_eq!(converted.to_string(), shown);
        }
    }

    #[test]
    fn builder_collects_evidence_and_change() {
        let advice =
            Recommendation::new("pool:db", "pool.grow_max_size", Severity::Warning, "waits")
                .with_evidence("acquire_wait_p95_ms", 48.0)
                .with_evidence("utilization", 0.97)
                .with_evidence("utilization", 0.98)
                .with_change(SettingChange::new("DB_POOL_MAX_SIZE", 10_u32, 16_u32));
        assert_eq!(advice.component, "pool:db");
        assert_eq!(advice.code, "pool.grow_max_size");
        assert_eq!(advice.severity, Severity::Warning);
        assert_eq!(advice.message, "waits");
        assert_eq!(advice.evidence.len(), 2);
        assert_eq!(advice.evidence["utilization"], 0.98);
        let change = advice.change.expect("change was set");
        assert_eq!(change.key, "DB_POOL_MAX_SIZE");
        assert_eq!(change.current, SettingValue::Integer(10));
        assert_eq!(change.suggested, SettingValue::Integer(16));
    }

    #[test]
    fn insufficient_data_is_an_info_item_with_a_domain_code() {
        let advice = Recommendation::insufficient_data("cache:responses", "cache", "12 requests");
        assert_eq!(advice.code, "cache.insufficient_data");
        assert_eq!(advice.severity, Severity::Info);
        assert!(advice.evidence.is_empty() && advice.change.is_none());
    }
}
