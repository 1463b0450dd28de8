//! The edge layer's route labels (matched outside the router) against the route axum
//! matches inside it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use tower::ServiceExt as _;

use super::edge::{RouteTable, UNMATCHED};
use super::routes;

/// The route axum matched for a request, carried out on its response.
#[derive(Clone, Debug)]
struct Matched(String);

/// A path `pattern` matches: `{name}` → `p1`, `{*name}` → `a/b.js`.
fn example(pattern: &str) -> String {
    let mut out = String::new();
    let mut rest = pattern;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').unwrap() + open;
        out.push_str(if rest[open + 1..].starts_with('*') {
            "a/b.js"
        } else {
            "p1"
        });
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

/// Sends `method path` through `app`; asserts that the edge's label for it is the route
/// axum matched, and returns the status and that route.
async fn probe(
    app: &axum::Router,
    table: &RouteTable,
    method: Method,
    path: &str,
) -> (StatusCode, String) {
    let req = Request::builder()
        .method(method.clone())
        .uri(path)
        .body(Body::empty())
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let matched = res.extensions().get::<Matched>().unwrap().0.clone();
    assert_eq!(table.label(path), matched, "{method} {path}");
    (res.status(), matched)
}

#[tokio::test]
async fn outer_route_labels_are_what_axum_matches() {
    let dir = tempfile::tempdir().unwrap();
    let config = crate::Config {
        data_dir: dir.path().join("data"),
        issuer: Some("http://tessera.test".into()),
        ..Default::default()
    };
    let state = crate::build_state(config, crate::Clock::system())
        .await
        .unwrap();
    let (routes, patterns) = routes().into_parts();
    let table = RouteTable::new(&patterns);
    // Axum's view: `MatchedPath` where the routes (and the fallback: `Router::layer` wraps
    // it too) see the request.
    let app = routes
        .layer(axum::middleware::from_fn(
            |req: Request, next: Next| async move {
                let matched = req
                    .extensions()
                    .get::<MatchedPath>()
                    .map_or(UNMATCHED, MatchedPath::as_str)
                    .to_owned();
                let mut res = next.run(req).await;
                res.extensions_mut().insert(Matched(matched));
                res
            },
        ))
        .with_state(state);
    // Every route, with a method it has and with one none has (405, same pattern).
    assert!(patterns.len() > 30, "{patterns:?}");
    for pattern in &patterns {
        let path = example(pattern);
        let (_, matched) = probe(&app, &table, Method::GET, &path).await;
        assert_eq!(matched, *pattern, "GET {path}");
        let (status, matched) = probe(&app, &table, Method::PUT, &path).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "PUT {path}");
        assert_eq!(matched, *pattern, "PUT {path}");
    }

    for (method, path, status, label) in [
        (
            Method::GET,
            "/.well-known/jwks.json",
            200,
            "/.well-known/jwks.json",
        ),
        (Method::HEAD, "/healthz", 200, "/healthz"),
        (Method::POST, "/healthz", 405, "/healthz"),
        (Method::GET, "/admin/users/42", 401, "/admin/users/{id}"),
        (Method::GET, "/assets/app.js", 200, "/assets/{*path}"),
        (
            Method::GET,
            "/assets/0123/pages/auth.js",
            404,
            "/assets/{*path}",
        ),
        (Method::GET, "/assets/", 404, UNMATCHED),
        (Method::GET, "/no/such/path", 404, UNMATCHED),
        (Method::GET, "/healthz/", 404, UNMATCHED),
        (Method::GET, "/HEALTHZ", 404, UNMATCHED),
        (Method::GET, "/%68ealthz", 404, UNMATCHED),
        (Method::GET, "/admin/users/a%2Fb", 401, "/admin/users/{id}"),
        (Method::GET, "/", 200, "/"),
    ] {
        let (got, matched) = probe(&app, &table, method.clone(), path).await;
        assert_eq!(got.as_u16(), status, "{method} {path}");
        assert_eq!(matched, label, "{method} {path}");
    }
}
