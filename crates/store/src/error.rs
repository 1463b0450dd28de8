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
