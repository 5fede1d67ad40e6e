//! The `resync` binary: parse the command line, load settings, start tracing, serve until
//! SIGINT/SIGTERM, drain, exit.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use resync_server::{demo, serve, settings, telemetry};

/// Exit code for unusable settings (sysexits' EX_CONFIG).
const EXIT_CONFIG: u8 = 78;

#[derive(Debug, Parser)]
#[command(
    name = "resync",
    version,
    about = "Resync: caching gateway and performance API"
)]
struct Cli {
    /// Settings file (default: ./settings.toml when it exists, else the built-in defaults).
    #[arg(long, value_name = "PATH", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve (the default).
    Serve,
    /// Print the effective settings, secrets redacted, and exit.
    CheckConfig,
    /// Show the whole system: the server, a sample upstream and a Zipf load through the
    /// gateway with a progress bar, then the performance report and its recommendations.
    Demo(demo::DemoArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let sources = settings::Sources {
        config: cli.config,
        ..settings::Sources::default()
    };
    let loaded = match settings::load(&sources) {
        Ok(loaded) => loaded,
        Err(error) => {
            eprintln!("resync: {error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if matches!(cli.command, Some(Command::CheckConfig)) {
        for warning in &loaded.warnings {
            eprintln!("warning: {warning}");
        }
        print!("{}", loaded.settings.redacted_toml());
        return ExitCode::SUCCESS;
    }

    if let Some(Command::Demo(args)) = &cli.command {
        return run_demo(loaded, args);
    }

    telemetry::init(loaded.settings.log_format);
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    match &loaded.file {
        Some(file) => tracing::info!(file = %file.display(), "settings loaded"),
        None => tracing::info!("settings: built-in defaults (no settings.toml here)"),
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let served = runtime.block_on(async {
        let shutdown = serve::shutdown_signal().map_err(serve::ServeError::Serve)?;
        serve::serve(&loaded.settings, shutdown).await
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "resync stopped with an error");
            ExitCode::FAILURE
        }
    }
}

/// `resync demo`: the demo's own lines at info, the server's at warn (unless `RUST_LOG` says
/// otherwise), so the progress bar is not broken up by the server's log.
fn run_demo(loaded: settings::Loaded, args: &demo::DemoArgs) -> ExitCode {
    telemetry::init_with_default(loaded.settings.log_format, "warn,resync_server::demo=info");
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("resync demo: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        let shutdown = serve::shutdown_signal()
            .map_err(|error| demo::DemoError::Serve(serve::ServeError::Serve(error)))?;
        demo::run(loaded.settings, args, shutdown).await
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error @ demo::DemoError::Settings(_)) => {
            eprintln!("resync demo: {error}");
            ExitCode::from(EXIT_CONFIG)
        }
        Err(error) => {
            eprintln!("resync demo: {error}");
            ExitCode::FAILURE
        }
    }
}
