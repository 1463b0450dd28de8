//! Test harness: a real server over loopback HTTP, on a real SQLite file in a tempdir (or a
//! fresh PostgreSQL schema), with a clock the test can advance.
#![allow(dead_code)]
// each test binary uses a different part of the harness
// Test support: a failed setup step must fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;

use reqwest::header::{HeaderMap, HeaderValue, COOKIE, SET_COOKIE};
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};
use tempfile::TempDir;
use tessera_server::{Clock, Config, Running};
use tessera_store::testing::TestSchema;

/// The fixed issuer of test servers (stable across restarts on a new port).
pub const ISSUER: &str = "http://tessera.test";
/// A password that satisfies the policy.
pub const PASSWORD: &str = "correct horse battery staple";

/// Which store engine a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// SQLite file in the tempdir.
    Sqlite,
    /// A fresh PostgreSQL schema (skipped when PostgreSQL is unreachable).
    Postgres,
}

/// Whether every server of this test binary runs on PostgreSQL, also where a test asks for
/// SQLite: in the `engines` test target (tests/engines.rs re-runs the single-engine suites
/// there) or when `TESSERA_TEST_ENGINE=postgres`. With PostgreSQL unreachable those servers
/// stay on SQLite after the loud skip line, or the test fails under
/// `TESSERA_REQUIRE_POSTGRES=1`.
pub fn all_on_postgres() -> bool {
    env!("CARGO_CRATE_NAME") == "engines"
        || std::env::var("TESSERA_TEST_ENGINE").as_deref() == Ok("postgres")
}

/// A running server plus what a test needs to talk to it.
pub struct TestServer {
    pub running: Option<Running>,
    pub dir: TempDir,
    pub config: Config,
    pub clock: Clock,
    pub http: reqwest::Client,
    pub url: String,
    _schema: Option<TestSchema>,
}

/// Tokens from a login.
#[derive(Debug, Clone)]
pub struct Login {
    pub access: String,
    pub refresh: String,
    pub session_id: String,
    pub body: Value,
}

impl TestServer {
    /// A server on SQLite with the default test configuration.
    pub async fn start() -> Self {
        Self::start_with(Engine::Sqlite, |_| {}).await.unwrap()
    }

    /// A server on `engine` with `tweak` applied to the configuration; `None` when the
    /// engine is PostgreSQL and it is unreachable (the test is skipped).
    pub async fn start_with(engine: Engine, tweak: impl FnOnce(&mut Config)) -> Option<Self> {
        Self::start_with_clock(engine, Clock::system(), tweak).await
    }

    /// A SQLite server whose clock stands still (moved only by `advance`).
    pub async fn start_frozen() -> Self {
        let now = Clock::system().now();
        Self::start_with_clock(Engine::Sqlite, Clock::frozen_at(now), |_| {})
            .await
            .unwrap()
    }

    async fn start_with_clock(
        engine: Engine,
        clock: Clock,
        tweak: impl FnOnce(&mut Config),
    ) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let engine = match engine {
            Engine::Sqlite
                if all_on_postgres()
                    && tessera_store::testing::postgres_url_or_skip().is_some() =>
            {
                Engine::Postgres
            }
            e => e,
        };
        let schema = match engine {
            Engine::Sqlite => None,
            Engine::Postgres => Some(TestSchema::create().await?),
        };
        let mut config = Config {
            data_dir: dir.path().join("data"),
            issuer: Some(ISSUER.to_string()),
            database_url: schema.as_ref().map(TestSchema::url),
            ..Config::default()
        };
        tweak(&mut config);
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let mut s = Self {
            running: None,
            dir,
            config,
            clock,
            http,
            url: String::new(),
            _schema: schema,
        };
        s.boot().await;
        Some(s)
    }

    async fn boot(&mut self) {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let running = tessera_server::spawn(self.config.clone(), self.clock.clone(), listener)
            .await
            .unwrap();
        self.url = running.url();
        self.running = Some(running);
    }

    /// Stops the server and starts a new one on the same data (new port, same clock).
    pub async fn restart(&mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await.unwrap();
        }
        self.boot().await;
    }

    pub fn running(&self) -> &Running {
        self.running.as_ref().unwrap()
    }

    pub fn state(&self) -> &tessera_server::AppState {
        &self.running().state
    }

    /// Moves the server's clock forward.
    pub fn advance(&self, secs: i64) {
        self.clock.advance(secs);
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    pub fn at(&self, path: &str) -> String {
        format!("{}{}", self.url, path)
    }

    pub async fn post_json(&self, path: &str, body: Value) -> Response {
        self.http
            .post(self.at(path))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn get_bearer(&self, path: &str, token: &str) -> Response {
        self.http
            .get(self.at(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// Registers and returns the id.
    pub async fn register(&self, email: &str, password: &str) -> String {
        let r = self
            .post_json(
                "/auth/register",
                json!({"email": email, "password": password}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Browser login (refresh token in the cookie).
    pub async fn login(&self, email: &str, password: &str) -> Login {
        let r = self
            .post_json("/auth/login", json!({"email": email, "password": password}))
            .await;
        assert_eq!(r.status(), StatusCode::OK, "login failed");
        login_from(r).await
    }

    /// Registers a fresh user and logs in.
    pub async fn new_user(&self, email: &str) -> Login {
        self.register(email, PASSWORD).await;
        self.login(email, PASSWORD).await
    }

    /// `POST /auth/refresh` with a refresh cookie and the CSRF header.
    pub async fn refresh(&self, refresh: &str) -> Response {
        self.http
            .post(self.at("/auth/refresh"))
            .headers(cookie_headers(&self.config.cookie_name, refresh))
            .send()
            .await
            .unwrap()
    }

    /// Audit events named `event`, straight from the store.
    pub async fn audit(&self, event: &str) -> Vec<tessera_store::AuditEvent> {
        self.state()
            .store
            .list_audit(&tessera_store::AuditFilter {
                event: Some(event.to_string()),
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap()
    }
}

/// Cookie + CSRF headers for a cookie-authenticated request.
pub fn cookie_headers(name: &str, refresh: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        COOKIE,
        HeaderValue::from_str(&format!("{name}={refresh}")).unwrap(),
    );
    h.insert("x-tessera-csrf", HeaderValue::from_static("1"));
    h
}

/// The value of the refresh cookie set by a response, if any.
pub fn set_cookie(r: &Response, name: &str) -> Option<(String, String)> {
    r.headers().get_all(SET_COOKIE).iter().find_map(|v| {
        let s = v.to_str().ok()?;
        let rest = s.strip_prefix(&format!("{name}="))?;
        let value = rest.split(';').next()?.to_string();
        Some((value, s.to_string()))
    })
}

/// Reads a login-shaped response (cookie or body refresh token).
pub async fn login_from(r: Response) -> Login {
    let cookie = set_cookie(&r, "tessera_refresh").map(|(v, _)| v);
    let body: Value = r.json().await.unwrap();
    let refresh = cookie
        .or_else(|| body["refresh_token"].as_str().map(str::to_string))
        .expect("a refresh token");
    Login {
        access: body["access_token"].as_str().unwrap().to_string(),
        refresh,
        session_id: body["session_id"].as_str().unwrap().to_string(),
        body,
    }
}

/// Error code of an RFC 6749 body.
pub async fn error_code(r: Response) -> String {
    let v: Value = r.json().await.unwrap();
    v["error"].as_str().unwrap_or_default().to_string()
}
