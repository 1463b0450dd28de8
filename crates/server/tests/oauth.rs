//! OAuth 2.0 endpoints over real HTTP: token (RFC 6749), revocation (RFC 7009),
//! introspection (RFC 7662), and an unmodified OAuth client library (the `oauth2` crate).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[macro_use]
mod support;

use common::*;
use reqwest::header::{CACHE_CONTROL, CONTENT_TYPE, PRAGMA, WWW_AUTHENTICATE};
use reqwest::StatusCode;
use serde_json::{json, Value};
use support::*;

engine_tests!(
    client_credentials_basic_post_and_scope,
    client_authentication_errors,
    token_request_errors_store_nothing,
    refresh_grant_first_party_and_confidential,
    password_grant,
    revoke_access_and_refresh_tokens,
    introspection_reflects_every_revocation,
    oauth2_crate_drives_refresh_and_client_credentials,
    introspection_cache_never_outlives_a_revocation,
    introspection_cache_respects_expiry_and_deleted_clients,
);

async fn client_credentials_basic_post_and_scope(engine: Engine) {
    let Some(s) = server(engine).await else {
        return;
    };
    let (id, secret) = client(&s, "revocations:read notes:read", &["svc"]).await;
    assert!(secret.len() == 43, "256-bit base64url secret");

    // client_secret_basic
    let r = form(
        &s,
        "/oauth/token",
        &[("grant_type", "client_credentials")],
        Some((&id, &secret)),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()[CACHE_CONTROL], "no-store");
    assert_eq!(r.headers()[PRAGMA], "no-cache");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 600);
    assert_eq!(body["scope"], "revocations:read notes:read");
    assert!(
        body.get("refresh_token").is_none(),
        "RFC 6749 §4.4.3: no refresh token"
    );
    let c = payload(body["access_token"].as_str().unwrap());
    assert_eq!(c["sub"], id.as_str());
    assert_eq!(c["client_id"], id.as_str());
    assert!(c.get("sid").is_none());
    assert_eq!(c["roles"], json!(["svc"]));

    // client_secret_post with a subset scope
    let r = form(
        &s,
        "/oauth/token",
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", &secret),
            ("scope", "notes:read"),
        ],
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["scope"], "notes:read");
    assert_eq!(
        payload(body["access_token"].as_str().unwrap())["scope"],
        "notes:read"
    );

    // A scope beyond the client's
    for bad in ["admin", "notes:read notes:write", "bad\"scope"] {
        let r = form(
            &s,
            "/oauth/token",
            &[("grant_type", "client_credentials"), ("scope", bad)],
            Some((&id, &secret)),
        )
        .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(error_code(r).await, "invalid_scope");
    }

    // The token works at the server's own bearer-protected endpoints' validation.
    let tok = client_token(&s, &id, &secret, None).await;
    let v = introspect(&s, &(id.clone(), secret.clone()), &tok).await;
    assert_eq!(v["active"], true);
    assert_eq!(v["sub"], id.as_str());
}

async fn client_authentication_errors(engine: Engine) {
    let Some(s) = server(engine).await else {
        return;
    };
    let (id, secret) = client(&s, "", &[]).await;
    let cc = [("grant_type", "client_credentials")];

    // Wrong secret over Basic: 401 + WWW-Authenticate: Basic.
    let r = form(&s, "/oauth/token", &cc, Some((&id, "wrong"))).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers()[WWW_AUTHENTICATE]
        .to_str()
        .unwrap()
        .starts_with("Basic"));
    assert_eq!(error_code(r).await, "invalid_client");

    // Unknown client over Basic: the same answer.
    let r = form(&s, "/oauth/token", &cc, Some(("svc_nobody", &secret))).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(r).await, "invalid_client");

    // Wrong secret in the body: 401 invalid_client, no Basic challenge.
    let r = form(
        &s,
        "/oauth/token",
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", "x"),
        ],
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().get(WWW_AUTHENTICATE).is_none());
    assert_eq!(error_code(r).await, "invalid_client");

    // Two methods at once.
    let r = form(
        &s,
        "/oauth/token",
        &[
            ("grant_type", "client_credentials"),
            ("client_secret", &secret),
        ],
        Some((&id, &secret)),
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(r).await, "invalid_request");

    // No client authentication at all.
    let r = form(&s, "/oauth/token", &cc, None).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(r).await, "invalid_client");

    // A confidential client id without its secret.
    let r = form(
        &s,
        "/oauth/token",
        &[("grant_type", "client_credentials"), ("client_id", &id)],
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // The first-party public client cannot use client_credentials.
    let r = form(
        &s,
        "/oauth/token",
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "tessera"),
        ],
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(r).await, "unauthorized_client");

    // Malformed Basic and a Bearer header.
    for h in ["Basic !!!", "Basic", "Bearer abc"] {
        let r = s
            .http
            .post(s.at("/oauth/token"))
            .header("authorization", h)
            .form(&cc)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{h}");
        assert_eq!(error_code(r).await, "invalid_client");
    }
}

async fn token_request_errors_store_nothing(engine: Engine) {
    let Some(s) = server(engine).await else {
        return;
    };
    let (id, secret) = client(&s, "", &[]).await;
    let uid = s.register("bob@example.com", PASSWORD).await;
    let audit_before = s.audit("login").await.len();

    // Missing, unknown and unsupported grant types.
    let r = form(&s, "/oauth/token", &[], Some((&id, &secret))).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.headers()[CACHE_CONTROL], "no-store");
    assert_eq!(error_code(r).await, "invalid_request");
    for g in [
        "authorization_code",
        "implicit",
        "urn:ietf:params:oauth:grant-type:device_code",
        "x",
    ] {
        let r = form(
            &s,
            "/oauth/token",
            &[("grant_type", g)],
            Some((&id, &secret)),
        )
        .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{g}");
        assert_eq!(error_code(r).await, "unsupported_grant_type");
    }

    // JSON instead of a form.
    let r = s
        .http
        .post(s.at("/oauth/token"))
        .json(&json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error());
    assert_eq!(r.headers()[CONTENT_TYPE], "application/json");
    assert_eq!(error_code(r).await, "invalid_request");

    // Malformed form body, duplicated parameter (RFC 6749 §3.2), oversize body.
    for body in [
        "%%%",
        "grant_type=password&grant_type=password",
        "scope=a&scope=b&grant_type=x",
    ] {
        let r = s
            .http
            .post(s.at("/oauth/token"))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(error_code(r).await, "invalid_request");
    }
    let big = format!(
        "grant_type=password&username=a&password={}",
        "x".repeat(200_000)
    );
    // A connection of its own: the server answers 413 without reading the body and closes
    // the connection, which must not race with the next request on a pooled one.
    let r = reqwest::Client::new()
        .post(s.at("/oauth/token"))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error_code(r).await, "invalid_request");

    // Missing fields of each grant.
    for params in [
        vec![("grant_type", "refresh_token")],
        vec![("grant_type", "password"), ("username", "bob@example.com")],
        vec![("grant_type", "password"), ("password", PASSWORD)],
        vec![
            ("grant_type", "password"),
            ("username", ""),
            ("password", PASSWORD),
        ],
    ] {
        let r = form(&s, "/oauth/token", &params, Some((&id, &secret))).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{params:?}");
        assert_eq!(error_code(r).await, "invalid_request");
    }

    // Bad refresh tokens.
    for t in ["x", &"A".repeat(43), &"é".repeat(30)] {
        let r = form(
            &s,
            "/oauth/token",
            &[("grant_type", "refresh_token"), ("refresh_token", t)],
            None,
        )
        .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert_eq!(error_code(r).await, "invalid_grant");
    }

    // Nothing was stored: no session for the user, no login audited.
    let sessions = s.state().store.live_sessions(&uid, s.now()).await.unwrap();
    assert!(sessions.is_empty());
    assert_eq!(s.audit("login").await.len(), audit_before);
    assert_eq!(s.state().store.list_clients().await.unwrap().len(), 1);
}

async fn refresh_grant_first_party_and_confidential(engine: Engine) {
    let Some(s) = server(engine).await else {
        return;
    };
    let l = native_login(&s, "carol@example.com").await;

    // First-party refresh token: no client authentication needed.
    let r = form(
        &s,
        "/oauth/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &l.refresh),
        ],
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()[PRAGMA], "no-cache");
    let b: Value = r.json().await.unwrap();
    let next = b["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(next, l.refresh);
    assert_eq!(b["token_type"], "Bearer");
    assert_eq!(
        payload(b["access_token"].as_str().unwrap())["sid"],
        l.session_id.as_str()
    );

    // With the public client id it works too; a scope is refused.
    let r = form(
        &s,
        "/oauth/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &next),
            ("client_id", "tessera"),
            ("scope", "x"),
        ],
        None,
    )
    .await;
    assert_eq!(error_code(r).await, "invalid_scope");
    let r = form(
        &s,
        "/oauth/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &next),
            ("client_id", "tessera"),
        ],
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let third: Value = r.json().await.unwrap();
    // Some libraries send the public client as HTTP Basic with an empty password.
    let r = form(
        &s,
        "/oauth/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", third["refresh_token"].as_str().unwrap()),
        ],
        Some(("tessera", "")),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let third: Value = r.json().await.unwrap();

    // A confidential client may not redeem a first-party token (and does not burn it).
    let other = client(&s, "", &[]).await;
    let third_refresh = third["refresh_token"].as_str().unwrap();
    let r = form(
        &s,
        "/oauth/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", third_refresh),
        ],
        Some((&other.0, &other.1)),
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(r).await, "invalid_grant");
    let r = form(
        &s,
        "/oauth/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", third_refresh),
        ],
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK, "the token was not burned");

    // A confidential client's session (password grant): its refresh token needs its auth.
    let (id, secret) = client(&s, "", &[]).await;
    let r = form(
        &s,
        "/oauth/token",
        &[
            ("grant_type", "password"),
            ("username", "carol@example.com"),
            ("password", PASSWORD),
        ],
        Some((&id, &secret)),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let rt = r.json::<Value>().await.unwrap()["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    let r = form(
        &s,
        "/oauth/token",
        &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(r).await, "invalid_client");
    let r = form(
        &s,
        "/oauth/token",
        &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
        Some((&other.0, &other.1)),
    )
    .await;
    assert_eq!(error_code(r).await, "invalid_grant");
    let r = form(
        &s,
        "/oauth/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt),
            ("client_id", &id),
            ("client_secret", &secret),
        ],
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let b: Value = r.json().await.unwrap();
    assert_eq!(
        payload(b["access_token"].as_str().unwrap())["client_id"],
        id.as_str()
    );

    // Reuse after the grace window: invalid_grant and the session is gone.
    s.advance(60);
    let r = form(
        &s,
        "/oauth/token",
        &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
        Some((&id, &secret)),
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(r).await, "invalid_grant");
    let newest = b["refresh_token"].as_str().unwrap();
    let r = form(
        &s,
        "/oauth/token",
        &[("grant_type", "refresh_token"), ("refresh_token", newest)],
        Some((&id, &secret)),
    )
    .await;
    assert_eq!(
        error_code(r).await,
        "invalid_grant",
        "reuse killed the whole session"
    );
}

async fn password_grant(engine: Engine) {
    let Some(s) = server(engine).await else {
        return;
    };
    let uid = s.register("dave@example.com", PASSWORD).await;
    let (id, secret) = client(&s, "", &[]).await;
    let pw = |u: &'static str, p: &'static str| {
        vec![("grant_type", "password"), ("username", u), ("password", p)]
    };

    let r = form(
        &s,
        "/oauth/token",
        &pw("dave@example.com", PASSWORD),
        Some((&id, &secret)),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()[CACHE_CONTROL], "no-store");
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["refresh_token"].as_str().unwrap().len(), 43);
    let c = payload(b["access_token"].as_str().unwrap());
    assert_eq!(c["sub"], uid.as_str());
    assert_eq!(c["client_id"], id.as_str());
    assert!(c["sid"].is_string());
    let me = s
        .get_bearer("/auth/me", b["access_token"].as_str().unwrap())
        .await;
    assert_eq!(me.status(), StatusCode::OK);

    // The first-party public client may use it too.
    let mut p = pw("DAVE@example.com", PASSWORD);
    p.push(("client_id", "tessera"));
    let r = form(&s, "/oauth/token", &p, None).await;
    assert_eq!(r.status(), StatusCode::OK);

    // Wrong password and unknown user: the same 400 invalid_grant.
    for (u, pass) in [
        ("dave@example.com", "wrong password!"),
        ("nobody@example.com", PASSWORD),
    ] {
        let r = form(&s, "/oauth/token", &pw(u, pass), Some((&id, &secret))).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"], "invalid_grant");
        assert_eq!(v["error_description"], "Invalid username or password");
    }
    // No client at all.
    let r = form(&s, "/oauth/token", &pw("dave@example.com", PASSWORD), None).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(r).await, "invalid_client");
    assert_eq!(s.audit("login_failed").await.len(), 2);

    // Disabled by configuration.
    let Some(off) = TestServer::start_with(engine, |c| c.password_grant = false).await else {
        return;
    };
    off.register("erin@example.com", PASSWORD).await;
    let r = form(
        &off,
        "/oauth/token",
        &pw("erin@example.com", PASSWORD),
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(r).await, "unsupported_grant_type");
    let meta: Value = off
        .http
        .get(off.at("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(!meta["grant_types_supported"]
        .as_array()
        .unwrap()
        .contains(&json!("password")));
}

async fn revoke_access_and_refresh_tokens(engine: Engine) {
    let Some(s) = server(engine).await else {
        return;
    };
    let svc = client(&s, "", &[]).await;

    // Access token: its jti is revoked; the session lives on.
    let l = native_login(&s, "fay@example.com").await;
    let r = form(
        &s,
        "/oauth/revoke",
        &[("token", &l.access), ("token_type_hint", "access_token")],
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        s.get_bearer("/auth/me", &l.access).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(introspect(&s, &svc, &l.access).await["active"], false);
    let jti = payload(&l.access)["jti"].as_str().unwrap().to_string();
    let events = s
        .state()
        .store
        .revocations_since(0, s.now(), 100)
        .await
        .unwrap();
    assert!(events
        .iter()
        .any(|e| e.subject == jti && e.kind.as_str() == "token"));
    assert!(s
        .state()
        .store
        .is_token_revoked(&jti, s.now())
        .await
        .unwrap());
    // The refresh token still works.
    let r = form(
        &s,
        "/oauth/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &l.refresh),
        ],
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let b: Value = r.json().await.unwrap();
    let (access2, refresh2) = (
        b["access_token"].as_str().unwrap().to_string(),
        b["refresh_token"].as_str().unwrap().to_string(),
    );

    // Refresh token (with the public client id): the whole session ends.
    let r = form(
        &s,
        "/oauth/revoke",
        &[
            ("token", &refresh2),
            ("token_type_hint", "refresh_token"),
            ("client_id", "tessera"),
        ],
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        s.get_bearer("/auth/me", &access2).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let r = form(
        &s,
        "/oauth/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh2),
        ],
        None,
    )
    .await;
    assert_eq!(error_code(r).await, "invalid_grant");
    let sess = s
        .state()
        .store
        .session_by_id(&l.session_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sess.revoked_reason.as_deref(), Some("oauth_revoke"));

    // Unknown, garbage, already revoked: 200.
    for t in ["nope", &"A".repeat(43), &refresh2, &l.access] {
        let r = form(&s, "/oauth/revoke", &[("token", t)], None).await;
        assert_eq!(r.status(), StatusCode::OK, "{t}");
    }
    // Missing token; wrong client secret.
    let r = form(&s, "/oauth/revoke", &[], None).await;
    assert_eq!(error_code(r).await, "invalid_request");
    let r = form(
        &s,
        "/oauth/revoke",
        &[("token", "x")],
        Some((&svc.0, "bad")),
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(r).await, "invalid_client");

    // Another client's token is refused and stays valid.
    let l2 = native_login(&s, "gus@example.com").await;
    let r = form(
        &s,
        "/oauth/revoke",
        &[("token", &l2.access)],
        Some((&svc.0, &svc.1)),
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(r).await, "unauthorized_client");
    assert_eq!(
        s.get_bearer("/auth/me", &l2.access).await.status(),
        StatusCode::OK
    );

    // A service client revokes its own access token.
    let tok = client_token(&s, &svc.0, &svc.1, None).await;
    let r = form(
        &s,
        "/oauth/revoke",
        &[("token", &tok)],
        Some((&svc.0, &svc.1)),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(introspect(&s, &svc, &tok).await["active"], false);
}

async fn introspection_reflects_every_revocation(engine: Engine) {
    let Some(s) = server(engine).await else {
        return;
    };
    let rs = client(&s, "", &[]).await;

    // Authentication is required.
    let r = form(&s, "/oauth/introspect", &[("token", "x")], None).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(r).await, "invalid_client");
    let r = form(
        &s,
        "/oauth/introspect",
        &[("token", "x"), ("client_id", "tessera")],
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = form(&s, "/oauth/introspect", &[], Some((&rs.0, &rs.1))).await;
    assert_eq!(error_code(r).await, "invalid_request");

    // Active token: every field.
    let l = native_login(&s, "hal@example.com").await;
    let v = introspect(&s, &rs, &l.access).await;
    let c = payload(&l.access);
    assert_eq!(v["active"], true);
    for k in [
        "sub",
        "client_id",
        "exp",
        "iat",
        "nbf",
        "aud",
        "iss",
        "jti",
        "sid",
        "roles",
    ] {
        assert_eq!(v[k], c[k], "{k}");
    }
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["token_use"], "access_token");
    assert_eq!(
        introspect(&s, &rs, "garbage").await,
        json!({"active": false})
    );

    // Refresh tokens: active until rotated.
    let v = introspect(&s, &rs, &l.refresh).await;
    assert_eq!(v["active"], true);
    assert_eq!(v["token_use"], "refresh_token");
    assert!(v.get("token_type").is_none(), "{v}");
    assert_eq!(v["sid"], l.session_id.as_str());
    let r = form(
        &s,
        "/oauth/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &l.refresh),
        ],
        None,
    )
    .await;
    let next: Value = r.json().await.unwrap();
    assert_eq!(
        introspect(&s, &rs, &l.refresh).await["active"],
        false,
        "rotated"
    );
    let next_refresh = next["refresh_token"].as_str().unwrap();
    assert_eq!(introspect(&s, &rs, next_refresh).await["active"], true);

    // Logout.
    let r = s
        .http
        .post(s.at("/auth/logout"))
        .bearer_auth(&l.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        introspect(&s, &rs, &l.access).await,
        json!({"active": false})
    );
    assert_eq!(introspect(&s, &rs, next_refresh).await["active"], false);

    // Password change: older tokens of the user die (cutoff), the new one lives.
    let l = s.login("hal@example.com", PASSWORD).await;
    let other = s.login("hal@example.com", PASSWORD).await;
    let r = s
        .http
        .post(s.at("/auth/password"))
        .bearer_auth(&l.access)
        .json(&json!({"current_password": PASSWORD, "new_password": "another good password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let fresh = login_from(r).await;
    assert_eq!(introspect(&s, &rs, &l.access).await["active"], false);
    assert_eq!(introspect(&s, &rs, &other.access).await["active"], false);
    assert_eq!(introspect(&s, &rs, &fresh.access).await["active"], true);

    // Role change and disable, through the admin API.
    let root = admin(&s).await;
    let uid = payload(&fresh.access)["sub"].as_str().unwrap().to_string();
    let patch = |body: Value| {
        s.http
            .patch(s.at(&format!("/admin/users/{uid}")))
            .bearer_auth(&root.access)
            .json(&body)
            .send()
    };
    assert_eq!(
        patch(json!({"roles": ["editor"]})).await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        introspect(&s, &rs, &fresh.access).await["active"],
        false,
        "role change"
    );
    let l = s.login("hal@example.com", "another good password").await;
    let v = introspect(&s, &rs, &l.access).await;
    assert_eq!(v["active"], true);
    assert_eq!(v["roles"], json!(["editor"]));
    assert_eq!(
        patch(json!({"disabled": true})).await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        introspect(&s, &rs, &l.access).await["active"],
        false,
        "disabled"
    );
    assert_eq!(
        introspect(&s, &rs, &l.refresh).await["active"],
        false,
        "disabled"
    );

    // jti revocation of one token leaves the others.
    let a = native_login(&s, "ivy@example.com").await;
    let r = form(
        &s,
        "/oauth/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &a.refresh),
        ],
        None,
    )
    .await;
    let b: Value = r.json().await.unwrap();
    let second = b["access_token"].as_str().unwrap();
    let r = form(&s, "/oauth/revoke", &[("token", &a.access)], None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(introspect(&s, &rs, &a.access).await["active"], false);
    assert_eq!(introspect(&s, &rs, second).await["active"], true);

    // A service token dies with its client.
    let svc = client(&s, "", &[]).await;
    let tok = client_token(&s, &svc.0, &svc.1, None).await;
    assert_eq!(introspect(&s, &rs, &tok).await["active"], true);
    let r = s
        .http
        .delete(s.at(&format!("/admin/clients/{}", svc.0)))
        .bearer_auth(&root.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(introspect(&s, &rs, &tok).await["active"], false);
}

async fn oauth2_crate_drives_refresh_and_client_credentials(engine: Engine) {
    use oauth2::basic::BasicClient;
    use oauth2::{
        ClientId, ClientSecret, IntrospectionUrl, RefreshToken, Scope, TokenIntrospectionResponse,
        TokenResponse, TokenUrl,
    };

    let Some(s) = server(engine).await else {
        return;
    };
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let token_url = TokenUrl::new(s.at("/oauth/token")).unwrap();

    // client_credentials, client_secret_basic (the library's default), with a scope.
    let (id, secret) = client(&s, "revocations:read notes:read", &["svc"]).await;
    let svc = BasicClient::new(ClientId::new(id.clone()))
        .set_client_secret(ClientSecret::new(secret.clone()))
        .set_token_uri(token_url.clone());
    let tok = svc
        .exchange_client_credentials()
        .add_scope(Scope::new("revocations:read".into()))
        .request_async(&http)
        .await
        .unwrap();
    assert!(tok.expires_in().is_some());
    assert!(tok.refresh_token().is_none());
    assert_eq!(tok.scopes().unwrap()[0].as_str(), "revocations:read");
    let v = introspect(
        &s,
        &(id.clone(), secret.clone()),
        tok.access_token().secret(),
    )
    .await;
    assert_eq!(v["active"], true);
    assert_eq!(v["scope"], "revocations:read");
    // The same library introspects it (RFC 7662), before and after a revocation.
    let svc = svc.set_introspection_url(IntrospectionUrl::new(s.at("/oauth/introspect")).unwrap());
    let info = svc
        .introspect(tok.access_token())
        .request_async(&http)
        .await
        .unwrap();
    assert!(info.active());
    assert_eq!(info.sub(), Some(id.as_str()));
    // (The library refuses a plain-http revocation URL, as RFC 7009 §2 requires TLS; the
    // revocation itself is covered by `revoke_access_and_refresh_tokens`.)
    let r = form(
        &s,
        "/oauth/revoke",
        &[("token", tok.access_token().secret())],
        Some((&id, &secret)),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let info = svc
        .introspect(tok.access_token())
        .request_async(&http)
        .await
        .unwrap();
    assert!(!info.active());
    // The library surfaces RFC 6749 errors as typed server responses.
    let err = svc
        .exchange_client_credentials()
        .add_scope(Scope::new("admin".into()))
        .request_async(&http)
        .await
        .unwrap_err();
    assert!(format!("{err:?}").contains("invalid_scope"), "{err:?}");

    // refresh_token for the first-party public client (no secret: client_id in the body).
    let l = native_login(&s, "jay@example.com").await;
    let app = BasicClient::new(ClientId::new("tessera".into())).set_token_uri(token_url);
    let t1 = app
        .exchange_refresh_token(&RefreshToken::new(l.refresh.clone()))
        .request_async(&http)
        .await
        .unwrap();
    let r1 = t1.refresh_token().unwrap().secret().clone();
    assert_ne!(r1, l.refresh);
    let t2 = app
        .exchange_refresh_token(&RefreshToken::new(r1))
        .request_async(&http)
        .await
        .unwrap();
    let me = s.get_bearer("/auth/me", t2.access_token().secret()).await;
    assert_eq!(me.status(), StatusCode::OK);
}

// ---- the introspection cache (domain::introspection) ----------------------------------------

const HITS: &str = "tessera_introspection_cache_total{result=\"hit\"}";

async fn cache_hits(s: &TestServer) -> f64 {
    let text = s
        .http
        .get(s.at("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    metric(&text, HITS)
}

/// Introspects `token` until the answer came from the cache (on PostgreSQL the cache is used
/// only once the store's notice listener has proven itself, a few hundred ms after start),
/// asserting it is active every time.
async fn warm(s: &TestServer, rs: &(String, String), token: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let before = cache_hits(s).await;
        let v = introspect(s, rs, token).await;
        assert_eq!(v["active"], true, "{v}");
        if cache_hits(s).await > before {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "introspection never answered from the cache"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn inactive(s: &TestServer, rs: &(String, String), token: &str, what: &str) {
    assert_eq!(
        introspect(s, rs, token).await,
        json!({"active": false}),
        "{what}: a cached answer outlived the revocation"
    );
}

/// Every path that can make a token inactive drops the cached answer at once on the node
/// that performed it: each token is first answered from the cache, then revoked, then
/// introspected again.
async fn introspection_cache_never_outlives_a_revocation(engine: Engine) {
    let Some(s) = server(engine).await else {
        return;
    };
    let rs = client(&s, "", &[]).await;
    let root = admin(&s).await;
    let bearer_post = |path: &'static str, token: String| {
        let req = s.http.post(s.at(path)).bearer_auth(token);
        async move { req.send().await.unwrap().status() }
    };

    // Logout.
    let l = native_login(&s, "a@example.com").await;
    warm(&s, &rs, &l.access).await;
    assert_eq!(
        bearer_post("/auth/logout", l.access.clone()).await,
        StatusCode::NO_CONTENT
    );
    inactive(&s, &rs, &l.access, "logout").await;

    // One session revoked from another.
    let l1 = s.login("a@example.com", PASSWORD).await;
    let l2 = s.login("a@example.com", PASSWORD).await;
    warm(&s, &rs, &l2.access).await;
    let r = s
        .http
        .delete(s.at(&format!("/auth/sessions/{}", l2.session_id)))
        .bearer_auth(&l1.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    inactive(&s, &rs, &l2.access, "session revoked").await;

    // Logout everywhere.
    let l3 = s.login("a@example.com", PASSWORD).await;
    warm(&s, &rs, &l3.access).await;
    warm(&s, &rs, &l1.access).await;
    assert_eq!(
        bearer_post("/auth/logout-all", l1.access.clone()).await,
        StatusCode::NO_CONTENT
    );
    inactive(&s, &rs, &l3.access, "logout-all").await;

    // Password change: the cutoff kills the other session's token.
    let l = s.login("a@example.com", PASSWORD).await;
    let other = s.login("a@example.com", PASSWORD).await;
    warm(&s, &rs, &other.access).await;
    let r = s
        .http
        .post(s.at("/auth/password"))
        .bearer_auth(&l.access)
        .json(&json!({"current_password": PASSWORD, "new_password": "another good password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    inactive(&s, &rs, &other.access, "password change").await;
    let fresh = login_from(r).await;

    // Role change and disable (admin API cutoffs).
    let uid = payload(&fresh.access)["sub"].as_str().unwrap().to_string();
    let patch = |body: Value| {
        s.http
            .patch(s.at(&format!("/admin/users/{uid}")))
            .bearer_auth(&root.access)
            .json(&body)
            .send()
    };
    warm(&s, &rs, &fresh.access).await;
    assert_eq!(
        patch(json!({"roles": ["editor"]})).await.unwrap().status(),
        StatusCode::OK
    );
    inactive(&s, &rs, &fresh.access, "role change").await;
    let l = s.login("a@example.com", "another good password").await;
    warm(&s, &rs, &l.access).await;
    assert_eq!(
        patch(json!({"disabled": true})).await.unwrap().status(),
        StatusCode::OK
    );
    inactive(&s, &rs, &l.access, "disabled").await;

    // RFC 7009 revocation of one jti.
    let b = native_login(&s, "b@example.com").await;
    warm(&s, &rs, &b.access).await;
    let r = form(&s, "/oauth/revoke", &[("token", &b.access)], None).await;
    assert_eq!(r.status(), StatusCode::OK);
    inactive(&s, &rs, &b.access, "jti revoked").await;

    // Refresh-token reuse ends the session.
    let c = native_login(&s, "c@example.com").await;
    warm(&s, &rs, &c.access).await;
    let rotate = |t: String| {
        let req = s
            .http
            .post(s.at("/oauth/token"))
            .form(&[("grant_type", "refresh_token"), ("refresh_token", &t)]);
        async move { req.send().await.unwrap().status() }
    };
    assert_eq!(rotate(c.refresh.clone()).await, StatusCode::OK);
    s.advance(s.config.refresh_grace + 1);
    assert_eq!(rotate(c.refresh.clone()).await, StatusCode::BAD_REQUEST);
    inactive(&s, &rs, &c.access, "refresh reuse").await;

    // A deleted user.
    let d = native_login(&s, "d@example.com").await;
    warm(&s, &rs, &d.access).await;
    let did = payload(&d.access)["sub"].as_str().unwrap().to_string();
    let r = s
        .http
        .delete(s.at(&format!("/admin/users/{did}")))
        .bearer_auth(&root.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    inactive(&s, &rs, &d.access, "user deleted").await;

    // A service token dies with its client.
    let svc = client(&s, "", &[]).await;
    let tok = client_token(&s, &svc.0, &svc.1, None).await;
    warm(&s, &rs, &tok).await;
    let r = s
        .http
        .delete(s.at(&format!("/admin/clients/{}", svc.0)))
        .bearer_auth(&root.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    inactive(&s, &rs, &tok, "client deleted").await;
}

/// A cached answer still expires with its token, and a deleted client, even one whose
/// authentication was cached, cannot introspect any more.
async fn introspection_cache_respects_expiry_and_deleted_clients(engine: Engine) {
    let Some(s) = server(engine).await else {
        return;
    };
    let rs = client(&s, "", &[]).await;
    admin(&s).await;
    let l = native_login(&s, "e@example.com").await;
    warm(&s, &rs, &l.access).await;

    // Active up to the last second of exp + leeway, from the cache; inactive after.
    let exp = payload(&l.access)["exp"].as_i64().unwrap();
    let last = exp + s.config.leeway - 1;
    s.advance(last - s.now());
    // (A slow machine may have crossed a second boundary: only assert while inside.)
    if s.now() == last {
        let before = cache_hits(&s).await;
        assert_eq!(introspect(&s, &rs, &l.access).await["active"], true);
        if s.now() == last {
            assert!(cache_hits(&s).await > before, "not answered from the cache");
        }
    }
    s.advance(exp + s.config.leeway - s.now());
    inactive(&s, &rs, &l.access, "expired").await;
    // (root's access token expired as well.)
    let root = s.login("root@example.com", PASSWORD).await;

    // A client whose authentication is cached is deleted: 401 at once.
    let other = client(&s, "", &[]).await;
    let tok = client_token(&s, &other.0, &other.1, None).await;
    warm(&s, &rs, &tok).await;
    warm(&s, &other, &tok).await;
    let r = s
        .http
        .delete(s.at(&format!("/admin/clients/{}", other.0)))
        .bearer_auth(&root.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = form(
        &s,
        "/oauth/introspect",
        &[("token", &l.access)],
        Some((&other.0, &other.1)),
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(r).await, "invalid_client");
    // A wrong secret for a cached client is refused too.
    warm(&s, &rs, &tok_for(&s).await).await;
    let r = form(
        &s,
        "/oauth/introspect",
        &[("token", &l.access)],
        Some((&rs.0, "not the secret")),
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

/// A fresh, active service token.
async fn tok_for(s: &TestServer) -> String {
    let svc = client(s, "", &[]).await;
    client_token(s, &svc.0, &svc.1, None).await
}
