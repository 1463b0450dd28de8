//! Access tokens (DESIGN §3, RFC 9068 profile): issuance and the server's own validation.
//!
//! Claims: `iss`, `sub`, `aud`, `exp`, `iat`, `nbf`, `jti`, `sid` (user sessions only),
//! `client_id`, `roles`, `scope` (optional). No personal data.

use serde::{Deserialize, Serialize};
use tessera_jwt::{Audience, Claims, Header, RegisteredClaims, Validation};
use tessera_store::{Session, User};

use super::{DomainError, DomainResult};
use crate::state::AppState;

/// Tessera's own claims, beside the registered ones.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TesseraClaims {
    /// Session id; absent for service (client_credentials) tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// The OAuth client the token was issued to.
    pub client_id: String,
    /// Role names.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Space-separated scopes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// The validated claims of an access token, flattened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessClaims {
    /// Subject: user id, or client id for service tokens.
    pub sub: String,
    /// Token id.
    pub jti: String,
    /// Issued at (possibly `cutoff + 1`, see the cutoff rule).
    pub iat: i64,
    /// Expiry.
    pub exp: i64,
    /// Not before, when the token has one (Tessera's always do).
    pub nbf: Option<i64>,
    /// The audiences the token names.
    pub aud: Vec<String>,
    /// Session id (user tokens only).
    pub sid: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Roles.
    pub roles: Vec<String>,
    /// Scope.
    pub scope: Option<String>,
}

/// An authenticated caller: the claims, plus the user and session when it is a user token.
#[derive(Debug, Clone)]
pub struct AccessContext {
    /// The token's claims.
    pub claims: AccessClaims,
    /// The user (user tokens only), as currently stored.
    pub user: Option<User>,
    /// The session (user tokens only), as currently stored.
    pub session: Option<Session>,
}

/// What goes into a token besides the time and key.
#[derive(Debug, Clone)]
pub struct TokenSpec<'a> {
    /// Subject.
    pub sub: &'a str,
    /// Session id.
    pub sid: Option<&'a str>,
    /// Client id.
    pub client_id: &'a str,
    /// Roles.
    pub roles: &'a [String],
    /// Scope.
    pub scope: Option<&'a str>,
    /// The subject's cutoff, if any: `iat` becomes `max(now, cutoff + 1)`.
    pub cutoff: Option<i64>,
}

/// Signs an access token. Returns the token and its lifetime in seconds.
pub fn issue(state: &AppState, spec: &TokenSpec<'_>) -> DomainResult<(String, i64)> {
    let now = state.now();
    let ttl = state.config.access_token_ttl;
    // Cutoff rule (docs/api.md): tokens with iat <= cutoff are invalid, so a token issued in
    // the same second as a cutoff must carry iat = cutoff + 1 (at most one second ahead,
    // well inside every verifier's leeway); nbf stays now.
    let iat = match spec.cutoff {
        Some(c) if c >= now => c + 1,
        _ => now,
    };
    let claims = Claims::new(
        RegisteredClaims {
            iss: Some(state.config.issuer()),
            sub: Some(spec.sub.to_string()),
            aud: Some(Audience::Many(state.config.audiences.clone())),
            exp: Some(now + ttl),
            nbf: Some(now),
            iat: Some(iat),
            jti: Some(uuid::Uuid::new_v4().to_string()),
        },
        TesseraClaims {
            sid: spec.sid.map(str::to_string),
            client_id: spec.client_id.to_string(),
            roles: spec.roles.to_vec(),
            scope: spec.scope.map(str::to_string),
        },
    );
    let key = state.keys.signing_key()?;
    let token = key
        .sign(&Header::new().typ("at+jwt"), &claims)
        .map_err(|e| DomainError::Internal(format!("signing: {e}")))?;
    Ok((token, ttl))
}

/// Issues the access token of a user session.
pub fn issue_for_session(
    state: &AppState,
    user: &User,
    session: &Session,
) -> DomainResult<(String, i64)> {
    issue(
        state,
        &TokenSpec {
            sub: &user.id,
            sid: Some(&session.id),
            client_id: &session.client_id,
            roles: &user.roles,
            scope: None,
            cutoff: user.token_cutoff,
        },
    )
}

/// Verifies the signature and claims of an access token this server issued (no store
/// access). `InvalidToken` on any failure.
pub fn verify(state: &AppState, token: &str) -> DomainResult<AccessClaims> {
    let audiences: Vec<&str> = state.config.audiences.iter().map(String::as_str).collect();
    let policy = Validation::access_token(&state.config.issuer(), &audiences)
        .require(&["sub", "jti", "iat"])
        .leeway(u64::try_from(state.config.leeway).unwrap_or(0))
        .clock(tessera_jwt::Clock::Fixed(state.now()));
    let verified = tessera_jwt::verify_with_keys::<TesseraClaims>(
        token,
        &state.keys.verification_keys(),
        &policy,
    )
    .map_err(|e| {
        tracing::debug!(reason = %e, "access token rejected");
        match e {
            tessera_jwt::Error::Expired { .. } => {
                DomainError::InvalidToken("The access token expired")
            }
            _ => DomainError::InvalidToken("The access token is invalid"),
        }
    })?;
    let c = verified.into_claims();
    let missing = DomainError::InvalidToken("The access token is invalid");
    Ok(AccessClaims {
        sub: c
            .registered
            .sub
            .ok_or(DomainError::InvalidToken("The access token is invalid"))?,
        jti: c
            .registered
            .jti
            .ok_or(DomainError::InvalidToken("The access token is invalid"))?,
        iat: c.registered.iat.ok_or(missing)?,
        exp: c.registered.exp.unwrap_or(0),
        nbf: c.registered.nbf,
        aud: c
            .registered
            .aud
            .map(|a| a.iter().map(str::to_string).collect())
            .unwrap_or_default(),
        sid: c.custom.sid,
        client_id: c.custom.client_id,
        roles: c.custom.roles,
        scope: c.custom.scope,
    })
}

/// Full validation for the auth server's own endpoints: [`verify`], then the store: a user
/// token's session must be live and the user's, the user enabled with `iat` after their
/// cutoff; a service token's client must still exist; the `jti` must not be revoked.
pub async fn authenticate(state: &AppState, token: &str) -> DomainResult<AccessContext> {
    let claims = verify(state, token)?;
    let now = state.now();
    let revoked = || DomainError::InvalidToken("The access token has been revoked");
    let (user, session) = match &claims.sid {
        Some(sid) => {
            let session = state.store.session_by_id(sid).await?.ok_or_else(revoked)?;
            if !session.is_live(now) || session.user_id != claims.sub {
                return Err(revoked());
            }
            let user = state
                .store
                .user_by_id(&claims.sub)
                .await?
                .ok_or_else(revoked)?;
            if user.disabled || user.token_cutoff.is_some_and(|c| claims.iat <= c) {
                return Err(revoked());
            }
            (Some(user), Some(session))
        }
        None => {
            if state.store.client_by_id(&claims.sub).await?.is_none() {
                return Err(revoked());
            }
            (None, None)
        }
    };
    if state.store.is_token_revoked(&claims.jti, now).await? {
        return Err(revoked());
    }
    Ok(AccessContext {
        claims,
        user,
        session,
    })
}
