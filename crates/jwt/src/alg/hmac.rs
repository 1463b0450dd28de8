//! HMAC keys (HS256, HS384, HS512; RFC 7518 §3.2).

use zeroize::Zeroizing;

use crate::crypto::HmacKey;
use crate::{Algorithm, Error};

/// A shared secret bound to one HMAC algorithm.
#[derive(Clone)]
pub(crate) struct HmacSecret {
    /// The secret itself, kept for export (`k`, `to_secret_bytes`) and zeroized on drop.
    pub(crate) secret: Zeroizing<Vec<u8>>,
    /// The pre-computed aws-lc key (pads hashed once).
    pub(crate) key: HmacKey,
}

/// Minimum secret length: the hash output size. RFC 7518 §3.2: "A key of the same size as the
/// hash output ... or larger MUST be used with this algorithm."
pub(crate) fn min_len(alg: Algorithm) -> usize {
    match alg {
        Algorithm::HS384 => 48,
        Algorithm::HS512 => 64,
        _ => 32,
    }
}

impl HmacSecret {
    /// Checks the length and pre-computes the key.
    pub(crate) fn new(alg: Algorithm, secret: &[u8]) -> Result<Self, Error> {
        if !alg.is_hmac() {
            return Err(Error::InvalidKey("not an HMAC algorithm"));
        }
        let min = min_len(alg);
        if secret.len() < min {
            return Err(Error::WeakKey {
                alg,
                len: secret.len(),
                min,
            });
        }
        Ok(HmacSecret {
            secret: Zeroizing::new(secret.to_vec()),
            key: HmacKey::new(alg, secret)?,
        })
    }

    /// A fresh random secret of the hash-output size.
    pub(crate) fn generate(alg: Algorithm) -> Result<Self, Error> {
        let mut buf = Zeroizing::new(vec![0u8; min_len(alg)]);
        crate::crypto::random(&mut buf)?;
        Self::new(alg, &buf)
    }
}
