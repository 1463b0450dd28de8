//! The revocation feed over real HTTP: access rules, snapshot vs incremental reads, the SSE
//! stream (delivery within a second, `Last-Event-ID` resume without gaps or duplicates).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[macro_use]
mod support;

use std::pin::Pin;
use std::time::{Duration, Instant};

use common::*;
use futures_util::{Stream, StreamExt};
use reqwest::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::StatusCode;
use serde_json::Value;
use support::*;

engine_tests!(
    feed_requires_a_reader,
    snapshot_then_incremental,
    snapshot_when_cursor_pruned_or_from_the_future,
    sse_delivers_a_logout_within_a_second,
    sse_resume_neither_skips_nor_duplicates,
    sse_ends_when_the_server_stops,
);

/// A minimal Server-Sent Events reader (WHATWG HTML §9.2.6).
struct SseReader {
    body: Pin<Box<dyn Stream<Item = reqwest::Result<Vec<u8>>> + Send>>,
    buf: String,
    ended: bool,
}

#[derive(Debug, Clone)]
struct SseEvent {
    event: Option<String>,
    id: Option<String>,
    data: String,
    comment: Option<String>,
}

impl SseReader {
    fn new(r: reqwest::Response) -> Self {
        Self {
            body: Box::pin(r.bytes_stream().map(|c| c.map(|b| b.to_vec()))),
            buf: String::new(),
            ended: false,
        }
    }

    /// The next event (or comment block), or `None` if none arrives within `wait`.
    async fn next(&mut self, wait: Duration) -> Option<SseEvent> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(pos) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..pos + 2).collect();
                let mut ev = SseEvent {
                    event: None,
                    id: None,
                    data: String::new(),
                    comment: None,
                };
                for line in block.lines() {
                    if let Some(c) = line.strip_prefix(':') {
                        ev.comment = Some(c.trim().to_string());
                    } else if let Some((k, v)) = line.split_once(':') {
                        let v = v.strip_prefix(' ').unwrap_or(v);
                        match k {
                            "event" => ev.event = Some(v.to_string()),
                            "id" => ev.id = Some(v.to_string()),
                            "data" => ev.data.push_str(v),
                            _ => {}
                        }
                    }
                }
                return Some(ev);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            match tokio::time::timeout(left, self.body.next()).await {
                Ok(Some(Ok(chunk))) => self.buf.push_str(std::str::from_utf8(&chunk).unwrap()),
                Ok(Some(Err(e))) => panic!("stream failed: {e}"),
                Ok(None) => {
                    self.ended = true;
                    return None;
                }
                Err(_) => return None,
            }
        }
    }

    /// The next real event, skipping keep-alive comments.
    async fn event(&mut self, wait: Duration) -> Option<SseEvent> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let ev = self.next(left).await?;
            if ev.event.is_some() {
                return Some(ev);
            }
        }
    }
}

/// A feed reader's credentials: a client with `revocations:read`.
async fn reader(s: &TestServer) -> (String, String) {
    client(s, "revocations:read", &[]).await
}

async fn get_feed(s: &TestServer, r: &(String, String), query: &str) -> Value {
    let resp = s
        .http
        .get(s.at(&format!("/revocations{query}")))
        .basic_auth(&r.0, Some(&r.1))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    resp.json().await.unwrap()
}

async fn logout(s: &TestServer, access: &str) {
    let r = s
        .http
        .post(s.at("/auth/logout"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
}

async fn open_stream(
    s: &TestServer,
    r: &(String, String),
    query: &str,
    last_event_id: Option<&str>,
) -> SseReader {
    let mut req = s
        .http
        .get(s.at(&format!("/revocations/stream{query}")))
        .basic_auth(&r.0, Some(&r.1));
    if let Some(id) = last_event_id {
        req = req.header("last-event-id", id);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()[CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    SseReader::new(resp)
}

async fn feed_requires_a_reader(engine: Engine) {
    let token = "a-static-feed-token-of-32-chars!";
    let Some(s) = TestServer::start_with(engine, |c| {
        c.feed_token = Some(tessera_server::config::SecretString(token.to_string()));
    })
    .await
    else {
        return;
    };
    let ok = reader(&s).await;
    let plain = client(&s, "notes:read", &[]).await;
    let user = native_login(&s, "kim@example.com").await;
    let svc_ok = client_token(&s, &ok.0, &ok.1, Some("revocations:read")).await;
    let both = client(&s, "revocations:read notes:read", &[]).await;
    let svc_narrow = client_token(&s, &both.0, &both.1, Some("notes:read")).await;
    let svc_plain = client_token(&s, &plain.0, &plain.1, None).await;

    for path in ["/revocations", "/revocations/stream"] {
        let get = || s.http.get(s.at(path));
        // Admitted.
        let admitted = [
            get().basic_auth(&ok.0, Some(&ok.1)),
            get().bearer_auth(&svc_ok),
            get().bearer_auth(token),
        ];
        for req in admitted {
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK, "{path}");
        }
        // Refused.
        let refused = [
            get(),
            get().basic_auth(&ok.0, Some("wrong")),
            get().basic_auth(&plain.0, Some(&plain.1)),
            get().bearer_auth(&svc_plain),
            get().bearer_auth(&svc_narrow),
            get().bearer_auth(&user.access),
            get().bearer_auth("a-static-feed-token-of-32-chars?"),
            get().header("authorization", "Basic !!"),
            get().header("authorization", "Digest x"),
        ];
        for (i, req) in refused.into_iter().enumerate() {
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path} case {i}");
            assert!(r.headers().contains_key(WWW_AUTHENTICATE));
            assert_eq!(error_code(r).await, "invalid_token");
        }
    }
    // Malformed cursors are 400, never 500.
    for q in ["?since=abc", "?since=-5", "?since=99999999999999999999999"] {
        let r = s
            .http
            .get(s.at(&format!("/revocations{q}")))
            .basic_auth(&ok.0, Some(&ok.1))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{q}");
        assert_eq!(error_code(r).await, "invalid_request");
    }
    let r = s
        .http
        .get(s.at("/revocations/stream"))
        .basic_auth(&ok.0, Some(&ok.1))
        .header("last-event-id", "nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

async fn snapshot_then_incremental(engine: Engine) {
    let Some(s) = server(engine).await else {
        return;
    };
    let r = reader(&s).await;

    let empty = get_feed(&s, &r, "").await;
    assert_eq!(empty["snapshot"], true);
    assert_eq!(empty["cursor"], 0);
    assert_eq!(empty["events"].as_array().unwrap().len(), 0);

    let a = native_login(&s, "lee@example.com").await;
    let b = native_login(&s, "max@example.com").await;
    logout(&s, &a.access).await;
    let snap = get_feed(&s, &r, "").await;
    assert_eq!(snap["snapshot"], true);
    let events = snap["events"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["kind"], "session");
    assert_eq!(events[0]["subject"], a.session_id.as_str());
    assert!(events[0].get("cutoff").is_none());
    let expires = events[0]["expires_at"].as_i64().unwrap();
    assert!(expires >= s.now() + 600, "outlives every token it covers");
    let c1 = snap["cursor"].as_i64().unwrap();
    assert_eq!(c1, events[0]["cursor"].as_i64().unwrap());

    // Nothing new.
    let inc = get_feed(&s, &r, &format!("?since={c1}")).await;
    assert_eq!(inc["snapshot"], false);
    assert_eq!(inc["cursor"], c1);
    assert!(inc["events"].as_array().unwrap().is_empty());

    // A password change (user cutoff + session events), then a jti revocation.
    let resp = s
        .http
        .post(s.at("/auth/password"))
        .bearer_auth(&b.access)
        .json(&serde_json::json!({"current_password": PASSWORD, "new_password": "a brand new password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let fresh = login_from(resp).await;
    let rv = form(&s, "/oauth/revoke", &[("token", &fresh.access)], None).await;
    assert_eq!(rv.status(), StatusCode::OK);

    let inc = get_feed(&s, &r, &format!("?since={c1}")).await;
    assert_eq!(inc["snapshot"], false);
    let evs = inc["events"].as_array().unwrap();
    let kinds: Vec<&str> = evs.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert!(
        kinds.contains(&"user") && kinds.contains(&"session") && kinds.contains(&"token"),
        "{kinds:?}"
    );
    let user_ev = evs.iter().find(|e| e["kind"] == "user").unwrap();
    assert_eq!(user_ev["subject"], payload(&b.access)["sub"]);
    assert!(user_ev["cutoff"].as_i64().unwrap() >= payload(&b.access)["iat"].as_i64().unwrap());
    let token_ev = evs.iter().find(|e| e["kind"] == "token").unwrap();
    assert_eq!(token_ev["subject"], payload(&fresh.access)["jti"]);
    let cursors: Vec<i64> = evs.iter().map(|e| e["cursor"].as_i64().unwrap()).collect();
    assert!(cursors.windows(2).all(|w| w[0] < w[1]), "cursor order");
    assert!(cursors[0] > c1);
    assert_eq!(inc["cursor"].as_i64().unwrap(), *cursors.last().unwrap());
    // Resuming from the middle gives exactly the rest.
    let mid = get_feed(&s, &r, &format!("?since={}", cursors[0])).await;
    assert_eq!(mid["events"].as_array().unwrap().len(), cursors.len() - 1);
}

async fn snapshot_when_cursor_pruned_or_from_the_future(engine: Engine) {
    let Some(s) = server(engine).await else {
        return;
    };
    let r = reader(&s).await;
    let a = native_login(&s, "ned@example.com").await;
    let b = native_login(&s, "ola@example.com").await;
    logout(&s, &a.access).await;
    logout(&s, &b.access).await;

    // A cursor from the future (another database): snapshot.
    let f = get_feed(&s, &r, "?since=1000").await;
    assert_eq!(f["snapshot"], true);
    assert_eq!(f["events"].as_array().unwrap().len(), 2);

    // Let both events expire and be pruned, then add one: since=0 has a gap -> snapshot,
    // and the snapshot no longer holds the expired events.
    s.advance(700);
    s.state().store.prune_revocations(s.now()).await.unwrap();
    let c = native_login(&s, "pat@example.com").await;
    logout(&s, &c.access).await;
    let f = get_feed(&s, &r, "?since=0").await;
    assert_eq!(f["snapshot"], true);
    let evs = f["events"].as_array().unwrap();
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0]["subject"], c.session_id.as_str());
    // From the last pruned cursor there is no gap.
    let f = get_feed(&s, &r, "?since=2").await;
    assert_eq!(f["snapshot"], false);
    assert_eq!(f["events"].as_array().unwrap().len(), 1);
}

async fn sse_delivers_a_logout_within_a_second(engine: Engine) {
    let Some(s) = server(engine).await else {
        return;
    };
    let r = reader(&s).await;
    let a = native_login(&s, "quinn@example.com").await;
    let mut sse = open_stream(&s, &r, "", None).await;

    // First the snapshot (empty, with a cursor).
    let snap = sse.event(Duration::from_secs(5)).await.expect("snapshot");
    assert_eq!(snap.event.as_deref(), Some("snapshot"));
    let data: Value = serde_json::from_str(&snap.data).unwrap();
    assert_eq!(data["events"].as_array().unwrap().len(), 0);
    assert_eq!(
        snap.id.as_deref(),
        Some(data["cursor"].to_string().as_str())
    );

    let t0 = Instant::now();
    logout(&s, &a.access).await;
    let ev = sse
        .event(Duration::from_secs(1))
        .await
        .expect("event within 1 s of the logout");
    let elapsed = t0.elapsed();
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
    assert_eq!(ev.event.as_deref(), Some("revocation"));
    let data: Value = serde_json::from_str(&ev.data).unwrap();
    assert_eq!(data["kind"], "session");
    assert_eq!(data["subject"], a.session_id.as_str());
    assert_eq!(ev.id.as_deref(), Some(data["cursor"].to_string().as_str()));

    // An admin disable (cutoff + sessions) arrives too, in order.
    let root = admin(&s).await;
    let b = native_login(&s, "rae@example.com").await;
    let uid = payload(&b.access)["sub"].as_str().unwrap().to_string();
    let resp = s
        .http
        .patch(s.at(&format!("/admin/users/{uid}")))
        .bearer_auth(&root.access)
        .json(&serde_json::json!({"disabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let e1 = sse
        .event(Duration::from_secs(1))
        .await
        .expect("cutoff event");
    let e2 = sse
        .event(Duration::from_secs(1))
        .await
        .expect("session event");
    let d1: Value = serde_json::from_str(&e1.data).unwrap();
    let d2: Value = serde_json::from_str(&e2.data).unwrap();
    assert_eq!(d1["kind"], "user");
    assert_eq!(d1["subject"], uid.as_str());
    assert_eq!(d2["kind"], "session");
    assert_eq!(d2["subject"], b.session_id.as_str());
    assert!(d2["cursor"].as_i64() > d1["cursor"].as_i64());
}

async fn sse_resume_neither_skips_nor_duplicates(engine: Engine) {
    let Some(s) = server(engine).await else {
        return;
    };
    let r = reader(&s).await;
    let mut sessions = Vec::new();
    for i in 0..3 {
        let l = native_login(&s, &format!("u{i}@example.com")).await;
        logout(&s, &l.access).await;
        sessions.push(l.session_id);
    }
    let all = get_feed(&s, &r, "").await;
    let cursors: Vec<i64> = all["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["cursor"].as_i64().unwrap())
        .collect();
    assert_eq!(cursors.len(), 3);

    // Resume after the first: exactly the second and third, no snapshot.
    let mut sse = open_stream(&s, &r, "", Some(&cursors[0].to_string())).await;
    let mut got = Vec::new();
    while let Some(ev) = sse.event(Duration::from_millis(700)).await {
        assert_eq!(
            ev.event.as_deref(),
            Some("revocation"),
            "no snapshot on a valid resume"
        );
        got.push(ev.id.unwrap().parse::<i64>().unwrap());
    }
    assert_eq!(got, cursors[1..]);

    // Concurrent logouts while connected: each exactly once, in order.
    let mut expect = Vec::new();
    let logins: Vec<Login> = {
        let mut v = Vec::new();
        for i in 3..8 {
            v.push(native_login(&s, &format!("u{i}@example.com")).await);
        }
        v
    };
    let futs = logins.iter().map(|l| logout(&s, &l.access));
    futures_util::future::join_all(futs).await;
    for l in &logins {
        expect.push(l.session_id.clone());
    }
    let mut seen = Vec::new();
    let mut ids = Vec::new();
    while let Some(ev) = sse.event(Duration::from_millis(700)).await {
        let d: Value = serde_json::from_str(&ev.data).unwrap();
        seen.push(d["subject"].as_str().unwrap().to_string());
        ids.push(ev.id.unwrap().parse::<i64>().unwrap());
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert_eq!(
        ids.first().copied(),
        Some(cursors[2] + 1),
        "no gap after the resume point"
    );
    let mut sorted_seen = seen.clone();
    sorted_seen.sort();
    let mut sorted_expect = expect.clone();
    sorted_expect.sort();
    assert_eq!(sorted_seen, sorted_expect, "every event exactly once");

    // `?since=` works the same; a stale position gets a snapshot first.
    let last = *ids.last().unwrap();
    let mut sse2 = open_stream(&s, &r, &format!("?since={}", last - 1), None).await;
    let ev = sse2.event(Duration::from_secs(2)).await.unwrap();
    assert_eq!(ev.id.unwrap().parse::<i64>().unwrap(), last);
    assert!(sse2.event(Duration::from_millis(500)).await.is_none());
    let mut sse3 = open_stream(&s, &r, "?since=99999", None).await;
    let ev = sse3.event(Duration::from_secs(2)).await.unwrap();
    assert_eq!(ev.event.as_deref(), Some("snapshot"));
    let d: Value = serde_json::from_str(&ev.data).unwrap();
    assert_eq!(d["events"].as_array().unwrap().len(), 8);
    assert_eq!(d["cursor"].as_i64().unwrap(), last);
}

async fn sse_ends_when_the_server_stops(engine: Engine) {
    let Some(mut s) = server(engine).await else {
        return;
    };
    let r = reader(&s).await;
    let mut sse = open_stream(&s, &r, "", None).await;
    assert_eq!(
        sse.event(Duration::from_secs(5))
            .await
            .unwrap()
            .event
            .as_deref(),
        Some("snapshot")
    );
    // Graceful shutdown does not wait for the endless response: the stream ends at once
    // and the reader reconnects (to this node after a restart, or another one).
    let t0 = Instant::now();
    s.restart().await;
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert!(sse.next(Duration::from_secs(2)).await.is_none());
    assert!(sse.ended, "the stream ended");
    // Resume on the restarted server.
    let mut sse = open_stream(&s, &r, "?since=0", None).await;
    let a = native_login(&s, "zoe@example.com").await;
    logout(&s, &a.access).await;
    let ev = sse.event(Duration::from_secs(2)).await.unwrap();
    assert_eq!(ev.event.as_deref(), Some("revocation"));
}
