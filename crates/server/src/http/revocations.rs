//! The revocation feed over HTTP (docs/api.md, "Revocation feed"): `GET /revocations`
//! (cursor-based JSON) and `GET /revocations/stream` (Server-Sent Events, WHATWG HTML
//! §9.2).
//!
//! The stream never skips or repeats an event: it remembers the last cursor it sent and,
//! after every wake-up (this process's revocation broadcast, or a store notice for events
//! written by other nodes), reads the store from that cursor. A wake-up is only a hint, so
//! a lagged or lost one costs nothing but latency: the store is the truth.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Json;
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use tessera_store::{Revocation, StoreNotice};
use tokio::sync::{broadcast, watch};
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult};
use super::extract::ApiQuery;
use super::oauth::parse_basic;
use super::Routes;
use crate::crypto;
use crate::domain::clients::{self, FEED_SCOPE};
use crate::domain::feed::{self, Batch};
use crate::domain::{tokens, DomainError};
use crate::state::AppState;

/// Interval of the `: keep-alive` comment on an idle stream (docs/api.md).
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Routes of the feed.
pub fn router() -> Routes {
    Routes::new()
        .route("/revocations", get(list))
        .route("/revocations/stream", get(stream))
}

// ---- access ----------------------------------------------------------------------------------

fn unauthorized(description: &str) -> ApiError {
    let mut e = ApiError::new(StatusCode::UNAUTHORIZED, "invalid_token", description);
    // RFC 7235 §4.1: one challenge per accepted scheme.
    e.www_authenticate = Some("Basic realm=\"tessera\", Bearer realm=\"tessera\"".to_string());
    e
}

/// Admits a verifier: HTTP Basic credentials of a client whose scope includes
/// `revocations:read`, a bearer access token of such a client (client_credentials, no
/// `sid`), or the static `TESSERA_FEED_TOKEN` (compared in constant time).
pub(crate) async fn require_feed_access(state: &AppState, headers: &HeaderMap) -> ApiResult<()> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(unauthorized("Authentication required"));
    };
    let value = value
        .to_str()
        .map_err(|_| unauthorized("Malformed Authorization header"))?;
    if let Some(basic) = parse_basic(value) {
        let (id, secret) = basic.map_err(|()| unauthorized("Malformed HTTP Basic credentials"))?;
        return match clients::authenticate(state, &id, &secret).await? {
            Some(c) if clients::has_scope(&c, FEED_SCOPE) => Ok(()),
            _ => Err(unauthorized(
                "Invalid client, or its scope lacks revocations:read",
            )),
        };
    }
    let token = match value.split_once(' ') {
        Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") && !t.trim().is_empty() => {
            t.trim()
        }
        _ => return Err(unauthorized("Use HTTP Basic or a Bearer token")),
    };
    if let Some(static_token) = &state.config.feed_token {
        // Hash both sides so the comparison is constant-time in the length too.
        if crypto::ct_eq(
            &crypto::sha256(token.as_bytes()),
            &crypto::sha256(static_token.0.as_bytes()),
        ) {
            return Ok(());
        }
    }
    match tokens::authenticate(state, token).await {
        Ok(ctx)
            if ctx.claims.sid.is_none()
                && ctx
                    .claims
                    .scope
                    .as_deref()
                    .is_some_and(|s| s.split(' ').any(|t| t == FEED_SCOPE)) =>
        {
            Ok(())
        }
        Ok(_) => Err(unauthorized("The token lacks the revocations:read scope")),
        Err(DomainError::InvalidToken(_)) => Err(unauthorized("Invalid token")),
        Err(e) => Err(e.into()),
    }
}

// ---- shapes ----------------------------------------------------------------------------------

/// One revocation event (docs/api.md).
#[derive(Serialize, ToSchema)]
pub(crate) struct EventView {
    /// Position in the feed.
    cursor: i64,
    /// `session` (subject is a `sid`), `user` (a `sub`, with `cutoff`) or `token` (a `jti`).
    kind: &'static str,
    /// The `sid`, `sub` or `jti`.
    subject: String,
    /// `user` only: tokens with `iat <= cutoff` are revoked.
    #[serde(skip_serializing_if = "Option::is_none")]
    cutoff: Option<i64>,
    /// After this time no token the event could match is valid; forget it then.
    expires_at: i64,
}

impl From<Revocation> for EventView {
    fn from(r: Revocation) -> Self {
        Self {
            cursor: r.cursor,
            kind: r.kind.as_str(),
            subject: r.subject,
            cutoff: r.cutoff,
            expires_at: r.expires_at,
        }
    }
}

/// Answer of `GET /revocations`.
#[derive(Serialize, ToSchema)]
pub(crate) struct FeedPage {
    /// `true`: `events` is the whole live set; replace local state.
    snapshot: bool,
    /// Resume from here (`since=cursor`).
    cursor: i64,
    /// Events in cursor order.
    events: Vec<EventView>,
}

/// The `data` of the SSE `snapshot` event.
#[derive(Serialize, ToSchema)]
pub(crate) struct SnapshotData {
    /// Resume from here.
    cursor: i64,
    /// The whole live set.
    events: Vec<EventView>,
}

/// Query of the feed endpoints.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct FeedQuery {
    /// Last cursor seen; absent (or too old) gives a snapshot.
    since: Option<String>,
}

fn parse_cursor(raw: Option<&str>, what: &str) -> ApiResult<Option<i64>> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .map(Some)
            .ok_or_else(|| {
                ApiError::invalid_request(format!("{what} must be a cursor (an integer >= 0)"))
            }),
    }
}

fn no_store(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

// ---- GET /revocations ----------------------------------------------------------------------

/// Revocation events after `since`, or a snapshot of the live set.
#[utoipa::path(
    get,
    path = "/revocations",
    tag = "revocations",
    params(FeedQuery),
    security(("client_basic" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Events, or a snapshot", body = FeedPage),
        (status = 400, description = "Malformed cursor", body = crate::http::openapi::ErrorBody),
        (status = 401, description = "Not a feed reader", body = crate::http::openapi::ErrorBody),
    )
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<FeedQuery>,
) -> ApiResult<Response> {
    require_feed_access(&state, &headers).await?;
    let since = parse_cursor(q.since.as_deref(), "since")?;
    let batch = feed::read(&state, since).await?;
    let page = FeedPage {
        snapshot: batch.snapshot,
        cursor: batch.cursor,
        events: batch.events.into_iter().map(EventView::from).collect(),
    };
    Ok(no_store(Json(page).into_response()))
}

// ---- GET /revocations/stream ---------------------------------------------------------------

/// The live feed as Server-Sent Events: `event: snapshot` first when the reader has no
/// (valid) position, then `event: revocation` with `id: <cursor>` for each event, and a
/// `: keep-alive` comment every 15 s. Resume with `Last-Event-ID` or `?since=`.
#[utoipa::path(
    get,
    path = "/revocations/stream",
    tag = "revocations",
    params(
        FeedQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "Last cursor received; takes precedence over since"),
    ),
    security(("client_basic" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "An endless text/event-stream", content_type = "text/event-stream", body = String),
        (status = 400, description = "Malformed cursor", body = crate::http::openapi::ErrorBody),
        (status = 401, description = "Not a feed reader", body = crate::http::openapi::ErrorBody),
    )
)]
pub(crate) async fn stream(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<FeedQuery>,
) -> ApiResult<Response> {
    require_feed_access(&state, &headers).await?;
    let last_event_id = headers
        .get("last-event-id")
        .map(|v| v.to_str().unwrap_or("x"));
    let from = match last_event_id {
        Some(id) => parse_cursor(Some(id), "Last-Event-ID")?,
        None => parse_cursor(q.since.as_deref(), "since")?,
    };
    // Subscribe before the first read, so nothing committed after it can go unnoticed.
    let local = state.revocations.subscribe();
    let notices = state.store.subscribe();
    let mut pending = VecDeque::new();
    let cursor = if feed::needs_snapshot(&state, from).await? {
        let Batch { cursor, events, .. } = feed::snapshot(&state).await?;
        let data = SnapshotData {
            cursor,
            events: events.into_iter().map(EventView::from).collect(),
        };
        let ev = Event::default()
            .event("snapshot")
            .id(cursor.to_string())
            .json_data(&data)
            .map_err(ApiError::internal)?;
        pending.push_back(ev);
        cursor
    } else {
        from.unwrap_or(0)
    };
    let stop = state.stopping.subscribe();
    let tail = Tail {
        state,
        cursor,
        pending,
        local,
        notices,
        stop,
    };
    let sse =
        Sse::new(events(tail)).keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive"));
    let mut resp = sse.into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Tell buffering reverse proxies (nginx) to pass events through at once.
    resp.headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(resp)
}

/// The state of one stream.
struct Tail {
    state: AppState,
    /// Everything up to here has been sent (or was expired).
    cursor: i64,
    /// Events read but not yet sent.
    pending: VecDeque<Event>,
    /// Events appended by this process.
    local: broadcast::Receiver<Revocation>,
    /// Events appended by any node (store notices).
    notices: broadcast::Receiver<StoreNotice>,
    /// The server is stopping: end the stream (the reader reconnects elsewhere and resumes).
    stop: watch::Receiver<bool>,
}

impl Tail {
    /// Reads the store after the last cursor; queues what it finds. `false` when the page
    /// was full (read again at once).
    async fn read(&mut self) -> bool {
        match feed::since(&self.state, self.cursor).await {
            Ok(batch) => {
                for r in batch.events {
                    let cursor = r.cursor;
                    match Event::default()
                        .event("revocation")
                        .id(cursor.to_string())
                        .json_data(EventView::from(r))
                    {
                        Ok(ev) => self.pending.push_back(ev),
                        Err(e) => tracing::error!(error = %e, "cannot encode revocation event"),
                    }
                }
                self.cursor = batch.cursor;
                batch.complete
            }
            Err(e) => {
                // The store is unreachable: wait and retry; the reader keeps its position.
                tracing::warn!(error = %e, "revocation feed: store read failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                true
            }
        }
    }

    /// Waits for any sign that new events may exist. `false` when the server is stopping.
    async fn wake(&mut self) -> bool {
        tokio::select! {
            r = self.stop.changed() => {
                let stopping = r.is_err() || *self.stop.borrow_and_update();
                if stopping {
                    return false;
                }
            }
            r = self.local.recv() => {
                if let Err(broadcast::error::RecvError::Closed) = r {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
            r = self.notices.recv() => match r {
                Ok(StoreNotice::KeysChanged) => {}
                Ok(StoreNotice::Revocation(_)) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => {
                    self.notices = self.state.store.subscribe();
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            },
        }
        true
    }
}

fn events(tail: Tail) -> impl Stream<Item = Result<Event, Infallible>> {
    futures_util::stream::unfold(tail, |mut t| async move {
        loop {
            if let Some(ev) = t.pending.pop_front() {
                return Some((Ok(ev), t));
            }
            if *t.stop.borrow() {
                return None;
            }
            if t.read().await && t.pending.is_empty() && !t.wake().await {
                return None;
            }
        }
    })
}
