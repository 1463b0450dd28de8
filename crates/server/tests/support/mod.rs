//! Helpers shared by the OAuth, admin and feed tests (on top of the harness in
//! `common/mod.rs`).
#![allow(dead_code)] // each test binary uses a different part

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use reqwest::Response;
use serde_json::{json, Value};

use crate::common::*;

/// Runs each named `async fn(Engine)` once on SQLite and once on PostgreSQL (skipped
/// loudly by the harness when PostgreSQL is unreachable).
#[macro_export]
macro_rules! engine_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Engine::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Engine::Postgres).await;
                }
            )*
        }
    };
}

/// Starts a server on `engine`; `None` when it is PostgreSQL and that is unreachable.
pub async fn server(engine: Engine) -> Option<TestServer> {
    TestServer::start_with(engine, |_| {}).await
}

/// The claims of a JWS (test inspection only; the server verified it).
pub fn payload(token: &str) -> Value {
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// Registers `root@example.com`, gives it the admin role (straight in the store, the way
/// `tessera user add --role admin` would) and logs in.
pub async fn admin(s: &TestServer) -> Login {
    let id = s.register("root@example.com", PASSWORD).await;
    s.state()
        .store
        .update_user(
            &id,
            &tessera_store::UserUpdate {
                roles: Some(vec!["admin".to_string()]),
                updated_at: s.now(),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    s.login("root@example.com", PASSWORD).await
}

/// Registers an OAuth client straight through the domain; returns (id, secret).
pub async fn client(s: &TestServer, scope: &str, roles: &[&str]) -> (String, String) {
    let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
    let reg =
        tessera_server::domain::clients::create(s.state(), "test client", &roles, Some(scope))
            .await
            .unwrap();
    (reg.client.client_id, reg.secret.to_string())
}

/// POSTs a form, optionally with HTTP Basic client credentials.
pub async fn form(
    s: &TestServer,
    path: &str,
    params: &[(&str, &str)],
    basic: Option<(&str, &str)>,
) -> Response {
    let mut req = s.http.post(s.at(path)).form(params);
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    req.send().await.unwrap()
}

/// `client_credentials` token for a client (Basic auth).
pub async fn client_token(s: &TestServer, id: &str, secret: &str, scope: Option<&str>) -> String {
    let mut params = vec![("grant_type", "client_credentials")];
    if let Some(scope) = scope {
        params.push(("scope", scope));
    }
    let r = form(s, "/oauth/token", &params, Some((id, secret))).await;
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string()
}

/// RFC 7662 introspection with a client's Basic credentials.
pub async fn introspect(s: &TestServer, client: &(String, String), token: &str) -> Value {
    let r = form(
        s,
        "/oauth/introspect",
        &[("token", token)],
        Some((&client.0, &client.1)),
    )
    .await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// A native login (refresh token in the body).
pub async fn native_login(s: &TestServer, email: &str) -> Login {
    s.register(email, PASSWORD).await;
    let r = s
        .post_json(
            "/auth/login",
            json!({"email": email, "password": PASSWORD, "native": true}),
        )
        .await;
    assert_eq!(r.status(), 200);
    login_from(r).await
}

/// The value of one sample line of a Prometheus text exposition (0 when absent).
pub fn metric(text: &str, name_and_labels: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            (k == name_and_labels).then(|| v.parse::<f64>().ok())?
        })
        .unwrap_or(0.0)
}
