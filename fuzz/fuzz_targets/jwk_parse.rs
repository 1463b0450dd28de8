//! Arbitrary bytes as a JWK and as a JWK Set: parsing and key import must never panic, and an
//! imported key's JWK must re-import to the same key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_jwt::{Jwk, JwkSet, KeySet, SigningKey, VerifyingKey};

fuzz_target!(|data: &[u8]| {
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
});
