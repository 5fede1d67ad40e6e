//! Logging with `tracing`.

use tracing_subscriber::EnvFilter;

use crate::settings::LogFormat;

/// Installs the process's log subscriber: `RUST_LOG` filters (default `info`), in the
/// chosen format, on stderr.
pub fn init(format: LogFormat) {
    init_with_default(format, "info");
}

/// [`init`] with another filter when `RUST_LOG` is unset (`resync demo` keeps the server's
/// info lines out of its progress bar).
pub fn init_with_default(format: LogFormat, default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second call (tests) finds a subscriber installed; keeping the first is right.
    let _ = match format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
