//! Domain logic: accounts, passwords, sessions, tokens, keys, throttling, revocation.
//! No HTTP and no SQL here: functions take the [`crate::state::AppState`], read time from its
//! clock, talk to the store through the `Store` trait, and return [`DomainError`].

pub mod accounts;
pub mod admin;
pub mod audit;
pub mod clients;
mod error;
pub mod feed;
pub mod introspection;
pub mod keys;
pub mod passwords;
pub mod revocation;
pub mod sessions;
pub mod setup;
pub mod throttle;
pub mod tokens;

pub use error::{DomainError, DomainResult};
