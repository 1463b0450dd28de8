//! The domain's error type: what went wrong, in domain terms. `http::error` maps it to a
//! status code and an RFC 6749 body in one place.

use tessera_store::StoreError;

/// Why a domain operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DomainError {
    /// Wrong email or password (deliberately the same for both: no enumeration).
    #[error("invalid email or password")]
    InvalidCredentials,
    /// A refresh token or grant is unknown, expired, revoked or reused.
    #[error("invalid grant: {0}")]
    InvalidGrant(&'static str),
    /// A bearer token is missing, malformed, expired or revoked (RFC 6750 `invalid_token`).
    #[error("invalid token: {0}")]
    InvalidToken(&'static str),
    /// Too many failures; retry after this many seconds.
    #[error("throttled for {0} s")]
    Throttled(i64),
    /// The request is malformed or a field is invalid.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The caller may not do this (closed registration, wrong setup token...).
    #[error("access denied: {0}")]
    AccessDenied(&'static str),
    /// The caller's token lacks a required role (RFC 6750 `insufficient_scope`).
    #[error("insufficient scope: {0}")]
    InsufficientScope(String),
    /// The thing named does not exist (or is not the caller's).
    #[error("not found")]
    NotFound,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An internal failure (crypto, key material, task join); detail for the log only.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<crate::crypto::CryptoError> for DomainError {
    fn from(e: crate::crypto::CryptoError) -> Self {
        Self::Internal(e.to_string())
    }
}

/// Result of a domain operation.
pub type DomainResult<T> = Result<T, DomainError>;
