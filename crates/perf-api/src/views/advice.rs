//! Recommendations and health findings as the API shows them.

use std::collections::BTreeMap;

use resync_perf_core::{Recommendation, SettingValue};
use serde::Serialize;
use utoipa::ToSchema;

/// A setting's value: a number or a string.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(untagged)]
pub enum SettingValueView {
    /// A number.
    Number(f64),
    /// Anything else.
    Text(String),
}

impl From<&SettingValue> for SettingValueView {
    fn from(value: &SettingValue) -> Self {
        match value {
            SettingValue::Integer(value) => Self::Number(*value as f64),
            SettingValue::Float(value) => Self::Number(*value),
            SettingValue::Text(value) => Self::Text(value.clone()),
        }
    }
}

/// A proposed settings change.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChangeView {
    /// The settings key, as in `settings.toml`.
    pub key: String,
    /// Its value now.
    pub current: SettingValueView,
    /// The suggested value.
    pub suggested: SettingValueView,
}

/// A finding with the measured evidence it rests on.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RecommendationView {
    /// The component, `cache:<name>` or `pool:<name>`.
    pub component: String,
    /// Stable machine id, e.g. `cache.grow_memory`.
    pub code: String,
    /// `info`, `warning` or `critical`.
    pub severity: String,
    /// One sentence.
    pub message: String,
    /// The measured figures, by name (units in the names).
    pub evidence: BTreeMap<String, f64>,
    /// The settings change that addresses it, if one does.
    pub change: Option<ChangeView>,
}

impl From<Recommendation> for RecommendationView {
    fn from(advice: Recommendation) -> Self {
        Self {
            component: advice.component,
            code: advice.code,
            severity: advice.severity.as_str().to_owned(),
            message: advice.message,
            evidence: advice.evidence,
            change: advice.change.map(|change| ChangeView {
                key: change.key,
                current: (&change.current).into(),
                suggested: (&change.suggested).into(),
            }),
        }
    }
}

/// One health finding.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReasonView {
    /// Stable machine id of the rule.
    pub code: String,
    /// The status it gives: `healthy`, `degraded` or `critical`.
    pub status: String,
    /// A sentence citing the figure and the threshold.
    pub message: String,
    /// The measured figure.
    pub measured: f64,
    /// The threshold.
    pub threshold: f64,
}
