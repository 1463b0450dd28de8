//! Administration of users (docs/api.md, "Admin"). Every change that can reduce what a
//! user's existing tokens should allow goes through [`super::revocation::revoke`]:
//!
//! - a role change or a disable raises the user's cutoff (tokens with `iat <= cutoff` die at
//!   every verifier, because their `roles` claim is stale or the user is gone);
//! - a disable also revokes every session, so no refresh token can mint a new access token;
//! - a delete raises the cutoff first (the event outlives the row), then deletes the user
//!   with their sessions.
//!
//! Audit events are written by the HTTP layer, which knows the acting admin and the IP.

use tessera_store::{User, UserUpdate};

use super::accounts::{self, normalize_roles};
use super::revocation::{self, Target};
use super::{DomainError, DomainResult};
use crate::state::AppState;

/// Largest page of `GET /admin/users`.
pub const MAX_LIMIT: u32 = 200;

/// A requested change of a user.
#[derive(Debug, Clone, Default)]
pub struct UserChange {
    /// New role set.
    pub roles: Option<Vec<String>>,
    /// New disabled flag.
    pub disabled: Option<bool>,
}

/// What [`update_user`] did.
#[derive(Debug, Clone)]
pub struct Updated {
    /// The user as stored now.
    pub user: User,
    /// Whether a cutoff was raised.
    pub cutoff: bool,
    /// Sessions revoked (on disable).
    pub sessions_revoked: usize,
}

/// Lists users by email, optionally filtered by a substring of the email.
pub async fn list_users(
    state: &AppState,
    search: Option<&str>,
    limit: u32,
    offset: u32,
) -> DomainResult<Vec<User>> {
    let search = search.map(str::trim).filter(|s| !s.is_empty());
    if search.is_some_and(|s| s.len() > accounts::MAX_EMAIL_LENGTH) {
        return Err(DomainError::InvalidRequest("Search text too long".into()));
    }
    Ok(state
        .store
        .list_users(search, limit.clamp(1, MAX_LIMIT), offset)
        .await?)
}

/// Creates a user with a password and roles.
pub async fn create_user(
    state: &AppState,
    email: &str,
    password: &str,
    roles: &[String],
) -> DomainResult<User> {
    let email = accounts::normalize_email(email)?;
    accounts::create_user(state, &email, password, roles).await
}

/// One user by id.
pub async fn get_user(state: &AppState, id: &str) -> DomainResult<User> {
    state
        .store
        .user_by_id(id)
        .await?
        .ok_or(DomainError::NotFound)
}

/// Applies a role and/or disabled change. A change that actually alters roles or the
/// disabled flag raises the cutoff in the same write; disabling revokes every session.
pub async fn update_user(state: &AppState, id: &str, change: UserChange) -> DomainResult<Updated> {
    let roles = change.roles.as_deref().map(normalize_roles).transpose()?;
    let current = get_user(state, id).await?;
    let roles_changed = roles.as_ref().is_some_and(|r| *r != current.roles);
    let disabled_changed = change.disabled.is_some_and(|d| d != current.disabled);
    if !roles_changed && !disabled_changed {
        return Ok(Updated {
            user: current,
            cutoff: false,
            sessions_revoked: 0,
        });
    }
    let update = UserUpdate {
        roles: roles.filter(|_| roles_changed),
        disabled: change.disabled.filter(|_| disabled_changed),
        ..UserUpdate::default()
    };
    let out = revocation::revoke(
        state,
        Target::UserCutoff {
            user_id: id,
            update,
        },
    )
    .await?;
    let user = out.user.ok_or(DomainError::NotFound)?;
    let mut sessions_revoked = 0;
    if user.disabled {
        let s = revocation::revoke(
            state,
            Target::UserSessions {
                user_id: id,
                keep: None,
                reason: "user_disabled",
            },
        )
        .await?;
        sessions_revoked = s.sessions.len();
    }
    Ok(Updated {
        user,
        cutoff: true,
        sessions_revoked,
    })
}

/// Deletes a user: cutoff event first (so verifiers drop their tokens), then the row with
/// its sessions and refresh tokens. `NotFound` when no such user exists.
pub async fn delete_user(state: &AppState, id: &str) -> DomainResult<()> {
    // Revoke the sessions through the one revocation path so each gets its event, then the
    // cutoff covers any token of the user.
    revocation::revoke(
        state,
        Target::UserSessions {
            user_id: id,
            keep: None,
            reason: "user_deleted",
        },
    )
    .await?;
    revocation::revoke(
        state,
        Target::UserCutoff {
            user_id: id,
            update: UserUpdate::default(),
        },
    )
    .await?;
    let deleted = state.store.delete_user(id).await;
    // A token issued between the cutoff and the delete must not stay cached either.
    super::introspection::invalidate(state);
    if !deleted? {
        return Err(DomainError::NotFound);
    }
    Ok(())
}
