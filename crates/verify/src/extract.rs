//! axum integration: the [`Authenticated`] extractor and the [`RequireAuthLayer`] tower layer.

use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::request::Parts;
use http::Request;

use crate::rejection::{bearer_bytes, bearer_token, checked_token};
use crate::verifier::Cached;
use crate::{AccessClaims, AuthRejection, Verifier};

/// The verified claims of the request's bearer token; an axum extractor.
///
/// It finds its [`Verifier`] in the request extensions, put there by
/// [`Verifier::layer`] (which also verifies, so the extractor just reads the result) or by
/// [`Verifier::extension_layer`] / `axum::Extension(verifier)`. Without a verifier it rejects with
/// a `500`, a wiring mistake the first request shows. Rejections are [`AuthRejection`]s.
///
/// Dereferences to [`AccessClaims`]: `claims.sub`, `claims.require_role("admin")?`.
/// `Option<Authenticated>` extracts `None` when no token was sent (an invalid token still
/// rejects).
#[derive(Debug, Clone)]
pub struct Authenticated(pub Arc<AccessClaims>);

impl Deref for Authenticated {
    type Target = AccessClaims;
    fn deref(&self) -> &AccessClaims {
        &self.0
    }
}

async fn authenticate(parts: &mut Parts) -> Result<Option<Authenticated>, AuthRejection> {
    if let Some(a) = parts.extensions.get::<Authenticated>() {
        return Ok(Some(a.clone()));
    }
    let Some(verifier) = parts.extensions.get::<Verifier>().cloned() else {
        tracing::error!(
            "Authenticated extractor used without a Verifier in the request extensions"
        );
        return Err(AuthRejection::misconfigured());
    };
    let Some(token) = bearer_token(&parts.headers)? else {
        return Ok(None);
    };
    let claims = verifier.verify(token).await?;
    let a = Authenticated(claims);
    parts.extensions.insert(a.clone());
    Ok(Some(a))
}

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        authenticate(parts)
            .await?
            .ok_or_else(AuthRejection::missing_token)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Authenticated {
    type Rejection = AuthRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        authenticate(parts).await
    }
}

/// A tower layer that rejects requests without a valid bearer token (and, optionally, without a
/// role), and hands the verified claims to handlers as an [`Authenticated`] extension.
///
/// Built by [`Verifier::layer`]. Two ways to put it in front of handlers:
///
/// * **Around the whole application** (deny by default), with the paths that need no token
///   named by [`RequireAuthLayer::public_path`]:
///   `verifier.layer().public_path("/healthz").layer(router)`. Every route is protected,
///   those added later included, and a caller without a valid token learns nothing about
///   which paths exist (`401` everywhere but the public paths; an unknown path answers `404`
///   only to an authenticated caller). It is also the cheaper one: one check in front of the
///   router rather than a layer wrapped around each route.
/// * **Per route**, with `Router::route_layer`: the routes declared *before* it are protected,
///   unknown paths answer `404`, and public routes go next to them unwrapped.
#[derive(Debug, Clone)]
pub struct RequireAuthLayer {
    verifier: Verifier,
    role: Option<Box<str>>,
    public: Vec<Box<str>>,
}

impl RequireAuthLayer {
    pub(crate) fn new(verifier: Verifier) -> Self {
        Self {
            verifier,
            role: None,
            public: Vec::new(),
        }
    }

    /// Also require the role `role`; callers without it get `403 insufficient_scope`.
    pub fn require_role(mut self, role: &str) -> Self {
        self.role = Some(Box::from(role));
        self
    }

    /// Lets requests for exactly `path` (the URI's path, no query; `/healthz`) through without a
    /// token, for a layer wrapped around a whole application. Their handlers can still take
    /// `Option<Authenticated>`, which then verifies a token when one was sent. Matching is
    /// exact and case-sensitive: `/healthz/` or `/HEALTHZ` is not public.
    pub fn public_path(mut self, path: &str) -> Self {
        self.public.push(Box::from(path));
        self
    }
}

impl<S> tower::Layer<S> for RequireAuthLayer {
    type Service = RequireAuth<S>;
    fn layer(&self, inner: S) -> RequireAuth<S> {
        RequireAuth {
            inner,
            config: Arc::new(AuthConfig {
                verifier: self.verifier.clone(),
                role: self.role.clone(),
                public: self.public.clone().into_boxed_slice(),
            }),
        }
    }
}

/// The service of [`RequireAuthLayer`].
#[derive(Debug, Clone)]
pub struct RequireAuth<S> {
    inner: S,
    /// One reference count per clone (servers clone the service for every request).
    config: Arc<AuthConfig>,
}

#[derive(Debug)]
struct AuthConfig {
    verifier: Verifier,
    role: Option<Box<str>>,
    public: Box<[Box<str>]>,
}

impl<S, B> tower::Service<Request<B>> for RequireAuth<S>
where
    S: tower::Service<Request<B>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = RequireAuthFuture<S::Future, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let config = &self.config;
        if config.public.iter().any(|p| **p == *req.uri().path()) {
            // For `Option<Authenticated>` in the public handler.
            req.extensions_mut().insert(config.verifier.clone());
            return RequireAuthFuture::inner(self.inner.call(req));
        }
        let token = match bearer_bytes(req.headers()) {
            Ok(Some(token)) => token,
            Ok(None) => return reject(AuthRejection::missing_token()),
            Err(rejection) => return reject(rejection),
        };
        // A repeat token is settled here, synchronously: no copy of the token, no clone of the
        // verifier or of the inner service (the one polled ready is called directly), and no
        // scan of its characters (a cache hit is byte-for-byte a token that passed them all).
        let (key, now) = match config.verifier.verify_cached(token) {
            Cached::Hit(claims) => {
                if let Some(role) = &config.role {
                    if let Err(rejection) = claims.require_role(role) {
                        return reject(rejection);
                    }
                }
                req.extensions_mut().insert(Authenticated(claims));
                return RequireAuthFuture::inner(self.inner.call(req));
            }
            // A malformed token is reported as such, whatever else is wrong.
            Cached::Rejected(e) => return reject(checked_token(token).err().unwrap_or(e.into())),
            Cached::Miss { key, now } => (key, now),
        };
        // A cache miss verifies the signature, which may fetch keys: owned, so the future does
        // not borrow the request (bodies are not `Sync`).
        let token = match checked_token(token) {
            Ok(token) => token.to_owned(),
            Err(rejection) => return reject(rejection),
        };
        // The clone that was polled ready is the one that must be called (tower's contract).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let config = Arc::clone(config);
        RequireAuthFuture::boxed(async move {
            let checked = async {
                let claims = config.verifier.verify_uncached(&token, key, now).await?;
                if let Some(role) = &config.role {
                    claims.require_role(role)?;
                }
                Ok::<_, AuthRejection>(claims)
            }
            .await;
            match checked {
                Ok(claims) => {
                    req.extensions_mut().insert(Authenticated(claims));
                    inner.call(req).await
                }
                Err(rejection) => Ok(rejection.into_response()),
            }
        })
    }
}

/// The future of a request turned away before the inner service.
fn reject<F, E>(rejection: AuthRejection) -> RequireAuthFuture<F, E> {
    RequireAuthFuture {
        state: State::Rejected {
            response: Some(rejection.into_response()),
        },
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`RequireAuth`]: the inner service's own future for a cached
    /// token (no allocation on that path), a boxed one when the signature must be verified.
    pub struct RequireAuthFuture<F, E> {
        #[pin]
        state: State<F, E>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<F, E> {
        Inner { #[pin] future: F },
        Boxed { future: Pin<Box<dyn Future<Output = Result<Response, E>> + Send>> },
        Rejected { response: Option<Response> },
    }
}

impl<F, E> RequireAuthFuture<F, E> {
    fn inner(future: F) -> Self {
        Self {
            state: State::Inner { future },
        }
    }

    fn boxed(future: impl Future<Output = Result<Response, E>> + Send + 'static) -> Self {
        Self {
            state: State::Boxed {
                future: Box::pin(future),
            },
        }
    }
}

impl<F, E> Future for RequireAuthFuture<F, E>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Inner { future } => future.poll(cx),
            StateProj::Boxed { future } => future.as_mut().poll(cx),
            StateProj::Rejected { response } => match response.take() {
                Some(r) => Poll::Ready(Ok(r)),
                // Polled again after completion: a contract breach of the caller; answer
                // the same way rather than panic.
                None => Poll::Ready(Ok(AuthRejection::misconfigured().into_response())),
            },
        }
    }
}

impl<F, E> std::fmt::Debug for RequireAuthFuture<F, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequireAuthFuture").finish_non_exhaustive()
    }
}

/// A tower layer that only makes a [`Verifier`] available to the [`Authenticated`] extractor
/// (requests are not rejected here). Built by [`Verifier::extension_layer`].
#[derive(Debug, Clone)]
pub struct VerifierExtensionLayer {
    verifier: Verifier,
}

impl VerifierExtensionLayer {
    pub(crate) fn new(verifier: Verifier) -> Self {
        Self { verifier }
    }
}

impl<S> tower::Layer<S> for VerifierExtensionLayer {
    type Service = VerifierExtension<S>;
    fn layer(&self, inner: S) -> VerifierExtension<S> {
        VerifierExtension {
            inner,
            verifier: self.verifier.clone(),
        }
    }
}

/// The service of [`VerifierExtensionLayer`].
#[derive(Debug, Clone)]
pub struct VerifierExtension<S> {
    inner: S,
    verifier: Verifier,
}

impl<S, B> tower::Service<Request<B>> for VerifierExtension<S>
where
    S: tower::Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> S::Future {
        req.extensions_mut().insert(self.verifier.clone());
        self.inner.call(req)
    }
}
