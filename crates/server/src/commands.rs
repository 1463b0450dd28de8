//! Store commands for the CLI: `tessera user add`, `tessera keys rotate`, `tessera migrate`.
//! They read the same configuration as `tessera serve` and work on the same data.

use crate::clock::Clock;
use crate::config::Config;
use crate::domain::{accounts, DomainError};
use crate::{build_state, open_store, ServerError};

/// Creates a user with `roles` (e.g. `["admin"]`). Returns the new user's id.
pub async fn add_user(
    config: &Config,
    email: &str,
    password: &str,
    roles: &[String],
) -> Result<String, ServerError> {
    let state = build_state(config.clone(), Clock::system()).await?;
    let email = accounts::normalize_email(email)?;
    match accounts::create_user(&state, &email, password, roles).await {
        Ok(user) => {
            crate::domain::audit::record(
                &state,
                "admin.user_created",
                None,
                Some(&user.id),
                None,
                serde_json::json!({ "via": "cli", "roles": user.roles }),
            )
            .await;
            Ok(user.id)
        }
        Err(DomainError::Store(tessera_store::StoreError::Conflict(_))) => {
            Err(ServerError::Domain(DomainError::InvalidRequest(format!(
                "a user with email {email} already exists"
            ))))
        }
        Err(e) => Err(e.into()),
    }
}

/// Staged key rotation: publishes a new signing key that starts signing once the JWKS
/// max-age has passed. Returns the new kid.
pub async fn rotate_keys(config: &Config) -> Result<String, ServerError> {
    let state = build_state(config.clone(), Clock::system()).await?;
    let kid = state.keys.rotate_staged().await?;
    crate::domain::audit::record(
        &state,
        "admin.key_rotated",
        None,
        Some(&kid),
        None,
        serde_json::json!({ "via": "cli", "staged": true }),
    )
    .await;
    Ok(kid)
}

/// Applies pending store migrations.
pub async fn migrate(config: &Config) -> Result<(), ServerError> {
    open_store(config).await.map(|_| ())
}
