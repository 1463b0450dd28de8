//! Algorithms and keys.
//!
//! A key is bound to exactly one [`Algorithm`] when it is built (RFC 8725 §3.1: the key, not
//! the token, decides how a signature is checked). One module per algorithm family holds that
//! family's key type; this module dispatches between them.

pub(crate) mod ecdsa;
pub(crate) mod eddsa;
pub(crate) mod hmac;
pub(crate) mod rsa;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

use crate::crypto::{EcPrivate, EdPrivate, RsaPrivate, SignatureBytes};
use crate::jwk::{b64_decode_field, b64_encode, Jwk};
use crate::{der, Error};

use self::ecdsa::{EcPublic, EcSecret};
use self::eddsa::{EdPublic, EdSecret};
use self::hmac::HmacSecret;
use self::rsa::{RsaPublic, RsaSecret};

/// A JWS signature algorithm (RFC 7518 §3.1, RFC 8037 §3.1). There is deliberately no `none`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(clippy::upper_case_acronyms)] // the JWS registry names, verbatim
pub enum Algorithm {
    /// HMAC with SHA-256.
    HS256,
    /// HMAC with SHA-384.
    HS384,
    /// HMAC with SHA-512.
    HS512,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256 and MGF1 with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384 and MGF1 with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512 and MGF1 with SHA-512.
    PS512,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// ECDSA on P-384 with SHA-384.
    ES384,
    /// EdDSA with Ed25519 (RFC 8037).
    EdDSA,
}

impl Algorithm {
    /// Every supported algorithm.
    pub const ALL: [Algorithm; 12] = [
        Algorithm::HS256,
        Algorithm::HS384,
        Algorithm::HS512,
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ];

    /// The JWS `alg` name.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::HS256 => "HS256",
            Algorithm::HS384 => "HS384",
            Algorithm::HS512 => "HS512",
            Algorithm::RS256 => "RS256",
            Algorithm::RS384 => "RS384",
            Algorithm::RS512 => "RS512",
            Algorithm::PS256 => "PS256",
            Algorithm::PS384 => "PS384",
            Algorithm::PS512 => "PS512",
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::EdDSA => "EdDSA",
        }
    }

    /// Whether this is an HMAC (shared-secret) algorithm.
    pub fn is_hmac(self) -> bool {
        matches!(self, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
    }

    /// Whether this is an RSA algorithm (PKCS#1 v1.5 or PSS).
    pub fn is_rsa(self) -> bool {
        matches!(
            self,
            Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512
        )
    }

    /// Whether this is an ECDSA algorithm.
    pub fn is_ecdsa(self) -> bool {
        matches!(self, Algorithm::ES256 | Algorithm::ES384)
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = Error;

    /// Exact, case-sensitive match on the registered name (RFC 7515 §4.1.1: `alg` is a
    /// case-sensitive string). `none` in any spelling is [`Error::UnsupportedAlgorithm`].
    fn from_str(s: &str) -> Result<Self, Error> {
        Ok(match s {
            "HS256" => Algorithm::HS256,
            "HS384" => Algorithm::HS384,
            "HS512" => Algorithm::HS512,
            "RS256" => Algorithm::RS256,
            "RS384" => Algorithm::RS384,
            "RS512" => Algorithm::RS512,
            "PS256" => Algorithm::PS256,
            "PS384" => Algorithm::PS384,
            "PS512" => Algorithm::PS512,
            "ES256" => Algorithm::ES256,
            "ES384" => Algorithm::ES384,
            "EdDSA" => Algorithm::EdDSA,
            other => return Err(Error::UnsupportedAlgorithm(crate::error::truncate(other))),
        })
    }
}

impl Serialize for Algorithm {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Algorithm {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

// ---------------------------------------------------------------------------------------------
// Verifying keys

/// The public material of a verifying key, one variant per family.
// Lives behind an Arc, so its size does not matter; boxing the HMAC variant would add a
// pointer chase to the verification hot path.
#[allow(clippy::large_enum_variant)]
pub(crate) enum PublicMaterial {
    Hmac(HmacSecret),
    Rsa(RsaPublic),
    Ec(EcPublic),
    Ed(EdPublic),
}

/// A key that checks signatures: a public key, or an HMAC secret. Bound to one algorithm.
///
/// Cloning is cheap (the parsed key is shared behind an `Arc`). `Debug` shows the algorithm,
/// the `kid` and the thumbprint only, never secret material.
#[derive(Clone)]
pub struct VerifyingKey {
    alg: Algorithm,
    kid: Option<Arc<str>>,
    material: Arc<PublicMaterial>,
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("VerifyingKey");
        d.field("alg", &self.alg).field("kid", &self.kid());
        if self.alg.is_hmac() {
            d.field("secret", &"<redacted>");
        } else {
            d.field("thumbprint", &self.thumbprint());
        }
        d.finish()
    }
}

impl VerifyingKey {
    fn new(alg: Algorithm, material: PublicMaterial) -> Self {
        VerifyingKey {
            alg,
            kid: None,
            material: Arc::new(material),
        }
    }

    /// Imports a public JWK (RFC 7517 §4, RFC 7518 §6, RFC 8037 §2).
    ///
    /// The algorithm is the JWK's `alg`; without one it is inferred only where that is
    /// unambiguous: EC P-256 → ES256, P-384 → ES384, OKP Ed25519 → EdDSA. RSA and `oct` keys
    /// need `alg` (RS256 and PS256 keys look the same). Private members are ignored. A key
    /// marked `"use": "enc"` is refused.
    pub fn from_jwk(jwk: &Jwk) -> Result<VerifyingKey, Error> {
        if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
            return Err(Error::InvalidKey("JWK is not a signature key (use != sig)"));
        }
        let alg = jwk_algorithm(jwk)?;
        let material = match jwk.kty.as_str() {
            "oct" => {
                let k = b64_decode_field(jwk.k.as_deref(), "k")?;
                PublicMaterial::Hmac(HmacSecret::new(alg, &k)?)
            }
            "RSA" => {
                let n = b64_decode_field(jwk.n.as_deref(), "n")?;
                let e = b64_decode_field(jwk.e.as_deref(), "e")?;
                PublicMaterial::Rsa(RsaPublic::from_components(alg, &n, &e)?)
            }
            "EC" => {
                let x = b64_decode_field(jwk.x.as_deref(), "x")?;
                let y = b64_decode_field(jwk.y.as_deref(), "y")?;
                PublicMaterial::Ec(EcPublic::from_xy(alg, &x, &y)?)
            }
            "OKP" => {
                let x = b64_decode_field(jwk.x.as_deref(), "x")?;
                PublicMaterial::Ed(EdPublic::from_raw(&x)?)
            }
            _ => return Err(Error::InvalidKey("unsupported kty")),
        };
        let key = VerifyingKey::new(alg, material);
        Ok(match &jwk.kid {
            Some(kid) => key.with_kid(kid.as_str()),
            None => key,
        })
    }

    /// Imports a PEM public key for `alg`: `PUBLIC KEY` (SPKI, RFC 5280), `RSA PUBLIC KEY`
    /// (PKCS#1), or a private key PEM whose public half is taken.
    pub fn from_pem(alg: Algorithm, pem: &str) -> Result<VerifyingKey, Error> {
        let block = der::pem_decode(pem)?;
        match block.label.as_str() {
            "PUBLIC KEY" | "RSA PUBLIC KEY" => Self::from_public_der(alg, &block.der),
            "PRIVATE KEY" | "RSA PRIVATE KEY" | "EC PRIVATE KEY" => {
                Ok(SigningKey::from_pem(alg, pem)?.verifying_key())
            }
            _ => Err(Error::InvalidKey("unexpected PEM label")),
        }
    }

    /// Imports a DER public key for `alg`: SPKI for every family; PKCS#1 `RSAPublicKey` for
    /// RSA.
    pub fn from_public_der(alg: Algorithm, der_bytes: &[u8]) -> Result<VerifyingKey, Error> {
        let material = if alg.is_rsa() {
            PublicMaterial::Rsa(RsaPublic::from_der(alg, der_bytes)?)
        } else if alg.is_ecdsa() {
            PublicMaterial::Ec(EcPublic::from_der(alg, der_bytes)?)
        } else if alg == Algorithm::EdDSA {
            PublicMaterial::Ed(EdPublic::from_der(der_bytes)?)
        } else {
            return Err(Error::InvalidKey("HMAC keys have no public-key encoding"));
        };
        Ok(VerifyingKey::new(alg, material))
    }

    /// An HMAC verifying key; refuses secrets shorter than the hash output (RFC 7518 §3.2).
    pub fn from_hmac_secret(alg: Algorithm, secret: &[u8]) -> Result<VerifyingKey, Error> {
        Ok(VerifyingKey::new(
            alg,
            PublicMaterial::Hmac(HmacSecret::new(alg, secret)?),
        ))
    }

    /// The public JWK, with `kid` (if set), `alg` and `"use": "sig"`. For an HMAC key this is
    /// the `oct` JWK, which contains the secret.
    pub fn to_jwk(&self) -> Jwk {
        let mut jwk = match &*self.material {
            PublicMaterial::Hmac(h) => Jwk::new("oct").k(b64_encode(&h.secret)),
            PublicMaterial::Rsa(r) => Jwk::new("RSA").n(b64_encode(&r.n)).e(b64_encode(&r.e)),
            PublicMaterial::Ec(e) => Jwk::new("EC")
                .crv(ecdsa::curve(self.alg))
                .x(b64_encode(&e.x))
                .y(b64_encode(&e.y)),
            PublicMaterial::Ed(e) => Jwk::new("OKP").crv("Ed25519").x(b64_encode(&e.x)),
        };
        jwk.alg = Some(self.alg.as_str().to_owned());
        jwk.use_ = Some("sig".to_owned());
        jwk.kid = self.kid.as_deref().map(str::to_owned);
        jwk
    }

    /// The public key as PEM `PUBLIC KEY` (SPKI). HMAC keys have none.
    pub fn to_pem(&self) -> Result<String, Error> {
        let pk = match &*self.material {
            PublicMaterial::Hmac(_) => {
                return Err(Error::Unsupported("HMAC keys have no public-key encoding"))
            }
            PublicMaterial::Rsa(r) => &r.key,
            PublicMaterial::Ec(e) => &e.key,
            PublicMaterial::Ed(e) => &e.key,
        };
        Ok(der::pem_encode("PUBLIC KEY", &pk.spki_der()?).to_string())
    }

    /// Sets the key id.
    pub fn with_kid(mut self, kid: impl Into<String>) -> VerifyingKey {
        self.kid = Some(Arc::from(kid.into()));
        self
    }

    /// The key id, if any.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The one algorithm this key verifies.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The RFC 7638 thumbprint (SHA-256, base64url) of the public JWK.
    pub fn thumbprint(&self) -> String {
        // Infallible: to_jwk always fills the required members.
        self.to_jwk().thumbprint().unwrap_or_default()
    }

    /// Checks `sig` over `msg` with the key's algorithm. Constant time for HMAC.
    #[inline]
    pub(crate) fn verify_raw(&self, msg: &[u8], sig: &[u8]) -> bool {
        match &*self.material {
            PublicMaterial::Hmac(h) => h.key.verify(msg, sig),
            PublicMaterial::Rsa(r) => r.key.verify(msg, sig),
            PublicMaterial::Ec(e) => e.key.verify(msg, sig),
            PublicMaterial::Ed(e) => e.key.verify(msg, sig),
        }
    }
}

/// Works out the algorithm of a JWK: the `alg` member if present (and consistent with the key
/// type), or the one unambiguous algorithm of the curve.
fn jwk_algorithm(jwk: &Jwk) -> Result<Algorithm, Error> {
    let declared = match &jwk.alg {
        Some(a) => Some(a.parse::<Algorithm>()?),
        None => None,
    };
    let alg = match jwk.kty.as_str() {
        "oct" => declared.ok_or(Error::InvalidKey("oct JWK needs an alg"))?,
        "RSA" => declared.ok_or(Error::InvalidKey("RSA JWK needs an alg (RS* or PS*)"))?,
        "EC" => {
            let from_crv = match jwk.crv.as_deref() {
                Some("P-256") => Algorithm::ES256,
                Some("P-384") => Algorithm::ES384,
                _ => return Err(Error::InvalidKey("unsupported EC curve")),
            };
            if declared.is_some_and(|d| d != from_crv) {
                return Err(Error::InvalidKey("JWK alg does not match its curve"));
            }
            from_crv
        }
        "OKP" => {
            if jwk.crv.as_deref() != Some("Ed25519") {
                return Err(Error::InvalidKey("unsupported OKP curve"));
            }
            if declared.is_some_and(|d| d != Algorithm::EdDSA) {
                return Err(Error::InvalidKey("JWK alg does not match its curve"));
            }
            Algorithm::EdDSA
        }
        _ => return Err(Error::InvalidKey("unsupported kty")),
    };
    let family_ok = match jwk.kty.as_str() {
        "oct" => alg.is_hmac(),
        "RSA" => alg.is_rsa(),
        _ => true,
    };
    if !family_ok {
        return Err(Error::InvalidKey("JWK alg does not match its kty"));
    }
    Ok(alg)
}

// ---------------------------------------------------------------------------------------------
// Signing keys

// One per signing key; boxing would only add a pointer chase when signing.
#[allow(clippy::large_enum_variant)]
enum PrivateMaterial {
    Hmac(HmacSecret),
    Rsa(RsaSecret),
    Ec(EcSecret),
    Ed(EdSecret),
}

/// A key that signs: a private key or an HMAC secret, bound to one algorithm, with an optional
/// key id.
///
/// Secret material is zeroized on drop (aws-lc cleanses freed key objects; this crate's own
/// copies are `Zeroizing`). `Debug` never shows it.
pub struct SigningKey {
    alg: Algorithm,
    kid: Option<String>,
    material: PrivateMaterial,
    /// PKCS#8 DER for asymmetric keys, kept so that export is infallible.
    pkcs8: Zeroizing<Vec<u8>>,
    /// The public half, derived once at construction (without `kid`).
    public: VerifyingKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl SigningKey {
    fn from_material(alg: Algorithm, material: PrivateMaterial) -> Result<SigningKey, Error> {
        let pkcs8 = match &material {
            PrivateMaterial::Hmac(_) => Zeroizing::new(Vec::new()),
            PrivateMaterial::Rsa(r) => r.key.pkcs8()?,
            PrivateMaterial::Ec(e) => e.key.pkcs8()?,
            PrivateMaterial::Ed(e) => e.key.pkcs8()?,
        };
        let public = match &material {
            PrivateMaterial::Hmac(h) => PublicMaterial::Hmac(h.clone()),
            PrivateMaterial::Rsa(r) => PublicMaterial::Rsa(r.public(alg)?),
            PrivateMaterial::Ec(e) => PublicMaterial::Ec(e.public(alg)?),
            PrivateMaterial::Ed(e) => PublicMaterial::Ed(e.public()?),
        };
        Ok(SigningKey {
            alg,
            kid: None,
            material,
            pkcs8,
            public: VerifyingKey::new(alg, public),
        })
    }

    /// Generates a fresh key: RSA 2048, P-256/P-384, Ed25519, or a hash-size random HMAC secret.
    pub fn generate(alg: Algorithm) -> Result<SigningKey, Error> {
        let material = if alg.is_hmac() {
            PrivateMaterial::Hmac(HmacSecret::generate(alg)?)
        } else if alg.is_rsa() {
            PrivateMaterial::Rsa(RsaSecret::new(RsaPrivate::generate()?)?)
        } else if alg.is_ecdsa() {
            PrivateMaterial::Ec(EcSecret {
                key: EcPrivate::generate(alg)?,
            })
        } else {
            PrivateMaterial::Ed(EdSecret {
                key: EdPrivate::generate()?,
            })
        };
        Self::from_material(alg, material)
    }

    /// An HMAC signing key; refuses secrets shorter than the hash output (RFC 7518 §3.2).
    pub fn from_hmac_secret(alg: Algorithm, secret: &[u8]) -> Result<SigningKey, Error> {
        Self::from_material(alg, PrivateMaterial::Hmac(HmacSecret::new(alg, secret)?))
    }

    /// Imports a private key from DER: PKCS#8 for every family, plus PKCS#1 `RSAPrivateKey`
    /// for RSA and SEC1 `ECPrivateKey` for EC. The key type and curve must fit `alg`.
    pub fn from_pkcs8_der(alg: Algorithm, der_bytes: &[u8]) -> Result<SigningKey, Error> {
        let material = if alg.is_rsa() {
            PrivateMaterial::Rsa(RsaSecret::new(RsaPrivate::from_der(der_bytes)?)?)
        } else if alg.is_ecdsa() {
            PrivateMaterial::Ec(EcSecret {
                key: EcPrivate::from_der(alg, der_bytes)?,
            })
        } else if alg == Algorithm::EdDSA {
            PrivateMaterial::Ed(EdSecret {
                key: EdPrivate::from_der(der_bytes)?,
            })
        } else {
            return Err(Error::InvalidKey("HMAC keys have no PKCS#8 form"));
        };
        Self::from_material(alg, material)
    }

    /// Inverse of [`SigningKey::to_secret_bytes`]: PKCS#8 DER for asymmetric algorithms, the
    /// raw secret for HMAC.
    pub fn from_secret_bytes(alg: Algorithm, bytes: &[u8]) -> Result<SigningKey, Error> {
        if alg.is_hmac() {
            Self::from_hmac_secret(alg, bytes)
        } else {
            Self::from_pkcs8_der(alg, bytes)
        }
    }

    /// The secret as bytes, for encryption at rest: PKCS#8 DER, or the raw HMAC secret.
    pub fn to_secret_bytes(&self) -> Zeroizing<Vec<u8>> {
        match &self.material {
            PrivateMaterial::Hmac(h) => h.secret.clone(),
            _ => self.pkcs8.clone(),
        }
    }

    /// Imports a PEM private key: `PRIVATE KEY` (PKCS#8), `RSA PRIVATE KEY`, `EC PRIVATE KEY`.
    pub fn from_pem(alg: Algorithm, pem: &str) -> Result<SigningKey, Error> {
        let block = der::pem_decode(pem)?;
        match block.label.as_str() {
            "PRIVATE KEY" | "RSA PRIVATE KEY" | "EC PRIVATE KEY" => {
                Self::from_pkcs8_der(alg, &block.der)
            }
            _ => Err(Error::InvalidKey("expected a private key PEM")),
        }
    }

    /// Exports the private key as PEM `PRIVATE KEY` (PKCS#8). HMAC secrets have no PEM form.
    pub fn to_pem(&self) -> Result<Zeroizing<String>, Error> {
        if self.alg.is_hmac() {
            return Err(Error::Unsupported("HMAC secrets have no PEM form"));
        }
        Ok(der::pem_encode("PRIVATE KEY", &self.pkcs8))
    }

    /// Imports a private JWK (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037 §2). The algorithm
    /// rules are those of [`VerifyingKey::from_jwk`]. Multi-prime RSA (`oth`) is not supported.
    pub fn from_jwk(jwk: &Jwk) -> Result<SigningKey, Error> {
        let alg = jwk_algorithm(jwk)?;
        let material = match jwk.kty.as_str() {
            "oct" => PrivateMaterial::Hmac(HmacSecret::new(
                alg,
                &b64_decode_field(jwk.k.as_deref(), "k")?,
            )?),
            "RSA" => {
                let f = |v: Option<&str>, n| b64_decode_field(v, n);
                let (n, e, d) = (
                    f(jwk.n.as_deref(), "n")?,
                    f(jwk.e.as_deref(), "e")?,
                    f(jwk.d.as_deref(), "d")?,
                );
                let (p, q) = (f(jwk.p.as_deref(), "p")?, f(jwk.q.as_deref(), "q")?);
                let (dp, dq, qi) = (
                    f(jwk.dp.as_deref(), "dp")?,
                    f(jwk.dq.as_deref(), "dq")?,
                    f(jwk.qi.as_deref(), "qi")?,
                );
                let key = RsaPrivate::from_components(&crate::crypto::RsaComponents {
                    n: &n,
                    e: &e,
                    d: &d,
                    p: &p,
                    q: &q,
                    dp: &dp,
                    dq: &dq,
                    qi: &qi,
                })?;
                PrivateMaterial::Rsa(RsaSecret::new(key)?)
            }
            "EC" => {
                let x = b64_decode_field(jwk.x.as_deref(), "x")?;
                let y = b64_decode_field(jwk.y.as_deref(), "y")?;
                let d = b64_decode_field(jwk.d.as_deref(), "d")?;
                let len = ecdsa::field_len(alg);
                if x.len() != len || y.len() != len || d.len() != len {
                    return Err(Error::InvalidKey("EC member has the wrong length"));
                }
                let mut point = Vec::with_capacity(1 + 2 * len);
                point.push(4);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                PrivateMaterial::Ec(EcSecret {
                    key: EcPrivate::from_scalar(alg, &d, &point)?,
                })
            }
            "OKP" => {
                let x = b64_decode_field(jwk.x.as_deref(), "x")?;
                let d = b64_decode_field(jwk.d.as_deref(), "d")?;
                PrivateMaterial::Ed(EdSecret {
                    key: EdPrivate::from_seed(&d, Some(&x))?,
                })
            }
            _ => return Err(Error::InvalidKey("unsupported kty")),
        };
        let key = Self::from_material(alg, material)?;
        Ok(match &jwk.kid {
            Some(kid) => key.with_kid(kid.as_str()),
            None => key,
        })
    }

    /// The private JWK, with `kid` (if set), `alg` and `"use": "sig"`.
    pub fn to_jwk(&self) -> Jwk {
        let mut jwk = self.verifying_key().to_jwk();
        match &self.material {
            PrivateMaterial::Hmac(_) => {}
            PrivateMaterial::Rsa(_) => {
                if let Ok([_, _, d, p, q, dp, dq, qi]) = der::rsa_private_from_pkcs8(&self.pkcs8) {
                    jwk.d = Some(b64_encode(d).into());
                    jwk.p = Some(b64_encode(p).into());
                    jwk.q = Some(b64_encode(q).into());
                    jwk.dp = Some(b64_encode(dp).into());
                    jwk.dq = Some(b64_encode(dq).into());
                    jwk.qi = Some(b64_encode(qi).into());
                }
            }
            PrivateMaterial::Ec(e) => {
                if let Ok(d) = e.key.scalar() {
                    jwk.d = Some(b64_encode(&d).into());
                }
            }
            PrivateMaterial::Ed(e) => {
                if let Ok(d) = e.key.seed() {
                    jwk.d = Some(b64_encode(&d).into());
                }
            }
        }
        jwk
    }

    /// Sets the key id, which [`SigningKey::sign`] writes into every header.
    pub fn with_kid(mut self, kid: impl Into<String>) -> SigningKey {
        self.kid = Some(kid.into());
        self
    }

    /// The key id, if any.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The one algorithm this key signs with.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The public half (the same secret for HMAC), with the same `kid`.
    pub fn verifying_key(&self) -> VerifyingKey {
        let key = self.public.clone();
        match &self.kid {
            Some(kid) => key.with_kid(kid.as_str()),
            None => key,
        }
    }

    /// The RFC 7638 thumbprint of the public JWK (for HMAC, of the `oct` JWK).
    pub fn thumbprint(&self) -> String {
        self.verifying_key().thumbprint()
    }

    /// Signs `claims` into a compact JWS. The header's `alg` is always the key's; its `kid` is
    /// the key's when the key has one.
    pub fn sign<T: Serialize>(&self, header: &Header, claims: &T) -> Result<String, Error> {
        crate::jws::sign(self, header, claims)
    }

    /// Signs exact protected-header JSON and payload bytes, for payloads that are not JWT
    /// claims and for reproducing published vectors byte for byte. The header must be a strict
    /// JSON object naming this key's algorithm; the rules of verification (no `crit`, no
    /// key-carrying parameters, no duplicates) apply to it too.
    pub fn sign_bytes(&self, header_json: &[u8], payload: &[u8]) -> Result<String, Error> {
        crate::jws::sign_bytes(self, header_json, payload)
    }

    /// Signs the JWS signing input.
    pub(crate) fn sign_raw(&self, msg: &[u8]) -> Result<SignatureBytes, Error> {
        match &self.material {
            PrivateMaterial::Hmac(h) => Ok(h.key.sign(msg)),
            PrivateMaterial::Rsa(r) => r.key.sign(self.alg, msg),
            PrivateMaterial::Ec(e) => e.key.sign(msg),
            PrivateMaterial::Ed(e) => Ok(e.key.sign(msg)),
        }
    }
}

use crate::jws::Header;
