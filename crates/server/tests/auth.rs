//! First-party account, session and refresh flows over real HTTP (docs/api.md).
// Test helpers outside #[test] fns: a malformed response must fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use common::*;
use reqwest::header::{ORIGIN, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::StatusCode;
use serde_json::{json, Value};

fn payload(token: &str) -> Value {
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

fn header(token: &str) -> Value {
    let part = token.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

#[tokio::test]
async fn register_login_me_and_token_profile() {
    let s = TestServer::start().await;
    let id = s.register("  Alice@Example.COM ", PASSWORD).await;
    let r = s
        .post_json(
            "/auth/login",
            json!({"email": "alice@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let (_, raw_cookie) = set_cookie(&r, "tessera_refresh").unwrap();
    for attr in [
        "HttpOnly",
        "Secure",
        "SameSite=Strict",
        "Path=/auth",
        "Max-Age=2592000",
    ] {
        assert!(
            raw_cookie.contains(attr),
            "cookie lacks {attr}: {raw_cookie}"
        );
    }
    let login = login_from(r).await;
    assert_eq!(login.body["token_type"], "Bearer");
    assert_eq!(login.body["expires_in"], 600);
    assert!(login.body.get("refresh_token").is_none());
    assert_eq!(login.refresh.len(), 43);

    let h = header(&login.access);
    assert_eq!(h["typ"], "at+jwt");
    assert_eq!(h["alg"], "EdDSA");
    assert!(h["kid"].is_string());
    let c = payload(&login.access);
    assert_eq!(c["iss"], ISSUER);
    assert_eq!(c["sub"], id.as_str());
    assert_eq!(c["aud"], json!(["api"]));
    assert_eq!(c["sid"], login.session_id.as_str());
    assert_eq!(c["client_id"], "tessera");
    assert_eq!(c["roles"], json!([]));
    assert_eq!(c["exp"].as_i64().unwrap() - c["nbf"].as_i64().unwrap(), 600);
    assert!(c["jti"].is_string() && c["iat"].is_i64());
    assert!(
        !c.to_string().contains("alice"),
        "no personal data in tokens"
    );

    let me: Value = s
        .get_bearer("/auth/me", &login.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["id"], id.as_str());
    assert_eq!(me["email"], "alice@example.com");
    assert_eq!(me["session_id"], login.session_id.as_str());
    assert_eq!(me["token_expires_at"], c["exp"]);
    assert_eq!(s.audit("register").await.len(), 1);
    assert_eq!(s.audit("login").await.len(), 1);
}

#[tokio::test]
async fn native_login_puts_refresh_token_in_body_only() {
    let s = TestServer::start().await;
    s.register("n@example.com", PASSWORD).await;
    let r = s
        .post_json(
            "/auth/login",
            json!({"email": "n@example.com", "password": PASSWORD, "native": true}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(set_cookie(&r, "tessera_refresh").is_none());
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["refresh_token"].as_str().unwrap().len(), 43);
}

#[tokio::test]
async fn duplicate_registration_is_indistinguishable() {
    let s = TestServer::start().await;
    let a = s.register("dup@example.com", PASSWORD).await;
    let b = s.register("DUP@example.com", "another password").await;
    assert_ne!(a, b, "a duplicate gets a random id, not the real one");
    assert_eq!(s.audit("register_duplicate").await.len(), 1);
    assert_eq!(s.state().store.count_users().await.unwrap(), 1);
    // The original password still works; the duplicate's does not.
    s.login("dup@example.com", PASSWORD).await;
    let r = s
        .post_json(
            "/auth/login",
            json!({"email": "dup@example.com", "password": "another password"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn unknown_user_and_wrong_password_get_the_same_answer() {
    let s = TestServer::start().await;
    s.register("known@example.com", PASSWORD).await;
    let wrong = s
        .post_json(
            "/auth/login",
            json!({"email": "known@example.com", "password": "wrong password"}),
        )
        .await;
    let unknown = s
        .post_json(
            "/auth/login",
            json!({"email": "nobody@example.com", "password": "wrong password"}),
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.status(), wrong.status());
    let (wb, ub) = (wrong.text().await.unwrap(), unknown.text().await.unwrap());
    assert_eq!(wb, ub);
    let v: Value = serde_json::from_str(&wb).unwrap();
    assert_eq!(v["error"], "invalid_grant");
    assert_eq!(v["error_description"], "Invalid email or password");
    assert_eq!(s.audit("login_failed").await.len(), 2);
}

#[tokio::test]
async fn throttling_locks_with_growing_delays_and_success_clears() {
    // A frozen clock: with wall time a second can tick between the lock and the next
    // attempt on a loaded machine, and Retry-After (whole seconds left) would shrink.
    let s = TestServer::start_frozen().await;
    s.register("t@example.com", PASSWORD).await;
    let attempt = |pw: &'static str| {
        let s = &s;
        async move {
            s.post_json(
                "/auth/login",
                json!({"email": "t@example.com", "password": pw}),
            )
            .await
        }
    };
    for _ in 0..5 {
        assert_eq!(
            attempt("wrong password").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    // 6th failure: still checked, but locks the account for 1 s.
    assert_eq!(
        attempt("wrong password").await.status(),
        StatusCode::UNAUTHORIZED
    );
    // Locked: even the right password is refused without being checked.
    let r = attempt(PASSWORD).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()[RETRY_AFTER], "1");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "too_many_attempts");
    assert_eq!(v["retry_after"], 1);

    s.advance(2);
    assert_eq!(
        attempt("wrong password").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let r = attempt("wrong password").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()[RETRY_AFTER], "2", "the delay grows");

    s.advance(3);
    assert_eq!(
        attempt("wrong password").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let r = attempt(PASSWORD).await;
    assert_eq!(r.headers()[RETRY_AFTER], "4");

    s.advance(5);
    assert_eq!(attempt(PASSWORD).await.status(), StatusCode::OK);
    // Success cleared the account counter: a new failure is free again.
    assert_eq!(
        attempt("wrong password").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(attempt(PASSWORD).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn refresh_rotates_and_a_retry_in_the_grace_window_gets_the_same_successor() {
    let s = TestServer::start().await;
    let l = s.new_user("r@example.com").await;
    let r = s.refresh(&l.refresh).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r1 = login_from(r).await;
    assert_ne!(r1.refresh, l.refresh);
    assert_ne!(r1.access, l.access);
    assert_eq!(r1.session_id, l.session_id);

    s.advance(5); // inside the 10 s window
    let again = login_from(s.refresh(&l.refresh).await).await;
    assert_eq!(
        again.refresh, r1.refresh,
        "same successor, never a second branch"
    );

    // Using the successor, then replaying the original, is reuse: the session dies.
    let r2 = login_from(s.refresh(&r1.refresh).await).await;
    let replay = s.refresh(&l.refresh).await;
    assert_eq!(replay.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        s.refresh(&r2.refresh).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        s.get_bearer("/auth/me", &r2.access).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let audit = s.audit("refresh_reuse").await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].subject.as_deref(), Some(l.session_id.as_str()));
    assert!(!audit[0].detail.to_string().contains(&l.refresh));
}

#[tokio::test]
async fn replay_after_the_grace_window_revokes_the_session() {
    let s = TestServer::start().await;
    let l = s.new_user("g@example.com").await;
    let r1 = login_from(s.refresh(&l.refresh).await).await;
    s.advance(11);
    assert_eq!(
        s.refresh(&l.refresh).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        s.refresh(&r1.refresh).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let session = s
        .state()
        .store
        .session_by_id(&l.session_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(session.revoked_reason.as_deref(), Some("reuse_detected"));
    assert_eq!(s.audit("refresh_reuse").await.len(), 1);
    // The revocation reached the feed.
    let events = s
        .state()
        .store
        .revocations_since(0, s.now(), 100)
        .await
        .unwrap();
    assert!(events.iter().any(|e| e.subject == l.session_id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_refreshes_all_get_the_same_successor() {
    concurrent_refreshes(Engine::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_refreshes_postgres() {
    concurrent_refreshes(Engine::Postgres).await;
}

async fn concurrent_refreshes(engine: Engine) {
    let Some(s) = TestServer::start_with(engine, |_| {}).await else {
        return;
    };
    let l = s.new_user("c@example.com").await;
    let futs = (0..20).map(|_| s.refresh(&l.refresh));
    let results = futures_util::future::join_all(futs).await;
    let mut successors = Vec::new();
    for r in results {
        assert_eq!(r.status(), StatusCode::OK);
        successors.push(login_from(r).await.refresh);
    }
    successors.dedup();
    assert_eq!(successors.len(), 1, "one and the same successor");
    assert_ne!(successors[0], l.refresh);
    assert_eq!(s.refresh(&successors[0]).await.status(), StatusCode::OK);
    assert!(s.audit("refresh_reuse").await.is_empty());
}

#[tokio::test]
async fn bearer_logout_revokes_the_session_and_its_access_tokens() {
    let s = TestServer::start().await;
    let l = s.new_user("lo@example.com").await;
    let r = s
        .http
        .post(s.at("/auth/logout"))
        .bearer_auth(&l.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(set_cookie(&r, "tessera_refresh")
        .unwrap()
        .1
        .contains("Max-Age=0"));
    let me = s.get_bearer("/auth/me", &l.access).await;
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
    assert!(me.headers()[WWW_AUTHENTICATE]
        .to_str()
        .unwrap()
        .starts_with("Bearer error=\"invalid_token\""));
    assert_eq!(
        s.refresh(&l.refresh).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(s.audit("logout").await.len(), 1);
}

#[tokio::test]
async fn cookie_endpoints_require_the_csrf_header_and_same_origin() {
    let s = TestServer::start().await;
    let l = s.new_user("csrf@example.com").await;
    let cookie = format!("tessera_refresh={}", l.refresh);
    for path in ["/auth/refresh", "/auth/logout", "/auth/logout-all"] {
        // No CSRF header.
        let r = s
            .http
            .post(s.at(path))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path}");
        assert_eq!(error_code(r).await, "invalid_request");
        // Header, but a foreign Origin.
        let r = s
            .http
            .post(s.at(path))
            .headers(cookie_headers("tessera_refresh", &l.refresh))
            .header(ORIGIN, "https://evil.example")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path}");
    }
    // Nothing was revoked or rotated by the refused requests.
    let r = s
        .http
        .post(s.at("/auth/refresh"))
        .headers(cookie_headers("tessera_refresh", &l.refresh))
        .header(ORIGIN, ISSUER)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let next = login_from(r).await;
    // Cookie logout with header and same origin.
    let r = s
        .http
        .post(s.at("/auth/logout"))
        .headers(cookie_headers("tessera_refresh", &next.refresh))
        .header(ORIGIN, ISSUER)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        s.refresh(&next.refresh).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        s.get_bearer("/auth/me", &next.access).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn logout_all_and_session_management() {
    let s = TestServer::start().await;
    let a = s.new_user("s@example.com").await;
    let b = s.login("s@example.com", PASSWORD).await;
    let c = s.login("s@example.com", PASSWORD).await;
    let other = s.new_user("other@example.com").await;

    let list: Value = s
        .get_bearer("/auth/sessions", &a.access)
        .await
        .json()
        .await
        .unwrap();
    let sessions = list["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 3);
    let current: Vec<_> = sessions.iter().filter(|x| x["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["id"], a.session_id.as_str());
    assert_eq!(current[0]["ip"], "127.0.0.1");

    // Someone else's session, or an unknown one: 404.
    for id in [other.session_id.as_str(), "no-such-session"] {
        let r = s
            .http
            .delete(s.at(&format!("/auth/sessions/{id}")))
            .bearer_auth(&a.access)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }
    assert_eq!(
        s.get_bearer("/auth/me", &other.access).await.status(),
        StatusCode::OK
    );

    let r = s
        .http
        .delete(s.at(&format!("/auth/sessions/{}", b.session_id)))
        .bearer_auth(&a.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        s.get_bearer("/auth/me", &b.access).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        s.get_bearer("/auth/me", &c.access).await.status(),
        StatusCode::OK
    );

    // DELETE /auth/sessions: every other session.
    let r = s
        .http
        .delete(s.at("/auth/sessions"))
        .bearer_auth(&a.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        s.get_bearer("/auth/me", &c.access).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        s.get_bearer("/auth/me", &a.access).await.status(),
        StatusCode::OK
    );

    let d = s.login("s@example.com", PASSWORD).await;
    let r = s
        .http
        .post(s.at("/auth/logout-all"))
        .bearer_auth(&a.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    for t in [&a.access, &d.access] {
        assert_eq!(
            s.get_bearer("/auth/me", t).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        s.refresh(&d.refresh).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        s.get_bearer("/auth/me", &other.access).await.status(),
        StatusCode::OK
    );
    assert_eq!(s.audit("logout_all").await.len(), 1);
    assert!(!s.audit("session_revoked").await.is_empty());
}

#[tokio::test]
async fn password_change_cuts_off_older_tokens_exactly() {
    // Time stands still: the old tokens and the change share one second.
    let s = TestServer::start_frozen().await;
    let a = s.new_user("p@example.com").await;
    let b = s.login("p@example.com", PASSWORD).await;
    let change = |current: &str, new: &str, token: &str| {
        let body = json!({"current_password": current, "new_password": new});
        s.http
            .post(s.at("/auth/password"))
            .bearer_auth(token)
            .json(&body)
            .send()
    };
    let r = change("wrong password", "new password 123", &a.access)
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(r).await, "invalid_grant");
    let r = change(PASSWORD, "short", &a.access).await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    let r = change(PASSWORD, "new password 123", &a.access)
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let fresh = login_from(r).await;
    let user = s
        .state()
        .store
        .user_by_email("p@example.com")
        .await
        .unwrap()
        .unwrap();
    let cutoff = user.token_cutoff.unwrap();
    // Old tokens, including any issued in the cutoff's own second, are rejected...
    assert_eq!(payload(&a.access)["iat"].as_i64().unwrap(), cutoff);
    assert_eq!(
        s.get_bearer("/auth/me", &a.access).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        s.get_bearer("/auth/me", &b.access).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // ...the fresh one is accepted: its iat is past the cutoff.
    assert_eq!(payload(&fresh.access)["iat"].as_i64().unwrap(), cutoff + 1);
    assert_eq!(
        s.get_bearer("/auth/me", &fresh.access).await.status(),
        StatusCode::OK
    );
    assert_eq!(s.refresh(&fresh.refresh).await.status(), StatusCode::OK);
    // Other sessions are gone.
    assert_eq!(
        s.refresh(&b.refresh).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // A user revocation event carries the cutoff for the feed.
    let events = s
        .state()
        .store
        .revocations_since(0, s.now(), 100)
        .await
        .unwrap();
    assert!(events
        .iter()
        .any(|e| e.subject == user.id && e.cutoff == Some(cutoff)));
    // The password changed.
    let r = s
        .post_json(
            "/auth/login",
            json!({"email": "p@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    s.login("p@example.com", "new password 123").await;
    assert_eq!(s.audit("password_changed").await.len(), 1);
}

#[tokio::test]
async fn tokens_issued_in_the_cutoff_second_are_rejected_and_later_ones_accepted() {
    use tessera_server::domain::revocation::{revoke, Target};
    // Time stands still: login, cutoff and refresh all happen in the same second.
    let s = TestServer::start_frozen().await;
    let l = s.new_user("cut@example.com").await;
    let uid = payload(&l.access)["sub"].as_str().unwrap().to_string();
    // A cutoff at the very second the token was issued (roles changed, say).
    let out = revoke(
        s.state(),
        Target::UserCutoff {
            user_id: &uid,
            update: tessera_store::UserUpdate {
                roles: Some(vec!["editor".into()]),
                ..Default::default()
            },
        },
    )
    .await
    .unwrap();
    let cutoff = out.user.unwrap().token_cutoff.unwrap();
    assert_eq!(cutoff, s.now());
    assert_eq!(
        payload(&l.access)["iat"].as_i64().unwrap(),
        cutoff,
        "same second"
    );
    assert_eq!(
        s.get_bearer("/auth/me", &l.access).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // A token refreshed in the same second gets iat = cutoff + 1 and works, with new roles.
    let r = login_from(s.refresh(&l.refresh).await).await;
    let c = payload(&r.access);
    assert_eq!(c["iat"].as_i64().unwrap(), cutoff + 1);
    assert_eq!(c["nbf"].as_i64().unwrap(), cutoff, "nbf stays now");
    assert_eq!(c["roles"], json!(["editor"]));
    assert_eq!(
        s.get_bearer("/auth/me", &r.access).await.status(),
        StatusCode::OK
    );

    // Disabling: no token and no refresh works any more.
    revoke(
        s.state(),
        Target::UserCutoff {
            user_id: &uid,
            update: tessera_store::UserUpdate {
                disabled: Some(true),
                ..Default::default()
            },
        },
    )
    .await
    .unwrap();
    assert_eq!(
        s.get_bearer("/auth/me", &r.access).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        s.refresh(&r.refresh).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let login = s
        .post_json(
            "/auth/login",
            json!({"email": "cut@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(login.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn sessions_expire_when_idle_and_at_the_absolute_limit() {
    let s = TestServer::start_with(Engine::Sqlite, |c| {
        c.refresh_idle_ttl = 100;
        c.refresh_absolute_ttl = 250;
    })
    .await
    .unwrap();
    let idle = s.new_user("e@example.com").await;
    s.advance(101);
    assert_eq!(
        s.refresh(&idle.refresh).await.status(),
        StatusCode::UNAUTHORIZED
    );

    let mut l = s.login("e@example.com", PASSWORD).await;
    for _ in 0..2 {
        s.advance(90);
        let r = s.refresh(&l.refresh).await;
        assert_eq!(r.status(), StatusCode::OK);
        l = login_from(r).await;
    }
    s.advance(90); // 270 s after login: past the absolute lifetime
    assert_eq!(
        s.refresh(&l.refresh).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // Expired access tokens are refused too.
    s.advance(700);
    assert_eq!(
        s.get_bearer("/auth/me", &l.access).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn first_run_setup_creates_the_admin_once() {
    let s = TestServer::start().await;
    let token = s.running().setup_token.clone().unwrap();
    assert!(s
        .running()
        .setup_link()
        .unwrap()
        .starts_with(&format!("{ISSUER}/setup#token=")));
    let cfg: Value = s
        .http
        .get(s.at("/auth/config"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cfg["setup_required"], true);
    assert_eq!(cfg["registration_open"], true);
    assert_eq!(cfg["password_min_length"], 8);

    let body = |t: &str| json!({"token": t, "email": "root@example.com", "password": PASSWORD});
    let r = s.post_json("/auth/setup", body("wrong-token")).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = s.post_json("/auth/setup", body(&token)).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = s.post_json("/auth/setup", body(&token)).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let l = s.login("root@example.com", PASSWORD).await;
    let me: Value = s
        .get_bearer("/auth/me", &l.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["roles"], json!(["admin"]));
    let cfg: Value = s
        .http
        .get(s.at("/auth/config"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cfg["setup_required"], false);
    assert_eq!(s.audit("setup").await.len(), 1);
}

#[tokio::test]
async fn closed_registration_is_refused() {
    let s = TestServer::start_with(Engine::Sqlite, |c| c.registration_open = false)
        .await
        .unwrap();
    let r = s
        .post_json(
            "/auth/register",
            json!({"email": "x@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(r).await, "access_denied");
    assert_eq!(s.state().store.count_users().await.unwrap(), 0);
}

#[tokio::test]
async fn bad_input_gets_4xx_and_changes_nothing() {
    let s = TestServer::start().await;
    let l = s.new_user("b@example.com").await;
    let big = "x".repeat(70 * 1024);
    let long_email = format!("{}@example.com", "a".repeat(250));
    let long_pw = "p".repeat(1025);
    let cases: Vec<(&str, &str, String)> = vec![
        ("/auth/register", "application/json", "{not json".into()),
        (
            "/auth/register",
            "text/plain",
            r#"{"email":"z@example.com","password":"password1"}"#.into(),
        ),
        ("/auth/register", "application/json", "{}".into()),
        (
            "/auth/register",
            "application/json",
            r#"{"email":"z@example.com"}"#.into(),
        ),
        (
            "/auth/register",
            "application/json",
            r#"{"email":5,"password":"password1"}"#.into(),
        ),
        (
            "/auth/register",
            "application/json",
            r#"{"email":"no-at-sign","password":"password1"}"#.into(),
        ),
        (
            "/auth/register",
            "application/json",
            r#"{"email":"a@b@c","password":"password1"}"#.into(),
        ),
        (
            "/auth/register",
            "application/json",
            json!({"email": long_email, "password": "password1"}).to_string(),
        ),
        (
            "/auth/register",
            "application/json",
            json!({"email": "z@example.com", "password": "short"}).to_string(),
        ),
        (
            "/auth/register",
            "application/json",
            json!({"email": "z@example.com", "password": long_pw}).to_string(),
        ),
        (
            "/auth/register",
            "application/json",
            json!({"email": "z@example.com", "password": big}).to_string(),
        ),
        ("/auth/register", "application/json", "[]".into()),
        ("/auth/register", "application/json", "".into()),
        ("/auth/login", "application/json", "{".into()),
        (
            "/auth/login",
            "application/x-www-form-urlencoded",
            "email=a&password=b".into(),
        ),
        (
            "/auth/login",
            "application/json",
            r#"{"email":"b@example.com","password":"x","native":"yes"}"#.into(),
        ),
        (
            "/auth/login",
            "application/json",
            json!({"email": "b@example.com", "password": long_pw}).to_string(),
        ),
        ("/auth/setup", "application/json", r#"{"token":"x"}"#.into()),
    ];
    for (path, ctype, body) in cases {
        let r = s
            .http
            .post(s.at(path))
            .header("content-type", ctype)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let status = r.status();
        assert!(
            status.is_client_error(),
            "{path} {ctype} {:.60}: {status}",
            body
        );
        let v: Value = r
            .json()
            .await
            .unwrap_or_else(|_| panic!("{path}: JSON error body"));
        assert!(v["error"].is_string(), "{path}: {v}");
    }
    assert_eq!(s.state().store.count_users().await.unwrap(), 1);

    // Authenticated endpoint with a bad body: nothing changes.
    let r = s
        .http
        .post(s.at("/auth/password"))
        .bearer_auth(&l.access)
        .header("content-type", "application/json")
        .body(r#"{"current_password": 1}"#)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error());
    assert_eq!(
        s.get_bearer("/auth/me", &l.access).await.status(),
        StatusCode::OK
    );

    // Bad Authorization headers: 401 with WWW-Authenticate, never 500.
    for auth in [
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Bearer a.b.c",
        "Bearer !!!",
        "bearer x.y",
    ] {
        let r = s
            .http
            .get(s.at("/auth/me"))
            .header("authorization", auth)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{auth}");
        assert!(r.headers().contains_key(WWW_AUTHENTICATE));
    }
    let r = s.http.get(s.at("/auth/me")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()[WWW_AUTHENTICATE], "Bearer");
    // A token for another audience or a tampered one.
    let mut parts: Vec<String> = l.access.split('.').map(str::to_string).collect();
    parts[1] = URL_SAFE_NO_PAD.encode(br#"{"sub":"x"}"#);
    let r = s.get_bearer("/auth/me", &parts.join(".")).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // Unknown route and wrong method: JSON 4xx.
    let r = s.http.get(s.at("/nope")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(r).await, "not_found");
    let r = s.http.get(s.at("/auth/login")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    // Garbage refresh cookies.
    for bad in ["", "short", &"A".repeat(43), &"é".repeat(10)] {
        let r = s
            .http
            .post(s.at("/auth/refresh"))
            .header("cookie", format!("tessera_refresh={bad}"))
            .header("x-tessera-csrf", "1")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{bad}");
    }
}

#[tokio::test]
async fn main_flow_on_postgres() {
    let Some(s) = TestServer::start_with(Engine::Postgres, |_| {}).await else {
        return;
    };
    let l = s.new_user("pg@example.com").await;
    assert_eq!(
        s.get_bearer("/auth/me", &l.access).await.status(),
        StatusCode::OK
    );
    let r1 = login_from(s.refresh(&l.refresh).await).await;
    let again = login_from(s.refresh(&l.refresh).await).await;
    assert_eq!(again.refresh, r1.refresh);
    let r = s
        .http
        .post(s.at("/auth/logout"))
        .bearer_auth(&r1.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        s.get_bearer("/auth/me", &r1.access).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn failures_across_accounts_lock_the_client_ip() {
    let s = TestServer::start_with(Engine::Sqlite, |c| c.throttle_ip_free = 3)
        .await
        .unwrap();
    s.register("ip@example.com", PASSWORD).await;
    for i in 0..4 {
        let r = s
            .post_json(
                "/auth/login",
                json!({"email": format!("user{i}@example.com"), "password": "wrong password"}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    // The 4th failure from this IP locked it: another account is refused too.
    let r = s
        .post_json(
            "/auth/login",
            json!({"email": "ip@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().contains_key(RETRY_AFTER));
    s.advance(2);
    s.login("ip@example.com", PASSWORD).await;
}

#[tokio::test]
async fn cookie_endpoints_without_any_credentials_are_401() {
    let s = TestServer::start().await;
    for path in ["/auth/refresh", "/auth/logout", "/auth/logout-all"] {
        let r = s
            .http
            .post(s.at(path))
            .header("x-tessera-csrf", "1")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
        let r = s.http.post(s.at(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
}

#[tokio::test]
async fn forwarded_for_counts_only_behind_a_trusted_proxy() {
    for trusted in [false, true] {
        let s = TestServer::start_with(Engine::Sqlite, |c| {
            if trusted {
                c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
            }
        })
        .await
        .unwrap();
        s.register("xff@example.com", PASSWORD).await;
        let r = s
            .http
            .post(s.at("/auth/login"))
            .header("x-forwarded-for", "198.51.100.1, 203.0.113.7")
            .json(&json!({"email": "xff@example.com", "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        let l = login_from(r).await;
        let list: Value = s
            .get_bearer("/auth/sessions", &l.access)
            .await
            .json()
            .await
            .unwrap();
        let expected = if trusted { "203.0.113.7" } else { "127.0.0.1" };
        assert_eq!(list["sessions"][0]["ip"], expected);
    }
}
