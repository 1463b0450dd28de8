//! [`EdgeLayer`]: the per-request work every route shares, in one hand-written tower layer
//! (no boxed future, no allocation of its own per request):
//!
//! * a `request` span at level `debug` with the method and the path (never headers such as
//!   `Authorization` or `Cookie`, never the query string), entered while the request is
//!   served, so every event a handler logs carries them once the span is enabled
//!   (`TESSERA_LOG=info,tessera_server::http::edge=debug`). At the default `info` it is
//!   disabled and costs nothing: creating it formats both fields into a `String` for the fmt
//!   subscriber, about 15 % of the server's own instructions for a JWKS request (as
//!   tower-http's `TraceLayer`, whose default request span is `debug` too);
//! * the request counted by method, matched route and status and its latency recorded
//!   (`metrics.rs`; the route is the pattern such as `/admin/users/{id}`, never the raw
//!   path, [`UNMATCHED`] for the fallback);
//! * the request time limit: a response not ready within `request_timeout` (a handler stuck
//!   on the store, a client trickling its body) is answered `408` and the handler dropped;
//!   the timer is only armed once the handler first returns `Pending`, so a request that
//!   completes in one poll (JWKS, metadata, `/healthz`, cache hits) never touches the timer
//!   wheel;
//! * a 5xx answer logged at `error` (`response failed`, with the method, the matched route,
//!   the status and the latency: it names the request without the span);
//! * `X-Content-Type-Options: nosniff` on every response that does not set it.
//!
//! It replaces tower-http's `TraceLayer`, `TimeoutLayer` and `SetResponseHeaderLayer` and a
//! `from_fn` middleware.
//!
//! # Outside the router
//!
//! The layer wraps the whole application once, from outside (`http::router`), not each route
//! (`Router::layer`): a route layer costs a boxed, cloned service and a boxed future per
//! request, and this one a clone of its shared state besides (see bench/README.md,
//! "System"). Outside the router axum's `MatchedPath` does not exist yet, so the layer
//! matches the route itself: [`RouteTable`] holds every pattern the router was built with
//! (recorded by `http::Routes` as each route is added, so the list cannot miss one) in a
//! `matchit` router, the crate and version axum matches with, so both pick the same pattern
//! for every path (`http::tests::outer_route_labels_are_what_axum_matches`). A path no
//! pattern matches is [`UNMATCHED`] (axum's fallback); a path that matches with a method the
//! route lacks (405) keeps its pattern, as `MatchedPath` does. The metric handles of each
//! (route, method) are resolved once into a slot of a table, so a request takes no lock and
//! hashes nothing to find them.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::http::StatusCode;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use tokio::time::Sleep;
use tower::{Layer, Service};
use tracing::Span;

use super::error::ApiError;
use crate::metrics::{method_index, HttpRoute, Metrics, METHOD_COUNT};

/// The route label of a request no route matches (answered by the router's fallback).
pub const UNMATCHED: &str = "unmatched";

/// The router's route patterns, matched as axum matches them, with the metric handles of
/// each (route, method) resolved on first use.
pub struct RouteTable {
    matcher: matchit::Router<usize>,
    /// Labels by route number; the last one is [`UNMATCHED`].
    labels: Box<[&'static str]>,
    /// Slot `route * METHOD_COUNT + method`.
    handles: Box<[OnceLock<Arc<HttpRoute>>]>,
}

impl RouteTable {
    /// A table of `patterns` (axum syntax: `/admin/users/{id}`, `/assets/{*path}`).
    pub fn new(patterns: &[&'static str]) -> Self {
        let mut matcher = matchit::Router::new();
        let mut labels = Vec::with_capacity(patterns.len() + 1);
        for &pattern in patterns {
            if labels.contains(&pattern) {
                continue;
            }
            match matcher.insert(pattern, labels.len()) {
                Ok(()) => labels.push(pattern),
                // Not reachable for the router's own patterns: axum inserted each of them
                // into the same matcher type, and panics on a conflict.
                Err(e) => {
                    tracing::warn!(route = pattern, error = %e, "route not labelled in metrics");
                }
            }
        }
        labels.push(UNMATCHED);
        let handles = (0..labels.len() * METHOD_COUNT)
            .map(|_| OnceLock::new())
            .collect();
        Self {
            matcher,
            labels: labels.into_boxed_slice(),
            handles,
        }
    }

    /// The number of the route `path` matches (the last number when none does).
    fn route(&self, path: &str) -> usize {
        self.matcher
            .at(path)
            .map_or(self.labels.len() - 1, |m| *m.value)
    }

    /// The route label of a request to `path`: its pattern, or [`UNMATCHED`].
    pub fn label(&self, path: &str) -> &'static str {
        self.labels
            .get(self.route(path))
            .copied()
            .unwrap_or(UNMATCHED)
    }

    /// The metric handles of `method` ([`method_index`]) on route number `route`.
    fn handles(&self, metrics: &Metrics, route: usize, method: usize) -> Arc<HttpRoute> {
        let label = self.labels.get(route).copied().unwrap_or(UNMATCHED);
        let method = method.min(METHOD_COUNT - 1);
        match self.handles.get(route * METHOD_COUNT + method) {
            Some(slot) => slot
                .get_or_init(|| metrics.http_route(method, label))
                .clone(),
            None => metrics.http_route(method, label),
        }
    }
}

impl std::fmt::Debug for RouteTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteTable")
            .field("labels", &self.labels)
            .finish_non_exhaustive()
    }
}

/// What every clone of the service shares (hyper-util clones the service per request: one
/// `Arc` to count, whatever is in here).
#[derive(Debug)]
struct Shared {
    metrics: Metrics,
    timeout: Duration,
    routes: RouteTable,
}

/// Applies [`Edge`] to the whole application, from outside the router.
#[derive(Clone, Debug)]
pub struct EdgeLayer {
    shared: Arc<Shared>,
}

impl EdgeLayer {
    /// Counts into `metrics` by the route of `patterns` each request matches (every pattern
    /// of the router inside, see [`RouteTable`]); answers `408` after `timeout`.
    pub fn new(metrics: Metrics, timeout: Duration, patterns: &[&'static str]) -> Self {
        Self {
            shared: Arc::new(Shared {
                metrics,
                timeout,
                routes: RouteTable::new(patterns),
            }),
        }
    }
}

impl<S> Layer<S> for EdgeLayer {
    type Service = Edge<S>;

    fn layer(&self, inner: S) -> Edge<S> {
        Edge {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service of [`EdgeLayer`].
#[derive(Clone, Debug)]
pub struct Edge<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> Service<Request> for Edge<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = EdgeFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let start = Instant::now();
        let shared = &*self.shared;
        let route = shared.routes.route(req.uri().path());
        let handles = shared
            .routes
            .handles(&shared.metrics, route, method_index(req.method()));
        let span = tracing::debug_span!(
            "request",
            method = %req.method(),
            path = %req.uri().path(),
        );
        let inner = {
            let _entered = span.enter();
            self.inner.call(req)
        };
        EdgeFuture {
            inner,
            span,
            start,
            timeout: shared.timeout,
            timer: None,
            handles,
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`Edge`].
    pub struct EdgeFuture<F> {
        #[pin]
        inner: F,
        span: Span,
        start: Instant,
        timeout: Duration,
        // Armed at the first `Pending` (boxed: most requests never need it).
        timer: Option<Pin<Box<Sleep>>>,
        handles: Arc<HttpRoute>,
    }
}

impl<F> Future for EdgeFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _entered = this.span.enter();
        let mut resp = match this.inner.poll(cx) {
            Poll::Ready(Ok(resp)) => resp,
            Poll::Pending => {
                let start = *this.start;
                let timeout = *this.timeout;
                let timer = this.timer.get_or_insert_with(|| {
                    Box::pin(tokio::time::sleep_until((start + timeout).into()))
                });
                ready!(timer.as_mut().poll(cx));
                // The handler (and whatever it awaited) is dropped with this future.
                ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "request_timeout",
                    "The request took too long",
                )
                .into_response()
            }
        };
        let elapsed = this.start.elapsed();
        let status = resp.status();
        if status.is_server_error() {
            tracing::error!(
                method = this.handles.method(),
                route = this.handles.route(),
                status = status.as_u16(),
                latency_ms = elapsed.as_secs_f64() * 1000.0,
                "response failed"
            );
        }
        this.handles.record(status.as_u16(), elapsed.as_secs_f64());
        resp.headers_mut()
            .entry(header::X_CONTENT_TYPE_OPTIONS)
            .or_insert(HeaderValue::from_static("nosniff"));
        Poll::Ready(Ok(resp))
    }
}
