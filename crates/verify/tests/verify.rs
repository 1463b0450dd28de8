//! Integration tests of tessera-verify over real HTTP on loopback.
//!
//! `Issuer` below is a small real axum server playing the auth server's part of the contract
//! (docs/api.md): RFC 8414 metadata, a JWKS with `Cache-Control`, and the revocation feed
//! (`GET /revocations`, `GET /revocations/stream` as Server-Sent Events with `Last-Event-ID`).
//! It counts what it is asked, so the tests can check fetch rates and resume cursors.

// Test helpers outside #[test] fns: a failed unwrap is a failed test, which is what we want.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use tessera_jwt::{Algorithm, Header, SigningKey};
use tessera_verify::{Authenticated, BuildError, Revoked, Verifier, VerifyError};
use tokio::sync::watch;
use tower::Layer;

const FEED_ID: &str = "feed-client";
const FEED_SECRET: &str = "feed-secret";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

struct IssuerState {
    issuer: Mutex<String>,
    metadata_issuer: Mutex<Option<String>>,
    keys: Mutex<Vec<Arc<SigningKey>>>,
    max_age: AtomicU64,
    jwks_fetches: AtomicU64,
    /// The event log; events below `oldest` were compacted away.
    events: Mutex<Vec<Value>>,
    oldest: AtomicU64,
    notify: watch::Sender<u64>,
    /// Bumped to end every open stream.
    kill: watch::Sender<u64>,
    stream_down: AtomicBool,
    last_event_ids: Mutex<Vec<Option<String>>>,
    keepalive: Mutex<Duration>,
}

#[derive(Clone)]
struct Issuer {
    url: String,
    st: Arc<IssuerState>,
}

fn basic_ok(headers: &HeaderMap) -> bool {
    use base64::Engine;
    let want = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{FEED_ID}:{FEED_SECRET}"))
    );
    let got = headers.get("authorization").and_then(|v| v.to_str().ok());
    got == Some(want.as_str()) || got == Some("Bearer static-feed-token")
}

fn sse(event: &str, id: Option<u64>, data: &Value) -> String {
    let id = id.map(|i| format!("id: {i}\n")).unwrap_or_default();
    format!("{id}event: {event}\ndata: {data}\n\n")
}

impl Issuer {
    async fn start() -> Issuer {
        let (notify, _) = watch::channel(0);
        let (kill, _) = watch::channel(0);
        let st = Arc::new(IssuerState {
            issuer: Mutex::new(String::new()),
            metadata_issuer: Mutex::new(None),
            keys: Mutex::new(vec![Arc::new(new_key("k1"))]),
            max_age: AtomicU64::new(300),
            jwks_fetches: AtomicU64::new(0),
            events: Mutex::new(Vec::new()),
            oldest: AtomicU64::new(1),
            notify,
            kill,
            stream_down: AtomicBool::new(false),
            last_event_ids: Mutex::new(Vec::new()),
            keepalive: Mutex::new(Duration::from_millis(200)),
        });
        let app = Router::new()
            .route("/.well-known/oauth-authorization-server", get(metadata))
            .route("/.well-known/jwks.json", get(jwks))
            .route("/revocations", get(snapshot))
            .route("/revocations/stream", get(stream))
            .with_state(st.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        *st.issuer.lock().unwrap() = url.clone();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Issuer { url, st }
    }

    fn builder(&self) -> tessera_verify::VerifierBuilder {
        Verifier::builder(&self.url)
            .client_credentials(FEED_ID, FEED_SECRET)
            .feed_backoff(Duration::from_millis(20), Duration::from_millis(200))
    }

    fn key(&self, i: usize) -> Arc<SigningKey> {
        self.st.keys.lock().unwrap()[i].clone()
    }

    fn add_key(&self, kid: &str) -> Arc<SigningKey> {
        let k = Arc::new(new_key(kid));
        self.st.keys.lock().unwrap().push(k.clone());
        k
    }

    fn token(&self, key: &SigningKey, claims: Value) -> String {
        let mut c = json!({
            "iss": self.url, "sub": "user-1", "aud": ["api"], "exp": now() + 600,
            "iat": now(), "nbf": now(), "jti": format!("jti-{}", rand_id()), "sid": "sid-1",
            "client_id": "tessera", "roles": ["user"],
        });
        for (k, v) in claims.as_object().unwrap() {
            c[k] = v.clone();
        }
        key.sign(&Header::new().typ("at+jwt"), &c).unwrap()
    }

    fn jwks_fetches(&self) -> u64 {
        self.st.jwks_fetches.load(Ordering::SeqCst)
    }

    /// Appends an event to the log and wakes the streams.
    fn revoke(&self, kind: &str, subject: &str, cutoff: Option<i64>, expires_at: i64) -> u64 {
        let mut ev = self.st.events.lock().unwrap();
        let cursor = ev.last().map_or(0, |e| e["cursor"].as_u64().unwrap()) + 1;
        let mut e =
            json!({"cursor": cursor, "kind": kind, "subject": subject, "expires_at": expires_at});
        if let Some(c) = cutoff {
            e["cutoff"] = json!(c);
        }
        ev.push(e);
        drop(ev);
        self.st.notify.send_replace(cursor);
        cursor
    }

    /// Appends a raw `data` payload as the next revocation event (a broken feed). With
    /// `in_snapshot` it is part of the live set that snapshots return too.
    fn inject(&self, data: &str, in_snapshot: bool) -> u64 {
        let mut ev = self.st.events.lock().unwrap();
        let cursor = ev.last().map_or(0, |e| e["cursor"].as_u64().unwrap()) + 1;
        ev.push(json!({"cursor": cursor, "__raw": data, "__in_snapshot": in_snapshot}));
        drop(ev);
        self.st.notify.send_replace(cursor);
        cursor
    }

    /// The server is fixed: raw payloads are gone from the log and from snapshots.
    fn withdraw_raw(&self) {
        self.st
            .events
            .lock()
            .unwrap()
            .retain(|e| e.get("__raw").is_none());
    }

    fn kill_streams(&self) {
        self.st.kill.send_modify(|g| *g += 1);
    }

    /// The server compacted its log: resumes from before `oldest` get a snapshot, and the
    /// events about `withdraw` are no longer part of the live set.
    fn compact(&self, oldest: u64, withdraw: &str) {
        self.st
            .events
            .lock()
            .unwrap()
            .retain(|e| e["subject"] != withdraw);
        self.st.oldest.store(oldest, Ordering::SeqCst);
    }
}

fn rand_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    h.finish()
}

fn new_key(kid: &str) -> SigningKey {
    SigningKey::generate(Algorithm::EdDSA)
        .unwrap()
        .with_kid(kid)
}

async fn metadata(State(st): State<Arc<IssuerState>>) -> impl IntoResponse {
    let base = st.issuer.lock().unwrap().clone();
    let issuer = st
        .metadata_issuer
        .lock()
        .unwrap()
        .clone()
        .unwrap_or_else(|| base.clone());
    axum::Json(json!({
        "issuer": issuer,
        "jwks_uri": format!("{base}/.well-known/jwks.json"),
        "token_endpoint": format!("{base}/oauth/token"),
        "revocation_feed_endpoint": format!("{base}/revocations"),
    }))
}

async fn jwks(State(st): State<Arc<IssuerState>>) -> Response {
    st.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    let keys: Vec<Value> = st
        .keys
        .lock()
        .unwrap()
        .iter()
        .map(|k| serde_json::to_value(k.verifying_key().to_jwk()).unwrap())
        .collect();
    let max_age = st.max_age.load(Ordering::SeqCst);
    (
        [("cache-control", format!("public, max-age={max_age}"))],
        axum::Json(json!({ "keys": keys })),
    )
        .into_response()
}

/// The snapshot page as JSON text: `{"snapshot": true, "cursor", "events"}`, raw payloads
/// marked `in_snapshot` pasted in verbatim.
fn snapshot_json(st: &IssuerState) -> String {
    let ev = st.events.lock().unwrap();
    let cursor = ev.last().map_or(0, |e| e["cursor"].as_u64().unwrap());
    let items: Vec<String> = ev
        .iter()
        .filter_map(|e| match e.get("__raw") {
            Some(raw) => e["__in_snapshot"]
                .as_bool()
                .unwrap()
                .then(|| raw.as_str().unwrap().to_owned()),
            None => Some(e.to_string()),
        })
        .collect();
    format!(
        "{{\"snapshot\":true,\"cursor\":{cursor},\"events\":[{}]}}",
        items.join(",")
    )
}

async fn snapshot(State(st): State<Arc<IssuerState>>, headers: HeaderMap) -> Response {
    if !basic_ok(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    ([("content-type", "application/json")], snapshot_json(&st)).into_response()
}

async fn stream(State(st): State<Arc<IssuerState>>, headers: HeaderMap) -> Response {
    if !basic_ok(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    if st.stream_down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let last: Option<String> = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    st.last_event_ids.lock().unwrap().push(last.clone());
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(64);
    let mut notify = st.notify.subscribe();
    let mut kill = st.kill.subscribe();
    let keepalive = *st.keepalive.lock().unwrap();
    let st2 = st.clone();
    tokio::spawn(async move {
        let st = st2;
        let mut sent = match last.and_then(|l| l.parse::<u64>().ok()) {
            Some(n) if n + 1 >= st.oldest.load(Ordering::SeqCst) => n,
            _ => {
                let data = snapshot_json(&st);
                let cursor = st
                    .events
                    .lock()
                    .unwrap()
                    .last()
                    .map_or(0, |e| e["cursor"].as_u64().unwrap());
                let frame = format!("event: snapshot\ndata: {data}\n\n");
                if tx.send(Ok(frame)).await.is_err() {
                    return;
                }
                cursor
            }
        };
        loop {
            let new: Vec<Value> = st
                .events
                .lock()
                .unwrap()
                .iter()
                .filter(|e| e["cursor"].as_u64().unwrap() > sent)
                .cloned()
                .collect();
            for e in new {
                let c = e["cursor"].as_u64().unwrap();
                let frame = match e.get("__raw") {
                    Some(raw) => format!(
                        "id: {c}\nevent: revocation\ndata: {}\n\n",
                        raw.as_str().unwrap()
                    ),
                    None => sse("revocation", Some(c), &e),
                };
                if tx.send(Ok(frame)).await.is_err() {
                    return;
                }
                sent = c;
            }
            tokio::select! {
                r = notify.changed() => if r.is_err() { return },
                _ = kill.changed() => return,
                _ = tokio::time::sleep(keepalive) => {
                    if tx.send(Ok(": keep-alive\n\n".to_owned())).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    let body = Body::from_stream(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)));
    ([("content-type", "text/event-stream")], body).into_response()
}

/// Polls `f` until it is true or `limit` passes; returns the time it took.
async fn within(limit: Duration, mut f: impl AsyncFnMut() -> bool) -> Duration {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f().await {
            return start.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not met within {limit:?}");
}

#[tokio::test]
async fn verifies_good_tokens_and_rejects_bad_ones() {
    let iss = Issuer::start().await;
    let v = iss.builder().build().await.unwrap();
    let k1 = iss.key(0);
    let good = iss.token(&k1, json!({"roles": ["admin"], "scope": "a b"}));
    let c = v.verify(&good).await.unwrap();
    assert_eq!(c.sub, "user-1");
    assert_eq!(c.sid.as_deref(), Some("sid-1"));
    assert!(c.has_role("admin") && c.has_scope("b") && !c.has_scope("c"));
    // Repeat (cache hit) gives the same claims.
    assert_eq!(v.verify(&good).await.unwrap(), c);
    assert_eq!(v.health().cached_tokens, 1);

    let cases = [
        (json!({"aud": ["other"]}), "wrong audience"),
        (json!({"iss": "http://evil.example"}), "wrong issuer"),
        (json!({"exp": now() - 120}), "expired"),
        (json!({"nbf": now() + 300}), "not yet valid"),
    ];
    for (claims, what) in cases {
        let t = iss.token(&k1, claims);
        assert!(v.verify(&t).await.is_err(), "{what} accepted");
    }
    assert_eq!(
        v.verify(&iss.token(&k1, json!({"exp": now() - 120}))).await,
        Err(VerifyError::Expired)
    );
    // Wrong typ: an ID token is not an access token (RFC 9068 §2.1).
    let id_token = k1
        .sign(
            &Header::new().typ("JWT"),
            &json!({"iss": iss.url, "sub": "u", "aud": "api", "exp": now() + 60, "iat": now()}),
        )
        .unwrap();
    assert!(matches!(
        v.verify(&id_token).await,
        Err(VerifyError::Invalid(_))
    ));
    // A valid token with one signature byte changed.
    let mut forged = good.clone().into_bytes();
    let i = forged.len() - 5;
    forged[i] = if forged[i] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    assert!(matches!(
        v.verify(&forged).await,
        Err(VerifyError::Invalid(_))
    ));
    // A token signed by a key the issuer does not publish, claiming the issuer's kid.
    let rogue = new_key("k1");
    assert!(v.verify(&iss.token(&rogue, json!({}))).await.is_err());
    assert!(v.verify("not.a.token").await.is_err());
    assert!(v.verify(&"a".repeat(20_000)).await.is_err());
    // Expiry is checked on cache hits too.
    let short = iss.token(&k1, json!({"exp": now() + 1}));
    let v0 = Verifier::builder(&iss.url)
        .client_credentials(FEED_ID, FEED_SECRET)
        .leeway(Duration::ZERO)
        .build()
        .await
        .unwrap();
    assert!(v0.verify(&short).await.is_ok());
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(v0.verify(&short).await, Err(VerifyError::Expired));
}

#[tokio::test]
async fn build_checks_issuer_and_feed_credentials() {
    let iss = Issuer::start().await;
    *iss.st.metadata_issuer.lock().unwrap() = Some(format!("{}/", iss.url));
    match iss.builder().build().await {
        Err(BuildError::Metadata(_)) => {}
        other => panic!("issuer mismatch accepted: {other:?}"),
    }
    *iss.st.metadata_issuer.lock().unwrap() = None;
    // The static feed token (TESSERA_FEED_TOKEN) is the other way in.
    let v = Verifier::builder(&iss.url)
        .feed_token("static-feed-token")
        .build()
        .await
        .unwrap();
    assert!(v.health().feed_connected || v.health().cursor.is_some());
    assert!(matches!(
        Verifier::builder(&iss.url)
            .feed_token("wrong")
            .build()
            .await,
        Err(BuildError::Feed(_))
    ));
    let wrong = Verifier::builder(&iss.url)
        .client_credentials(FEED_ID, "wrong")
        .build()
        .await;
    assert!(matches!(wrong, Err(BuildError::Feed(_))), "{wrong:?}");
    assert!(matches!(
        Verifier::builder(&iss.url).build().await,
        Err(BuildError::Config(_))
    ));
    assert!(matches!(
        Verifier::builder("not a url").feed_token("t").build().await,
        Err(BuildError::InvalidUrl(_))
    ));
    let unreachable = Verifier::builder("http://127.0.0.1:9")
        .feed_token("t")
        .build()
        .await;
    assert!(matches!(unreachable, Err(BuildError::Http { .. })));
}

#[tokio::test]
async fn unknown_kid_refetches_once_then_rate_limits() {
    let iss = Issuer::start().await;
    let v = iss
        .builder()
        .unknown_kid_refetch_interval(Duration::from_secs(3600))
        .build()
        .await
        .unwrap();
    assert_eq!(iss.jwks_fetches(), 1);
    // A key rotated in after our fetch: one refetch, then it verifies.
    let k2 = iss.add_key("k2");
    v.verify(&iss.token(&k2, json!({}))).await.unwrap();
    assert_eq!(iss.jwks_fetches(), 2);
    // A flood of made-up kids, concurrently: no further fetch inside the interval.
    let mut tasks = Vec::new();
    for i in 0..300 {
        let v = v.clone();
        let t = iss.token(&new_key(&format!("random-{i}")), json!({}));
        tasks.push(tokio::spawn(async move { v.verify(&t).await }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), Err(VerifyError::UnknownKey));
    }
    assert_eq!(iss.jwks_fetches(), 2);
    assert_eq!(v.health().jwks_fetches, 2);
}

#[tokio::test]
async fn unknown_kid_flood_fetches_at_most_once_per_interval() {
    let iss = Issuer::start().await;
    let v = iss
        .builder()
        .unknown_kid_refetch_interval(Duration::from_millis(500))
        .build()
        .await
        .unwrap();
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < Duration::from_millis(1600) {
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let v = v.clone();
            let t = iss.token(&new_key(&format!("r{n}")), json!({}));
            n += 1;
            tasks.push(tokio::spawn(async move { v.verify(&t).await }));
        }
        for t in tasks {
            assert!(t.await.unwrap().is_err());
        }
    }
    // Build's fetch + one per started 500 ms window.
    let fetches = iss.jwks_fetches();
    assert!(n > 100, "only {n} tokens sent");
    assert!(
        (2..=5).contains(&fetches),
        "{fetches} fetches for {n} unknown kids"
    );
}

#[tokio::test]
async fn jwks_cache_control_max_age_is_honoured() {
    let iss = Issuer::start().await;
    iss.st.max_age.store(1, Ordering::SeqCst);
    let v = iss
        .builder()
        .unknown_kid_refetch_interval(Duration::from_secs(3600))
        .build()
        .await
        .unwrap();
    // max-age=1: refreshed in the background about every second.
    within(Duration::from_secs(5), async || iss.jwks_fetches() >= 3).await;
    assert!(v.health().keys_age_ms < 2000);

    let long = Issuer::start().await;
    long.st.max_age.store(3600, Ordering::SeqCst);
    let _v = long.builder().build().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(long.jwks_fetches(), 1, "max-age=3600 still fresh");
}

/// A token verified over and over sits in the verifier's per-thread copy (filled on the
/// second cache hit): a withdrawn signing key and a revocation must still end it at once.
#[tokio::test]
async fn hot_tokens_still_die_with_their_key_and_their_session() {
    let iss = Issuer::start().await;
    iss.st.max_age.store(1, Ordering::SeqCst);
    let old = iss.key(0);
    let new = iss.add_key("k2");
    let v = iss.builder().build().await.unwrap();
    let by_old = iss.token(&old, json!({"sid": "sid-old"}));
    let by_new = iss.token(&new, json!({"sid": "sid-hot"}));
    for _ in 0..5 {
        v.verify(&by_old).await.unwrap();
        v.verify(&by_new).await.unwrap();
    }
    // The old key leaves the JWKS (max-age=1: the verifier refetches within about a second).
    iss.st.keys.lock().unwrap().remove(0);
    let took = within(Duration::from_secs(5), async || {
        v.verify(&by_old).await.is_err()
    })
    .await;
    assert!(took < Duration::from_secs(5));
    assert_eq!(v.verify(&by_old).await, Err(VerifyError::UnknownKey));
    // The other key's tokens verify again, from scratch, and get hot again.
    for _ in 0..5 {
        v.verify(&by_new).await.unwrap();
    }
    iss.revoke("session", "sid-hot", None, now() + 600);
    within(Duration::from_secs(1), async || {
        v.verify(&by_new).await.is_err()
    })
    .await;
    assert_eq!(
        v.verify(&by_new).await,
        Err(VerifyError::Revoked(Revoked::Session))
    );
    // A second verifier (another audience) never answers from the first one's copies.
    let other = iss.builder().audience("other").build().await.unwrap();
    let hot = iss.token(&new, json!({"sid": "sid-2"}));
    for _ in 0..5 {
        v.verify(&hot).await.unwrap();
    }
    assert!(other.verify(&hot).await.is_err(), "aud is api, not other");
}

#[tokio::test]
async fn feed_events_revoke_sessions_tokens_and_users() {
    let iss = Issuer::start().await;
    let k = iss.key(0);
    // Revoked before the verifier starts: comes with the snapshot.
    iss.revoke("session", "old-sid", None, now() + 600);
    let v = iss.builder().build().await.unwrap();
    let old = iss.token(&k, json!({"sid": "old-sid"}));
    assert_eq!(
        v.verify(&old).await,
        Err(VerifyError::Revoked(Revoked::Session))
    );

    let a = iss.token(&k, json!({"sid": "sid-a", "sub": "alice"}));
    let b = iss.token(&k, json!({"sid": "sid-b", "sub": "bob", "jti": "jti-b"}));
    let c = iss.token(
        &k,
        json!({"sid": "sid-c", "sub": "carol", "iat": now() - 5}),
    );
    for t in [&a, &b, &c] {
        v.verify(t).await.unwrap();
    }
    iss.revoke("session", "sid-a", None, now() + 600);
    let took = within(Duration::from_secs(1), async || v.verify(&a).await.is_err()).await;
    assert_eq!(
        v.verify(&a).await,
        Err(VerifyError::Revoked(Revoked::Session))
    );
    assert!(took < Duration::from_secs(1));
    v.verify(&b).await.unwrap();

    iss.revoke("token", "jti-b", None, now() + 600);
    within(Duration::from_secs(1), async || v.verify(&b).await.is_err()).await;
    assert_eq!(
        v.verify(&b).await,
        Err(VerifyError::Revoked(Revoked::Token))
    );

    // User cutoff: exact `iat <= cutoff`.
    let cutoff = now() - 2;
    let c_after = iss.token(
        &k,
        json!({"sid": "sid-c2", "sub": "carol", "iat": cutoff + 1}),
    );
    let c_at = iss.token(&k, json!({"sid": "sid-c3", "sub": "carol", "iat": cutoff}));
    v.verify(&c_at).await.unwrap();
    iss.revoke("user", "carol", Some(cutoff), now() + 600);
    within(Duration::from_secs(1), async || v.verify(&c).await.is_err()).await;
    assert_eq!(
        v.verify(&c).await,
        Err(VerifyError::Revoked(Revoked::UserCutoff))
    );
    assert_eq!(
        v.verify(&c_at).await,
        Err(VerifyError::Revoked(Revoked::UserCutoff))
    );
    v.verify(&c_after).await.unwrap();
    // Others unaffected.
    v.verify(&iss.token(&k, json!({"sub": "dave", "sid": "sid-d"})))
        .await
        .unwrap();
    let h = v.health();
    assert!(h.feed_connected);
    assert_eq!(h.cursor, Some(4));
    assert!(h.last_event_at.is_some());
    assert_eq!(h.revocations, 4);
}

#[tokio::test]
async fn reconnects_and_resumes_from_its_cursor() {
    let iss = Issuer::start().await;
    let k = iss.key(0);
    let v = iss.builder().build().await.unwrap();
    iss.revoke("session", "s1", None, now() + 600);
    within(Duration::from_secs(1), async || {
        v.health().cursor == Some(1)
    })
    .await;

    // The connection drops; the server refuses streams for a while; events happen meanwhile.
    iss.st.stream_down.store(true, Ordering::SeqCst);
    iss.kill_streams();
    within(Duration::from_secs(1), async || !v.health().feed_connected).await;
    iss.revoke("session", "s2", None, now() + 600);
    iss.revoke("session", "s3", None, now() + 600);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Default policy: still verifying while the feed is down, and saying so.
    v.verify(&iss.token(&k, json!({"sid": "s9"})))
        .await
        .unwrap();
    let h = v.health();
    assert!(!h.feed_connected && h.feed_error.is_some() && h.feed_reconnects >= 1);

    iss.st.stream_down.store(false, Ordering::SeqCst);
    within(Duration::from_secs(2), async || {
        v.health().cursor == Some(3)
    })
    .await;
    for sid in ["s1", "s2", "s3"] {
        let t = iss.token(&k, json!({"sid": sid}));
        assert_eq!(
            v.verify(&t).await,
            Err(VerifyError::Revoked(Revoked::Session))
        );
    }
    // It resumed with Last-Event-ID = its cursor (1), not from scratch.
    let ids = iss.st.last_event_ids.lock().unwrap().clone();
    assert_eq!(ids.first(), Some(&Some("0".to_owned())));
    assert_eq!(ids.last(), Some(&Some("1".to_owned())));
    assert!(v.health().feed_connected);
}

#[tokio::test]
async fn too_old_cursor_gets_a_snapshot_that_replaces_state() {
    let iss = Issuer::start().await;
    let k = iss.key(0);
    let v = iss.builder().build().await.unwrap();
    iss.revoke("session", "gone", None, now() + 600);
    within(Duration::from_secs(1), async || {
        v.health().cursor == Some(1)
    })
    .await;

    iss.st.stream_down.store(true, Ordering::SeqCst);
    iss.kill_streams();
    within(Duration::from_secs(1), async || !v.health().feed_connected).await;
    iss.revoke("session", "kept", None, now() + 600);
    let c3 = iss.revoke("user", "u9", Some(now()), now() + 600);
    // The server compacts its log past our cursor; "gone" is no longer in the live set
    // (say it was withdrawn by an operator).
    iss.compact(c3, "gone");
    iss.st.stream_down.store(false, Ordering::SeqCst);
    within(Duration::from_secs(2), async || {
        v.health().cursor == Some(3)
    })
    .await;
    assert!(v
        .verify(&iss.token(&k, json!({"sid": "gone"})))
        .await
        .is_ok());
    assert!(v
        .verify(&iss.token(&k, json!({"sid": "kept"})))
        .await
        .is_err());
    assert!(v
        .verify(&iss.token(&k, json!({"sub": "u9", "iat": now() - 1, "sid": "x"})))
        .await
        .is_err());
    assert_eq!(v.health().revocations, 2);
}

#[tokio::test]
async fn expired_revocations_are_pruned() {
    let iss = Issuer::start().await;
    let v = iss
        .builder()
        .leeway(Duration::ZERO)
        .revocation_prune_interval(Duration::from_millis(100))
        .build()
        .await
        .unwrap();
    iss.revoke("session", "short", None, now() + 1);
    iss.revoke("session", "long", None, now() + 600);
    iss.revoke("user", "u", Some(now()), now() + 1);
    within(Duration::from_secs(1), async || v.health().revocations == 3).await;
    // Keep-alives every 200 ms give the pruner its chance.
    within(Duration::from_secs(4), async || v.health().revocations == 1).await;
}

#[tokio::test]
async fn fail_closed_after_rejects_when_the_feed_is_silent() {
    let iss = Issuer::start().await;
    let k = iss.key(0);
    let v = iss
        .builder()
        .fail_closed_after(Duration::from_millis(800))
        .build()
        .await
        .unwrap();
    let t = iss.token(&k, json!({}));
    v.verify(&t).await.unwrap();
    // Keep-alives (every 200 ms) keep it open well past the limit.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    v.verify(&t).await.unwrap();
    assert!(!v.health().failing_closed);

    iss.st.stream_down.store(true, Ordering::SeqCst);
    iss.kill_streams();
    within(Duration::from_secs(3), async || {
        matches!(v.verify(&t).await, Err(VerifyError::FeedStale { .. }))
    })
    .await;
    assert!(v.health().failing_closed);
    iss.st.stream_down.store(false, Ordering::SeqCst);
    within(Duration::from_secs(2), async || v.verify(&t).await.is_ok()).await;
}

/// The broken events of the malformed-feed tests, each as the `data` of a revocation event at
/// `cursor`. "secret-subject" stands for content that must not reach logs or health.
fn malformed_events(cursor: u64) -> Vec<(&'static str, String)> {
    let exp = now() + 600;
    vec![
        (
            "not JSON",
            format!(r#"{{"cursor": {cursor}, "kind": "session", "subject": "secret-subject""#),
        ),
        (
            "unknown kind",
            format!(
                r#"{{"cursor":{cursor},"kind":"device","subject":"secret-subject","expires_at":{exp}}}"#
            ),
        ),
        (
            "missing subject",
            format!(r#"{{"cursor":{cursor},"kind":"session","expires_at":{exp}}}"#),
        ),
        (
            "missing expires_at",
            format!(r#"{{"cursor":{cursor},"kind":"session","subject":"secret-subject"}}"#),
        ),
        (
            "wrong type",
            format!(
                r#"{{"cursor":"secret-subject","kind":"session","subject":"s","expires_at":{exp}}}"#
            ),
        ),
        (
            "user event without cutoff",
            format!(
                r#"{{"cursor":{cursor},"kind":"user","subject":"secret-subject","expires_at":{exp}}}"#
            ),
        ),
        (
            "oversized line",
            format!(
                r#"{{"cursor":{cursor},"kind":"session","subject":"secret-subject{}","expires_at":{exp}}}"#,
                "a".repeat(8 * 1024)
            ),
        ),
    ]
}

#[tokio::test]
async fn malformed_feed_events_fail_closed_until_a_snapshot_resyncs() {
    for (what, data) in malformed_events(2) {
        let iss = Issuer::start().await;
        let k = iss.key(0);
        let v = iss
            .builder()
            .feed_max_event_bytes(4096)
            .build()
            .await
            .unwrap();
        let good = iss.token(&k, json!({"sid": "ok"}));
        let s1 = iss.token(&k, json!({"sid": "s1"}));
        let s3 = iss.token(&k, json!({"sid": "s3"}));
        v.verify(&good).await.unwrap();
        iss.revoke("session", "s1", None, now() + 600);
        within(Duration::from_secs(2), async || {
            v.verify(&s1).await.is_err()
        })
        .await;

        // A broken event at cursor 2 that the server keeps sending (it is in its live set,
        // so snapshots carry it too), and a real revocation after it.
        assert_eq!(iss.inject(&data, true), 2);
        iss.revoke("session", "s3", None, now() + 600);
        within(Duration::from_secs(2), async || {
            v.verify(&good).await == Err(VerifyError::FeedDesynced)
        })
        .await;
        // The revoked token after the broken event must not pass, now or while the feed
        // stays broken (no skipping past the event, no crash).
        for _ in 0..5 {
            assert_eq!(
                v.verify(&s3).await,
                Err(VerifyError::FeedDesynced),
                "{what}"
            );
            assert_eq!(
                v.verify(&good).await,
                Err(VerifyError::FeedDesynced),
                "{what}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let h = v.health();
        assert!(h.revocations_desynced && h.failing_closed, "{what}: {h:?}");
        assert_eq!(
            h.cursor,
            Some(1),
            "{what}: nothing past the broken event applied"
        );
        let err = h.feed_error.clone().unwrap_or_default();
        assert!(!err.is_empty(), "{what}");
        assert!(
            !err.contains("secret-subject"),
            "{what}: health leaks content: {err}"
        );
        // The verifier answers through the axum layer as 503, not 401 or a crash.
        let app = Router::new()
            .route("/p", get(|_: Authenticated| async { "ok" }))
            .route_layer(v.layer());
        let url = serve(app).await;
        let r = reqwest::Client::new()
            .get(format!("{url}/p"))
            .bearer_auth(&good)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 503, "{what}");

        // The server is fixed: the next snapshot resyncs, the verifier reopens, and the
        // revocation that came after the broken event is in force.
        iss.withdraw_raw();
        within(Duration::from_secs(3), async || {
            v.verify(&good).await.is_ok()
        })
        .await;
        assert_eq!(
            v.verify(&s3).await,
            Err(VerifyError::Revoked(Revoked::Session)),
            "{what}"
        );
        assert_eq!(
            v.verify(&s1).await,
            Err(VerifyError::Revoked(Revoked::Session))
        );
        let h = v.health();
        assert!(
            !h.revocations_desynced && !h.failing_closed,
            "{what}: {h:?}"
        );
        assert_eq!(h.cursor, Some(3));
        // And it follows the stream again.
        let s4 = iss.token(&k, json!({"sid": "s4"}));
        iss.revoke("session", "s4", None, now() + 600);
        within(Duration::from_secs(2), async || {
            v.verify(&s4).await.is_err()
        })
        .await;
    }
}

#[tokio::test]
async fn a_garbled_stream_event_is_resynced_from_a_snapshot_not_skipped() {
    for (what, data) in malformed_events(2) {
        let iss = Issuer::start().await;
        let k = iss.key(0);
        let v = iss
            .builder()
            .feed_max_event_bytes(4096)
            .build()
            .await
            .unwrap();
        let good = iss.token(&k, json!({"sid": "ok"}));
        let s3 = iss.token(&k, json!({"sid": "s3"}));
        iss.revoke("session", "s1", None, now() + 600);
        within(Duration::from_secs(2), async || {
            v.health().cursor == Some(1)
        })
        .await;
        let reconnects = v.health().feed_reconnects;
        // Garbled on the stream only (the store's live set is fine): one resync fixes it.
        iss.inject(&data, false);
        iss.revoke("session", "s3", None, now() + 600);
        // Once the verifier has met the broken event (it drops the connection for it)...
        within(Duration::from_secs(2), async || {
            let h = v.health();
            h.revocations_desynced || h.feed_reconnects > reconnects
        })
        .await;
        let start = Instant::now();
        loop {
            // ...at no point does the revoked token after it pass.
            assert!(
                v.verify(&s3).await.is_err(),
                "{what}: revoked token accepted"
            );
            if v.verify(&good).await.is_ok() && v.health().cursor == Some(3) {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(3),
                "{what}: no resync"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(
            v.verify(&s3).await,
            Err(VerifyError::Revoked(Revoked::Session))
        );
        assert!(!v.health().revocations_desynced, "{what}");
    }
}

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

#[tokio::test]
async fn axum_layer_extractor_and_role_guard_answer_per_rfc6750() {
    let iss = Issuer::start().await;
    let k = iss.key(0);
    let v = iss.builder().build().await.unwrap();
    let protected = Router::new()
        .route("/me", get(|c: Authenticated| async move { c.sub.clone() }))
        .route_layer(v.layer());
    let admin = Router::new()
        .route("/admin", get(|| async { "admin" }))
        .route_layer(v.layer().require_role("admin"));
    let mixed = Router::new()
        .route(
            "/maybe",
            get(|c: Option<Authenticated>| async move {
                c.map_or("anonymous".to_owned(), |c| c.sub.clone())
            }),
        )
        .route(
            "/guarded",
            get(|c: Authenticated| async move {
                c.require_role("admin")?;
                Ok::<_, tessera_verify::AuthRejection>("ok")
            }),
        )
        .layer(v.extension_layer());
    let url = serve(protected.merge(admin).merge(mixed)).await;
    let http = reqwest::Client::new();
    let user = iss.token(&k, json!({"sub": "alice"}));
    let adm = iss.token(&k, json!({"sub": "root", "roles": ["admin"]}));

    let get = |path: &str, token: Option<&str>| {
        let mut r = http.get(format!("{url}{path}"));
        if let Some(t) = token {
            r = r.header("authorization", format!("Bearer {t}"));
        }
        r.send()
    };
    let r = get("/me", None).await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    let r = get("/me", Some("abc.def.ghi")).await.unwrap();
    assert_eq!(r.status(), 401);
    let chal = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(
        chal.starts_with("Bearer error=\"invalid_token\", error_description=\""),
        "{chal}"
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_token");
    assert!(body["error_description"].is_string());
    let r = get("/me", Some(&user)).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "alice");

    let r = get("/admin", Some(&user)).await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer error=\"insufficient_scope\""));
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "insufficient_scope"
    );
    assert_eq!(get("/admin", Some(&adm)).await.unwrap().status(), 200);

    assert_eq!(
        get("/maybe", None).await.unwrap().text().await.unwrap(),
        "anonymous"
    );
    assert_eq!(
        get("/maybe", Some(&user))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "alice"
    );
    assert_eq!(get("/maybe", Some("x.y.z")).await.unwrap().status(), 401);
    assert_eq!(get("/guarded", Some(&user)).await.unwrap().status(), 403);
    assert_eq!(get("/guarded", Some(&adm)).await.unwrap().status(), 200);
    assert_eq!(get("/guarded", None).await.unwrap().status(), 401);

    let r = http
        .get(format!("{url}/me"))
        .header("authorization", "Bearer a b c")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_request");
    // Unknown paths stay 404 with route_layer.
    assert_eq!(get("/nope", None).await.unwrap().status(), 404);

    // Revocation through the feed reaches the HTTP layer.
    iss.revoke("session", "sid-1", None, now() + 600);
    within(Duration::from_secs(1), async || {
        get("/me", Some(&user)).await.unwrap().status() == 401
    })
    .await;
}

/// The layer around a whole router (deny by default): every path needs a valid token but the
/// public ones, which still see one through `Option<Authenticated>`; unknown paths are 401
/// without a token and 404 with one; a role requirement applies to every protected path.
#[tokio::test]
async fn layer_around_the_whole_app_denies_by_default() {
    let iss = Issuer::start().await;
    let k = iss.key(0);
    let v = iss.builder().build().await.unwrap();
    let router = Router::new()
        .route("/me", get(|c: Authenticated| async move { c.sub.clone() }))
        .route(
            "/open",
            get(|c: Option<Authenticated>| async move {
                c.map_or("anonymous".to_owned(), |c| c.sub.clone())
            }),
        );
    let serve_svc = |svc: tessera_verify::RequireAuth<Router>| async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            axum::serve(listener, tower::make::Shared::new(svc))
                .await
                .unwrap()
        });
        url
    };
    let url = serve_svc(v.layer().public_path("/open").layer(router.clone())).await;
    let admin_url = serve_svc(
        v.layer()
            .require_role("admin")
            .public_path("/open")
            .layer(router),
    )
    .await;
    let http = reqwest::Client::new();
    let get = |url: &str, path: &str, token: Option<&str>| {
        let mut rq = http.get(format!("{url}{path}"));
        if let Some(t) = token {
            rq = rq.header("authorization", format!("Bearer {t}"));
        }
        rq.send()
    };
    let user = iss.token(&k, json!({"sub": "alice", "sid": "sid-1"}));
    let adm = iss.token(
        &k,
        json!({"sub": "root", "sid": "sid-2", "roles": ["admin"]}),
    );
    for round in 0..2 {
        // Round 0 verifies signatures, round 1 is served from the cache.
        let r = get(&url, "/me", None).await.unwrap();
        assert_eq!(r.status(), 401, "round {round}");
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
        assert_eq!(get(&url, "/nope", None).await.unwrap().status(), 401);
        assert_eq!(
            get(&url, "/nope", Some("x.y.z")).await.unwrap().status(),
            401
        );
        assert_eq!(get(&url, "/nope", Some(&user)).await.unwrap().status(), 404);
        let r = get(&url, "/me", Some(&user)).await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.unwrap(), "alice");
        // Public: no token needed, a token sent is verified only by the extractor.
        let r = get(&url, "/open", None).await.unwrap();
        assert_eq!(r.text().await.unwrap(), "anonymous");
        let r = get(&url, "/open?q=1", Some(&user)).await.unwrap();
        assert_eq!(r.text().await.unwrap(), "alice");
        assert_eq!(
            get(&url, "/open", Some("x.y.z")).await.unwrap().status(),
            401
        );
        // Exact match only.
        assert_eq!(get(&url, "/open/", None).await.unwrap().status(), 401);
        assert_eq!(get(&url, "/OPEN", None).await.unwrap().status(), 401);
        // The role applies to every protected path, not to the public one.
        assert_eq!(
            get(&admin_url, "/me", Some(&user)).await.unwrap().status(),
            403
        );
        assert_eq!(
            get(&admin_url, "/nope", Some(&user))
                .await
                .unwrap()
                .status(),
            403
        );
        assert_eq!(
            get(&admin_url, "/me", Some(&adm)).await.unwrap().status(),
            200
        );
        assert_eq!(get(&admin_url, "/open", None).await.unwrap().status(), 200);
    }
    // Revocation reaches the outer layer too.
    iss.revoke("session", "sid-1", None, now() + 600);
    within(Duration::from_secs(1), async || {
        get(&url, "/me", Some(&user)).await.unwrap().status() == 401
    })
    .await;
}

/// The layer settles a repeat token synchronously from the cache; every check still runs on
/// that path: role, `exp` (no leeway here) and revocation, and a revoked entry leaves the cache.
#[tokio::test]
async fn layer_rechecks_cached_tokens_on_every_request() {
    let iss = Issuer::start().await;
    let k = iss.key(0);
    let v = iss.builder().leeway(Duration::ZERO).build().await.unwrap();
    let app = Router::new()
        .route("/me", get(|c: Authenticated| async move { c.sub.clone() }))
        .route_layer(v.layer())
        .merge(
            Router::new()
                .route("/admin", get(|| async { "admin" }))
                .route_layer(v.layer().require_role("admin")),
        );
    let url = serve(app).await;
    let http = reqwest::Client::new();
    let get = |path: &str, token: &str| {
        http.get(format!("{url}{path}"))
            .header("authorization", format!("Bearer {token}"))
            .send()
    };
    let short = iss.token(
        &k,
        json!({"sub": "brief", "sid": "sid-short", "exp": now() + 2}),
    );
    let long = iss.token(&k, json!({"sub": "alice", "sid": "sid-long"}));
    for round in 0..3 {
        // Round 0 is a cache miss (signature checked), the others are hits.
        for t in [&short, &long] {
            let r = get("/me", t).await.unwrap();
            assert_eq!(r.status(), 200, "round {round}");
            let r = get("/admin", t).await.unwrap();
            assert_eq!(r.status(), 403, "round {round}: role checked on a hit too");
        }
    }
    assert_eq!(v.health().cached_tokens, 2);

    // Expiry is checked on a hit: the entry is still cached, the request is refused.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let r = get("/me", &short).await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer error=\"invalid_token\""));
    assert_eq!(get("/me", &long).await.unwrap().status(), 200);

    // Revocation is checked on a hit, and the revoked entry is dropped from the cache.
    let before = v.health().cached_tokens;
    iss.revoke("session", "sid-long", None, now() + 600);
    within(Duration::from_secs(1), async || {
        get("/me", &long).await.unwrap().status() == 401
    })
    .await;
    assert_eq!(get("/me", &long).await.unwrap().status(), 401);
    assert_eq!(v.health().cached_tokens, before - 1);
}
