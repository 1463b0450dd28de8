//! The claims of a verified Tessera access token.

use serde::{Deserialize, Serialize};

/// The claims of a verified access token (docs/api.md, "Tokens").
///
/// Only [`Verifier::verify`](crate::Verifier::verify) hands these out, after the signature,
/// header type, issuer, audience, lifetime and revocation state were checked; holding one means
/// the request is authenticated as `sub`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AccessClaims {
    /// Issuer (`iss`): the auth server's issuer URL.
    pub iss: String,
    /// Subject (`sub`): the opaque user id, or the client id for service tokens.
    pub sub: String,
    /// Audiences (`aud`); contains the verifier's configured audience.
    pub aud: Vec<String>,
    /// Expiry (`exp`), Unix seconds.
    pub exp: i64,
    /// Not before (`nbf`), Unix seconds.
    pub nbf: Option<i64>,
    /// Issued at (`iat`), Unix seconds; compared with the user's revocation cutoff.
    pub iat: Option<i64>,
    /// Token id (`jti`).
    pub jti: Option<String>,
    /// Session id (`sid`); absent for `client_credentials` tokens.
    pub sid: Option<String>,
    /// The OAuth client the token was issued to (`client_id`).
    pub client_id: Option<String>,
    /// Roles (`roles`), for instance `["admin"]`.
    pub roles: Vec<String>,
    /// Space-separated OAuth scopes (`scope`), if any.
    pub scope: Option<String>,
}

impl AccessClaims {
    /// Whether the token carries `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// Whether the token's `scope` contains `scope` (RFC 6749 §3.3: space-delimited list).
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope
            .as_deref()
            .is_some_and(|s| s.split(' ').any(|x| x == scope))
    }

    /// Fails with a `403 insufficient_scope` rejection unless the token carries `role`.
    ///
    /// ```
    /// # use tessera_verify::AccessClaims;
    /// fn admin_only(claims: &AccessClaims) -> Result<(), tessera_verify::AuthRejection> {
    ///     claims.require_role("admin")?;
    ///     Ok(())
    /// }
    /// ```
    pub fn require_role(&self, role: &str) -> Result<(), crate::AuthRejection> {
        if self.has_role(role) {
            Ok(())
        } else {
            Err(crate::AuthRejection::insufficient_role(role))
        }
    }

    /// Fails with a `403 insufficient_scope` rejection unless the token carries `scope`.
    pub fn require_scope(&self, scope: &str) -> Result<(), crate::AuthRejection> {
        if self.has_scope(scope) {
            Ok(())
        } else {
            Err(crate::AuthRejection::insufficient_scope(scope))
        }
    }
}
