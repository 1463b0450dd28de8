//! The notes API: an example resource server protected by `tessera-verify`.
//!
//! The whole router sits behind one [`Verifier::layer`] with `/healthz` as its only public
//! path, so handlers only run for a valid, unrevoked access token and receive its claims as
//! [`Authenticated`]. Notes
//! live in memory, owned by the token's `sub`.
//!
//! | route | who |
//! |---|---|
//! | `GET /notes` | the caller's notes |
//! | `POST /notes` `{"text"}` → 201 `{"id","text"}` | any authenticated caller |
//! | `GET /notes/{id}` | owner or `admin` |
//! | `DELETE /notes/{id}` → 204 | owner or `admin` |
//! | `GET /admin/notes` | role `admin` |
//! | `GET /healthz` | anyone; reports the verifier's feed and key state |
//!
//! A note that exists but belongs to someone else answers `404`, like one that does not
//! exist, so ids cannot be probed.
//!
//! Abuse limits, as in the auth server: [`serve`] drops a connection whose request head is not
//! complete within [`HEADER_READ_TIMEOUT`] (slowloris); a request (body included) must be
//! answered within [`REQUEST_TIMEOUT`] (else `408`); bodies over 32 KiB are refused with `413`.

#![deny(missing_docs)]

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tessera_verify::{AuthRejection, Authenticated, Verifier};
use tower::Layer;

/// Longest note text, in characters.
pub const MAX_TEXT_CHARS: usize = 4096;
/// Most notes one user may hold.
pub const MAX_NOTES_PER_USER: usize = 1000;
/// Most notes in total; memory stays bounded whatever callers do.
pub const MAX_NOTES: usize = 100_000;
/// Largest request body accepted (larger: `413`).
pub const MAX_BODY_BYTES: usize = 32 * 1024;
/// Time a client has to send its whole request head, from the connection's start or the end
/// of its previous response ([`serve`]).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a request (reading the body included) has to be answered; then `408`.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Serialize)]
struct Note {
    id: String,
    text: String,
    #[serde(skip)]
    owner: String,
}

#[derive(Debug, Default)]
struct Notes {
    by_id: HashMap<String, Note>,
}

impl Notes {
    fn count_of(&self, owner: &str) -> usize {
        self.by_id.values().filter(|n| n.owner == owner).count()
    }
}

/// The handlers' state: one `Arc`, so the per-request `State` clone is one reference count.
#[derive(Debug, Clone)]
struct AppState(Arc<Shared>);

#[derive(Debug)]
struct Shared {
    notes: Mutex<Notes>,
    verifier: Verifier,
}

impl AppState {
    fn notes(&self) -> std::sync::MutexGuard<'_, Notes> {
        // A poisoned lock means a handler panicked mid-update of a plain map; its entries are
        // still whole, so keep serving rather than turning every request into a 500.
        self.0.notes.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// An RFC 6749-shaped error response.
#[derive(Debug)]
enum ApiError {
    BadRequest(String),
    TooLarge,
    NotFound,
    Auth(AuthRejection),
}

impl From<AuthRejection> for ApiError {
    fn from(r: AuthRejection) -> Self {
        ApiError::Auth(r)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::BadRequest(d) => (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": "invalid_request", "error_description": d})),
            )
                .into_response(),
            ApiError::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                Json(json!({"error": "invalid_request",
                            "error_description": format!("Body larger than {MAX_BODY_BYTES} bytes")})),
            )
                .into_response(),
            ApiError::NotFound => (
                StatusCode::NOT_FOUND,
                Json(json!({"error": "not_found", "error_description": "No such note"})),
            )
                .into_response(),
            ApiError::Auth(r) => r.into_response(),
        }
    }
}

/// The application, ready to serve: the routes behind one [`Verifier::layer`] around the whole
/// router (deny by default: every route but `/healthz` needs a valid token, those added later
/// included, and callers without one get `401` for unknown paths too, so they cannot map which
/// paths exist). Needs a Tokio runtime (the verifier's background tasks).
pub fn app(verifier: Verifier) -> App {
    let state = AppState(Arc::new(Shared {
        notes: Mutex::new(Notes::default()),
        verifier: verifier.clone(),
    }));
    let router = with_limits(
        Router::new()
            .route("/healthz", get(healthz))
            .route("/notes", get(list).post(create))
            .route("/notes/{id}", get(read).delete(delete))
            .route("/admin/notes", get(admin_list)),
    )
    .with_state(state);
    verifier.layer().public_path("/healthz").layer(router)
}

/// What [`app`] returns: the router behind the verifier's layer, a tower service [`serve`]
/// (or `axum::serve` through `tower::make::Shared`) serves.
pub type App = tessera_verify::RequireAuth<Router>;

/// The per-request stack [`app`] puts around its routes: the `404` fallback, the body limit
/// ([`MAX_BODY_BYTES`], `413`) and the request timeout ([`REQUEST_TIMEOUT`], `408`). Public so
/// that a benchmark can serve a route without authentication through exactly the same stack
/// (`bench/feed-latency`, `notes-open`), and so that an application adding its own routes can
/// keep the same limits.
pub fn with_limits<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    router
        .fallback(|| async { ApiError::NotFound })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets in-flight requests finish.
///
/// Unlike `axum::serve`, hyper gets a timer and a header read timeout: a client that trickles
/// its request head (slowloris), or connects and sends nothing, is disconnected after
/// `header_read_timeout` ([`HEADER_READ_TIMEOUT`] in `main`) instead of holding a connection
/// and a task for ever. The per-request [`REQUEST_TIMEOUT`] starts only once the head is read.
pub async fn serve<S>(
    listener: tokio::net::TcpListener,
    app: S,
    header_read_timeout: Duration,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()>
where
    S: tower::Service<
            axum::extract::Request<hyper::body::Incoming>,
            Response = Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    use hyper_util::rt::{TokioIo, TokioTimer};

    let (closing, _) = tokio::sync::watch::channel(false);
    let mut conns = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        while conns.try_join_next().is_some() {}
        let svc = hyper_util::service::TowerToHyperService::new(app.clone());
        let mut closing = closing.subscribe();
        conns.spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_read_timeout);
            let conn = builder.serve_connection(TokioIo::new(stream), svc);
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                    return;
                }
                _ = closing.wait_for(|c| *c) => conn.as_mut().graceful_shutdown(),
            }
            let _ = conn.await;
        });
    }
    drop(listener);
    let _ = closing.send(true);
    while conns.join_next().await.is_some() {}
    Ok(())
}

async fn healthz(State(st): State<AppState>) -> Json<serde_json::Value> {
    Json(json!({"status": "ok", "verifier": st.0.verifier.health()}))
}

async fn list(State(st): State<AppState>, auth: Authenticated) -> Json<serde_json::Value> {
    let notes = st.notes();
    let mut mine: Vec<&Note> = notes
        .by_id
        .values()
        .filter(|n| n.owner == auth.sub)
        .collect();
    mine.sort_by(|a, b| a.id.cmp(&b.id));
    Json(json!({ "notes": mine }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewNote {
    text: String,
}

async fn create(
    State(st): State<AppState>,
    auth: Authenticated,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Note>), ApiError> {
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge
        } else {
            ApiError::BadRequest(format!("Unreadable body: {e}"))
        }
    })?;
    let new: NewNote = serde_json::from_slice(&body).map_err(|_| {
        ApiError::BadRequest("Expected a JSON object {\"text\": string}".to_owned())
    })?;
    let chars = new.text.chars().count();
    if new.text.trim().is_empty() || chars > MAX_TEXT_CHARS {
        return Err(ApiError::BadRequest(format!(
            "text must be 1 to {MAX_TEXT_CHARS} characters"
        )));
    }
    let mut notes = st.notes();
    if notes.by_id.len() >= MAX_NOTES || notes.count_of(&auth.sub) >= MAX_NOTES_PER_USER {
        return Err(ApiError::BadRequest("Note limit reached".to_owned()));
    }
    let note = Note {
        id: uuid::Uuid::new_v4().to_string(),
        text: new.text,
        owner: auth.sub.clone(),
    };
    notes.by_id.insert(note.id.clone(), note.clone());
    Ok((StatusCode::CREATED, Json(note)))
}

/// The note `id` if the caller may see it: its owner, or an admin.
fn visible(notes: &Notes, id: &str, auth: &Authenticated) -> Result<Note, ApiError> {
    match notes.by_id.get(id) {
        Some(n) if n.owner == auth.sub || auth.has_role("admin") => Ok(n.clone()),
        _ => Err(ApiError::NotFound),
    }
}

async fn read(
    State(st): State<AppState>,
    auth: Authenticated,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Note>, ApiError> {
    let Path(id) = id.map_err(|_| ApiError::NotFound)?;
    Ok(Json(visible(&st.notes(), &id, &auth)?))
}

async fn delete(
    State(st): State<AppState>,
    auth: Authenticated,
    id: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let Path(id) = id.map_err(|_| ApiError::NotFound)?;
    let mut notes = st.notes();
    visible(&notes, &id, &auth)?;
    notes.by_id.remove(&id);
    Ok(StatusCode::NO_CONTENT)
}

async fn admin_list(
    State(st): State<AppState>,
    auth: Authenticated,
) -> Result<Json<serde_json::Value>, ApiError> {
    auth.require_role("admin")?;
    let notes = st.notes();
    let mut all: Vec<serde_json::Value> = notes
        .by_id
        .values()
        .map(|n| json!({"id": n.id, "text": n.text, "owner": n.owner}))
        .collect();
    all.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    Ok(Json(json!({ "notes": all })))
}
