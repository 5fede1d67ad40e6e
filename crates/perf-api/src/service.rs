//! The registry of components the API reports on.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use crate::error::Error;
use crate::health::{ComponentHealth, HealthReport, HealthSource};

/// The components the performance API reports on. Cheap to clone; built in `main` and
/// passed down, never global.
#[derive(Debug, Clone, Default)]
pub struct PerformanceService {
    sources: Arc<RwLock<Vec<Arc<dyn HealthSource>>>>,
    api_token: Option<Arc<str>>,
}

impl PerformanceService {
    /// An empty registry whose API is open.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Requires `Authorization: Bearer <token>` on `/api/performance/*` and `/metrics`
    /// (`PERF_API_TOKEN`). An empty token leaves the API open.
    #[must_use]
    pub fn with_api_token(mut self, token: &str) -> Self {
        self.api_token = (!token.is_empty()).then(|| Arc::from(token));
        self
    }

    /// The bearer token guarding the API, if any.
    #[must_use]
    pub fn api_token(&self) -> Option<&str> {
        self.api_token.as_deref()
    }

    /// Adds a component.
    ///
    /// # Errors
    ///
    /// [`Error::DuplicateComponent`] when one of that name is already registered.
    pub fn register(&self, source: Arc<dyn HealthSource>) -> Result<(), Error> {
        let name = source.name();
        let mut sources = self
            .sources
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if sources.iter().any(|existing| existing.name() == name) {
            return Err(Error::DuplicateComponent(name));
        }
        sources.push(source);
        Ok(())
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
