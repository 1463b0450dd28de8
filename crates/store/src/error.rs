//! The store's error type.

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A uniqueness constraint refused the write (e.g. the email is taken).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database cannot be reached right now (the server answers 503 and retries later).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The database refused a value the caller supplied (PostgreSQL: a NUL character in a
    /// text value, SQLSTATE 22021 / 22P05). The server answers 400; the message names the
    /// problem, never the value.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The configuration (database URL, file permissions) is unusable.
    #[error("store configuration: {0}")]
    Config(String),
    /// Stored data could not be decoded (a bug or a corrupted database).
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// Any other database error.
    #[error("database error: {0}")]
    Database(String),
}

/// Maps a driver error onto the store's error kinds. Messages carry the database's own text,
/// which names constraints and columns but never bound values (so never a secret).
pub(crate) fn db_err(err: sqlx::Error) -> StoreError {
    use sqlx::Error as E;
    match err {
        E::Database(db) => {
            if db.is_unique_violation() {
                return StoreError::Conflict(db.message().to_string());
            }
            if db.is_foreign_key_violation() {
                // A referenced row (e.g. the user of a new session) vanished concurrently:
                // a conflict with another writer, not a server fault.
                return StoreError::Conflict(db.message().to_string());
            }
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            // PostgreSQL text cannot hold U+0000: 22021 character_not_in_repertoire ("invalid
            // byte sequence for encoding UTF8: 0x00") for a text parameter, 22P05
            // untranslatable_character for `\u0000` in jsonb. Bad input, not a server fault.
            if code == "22021" || code == "22P05" {
                return StoreError::InvalidInput(db.message().to_string());
            }
            // SQLite: 5 SQLITE_BUSY, 6 SQLITE_LOCKED (and extended codes with the same low
            // byte) after the busy timeout ran out. PostgreSQL: class 08 connection
            // exceptions, 57P0x admin/crash shutdown, 53xxx insufficient resources.
            // (Only for SQLite: many PostgreSQL SQLSTATEs are all digits too, and 22021 has
            // the low byte 5.)
            let busy = db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some()
                && code
                    .parse::<i64>()
                    .map(|c| matches!(c & 0xff, 5 | 6))
                    .unwrap_or(false);
            if busy || code.starts_with("08") || code.starts_with("57P0") || code.starts_with("53")
            {
                return StoreError::Unavailable(db.message().to_string());
            }
            StoreError::Database(db.message().to_string())
        }
        E::Io(e) => StoreError::Unavailable(format!("i/o: {e}")),
        E::Tls(e) => StoreError::Unavailable(format!("tls: {e}")),
        E::PoolTimedOut => StoreError::Unavailable("connection pool timed out".to_string()),
        E::PoolClosed => StoreError::Unavailable("connection pool closed".to_string()),
        E::WorkerCrashed => StoreError::Unavailable("database worker crashed".to_string()),
        E::Protocol(msg) => StoreError::Unavailable(format!("protocol: {msg}")),
        E::Configuration(e) => StoreError::Config(e.to_string()),
        E::ColumnDecode { index, source } => {
            StoreError::Corrupt(format!("column {index}: {source}"))
        }
        E::Decode(e) => StoreError::Corrupt(e.to_string()),
        E::ColumnNotFound(c) => StoreError::Corrupt(format!("column not found: {c}")),
        E::TypeNotFound { type_name } => {
            StoreError::Corrupt(format!("type not found: {type_name}"))
        }
        E::Migrate(e) => StoreError::Database(format!("migration: {e}")),
        other => StoreError::Database(other.to_string()),
    }
}

/// Decodes a JSON array of role names stored as text.
pub(crate) fn roles_from_json(s: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("roles: {e}")))
}

/// Encodes role names as a JSON array.
pub(crate) fn roles_to_json(roles: &[String]) -> Result<String, StoreError> {
    serde_json::to_string(roles).map_err(|e| StoreError::Corrupt(format!("roles: {e}")))
}
