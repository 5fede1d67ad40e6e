//! The health verdict: per component, and overall as the worst of them.

use std::collections::BTreeMap;

use resync_perf_core::HealthStatus;
use serde::Serialize;

/// A component that can judge its own health (a cache, a pool, a resource tracker).
pub trait HealthSource: Send + Sync + std::fmt::Debug {
    /// The component's name in reports, e.g. `cache:responses` or `pool:db`.
    fn name(&self) -> String;
    /// Its current verdict with the reasons for it.
    fn health(&self) -> ComponentHealth;
}

/// One component's verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComponentHealth {
    /// The verdict.
    pub status: HealthStatus,
    /// Why, in sentences that cite the measured figures; empty when healthy.
    pub reasons: Vec<String>,
}

impl ComponentHealth {
    /// A verdict without reasons.
    #[must_use]
    pub fn new(status: HealthStatus) -> Self {
        Self {
            status,
            reasons: Vec::new(),
        }
    }

    /// Adds a reason.
    #[must_use]
    pub fn with_reason(mut self, reason: impl Into<String>) -> Self {
        self.reasons.push(reason.into());
        self
    }
}

/// The whole system's verdict: the worst of its components'.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthReport {
    /// The worst component status (healthy when there are no components).
    pub status: HealthStatus,
    /// Every component's verdict, by name.
    pub components: BTreeMap<String, ComponentHealth>,
}

impl HealthReport {
    /// Aggregates component verdicts.
    #[must_use]
    pub fn from_components(components: BTreeMap<String, ComponentHealth>) -> Self {
        let status = HealthStatus::worst_of(components.values().map(|c| c.status));
        Self { status, components }
    }
}
