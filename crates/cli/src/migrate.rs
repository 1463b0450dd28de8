//! `tessera migrate`: bring the store's schema up to date, or copy an installation.
//!
//! `tessera migrate --from URL --to URL` moves a whole installation from one database to
//! another (typically the embedded SQLite store to PostgreSQL, to run several nodes) with
//! [`tessera_store::copy_all`]: users, sessions, refresh tokens (by hash), signing keys
//! (still sealed under the same master key), clients, revocation cursors and the audit log
//! keep their ids, so nobody is logged out and every refresh token keeps working on the new
//! database, provided the servers keep the same master key.

use clap::Args;
use tessera_store::{SnapshotCounts, StoreError};

use crate::serve::ServeArgs;
use crate::Failure;

/// Arguments of `migrate`.
///
/// Examples:
/// `tessera migrate` (applies pending migrations to the configured database);
/// `tessera migrate --from sqlite://tessera-data/tessera.db --to postgres://tessera@db/tessera`
/// (copies an installation into an empty database; stop the servers first).
#[derive(Debug, Args)]
pub(crate) struct MigrateArgs {
    #[command(flatten)]
    server: ServeArgs,
    /// Copy from this database (`sqlite://path` or `postgres://...`); needs `--to`.
    #[arg(long, value_name = "URL", requires = "to")]
    from: Option<String>,
    /// Copy into this database, which must be empty; needs `--from`. A PostgreSQL schema
    /// can be chosen with `?options=-csearch_path%3Dname`.
    #[arg(long, value_name = "URL", requires = "from")]
    to: Option<String>,
}

pub(crate) fn run(args: MigrateArgs) -> Result<(), Failure> {
    if let (Some(from), Some(to)) = (&args.from, &args.to) {
        return copy(from, to);
    }
    let config = crate::serve::load_config(&args.server)?;
    let rt = crate::runtime()?;
    rt.block_on(tessera_server::commands::migrate(&config))
        .map_err(|e| Failure::Runtime(format!("migration failed: {e}")))?;
    println!("store is up to date");
    Ok(())
}

/// What a database URL names, for messages: the engine only, never the URL itself (it may
/// carry a password).
fn engine_of(url: &str) -> Result<&'static str, Failure> {
    if url.starts_with("sqlite:") {
        Ok("SQLite")
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok("PostgreSQL")
    } else {
        Err(Failure::Usage(
            "unsupported database URL (expected sqlite://PATH or postgres://...)".to_string(),
        ))
    }
}

/// The file a `sqlite:` URL names, when it names one (not `:memory:`).
fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && !path.contains(":memory:")).then_some(path)
}

fn copy(from: &str, to: &str) -> Result<(), Failure> {
    let from_engine = engine_of(from)?;
    let to_engine = engine_of(to)?;
    if from == to {
        return Err(Failure::Usage(
            "--from and --to name the same database".to_string(),
        ));
    }
    // Opening a SQLite URL creates the file: a mistyped source path would otherwise "copy"
    // an empty installation without a word.
    if let Some(path) = sqlite_path(from) {
        if !std::path::Path::new(path).is_file() {
            return Err(Failure::Usage(format!(
                "--from: no SQLite database at {path}"
            )));
        }
    }
    let rt = crate::runtime()?;
    let counts = rt.block_on(async {
        let source = tessera_store::connect(from)
            .await
            .map_err(|e| store_failure("--from", &e))?;
        // The source is brought up to date first (as `tessera serve` would on start), so an
        // installation made by an older version exports every column the target expects.
        source
            .migrate()
            .await
            .map_err(|e| store_failure("--from", &e))?;
        let target = tessera_store::connect(to)
            .await
            .map_err(|e| store_failure("--to", &e))?;
        tessera_store::copy_all(source.as_ref(), target.as_ref())
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => Failure::Runtime(
                    "--to: the target database is not empty; nothing was copied (copy into a \
                     fresh database or schema)"
                        .to_string(),
                ),
                e => store_failure("copy", &e),
            })
    })?;
    println!(
        "copied the installation from {from_engine} to {to_engine}: {}",
        summary(&counts)
    );
    println!(
        "point every server at the new database (TESSERA_DATABASE_URL) and keep the same \
         master key; existing sessions and refresh tokens keep working"
    );
    Ok(())
}

fn store_failure(what: &str, e: &StoreError) -> Failure {
    match e {
        StoreError::Config(m) => Failure::Usage(format!("{what}: {m}")),
        StoreError::Unavailable(m) => {
            Failure::Runtime(format!("{what}: database unreachable: {m}"))
        }
        e => Failure::Runtime(format!("{what}: {e}")),
    }
}

fn summary(c: &SnapshotCounts) -> String {
    format!(
        "{} users, {} sessions, {} refresh tokens, {} signing keys, {} clients, \
         {} revocation events, {} audit events",
        c.users, c.sessions, c.refresh_tokens, c.keys, c.clients, c.revocations, c.audit
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_paths() {
        assert_eq!(sqlite_path("sqlite://data/t.db"), Some("data/t.db"));
        assert_eq!(
            sqlite_path("sqlite:///abs/t.db?mode=rwc"),
            Some("/abs/t.db")
        );
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("postgres://x"), None);
    }

    #[test]
    fn engines_are_named_without_the_url() {
        assert_eq!(
            engine_of("postgres://u:secret@h/db").ok(),
            Some("PostgreSQL")
        );
        assert_eq!(engine_of("sqlite://x").ok(), Some("SQLite"));
        assert!(engine_of("mysql://x").is_err());
    }
}
