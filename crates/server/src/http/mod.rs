//! The HTTP layer: one module per resource, each with its own `router()`, merged here with
//! the cross-cutting layers (body limit, timeout, request tracing).
//!
//! Only this layer knows status codes; handlers extract (auth first), authorize, validate,
//! call a domain function and map the result.

pub mod admin;
pub mod auth;
pub mod error;
pub mod extract;
pub mod oauth;
pub mod openapi;
pub mod ops;
pub mod revocations;
pub mod setup;
pub mod web;
pub mod wellknown;

use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue, Request, StatusCode};
use axum::Router;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use error::{ApiError, ApiResult};
pub use extract::{require_role, ApiForm, ApiJson, ApiPath, ApiQuery, AuthUser, ClientInfo};

use crate::state::AppState;

/// The complete application: every resource router plus the shared layers.
pub fn router(state: AppState) -> Router {
    let body_limit = state.config.body_limit;
    let timeout = Duration::from_secs(state.config.request_timeout);
    Router::new()
        .merge(auth::router())
        .merge(setup::router())
        .merge(wellknown::router())
        .merge(oauth::router())
        .merge(admin::router())
        .merge(ops::router())
        .merge(revocations::router())
        .merge(openapi::router())
        .merge(web::router())
        // The app's admin pages share paths with the admin API: navigations get the page.
        .layer(axum::middleware::from_fn(web::admin_pages))
        .fallback(|| async { ApiError::not_found() })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "invalid_request",
                "Method not allowed",
            )
        })
        // Innermost, so the matched route is known: requests by route and status (ops.rs).
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            ops::track,
        ))
        // Json/Form extractors reject larger bodies with 413 (mapped by ApiError).
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        // The span records method and path only: never headers (Authorization, Cookie) and
        // never the query string.
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                tracing::info_span!(
                    "request",
                    method = %req.method(),
                    path = %req.uri().path(),
                )
            }),
        )
        .with_state(state)
}
