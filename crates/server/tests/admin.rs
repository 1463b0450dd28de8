//! The admin API, the operations endpoints (`/healthz`, `/readyz`, `/metrics`) and the
//! OpenAPI document, over real HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[macro_use]
mod support;

use common::*;
use reqwest::header::WWW_AUTHENTICATE;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::*;

engine_tests!(
    admin_endpoints_refuse_non_admins,
    admin_users_crud_with_cutoffs_and_audit,
    admin_clients_and_keys,
    admin_audit_paging_and_filters,
    admin_bad_input_is_4xx_and_stores_nothing,
    ops_health_ready_and_metrics_move,
    openapi_lists_every_route,
);

/// Every admin route with a method (ids are placeholders).
const ADMIN_ROUTES: &[(&str, &str)] = &[
    ("GET", "/admin/users"),
    ("POST", "/admin/users"),
    ("GET", "/admin/users/x"),
    ("PATCH", "/admin/users/x"),
    ("DELETE", "/admin/users/x"),
    ("GET", "/admin/clients"),
    ("POST", "/admin/clients"),
    ("DELETE", "/admin/clients/x"),
    ("GET", "/admin/keys"),
    ("POST", "/admin/keys/rotate"),
    ("GET", "/admin/audit"),
];

async fn call(
    s: &TestServer,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut req = s
        .http
        .request(Method::from_bytes(method.as_bytes()).unwrap(), s.at(path))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send().await.unwrap()
}

async fn admin_endpoints_refuse_non_admins(engine: Engine) {
    let Some(s) = server(engine).await else {
        return;
    };
    let user = native_login(&s, "user@example.com").await;
    let svc = client(&s, "", &["admin"]).await;
    let svc_token = client_token(&s, &svc.0, &svc.1, None).await;
    let keys_before = s.state().store.list_keys().await.unwrap().len();
    for (m, p) in ADMIN_ROUTES {
        let body = (*m == "POST" || *m == "PATCH")
            .then(|| json!({"name": "x", "email": "a@b.c", "password": PASSWORD}));
        let r = call(&s, m, p, &user.access, body.clone()).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{m} {p}");
        assert!(r.headers()[WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .contains("insufficient_scope"));
        assert_eq!(error_code(r).await, "insufficient_scope");
        // A service token with an `admin` role is not an admin user.
        let r = call(&s, m, p, &svc_token, body).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "service {m} {p}");
        // No token at all.
        let r = s
            .http
            .request(Method::from_bytes(m.as_bytes()).unwrap(), s.at(p))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "anonymous {m} {p}");
    }
    // Nothing happened.
    assert_eq!(
        s.state().store.list_keys().await.unwrap().len(),
        keys_before
    );
    assert_eq!(s.state().store.count_users().await.unwrap(), 1);
    assert_eq!(s.state().store.list_clients().await.unwrap().len(), 1);
}

async fn admin_users_crud_with_cutoffs_and_audit(engine: Engine) {
    let Some(s) = server(engine).await else {
        return;
    };
    let root = admin(&s).await;
    let root_id = payload(&root.access)["sub"].as_str().unwrap().to_string();
    let t = root.access.as_str();

    // Create.
    let r = call(
        &s,
        "POST",
        "/admin/users",
        t,
        Some(json!({"email": " Zed@Example.com", "password": PASSWORD, "roles": ["editor"]})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let zed: Value = r.json().await.unwrap();
    assert_eq!(zed["email"], "zed@example.com");
    assert_eq!(zed["roles"], json!(["editor"]));
    assert_eq!(zed["disabled"], false);
    assert!(zed.get("password_hash").is_none());
    let zid = zed["id"].as_str().unwrap().to_string();
    let r = call(
        &s,
        "POST",
        "/admin/users",
        t,
        Some(json!({"email": "zed@example.com", "password": PASSWORD})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    for i in 0..3 {
        let r = call(
            &s,
            "POST",
            "/admin/users",
            t,
            Some(json!({"email": format!("amy{i}@example.com"), "password": PASSWORD})),
        )
        .await;
        assert_eq!(r.status(), StatusCode::CREATED);
    }

    // List: order, search, paging.
    let list: Value = call(&s, "GET", "/admin/users", t, None)
        .await
        .json()
        .await
        .unwrap();
    let emails: Vec<&str> = list["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap())
        .collect();
    assert_eq!(
        emails,
        [
            "amy0@example.com",
            "amy1@example.com",
            "amy2@example.com",
            "root@example.com",
            "zed@example.com"
        ]
    );
    let list: Value = call(
        &s,
        "GET",
        "/admin/users?search=AMY&limit=2&offset=1",
        t,
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    let emails: Vec<&str> = list["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap())
        .collect();
    assert_eq!(emails, ["amy1@example.com", "amy2@example.com"]);

    // Get.
    let got: Value = call(&s, "GET", &format!("/admin/users/{zid}"), t, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got, zed);
    assert_eq!(
        call(&s, "GET", "/admin/users/nobody", t, None)
            .await
            .status(),
        StatusCode::NOT_FOUND
    );

    // Role change: cutoff, old token dead, new token carries the roles.
    let z = s.login("zed@example.com", PASSWORD).await;
    assert_eq!(
        s.get_bearer("/auth/me", &z.access).await.status(),
        StatusCode::OK
    );
    let r = call(
        &s,
        "PATCH",
        &format!("/admin/users/{zid}"),
        t,
        Some(json!({"roles": ["editor", "viewer"]})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["roles"], json!(["editor", "viewer"]));
    assert_eq!(
        s.get_bearer("/auth/me", &z.access).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let stored = s.state().store.user_by_id(&zid).await.unwrap().unwrap();
    assert!(stored.token_cutoff.unwrap() >= payload(&z.access)["iat"].as_i64().unwrap());
    // The session survives a role change: a refresh gets a token with the new roles.
    let r = s.refresh(&z.refresh).await;
    assert_eq!(r.status(), StatusCode::OK);
    let z2 = login_from(r).await;
    assert_eq!(payload(&z2.access)["roles"], json!(["editor", "viewer"]));
    assert_eq!(
        s.get_bearer("/auth/me", &z2.access).await.status(),
        StatusCode::OK
    );

    // Disable: cutoff + every session revoked; login refused.
    let r = call(
        &s,
        "PATCH",
        &format!("/admin/users/{zid}"),
        t,
        Some(json!({"disabled": true})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["disabled"], true);
    assert_eq!(
        s.get_bearer("/auth/me", &z2.access).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert!(s
        .state()
        .store
        .live_sessions(&zid, s.now())
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        s.refresh(&z2.refresh).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let r = s
        .post_json(
            "/auth/login",
            json!({"email": "zed@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // Enable again: login works.
    let r = call(
        &s,
        "PATCH",
        &format!("/admin/users/{zid}"),
        t,
        Some(json!({"disabled": false})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let z3 = s.login("zed@example.com", PASSWORD).await;

    // An admin cannot lock themselves out.
    for body in [json!({"disabled": true}), json!({"roles": ["editor"]})] {
        let r = call(
            &s,
            "PATCH",
            &format!("/admin/users/{root_id}"),
            t,
            Some(body),
        )
        .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    }
    assert_eq!(
        call(&s, "DELETE", &format!("/admin/users/{root_id}"), t, None)
            .await
            .status(),
        StatusCode::BAD_REQUEST
    );

    // Delete: token dead, user gone, events on the feed.
    let r = call(&s, "DELETE", &format!("/admin/users/{zid}"), t, None).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        s.get_bearer("/auth/me", &z3.access).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&s, "GET", &format!("/admin/users/{zid}"), t, None)
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(&s, "DELETE", &format!("/admin/users/{zid}"), t, None)
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    let evs = s
        .state()
        .store
        .revocations_since(0, s.now(), 100)
        .await
        .unwrap();
    assert!(evs
        .iter()
        .any(|e| e.subject == zid && e.kind.as_str() == "user"));
    assert!(evs
        .iter()
        .any(|e| e.subject == z3.session_id && e.kind.as_str() == "session"));

    // Audit: every action, by the admin, from loopback.
    for (event, n) in [
        ("admin.user_created", 4),
        ("admin.user_updated", 3),
        ("admin.user_deleted", 1),
    ] {
        let evs = s.audit(event).await;
        assert_eq!(evs.len(), n, "{event}");
        for e in evs {
            assert_eq!(e.actor.as_deref(), Some(root_id.as_str()));
            assert_eq!(e.ip.as_deref(), Some("127.0.0.1"));
            assert!(!e.detail.to_string().contains(PASSWORD));
        }
    }
}

async fn admin_clients_and_keys(engine: Engine) {
    let Some(s) = server(engine).await else {
        return;
    };
    let root = admin(&s).await;
    let t = root.access.as_str();

    // Create: the secret is shown once.
    let r = call(
        &s,
        "POST",
        "/admin/clients",
        t,
        Some(json!({"name": "notes api", "roles": ["svc"], "scope": "revocations:read"})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let c: Value = r.json().await.unwrap();
    let (id, secret) = (
        c["client_id"].as_str().unwrap().to_string(),
        c["client_secret"].as_str().unwrap().to_string(),
    );
    assert_eq!(secret.len(), 43);
    assert_eq!(c["scope"], "revocations:read");
    assert_eq!(c["roles"], json!(["svc"]));
    let stored = s.state().store.client_by_id(&id).await.unwrap().unwrap();
    assert_ne!(
        stored.secret_hash,
        secret.as_bytes(),
        "only a hash is stored"
    );
    assert_eq!(stored.secret_hash.len(), 32);
    let list = call(&s, "GET", "/admin/clients", t, None)
        .await
        .text()
        .await
        .unwrap();
    assert!(list.contains(&id) && !list.contains(&secret));
    let v: Value = serde_json::from_str(&list).unwrap();
    assert_eq!(v["clients"][0]["name"], "notes api");

    // The client works, then is deleted.
    let tok = client_token(&s, &id, &secret, None).await;
    let r = s
        .http
        .get(s.at("/revocations"))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        call(&s, "DELETE", &format!("/admin/clients/{id}"), t, None)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        call(&s, "DELETE", &format!("/admin/clients/{id}"), t, None)
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    let r = form(
        &s,
        "/oauth/token",
        &[("grant_type", "client_credentials")],
        Some((&id, &secret)),
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = s
        .http
        .get(s.at("/revocations"))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // Keys: one active; rotation makes a new active key, the old one retired but published.
    let keys: Value = call(&s, "GET", "/admin/keys", t, None)
        .await
        .json()
        .await
        .unwrap();
    let keys = keys["keys"].as_array().unwrap().clone();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["state"], "active");
    assert_eq!(keys[0]["alg"], "EdDSA");
    let old = keys[0]["kid"].as_str().unwrap().to_string();
    let r = call(&s, "POST", "/admin/keys/rotate", t, None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let new = r.json::<Value>().await.unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(new, old);
    let keys: Value = call(&s, "GET", "/admin/keys", t, None)
        .await
        .json()
        .await
        .unwrap();
    let state_of = |kid: &str| {
        keys["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"] == kid)
            .unwrap()["state"]
            .clone()
    };
    assert_eq!(state_of(&new), "active");
    assert_eq!(state_of(&old), "retired");
    let jwks: Value = s
        .http
        .get(s.at("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert!(kids.contains(&old.as_str()) && kids.contains(&new.as_str()));
    // New tokens use the new key; the admin's old token still works.
    let l = native_login(&s, "sam@example.com").await;
    let h: Value = {
        use base64::Engine as _;
        let part = l.access.split('.').next().unwrap();
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(part)
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(h["kid"], new.as_str());
    assert_eq!(s.get_bearer("/auth/me", t).await.status(), StatusCode::OK);
    // The state follows the clock: once the old key's tokens expired it leaves the list.
    let remove_at = s
        .state()
        .store
        .list_keys()
        .await
        .unwrap()
        .iter()
        .find(|k| k.kid == old)
        .unwrap()
        .remove_at
        .unwrap();
    assert!(remove_at > s.now());

    let evs = s.audit("admin.key_rotated").await;
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0].subject.as_deref(), Some(new.as_str()));
    assert_eq!(s.audit("admin.client_created").await.len(), 1);
    assert_eq!(s.audit("admin.client_deleted").await.len(), 1);
    let created = &s.audit("admin.client_created").await[0];
    assert!(!created.detail.to_string().contains(&secret));
}

async fn admin_audit_paging_and_filters(engine: Engine) {
    let Some(s) = server(engine).await else {
        return;
    };
    let root = admin(&s).await;
    let t = root.access.as_str();
    let mut ids = Vec::new();
    for i in 0..5 {
        let r = call(
            &s,
            "POST",
            "/admin/users",
            t,
            Some(json!({"email": format!("p{i}@example.com"), "password": PASSWORD})),
        )
        .await;
        ids.push(
            r.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let page: Value = call(
        &s,
        "GET",
        "/admin/audit?event=admin.user_created&limit=2",
        t,
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    let evs = page["events"].as_array().unwrap();
    assert_eq!(evs.len(), 2);
    assert_eq!(evs[0]["subject"], ids[4].as_str(), "newest first");
    assert_eq!(evs[0]["event"], "admin.user_created");
    assert!(evs[0]["at"].is_i64() && evs[0]["detail"].is_object());
    let mut seen: Vec<String> = evs
        .iter()
        .map(|e| e["subject"].as_str().unwrap().to_string())
        .collect();
    let mut before = page["next_before"].as_i64().unwrap();
    loop {
        let page: Value = call(
            &s,
            "GET",
            &format!("/admin/audit?event=admin.user_created&limit=2&before={before}"),
            t,
            None,
        )
        .await
        .json()
        .await
        .unwrap();
        seen.extend(
            page["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["subject"].as_str().unwrap().to_string()),
        );
        match page["next_before"].as_i64() {
            Some(b) => before = b,
            None => break,
        }
    }
    let mut expect = ids.clone();
    expect.reverse();
    assert_eq!(seen, expect, "every event once, newest first");
    // By user.
    let page: Value = call(&s, "GET", &format!("/admin/audit?user={}", ids[2]), t, None)
        .await
        .json()
        .await
        .unwrap();
    let evs = page["events"].as_array().unwrap();
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0]["subject"], ids[2].as_str());
    assert!(page["next_before"].is_null());
    // Bad paging input.
    for q in ["?before=x", "?limit=-1", "?limit=abc"] {
        let r = call(&s, "GET", &format!("/admin/audit{q}"), t, None).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{q}");
        assert_eq!(error_code(r).await, "invalid_request");
    }
}

async fn admin_bad_input_is_4xx_and_stores_nothing(engine: Engine) {
    let Some(s) = server(engine).await else {
        return;
    };
    let root = admin(&s).await;
    let t = root.access.as_str();
    let target = s.register("tom@example.com", PASSWORD).await;
    let raw = |m: &'static str, p: String, body: &'static str, ct: &'static str| {
        s.http
            .request(Method::from_bytes(m.as_bytes()).unwrap(), s.at(&p))
            .bearer_auth(t)
            .header("content-type", ct)
            .body(body)
    };
    let cases = [
        raw("POST", "/admin/users".into(), "{", "application/json"),
        raw(
            "POST",
            "/admin/users".into(),
            "{\"email\": \"x@y.z\"}",
            "application/json",
        ),
        raw(
            "POST",
            "/admin/users".into(),
            "{\"email\": 1, \"password\": 2}",
            "application/json",
        ),
        raw(
            "POST",
            "/admin/users".into(),
            "{\"email\": \"bad\", \"password\": \"correct horse\"}",
            "application/json",
        ),
        raw(
            "POST",
            "/admin/users".into(),
            "{\"email\": \"a@b.c\", \"password\": \"short\"}",
            "application/json",
        ),
        raw(
            "POST",
            "/admin/users".into(),
            "{\"email\": \"a@b.c\", \"password\": \"correct horse\", \"roles\": [\"Bad Role\"]}",
            "application/json",
        ),
        raw(
            "POST",
            "/admin/users".into(),
            "email=a",
            "application/x-www-form-urlencoded",
        ),
        raw(
            "PATCH",
            format!("/admin/users/{target}"),
            "{\"roles\": \"admin\"}",
            "application/json",
        ),
        raw(
            "PATCH",
            format!("/admin/users/{target}"),
            "{\"disabled\": \"yes\"}",
            "application/json",
        ),
        raw(
            "PATCH",
            format!("/admin/users/{target}"),
            "{\"password\": \"x\"}",
            "application/json",
        ),
        raw(
            "POST",
            "/admin/clients".into(),
            "{\"name\": \"\"}",
            "application/json",
        ),
        raw(
            "POST",
            "/admin/clients".into(),
            "{\"name\": \"n\", \"scope\": \"a\\\\b\"}",
            "application/json",
        ),
        raw("POST", "/admin/clients".into(), "[]", "application/json"),
    ];
    for (i, req) in cases.into_iter().enumerate() {
        let r = req.send().await.unwrap();
        assert!(r.status().is_client_error(), "case {i}: {}", r.status());
        let v: Value = r.json().await.unwrap();
        assert!(v["error"].is_string(), "case {i}");
    }
    let big = "x".repeat(100_000);
    let r = s
        .http
        .post(s.at("/admin/clients"))
        .bearer_auth(t)
        .json(&json!({"name": big}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // Nothing stored or changed.
    assert_eq!(s.state().store.count_users().await.unwrap(), 2);
    assert!(s.state().store.list_clients().await.unwrap().is_empty());
    let u = s.state().store.user_by_id(&target).await.unwrap().unwrap();
    assert!(u.roles.is_empty() && !u.disabled && u.token_cutoff.is_none());
    assert!(s
        .state()
        .store
        .revocations_since(0, s.now(), 10)
        .await
        .unwrap()
        .is_empty());
}

async fn ops_health_ready_and_metrics_move(engine: Engine) {
    let Some(s) = server(engine).await else {
        return;
    };
    let get = |p: &'static str| s.http.get(s.at(p)).send();
    assert_eq!(get("/healthz").await.unwrap().status(), StatusCode::OK);
    let r = get("/readyz").await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "ok");

    let m0 = get("/metrics").await.unwrap();
    assert!(m0.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let m0 = m0.text().await.unwrap();
    assert!(m0.contains("# TYPE tessera_logins_total counter"), "{m0}");

    let root = admin(&s).await;
    let r = s
        .post_json(
            "/auth/login",
            json!({"email": "root@example.com", "password": "wrong password"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let l = s.login("root@example.com", PASSWORD).await;
    assert_eq!(s.refresh(&l.refresh).await.status(), StatusCode::OK);
    s.advance(60);
    assert_eq!(
        s.refresh(&l.refresh).await.status(),
        StatusCode::UNAUTHORIZED
    ); // reuse
    let r = call(&s, "GET", "/admin/users/nobody", &root.access, None).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        call(&s, "POST", "/admin/keys/rotate", &root.access, None)
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        get("/no/such/path").await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get("/assets/app.css").await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        s.http.put(s.at("/healthz")).send().await.unwrap().status(),
        StatusCode::METHOD_NOT_ALLOWED
    );

    let m = get("/metrics").await.unwrap().text().await.unwrap();
    assert_eq!(
        metric(&m, "tessera_logins_total{result=\"ok\"}"),
        2.0,
        "{m}"
    );
    assert_eq!(metric(&m, "tessera_logins_total{result=\"failed\"}"), 1.0);
    assert_eq!(metric(&m, "tessera_refreshes_total"), 1.0);
    assert_eq!(metric(&m, "tessera_refresh_reuse_detected_total"), 1.0);
    assert_eq!(
        metric(&m, "tessera_revocations_total{kind=\"session\"}"),
        1.0
    );
    assert_eq!(metric(&m, "tessera_key_rotations_total"), 1.0);
    // Requests by matched route (never the raw path) and status, with latency.
    assert_eq!(
        metric(&m, "tessera_http_requests_total{method=\"GET\",route=\"/admin/users/{id}\",status=\"404\"}"),
        1.0
    );
    assert_eq!(
        metric(
            &m,
            "tessera_http_requests_total{method=\"POST\",route=\"/auth/login\",status=\"401\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(
            &m,
            "tessera_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"}"
        ),
        1.0
    );
    // A wildcard route by its pattern; a 405 by the route that lacks the method.
    assert_eq!(
        metric(
            &m,
            "tessera_http_requests_total{method=\"GET\",route=\"/assets/{*path}\",status=\"200\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(
            &m,
            "tessera_http_requests_total{method=\"PUT\",route=\"/healthz\",status=\"405\"}"
        ),
        1.0
    );
    assert!(!m.contains("nobody") && !m.contains("/no/such/path") && !m.contains("app.css"));
    assert!(
        metric(
            &m,
            "tessera_http_request_duration_seconds_count{method=\"POST\",route=\"/auth/login\"}"
        ) >= 3.0
    );
    assert!(m.contains("tessera_http_request_duration_seconds_bucket{method=\"POST\",route=\"/auth/login\",le=\"0.005\"}"));

    // Two servers in one process count separately (no global recorder).
    let Some(other) = server(engine).await else {
        return;
    };
    let m2 = other
        .http
        .get(other.at("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(metric(&m2, "tessera_logins_total{result=\"ok\"}"), 0.0);
}

async fn openapi_lists_every_route(engine: Engine) {
    let Some(s) = server(engine).await else {
        return;
    };
    let r = s.http.get(s.at("/openapi.json")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let doc: Value = r.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let expected: &[(&str, &str)] = &[
        ("get", "/auth/config"),
        ("post", "/auth/setup"),
        ("post", "/auth/register"),
        ("post", "/auth/login"),
        ("post", "/auth/refresh"),
        ("post", "/auth/logout"),
        ("post", "/auth/logout-all"),
        ("get", "/auth/me"),
        ("get", "/auth/sessions"),
        ("delete", "/auth/sessions"),
        ("delete", "/auth/sessions/{id}"),
        ("post", "/auth/password"),
        ("post", "/oauth/token"),
        ("post", "/oauth/revoke"),
        ("post", "/oauth/introspect"),
        ("get", "/.well-known/jwks.json"),
        ("get", "/.well-known/oauth-authorization-server"),
        ("get", "/.well-known/openid-configuration"),
        ("get", "/revocations"),
        ("get", "/revocations/stream"),
        ("get", "/admin/users"),
        ("post", "/admin/users"),
        ("get", "/admin/users/{id}"),
        ("patch", "/admin/users/{id}"),
        ("delete", "/admin/users/{id}"),
        ("get", "/admin/clients"),
        ("post", "/admin/clients"),
        ("delete", "/admin/clients/{id}"),
        ("get", "/admin/keys"),
        ("post", "/admin/keys/rotate"),
        ("get", "/admin/audit"),
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/metrics"),
        ("get", "/openapi.json"),
    ];
    let paths = doc["paths"].as_object().unwrap();
    let mut listed = 0;
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            listed += 1;
            assert!(
                expected.contains(&(method.as_str(), path.as_str())),
                "unexpected {method} {path}"
            );
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{method} {path}"
            );
            // The server really answers it (not the 404/405 fallbacks).
            let url = s.at(&path.replace("{id}", "x"));
            if path == "/revocations/stream" {
                continue;
            }
            let r = s
                .http
                .request(
                    Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(),
                    url,
                )
                .send()
                .await
                .unwrap();
            assert_ne!(
                r.status(),
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}"
            );
            if r.status() == StatusCode::NOT_FOUND {
                panic!("{method} {path} is not served");
            }
        }
    }
    assert_eq!(listed, expected.len(), "every route listed exactly once");
    // Request bodies and schemas are described.
    let token = &paths["/oauth/token"]["post"];
    assert!(token["requestBody"]["content"]["application/x-www-form-urlencoded"].is_object());
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in [
        "ErrorBody",
        "TokenResponse",
        "IntrospectResponse",
        "UserView",
        "CreatedClient",
        "FeedPage",
        "EventView",
        "LoginResponse",
    ] {
        assert!(schemas.contains_key(name), "schema {name}");
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

/// Without a single scrape, the server folds recorded latency samples on its own every
/// `UPKEEP_INTERVAL` (a never-scraped server would otherwise keep every sample it recorded),
/// and the upkeep task ends with the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_upkeep_runs_without_scrapes_and_stops_with_the_server() {
    use std::time::{Duration, Instant};
    use tessera_server::metrics::UPKEEP_INTERVAL;

    let mut s = TestServer::start().await;
    let metrics = s.state().metrics.clone();
    for _ in 0..20 {
        let r = s.http.get(s.at("/healthz")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    // Nothing here scrapes /metrics: every upkeep counted is the server's own task.
    let deadline = Instant::now() + UPKEEP_INTERVAL * 4;
    while metrics.upkeeps() < 2 {
        assert!(
            Instant::now() < deadline,
            "no periodic metrics upkeep: {} runs in {:?}",
            metrics.upkeeps(),
            UPKEEP_INTERVAL * 4
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let running = s.running.take().unwrap();
    tokio::time::timeout(Duration::from_secs(20), running.stop())
        .await
        .expect("server stops")
        .unwrap();
    let after = metrics.upkeeps();
    tokio::time::sleep(UPKEEP_INTERVAL + Duration::from_secs(1)).await;
    assert_eq!(metrics.upkeeps(), after, "upkeep task outlived the server");
}
