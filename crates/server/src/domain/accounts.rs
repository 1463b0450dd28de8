//! Accounts: email rules, creation, registration, password login, password change.

use tessera_store::{NewUser, StoreError, User, UserUpdate};

use super::revocation::{self, Target};
use super::sessions::{self, Issued, SessionOrigin};
use super::throttle::{account_key, ip_key, register_key};
use super::tokens::AccessContext;
use super::{audit, passwords, DomainError, DomainResult};
use crate::state::AppState;

/// The longest email address accepted (RFC 5321 §4.5.3.1.3 path limit minus brackets).
pub const MAX_EMAIL_LENGTH: usize = 254;
/// The first-party client id: sessions created by `/auth/login` belong to it.
pub const FIRST_PARTY_CLIENT: &str = "tessera";

/// Normalizes an email (trim, lowercase) and validates it loosely: one `@` with something on
/// both sides, no whitespace or control characters, at most 254 bytes.
pub fn normalize_email(raw: &str) -> DomainResult<String> {
    let email = raw.trim().to_lowercase();
    let invalid = || DomainError::InvalidRequest("Invalid email address".into());
    if email.is_empty() || email.len() > MAX_EMAIL_LENGTH {
        return Err(invalid());
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid());
    }
    let mut parts = email.split('@');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(local), Some(domain), None) if !local.is_empty() && !domain.is_empty() => Ok(email),
        _ => Err(invalid()),
    }
}

/// Validates and normalizes role names: 1-64 characters of `[a-z0-9_.:-]`, sorted,
/// deduplicated.
pub fn normalize_roles(roles: &[String]) -> DomainResult<Vec<String>> {
    let mut out = Vec::with_capacity(roles.len());
    for r in roles {
        let r = r.trim();
        let ok = !r.is_empty()
            && r.len() <= 64
            && r.bytes().all(|b| {
                b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || matches!(b, b'_' | b'.' | b':' | b'-')
            });
        if !ok {
            return Err(DomainError::InvalidRequest(format!(
                "Invalid role name (use a-z, 0-9, _ . : -): {}",
                r.chars().take(64).collect::<String>()
            )));
        }
        out.push(r.to_string());
    }
    if out.len() > 32 {
        return Err(DomainError::InvalidRequest("Too many roles".into()));
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Creates a user (email already normalized) with a freshly hashed password. The store's
/// unique constraint reports a taken email as `Store(Conflict)`.
pub async fn create_user(
    state: &AppState,
    email: &str,
    password: &str,
    roles: &[String],
) -> DomainResult<User> {
    passwords::validate_new_password(password)?;
    let roles = normalize_roles(roles)?;
    let hash = state.passwords.hash(password).await?;
    let user = NewUser {
        id: uuid::Uuid::new_v4().to_string(),
        email: email.to_string(),
        password_hash: hash,
        roles,
        created_at: state.now(),
    };
    Ok(state.store.create_user(&user).await?)
}

/// Self-service registration (`POST /auth/register`).
///
/// No enumeration (docs/api.md): a taken email gets the same answer, a random id, after the
/// same work (the password is hashed either way), and an audit event `register_duplicate`.
pub async fn register(
    state: &AppState,
    email: &str,
    password: &str,
    ip: Option<&str>,
) -> DomainResult<String> {
    if !state.config.registration_open {
        return Err(DomainError::AccessDenied("Registration is closed"));
    }
    let reg_key = register_key(ip.unwrap_or("unknown"));
    state.throttle.check(&[&reg_key]).await?;
    let email = normalize_email(email)?;
    passwords::validate_new_password(password)?;
    state
        .throttle
        .hit(&reg_key, state.config.throttle_register_free)
        .await?;
    match create_user(state, &email, password, &[]).await {
        Ok(user) => {
            audit::record(
                state,
                "register",
                Some(&user.id),
                Some(&user.id),
                ip,
                serde_json::json!({}),
            )
            .await;
            Ok(user.id)
        }
        Err(DomainError::Store(StoreError::Conflict(_))) => {
            let existing = state.store.user_by_email(&email).await?.map(|u| u.id);
            audit::record(
                state,
                "register_duplicate",
                None,
                existing.as_deref(),
                ip,
                serde_json::json!({}),
            )
            .await;
            Ok(uuid::Uuid::new_v4().to_string())
        }
        Err(e) => Err(e),
    }
}

/// Checks an email and password, with throttling, in constant-ish time: an unknown email is
/// verified against a dummy hash and gets the same error as a wrong password. While the
/// account or the client IP is locked, answers `Throttled` without checking the password.
pub async fn check_password(
    state: &AppState,
    email: &str,
    password: &str,
    ip: Option<&str>,
) -> DomainResult<User> {
    if password.len() > passwords::MAX_LENGTH {
        return Err(DomainError::InvalidRequest(format!(
            "Password must be at most {} bytes",
            passwords::MAX_LENGTH
        )));
    }
    let ipk = ip_key(ip.unwrap_or("unknown"));
    let Ok(email) = normalize_email(email) else {
        // An email that cannot exist still costs a hash and counts against the client IP,
        // so its shape does not show (and no account key is made from arbitrary input).
        state.throttle.check(&[&ipk]).await?;
        state.passwords.verify_dummy(password).await?;
        state
            .throttle
            .hit(&ipk, state.config.throttle_ip_free)
            .await?;
        return Err(DomainError::InvalidCredentials);
    };
    let acct = account_key(&email);
    state.throttle.check(&[&acct, &ipk]).await?;
    let user = state.store.user_by_email(&email).await?;
    let (ok, reason) = match &user {
        Some(u) => {
            let ok = state.passwords.verify(password, &u.password_hash).await?;
            match (ok, u.disabled) {
                (true, false) => (true, ""),
                (true, true) => (false, "disabled"),
                (false, _) => (false, "wrong_password"),
            }
        }
        None => {
            state.passwords.verify_dummy(password).await?;
            (false, "unknown_user")
        }
    };
    match user {
        Some(user) if ok => {
            state.metrics.login(true);
            state.throttle.clear(&acct).await?;
            Ok(user)
        }
        user => {
            state.metrics.login(false);
            state
                .throttle
                .hit(&acct, state.config.throttle_account_free)
                .await?;
            state
                .throttle
                .hit(&ipk, state.config.throttle_ip_free)
                .await?;
            let subject = user.as_ref().map(|u| u.id.as_str());
            audit::record(
                state,
                "login_failed",
                None,
                subject,
                ip,
                serde_json::json!({ "reason": reason }),
            )
            .await;
            Err(DomainError::InvalidCredentials)
        }
    }
}

/// Password login: checks the credentials and starts a session.
pub async fn login(
    state: &AppState,
    email: &str,
    password: &str,
    origin: &SessionOrigin,
) -> DomainResult<Issued> {
    let user = check_password(state, email, password, origin.ip.as_deref()).await?;
    let issued = sessions::start(state, &user, FIRST_PARTY_CLIENT, origin).await?;
    audit::record(
        state,
        "login",
        Some(&user.id),
        Some(&issued.session.id),
        origin.ip.as_deref(),
        serde_json::json!({ "client_id": FIRST_PARTY_CLIENT }),
    )
    .await;
    Ok(issued)
}

/// Password change (`POST /auth/password`): the current password must be right; then the
/// new hash and a cutoff for every older token are written in one update, every session of
/// the user is revoked, and the caller gets a fresh session with fresh tokens.
pub async fn change_password(
    state: &AppState,
    ctx: &AccessContext,
    current: &str,
    new: &str,
    origin: &SessionOrigin,
) -> DomainResult<Issued> {
    let user = ctx
        .user
        .as_ref()
        .ok_or(DomainError::AccessDenied("Only users have passwords"))?;
    passwords::validate_new_password(new)?;
    if current.len() > passwords::MAX_LENGTH {
        return Err(DomainError::InvalidGrant("Current password is incorrect"));
    }
    let acct = account_key(&user.email);
    state.throttle.check(&[&acct]).await?;
    if !state.passwords.verify(current, &user.password_hash).await? {
        state
            .throttle
            .hit(&acct, state.config.throttle_account_free)
            .await?;
        audit::record(
            state,
            "password_change_failed",
            Some(&user.id),
            Some(&user.id),
            origin.ip.as_deref(),
            serde_json::json!({}),
        )
        .await;
        return Err(DomainError::InvalidGrant("Current password is incorrect"));
    }
    let hash = state.passwords.hash(new).await?;
    let out = revocation::revoke(
        state,
        Target::UserCutoff {
            user_id: &user.id,
            update: UserUpdate {
                password_hash: Some(hash),
                ..UserUpdate::default()
            },
        },
    )
    .await?;
    let updated = out.user.ok_or(DomainError::NotFound)?;
    revocation::revoke(
        state,
        Target::UserSessions {
            user_id: &user.id,
            keep: None,
            reason: "password_change",
        },
    )
    .await?;
    let client_id = ctx.claims.client_id.clone();
    let issued = sessions::start(state, &updated, &client_id, origin).await?;
    audit::record(
        state,
        "password_changed",
        Some(&user.id),
        Some(&user.id),
        origin.ip.as_deref(),
        serde_json::json!({ "session_id": issued.session.id }),
    )
    .await;
    Ok(issued)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalized_and_loosely_validated() {
        assert_eq!(
            normalize_email("  Bob@Example.ORG ").unwrap(),
            "bob@example.org"
        );
        for bad in ["", "bob", "@x", "bob@", "a@b@c", "a b@c.d", "a\u{0}@b"] {
            assert!(normalize_email(bad).is_err(), "{bad:?}");
        }
        let long = format!("{}@x.y", "a".repeat(251));
        assert!(normalize_email(&long).is_err());
    }

    #[test]
    fn roles_are_validated_sorted_and_deduplicated() {
        let r = normalize_roles(&["b".into(), "a".into(), "b".into()]).unwrap();
        assert_eq!(r, vec!["a", "b"]);
        assert!(normalize_roles(&["Admin".into()]).is_err());
        assert!(normalize_roles(&["".into()]).is_err());
    }
}
