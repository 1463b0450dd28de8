//! Sessions and refresh tokens (DESIGN §3).
//!
//! A refresh token is 256 random bits (base64url, 43 characters), stored only as SHA-256.
//! Each use rotates it. The successor is `HMAC-SHA256(refresh_key, old_token)`, so a retry of
//! the same token inside the grace window re-derives the SAME successor (checked against the
//! stored successor hash in constant time) without the server ever storing a token in clear:
//! two tabs or a lost response never log anyone out and never create a second branch.
//! Presented after the window, or after its successor was used, the token is reuse
//! (RFC 9700 §4.14.2): the whole session is revoked and `refresh_reuse` audited.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use tessera_store::{NewSession, Refresh, Rotation, Session, StoreError, User};
use zeroize::Zeroizing;

use super::revocation::{self, Target};
use super::{audit, tokens, DomainError, DomainResult};
use crate::crypto;
use crate::state::AppState;

/// Where a session is being created or used from.
#[derive(Debug, Clone, Default)]
pub struct SessionOrigin {
    /// Client IP.
    pub ip: Option<String>,
    /// User-Agent (already truncated).
    pub user_agent: Option<String>,
}

/// Tokens handed to a client after login, refresh or password change.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The access token (JWS compact).
    pub access_token: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// The refresh token (opaque; goes into the cookie or the body).
    pub refresh_token: Zeroizing<String>,
    /// The session, as stored.
    pub session: Session,
    /// The session's user.
    pub user: User,
}

/// The stored hash of a refresh token.
pub fn refresh_hash(token: &str) -> Vec<u8> {
    crypto::sha256(token.as_bytes())
}

/// The deterministic successor of a refresh token.
pub fn successor_of(state: &AppState, token: &str) -> Zeroizing<String> {
    let mac = crypto::hmac_sha256(state.secrets.refresh(), token.as_bytes());
    Zeroizing::new(URL_SAFE_NO_PAD.encode(mac))
}

/// Refresh tokens are exactly 43 base64url characters; anything else is not one of ours and
/// is rejected before any store access.
pub fn looks_like_refresh_token(token: &str) -> bool {
    token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Starts a session for `user` through `client_id` and issues its first tokens.
pub async fn start(
    state: &AppState,
    user: &User,
    client_id: &str,
    origin: &SessionOrigin,
) -> DomainResult<Issued> {
    let now = state.now();
    let cfg = &state.config;
    let refresh = Zeroizing::new(crypto::random_token()?);
    let absolute = now + cfg.refresh_absolute_ttl;
    let new = NewSession {
        id: uuid::Uuid::new_v4().to_string(),
        user_id: user.id.clone(),
        client_id: client_id.to_string(),
        user_agent: origin.user_agent.clone(),
        ip: origin.ip.clone(),
        created_at: now,
        idle_expires_at: (now + cfg.refresh_idle_ttl).min(absolute),
        absolute_expires_at: absolute,
    };
    let session = state
        .store
        .create_session(&new, &refresh_hash(&refresh))
        .await?;
    let (access_token, expires_in) = tokens::issue_for_session(state, user, &session)?;
    Ok(Issued {
        access_token,
        expires_in,
        refresh_token: refresh,
        session,
        user: user.clone(),
    })
}

/// A refresh token presented by another client than the one it was issued to: nothing was
/// changed (RFC 6749 §6; the caller answers as its client authentication requires).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OtherClient;

const INVALID: DomainError = DomainError::InvalidGrant("Invalid or expired refresh token");

/// Redeems a refresh token: rotates it (or, inside the grace window, returns the same
/// successor again) and issues a fresh access token. Reuse revokes the session. No client
/// check (the browser's cookie refresh); see [`refresh_as`].
pub async fn refresh(state: &AppState, token: &str, ip: Option<&str>) -> DomainResult<Issued> {
    refresh_inner(state, token, None, ip)
        .await?
        .map_err(|OtherClient| INVALID)
}

/// [`refresh`] of a token presented by `client_id`, which must be the client it was issued
/// to: checked in the same store round trip as the rotation, before anything changes, so a
/// client can never burn another client's token.
pub async fn refresh_as(
    state: &AppState,
    token: &str,
    client_id: &str,
    ip: Option<&str>,
) -> DomainResult<Result<Issued, OtherClient>> {
    refresh_inner(state, token, Some(client_id), ip).await
}

async fn refresh_inner(
    state: &AppState,
    token: &str,
    client_id: Option<&str>,
    ip: Option<&str>,
) -> DomainResult<Result<Issued, OtherClient>> {
    if !looks_like_refresh_token(token) {
        return Err(INVALID);
    }
    let now = state.now();
    let old_hash = refresh_hash(token);
    let successor = successor_of(state, token);
    let new_hash = refresh_hash(&successor);
    // A concurrent rotation of the same token may surface as a uniqueness conflict on the
    // successor (both racers insert the same deterministic hash); the retry then sees the
    // committed rotation and takes the grace path.
    let mut attempt = 0;
    let outcome = loop {
        match state
            .store
            .rotate_refresh_token_as(
                &old_hash,
                &new_hash,
                now,
                state.config.refresh_idle_ttl,
                client_id,
            )
            .await
        {
            Err(StoreError::Conflict(_)) if attempt < 3 => {
                attempt += 1;
                tokio::task::yield_now().await;
            }
            other => break other?,
        }
    };
    let (rotation, user) = match outcome {
        Refresh::OtherClient(_) => return Ok(Err(OtherClient)),
        Refresh::Rotation(rotation, user) => (rotation, user),
    };
    let session = match rotation {
        Rotation::NotFound => return Err(INVALID),
        Rotation::SessionInactive(_) => return Err(INVALID),
        Rotation::Rotated(session) => session,
        Rotation::AlreadyRotated {
            rotated_at,
            successor_hash,
            successor_used,
            session,
        } => {
            // A grace of 0 is none (not "within the same second").
            let in_grace =
                state.config.refresh_grace > 0 && now - rotated_at <= state.config.refresh_grace;
            if !session.is_live(now) {
                // Expired or already revoked: nothing left to protect, not a reuse signal.
                return Err(INVALID);
            }
            if in_grace && !successor_used && crypto::ct_eq(&successor_hash, &new_hash) {
                session
            } else {
                reuse_detected(state, &session, ip).await?;
                return Err(INVALID);
            }
        }
    };
    // The user as read with the rotation (the user of a live session always exists: its
    // sessions go with it).
    let user = match user {
        Some(u) if !u.disabled => u,
        _ => {
            revocation::revoke(
                state,
                Target::Session {
                    id: &session.id,
                    reason: "user_disabled",
                },
            )
            .await?;
            return Err(INVALID);
        }
    };
    let (access_token, expires_in) = tokens::issue_for_session(state, &user, &session)?;
    state.metrics.refresh();
    Ok(Ok(Issued {
        access_token,
        expires_in,
        refresh_token: successor,
        session,
        user,
    }))
}

async fn reuse_detected(state: &AppState, session: &Session, ip: Option<&str>) -> DomainResult<()> {
    let out = revocation::revoke(
        state,
        Target::Session {
            id: &session.id,
            reason: "reuse_detected",
        },
    )
    .await?;
    tracing::warn!(session_id = %session.id, "refresh token reuse detected; session revoked");
    state.metrics.reuse_detected();
    audit::record(
        state,
        "refresh_reuse",
        Some(&session.user_id),
        Some(&session.id),
        ip,
        serde_json::json!({ "revoked": !out.sessions.is_empty() }),
    )
    .await;
    Ok(())
}

/// The live session a refresh token belongs to (for cookie-authenticated logout).
pub async fn session_of_refresh_token(state: &AppState, token: &str) -> DomainResult<Session> {
    if !looks_like_refresh_token(token) {
        return Err(DomainError::InvalidGrant(
            "Invalid or expired refresh token",
        ));
    }
    match state
        .store
        .refresh_token_session(&refresh_hash(token))
        .await?
    {
        Some(s) if s.is_live(state.now()) => Ok(s),
        _ => Err(DomainError::InvalidGrant(
            "Invalid or expired refresh token",
        )),
    }
}

/// Ends one session of `user_id` (logout, or `DELETE /auth/sessions/{id}`). `NotFound` when
/// it is not a live session of that user.
pub async fn end_session(
    state: &AppState,
    user_id: &str,
    session_id: &str,
    reason: &str,
    ip: Option<&str>,
) -> DomainResult<()> {
    let now = state.now();
    match state.store.session_by_id(session_id).await? {
        Some(s) if s.user_id == user_id && s.is_live(now) => {}
        _ => return Err(DomainError::NotFound),
    }
    revocation::revoke(
        state,
        Target::Session {
            id: session_id,
            reason,
        },
    )
    .await?;
    let event = if reason == "logout" {
        "logout"
    } else {
        "session_revoked"
    };
    audit::record(
        state,
        event,
        Some(user_id),
        Some(session_id),
        ip,
        serde_json::json!({ "reason": reason }),
    )
    .await;
    Ok(())
}

/// Ends every session of a user, except `keep` when given. Returns how many ended.
pub async fn end_all_sessions(
    state: &AppState,
    user_id: &str,
    keep: Option<&str>,
    ip: Option<&str>,
) -> DomainResult<usize> {
    let reason = if keep.is_some() {
        "revoked_by_user"
    } else {
        "logout_all"
    };
    let out = revocation::revoke(
        state,
        Target::UserSessions {
            user_id,
            keep,
            reason,
        },
    )
    .await?;
    let event = if keep.is_some() {
        "session_revoked"
    } else {
        "logout_all"
    };
    audit::record(
        state,
        event,
        Some(user_id),
        Some(user_id),
        ip,
        serde_json::json!({ "sessions": out.sessions.len() }),
    )
    .await;
    Ok(out.sessions.len())
}

/// Live sessions of a user, newest first.
pub async fn list(state: &AppState, user_id: &str) -> DomainResult<Vec<Session>> {
    Ok(state.store.live_sessions(user_id, state.now()).await?)
}
