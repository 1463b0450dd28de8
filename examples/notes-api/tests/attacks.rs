//! The JWT attack catalogue (shared with the auth server's tests, see
//! `crates/server/tests/attack_catalogue`) against a resource server: the notes API with a
//! real `tessera-verify` Verifier, fed by a real auth server over loopback HTTP. Every
//! forged, tampered, misplaced or oversized token is refused with 401
//! `WWW-Authenticate: Bearer error="invalid_token"`, and no note is created or deleted.
// Test helpers outside #[test] fns: a failed unwrap is a failed test, which is what we want.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../../crates/server/tests/attack_catalogue/mod.rs"]
mod attack_catalogue;

use std::time::Duration;

use attack_catalogue::{catalogue, Inputs};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tessera_server::Config;
use tessera_verify::Verifier;

const PASSWORD: &str = "correct horse battery staple";

/// Genuinely signed tokens whose claims are well-formed but name a session, user or client
/// that does not exist. Only the auth server's store can refute them; a stateless verifier
/// accepts them by design, and forging them requires the issuer's private key, so they are
/// not attacks on a resource server.
const STORE_ONLY: &[&str] = &[
    "sid of another user's session",
    "sid unknown",
    "sub unknown",
    "access-token typ but no sid (a user token posing as a service token)",
    "jti missing",
];

/// Requests whose Authorization header is not a well-formed `Bearer <token68>` (RFC 6750
/// §2.1). The verifier answers them as RFC 6750 §3.1 allows: 400 `invalid_request` for a
/// malformed bearer credential, 401 with a bare `Bearer` challenge when there is no bearer
/// credential at all. Refused either way; the auth server answers 401 `invalid_token`.
const HEADER_SYNTAX: &[&str] = &[
    "base64 padding added",
    "whitespace inside",
    "non-ASCII token",
    "Basic scheme",
    "Bearer with no token",
    "token without scheme",
    "two tokens",
];

async fn native_login(http: &reqwest::Client, auth: &str, email: &str) -> Value {
    let r = http
        .post(format!("{auth}/auth/login"))
        .json(&json!({"email": email, "password": PASSWORD, "native": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

#[tokio::test]
async fn every_catalogued_jwt_attack_is_refused_by_the_notes_api() {
    let dir = tempfile::tempdir().unwrap();
    let running = tessera_server::spawn_for_test(Config {
        data_dir: dir.path().join("data"),
        ..Config::default()
    })
    .await
    .unwrap();
    let auth = running.url();
    let http = reqwest::Client::new();
    let setup = running.setup_token.clone().unwrap();
    let r = http
        .post(format!("{auth}/auth/setup"))
        .json(&json!({"token": setup, "email": "admin@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let admin = native_login(&http, &auth, "admin@example.com").await;
    let admin_access = admin["access_token"].as_str().unwrap().to_string();
    let c: Value = http
        .post(format!("{auth}/admin/clients"))
        .bearer_auth(&admin_access)
        .json(&json!({"name": "notes-api", "scope": "revocations:read"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let verifier = Verifier::builder(&auth)
        .audience("api")
        .client_credentials(
            c["client_id"].as_str().unwrap(),
            c["client_secret"].as_str().unwrap(),
        )
        .build()
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let notes = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, tower::make::Shared::new(notes_api::app(verifier)))
            .await
            .unwrap()
    });
    for email in ["alice@example.com", "bob@example.com"] {
        let r = http
            .post(format!("{auth}/auth/register"))
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    let alice = native_login(&http, &auth, "alice@example.com").await;
    let bob = native_login(&http, &auth, "bob@example.com").await;
    let alice_access = alice["access_token"].as_str().unwrap().to_string();

    // Sanity: the genuine token works, and alice owns one note.
    let r = http
        .post(format!("{notes}/notes"))
        .bearer_auth(&alice_access)
        .json(&json!({"text": "mine"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let note_id = r.json::<Value>().await.unwrap()["id"].clone();
    let note_id = note_id
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| note_id.to_string());
    let all_notes = || async {
        http.get(format!("{notes}/admin/notes"))
            .bearer_auth(&admin_access)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let before = all_notes().await;

    let jwks_bytes = http
        .get(format!("{auth}/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec();
    let jwks: Value = serde_json::from_slice(&jwks_bytes).unwrap();
    let inputs = Inputs {
        now: running.clock().now(),
        issuer: auth.clone(),
        victim: alice_access.clone(),
        victim_refresh: alice["refresh_token"].as_str().unwrap().to_string(),
        other: bob["access_token"].as_str().unwrap().to_string(),
        admin: admin_access.clone(),
        key: running.state.keys.signing_key().unwrap(),
        jwks_bytes,
        jwk: jwks["keys"][0].clone(),
    };
    let attacks = catalogue(&inputs);
    assert!(attacks.len() >= 140, "catalogue shrank: {}", attacks.len());
    let targets = [
        (Method::GET, "/notes".to_string(), None),
        (
            Method::POST,
            "/notes".to_string(),
            Some(json!({"text": "pwned"})),
        ),
        (Method::GET, "/admin/notes".to_string(), None),
        (Method::GET, format!("/notes/{note_id}"), None),
        (Method::DELETE, format!("/notes/{note_id}"), None),
    ];
    let mut failures = Vec::new();
    let mut tried = 0;
    for (name, authz) in &attacks {
        if STORE_ONLY.contains(&name.as_str()) {
            continue;
        }
        for (method, path, body) in &targets {
            tried += 1;
            let mut req = http
                .request(method.clone(), format!("{notes}{path}"))
                .header("authorization", authz)
                .timeout(Duration::from_secs(10));
            if let Some(b) = body {
                req = req.json(b);
            }
            let r = req.send().await.unwrap();
            let status = r.status();
            let www = r
                .headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let refused = if HEADER_SYNTAX.contains(&name.as_str()) {
                (status == StatusCode::BAD_REQUEST && www.contains(r#"error="invalid_request""#))
                    || (status == StatusCode::UNAUTHORIZED && www == "Bearer")
            } else {
                status == StatusCode::UNAUTHORIZED
                    && www.starts_with("Bearer")
                    && www.contains(r#"error="invalid_token""#)
            };
            if !refused {
                failures.push(format!("{name}: {method} {path} -> {status} {www:?}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {tried} attack requests not refused as expected:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(all_notes().await, before, "an attack changed the notes");
    running.stop().await.unwrap();
}
