//! The HTTP layer: one module per resource, each with its own `router()` (built as
//! [`Routes`], which records every route pattern), merged here inside the cross-cutting
//! layers (body limit, and [`edge`]: request span, time limit, metrics, `nosniff`).
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
use axum::handler::Handler;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, Route};
use axum::Router;
use tower::Layer;

pub use error::{ApiError, ApiResult};
pub use extract::{require_role, ApiForm, ApiJson, ApiPath, ApiQuery, AuthUser, ClientInfo};

use crate::state::AppState;

/// The complete application: every resource router, inside the shared layers.
///
/// Both layers wrap the router once, from outside: `Router::layer` would wrap every route in
/// it separately, a boxed, cloned service and a boxed future per request per layer (see
/// bench/README.md, "System"). The edge layer labels metrics by matched route, which it
/// matches itself from the patterns [`Routes`] recorded (`edge.rs`, "Outside the router").
pub fn router(state: AppState) -> impl App {
    let body_limit = state.config.body_limit;
    let timeout = Duration::from_secs(state.config.request_timeout);
    let (routes, patterns) = routes().into_parts();
    // Outermost: the request span (method and path only), the request time limit (408),
    // metrics by matched route and status (timeouts included), 5xx logged,
    // `X-Content-Type-Options: nosniff`.
    let edge = edge::EdgeLayer::new(state.metrics.clone(), timeout, &patterns);
    // Json/Form extractors reject larger bodies with 413 (mapped by ApiError).
    edge.layer(DefaultBodyLimit::max(body_limit).layer(routes.with_state(state)))
}

/// Every route of the application and its fallbacks (404, 405), without the shared layers.
pub fn routes() -> Routes {
    Routes::new()
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
}

/// Routes as they are built: an axum [`Router`] and the pattern of every route in it,
/// recorded as each is added. Every resource's `router()` returns one, so the pattern list
/// the edge layer matches (`edge::RouteTable`) is complete by construction; there is no
/// second list to keep up to date.
pub struct Routes<S = AppState> {
    router: Router<S>,
    patterns: Vec<&'static str>,
}

impl<S> Routes<S>
where
    S: Clone + Send + Sync + 'static,
{
    /// No routes.
    pub fn new() -> Self {
        Self {
            router: Router::new(),
            patterns: Vec::new(),
        }
    }

    /// [`Router::route`], recording `path`.
    pub fn route(mut self, path: &'static str, method_router: MethodRouter<S>) -> Self {
        self.router = self.router.route(path, method_router);
        self.record(path);
        self
    }

    /// [`Router::merge`], recording the other's patterns.
    pub fn merge(mut self, other: Routes<S>) -> Self {
        self.router = self.router.merge(other.router);
        for path in other.patterns {
            self.record(path);
        }
        self
    }

    /// [`Router::layer`]: `layer` around each route added so far (and the fallback).
    pub fn layer<L>(self, layer: L) -> Self
    where
        L: Layer<Route> + Clone + Send + Sync + 'static,
        L::Service: tower::Service<Request> + Clone + Send + Sync + 'static,
        <L::Service as tower::Service<Request>>::Response: IntoResponse + 'static,
        <L::Service as tower::Service<Request>>::Error: Into<Infallible> + 'static,
        <L::Service as tower::Service<Request>>::Future: Send + 'static,
    {
        Self {
            router: self.router.layer(layer),
            patterns: self.patterns,
        }
    }

    /// [`Router::fallback`]: the answer when no route matches.
    pub fn fallback<H, T>(self, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        Self {
            router: self.router.fallback(handler),
            patterns: self.patterns,
        }
    }

    /// [`Router::method_not_allowed_fallback`]: the answer when a route matches but not
    /// its method.
    pub fn method_not_allowed_fallback<H, T>(self, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        Self {
            router: self.router.method_not_allowed_fallback(handler),
            patterns: self.patterns,
        }
    }

    /// The router and its route patterns, each once, in the order they were added.
    pub fn into_parts(self) -> (Router<S>, Vec<&'static str>) {
        (self.router, self.patterns)
    }

    fn record(&mut self, path: &'static str) {
        if !self.patterns.contains(&path) {
            self.patterns.push(path);
        }
    }
}

impl<S> Default for Routes<S>
where
    S: Clone + Send + Sync + 'static,
{
    fn default() -> Self {
        Self::new()
    }
}

impl<S> From<Routes<S>> for Router<S> {
    fn from(routes: Routes<S>) -> Self {
        routes.router
    }
}

impl<S> std::fmt::Debug for Routes<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Routes")
            .field("patterns", &self.patterns)
            .finish_non_exhaustive()
    }
}

/// What [`router`] returns: the router inside the body limit and the edge layer, a cloneable
/// service (axum does
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

#[cfg(test)]
mod tests;
