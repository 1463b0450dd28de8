//! The one place where errors become HTTP responses.
//!
//! Every body is RFC 6749 §5.2 style `{"error", "error_description"}`. A 401 carries
//! `WWW-Authenticate: Bearer error="invalid_token"` (RFC 6750 §3), a 403 for a missing role
//! `error="insufficient_scope"`, a 429 `Retry-After`. A 500 logs its detail and says little;
//! an unreachable database is a 503 `temporarily_unavailable`.

use axum::extract::rejection::{FormRejection, JsonRejection, PathRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tessera_store::StoreError;

use crate::domain::DomainError;

/// An error answer of the HTTP API.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// RFC 6749 error code.
    pub error: &'static str,
    /// Human-readable description (never a secret).
    pub description: String,
    /// `WWW-Authenticate` value, for 401 and 403 on bearer-protected resources.
    pub www_authenticate: Option<String>,
    /// `Retry-After` seconds, for 429.
    pub retry_after: Option<i64>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    error_description: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after: Option<i64>,
}

/// Quotes a string for an RFC 7235 auth-param (drops characters that cannot be quoted).
fn quote(s: &str) -> String {
    s.chars()
        .filter(|c| *c != '"' && *c != '\\' && (' '..='~').contains(c))
        .collect()
}

impl ApiError {
    /// A plain error with a status, code and description.
    pub fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            error,
            description: description.into(),
            www_authenticate: None,
            retry_after: None,
        }
    }

    /// 400 `invalid_request`.
    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    /// 400 `invalid_grant` (RFC 6749 §5.2; first-party login answers it with 401).
    pub fn invalid_grant(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_grant", description)
    }

    /// 401 `invalid_token` with `WWW-Authenticate` (RFC 6750 §3.1).
    pub fn invalid_token(description: impl Into<String>) -> Self {
        let description = description.into();
        let mut e = Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            description.clone(),
        );
        e.www_authenticate = Some(format!(
            "Bearer error=\"invalid_token\", error_description=\"{}\"",
            quote(&description)
        ));
        e
    }

    /// 401 without any credentials: `WWW-Authenticate: Bearer` (RFC 6750 §3: no error code
    /// when the request had no authentication information).
    pub fn missing_token() -> Self {
        let mut e = Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "Missing bearer token",
        );
        e.www_authenticate = Some("Bearer".to_string());
        e
    }

    /// 403 `insufficient_scope` with `WWW-Authenticate` (RFC 6750 §3.1).
    pub fn insufficient_scope(description: impl Into<String>) -> Self {
        let description = description.into();
        let mut e = Self::new(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            description.clone(),
        );
        e.www_authenticate = Some(format!(
            "Bearer error=\"insufficient_scope\", error_description=\"{}\"",
            quote(&description)
        ));
        e
    }

    /// 403 `access_denied`.
    pub fn access_denied(description: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "access_denied", description)
    }

    /// 404 `not_found`.
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "Not found")
    }

    /// 429 `too_many_attempts` with `Retry-After`.
    pub fn throttled(retry_after: i64) -> Self {
        let secs = retry_after.max(1);
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            format!("Too many failed attempts; retry in {secs} seconds"),
        );
        e.retry_after = Some(secs);
        e
    }

    /// 503 `temporarily_unavailable`.
    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "The service is temporarily unavailable",
        )
    }

    /// 500: logs `detail` (never a secret) and answers with a generic message.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "Internal server error",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: self.error,
            error_description: &self.description,
            retry_after: self.retry_after,
        };
        let mut resp = (self.status, axum::Json(body)).into_response();
        let headers = resp.headers_mut();
        // Error bodies may describe credentials; never cache them (RFC 6749 §5.1 spirit).
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(v) = self
            .www_authenticate
            .and_then(|v| HeaderValue::from_str(&v).ok())
        {
            headers.insert(header::WWW_AUTHENTICATE, v);
        }
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(detail) => {
                tracing::warn!(error = %detail, "store unavailable");
                Self::unavailable()
            }
            StoreError::Conflict(_) => Self::new(
                StatusCode::CONFLICT,
                "invalid_request",
                "The resource already exists",
            ),
            StoreError::InvalidInput(_) => Self::invalid_request(
                "The request contains characters that cannot be stored (such as NUL)",
            ),
            other => Self::internal(other),
        }
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::InvalidCredentials => Self::new(
                StatusCode::UNAUTHORIZED,
                "invalid_grant",
                "Invalid email or password",
            ),
            DomainError::InvalidGrant(d) => Self::invalid_grant(d),
            DomainError::InvalidToken(d) => Self::invalid_token(d),
            DomainError::Throttled(secs) => Self::throttled(secs),
            DomainError::InvalidRequest(d) => Self::invalid_request(d),
            DomainError::AccessDenied(d) => Self::access_denied(d),
            DomainError::InsufficientScope(d) => Self::insufficient_scope(d),
            DomainError::NotFound => Self::not_found(),
            DomainError::Store(e) => e.into(),
            DomainError::Internal(d) => Self::internal(d),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let status = r.status();
        let (error, description) = match &r {
            JsonRejection::MissingJsonContentType(_) => (
                "invalid_request",
                "Expected Content-Type: application/json".to_string(),
            ),
            JsonRejection::JsonSyntaxError(_) => {
                ("invalid_request", "Malformed JSON body".to_string())
            }
            // serde's message names the missing/mistyped field, never a value.
            JsonRejection::JsonDataError(e) => ("invalid_request", e.body_text()),
            _ if status == StatusCode::PAYLOAD_TOO_LARGE => {
                ("invalid_request", "Request body too large".to_string())
            }
            _ => ("invalid_request", "Unreadable request body".to_string()),
        };
        let status = if status.is_client_error() {
            status
        } else {
            StatusCode::BAD_REQUEST
        };
        Self::new(status, error, description)
    }
}

impl From<FormRejection> for ApiError {
    fn from(r: FormRejection) -> Self {
        let status = r.status();
        let description = match &r {
            FormRejection::InvalidFormContentType(_) => {
                "Expected Content-Type: application/x-www-form-urlencoded".to_string()
            }
            FormRejection::FailedToDeserializeForm(e) => e.body_text(),
            FormRejection::FailedToDeserializeFormBody(e) => e.body_text(),
            _ if status == StatusCode::PAYLOAD_TOO_LARGE => "Request body too large".to_string(),
            _ => "Unreadable request body".to_string(),
        };
        let status = if status.is_client_error() {
            status
        } else {
            StatusCode::BAD_REQUEST
        };
        Self::new(status, "invalid_request", description)
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        Self::invalid_request(r.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        Self::invalid_request(r.body_text())
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_map_to_503_and_generic_500() {
        let e = ApiError::from(StoreError::Unavailable("connection refused".into()));
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(e.error, "temporarily_unavailable");
        let e = ApiError::from(StoreError::Database("syntax error near SELECT".into()));
        assert_eq!(e.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!e.description.contains("SELECT"), "500 says little");
    }

    #[test]
    fn unauthorized_carries_www_authenticate_and_throttled_retry_after() {
        let resp = ApiError::invalid_token("bad \"quoted\" thing").into_response();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        let v = resp.headers()[header::WWW_AUTHENTICATE].to_str().unwrap();
        assert_eq!(
            v,
            "Bearer error=\"invalid_token\", error_description=\"bad quoted thing\""
        );
        let resp = ApiError::throttled(7).into_response();
        assert_eq!(resp.headers()[header::RETRY_AFTER], "7");
    }
}
