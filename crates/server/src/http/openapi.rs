//! `GET /openapi.json`: the OpenAPI 3.1 description of the whole HTTP API, generated with
//! `utoipa` from the handlers' `#[utoipa::path]` annotations and the request/response
//! types' `ToSchema` derives.
//!
//! The `/oauth`, `/admin`, `/revocations` and operations handlers are annotated where they
//! are defined. The first-party `/auth` and `/.well-known` handlers live in modules that do
//! not carry annotations; they are described here by annotated stubs that mirror
//! docs/api.md, with the shapes below. `tests/admin.rs` checks that every route the server
//! answers is listed.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Json;
use serde::Serialize;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use super::Routes;
use super::{admin, oauth, ops, revocations};

/// Routes of this module.
pub fn router() -> Routes {
    Routes::new().route("/openapi.json", get(openapi_json))
}

/// Every error body: RFC 6749 §5.2 style.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Error code (`invalid_request`, `invalid_client`, `invalid_grant`, `invalid_token`,
    /// `insufficient_scope`, `access_denied`, `not_found`, `too_many_attempts`,
    /// `temporarily_unavailable`, ...).
    pub error: String,
    /// Human-readable description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
    /// Seconds to wait (429 only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<i64>,
}

/// The generated description.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "Tessera",
        description = "JWT authentication server: first-party accounts, OAuth 2.0 (RFC 6749, 7009, 7662, 8414), revocation feed, administration. See docs/api.md.",
        license(name = "Apache-2.0"),
    ),
    paths(
        auth_config, auth_setup, auth_register, auth_login, auth_refresh, auth_logout,
        auth_logout_all, auth_me, auth_sessions, auth_sessions_delete_others,
        auth_session_delete, auth_password,
        jwks, as_metadata, oidc_metadata,
        oauth::token, oauth::revoke, oauth::introspect,
        revocations::list, revocations::stream,
        admin::list_users, admin::create_user, admin::get_user, admin::update_user,
        admin::delete_user, admin::list_clients, admin::create_client, admin::delete_client,
        admin::list_keys, admin::rotate_keys, admin::list_audit,
        ops::healthz, ops::readyz, ops::metrics, openapi_doc,
    ),
    components(schemas(ErrorBody)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "auth", description = "First-party accounts and sessions"),
        (name = "oauth", description = "OAuth 2.0 endpoints"),
        (name = "discovery", description = "Key set and metadata"),
        (name = "revocations", description = "Revocation feed for resource servers"),
        (name = "admin", description = "Administration (role admin)"),
        (name = "operations", description = "Health, readiness, metrics, this document"),
    )
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                utoipa::openapi::security::HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "client_basic",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)),
        );
        components.add_security_scheme(
            "refresh_cookie",
            SecurityScheme::ApiKey(utoipa::openapi::security::ApiKey::Cookie(
                utoipa::openapi::security::ApiKeyValue::new("tessera_refresh"),
            )),
        );
    }
}

/// The document as JSON.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

async fn openapi_json() -> Response {
    let mut resp = Json(document()).into_response();
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    resp
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "OpenAPI 3.1 document", body = Object)))]
#[allow(dead_code)] // A description stub; the route is served by `openapi_json`.
fn openapi_doc() {}

// ---- shapes of the first-party endpoints (docs/api.md) --------------------------------------

/// `POST /auth/register` body.
#[derive(Serialize, ToSchema)]
struct RegisterBody {
    email: String,
    /// At least 8 characters.
    password: String,
}

/// `POST /auth/setup` body.
#[derive(Serialize, ToSchema)]
struct SetupBody {
    /// The one-time token from the setup link.
    token: String,
    email: String,
    password: String,
}

/// `{"id"}` of a created account.
#[derive(Serialize, ToSchema)]
struct IdBody {
    id: String,
}

/// `GET /auth/config` answer.
#[derive(Serialize, ToSchema)]
struct ClientConfigBody {
    registration_open: bool,
    setup_required: bool,
    password_min_length: u32,
}

/// `POST /auth/login` body.
#[derive(Serialize, ToSchema)]
struct LoginBody {
    email: String,
    password: String,
    /// `true`: refresh token in the body instead of the cookie.
    native: Option<bool>,
}

/// Login / refresh / password-change answer.
#[derive(Serialize, ToSchema)]
struct LoginResponse {
    access_token: String,
    /// `Bearer`.
    token_type: String,
    expires_in: i64,
    /// Only for native clients.
    refresh_token: Option<String>,
    session_id: String,
}

/// `GET /auth/me` answer.
#[derive(Serialize, ToSchema)]
struct MeBody {
    id: String,
    email: String,
    roles: Vec<String>,
    created_at: i64,
    session_id: Option<String>,
    token_expires_at: i64,
}

/// A session of the caller.
#[derive(Serialize, ToSchema)]
struct SessionBody {
    id: String,
    user_agent: Option<String>,
    ip: Option<String>,
    created_at: i64,
    last_used_at: i64,
    expires_at: i64,
    current: bool,
}

/// `GET /auth/sessions` answer.
#[derive(Serialize, ToSchema)]
struct SessionsBody {
    sessions: Vec<SessionBody>,
}

/// `POST /auth/password` body.
#[derive(Serialize, ToSchema)]
struct PasswordBody {
    current_password: String,
    new_password: String,
    native: Option<bool>,
}

// ---- description stubs of the first-party and discovery endpoints ---------------------------
// Each stub only carries the `#[utoipa::path]` description; the handlers are in auth.rs,
// setup.rs and wellknown.rs.

#[utoipa::path(get, path = "/auth/config", tag = "auth",
    responses((status = 200, body = ClientConfigBody)))]
#[allow(dead_code)]
fn auth_config() {}

#[utoipa::path(post, path = "/auth/setup", tag = "auth", request_body = SetupBody,
    responses((status = 201, body = IdBody), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 415, body = ErrorBody)))]
#[allow(dead_code)]
fn auth_setup() {}

#[utoipa::path(post, path = "/auth/register", tag = "auth", request_body = RegisterBody,
    responses((status = 201, body = IdBody), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
#[allow(dead_code)]
fn auth_register() {}

#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginBody,
    responses((status = 200, body = LoginResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
#[allow(dead_code)]
fn auth_login() {}

#[utoipa::path(post, path = "/auth/refresh", tag = "auth",
    params(("X-Tessera-CSRF" = String, Header, description = "Must be 1")),
    security(("refresh_cookie" = [])),
    responses((status = 200, body = LoginResponse), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
#[allow(dead_code)]
fn auth_refresh() {}

#[utoipa::path(post, path = "/auth/logout", tag = "auth",
    security(("bearer" = []), ("refresh_cookie" = [])),
    responses((status = 204, description = "Session revoked"), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
#[allow(dead_code)]
fn auth_logout() {}

#[utoipa::path(post, path = "/auth/logout-all", tag = "auth",
    security(("bearer" = []), ("refresh_cookie" = [])),
    responses((status = 204, description = "Every session revoked"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
#[allow(dead_code)]
fn auth_logout_all() {}

#[utoipa::path(get, path = "/auth/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = MeBody), (status = 401, body = ErrorBody)))]
#[allow(dead_code)]
fn auth_me() {}

#[utoipa::path(get, path = "/auth/sessions", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = SessionsBody), (status = 401, body = ErrorBody)))]
#[allow(dead_code)]
fn auth_sessions() {}

#[utoipa::path(delete, path = "/auth/sessions", tag = "auth", security(("bearer" = [])),
    responses((status = 204, description = "Every other session revoked"),
        (status = 401, body = ErrorBody)))]
#[allow(dead_code)]
fn auth_sessions_delete_others() {}

#[utoipa::path(delete, path = "/auth/sessions/{id}", tag = "auth", security(("bearer" = [])),
    params(("id" = String, Path, description = "Session id")),
    responses((status = 204, description = "Revoked"), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
#[allow(dead_code)]
fn auth_session_delete() {}

#[utoipa::path(post, path = "/auth/password", tag = "auth", request_body = PasswordBody,
    security(("bearer" = [])),
    responses((status = 200, body = LoginResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
#[allow(dead_code)]
fn auth_password() {}

#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "discovery",
    responses((status = 200, description = "RFC 7517 JWK Set", body = Object)))]
#[allow(dead_code)]
fn jwks() {}

#[utoipa::path(get, path = "/.well-known/oauth-authorization-server", tag = "discovery",
    responses((status = 200, description = "RFC 8414 metadata", body = Object)))]
#[allow(dead_code)]
fn as_metadata() {}

#[utoipa::path(get, path = "/.well-known/openid-configuration", tag = "discovery",
    responses((status = 200, description = "RFC 8414 metadata (OpenID discovery path)", body = Object)))]
#[allow(dead_code)]
fn oidc_metadata() {}
