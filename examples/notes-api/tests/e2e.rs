//! End-to-end: the real auth server (`tessera-server`, SQLite in a tempdir) and the notes API
//! (`notes_api::app` with a real `Verifier`) in this process, talking over loopback HTTP.
//!
//! Each revocation scenario checks both sides: the affected tokens are rejected by the notes
//! API within 1 s of the auth-server call, and an unaffected user's token keeps working.

// Test helpers outside #[test] fns: a failed unwrap is a failed test, which is what we want.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use tempfile::TempDir;
use tessera_server::{Clock, Config, Running};
use tessera_verify::Verifier;

const PASSWORD: &str = "correct horse battery staple";
const LIMIT: Duration = Duration::from_secs(1);

struct Env {
    _dir: TempDir,
    config: Config,
    proxy: Proxy,
    running: Option<Running>,
    auth: String,
    notes: String,
    http: reqwest::Client,
    admin: String,
    client_id: String,
    client_secret: String,
    verifier: Verifier,
}

#[derive(Debug, Clone)]
struct Login {
    access: String,
    session_id: String,
}

/// A loopback TCP proxy in front of the auth server: the issuer URL is the proxy's, so the
/// server can be stopped and started again (on any port) behind a stable issuer address.
struct Proxy {
    addr: SocketAddr,
    upstream: Arc<std::sync::Mutex<SocketAddr>>,
}

impl Proxy {
    async fn start() -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let upstream = Arc::new(std::sync::Mutex::new(addr));
        let u = upstream.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = *u.lock().unwrap();
                tokio::spawn(async move {
                    // Upstream down: drop the client connection, as a dead host would.
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Proxy { addr, upstream }
    }

    fn point_to(&self, upstream: SocketAddr) {
        *self.upstream.lock().unwrap() = upstream;
    }
}

async fn spawn_server(config: &Config, proxy: &Proxy) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let running = tessera_server::spawn(config.clone(), Clock::system(), listener)
        .await
        .unwrap();
    proxy.point_to(running.addr);
    running
}

/// Header read timeout of the notes API in these tests (production: 10 s).
const TEST_HEADER_TIMEOUT: Duration = Duration::from_secs(1);

/// Serves the notes API through its own accept loop (`notes_api::serve`), as `main` does.
async fn serve(app: notes_api::App) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        notes_api::serve(listener, app, TEST_HEADER_TIMEOUT, std::future::pending())
            .await
            .unwrap()
    });
    url
}

impl Env {
    async fn start() -> Env {
        Self::start_with(|b| b).await
    }

    async fn start_with(
        tweak: impl FnOnce(tessera_verify::VerifierBuilder) -> tessera_verify::VerifierBuilder,
    ) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let proxy = Proxy::start().await;
        let auth = format!("http://{}", proxy.addr);
        let config = Config {
            data_dir: dir.path().join("data"),
            issuer: Some(auth.clone()),
            cookie_secure: false,
            ..Config::default()
        };
        let running = spawn_server(&config, &proxy).await;
        let http = reqwest::Client::new();
        let setup = running
            .setup_token
            .clone()
            .expect("fresh server has a setup token");
        let r = http
            .post(format!("{auth}/auth/setup"))
            .json(&json!({"token": setup, "email": "admin@example.com", "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::CREATED,
            "setup: {}",
            r.text().await.unwrap()
        );
        let admin = login_at(&http, &auth, "admin@example.com", PASSWORD)
            .await
            .access;
        let r = http
            .post(format!("{auth}/admin/clients"))
            .bearer_auth(&admin)
            .json(&json!({"name": "notes-api", "scope": "revocations:read"}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::CREATED,
            "client: {}",
            r.text().await.unwrap()
        );
        let c: Value = r.json().await.unwrap();
        let client_id = c["client_id"].as_str().unwrap().to_owned();
        let client_secret = c["client_secret"].as_str().unwrap().to_owned();
        let builder = Verifier::builder(&auth)
            .audience("api")
            .client_credentials(&client_id, &client_secret)
            .feed_backoff(Duration::from_millis(50), Duration::from_millis(500));
        let verifier = tweak(builder).build().await.unwrap();
        let notes = serve(notes_api::app(verifier.clone())).await;
        Env {
            _dir: dir,
            config,
            proxy,
            running: Some(running),
            auth,
            notes,
            http,
            admin,
            client_id,
            client_secret,
            verifier,
        }
    }

    /// Registers `email` and logs in (native: tokens in the body).
    async fn user(&self, email: &str) -> (String, Login) {
        let r = self
            .http
            .post(format!("{}/auth/register", self.auth))
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        let id = r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        (id, self.login(email).await)
    }

    async fn login(&self, email: &str) -> Login {
        login_at(&self.http, &self.auth, email, PASSWORD).await
    }

    /// `GET /notes` at the notes API with `token`; the status.
    async fn notes_status(&self, token: &str) -> StatusCode {
        self.http
            .get(format!("{}/notes", self.notes))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status()
    }

    async fn auth_call(&self, method: reqwest::Method, path: &str, token: &str) -> StatusCode {
        self.http
            .request(method, format!("{}{path}", self.auth))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status()
    }

    async fn patch_user(&self, id: &str, body: Value) {
        let r = self
            .http
            .patch(format!("{}/admin/users/{id}", self.auth))
            .bearer_auth(&self.admin)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    }

    /// Waits until every token in `revoked` is rejected with 401 by the notes API, and checks
    /// that every token in `unaffected` still gets 200. Returns how long it took.
    async fn expect_rejected(&self, revoked: &[&str], unaffected: &[&str]) -> Duration {
        let start = Instant::now();
        loop {
            let mut all = true;
            for t in revoked {
                let s = self.notes_status(t).await;
                assert!(s == StatusCode::OK || s == StatusCode::UNAUTHORIZED, "{s}");
                all &= s == StatusCode::UNAUTHORIZED;
            }
            if all {
                break;
            }
            assert!(
                start.elapsed() < LIMIT,
                "revoked tokens still accepted after {LIMIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let took = start.elapsed();
        for t in unaffected {
            assert_eq!(
                self.notes_status(t).await,
                StatusCode::OK,
                "unaffected token rejected"
            );
        }
        took
    }
}

async fn login_at(http: &reqwest::Client, auth: &str, email: &str, password: &str) -> Login {
    let r = http
        .post(format!("{auth}/auth/login"))
        .json(&json!({"email": email, "password": password, "native": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "login {email}");
    let b: Value = r.json().await.unwrap();
    Login {
        access: b["access_token"].as_str().unwrap().to_owned(),
        session_id: b["session_id"].as_str().unwrap_or_default().to_owned(),
    }
}

#[tokio::test]
async fn notes_crud_ownership_and_bad_input() {
    let env = Env::start().await;
    let (_, alice) = env.user("alice@example.com").await;
    let (_, bob) = env.user("bob@example.com").await;
    let h = &env.http;
    let n = &env.notes;

    let r = h.get(format!("{n}/notes")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    let r = h
        .post(format!("{n}/notes"))
        .bearer_auth(&alice.access)
        .json(&json!({"text": "buy milk"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let note: Value = r.json().await.unwrap();
    assert_eq!(note["text"], "buy milk");
    let id = note["id"].as_str().unwrap().to_owned();

    let list: Value = h
        .get(format!("{n}/notes"))
        .bearer_auth(&alice.access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["notes"].as_array().unwrap().len(), 1);
    let list: Value = h
        .get(format!("{n}/notes"))
        .bearer_auth(&bob.access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        list["notes"].as_array().unwrap().len(),
        0,
        "bob sees no foreign notes"
    );
    let get = |t: &str| {
        h.get(format!("{n}/notes/{id}"))
            .bearer_auth(t.to_owned())
            .send()
    };
    assert_eq!(get(&alice.access).await.unwrap().status(), 200);
    assert_eq!(get(&bob.access).await.unwrap().status(), 404);
    let r = h
        .delete(format!("{n}/notes/{id}"))
        .bearer_auth(&bob.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "bob cannot delete alice's note");
    assert_eq!(
        h.get(format!("{n}/admin/notes"))
            .bearer_auth(&bob.access)
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    // The admin sees and deletes anyone's note.
    let all: Value = h
        .get(format!("{n}/admin/notes"))
        .bearer_auth(&env.admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(all["notes"].as_array().unwrap().len(), 1);
    assert!(!all["notes"][0]["owner"].as_str().unwrap().is_empty());
    let r = h
        .delete(format!("{n}/notes/{id}"))
        .bearer_auth(&env.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(get(&alice.access).await.unwrap().status(), 404);

    // Bad input: 4xx with an RFC 6749 body, nothing stored.
    for body in [
        "not json".to_owned(),
        json!({"text": ""}).to_string(),
        json!({"text": 5}).to_string(),
        json!({"text": "x", "extra": 1}).to_string(),
        json!({"text": "x".repeat(5000)}).to_string(),
        "x".repeat(100_000),
    ] {
        let too_large = body.len() > notes_api::MAX_BODY_BYTES;
        let r = h
            .post(format!("{n}/notes"))
            .bearer_auth(&alice.access)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_client_error(), "{}", r.status());
        if too_large {
            assert_eq!(r.status(), 413);
        }
        if r.status() == 400 {
            assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_request");
        }
    }
    let list: Value = h
        .get(format!("{n}/notes"))
        .bearer_auth(&alice.access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["notes"].as_array().unwrap().len(), 0);
    let health: Value = h
        .get(format!("{n}/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["verifier"]["feed_connected"], true);
}

/// The verifier's layer wraps the whole router: without a valid token every path but the
/// public `/healthz` is `401` (unknown ones too: the route table does not show), with one an
/// unknown path is `404`; `/healthz` needs no token and does not verify one it is sent.
#[tokio::test]
async fn deny_by_default_with_one_public_path() {
    let env = Env::start().await;
    let (_, alice) = env.user("alice@example.com").await;
    let (h, n) = (&env.http, &env.notes);
    for path in [
        "/notes",
        "/notes/x",
        "/admin/notes",
        "/nope",
        "/",
        "/healthz/",
        "/HEALTHZ",
    ] {
        let r = h.get(format!("{n}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path} without a token");
        assert_eq!(r.headers()["www-authenticate"], "Bearer", "{path}");
        let r = h
            .get(format!("{n}{path}"))
            .bearer_auth("not-a-token")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{path} with a bad token");
    }
    for path in ["/nope", "/", "/notes/x/y"] {
        let r = h
            .get(format!("{n}{path}"))
            .bearer_auth(&alice.access)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{path} with a valid token");
    }
    // Public, with or without a (bad) token, and on a query string.
    for (path, token) in [("/healthz", None), ("/healthz?x=1", Some("not-a-token"))] {
        let mut rq = h.get(format!("{n}{path}"));
        if let Some(t) = token {
            rq = rq.bearer_auth(t);
        }
        let r = rq.send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    // A method the route does not have: 405 to an authenticated caller, 401 to anyone else.
    let r = h.put(format!("{n}/notes")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = h
        .put(format!("{n}/notes"))
        .bearer_auth(&alice.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
}

#[tokio::test]
async fn logout_rejects_that_session_only() {
    let env = Env::start().await;
    let (_, alice) = env.user("alice@example.com").await;
    let (_, bob) = env.user("bob@example.com").await;
    let alice2 = env.login("alice@example.com").await;
    for t in [&alice.access, &alice2.access, &bob.access] {
        assert_eq!(env.notes_status(t).await, StatusCode::OK);
    }
    let s = env
        .auth_call(reqwest::Method::POST, "/auth/logout", &alice.access)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    env.expect_rejected(&[&alice.access], &[&alice2.access, &bob.access])
        .await;
}

#[tokio::test]
async fn session_revoked_from_another_device() {
    let env = Env::start().await;
    let (_, phone) = env.user("alice@example.com").await;
    let laptop = env.login("alice@example.com").await;
    let (_, bob) = env.user("bob@example.com").await;
    assert_eq!(env.notes_status(&phone.access).await, StatusCode::OK);
    let s = env
        .auth_call(
            reqwest::Method::DELETE,
            &format!("/auth/sessions/{}", phone.session_id),
            &laptop.access,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    env.expect_rejected(&[&phone.access], &[&laptop.access, &bob.access])
        .await;
}

#[tokio::test]
async fn logout_all_rejects_every_session_of_the_user() {
    let env = Env::start().await;
    let (_, a1) = env.user("alice@example.com").await;
    let a2 = env.login("alice@example.com").await;
    let (_, bob) = env.user("bob@example.com").await;
    for t in [&a1.access, &a2.access] {
        assert_eq!(env.notes_status(t).await, StatusCode::OK);
    }
    let s = env
        .auth_call(reqwest::Method::POST, "/auth/logout-all", &a1.access)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    env.expect_rejected(&[&a1.access, &a2.access], &[&bob.access])
        .await;
}

#[tokio::test]
async fn password_change_rejects_older_tokens() {
    let env = Env::start().await;
    let (_, a1) = env.user("alice@example.com").await;
    let a2 = env.login("alice@example.com").await;
    let (_, bob) = env.user("bob@example.com").await;
    assert_eq!(env.notes_status(&a1.access).await, StatusCode::OK);
    let r = env
        .http
        .post(format!("{}/auth/password", env.auth))
        .bearer_auth(&a1.access)
        .json(&json!({"current_password": PASSWORD, "new_password": "another long passphrase"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let fresh = r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    env.expect_rejected(&[&a1.access, &a2.access], &[&bob.access, &fresh])
        .await;
}

#[tokio::test]
async fn disabled_account_is_rejected() {
    let env = Env::start().await;
    let (alice_id, alice) = env.user("alice@example.com").await;
    let (_, bob) = env.user("bob@example.com").await;
    assert_eq!(env.notes_status(&alice.access).await, StatusCode::OK);
    env.patch_user(&alice_id, json!({"disabled": true})).await;
    env.expect_rejected(&[&alice.access], &[&bob.access]).await;
}

#[tokio::test]
async fn role_downgrade_rejects_tokens_carrying_the_old_role() {
    let env = Env::start().await;
    let (carol_id, _) = env.user("carol@example.com").await;
    let (_, bob) = env.user("bob@example.com").await;
    env.patch_user(&carol_id, json!({"roles": ["admin"]})).await;
    let carol = env.login("carol@example.com").await;
    let admin_notes = |t: String| {
        env.http
            .get(format!("{}/admin/notes", env.notes))
            .bearer_auth(t)
            .send()
    };
    assert_eq!(
        admin_notes(carol.access.clone()).await.unwrap().status(),
        200
    );
    // Past the second of carol's iat: the plain case (the same-second one is tested below).
    wait_past_iat(&carol.access).await;
    env.patch_user(&carol_id, json!({"roles": []})).await;
    env.expect_rejected(&[&carol.access], &[&bob.access, &env.admin])
        .await;
    // A fresh login carries the new roles: authenticated, but no longer an admin.
    let carol = env.login("carol@example.com").await;
    assert_eq!(env.notes_status(&carol.access).await, StatusCode::OK);
    assert_eq!(
        admin_notes(carol.access.clone()).await.unwrap().status(),
        403
    );
}

/// Sleeps until the wall clock is past the token's `iat`.
async fn wait_past_iat(token: &str) {
    let (_, claims) = tessera_jwt::dangerous::decode_unverified(token).unwrap();
    let iat = claims["iat"].as_i64().unwrap();
    while tessera_jwt::now() <= iat {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
// Promote, log in, demote within one second: the login got iat = first cutoff + 1, so the
// second cutoff must be at least that (docs/api.md cutoff rule; fixed in the server after this
// test caught it).
async fn role_downgrade_in_the_same_second_as_the_login() {
    let env = Env::start().await;
    let (carol_id, _) = env.user("carol@example.com").await;
    env.patch_user(&carol_id, json!({"roles": ["admin"]})).await;
    let carol = env.login("carol@example.com").await;
    env.patch_user(&carol_id, json!({"roles": []})).await;
    env.expect_rejected(&[&carol.access], &[&env.admin]).await;
}

#[tokio::test]
async fn key_rotation_during_continuous_requests_fails_nothing() {
    let env = Arc::new(Env::start().await);
    let (_, alice) = env.user("alice@example.com").await;
    let failures = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..4 {
        let (env, failures, done, stop) =
            (env.clone(), failures.clone(), done.clone(), stop.clone());
        let token = alice.access.clone();
        workers.push(tokio::spawn(async move {
            // Workers 0/1 keep using the pre-rotation token; 2/3 log in again and again, so
            // they present tokens signed by the new key as soon as it signs.
            let mut token = token;
            while !stop.load(Ordering::Relaxed) {
                if w >= 2 {
                    token = env.login("alice@example.com").await.access;
                }
                if env.notes_status(&token).await != StatusCode::OK {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let old_kid = kid_of(&alice.access);
    let r = env
        .http
        .post(format!("{}/admin/keys/rotate", env.auth))
        .bearer_auth(&env.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    // Run until new-key tokens have been presented for a while.
    let start = Instant::now();
    loop {
        let t = env.login("alice@example.com").await.access;
        if kid_of(&t) != old_kid {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "new key never signed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    assert!(done.load(Ordering::Relaxed) > 20);
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "requests failed during rotation"
    );
}

fn kid_of(token: &str) -> String {
    let (header, _) = tessera_jwt::dangerous::decode_unverified(token).unwrap();
    header["kid"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn auth_server_outage_and_restart() {
    let mut env =
        Env::start_with(|b| b.feed_backoff(Duration::from_millis(400), Duration::from_millis(800)))
            .await;
    let (_, alice) = env.user("alice@example.com").await;
    let (_, bob) = env.user("bob@example.com").await;
    let carol_login = {
        let (_, c) = env.user("carol@example.com").await;
        c
    };
    assert_eq!(env.notes_status(&alice.access).await, StatusCode::OK);
    let cursor_before = env.verifier.health().cursor;

    // The server stops (its feed streams end with it); the proxy then has nothing to forward
    // to, like a dead host.
    env.running.take().unwrap().stop().await.unwrap();
    // Down: cached keys keep verifying, including a token never seen before (carol's).
    let start = Instant::now();
    while env.verifier.health().feed_connected {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "feed still connected"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for t in [&alice.access, &bob.access, &carol_login.access] {
        assert_eq!(env.notes_status(t).await, StatusCode::OK);
    }
    let health: Value = env
        .http
        .get(format!("{}/healthz", env.notes))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["verifier"]["feed_connected"], false);

    // Back up on the same data; revoke at once, while the verifier is still in its reconnect
    // backoff, so it learns of it by resuming from its cursor.
    env.running = Some(spawn_server(&env.config, &env.proxy).await);
    let s = env
        .auth_call(reqwest::Method::POST, "/auth/logout", &alice.access)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let start = Instant::now();
    loop {
        if env.notes_status(&alice.access).await == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "revocation not applied after restart"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(env.notes_status(&bob.access).await, StatusCode::OK);
    let h = env.verifier.health();
    assert!(h.feed_connected && h.feed_reconnects >= 1);
    assert!(h.cursor > cursor_before);
    let _ = (&env.client_id, &env.client_secret);
}

#[tokio::test]
async fn random_kid_flood_is_rate_limited() {
    let interval = Duration::from_millis(500);
    let env = Env::start_with(|b| b.unknown_kid_refetch_interval(interval)).await;
    let (_, alice) = env.user("alice@example.com").await;
    let fetches_before = env.verifier.health().jwks_fetches;
    let issuer = env.auth.clone();
    let start = Instant::now();
    let mut sent = 0u32;
    while start.elapsed() < Duration::from_millis(1500) {
        let mut batch = Vec::new();
        for _ in 0..10 {
            let key = tessera_jwt::SigningKey::generate(tessera_jwt::Algorithm::EdDSA)
                .unwrap()
                .with_kid(format!("random-{sent}"));
            sent += 1;
            let now = tessera_jwt::now();
            let token = key
                .sign(
                    &tessera_jwt::Header::new().typ("at+jwt"),
                    &json!({"iss": issuer, "sub": "mallory", "aud": ["api"], "exp": now + 600,
                            "iat": now, "jti": format!("j{sent}")}),
                )
                .unwrap();
            let http = env.http.clone();
            let url = format!("{}/notes", env.notes);
            batch.push(tokio::spawn(async move {
                http.get(url)
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap()
                    .status()
            }));
        }
        for b in batch {
            assert_eq!(b.await.unwrap(), StatusCode::UNAUTHORIZED);
        }
    }
    let elapsed = start.elapsed();
    let fetches = env.verifier.health().jwks_fetches - fetches_before;
    let allowed = (elapsed.as_millis() / interval.as_millis()) as u64 + 1;
    assert!(sent >= 100, "only {sent} tokens sent");
    assert!(
        fetches <= allowed,
        "{fetches} JWKS fetches for {sent} random kids in {elapsed:?} (allowed {allowed})"
    );
    // Real users are unaffected.
    assert_eq!(env.notes_status(&alice.access).await, StatusCode::OK);
}

#[tokio::test]
async fn slow_and_oversized_requests_are_cut_off() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let env = Env::start().await;
    let addr = env.notes.trim_start_matches("http://").to_owned();
    // A client that trickles its request head one byte every 100 ms and never finishes.
    let mut c = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let started = Instant::now();
    let head = b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-slow: ";
    let mut closed_after = None;
    for round in 0..100 {
        let byte = head.get(round).copied().unwrap_or(b'a');
        if c.write_all(&[byte]).await.is_err() {
            closed_after = Some(started.elapsed());
            break;
        }
        let mut buf = [0u8; 512];
        match tokio::time::timeout(Duration::from_millis(100), c.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed_after = Some(started.elapsed());
                break;
            }
            Ok(Ok(n)) => {
                let text = String::from_utf8_lossy(&buf[..n]);
                assert!(text.contains("408"), "slow client got {text}");
            }
            Err(_) => {}
        }
    }
    let closed_after = closed_after.expect("a slowloris connection was kept open for 10 s");
    assert!(
        closed_after < TEST_HEADER_TIMEOUT * 4,
        "disconnected only after {closed_after:?}"
    );
    // A connection that sends nothing at all is dropped too.
    let mut idle = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut buf = [0u8; 64];
    let r = tokio::time::timeout(TEST_HEADER_TIMEOUT * 4, idle.read(&mut buf)).await;
    assert!(
        matches!(r, Ok(Ok(_)) | Ok(Err(_))),
        "an idle connection was kept open"
    );
    // An oversized body is refused with 413 whatever Content-Length claims, chunked too.
    let (_, login) = env.user("big@example.com").await;
    let big = "x".repeat(notes_api::MAX_BODY_BYTES + 1);
    let r = env
        .http
        .post(format!("{}/notes", env.notes))
        .bearer_auth(&login.access)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            vec![Ok::<_, std::io::Error>(big.clone())],
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_request");
    // And the server still serves.
    assert_eq!(env.notes_status(&login.access).await, StatusCode::OK);
}
