//! Two real `tessera serve` processes on one fresh PostgreSQL schema (DESIGN §2, "Scaling
//! out"), the way an operator runs them: each process has its own data directory holding a
//! copy of the same master key, its own port, the same issuer; they share nothing but the
//! database. Everything one node learns from the other travels through PostgreSQL.
//!
//! (`crates/server/tests/multinode.rs` covers the same ground with two in-process servers
//! and a shared test clock; this file proves it holds for separate processes.)
//!
//! Skipped with a loud line when PostgreSQL is unreachable; failed when
//! `TESSERA_REQUIRE_POSTGRES=1`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails loudly on a broken precondition"
)]

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::StatusCode;
use serde_json::Value;
use support::{
    add_user, eventually, free_port, kid_of, login, refresh, register, tokens, Node, Serve,
    FEED_TOKEN, PASSWORD,
};
use tempfile::TempDir;
use tessera_store::testing::TestSchema;
use tessera_verify::{Verifier, VerifyError};

const ADMIN: &str = "admin@example.com";

/// Two nodes on one schema. Field order matters: the processes die before the schema is
/// dropped.
struct Pair {
    nodes: [Node; 2],
    http: reqwest::Client,
    issuer: String,
    _dir: TempDir,
    _schema: TestSchema,
}

impl Pair {
    /// `None` when PostgreSQL is unreachable (skipped).
    async fn start(env: &[(&str, &str)]) -> Option<Self> {
        let schema = TestSchema::create().await?;
        let url = schema.url();
        let dir = tempfile::tempdir().unwrap();
        let (d1, d2) = (dir.path().join("one"), dir.path().join("two"));
        // The first admin, made the way an operator makes it: this migrates the schema and
        // creates node 1's master key and the first signing key.
        add_user(&d1, Some(&url), ADMIN, &["admin"]);
        // The deployment's one secret, distributed to the second node's own directory
        // (std::fs::copy keeps mode 0600).
        std::fs::create_dir_all(&d2).unwrap();
        std::fs::copy(d1.join("master.key"), d2.join("master.key")).unwrap();
        let (p1, p2) = (free_port(), free_port());
        // The issuer is the public address; here node 1's, the verifier follows node 1.
        let issuer = format!("http://127.0.0.1:{p1}");
        let http = reqwest::Client::new();
        let mut nodes = [(&d1, p1), (&d2, p2)].map(|(d, p)| {
            let mut s = Serve::new(d, p, Some(&url)).issuer(&issuer);
            for (k, v) in env {
                s = s.env(k, v);
            }
            s.start()
        });
        for n in &mut nodes {
            n.wait_ready(&http).await;
        }
        Some(Self {
            nodes,
            http,
            issuer,
            _dir: dir,
            _schema: schema,
        })
    }

    fn url(&self, i: usize) -> &str {
        &self.nodes[i % 2].url
    }

    async fn user(&self, email: &str) -> support::Tokens {
        assert_eq!(
            register(&self.http, self.url(0), email).await,
            StatusCode::CREATED
        );
        tokens(
            login(&self.http, self.url(0), email, PASSWORD)
                .await
                .unwrap(),
        )
        .await
    }

    async fn me(&self, i: usize, access: &str) -> StatusCode {
        self.http
            .get(format!("{}/auth/me", self.url(i)))
            .bearer_auth(access)
            .send()
            .await
            .unwrap()
            .status()
    }

    async fn logout(&self, i: usize, access: &str) -> StatusCode {
        self.http
            .post(format!("{}/auth/logout", self.url(i)))
            .bearer_auth(access)
            .send()
            .await
            .unwrap()
            .status()
    }

    async fn jwks_kids(&self, i: usize) -> Vec<String> {
        let v: Value = self
            .http
            .get(format!("{}/.well-known/jwks.json", self.url(i)))
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

    async fn refresh(&self, i: usize, token: &str) -> reqwest::Response {
        refresh(&self.http, self.url(i), token).await.unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_on_one_process_refresh_on_the_other_and_reuse_is_caught_across_them() {
    let Some(p) = Pair::start(&[]).await else {
        return;
    };
    let t0 = p.user("a@example.com").await;
    assert_eq!(p.me(1, &t0.access).await, StatusCode::OK);

    // Node 2 rotates node 1's refresh token; node 1 accepts the new access token.
    let t1 = tokens(p.refresh(1, &t0.refresh).await).await;
    assert_ne!(t1.refresh, t0.refresh);
    assert_eq!(p.me(0, &t1.access).await, StatusCode::OK);
    // A retry of the old token on node 1 inside the grace window gets the same successor:
    // the successor is derived from the master key both processes hold.
    let again = tokens(p.refresh(0, &t0.refresh).await).await;
    assert_eq!(again.refresh, t1.refresh);

    // The successor is used (on node 2); now the old token on node 1 is reuse: the whole
    // family is revoked, for both processes.
    let t2 = tokens(p.refresh(1, &t1.refresh).await).await;
    // (`/oauth/token` refuses a grant with 400 invalid_grant, RFC 6749 §5.2.)
    let reuse = p.refresh(0, &t0.refresh).await;
    assert_eq!(reuse.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        reuse.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
    for i in 0..2 {
        assert_eq!(
            p.refresh(i, &t2.refresh).await.status(),
            StatusCode::BAD_REQUEST,
            "node {}: the newest refresh token died with the family",
            i + 1
        );
        assert_eq!(
            p.me(i, &t2.access).await,
            StatusCode::UNAUTHORIZED,
            "node {}: so did its access token",
            i + 1
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_on_node_two_is_rejected_by_a_verifier_following_node_one_within_a_second() {
    let Some(p) = Pair::start(&[]).await else {
        return;
    };
    let verifier = Verifier::builder(p.issuer.clone())
        .feed_token(FEED_TOKEN)
        .build()
        .await
        .unwrap();
    for i in 0..3 {
        let t = p.user(&format!("u{i}@example.com")).await;
        verifier.verify(&t.access).await.unwrap();
        let start = Instant::now();
        assert_eq!(p.logout(1, &t.access).await, StatusCode::NO_CONTENT);
        let took = eventually(Duration::from_secs(1), || {
            let v = verifier.clone();
            let access = t.access.clone();
            async move { matches!(v.verify(&access).await, Err(VerifyError::Revoked(_))) }
        })
        .await
        .unwrap_or_else(|| {
            panic!(
                "the verifier following node 1 still accepts a token logged out on node 2 \
                 {:?} later",
                start.elapsed()
            )
        });
        eprintln!("logout on node 2 -> rejected by node 1's verifier after {took:?}");
        assert_eq!(p.me(0, &t.access).await, StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_rotated_through_node_ones_admin_api_is_published_and_used_by_node_two() {
    let Some(p) = Pair::start(&[]).await else {
        return;
    };
    let adm = tokens(login(&p.http, p.url(0), ADMIN, PASSWORD).await.unwrap()).await;
    let old_kid = kid_of(&adm.access);
    let r = p
        .http
        .post(format!("{}/admin/keys/rotate", p.url(0)))
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
    for i in 0..2 {
        let took = eventually(Duration::from_secs(1), || {
            let p = &p;
            let kid = new_kid.clone();
            async move { p.jwks_kids(i).await.contains(&kid) }
        })
        .await
        .unwrap_or_else(|| panic!("node {}'s JWKS lacks the new key after 1 s", i + 1));
        eprintln!("new key in node {}'s JWKS after {took:?}", i + 1);
        assert!(
            p.jwks_kids(i).await.contains(&old_kid),
            "the old key stays published"
        );
    }
    // Node 2 signs with the new key at once.
    let t = tokens(login(&p.http, p.url(1), ADMIN, PASSWORD).await.unwrap()).await;
    assert_eq!(kid_of(&t.access), new_kid, "node 2 signs with the new key");
    assert_eq!(p.me(0, &t.access).await, StatusCode::OK);
    // Tokens signed with the old key stay valid on both.
    for i in 0..2 {
        assert_eq!(p.me(i, &adm.access).await, StatusCode::OK);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_simultaneous_refreshes_over_two_processes_yield_one_successor() {
    let Some(p) = Pair::start(&[]).await else {
        return;
    };
    let t = p.user("race@example.com").await;
    let futs = (0..50).map(|i| {
        let (http, url, token) = (p.http.clone(), p.url(i).to_string(), t.refresh.clone());
        async move { refresh(&http, &url, &token).await.unwrap() }
    });
    let results = tokio::time::timeout(
        Duration::from_secs(30),
        futures_util::future::join_all(futs),
    )
    .await
    .expect("every refresh answers");
    let mut successors = BTreeSet::new();
    for r in results {
        assert_eq!(r.status(), StatusCode::OK, "inside the grace window");
        successors.insert(tokens(r).await.refresh);
    }
    assert_eq!(
        successors.len(),
        1,
        "one and the same successor: {successors:?}"
    );
    let successor = successors.into_iter().next().unwrap();
    assert_ne!(successor, t.refresh);
    // One chain, not revoked by any of the fifty: the successor rotates once.
    let next = tokens(p.refresh(1, &successor).await).await;
    assert_eq!(p.me(0, &next.access).await, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_are_counted_across_processes() {
    let Some(p) = Pair::start(&[("TESSERA_THROTTLE_ACCOUNT_FREE", "2")]).await else {
        return;
    };
    assert_eq!(
        register(&p.http, p.url(0), "bf@example.com").await,
        StatusCode::CREATED
    );
    let fail = |i: usize| {
        let p = &p;
        async move {
            login(&p.http, p.url(i), "bf@example.com", "wrong password!")
                .await
                .unwrap()
                .status()
        }
    };
    // Two free failures, one on each node: separate counters would allow two more per node.
    assert_eq!(fail(0).await, StatusCode::UNAUTHORIZED);
    assert_eq!(fail(1).await, StatusCode::UNAUTHORIZED);
    // The third failure (on node 1) locks the account for 1 s, counted in whole seconds of
    // the wall clock: start it early in a second so the check below falls inside the lock.
    while SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_millis()
        > 50
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(fail(0).await, StatusCode::UNAUTHORIZED);
    let r = login(&p.http, p.url(1), "bf@example.com", PASSWORD)
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "node 2 counted node 1's failures (even the right password waits)"
    );
    assert!(r.headers().contains_key("retry-after"));
    // After the lock the right password works on either process and clears the counter.
    let ok = eventually(Duration::from_secs(5), || {
        let p = &p;
        async move {
            login(&p.http, p.url(1), "bf@example.com", PASSWORD)
                .await
                .unwrap()
                .status()
                == StatusCode::OK
        }
    })
    .await;
    assert!(ok.is_some(), "the lock ends");
    assert_eq!(fail(0).await, StatusCode::UNAUTHORIZED, "counter cleared");
    assert_eq!(fail(1).await, StatusCode::UNAUTHORIZED, "counter cleared");
}
