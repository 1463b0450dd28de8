//! The seam over `tessera-jwt`: policy construction and claim mapping.

use std::time::Duration;

use serde::Deserialize;
use tessera_jwt::{KeySet, Validation};

use crate::{AccessClaims, VerifyError};

/// Tessera's private claims (docs/api.md, "Tokens"); the registered ones come typed from the
/// token core.
#[derive(Debug, Deserialize)]
struct TesseraClaims {
    #[serde(default)]
    sid: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    scope: Option<String>,
}

/// The RFC 9068 access-token policy for this issuer and audience. `sub` and `iat` are required
/// on top of the core's `exp`/`iss`/`aud`: revocation by user cutoff compares `iat`, so a
/// token without it could never be cut off.
pub(crate) fn validation(issuer: &str, audience: &str, leeway: Duration) -> Validation {
    Validation::access_token(issuer, &[audience])
        .leeway(leeway.as_secs())
        .require(&["sub", "iat"])
}

/// Verifies signature and policy, mapping the core's errors to ours.
pub(crate) fn verify(
    token: &str,
    keys: &KeySet,
    validation: &Validation,
) -> Result<AccessClaims, VerifyError> {
    let v = tessera_jwt::verify_with_keys::<TesseraClaims>(token, keys, validation).map_err(
        |e| match e {
            tessera_jwt::Error::UnknownKid(_) => VerifyError::UnknownKey,
            tessera_jwt::Error::Expired { .. } => VerifyError::Expired,
            tessera_jwt::Error::NotYetValid { .. } => VerifyError::NotYetValid,
            other => {
                tracing::debug!(error = %other, "token rejected");
                VerifyError::Invalid(other)
            }
        },
    )?;
    let c = v.into_claims();
    let r = c.registered;
    Ok(AccessClaims {
        iss: r.iss.unwrap_or_default(),
        sub: r.sub.unwrap_or_default(),
        aud: r
            .aud
            .map(|a| a.iter().map(str::to_owned).collect())
            .unwrap_or_default(),
        // `exp` is required by the policy, so present here.
        exp: r.exp.unwrap_or(0),
        nbf: r.nbf,
        iat: r.iat,
        jti: r.jti,
        sid: c.custom.sid,
        client_id: c.custom.client_id,
        roles: c.custom.roles,
        scope: c.custom.scope,
    })
}
