//! Ed25519 keys (JWS `EdDSA`, JWK `OKP` with `crv` `Ed25519`; RFC 8037).

use crate::crypto::{EdPrivate, PublicKey};
use crate::{der, Algorithm, Error};

/// An Ed25519 public key with its raw bytes kept for export.
#[derive(Clone)]
pub(crate) struct EdPublic {
    pub(crate) x: Vec<u8>,
    pub(crate) key: PublicKey,
}

impl EdPublic {
    /// From the raw 32-byte key (JWK `x`, RFC 8037 §2).
    pub(crate) fn from_raw(x: &[u8]) -> Result<Self, Error> {
        if x.len() != 32 {
            return Err(Error::InvalidKey("Ed25519 public key must be 32 bytes"));
        }
        Ok(EdPublic {
            x: x.to_vec(),
            key: PublicKey::new(Algorithm::EdDSA, x)?,
        })
    }

    /// From SubjectPublicKeyInfo DER.
    pub(crate) fn from_der(der_bytes: &[u8]) -> Result<Self, Error> {
        let key = PublicKey::new(Algorithm::EdDSA, der_bytes)?;
        let spki = key.spki_der()?;
        Self::from_raw(der::spki_key_bits(&spki)?)
    }
}

/// An Ed25519 private key.
pub(crate) struct EdSecret {
    pub(crate) key: EdPrivate,
}

impl EdSecret {
    /// The public half.
    pub(crate) fn public(&self) -> Result<EdPublic, Error> {
        EdPublic::from_raw(self.key.public_raw())
    }
}
