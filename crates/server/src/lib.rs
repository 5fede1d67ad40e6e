//! The `resync` server: settings, composition, and serving.
//!
//! The binary (`src/main.rs`) stays thin: it parses the command line, loads [`settings`],
//! starts tracing, and hands over to [`serve::serve`], which builds the components as values
//! ([`app::App`]: tracker, pools, pool manager, response cache, performance service; no
//! globals), serves the performance API and shuts down cleanly on SIGINT/SIGTERM. [`demo`]
//! is `resync demo`: the server, a sample upstream and a load through the gateway, in one
//! process, ending with the performance report.
//!
//! ```
//! use resync_server::settings::Settings;
//!
//! let settings = Settings::default();
//! settings.validate().expect("the defaults are valid");
//! assert_eq!(settings.bind_addr, "127.0.0.1:8000");
//! ```

pub mod app;
pub mod demo;
pub mod gateway;
pub mod serve;
pub mod settings;
pub mod telemetry;
