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
//! Figures go to `bench/README.md`, "Revocation feed latency".

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

/// Cost of `Verifier::verify` for a repeat (cached) token, one and two threads at once.
async fn hotpath() {
    let env = setup().await;
    let token = login(&env.http, &env.auth, "bench@example.com").await;
    env.verifier.verify(&token).await.unwrap();
    const N: u32 = 1_000_000;
    for threads in [1u32, 2] {
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..threads {
            let (v, t) = (env.verifier.clone(), token.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..N {
                    v.verify(&t).await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let per = start.elapsed() / N;
        println!(
            "verify (cached token), {threads} thread(s) in parallel: {per:?} per call per thread"
        );
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
        _ => eprintln!("usage: feed-latency latency [N] | throughput [SECONDS] | hotpath"),
    }
}
