//! Published vectors: RFC 7515 appendix A, RFC 7520 §4, RFC 8037 appendix A, RFC 7638 §3.1.
//! Deterministic algorithms (HMAC, RSA PKCS#1 v1.5, Ed25519) are reproduced byte for byte.

use serde_json::Value;
use tessera_jwt::{
    verify, verify_signature_only, Algorithm, Clock, Error, Jwk, SigningKey, Validation,
    VerifyingKey,
};

use crate::common::*;

fn load(name: &str) -> Value {
    serde_json::from_str(&fixture(name)).unwrap()
}

fn jwk(v: &Value) -> Jwk {
    serde_json::from_value(v.clone()).unwrap()
}

/// The RFC 7515 examples carry `iss` and an `exp` in March 2011 but no `aud`.
fn rfc7515_policy() -> Validation {
    Validation::new()
        .issuer("joe")
        .without_required(&["aud"])
        .clock(Clock::Fixed(1_300_819_000))
}

/// Re-signs the exact header and payload bytes of `token` and expects the same token.
fn reproduce(key: &SigningKey, token: &str) {
    let mut parts = token.split('.');
    let header = unb64(parts.next().unwrap());
    let payload = unb64(parts.next().unwrap());
    assert_eq!(key.sign_bytes(&header, &payload).unwrap(), token);
}

#[test]
fn rfc7515_a1_hs256_verifies_and_reproduces() {
    let f = load("rfc7515_a1.json");
    let token = f["token"].as_str().unwrap();
    let key = VerifyingKey::from_jwk(&jwk(&f["jwk"])).unwrap();
    let v = verify::<Value>(token, &key, &rfc7515_policy()).unwrap();
    assert_eq!(v.claims().registered.exp, Some(1_300_819_380));
    assert_eq!(v.claims().custom["http://example.com/is_root"], true);
    assert_eq!(v.header().typ.as_deref(), Some("JWT"));
    reproduce(&SigningKey::from_jwk(&jwk(&f["jwk"])).unwrap(), token);
    // And it is expired today.
    let today = rfc7515_policy().clock(Clock::System);
    assert!(matches!(
        verify::<Value>(token, &key, &today),
        Err(Error::Expired {
            exp: 1_300_819_380,
            ..
        })
    ));
}

#[test]
fn rfc7515_a2_rs256_verifies_and_reproduces() {
    let f = load("rfc7515_a2.json");
    let token = f["token"].as_str().unwrap();
    let private = jwk(&f["jwk"]);
    let key = VerifyingKey::from_jwk(&private.to_public()).unwrap();
    assert_eq!(key.algorithm(), Algorithm::RS256);
    verify::<Value>(token, &key, &rfc7515_policy()).unwrap();
    let signer = SigningKey::from_jwk(&private).unwrap();
    reproduce(&signer, token);
    // The private JWK round-trips member for member.
    assert_eq!(signer.to_jwk().d, private.d);
    assert_eq!(signer.to_jwk().qi, private.qi);
}

#[test]
fn rfc7515_a3_es256_verifies() {
    let f = load("rfc7515_a3.json");
    let token = f["token"].as_str().unwrap();
    let private = jwk(&f["jwk"]);
    let key = VerifyingKey::from_jwk(&private.to_public()).unwrap();
    assert_eq!(key.algorithm(), Algorithm::ES256, "inferred from P-256");
    verify::<Value>(token, &key, &rfc7515_policy()).unwrap();
    // ECDSA is randomized: check that our signature over the same input verifies instead.
    let signer = SigningKey::from_jwk(&private).unwrap();
    let mut parts = token.split('.');
    let (h, p) = (unb64(parts.next().unwrap()), unb64(parts.next().unwrap()));
    let ours = signer.sign_bytes(&h, &p).unwrap();
    assert_ne!(ours, token);
    verify::<Value>(&ours, &key, &rfc7515_policy()).unwrap();
}

#[test]
fn rfc7515_a5_unsecured_is_rejected() {
    let f = load("rfc7515_a5.json");
    let token = f["token"].as_str().unwrap();
    for alg in Algorithm::ALL {
        let key = SigningKey::generate(alg).unwrap().verifying_key();
        assert_eq!(
            verify::<Value>(token, &key, &rfc7515_policy()).unwrap_err(),
            Error::UnsupportedAlgorithm("none".into()),
            "{alg}"
        );
        assert!(verify_signature_only(token, &key, 8192).is_err());
    }
}

#[test]
fn rfc7520_4_1_rs256_verifies_and_reproduces() {
    let f = load("rfc7520.json");
    let mut private = jwk(&f["rsa_private_jwk"]);
    private.alg = Some("RS256".into());
    let key = VerifyingKey::from_jwk(&private.to_public()).unwrap();
    let token = f["4.1"].as_str().unwrap();
    let (header, payload) = verify_signature_only(token, &key, 8192).unwrap();
    assert_eq!(
        header.kid.as_deref(),
        Some("bilbo.baggins@hobbiton.example")
    );
    assert_eq!(payload, unb64(f["payload_b64"].as_str().unwrap()));
    assert!(String::from_utf8(payload)
        .unwrap()
        .starts_with("It’s a dangerous business"));
    reproduce(&SigningKey::from_jwk(&private).unwrap(), token);
}

#[test]
fn rfc7520_4_2_ps384_verifies() {
    let f = load("rfc7520.json");
    let mut public = jwk(&f["rsa_private_jwk"]).to_public();
    public.alg = Some("PS384".into());
    let key = VerifyingKey::from_jwk(&public).unwrap();
    verify_signature_only(f["4.2"].as_str().unwrap(), &key, 8192).unwrap();
    // The same key bound to RS256 refuses the PS384 token.
    public.alg = Some("RS256".into());
    let rs = VerifyingKey::from_jwk(&public).unwrap();
    assert!(matches!(
        verify_signature_only(f["4.2"].as_str().unwrap(), &rs, 8192),
        Err(Error::AlgorithmMismatch { .. })
    ));
}

#[test]
fn rfc7520_4_3_es512_is_unsupported() {
    let f = load("rfc7520.json");
    // P-521 keys are not implemented: refused on import, skipped in a key set ...
    assert!(VerifyingKey::from_jwk(&jwk(&f["p521_public_jwk"])).is_err());
    let set = serde_json::json!({"keys": [f["p521_public_jwk"], f["oct_jwk"]]});
    let keys = tessera_jwt::KeySet::from_jwks_json(set.to_string().as_bytes()).unwrap();
    assert_eq!(keys.len(), 1);
    // ... and the token's algorithm is unsupported.
    let key = VerifyingKey::from_jwk(&jwk(&f["oct_jwk"])).unwrap();
    assert_eq!(
        verify_signature_only(f["4.3"].as_str().unwrap(), &key, 8192).unwrap_err(),
        Error::UnsupportedAlgorithm("ES512".into())
    );
}

#[test]
fn rfc7520_4_4_hs256_verifies_and_reproduces() {
    let f = load("rfc7520.json");
    let oct = jwk(&f["oct_jwk"]);
    let key = VerifyingKey::from_jwk(&oct).unwrap();
    assert_eq!(key.kid(), Some("018c0ae5-4d9b-471b-bfd6-eef314bc7037"));
    let token = f["4.4"].as_str().unwrap();
    verify_signature_only(token, &key, 8192).unwrap();
    reproduce(&SigningKey::from_jwk(&oct).unwrap(), token);
}

#[test]
fn rfc8037_a4_ed25519_reproduces_byte_for_byte() {
    let f = load("rfc8037.json");
    let private = jwk(&f["jwk"]);
    let signer = SigningKey::from_jwk(&private).unwrap();
    assert_eq!(signer.algorithm(), Algorithm::EdDSA);
    let token = f["token"].as_str().unwrap();
    reproduce(&signer, token);
    let key = VerifyingKey::from_jwk(&private.to_public()).unwrap();
    let (_, payload) = verify_signature_only(token, &key, 8192).unwrap();
    assert_eq!(payload, b"Example of Ed25519 signing");
    // RFC 8037 A.3: the thumbprint of the OKP key.
    assert_eq!(
        private.thumbprint().unwrap(),
        f["thumbprint"].as_str().unwrap()
    );
    assert_eq!(key.thumbprint(), f["thumbprint"].as_str().unwrap());
}

#[test]
fn rfc7638_3_1_thumbprint() {
    let f = load("rfc7638.json");
    let j = jwk(&f["jwk"]);
    let expected = f["thumbprint"].as_str().unwrap();
    assert_eq!(j.thumbprint().unwrap(), expected);
    // Optional members (alg, kid, use) do not change it.
    let key = VerifyingKey::from_jwk(&j).unwrap();
    assert_eq!(key.thumbprint(), expected);
    assert_eq!(key.to_jwk().thumbprint().unwrap(), expected);
}
