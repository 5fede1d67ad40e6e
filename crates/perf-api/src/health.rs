//! The health verdict: per component, and overall as the worst of them.

use std::collections::BTreeMap;
use std::time::Duration;

use resync_perf_core::{HealthReason, HealthStatus, HealthVerdict};
use serde::Serialize;
use utoipa::ToSchema;

/// One component's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ComponentHealth {
    /// The worst status of its findings.
    #[schema(value_type = String, example = "healthy")]
    pub status: HealthStatus,
    /// Every finding, each with the measured figure and the threshold; empty when nothing
    /// needed saying.
    #[schema(value_type = Vec<crate::views::ReasonView>)]
    pub reasons: Vec<HealthReason>,
    /// How long evaluating this component took, in seconds.
    pub check_duration_seconds: f64,
}

impl ComponentHealth {
    /// A component's verdict and how long it took to reach.
    #[must_use]
    pub fn new(verdict: HealthVerdict, took: Duration) -> Self {
        Self {
            status: verdict.status,
            reasons: verdict.reasons,
            check_duration_seconds: took.as_secs_f64(),
        }
    }
}

/// The whole system's verdict: the worst of its components'.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct HealthReport {
    /// The worst component status (healthy when there are no components).
    #[schema(value_type = String, example = "healthy")]
    pub status: HealthStatus,
    /// The window the figures were judged over, in seconds (shorter than the configured
    /// window until the history reaches back that far).
    pub window_seconds: f64,
    /// The thresholds the rules applied, by name (units in the names).
    pub thresholds: BTreeMap<String, f64>,
    /// Every component's verdict, by name (`cache:<name>`, `pool:<name>`, `resources`, …).
    pub components: BTreeMap<String, ComponentHealth>,
}

impl HealthReport {
    /// Aggregates component verdicts.
    #[must_use]
    pub fn from_components(
        components: BTreeMap<String, ComponentHealth>,
        window: Duration,
        thresholds: BTreeMap<String, f64>,
    ) -> Self {
        let status = HealthStatus::worst_of(components.values().map(|c| c.status));
        Self {
            status,
            window_seconds: window.as_secs_f64(),
            thresholds,
            components,
        }
    }
}
