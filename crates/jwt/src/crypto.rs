//! The one seam over the crypto crate (aws-lc-rs).
//!
//! No other file names `aws_lc_rs`. Everything here works on bytes and on the crate's own
//! [`Algorithm`]; key *formats* (JWK members, PEM armour) are handled by the callers in
//! `alg/`, `jwk.rs` and `der.rs`. Keys are parsed once, at construction, into aws-lc-rs key
//! objects so that the verification hot path does no key parsing (the `ParsedPublicKey` type
//! keeps the `EVP_PKEY`).
//!
//! Memory hygiene: aws-lc frees key objects with `OPENSSL_free`, which cleanses the memory;
//! copies of secrets that this crate keeps itself live in `zeroize::Zeroizing` buffers.

use aws_lc_rs::encoding::{AsBigEndian, AsDer};
use aws_lc_rs::signature::{self, KeyPair as _};
use aws_lc_rs::{digest, hmac, rand, rsa as lc_rsa};
use zeroize::Zeroizing;

use crate::{Algorithm, Error};

/// Fills `buf` with cryptographically secure random bytes.
pub(crate) fn random(buf: &mut [u8]) -> Result<(), Error> {
    rand::fill(buf).map_err(|_| Error::Crypto("random generation failed"))
}

/// SHA-256 of `data` (RFC 7638 thumbprints).
pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// A signature or MAC produced by one of the keys below, without an extra copy.
// A short-lived stack value; keeping aws-lc's fixed buffers avoids a heap copy per signature.
#[allow(clippy::large_enum_variant)]
pub(crate) enum SignatureBytes {
    /// An HMAC tag.
    Tag(hmac::Tag),
    /// An ECDSA or Ed25519 signature.
    Sig(signature::Signature),
    /// An RSA signature.
    Vec(Vec<u8>),
}

impl AsRef<[u8]> for SignatureBytes {
    fn as_ref(&self) -> &[u8] {
        match self {
            SignatureBytes::Tag(t) => t.as_ref(),
            SignatureBytes::Sig(s) => s.as_ref(),
            SignatureBytes::Vec(v) => v,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// HMAC

/// A pre-computed HMAC key (the inner and outer pads are hashed once, at construction).
#[derive(Clone)]
pub(crate) struct HmacKey {
    key: hmac::Key,
}

impl HmacKey {
    /// Builds the key for `alg`, which must be an HMAC algorithm.
    pub(crate) fn new(alg: Algorithm, secret: &[u8]) -> Result<HmacKey, Error> {
        let a = match alg {
            Algorithm::HS256 => hmac::HMAC_SHA256,
            Algorithm::HS384 => hmac::HMAC_SHA384,
            Algorithm::HS512 => hmac::HMAC_SHA512,
            _ => return Err(Error::InvalidKey("not an HMAC algorithm")),
        };
        Ok(HmacKey {
            key: hmac::Key::new(a, secret),
        })
    }

    /// Computes the MAC of `msg`.
    pub(crate) fn sign(&self, msg: &[u8]) -> SignatureBytes {
        SignatureBytes::Tag(hmac::sign(&self.key, msg))
    }

    /// Checks `tag` in constant time.
    pub(crate) fn verify(&self, msg: &[u8], tag: &[u8]) -> bool {
        hmac::verify(&self.key, msg, tag).is_ok()
    }
}

/// Whether two secrets are equal, in time independent of their contents (lengths may leak).
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}

// ---------------------------------------------------------------------------------------------
// Public keys

/// A parsed public key bound to one JWS algorithm.
#[derive(Clone)]
pub(crate) struct PublicKey {
    key: signature::ParsedPublicKey,
}

fn verification_alg(alg: Algorithm) -> Option<&'static dyn signature::VerificationAlgorithm> {
    Some(match alg {
        Algorithm::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
        // JWS uses the fixed-width r||s encoding (RFC 7518 §3.4), never DER.
        Algorithm::ES256 => &signature::ECDSA_P256_SHA256_FIXED,
        Algorithm::ES384 => &signature::ECDSA_P384_SHA384_FIXED,
        Algorithm::EdDSA => &signature::ED25519,
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => return None,
    })
}

impl PublicKey {
    /// Parses a key from its natural encoding for `alg`: SPKI DER for any family, or
    /// additionally PKCS#1 `RSAPublicKey` (RSA), an uncompressed SEC1 point (EC), the raw 32
    /// bytes (Ed25519). The curve and key type are checked against `alg`.
    pub(crate) fn new(alg: Algorithm, bytes: &[u8]) -> Result<PublicKey, Error> {
        let va = verification_alg(alg).ok_or(Error::InvalidKey("HMAC has no public key"))?;
        let key = signature::ParsedPublicKey::new(va, bytes)
            .map_err(|_| Error::InvalidKey("public key rejected for this algorithm"))?;
        Ok(PublicKey { key })
    }

    /// Builds an RSA public key from big-endian `n` and `e` (JWK members, RFC 7518 §6.3.1).
    pub(crate) fn rsa_from_components(alg: Algorithm, n: &[u8], e: &[u8]) -> Result<Self, Error> {
        let params: &'static signature::RsaParameters = match alg {
            Algorithm::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            Algorithm::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
            Algorithm::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
            Algorithm::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
            Algorithm::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
            Algorithm::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
            _ => return Err(Error::InvalidKey("not an RSA algorithm")),
        };
        let key = signature::RsaPublicKeyComponents { n, e }
            .to_parsed_public_key(params)
            .map_err(|_| Error::InvalidKey("RSA public components rejected"))?;
        Ok(PublicKey { key })
    }

    /// Verifies `sig` over `msg`.
    #[inline]
    pub(crate) fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        self.key.verify_sig(msg, sig).is_ok()
    }

    /// The SubjectPublicKeyInfo DER encoding (RFC 5280), for PEM export and JWK members.
    pub(crate) fn spki_der(&self) -> Result<Vec<u8>, Error> {
        self.key
            .as_der()
            .map(|d| d.as_ref().to_vec())
            .map_err(|_| Error::Crypto("public key encoding failed"))
    }
}

// ---------------------------------------------------------------------------------------------
// Private keys

/// An RSA private key.
pub(crate) struct RsaPrivate(lc_rsa::KeyPair);

/// The raw components of an RSA private key, big-endian (JWK members, RFC 7518 §6.3.2).
pub(crate) struct RsaComponents<'a> {
    pub n: &'a [u8],
    pub e: &'a [u8],
    pub d: &'a [u8],
    pub p: &'a [u8],
    pub q: &'a [u8],
    pub dp: &'a [u8],
    pub dq: &'a [u8],
    pub qi: &'a [u8],
}

impl RsaPrivate {
    /// Generates a 2048-bit key.
    pub(crate) fn generate() -> Result<Self, Error> {
        lc_rsa::KeyPair::generate(lc_rsa::KeySize::Rsa2048)
            .map(RsaPrivate)
            .map_err(|_| Error::Crypto("RSA key generation failed"))
    }

    /// Parses PKCS#8 `PrivateKeyInfo` or PKCS#1 `RSAPrivateKey` DER.
    pub(crate) fn from_der(der: &[u8]) -> Result<Self, Error> {
        lc_rsa::KeyPair::from_pkcs8(der)
            .or_else(|_| lc_rsa::KeyPair::from_der(der))
            .map(RsaPrivate)
            .map_err(|_| Error::InvalidKey("RSA private key rejected"))
    }

    /// Builds the key from its components; aws-lc checks their consistency.
    pub(crate) fn from_components(c: &RsaComponents<'_>) -> Result<Self, Error> {
        let comps = lc_rsa::KeyPairComponents {
            public_key: signature::RsaPublicKeyComponents { n: c.n, e: c.e },
            d: c.d,
            p: c.p,
            q: c.q,
            dP: c.dp,
            dQ: c.dq,
            qInv: c.qi,
        };
        lc_rsa::KeyPair::from_components(&comps)
            .map(RsaPrivate)
            .map_err(|_| Error::InvalidKey("RSA private components rejected"))
    }

    /// Modulus length in bytes.
    pub(crate) fn modulus_len(&self) -> usize {
        self.0.public_modulus_len()
    }

    /// PKCS#8 v1 DER of the private key.
    pub(crate) fn pkcs8(&self) -> Result<Zeroizing<Vec<u8>>, Error> {
        let doc: aws_lc_rs::encoding::Pkcs8V1Der<'static> = self
            .0
            .as_der()
            .map_err(|_| Error::Crypto("RSA key encoding failed"))?;
        Ok(Zeroizing::new(doc.as_ref().to_vec()))
    }

    /// Public modulus and exponent, big-endian without leading zeros.
    pub(crate) fn public_components(&self) -> (Vec<u8>, Vec<u8>) {
        let pk = self.0.public_key();
        (
            pk.modulus().big_endian_without_leading_zero().to_vec(),
            pk.exponent().big_endian_without_leading_zero().to_vec(),
        )
    }

    /// Signs `msg` with PKCS#1 v1.5 (RS*) or PSS (PS*) padding.
    pub(crate) fn sign(&self, alg: Algorithm, msg: &[u8]) -> Result<SignatureBytes, Error> {
        let enc: &'static dyn signature::RsaEncoding = match alg {
            Algorithm::RS256 => &signature::RSA_PKCS1_SHA256,
            Algorithm::RS384 => &signature::RSA_PKCS1_SHA384,
            Algorithm::RS512 => &signature::RSA_PKCS1_SHA512,
            Algorithm::PS256 => &signature::RSA_PSS_SHA256,
            Algorithm::PS384 => &signature::RSA_PSS_SHA384,
            Algorithm::PS512 => &signature::RSA_PSS_SHA512,
            _ => return Err(Error::InvalidKey("not an RSA algorithm")),
        };
        let mut out = vec![0u8; self.0.public_modulus_len()];
        self.0
            .sign(enc, &rand::SystemRandom::new(), msg, &mut out)
            .map_err(|_| Error::Crypto("RSA signing failed"))?;
        Ok(SignatureBytes::Vec(out))
    }
}

/// An ECDSA private key (P-256 or P-384), producing fixed-width r||s signatures.
pub(crate) struct EcPrivate(signature::EcdsaKeyPair);

fn ec_signing_alg(alg: Algorithm) -> Result<&'static signature::EcdsaSigningAlgorithm, Error> {
    match alg {
        Algorithm::ES256 => Ok(&signature::ECDSA_P256_SHA256_FIXED_SIGNING),
        Algorithm::ES384 => Ok(&signature::ECDSA_P384_SHA384_FIXED_SIGNING),
        _ => Err(Error::InvalidKey("not an ECDSA algorithm")),
    }
}

impl EcPrivate {
    /// Generates a key on the curve of `alg`.
    pub(crate) fn generate(alg: Algorithm) -> Result<Self, Error> {
        signature::EcdsaKeyPair::generate(ec_signing_alg(alg)?)
            .map(EcPrivate)
            .map_err(|_| Error::Crypto("EC key generation failed"))
    }

    /// Parses PKCS#8 or SEC1 (RFC 5915) DER; the curve must match `alg`.
    pub(crate) fn from_der(alg: Algorithm, der: &[u8]) -> Result<Self, Error> {
        let a = ec_signing_alg(alg)?;
        signature::EcdsaKeyPair::from_pkcs8(a, der)
            .or_else(|_| signature::EcdsaKeyPair::from_private_key_der(a, der))
            .map(EcPrivate)
            .map_err(|_| Error::InvalidKey("EC private key rejected (wrong curve?)"))
    }

    /// Builds the key from the scalar `d` and the uncompressed public point; checks they match.
    pub(crate) fn from_scalar(alg: Algorithm, d: &[u8], point: &[u8]) -> Result<Self, Error> {
        signature::EcdsaKeyPair::from_private_key_and_public_key(ec_signing_alg(alg)?, d, point)
            .map(EcPrivate)
            .map_err(|_| Error::InvalidKey("EC private key components rejected"))
    }

    /// PKCS#8 v1 DER.
    pub(crate) fn pkcs8(&self) -> Result<Zeroizing<Vec<u8>>, Error> {
        let doc = self
            .0
            .to_pkcs8v1()
            .map_err(|_| Error::Crypto("EC key encoding failed"))?;
        Ok(Zeroizing::new(doc.as_ref().to_vec()))
    }

    /// The private scalar, big-endian, padded to the field size.
    pub(crate) fn scalar(&self) -> Result<Zeroizing<Vec<u8>>, Error> {
        let bin: aws_lc_rs::encoding::EcPrivateKeyBin<'static> = self
            .0
            .private_key()
            .as_be_bytes()
            .map_err(|_| Error::Crypto("EC key encoding failed"))?;
        Ok(Zeroizing::new(bin.as_ref().to_vec()))
    }

    /// The uncompressed public point `04 || x || y`.
    pub(crate) fn public_point(&self) -> &[u8] {
        self.0.public_key().as_ref()
    }

    /// Signs `msg`; the output is r||s, each padded to the field size (RFC 7518 §3.4).
    pub(crate) fn sign(&self, msg: &[u8]) -> Result<SignatureBytes, Error> {
        self.0
            .sign(&rand::SystemRandom::new(), msg)
            .map(SignatureBytes::Sig)
            .map_err(|_| Error::Crypto("ECDSA signing failed"))
    }
}

/// An Ed25519 private key.
pub(crate) struct EdPrivate(signature::Ed25519KeyPair);

impl EdPrivate {
    /// Generates a key.
    pub(crate) fn generate() -> Result<Self, Error> {
        signature::Ed25519KeyPair::generate()
            .map(EdPrivate)
            .map_err(|_| Error::Crypto("Ed25519 key generation failed"))
    }

    /// Parses PKCS#8 v1 or v2 DER.
    pub(crate) fn from_der(der: &[u8]) -> Result<Self, Error> {
        signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
            .map(EdPrivate)
            .map_err(|_| Error::InvalidKey("Ed25519 private key rejected"))
    }

    /// Builds the key from the 32-byte seed `d` and, when given, checks the public key `x`.
    pub(crate) fn from_seed(seed: &[u8], public: Option<&[u8]>) -> Result<Self, Error> {
        match public {
            Some(x) => signature::Ed25519KeyPair::from_seed_and_public_key(seed, x),
            None => signature::Ed25519KeyPair::from_seed_unchecked(seed),
        }
        .map(EdPrivate)
        .map_err(|_| Error::InvalidKey("Ed25519 key components rejected"))
    }

    /// PKCS#8 v1 DER (seed only, the form most tools read).
    pub(crate) fn pkcs8(&self) -> Result<Zeroizing<Vec<u8>>, Error> {
        let doc = self
            .0
            .to_pkcs8v1()
            .map_err(|_| Error::Crypto("Ed25519 key encoding failed"))?;
        Ok(Zeroizing::new(doc.as_ref().to_vec()))
    }

    /// The 32-byte seed.
    pub(crate) fn seed(&self) -> Result<Zeroizing<Vec<u8>>, Error> {
        let seed = self
            .0
            .seed()
            .map_err(|_| Error::Crypto("Ed25519 key encoding failed"))?;
        let bin: aws_lc_rs::encoding::Curve25519SeedBin<'static> = seed
            .as_be_bytes()
            .map_err(|_| Error::Crypto("Ed25519 key encoding failed"))?;
        Ok(Zeroizing::new(bin.as_ref().to_vec()))
    }

    /// The raw 32-byte public key.
    pub(crate) fn public_raw(&self) -> &[u8] {
        self.0.public_key().as_ref()
    }

    /// Signs `msg` (deterministic, RFC 8032).
    pub(crate) fn sign(&self, msg: &[u8]) -> SignatureBytes {
        SignatureBytes::Sig(self.0.sign(msg))
    }
}
