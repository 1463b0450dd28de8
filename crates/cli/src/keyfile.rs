//! Reading key files in every form the CLI accepts: a JWK, a JWKS, a PEM key, or raw HMAC
//! secret bytes. The form is recognised from the content, never from the file name.

use std::path::Path;

use tessera_jwt::{Algorithm, Jwk, JwkSet, KeySet, SigningKey, VerifyingKey};

use crate::Failure;

/// Largest key file we read: keys are small, anything bigger is a mistake.
const MAX_KEY_FILE: u64 = 1024 * 1024;

/// Reads a key file, refusing huge or unreadable files with one clear line.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>, Failure> {
    let meta = std::fs::metadata(path)
        .map_err(|e| Failure::Usage(format!("cannot read key file {}: {e}", path.display())))?;
    if meta.len() > MAX_KEY_FILE {
        return Err(Failure::Usage(format!(
            "key file {} is too large ({} bytes) to be a key",
            path.display(),
            meta.len()
        )));
    }
    std::fs::read(path)
        .map_err(|e| Failure::Usage(format!("cannot read key file {}: {e}", path.display())))
}

/// What a key file holds.
enum Form<'a> {
    Json(&'a str),
    Pem(&'a str),
    Raw(&'a [u8]),
}

fn form(bytes: &[u8]) -> Form<'_> {
    match std::str::from_utf8(bytes) {
        Ok(s) if s.trim_start().starts_with('{') => Form::Json(s),
        Ok(s) if s.trim_start().starts_with("-----BEGIN") => Form::Pem(s),
        _ => Form::Raw(bytes),
    }
}

/// Algorithms tried, in order, for a PEM key when `--alg` is not given: the key type decides
/// between them because each constructor accepts only its own key type.
const PEM_CANDIDATES: [Algorithm; 4] = [
    Algorithm::EdDSA,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::RS256,
];

fn bad_key(path: &Path, e: impl std::fmt::Display) -> Failure {
    Failure::Usage(format!("bad key in {}: {e}", path.display()))
}

fn hmac_alg(alg: Option<Algorithm>, path: &Path) -> Result<Algorithm, Failure> {
    let alg = alg.unwrap_or(Algorithm::HS256);
    if matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
        Ok(alg)
    } else {
        Err(Failure::Usage(format!(
            "{} is neither JSON nor PEM, so it is read as an HMAC secret, but --alg {alg} is not an HMAC algorithm",
            path.display()
        )))
    }
}

/// Loads a signing key: a private JWK, a PKCS#8 PEM private key, or an HMAC secret.
pub(crate) fn signing_key(path: &Path, alg: Option<Algorithm>) -> Result<SigningKey, Failure> {
    let bytes = read(path)?;
    match form(&bytes) {
        Form::Json(s) => {
            let jwk: Jwk = serde_json::from_str(s).map_err(|e| bad_key(path, e))?;
            SigningKey::from_jwk(&jwk).map_err(|e| bad_key(path, e))
        }
        Form::Pem(s) => {
            if let Some(alg) = alg {
                return SigningKey::from_pem(alg, s).map_err(|e| bad_key(path, e));
            }
            PEM_CANDIDATES
                .iter()
                .find_map(|alg| SigningKey::from_pem(*alg, s).ok())
                .ok_or_else(|| bad_key(path, "not a PKCS#8 private key of a supported type"))
        }
        Form::Raw(secret) => {
            SigningKey::from_hmac_secret(hmac_alg(alg, path)?, secret).map_err(|e| bad_key(path, e))
        }
    }
}

/// Keys to verify with: one key (used whatever `kid` the token names), or a set (picked by
/// the token's `kid`).
#[derive(Debug)]
pub(crate) enum Keys {
    /// A single key.
    One(VerifyingKey),
    /// A JWKS.
    Set(KeySet),
}

/// Loads verification keys: a public (or private) JWK, a JWKS, an SPKI PEM public key, or an
/// HMAC secret.
pub(crate) fn verifying_keys(path: &Path, alg: Option<Algorithm>) -> Result<Keys, Failure> {
    let bytes = read(path)?;
    let single = |k: VerifyingKey| Ok(Keys::One(k));
    match form(&bytes) {
        Form::Json(s) => {
            let value: serde_json::Value = serde_json::from_str(s).map_err(|e| bad_key(path, e))?;
            if value.get("keys").is_some() {
                let set: JwkSet = serde_json::from_value(value).map_err(|e| bad_key(path, e))?;
                Ok(Keys::Set(
                    KeySet::from_jwks(&set).map_err(|e| bad_key(path, e))?,
                ))
            } else {
                let jwk: Jwk = serde_json::from_value(value).map_err(|e| bad_key(path, e))?;
                // A private JWK verifies too: use its public half.
                let key = match SigningKey::from_jwk(&jwk) {
                    Ok(k) => k.verifying_key(),
                    Err(_) => VerifyingKey::from_jwk(&jwk).map_err(|e| bad_key(path, e))?,
                };
                single(key)
            }
        }
        Form::Pem(s) => {
            let key = if s.contains("PRIVATE KEY") {
                signing_key(path, alg)?.verifying_key()
            } else if let Some(alg) = alg {
                VerifyingKey::from_pem(alg, s).map_err(|e| bad_key(path, e))?
            } else {
                PEM_CANDIDATES
                    .iter()
                    .find_map(|alg| VerifyingKey::from_pem(*alg, s).ok())
                    .ok_or_else(|| bad_key(path, "not an SPKI public key of a supported type"))?
            };
            single(key)
        }
        Form::Raw(secret) => single(
            VerifyingKey::from_hmac_secret(hmac_alg(alg, path)?, secret)
                .map_err(|e| bad_key(path, e))?,
        ),
    }
}
