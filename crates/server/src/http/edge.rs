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
//!   path, `unmatched` for the fallback), through handles resolved without allocating;
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
//! `from_fn` middleware: `Router::layer` wraps every route in each layer separately, and
//! each costs a boxed, cloned service and a future per request (see bench/README.md,
//! "System").

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::StatusCode;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use tokio::time::Sleep;
use tower::{Layer, Service};
use tracing::Span;

use super::error::ApiError;
use crate::metrics::{method_index, HttpRoute, Metrics};

/// Applies [`Edge`] to a router's routes (`Router::layer`, so the matched route is known).
#[derive(Clone, Debug)]
pub struct EdgeLayer {
    metrics: Metrics,
    timeout: Duration,
}

impl EdgeLayer {
    /// Counts into `metrics`; answers `408` after `timeout`.
    pub fn new(metrics: Metrics, timeout: Duration) -> Self {
        Self { metrics, timeout }
    }
}

impl<S> Layer<S> for EdgeLayer {
    type Service = Edge<S>;

    fn layer(&self, inner: S) -> Edge<S> {
        Edge {
            inner,
            metrics: self.metrics.clone(),
            timeout: self.timeout,
        }
    }
}

/// The service of [`EdgeLayer`].
#[derive(Clone, Debug)]
pub struct Edge<S> {
    inner: S,
    metrics: Metrics,
    timeout: Duration,
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
        let route = req
            .extensions()
            .get::<MatchedPath>()
            .map_or("unmatched", MatchedPath::as_str);
        let handles = self.metrics.http_route(method_index(req.method()), route);
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
            timeout: self.timeout,
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
