//! The JWT attack catalogue (RFC 8725 §2; the jwt_tool and PortSwigger lists), shared by
//! the auth server's `tests/attacks.rs` and the notes API's `tests/attacks.rs`: given a few
//! genuine tokens and the issuer's key, it builds every forged, tampered, misplaced or
//! oversized variant as an `Authorization` header value.
#![allow(dead_code)]
// each including test uses a different part
// Test support: a malformed fixture must fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use serde_json::{json, Value};
use tessera_jwt::dangerous::sign_unchecked;
use tessera_jwt::{Algorithm, SigningKey};

/// What the catalogue is built from.
pub struct Inputs {
    /// The server's clock now.
    pub now: i64,
    /// The issuer the tokens carry.
    pub issuer: String,
    /// The victim's genuine access token (a user without roles).
    pub victim: String,
    /// The victim's refresh token.
    pub victim_refresh: String,
    /// Another user's genuine access token.
    pub other: String,
    /// An admin's genuine access token.
    pub admin: String,
    /// The issuer's active signing key (to sign bad claims genuinely).
    pub key: Arc<SigningKey>,
    /// The JWKS document as served.
    pub jwks_bytes: Vec<u8>,
    /// The active key's public JWK as served.
    pub jwk: Value,
}

/// Unpadded base64url (RFC 4648 §5), kept here so the module needs no extra crate.
pub fn b64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// Decodes unpadded base64url (test input only: panics on bad input).
pub fn b64_decode(s: &str) -> Vec<u8> {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let vals: Vec<u32> = s
        .bytes()
        .map(|c| A.iter().position(|a| *a == c).expect("base64url") as u32)
        .collect();
    let mut out = Vec::new();
    for chunk in vals.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, v)| n | v << (18 - 6 * i));
        for i in 0..chunk.len().saturating_sub(1) {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    out
}

pub fn part(token: &str, i: usize) -> Value {
    let p = token.split('.').nth(i).unwrap();
    serde_json::from_slice(&b64_decode(p)).unwrap()
}

/// Signs `header`/`claims` (exact JSON bytes) with `key`, no checks.
pub fn forge_raw(key: &SigningKey, header: &str, claims: &str) -> String {
    sign_unchecked(key, header.as_bytes(), claims.as_bytes()).unwrap()
}

pub fn forge(key: &SigningKey, header: &Value, claims: &Value) -> String {
    forge_raw(key, &header.to_string(), &claims.to_string())
}

/// An HMAC-signed token with an arbitrary secret (the key-confusion attack). HS256 has no
/// length rule here; HS384/HS512 go through `tessera_jwt`, which refuses secrets shorter than
/// the hash (then `None`).
pub fn hmac_token(alg: &str, secret: &[u8], header: &Value, claims: &Value) -> Option<String> {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    if alg == "HS256" {
        let tag = tessera_server::crypto::hmac_sha256(secret, input.as_bytes());
        return Some(format!("{input}.{}", b64(&tag)));
    }
    let alg = if alg == "HS384" {
        Algorithm::HS384
    } else {
        Algorithm::HS512
    };
    let key = SigningKey::from_hmac_secret(alg, secret).ok()?;
    Some(forge(&key, header, claims))
}

/// An unsigned token: `header.payload.signature` with the given signature text.
pub fn unsigned(header: &Value, claims: &Value, sig: &str) -> String {
    format!(
        "{}.{}.{sig}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

pub fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

/// Changes a genuine token's header and claims before re-signing it.
pub type Mutation = Box<dyn Fn(&mut Value, &mut Value)>;

/// The full catalogue, as (name, Authorization header value).
pub fn catalogue(w: &Inputs) -> Vec<(String, String)> {
    let now = w.now;
    let issuer = w.issuer.clone();
    let header = part(&w.victim, 0);
    let claims = part(&w.victim, 1);
    let kid = header["kid"].as_str().unwrap().to_string();
    let sig = w.victim.rsplit('.').next().unwrap().to_string();
    let mut admin_claims = claims.clone();
    admin_claims["roles"] = json!(["admin"]);
    let mut list: Vec<(String, String)> = Vec::new();
    let mut add = |name: &str, token: String| list.push((name.to_string(), bearer(&token)));

    // alg none, in every spelling, with an empty, a dropped and the original signature.
    for none in ["none", "None", "NONE", "nOnE", "none ", ""] {
        let h = json!({"alg": none, "typ": "at+jwt", "kid": kid});
        add(
            &format!("alg {none:?}, empty sig"),
            unsigned(&h, &admin_claims, ""),
        );
        add(
            &format!("alg {none:?}, original sig"),
            unsigned(&h, &claims, &sig),
        );
        let two = unsigned(&h, &admin_claims, "");
        add(
            &format!("alg {none:?}, two segments"),
            two.trim_end_matches('.').to_string(),
        );
    }
    add(
        "no alg member",
        unsigned(&json!({"typ": "at+jwt", "kid": kid}), &claims, &sig),
    );

    // RS/EdDSA -> HS key confusion: the published public key as the HMAC secret.
    let x = w.jwk["x"].as_str().unwrap();
    let raw_x = b64_decode(x);
    let pem = w.key.verifying_key().to_pem().unwrap();
    let jwk_json = serde_json::to_vec(&w.jwk).unwrap();
    let secrets: Vec<(&str, Vec<u8>)> = vec![
        ("JWKS document bytes", w.jwks_bytes.clone()),
        ("JWK JSON bytes", jwk_json),
        ("raw Ed25519 x bytes", raw_x),
        ("x as base64url text", x.as_bytes().to_vec()),
        ("SPKI PEM", pem.as_bytes().to_vec()),
        (
            "SPKI PEM without newline",
            pem.trim_end().as_bytes().to_vec(),
        ),
        ("kid text", kid.as_bytes().to_vec()),
        ("empty secret", Vec::new()),
    ];
    for (what, secret) in &secrets {
        for alg in ["HS256", "HS384", "HS512"] {
            let h = json!({"alg": alg, "typ": "at+jwt", "kid": kid});
            if let Some(t) = hmac_token(alg, secret, &h, &admin_claims) {
                add(&format!("{alg} confusion, secret = {what}"), t);
            }
        }
    }

    // The token supplies its own key: embedded jwk, jku, x5u, x5c.
    let attacker = SigningKey::generate(Algorithm::EdDSA).unwrap();
    let attacker_jwk = serde_json::to_value(attacker.verifying_key().to_jwk()).unwrap();
    for h in [
        json!({"alg": "EdDSA", "typ": "at+jwt", "jwk": attacker_jwk}),
        json!({"alg": "EdDSA", "typ": "at+jwt", "kid": kid, "jwk": attacker_jwk}),
        json!({"alg": "EdDSA", "typ": "at+jwt", "kid": attacker.thumbprint(), "jwk": attacker_jwk}),
        json!({"alg": "EdDSA", "typ": "at+jwt", "kid": kid, "jku": "http://127.0.0.1:9/jwks.json"}),
        json!({"alg": "EdDSA", "typ": "at+jwt", "kid": kid, "jku": "http://tessera.test/.well-known/jwks.json@127.0.0.1:9/"}),
        json!({"alg": "EdDSA", "typ": "at+jwt", "kid": kid, "x5u": "http://127.0.0.1:9/cert.pem"}),
        json!({"alg": "EdDSA", "typ": "at+jwt", "kid": kid, "x5c": ["MIIB"]}),
    ] {
        let name = format!("attacker-signed, header {}", h);
        add(&name, forge(&attacker, &h, &admin_claims));
    }
    // Even signed by the real key, a header naming a remote key or crit is refused.
    for extra in [
        json!({"jku": "http://127.0.0.1:9/jwks.json"}),
        json!({"x5u": "http://127.0.0.1:9/cert.pem"}),
        json!({"jwk": w.jwk}),
        json!({"crit": ["exp"], "exp": 1}),
        json!({"crit": ["b64"], "b64": false}),
    ] {
        let mut h = header.clone();
        for (k, v) in extra.as_object().unwrap() {
            h[k] = v.clone();
        }
        add(
            &format!("real key, header {extra}"),
            forge(&w.key, &h, &claims),
        );
    }

    // kid injection: path traversal and SQL, with HMAC over the files/values they point at.
    for evil in [
        "../../../../../../dev/null",
        "/dev/null",
        "../../../../../../proc/self/environ",
        "../master.key",
        "' OR '1'='1",
        "x' UNION SELECT 'secret' --",
        "0; DROP TABLE users; --",
        "",
    ] {
        let h = json!({"alg": "HS256", "typ": "at+jwt", "kid": evil});
        for secret in [&b""[..], b"\0", b"secret"] {
            if let Some(t) = hmac_token("HS256", secret, &h, &admin_claims) {
                add(&format!("kid {evil:?}, HS256 secret {secret:?}"), t);
            }
        }
        let h = json!({"alg": "EdDSA", "typ": "at+jwt", "kid": evil});
        add(
            &format!("kid {evil:?}, attacker EdDSA"),
            forge(&attacker, &h, &admin_claims),
        );
    }

    // Psychic signature (CVE-2022-21449): ES256 with r = s = 0, raw and DER.
    let h = json!({"alg": "ES256", "typ": "at+jwt", "kid": kid});
    add(
        "ES256 r=s=0 (64 zero bytes)",
        unsigned(&h, &admin_claims, &b64(&[0u8; 64])),
    );
    add(
        "ES256 r=s=0 (DER)",
        unsigned(
            &h,
            &admin_claims,
            &b64(&[0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00]),
        ),
    );
    let h = json!({"alg": "EdDSA", "typ": "at+jwt", "kid": kid});
    add(
        "EdDSA all-zero signature",
        unsigned(&h, &admin_claims, &b64(&[0u8; 64])),
    );
    // The real key's algorithm family swapped: a genuine signature, another alg label.
    for alg in ["ES256", "RS256", "PS256", "HS256", "Ed25519", "EDDSA"] {
        let mut hh = header.clone();
        hh["alg"] = json!(alg);
        add(&format!("real signature relabelled {alg}"), {
            let t = forge(&w.key, &header, &claims);
            let mut p: Vec<&str> = t.split('.').collect();
            let enc = b64(hh.to_string().as_bytes());
            p[0] = &enc;
            p.join(".")
        });
    }

    // Signature stripping and empty signature.
    let mut p = w.victim.split('.');
    let (h64, c64) = (p.next().unwrap(), p.next().unwrap());
    add("signature stripped (two segments)", format!("{h64}.{c64}"));
    add("empty signature", format!("{h64}.{c64}."));
    add("four segments", format!("{}.{sig}", w.victim));
    add(
        "JWE-shaped (five segments)",
        format!("{h64}.{c64}.{sig}.{sig}.{sig}"),
    );
    add("signature of another token", {
        let b = &w.other;
        format!("{h64}.{c64}.{}", b.rsplit('.').next().unwrap())
    });

    // Tampered claims under the original signature.
    add(
        "roles escalated, original signature",
        unsigned(&header, &admin_claims, &sig),
    );
    let mut other = claims.clone();
    other["sub"] = part(&w.admin, 1)["sub"].clone();
    other["sid"] = part(&w.admin, 1)["sid"].clone();
    add(
        "sub/sid swapped to admin, original signature",
        unsigned(&header, &other, &sig),
    );
    let mut longer = claims.clone();
    longer["exp"] = json!(now + 365 * 86_400);
    add(
        "exp extended, original signature",
        unsigned(&header, &longer, &sig),
    );

    // Non-canonical encodings of the genuine token.
    add("base64 padding added", format!("{h64}.{c64}=.{sig}"));
    add(
        "standard base64 alphabet",
        w.victim.replace('-', "+").replace('_', "/") + "+/",
    );
    add("whitespace inside", format!("{h64}. {c64}.{sig}"));
    add("trailing bits flipped in signature", {
        // The last base64url character of a 64-byte signature carries 2 unused bits.
        let mut s = sig.clone().into_bytes();
        let last = s.pop().unwrap();
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let idx = alphabet.iter().position(|c| *c == last).unwrap();
        s.push(alphabet[(idx ^ 1) % 64]);
        format!("{h64}.{c64}.{}", String::from_utf8(s).unwrap())
    });

    // Genuinely signed by the server's key, but the claims are wrong.
    let signed = |f: &dyn Fn(&mut Value, &mut Value)| {
        let (mut h, mut c) = (header.clone(), claims.clone());
        f(&mut h, &mut c);
        forge(&w.key, &h, &c)
    };
    let cases: Vec<(&str, Mutation)> = vec![
        (
            "expired (exp = now - 1h)",
            Box::new(move |_, c| {
                c["exp"] = json!(now - 3600);
                c["iat"] = json!(now - 4200);
                c["nbf"] = json!(now - 4200);
            }),
        ),
        (
            "expired just beyond leeway",
            Box::new(move |_, c| c["exp"] = json!(now - 31)),
        ),
        (
            "not yet valid (nbf = now + 1h)",
            Box::new(move |_, c| c["nbf"] = json!(now + 3600)),
        ),
        (
            "issued in the future (iat = now + 1h)",
            Box::new(move |_, c| c["iat"] = json!(now + 3600)),
        ),
        (
            "exp missing",
            Box::new(|_, c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
        ),
        (
            "exp as string",
            Box::new(move |_, c| c["exp"] = json!((now + 600).to_string())),
        ),
        (
            "exp fractional",
            Box::new(move |_, c| c["exp"] = json!(now as f64 + 600.5)),
        ),
        (
            "wrong iss",
            Box::new(|_, c| c["iss"] = json!("http://evil.test")),
        ),
        (
            "iss with trailing slash",
            Box::new(move |_, c| c["iss"] = json!(format!("{issuer}/"))),
        ),
        (
            "iss missing",
            Box::new(|_, c| {
                c.as_object_mut().unwrap().remove("iss");
            }),
        ),
        (
            "wrong aud",
            Box::new(|_, c| c["aud"] = json!(["other-api"])),
        ),
        (
            "aud as other string",
            Box::new(|_, c| c["aud"] = json!("notes")),
        ),
        ("aud empty list", Box::new(|_, c| c["aud"] = json!([]))),
        (
            "aud missing",
            Box::new(|_, c| {
                c.as_object_mut().unwrap().remove("aud");
            }),
        ),
        ("typ JWT", Box::new(|h, _| h["typ"] = json!("JWT"))),
        (
            "typ missing",
            Box::new(|h, _| {
                h.as_object_mut().unwrap().remove("typ");
            }),
        ),
        (
            "typ refresh+jwt",
            Box::new(|h, _| h["typ"] = json!("refresh+jwt")),
        ),
        (
            "ID-token shaped (typ JWT, no sid, nonce)",
            Box::new(|h, c| {
                h["typ"] = json!("JWT");
                let o = c.as_object_mut().unwrap();
                o.remove("sid");
                o.insert("nonce".into(), json!("n-0S6_WzA2Mj"));
                o.insert("email".into(), json!("alice@example.com"));
            }),
        ),
        (
            "access-token typ but no sid (a user token posing as a service token)",
            Box::new(|_, c| {
                c.as_object_mut().unwrap().remove("sid");
            }),
        ),
        (
            "sid of another user's session",
            Box::new(|_, _| {}), // replaced below
        ),
        (
            "sid unknown",
            Box::new(|_, c| c["sid"] = json!("00000000-0000-0000-0000-000000000000")),
        ),
        (
            "sub unknown",
            Box::new(|_, c| c["sub"] = json!("00000000-0000-0000-0000-000000000000")),
        ),
        (
            "jti missing",
            Box::new(|_, c| {
                c.as_object_mut().unwrap().remove("jti");
            }),
        ),
        (
            "kid unknown",
            Box::new(|h, _| h["kid"] = json!("no-such-key")),
        ),
        // A genuine signature without `kid` is accepted while exactly one key is published
        // (tessera-jwt `verify_with_keys`: the signature still has to verify under that
        // key, so this is not a forgery); with two keys it is refused, see
        // `a_token_from_a_removed_key_is_refused_even_with_fresh_claims`.
        (
            "claims not an object",
            Box::new(|_, c| *c = json!(["sub", "alice"])),
        ),
    ];
    let bob_sid = part(&w.other, 1)["sid"].clone();
    for (name, f) in &cases {
        if name.starts_with("sid of another") {
            let bob_sid = bob_sid.clone();
            add(name, signed(&move |_, c| c["sid"] = bob_sid.clone()));
        } else {
            add(name, signed(f.as_ref()));
        }
    }

    // Duplicate members: the parser difference the RFC 7515 §5.2 rule closes.
    let c = claims.to_string();
    let dup_roles = format!(r#"{},"roles":["admin"]}}"#, c.trim_end_matches('}'));
    add(
        "duplicate roles claim (signed)",
        forge_raw(&w.key, &header.to_string(), &dup_roles),
    );
    let dup_sub = format!(
        r#"{{"sub":{},{}"#,
        part(&w.admin, 1)["sub"],
        c.trim_start_matches('{')
    );
    add(
        "duplicate sub claim (signed)",
        forge_raw(&w.key, &header.to_string(), &dup_sub),
    );
    let h = header.to_string();
    let dup_alg = format!(r#"{},"alg":"none"}}"#, h.trim_end_matches('}'));
    add(
        "duplicate alg header (signed)",
        forge_raw(&w.key, &dup_alg, &c),
    );
    let dup_typ = format!(r#"{{"typ":"JWT",{}"#, h.trim_start_matches('{'));
    add(
        "duplicate typ header (signed)",
        forge_raw(&w.key, &dup_typ, &c),
    );

    // Deeply nested JSON, oversize token and oversize parts (genuinely signed).
    let mut deep = claims.clone();
    deep["x"] = serde_json::from_str(&format!("{}{}", "[".repeat(100), "]".repeat(100))).unwrap();
    add(
        "claims nested 100 deep (signed)",
        forge(&w.key, &header, &deep),
    );
    let deep_raw = format!(
        r#"{},"x":{}1{}}}"#,
        c.trim_end_matches('}'),
        "[".repeat(3000),
        "]".repeat(3000)
    );
    add(
        "claims nested 3000 deep (signed)",
        forge_raw(&w.key, &h, &deep_raw),
    );
    let mut nested_h = header.clone();
    nested_h["x"] = json!({"a": {"b": {"c": {"d": {"e": {}}}}}});
    add(
        "header nested deep (signed)",
        forge(&w.key, &nested_h, &claims),
    );
    let mut big = claims.clone();
    big["pad"] = json!("A".repeat(9 * 1024));
    add("token > 8 KiB (signed)", forge(&w.key, &header, &big));
    let mut big_h = header.clone();
    big_h["pad"] = json!("A".repeat(6 * 1024));
    add("header part 6 KiB (signed)", forge(&w.key, &big_h, &claims));
    let mut bigger = claims.clone();
    bigger["pad"] = json!("A".repeat(200 * 1024));
    add("token of 200 KiB (signed)", forge(&w.key, &header, &bigger));
    add("8 KiB of garbage", "x".repeat(8 * 1024 + 1));
    add("non-ASCII token", "é.é.é".to_string());
    add("empty-ish token", "..".to_string());

    // Other token types in the Authorization header.
    add("refresh token as access token", w.victim_refresh.clone());
    add(
        "setup-link-shaped token",
        "0123456789abcdef0123456789abcdef".to_string(),
    );
    list.push(("Basic scheme".into(), format!("Basic {}", b64(b"alice:x"))));
    list.push(("Bearer with no token".into(), "Bearer ".into()));
    list.push(("token without scheme".into(), w.victim.clone()));
    list.push((
        "two tokens".into(),
        format!("Bearer {} {}", w.victim, w.admin),
    ));
    list
}
