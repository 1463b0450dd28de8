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

/// Logs to stdout at `TESSERA_LOG` (default `info`). A filter of plain `target=level`
/// directives (the usual case) becomes a static [`Targets`] filter, decided once per
/// call site; only one with span or field directives (`[...]`) needs an `EnvFilter`, whose
/// per-span bookkeeping takes a lock each time any span is entered or left (every request
/// enters its span several times). Colours only on a terminal, so log files carry no escape
/// codes.
///
/// [`Targets`]: tracing_subscriber::filter::Targets
fn init_logging(json: bool) {
    use std::io::IsTerminal as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::Layer as _;

    let directives = std::env::var("TESSERA_LOG").ok();
    let filter = match directives.as_deref().map(str::trim) {
        None | Some("") => tracing_subscriber::filter::Targets::new()
            .with_default(tracing::Level::INFO)
            .boxed(),
        Some(d) => match d.parse::<tracing_subscriber::filter::Targets>() {
            Ok(targets) if !d.contains('[') => targets.boxed(),
            _ => tracing_subscriber::EnvFilter::try_new(d)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
                .boxed(),
        },
    };
    let fmt = tracing_subscriber::fmt::layer().with_ansi(std::io::stdout().is_terminal());
    let fmt = if json {
        fmt.json().boxed()
    } else {
        fmt.boxed()
    };
    tracing_subscriber::registry().with(filter).with(fmt).init();
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
