//! The revocation feed follower (docs/api.md, "Revocation feed").
//!
//! Protocol: one `GET /revocations` for a snapshot at start, then `GET /revocations/stream`
//! (Server-Sent Events) with `Last-Event-ID: <cursor>`. On any failure it reconnects with
//! exponential backoff and jitter, resuming from its cursor: the server replays what we missed,
//! or sends a `snapshot` event if our cursor is too old. Events at or below the cursor are
//! ignored, so a replay never applies anything twice, and a snapshot replaces the state.
//!
//! An event the verifier cannot apply exactly (not JSON, a missing or mistyped field, an
//! unknown kind, a `user` event without cutoff, an oversized line or event, invalid UTF-8)
//! is never skipped: skipping it could let a revoked token pass. The state is marked
//! *desynced*, `verify` rejects every token (503) while it is, and the follower drops the
//! connection and resyncs from a full snapshot (`GET /revocations`) instead of resuming from
//! its cursor, which would only be sent the same event again. A clean snapshot clears the
//! mark. Logs name the cursor and the kind of fault, never the event's content.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, Weak};
use std::time::Duration;

use crate::http_util::{read_capped, retry_delay};
use crate::revocation::{FeedEvent, FeedPage};
use crate::sse::{SseItem, SseParser};
use crate::verifier::{unix_now, Shared};

/// How the verifier authenticates to the feed.
#[derive(Clone)]
pub(crate) enum FeedAuth {
    /// HTTP Basic with a client's credentials (RFC 7617).
    Basic { id: String, secret: String },
    /// A static bearer token (`TESSERA_FEED_TOKEN`) or a client's access token.
    Bearer(String),
}

impl std::fmt::Debug for FeedAuth {
    // Secrets never reach logs or Debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FeedAuth::Basic { id, .. } => write!(f, "Basic({id}, <redacted>)"),
            FeedAuth::Bearer(_) => f.write_str("Bearer(<redacted>)"),
        }
    }
}

/// Feed settings.
#[derive(Debug, Clone)]
pub(crate) struct FeedConfig {
    pub snapshot_url: String,
    pub stream_url: String,
    pub auth: Option<FeedAuth>,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    pub idle_timeout: Duration,
    pub max_line: usize,
    pub max_event: usize,
    pub prune_interval: Duration,
}

/// What the verifier reports about the feed.
#[derive(Debug, Default)]
pub(crate) struct FeedStatus {
    pub connected: AtomicBool,
    /// Monotonic ms of the last byte received or snapshot applied (0: never).
    pub last_activity: AtomicU64,
    /// Unix seconds of the last applied revocation event (0: none yet).
    pub last_event_unix: AtomicI64,
    pub reconnects: AtomicU64,
    pub last_error: Mutex<Option<String>>,
    /// The feed sent something that could not be applied: the local state may lack a
    /// revocation, so `verify` rejects every token until a clean snapshot is installed.
    pub desynced: AtomicBool,
}

impl FeedStatus {
    fn set_error(&self, e: Option<String>) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = e;
    }
}

/// Why a connection ended.
#[derive(Debug)]
pub(crate) enum FeedFailure {
    /// Network, status, timeout or a closed stream: resume from the cursor.
    Transient(String),
    /// The feed sent something that cannot be applied exactly: fail closed and resync from a
    /// snapshot.
    Malformed(String),
}

impl std::fmt::Display for FeedFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FeedFailure::Transient(e) | FeedFailure::Malformed(e) => f.write_str(e),
        }
    }
}

impl From<String> for FeedFailure {
    fn from(e: String) -> Self {
        FeedFailure::Transient(e)
    }
}

/// A serde_json error without the input's content (its messages may quote values): the
/// category and position, and the field name of a missing field.
fn describe(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    let what = match e.classify() {
        serde_json::error::Category::Syntax => "not valid JSON",
        serde_json::error::Category::Eof => "truncated JSON",
        serde_json::error::Category::Io => "unreadable",
        serde_json::error::Category::Data => match msg.strip_prefix("missing field `") {
            Some(rest) => {
                let field = rest.split('`').next().unwrap_or("");
                if field.len() <= 32
                    && field
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_')
                {
                    return format!(
                        "missing field `{field}` (line {} column {})",
                        e.line(),
                        e.column()
                    );
                }
                "wrong shape"
            }
            None => "wrong shape (a field of the wrong type)",
        },
    };
    format!("{what} (line {} column {})", e.line(), e.column())
}

/// Parses and checks a snapshot page: every event must be applicable, or none is installed.
fn parse_page(bytes: &[u8], what: &str) -> Result<FeedPage, String> {
    let page: FeedPage =
        serde_json::from_slice(bytes).map_err(|e| format!("malformed {what}: {}", describe(&e)))?;
    page.check().map_err(|r| format!("malformed {what}: {r}"))?;
    Ok(page)
}

fn authed(req: reqwest::RequestBuilder, auth: &Option<FeedAuth>) -> reqwest::RequestBuilder {
    match auth {
        Some(FeedAuth::Basic { id, secret }) => req.basic_auth(id, Some(secret)),
        Some(FeedAuth::Bearer(t)) => req.bearer_auth(t),
        None => req,
    }
}

/// Fetches a full snapshot with `GET /revocations` and installs it.
pub(crate) async fn sync_snapshot(shared: &Shared, cfg: &FeedConfig) -> Result<(), String> {
    let resp = authed(shared.http.get(&cfg.snapshot_url), &cfg.auth)
        .header(http::header::ACCEPT, "application/json")
        .timeout(shared.http_timeout)
        .send()
        .await
        .map_err(|e| format!("snapshot request failed: {e}"))?;
    check_status(resp.status())?;
    let body = read_capped(resp, cfg.max_event).await?;
    let page = parse_page(&body, "snapshot")?;
    drop(body);
    // Without `since` the server always sends a snapshot; treat the page as one regardless,
    // since replacing is the only safe reading of a cursor-less answer.
    shared.replace_revocations(page.cursor, &page.events);
    if shared.feed.desynced.swap(false, Ordering::AcqRel) {
        tracing::info!(
            cursor = page.cursor,
            "revocation state resynced from a snapshot"
        );
    }
    shared
        .feed
        .last_activity
        .store(shared.mono_ms(), Ordering::Relaxed);
    Ok(())
}

fn check_status(s: reqwest::StatusCode) -> Result<(), String> {
    match s.as_u16() {
        200 => Ok(()),
        401 | 403 => Err(format!(
            "feed refused our credentials ({s}); the client needs scope revocations:read"
        )),
        _ => Err(format!("feed answered {s}")),
    }
}

/// The background task: follow the stream forever, reconnecting as needed.
pub(crate) async fn run(shared: Weak<Shared>, cfg: FeedConfig) {
    let mut failures = 0u32;
    loop {
        let outcome = {
            let Some(s) = shared.upgrade() else { return };
            let r = follow(&s, &cfg).await;
            s.feed.connected.store(false, Ordering::Relaxed);
            match &r.result {
                Err(FeedFailure::Malformed(e)) => {
                    // Already marked desynced where it was found (before anything later
                    // could be applied).
                    tracing::warn!(
                        error = %e,
                        cursor = ?s.revocations_cursor(),
                        "revocation feed sent an event that cannot be applied; rejecting \
                         every token until a snapshot resyncs the state"
                    );
                    s.feed.set_error(Some(e.clone()));
                }
                Err(FeedFailure::Transient(e)) => {
                    tracing::warn!(error = %e, "revocation feed disconnected");
                    s.feed.set_error(Some(e.clone()));
                }
                Ok(()) => {}
            }
            s.feed.reconnects.fetch_add(1, Ordering::Relaxed);
            r
        };
        // A connection that worked resets the backoff: the next failure is a fresh incident.
        failures = if outcome.was_connected {
            1
        } else {
            failures.saturating_add(1)
        };
        tokio::time::sleep(retry_delay(failures, cfg.backoff_min, cfg.backoff_max)).await;
    }
}

struct Outcome {
    was_connected: bool,
    result: Result<(), FeedFailure>,
}

/// One connection: returns when it ends, with whether it was ever established.
async fn follow(shared: &Shared, cfg: &FeedConfig) -> Outcome {
    let mut was_connected = false;
    let result = follow_inner(shared, cfg, &mut was_connected).await;
    Outcome {
        was_connected,
        result,
    }
}

async fn follow_inner(
    shared: &Shared,
    cfg: &FeedConfig,
    was_connected: &mut bool,
) -> Result<(), FeedFailure> {
    let cursor = shared.revocations_cursor();
    // After a malformed event, resuming from the cursor would be sent the same event again:
    // start over from a snapshot. Until one is installed the verifier stays closed.
    if cursor.is_none() || shared.feed.desynced.load(Ordering::Acquire) {
        sync_snapshot(shared, cfg).await?;
    }
    let mut req = authed(shared.http.get(&cfg.stream_url), &cfg.auth)
        .header(http::header::ACCEPT, "text/event-stream")
        .header(http::header::CACHE_CONTROL, "no-cache");
    if let Some(c) = shared.revocations_cursor() {
        req = req.header("Last-Event-ID", c.to_string());
    }
    let mut resp = tokio::time::timeout(shared.http_timeout, req.send())
        .await
        .map_err(|_| "stream request timed out".to_owned())?
        .map_err(|e| format!("stream request failed: {e}"))?;
    check_status(resp.status())?;
    *was_connected = true;
    shared.feed.connected.store(true, Ordering::Relaxed);
    shared
        .feed
        .last_activity
        .store(shared.mono_ms(), Ordering::Relaxed);
    shared.feed.set_error(None);
    tracing::debug!(cursor = ?shared.revocations_cursor(), "revocation feed connected");

    let mut parser = SseParser::new(cfg.max_line, cfg.max_event);
    let mut items = Vec::new();
    let mut last_prune = shared.mono_ms();
    loop {
        // The server sends a keep-alive every 15 s; silence longer than the idle timeout means
        // the connection is dead even if TCP has not noticed.
        let chunk = tokio::time::timeout(cfg.idle_timeout, resp.chunk())
            .await
            .map_err(|_| "stream idle for too long".to_owned())?
            .map_err(|e| format!("stream read failed: {e}"))?;
        let Some(chunk) = chunk else {
            return Err("stream closed by the server".to_owned().into());
        };
        shared
            .feed
            .last_activity
            .store(shared.mono_ms(), Ordering::Relaxed);
        let parsed = parser.push(&chunk, &mut items);
        // Events completed before a fault in the same chunk are still applied, in order.
        for item in items.drain(..) {
            handle(shared, item).map_err(|e| malformed(shared, e))?;
        }
        parsed.map_err(|e| malformed(shared, e.to_string()))?;
        let now = shared.mono_ms();
        if now.saturating_sub(last_prune) >= cfg.prune_interval.as_millis() as u64 {
            last_prune = now;
            shared.prune_revocations();
        }
    }
}

/// Marks the state desynced at once (before anything after the fault can be applied) and
/// classifies the failure.
fn malformed(shared: &Shared, e: String) -> FeedFailure {
    shared.feed.desynced.store(true, Ordering::Release);
    FeedFailure::Malformed(e)
}

fn handle(shared: &Shared, item: SseItem) -> Result<(), String> {
    let SseItem::Event { event, data, .. } = item else {
        return Ok(()); // keep-alive comment: activity already recorded
    };
    match event.as_str() {
        "revocation" => {
            let e: FeedEvent = serde_json::from_str(&data)
                .map_err(|e| format!("malformed revocation event: {}", describe(&e)))?;
            e.check()
                .map_err(|r| format!("malformed revocation event at cursor {}: {r}", e.cursor))?;
            if shared.apply_revocation(&e) {
                shared
                    .feed
                    .last_event_unix
                    .store(unix_now(), Ordering::Relaxed);
            }
        }
        "snapshot" => {
            let page = parse_page(data.as_bytes(), "snapshot event")?;
            shared.replace_revocations(page.cursor, &page.events);
            shared.feed.desynced.store(false, Ordering::Release);
        }
        other => tracing::debug!(event = other, "ignoring unknown feed event"),
    }
    Ok(())
}
