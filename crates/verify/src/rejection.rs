//! RFC 6750 rejections: the one place verification failures become HTTP responses.

use std::borrow::Cow;

use axum_core::body::Body;
use axum_core::response::{IntoResponse, Response};
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::StatusCode;

use crate::VerifyError;

/// What kind of rejection this is; decides status, `error` code and challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RejectionKind {
    /// No bearer token was sent: `401` with a bare `Bearer` challenge (RFC 6750 §3.1: "the
    /// resource server SHOULD NOT include an error code").
    MissingToken,
    /// The request carried a malformed `Authorization` header: `400 invalid_request`.
    InvalidRequest,
    /// The token is invalid, expired or revoked: `401 invalid_token`.
    InvalidToken,
    /// The token is valid but lacks a role or scope: `403 insufficient_scope`.
    InsufficientScope,
    /// The verifier cannot currently vouch for any token (fail-closed policy with a stale
    /// revocation feed): `503 temporarily_unavailable`.
    Unavailable,
    /// The application did not make a `Verifier` available to the extractor: `500`.
    Misconfigured,
}

/// A request that authentication or authorization turned away.
///
/// Implements [`IntoResponse`]: status per [`RejectionKind`], an RFC 6750 §3
/// `WWW-Authenticate: Bearer ...` challenge, and an RFC 6749 §5.2 JSON body
/// `{"error", "error_description"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRejection {
    kind: RejectionKind,
    description: Cow<'static, str>,
}

impl AuthRejection {
    /// No token was presented.
    pub fn missing_token() -> Self {
        Self {
            kind: RejectionKind::MissingToken,
            description: Cow::Borrowed("An access token is required"),
        }
    }

    /// The `Authorization` header is malformed.
    pub fn invalid_request(description: &'static str) -> Self {
        Self {
            kind: RejectionKind::InvalidRequest,
            description: Cow::Borrowed(description),
        }
    }

    /// The caller lacks `role`.
    pub fn insufficient_role(role: &str) -> Self {
        Self {
            kind: RejectionKind::InsufficientScope,
            description: Cow::Owned(format!("The role {} is required", sanitize(role))),
        }
    }

    /// The caller lacks `scope`.
    pub fn insufficient_scope(scope: &str) -> Self {
        Self {
            kind: RejectionKind::InsufficientScope,
            description: Cow::Owned(format!("The scope {} is required", sanitize(scope))),
        }
    }

    pub(crate) fn misconfigured() -> Self {
        Self {
            kind: RejectionKind::Misconfigured,
            description: Cow::Borrowed("Authentication is not configured"),
        }
    }

    /// The kind of rejection.
    pub fn kind(&self) -> RejectionKind {
        self.kind
    }

    /// The HTTP status it maps to.
    pub fn status(&self) -> StatusCode {
        match self.kind {
            RejectionKind::MissingToken | RejectionKind::InvalidToken => StatusCode::UNAUTHORIZED,
            RejectionKind::InvalidRequest => StatusCode::BAD_REQUEST,
            RejectionKind::InsufficientScope => StatusCode::FORBIDDEN,
            RejectionKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            RejectionKind::Misconfigured => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The RFC 6749/6750 `error` code.
    pub fn error_code(&self) -> &'static str {
        match self.kind {
            // RFC 6750 §3.1 has no code for "no token"; the body still needs one.
            RejectionKind::MissingToken => "invalid_token",
            RejectionKind::InvalidRequest => "invalid_request",
            RejectionKind::InvalidToken => "invalid_token",
            RejectionKind::InsufficientScope => "insufficient_scope",
            RejectionKind::Unavailable => "temporarily_unavailable",
            RejectionKind::Misconfigured => "server_error",
        }
    }

    /// The human-readable `error_description`.
    pub fn description(&self) -> &str {
        &self.description
    }

    fn challenge(&self) -> Option<String> {
        match self.kind {
            RejectionKind::MissingToken => Some("Bearer".to_owned()),
            RejectionKind::InvalidRequest
            | RejectionKind::InvalidToken
            | RejectionKind::InsufficientScope => Some(format!(
                "Bearer error=\"{}\", error_description=\"{}\"",
                self.error_code(),
                self.description
            )),
            RejectionKind::Unavailable | RejectionKind::Misconfigured => None,
        }
    }
}

/// RFC 6750 §3: `error_description` is limited to %x20-21 / %x23-5B / %x5D-7E, so it can sit
/// inside a quoted-string without escaping. Anything else becomes `?`.
fn sanitize(s: &str) -> String {
    s.chars()
        .take(64)
        .map(|c| {
            if (' '..='~').contains(&c) && c != '"' && c != '\\' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

impl From<VerifyError> for AuthRejection {
    fn from(e: VerifyError) -> Self {
        let (kind, description) = match e {
            VerifyError::Expired => (RejectionKind::InvalidToken, "The access token expired"),
            VerifyError::NotYetValid => (
                RejectionKind::InvalidToken,
                "The access token is not yet valid",
            ),
            VerifyError::Revoked(_) => (
                RejectionKind::InvalidToken,
                "The access token has been revoked",
            ),
            VerifyError::UnknownKey => (
                RejectionKind::InvalidToken,
                "The access token is signed by an unknown key",
            ),
            VerifyError::FeedStale { .. } | VerifyError::FeedDesynced => (
                RejectionKind::Unavailable,
                "Token revocation state is unavailable; retry later",
            ),
            // The core's detail (which claim, which header) helps attackers more than callers;
            // it is logged at debug level by the verifier instead.
            VerifyError::Invalid(_) => (RejectionKind::InvalidToken, "The access token is invalid"),
        };
        Self {
            kind,
            description: Cow::Borrowed(description),
        }
    }
}

impl std::fmt::Display for AuthRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error_code(), self.description)
    }
}

impl std::error::Error for AuthRejection {}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "error": self.error_code(),
            "error_description": self.description(),
        })
        .to_string();
        let mut res = Response::new(Body::from(body));
        *res.status_mut() = self.status();
        let h = res.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(c) = self.challenge() {
            if let Ok(v) = HeaderValue::from_str(&c) {
                h.insert(WWW_AUTHENTICATE, v);
            }
        }
        if self.kind == RejectionKind::Unavailable {
            h.insert(RETRY_AFTER, HeaderValue::from_static("5"));
        }
        res
    }
}

/// Whether every byte is a b64token character. Branch-free within 32-byte blocks so that it
/// compiles to vector compares: a token is ~600 bytes and this runs on every request (a
/// table lookup per byte with an early exit cost ~6 instructions a byte).
fn is_b64token(bytes: &[u8]) -> bool {
    fn ok(c: u8) -> bool {
        // `| 0x20` folds A-Z onto a-z and nothing else onto a-z.
        ((c | 0x20).wrapping_sub(b'a') < 26)
            | (c.wrapping_sub(b'0') < 10)
            | (c == b'-')
            | (c == b'.')
            | (c == b'_')
            | (c == b'~')
            | (c == b'+')
            | (c == b'/')
    }
    let blocks = bytes.chunks_exact(32);
    let rest = blocks.remainder();
    blocks
        .into_iter()
        .all(|block| block.iter().fold(true, |all, &c| all & ok(c)))
        && rest.iter().all(|&c| ok(c))
}

/// Extracts the bearer token of a request (RFC 6750 §2.1).
///
/// `Ok(None)` when there is no `Authorization` header or it uses another scheme; an error when
/// the header is present but malformed or repeated.
pub fn bearer_token(headers: &http::HeaderMap) -> Result<Option<&str>, AuthRejection> {
    match bearer_bytes(headers)? {
        Some(token) => checked_token(token).map(Some),
        None => Ok(None),
    }
}

/// [`bearer_token`] up to the token's character set: the scheme is parsed and the spaces
/// around the token trimmed, but its bytes are not checked yet ([`checked_token`] does). The
/// layer looks such bytes up in the verification cache first: a hit is byte-for-byte a token
/// that passed every check already, so only a miss needs the scan.
pub(crate) fn bearer_bytes(headers: &http::HeaderMap) -> Result<Option<&[u8]>, AuthRejection> {
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AuthRejection::invalid_request(
            "Multiple Authorization headers",
        ));
    }
    // Bytes, not `to_str`: the b64token check admits ASCII only, so one pass over the token
    // validates it (a token is ~600 bytes).
    let value = value.as_bytes();
    let Some(sp) = value.iter().position(|&b| b == b' ') else {
        return if value.eq_ignore_ascii_case(b"bearer") {
            Err(AuthRejection::invalid_request("Empty bearer token"))
        } else if value
            .iter()
            .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
        {
            Ok(None)
        } else {
            Err(AuthRejection::invalid_request(
                "Malformed Authorization header",
            ))
        };
    };
    let (scheme, rest) = (&value[..sp], &value[sp + 1..]);
    // The auth-scheme is case-insensitive (RFC 9110 §11.1).
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return if value
            .iter()
            .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
        {
            Ok(None)
        } else {
            Err(AuthRejection::invalid_request(
                "Malformed Authorization header",
            ))
        };
    }
    let lead = rest.iter().take_while(|&&b| b == b' ').count();
    let token = &rest[lead..];
    let token = &token[..token.len() - token.iter().rev().take_while(|&&b| b == b' ').count()];
    Ok(Some(token))
}

/// The rest of [`bearer_token`]: the token's bytes must be a `b64token`.
pub(crate) fn checked_token(token: &[u8]) -> Result<&str, AuthRejection> {
    // b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=" (RFC 6750 §2.1)
    let body_len = token.len() - token.iter().rev().take_while(|&&b| b == b'=').count();
    if body_len == 0 || !is_b64token(&token[..body_len]) {
        return Err(AuthRejection::invalid_request("Malformed bearer token"));
    }
    // All ASCII by now.
    std::str::from_utf8(token).map_err(|_| AuthRejection::invalid_request("Malformed bearer token"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference b64token character set, one table entry per byte.
    const B64TOKEN: [bool; 256] = {
        let mut t = [false; 256];
        let mut b = 0;
        while b < 256 {
            let c = b as u8;
            t[b] =
                c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
            b += 1;
        }
        t
    };

    fn headers(values: &[&str]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for v in values {
            h.append(
                http::header::AUTHORIZATION,
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn b64token_check_matches_the_table() {
        for b in 0..=255u8 {
            assert_eq!(is_b64token(&[b]), B64TOKEN[usize::from(b)], "byte {b:#04x}");
            // Every position of a block and of the remainder.
            for len in [31usize, 32, 33, 64, 95] {
                for pos in [0, len / 2, len - 1] {
                    let mut v = vec![b'a'; len];
                    v[pos] = b;
                    assert_eq!(
                        is_b64token(&v),
                        B64TOKEN[usize::from(b)],
                        "{b:#04x} at {pos}/{len}"
                    );
                }
            }
        }
    }

    #[test]
    fn bearer_extraction() {
        assert_eq!(bearer_token(&headers(&[])), Ok(None));
        assert_eq!(bearer_token(&headers(&["Basic abc"])), Ok(None));
        assert_eq!(bearer_token(&headers(&["Bearer a.b.c"])), Ok(Some("a.b.c")));
        assert_eq!(
            bearer_token(&headers(&["bearer  a.b-_c"])),
            Ok(Some("a.b-_c"))
        );
        for bad in [
            "Bearer",
            "Bearer ",
            "Bearer a b",
            "Bearer a\"b",
            "Bearer ===",
        ] {
            assert_eq!(
                bearer_token(&headers(&[bad])).map_err(|e| e.kind()),
                Err(RejectionKind::InvalidRequest),
                "{bad}"
            );
        }
        assert!(bearer_token(&headers(&["Bearer a", "Bearer b"])).is_err());
        assert_eq!(bearer_token(&headers(&["Bearer a.b= "])), Ok(Some("a.b=")));
        assert_eq!(bearer_token(&headers(&["Other x\ty"])), Ok(None));
        for bad in ["Bearer \ta", "Bearer a\t", "Bearer a=b", "Bearer a.b==="] {
            let want = if bad == "Bearer a.b===" {
                Ok(Some("a.b==="))
            } else {
                Err(RejectionKind::InvalidRequest)
            };
            assert_eq!(
                bearer_token(&headers(&[bad])).map_err(|e| e.kind()),
                want,
                "{bad:?}"
            );
        }
        // Bytes outside visible ASCII (obs-text), whatever the scheme.
        for bad in [&b"Bearer a\xe9b"[..], b"Basic \xe9", b"\xe9"] {
            let mut h = http::HeaderMap::new();
            h.insert(
                http::header::AUTHORIZATION,
                HeaderValue::from_bytes(bad).unwrap(),
            );
            assert_eq!(
                bearer_token(&h).map_err(|e| e.kind()),
                Err(RejectionKind::InvalidRequest),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn responses_follow_rfc6750() {
        let r = AuthRejection::missing_token().into_response();
        assert_eq!(r.status(), 401);
        assert_eq!(r.headers()[WWW_AUTHENTICATE], "Bearer");
        let r = AuthRejection::from(VerifyError::Expired).into_response();
        assert_eq!(r.status(), 401);
        assert_eq!(
            r.headers()[WWW_AUTHENTICATE],
            "Bearer error=\"invalid_token\", error_description=\"The access token expired\""
        );
        let r = AuthRejection::insufficient_role("ad\"min\n").into_response();
        assert_eq!(r.status(), 403);
        assert_eq!(
            r.headers()[WWW_AUTHENTICATE],
            "Bearer error=\"insufficient_scope\", error_description=\"The role ad?min? is required\""
        );
    }
}
