//! First-run setup: while no user exists, a one-time token (printed as a link at startup)
//! lets whoever holds it create the first admin.

use std::sync::Mutex;

use super::{accounts, audit, DomainError, DomainResult};
use crate::crypto;
use crate::state::AppState;

/// The pending setup token, stored only as its SHA-256.
#[derive(Debug, Default)]
pub struct SetupToken {
    hash: Mutex<Option<Vec<u8>>>,
}

impl SetupToken {
    /// No setup pending.
    pub fn none() -> Self {
        Self::default()
    }

    /// Generates a fresh token, remembers its hash and returns it (to print once).
    pub fn generate(&self) -> DomainResult<String> {
        let token = crypto::random_token()?;
        let mut guard = self
            .hash
            .lock()
            .map_err(|_| DomainError::Internal("setup lock poisoned".into()))?;
        *guard = Some(crypto::sha256(token.as_bytes()));
        Ok(token)
    }

    /// Whether a setup token is pending.
    pub fn pending(&self) -> bool {
        self.hash.lock().map(|g| g.is_some()).unwrap_or(false)
    }

    /// Consumes the token if `presented` matches it (constant time).
    fn take_if_matches(&self, presented: &str) -> DomainResult<bool> {
        let mut guard = self
            .hash
            .lock()
            .map_err(|_| DomainError::Internal("setup lock poisoned".into()))?;
        let ok = guard
            .as_deref()
            .is_some_and(|h| crypto::ct_eq(h, &crypto::sha256(presented.as_bytes())));
        if ok {
            *guard = None;
        }
        Ok(ok)
    }

    /// Puts a consumed token back (the account creation failed for a retryable reason).
    fn restore(&self, presented: &str) {
        if let Ok(mut guard) = self.hash.lock() {
            *guard = Some(crypto::sha256(presented.as_bytes()));
        }
    }
}

/// Creates the first admin with the setup token. Refused once any user exists or when the
/// token is wrong.
pub async fn complete(
    state: &AppState,
    token: &str,
    email: &str,
    password: &str,
    ip: Option<&str>,
) -> DomainResult<String> {
    let email = accounts::normalize_email(email)?;
    super::passwords::validate_new_password(password)?;
    if state.store.count_users().await? > 0 {
        return Err(DomainError::AccessDenied("Setup is already complete"));
    }
    if !state.setup.take_if_matches(token)? {
        return Err(DomainError::AccessDenied("Invalid setup token"));
    }
    match accounts::create_user(state, &email, password, &["admin".to_string()]).await {
        Ok(user) => {
            audit::record(
                state,
                "setup",
                Some(&user.id),
                Some(&user.id),
                ip,
                serde_json::json!({}),
            )
            .await;
            Ok(user.id)
        }
        Err(e) => {
            if !matches!(
                e,
                DomainError::Store(tessera_store::StoreError::Conflict(_))
            ) {
                state.setup.restore(token);
            }
            Err(e)
        }
    }
}
