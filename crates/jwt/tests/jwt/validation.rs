//! The validation policy: required claims, time rules, NumericDate strictness, issuer, typ.

use serde_json::{json, Value};
use tessera_jwt::dangerous::{decode_unverified, sign_unchecked};
use tessera_jwt::{
    verify, Algorithm, Claims, Clock, Error, Header, NoCustomClaims, RegisteredClaims, SigningKey,
    Validation,
};

use crate::common::*;

fn key() -> SigningKey {
    SigningKey::from_hmac_secret(Algorithm::HS256, &[9u8; 32]).unwrap()
}

fn with_claims(c: &Value) -> String {
    sign_unchecked(&key(), br#"{"alg":"HS256"}"#, c.to_string().as_bytes()).unwrap()
}

fn run(c: &Value) -> Result<(), Error> {
    verify::<Value>(&with_claims(c), &key().verifying_key(), &policy()).map(|_| ())
}

fn base() -> Value {
    json!({"iss": ISS, "aud": "api", "exp": NOW + 600, "sub": "u"})
}

#[test]
fn defaults_require_exp_iss_aud() {
    run(&base()).unwrap();
    for claim in ["exp", "iss", "aud"] {
        let mut c = base();
        c.as_object_mut().unwrap().remove(claim);
        assert_eq!(run(&c), Err(Error::MissingClaim(claim.into())), "{claim}");
    }
    // Dropping a requirement is explicit and named.
    let mut c = base();
    c.as_object_mut().unwrap().remove("exp");
    let t = with_claims(&c);
    verify::<Value>(
        &t,
        &key().verifying_key(),
        &policy().without_required(&["exp"]),
    )
    .unwrap();
}

#[test]
fn extra_required_claims() {
    let p = policy().require(&["sub", "jti", "roles"]);
    let v = key().verifying_key();
    let mut c = base();
    assert_eq!(
        verify::<Value>(&with_claims(&c), &v, &p).map(|_| ()),
        Err(Error::MissingClaim("jti".into()))
    );
    c["jti"] = json!("j");
    assert_eq!(
        verify::<Value>(&with_claims(&c), &v, &p).map(|_| ()),
        Err(Error::MissingClaim("roles".into()))
    );
    c["roles"] = json!([]);
    verify::<Value>(&with_claims(&c), &v, &p).unwrap();
    let p = p.without_required(&["roles"]);
    c.as_object_mut().unwrap().remove("roles");
    verify::<Value>(&with_claims(&c), &v, &p).unwrap();
}

#[test]
fn numeric_dates_are_strict() {
    for (bad, why) in [
        (json!(-1), "negative"),
        (json!(1.5), "fractional"),
        (json!(1_700_000_000.0), "float literal"),
        (json!(1e10), "exponent"),
        (json!("1700000000"), "string"),
        (json!(null), "null"),
        (json!(true), "bool"),
        (json!([1]), "array"),
        (json!({"t": 1}), "object"),
        (json!(253_402_300_800_i64), "after year 9999"),
        (json!(u64::MAX), "u64::MAX"),
    ] {
        for claim in ["exp", "nbf", "iat"] {
            let mut c = base();
            c[claim] = bad.clone();
            let err = run(&c).unwrap_err();
            assert!(
                matches!(err, Error::InvalidClaim { claim: c, .. } if c == claim),
                "{claim} {why}: {err}"
            );
        }
    }
    // Huge literals that JSON numbers allow but no parser should believe.
    let t = sign_unchecked(
        &key(),
        br#"{"alg":"HS256"}"#,
        format!(
            r#"{{"iss":"{ISS}","aud":"api","exp":1{}}}"#,
            "0".repeat(400)
        )
        .as_bytes(),
    )
    .unwrap();
    // (serde_json refuses it as out of range before any claim rule sees it.)
    assert!(matches!(
        verify::<Value>(&t, &key().verifying_key(), &policy()),
        Err(Error::InvalidClaim { claim: "exp", .. } | Error::InvalidJson { .. })
    ));
}

#[test]
fn string_claims_have_types() {
    for claim in ["iss", "sub", "jti"] {
        let mut c = base();
        c[claim] = json!(1);
        assert!(
            matches!(run(&c), Err(Error::InvalidClaim { .. })),
            "{claim}"
        );
    }
    for aud in [
        json!(1),
        json!([1]),
        json!(["api", 2]),
        json!({"a": "api"}),
        json!(null),
    ] {
        let mut c = base();
        c["aud"] = aud.clone();
        assert!(
            matches!(run(&c), Err(Error::InvalidClaim { claim: "aud", .. })),
            "{aud}"
        );
    }
    let mut c = base();
    c["aud"] = json!(["x", "api"]);
    run(&c).unwrap();
    // Escapes are decoded before comparing.
    let mut c = base();
    c["aud"] = json!("\u{0061}pi");
    run(&c).unwrap();
    let t = sign_unchecked(
        &key(),
        br#"{"alg":"HS256"}"#,
        format!(r#"{{"iss":"{ISS}","aud":"\u0061pi","exp":{}}}"#, NOW + 60).as_bytes(),
    )
    .unwrap();
    verify::<Value>(&t, &key().verifying_key(), &policy()).unwrap();
}

#[test]
fn not_before_and_issued_at_honour_leeway() {
    let v = key().verifying_key();
    let mut c = base();
    c["nbf"] = json!(NOW + 100);
    let t = with_claims(&c);
    let at = |now| policy().clock(Clock::Fixed(now));
    verify::<Value>(&t, &v, &at(NOW + 70)).unwrap();
    assert_eq!(
        verify::<Value>(&t, &v, &at(NOW + 69)).map(|_| ()),
        Err(Error::NotYetValid {
            nbf: NOW + 100,
            now: NOW + 69,
            leeway: 30
        })
    );
    assert!(verify::<Value>(&t, &v, &at(NOW + 99).leeway(0)).is_err());
    verify::<Value>(&t, &v, &at(NOW + 100).leeway(0)).unwrap();

    let mut c = base();
    c["iat"] = json!(NOW + 100);
    let t = with_claims(&c);
    verify::<Value>(&t, &v, &at(NOW + 70)).unwrap();
    assert!(matches!(
        verify::<Value>(&t, &v, &at(NOW + 69)),
        Err(Error::IssuedInFuture { .. })
    ));
}

#[test]
fn issuer_must_match_exactly() {
    for iss in [
        "https://auth.example/",
        "HTTPS://AUTH.EXAMPLE",
        "https://evil.example",
    ] {
        let mut c = base();
        c["iss"] = json!(iss);
        assert_eq!(run(&c), Err(Error::InvalidIssuer { found: iss.into() }));
    }
}

#[test]
fn access_token_profile() {
    let p = Validation::access_token(ISS, &["api", "other"]).clock(Clock::Fixed(NOW));
    let k = key();
    let t = k.sign(&Header::new().typ("at+jwt"), &claims()).unwrap();
    let v = verify::<App>(&t, &k.verifying_key(), &p).unwrap();
    assert_eq!(v.header().typ.as_deref(), Some("at+jwt"));
    assert_eq!(v.claims().custom.roles, ["admin", "user"]);
    let t = k.sign(&Header::new(), &claims()).unwrap();
    assert_eq!(
        verify::<App>(&t, &k.verifying_key(), &p).unwrap_err(),
        Error::InvalidType {
            expected: "at+jwt".into(),
            found: None
        }
    );
}

#[test]
fn application_claims_are_typed() {
    let k = key();
    let p = policy();
    // A claims set that does not fit the application type is an error, not a default.
    let mut c = base();
    c["roles"] = json!("admin");
    let t = with_claims(&c);
    assert!(matches!(
        verify::<App>(&t, &k.verifying_key(), &p),
        Err(Error::InvalidClaims(_))
    ));
    // Registered claims only.
    let t = with_claims(&base());
    let v = verify::<NoCustomClaims>(&t, &k.verifying_key(), &p).unwrap();
    assert_eq!(v.claims().registered.sub.as_deref(), Some("u"));
    let claims: Claims<NoCustomClaims> = v.into_claims();
    assert_eq!(claims.registered.exp, Some(NOW + 600));
}

#[test]
fn claims_serde_shape_is_flat() {
    let c = Claims::new(
        RegisteredClaims {
            sub: Some("s".into()),
            exp: Some(5),
            ..Default::default()
        },
        App {
            roles: vec!["r".into()],
        },
    );
    let v = serde_json::to_value(&c).unwrap();
    assert_eq!(v, json!({"sub": "s", "exp": 5, "roles": ["r"]}));
    let back: Claims<App> = serde_json::from_value(v).unwrap();
    assert_eq!(back, c);
    // The serde path is strict about NumericDates too.
    assert!(serde_json::from_value::<RegisteredClaims>(json!({"exp": -1})).is_err());
    assert!(serde_json::from_value::<RegisteredClaims>(json!({"exp": 1.5})).is_err());
    assert!(serde_json::from_value::<RegisteredClaims>(json!({"exp": "1"})).is_err());
    assert!(
        serde_json::from_value::<RegisteredClaims>(json!({"exp": 253_402_300_800_i64})).is_err()
    );
}

#[test]
fn decode_unverified_is_strict_but_unverified() {
    let k = key();
    let t = k.sign(&Header::new().typ("at+jwt"), &claims()).unwrap();
    let (h, c) = decode_unverified(&t).unwrap();
    assert_eq!(h["alg"], "HS256");
    assert_eq!(c["sub"], "user-42");
    // alg none decodes (it is only reading), but duplicates and junk do not.
    let none = format!("{}.", unsigned(r#"{"alg":"none"}"#, r#"{"a":1}"#));
    assert!(decode_unverified(&none).is_ok());
    let dup = format!("{}.", unsigned(r#"{"alg":"none"}"#, r#"{"a":1,"a":2}"#));
    assert!(matches!(
        decode_unverified(&dup),
        Err(Error::DuplicateMember { .. })
    ));
    assert!(matches!(
        decode_unverified(&"a".repeat(9000)),
        Err(Error::TokenTooLarge { .. })
    ));
}

#[test]
fn clock_and_now() {
    let t = tessera_jwt::now();
    assert!(t > 1_700_000_000);
    assert!((Clock::System.now() - t).abs() <= 1);
    assert_eq!(Clock::Fixed(5).now(), 5);
}
