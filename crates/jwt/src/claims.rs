//! The JWT claims set (RFC 7519 §4): registered claims typed, application claims generic.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

/// Largest NumericDate accepted: 9999-12-31T23:59:59Z. Anything larger is a bug or an attack
/// (and would overflow arithmetic with the leeway).
pub const MAX_NUMERIC_DATE: i64 = 253_402_300_799;

/// The `aud` claim: one string or an array of strings (RFC 7519 §4.1.3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// A single audience, serialized as a string.
    One(String),
    /// Several audiences, serialized as an array.
    Many(Vec<String>),
}

impl Audience {
    /// Whether `aud` is one of the audiences.
    pub fn contains(&self, aud: &str) -> bool {
        match self {
            Audience::One(a) => a == aud,
            Audience::Many(v) => v.iter().any(|a| a == aud),
        }
    }

    /// The audiences as a slice-like iterator.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        let (one, many): (Option<&str>, &[String]) = match self {
            Audience::One(a) => (Some(a.as_str()), &[]),
            Audience::Many(v) => (None, v.as_slice()),
        };
        one.into_iter().chain(many.iter().map(String::as_str))
    }
}

impl From<&str> for Audience {
    fn from(s: &str) -> Self {
        Audience::One(s.to_owned())
    }
}

impl From<Vec<String>> for Audience {
    fn from(v: Vec<String>) -> Self {
        Audience::Many(v)
    }
}

/// The registered claims of RFC 7519 §4.1. NumericDates are whole seconds since the epoch;
/// deserialization rejects negative, fractional, non-numeric and absurdly large values instead
/// of skipping them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisteredClaims {
    /// Issuer (§4.1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Subject (§4.1.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// Audience (§4.1.3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<Audience>,
    /// Expiration time (§4.1.4).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "numeric_date"
    )]
    pub exp: Option<i64>,
    /// Not before (§4.1.5).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "numeric_date"
    )]
    pub nbf: Option<i64>,
    /// Issued at (§4.1.6).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "numeric_date"
    )]
    pub iat: Option<i64>,
    /// JWT ID (§4.1.7).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
}

/// Strict NumericDate for serde: an integer in `0..=MAX_NUMERIC_DATE`.
fn numeric_date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = i64;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a NumericDate: whole seconds since 1970, 0 to 253402300799")
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
            i64::try_from(v)
                .ok()
                .filter(|v| *v <= MAX_NUMERIC_DATE)
                .ok_or_else(|| E::custom("NumericDate too large"))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
            if v < 0 {
                return Err(E::custom("NumericDate is negative"));
            }
            self.visit_u64(v.unsigned_abs())
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<i64, E> {
            Err(E::custom("NumericDate must be an integer"))
        }
    }
    d.deserialize_i64(V).map(Some)
}

/// A claims set: the registered claims plus the application's own, flattened into one JSON
/// object.
///
/// [`crate::verify`] builds this with a strict one-pass scanner (duplicate members rejected)
/// and serde for `T`; the `Deserialize` impl here is the ordinary serde one, for other uses.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Claims<T> {
    /// The registered claims.
    #[serde(flatten)]
    pub registered: RegisteredClaims,
    /// The application's claims.
    #[serde(flatten)]
    pub custom: T,
}

impl<T> Claims<T> {
    /// Combines registered and application claims.
    pub fn new(registered: RegisteredClaims, custom: T) -> Self {
        Claims { registered, custom }
    }
}

/// An application claim type for tokens that carry only registered claims.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoCustomClaims {}

/// Indices of the registered claims in presence bit masks.
pub(crate) const REGISTERED: [&str; 7] = ["iss", "sub", "aud", "exp", "nbf", "iat", "jti"];

/// Bit for a registered claim name.
pub(crate) fn registered_bit(name: &str) -> Option<u8> {
    REGISTERED.iter().position(|n| *n == name).map(|i| 1u8 << i)
}
