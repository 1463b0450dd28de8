//! Benchmarks of `tessera-verify` against the real auth server, both in this process on
//! loopback (SQLite in a tempdir):
//!
//! * `feed-latency latency [N]` (default 300): N times, log in, verify the token, then call
//!   `POST /auth/logout` and spin on `Verifier::verify` until it rejects the token. Reports
//!   p50/p90/p99/max of "logout call starts" → "verifier rejects".
//! * `feed-latency throughput [SECONDS]` (default 5): serves the same tiny handler at `/open`
//!   and behind `Verifier::layer()` at `/protected` (same repeat token), and drives both with
//!   `wrk` (must be on PATH) in alternating rounds; reports requests/s and the ratio.
//! * `feed-latency hotpath`: the cost of one `Verifier::verify` call for a cached token (one and
//!   two threads at once, to expose lock contention) and with the cache disabled.
//!
//! * `feed-latency notes-open ADDR`: the baseline of the System table's notes-api rows: `GET
//!   /notes` answered like notes-api's (same empty list, same `notes_api::with_limits` stack,
//!   served by `notes_api::serve` with the same header read timeout) but with no
//!   authentication, so the two differ only by the auth check.
//! * `feed-latency jwt-rate ISSUER TOKENS_FILE SECONDS`: the token core alone, on one thread:
//!   `tessera_jwt::verify_with_keys` (signature + the verifier's validation policy) over the
//!   tokens of TOKENS_FILE in turn, with the issuer's JWKS; prints verifications per second.
//!
//! Figures go to `bench/README.md`, "Revocation feed latency" and "System".

// A benchmark binary: a failed setup step should stop it loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use tessera_server::{Clock, Config, Running};
use tessera_verify::Verifier;

const PASSWORD: &str = "correct horse battery staple";

struct Env {
    _dir: tempfile::TempDir,
    _running: Running,
    auth: String,
    http: reqwest::Client,
    verifier: Verifier,
}

async fn login(http: &reqwest::Client, auth: &str, email: &str) -> String {
    let r = http
        .post(format!("{auth}/auth/login"))
        .json(&json!({"email": email, "password": PASSWORD, "native": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "login");
    r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn setup() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = Config {
        data_dir: dir.path().join("data"),
        cookie_secure: false,
        ..Config::default()
    };
    let running = tessera_server::spawn(config, Clock::system(), listener)
        .await
        .unwrap();
    let auth = running.url();
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{auth}/auth/setup"))
        .json(&json!({"token": running.setup_token.clone().unwrap(),
                      "email": "admin@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "setup");
    let admin = login(&http, &auth, "admin@example.com").await;
    let c: Value = http
        .post(format!("{auth}/admin/clients"))
        .bearer_auth(&admin)
        .json(&json!({"name": "bench", "scope": "revocations:read"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let verifier = Verifier::builder(&auth)
        .client_credentials(
            c["client_id"].as_str().unwrap(),
            c["client_secret"].as_str().unwrap(),
        )
        .build()
        .await
        .unwrap();
    let r = http
        .post(format!("{auth}/auth/register"))
        .json(&json!({"email": "bench@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "register");
    Env {
        _dir: dir,
        _running: running,
        auth,
        http,
        verifier,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn latency(n: usize) {
    let env = setup().await;
    let mut lat = Vec::with_capacity(n);
    let mut missed = 0;
    for i in 0..n {
        let token = login(&env.http, &env.auth, "bench@example.com").await;
        env.verifier.verify(&token).await.unwrap();
        let t0 = Instant::now();
        let r = env
            .http
            .post(format!("{}/auth/logout", env.auth))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204, "logout {i}");
        loop {
            if env.verifier.verify(&token).await.is_err() {
                lat.push(t0.elapsed());
                break;
            }
            if t0.elapsed() > Duration::from_secs(1) {
                missed += 1;
                break;
            }
            tokio::task::yield_now().await;
        }
    }
    lat.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("revocations: {n}, not rejected within 1 s: {missed}");
    println!(
        "logout call -> rejection at the verifier: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(percentile(&lat, 0.50)),
        ms(percentile(&lat, 0.90)),
        ms(percentile(&lat, 0.99)),
        ms(*lat.last().unwrap()),
    );
}

fn wrk(url: &str, token: &str, secs: u64) -> f64 {
    let out = std::process::Command::new("wrk")
        .args(["-t1", "-c32", &format!("-d{secs}s"), "-H"])
        .arg(format!("Authorization: Bearer {token}"))
        .arg(url)
        .output()
        .expect("wrk on PATH");
    let text = String::from_utf8_lossy(&out.stdout);
    let non2xx = text
        .lines()
        .find(|l| l.contains("Non-2xx"))
        .map(str::to_owned);
    assert!(non2xx.is_none(), "errors from {url}: {non2xx:?}");
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in wrk output: {text}"))
}

async fn throughput(secs: u64) {
    let env = setup().await;
    let token = login(&env.http, &env.auth, "bench@example.com").await;
    let handler = || async { axum::Json(json!({"notes": []})) };
    let app = Router::new()
        .route("/protected", get(handler))
        .route_layer(env.verifier.layer())
        .route("/open", get(handler));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let (mut open, mut protected, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        // Alternate the order so drift (other load on the machine) hits both sides alike.
        let o_url = format!("{base}/open");
        let p_url = format!("{base}/protected");
        let t = token.clone();
        let (o, p) = tokio::task::spawn_blocking(move || {
            if round % 2 == 0 {
                let o = wrk(&o_url, &t, secs);
                (o, wrk(&p_url, &t, secs))
            } else {
                let p = wrk(&p_url, &t, secs);
                (wrk(&o_url, &t, secs), p)
            }
        })
        .await
        .unwrap();
        println!(
            "round {round}: open {o:.0} req/s, protected {p:.0} req/s, ratio {:.3}",
            p / o
        );
        open.push(o);
        protected.push(p);
        ratios.push(p / o);
    }
    let sum = |v: &[f64]| v.iter().sum::<f64>();
    ratios.sort_by(f64::total_cmp);
    println!(
        "total: open {:.0} req/s, protected {:.0} req/s, ratio of totals {:.3}, median round ratio {:.3}",
        sum(&open) / ROUNDS as f64,
        sum(&protected) / ROUNDS as f64,
        sum(&protected) / sum(&open),
        (ratios[ROUNDS / 2 - 1] + ratios[ROUNDS / 2]) / 2.0,
    );
}

/// Rounds of the throughput comparison (even: each order equally often).
const ROUNDS: usize = 6;

/// Runs `work` on `threads` tasks at once (the runtime has one worker per CPU and `work` never
/// yields, so they run in parallel), `N` times each; returns the time per call per task.
async fn per_call<F, Fut>(threads: usize, work: F) -> Duration
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let start = Instant::now();
    let tasks: Vec<_> = (0..threads).map(|i| tokio::spawn(work(i))).collect();
    for t in tasks {
        t.await.unwrap();
    }
    start.elapsed() / HOT_N
}

/// Calls per task in [`hotpath`].
const HOT_N: u32 = 1_000_000;

/// Cost of `Verifier::verify` for a repeat (cached) token, one and two threads at once, next
/// to two controls run in the same process: two threads verifying *different* cached tokens
/// (other shards: no shared lock or entry), and two threads hashing the token only (no shared
/// state at all). If "same token, 2 threads" is slower than both controls, the threads
/// contend on shared cache lines; if all three slow down alike, it is just CPU time taken by
/// other processes.
async fn hotpath() {
    let env = setup().await;
    let token = login(&env.http, &env.auth, "bench@example.com").await;
    let other = login(&env.http, &env.auth, "admin@example.com").await;
    env.verifier.verify(&token).await.unwrap();
    env.verifier.verify(&other).await.unwrap();
    let tokens = [token.clone(), other];
    for round in 0..3 {
        for threads in [1usize, 2] {
            let same = per_call(threads, |_| {
                let (v, t) = (env.verifier.clone(), token.clone());
                async move {
                    for _ in 0..HOT_N {
                        v.verify(&t).await.unwrap();
                    }
                }
            })
            .await;
            let distinct = per_call(threads, |i| {
                let (v, t) = (env.verifier.clone(), tokens[i].clone());
                async move {
                    for _ in 0..HOT_N {
                        v.verify(&t).await.unwrap();
                    }
                }
            })
            .await;
            let hash = per_call(threads, |_| {
                let t = token.clone();
                async move {
                    for _ in 0..HOT_N {
                        std::hint::black_box(tessera_verify_sha256(std::hint::black_box(&t)));
                    }
                }
            })
            .await;
            println!(
                "round {round}, {threads} thread(s): verify same cached token {same:?}, \
                 distinct cached tokens {distinct:?}, SHA-256 of the token only {hash:?} \
                 (per call per thread)"
            );
        }
    }
    // And the uncached path: a fresh verification of the signature every time.
    let uncached = Verifier::builder(&env.auth)
        .without_revocation_feed()
        .cache_capacity(0)
        .build()
        .await
        .unwrap();
    let start = Instant::now();
    for _ in 0..20_000 {
        uncached.verify(&token).await.unwrap();
    }
    println!(
        "verify (cache disabled, EdDSA): {:?} per call",
        start.elapsed() / 20_000
    );
}

/// The unauthenticated twin of notes-api's `GET /notes` (see the module docs).
async fn notes_open(addr: &str) {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    // notes-api's state is one `Arc` holding the notes map; so is this one.
    type Open = Arc<Mutex<HashMap<String, String>>>;
    async fn list(axum::extract::State(notes): axum::extract::State<Open>) -> axum::Json<Value> {
        let notes = notes.lock().unwrap_or_else(|e| e.into_inner());
        let mut mine: Vec<&String> = notes.values().filter(|owner| *owner == "bench").collect();
        mine.sort();
        axum::Json(json!({ "notes": mine }))
    }
    let app = notes_api::with_limits(Router::new().route("/notes", get(list)))
        .with_state(Open::default());
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    notes_api::serve(
        listener,
        app,
        notes_api::HEADER_READ_TIMEOUT,
        std::future::pending(),
    )
    .await
    .unwrap();
}

/// The private claims `tessera-verify` reads (its `TesseraClaims`): the same deserialization.
#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct TesseraClaims {
    #[serde(default)]
    sid: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    scope: Option<String>,
}

/// Verifications per second of the token core on one thread (see the module docs).
async fn jwt_rate(issuer: &str, tokens_file: &str, secs: f64) -> f64 {
    let jwks = reqwest::get(format!("{issuer}/.well-known/jwks.json"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let keys = tessera_jwt::KeySet::from_jwks_json(&jwks).unwrap();
    // The verifier's policy (crates/verify/src/token.rs): RFC 9068 access token, issuer,
    // audience `api`, 30 s leeway, `sub` and `iat` required.
    let validation = tessera_jwt::Validation::access_token(issuer, &["api"])
        .leeway(30)
        .require(&["sub", "iat"]);
    let tokens: Vec<String> = std::fs::read_to_string(tokens_file)
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    assert!(!tokens.is_empty(), "no tokens in {tokens_file}");
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs_f64(secs);
        let start = Instant::now();
        let mut n = 0u64;
        while Instant::now() < deadline {
            for t in tokens.iter().skip((n as usize) % tokens.len()).take(64) {
                let v =
                    tessera_jwt::verify_with_keys::<TesseraClaims>(t, &keys, &validation).unwrap();
                std::hint::black_box(v);
                n += 1;
            }
        }
        n as f64 / start.elapsed().as_secs_f64()
    })
    .join()
    .unwrap()
}

/// SHA-256 of the token, as the verifier's cache key (the control of [`hotpath`]).
fn tessera_verify_sha256(token: &str) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let mut k = [0u8; 32];
    k.copy_from_slice(d.as_ref());
    k
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    match args.get(1).map(String::as_str) {
        Some("latency") => {
            let n = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(300);
            rt.block_on(latency(n));
        }
        Some("throughput") => {
            let secs = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5);
            rt.block_on(throughput(secs));
        }
        Some("hotpath") => rt.block_on(hotpath()),
        Some("notes-open") => rt.block_on(notes_open(&args[2])),
        Some("jwt-rate") => {
            let secs: f64 = args[4].parse().unwrap();
            let rate = rt.block_on(jwt_rate(&args[2], &args[3], secs));
            println!("{rate:.1}");
        }
        _ => eprintln!(
            "usage: feed-latency latency [N] | throughput [SECONDS] | hotpath | notes-open ADDR \
             | jwt-rate ISSUER TOKENS_FILE SECONDS"
        ),
    }
}
