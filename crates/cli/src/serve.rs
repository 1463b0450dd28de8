//! `tessera serve`: run the auth server.

use std::path::PathBuf;

use clap::Args;
use tessera_server::Config;

use crate::Failure;

/// Where the configuration comes from: defaults, then the TOML file, then `TESSERA_*`
/// environment variables.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// TOML configuration file (see docs/configuration.md).
    #[arg(long, short, env = "TESSERA_CONFIG")]
    config: Option<PathBuf>,
    /// Log as JSON lines instead of human-readable text.
    #[arg(long, env = "TESSERA_LOG_JSON")]
    log_json: bool,
}

/// Loads the configuration named by the arguments.
pub(crate) fn load_config(args: &ServeArgs) -> Result<Config, Failure> {
    Config::load(args.config.as_deref()).map_err(|e| Failure::Usage(format!("configuration: {e}")))
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TESSERA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Runs the server until SIGINT or SIGTERM.
///
/// Example: `tessera serve` (SQLite in ./tessera-data, http://127.0.0.1:8080)
pub(crate) fn run(args: ServeArgs) -> Result<(), Failure> {
    init_logging(args.log_json);
    let config = load_config(&args)?;
    let rt = crate::runtime()?;
    rt.block_on(tessera_server::serve(config))
        .map_err(|e| Failure::Runtime(format!("server stopped: {e}")))
}
