//! JWK, JWKS, PEM import and export, key rules.

use serde_json::json;
use tessera_jwt::{Algorithm, Error, Jwk, JwkSecret, JwkSet, KeySet, SigningKey, VerifyingKey};

use crate::common::*;

fn jwk(v: serde_json::Value) -> Jwk {
    serde_json::from_value(v).unwrap()
}

#[test]
fn hmac_secrets_shorter_than_the_hash_are_refused() {
    for (alg, min) in [
        (Algorithm::HS256, 32),
        (Algorithm::HS384, 48),
        (Algorithm::HS512, 64),
    ] {
        let short = vec![1u8; min - 1];
        assert_eq!(
            SigningKey::from_hmac_secret(alg, &short).unwrap_err(),
            Error::WeakKey {
                alg,
                len: min - 1,
                min
            }
        );
        assert!(VerifyingKey::from_hmac_secret(alg, &short).is_err());
        assert!(SigningKey::from_hmac_secret(alg, &vec![1u8; min]).is_ok());
        let k = jwk(json!({"kty": "oct", "alg": alg.as_str(), "k": b64(&short)}));
        assert!(VerifyingKey::from_jwk(&k).is_err());
        assert_eq!(
            SigningKey::generate(alg).unwrap().to_secret_bytes().len(),
            min
        );
    }
}

#[test]
fn rsa_keys_below_2048_bits_are_refused() {
    let pem = fixture("rsa1024.pem");
    assert!(SigningKey::from_pem(Algorithm::RS256, &pem).is_err());
    let pubpem = fixture("rsa1024.pub.pem");
    assert!(VerifyingKey::from_pem(Algorithm::RS256, &pubpem).is_err());
}

#[test]
fn pem_imports() {
    for (alg, private, public) in [
        (Algorithm::RS256, "rsa2048.pem", "rsa2048.pub.pem"),
        (Algorithm::PS512, "rsa2048.pkcs1.pem", "rsa2048.pub.pem"),
        (Algorithm::ES256, "p256.pem", "p256.pub.pem"),
        (Algorithm::ES256, "p256.sec1.pem", "p256.pub.pem"),
        (Algorithm::EdDSA, "ed25519.pem", "ed25519.pub.pem"),
    ] {
        let sk = SigningKey::from_pem(alg, &fixture(private)).unwrap();
        let vk = VerifyingKey::from_pem(alg, &fixture(public)).unwrap();
        assert_eq!(sk.thumbprint(), vk.thumbprint(), "{private}");
        assert_eq!(
            vk.to_pem().unwrap(),
            fixture(public),
            "{public} re-exports identically"
        );
        let t = sk.sign(&tessera_jwt::Header::new(), &claims()).unwrap();
        tessera_jwt::verify::<App>(&t, &vk, &policy()).unwrap();
        // A private PEM also yields the verifying key.
        let vk2 = VerifyingKey::from_pem(alg, &fixture(private)).unwrap();
        assert_eq!(vk2.thumbprint(), vk.thumbprint());
    }
    // Wrong family or curve for the algorithm.
    assert!(SigningKey::from_pem(Algorithm::ES384, &fixture("p256.pem")).is_err());
    assert!(SigningKey::from_pem(Algorithm::RS256, &fixture("p256.pem")).is_err());
    assert!(SigningKey::from_pem(Algorithm::ES256, &fixture("ed25519.pem")).is_err());
    assert!(SigningKey::from_pem(Algorithm::ES256, &fixture("p521.pem")).is_err());
    assert!(VerifyingKey::from_pem(Algorithm::EdDSA, &fixture("p256.pub.pem")).is_err());
    assert!(VerifyingKey::from_pem(Algorithm::HS256, &fixture("p256.pub.pem")).is_err());
    for junk in [
        "",
        "-----BEGIN PUBLIC KEY-----\n!!\n-----END PUBLIC KEY-----",
        "garbage",
    ] {
        assert!(VerifyingKey::from_pem(Algorithm::ES256, junk).is_err());
        assert!(SigningKey::from_pem(Algorithm::ES256, junk).is_err());
    }
}

#[test]
fn jwk_algorithm_rules() {
    let ec = SigningKey::generate(Algorithm::ES384)
        .unwrap()
        .verifying_key()
        .to_jwk();
    let mut no_alg = ec.clone();
    no_alg.alg = None;
    assert_eq!(
        VerifyingKey::from_jwk(&no_alg).unwrap().algorithm(),
        Algorithm::ES384
    );
    let mut wrong = ec.clone();
    wrong.alg = Some("ES256".into());
    assert!(
        VerifyingKey::from_jwk(&wrong).is_err(),
        "alg contradicts crv"
    );
    wrong.alg = Some("none".into());
    assert!(VerifyingKey::from_jwk(&wrong).is_err());

    let rsa = SigningKey::generate(Algorithm::RS256)
        .unwrap()
        .verifying_key()
        .to_jwk();
    let mut no_alg = rsa.clone();
    no_alg.alg = None;
    assert!(VerifyingKey::from_jwk(&no_alg).is_err(), "RSA needs alg");
    let mut hs = rsa.clone();
    hs.alg = Some("HS256".into());
    assert!(
        VerifyingKey::from_jwk(&hs).is_err(),
        "RSA key cannot be HMAC"
    );
    let mut ps = rsa.clone();
    ps.alg = Some("PS256".into());
    assert_eq!(
        VerifyingKey::from_jwk(&ps).unwrap().algorithm(),
        Algorithm::PS256
    );

    let mut enc = rsa.clone();
    enc.use_ = Some("enc".into());
    assert!(VerifyingKey::from_jwk(&enc).is_err());

    let okp = SigningKey::generate(Algorithm::EdDSA)
        .unwrap()
        .verifying_key()
        .to_jwk();
    let mut no_alg = okp.clone();
    no_alg.alg = None;
    assert_eq!(
        VerifyingKey::from_jwk(&no_alg).unwrap().algorithm(),
        Algorithm::EdDSA
    );
    let mut x448 = okp.clone();
    x448.crv = Some("Ed448".into());
    assert!(VerifyingKey::from_jwk(&x448).is_err());

    let oct = jwk(json!({"kty": "oct", "k": b64(&[1; 32])}));
    assert!(VerifyingKey::from_jwk(&oct).is_err(), "oct needs alg");
}

#[test]
fn jwk_members_must_be_canonical() {
    let ec = SigningKey::generate(Algorithm::ES256)
        .unwrap()
        .verifying_key()
        .to_jwk();
    for bad_x in [
        format!("{}=", ec.x.as_deref().unwrap()),
        ec.x.as_deref().unwrap().replace('-', "+").replace('_', "/"),
        String::new(),
        "AAAA".into(),
    ] {
        let mut j = ec.clone();
        j.x = Some(bad_x.clone());
        if bad_x == *ec.x.as_deref().unwrap() {
            continue;
        }
        assert!(VerifyingKey::from_jwk(&j).is_err(), "{bad_x}");
    }
    // A point that is not on the curve.
    let mut j = ec.clone();
    j.y = j.x.clone();
    assert!(VerifyingKey::from_jwk(&j).is_err());
    // Inconsistent private parts.
    let sk = SigningKey::generate(Algorithm::ES256).unwrap().to_jwk();
    let mut mixed = sk.clone();
    mixed.x = ec.x.clone();
    mixed.y = ec.y.clone();
    assert!(SigningKey::from_jwk(&mixed).is_err());
    let ed = SigningKey::generate(Algorithm::EdDSA).unwrap().to_jwk();
    let mut mixed = ed.clone();
    mixed.x = SigningKey::generate(Algorithm::EdDSA).unwrap().to_jwk().x;
    assert!(SigningKey::from_jwk(&mixed).is_err());
    let rsa = SigningKey::generate(Algorithm::RS256).unwrap().to_jwk();
    let mut mixed = rsa.clone();
    mixed.d = SigningKey::generate(Algorithm::RS256).unwrap().to_jwk().d;
    assert!(SigningKey::from_jwk(&mixed).is_err());
    // A public JWK is not a signing key.
    assert!(SigningKey::from_jwk(&rsa.to_public()).is_err());
}

#[test]
fn key_sets_refuse_duplicate_kids() {
    let a = SigningKey::generate(Algorithm::EdDSA)
        .unwrap()
        .with_kid("k");
    let b = SigningKey::generate(Algorithm::ES256)
        .unwrap()
        .with_kid("k");
    assert_eq!(
        KeySet::from_keys([a.verifying_key(), b.verifying_key()]).unwrap_err(),
        Error::DuplicateKid("k".into())
    );
    let set = JwkSet {
        keys: vec![a.verifying_key().to_jwk(), b.verifying_key().to_jwk()],
    };
    assert!(matches!(
        KeySet::from_jwks(&set),
        Err(Error::DuplicateKid(_))
    ));
    // Two keys without kid are just as ambiguous.
    let c = SigningKey::generate(Algorithm::EdDSA).unwrap();
    let d = SigningKey::generate(Algorithm::EdDSA).unwrap();
    assert!(KeySet::from_keys([c.verifying_key(), d.verifying_key()]).is_err());
    // One key without kid is fine, and selected for tokens without kid.
    let set = KeySet::from_keys([c.verifying_key()]).unwrap();
    let t = c.sign(&tessera_jwt::Header::new(), &claims()).unwrap();
    tessera_jwt::verify_with_keys::<App>(&t, &set, &policy()).unwrap();
    assert!(KeySet::new().is_empty());
    assert!(matches!(
        tessera_jwt::verify_with_keys::<App>(&t, &KeySet::new(), &policy()),
        Err(Error::UnknownKid(_))
    ));
}

#[test]
fn jwks_import_skips_what_it_cannot_use() {
    let good = SigningKey::generate(Algorithm::RS256)
        .unwrap()
        .with_kid("sig");
    let json = json!({"keys": [
        good.verifying_key().to_jwk(),
        {"kty": "RSA", "kid": "enc", "use": "enc", "alg": "RSA-OAEP", "n": "AQAB", "e": "AQAB"},
        {"kty": "EC", "kid": "p521", "crv": "P-521", "x": "AA", "y": "AA"},
        {"kty": "RSA", "kid": "rsa1_5", "alg": "RSA1_5", "n": "AQAB", "e": "AQAB"},
        {"kty": "unknown", "kid": "u"},
    ]});
    let set = KeySet::from_jwks_json(json.to_string().as_bytes()).unwrap();
    assert_eq!(set.len(), 1);
    assert!(set.get("sig").is_some());
    assert!(set.get("enc").is_none());
    // A malformed key of a supported type is an error, not a silent skip.
    let bad = json!({"keys": [{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}]});
    assert!(KeySet::from_jwks_json(bad.to_string().as_bytes()).is_err());
    // Duplicate members in the document.
    let dup = br#"{"keys":[],"keys":[]}"#;
    assert!(matches!(
        KeySet::from_jwks_json(dup),
        Err(Error::DuplicateMember { .. })
    ));
    let dup = br#"{"keys":[{"kty":"oct","kty":"RSA"}]}"#;
    assert!(matches!(
        JwkSet::from_json(dup),
        Err(Error::DuplicateMember { .. })
    ));
    assert!(KeySet::from_jwks_json(b"[]").is_err());
    assert!(KeySet::from_jwks_json(b"{}").is_err());
}

#[test]
fn jwks_round_trip_and_thumbprints_as_kids() {
    let keys: Vec<VerifyingKey> = [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA]
        .iter()
        .map(|a| {
            let k = SigningKey::generate(*a).unwrap();
            let tp = k.thumbprint();
            k.with_kid(tp).verifying_key()
        })
        .collect();
    let set = KeySet::from_keys(keys.clone()).unwrap();
    let doc = serde_json::to_string(&set.to_jwks()).unwrap();
    assert!(!doc.contains("\"d\""));
    let back = KeySet::from_jwks_json(doc.as_bytes()).unwrap();
    for k in &keys {
        let kid = k.kid().unwrap();
        let got = back.get(kid).unwrap();
        assert_eq!(got.thumbprint(), kid);
        assert_eq!(got.algorithm(), k.algorithm());
        let j = got.to_jwk();
        assert_eq!(j.use_.as_deref(), Some("sig"));
        assert_eq!(
            Jwk::from_json(serde_json::to_string(&j).unwrap().as_bytes()).unwrap(),
            j
        );
    }
}

/// The private members of a parsed or exported JWK, as JSON member name → value.
fn private_members(j: &Jwk) -> Vec<(&'static str, String)> {
    [
        ("d", &j.d),
        ("p", &j.p),
        ("q", &j.q),
        ("dp", &j.dp),
        ("dq", &j.dq),
        ("qi", &j.qi),
        ("k", &j.k),
    ]
    .into_iter()
    .filter_map(|(n, v)| v.as_ref().map(|v| (n, v.expose().to_owned())))
    .collect()
}

/// Private JWKs of every kind: exported from generated keys and parsed from JSON text.
fn private_jwks() -> Vec<Jwk> {
    let mut out = Vec::new();
    for alg in Algorithm::ALL {
        let exported = SigningKey::generate(alg).unwrap().with_kid("k").to_jwk();
        let parsed = Jwk::from_json(&serde_json::to_vec(&exported).unwrap()).unwrap();
        assert_eq!(parsed, exported, "{alg}");
        out.push(exported);
        out.push(parsed);
    }
    out
}

#[test]
fn debug_of_a_private_jwk_shows_no_secret() {
    for j in private_jwks() {
        let members = private_members(&j);
        assert!(!members.is_empty(), "{}", j.kty);
        let dbg = format!(
            "{j:?} {:?}",
            JwkSet {
                keys: vec![j.clone()]
            }
        );
        for (name, secret) in &members {
            assert!(!dbg.contains(secret.as_str()), "{name} leaked: {dbg}");
            // Not even a long prefix of it.
            assert!(!dbg.contains(&secret[..16]), "{name} prefix leaked: {dbg}");
            assert!(
                dbg.contains(&format!("{name}: Some(\"<redacted>\")")),
                "{dbg}"
            );
        }
        // The public members still show.
        if let Some(x) = &j.x {
            assert!(dbg.contains(x.as_str()));
        }
        if let Some(secret) = &j.d {
            assert_eq!(format!("{secret:?}"), "<redacted>");
        }
    }
}

#[test]
fn private_jwk_members_zeroize_on_drop() {
    // Compile-time: each private member's type wipes itself when dropped.
    fn zeroizes<T: zeroize::ZeroizeOnDrop>() {}
    fn member<T: zeroize::ZeroizeOnDrop>(_: fn(&Jwk) -> &Option<T>) {}
    zeroizes::<JwkSecret>();
    member(|j| &j.d);
    member(|j| &j.p);
    member(|j| &j.q);
    member(|j| &j.dp);
    member(|j| &j.dq);
    member(|j| &j.qi);
    member(|j| &j.k);
}

#[test]
fn to_public_carries_no_private_member() {
    for j in private_jwks() {
        assert!(j.is_private());
        let public = j.to_public();
        assert!(!public.is_private(), "{}", j.kty);
        assert!(private_members(&public).is_empty());
        let json: serde_json::Value = serde_json::to_value(&public).unwrap();
        for name in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            assert!(json.get(name).is_none(), "{name} in {json}");
        }
        let text = json.to_string();
        for (name, secret) in private_members(&j) {
            assert!(!text.contains(secret.as_str()), "{name} in {text}");
        }
        // Everything public is kept.
        for name in ["kty", "kid", "alg", "use", "crv", "x", "y", "n", "e"] {
            assert_eq!(
                json.get(name),
                serde_json::to_value(&j).unwrap().get(name),
                "{name}"
            );
        }
        if j.kty != "oct" {
            // It imports as the same verifying key, and not as a signing key.
            let vk = VerifyingKey::from_jwk(&public).unwrap();
            assert_eq!(
                vk.thumbprint(),
                SigningKey::from_jwk(&j).unwrap().thumbprint()
            );
            assert!(SigningKey::from_jwk(&public).is_err());
        }
    }
}

#[test]
fn private_members_serialize_as_plain_strings() {
    let j = jwk(json!({"kty": "oct", "alg": "HS256", "k": b64(&[7u8; 32])}));
    assert_eq!(j.k.as_deref(), Some(b64(&[7u8; 32]).as_str()));
    let back = serde_json::to_value(&j).unwrap();
    assert_eq!(back["k"], json!(b64(&[7u8; 32])));
    assert_ne!(j.k, Some(JwkSecret::from(b64(&[8u8; 32]))));
}
