//! RSA keys (RS256/384/512 with PKCS#1 v1.5, PS256/384/512 with PSS; RFC 7518 §3.3, §3.5).

use crate::crypto::{PublicKey, RsaPrivate};
use crate::{der, Algorithm, Error};

/// Smallest accepted modulus. RFC 7518 §3.3: "A key of size 2048 bits or larger MUST be used".
pub(crate) const MIN_BITS: usize = 2048;

/// An RSA public key with its JWK components kept for export.
#[derive(Clone)]
pub(crate) struct RsaPublic {
    pub(crate) n: Vec<u8>,
    pub(crate) e: Vec<u8>,
    pub(crate) key: PublicKey,
}

fn bits(n: &[u8]) -> usize {
    match n.first() {
        Some(&b) => n.len() * 8 - b.leading_zeros() as usize,
        None => 0,
    }
}

impl RsaPublic {
    /// From big-endian `n` and `e` (JWK); enforces the 2048-bit floor.
    pub(crate) fn from_components(alg: Algorithm, n: &[u8], e: &[u8]) -> Result<Self, Error> {
        if bits(n) < MIN_BITS {
            return Err(Error::InvalidKey("RSA modulus shorter than 2048 bits"));
        }
        let key = PublicKey::rsa_from_components(alg, n, e)?;
        Ok(RsaPublic {
            n: n.to_vec(),
            e: e.to_vec(),
            key,
        })
    }

    /// From SubjectPublicKeyInfo DER (PEM "PUBLIC KEY") or PKCS#1 (PEM "RSA PUBLIC KEY").
    pub(crate) fn from_der(alg: Algorithm, der_bytes: &[u8]) -> Result<Self, Error> {
        // Validate with the backend first, then read the components from the canonical SPKI.
        let key = PublicKey::new(alg, der_bytes)?;
        let spki = key.spki_der()?;
        let (n, e) = der::rsa_public(der::spki_key_bits(&spki)?)?;
        Self::from_components(alg, n, e)
    }
}

/// An RSA private key.
pub(crate) struct RsaSecret {
    pub(crate) key: RsaPrivate,
}

impl RsaSecret {
    /// Checks the modulus size of a freshly parsed key.
    pub(crate) fn new(key: RsaPrivate) -> Result<Self, Error> {
        if key.modulus_len() * 8 < MIN_BITS {
            return Err(Error::InvalidKey("RSA modulus shorter than 2048 bits"));
        }
        Ok(RsaSecret { key })
    }

    /// The public half.
    pub(crate) fn public(&self, alg: Algorithm) -> Result<RsaPublic, Error> {
        let (n, e) = self.key.public_components();
        RsaPublic::from_components(alg, &n, &e)
    }
}
