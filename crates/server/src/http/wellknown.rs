//! `/.well-known/*`: the JWK Set (RFC 7517) and authorization-server metadata (RFC 8414),
//! also served at the OpenID Connect discovery path for clients that only look there.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Json;
use serde_json::json;

use super::Routes;
use crate::state::AppState;

/// Routes of this module.
pub fn router() -> Routes {
    Routes::new()
        .route("/.well-known/jwks.json", get(jwks))
        .route("/.well-known/oauth-authorization-server", get(metadata))
        .route("/.well-known/openid-configuration", get(metadata))
}

/// The published keys, pending ones included; `{"keys": []}` in HS256 shared-secret mode.
/// The body is serialized once per key change (`KeyManager::jwks_json`), not per request:
/// this is the endpoint every resource server and verifier polls.
async fn jwks(State(state): State<AppState>) -> Response {
    let mut resp = Response::new(Body::from(state.keys.jwks_json()));
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, state.keys.jwks_cache_control());
    resp
}

/// RFC 8414 §2 metadata.
async fn metadata(State(state): State<AppState>) -> Response {
    let iss = state.config.issuer();
    let mut grants = vec!["refresh_token", "client_credentials"];
    if state.config.password_grant {
        grants.push("password");
    }
    let mut doc = json!({
        "issuer": iss,
        "token_endpoint": format!("{iss}/oauth/token"),
        "revocation_endpoint": format!("{iss}/oauth/revoke"),
        "introspection_endpoint": format!("{iss}/oauth/introspect"),
        "grant_types_supported": grants,
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "revocation_feed_endpoint": format!("{iss}/revocations"),
    });
    if !state.keys.is_shared_secret() {
        doc["jwks_uri"] = json!(format!("{iss}/.well-known/jwks.json"));
    }
    let mut resp = Json(doc).into_response();
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    resp
}
