//! JSON Web Keys (RFC 7517), key sets, and RFC 7638 thumbprints.

use std::fmt;
use std::ops::Deref;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::Part;
use crate::{crypto, json, Error, VerifyingKey};

/// Largest JWK Set document [`KeySet::from_jwks_json`] reads.
pub const MAX_JWKS_LEN: usize = 1 << 20;

/// A JSON Web Key (RFC 7517 §4) of one of the supported types: `oct`, `RSA`, `EC` (P-256,
/// P-384), `OKP` (Ed25519). Members this crate does not use are ignored on input.
///
/// The private members (`d`, `p`, `q`, `dp`, `dq`, `qi`, `k`) are [`JwkSecret`]s: zeroized on
/// drop and `<redacted>` in `Debug`. [`Jwk::to_public`] is the key without them. What this type
/// cannot wipe is outside it: the JSON text the key was parsed from or serialized to, and
/// (for a member written with JSON escapes) the parser's scratch buffer. Keep those
/// zeroizing too (`Zeroizing<String>`), or store keys with
/// [`crate::SigningKey::to_secret_bytes`].
#[derive(Serialize, Deserialize, Clone, PartialEq, Default)]
pub struct Jwk {
    /// Key type (RFC 7517 §4.1).
    pub kty: String,
    /// Key id (RFC 7517 §4.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// Algorithm the key is for (RFC 7517 §4.4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// Public key use, `sig` or `enc` (RFC 7517 §4.2).
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    /// Key operations (RFC 7517 §4.3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_ops: Option<Vec<String>>,
    /// Curve (EC, OKP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// X coordinate (EC) or public key (OKP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// Y coordinate (EC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    /// RSA modulus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// RSA public exponent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    /// Private exponent (RSA), private scalar (EC) or seed (OKP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub d: Option<JwkSecret>,
    /// RSA first prime factor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p: Option<JwkSecret>,
    /// RSA second prime factor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<JwkSecret>,
    /// RSA first factor CRT exponent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dp: Option<JwkSecret>,
    /// RSA second factor CRT exponent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dq: Option<JwkSecret>,
    /// RSA first CRT coefficient.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qi: Option<JwkSecret>,
    /// Symmetric key value (oct).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k: Option<JwkSecret>,
}

impl fmt::Debug for Jwk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redact = |v: &Option<JwkSecret>| v.as_ref().map(|_| "<redacted>");
        f.debug_struct("Jwk")
            .field("kty", &self.kty)
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("use", &self.use_)
            .field("key_ops", &self.key_ops)
            .field("crv", &self.crv)
            .field("x", &self.x)
            .field("y", &self.y)
            .field("n", &self.n)
            .field("e", &self.e)
            .field("d", &redact(&self.d))
            .field("p", &redact(&self.p))
            .field("q", &redact(&self.q))
            .field("dp", &redact(&self.dp))
            .field("dq", &redact(&self.dq))
            .field("qi", &redact(&self.qi))
            .field("k", &redact(&self.k))
            .finish()
    }
}

impl Jwk {
    pub(crate) fn new(kty: &str) -> Jwk {
        Jwk {
            kty: kty.to_owned(),
            ..Jwk::default()
        }
    }
    pub(crate) fn k(mut self, v: String) -> Jwk {
        self.k = Some(JwkSecret::from(v));
        self
    }
    pub(crate) fn n(mut self, v: String) -> Jwk {
        self.n = Some(v);
        self
    }
    pub(crate) fn e(mut self, v: String) -> Jwk {
        self.e = Some(v);
        self
    }
    pub(crate) fn crv(mut self, v: &str) -> Jwk {
        self.crv = Some(v.to_owned());
        self
    }
    pub(crate) fn x(mut self, v: String) -> Jwk {
        self.x = Some(v);
        self
    }
    pub(crate) fn y(mut self, v: String) -> Jwk {
        self.y = Some(v);
        self
    }

    /// The RFC 7638 thumbprint: SHA-256 over the required members in lexicographic order, no
    /// whitespace (§3.2; OKP members from RFC 8037 §2), base64url-encoded.
    pub fn thumbprint(&self) -> Result<String, Error> {
        fn req<'a>(v: Option<&'a str>, member: &'static str) -> Result<&'a str, Error> {
            v.ok_or(Error::InvalidJwk {
                member,
                reason: "missing",
            })
        }
        let members: Vec<(&str, &str)> = match self.kty.as_str() {
            "EC" => vec![
                ("crv", req(self.crv.as_deref(), "crv")?),
                ("kty", "EC"),
                ("x", req(self.x.as_deref(), "x")?),
                ("y", req(self.y.as_deref(), "y")?),
            ],
            "RSA" => vec![
                ("e", req(self.e.as_deref(), "e")?),
                ("kty", "RSA"),
                ("n", req(self.n.as_deref(), "n")?),
            ],
            "oct" => vec![("k", req(self.k.as_deref(), "k")?), ("kty", "oct")],
            "OKP" => vec![
                ("crv", req(self.crv.as_deref(), "crv")?),
                ("kty", "OKP"),
                ("x", req(self.x.as_deref(), "x")?),
            ],
            _ => return Err(Error::InvalidKey("unsupported kty")),
        };
        // Zeroizing: for `oct` the canonical form holds the secret. Sized up front so that it
        // never reallocates (a reallocation would leave a copy behind).
        let cap = 16
            + members
                .iter()
                .map(|(n, v)| 8 + n.len() + 2 * v.len())
                .sum::<usize>();
        let mut canon = Zeroizing::new(String::with_capacity(cap));
        canon.push('{');
        for (i, (name, value)) in members.iter().enumerate() {
            if i > 0 {
                canon.push(',');
            }
            // Member names and values are plain ASCII here; serde_json escapes anything else
            // exactly as RFC 7638 §3.3 asks (no escaping beyond what JSON requires).
            canon.push_str(&serde_json::to_string(name).unwrap_or_default());
            canon.push(':');
            canon.push_str(&Zeroizing::new(
                serde_json::to_string(value).unwrap_or_default(),
            ));
        }
        canon.push('}');
        Ok(b64_encode(&crypto::sha256(canon.as_bytes())))
    }

    /// This key without its private members (`d`, `p`, `q`, `dp`, `dq`, `qi`; `k` for `oct`):
    /// what may be published. For an `oct` key nothing public is left but `kty` and the
    /// metadata.
    pub fn to_public(&self) -> Jwk {
        // Field by field rather than `..self.clone()`: no copy of a secret is ever made.
        Jwk {
            kty: self.kty.clone(),
            kid: self.kid.clone(),
            alg: self.alg.clone(),
            use_: self.use_.clone(),
            key_ops: self.key_ops.clone(),
            crv: self.crv.clone(),
            x: self.x.clone(),
            y: self.y.clone(),
            n: self.n.clone(),
            e: self.e.clone(),
            d: None,
            p: None,
            q: None,
            dp: None,
            dq: None,
            qi: None,
            k: None,
        }
    }

    /// Whether any private member is present.
    pub fn is_private(&self) -> bool {
        [
            &self.d, &self.p, &self.q, &self.dp, &self.dq, &self.qi, &self.k,
        ]
        .iter()
        .any(|m| m.is_some())
    }

    /// Parses one JWK from JSON, rejecting duplicate members (RFC 7517 §4: "member names
    /// within a JWK MUST be unique").
    pub fn from_json(json_bytes: &[u8]) -> Result<Jwk, Error> {
        strict_json(json_bytes)?;
        serde_json::from_slice(json_bytes).map_err(|e| Error::InvalidJson {
            part: Part::Jwk,
            reason: e.to_string(),
        })
    }
}

/// A private JWK member (`d`, `p`, `q`, `dp`, `dq`, `qi`, `k`): its base64url text, zeroized
/// on drop, `<redacted>` in `Debug`, compared in constant time. It serializes as the plain
/// JSON string.
#[derive(Clone, Default, Zeroize, ZeroizeOnDrop)]
pub struct JwkSecret(String);

impl JwkSecret {
    /// The base64url text. Do not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for JwkSecret {
    /// Takes the string over (no copy is left behind).
    fn from(s: String) -> JwkSecret {
        JwkSecret(s)
    }
}

impl Deref for JwkSecret {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl PartialEq for JwkSecret {
    fn eq(&self, other: &JwkSecret) -> bool {
        crypto::ct_eq(self.0.as_bytes(), other.0.as_bytes())
    }
}

impl Eq for JwkSecret {}

impl fmt::Debug for JwkSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Serialize for JwkSecret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for JwkSecret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<JwkSecret, D::Error> {
        String::deserialize(d).map(JwkSecret)
    }
}

fn strict_json(json_bytes: &[u8]) -> Result<(), Error> {
    if json_bytes.len() > MAX_JWKS_LEN {
        return Err(Error::TokenTooLarge {
            len: json_bytes.len(),
            max: MAX_JWKS_LEN,
        });
    }
    json::scan_object(json_bytes, Part::Jwk, json::MAX_DEPTH, |_, _| Ok(()))
}

/// A JWK Set (RFC 7517 §5).
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct JwkSet {
    /// The keys.
    pub keys: Vec<Jwk>,
}

impl JwkSet {
    /// Parses a JWK Set from JSON, rejecting duplicate members at any depth.
    pub fn from_json(json_bytes: &[u8]) -> Result<JwkSet, Error> {
        strict_json(json_bytes)?;
        serde_json::from_slice(json_bytes).map_err(|e| Error::InvalidJson {
            part: Part::Jwk,
            reason: e.to_string(),
        })
    }
}

/// Verifying keys selected by `kid`.
///
/// A set never holds two keys with the same `kid` (nor two keys without one): picking a key
/// must never be ambiguous.
#[derive(Clone, Debug, Default)]
pub struct KeySet {
    keys: Vec<VerifyingKey>,
}

impl KeySet {
    /// An empty set.
    pub fn new() -> KeySet {
        KeySet::default()
    }

    /// A set of the given keys; a repeated `kid` is [`Error::DuplicateKid`].
    pub fn from_keys(keys: impl IntoIterator<Item = VerifyingKey>) -> Result<KeySet, Error> {
        let mut set = KeySet::new();
        for k in keys {
            set.insert(k)?;
        }
        Ok(set)
    }

    /// Adds a key; a repeated `kid` is [`Error::DuplicateKid`].
    pub fn insert(&mut self, key: VerifyingKey) -> Result<(), Error> {
        if self.keys.iter().any(|k| k.kid() == key.kid()) {
            return Err(Error::DuplicateKid(crate::error::truncate(
                key.kid().unwrap_or(""),
            )));
        }
        self.keys.push(key);
        Ok(())
    }

    /// Imports a JWK Set. Keys marked `"use": "enc"` and keys of types or algorithms this
    /// crate does not implement (for instance `RSA-OAEP`, P-521) are skipped, so that a
    /// provider's mixed set still loads; a malformed key of a supported type is an error, and
    /// so is a repeated `kid`.
    pub fn from_jwks(set: &JwkSet) -> Result<KeySet, Error> {
        let mut out = KeySet::new();
        for jwk in &set.keys {
            if jwk.use_.as_deref() == Some("enc") || !supported(jwk) {
                continue;
            }
            out.insert(VerifyingKey::from_jwk(jwk)?)?;
        }
        Ok(out)
    }

    /// Parses and imports a JWK Set document (at most [`MAX_JWKS_LEN`] bytes, duplicate JSON
    /// members rejected).
    pub fn from_jwks_json(json_bytes: &[u8]) -> Result<KeySet, Error> {
        KeySet::from_jwks(&JwkSet::from_json(json_bytes)?)
    }

    /// The key with this `kid`.
    pub fn get(&self, kid: &str) -> Option<&VerifyingKey> {
        self.keys.iter().find(|k| k.kid() == Some(kid))
    }

    /// The keys, in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = &VerifyingKey> {
        self.keys.iter()
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The public JWK Set (for an HMAC key the `oct` JWK, which holds the secret: never
    /// publish a set with HMAC keys).
    pub fn to_jwks(&self) -> JwkSet {
        JwkSet {
            keys: self.keys.iter().map(VerifyingKey::to_jwk).collect(),
        }
    }

    /// Picks the key for a token header's `kid`: by `kid` when present. A token without
    /// `kid` is accepted only by a set holding a single key that has no `kid` either (a
    /// shared secret, say): when the keys are named, the token must name one (DESIGN §3,
    /// "`kid` must name a known key"), so a key set never falls back to a default key.
    pub(crate) fn select(&self, kid: Option<&str>) -> Result<&VerifyingKey, Error> {
        match kid {
            Some(kid) => self
                .get(kid)
                .ok_or_else(|| Error::UnknownKid(crate::error::truncate(kid))),
            None => match self.keys.as_slice() {
                [only] if only.kid().is_none() => Ok(only),
                [] => Err(Error::UnknownKid(String::new())),
                _ => Err(Error::MissingKid),
            },
        }
    }
}

/// Whether a JWK is of a type and algorithm this crate implements.
fn supported(jwk: &Jwk) -> bool {
    if let Some(alg) = &jwk.alg {
        if alg.parse::<crate::Algorithm>().is_err() {
            return false;
        }
    }
    match jwk.kty.as_str() {
        "oct" | "RSA" => true,
        "EC" => matches!(jwk.crv.as_deref(), Some("P-256" | "P-384")),
        "OKP" => jwk.crv.as_deref() == Some("Ed25519"),
        _ => false,
    }
}

/// Unpadded base64url.
pub(crate) fn b64_encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes a required JWK member: canonical unpadded base64url only.
pub(crate) fn b64_decode_field(
    v: Option<&str>,
    member: &'static str,
) -> Result<Zeroizing<Vec<u8>>, Error> {
    let s = v.ok_or(Error::InvalidJwk {
        member,
        reason: "missing",
    })?;
    URL_SAFE_NO_PAD
        .decode(s)
        .map(Zeroizing::new)
        .map_err(|_| Error::InvalidJwk {
            member,
            reason: "not canonical unpadded base64url",
        })
}
