//! A NUL character (U+0000) in any text a client sends is bad input: a 4xx, never a 500, on
//! both engines. SQLite stores NUL like any other character; PostgreSQL text cannot hold it
//! and refuses the statement (SQLSTATE 22021, or 22P05 inside jsonb), which the store
//! reports as `StoreError::InvalidInput` and the server as `400 invalid_request`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[macro_use]
mod support;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::json;
use support::{admin, client, server};

engine_tests!(nul_characters_are_bad_input_everywhere);

async fn nul_characters_are_bad_input_everywhere(engine: Engine) {
    let Some(s) = server(engine).await else {
        return;
    };
    let adm = admin(&s).await;
    let user = s.new_user("u@example.com").await;
    let (cid, csecret) = client(&s, "", &[]).await;
    let user_id = s
        .state()
        .store
        .user_by_email("u@example.com")
        .await
        .unwrap()
        .unwrap()
        .id;
    let n = "\u{0}";
    let with_nul = format!("a{n}b");
    // (what, method, path, bearer, json body or form) -> the acceptable statuses. Where the
    // value reaches the database, SQLite and PostgreSQL may differ (SQLite finds no such
    // row: 404; PostgreSQL refuses the value: 400), but neither may fail.
    enum Body {
        None,
        Json(serde_json::Value),
        Form(Vec<(&'static str, String)>),
    }
    type Case<'a> = (&'a str, Method, String, Option<&'a str>, Body, &'a [u16]);
    let cases: Vec<Case> = vec![
        (
            "register email",
            Method::POST,
            "/auth/register".into(),
            None,
            Body::Json(json!({"email": format!("x{n}@example.com"), "password": PASSWORD})),
            &[400],
        ),
        (
            "login email",
            Method::POST,
            "/auth/login".into(),
            None,
            Body::Json(json!({"email": format!("u{n}@example.com"), "password": PASSWORD})),
            &[400, 401],
        ),
        (
            "password grant username",
            Method::POST,
            "/oauth/token".into(),
            None,
            Body::Form(vec![
                ("grant_type", "password".into()),
                ("username", format!("u{n}@example.com")),
                ("password", PASSWORD.into()),
            ]),
            &[400, 401],
        ),
        (
            "admin create user email",
            Method::POST,
            "/admin/users".into(),
            Some(&adm.access),
            Body::Json(json!({"email": format!("y{n}@example.com"), "password": PASSWORD})),
            &[400],
        ),
        (
            "admin create client name",
            Method::POST,
            "/admin/clients".into(),
            Some(&adm.access),
            Body::Json(json!({"name": with_nul, "scope": ""})),
            &[400],
        ),
        (
            "admin user search",
            Method::GET,
            "/admin/users?search=a%00b".into(),
            Some(&adm.access),
            Body::None,
            &[200, 400],
        ),
        (
            "admin user id",
            Method::GET,
            "/admin/users/a%00b".into(),
            Some(&adm.access),
            Body::None,
            &[400, 404],
        ),
        (
            "admin update user id",
            Method::PATCH,
            "/admin/users/a%00b".into(),
            Some(&adm.access),
            Body::Json(json!({"disabled": true})),
            &[400, 404],
        ),
        (
            "admin update user roles",
            Method::PATCH,
            format!("/admin/users/{user_id}"),
            Some(&adm.access),
            Body::Json(json!({"roles": [with_nul]})),
            &[400],
        ),
        (
            "admin delete user id",
            Method::DELETE,
            "/admin/users/a%00b".into(),
            Some(&adm.access),
            Body::None,
            &[400, 404],
        ),
        (
            "admin delete client id",
            Method::DELETE,
            "/admin/clients/a%00b".into(),
            Some(&adm.access),
            Body::None,
            &[400, 404],
        ),
        (
            "admin audit filters",
            Method::GET,
            "/admin/audit?user=a%00b&event=a%00b".into(),
            Some(&adm.access),
            Body::None,
            &[200, 400],
        ),
        (
            "own session id",
            Method::DELETE,
            "/auth/sessions/a%00b".into(),
            Some(&user.access),
            Body::None,
            &[400, 404],
        ),
        (
            "refresh token",
            Method::POST,
            "/oauth/token".into(),
            None,
            Body::Form(vec![
                ("grant_type", "refresh_token".into()),
                ("refresh_token", with_nul.clone()),
            ]),
            &[400],
        ),
        (
            "client_credentials client_id",
            Method::POST,
            "/oauth/token".into(),
            None,
            Body::Form(vec![
                ("grant_type", "client_credentials".into()),
                ("client_id", with_nul.clone()),
                ("client_secret", csecret.clone()),
            ]),
            &[400, 401],
        ),
        (
            "client_credentials scope",
            Method::POST,
            "/oauth/token".into(),
            None,
            Body::Form(vec![
                ("grant_type", "client_credentials".into()),
                ("client_id", cid.clone()),
                ("client_secret", csecret.clone()),
                ("scope", with_nul.clone()),
            ]),
            &[400],
        ),
        (
            "revoke token",
            Method::POST,
            "/oauth/revoke".into(),
            None,
            Body::Form(vec![("token", with_nul.clone())]),
            &[200, 400],
        ),
        (
            "introspect token",
            Method::POST,
            "/oauth/introspect".into(),
            None,
            Body::Form(vec![
                ("token", with_nul.clone()),
                ("client_id", cid.clone()),
                ("client_secret", csecret.clone()),
            ]),
            &[200, 400, 401],
        ),
        (
            "introspect client_id",
            Method::POST,
            "/oauth/introspect".into(),
            None,
            Body::Form(vec![
                ("token", user.access.clone()),
                ("client_id", with_nul.clone()),
                ("client_secret", csecret.clone()),
            ]),
            &[400, 401],
        ),
    ];
    let mut failures = Vec::new();
    for (what, method, path, bearer, body, ok) in cases {
        let mut req = s.http.request(method, s.at(&path));
        if let Some(t) = bearer {
            req = req.bearer_auth(t);
        }
        req = match body {
            Body::None => req,
            Body::Json(v) => req.json(&v),
            Body::Form(f) => req.form(&f),
        };
        let r = req.send().await.unwrap();
        let status = r.status();
        let text = r.text().await.unwrap_or_default();
        if !ok.contains(&status.as_u16()) {
            failures.push(format!("{what}: {status} {text}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{engine:?}: NUL answered wrongly:\n{}",
        failures.join("\n")
    );
    // Nothing was broken along the way.
    assert_eq!(
        s.get_bearer("/auth/me", &user.access).await.status(),
        StatusCode::OK
    );
}
