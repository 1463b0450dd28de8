//! JWS compact serialization (RFC 7515 §3.1, §7.1): size cap first, then the three segments,
//! then canonical base64url, then strict JSON.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::Serialize;

use crate::error::{truncate, Part};
use crate::{json, Algorithm, Error, SigningKey, VerifyingKey};

/// Default cap on the whole compact token, in bytes (DESIGN §3: 8 KiB).
pub const DEFAULT_MAX_TOKEN_LEN: usize = 8 * 1024;

/// Nesting bound for the protected header, which is flat in every profile we know.
const HEADER_MAX_DEPTH: usize = 4;

/// Largest signature we accept: RSA-8192 (1024 bytes).
const MAX_SIGNATURE_LEN: usize = 1024;

/// The JOSE protected header of a token.
///
/// On signing, `alg` is always overwritten with the key's algorithm and `kid` with the key's
/// id when it has one. On verification, the parsed header is returned in
/// [`crate::Verified::header`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Header {
    /// Algorithm (RFC 7515 §4.1.1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alg: Option<Algorithm>,
    /// Explicit type (RFC 7515 §4.1.9), `at+jwt` for access tokens (RFC 9068 §2.1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub typ: Option<String>,
    /// Key id (RFC 7515 §4.1.4).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// Content type (RFC 7515 §4.1.10).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cty: Option<String>,
}

impl Header {
    /// An empty header; `alg` is filled in by [`SigningKey::sign`].
    pub fn new() -> Header {
        Header::default()
    }

    /// Sets `typ`.
    pub fn typ(mut self, t: &str) -> Header {
        self.typ = Some(t.to_owned());
        self
    }

    /// Sets `kid` (overridden by the signing key's own `kid`, if it has one).
    pub fn kid(mut self, kid: &str) -> Header {
        self.kid = Some(kid.to_owned());
        self
    }

    /// Sets `cty`.
    pub fn cty(mut self, cty: &str) -> Header {
        self.cty = Some(cty.to_owned());
        self
    }
}

/// The three segments of a compact JWS, borrowed from the token.
#[derive(Clone, Copy)]
pub(crate) struct Compact<'a> {
    pub(crate) header: &'a str,
    pub(crate) payload: &'a str,
    pub(crate) signature: &'a str,
    /// `header "." payload`, the JWS Signing Input (RFC 7515 §5.1 step 5).
    pub(crate) signing_input: &'a str,
}

/// Checks the size cap and splits into exactly three segments. Nothing is decoded yet.
pub(crate) fn split(token: &str, max_len: usize) -> Result<Compact<'_>, Error> {
    // RFC 8725 §3.1-style resource bound: reject before spending any work on the content.
    if token.len() > max_len {
        return Err(Error::TokenTooLarge {
            len: token.len(),
            max: max_len,
        });
    }
    // `find`/`rfind` on a char use memchr; the middle check is one more memchr.
    let first = token
        .find('.')
        .ok_or(Error::Malformed("expected three segments, found one"))?;
    let second = token.rfind('.').unwrap_or(first);
    if second == first {
        return Err(Error::Malformed("expected three segments, found two"));
    }
    if token.as_bytes()[first + 1..second].contains(&b'.') {
        // Five segments would be JWE (RFC 7516 §7.1); anything else is garbage.
        return Err(Error::Malformed("expected three segments, found more"));
    }
    if first == 0 {
        return Err(Error::Malformed("empty header segment"));
    }
    Ok(Compact {
        header: &token[..first],
        payload: &token[first + 1..second],
        signature: &token[second + 1..],
        signing_input: &token[..second],
    })
}

/// Strict base64url decode: URL-safe alphabet, no padding, zero trailing bits (the base64
/// engine's `URL_SAFE_NO_PAD` configuration enforces all three).
pub(crate) fn b64_decode(s: &str, part: Part) -> Result<Vec<u8>, Error> {
    URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| Error::InvalidBase64(part))
}

/// [`b64_decode`] into a caller's buffer, which must hold the engine's conservative output
/// estimate (`ceil(len / 4) * 3` bytes); returns the decoded length.
pub(crate) fn b64_decode_slice(s: &str, out: &mut [u8], part: Part) -> Result<usize, Error> {
    URL_SAFE_NO_PAD
        .decode_slice(s, out)
        .map_err(|_| Error::InvalidBase64(part))
}

/// Decodes and parses the protected header. Rejects `none` in any spelling, unknown
/// algorithms, `crit`, key-carrying parameters and duplicate members.
pub(crate) fn parse_header(b64: &str) -> Result<Header, Error> {
    // Small headers decode on the stack; the buffer is kept small because it is zeroed on
    // every call.
    let mut stack = [0u8; 256];
    let heap;
    let bytes: &[u8] = if b64.len() <= 340 {
        let n = URL_SAFE_NO_PAD
            .decode_slice(b64, &mut stack)
            .map_err(|_| Error::InvalidBase64(Part::Header))?;
        &stack[..n]
    } else {
        heap = b64_decode(b64, Part::Header)?;
        &heap
    };
    parse_header_json(bytes)
}

/// Parses protected-header JSON (see [`parse_header`]).
pub(crate) fn parse_header_json(bytes: &[u8]) -> Result<Header, Error> {
    let mut header = Header::default();
    let mut alg_err: Option<Error> = None;
    let bad = |what: &str| Error::InvalidJson {
        part: Part::Header,
        reason: format!("{what} must be a string"),
    };
    json::scan_object(bytes, Part::Header, HEADER_MAX_DEPTH, |name, raw| {
        match name {
            "alg" => {
                let s = json::decode_string_value(raw).ok_or_else(|| bad("alg"))?;
                match s.parse::<Algorithm>() {
                    Ok(a) => header.alg = Some(a),
                    // Remember, but finish the scan so that a duplicate `alg` is still found.
                    Err(e) => alg_err = Some(e),
                }
            }
            "typ" => {
                header.typ = Some(
                    json::decode_string_value(raw)
                        .ok_or_else(|| bad("typ"))?
                        .into_owned(),
                )
            }
            "kid" => {
                header.kid = Some(
                    json::decode_string_value(raw)
                        .ok_or_else(|| bad("kid"))?
                        .into_owned(),
                )
            }
            "cty" => {
                header.cty = Some(
                    json::decode_string_value(raw)
                        .ok_or_else(|| bad("cty"))?
                        .into_owned(),
                )
            }
            // RFC 8725 §3.10 / RFC 7515 §4.1.2-4.1.6: the token must never supply or point to
            // its own verification key.
            "jku" => return Err(Error::ForbiddenHeader("jku")),
            "jwk" => return Err(Error::ForbiddenHeader("jwk")),
            "x5u" => return Err(Error::ForbiddenHeader("x5u")),
            "x5c" => return Err(Error::ForbiddenHeader("x5c")),
            // RFC 7797: an unencoded payload changes the signing input; not supported.
            "b64" if raw != "true" => return Err(Error::ForbiddenHeader("b64")),
            // RFC 7515 §4.1.11: we implement no extensions, so any `crit` must be refused.
            "crit" => {
                let mut first = None;
                let shape = json::for_each_string(raw, |s| {
                    if first.is_none() {
                        first = Some(truncate(&s));
                    }
                });
                return Err(match (shape, first) {
                    (Ok(()), Some(name)) => Error::UnsupportedCritical(name),
                    _ => Error::UnsupportedCritical("(not a non-empty array of names)".into()),
                });
            }
            // Other parameters are ignored (RFC 7515 §4: unless listed in `crit`).
            _ => {}
        }
        Ok(())
    })?;
    if let Some(e) = alg_err {
        return Err(e);
    }
    if header.alg.is_none() {
        return Err(Error::MissingAlgorithm);
    }
    Ok(header)
}

/// The header's algorithm must be the key's (RFC 8725 §3.1, §2.1 algorithm confusion).
pub(crate) fn check_alg(header: &Header, key: &VerifyingKey) -> Result<(), Error> {
    match header.alg {
        Some(a) if a == key.algorithm() => Ok(()),
        Some(a) => Err(Error::AlgorithmMismatch {
            key: key.algorithm(),
            token: a.as_str().to_owned(),
        }),
        None => Err(Error::MissingAlgorithm),
    }
}

/// Decodes the signature segment and checks it over the signing input.
#[inline]
pub(crate) fn check_signature(c: &Compact<'_>, key: &VerifyingKey) -> Result<(), Error> {
    if c.signature.len() > (MAX_SIGNATURE_LEN * 4).div_ceil(3) {
        return Err(Error::InvalidSignature);
    }
    // HMAC, ECDSA and Ed25519 signatures (at most 96 bytes) decode on the stack; RSA ones
    // (256 bytes and up) on the heap, where the allocation is noise next to the RSA operation.
    let mut stack = [0u8; 100];
    let heap;
    let sig: &[u8] = if c.signature.len() <= 128 {
        let n = URL_SAFE_NO_PAD
            .decode_slice(c.signature, &mut stack)
            .map_err(|_| Error::InvalidBase64(Part::Signature))?;
        &stack[..n]
    } else {
        heap = b64_decode(c.signature, Part::Signature)?;
        &heap
    };
    if key.verify_raw(c.signing_input.as_bytes(), sig) {
        Ok(())
    } else {
        Err(Error::InvalidSignature)
    }
}

/// Signs `claims` under `key` (see [`SigningKey::sign`]).
pub(crate) fn sign<T: Serialize + ?Sized>(
    key: &SigningKey,
    header: &Header,
    claims: &T,
) -> Result<String, Error> {
    let ser = |e: serde_json::Error| Error::Serialization(e.to_string());
    let mut h = Vec::with_capacity(96);
    h.extend_from_slice(b"{\"alg\":\"");
    h.extend_from_slice(key.algorithm().as_str().as_bytes());
    h.push(b'"');
    let field = |h: &mut Vec<u8>, name: &[u8], v: &str| -> Result<(), Error> {
        h.extend_from_slice(name);
        serde_json::to_writer(&mut *h, v).map_err(ser)
    };
    if let Some(typ) = &header.typ {
        field(&mut h, b",\"typ\":", typ)?;
    }
    if let Some(kid) = key.kid().or(header.kid.as_deref()) {
        field(&mut h, b",\"kid\":", kid)?;
    }
    if let Some(cty) = &header.cty {
        field(&mut h, b",\"cty\":", cty)?;
    }
    h.push(b'}');
    let payload = serde_json::to_vec(claims).map_err(ser)?;
    if payload.first() != Some(&b'{') {
        return Err(Error::Serialization(
            "claims must serialize to a JSON object (RFC 7519 §7.2)".into(),
        ));
    }
    let sig_len = 4 * 1024 / 3;
    let mut out = String::with_capacity((h.len() + payload.len()) * 4 / 3 + sig_len.min(700) + 4);
    URL_SAFE_NO_PAD.encode_string(&h, &mut out);
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(&payload, &mut out);
    let sig = key.sign_raw(out.as_bytes())?;
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(sig.as_ref(), &mut out);
    Ok(out)
}

/// Signs exact header and payload bytes (see [`SigningKey::sign_bytes`]).
pub(crate) fn sign_bytes(
    key: &SigningKey,
    header_json: &[u8],
    payload: &[u8],
) -> Result<String, Error> {
    let header = parse_header_json(header_json)?;
    if header.alg != Some(key.algorithm()) {
        return Err(Error::AlgorithmMismatch {
            key: key.algorithm(),
            token: header
                .alg
                .map(Algorithm::as_str)
                .unwrap_or_default()
                .to_owned(),
        });
    }
    sign_unchecked(key, header_json, payload)
}

/// Signs exact bytes without looking at them (see [`crate::dangerous::sign_unchecked`]).
pub(crate) fn sign_unchecked(
    key: &SigningKey,
    header_json: &[u8],
    payload: &[u8],
) -> Result<String, Error> {
    let mut out = String::with_capacity((header_json.len() + payload.len()) * 4 / 3 + 700);
    URL_SAFE_NO_PAD.encode_string(header_json, &mut out);
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(payload, &mut out);
    let sig = key.sign_raw(out.as_bytes())?;
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(sig.as_ref(), &mut out);
    Ok(out)
}

/// JWS-only verification: header rules and signature, payload returned as bytes, no claim
/// rules. For tooling (`tessera token verify --signature-only`); services want
/// [`crate::verify`].
pub fn verify_signature_only(
    token: &str,
    key: &VerifyingKey,
    max_len: usize,
) -> Result<(Header, Vec<u8>), Error> {
    let c = split(token, max_len)?;
    let header = parse_header(c.header)?;
    check_alg(&header, key)?;
    check_signature(&c, key)?;
    let payload = b64_decode(c.payload, Part::Payload)?;
    Ok((header, payload))
}
