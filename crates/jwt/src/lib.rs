//! # tessera-jwt: a strict, fast JWS/JWT/JWK token core
//!
//! Sign and verify JSON Web Tokens in JWS compact form (RFC 7515, RFC 7519) with HS256/384/512,
//! RS256/384/512, PS256/384/512, ES256, ES384 and EdDSA (Ed25519), import and export keys as
//! JWK/JWKS (RFC 7517, RFC 7518, RFC 8037), PEM (SPKI / PKCS#8) and raw bytes, and validate
//! claims against one policy value. No I/O, no async runtime; crypto by aws-lc-rs.
//!
//! ## Usage
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use tessera_jwt::{
//!     verify, Algorithm, Audience, Claims, Clock, Header, RegisteredClaims, SigningKey,
//!     Validation,
//! };
//!
//! #[derive(Serialize, Deserialize)]
//! struct Roles {
//!     roles: Vec<String>,
//! }
//!
//! # fn main() -> Result<(), tessera_jwt::Error> {
//! // The issuer: one key, one algorithm, a kid (here its RFC 7638 thumbprint).
//! let key = SigningKey::generate(Algorithm::EdDSA)?;
//! let kid = key.thumbprint();
//! let key = key.with_kid(kid);
//!
//! let now = 1_700_000_000;
//! let claims = Claims::new(
//!     RegisteredClaims {
//!         iss: Some("https://auth.example".into()),
//!         sub: Some("user-42".into()),
//!         aud: Some(Audience::One("api".into())),
//!         exp: Some(now + 600),
//!         iat: Some(now),
//!         ..Default::default()
//!     },
//!     Roles { roles: vec!["admin".into()] },
//! );
//! let token = key.sign(&Header::new().typ("at+jwt"), &claims)?;
//!
//! // A resource server: the public key (usually from the JWKS), and one policy.
//! let public = key.verifying_key();
//! let policy = Validation::access_token("https://auth.example", &["api"])
//!     .clock(Clock::Fixed(now + 5));
//! let verified = verify::<Roles>(&token, &public, &policy)?;
//! assert_eq!(verified.claims().custom.roles, ["admin"]);
//! assert_eq!(verified.claims().registered.sub.as_deref(), Some("user-42"));
//! # Ok(())
//! # }
//! ```
//!
//! Several keys (rotation): build a [`KeySet`] (for instance with
//! [`KeySet::from_jwks_json`]) and call [`verify_with_keys`], which picks the key by `kid`.
//!
//! ## Security
//!
//! The rules of RFC 8725 (JWT Best Current Practices), enforced by construction:
//!
//! - **The key chooses the algorithm.** Every [`VerifyingKey`] is bound to one [`Algorithm`];
//!   a token whose header names another is refused ([`Error::AlgorithmMismatch`]). This closes
//!   RSA→HMAC key confusion (§2.1). There is no `none` algorithm: every spelling of it is
//!   [`Error::UnsupportedAlgorithm`].
//! - **The token never supplies its key.** Headers `jku`, `x5u`, `jwk` and `x5c` are rejected
//!   ([`Error::ForbiddenHeader`]), and so is any `crit` (RFC 7515 §4.1.11), since no extension
//!   is implemented. `kid` only selects among keys you configured; it is never a path or query.
//! - **Strict parsing, bounded work.** The size cap (8 KiB by default) is checked before any
//!   decoding; exactly three segments; canonical unpadded base64url only (no padding, no
//!   non-zero trailing bits, no `+`/`/`); header and claims must be JSON objects; duplicate
//!   member names are rejected at every depth (RFC 7515 §5.2, RFC 8725 §3.6); nesting depth
//!   is bounded. No input panics.
//! - **Claims are checked, not skipped.** `exp`, `iss` and `aud` are required by default; a
//!   token with `aud` is rejected unless the policy names an accepted audience (§3.9);
//!   NumericDates that are negative, fractional, not numbers, or beyond year 9999 are errors.
//!   Explicit typing (`typ` `at+jwt`, RFC 9068) separates access tokens from other JWTs
//!   (§3.11).
//! - **Sound crypto.** HMAC secrets shorter than the hash output are refused (RFC 7518 §3.2);
//!   RSA keys must be at least 2048 bits; ECDSA signatures are fixed-width `r||s` and
//!   `r = s = 0` never verifies; HMAC tags are compared in constant time.
//! - **Secrets stay secret.** Keys zeroize on drop and print as `<redacted>` in `Debug`;
//!   errors never contain key material or the token.
//! - **Unverified reading is fenced off** in [`dangerous`].
//!
//! Verifying returns a [`Verified`] value that only this crate can construct, so code that
//! holds one knows the token was checked.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod alg;
mod claims;
mod crypto;
pub mod dangerous;
mod der;
mod error;
mod json;
mod jwk;
mod jws;
mod strict;
mod validation;

pub use alg::{Algorithm, SigningKey, VerifyingKey};
pub use claims::{Audience, Claims, NoCustomClaims, RegisteredClaims, MAX_NUMERIC_DATE};
pub use error::{Error, Part};
pub use jwk::{Jwk, JwkSecret, JwkSet, KeySet, MAX_JWKS_LEN};
pub use jws::{verify_signature_only, Header, DEFAULT_MAX_TOKEN_LEN};
pub use validation::{now, verify, verify_with_keys, Clock, Validation, Verified, DEFAULT_LEEWAY};
