//! Sign → verify for every algorithm, through every key import and export path.

use tessera_jwt::{
    verify, verify_signature_only, verify_with_keys, Algorithm, Header, KeySet, SigningKey,
    VerifyingKey,
};

use crate::common::*;

#[test]
fn every_algorithm_round_trips() {
    for alg in Algorithm::ALL {
        let key = SigningKey::generate(alg).unwrap().with_kid("k1");
        let token = key.sign(&Header::new().typ("at+jwt"), &claims()).unwrap();
        let v = verify::<App>(&token, &key.verifying_key(), &policy()).unwrap();
        assert_eq!(v.claims(), &claims(), "{alg}");
        assert_eq!(v.header().alg, Some(alg));
        assert_eq!(v.header().kid.as_deref(), Some("k1"));
        assert_eq!(v.header().typ.as_deref(), Some("at+jwt"));
        let (h, payload) = verify_signature_only(&token, &key.verifying_key(), 8192).unwrap();
        assert_eq!(h.alg, Some(alg));
        assert!(payload.starts_with(b"{"));
    }
}

#[test]
fn every_algorithm_survives_export_and_import() {
    for alg in Algorithm::ALL {
        let key = SigningKey::generate(alg).unwrap().with_kid("k");
        let token = key.sign(&Header::new(), &claims()).unwrap();

        // secret bytes (encryption at rest)
        let again = SigningKey::from_secret_bytes(alg, &key.to_secret_bytes()).unwrap();
        assert_eq!(again.thumbprint(), key.thumbprint(), "{alg}");

        // private JWK
        let jwk = key.to_jwk();
        assert_eq!(jwk.alg.as_deref(), Some(alg.as_str()));
        assert_eq!(jwk.kid.as_deref(), Some("k"));
        let again = SigningKey::from_jwk(&jwk).unwrap();
        assert_eq!(again.thumbprint(), key.thumbprint(), "{alg}");
        assert_eq!(again.to_jwk(), jwk, "{alg}");
        let t2 = again.sign(&Header::new(), &claims()).unwrap();
        verify::<App>(&t2, &key.verifying_key(), &policy()).unwrap();

        // public JWK
        let pubjwk = key.verifying_key().to_jwk();
        if !alg.is_hmac() {
            assert!(pubjwk.d.is_none());
            assert_eq!(jwk.to_public(), pubjwk);
        }
        let vk = VerifyingKey::from_jwk(&pubjwk).unwrap();
        assert_eq!(vk.algorithm(), alg);
        assert_eq!(vk.kid(), Some("k"));
        verify::<App>(&token, &vk, &policy()).unwrap();

        // PEM
        if !alg.is_hmac() {
            let pem = key.to_pem().unwrap();
            assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
            let again = SigningKey::from_pem(alg, &pem).unwrap();
            assert_eq!(again.thumbprint(), key.thumbprint());
            let pubpem = key.verifying_key().to_pem().unwrap();
            assert!(pubpem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
            let vk = VerifyingKey::from_pem(alg, &pubpem).unwrap();
            verify::<App>(&token, &vk, &policy()).unwrap();
        } else {
            assert!(key.to_pem().is_err());
        }
    }
}

#[test]
fn key_set_picks_by_kid() {
    let a = SigningKey::generate(Algorithm::EdDSA)
        .unwrap()
        .with_kid("a");
    let b = SigningKey::generate(Algorithm::ES256)
        .unwrap()
        .with_kid("b");
    let set = KeySet::from_keys([a.verifying_key(), b.verifying_key()]).unwrap();
    assert_eq!(set.len(), 2);
    for k in [&a, &b] {
        let t = k.sign(&Header::new(), &claims()).unwrap();
        verify_with_keys::<App>(&t, &set, &policy()).unwrap();
    }
    let json = serde_json::to_vec(&set.to_jwks()).unwrap();
    let again = KeySet::from_jwks_json(&json).unwrap();
    assert_eq!(again.len(), 2);
    let t = b.sign(&Header::new(), &claims()).unwrap();
    verify_with_keys::<App>(&t, &again, &policy()).unwrap();
}

#[test]
fn debug_never_shows_secrets() {
    for alg in Algorithm::ALL {
        let key = SigningKey::generate(alg).unwrap();
        let jwk = key.to_jwk();
        let dbg = format!("{key:?} {:?} {jwk:?}", key.verifying_key());
        for secret in [&jwk.d, &jwk.k, &jwk.p, &jwk.q].into_iter().flatten() {
            assert!(!dbg.contains(secret.expose()), "{alg}: {dbg}");
        }
        assert!(dbg.contains("redacted"));
    }
}
