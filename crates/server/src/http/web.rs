//! The browser app (`web/src`), embedded in the binary and served at `/`.
//!
//! The app is plain ES modules and hand-written CSS with no build step, so the files in
//! `web/src` are exactly what the browser gets; `include_bytes!` puts them in the binary and
//! nothing is read from disk or fetched from elsewhere at run time.
//!
//! Caching: `index.html` is `no-store` and loads the modules from
//! `/assets/<build>/…`, where `<build>` hashes every asset at compile time. Relative module
//! imports inherit that prefix, so those responses are `immutable` for a year and a new
//! binary changes every URL at once: a tab never mixes files of two versions. The same
//! files under plain `/assets/…` (icons referenced by absolute path) get a short max-age
//! and an `ETag`.
//!
//! Every response carries a strict Content-Security-Policy (no inline script or style, no
//! framing, connections only to this origin), `X-Content-Type-Options: nosniff`,
//! `Referrer-Policy: no-referrer`, `X-Frame-Options: DENY` and
//! `Cross-Origin-Opener-Policy: same-origin`.
//!
//! The app's admin pages share their paths with the JSON API (`GET /admin/users` is both a
//! page and an endpoint), so those pages are not routes here: [`AdminPagesLayer`] is a
//! middleware that answers a browser *navigation* to such a path with `index.html` and
//! passes every other request (the app's `fetch` calls, API clients) to the API.

use axum::extract::{Path, Request};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::Routes;

/// Content-Security-Policy of every response (W3C CSP Level 3). `'self'` only: the app has
/// no inline script or style and loads nothing from another origin.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'";

/// Paths that render the app shell. The admin pages are served by [`AdminPagesLayer`].
const PAGES: &[&str] = &[
    "/",
    "/login",
    "/register",
    "/setup",
    "/profile",
    "/sessions",
    "/password",
];

/// App pages whose paths are also JSON API endpoints.
const ADMIN_PAGES: &[&str] = &[
    "/admin/users",
    "/admin/clients",
    "/admin/keys",
    "/admin/audit",
];

/// Short max-age for assets fetched by their plain (unversioned) path.
const SHORT_CACHE: &str = "public, max-age=300";
/// Versioned assets never change under their URL.
const IMMUTABLE_CACHE: &str = "public, max-age=31536000, immutable";

/// One embedded file.
struct Asset {
    /// Path under `/assets/`.
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
    /// FNV-1a of the body, for the `ETag`.
    hash: u64,
}

/// FNV-1a 64: a compile-time content fingerprint for `ETag`s and the build prefix. Not a
/// security property: it only has to change when the files change.
const fn fnv1a(bytes: &[u8], mut hash: u64) -> u64 {
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

macro_rules! asset {
    ($path:literal, $content_type:expr) => {
        Asset {
            path: $path,
            content_type: $content_type,
            body: include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../web/src/assets/",
                $path
            )),
            hash: fnv1a(
                include_bytes!(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/../../web/src/assets/",
                    $path
                )),
                FNV_OFFSET,
            ),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml";

/// Every file under `web/src/assets`. A module left out of this list is a 404 in the
/// browser; the e2e tests load every page, so they catch it.
static ASSETS: &[Asset] = &[
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("ui.js", JS),
    asset!("state.js", JS),
    asset!("pages/auth.js", JS),
    asset!("pages/account.js", JS),
    asset!("pages/admin.js", JS),
    asset!("app.css", CSS),
    asset!("favicon.svg", SVG),
];

/// The page shell, before its asset URLs get the build prefix.
const INDEX_TEMPLATE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../web/src/index.html"
));

/// Hash of all assets: the `<build>` path segment.
fn build_hash() -> u64 {
    let mut hash = FNV_OFFSET;
    let mut i = 0;
    while i < ASSETS.len() {
        hash = fnv1a(ASSETS[i].path.as_bytes(), hash);
        hash = fnv1a(ASSETS[i].body, hash);
        i += 1;
    }
    hash
}

/// The build prefix segment, e.g. `b3f2a91c04d7e5a8`.
fn build_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| format!("{:016x}", build_hash()))
}

/// `index.html` with `/assets/` rewritten to `/assets/<build>/`.
fn index_html() -> &'static str {
    static HTML: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HTML.get_or_init(|| INDEX_TEMPLATE.replace("\"/assets/", &format!("\"/assets/{}/", build_id())))
}

/// Router for the app shell and `/assets/…`. Generic over the state so it merges into the
/// API router whatever its state type.
pub fn router<S>() -> Routes<S>
where
    S: Clone + Send + Sync + 'static,
{
    let mut router = Routes::new();
    for page in PAGES {
        router = router.route(page, get(index));
    }
    router.route("/assets/{*path}", get(asset))
}

/// Middleware serving the app shell for browser navigations to the admin pages, whose
/// paths are also API endpoints. A navigation is a `GET`/`HEAD` without `Authorization`
/// whose `Sec-Fetch-Dest` is `document` (Fetch Metadata), or, from a browser that does not
/// send Fetch Metadata, whose `Accept` prefers `text/html`. The app's own API calls send
/// `Accept: application/json` and a bearer token, so they always reach the API.
///
/// Install on the whole app: `.layer(web::AdminPagesLayer)`. A hand-written layer rather
/// than `from_fn`, so the requests that pass through (all but page navigations) cost no boxed
/// future or cloned service.
#[derive(Clone, Copy, Debug)]
pub struct AdminPagesLayer;

impl<S> tower::Layer<S> for AdminPagesLayer {
    type Service = AdminPages<S>;

    fn layer(&self, inner: S) -> AdminPages<S> {
        AdminPages(inner)
    }
}

/// The service of [`AdminPagesLayer`].
#[derive(Clone, Debug)]
pub struct AdminPages<S>(S);

impl<S> tower::Service<Request> for AdminPages<S>
where
    S: tower::Service<Request, Response = Response, Error = std::convert::Infallible>,
{
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = futures_util::future::Either<
        std::future::Ready<Result<Response, std::convert::Infallible>>,
        S::Future,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if is_page_navigation(&request) {
            return futures_util::future::Either::Left(std::future::ready(Ok(index_page())));
        }
        futures_util::future::Either::Right(self.0.call(request))
    }
}

fn is_page_navigation(request: &Request) -> bool {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return false;
    }
    let path = request.uri().path();
    let path = path.strip_suffix('/').unwrap_or(path);
    if !ADMIN_PAGES.contains(&path) {
        return false;
    }
    let headers = request.headers();
    if headers.contains_key(header::AUTHORIZATION) {
        return false;
    }
    match headers.get("sec-fetch-dest").and_then(|v| v.to_str().ok()) {
        Some(dest) => dest.eq_ignore_ascii_case("document"),
        None => headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|accept| accept.trim_start().starts_with("text/html")),
    }
}

/// Adds the security headers every response from this module carries.
fn secure(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// The app shell. `no-store`: it names the current build's asset URLs.
async fn index() -> Response {
    index_page()
}

/// The app shell.
fn index_page() -> Response {
    secure(
        (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            index_html(),
        )
            .into_response(),
    )
}

/// `/assets/<build>/<file>` (immutable) or `/assets/<file>` (short max-age).
async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    let (file, cache) = match path.split_once('/') {
        Some((build, rest)) if build == build_id() => (rest, IMMUTABLE_CACHE),
        _ => (path.as_str(), SHORT_CACHE),
    };
    let Some(found) = ASSETS.iter().find(|a| a.path == file) else {
        return not_found();
    };
    let etag = format!("\"{:016x}\"", found.hash);
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let etag_value = HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"0\""));
    let common = [
        (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        (header::ETAG, etag_value),
    ];
    if fresh {
        return secure((StatusCode::NOT_MODIFIED, common).into_response());
    }
    secure(
        (
            common,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(found.content_type),
            )],
            found.body,
        )
            .into_response(),
    )
}

fn not_found() -> Response {
    secure(
        (
            StatusCode::NOT_FOUND,
            [
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            "not found",
        )
            .into_response(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::Router;
    use tower::ServiceExt;

    async fn get_with(router: impl Into<Router>, uri: &str, headers: &[(&str, &str)]) -> Response {
        let mut req = axum::http::Request::builder().uri(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        router
            .into()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    async fn body_string(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    fn assert_secure(response: &Response) {
        let h = response.headers();
        assert_eq!(h[header::CONTENT_SECURITY_POLICY], CSP);
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(h[header::REFERRER_POLICY], "no-referrer");
        assert_eq!(h[header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(h["cross-origin-opener-policy"], "same-origin");
    }

    #[tokio::test]
    async fn pages_serve_the_shell_with_versioned_assets() {
        for page in PAGES {
            let res = get_with(router(), page, &[]).await;
            assert_eq!(res.status(), StatusCode::OK, "{page}");
            assert_secure(&res);
            assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
            assert_eq!(
                res.headers()[header::CONTENT_TYPE],
                "text/html; charset=utf-8"
            );
            let html = body_string(res).await;
            assert!(html.contains(&format!("/assets/{}/app.js", build_id())));
            assert!(!html.contains("\"/assets/app.js"));
        }
    }

    #[tokio::test]
    async fn assets_have_types_and_caching() {
        let versioned = format!("/assets/{}/pages/admin.js", build_id());
        let res = get_with(router(), &versioned, &[]).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_secure(&res);
        assert_eq!(res.headers()[header::CONTENT_TYPE], JS);
        assert_eq!(res.headers()[header::CACHE_CONTROL], IMMUTABLE_CACHE);

        let res = get_with(router(), "/assets/app.css", &[]).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()[header::CONTENT_TYPE], CSS);
        assert_eq!(res.headers()[header::CACHE_CONTROL], SHORT_CACHE);
        let etag = res.headers()[header::ETAG].to_str().unwrap().to_owned();

        let res = get_with(router(), "/assets/app.css", &[("if-none-match", &etag)]).await;
        assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
        assert_secure(&res);

        let res = get_with(router(), "/assets/favicon.svg", &[]).await;
        assert_eq!(res.headers()[header::CONTENT_TYPE], SVG);
    }

    #[tokio::test]
    async fn unknown_assets_and_old_builds_are_404() {
        for uri in [
            "/assets/nope.js",
            "/assets/0000000000000000/app.js",
            "/assets/../Cargo.toml",
            "/assets/%2e%2e/%2e%2e/Cargo.toml",
        ] {
            let res = get_with(router(), uri, &[]).await;
            assert_eq!(res.status(), StatusCode::NOT_FOUND, "{uri}");
            assert_secure(&res);
        }
    }

    #[tokio::test]
    async fn admin_pages_only_for_navigations() {
        let api = Router::new()
            .route("/admin/users", get(|| async { "api" }))
            .layer(AdminPagesLayer);
        // A browser navigation gets the app shell.
        let res = get_with(
            api.clone(),
            "/admin/users",
            &[("sec-fetch-dest", "document"), ("accept", "text/html")],
        )
        .await;
        assert_secure(&res);
        assert!(body_string(res).await.contains("<!doctype html>"));
        // Without Fetch Metadata, Accept decides.
        let res = get_with(api.clone(), "/admin/users", &[("accept", "text/html,*/*")]).await;
        assert!(body_string(res).await.contains("<!doctype html>"));
        // The app's fetch calls and API clients reach the API.
        for headers in [
            vec![("sec-fetch-dest", "empty"), ("accept", "application/json")],
            vec![("accept", "application/json")],
            vec![
                ("sec-fetch-dest", "document"),
                ("authorization", "Bearer x"),
            ],
            vec![],
        ] {
            let res = get_with(api.clone(), "/admin/users?search=a", &headers).await;
            assert_eq!(body_string(res).await, "api", "{headers:?}");
        }
    }
}
