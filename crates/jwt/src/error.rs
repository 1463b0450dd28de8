//! The one error type of the token core.
//!
//! Every failure class has its own variant so that callers (the server, the verifier, the CLI)
//! can map errors at their edge without string matching. Messages never contain key material
//! or whole tokens; they may echo short attacker-controlled header values (an algorithm name, a
//! `kid`), truncated, so that operators can see what was sent.

use std::fmt;

/// Which part of a compact JWS a structural error was found in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The protected header (first segment).
    Header,
    /// The payload / claims set (second segment).
    Payload,
    /// The signature (third segment).
    Signature,
    /// A JWK or JWK Set document.
    Jwk,
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Part::Header => "header",
            Part::Payload => "payload",
            Part::Signature => "signature",
            Part::Jwk => "JWK",
        })
    }
}

/// Every way an operation of this crate can fail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The token is longer than the policy allows; checked before any decoding (RFC 8725 §3.1).
    #[error("token too large: {len} bytes (maximum {max})")]
    TokenTooLarge {
        /// Length of the presented token in bytes.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The compact serialization is not exactly three non-empty dot-separated segments.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// A segment is not canonical unpadded base64url (RFC 7515 §2: no padding, no
    /// non-zero trailing bits, URL-safe alphabet only).
    #[error("invalid base64url in {0}")]
    InvalidBase64(Part),
    /// A segment is not a strict JSON object (syntax, depth, non-object, invalid UTF-8).
    #[error("invalid JSON in {part}: {reason}")]
    InvalidJson {
        /// Where the JSON was.
        part: Part,
        /// What was wrong with it.
        reason: String,
    },
    /// A JSON object repeats a member name; RFC 7515 §5.2 and RFC 8725 §3.6 say reject.
    #[error("duplicate JSON member {name:?} in {part}")]
    DuplicateMember {
        /// Where the object was.
        part: Part,
        /// The repeated name (truncated).
        name: String,
    },
    /// The header names an algorithm this crate does not implement, including every spelling
    /// of `none` (RFC 8725 §3.1).
    #[error("unsupported algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    /// The header's `alg` differs from the one algorithm the key is bound to (RFC 8725 §3.1:
    /// the key, not the token, chooses the algorithm).
    #[error("algorithm {token:?} not allowed for a {key} key")]
    AlgorithmMismatch {
        /// The algorithm the key is bound to.
        key: crate::Algorithm,
        /// The algorithm the token header asked for.
        token: String,
    },
    /// The header has no `alg` member.
    #[error("header has no alg")]
    MissingAlgorithm,
    /// The signature does not verify under the key.
    #[error("invalid signature")]
    InvalidSignature,
    /// `exp` is in the past, beyond the leeway (RFC 7519 §4.1.4).
    #[error("token expired at {exp} (now {now}, leeway {leeway}s)")]
    Expired {
        /// The token's `exp`.
        exp: i64,
        /// The validation clock's time.
        now: i64,
        /// The leeway in seconds.
        leeway: u64,
    },
    /// `nbf` is in the future, beyond the leeway (RFC 7519 §4.1.5).
    #[error("token not valid before {nbf} (now {now}, leeway {leeway}s)")]
    NotYetValid {
        /// The token's `nbf`.
        nbf: i64,
        /// The validation clock's time.
        now: i64,
        /// The leeway in seconds.
        leeway: u64,
    },
    /// `iat` is in the future, beyond the leeway: the token was minted by a skewed or lying
    /// issuer.
    #[error("token issued in the future at {iat} (now {now}, leeway {leeway}s)")]
    IssuedInFuture {
        /// The token's `iat`.
        iat: i64,
        /// The validation clock's time.
        now: i64,
        /// The leeway in seconds.
        leeway: u64,
    },
    /// `iss` is not the expected issuer (RFC 7519 §4.1.1).
    #[error("wrong issuer {found:?}")]
    InvalidIssuer {
        /// The issuer in the token (truncated).
        found: String,
    },
    /// `aud` names none of the expected audiences, or the policy names no audience to check
    /// against (RFC 7519 §4.1.3, RFC 8725 §3.9).
    #[error("wrong audience: {0}")]
    InvalidAudience(&'static str),
    /// The header `typ` is not the expected explicit type (RFC 8725 §3.11, RFC 9068 §2.1).
    #[error("wrong token type: expected {expected:?}, found {found:?}")]
    InvalidType {
        /// The type the policy requires.
        expected: String,
        /// The type in the header, if any (truncated).
        found: Option<String>,
    },
    /// A claim the policy requires is absent.
    #[error("missing required claim {0:?}")]
    MissingClaim(String),
    /// A registered claim has the wrong JSON type or an unacceptable value (for instance a
    /// NumericDate that is negative, fractional, non-numeric or beyond year 9999).
    #[error("invalid claim {claim:?}: {reason}")]
    InvalidClaim {
        /// The claim name.
        claim: &'static str,
        /// What was wrong with it.
        reason: &'static str,
    },
    /// The claims do not fit the application's claim type (serde error text).
    #[error("claims do not match the expected shape: {0}")]
    InvalidClaims(String),
    /// The token's `kid` names no key in the key set.
    #[error("unknown key id {0:?}")]
    UnknownKid(String),
    /// The token has no `kid` but the key set holds more than one key.
    #[error("token has no kid and the key set holds several keys")]
    MissingKid,
    /// The header carries a parameter that is never honoured because it would let the token
    /// choose its own key (`jku`, `x5u`, `jwk`, `x5c`; RFC 8725 §3.10) or change the signing
    /// input (`b64`: false, RFC 7797).
    #[error("forbidden header parameter {0:?}")]
    ForbiddenHeader(&'static str),
    /// The header lists `crit` extensions; none are understood, so the token must be rejected
    /// (RFC 7515 §4.1.11).
    #[error("unsupported critical header {0:?}")]
    UnsupportedCritical(String),
    /// Key material is malformed, of the wrong type, too small, or inconsistent.
    #[error("invalid key: {0}")]
    InvalidKey(&'static str),
    /// A JWK member is missing or not canonical base64url (RFC 7518 §6, RFC 7515 §2).
    #[error("invalid JWK member {member:?}: {reason}")]
    InvalidJwk {
        /// The member name.
        member: &'static str,
        /// What was wrong with it.
        reason: &'static str,
    },
    /// An HMAC secret is shorter than the hash output (RFC 7518 §3.2).
    #[error("HMAC key too short: {len} bytes, {alg} needs at least {min}")]
    WeakKey {
        /// The algorithm requested.
        alg: crate::Algorithm,
        /// The secret length given.
        len: usize,
        /// The minimum length.
        min: usize,
    },
    /// A key set contains two keys with the same `kid` (or two without one).
    #[error("duplicate key id {0:?} in key set")]
    DuplicateKid(String),
    /// The operation is not possible for this kind of key (for instance a private JWK from a
    /// public-only key).
    #[error("unsupported operation: {0}")]
    Unsupported(&'static str),
    /// The claims or header could not be serialized.
    #[error("serialization failed: {0}")]
    Serialization(String),
    /// The crypto backend failed (random generation, signing); never caused by token input.
    #[error("cryptographic operation failed: {0}")]
    Crypto(&'static str),
}

/// Truncates attacker-controlled text echoed in errors, so an error never carries a large blob.
pub(crate) fn truncate(s: &str) -> String {
    const MAX: usize = 64;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
