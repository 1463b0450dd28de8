//! Shared by the `http_request` fuzz target and its stable-Rust corpus replay
//! (`crates/server/tests/fuzz_replay.rs`): turns arbitrary bytes into an HTTP request for
//! the server's router, and states the property every answer must have.
//!
//! Input layout (so that a corpus file is readable text):
//! `<method>\n<path and query>\n<header-name>: <value>\n...\n\n<body bytes>`.
//! A method or path that is not a valid HTTP token/URI yields no request (hyper would
//! have refused it before the router); invalid header lines are skipped.
//!
//! Without credentials the fuzzer would only ever see the 401 of every protected route: the
//! bearer extractor runs before the JSON body, path and query decoders of those handlers. So
//! an input may name live credentials by placeholder, anywhere in its bytes, and each is
//! replaced by a credential minted for that one input (a fresh session of the harness's
//! admin, a fresh OAuth client), so an input that logs out, revokes its session or deletes
//! its client cannot starve the inputs after it:
//!
//! | placeholder | replaced by |
//! |---|---|
//! | `$ADMIN_TOKEN` | an access token of a new session of the admin |
//! | `$REFRESH` | that session's refresh token (cookie value or `refresh_token` form field) |
//! | `$SID` | that session's id |
//! | `$ADMIN_ID` | the admin's user id |
//! | `$CLIENT_BASIC` | `base64(client_id:secret)` of a new client with scope `revocations:read` |
//! | `$CLIENT_ID`, `$CLIENT_SECRET` | that client's id and secret |

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Method, Request, Uri};
use base64::Engine as _;
use tessera_server::domain::{accounts, clients, sessions};
use tessera_server::AppState;
use tessera_store::User;

/// The admin every credential placeholder belongs to (created once per harness).
pub async fn create_admin(state: &AppState) -> User {
    accounts::create_user(
        state,
        "fuzz-admin@example.com",
        "correct horse battery staple",
        &["admin".to_string()],
    )
    .await
    .expect("harness admin")
}

/// Replaces the credential placeholders of `data` with credentials minted for it (nothing is
/// minted for an input without placeholders).
pub async fn with_credentials(state: &AppState, admin: &User, data: &[u8]) -> Vec<u8> {
    if !contains(data, b"$") {
        return data.to_vec();
    }
    let mut out = data.to_vec();
    if contains(data, b"$ADMIN_TOKEN") || contains(data, b"$REFRESH") || contains(data, b"$SID") {
        // As stored now: an input may have moved the admin's token cutoff.
        let admin = state
            .store
            .user_by_id(&admin.id)
            .await
            .ok()
            .flatten()
            .expect("harness admin exists");
        let origin = sessions::SessionOrigin::default();
        let issued = sessions::start(state, &admin, accounts::FIRST_PARTY_CLIENT, &origin)
            .await
            .expect("harness session");
        out = replace(&out, b"$ADMIN_TOKEN", issued.access_token.as_bytes());
        out = replace(&out, b"$REFRESH", issued.refresh_token.as_bytes());
        out = replace(&out, b"$SID", issued.session.id.as_bytes());
    }
    if contains(data, b"$CLIENT_") {
        let c = clients::create(state, "fuzz", &[], Some("revocations:read"))
            .await
            .expect("harness client");
        let basic = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            c.client.client_id,
            c.secret.as_str()
        ));
        out = replace(&out, b"$CLIENT_BASIC", basic.as_bytes());
        out = replace(&out, b"$CLIENT_ID", c.client.client_id.as_bytes());
        out = replace(&out, b"$CLIENT_SECRET", c.secret.as_bytes());
    }
    replace(&out, b"$ADMIN_ID", admin.id.as_bytes())
}

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

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    find(hay, needle).is_some()
}

fn replace(hay: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hay.len());
    let mut rest = hay;
    while let Some(i) = find(rest, needle) {
        out.extend_from_slice(&rest[..i]);
        out.extend_from_slice(with);
        rest = &rest[i + needle.len()..];
    }
    out.extend_from_slice(rest);
    out
}
