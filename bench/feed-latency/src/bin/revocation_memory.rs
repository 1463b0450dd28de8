//! Memory of `tessera-verify`'s revocation state with N live revoked sessions (default
//! 100 000; DESIGN §6: at most 20 MB for the revocation state).
//!
//! `revocation_memory [N]` runs the real auth server (`tessera-server`, SQLite in a tempdir) in
//! a **child process** (this same binary, `__server`), so that the heap counted here is the
//! verifier's alone. In this process:
//!
//! 1. build a `Verifier` against the child (feed token, empty revocation set), let it settle;
//! 2. tell the child to start N sessions (`domain::sessions::start`, as a login does) and revoke
//!    each one (`domain::revocation::revoke`, `Target::Session`, as `POST /auth/logout` does);
//!    the verifier receives the N events through the SSE stream (`GET /revocations/stream`);
//! 3. once `health().revocations == N`, count the heap again: the delta is the state grown
//!    through the streaming path; a token of the first revoked session must be rejected;
//! 4. build a second verifier, which loads the same N events from the snapshot
//!    (`GET /revocations`); its heap minus an empty verifier's is the state built through the
//!    snapshot path;
//! 5. drop both verifiers and check the heap returns to where it started (the deltas belong
//!    to the verifiers).
//!
//! Heap: a counting global allocator (`stats_alloc`, live bytes = allocated - freed, as
//! requested from the allocator, so without malloc's own overhead). RSS and peak RSS
//! (`VmRSS`, `VmHWM`) from `/proc/self/status` for comparison. Results go to
//! `bench/README.md`, "Verifier revocation-state memory".

// A benchmark binary: a failed setup step should stop it loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::alloc::System;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};
use tessera_server::config::SecretString;
use tessera_server::domain::accounts::FIRST_PARTY_CLIENT;
use tessera_server::domain::revocation::{self, Target};
use tessera_server::domain::sessions::{self, SessionOrigin};
use tessera_server::{Clock, Config};
use tessera_store::NewUser;
use tessera_verify::{Revoked, Verifier, VerifyError};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const FEED_TOKEN: &str = "revocation-memory-bench-feed-token";

/// Live heap bytes of this process.
fn heap() -> i64 {
    let s = GLOBAL.stats();
    s.bytes_allocated as i64 - s.bytes_deallocated as i64
}

/// `VmRSS` and `VmHWM` in bytes.
fn rss() -> (i64, i64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<i64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn mb(bytes: i64) -> String {
    format!("{:.2} MB", bytes as f64 / 1e6)
}

/// Lets transient buffers (request bodies, parsed pages) go before counting.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(700)).await;
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if args.get(1).map(String::as_str) == Some("__server") {
        let n: usize = args[2].parse().unwrap();
        rt.block_on(server_child(n));
    } else {
        let n: usize = args.get(1).map_or(100_000, |a| a.parse().unwrap());
        rt.block_on(measure(n));
    }
}

/// The child: the real auth server, filled on request with `n` revoked sessions.
async fn server_child(n: usize) {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = Config {
        data_dir: dir.path().join("data"),
        cookie_secure: false,
        feed_token: Some(SecretString(FEED_TOKEN.to_owned())),
        ..Config::default()
    };
    let running = tessera_server::spawn(config, Clock::system(), listener)
        .await
        .unwrap();
    let state = running.state.clone();
    let now = state.now();
    let user = state
        .store
        .create_user(&NewUser {
            id: "bench-user".to_owned(),
            email: "bench@example.com".to_owned(),
            // Never logged in with: sessions are started directly.
            password_hash: "unused".to_owned(),
            roles: vec!["user".to_owned()],
            created_at: now,
        })
        .await
        .unwrap();
    println!("ready {}", running.url());

    let mut stdin = BufReader::new(std::io::stdin());
    let mut line = String::new();
    stdin.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "fill");
    let origin = SessionOrigin {
        ip: Some("127.0.0.1".to_owned()),
        user_agent: Some("revocation-memory".to_owned()),
    };
    let t0 = Instant::now();
    let mut first_token = None;
    for i in 0..n {
        let issued = sessions::start(&state, &user, FIRST_PARTY_CLIENT, &origin)
            .await
            .unwrap();
        let out = revocation::revoke(
            &state,
            Target::Session {
                id: &issued.session.id,
                reason: "logout",
            },
        )
        .await
        .unwrap();
        assert_eq!(out.events.len(), 1, "session {i}");
        if first_token.is_none() {
            first_token = Some(issued.access_token.clone());
        }
    }
    println!(
        "filled {} {:.1}",
        first_token.unwrap(),
        t0.elapsed().as_secs_f64()
    );
    // Serve until the parent closes our stdin.
    line.clear();
    while stdin.read_line(&mut line).map(|r| r > 0).unwrap_or(false) {
        line.clear();
    }
    drop(running);
}

async fn build(url: &str) -> Verifier {
    Verifier::builder(url)
        .feed_token(FEED_TOKEN)
        .http_timeout(Duration::from_secs(120))
        .build()
        .await
        .unwrap()
}

async fn measure(n: usize) {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args(["__server", &n.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut to_child = child.stdin.take().unwrap();
    let mut from_child = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    from_child.read_line(&mut line).unwrap();
    let url = line.trim().strip_prefix("ready ").unwrap().to_owned();

    settle().await;
    let heap0 = heap();
    let (rss0, _) = rss();

    // 1. An empty verifier.
    let a = build(&url).await;
    settle().await;
    let heap_a_empty = heap();
    let (rss_a_empty, _) = rss();
    assert_eq!(a.health().revocations, 0);

    // 2. Fill through the stream.
    let t0 = Instant::now();
    writeln!(to_child, "fill").unwrap();
    to_child.flush().unwrap();
    let reader = std::thread::spawn(move || {
        let mut line = String::new();
        from_child.read_line(&mut line).unwrap();
        line
    });
    while a.health().revocations < n {
        assert!(
            t0.elapsed() < Duration::from_secs(540),
            "only {} of {n} revocations arrived in 9 minutes",
            a.health().revocations
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stream_secs = t0.elapsed().as_secs_f64();
    let filled = tokio::task::spawn_blocking(move || reader.join().unwrap())
        .await
        .unwrap();
    let mut parts = filled.split_whitespace();
    assert_eq!(parts.next(), Some("filled"));
    let revoked_token = parts.next().unwrap().to_owned();
    let fill_secs: f64 = parts.next().unwrap().parse().unwrap();

    // 3. Count.
    settle().await;
    let heap_a_full = heap();
    let (rss_a_full, _) = rss();
    let h = a.health();
    assert_eq!(h.revocations, n);
    match a.verify(&revoked_token).await {
        Err(VerifyError::Revoked(Revoked::Session)) => {}
        other => panic!("the first revoked session's token was not rejected: {other:?}"),
    }

    // 4. A second verifier from the snapshot.
    let t1 = Instant::now();
    let b = build(&url).await;
    let snapshot_secs = t1.elapsed().as_secs_f64();
    settle().await;
    let heap_b = heap();
    let (rss_b, hwm_b) = rss();
    assert_eq!(b.health().revocations, n);
    match b.verify(&revoked_token).await {
        Err(VerifyError::Revoked(Revoked::Session)) => {}
        other => panic!("snapshot verifier accepted a revoked token: {other:?}"),
    }

    // 5. Drop both.
    drop(b);
    drop(a);
    settle().await;
    let heap_end = heap();
    drop(to_child);
    let _ = child.wait();

    let empty_verifier = heap_a_empty - heap0;
    let stream_state = heap_a_full - heap_a_empty;
    let snapshot_state = (heap_b - heap_a_full) - empty_verifier;
    println!(
        "revocation_memory: {n} live revoked sessions (sid = UUID text, as the server issues)"
    );
    println!(
        "  child fill (start + revoke {n} sessions): {fill_secs:.1} s; all {n} events at the verifier after {stream_secs:.1} s"
    );
    println!(
        "  heap, empty verifier (HTTP client, keys, feed task): {}",
        mb(empty_verifier)
    );
    println!(
        "  heap, revocation state grown through the SSE stream: {} ({:.0} B per session)",
        mb(stream_state),
        stream_state as f64 / n as f64
    );
    println!(
        "  heap, revocation state loaded from the snapshot ({snapshot_secs:.1} s to build): {} ({:.0} B per session)",
        mb(snapshot_state),
        snapshot_state as f64 / n as f64
    );
    println!(
        "  heap after dropping both verifiers: {} from the start",
        mb(heap_end - heap0)
    );
    println!(
        "  RSS: start {}, empty verifier {}, after stream fill {}, with the second verifier {}; peak (VmHWM) {}",
        mb(rss0),
        mb(rss_a_empty),
        mb(rss_a_full),
        mb(rss_b),
        mb(hwm_b)
    );
    println!(
        "  RSS growth from the stream fill: {}",
        mb(rss_a_full - rss_a_empty)
    );
}
