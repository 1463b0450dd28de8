//! Several `tessera serve` nodes on one PostgreSQL database (DESIGN §2, "Scaling out").
//!
//! Every test starts TWO in-process servers on different loopback ports, each with its own
//! `AppState`, key manager and connection pool, on the same fresh PostgreSQL schema and the
//! same master key (copied into the second node's own data directory, the way an operator
//! distributes it). The nodes share nothing else: whatever one node learns from the other
//! travels through PostgreSQL (rows, and LISTEN/NOTIFY for revocations and key changes).
//!
//! Skipped with a loud line when PostgreSQL is unreachable; failed when
//! `TESSERA_REQUIRE_POSTGRES=1`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[macro_use]
mod support;

use std::net::SocketAddr;
use std::pin::Pin;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use common::*;
use futures_util::{Stream, StreamExt};
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};
use support::{admin, client};
use tempfile::TempDir;
use tessera_server::{Config, Running};

/// One node's HTTP endpoint.
#[derive(Clone)]
struct Ep {
    http: reqwest::Client,
    url: String,
    cookie: String,
}

impl Ep {
    fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    async fn post_json(&self, path: &str, body: Value) -> Response {
        self.http
            .post(self.at(path))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn get_bearer(&self, path: &str, token: &str) -> Response {
        self.http
            .get(self.at(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    async fn login(&self, email: &str, password: &str) -> Response {
        self.post_json("/auth/login", json!({"email": email, "password": password}))
            .await
    }

    async fn refresh(&self, refresh: &str) -> Response {
        self.http
            .post(self.at("/auth/refresh"))
            .headers(cookie_headers(&self.cookie, refresh))
            .send()
            .await
            .unwrap()
    }

    async fn logout(&self, access: &str) -> Response {
        self.http
            .post(self.at("/auth/logout"))
            .bearer_auth(access)
            .send()
            .await
            .unwrap()
    }

    async fn jwks_kids(&self) -> Vec<String> {
        let v: Value = self
            .http
            .get(self.at("/.well-known/jwks.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_string())
            .collect()
    }
}

/// Two nodes on one PostgreSQL schema. `one` is the harness's server (it owns the schema);
/// `two` is a second server started from the same configuration, with the same clock.
struct Cluster {
    one: TestServer,
    two: Option<Running>,
    _dir2: TempDir,
}

impl Cluster {
    /// Starts both nodes; `None` when PostgreSQL is unreachable (skipped).
    async fn start(tweak: impl FnOnce(&mut Config)) -> Option<Self> {
        let one = TestServer::start_with(Engine::Postgres, tweak).await?;
        let dir2 = tempfile::tempdir().unwrap();
        let mut config = one.config.clone();
        config.data_dir = dir2.path().join("data");
        std::fs::create_dir_all(&config.data_dir).unwrap();
        // The shared secret of a deployment: every node needs the same master key (it
        // decrypts the signing keys and derives the refresh-token successor key).
        std::fs::copy(one.config.master_key_path(), config.master_key_path()).unwrap();
        let two = start_node(config, &one).await;
        Some(Self {
            one,
            two: Some(two),
            _dir2: dir2,
        })
    }

    fn two(&self) -> &Running {
        self.two.as_ref().unwrap()
    }

    /// The endpoint of node `i` (0 or 1).
    fn ep(&self, i: usize) -> Ep {
        let url = if i % 2 == 0 {
            self.one.url.clone()
        } else {
            self.two().url()
        };
        Ep {
            http: self.one.http.clone(),
            url,
            cookie: self.one.config.cookie_name.clone(),
        }
    }
}

/// Starts a further node from `config`, sharing `one`'s clock.
async fn start_node(config: Config, one: &TestServer) -> Running {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    tessera_server::spawn(config, one.clock.clone(), listener)
        .await
        .unwrap()
}

fn kid_of(token: &str) -> String {
    let part = token.split('.').next().unwrap();
    let h: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap();
    h["kid"].as_str().unwrap().to_string()
}

/// Polls `check` every 10 ms until it holds or `within` passed; returns the time it took.
async fn eventually<F, Fut>(within: Duration, mut check: F) -> Option<Duration>
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

// ---- sessions across nodes ------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_on_one_node_refresh_on_the_other() {
    let Some(c) = Cluster::start(|_| {}).await else {
        return;
    };
    let l = c.one.new_user("a@example.com").await;
    let (n1, n2) = (c.ep(0), c.ep(1));

    // Node 2 accepts node 1's access token and rotates its refresh token.
    assert_eq!(
        n2.get_bearer("/auth/me", &l.access).await.status(),
        StatusCode::OK
    );
    let r = n2.refresh(&l.refresh).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r1 = login_from(r).await;
    assert_eq!(r1.session_id, l.session_id);
    assert_eq!(
        n1.get_bearer("/auth/me", &r1.access).await.status(),
        StatusCode::OK
    );

    // A retry of the old token on node 1 inside the grace window: the same successor (the
    // successor key comes from the shared master key).
    let again = n1.refresh(&l.refresh).await;
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(login_from(again).await.refresh, r1.refresh);

    // The successor works on node 1; then, after the grace window, the original is reuse
    // on node 2, which ends the session for both nodes.
    let r2 = login_from(n1.refresh(&r1.refresh).await).await;
    c.one.advance(11);
    assert_eq!(
        n2.refresh(&l.refresh).await.status(),
        StatusCode::UNAUTHORIZED
    );
    for ep in [&n1, &n2] {
        assert_eq!(
            ep.get_bearer("/auth/me", &r2.access).await.status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            ep.refresh(&r2.refresh).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(c.one.audit("refresh_reuse").await.len(), 1);
}

/// A minimal Server-Sent Events reader (WHATWG HTML §9.2.6): `(event, data)` pairs.
struct Sse {
    body: Pin<Box<dyn Stream<Item = reqwest::Result<Vec<u8>>> + Send>>,
    buf: String,
}

impl Sse {
    async fn open(ep: &Ep, reader: &(String, String)) -> Self {
        let r = ep
            .http
            .get(ep.at("/revocations/stream"))
            .basic_auth(&reader.0, Some(&reader.1))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        Self {
            body: Box::pin(r.bytes_stream().map(|c| c.map(|b| b.to_vec()))),
            buf: String::new(),
        }
    }

    /// The next named event, or `None` when none arrives before `deadline`.
    async fn next(&mut self, deadline: Instant) -> Option<(String, Value)> {
        loop {
            while let Some(pos) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..pos + 2).collect();
                let mut event = None;
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event = Some(v.trim().to_string());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.strip_prefix(' ').unwrap_or(v));
                    }
                }
                if let Some(event) = event {
                    return Some((event, serde_json::from_str(&data).unwrap()));
                }
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            match tokio::time::timeout(left, self.body.next()).await {
                Ok(Some(Ok(chunk))) => self.buf.push_str(std::str::from_utf8(&chunk).unwrap()),
                Ok(_) => panic!("stream ended"),
                Err(_) => return None,
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_on_node_two_reaches_node_ones_feed_within_a_second() {
    let Some(c) = Cluster::start(|_| {}).await else {
        return;
    };
    let reader = client(&c.one, "revocations:read", &[]).await;
    let (n1, n2) = (c.ep(0), c.ep(1));
    let mut sse = Sse::open(&n1, &reader).await;
    let (first, _) = sse
        .next(Instant::now() + Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(first, "snapshot");

    for i in 0..3 {
        let l = c.one.new_user(&format!("u{i}@example.com")).await;
        let start = Instant::now();
        assert_eq!(n2.logout(&l.access).await.status(), StatusCode::NO_CONTENT);
        let (event, data) = sse
            .next(start + Duration::from_secs(1))
            .await
            .unwrap_or_else(|| panic!("node 1's feed did not show node 2's logout within 1 s"));
        assert_eq!(event, "revocation");
        assert_eq!(data["kind"], "session");
        assert_eq!(data["subject"], l.session_id.as_str());
        // And node 1 refuses the token at once (it reads the store, not a cache).
        assert_eq!(
            n1.get_bearer("/auth/me", &l.access).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
}

// ---- keys -------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation_on_node_one_is_published_and_used_by_node_two() {
    let Some(c) = Cluster::start(|_| {}).await else {
        return;
    };
    let (n1, n2) = (c.ep(0), c.ep(1));
    let adm = admin(&c.one).await;
    c.one.register("k@example.com", PASSWORD).await;
    let before = n2.login("k@example.com", PASSWORD).await;
    let old_kid = kid_of(&login_from(before).await.access);

    // Immediate rotation (admin API) on node 1.
    let r = n1
        .http
        .post(n1.at("/admin/keys/rotate"))
        .bearer_auth(&adm.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let new_kid = r.json::<Value>().await.unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(new_kid, old_kid);
    let took = eventually(Duration::from_secs(1), || {
        let n2 = n2.clone();
        let kid = new_kid.clone();
        async move { n2.jwks_kids().await.contains(&kid) }
    })
    .await
    .expect("node 2's JWKS shows node 1's new key within 1 s (LISTEN/NOTIFY)");
    eprintln!("new key visible on node 2 after {took:?}");
    let l = login_from(n2.login("k@example.com", PASSWORD).await).await;
    assert_eq!(kid_of(&l.access), new_kid, "node 2 signs with the new key");
    assert!(
        n2.jwks_kids().await.contains(&old_kid),
        "the old key stays published"
    );
    assert_eq!(
        n1.get_bearer("/auth/me", &l.access).await.status(),
        StatusCode::OK
    );

    // Staged rotation on node 1: node 2 publishes the pending key at once, signs with it
    // the moment it activates (shared clock), with no further notice needed.
    let staged = c.one.state().keys.rotate_staged().await.unwrap();
    eventually(Duration::from_secs(1), || {
        let n2 = n2.clone();
        let kid = staged.clone();
        async move { n2.jwks_kids().await.contains(&kid) }
    })
    .await
    .expect("node 2 publishes the pending key within 1 s");
    let l = login_from(n2.login("k@example.com", PASSWORD).await).await;
    assert_eq!(kid_of(&l.access), new_kid, "pending keys do not sign yet");
    c.one.advance(c.one.config.jwks_max_age);
    let l = login_from(n2.login("k@example.com", PASSWORD).await).await;
    assert_eq!(
        kid_of(&l.access),
        staged,
        "node 2 signs with it once active"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_one_node_performs_a_scheduled_rotation() {
    let interval = 3_600;
    let Some(c) = Cluster::start(|cfg| cfg.key_rotation_interval = interval).await else {
        return;
    };
    let store = c.one.state().store.clone();
    let start = store.list_keys().await.unwrap().len();
    assert_eq!(start, 1);
    let (k1, k2) = (&c.one.state().keys, &c.two().state.keys);
    for round in 1..=5 {
        // Due on both nodes at the same moment; both run their upkeep concurrently (their
        // background tasks may run it too).
        c.one.advance(interval + c.one.config.jwks_max_age + 1);
        let round_start = c.one.now();
        let (a, b) = tokio::join!(k1.maintain(), k2.maintain());
        a.unwrap();
        b.unwrap();
        let (a, b) = tokio::join!(k1.maintain(), k2.maintain());
        a.unwrap();
        b.unwrap();
        let keys = store.list_keys().await.unwrap();
        let created = keys.iter().filter(|k| k.created_at >= round_start).count();
        assert_eq!(
            created, 1,
            "round {round}: exactly one new key (no second rotation)"
        );
        let pending = keys.iter().filter(|k| k.activate_at > c.one.now()).count();
        assert_eq!(pending, 1, "round {round}: one pending key");
    }
}

// ---- throttling -------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_on_one_node_count_on_the_other() {
    let Some(c) = Cluster::start(|cfg| cfg.throttle_account_free = 2).await else {
        return;
    };
    let (n1, n2) = (c.ep(0), c.ep(1));
    c.one.register("bf@example.com", PASSWORD).await;
    // Two failures on node 1 and one on node 2: three in the window, one over the free
    // allowance. Separate counters per node would have locked nothing.
    for ep in [&n1, &n1, &n2] {
        assert_eq!(
            ep.login("bf@example.com", "wrong password!").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    // The first lock lasts 1 s counted in whole seconds, so it may lapse a moment after it
    // was set; step the shared clock back so the next request surely falls inside it.
    c.one.advance(-5);
    let r = n1.login("bf@example.com", PASSWORD).await;
    assert_eq!(
        r.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "node 1 knows of node 2's failure"
    );
    assert!(r.headers().contains_key("retry-after"));
    // Once the lock has passed, the right password works on either node and clears the
    // shared counter.
    c.one.advance(7);
    assert_eq!(
        n2.login("bf@example.com", PASSWORD).await.status(),
        StatusCode::OK
    );
    let t = c
        .two()
        .state
        .store
        .throttle_get("acct:bf@example.com")
        .await
        .unwrap();
    assert!(t.is_none(), "success on node 2 cleared the shared counter");
}

// ---- races ------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_simultaneous_refreshes_over_two_nodes_yield_one_successor() {
    let Some(c) = Cluster::start(|_| {}).await else {
        return;
    };
    let l = c.one.new_user("race@example.com").await;
    let eps = [c.ep(0), c.ep(1)];
    let futs = (0..50).map(|i| {
        let ep = eps[i % 2].clone();
        let token = l.refresh.clone();
        async move { ep.refresh(&token).await }
    });
    let results = tokio::time::timeout(
        Duration::from_secs(60),
        futures_util::future::join_all(futs),
    )
    .await
    .expect("no deadlock: every refresh answers");
    let mut successors = std::collections::BTreeSet::new();
    for r in results {
        assert_eq!(r.status(), StatusCode::OK);
        successors.insert(login_from(r).await.refresh);
    }
    assert_eq!(successors.len(), 1, "one and the same successor everywhere");
    let successor = successors.into_iter().next().unwrap();
    assert_ne!(successor, l.refresh);
    assert!(c.one.audit("refresh_reuse").await.is_empty());
    // One chain: the successor rotates normally, the session is still the one session.
    let next = eps[1].refresh(&successor).await;
    assert_eq!(next.status(), StatusCode::OK);
    let next = login_from(next).await;
    assert_eq!(next.session_id, l.session_id);
    let store = &c.one.state().store;
    let user = store
        .user_by_email("race@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store
            .live_sessions(&user.id, c.one.now())
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logout_racing_a_refresh_on_the_other_node_ends_revoked() {
    let Some(c) = Cluster::start(|_| {}).await else {
        return;
    };
    let (n1, n2) = (c.ep(0), c.ep(1));
    c.one.register("lr@example.com", PASSWORD).await;
    let store = c.one.state().store.clone();
    let mut refreshed = 0;
    for round in 0..8 {
        let l = login_from(n1.login("lr@example.com", PASSWORD).await).await;
        // Alternate which node gets which request.
        let (re, lo) = if round % 2 == 0 {
            (&n1, &n2)
        } else {
            (&n2, &n1)
        };
        let (r, out) = tokio::join!(re.refresh(&l.refresh), lo.logout(&l.access));
        assert_eq!(out.status(), StatusCode::NO_CONTENT, "round {round}");
        let s = store.session_by_id(&l.session_id).await.unwrap().unwrap();
        assert!(s.revoked_at.is_some(), "round {round}: session revoked");
        match r.status() {
            StatusCode::OK => {
                refreshed += 1;
                let r = login_from(r).await;
                for ep in [&n1, &n2] {
                    assert_eq!(
                        ep.refresh(&r.refresh).await.status(),
                        StatusCode::UNAUTHORIZED,
                        "round {round}: the successor dies with the session"
                    );
                    assert_eq!(
                        ep.get_bearer("/auth/me", &r.access).await.status(),
                        StatusCode::UNAUTHORIZED,
                        "round {round}: so does its access token"
                    );
                }
            }
            StatusCode::UNAUTHORIZED => {}
            other => panic!("round {round}: refresh answered {other}"),
        }
    }
    eprintln!("refresh won the race in {refreshed} of 8 rounds");
}

// ---- faults -----------------------------------------------------------------------------

/// A TCP forwarder to PostgreSQL that a test can cut (every open connection is closed and
/// new ones are refused) and restore, standing in for a database outage or a network split
/// without touching the machine's shared PostgreSQL server.
struct Proxy {
    addr: SocketAddr,
    cut: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: String) -> Self {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let (cut, watch) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                if *watch.borrow() {
                    drop(inbound); // refused while cut
                    continue;
                }
                let upstream = upstream.clone();
                let mut cut = watch.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.wait_for(|c| *c) => {} // both sockets close on drop
                    }
                });
            }
        });
        Self { addr, cut, task }
    }

    fn cut(&self) {
        self.cut.send_replace(true);
    }

    fn restore(&self) {
        self.cut.send_replace(false);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut.send_replace(true);
        self.task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_cut_off_from_postgres_answers_503_and_recovers_without_losing_writes() {
    let Some(one) = TestServer::start_with(Engine::Postgres, |c| {
        c.throttle_register_free = 10_000;
    })
    .await
    else {
        return;
    };
    // Node 2 reaches the same schema through the proxy.
    let mut url = reqwest::Url::parse(one.config.database_url.as_deref().unwrap()).unwrap();
    let upstream = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432));
    let proxy = Proxy::start(upstream).await;
    url.set_host(Some("127.0.0.1")).unwrap();
    url.set_port(Some(proxy.addr.port())).unwrap();
    let mut config = one.config.clone();
    config.database_url = Some(url.to_string());
    let two = start_node(config, &one).await;
    let ep = Ep {
        http: one.http.clone(),
        url: two.url(),
        cookie: one.config.cookie_name.clone(),
    };
    let register = |ep: Ep, i: usize| async move {
        ep.post_json(
            "/auth/register",
            json!({"email": format!("w{i}@example.com"), "password": PASSWORD}),
        )
        .await
        .status()
    };
    let mut acknowledged = Vec::new();
    for i in 0..3 {
        assert_eq!(register(ep.clone(), i).await, StatusCode::CREATED);
        acknowledged.push(i);
    }
    let l = login_from(ep.login("w0@example.com", PASSWORD).await).await;

    // A writer keeps registering through the outage; whatever it got a 201 for must exist
    // afterwards (a 503 may or may not have been written: the client retries).
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let refused = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let writer = tokio::spawn({
        let ep = ep.clone();
        let refused = refused.clone();
        async move {
            let mut acked = Vec::new();
            let mut statuses = std::collections::BTreeSet::new();
            for i in 1000.. {
                if *stopped.borrow() {
                    break;
                }
                let status = register(ep.clone(), i).await;
                statuses.insert(status.as_u16());
                if status == StatusCode::CREATED {
                    acked.push(i);
                } else {
                    refused.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            }
            (acked, statuses)
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;

    proxy.cut();
    let started = Instant::now();
    let r = ep.http.get(ep.at("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE, "readyz fails");
    let r = ep.login("w1@example.com", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error_code(r).await, "temporarily_unavailable");
    let status = register(ep.clone(), 100).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "never a 500");
    assert_eq!(
        ep.refresh(&l.refresh).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    eprintln!("outage answers took {:?}", started.elapsed());
    // /healthz is liveness: the process itself is fine.
    let r = ep.http.get(ep.at("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // The outage lasts until the writer has hit it too.
    eventually(Duration::from_secs(20), || {
        let refused = refused.clone();
        async move { refused.load(std::sync::atomic::Ordering::SeqCst) > 0 }
    })
    .await
    .expect("the writer meets the outage");

    proxy.restore();
    let took = eventually(Duration::from_secs(20), || {
        let ep = ep.clone();
        async move {
            ep.http
                .get(ep.at("/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status() == StatusCode::OK)
        }
    })
    .await
    .expect("the node recovers by itself once PostgreSQL is back");
    eprintln!("ready again {took:?} after the restore");
    for i in 3..6 {
        assert_eq!(register(ep.clone(), i).await, StatusCode::CREATED);
        acknowledged.push(i);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.send_replace(true);
    let (acked, statuses) = writer.await.unwrap();
    assert!(
        statuses.iter().all(|s| [201, 503].contains(s)),
        "only 201 or 503 during an outage: {statuses:?}"
    );
    assert!(statuses.contains(&503) && acked.len() > 2, "{statuses:?}");
    acknowledged.extend(acked);
    // The session survived the outage: the refresh token was not consumed by the failed
    // attempt, and it rotates now.
    assert_eq!(ep.refresh(&l.refresh).await.status(), StatusCode::OK);
    // Every acknowledged write is in the database (read through the direct node).
    let store = &one.state().store;
    for i in acknowledged {
        let email = format!("w{i}@example.com");
        assert!(
            store.user_by_email(&email).await.unwrap().is_some(),
            "acknowledged registration {email} lost"
        );
    }
    two.stop().await.unwrap();
}

// ---- the introspection cache across nodes ----------------------------------------------------

/// `POST /oauth/introspect` on `ep` with Basic credentials: status and body.
async fn introspect_on(ep: &Ep, rs: &(String, String), token: &str) -> (StatusCode, Value) {
    let r = ep
        .http
        .post(ep.at("/oauth/introspect"))
        .basic_auth(&rs.0, Some(&rs.1))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn cache_hits_on(ep: &Ep) -> f64 {
    let text = ep
        .http
        .get(ep.at("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    support::metric(&text, "tessera_introspection_cache_total{result=\"hit\"}")
}

/// Introspects on `ep` until the active answer came from that node's cache.
async fn warm_on(ep: &Ep, rs: &(String, String), token: &str) {
    let warmed = eventually(Duration::from_secs(5), || async move {
        let before = cache_hits_on(ep).await;
        let (status, v) = introspect_on(ep, rs, token).await;
        assert_eq!(
            (status, &v["active"]),
            (StatusCode::OK, &json!(true)),
            "{v}"
        );
        cache_hits_on(ep).await > before
    })
    .await;
    assert!(warmed.is_some(), "never answered from the cache");
}

/// A revocation on node 2 reaches node 1's cached introspection answers through the
/// notice, well inside the documented bound (1 s): logout, jti revocation, and the deletion
/// of the introspecting client itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_cache_on_one_node_hears_revocations_on_the_other() {
    let Some(c) = Cluster::start(|_| {}).await else {
        return;
    };
    let (n1, n2) = (c.ep(0), c.ep(1));
    let rs = client(&c.one, "", &[]).await;
    let bound = Duration::from_millis(1500);
    let inactive_on_one = |token: String| {
        let (n1, rs) = (n1.clone(), rs.clone());
        async move {
            let (n1, rs, token) = (&n1, &rs, token.as_str());
            eventually(bound, || async move {
                introspect_on(n1, rs, token).await == (StatusCode::OK, json!({"active": false}))
            })
            .await
        }
    };

    let l = c.one.new_user("a@example.com").await;
    warm_on(&n1, &rs, &l.access).await;
    assert_eq!(n2.logout(&l.access).await.status(), StatusCode::NO_CONTENT);
    let took = inactive_on_one(l.access.clone())
        .await
        .expect("logout on node 2 visible in node 1's introspection");
    eprintln!("logout on node 2 -> inactive on node 1 after {took:?}");

    let b = login_from(n1.login("a@example.com", PASSWORD).await).await;
    warm_on(&n1, &rs, &b.access).await;
    let r = n2
        .http
        .post(n2.at("/oauth/revoke"))
        .form(&[("token", b.access.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    inactive_on_one(b.access.clone())
        .await
        .expect("jti revoked on node 2 inactive on node 1");

    // The introspecting client is deleted on node 2: node 1 stops accepting it.
    let root = admin(&c.one).await;
    let d = login_from(n1.login("a@example.com", PASSWORD).await).await;
    warm_on(&n1, &rs, &d.access).await;
    let r = n2
        .http
        .delete(n2.at(&format!("/admin/clients/{}", rs.0)))
        .bearer_auth(&root.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let (n1r, rsr, dr) = (&n1, &rs, d.access.as_str());
    let refused = eventually(bound, || async move {
        introspect_on(n1r, rsr, dr).await.0 == StatusCode::UNAUTHORIZED
    })
    .await;
    assert!(
        refused.is_some(),
        "a client deleted on node 2 still introspects on node 1"
    );
}

/// A node that loses its notice connection cannot know what the other nodes revoked
/// meanwhile: one second after the cut its cache is no longer used, and after it reconnects
/// a revocation made during the cut is reflected (the reconnection invalidates everything).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn introspection_cache_is_not_trusted_across_a_notice_outage() {
    let Some(one) = TestServer::start_with(Engine::Postgres, |_| {}).await else {
        return;
    };
    let mut url = reqwest::Url::parse(one.config.database_url.as_deref().unwrap()).unwrap();
    let upstream = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432));
    let proxy = Proxy::start(upstream).await;
    url.set_host(Some("127.0.0.1")).unwrap();
    url.set_port(Some(proxy.addr.port())).unwrap();
    let mut config = one.config.clone();
    config.database_url = Some(url.to_string());
    let two = start_node(config, &one).await;
    let ep = Ep {
        http: one.http.clone(),
        url: two.url(),
        cookie: one.config.cookie_name.clone(),
    };
    let rs = client(&one, "", &[]).await;
    let l = one.new_user("a@example.com").await;
    warm_on(&ep, &rs, &l.access).await;

    // Node 2 is cut off; the logout happens on node 1 meanwhile.
    proxy.cut();
    let r = one
        .http
        .post(one.at("/auth/logout"))
        .bearer_auth(&l.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let cut_at = Instant::now();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    // Past the bound: never the cached "active" again (503 while PostgreSQL is unreachable).
    let (status, v) = introspect_on(&ep, &rs, &l.access).await;
    assert_ne!(
        v["active"],
        json!(true),
        "{status} {v} {:?} after the cut",
        cut_at.elapsed()
    );

    proxy.restore();
    let (epr, rsr, ar) = (&ep, &rs, l.access.as_str());
    let answered = eventually(Duration::from_secs(20), || async move {
        introspect_on(epr, rsr, ar).await.0 == StatusCode::OK
    })
    .await;
    assert!(answered.is_some(), "node 2 recovers");
    assert_eq!(
        introspect_on(&ep, &rs, &l.access).await,
        (StatusCode::OK, json!({"active": false})),
        "a revocation made during the outage is reflected after it"
    );
    // And the cache is used again once the listener has proven itself.
    let fresh = one.login("a@example.com", PASSWORD).await;
    warm_on(&ep, &rs, &fresh.access).await;
    two.stop().await.unwrap();
}
