//! One test per attack of RFC 8725 §2 (and the parsing rules of §3 that stop them). Every
//! forged token is as valid as an attacker can make it: signed, unless the point is the
//! signature.

use serde_json::{json, Value};
use tessera_jwt::dangerous::sign_unchecked;
use tessera_jwt::{
    verify, verify_with_keys, Algorithm, Error, Header, KeySet, Part, SigningKey, Validation,
    VerifyingKey,
};

use crate::common::*;

fn claims_json() -> String {
    serde_json::to_string(&claims()).unwrap()
}

fn hs256() -> SigningKey {
    SigningKey::from_hmac_secret(Algorithm::HS256, &[7u8; 32]).unwrap()
}

/// Signs a hand-written header over the standard claims with `key`, bypassing every check.
fn forge(key: &SigningKey, header: &Value) -> String {
    sign_unchecked(key, header.to_string().as_bytes(), claims_json().as_bytes()).unwrap()
}

fn check(token: &str, key: &VerifyingKey) -> Result<(), Error> {
    verify::<App>(token, key, &policy()).map(|_| ())
}

#[test]
fn baseline_forge_helper_makes_valid_tokens() {
    let key = hs256();
    check(&forge(&key, &json!({"alg": "HS256"})), &key.verifying_key()).unwrap();
}

// §2.1 Weak signatures and insufficient signature validation: "alg": "none".
#[test]
fn alg_none_in_every_spelling_is_rejected() {
    let key = hs256();
    let vk = key.verifying_key();
    for none in [
        "none", "None", "NONE", "nOnE", "nONE", "NoNe", " none", "none ",
    ] {
        let header = json!({"alg": none});
        let unsigned = unsigned(&header.to_string(), &claims_json());
        for token in [
            format!("{unsigned}."),
            format!("{unsigned}.{}", b64(b"sig")),
            forge(&key, &header),
        ] {
            assert_eq!(
                check(&token, &vk).unwrap_err(),
                Error::UnsupportedAlgorithm(none.into()),
                "{none:?}"
            );
        }
    }
    assert!("none".parse::<Algorithm>().is_err());
}

// §2.1 Algorithm confusion: an RS256 public key used as an HS256 secret.
#[test]
fn rsa_public_key_as_hmac_secret_is_rejected() {
    let rsa = SigningKey::generate(Algorithm::RS256)
        .unwrap()
        .with_kid("rsa");
    let public = rsa.verifying_key();
    let pem = public.to_pem().unwrap();
    let jwk_json = serde_json::to_string(&public.to_jwk()).unwrap();
    for secret in [pem.as_bytes(), jwk_json.as_bytes()] {
        let forger = SigningKey::from_hmac_secret(Algorithm::HS256, secret).unwrap();
        let token = forge(&forger, &json!({"alg": "HS256", "kid": "rsa"}));
        assert_eq!(
            check(&token, &public).unwrap_err(),
            Error::AlgorithmMismatch {
                key: Algorithm::RS256,
                token: "HS256".into()
            }
        );
        let set = KeySet::from_keys([public.clone()]).unwrap();
        assert!(matches!(
            verify_with_keys::<App>(&token, &set, &policy()),
            Err(Error::AlgorithmMismatch { .. })
        ));
    }
    // And the same key bound to RS256 still takes its own tokens.
    check(&rsa.sign(&Header::new(), &claims()).unwrap(), &public).unwrap();
}

#[test]
fn every_cross_algorithm_token_is_rejected() {
    let keys: Vec<SigningKey> = Algorithm::ALL
        .iter()
        .map(|a| SigningKey::generate(*a).unwrap())
        .collect();
    for signer in &keys {
        let token = signer.sign(&Header::new(), &claims()).unwrap();
        for verifier in &keys {
            let r = check(&token, &verifier.verifying_key());
            if signer.algorithm() == verifier.algorithm() {
                assert_eq!(r, Ok(()), "its own key");
                let other = SigningKey::generate(signer.algorithm()).unwrap();
                let r = check(&token, &other.verifying_key());
                assert_eq!(r, Err(Error::InvalidSignature), "other key, same alg");
            } else {
                assert!(matches!(r, Err(Error::AlgorithmMismatch { .. })));
            }
        }
    }
}

// CVE-2022-21449 "psychic signatures": r = s = 0 (or r = s = n, which is 0 mod n) must never
// verify.
#[test]
fn ecdsa_zero_signature_is_rejected() {
    const N256: &str = "FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551";
    const N384: &str = "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973";
    let hex = |h: &str| -> Vec<u8> {
        (0..h.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
            .collect()
    };
    for (alg, len, n) in [(Algorithm::ES256, 64, N256), (Algorithm::ES384, 96, N384)] {
        let key = SigningKey::generate(alg).unwrap();
        let good = key.sign(&Header::new(), &claims()).unwrap();
        let input = &good[..good.rfind('.').unwrap()];
        let order = hex(n);
        assert_eq!(order.len() * 2, len);
        let r_eq_s_eq_n = [order.clone(), order].concat();
        for sig in [vec![0u8; len], r_eq_s_eq_n, vec![0u8; len / 2], vec![]] {
            let token = format!("{input}.{}", b64(&sig));
            assert_eq!(
                check(&token, &key.verifying_key()).unwrap_err(),
                Error::InvalidSignature,
                "{alg} {} bytes",
                sig.len()
            );
        }
        check(&good, &key.verifying_key()).unwrap();
    }
}

// §2.2 / §3.10: the token must not bring its own key.
#[test]
fn embedded_jwk_is_rejected() {
    let attacker = SigningKey::generate(Algorithm::ES256).unwrap();
    let victim = SigningKey::generate(Algorithm::ES256)
        .unwrap()
        .verifying_key();
    let token = forge(
        &attacker,
        &json!({"alg": "ES256", "jwk": attacker.verifying_key().to_jwk()}),
    );
    assert_eq!(check(&token, &victim), Err(Error::ForbiddenHeader("jwk")));
    // Even with the signer's own key, the header is refused.
    assert_eq!(
        check(&token, &attacker.verifying_key()),
        Err(Error::ForbiddenHeader("jwk"))
    );
}

#[test]
fn jku_x5u_x5c_are_rejected() {
    let key = hs256();
    for (name, value) in [
        ("jku", json!("https://attacker.example/jwks.json")),
        ("x5u", json!("https://attacker.example/cert.pem")),
        ("x5c", json!(["MIIB"])),
    ] {
        let mut header = json!({"alg": "HS256"});
        header[name] = value;
        let err = check(&forge(&key, &header), &key.verifying_key()).unwrap_err();
        assert!(
            matches!(err, Error::ForbiddenHeader(n) if n == name),
            "{name}: {err}"
        );
    }
    // RFC 7797 unencoded payloads change the signing input.
    let err = check(
        &forge(&key, &json!({"alg": "HS256", "b64": false})),
        &key.verifying_key(),
    );
    assert_eq!(err, Err(Error::ForbiddenHeader("b64")));
}

// §2.6-ish: kid is only a lookup key, never a path or a query.
#[test]
fn kid_tricks_find_no_key() {
    let a = SigningKey::generate(Algorithm::EdDSA)
        .unwrap()
        .with_kid("a");
    let b = SigningKey::generate(Algorithm::EdDSA)
        .unwrap()
        .with_kid("b");
    let set = KeySet::from_keys([a.verifying_key(), b.verifying_key()]).unwrap();
    for kid in [
        "../../../../dev/null",
        "/etc/passwd",
        "' OR '1'='1",
        "a' --",
        "a\u{0}",
        "A",
        "",
        "unknown",
    ] {
        let token = forge(&a, &json!({"alg": "EdDSA", "kid": kid}));
        assert_eq!(
            verify_with_keys::<App>(&token, &set, &policy()).unwrap_err(),
            Error::UnknownKid(kid.into()),
            "{kid:?}"
        );
    }
    // No kid with two keys: ambiguous, refused.
    let token = forge(&a, &json!({"alg": "EdDSA"}));
    assert_eq!(
        verify_with_keys::<App>(&token, &set, &policy()).unwrap_err(),
        Error::MissingKid
    );
    // No kid with ONE named key: still refused, a named key set has no default key
    // (DESIGN §3: `kid` must name a known key).
    let single = KeySet::from_keys([a.verifying_key()]).unwrap();
    assert_eq!(
        verify_with_keys::<App>(&token, &single, &policy()).unwrap_err(),
        Error::MissingKid
    );
    // A set of one unnamed key (a shared secret) has nothing to name: accepted.
    let unnamed = SigningKey::generate(Algorithm::EdDSA).unwrap();
    let unnamed_set = KeySet::from_keys([unnamed.verifying_key()]).unwrap();
    let token_unnamed = forge(&unnamed, &json!({"alg": "EdDSA"}));
    assert!(verify_with_keys::<App>(&token_unnamed, &unnamed_set, &policy()).is_ok());
    // A kid of the wrong type is malformed.
    let token = forge(&a, &json!({"alg": "EdDSA", "kid": 1}));
    assert!(matches!(
        verify_with_keys::<App>(&token, &set, &policy()),
        Err(Error::InvalidJson {
            part: Part::Header,
            ..
        })
    ));
    // The right kid works; the other key's kid does not verify a's token.
    let token = a.sign(&Header::new(), &claims()).unwrap();
    verify_with_keys::<App>(&token, &set, &policy()).unwrap();
    let token = forge(&a, &json!({"alg": "EdDSA", "kid": "b"}));
    assert_eq!(
        verify_with_keys::<App>(&token, &set, &policy()).unwrap_err(),
        Error::InvalidSignature
    );
}

// RFC 7515 §4.1.11: unknown critical extensions.
#[test]
fn crit_is_rejected() {
    let key = hs256();
    for crit in [
        json!(["exp"]),
        json!(["http://example.com/ext"]),
        json!([]),
        json!("exp"),
    ] {
        let token = forge(&key, &json!({"alg": "HS256", "crit": crit, "exp": 1}));
        assert!(
            matches!(
                check(&token, &key.verifying_key()),
                Err(Error::UnsupportedCritical(_))
            ),
            "{crit}"
        );
    }
}

// §2.8 / §3.11 cross-JWT confusion: explicit typing.
#[test]
fn wrong_typ_is_rejected() {
    let key = hs256();
    let access = Validation::access_token(ISS, &["api"]).clock(tessera_jwt::Clock::Fixed(NOW));
    let v = key.verifying_key();
    for typ in [
        Some("JWT"),
        Some("id_token+jwt"),
        Some("application/at+jwt/x"),
        None,
    ] {
        let header = match typ {
            Some(t) => Header::new().typ(t),
            None => Header::new(),
        };
        let token = key.sign(&header, &claims()).unwrap();
        assert!(
            matches!(
                verify::<App>(&token, &v, &access),
                Err(Error::InvalidType { .. })
            ),
            "{typ:?}"
        );
    }
    for typ in [
        "at+jwt",
        "AT+JWT",
        "application/at+jwt",
        "Application/AT+JWT",
    ] {
        let token = key.sign(&Header::new().typ(typ), &claims()).unwrap();
        verify::<App>(&token, &v, &access).unwrap();
    }
}

// §2.7 substitution / §3.9: audience.
#[test]
fn missing_or_wrong_aud_is_rejected() {
    let key = hs256();
    let v = key.verifying_key();
    let mut c = claims();
    c.registered.aud = None;
    let token = key.sign(&Header::new(), &c).unwrap();
    assert_eq!(check(&token, &v), Err(Error::MissingClaim("aud".into())));
    // Explicitly dropping the requirement admits it.
    verify::<App>(&token, &v, &policy().without_required(&["aud"])).unwrap();

    c.registered.aud = Some(tessera_jwt::Audience::Many(vec![
        "other".into(),
        "x".into(),
    ]));
    let token = key.sign(&Header::new(), &c).unwrap();
    assert!(matches!(check(&token, &v), Err(Error::InvalidAudience(_))));
    // A policy that names no audience never accepts a token that has one.
    let lax = Validation::new()
        .issuer(ISS)
        .clock(tessera_jwt::Clock::Fixed(NOW));
    let token = key.sign(&Header::new(), &claims()).unwrap();
    assert!(matches!(
        verify::<App>(&token, &v, &lax),
        Err(Error::InvalidAudience(_))
    ));
    // Any one of several audiences matches.
    c.registered.aud = Some(tessera_jwt::Audience::Many(vec![
        "other".into(),
        "api".into(),
    ]));
    check(&key.sign(&Header::new(), &c).unwrap(), &v).unwrap();
}

#[test]
fn expired_is_rejected() {
    let key = hs256();
    let v = key.verifying_key();
    let token = key.sign(&Header::new(), &claims()).unwrap();
    let exp = NOW + 600;
    let at = |t| policy().clock(tessera_jwt::Clock::Fixed(t));
    verify::<App>(&token, &v, &at(exp + 29)).unwrap();
    assert_eq!(
        verify::<App>(&token, &v, &at(exp + 30)).unwrap_err(),
        Error::Expired {
            exp,
            now: exp + 30,
            leeway: 30
        }
    );
    assert_eq!(
        verify::<App>(&token, &v, &at(exp).leeway(0))
            .unwrap_err()
            .to_string(),
        format!("token expired at {exp} (now {exp}, leeway 0s)")
    );
}

#[test]
fn tampered_payload_is_rejected() {
    for alg in Algorithm::ALL {
        let key = SigningKey::generate(alg).unwrap();
        let token = key.sign(&Header::new(), &claims()).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let mut c = claims();
        c.custom.roles.push("root".into());
        let evil = b64(serde_json::to_string(&c).unwrap().as_bytes());
        let forged = format!("{}.{evil}.{}", parts[0], parts[2]);
        assert_eq!(
            check(&forged, &key.verifying_key()),
            Err(Error::InvalidSignature),
            "{alg}"
        );
        // Flipping one signature bit breaks it too.
        let mut sig = unb64(parts[2]);
        sig[0] ^= 1;
        let forged = format!("{}.{}.{}", parts[0], parts[1], b64(&sig));
        assert_eq!(
            check(&forged, &key.verifying_key()),
            Err(Error::InvalidSignature)
        );
    }
}

#[test]
fn non_canonical_base64_is_rejected() {
    let key = hs256();
    let v = key.verifying_key();
    let token = key.sign(&Header::new(), &claims()).unwrap();
    let parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let parts_enum = [Part::Header, Part::Payload, Part::Signature];
    for i in 0..3 {
        // The payload segment is covered by the signature as transmitted, so a re-encoded
        // payload fails there first; header and signature are decoded before that.
        let expected = if i == 1 {
            Error::InvalidSignature
        } else {
            Error::InvalidBase64(parts_enum[i])
        };
        // Padding.
        let mut p = parts.clone();
        p[i].push('=');
        assert_eq!(check(&p.join("."), &v), Err(expected.clone()));
        // Standard alphabet, or any character outside base64url.
        for c in ['+', '/', ' ', '%', '\n'] {
            let mut p = parts.clone();
            p[i].insert(2, c);
            p[i].remove(3);
            assert_eq!(check(&p.join("."), &v), Err(expected.clone()), "{c:?}");
        }
    }
    // Non-zero trailing bits: the 32-byte HMAC tag is 43 chars, the last carries 2 spare bits.
    let sig = &parts[2];
    assert_eq!(sig.len(), 43);
    let last = sig.chars().last().unwrap();
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let idx = alphabet.find(last).unwrap();
    assert_eq!(idx & 3, 0, "canonical encoding has zero trailing bits");
    let twin = alphabet.chars().nth(idx | 1).unwrap();
    let forged = format!("{}.{}.{}{twin}", parts[0], parts[1], &sig[..42]);
    assert_eq!(
        unb64_lenient(&sig[..42], twin),
        unb64(sig),
        "decodes to the same bytes"
    );
    assert_eq!(
        check(&forged, &v),
        Err(Error::InvalidBase64(Part::Signature))
    );
    // A payload with padding, signed as transmitted, is still refused: canonical only.
    let padded = format!("{}.{}=", parts[0], parts[1]);
    assert_eq!(
        tessera_jwt::dangerous::decode_unverified(&format!("{padded}.{}", parts[2])),
        Err(Error::InvalidBase64(Part::Payload))
    );
}

/// What a lenient decoder would make of a non-canonical last character.
fn unb64_lenient(prefix: &str, last: char) -> Vec<u8> {
    use base64::engine::{general_purpose::GeneralPurpose, GeneralPurposeConfig};
    use base64::{alphabet::URL_SAFE, engine::DecodePaddingMode, Engine as _};
    let lenient = GeneralPurpose::new(
        &URL_SAFE,
        GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    lenient.decode(format!("{prefix}{last}")).unwrap()
}

// RFC 7515 §5.2, RFC 8725 §3.6: two parsers must not read two different tokens.
#[test]
fn duplicate_json_members_are_rejected() {
    let key = hs256();
    let v = key.verifying_key();
    let header_dup = r#"{"alg":"HS256","alg":"HS256"}"#;
    let t = sign_unchecked(&key, header_dup.as_bytes(), claims_json().as_bytes()).unwrap();
    assert!(matches!(
        check(&t, &v),
        Err(Error::DuplicateMember { part: Part::Header, ref name }) if name == "alg"
    ));
    let base = claims_json();
    let body = &base[1..base.len() - 1];
    for payload in [
        format!(r#"{{{body},"sub":"admin"}}"#),
        format!(r#"{{{body},"aud":"api"}}"#),
        format!(r#"{{{body},"roles":["admin"]}}"#),
        format!(r#"{{{body},"\u0073ub":"admin"}}"#),
        format!(r#"{{{body},"cnf":{{"jkt":"a","jkt":"b"}}}}"#),
        format!(r#"{{{body},"x":[{{"a":1}},{{"b":1,"b":2}}]}}"#),
        // Wide objects (past the inline name buffer) are checked just the same.
        format!(r#"{{{body},{},"m7":0}}"#, wide(40)),
        format!(r#"{{{body},"w":{{{},"m39":0}}}}"#, wide(40)),
    ] {
        let t = sign_unchecked(&key, br#"{"alg":"HS256"}"#, payload.as_bytes()).unwrap();
        assert!(
            matches!(
                check(&t, &v),
                Err(Error::DuplicateMember {
                    part: Part::Payload,
                    ..
                })
            ),
            "{payload}"
        );
    }
}

/// `"m0":0,"m1":0,...` with `n` distinct members.
fn wide(n: usize) -> String {
    (0..n)
        .map(|i| format!(r#""m{i}":0"#))
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn wide_objects_without_duplicates_are_fine() {
    let key = hs256();
    let base = claims_json();
    let body = &base[1..base.len() - 1];
    let payload = format!(r#"{{{body},{},"w":{{{}}}}}"#, wide(40), wide(100));
    let t = sign_unchecked(&key, br#"{"alg":"HS256"}"#, payload.as_bytes()).unwrap();
    check(&t, &key.verifying_key()).unwrap();
}

#[test]
fn oversize_token_is_rejected_before_decoding() {
    let key = hs256();
    let v = key.verifying_key();
    // Garbage that would fail every later check: the size error must come first.
    let junk = "!".repeat(8193);
    assert_eq!(
        check(&junk, &v),
        Err(Error::TokenTooLarge {
            len: 8193,
            max: 8192
        })
    );
    let mut c = claims();
    c.custom.roles = vec!["r".repeat(100); 80];
    let big = key.sign(&Header::new(), &c).unwrap();
    assert!(big.len() > 8192);
    assert!(matches!(check(&big, &v), Err(Error::TokenTooLarge { .. })));
    verify::<App>(&big, &v, &policy().max_token_len(16 * 1024)).unwrap();
    let small = key.sign(&Header::new(), &claims()).unwrap();
    assert!(matches!(
        verify::<App>(&small, &v, &policy().max_token_len(100)),
        Err(Error::TokenTooLarge { max: 100, .. })
    ));
}

#[test]
fn wrong_segment_count_is_rejected() {
    let key = hs256();
    let v = key.verifying_key();
    let token = key.sign(&Header::new(), &claims()).unwrap();
    let (input, sig) = token.rsplit_once('.').unwrap();
    for bad in [
        input.to_owned(),
        input.split('.').next().unwrap().to_owned(),
        format!("{token}."),
        format!("{token}.{sig}"),
        format!("{input}.{sig}.{sig}.{sig}"),
        format!(".{token}"),
        String::new(),
        "..".into(),
        "...".into(),
    ] {
        let err = check(&bad, &v).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Malformed(_) | Error::InvalidBase64(_) | Error::InvalidJson { .. }
            ),
            "{bad:?}: {err}"
        );
    }
}

#[test]
fn header_and_claims_must_be_objects() {
    let key = hs256();
    let v = key.verifying_key();
    let t = sign_unchecked(&key, b"", claims_json().as_bytes()).unwrap();
    assert_eq!(check(&t, &v), Err(Error::Malformed("empty header segment")));
    for header in [
        r#"["HS256"]"#,
        r#""HS256""#,
        "null",
        " ",
        r#"{"alg":"HS256"} x"#,
    ] {
        let t = sign_unchecked(&key, header.as_bytes(), claims_json().as_bytes()).unwrap();
        assert!(
            matches!(
                check(&t, &v),
                Err(Error::InvalidJson {
                    part: Part::Header,
                    ..
                })
            ),
            "{header}"
        );
    }
    // Trailing garbage and raw control characters, on an otherwise valid claims set.
    let trailing = format!("{}}}", claims_json());
    let control = claims_json().replace("user-42", "user\u{1}42");
    for payload in ["[]", "1", r#""x""#, "null", "{", &trailing, &control] {
        let t = sign_unchecked(&key, br#"{"alg":"HS256"}"#, payload.as_bytes()).unwrap();
        assert!(
            matches!(
                check(&t, &v),
                Err(Error::InvalidJson {
                    part: Part::Payload,
                    ..
                })
            ),
            "{payload}"
        );
    }
    // Deep nesting is bounded.
    let deep = format!(
        r#"{{"iss":"{ISS}","aud":"api","exp":{},"x":{}1{}}}"#,
        NOW + 60,
        "[".repeat(100),
        "]".repeat(100)
    );
    let t = sign_unchecked(&key, br#"{"alg":"HS256"}"#, deep.as_bytes()).unwrap();
    assert!(matches!(check(&t, &v), Err(Error::InvalidJson { .. })));
}
