//! Unverified decoding. Nothing returned here is authenticated: use it for debugging and
//! tooling (`tessera token inspect`), never for an access decision.
//!
//! Even unverified decoding stays strict about size, segments, base64url and JSON (duplicate
//! members rejected), so that it cannot be used to smuggle past the parser differences the
//! verifying path refuses.

use crate::error::Part;
use crate::jws::{self, DEFAULT_MAX_TOKEN_LEN};
use crate::{json, Error, SigningKey};

/// Decodes header and claims of a compact JWS **without verifying the signature**.
/// The token is capped at 8 KiB; the signature segment must still be valid base64url.
pub fn decode_unverified(token: &str) -> Result<(serde_json::Value, serde_json::Value), Error> {
    let c = jws::split(token, DEFAULT_MAX_TOKEN_LEN)?;
    let header = strict_value(c.header, Part::Header)?;
    let claims = strict_value(c.payload, Part::Payload)?;
    jws::b64_decode(c.signature, Part::Signature)?;
    Ok((header, claims))
}

fn strict_value(b64: &str, part: Part) -> Result<serde_json::Value, Error> {
    let bytes = jws::b64_decode(b64, part)?;
    json::scan_object(&bytes, part, json::MAX_DEPTH, |_, _| Ok(()))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::InvalidJson {
        part,
        reason: e.to_string(),
    })
}

/// Signs arbitrary header JSON and payload bytes with **no checks at all**: any `alg`, `crit`,
/// `jwk`, duplicate members. For building negative tests and interop fixtures only; tokens
/// made this way are exactly the ones [`crate::verify`] exists to refuse.
pub fn sign_unchecked(
    key: &SigningKey,
    header_json: &[u8],
    payload: &[u8],
) -> Result<String, Error> {
    crate::jws::sign_unchecked(key, header_json, payload)
}
