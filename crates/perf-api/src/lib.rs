//! The performance service and its HTTP API.
//!
//! A [`PerformanceService`] is a registry of the components that report on themselves
//! (caches, pools, resource trackers — each a [`HealthSource`]); [`router`] serves its
//! findings as JSON under `/api/performance/*`, plus `/livez` and `/readyz` for load
//! balancers. The router is an [`axum::Router`] to merge into any application; it sets no
//! fallback, so the application chooses its own. An optional bearer token
//! ([`PerformanceService::with_api_token`]) guards `/api/performance/*` and `/metrics`.
//!
//! This first version serves the health verdict; the metrics, recommendations, history,
//! Prometheus and OpenAPI endpoints of DESIGN.md arrive with the components they describe.
//!
//! ```
//! use resync_perf_api::{router, ComponentHealth, HealthSource, PerformanceService};
//! use resync_perf_core::HealthStatus;
//!
//! #[derive(Debug)]
//! struct Disk;
//! impl HealthSource for Disk {
//!     fn name(&self) -> String { "disk".into() }
//!     fn health(&self) -> ComponentHealth {
//!         ComponentHealth::new(HealthStatus::Degraded).with_reason("disk 85 % full")
//!     }
//! }
//!
//! let service = PerformanceService::new();
//! service.register(std::sync::Arc::new(Disk)).expect("one component of that name");
//! assert_eq!(service.health().status, HealthStatus::Degraded);
//! let app: axum::Router = router(service);
//! # let _ = app;
//! ```

mod auth;
mod error;
mod health;
mod routes;
mod service;

pub use error::Error;
pub use health::{ComponentHealth, HealthReport, HealthSource};
pub use routes::router;
pub use service::PerformanceService;
