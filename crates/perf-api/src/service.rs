//! The registry of components the API reports on.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use crate::health::{ComponentHealth, HealthReport, HealthSource};

/// The components the performance API reports on. Cheap to clone; built in `main` and
/// passed down, never global.
#[derive(Debug, Clone, Default)]
pub struct PerformanceService {
    sources: Arc<RwLock<Vec<Arc<dyn HealthSource>>>>,
}

impl PerformanceService {
    /// An empty registry.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a component.
    pub fn register(&self, source: Arc<dyn HealthSource>) {
        self.sources
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(source);
    }

    /// Every component's verdict and the overall one.
    #[must_use]
    pub fn health(&self) -> HealthReport {
        let sources = self
            .sources
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let components: BTreeMap<String, ComponentHealth> = sources
            .iter()
            .map(|source| (source.name(), source.health()))
            .collect();
        HealthReport::from_components(components)
    }
}
