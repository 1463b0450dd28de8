//! OAuth 2.0 endpoints: the token endpoint (RFC 6749 §3.2, §4.3, §4.4, §6), token revocation
//! (RFC 7009) and token introspection (RFC 7662). Form-encoded requests, JSON answers,
//! errors per RFC 6749 §5.2. See `docs/oauth.md`.
//!
//! Client authentication (RFC 6749 §2.3.1): `client_secret_basic` (HTTP Basic with the
//! form-urlencoded id and secret) or `client_secret_post` (`client_id` + `client_secret` in
//! the body), never both. The first-party client `tessera` is public: it identifies itself
//! with `client_id` alone (or not at all) and may only redeem and revoke its own tokens.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Json;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use tessera_store::Client;
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult};
use super::extract::{ApiForm, ClientInfo};
use super::Routes;
use crate::crypto;
use crate::domain::accounts::{self, FIRST_PARTY_CLIENT};
use crate::domain::revocation::{self, Target};
use crate::domain::sessions::{self, Issued, SessionOrigin};
use crate::domain::tokens::{self, TokenSpec};
use crate::domain::{audit, clients, introspection, DomainError};
use crate::state::AppState;

/// Routes of `/oauth/*`.
pub fn router() -> Routes {
    Routes::new()
        .route("/oauth/token", post(token))
        .route("/oauth/revoke", post(revoke))
        .route("/oauth/introspect", post(introspect))
}

// ---- client authentication ---------------------------------------------------------------

/// Client credentials as presented, before they are checked.
#[derive(Debug)]
pub(crate) enum Presented {
    /// No client identification at all.
    Nothing,
    /// `client_id` alone (a public client).
    Public(String),
    /// An id and a secret; `basic` when they came in the Authorization header.
    Secret {
        id: String,
        secret: zeroize::Zeroizing<String>,
        basic: bool,
    },
}

/// Who the caller is after client authentication.
#[derive(Debug)]
pub(crate) enum Caller {
    /// No client identification: treated as the first-party client where that is allowed.
    Anonymous,
    /// The first-party public client `tessera`.
    FirstParty,
    /// A registered client that proved its secret.
    Confidential(Client),
}

impl Caller {
    /// The client id tokens of this caller carry.
    fn client_id(&self) -> &str {
        match self {
            Caller::Anonymous | Caller::FirstParty => FIRST_PARTY_CLIENT,
            Caller::Confidential(c) => &c.client_id,
        }
    }
}

/// 401 `invalid_client` (RFC 6749 §5.2); with `WWW-Authenticate: Basic` when the client
/// tried HTTP Basic, as the RFC requires.
pub(crate) fn invalid_client(description: &str, basic: bool) -> ApiError {
    let mut e = ApiError::new(StatusCode::UNAUTHORIZED, "invalid_client", description);
    if basic {
        e.www_authenticate = Some("Basic realm=\"tessera\", charset=\"UTF-8\"".to_string());
    }
    e
}

/// Decodes `application/x-www-form-urlencoded` text (RFC 6749 §2.3.1 asks clients to encode
/// the id and secret that way before HTTP Basic).
fn form_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Base64 that accepts the value with or without padding (clients differ).
const BASIC_B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Parses HTTP Basic credentials (RFC 7617) from an Authorization value. `None` when the
/// scheme is not Basic; `Some(Err)` when it is Basic but malformed.
pub(crate) fn parse_basic(value: &str) -> Option<Result<(String, zeroize::Zeroizing<String>), ()>> {
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let parsed = (|| {
        let raw = zeroize::Zeroizing::new(BASIC_B64.decode(rest.trim()).ok()?);
        let text = std::str::from_utf8(&raw).ok()?;
        let (id, secret) = text.split_once(':')?;
        let id = form_decode(id)?;
        let secret = zeroize::Zeroizing::new(form_decode(secret)?);
        Some((id, secret))
    })();
    Some(parsed.ok_or(()))
}

/// Reads the client credentials of a request: Basic header and/or body parameters.
fn presented(
    headers: &HeaderMap,
    form_id: Option<&str>,
    form_secret: Option<&str>,
) -> ApiResult<Presented> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value
            .to_str()
            .map_err(|_| invalid_client("Malformed Authorization header", true))?;
        return match parse_basic(value) {
            None => Err(invalid_client(
                "Use HTTP Basic (client_secret_basic) or client_secret_post",
                true,
            )),
            Some(Err(())) => Err(invalid_client("Malformed HTTP Basic credentials", true)),
            Some(Ok((id, secret))) => {
                // RFC 6749 §2.3: a client MUST NOT use more than one authentication method.
                if form_secret.is_some() {
                    return Err(ApiError::invalid_request(
                        "Client credentials in both the Authorization header and the body",
                    ));
                }
                if form_id.is_some_and(|f| f != id) {
                    return Err(ApiError::invalid_request(
                        "client_id does not match the authenticated client",
                    ));
                }
                // Some libraries send a public client as Basic with an empty password.
                if secret.is_empty() && clients::is_first_party(&id) {
                    return Ok(Presented::Public(id));
                }
                Ok(Presented::Secret {
                    id,
                    secret,
                    basic: true,
                })
            }
        };
    }
    match (form_id, form_secret) {
        (Some(id), Some(secret)) => Ok(Presented::Secret {
            id: id.to_string(),
            secret: zeroize::Zeroizing::new(secret.to_string()),
            basic: false,
        }),
        (None, Some(_)) => Err(ApiError::invalid_request("client_secret without client_id")),
        (Some(id), None) => Ok(Presented::Public(id.to_string())),
        (None, None) => Ok(Presented::Nothing),
    }
}

/// Checks presented credentials. A secret that does not match, or a public `client_id`
/// other than the first-party client, is `invalid_client`.
pub(crate) async fn authenticate_client(
    state: &AppState,
    presented: Presented,
) -> ApiResult<Caller> {
    match presented {
        Presented::Nothing => Ok(Caller::Anonymous),
        Presented::Public(id) if clients::is_first_party(&id) => Ok(Caller::FirstParty),
        Presented::Public(_) => Err(invalid_client(
            "This client must authenticate with its secret",
            false,
        )),
        Presented::Secret { id, secret, basic } => {
            match clients::authenticate(state, &id, &secret).await? {
                Some(c) => Ok(Caller::Confidential(c)),
                None => Err(invalid_client("Client authentication failed", basic)),
            }
        }
    }
}

// ---- shared response helpers -------------------------------------------------------------

/// RFC 6749 §5.1: token responses (and their errors) must not be cached.
fn no_store(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

fn finish(result: ApiResult<Response>) -> Response {
    no_store(match result {
        Ok(r) => r,
        Err(e) => e.into_response(),
    })
}

/// RFC 6749 §5.2: a malformed request (including a repeated parameter, which axum reports
/// as 422) is a 400 `invalid_request`.
fn form_error(mut e: ApiError) -> ApiError {
    if e.status == StatusCode::UNPROCESSABLE_ENTITY {
        e.status = StatusCode::BAD_REQUEST;
    }
    e
}

fn oauth_error(status: StatusCode, code: &'static str, description: &str) -> ApiError {
    ApiError::new(status, code, description)
}

/// An RFC 6749 §3.1 parameter: sent without a value means omitted.
fn param(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|s| !s.is_empty())
}

// ---- POST /oauth/token ---------------------------------------------------------------------

/// Token request parameters (RFC 6749 §4.3.2, §4.4.2, §6), form-encoded.
#[derive(Deserialize, ToSchema)]
pub(crate) struct TokenForm {
    /// `refresh_token`, `client_credentials` or `password`.
    grant_type: Option<String>,
    /// The refresh token (`grant_type=refresh_token`).
    refresh_token: Option<String>,
    /// Requested scope, space-separated (`client_credentials`: a subset of the client's).
    scope: Option<String>,
    /// The user's email (`grant_type=password`).
    username: Option<String>,
    /// The user's password (`grant_type=password`).
    password: Option<String>,
    /// Client id (`client_secret_post`, or the public first-party client `tessera`).
    client_id: Option<String>,
    /// Client secret (`client_secret_post`).
    client_secret: Option<String>,
}

/// A successful token response (RFC 6749 §5.1).
#[derive(Serialize, ToSchema)]
pub(crate) struct TokenResponse {
    /// The access token (JWS, `typ: at+jwt`).
    access_token: String,
    /// Always `Bearer`.
    token_type: &'static str,
    /// Lifetime of the access token in seconds.
    expires_in: i64,
    /// A new refresh token (refresh and password grants; the old one is rotated).
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    /// The granted scope, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
}

impl TokenResponse {
    fn from_issued(issued: &Issued) -> Self {
        Self {
            access_token: issued.access_token.clone(),
            token_type: "Bearer",
            expires_in: issued.expires_in,
            refresh_token: Some(issued.refresh_token.to_string()),
            scope: None,
        }
    }
}

/// OAuth 2.0 token endpoint.
#[utoipa::path(
    post,
    path = "/oauth/token",
    tag = "oauth",
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    security((), ("client_basic" = [])),
    responses(
        (status = 200, description = "Tokens issued (RFC 6749 §5.1)", body = TokenResponse),
        (status = 400, description = "invalid_request, invalid_grant, invalid_scope, unauthorized_client, unsupported_grant_type", body = crate::http::openapi::ErrorBody),
        (status = 401, description = "invalid_client", body = crate::http::openapi::ErrorBody),
        (status = 413, description = "Body too large", body = crate::http::openapi::ErrorBody),
        (status = 415, description = "Not form-encoded", body = crate::http::openapi::ErrorBody),
        (status = 429, description = "Too many failed password attempts", body = crate::http::openapi::ErrorBody),
    )
)]
pub(crate) async fn token(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    form: Result<ApiForm<TokenForm>, ApiError>,
) -> Response {
    finish(token_inner(&state, client, &headers, form).await)
}

async fn token_inner(
    state: &AppState,
    client: ClientInfo,
    headers: &HeaderMap,
    form: Result<ApiForm<TokenForm>, ApiError>,
) -> ApiResult<Response> {
    let ApiForm(form) = form.map_err(form_error)?;
    let grant =
        param(&form.grant_type).ok_or_else(|| ApiError::invalid_request("Missing grant_type"))?;
    match grant {
        "refresh_token" | "client_credentials" => {}
        "password" if state.config.password_grant => {}
        _ => {
            return Err(oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "Supported grant types: refresh_token, client_credentials, password",
            ))
        }
    }
    let creds = presented(headers, param(&form.client_id), param(&form.client_secret))?;
    let caller = authenticate_client(state, creds).await?;
    let body = match grant {
        "refresh_token" => refresh_grant(state, &caller, &form, &client).await?,
        "client_credentials" => client_credentials_grant(state, &caller, &form)?,
        _ => password_grant(state, &caller, &form, client).await?,
    };
    Ok((StatusCode::OK, Json(body)).into_response())
}

fn no_scope_for_users(form: &TokenForm) -> ApiResult<()> {
    if param(&form.scope).is_some() {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "User tokens carry roles, not scopes; omit scope",
        ));
    }
    Ok(())
}

/// RFC 6749 §6: the refresh token must have been issued to the client presenting it, and a
/// confidential client's token needs that client's authentication. Checked by the store in
/// the rotation's own round trip, before anything changes, so another client can never burn
/// someone else's token.
async fn refresh_grant(
    state: &AppState,
    caller: &Caller,
    form: &TokenForm,
    client: &ClientInfo,
) -> ApiResult<TokenResponse> {
    let token = param(&form.refresh_token)
        .ok_or_else(|| ApiError::invalid_request("Missing refresh_token"))?;
    no_scope_for_users(form)?;
    match sessions::refresh_as(state, token, caller.client_id(), client.ip.as_deref()).await? {
        Ok(issued) => {
            state.metrics.oauth_token("refresh_token");
            Ok(TokenResponse::from_issued(&issued))
        }
        Err(sessions::OtherClient) => Err(match caller {
            Caller::Anonymous | Caller::FirstParty => invalid_client(
                "This refresh token belongs to a client that must authenticate",
                false,
            ),
            Caller::Confidential(_) => {
                ApiError::invalid_grant("The refresh token was issued to another client")
            }
        }),
    }
}

/// RFC 6749 §4.4: a confidential client's own token (`sub` = client id, no `sid`).
fn client_credentials_grant(
    state: &AppState,
    caller: &Caller,
    form: &TokenForm,
) -> ApiResult<TokenResponse> {
    let client = match caller {
        Caller::Confidential(c) => c,
        Caller::FirstParty => {
            return Err(oauth_error(
                StatusCode::BAD_REQUEST,
                "unauthorized_client",
                "The first-party client cannot use client_credentials",
            ))
        }
        Caller::Anonymous => return Err(invalid_client("Client authentication required", false)),
    };
    // Scope present but empty counts as absent (RFC 6749 §3.1).
    let scope = clients::grant_scope(client, param(&form.scope)).map_err(|()| {
        oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "The requested scope is invalid or exceeds the client's scope",
        )
    })?;
    let (access_token, expires_in) = tokens::issue(
        state,
        &TokenSpec {
            sub: &client.client_id,
            sid: None,
            client_id: &client.client_id,
            roles: &client.roles,
            scope: scope.as_deref(),
            cutoff: None,
        },
    )?;
    state.metrics.oauth_token("client_credentials");
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in,
        refresh_token: None,
        scope,
    })
}

/// RFC 6749 §4.3 (first-party only; RFC 9700 §2.4 discourages it for anyone else): a
/// registered client's credentials, or the first-party client, plus the user's email and
/// password. Throttled and enumeration-safe exactly like `/auth/login`.
async fn password_grant(
    state: &AppState,
    caller: &Caller,
    form: &TokenForm,
    client: ClientInfo,
) -> ApiResult<TokenResponse> {
    if matches!(caller, Caller::Anonymous) {
        return Err(invalid_client("Client authentication required", false));
    }
    let username =
        param(&form.username).ok_or_else(|| ApiError::invalid_request("Missing username"))?;
    let password =
        param(&form.password).ok_or_else(|| ApiError::invalid_request("Missing password"))?;
    no_scope_for_users(form)?;
    let user = match accounts::check_password(state, username, password, client.ip.as_deref()).await
    {
        Ok(u) => u,
        // RFC 6749 §5.2: wrong resource-owner credentials are a 400 invalid_grant.
        Err(DomainError::InvalidCredentials) => {
            return Err(ApiError::invalid_grant("Invalid username or password"))
        }
        Err(e) => return Err(e.into()),
    };
    let origin = SessionOrigin {
        ip: client.ip,
        user_agent: client.user_agent,
    };
    let issued = sessions::start(state, &user, caller.client_id(), &origin).await?;
    audit::record(
        state,
        "login",
        Some(&user.id),
        Some(&issued.session.id),
        origin.ip.as_deref(),
        serde_json::json!({ "client_id": caller.client_id(), "grant_type": "password" }),
    )
    .await;
    state.metrics.oauth_token("password");
    Ok(TokenResponse::from_issued(&issued))
}

// ---- POST /oauth/revoke --------------------------------------------------------------------

/// Revocation request (RFC 7009 §2.1).
#[derive(Deserialize, ToSchema)]
pub(crate) struct RevokeForm {
    /// The token to revoke (access or refresh).
    token: Option<String>,
    /// `access_token` or `refresh_token` (a hint only; both are tried).
    token_type_hint: Option<String>,
    /// Client id (`client_secret_post`, or `tessera`).
    client_id: Option<String>,
    /// Client secret (`client_secret_post`).
    client_secret: Option<String>,
}

/// OAuth 2.0 token revocation (RFC 7009). An access token's `jti` is revoked (a `token`
/// event on the feed); a refresh token's whole session is revoked. Unknown, expired or
/// already revoked tokens also get 200 (RFC 7009 §2.2).
#[utoipa::path(
    post,
    path = "/oauth/revoke",
    tag = "oauth",
    request_body(content = RevokeForm, content_type = "application/x-www-form-urlencoded"),
    security((), ("client_basic" = [])),
    responses(
        (status = 200, description = "Revoked, or the token was not valid anyway"),
        (status = 400, description = "invalid_request, unauthorized_client (token of another client)", body = crate::http::openapi::ErrorBody),
        (status = 401, description = "invalid_client", body = crate::http::openapi::ErrorBody),
        (status = 415, description = "Not form-encoded", body = crate::http::openapi::ErrorBody),
    )
)]
pub(crate) async fn revoke(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    form: Result<ApiForm<RevokeForm>, ApiError>,
) -> Response {
    finish(revoke_inner(&state, client, &headers, form).await)
}

fn not_yours() -> ApiError {
    oauth_error(
        StatusCode::BAD_REQUEST,
        "unauthorized_client",
        "The token was not issued to this client",
    )
}

async fn revoke_inner(
    state: &AppState,
    client: ClientInfo,
    headers: &HeaderMap,
    form: Result<ApiForm<RevokeForm>, ApiError>,
) -> ApiResult<Response> {
    let ApiForm(form) = form.map_err(form_error)?;
    let token = param(&form.token).ok_or_else(|| ApiError::invalid_request("Missing token"))?;
    let creds = presented(headers, param(&form.client_id), param(&form.client_secret))?;
    let caller = authenticate_client(state, creds).await?;
    let ip = client.ip.as_deref();
    // The hint only orders the lookups (RFC 7009 §2.1); an unknown hint is ignored.
    let refresh_first = param(&form.token_type_hint) == Some("refresh_token");
    let ok = || Ok(StatusCode::OK.into_response());
    if refresh_first && revoke_refresh(state, &caller, token, ip).await? {
        return ok();
    }
    if let Ok(claims) = tokens::verify(state, token) {
        if claims.client_id != caller.client_id() {
            return Err(not_yours());
        }
        revocation::revoke(
            state,
            Target::Token {
                jti: &claims.jti,
                exp: claims.exp,
            },
        )
        .await?;
        audit::record(
            state,
            "token_revoked",
            Some(caller.client_id()),
            Some(&claims.jti),
            ip,
            serde_json::json!({ "sub": claims.sub, "token_type": "access_token" }),
        )
        .await;
        return ok();
    }
    if !refresh_first {
        revoke_refresh(state, &caller, token, ip).await?;
    }
    ok()
}

/// Revokes the session of a refresh token; `false` when it is not a known live one.
async fn revoke_refresh(
    state: &AppState,
    caller: &Caller,
    token: &str,
    ip: Option<&str>,
) -> ApiResult<bool> {
    if !sessions::looks_like_refresh_token(token) {
        return Ok(false);
    }
    let Some(session) = state
        .store
        .refresh_token_session(&sessions::refresh_hash(token))
        .await?
    else {
        return Ok(false);
    };
    if !session.is_live(state.now()) {
        return Ok(false);
    }
    if session.client_id != caller.client_id() {
        return Err(not_yours());
    }
    revocation::revoke(
        state,
        Target::Session {
            id: &session.id,
            reason: "oauth_revoke",
        },
    )
    .await?;
    audit::record(
        state,
        "session_revoked",
        Some(&session.user_id),
        Some(&session.id),
        ip,
        serde_json::json!({ "reason": "oauth_revoke", "client_id": caller.client_id() }),
    )
    .await;
    Ok(true)
}

// ---- POST /oauth/introspect ----------------------------------------------------------------

/// Introspection request (RFC 7662 §2.1).
#[derive(Deserialize, ToSchema)]
pub(crate) struct IntrospectForm {
    /// The token to examine.
    token: Option<String>,
    /// `access_token` or `refresh_token` (a hint only).
    token_type_hint: Option<String>,
    /// Client id (`client_secret_post`).
    client_id: Option<String>,
    /// Client secret (`client_secret_post`).
    client_secret: Option<String>,
}

/// Introspection response (RFC 7662 §2.2). Only `active` when the token is not active.
#[derive(Serialize, Default, ToSchema)]
pub(crate) struct IntrospectResponse {
    /// Whether the token is currently valid (signature, expiry, session, user, cutoff, jti).
    active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nbf: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    jti: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sid: Option<String>,
    /// RFC 7662 §2.2: the RFC 6749 §5.1 type of an access token, `Bearer`; absent for a
    /// refresh token, which is never presented to a resource server.
    #[serde(skip_serializing_if = "Option::is_none")]
    token_type: Option<&'static str>,
    /// Which token this is, `access_token` or `refresh_token` (an extension, as in Ory Hydra).
    #[serde(skip_serializing_if = "Option::is_none")]
    token_use: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    roles: Option<Vec<String>>,
}

/// OAuth 2.0 token introspection (RFC 7662), for authenticated confidential clients.
/// Reflects every revocation and cutoff made on this node at once, and those made on other
/// nodes within `MAX_PEER_STALENESS` (docs/oauth.md): repeat answers come from a cache that
/// every revocation drops.
#[utoipa::path(
    post,
    path = "/oauth/introspect",
    tag = "oauth",
    request_body(content = IntrospectForm, content_type = "application/x-www-form-urlencoded"),
    security(("client_basic" = [])),
    responses(
        (status = 200, description = "Token state", body = IntrospectResponse),
        (status = 400, description = "invalid_request", body = crate::http::openapi::ErrorBody),
        (status = 401, description = "invalid_client", body = crate::http::openapi::ErrorBody),
        (status = 415, description = "Not form-encoded", body = crate::http::openapi::ErrorBody),
    )
)]
pub(crate) async fn introspect(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<ApiForm<IntrospectForm>, ApiError>,
) -> Response {
    finish(introspect_inner(&state, &headers, form).await)
}

async fn introspect_inner(
    state: &AppState,
    headers: &HeaderMap,
    form: Result<ApiForm<IntrospectForm>, ApiError>,
) -> ApiResult<Response> {
    let ApiForm(form) = form.map_err(form_error)?;
    let creds = presented(headers, param(&form.client_id), param(&form.client_secret))?;
    // RFC 7662 §2.1: the endpoint requires authorization; only registered clients get in.
    let basic = matches!(&creds, Presented::Secret { basic: true, .. });
    let authenticated = match creds {
        Presented::Secret { id, secret, .. } => {
            clients::authenticate_cached(state, &id, &secret).await?
        }
        _ => None,
    };
    if authenticated.is_none() {
        return Err(invalid_client("Client authentication required", basic));
    }
    let token = param(&form.token).ok_or_else(|| ApiError::invalid_request("Missing token"))?;
    let _ = param(&form.token_type_hint);
    let body = match introspect_access(state, token).await? {
        Some(body) => body,
        None => {
            let r = introspect_refresh(state, token).await?.unwrap_or_default();
            return Ok(Json(r).into_response());
        }
    };
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response())
}

/// An access token: valid signature and claims, then every store-side rule
/// (`tokens::authenticate`); an active answer is cached (`domain::introspection`) and
/// served from memory until something could have changed it. Returns the serialized
/// answer, `None` when the token is not an active access token.
async fn introspect_access(state: &AppState, token: &str) -> ApiResult<Option<Bytes>> {
    let key: [u8; 32] = crypto::sha256_array(token.as_bytes());
    let now = state.now();
    let epoch = introspection::epoch(state);
    if let Some(e) = epoch {
        if let Some(body) = introspection::token(state, e, &key, now) {
            state
                .metrics
                .introspection_cache(introspection::Outcome::Hit);
            return Ok(Some(body));
        }
    }
    let ctx = match tokens::authenticate(state, token).await {
        Ok(ctx) => ctx,
        Err(DomainError::InvalidToken(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    state.metrics.introspection_cache(match epoch {
        Some(_) => introspection::Outcome::Miss,
        None => introspection::Outcome::Bypass,
    });
    let leeway = state.config.leeway;
    let mut until = ctx.claims.exp.saturating_add(leeway);
    if let Some(s) = &ctx.session {
        until = until.min(s.idle_expires_at).min(s.absolute_expires_at);
    }
    let not_before = ctx
        .claims
        .nbf
        .map_or(i64::MIN, |n| n.saturating_sub(leeway));
    let c = ctx.claims;
    let answer = IntrospectResponse {
        active: true,
        sub: Some(c.sub),
        client_id: Some(c.client_id),
        scope: c.scope,
        exp: Some(c.exp),
        iat: Some(c.iat),
        nbf: c.nbf,
        aud: (!c.aud.is_empty()).then_some(c.aud),
        iss: Some(state.config.issuer()),
        jti: Some(c.jti),
        sid: c.sid,
        token_type: Some("Bearer"),
        token_use: Some("access_token"),
        roles: Some(c.roles),
    };
    let body = Bytes::from(
        serde_json::to_vec(&answer)
            .map_err(|e| ApiError::from(DomainError::Internal(format!("introspection: {e}"))))?,
    );
    if let Some(epoch) = epoch {
        introspection::remember_token(
            state,
            key,
            introspection::TokenEntry {
                epoch,
                not_before,
                until,
                body: body.clone(),
            },
        );
    }
    Ok(Some(body))
}

/// A refresh token: its session live, its user enabled, and not yet rotated. A rotated
/// token's successor (derived deterministically) is then stored, which is how "already
/// used" shows without changing anything.
async fn introspect_refresh(
    state: &AppState,
    token: &str,
) -> ApiResult<Option<IntrospectResponse>> {
    if !sessions::looks_like_refresh_token(token) {
        return Ok(None);
    }
    let now = state.now();
    let Some(session) = state
        .store
        .refresh_token_session(&sessions::refresh_hash(token))
        .await?
    else {
        return Ok(None);
    };
    if !session.is_live(now) {
        return Ok(None);
    }
    let successor = sessions::successor_of(state, token);
    if state
        .store
        .refresh_token_session(&sessions::refresh_hash(&successor))
        .await?
        .is_some()
    {
        return Ok(None);
    }
    match state.store.user_by_id(&session.user_id).await? {
        Some(u) if !u.disabled => Ok(Some(IntrospectResponse {
            active: true,
            sub: Some(u.id),
            client_id: Some(session.client_id.clone()),
            exp: Some(session.idle_expires_at.min(session.absolute_expires_at)),
            iat: Some(session.last_used_at),
            iss: Some(state.config.issuer()),
            sid: Some(session.id.clone()),
            token_use: Some("refresh_token"),
            roles: Some(u.roles),
            ..IntrospectResponse::default()
        })),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding() {
        assert_eq!(form_decode("a+b%3Ac").as_deref(), Some("a b:c"));
        assert_eq!(form_decode("%zz"), None);
        assert_eq!(form_decode("%4"), None);
        assert_eq!(form_decode("%ff"), None);
    }

    #[test]
    fn basic_parsing() {
        let v = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("id%3A1:s+c")
        );
        let (id, secret) = parse_basic(&v).unwrap().unwrap();
        assert_eq!(id, "id:1");
        assert_eq!(secret.as_str(), "s c");
        assert!(parse_basic("Bearer x").is_none());
        assert_eq!(parse_basic("Basic !!!").map(|r| r.is_err()), Some(true));
        let nocolon = format!(
            "basic {}",
            base64::engine::general_purpose::STANDARD.encode("x")
        );
        assert_eq!(parse_basic(&nocolon).map(|r| r.is_err()), Some(true));
    }
}
