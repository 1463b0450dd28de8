//! ECDSA keys (ES256 on P-256, ES384 on P-384; RFC 7518 §3.4). Signatures are the fixed-width
//! `r || s` form, never DER; the backend rejects `r = 0` or `s = 0` (the "psychic signature",
//! CVE-2022-21449).

use crate::crypto::{EcPrivate, PublicKey};
use crate::{der, Algorithm, Error};

/// Field size in bytes of the curve of `alg`.
pub(crate) fn field_len(alg: Algorithm) -> usize {
    if alg == Algorithm::ES384 {
        48
    } else {
        32
    }
}

/// The JWK `crv` name of the curve of `alg` (RFC 7518 §6.2.1.1).
pub(crate) fn curve(alg: Algorithm) -> &'static str {
    if alg == Algorithm::ES384 {
        "P-384"
    } else {
        "P-256"
    }
}

/// An EC public key with its affine coordinates kept for export.
#[derive(Clone)]
pub(crate) struct EcPublic {
    pub(crate) x: Vec<u8>,
    pub(crate) y: Vec<u8>,
    pub(crate) key: PublicKey,
}

impl EcPublic {
    /// From JWK `x` and `y`, each exactly the field size (RFC 7518 §6.2.1.2).
    pub(crate) fn from_xy(alg: Algorithm, x: &[u8], y: &[u8]) -> Result<Self, Error> {
        let len = field_len(alg);
        if x.len() != len || y.len() != len {
            return Err(Error::InvalidKey(
                "EC coordinate has the wrong length for the curve",
            ));
        }
        let mut point = Vec::with_capacity(1 + 2 * len);
        point.push(0x04);
        point.extend_from_slice(x);
        point.extend_from_slice(y);
        // The backend checks that the point is on the curve.
        let key = PublicKey::new(alg, &point)?;
        Ok(EcPublic {
            x: x.to_vec(),
            y: y.to_vec(),
            key,
        })
    }

    /// From an uncompressed SEC1 point `04 || x || y`.
    pub(crate) fn from_point(alg: Algorithm, point: &[u8]) -> Result<Self, Error> {
        let len = field_len(alg);
        match point.split_first() {
            Some((4, xy)) if xy.len() == 2 * len => Self::from_xy(alg, &xy[..len], &xy[len..]),
            _ => Err(Error::InvalidKey(
                "EC point is not uncompressed or has the wrong size",
            )),
        }
    }

    /// From SubjectPublicKeyInfo DER.
    pub(crate) fn from_der(alg: Algorithm, der_bytes: &[u8]) -> Result<Self, Error> {
        let key = PublicKey::new(alg, der_bytes)?;
        let spki = key.spki_der()?;
        Self::from_point(alg, der::spki_key_bits(&spki)?)
    }
}

/// An EC private key.
pub(crate) struct EcSecret {
    pub(crate) key: EcPrivate,
}

impl EcSecret {
    /// The public half.
    pub(crate) fn public(&self, alg: Algorithm) -> Result<EcPublic, Error> {
        EcPublic::from_point(alg, self.key.public_point())
    }
}
