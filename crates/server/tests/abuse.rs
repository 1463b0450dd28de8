//! Abuse of the HTTP surface over real loopback sockets: oversized bodies and headers,
//! slow clients (slowloris), connection floods, malformed requests, and password guessing
//! (one account from many addresses, many accounts from one address).
//!
//! Distinct client addresses are real: Linux routes all of 127.0.0.0/8 to loopback, so a
//! client bound to 127.0.0.7 is a different peer IP to the server. `X-Forwarded-For` is
//! sent too, to show it is not trusted (the server reads the peer address only).
// Test helpers outside #[test] fns: a malformed response must fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use common::*;
use reqwest::header::RETRY_AFTER;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// A client whose connections come from `127.0.0.<n>`.
fn client_from(n: u8) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, n)))
        .build()
        .unwrap()
}

/// Sends raw bytes on a fresh connection and returns what the server answered before it
/// closed (or within 5 s).
async fn raw(s: &TestServer, bytes: &[u8]) -> String {
    let mut c = TcpStream::connect(s.running().addr).await.unwrap();
    // The server may answer and close before reading everything: ignore write errors.
    let _ = c.write_all(bytes).await;
    // Up to 5 s for the first bytes, then until the server pauses (keep-alive) or closes.
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let wait = if out.is_empty() {
            deadline.saturating_duration_since(Instant::now())
        } else {
            Duration::from_millis(300)
        };
        match tokio::time::timeout(wait, c.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => out.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn status_of(response: &str) -> Option<u16> {
    response.split_whitespace().nth(1)?.parse().ok()
}

async fn healthy(s: &TestServer) {
    let r = s.http.get(s.at("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "server no longer healthy");
}

#[tokio::test]
async fn oversized_bodies_get_413_and_change_nothing() {
    // A short request timeout bounds a body that is announced but never sent.
    let s = TestServer::start_with(Engine::Sqlite, |c| c.request_timeout = 2)
        .await
        .unwrap();
    let limit = s.config.body_limit;
    let before = s.state().store.count_users().await.unwrap();
    let big = "a".repeat(limit + 1);
    // JSON endpoints, with a Content-Length.
    for path in ["/auth/register", "/auth/login", "/auth/setup"] {
        let r = s
            .post_json(path, json!({"email": "x@example.com", "password": big}))
            .await;
        assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE, "{path}");
        let body: Value = r.json().await.unwrap();
        assert!(body["error"].is_string(), "{path}: {body}");
    }
    // A form endpoint.
    let r = s
        .http
        .post(s.at("/oauth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("grant_type=password&username=x&password={big}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // Chunked, with no Content-Length to check up front: still cut off at the limit.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = (0..(limit / 1024 + 8))
        .map(|_| Ok(vec![b' '; 1024]))
        .collect();
    let r = s
        .http
        .post(s.at("/auth/register"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(s.state().store.count_users().await.unwrap(), before);
    healthy(&s).await;
}

#[tokio::test]
async fn a_body_announced_over_the_limit_is_refused_at_once() {
    // The default 30 s request timeout: a 408 could not arrive within `raw`'s 5 s, so only an
    // up-front 413 passes.
    let s = TestServer::start().await;
    assert!(s.config.request_timeout >= 30);
    let before = s.state().store.count_users().await.unwrap();
    let over = s.config.body_limit + 1;
    let heads = [
        // 1 GiB announced on a JSON endpoint, one byte sent, then silence.
        "POST /auth/login HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1073741824\r\n\r\n{".to_string(),
        // One byte over the limit, on a form endpoint, nothing sent.
        format!("POST /oauth/token HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {over}\r\n\r\n"),
        // A client that waits for `100 Continue` before sending: it gets the 413 instead.
        "POST /auth/register HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nexpect: 100-continue\r\ncontent-length: 9999999999\r\n\r\n".to_string(),
    ];
    for head in &heads {
        let answer = raw(&s, head.as_bytes()).await;
        assert_eq!(
            status_of(&answer),
            Some(413),
            "{head:.80}: answered {answer:.300}"
        );
        assert!(answer.contains("invalid_request"), "{answer:.300}");
        assert!(
            !answer.contains(" 100 "),
            "sent 100 Continue: {answer:.300}"
        );
    }
    // The limit itself is still accepted (the request is read and judged on its content).
    let at_limit = format!(
        "{{\"email\":\"x@example.com\",\"password\":\"{}\"}}",
        "a".repeat(s.config.body_limit - 40)
    );
    assert!(at_limit.len() <= s.config.body_limit);
    let r = s
        .http
        .post(s.at("/auth/login"))
        .header("content-type", "application/json")
        .body(at_limit)
        .send()
        .await
        .unwrap();
    assert_ne!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(r.status().is_client_error(), "{}", r.status());
    assert_eq!(s.state().store.count_users().await.unwrap(), before);
    healthy(&s).await;
}

#[tokio::test]
async fn oversized_and_too_many_headers_are_refused_cleanly() {
    let s = TestServer::start().await;
    // One huge header (1 MiB): 431, or the connection is closed; never a 5xx.
    let huge = format!(
        "GET /auth/me HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\n\r\n",
        "a".repeat(1024 * 1024)
    );
    let answer = raw(&s, huge.as_bytes()).await;
    match status_of(&answer) {
        None | Some(431) => {}
        other => panic!("1 MiB header answered {other:?}: {answer:.200}"),
    }
    // Many headers.
    let mut many = String::from("GET /healthz HTTP/1.1\r\nhost: x\r\n");
    for i in 0..500 {
        many.push_str(&format!("x-h{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let answer = raw(&s, many.as_bytes()).await;
    match status_of(&answer) {
        None | Some(431) => {}
        other => panic!("500 headers answered {other:?}: {answer:.200}"),
    }
    // A 16 KiB bearer token (twice the token cap) is an ordinary 401, not a crash.
    let r = s
        .get_bearer("/auth/me", &format!("{}.e30.e30", "a".repeat(16 * 1024)))
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    healthy(&s).await;
}

#[tokio::test]
async fn malformed_requests_get_4xx_never_5xx() {
    let s = TestServer::start().await;
    let cases: &[&[u8]] = &[
        b"POST /auth/login HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 5\r\n\r\n{\"a\":",
        b"POST /auth/login HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n[]",
        b"POST /auth/login HTTP/1.1\r\nhost: x\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\n{}",
        b"POST /auth/login HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 4\r\n\r\n\xff\xfe\x00\x01",
        b"POST /auth/register HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 37\r\n\r\n{\"email\":1,\"password\":[1,2,3],\"x\":{}}",
        b"POST /oauth/token HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: 11\r\n\r\n%%%%%%%%%%%",
        b"POST /oauth/token HTTP/1.1\r\nhost: x\r\nauthorization: Basic !!!!\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: 29\r\n\r\ngrant_type=client_credentials",
        b"GET /auth/me HTTP/1.1\r\nhost: x\r\nauthorization: Bearer \xff\xfe\r\n\r\n",
        b"GET /admin/users?limit=-1&offset=99999999999999999999 HTTP/1.1\r\nhost: x\r\n\r\n",
        b"GET /revocations?since=abc HTTP/1.1\r\nhost: x\r\n\r\n",
        b"GET /%ff%fe/../../etc/passwd HTTP/1.1\r\nhost: x\r\n\r\n",
        b"DELETE /auth/sessions/%00 HTTP/1.1\r\nhost: x\r\n\r\n",
        b"BREW /auth/login HTTP/1.1\r\nhost: x\r\n\r\n",
        b"GET /healthz HTTP/9.9\r\nhost: x\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        b"POST /auth/refresh HTTP/1.1\r\nhost: x\r\ncookie: tessera_refresh=\xff; tessera_refresh=a\r\nx-tessera-csrf: 1\r\ncontent-length: 0\r\n\r\n",
        b"POST /auth/login HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\ncontent-type: application/json\r\n\r\nzz\r\n",
    ];
    for case in cases {
        let answer = raw(&s, case).await;
        if let Some(code) = status_of(&answer) {
            assert!(
                (400..500).contains(&code),
                "{:?} answered {code}: {answer:.300}",
                String::from_utf8_lossy(case)
            );
        }
    }
    healthy(&s).await;
}

#[tokio::test]
async fn slowloris_clients_are_disconnected_after_the_header_read_timeout() {
    let s = Engine::Sqlite;
    let s = TestServer::start_with(s, |c| c.request_timeout = 2)
        .await
        .unwrap();
    // A client that trickles its request head one byte every 200 ms and never finishes.
    let mut c = TcpStream::connect(s.running().addr).await.unwrap();
    let started = Instant::now();
    let head = b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-slow: ";
    let mut closed_after = None;
    'outer: for round in 0..200 {
        let byte = head.get(round).copied().unwrap_or(b'a');
        if c.write_all(&[byte]).await.is_err() {
            closed_after = Some(started.elapsed());
            break;
        }
        let mut buf = [0u8; 512];
        match tokio::time::timeout(Duration::from_millis(200), c.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed_after = Some(started.elapsed());
                break 'outer;
            }
            Ok(Ok(n)) => {
                // hyper may answer 408 before closing; anything but a timeout is wrong.
                let text = String::from_utf8_lossy(&buf[..n]);
                assert!(text.contains("408"), "slow client got {text}");
            }
            Err(_) => {}
        }
    }
    let closed_after = closed_after.expect("a slowloris connection was kept open for 40 s");
    assert!(
        closed_after < Duration::from_secs(6),
        "disconnected only after {closed_after:?}"
    );
    // A connection that sends nothing at all is dropped too.
    let mut idle = TcpStream::connect(s.running().addr).await.unwrap();
    let mut buf = [0u8; 64];
    let r = tokio::time::timeout(Duration::from_secs(6), idle.read(&mut buf)).await;
    assert!(
        matches!(r, Ok(Ok(0)) | Ok(Err(_)) | Ok(Ok(_))),
        "an idle connection was kept open: {r:?}"
    );
    healthy(&s).await;
}

#[tokio::test]
async fn a_connection_flood_is_served_or_refused_cleanly() {
    let s = TestServer::start().await;
    // 400 idle connections held open ...
    let mut idle = Vec::new();
    for _ in 0..400 {
        if let Ok(c) = TcpStream::connect(s.running().addr).await {
            idle.push(c);
        }
    }
    assert!(
        idle.len() >= 300,
        "only {} connections accepted",
        idle.len()
    );
    // ... while 300 concurrent requests come in on fresh connections.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..300u32 {
        let url = s.at(if i % 2 == 0 { "/healthz" } else { "/auth/me" });
        tasks.spawn(async move {
            let c = reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .unwrap();
            c.get(url).send().await.map(|r| r.status())
        });
    }
    let (mut ok, mut refused) = (0, 0);
    while let Some(r) = tasks.join_next().await {
        match r.unwrap() {
            Ok(st) => {
                assert!(!st.is_server_error(), "flood got {st}");
                assert!(
                    st == StatusCode::OK || st == StatusCode::UNAUTHORIZED,
                    "flood got {st}"
                );
                ok += 1;
            }
            Err(_) => refused += 1,
        }
    }
    assert!(ok >= 250, "only {ok} of 300 served ({refused} refused)");
    drop(idle);
    healthy(&s).await;
}

#[tokio::test]
async fn connections_over_the_cap_are_refused_with_503_at_once() {
    let cap = 20;
    let s = TestServer::start_with(Engine::Sqlite, |c| c.max_connections = cap)
        .await
        .unwrap();
    // `cap` idle connections hold every slot (the header timeout is 30 s) ...
    let mut idle = Vec::new();
    for _ in 0..cap {
        idle.push(TcpStream::connect(s.running().addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // ... so 30 more are each answered 503 with Retry-After, at once, and closed.
    let started = Instant::now();
    let mut refused = 0;
    for _ in 0..30 {
        let answer = raw(&s, b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n").await;
        assert_eq!(status_of(&answer), Some(503), "over the cap: {answer:.300}");
        assert!(
            answer.to_ascii_lowercase().contains("retry-after: 1"),
            "{answer}"
        );
        assert!(answer.contains("temporarily_unavailable"), "{answer}");
        refused += 1;
    }
    assert_eq!(refused, 30);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "30 refusals took {:?}",
        started.elapsed()
    );
    // Slots come back when connections close: the server serves again.
    drop(idle);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let answer = raw(&s, b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n").await;
        if status_of(&answer) == Some(200) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still refused after the idle connections closed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    healthy(&s).await;
}

async fn login_from_ip(s: &TestServer, ip: u8, email: &str, password: &str) -> reqwest::Response {
    client_from(ip)
        .post(s.at("/auth/login"))
        .header("x-forwarded-for", format!("203.0.113.{ip}"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
}

fn retry_after(r: &reqwest::Response) -> i64 {
    r.headers()[RETRY_AFTER].to_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn guessing_one_account_from_many_addresses_is_throttled_per_account() {
    let s = TestServer::start().await;
    s.register("victim@example.com", PASSWORD).await;
    let free = s.config.throttle_account_free;
    assert_eq!(free, 5);
    // Each guess from a different peer address (and a different forged X-Forwarded-For):
    // the per-IP counters never fill, only the account's does.
    let mut ip = 10u8;
    let mut next_ip = || {
        ip += 1;
        ip
    };
    for i in 0..free + 1 {
        let r = login_from_ip(&s, next_ip(), "victim@example.com", &format!("guess-{i}")).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "guess {i}");
    }
    // The account is now locked, for every address, with a growing delay.
    let mut delays = Vec::new();
    for round in 0..4 {
        let r = login_from_ip(&s, next_ip(), "victim@example.com", "another-guess").await;
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "round {round}");
        let wait = retry_after(&r);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "too_many_attempts");
        assert_eq!(body["retry_after"], wait);
        // The correct password is refused too while locked (it is not even checked).
        let r = login_from_ip(&s, next_ip(), "victim@example.com", PASSWORD).await;
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "round {round}");
        delays.push(wait);
        // Wait the lock out, then fail once more: the next lock is longer.
        s.advance(wait);
        let r = login_from_ip(&s, next_ip(), "victim@example.com", "yet-another").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "round {round}");
    }
    // 1, 2, 4, 8 seconds (a second less when the wall clock ticked in between).
    for (d, expect) in delays.iter().zip([1i64, 2, 4, 8]) {
        assert!(
            *d == expect || *d == expect - 1 && expect > 1,
            "delays {delays:?}"
        );
    }
    assert!(delays.windows(2).all(|w| w[1] > w[0]), "delays {delays:?}");
    // The 10 guessed-from addresses each made one or two attempts: none is IP-locked, yet
    // the owner is locked out until the delay passes, then logs in.
    s.advance(20);
    let r = login_from_ip(&s, next_ip(), "victim@example.com", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::OK);
    let failed = s.audit("login_failed").await.len();
    assert_eq!(failed, (free + 1 + 4) as usize, "failed logins audited");
}

#[tokio::test]
async fn guessing_many_accounts_from_one_address_is_throttled_per_address() {
    let s = TestServer::start_with(Engine::Sqlite, |c| c.throttle_ip_free = 8)
        .await
        .unwrap();
    s.register("real@example.com", PASSWORD).await;
    let attacker = 66u8;
    // One guess per account (never enough to lock an account), from one address.
    for i in 0..8 {
        let r = login_from_ip(&s, attacker, &format!("user{i}@example.com"), "123456").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "guess {i}");
    }
    let r = login_from_ip(&s, attacker, "user8@example.com", "123456").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // Locked now: other accounts, even a correct password, from this address.
    let r = login_from_ip(&s, attacker, "user9@example.com", "123456").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let first = retry_after(&r);
    assert!(first >= 1);
    let r = login_from_ip(&s, attacker, "real@example.com", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    // Forged X-Forwarded-For does not help the attacker (same peer address, new header).
    let r = client_from(attacker)
        .post(s.at("/auth/login"))
        .header("x-forwarded-for", "198.51.100.1")
        .json(&json!({"email": "user10@example.com", "password": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    // The delay grows with each further failure.
    s.advance(first);
    let r = login_from_ip(&s, attacker, "user11@example.com", "123456").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = login_from_ip(&s, attacker, "user12@example.com", "123456").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(retry_after(&r) > first, "delay did not grow");
    // Nobody else is affected: another address logs in to the real account at once.
    let r = login_from_ip(&s, 77, "real@example.com", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_body_that_never_arrives_is_answered_408_within_the_request_timeout() {
    let s = TestServer::start_with(Engine::Sqlite, |c| c.request_timeout = 2)
        .await
        .unwrap();
    // The head is complete (so the header read timeout is over); the announced body is not
    // sent, so the login handler waits on it until the request time limit answers.
    let mut c = TcpStream::connect(s.running().addr).await.unwrap();
    c.write_all(
        b"POST /auth/login HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
          content-length: 100\r\n\r\n{\"email\":",
    )
    .await
    .unwrap();
    let started = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&out).contains("\r\n\r\n{") {
        match tokio::time::timeout(Duration::from_secs(10), c.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => out.extend_from_slice(&buf[..n]),
            other => panic!("no answer: {other:?} after {:?}", started.elapsed()),
        }
    }
    let elapsed = started.elapsed();
    let text = String::from_utf8_lossy(&out);
    assert_eq!(status_of(&text), Some(408), "{text}");
    assert!(text.contains("request_timeout"), "{text}");
    assert!(text
        .to_ascii_lowercase()
        .contains("x-content-type-options: nosniff"));
    assert!(
        elapsed >= Duration::from_millis(1500) && elapsed < Duration::from_secs(6),
        "answered after {elapsed:?}"
    );
    // Counted by route and status like any other answer.
    let metrics = s.http.get(s.at("/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), StatusCode::OK);
    let body = metrics.text().await.unwrap();
    assert!(
        body.contains(
            "tessera_http_requests_total{method=\"POST\",route=\"/auth/login\",status=\"408\"} 1"
        ),
        "no 408 counted for /auth/login"
    );
    healthy(&s).await;
}
