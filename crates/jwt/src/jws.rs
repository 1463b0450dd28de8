//! JWS compact serialization (RFC 7515 §3.1, §7.1): size cap first, then the three segments,
//! then canonical base64url, then strict JSON.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::Serialize;

use crate::error::Part;
use crate::{Algorithm, Error, SigningKey, VerifyingKey};

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
    // One pass over the token with the SIMD `memchr` (core's `find` scans a word at a time,
    // which showed in HS256 profiles): the first dot, the second, and none after it.
    let b = token.as_bytes();
    let first =
        memchr::memchr(b'.', b).ok_or(Error::Malformed("expected three segments, found one"))?;
    let second = first
        + 1
        + memchr::memchr(b'.', &b[first + 1..])
            .ok_or(Error::Malformed("expected three segments, found two"))?;
    if memchr::memchr(b'.', &b[second + 1..]).is_some() {
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
    match parse_plain_header(bytes) {
        Some(header) => Ok(header),
        None => crate::strict::parse_header(bytes, HEADER_MAX_DEPTH),
    }
}

/// The common header shape, parsed with a few lines of code instead of the general strict
/// parser: one flat object whose members are only `alg`, `typ`, `kid` and `cty`, each at most
/// once, each a string of printable ASCII without escapes, `alg` present and supported.
/// Anything else (other members, other value types, escapes, non-ASCII, duplicates, an
/// unsupported `alg`) returns `None` and goes to [`crate::strict::parse_header`], which
/// accepts exactly the same headers with the same result and gives the precise error for the
/// rest (`plain_header_agrees_with_the_strict_parser` checks that). The general parser is
/// large; keeping it off the hot path keeps HS256 verification in the instruction cache.
fn parse_plain_header(b: &[u8]) -> Option<Header> {
    let ws = |mut i: usize| {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = b.get(i) {
            i += 1;
        }
        i
    };
    // A string starting at `i` (the opening quote): its content, and the index after it.
    let plain = |i: usize| -> Option<(&str, usize)> {
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let rest = b.get(i + 1..)?;
        let len = rest.iter().position(|&c| c == b'"')?;
        let content = &rest[..len];
        if !content
            .iter()
            .all(|&c| (0x20..0x7f).contains(&c) && c != b'\\')
        {
            return None;
        }
        Some((std::str::from_utf8(content).ok()?, i + 1 + len + 1))
    };
    let mut i = ws(0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    let mut header = Header::default();
    let mut seen = 0u8;
    i += 1;
    loop {
        let (name, next) = plain(ws(i))?;
        i = ws(next);
        if b.get(i) != Some(&b':') {
            return None;
        }
        let (value, next) = plain(ws(i + 1))?;
        let (bit, slot) = match name {
            "alg" => {
                header.alg = Some(value.parse().ok()?);
                (1, None)
            }
            "typ" => (2, Some(&mut header.typ)),
            "kid" => (4, Some(&mut header.kid)),
            "cty" => (8, Some(&mut header.cty)),
            _ => return None,
        };
        if seen & bit != 0 {
            return None;
        }
        seen |= bit;
        if let Some(slot) = slot {
            *slot = Some(value.to_owned());
        }
        i = ws(next);
        match b.get(i) {
            Some(b',') => i += 1,
            Some(b'}') => break,
            _ => return None,
        }
    }
    if ws(i + 1) != b.len() || header.alg.is_none() {
        return None;
    }
    Some(header)
}

/// The header's algorithm must be the key's (RFC 8725 §3.1, §2.1 algorithm confusion).
pub(crate) fn check_alg(header: &Header, key: &VerifyingKey) -> Result<(), Error> {
    match header.alg {
        Some(a) if a == key.algorithm() => Ok(()),
        found => Err(alg_mismatch(key.algorithm(), found)),
    }
}

#[cold]
fn alg_mismatch(key: Algorithm, found: Option<Algorithm>) -> Error {
    match found {
        Some(a) => Error::AlgorithmMismatch {
            key,
            token: a.as_str().to_owned(),
        },
        None => Error::MissingAlgorithm,
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

#[cfg(test)]
mod tests {
    //! The plain-header fast path must never change a result: for every header, accepted or
    //! not, `parse_header_json` (fast path first) equals the general strict parser.

    use super::*;

    /// Header members, plain and otherwise: every shape the fast path must either take with
    /// the same result or hand over.
    const MEMBERS: &[&str] = &[
        r#""alg":"HS256""#,
        r#""alg":"EdDSA""#,
        r#""alg":"none""#,
        r#""alg":"hs256""#,
        r#""alg":1"#,
        r#""alg":null"#,
        r#""alg":"HS\u0032256""#,
        r#""typ":"at+jwt""#,
        r#""typ":"JWT""#,
        r#""typ":"""#,
        r#""typ":"at\u002bjwt""#,
        r#""typ":"é""#,
        r#""typ":["at+jwt"]"#,
        r#""kid":"k1""#,
        r#""kid":"k\"1""#,
        r#""kid":"k 1/2""#,
        r#""kid":true"#,
        r#""cty":"JWT""#,
        r#""\u0061lg":"HS256""#,
        r#""jku":"https://x""#,
        r#""jwk":{}"#,
        r#""x5u":"u""#,
        r#""x5c":[]"#,
        r#""crit":["exp"]"#,
        r#""crit":[]"#,
        r#""b64":true"#,
        r#""b64":false"#,
        r#""x":{"y":1}"#,
        r#""x":{"y":1,"y":2}"#,
        r#""x":[[[[1]]]]"#,
        r#""x":1.5e3"#,
        r#""typ ":"x""#,
    ];

    const SEPARATORS: &[&str] = &[",", " , ", ",\n", ",\t", ",,", ""];

    fn headers() -> Vec<String> {
        let mut out = Vec::new();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        for _ in 0..20_000 {
            let count = next(5);
            let mut h = String::from(["{", " {", "{ ", "\t{\n"][next(4)]);
            for i in 0..count {
                if i > 0 {
                    h.push_str(
                        SEPARATORS[if next(4) == 0 {
                            next(SEPARATORS.len())
                        } else {
                            0
                        }],
                    );
                }
                let m = MEMBERS[next(MEMBERS.len())];
                // Sometimes space around the colon.
                if next(6) == 0 {
                    h.push_str(&m.replacen(':', " : ", 1));
                } else {
                    h.push_str(m);
                }
            }
            h.push_str(["}", "} ", " }\n", "}x", "},", ""][if next(5) == 0 { next(6) } else { 0 }]);
            out.push(h);
        }
        // The common shapes, exactly.
        out.push(r#"{"alg":"HS256","typ":"at+jwt","kid":"k1"}"#.into());
        out.push(r#"{"alg":"EdDSA"}"#.into());
        out.push(r#"{"typ":"JWT","alg":"RS256"}"#.into());
        out
    }

    #[test]
    fn plain_header_agrees_with_the_strict_parser() {
        let mut fast = 0;
        for h in headers() {
            let strict = crate::strict::parse_header(h.as_bytes(), HEADER_MAX_DEPTH);
            if let Some(plain) = parse_plain_header(h.as_bytes()) {
                fast += 1;
                assert_eq!(Ok(&plain), strict.as_ref(), "{h}");
            }
            assert_eq!(parse_header_json(h.as_bytes()), strict, "{h}");
        }
        // The fast path is actually taken for a good share of the plain headers.
        assert!(fast > 100, "fast path taken {fast} times");
    }
}
