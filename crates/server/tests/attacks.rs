//! The JWT attack catalogue (RFC 8725 §2, the jwt_tool and PortSwigger lists) against the
//! server's protected endpoints over real HTTP: every forged, tampered, misplaced or
//! oversized token is refused with 401 `WWW-Authenticate: Bearer error="invalid_token"`
//! (RFC 6750 §3.1), and the store is unchanged apart from failure audit events.
//!
//! Forgeries that need a *valid* signature over bad claims are signed with the server's own
//! active key (taken from the running state), so the test proves the claim checks, not just
//! the signature check.
// Test helpers outside #[test] fns: a malformed response must fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use aws_lc_rs::hmac;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use common::*;
use reqwest::header::WWW_AUTHENTICATE;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tessera_jwt::dangerous::sign_unchecked;
use tessera_jwt::{Algorithm, SigningKey};
use tessera_store::Snapshot;

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn part(token: &str, i: usize) -> Value {
    let p = token.split('.').nth(i).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap()
}

/// Signs `header`/`claims` (exact JSON bytes) with `key`, no checks.
fn forge_raw(key: &SigningKey, header: &str, claims: &str) -> String {
    sign_unchecked(key, header.as_bytes(), claims.as_bytes()).unwrap()
}

fn forge(key: &SigningKey, header: &Value, claims: &Value) -> String {
    forge_raw(key, &header.to_string(), &claims.to_string())
}

/// An HMAC-signed token with an arbitrary secret (the key-confusion attack: no length rule,
/// which `tessera_jwt` would rightly enforce).
fn hmac_token(alg: &str, secret: &[u8], header: &Value, claims: &Value) -> String {
    let algo = match alg {
        "HS256" => hmac::HMAC_SHA256,
        "HS384" => hmac::HMAC_SHA384,
        _ => hmac::HMAC_SHA512,
    };
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let tag = hmac::sign(&hmac::Key::new(algo, secret), input.as_bytes());
    format!("{input}.{}", b64(tag.as_ref()))
}

/// An unsigned token: `header.payload.signature` with the given signature text.
fn unsigned(header: &Value, claims: &Value, sig: &str) -> String {
    format!(
        "{}.{}.{sig}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

/// The store without the audit log (compared exactly) and the audit log alone.
async fn snapshot(s: &TestServer) -> (Snapshot, Vec<tessera_store::AuditEvent>) {
    let mut snap = s.state().store.export().await.unwrap();
    let audit = std::mem::take(&mut snap.audit);
    (snap, audit)
}

/// The protected requests every attack is sent to: reads and state-changing calls.
fn targets(alice_id: &str) -> Vec<(Method, String, Option<Value>)> {
    vec![
        (Method::GET, "/auth/me".into(), None),
        (Method::GET, "/auth/sessions".into(), None),
        (Method::GET, "/admin/users".into(), None),
        (Method::POST, "/auth/logout-all".into(), None),
        (Method::DELETE, "/auth/sessions".into(), None),
        (
            Method::PATCH,
            format!("/admin/users/{alice_id}"),
            Some(json!({"roles": ["admin"]})),
        ),
        (
            Method::POST,
            "/admin/users".into(),
            Some(json!({"email": "mallory@example.com", "password": PASSWORD, "roles": ["admin"]})),
        ),
    ]
}

struct World {
    s: TestServer,
    alice_id: String,
    alice: Login,
    admin: Login,
    bob: Login,
    key: std::sync::Arc<SigningKey>,
    jwks_bytes: Vec<u8>,
    jwk: Value,
}

async fn world() -> World {
    let s = TestServer::start().await;
    let alice_id = s.register("alice@example.com", PASSWORD).await;
    let alice = s.login("alice@example.com", PASSWORD).await;
    let bob = s.new_user("bob@example.com").await;
    tessera_server::domain::accounts::create_user(
        s.state(),
        "root@example.com",
        PASSWORD,
        &["admin".to_string()],
    )
    .await
    .unwrap();
    let admin = s.login("root@example.com", PASSWORD).await;
    let key = s.state().keys.signing_key().unwrap();
    let r = s
        .http
        .get(s.at("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    let jwks_bytes = r.bytes().await.unwrap().to_vec();
    let jwks: Value = serde_json::from_slice(&jwks_bytes).unwrap();
    let jwk = jwks["keys"][0].clone();
    World {
        s,
        alice_id,
        alice,
        admin,
        bob,
        key,
        jwks_bytes,
        jwk,
    }
}

/// Sends `auth` (a full Authorization header value) to every target; returns the failures.
async fn expect_rejected(w: &World, name: &str, auth: &str) -> Vec<String> {
    let mut failures = Vec::new();
    for (method, path, body) in targets(&w.alice_id) {
        let mut req =
            w.s.http
                .request(method.clone(), w.s.at(&path))
                .header("authorization", auth);
        if let Some(b) = &body {
            req = req.json(b);
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        let www = r
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        if status != StatusCode::UNAUTHORIZED
            || !www.starts_with("Bearer")
            || !www.contains(r#"error="invalid_token""#)
            || body["error"] != "invalid_token"
        {
            failures.push(format!(
                "{name}: {method} {path} -> {status} www-authenticate={www:?} body={body}"
            ));
        }
    }
    failures
}

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

/// Changes a genuine token's header and claims before re-signing it.
type Mutation = Box<dyn Fn(&mut Value, &mut Value)>;

/// The full catalogue, as (name, Authorization header value).
fn catalogue(w: &World) -> Vec<(String, String)> {
    let now = w.s.now();
    let header = part(&w.alice.access, 0);
    let claims = part(&w.alice.access, 1);
    let kid = header["kid"].as_str().unwrap().to_string();
    let sig = w.alice.access.rsplit('.').next().unwrap().to_string();
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
    let raw_x = URL_SAFE_NO_PAD.decode(x).unwrap();
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
            add(
                &format!("{alg} confusion, secret = {what}"),
                hmac_token(alg, secret, &h, &admin_claims),
            );
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
            add(
                &format!("kid {evil:?}, HS256 secret {secret:?}"),
                hmac_token("HS256", secret, &h, &admin_claims),
            );
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
    let mut p = w.alice.access.split('.');
    let (h64, c64) = (p.next().unwrap(), p.next().unwrap());
    add("signature stripped (two segments)", format!("{h64}.{c64}"));
    add("empty signature", format!("{h64}.{c64}."));
    add("four segments", format!("{}.{sig}", w.alice.access));
    add(
        "JWE-shaped (five segments)",
        format!("{h64}.{c64}.{sig}.{sig}.{sig}"),
    );
    add("signature of another token", {
        let b = &w.bob.access;
        format!("{h64}.{c64}.{}", b.rsplit('.').next().unwrap())
    });

    // Tampered claims under the original signature.
    add(
        "roles escalated, original signature",
        unsigned(&header, &admin_claims, &sig),
    );
    let mut other = claims.clone();
    other["sub"] = part(&w.admin.access, 1)["sub"].clone();
    other["sid"] = part(&w.admin.access, 1)["sid"].clone();
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
        w.alice.access.replace('-', "+").replace('_', "/") + "+/",
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
            Box::new(|_, c| c["iss"] = json!(format!("{ISSUER}/"))),
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
    let bob_sid = part(&w.bob.access, 1)["sid"].clone();
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
        part(&w.admin.access, 1)["sub"],
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
    add("refresh token as access token", w.alice.refresh.clone());
    add(
        "setup-link-shaped token",
        "0123456789abcdef0123456789abcdef".to_string(),
    );
    list.push(("Basic scheme".into(), format!("Basic {}", b64(b"alice:x"))));
    list.push(("Bearer with no token".into(), "Bearer ".into()));
    list.push(("token without scheme".into(), w.alice.access.clone()));
    list.push((
        "two tokens".into(),
        format!("Bearer {} {}", w.alice.access, w.admin.access),
    ));
    list
}

#[tokio::test]
async fn every_catalogued_jwt_attack_is_refused_and_changes_nothing() {
    let w = world().await;
    // Sanity: the genuine tokens work, so a refusal below is the attack's doing.
    for t in [&w.alice.access, &w.admin.access] {
        assert_eq!(w.s.get_bearer("/auth/me", t).await.status(), StatusCode::OK);
    }
    assert_eq!(
        w.s.get_bearer("/admin/users", &w.admin.access)
            .await
            .status(),
        StatusCode::OK
    );
    let attacks = catalogue(&w);
    assert!(attacks.len() > 150, "catalogue shrank: {}", attacks.len());
    let (before, audit_before) = snapshot(&w.s).await;
    let mut failures = Vec::new();
    for (name, auth) in &attacks {
        failures.extend(expect_rejected(&w, name, auth).await);
    }
    assert!(
        failures.is_empty(),
        "{} attack requests were not refused as expected:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let (after, audit_after) = snapshot(&w.s).await;
    assert!(before == after, "an attack changed stored state");
    let new_events: Vec<_> = audit_after
        .iter()
        .filter(|e| !audit_before.iter().any(|b| b.id == e.id))
        .map(|e| e.event.clone())
        .collect();
    assert!(
        new_events
            .iter()
            .all(|e| e.contains("fail") || e.contains("denied") || e.contains("invalid")),
        "non-failure audit events written by attacks: {new_events:?}"
    );
    // Still nothing escalated: alice is not an admin, her sessions are intact.
    let me: Value =
        w.s.get_bearer("/auth/me", &w.alice.access)
            .await
            .json()
            .await
            .unwrap();
    assert_eq!(me["roles"], json!([]));
    let r = w.s.get_bearer("/admin/users", &w.alice.access).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_token_from_a_removed_key_is_refused_even_with_fresh_claims() {
    let w = world().await;
    let old_key = w.key.clone();
    let header = part(&w.alice.access, 0);
    let old_kid = header["kid"].as_str().unwrap().to_string();
    w.s.state().keys.rotate_now().await.unwrap();
    // Two keys published now: a genuine token stripped of its kid selects neither.
    let mut no_kid = header.clone();
    no_kid.as_object_mut().unwrap().remove("kid");
    let stripped = forge(&old_key, &no_kid, &part(&w.alice.access, 1));
    let failures = expect_rejected(&w, "no kid, two keys", &bearer(&stripped)).await;
    assert!(failures.is_empty(), "{failures:?}");
    // The old key stays published until its last token expires (access TTL + leeway) ...
    assert_eq!(
        w.s.get_bearer("/auth/me", &w.alice.access).await.status(),
        StatusCode::OK
    );
    // ... then it is removed: a leaked old key must not mint tokens any more, even with
    // claims that are otherwise perfectly fresh.
    w.s.advance(w.s.config.access_token_ttl + w.s.config.leeway + 60);
    w.s.state().keys.maintain().await.unwrap();
    let jwks: Value =
        w.s.http
            .get(w.s.at("/.well-known/jwks.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert!(
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["kid"] != old_kid.as_str()),
        "old key still published: {jwks}"
    );
    let fresh = w.s.login("alice@example.com", PASSWORD).await;
    let mut claims = part(&fresh.access, 1);
    let now = w.s.now();
    claims["iat"] = json!(now);
    claims["nbf"] = json!(now);
    claims["exp"] = json!(now + 300);
    let token = forge(&old_key, &header, &claims);
    let (before, _) = snapshot(&w.s).await;
    let failures = expect_rejected(&w, "token from a removed key", &bearer(&token)).await;
    assert!(failures.is_empty(), "{failures:?}");
    let (after, _) = snapshot(&w.s).await;
    assert!(before == after);
    // The same claims under the current key work: the refusal is the key's.
    let mut cur_header = part(&fresh.access, 0);
    cur_header["typ"] = json!("at+jwt");
    let current = w.s.state().keys.signing_key().unwrap();
    let ok = forge(&current, &cur_header, &claims);
    assert_eq!(
        w.s.get_bearer("/auth/me", &ok).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn tokens_of_ended_sessions_disabled_users_and_old_passwords_are_refused() {
    let w = world().await;
    let s = &w.s;
    // Logout revokes the session's access token at once.
    let r = s
        .http
        .post(s.at("/auth/logout"))
        .bearer_auth(&w.bob.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let f = expect_rejected(&w, "token of a logged-out session", &bearer(&w.bob.access)).await;
    assert!(f.is_empty(), "{f:?}");
    // Disabling alice invalidates her token (cutoff + sessions revoked).
    let r = s
        .http
        .patch(s.at(&format!("/admin/users/{}", w.alice_id)))
        .bearer_auth(&w.admin.access)
        .json(&json!({"disabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let f = expect_rejected(&w, "token of a disabled user", &bearer(&w.alice.access)).await;
    assert!(f.is_empty(), "{f:?}");
}

#[tokio::test]
async fn private_keys_are_not_stored_in_clear() {
    let w = world().await;
    // One more key, so more than one private key sits in the store.
    w.s.state().keys.rotate_now().await.unwrap();
    let current = w.s.state().keys.signing_key().unwrap();
    let seeds = [w.key.to_secret_bytes(), current.to_secret_bytes()];
    // Let SQLite write everything it is going to write (WAL included).
    let data = w.s.config.data_dir.clone();
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap() != "master.key" && path.is_file() {
            files.push(path);
        }
    }
    assert!(
        files
            .iter()
            .any(|p| p.to_string_lossy().contains(".db") || p.to_string_lossy().contains("sqlite")),
        "no database file found in {files:?}"
    );
    // Ed25519 PKCS#8: the OID 1.3.101.112 followed by the wrapped 32-byte private key.
    let pkcs8_marker: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];
    let pkcs8_v1: &[u8] = &[
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70,
    ];
    for path in &files {
        let bytes = std::fs::read(path).unwrap();
        let contains = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
        assert!(
            !contains(pkcs8_marker),
            "{path:?} holds a PKCS#8 Ed25519 key"
        );
        assert!(!contains(pkcs8_v1), "{path:?} holds a PKCS#8 v1 header");
        assert!(!contains(b"-----BEGIN"), "{path:?} holds a PEM block");
        assert!(
            !contains(b"PRIVATE KEY"),
            "{path:?} holds a PEM private key"
        );
        for seed in &seeds {
            assert!(!contains(seed), "{path:?} holds a raw private key");
            assert!(
                !contains(b64(seed).as_bytes()),
                "{path:?} holds a base64url private key (a JWK d)"
            );
        }
        // Refresh tokens are stored hashed only.
        assert!(
            !contains(w.alice.refresh.as_bytes()),
            "{path:?} holds a refresh token in clear"
        );
    }
}

#[tokio::test]
async fn a_group_or_world_readable_master_key_is_refused() {
    use std::os::unix::fs::PermissionsExt as _;
    let mut s = TestServer::start().await;
    let path = s.config.master_key_path();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "master key created with mode {mode:o}");
    s.running.take().unwrap().stop().await.unwrap();
    for bad in [0o644, 0o640, 0o604, 0o660] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(bad)).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let r = tessera_server::spawn(s.config.clone(), s.clock.clone(), listener).await;
        assert!(r.is_err(), "started with master key mode {bad:o}");
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    s.restart().await;
    assert_eq!(
        s.http.get(s.at("/healthz")).send().await.unwrap().status(),
        StatusCode::OK
    );
}
