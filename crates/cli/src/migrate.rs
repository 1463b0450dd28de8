//! `tessera migrate`: bring the store's schema up to date, or copy an installation.

use clap::Args;

use crate::serve::ServeArgs;
use crate::Failure;

/// Arguments of `migrate`.
///
/// Example: `tessera migrate` (applies pending migrations to the configured database)
#[derive(Debug, Args)]
pub(crate) struct MigrateArgs {
    #[command(flatten)]
    server: ServeArgs,
}

pub(crate) fn run(args: MigrateArgs) -> Result<(), Failure> {
    let config = crate::serve::load_config(&args.server)?;
    let rt = crate::runtime()?;
    rt.block_on(tessera_server::commands::migrate(&config))
        .map_err(|e| Failure::Runtime(format!("migration failed: {e}")))?;
    println!("store is up to date");
    Ok(())
}
