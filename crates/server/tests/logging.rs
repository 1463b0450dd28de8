//! Nothing secret reaches the logs or the audit trail. Its own test binary: it installs a
//! global tracing subscriber that captures everything at TRACE.
// Test helpers outside #[test] fns: a malformed response must fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::json;

/// A `MakeWriter` into a shared buffer, to inspect everything the server logs.
#[derive(Clone, Default)]
struct Capture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

/// Neither the logs (at TRACE, every field and span) nor the audit log ever contain a
/// password, a token or a cookie value.
#[tokio::test]
async fn no_secret_reaches_the_logs_or_the_audit_trail() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(capture.clone())
        .with_ansi(false)
        .finish();
    // Global: the server's tasks may log on any runtime thread.
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let s = TestServer::start().await;
    let l = s.new_user("secret@example.com").await;
    let bad = "not the password 42";
    let r = s
        .post_json(
            "/auth/login",
            json!({"email": "secret@example.com", "password": bad}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r1 = login_from(s.refresh(&l.refresh).await).await;
    let replayed = s.refresh(&l.refresh).await; // grace retry
    assert_eq!(replayed.status(), StatusCode::OK);
    let new_pw = "a brand new passphrase";
    let r = s
        .http
        .post(s.at("/auth/password"))
        .bearer_auth(&r1.access)
        .json(&json!({"current_password": PASSWORD, "new_password": new_pw}))
        .send()
        .await
        .unwrap();
    let fresh = login_from(r).await;
    s.advance(60);
    assert_eq!(
        s.refresh(&r1.refresh).await.status(),
        StatusCode::UNAUTHORIZED
    ); // reuse
    let r = s
        .http
        .post(s.at("/auth/logout"))
        .headers(cookie_headers("tessera_refresh", &fresh.refresh))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let _ = s.get_bearer("/auth/me", &fresh.access).await;
    let setup = s.running().setup_token.clone().unwrap_or_default();

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("/auth/login"), "the capture works");
    let audit = s
        .state()
        .store
        .list_audit(&tessera_store::AuditFilter {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(audit.len() >= 5, "{audit:?}");
    let audit = serde_json::to_string(&audit).unwrap();
    let secrets = [
        PASSWORD,
        bad,
        new_pw,
        &l.access,
        &l.refresh,
        &r1.access,
        &r1.refresh,
        &fresh.access,
        &fresh.refresh,
        &setup,
        "tessera_refresh=",
    ];
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        assert!(!logs.contains(*secret), "log leaks a secret");
        assert!(!audit.contains(*secret), "audit leaks a secret");
    }
    // Not even a token's signature part.
    let sig = l.access.rsplit('.').next().unwrap();
    assert!(!logs.contains(sig));
}
