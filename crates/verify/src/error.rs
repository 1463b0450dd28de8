//! Errors of building a verifier and of verifying a token.

use std::time::Duration;

pub use crate::revocation::Revoked;

/// Why a token was not accepted.
///
/// The `Display` text is safe to show to the caller (it never contains the token or key
/// material); [`AuthRejection`](crate::AuthRejection) maps each variant to an RFC 6750 response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The token failed a check of the token core: structure, encoding, signature, `typ`,
    /// `iss`, `aud`, algorithm, forbidden headers (see [`tessera_jwt::Error`]).
    #[error("invalid token: {0}")]
    Invalid(tessera_jwt::Error),
    /// The token's `kid` names no key of the issuer, even after the key set was refetched (or
    /// a refetch was not allowed yet by the rate limit).
    #[error("unknown signing key")]
    UnknownKey,
    /// `exp` has passed (beyond the leeway).
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("token not yet valid")]
    NotYetValid,
    /// The revocation feed says this token is revoked.
    #[error("token revoked ({0})")]
    Revoked(Revoked),
    /// The verifier is configured to fail closed and the revocation feed has been silent for
    /// longer than allowed, so revocations may be missing.
    #[error("revocation state is stale (feed silent for {}s)", .silent_for.as_secs())]
    FeedStale {
        /// How long the feed has been silent.
        silent_for: Duration,
    },
    /// The revocation feed sent an event the verifier could not apply (malformed, unknown
    /// kind, missing fields, oversized), so a revocation may be missing; every token is
    /// rejected until a snapshot has resynced the state. Not configurable: this is a
    /// known gap, not an outage.
    #[error("revocation state is incomplete (the feed sent an event that could not be applied)")]
    FeedDesynced,
}

/// Why [`VerifierBuilder::build`](crate::VerifierBuilder::build) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The issuer or an endpoint URL is not a valid `http`/`https` URL.
    #[error("invalid URL {0:?}")]
    InvalidUrl(String),
    /// An HTTP request to the issuer failed (connection, status, body).
    #[error("request to {url} failed: {reason}")]
    Http {
        /// The URL requested.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The authorization server metadata is malformed or its `issuer` differs from the
    /// configured issuer (RFC 8414 §3.3: the values must be identical).
    #[error("invalid authorization server metadata: {0}")]
    Metadata(String),
    /// The JWKS could not be parsed.
    #[error("invalid JWKS: {0}")]
    Jwks(tessera_jwt::Error),
    /// The revocation feed refused our credentials (401/403) or sent something malformed.
    #[error("revocation feed: {0}")]
    Feed(String),
    /// The configuration is incomplete or contradictory.
    #[error("invalid configuration: {0}")]
    Config(&'static str),
}
