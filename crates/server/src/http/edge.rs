//! [`EdgeLayer`]: the per-request work every route shares, in one hand-written tower layer
//! (no boxed future, no allocation of its own per request):
//!
//! * a `request` span at level `info` with the method and the path (never headers such as
//!   `Authorization` or `Cookie`, never the query string), entered while the request is
//!   served, so every event a handler logs carries them;
//! * the request counted by method, matched route and status and its latency recorded
//!   (`metrics.rs`; the route is the pattern such as `/admin/users/{id}`, never the raw
//!   path, `unmatched` for the fallback), through handles resolved without allocating;
//! * a 5xx answer logged at `error` (`response failed`, with the status and latency);
//! * `X-Content-Type-Options: nosniff` on every response that does not set it.
//!
//! It replaces tower-http's `TraceLayer`, a `SetResponseHeaderLayer` and a `from_fn`
//! middleware, which together allocated several times per request (formatted labels, boxed
//! futures, cloned boxed services): see bench/README.md, "System".

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{header, HeaderValue};
use axum::response::Response;
use tower::{Layer, Service};
use tracing::Span;

use crate::metrics::{method_index, HttpRoute, Metrics};

/// Applies [`Edge`] to a router's routes (`Router::layer`, so the matched route is known).
#[derive(Clone, Debug)]
pub struct EdgeLayer {
    metrics: Metrics,
}

impl EdgeLayer {
    /// Counts into `metrics`.
    pub fn new(metrics: Metrics) -> Self {
        Self { metrics }
    }
}

impl<S> Layer<S> for EdgeLayer {
    type Service = Edge<S>;

    fn layer(&self, inner: S) -> Edge<S> {
        Edge {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service of [`EdgeLayer`].
#[derive(Clone, Debug)]
pub struct Edge<S> {
    inner: S,
    metrics: Metrics,
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
        let span = tracing::info_span!(
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
        let Ok(mut resp) = ready!(this.inner.poll(cx));
        let elapsed = this.start.elapsed();
        let status = resp.status();
        if status.is_server_error() {
            tracing::error!(
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
