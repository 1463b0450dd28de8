//! Shared support of the process-level tests (`crash.rs`, `nodes.rs`, `pg_restart.rs`): real
//! `tessera serve` children that die with the test, and the few HTTP helpers they all use.
//!
//! A child is started under `setpriv --pdeathsig KILL` (when `setpriv` exists), so it is
//! killed by the kernel even when the test process itself dies without unwinding (a nextest
//! timeout, SIGKILL); on an ordinary end or a panic, [`Node`]'s `Drop` kills and reaps it.
//! Each child's output (the log) goes to `<data dir>.log`, printed when a test panics.

// Test support: a failed setup step must fail the test loudly. Not every test binary uses
// every helper.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test support: a broken precondition fails the test loudly"
)]

use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub const PASSWORD: &str = "correct horse battery staple";

/// The static feed credential the nodes are started with (`TESSERA_FEED_TOKEN`).
pub const FEED_TOKEN: &str = "feed-token-for-the-process-tests";

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `setpriv` wrapping, so the child gets SIGKILL when the test's thread dies.
fn command_dying_with_parent(program: &Path) -> Command {
    let setpriv = Path::new("/usr/bin/setpriv");
    if setpriv.exists() {
        let mut cmd = Command::new(setpriv);
        cmd.args(["--pdeathsig", "KILL"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

/// How to start one `tessera serve`.
#[derive(Debug, Clone)]
pub struct Serve {
    pub data_dir: PathBuf,
    pub port: u16,
    /// `None`: the embedded SQLite store in the data directory.
    pub database_url: Option<String>,
    pub issuer: String,
    /// Further `TESSERA_*` settings.
    pub env: Vec<(String, String)>,
}

impl Serve {
    pub fn new(data_dir: &Path, port: u16, database_url: Option<&str>) -> Self {
        Self {
            data_dir: data_dir.to_path_buf(),
            port,
            database_url: database_url.map(str::to_string),
            issuer: "http://tessera.test".to_string(),
            env: Vec::new(),
        }
    }

    pub fn issuer(mut self, issuer: &str) -> Self {
        self.issuer = issuer.to_string();
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Starts the process (does not wait for it to listen: see [`Node::wait_ready`]).
    pub fn start(&self) -> Node {
        let log = self.data_dir.with_extension("log");
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let mut cmd = command_dying_with_parent(Path::new(env!("CARGO_BIN_EXE_tessera")));
        match &self.database_url {
            Some(url) => cmd.env("TESSERA_DATABASE_URL", url),
            None => cmd.env_remove("TESSERA_DATABASE_URL"),
        };
        cmd.arg("serve")
            .env("TESSERA_BIND", format!("127.0.0.1:{}", self.port))
            .env("TESSERA_ISSUER", &self.issuer)
            .env("TESSERA_DATA_DIR", &self.data_dir)
            .env("TESSERA_THROTTLE_REGISTER_FREE", "100000")
            .env("TESSERA_COOKIE_SECURE", "false")
            .env("TESSERA_FEED_TOKEN", FEED_TOKEN)
            .env_remove("TESSERA_CONFIG");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(stderr.try_clone().unwrap())
            .stderr(stderr)
            .spawn()
            .unwrap();
        Node {
            child: Some(child),
            url: format!("http://127.0.0.1:{}", self.port),
            log,
        }
    }
}

/// A running `tessera serve` child; killed (SIGKILL) and reaped on drop.
#[derive(Debug)]
pub struct Node {
    child: Option<Child>,
    pub url: String,
    log: PathBuf,
}

impl Node {
    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// Waits until `/healthz` answers, failing at once if the process exits.
    pub async fn wait_ready(&mut self, http: &reqwest::Client) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait().unwrap() {
                    panic!(
                        "tessera at {} exited with {status}:\n{}",
                        self.url,
                        self.log_text()
                    );
                }
            }
            if let Ok(r) = http.get(self.at("/healthz")).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "tessera did not become ready at {}:\n{}",
            self.url,
            self.log_text()
        );
    }

    /// SIGKILL (`Child::kill` on Unix) and reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The process's stderr so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let text = self.log_text();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "---- last lines of {} ----", self.log.display());
            for line in tail.into_iter().rev() {
                let _ = writeln!(err, "{line}");
            }
        }
    }
}

/// `tessera user add` against `data_dir`/`database_url`: migrates the store, makes the
/// master key and the first signing key when missing. Returns the new user's id.
pub fn add_user(
    data_dir: &Path,
    database_url: Option<&str>,
    email: &str,
    roles: &[&str],
) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tessera"));
    match database_url {
        Some(url) => cmd.env("TESSERA_DATABASE_URL", url),
        None => cmd.env_remove("TESSERA_DATABASE_URL"),
    };
    cmd.args(["user", "add", "--email", email])
        .env("TESSERA_DATA_DIR", data_dir)
        .env_remove("TESSERA_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for role in roles {
        cmd.args(["--role", role]);
    }
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "tessera user add: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The `kid` in a JWT's header.
pub fn kid_of(token: &str) -> String {
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

/// `POST /oauth/token` with the refresh-token grant.
pub async fn refresh(
    http: &reqwest::Client,
    base: &str,
    token: &str,
) -> reqwest::Result<reqwest::Response> {
    http.post(format!("{base}/oauth/token"))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", token)])
        .send()
        .await
}

/// `POST /auth/register`; the status.
pub async fn register(http: &reqwest::Client, base: &str, email: &str) -> reqwest::StatusCode {
    http.post(format!("{base}/auth/register"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .status()
}

/// A native login (refresh token in the body).
pub async fn login(
    http: &reqwest::Client,
    base: &str,
    email: &str,
    password: &str,
) -> reqwest::Result<reqwest::Response> {
    http.post(format!("{base}/auth/login"))
        .json(&json!({"email": email, "password": password, "native": true}))
        .send()
        .await
}

/// Access and refresh token of a successful token answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    pub access: String,
    pub refresh: String,
}

pub async fn tokens(r: reqwest::Response) -> Tokens {
    assert_eq!(r.status(), 200, "expected tokens");
    let v: Value = r.json().await.unwrap();
    Tokens {
        access: v["access_token"].as_str().unwrap().to_string(),
        refresh: v["refresh_token"].as_str().unwrap().to_string(),
    }
}

/// Polls `check` every 10 ms until it holds or `within` passed; returns the time it took.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return Some(start.elapsed());
        }
        if start.elapsed() > within {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
