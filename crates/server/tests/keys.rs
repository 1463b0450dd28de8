//! Signing keys over real HTTP: JWKS and metadata, staged and immediate rotation with the
//! clock, persistence across restarts, algorithms, the master key file.
// Test helpers outside #[test] fns: a malformed response must fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tessera_jwt::{KeySet, Validation};

async fn fetch_jwks(s: &TestServer) -> (Value, KeySet) {
    let r = s
        .http
        .get(s.at("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let bytes = r.bytes().await.unwrap();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    (v, KeySet::from_jwks_json(&bytes).unwrap())
}

fn verifies(token: &str, keys: &KeySet, now: i64) -> bool {
    let policy = Validation::access_token(ISSUER, &["api"]).clock(tessera_jwt::Clock::Fixed(now));
    tessera_jwt::verify_with_keys::<Value>(token, keys, &policy).is_ok()
}

fn kid(token: &str) -> String {
    use base64::Engine as _;
    let h = token.split('.').next().unwrap();
    let v: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(h)
            .unwrap(),
    )
    .unwrap();
    v["kid"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn jwks_and_metadata() {
    let s = TestServer::start().await;
    let r = s
        .http
        .get(s.at("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["cache-control"], "public, max-age=300");
    assert_eq!(r.headers()["content-type"], "application/json");
    let (v, keys) = fetch_jwks(&s).await;
    assert_eq!(v["keys"].as_array().unwrap().len(), 1);
    let jwk = &v["keys"][0];
    assert_eq!(jwk["kty"], "OKP");
    assert_eq!(jwk["alg"], "EdDSA");
    assert!(jwk.get("d").is_none(), "no private part published");
    let l = s.new_user("k@example.com").await;
    assert!(verifies(&l.access, &keys, s.now()));
    assert_eq!(kid(&l.access), jwk["kid"].as_str().unwrap());

    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let m: Value = s
            .http
            .get(s.at(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(m["issuer"], ISSUER);
        assert_eq!(m["jwks_uri"], format!("{ISSUER}/.well-known/jwks.json"));
        assert_eq!(m["token_endpoint"], format!("{ISSUER}/oauth/token"));
        assert_eq!(
            m["revocation_feed_endpoint"],
            format!("{ISSUER}/revocations")
        );
        assert!(m["grant_types_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("password")));
    }
}

/// Every token issued at any moment verifies against every JWKS fetched at an earlier
/// moment that is still within its max-age: rotation never fails a request.
#[tokio::test]
async fn staged_rotation_never_breaks_a_cached_jwks() {
    let s = TestServer::start_with(Engine::Sqlite, |c| {
        c.jwks_max_age = 120;
        c.key_rotation_interval = 300;
    })
    .await
    .unwrap();
    let mut l = s.new_user("rot@example.com").await;
    let mut snapshots: Vec<(i64, KeySet)> = Vec::new();
    let mut kids = std::collections::BTreeSet::new();
    let mut max_published = 0;
    for _ in 0..60 {
        s.advance(20);
        s.state().keys.maintain().await.unwrap();
        let (v, keys) = fetch_jwks(&s).await;
        max_published = max_published.max(v["keys"].as_array().unwrap().len());
        let now = s.now();
        snapshots.push((now, keys));
        let r = s.refresh(&l.refresh).await;
        assert_eq!(r.status(), StatusCode::OK);
        l = login_from(r).await;
        kids.insert(kid(&l.access));
        for (at, keys) in &snapshots {
            if now - at <= 120 {
                assert!(
                    verifies(&l.access, keys, now),
                    "token at {now} (kid {}) fails with the JWKS fetched at {at}",
                    kid(&l.access)
                );
            }
        }
    }
    assert!(kids.len() >= 3, "keys rotated: {kids:?}");
    // Retired keys leave the JWKS once their last token expired: the set stays small.
    let (v, _) = fetch_jwks(&s).await;
    assert!(v["keys"].as_array().unwrap().len() <= 3, "{v}");
    assert!(max_published >= 2);
    let stored = s.state().store.list_keys().await.unwrap();
    assert!(stored.len() < kids.len() + 1, "removed keys are pruned");
}

#[tokio::test]
async fn immediate_rotation_signs_at_once_and_keeps_the_old_key_published() {
    let s = TestServer::start().await;
    let l = s.new_user("now@example.com").await;
    let old = kid(&l.access);
    let new = s.state().keys.rotate_now().await.unwrap();
    assert_ne!(old, new);
    let l2 = s.login("now@example.com", PASSWORD).await;
    assert_eq!(kid(&l2.access), new);
    let (_, keys) = fetch_jwks(&s).await;
    assert!(
        verifies(&l.access, &keys, s.now()),
        "old tokens still verify"
    );
    assert!(verifies(&l2.access, &keys, s.now()));
    assert_eq!(
        s.get_bearer("/auth/me", &l.access).await.status(),
        StatusCode::OK
    );
    let published = |v: &Value| -> Vec<Value> {
        v["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].clone())
            .collect()
    };
    // Up to its removal time the old key stays published (the served body is serialized
    // once per reload, per span between removals: check both sides of the bound; the test
    // clock follows real time plus the advance, so leave a few seconds of margin).
    s.advance(600 + 30 - 5);
    let (v, _) = fetch_jwks(&s).await;
    assert_eq!(published(&v).len(), 2, "{v}");
    // After the old key's last token expired (access ttl + leeway), it is no longer
    // published, even before any reload, and stays gone once maintenance removed it.
    s.advance(6);
    let (v, _) = fetch_jwks(&s).await;
    assert_eq!(published(&v), vec![json!(new)]);
    s.state().keys.maintain().await.unwrap();
    let (v, _) = fetch_jwks(&s).await;
    assert_eq!(published(&v), vec![json!(new)]);
}

#[tokio::test]
async fn restart_keeps_users_sessions_and_keys() {
    restart_keeps_state(Engine::Sqlite).await;
}

#[tokio::test]
async fn restart_keeps_users_sessions_and_keys_postgres() {
    restart_keeps_state(Engine::Postgres).await;
}

async fn restart_keeps_state(engine: Engine) {
    let Some(mut s) = TestServer::start_with(engine, |_| {}).await else {
        return;
    };
    let l = s.new_user("keep@example.com").await;
    let (before, _) = fetch_jwks(&s).await;
    // The private key is sealed at rest, never stored in clear.
    let stored = s.state().store.list_keys().await.unwrap();
    assert_eq!(stored.len(), 1);
    assert!(stored[0].private_enc.len() > 16);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(s.config.data_dir.join("master.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    s.restart().await;
    assert!(
        s.running().setup_token.is_none(),
        "a user exists: no setup link"
    );
    let (after, _) = fetch_jwks(&s).await;
    assert_eq!(before, after);
    assert_eq!(
        s.get_bearer("/auth/me", &l.access).await.status(),
        StatusCode::OK
    );
    let r = s.refresh(&l.refresh).await;
    assert_eq!(r.status(), StatusCode::OK);
    let next = login_from(r).await;
    assert_eq!(kid(&next.access), kid(&l.access));
    s.login("keep@example.com", PASSWORD).await;
}

#[tokio::test]
async fn a_group_readable_master_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("master.key"), [7u8; 32]).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(
            data.join("master.key"),
            std::fs::Permissions::from_mode(0o640),
        )
        .unwrap();
        let config = tessera_server::Config {
            data_dir: data,
            ..Default::default()
        };
        let err = tessera_server::spawn_for_test(config).await.unwrap_err();
        assert!(
            err.to_string().contains("readable by group or others"),
            "{err}"
        );
    }
}

#[tokio::test]
async fn every_algorithm_signs_and_verifies() {
    for alg in ["ES256", "RS256"] {
        let s = TestServer::start_with(Engine::Sqlite, |c| {
            c.algorithm = match alg {
                "ES256" => tessera_server::config::SigningAlgorithm::ES256,
                _ => tessera_server::config::SigningAlgorithm::RS256,
            };
        })
        .await
        .unwrap();
        let l = s.new_user("alg@example.com").await;
        let (v, keys) = fetch_jwks(&s).await;
        assert_eq!(v["keys"][0]["alg"], alg);
        assert!(verifies(&l.access, &keys, s.now()));
        assert_eq!(
            s.get_bearer("/auth/me", &l.access).await.status(),
            StatusCode::OK
        );
    }
}

#[tokio::test]
async fn shared_secret_mode_publishes_nothing() {
    let s = TestServer::start_with(Engine::Sqlite, |c| {
        c.algorithm = tessera_server::config::SigningAlgorithm::HS256;
    })
    .await
    .unwrap();
    let (v, _) = fetch_jwks(&s).await;
    assert_eq!(v, json!({"keys": []}));
    let m: Value = s
        .http
        .get(s.at("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(m.get("jwks_uri").is_none());
    let l = s.new_user("hs@example.com").await;
    assert_eq!(
        s.get_bearer("/auth/me", &l.access).await.status(),
        StatusCode::OK
    );
    let stored = s.state().store.list_keys().await.unwrap();
    assert_eq!(stored[0].alg, "HS256");
    assert!(stored[0].public_jwk.is_empty());
}
