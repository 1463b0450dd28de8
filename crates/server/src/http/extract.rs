//! Request extractors shared by every resource module: JSON and form bodies whose
//! rejections become RFC 6749 errors, the client's IP and User-Agent, and the bearer-token
//! extractor [`AuthUser`].

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;

use super::error::ApiError;
use crate::domain::tokens::{self, AccessContext};
use crate::state::AppState;

/// 413 at once for a body whose `Content-Length` is over the limit, before reading any of it.
/// The body limit (`DefaultBodyLimit`) only trips once that many bytes have arrived, so a
/// client announcing 1 GiB and sending a byte would otherwise hold the request until the
/// timeout (408). hyper has already checked the header; its length is the exact size hint.
fn refuse_announced_oversize(req: &Request, limit: usize) -> Result<(), ApiError> {
    use axum::body::HttpBody as _;
    let announced = req.body().size_hint().lower();
    if announced > u64::try_from(limit).unwrap_or(u64::MAX) {
        return Err(ApiError::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request",
            "Request body too large",
        ));
    }
    Ok(())
}

/// `axum::Json` whose rejection (wrong content type, malformed JSON, missing field, body too
/// large) is a 4xx [`ApiError`] instead of axum's plain-text answer.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T> FromRequest<AppState> for ApiJson<T>
where
    axum::Json<T>: FromRequest<AppState, Rejection = axum::extract::rejection::JsonRejection>,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        refuse_announced_oversize(&req, state.config.body_limit)?;
        axum::Json::<T>::from_request(req, state)
            .await
            .map(|axum::Json(v)| Self(v))
            .map_err(ApiError::from)
    }
}

/// `axum::Form` (for the RFC 6749 endpoints) with RFC 6749 rejections.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiForm<T>(pub T);

impl<T> FromRequest<AppState> for ApiForm<T>
where
    axum::Form<T>: FromRequest<AppState, Rejection = axum::extract::rejection::FormRejection>,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        refuse_announced_oversize(&req, state.config.body_limit)?;
        axum::Form::<T>::from_request(req, state)
            .await
            .map(|axum::Form(v)| Self(v))
            .map_err(ApiError::from)
    }
}

/// `axum::extract::Query` with RFC 6749 rejections.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    axum::extract::Query<T>:
        FromRequestParts<S, Rejection = axum::extract::rejection::QueryRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| Self(v))
            .map_err(ApiError::from)
    }
}

/// `axum::extract::Path` with RFC 6749 rejections.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    axum::extract::Path<T>:
        FromRequestParts<S, Rejection = axum::extract::rejection::PathRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Self(v))
            .map_err(ApiError::from)
    }
}

/// Who is calling from where: the client IP and the User-Agent (truncated). Never fails.
///
/// The IP is the TCP peer, unless the peer is one of the configured `trusted_proxies`: then
/// `X-Forwarded-For` is read from the right, skipping trusted proxies, and the first other
/// address is the client (entries further left were written by the client and prove
/// nothing).
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    /// Client IP address, when known.
    pub ip: Option<String>,
    /// User-Agent, at most 256 characters.
    pub user_agent: Option<String>,
}

impl ClientInfo {
    /// The IP as a string for throttle keys (`unknown` when not known).
    pub fn ip_or_unknown(&self) -> &str {
        self.ip.as_deref().unwrap_or("unknown")
    }
}

/// The client address behind `peer`, given the trusted proxies and the forwarded-for chain.
pub fn client_ip(peer: IpAddr, trusted: &[IpAddr], headers: &axum::http::HeaderMap) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let chain: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    for hop in chain.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) if trusted.contains(&ip) => continue,
            Ok(ip) => return ip,
            // A malformed hop: stop believing the chain at this point.
            Err(_) => return peer,
        }
    }
    peer
}

impl FromRequestParts<AppState> for ClientInfo {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| {
                client_ip(addr.ip(), &state.config.trusted_proxies, &parts.headers).to_string()
            });
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(256).collect());
        Ok(Self { ip, user_agent })
    }
}

/// An authenticated caller: a valid access token (signature, `typ`, `iss`, `aud`, `exp`,
/// `nbf`) that is also still valid in the store: its session live, its user enabled and its
/// `iat` after the user's cutoff, its `jti` not revoked. Rejects with 401 `invalid_token`.
#[derive(Debug, Clone)]
pub struct AuthUser(pub AccessContext);

impl std::ops::Deref for AuthUser {
    type Target = AccessContext;

    fn deref(&self) -> &AccessContext {
        &self.0
    }
}

/// The bearer token of a request, if it has an `Authorization: Bearer` header (RFC 6750
/// §2.1; the scheme is case-insensitive).
pub fn bearer_token(parts: &Parts) -> Result<Option<&str>, ApiError> {
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::invalid_token("Malformed Authorization header"))?;
    let Some((scheme, token)) = value.split_once(' ') else {
        return Err(ApiError::invalid_token("Malformed Authorization header"));
    };
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ApiError::invalid_token("Expected a Bearer token"));
    }
    Ok(Some(token.trim()))
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer_token(parts)?.ok_or_else(ApiError::missing_token)?;
        let ctx = tokens::authenticate(state, token).await?;
        Ok(Self(ctx))
    }
}

/// Refuses with 403 `insufficient_scope` unless the caller's token carries `role`.
pub fn require_role(auth: &AuthUser, role: &str) -> Result<(), ApiError> {
    if auth.claims.roles.iter().any(|r| r == role) {
        Ok(())
    } else {
        Err(ApiError::insufficient_scope(format!(
            "Requires role {role}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let mut h = axum::http::HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            "6.6.6.6, 1.2.3.4, 10.0.0.1".parse().unwrap(),
        );
        // Untrusted peer: the header is ignored.
        let peer: IpAddr = "9.9.9.9".parse().unwrap();
        assert_eq!(client_ip(peer, &[proxy], &h), peer);
        // Trusted peer: rightmost untrusted hop.
        assert_eq!(
            client_ip(proxy, &[proxy], &h),
            "1.2.3.4".parse::<IpAddr>().unwrap()
        );
        // Garbage in the chain: fall back to the peer.
        h.insert("x-forwarded-for", "1.2.3.4, junk".parse().unwrap());
        assert_eq!(client_ip(proxy, &[proxy], &h), proxy);
        // No header.
        assert_eq!(
            client_ip(proxy, &[proxy], &axum::http::HeaderMap::new()),
            proxy
        );
    }
}
