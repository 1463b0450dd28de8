//! Local verification of Tessera access tokens for resource servers.
//!
//! ```no_run
//! use axum::{routing::get, Router};
//! use tessera_verify::{Authenticated, Verifier};
//! use tower::Layer;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let verifier = Verifier::builder("https://auth.example.com")
//!     .audience("api")
//!     .client_credentials("notes-api", "client-secret") // a client with scope revocations:read
//!     .build()
//!     .await?;
//! let router = Router::new()
//!     .route("/healthz", get(|| async { "ok" }))
//!     .route("/me", get(|claims: Authenticated| async move { claims.sub.clone() }));
//! // Deny by default: every path but /healthz needs a valid token.
//! let app = verifier.layer().public_path("/healthz").layer(router);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, tower::make::Shared::new(app)).await?;
//! # Ok(()) }
//! ```
//!
//! # What a [`Verifier`] does
//!
//! * **Discovery.** It reads the issuer's RFC 8414 metadata
//!   (`/.well-known/oauth-authorization-server`) and insists its `issuer` equals the configured
//!   one exactly (RFC 8414 §3.3), then fetches the JWKS from `jwks_uri`.
//! * **Keys.** The JWKS is cached as long as its `Cache-Control: max-age` allows and refreshed
//!   in the background; when the issuer is unreachable the cached keys stay in use. A token
//!   naming an unknown `kid` (a key rotated in since the last fetch) triggers a refetch, but
//!   at most one per [`VerifierBuilder::unknown_kid_refetch_interval`] (default 10 s) and only
//!   one at a time, so a flood of made-up `kid`s cannot turn into a flood of JWKS requests.
//! * **Revocation feed.** It takes a snapshot of the live revocation set
//!   (`GET /revocations`), then follows `GET /revocations/stream` (Server-Sent Events) in the
//!   background, reconnecting with exponential backoff and jitter and resuming from its cursor
//!   (`Last-Event-ID`) so nothing is missed or applied twice. Revoked sessions, revoked token
//!   ids and per-user cutoffs ("tokens issued at or before T") are kept until the tokens they
//!   affect have expired, then pruned: memory follows the live set.
//! * **Verification.** [`Verifier::verify`] checks signature (the key's algorithm, never the
//!   header's choice), `typ: at+jwt`, `iss`, `aud`, `exp`/`nbf` with leeway, then revocation.
//!   Verified tokens are cached (10 000 by default, keyed by SHA-256 of the token, with a
//!   small per-thread copy of the hottest ones) so repeat requests skip the signature;
//!   lifetime and revocation are checked on every request.
//! * **axum.** [`Authenticated`] extracts verified claims; [`Verifier::layer`] rejects requests
//!   without a valid token, around a whole router (deny by default, with
//!   [`RequireAuthLayer::public_path`]s) or per route; [`AccessClaims::require_role`] guards handlers. Rejections follow
//!   RFC 6750: `401` with `WWW-Authenticate: Bearer error="invalid_token"` (a bare `Bearer`
//!   challenge when no token was sent), `403 insufficient_scope`, RFC 6749 JSON bodies.
//! * **Staleness.** [`Verifier::health`] and [`Verifier::last_synced`] report feed state, cursor
//!   and key age. By default the verifier keeps verifying while the feed is down (revocations
//!   made meanwhile take effect when it reconnects);
//!   [`VerifierBuilder::fail_closed_after`] makes it reject every token (`503`) once the feed
//!   has been silent for longer than allowed.
//!
//! # Security
//!
//! * The algorithm belongs to the key (RFC 8725 §3.1): `alg: none`, HMAC-with-a-public-key
//!   confusion and `jku`/`x5u`/embedded-`jwk` key injection are rejected by `tessera-jwt`.
//! * `iss`, `aud` and `exp` are required, `typ` must be `at+jwt` (RFC 9068 §2.1, RFC 8725
//!   §3.11), so an ID token or a token for another service is not accepted.
//! * The token cache is keyed by SHA-256, so no token can collide with another's cache entry,
//!   and it holds digests and claims, never tokens. When a key disappears from the JWKS,
//!   cached verifications are dropped at once.
//! * A feed event that cannot be applied exactly (malformed, unknown kind, missing fields,
//!   oversized) is never skipped: every token is rejected ([`VerifyError::FeedDesynced`], 503)
//!   until a full snapshot has resynced the state.
//! * Revocation is only as fresh as the feed. Watch [`Verifier::health`]; where a missed logout
//!   is worse than an outage, use [`VerifierBuilder::fail_closed_after`].
//! * Issuer, JWKS and feed are fetched without following redirects, with size caps on every
//!   body and on every Server-Sent Events line. Production issuers must be `https` (enable the
//!   `rustls` feature); plain `http` is for loopback and tests.
//! * Nothing here logs a token, a client secret or a feed token.

#![deny(missing_docs)]

mod cache;
mod claims;
mod error;
mod extract;
mod feed;
mod http_util;
mod keys;
mod local;
mod rejection;
mod revocation;
mod sse;
mod token;
mod verifier;

pub use claims::AccessClaims;
pub use error::{BuildError, Revoked, VerifyError};
pub use extract::{
    Authenticated, RequireAuth, RequireAuthFuture, RequireAuthLayer, VerifierExtension,
    VerifierExtensionLayer,
};
pub use rejection::{bearer_token, AuthRejection, RejectionKind};
pub use verifier::{Health, Verifier, VerifierBuilder};
