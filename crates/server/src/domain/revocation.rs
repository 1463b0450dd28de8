//! Revocation and cutoff rules: the single path by which anything is revoked.
//!
//! Every revocation writes the store AND appends a revocation event (`Store::append_revocation`)
//! that the feed serves to resource servers, then pushes the event to in-process subscribers.
//! An event lives until `now + access_ttl + leeway`: after that no token it could match is
//! still valid, so verifiers may forget it.
//!
//! User cutoff rule (docs/api.md): a user's tokens with `iat <= cutoff` are invalid; tokens
//! issued afterwards get `iat = max(now, cutoff + 1)` (see [`super::tokens`]).

use tessera_store::{NewRevocation, Revocation, RevocationKind, Session, User, UserUpdate};

use super::{DomainError, DomainResult};
use crate::state::AppState;

/// What to revoke.
#[derive(Debug, Clone)]
pub enum Target<'a> {
    /// One session (and every access token carrying its `sid`).
    Session {
        /// Session id.
        id: &'a str,
        /// Why (`logout`, `reuse_detected`, ...), stored with the session.
        reason: &'a str,
    },
    /// Every live session of a user, except `keep`.
    UserSessions {
        /// User id.
        user_id: &'a str,
        /// A session to leave alone (the caller's own).
        keep: Option<&'a str>,
        /// Why.
        reason: &'a str,
    },
    /// Raise a user's token cutoff to now, applying `update` in the same write (password
    /// hash, roles, disabled flag).
    UserCutoff {
        /// User id.
        user_id: &'a str,
        /// Other fields to change at the same time.
        update: UserUpdate,
    },
    /// One access token by `jti` (RFC 7009), valid until `exp`.
    Token {
        /// Token id.
        jti: &'a str,
        /// The token's expiry.
        exp: i64,
    },
}

/// What a revocation changed.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Sessions that this call revoked (were live before).
    pub sessions: Vec<Session>,
    /// The user as updated by a cutoff.
    pub user: Option<User>,
    /// The events appended.
    pub events: Vec<Revocation>,
}

/// Revokes `target`: writes the store, appends one event per thing revoked, broadcasts them.
/// Then drops the introspection cache (`domain::introspection`), also when a step failed
/// after an earlier write had gone through.
pub async fn revoke(state: &AppState, target: Target<'_>) -> DomainResult<Outcome> {
    let result = revoke_in_store(state, target).await;
    super::introspection::invalidate(state);
    result
}

async fn revoke_in_store(state: &AppState, target: Target<'_>) -> DomainResult<Outcome> {
    let now = state.now();
    let expires_at = now + state.config.access_token_ttl + state.config.leeway;
    let mut out = Outcome::default();
    let mut events = Vec::new();
    match target {
        Target::Session { id, reason } => {
            if let Some(s) = state.store.revoke_session(id, now, reason).await? {
                events.push((RevocationKind::Session, s.id.clone(), None));
                out.sessions.push(s);
            }
        }
        Target::UserSessions {
            user_id,
            keep,
            reason,
        } => {
            let revoked = state
                .store
                .revoke_user_sessions(user_id, keep, now, reason)
                .await?;
            for s in revoked {
                events.push((RevocationKind::Session, s.id.clone(), None));
                out.sessions.push(s);
            }
        }
        Target::UserCutoff {
            user_id,
            mut update,
        } => {
            // Tokens issued after an earlier cutoff in this same second carry
            // iat = that cutoff + 1; a second cutoff must cover them too.
            let previous = state
                .store
                .user_by_id(user_id)
                .await?
                .ok_or(DomainError::NotFound)?
                .token_cutoff;
            update.token_cutoff = Some(match previous {
                Some(c) if c >= now => c + 1,
                _ => now,
            });
            update.updated_at = now;
            let user = state
                .store
                .update_user(user_id, &update)
                .await?
                .ok_or(DomainError::NotFound)?;
            // The store keeps max(old, new): announce the cutoff actually in force.
            let cutoff = user.token_cutoff.unwrap_or(now).max(now);
            events.push((RevocationKind::User, user.id.clone(), Some(cutoff)));
            out.user = Some(user);
        }
        Target::Token { jti, exp } => {
            let token_expires = exp + state.config.leeway;
            let ev = NewRevocation {
                kind: RevocationKind::Token,
                subject: jti.to_string(),
                cutoff: None,
                created_at: now,
                expires_at: token_expires.max(now),
            };
            let stored = state.store.append_revocation(&ev).await?;
            state.metrics.revocation(stored.kind.as_str());
            let _ = state.revocations.send(stored.clone());
            out.events.push(stored);
            return Ok(out);
        }
    }
    for (kind, subject, cutoff) in events {
        let ev = NewRevocation {
            kind,
            subject,
            cutoff,
            created_at: now,
            expires_at,
        };
        let stored = state.store.append_revocation(&ev).await?;
        state.metrics.revocation(stored.kind.as_str());
        // No subscriber is fine; the feed also reads the store.
        let _ = state.revocations.send(stored.clone());
        out.events.push(stored);
    }
    Ok(out)
}
