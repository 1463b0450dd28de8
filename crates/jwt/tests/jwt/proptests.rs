//! Properties: sign → verify round-trips for every algorithm; no input panics a parser; any
//! change to a signed token breaks it.

use std::sync::LazyLock;

use proptest::prelude::*;
use serde_json::Value;
use tessera_jwt::dangerous::decode_unverified;
use tessera_jwt::{
    verify, verify_signature_only, Algorithm, Audience, Claims, Header, Jwk, JwkSecret, JwkSet,
    KeySet, RegisteredClaims, SigningKey, VerifyingKey,
};

use crate::common::*;

/// One key per algorithm, generated once (RSA generation is slow).
static KEYS: LazyLock<Vec<SigningKey>> = LazyLock::new(|| {
    Algorithm::ALL
        .iter()
        .map(|a| SigningKey::generate(*a).unwrap().with_kid(a.as_str()))
        .collect()
});

static KEYSET: LazyLock<KeySet> =
    LazyLock::new(|| KeySet::from_keys(KEYS.iter().map(SigningKey::verifying_key)).unwrap());

fn arb_claims() -> impl Strategy<Value = Claims<App>> {
    (
        ".{0,40}",
        prop::collection::vec(".{0,12}", 0..5),
        prop::option::of(".{0,20}"),
        0i64..=600,
        prop::option::of(0i64..=1_000),
    )
        .prop_map(|(sub, roles, jti, ttl, iat_back)| {
            Claims::new(
                RegisteredClaims {
                    iss: Some(ISS.into()),
                    sub: Some(sub),
                    aud: Some(Audience::Many(vec!["x".into(), "api".into()])),
                    exp: Some(NOW + 1 + ttl),
                    nbf: None,
                    iat: iat_back.map(|b| NOW - b),
                    jti,
                },
                App { roles },
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn sign_verify_round_trips(alg_idx in 0usize..12, c in arb_claims(), typ in prop::option::of("[a-z+/]{1,10}")) {
        let key = &KEYS[alg_idx];
        let header = match &typ { Some(t) => Header::new().typ(t), None => Header::new() };
        let token = key.sign(&header, &c).unwrap();
        let v = verify::<App>(&token, &key.verifying_key(), &policy()).unwrap();
        prop_assert_eq!(v.claims(), &c);
        prop_assert_eq!(&v.header().typ, &typ);
        let v = tessera_jwt::verify_with_keys::<App>(&token, &KEYSET, &policy()).unwrap();
        prop_assert_eq!(v.header().kid.as_deref(), Some(key.algorithm().as_str()));
    }

    #[test]
    fn any_change_breaks_a_token(alg_idx in 0usize..12, pos in any::<prop::sample::Index>(), byte in 0x20u8..0x7f) {
        let key = &KEYS[alg_idx];
        let token = key.sign(&Header::new(), &claims()).unwrap();
        let mut bytes = token.clone().into_bytes();
        let i = pos.index(bytes.len());
        bytes[i] = byte;
        let mutated = String::from_utf8(bytes).unwrap();
        prop_assume!(mutated != token);
        prop_assert!(verify::<App>(&mutated, &key.verifying_key(), &policy()).is_err());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_strings_never_panic(s in ".{0,300}") {
        let _ = verify::<Value>(&s, &KEYS[0].verifying_key(), &policy());
        let _ = tessera_jwt::verify_with_keys::<Value>(&s, &KEYSET, &policy());
        let _ = decode_unverified(&s);
        let _ = s.parse::<Algorithm>();
        let _ = VerifyingKey::from_pem(Algorithm::ES256, &s);
        let _ = SigningKey::from_pem(Algorithm::RS256, &s);
    }

    #[test]
    fn arbitrary_token_shapes_never_panic(
        h in prop::collection::vec(any::<u8>(), 0..80),
        p in prop::collection::vec(any::<u8>(), 0..200),
        sig in prop::collection::vec(any::<u8>(), 0..130),
    ) {
        let token = format!("{}.{}.{}", b64(&h), b64(&p), b64(&sig));
        for k in KEYS.iter() {
            let _ = verify::<Value>(&token, &k.verifying_key(), &policy());
            let _ = verify_signature_only(&token, &k.verifying_key(), 8192);
        }
        let _ = decode_unverified(&token);
    }

    #[test]
    fn json_shaped_garbage_never_panics(
        parts in prop::collection::vec(prop::sample::select(vec![
            "{", "}", "[", "]", ",", ":", "\"alg\"", "\"HS256\"", "\"crit\"", "\"kid\"", "\"aud\"",
            "\"exp\"", "1", "-0", "1e999", "1.5", "null", "true", "\"\\u0000\"", "\"\\ud800\"",
            "\"\\uDC00\\uD800\"", " ", "\"keys\"", "\"kty\"", "\"EC\"", "\"x\"", "\"\\\"\"",
        ]), 0..40),
    ) {
        let json: String = parts.concat();
        let _ = Jwk::from_json(json.as_bytes());
        let _ = JwkSet::from_json(json.as_bytes());
        let _ = KeySet::from_jwks_json(json.as_bytes());
        let key = &KEYS[0];
        if let Ok(t) = tessera_jwt::dangerous::sign_unchecked(key, json.as_bytes(), json.as_bytes()) {
            let _ = verify::<Value>(&t, &key.verifying_key(), &policy());
            let _ = decode_unverified(&t);
        }
    }

    #[test]
    fn arbitrary_jwks_never_panic(
        kty in prop::sample::select(vec!["oct", "RSA", "EC", "OKP", "x"]),
        crv in prop::option::of(prop::sample::select(vec!["P-256", "P-384", "P-521", "Ed25519", "X25519"])),
        alg in prop::option::of(prop::sample::select(vec!["HS256", "RS256", "ES256", "ES384", "EdDSA", "none", "PS512"])),
        members in prop::collection::vec(prop::option::of(prop::collection::vec(any::<u8>(), 0..70)), 9),
    ) {
        let m = |i: usize| members[i].as_ref().map(|b| b64(b));
        let s = |i: usize| m(i).map(JwkSecret::from);
        let j = Jwk {
            kty: kty.into(),
            crv: crv.map(Into::into),
            alg: alg.map(Into::into),
            x: m(0), y: m(1), n: m(2), e: m(3), d: s(4), p: s(5), q: s(6), k: s(7), dp: s(8),
            ..Jwk::default()
        };
        let _ = VerifyingKey::from_jwk(&j);
        let _ = SigningKey::from_jwk(&j);
        let _ = j.thumbprint();
        let _ = KeySet::from_jwks(&JwkSet { keys: vec![j] });
    }
}
