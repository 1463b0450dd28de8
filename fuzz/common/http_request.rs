//! Shared by the `http_request` fuzz target and its stable-Rust corpus replay
//! (`crates/server/tests/fuzz_replay.rs`): turns arbitrary bytes into an HTTP request for
//! the server's router, and states the property every answer must have.
//!
//! Input layout (so that a corpus file is readable text):
//! `<method>\n<path and query>\n<header-name>: <value>\n...\n\n<body bytes>`.
//! A method or path that is not a valid HTTP token/URI yields no request (hyper would
//! have refused it before the router); invalid header lines are skipped.

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Method, Request, Uri};

/// Decodes one fuzz input into a request, or `None` when hyper could never deliver it.
pub fn request_from_bytes(data: &[u8]) -> Option<Request<Body>> {
    let (head, body) = match find(data, b"\n\n") {
        Some(i) => (&data[..i], &data[i + 2..]),
        None => (data, &b""[..]),
    };
    let mut lines = head.split(|b| *b == b'\n');
    let method = Method::from_bytes(lines.next()?).ok()?;
    let uri: Uri = std::str::from_utf8(lines.next()?).ok()?.parse().ok()?;
    uri.path().starts_with('/').then_some(())?;
    let mut req = Request::builder().method(method).uri(uri);
    for line in lines {
        let Some(i) = find(line, b":") else { continue };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..i]),
            HeaderValue::from_bytes(line[i + 1..].trim_ascii()),
        ) else {
            continue;
        };
        req = req.header(name, value);
    }
    req.body(Body::from(body.to_vec())).ok()
}

/// The property: no input makes the server fail (5xx) — bad input is a 4xx (house rules).
pub fn check_status(status: u16, input: &[u8]) {
    assert!(
        status < 500,
        "server error {status} for input {:?}",
        String::from_utf8_lossy(input)
    );
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
