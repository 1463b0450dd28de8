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

mod attack_catalogue;
mod common;

use attack_catalogue::{b64, bearer, catalogue, forge, part, Inputs};

use common::*;
use reqwest::header::WWW_AUTHENTICATE;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tessera_jwt::SigningKey;
use tessera_store::Snapshot;

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

impl World {
    fn inputs(&self) -> Inputs {
        Inputs {
            now: self.s.now(),
            issuer: ISSUER.to_string(),
            victim: self.alice.access.clone(),
            victim_refresh: self.alice.refresh.clone(),
            other: self.bob.access.clone(),
            admin: self.admin.access.clone(),
            key: self.key.clone(),
            jwks_bytes: self.jwks_bytes.clone(),
            jwk: self.jwk.clone(),
        }
    }
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
    // The catalogue's own base64url must be right, or every forgery fails for that reason.
    for (raw, enc) in [
        (&b"foobar"[..], "Zm9vYmFy"),
        (b"fo", "Zm8"),
        (b"f", "Zg"),
        (b"\xfb\xff", "-_8"),
    ] {
        assert_eq!(b64(raw), enc);
        assert_eq!(attack_catalogue::b64_decode(enc), raw);
    }
    let attacks = catalogue(&w.inputs());
    assert!(attacks.len() >= 140, "catalogue shrank: {}", attacks.len());
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

/// The same on PostgreSQL: a `pg_dump` of the server's schema (every row of every table)
/// holds no private key in any encoding and no refresh token.
#[tokio::test]
async fn private_keys_are_not_stored_in_clear_on_postgres() {
    let Some(s) = TestServer::start_with(Engine::Postgres, |_| {}).await else {
        return;
    };
    let alice = s.new_user("alice@example.com").await;
    let first = s.state().keys.signing_key().unwrap();
    s.state().keys.rotate_now().await.unwrap();
    let current = s.state().keys.signing_key().unwrap();
    let url = s.config.database_url.clone().unwrap();
    let (base, query) = url.split_once('?').unwrap();
    let schema = query
        .split("search_path%3D")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    let out = std::process::Command::new("pg_dump")
        .args(["--data-only", "--schema", schema, "--dbname", base])
        .output()
        .expect("pg_dump runs");
    assert!(
        out.status.success(),
        "pg_dump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dump = String::from_utf8_lossy(&out.stdout).to_lowercase();
    // The dump is of the right schema: both keys' rows are in it.
    for k in [&first, &current] {
        let kid = k.kid().unwrap();
        assert!(
            dump.contains(&kid.to_lowercase()),
            "kid {kid} not in the dump"
        );
    }
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let std_b64 = |b: &[u8]| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(b)
    };
    assert!(!dump.contains("-----begin"), "a PEM block");
    assert!(!dump.contains("private key"), "a PEM private key");
    assert!(!dump.contains("06032b657004220420"), "a PKCS#8 Ed25519 key");
    for k in [&first, &current] {
        let pkcs8 = k.to_secret_bytes();
        let seed = &pkcs8[pkcs8.len() - 32..];
        for (what, needle) in [
            ("PKCS#8 (hex)", hex(&pkcs8)),
            ("PKCS#8 (base64)", std_b64(&pkcs8).to_lowercase()),
            ("PKCS#8 (base64url)", b64(&pkcs8).to_lowercase()),
            ("private key (hex)", hex(seed)),
            ("private key (base64url, a JWK d)", b64(seed).to_lowercase()),
        ] {
            assert!(!dump.contains(&needle), "the dump holds a {what}");
        }
    }
    assert!(
        !dump.contains(&alice.refresh.to_lowercase()),
        "the dump holds a refresh token in clear"
    );
}
