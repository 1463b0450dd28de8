//! The HTTP layer: one module per resource, each with its own `router()`, merged here with
//! the cross-cutting layers (body limit, and [`edge`]: request span, time limit, metrics,
//! `nosniff`).
//!
//! Only this layer knows status codes; handlers extract (auth first), authorize, validate,
//! call a domain function and map the result.

pub mod admin;
pub mod auth;
pub mod edge;
pub mod error;
pub mod extract;
pub mod oauth;
pub mod openapi;
pub mod ops;
pub mod revocations;
pub mod setup;
pub mod web;
pub mod wellknown;

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Router;
use tower::Layer as _;

pub use error::{ApiError, ApiResult};
pub use extract::{require_role, ApiForm, ApiJson, ApiPath, ApiQuery, AuthUser, ClientInfo};

use crate::state::AppState;

/// The complete application: every resource router plus the shared layers.
///
/// The body limit wraps the router once, from outside: `Router::layer` would wrap every route
/// in it separately, a boxed, cloned service and a boxed future per request for a layer that
/// only tags the request (see bench/README.md, "System"). The edge layer stays a route layer:
/// it labels metrics with the matched route, which only exists inside the router.
pub fn router(state: AppState) -> impl App {
    let body_limit = state.config.body_limit;
    let timeout = Duration::from_secs(state.config.request_timeout);
    let routes = Router::new()
        .merge(auth::router())
        .merge(setup::router())
        .merge(wellknown::router())
        .merge(oauth::router())
        // The app's admin pages share paths with the admin API: navigations get the page.
        .merge(admin::router().layer(web::AdminPagesLayer))
        .merge(ops::router())
        .merge(revocations::router())
        .merge(openapi::router())
        .merge(web::router())
        .fallback(|| async { ApiError::not_found() })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "invalid_request",
                "Method not allowed",
            )
        })
        // Outermost: the request span (method and path only), the request time limit (408),
        // metrics by matched route and status (timeouts included), 5xx logged,
        // `X-Content-Type-Options: nosniff`.
        .layer(edge::EdgeLayer::new(state.metrics.clone(), timeout))
        .with_state(state);
    // Json/Form extractors reject larger bodies with 413 (mapped by ApiError).
    DefaultBodyLimit::max(body_limit).layer(routes)
}

/// What [`router`] returns: the router inside the body limit, a cloneable service (axum does
/// not name the limit's service type).
pub trait App:
    tower::Service<Request, Response = Response, Error = Infallible, Future: Send + 'static>
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<T> App for T where
    T: tower::Service<Request, Response = Response, Error = Infallible, Future: Send + 'static>
        + Clone
        + Send
        + Sync
        + 'static
{
}
