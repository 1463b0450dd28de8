//! The embedded SQLite engine.

/// SQLite implementation of [`crate::Store`].
#[derive(Debug)]
pub struct SqliteStore {}
