//! Shared helpers.
#![allow(dead_code)] // helpers used by the modules filled in next

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use tessera_jwt::{Audience, Claims, Clock, RegisteredClaims, Validation};

pub const NOW: i64 = 1_700_000_000;
pub const ISS: &str = "https://auth.example";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct App {
    pub roles: Vec<String>,
}

pub fn claims() -> Claims<App> {
    Claims::new(
        RegisteredClaims {
            iss: Some(ISS.into()),
            sub: Some("user-42".into()),
            aud: Some(Audience::One("api".into())),
            exp: Some(NOW + 600),
            nbf: Some(NOW),
            iat: Some(NOW),
            jti: Some("jti-1".into()),
        },
        App {
            roles: vec!["admin".into(), "user".into()],
        },
    )
}

pub fn policy() -> Validation {
    Validation::new()
        .issuer(ISS)
        .audience(&["api"])
        .clock(Clock::Fixed(NOW + 1))
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn unb64(s: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(s).expect("base64url")
}

/// Builds `header.payload.` from raw JSON, for hand-crafted tokens.
pub fn unsigned(header: &str, payload: &str) -> String {
    format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()))
}

pub fn fixture(name: &str) -> String {
    let path = format!("{}/tests/jwt/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}
