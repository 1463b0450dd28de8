//! Shared by the `jwk_parse` fuzz target and its stable-Rust corpus replay
//! (`crates/server/tests/fuzz_replay.rs`): arbitrary bytes as a JWK and as a JWK Set. Parsing
//! and key import must never panic, and an imported key's own JWK must re-import to the same
//! key (same RFC 7638 thumbprint).

use tessera_jwt::{Jwk, JwkSet, KeySet, SigningKey, VerifyingKey};

/// One input.
pub fn run(data: &[u8]) {
    if let Ok(jwk) = Jwk::from_json(data) {
        let _ = jwk.thumbprint();
        if let Ok(k) = VerifyingKey::from_jwk(&jwk) {
            let again = VerifyingKey::from_jwk(&k.to_jwk()).expect("own JWK re-imports");
            assert_eq!(again.thumbprint(), k.thumbprint());
        }
        if let Ok(k) = SigningKey::from_jwk(&jwk) {
            let again = SigningKey::from_jwk(&k.to_jwk()).expect("own private JWK re-imports");
            assert_eq!(again.thumbprint(), k.thumbprint());
        }
    }
    if let Ok(set) = JwkSet::from_json(data) {
        let _ = KeySet::from_jwks(&set);
    }
    let _ = KeySet::from_jwks_json(data);
}
