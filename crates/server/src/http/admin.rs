//! `/admin/*` (docs/api.md, "Admin"): users, OAuth clients, signing keys, audit log.
//!
//! Every handler starts with the bearer extractor and `require_role(&auth, "admin")` (403
//! `insufficient_scope` otherwise), and every change writes an audit event `admin.*` with the
//! acting admin's user id and IP. Secrets never reach the audit log; the client secret
//! appears exactly once, in the creation answer.

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Json;
use serde::{Deserialize, Serialize};
use tessera_store::{AuditFilter, Client, User};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ApiResult};
use super::extract::{require_role, ApiJson, ApiPath, ApiQuery, AuthUser, ClientInfo};
use super::Routes;
use crate::domain::admin::{self as domain, UserChange};
use crate::domain::keys::KeyInfo;
use crate::domain::{audit, clients};
use crate::state::AppState;

/// Routes of `/admin/*`.
pub fn router() -> Routes {
    Routes::new()
        .route("/admin/users", get(list_users).post(create_user))
        .route(
            "/admin/users/{id}",
            get(get_user).patch(update_user).delete(delete_user),
        )
        .route("/admin/clients", get(list_clients).post(create_client))
        .route("/admin/clients/{id}", delete(delete_client))
        .route("/admin/keys", get(list_keys))
        .route("/admin/keys/rotate", post(rotate_keys))
        .route("/admin/audit", get(list_audit))
}

/// The admin role.
pub const ADMIN: &str = "admin";
/// Largest audit page.
const MAX_AUDIT_LIMIT: u32 = 200;
/// Default page size.
const DEFAULT_LIMIT: u32 = 50;

/// The acting admin: a valid token carrying the `admin` role, of a user (not a service).
fn admin_id(auth: &AuthUser) -> ApiResult<String> {
    require_role(auth, ADMIN)?;
    auth.user
        .as_ref()
        .map(|u| u.id.clone())
        // A client_credentials token with an admin role is still not a person acting.
        .ok_or_else(|| ApiError::insufficient_scope("Requires an admin user"))
}

/// For handlers with a JSON body: an oversize body is 413 whoever sends it (the limit is
/// enforced the same way everywhere); then authentication (401), the admin role (403), and
/// only then the body's validation, so a non-admin learns nothing from validation errors.
fn admin_with_body<T>(
    auth: Result<AuthUser, ApiError>,
    body: Result<ApiJson<T>, ApiError>,
) -> ApiResult<(String, T)> {
    let body = match body {
        Err(e) if e.status == StatusCode::PAYLOAD_TOO_LARGE => return Err(e),
        other => other,
    };
    let actor = admin_id(&auth?)?;
    let ApiJson(req) = body?;
    Ok((actor, req))
}

fn no_store(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn ok_json<T: Serialize>(status: StatusCode, body: T) -> Response {
    no_store((status, Json(body)).into_response())
}

/// Parses an optional numeric query parameter with a clear message.
fn number(raw: Option<&str>, name: &str) -> ApiResult<Option<u32>> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => s.parse::<u32>().map(Some).map_err(|_| {
            ApiError::invalid_request(format!("{name} must be a non-negative integer"))
        }),
    }
}

// ---- users -----------------------------------------------------------------------------------

/// A user as the admin API shows it (never the password hash).
#[derive(Serialize, ToSchema)]
pub(crate) struct UserView {
    id: String,
    email: String,
    roles: Vec<String>,
    disabled: bool,
    created_at: i64,
    updated_at: i64,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        Self {
            id: u.id,
            email: u.email,
            roles: u.roles,
            disabled: u.disabled,
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

/// `GET /admin/users` answer.
#[derive(Serialize, ToSchema)]
pub(crate) struct UserList {
    users: Vec<UserView>,
}

/// `GET /admin/users` query.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct UserQuery {
    /// Case-insensitive substring of the email.
    search: Option<String>,
    /// Page size (1-200, default 50).
    limit: Option<String>,
    /// Users to skip.
    offset: Option<String>,
}

/// Lists users by email.
#[utoipa::path(
    get, path = "/admin/users", tag = "admin", params(UserQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, body = UserList),
        (status = 400, body = crate::http::openapi::ErrorBody),
        (status = 401, body = crate::http::openapi::ErrorBody),
        (status = 403, body = crate::http::openapi::ErrorBody),
    )
)]
pub(crate) async fn list_users(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiQuery(q): ApiQuery<UserQuery>,
) -> ApiResult<Response> {
    admin_id(&auth)?;
    let limit = number(q.limit.as_deref(), "limit")?.unwrap_or(DEFAULT_LIMIT);
    let offset = number(q.offset.as_deref(), "offset")?.unwrap_or(0);
    let users = domain::list_users(&state, q.search.as_deref(), limit, offset).await?;
    Ok(ok_json(
        StatusCode::OK,
        UserList {
            users: users.into_iter().map(UserView::from).collect(),
        },
    ))
}

/// `POST /admin/users` body.
#[derive(Deserialize, ToSchema)]
pub(crate) struct CreateUser {
    email: String,
    password: String,
    #[serde(default)]
    roles: Vec<String>,
}

/// Creates a user.
#[utoipa::path(
    post, path = "/admin/users", tag = "admin", request_body = CreateUser,
    security(("bearer" = [])),
    responses(
        (status = 201, body = UserView),
        (status = 400, body = crate::http::openapi::ErrorBody),
        (status = 401, body = crate::http::openapi::ErrorBody),
        (status = 403, body = crate::http::openapi::ErrorBody),
        (status = 409, description = "Email taken", body = crate::http::openapi::ErrorBody),
        (status = 415, body = crate::http::openapi::ErrorBody),
    )
)]
pub(crate) async fn create_user(
    State(state): State<AppState>,
    auth: Result<AuthUser, ApiError>,
    client: ClientInfo,
    body: Result<ApiJson<CreateUser>, ApiError>,
) -> ApiResult<Response> {
    let (actor, req) = admin_with_body(auth, body)?;
    let user = domain::create_user(&state, &req.email, &req.password, &req.roles).await?;
    audit::record(
        &state,
        "admin.user_created",
        Some(&actor),
        Some(&user.id),
        client.ip.as_deref(),
        serde_json::json!({ "roles": user.roles }),
    )
    .await;
    Ok(ok_json(StatusCode::CREATED, UserView::from(user)))
}

/// Gets a user.
#[utoipa::path(
    get, path = "/admin/users/{id}", tag = "admin",
    params(("id" = String, Path, description = "User id")),
    security(("bearer" = [])),
    responses(
        (status = 200, body = UserView),
        (status = 401, body = crate::http::openapi::ErrorBody),
        (status = 403, body = crate::http::openapi::ErrorBody),
        (status = 404, body = crate::http::openapi::ErrorBody),
    )
)]
pub(crate) async fn get_user(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Response> {
    admin_id(&auth)?;
    let user = domain::get_user(&state, &id).await?;
    Ok(ok_json(StatusCode::OK, UserView::from(user)))
}

/// `PATCH /admin/users/{id}` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateUser {
    /// New role set.
    roles: Option<Vec<String>>,
    /// Disable (true) or enable (false).
    disabled: Option<bool>,
}

/// Changes roles and/or the disabled flag. Either change raises the user's token cutoff
/// (every older token dies, at verifiers too); disabling also revokes every session.
#[utoipa::path(
    patch, path = "/admin/users/{id}", tag = "admin", request_body = UpdateUser,
    params(("id" = String, Path, description = "User id")),
    security(("bearer" = [])),
    responses(
        (status = 200, body = UserView),
        (status = 400, body = crate::http::openapi::ErrorBody),
        (status = 401, body = crate::http::openapi::ErrorBody),
        (status = 403, body = crate::http::openapi::ErrorBody),
        (status = 404, body = crate::http::openapi::ErrorBody),
        (status = 415, body = crate::http::openapi::ErrorBody),
    )
)]
pub(crate) async fn update_user(
    State(state): State<AppState>,
    auth: Result<AuthUser, ApiError>,
    client: ClientInfo,
    ApiPath(id): ApiPath<String>,
    body: Result<ApiJson<UpdateUser>, ApiError>,
) -> ApiResult<Response> {
    let (actor, req) = admin_with_body(auth, body)?;
    // An admin locking themselves out would leave nobody to undo it.
    if actor == id {
        let drops_admin = req
            .roles
            .as_ref()
            .is_some_and(|r| !r.iter().any(|x| x.trim() == ADMIN));
        if drops_admin || req.disabled == Some(true) {
            return Err(ApiError::invalid_request(
                "You cannot disable yourself or remove your own admin role",
            ));
        }
    }
    let out = domain::update_user(
        &state,
        &id,
        UserChange {
            roles: req.roles,
            disabled: req.disabled,
        },
    )
    .await?;
    audit::record(
        &state,
        "admin.user_updated",
        Some(&actor),
        Some(&out.user.id),
        client.ip.as_deref(),
        serde_json::json!({
            "roles": out.user.roles,
            "disabled": out.user.disabled,
            "cutoff": out.cutoff,
            "sessions_revoked": out.sessions_revoked,
        }),
    )
    .await;
    Ok(ok_json(StatusCode::OK, UserView::from(out.user)))
}

/// Deletes a user (cutoff event first, then the user with their sessions).
#[utoipa::path(
    delete, path = "/admin/users/{id}", tag = "admin",
    params(("id" = String, Path, description = "User id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, body = crate::http::openapi::ErrorBody),
        (status = 401, body = crate::http::openapi::ErrorBody),
        (status = 403, body = crate::http::openapi::ErrorBody),
        (status = 404, body = crate::http::openapi::ErrorBody),
    )
)]
pub(crate) async fn delete_user(
    State(state): State<AppState>,
    auth: AuthUser,
    client: ClientInfo,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let actor = admin_id(&auth)?;
    if actor == id {
        return Err(ApiError::invalid_request("You cannot delete yourself"));
    }
    domain::delete_user(&state, &id).await?;
    audit::record(
        &state,
        "admin.user_deleted",
        Some(&actor),
        Some(&id),
        client.ip.as_deref(),
        serde_json::json!({}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

// ---- clients ---------------------------------------------------------------------------------

/// An OAuth client (never its secret hash).
#[derive(Serialize, ToSchema)]
pub(crate) struct ClientView {
    client_id: String,
    name: String,
    roles: Vec<String>,
    scope: String,
    created_at: i64,
}

impl From<Client> for ClientView {
    fn from(c: Client) -> Self {
        Self {
            client_id: c.client_id,
            name: c.name,
            roles: c.roles,
            scope: c.scope,
            created_at: c.created_at,
        }
    }
}

/// `GET /admin/clients` answer.
#[derive(Serialize, ToSchema)]
pub(crate) struct ClientList {
    clients: Vec<ClientView>,
}

/// Lists OAuth clients.
#[utoipa::path(
    get, path = "/admin/clients", tag = "admin",
    security(("bearer" = [])),
    responses(
        (status = 200, body = ClientList),
        (status = 401, body = crate::http::openapi::ErrorBody),
        (status = 403, body = crate::http::openapi::ErrorBody),
    )
)]
pub(crate) async fn list_clients(
    State(state): State<AppState>,
    auth: AuthUser,
) -> ApiResult<Response> {
    admin_id(&auth)?;
    let list = clients::list(&state).await?;
    Ok(ok_json(
        StatusCode::OK,
        ClientList {
            clients: list.into_iter().map(ClientView::from).collect(),
        },
    ))
}

/// `POST /admin/clients` body.
#[derive(Deserialize, ToSchema)]
pub(crate) struct CreateClient {
    name: String,
    #[serde(default)]
    roles: Vec<String>,
    /// Space-separated scopes the client may request (e.g. `revocations:read`).
    scope: Option<String>,
}

/// A created client, with its secret (shown this once).
#[derive(Serialize, ToSchema)]
pub(crate) struct CreatedClient {
    client_id: String,
    client_secret: String,
    name: String,
    roles: Vec<String>,
    scope: String,
    created_at: i64,
}

/// Registers a service client; the secret is generated (256 bits) and shown once.
#[utoipa::path(
    post, path = "/admin/clients", tag = "admin", request_body = CreateClient,
    security(("bearer" = [])),
    responses(
        (status = 201, body = CreatedClient),
        (status = 400, body = crate::http::openapi::ErrorBody),
        (status = 401, body = crate::http::openapi::ErrorBody),
        (status = 403, body = crate::http::openapi::ErrorBody),
        (status = 415, body = crate::http::openapi::ErrorBody),
    )
)]
pub(crate) async fn create_client(
    State(state): State<AppState>,
    auth: Result<AuthUser, ApiError>,
    client: ClientInfo,
    body: Result<ApiJson<CreateClient>, ApiError>,
) -> ApiResult<Response> {
    let (actor, req) = admin_with_body(auth, body)?;
    let reg = clients::create(&state, &req.name, &req.roles, req.scope.as_deref()).await?;
    audit::record(
        &state,
        "admin.client_created",
        Some(&actor),
        Some(&reg.client.client_id),
        client.ip.as_deref(),
        serde_json::json!({ "name": reg.client.name, "roles": reg.client.roles, "scope": reg.client.scope }),
    )
    .await;
    let c = reg.client;
    Ok(ok_json(
        StatusCode::CREATED,
        CreatedClient {
            client_id: c.client_id,
            client_secret: reg.secret.to_string(),
            name: c.name,
            roles: c.roles,
            scope: c.scope,
            created_at: c.created_at,
        },
    ))
}

/// Deletes a client; its tokens stop working (a cutoff event for its id reaches verifiers).
#[utoipa::path(
    delete, path = "/admin/clients/{id}", tag = "admin",
    params(("id" = String, Path, description = "Client id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, body = crate::http::openapi::ErrorBody),
        (status = 403, body = crate::http::openapi::ErrorBody),
        (status = 404, body = crate::http::openapi::ErrorBody),
    )
)]
pub(crate) async fn delete_client(
    State(state): State<AppState>,
    auth: AuthUser,
    client: ClientInfo,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let actor = admin_id(&auth)?;
    clients::delete(&state, &id).await?;
    audit::record(
        &state,
        "admin.client_deleted",
        Some(&actor),
        Some(&id),
        client.ip.as_deref(),
        serde_json::json!({}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

// ---- keys ------------------------------------------------------------------------------------

/// A signing key's schedule.
#[derive(Serialize, ToSchema)]
pub(crate) struct KeyView {
    kid: String,
    alg: String,
    /// `pending`, `active` or `retired`, computed from the schedule and the clock.
    state: &'static str,
    created_at: i64,
    activate_at: i64,
    retire_at: Option<i64>,
    remove_at: Option<i64>,
}

impl From<KeyInfo> for KeyView {
    fn from(k: KeyInfo) -> Self {
        Self {
            kid: k.kid,
            alg: k.alg,
            state: k.state,
            created_at: k.created_at,
            activate_at: k.activate_at,
            retire_at: k.retire_at,
            remove_at: k.remove_at,
        }
    }
}

/// `GET /admin/keys` answer.
#[derive(Serialize, ToSchema)]
pub(crate) struct KeyList {
    keys: Vec<KeyView>,
}

/// Lists signing keys with their state now.
#[utoipa::path(
    get, path = "/admin/keys", tag = "admin",
    security(("bearer" = [])),
    responses(
        (status = 200, body = KeyList),
        (status = 401, body = crate::http::openapi::ErrorBody),
        (status = 403, body = crate::http::openapi::ErrorBody),
    )
)]
pub(crate) async fn list_keys(
    State(state): State<AppState>,
    auth: AuthUser,
) -> ApiResult<Response> {
    admin_id(&auth)?;
    Ok(ok_json(
        StatusCode::OK,
        KeyList {
            keys: state.keys.list().into_iter().map(KeyView::from).collect(),
        },
    ))
}

/// `POST /admin/keys/rotate` answer.
#[derive(Serialize, ToSchema)]
pub(crate) struct Rotated {
    /// The new signing key.
    kid: String,
}

/// Immediate rotation: a new key signs at once; the old one stays published until its
/// last token expires.
#[utoipa::path(
    post, path = "/admin/keys/rotate", tag = "admin",
    security(("bearer" = [])),
    responses(
        (status = 200, body = Rotated),
        (status = 401, body = crate::http::openapi::ErrorBody),
        (status = 403, body = crate::http::openapi::ErrorBody),
    )
)]
pub(crate) async fn rotate_keys(
    State(state): State<AppState>,
    auth: AuthUser,
    client: ClientInfo,
) -> ApiResult<Response> {
    let actor = admin_id(&auth)?;
    let kid = state.keys.rotate_now().await?;
    audit::record(
        &state,
        "admin.key_rotated",
        Some(&actor),
        Some(&kid),
        client.ip.as_deref(),
        serde_json::json!({ "staged": false }),
    )
    .await;
    Ok(ok_json(StatusCode::OK, Rotated { kid }))
}

// ---- audit -----------------------------------------------------------------------------------

/// An audit event.
#[derive(Serialize, ToSchema)]
pub(crate) struct AuditView {
    id: i64,
    at: i64,
    event: String,
    actor: Option<String>,
    subject: Option<String>,
    ip: Option<String>,
    #[schema(value_type = Object)]
    detail: serde_json::Value,
}

/// `GET /admin/audit` answer.
#[derive(Serialize, ToSchema)]
pub(crate) struct AuditPage {
    events: Vec<AuditView>,
    /// Pass as `before` for the next (older) page; null on the last page.
    next_before: Option<i64>,
}

/// `GET /admin/audit` query.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditQuery {
    /// Events whose actor or subject is this id.
    user: Option<String>,
    /// Events with this name.
    event: Option<String>,
    /// Only events with a smaller id (paging).
    before: Option<String>,
    /// Page size (1-200, default 50).
    limit: Option<String>,
}

/// The audit log, newest first.
#[utoipa::path(
    get, path = "/admin/audit", tag = "admin", params(AuditQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, body = AuditPage),
        (status = 400, body = crate::http::openapi::ErrorBody),
        (status = 401, body = crate::http::openapi::ErrorBody),
        (status = 403, body = crate::http::openapi::ErrorBody),
    )
)]
pub(crate) async fn list_audit(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Response> {
    admin_id(&auth)?;
    let limit = number(q.limit.as_deref(), "limit")?
        .unwrap_or(DEFAULT_LIMIT)
        .clamp(1, MAX_AUDIT_LIMIT);
    let before = match q.before.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(
            s.parse::<i64>()
                .map_err(|_| ApiError::invalid_request("before must be an event id"))?,
        ),
    };
    let text = |v: Option<String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    let filter = AuditFilter {
        user: text(q.user),
        event: text(q.event),
        before_id: before,
        // One more than asked tells whether an older page exists.
        limit: limit + 1,
    };
    if filter.user.as_ref().is_some_and(|s| s.len() > 256)
        || filter.event.as_ref().is_some_and(|s| s.len() > 256)
    {
        return Err(ApiError::invalid_request("Filter too long"));
    }
    let mut events = state.store.list_audit(&filter).await?;
    let more = events.len() > limit as usize;
    events.truncate(limit as usize);
    let next_before = if more {
        events.last().map(|e| e.id)
    } else {
        None
    };
    Ok(ok_json(
        StatusCode::OK,
        AuditPage {
            events: events
                .into_iter()
                .map(|e| AuditView {
                    id: e.id,
                    at: e.at,
                    event: e.event,
                    actor: e.actor,
                    subject: e.subject,
                    ip: e.ip,
                    detail: e.detail,
                })
                .collect(),
            next_before,
        },
    ))
}
