//! First-party account endpoints under `/auth` (docs/api.md, "First-party endpoints").

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ApiResult};
use super::extract::{bearer_token, ApiJson, ApiPath, AuthUser, ClientInfo};
use super::Routes;
use crate::domain::sessions::{Issued, SessionOrigin};
use crate::domain::{accounts, sessions, tokens, DomainError};
use crate::state::AppState;

/// Routes of `/auth/*` (except `/auth/setup` and `/auth/config`, in `setup.rs`).
pub fn router() -> Routes {
    Routes::new()
        .route("/auth/register", post(register))
        .route("/auth/login", post(login))
        .route("/auth/refresh", post(refresh))
        .route("/auth/logout", post(logout))
        .route("/auth/logout-all", post(logout_all))
        .route("/auth/me", get(me))
        .route(
            "/auth/sessions",
            get(list_sessions).delete(revoke_other_sessions),
        )
        .route("/auth/sessions/{id}", delete(revoke_session))
        .route("/auth/password", post(change_password))
}

/// The CSRF header required on cookie-authenticated requests.
pub const CSRF_HEADER: &str = "x-tessera-csrf";

#[derive(Deserialize)]
struct RegisterRequest {
    email: String,
    password: String,
}

#[derive(Serialize)]
struct IdResponse {
    id: String,
}

async fn register(
    State(state): State<AppState>,
    client: ClientInfo,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> ApiResult<Response> {
    let id = accounts::register(&state, &req.email, &req.password, client.ip.as_deref()).await?;
    Ok((StatusCode::CREATED, no_store(), Json(IdResponse { id })).into_response())
}

#[derive(Deserialize)]
struct LoginRequest {
    email: String,
    password: String,
    #[serde(default)]
    native: bool,
}

/// The login/refresh answer (docs/api.md).
#[derive(Serialize)]
struct TokenResponse<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<&'a str>,
    session_id: &'a str,
}

fn no_store() -> [(header::HeaderName, HeaderValue); 2] {
    // RFC 6749 §5.1: responses with tokens must not be cached.
    [
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (header::PRAGMA, HeaderValue::from_static("no-cache")),
    ]
}

/// The refresh cookie for `token`, living as long as the session can.
fn refresh_cookie(state: &AppState, token: &str, max_age: i64) -> ApiResult<HeaderValue> {
    let secure = if state.config.cookie_secure {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{}={}; HttpOnly{}; SameSite=Strict; Path=/auth; Max-Age={}",
        state.config.cookie_name,
        token,
        secure,
        max_age.max(0)
    ))
    .map_err(|_| ApiError::internal("cookie value is not a valid header"))
}

fn clear_cookie(state: &AppState) -> ApiResult<HeaderValue> {
    refresh_cookie(state, "", 0)
}

/// Answers with tokens: the refresh token in the body (native) or in the cookie (browser).
fn token_response(state: &AppState, issued: &Issued, native: bool) -> ApiResult<Response> {
    let body = TokenResponse {
        access_token: &issued.access_token,
        token_type: "Bearer",
        expires_in: issued.expires_in,
        refresh_token: native.then_some(issued.refresh_token.as_str()),
        session_id: &issued.session.id,
    };
    let mut resp = (StatusCode::OK, no_store(), Json(body)).into_response();
    if !native {
        let max_age = issued.session.absolute_expires_at - state.now();
        resp.headers_mut().append(
            header::SET_COOKIE,
            refresh_cookie(state, &issued.refresh_token, max_age)?,
        );
    }
    Ok(resp)
}

async fn login(
    State(state): State<AppState>,
    client: ClientInfo,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<Response> {
    let origin = SessionOrigin {
        ip: client.ip,
        user_agent: client.user_agent,
    };
    let issued = accounts::login(&state, &req.email, &req.password, &origin).await?;
    token_response(&state, &issued, req.native)
}

/// The refresh cookie's value, if the request carries it.
fn read_cookie(state: &AppState, headers: &HeaderMap) -> Option<String> {
    let name = state.config.cookie_name.as_str();
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_string())
}

/// CSRF defence for cookie-authenticated requests: the custom header (a cross-site form or
/// simple request cannot set it without a CORS preflight) and, when the browser sends an
/// `Origin`, the issuer's own origin.
fn check_csrf(state: &AppState, headers: &HeaderMap) -> ApiResult<()> {
    let forbidden =
        |d: &str| ApiError::new(StatusCode::FORBIDDEN, "invalid_request", d.to_string());
    if headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()) != Some("1") {
        return Err(forbidden("Missing X-Tessera-CSRF: 1 header"));
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        if origin.to_str().ok() != Some(state.config.issuer_origin().as_str()) {
            return Err(forbidden("Cross-origin request refused"));
        }
    }
    Ok(())
}

async fn refresh(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let Some(token) = read_cookie(&state, &headers) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_grant",
            "Missing refresh cookie",
        ));
    };
    check_csrf(&state, &headers)?;
    match sessions::refresh(&state, &token, client.ip.as_deref()).await {
        Ok(issued) => token_response(&state, &issued, false),
        Err(DomainError::InvalidGrant(d)) => {
            let mut resp =
                ApiError::new(StatusCode::UNAUTHORIZED, "invalid_grant", d).into_response();
            resp.headers_mut()
                .append(header::SET_COOKIE, clear_cookie(&state)?);
            Ok(resp)
        }
        Err(e) => Err(e.into()),
    }
}

/// Who is logging out: a bearer token's holder, or a refresh cookie's session.
enum Caller {
    Bearer(Box<tokens::AccessContext>),
    Cookie(tessera_store::Session),
    Nobody,
}

async fn caller(state: &AppState, headers: &HeaderMap) -> ApiResult<Caller> {
    if headers.contains_key(header::AUTHORIZATION) {
        let (mut parts, ()) = axum::http::Request::new(()).into_parts();
        parts.headers = headers.clone();
        let token = bearer_token(&parts)?.ok_or_else(ApiError::missing_token)?;
        return Ok(Caller::Bearer(Box::new(
            tokens::authenticate(state, token).await?,
        )));
    }
    let Some(token) = read_cookie(state, headers) else {
        return Err(ApiError::missing_token());
    };
    check_csrf(state, headers)?;
    match sessions::session_of_refresh_token(state, &token).await {
        Ok(s) => Ok(Caller::Cookie(s)),
        Err(DomainError::InvalidGrant(_)) => Ok(Caller::Nobody),
        Err(e) => Err(e.into()),
    }
}

fn no_content_clearing_cookie(state: &AppState) -> ApiResult<Response> {
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut()
        .append(header::SET_COOKIE, clear_cookie(state)?);
    Ok(resp)
}

async fn logout(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let ip = client.ip.as_deref();
    match caller(&state, &headers).await? {
        Caller::Bearer(ctx) => {
            let sid = ctx
                .claims
                .sid
                .as_deref()
                .ok_or_else(|| ApiError::invalid_request("This token has no session"))?;
            sessions::end_session(&state, &ctx.claims.sub, sid, "logout", ip).await?;
        }
        Caller::Cookie(s) => {
            sessions::end_session(&state, &s.user_id, &s.id, "logout", ip).await?;
        }
        // Logging out with a dead cookie: nothing to revoke; clear it anyway.
        Caller::Nobody => {}
    }
    no_content_clearing_cookie(&state)
}

async fn logout_all(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let ip = client.ip.as_deref();
    let user_id = match caller(&state, &headers).await? {
        Caller::Bearer(ctx) => ctx
            .user
            .map(|u| u.id)
            .ok_or_else(|| ApiError::invalid_request("This token has no user"))?,
        Caller::Cookie(s) => s.user_id,
        Caller::Nobody => return no_content_clearing_cookie(&state),
    };
    sessions::end_all_sessions(&state, &user_id, None, ip).await?;
    no_content_clearing_cookie(&state)
}

#[derive(Serialize)]
struct MeResponse<'a> {
    id: &'a str,
    email: &'a str,
    roles: &'a [String],
    created_at: i64,
    session_id: Option<&'a str>,
    token_expires_at: i64,
}

fn user_of(auth: &AuthUser) -> ApiResult<&tessera_store::User> {
    auth.user
        .as_ref()
        .ok_or_else(|| ApiError::access_denied("Not a user token"))
}

async fn me(auth: AuthUser) -> ApiResult<Response> {
    let user = user_of(&auth)?;
    Ok((
        no_store(),
        Json(MeResponse {
            id: &user.id,
            email: &user.email,
            roles: &user.roles,
            created_at: user.created_at,
            session_id: auth.claims.sid.as_deref(),
            token_expires_at: auth.claims.exp,
        }),
    )
        .into_response())
}

#[derive(Serialize)]
struct SessionView<'a> {
    id: &'a str,
    user_agent: Option<&'a str>,
    ip: Option<&'a str>,
    created_at: i64,
    last_used_at: i64,
    expires_at: i64,
    current: bool,
}

#[derive(Serialize)]
struct SessionsResponse<'a> {
    sessions: Vec<SessionView<'a>>,
}

async fn list_sessions(State(state): State<AppState>, auth: AuthUser) -> ApiResult<Response> {
    let user = user_of(&auth)?;
    let list = sessions::list(&state, &user.id).await?;
    let current = auth.claims.sid.as_deref();
    let body = SessionsResponse {
        sessions: list
            .iter()
            .map(|s| SessionView {
                id: &s.id,
                user_agent: s.user_agent.as_deref(),
                ip: s.ip.as_deref(),
                created_at: s.created_at,
                last_used_at: s.last_used_at,
                expires_at: s.idle_expires_at.min(s.absolute_expires_at),
                current: Some(s.id.as_str()) == current,
            })
            .collect(),
    };
    Ok((no_store(), Json(body)).into_response())
}

async fn revoke_session(
    State(state): State<AppState>,
    auth: AuthUser,
    client: ClientInfo,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let user = user_of(&auth)?;
    sessions::end_session(
        &state,
        &user.id,
        &id,
        "revoked_by_user",
        client.ip.as_deref(),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn revoke_other_sessions(
    State(state): State<AppState>,
    auth: AuthUser,
    client: ClientInfo,
) -> ApiResult<StatusCode> {
    let user = user_of(&auth)?;
    let keep = auth
        .claims
        .sid
        .as_deref()
        .ok_or_else(|| ApiError::invalid_request("This token has no session"))?;
    sessions::end_all_sessions(&state, &user.id, Some(keep), client.ip.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct PasswordRequest {
    current_password: String,
    new_password: String,
    #[serde(default)]
    native: bool,
}

async fn change_password(
    State(state): State<AppState>,
    auth: AuthUser,
    client: ClientInfo,
    ApiJson(req): ApiJson<PasswordRequest>,
) -> ApiResult<Response> {
    let origin = SessionOrigin {
        ip: client.ip,
        user_agent: client.user_agent,
    };
    let issued = accounts::change_password(
        &state,
        &auth,
        &req.current_password,
        &req.new_password,
        &origin,
    )
    .await?;
    token_response(&state, &issued, req.native)
}
