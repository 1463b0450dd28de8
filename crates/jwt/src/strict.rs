//! One-pass strict deserialization of a claims set and of a protected header.
//!
//! serde_json alone accepts duplicate member names (last wins). Scanning the payload first and
//! parsing it again would cost a second pass, so instead the serde_json deserializer is wrapped:
//! every map at every depth records its member names and fails on a repeat (RFC 7515 §5.2,
//! RFC 8725 §3.6), nesting depth is bounded, values an application type ignores are still
//! walked (so duplicates inside them are found too), and the registered claims are taken out
//! of the top-level object with their strict types before the rest is handed to the
//! application's `T`. The token is parsed exactly once. Headers other than the plain common
//! shape (see `jws::parse_plain_header`) are parsed here with the same wrappers.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;

use serde::de::value::BorrowedStrDeserializer;
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, EnumAccess, IntoDeserializer, MapAccess,
    SeqAccess, VariantAccess, Visitor,
};

use crate::claims::{Audience, RegisteredClaims, MAX_NUMERIC_DATE};
use crate::error::{truncate, Part};
use crate::json::Names;
use crate::{Algorithm, Error, Header};

/// Shared state of one parse: the typed error that aborted it, and the depth bound.
struct Ctx {
    err: RefCell<Option<Error>>,
    max_depth: usize,
    part: Part,
}

impl Ctx {
    /// Records `e` (the first one wins) and returns a serde error to unwind with.
    #[cold]
    fn fail<E: de::Error>(&self, e: Error) -> E {
        let msg = e.to_string();
        let mut slot = self.err.borrow_mut();
        if slot.is_none() {
            *slot = Some(e);
        }
        E::custom(msg)
    }

    fn deeper<E: de::Error>(&self, depth: usize) -> Result<usize, E> {
        if depth + 1 > self.max_depth {
            Err(self.fail(Error::InvalidJson {
                part: self.part,
                reason: "nesting too deep".into(),
            }))
        } else {
            Ok(depth + 1)
        }
    }
}

/// Parses a claims set in one pass (see the module docs). The registered claims are written
/// into `registered` and the presence of the policy's `required_custom[i]` into
/// `custom_present[i]` (which must be as long), so that only `T` travels back through serde's
/// return values: moving the whole parse result up through each layer showed as a few percent
/// of memcpy in HS256 profiles.
pub(crate) fn parse_claims<T: DeserializeOwned>(
    payload: &[u8],
    required_custom: &[String],
    max_depth: usize,
    registered: &mut RegisteredClaims,
    custom_present: &mut [bool],
) -> Result<T, Error> {
    let first = payload
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    if first != Some(&b'{') {
        return Err(Error::InvalidJson {
            part: Part::Payload,
            reason: "not a JSON object".into(),
        });
    }
    let ctx = Ctx {
        err: RefCell::new(None),
        max_depth,
        part: Part::Payload,
    };
    let mut de = serde_json::Deserializer::from_slice(payload);
    let result = de
        .deserialize_map(TopVisitor::<T> {
            ctx: &ctx,
            required_custom,
            registered,
            custom_present,
            marker: std::marker::PhantomData,
        })
        .and_then(|v| de.end().map(|()| v));
    match result {
        Ok(v) => Ok(v),
        Err(e) => Err(ctx.err.into_inner().unwrap_or_else(|| {
            if e.classify() == serde_json::error::Category::Data {
                Error::InvalidClaims(e.to_string())
            } else {
                Error::InvalidJson {
                    part: Part::Payload,
                    reason: e.to_string(),
                }
            }
        })),
    }
}

struct TopVisitor<'c, T> {
    ctx: &'c Ctx,
    required_custom: &'c [String],
    registered: &'c mut RegisteredClaims,
    custom_present: &'c mut [bool],
    marker: std::marker::PhantomData<T>,
}

impl<'de, T: DeserializeOwned> Visitor<'de> for TopVisitor<'_, T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JWT claims set (a JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        let mut top = Top {
            map,
            ctx: self.ctx,
            names: Names::new(),
            seen: 0,
            registered: self.registered,
            required_custom: self.required_custom,
            custom_present: self.custom_present,
            done: false,
        };
        let custom = T::deserialize(Rest(&mut top))?;
        // An application type that stops early must not let the rest go unchecked.
        while !top.done {
            let mut rest = RestMap(&mut top);
            if rest.next_key::<de::IgnoredAny>()?.is_some() {
                rest.next_value::<de::IgnoredAny>()?;
            }
        }
        Ok(custom)
    }
}

/// The top-level object, shared between the registered-claims filter and `T`.
struct Top<'c, 'de, A> {
    map: A,
    ctx: &'c Ctx,
    names: Names<'de>,
    /// Registered claim names seen so far, one bit each.
    seen: u8,
    registered: &'c mut RegisteredClaims,
    required_custom: &'c [String],
    custom_present: &'c mut [bool],
    done: bool,
}

/// A deserializer that presents the top-level object, minus the registered claims, to `T`.
struct Rest<'t, 'c, 'de, A>(&'t mut Top<'c, 'de, A>);

impl<'de, A: MapAccess<'de>> Deserializer<'de> for Rest<'_, '_, 'de, A> {
    type Error = A::Error;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        v.visit_map(RestMap(self.0))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

struct RestMap<'t, 'c, 'de, A>(&'t mut Top<'c, 'de, A>);

impl<'de, A: MapAccess<'de>> MapAccess<'de> for RestMap<'_, '_, 'de, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        let top = &mut *self.0;
        loop {
            let Some(key) = top.map.next_key_seed(KeyCapture)? else {
                top.done = true;
                return Ok(None);
            };
            // Registered names (all three bytes long) are tracked in a bit set, the others in
            // `names`: a repeat of either is a duplicate.
            let bit: u8 = if key.len() == 3 {
                match key.as_bytes() {
                    b"iss" => 1,
                    b"sub" => 2,
                    b"aud" => 4,
                    b"exp" => 8,
                    b"nbf" => 16,
                    b"iat" => 32,
                    b"jti" => 64,
                    _ => 0,
                }
            } else {
                0
            };
            let fresh = if bit != 0 {
                let fresh = top.seen & bit == 0;
                top.seen |= bit;
                fresh
            } else {
                top.names.insert(key.clone())
            };
            if !fresh {
                return Err(top.ctx.fail(Error::DuplicateMember {
                    part: Part::Payload,
                    name: truncate(&key),
                }));
            }
            let ctx = top.ctx;
            let r = &mut *top.registered;
            match bit {
                1 => r.iss = Some(top.map.next_value_seed(StrClaim::new("iss", ctx))?),
                2 => r.sub = Some(top.map.next_value_seed(StrClaim::new("sub", ctx))?),
                4 => r.aud = Some(top.map.next_value_seed(AudClaim::new(ctx))?),
                8 => r.exp = Some(top.map.next_value_seed(DateClaim::new("exp", ctx))?),
                16 => r.nbf = Some(top.map.next_value_seed(DateClaim::new("nbf", ctx))?),
                32 => r.iat = Some(top.map.next_value_seed(DateClaim::new("iat", ctx))?),
                64 => r.jti = Some(top.map.next_value_seed(StrClaim::new("jti", ctx))?),
                _ => {
                    if !top.required_custom.is_empty() {
                        if let Some(i) = top.required_custom.iter().position(|c| *c == *key) {
                            if let Some(p) = top.custom_present.get_mut(i) {
                                *p = true;
                            }
                        }
                    }
                    return key_to_seed(key, seed).map(Some);
                }
            }
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        let ctx = self.0.ctx;
        self.0.map.next_value_seed(Seed {
            seed,
            ctx,
            depth: 1,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Registered claims with their strict types

/// Visitor methods for the JSON types a registered claim must not have: each records
/// [`Error::InvalidClaim`] so that the caller learns which claim was wrong and why. Syntax
/// errors pass through untouched and stay [`Error::InvalidJson`].
macro_rules! reject {
    ($($m:ident($($arg:ty)?)),*) => {$(
        fn $m<E: de::Error>(self $(, _: $arg)?) -> Result<Self::Value, E> {
            Err(self.ctx.fail(Error::InvalidClaim { claim: self.claim, reason: self.reason }))
        }
    )*};
}

macro_rules! reject_nested {
    () => {
        fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
            Err(self.ctx.fail(Error::InvalidClaim {
                claim: self.claim,
                reason: self.reason,
            }))
        }
        fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
            Err(self.ctx.fail(Error::InvalidClaim {
                claim: self.claim,
                reason: self.reason,
            }))
        }
    };
}

/// A string claim (`iss`, `sub`, `jti`, elements of `aud`).
struct StrClaim<'c> {
    claim: &'static str,
    reason: &'static str,
    ctx: &'c Ctx,
}

impl<'c> StrClaim<'c> {
    fn new(claim: &'static str, ctx: &'c Ctx) -> Self {
        StrClaim {
            claim,
            reason: "must be a string",
            ctx,
        }
    }
}

impl<'de> DeserializeSeed<'de> for StrClaim<'_> {
    type Value = String;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrClaim<'_> {
    type Value = String;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }
    reject!(
        visit_bool(bool),
        visit_i64(i64),
        visit_u64(u64),
        visit_f64(f64),
        visit_unit()
    );
    reject_nested!();
}

/// A NumericDate claim (`exp`, `nbf`, `iat`): an integer in `0..=MAX_NUMERIC_DATE`.
struct DateClaim<'c> {
    claim: &'static str,
    reason: &'static str,
    ctx: &'c Ctx,
}

impl<'c> DateClaim<'c> {
    fn new(claim: &'static str, ctx: &'c Ctx) -> Self {
        DateClaim {
            claim,
            reason: "NumericDate must be a number",
            ctx,
        }
    }

    fn fail<E: de::Error>(&self, reason: &'static str) -> E {
        self.ctx.fail(Error::InvalidClaim {
            claim: self.claim,
            reason,
        })
    }
}

impl<'de> DeserializeSeed<'de> for DateClaim<'_> {
    type Value = i64;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<i64, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for DateClaim<'_> {
    type Value = i64;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a NumericDate")
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
        match i64::try_from(v) {
            Ok(v) if v <= MAX_NUMERIC_DATE => Ok(v),
            _ => Err(self.fail("NumericDate too large")),
        }
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
        if v < 0 {
            return Err(self.fail("NumericDate is negative"));
        }
        self.visit_u64(v.unsigned_abs())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<i64, E> {
        Err(self.fail("NumericDate must be an integer"))
    }
    reject!(visit_bool(bool), visit_str(&str), visit_unit());
    reject_nested!();
}

/// The `aud` claim: a string or an array of strings.
struct AudClaim<'c> {
    claim: &'static str,
    reason: &'static str,
    ctx: &'c Ctx,
}

impl<'c> AudClaim<'c> {
    fn new(ctx: &'c Ctx) -> Self {
        AudClaim {
            claim: "aud",
            reason: "must be a string or an array of strings",
            ctx,
        }
    }
}

impl<'de> DeserializeSeed<'de> for AudClaim<'_> {
    type Value = Audience;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Audience, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for AudClaim<'_> {
    type Value = Audience;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or an array of strings")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Audience, E> {
        Ok(Audience::One(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Audience, E> {
        Ok(Audience::One(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Audience, A::Error> {
        let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(1).min(16));
        let element = || StrClaim {
            claim: self.claim,
            reason: self.reason,
            ctx: self.ctx,
        };
        while let Some(s) = seq.next_element_seed(element())? {
            v.push(s);
        }
        Ok(Audience::Many(v))
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Audience, A::Error> {
        Err(self.ctx.fail(Error::InvalidClaim {
            claim: self.claim,
            reason: self.reason,
        }))
    }
    reject!(
        visit_bool(bool),
        visit_i64(i64),
        visit_u64(u64),
        visit_f64(f64),
        visit_unit()
    );
}

// ---------------------------------------------------------------------------------------------
// Keys

/// Captures a member name, borrowed from the input when it has no escapes.
struct KeyCapture;

impl<'de> DeserializeSeed<'de> for KeyCapture {
    type Value = Cow<'de, str>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Cow<'de, str>, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Cow<'de, str>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Cow::Borrowed(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v))
            }
        }
        d.deserialize_str(V)
    }
}

/// Hands a captured member name to the seed that asked for it.
fn key_to_seed<'de, K: DeserializeSeed<'de>, E: de::Error>(
    key: Cow<'de, str>,
    seed: K,
) -> Result<K::Value, E> {
    match key {
        Cow::Borrowed(s) => seed.deserialize(BorrowedStrDeserializer::<E>::new(s)),
        Cow::Owned(s) => seed.deserialize(IntoDeserializer::<E>::into_deserializer(s)),
    }
}

// ---------------------------------------------------------------------------------------------
// The wrapping deserializer for everything below the top level

struct Seed<'c, S> {
    seed: S,
    ctx: &'c Ctx,
    depth: usize,
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Seed<'_, S> {
    type Value = S::Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<S::Value, D::Error> {
        self.seed.deserialize(De {
            d,
            ctx: self.ctx,
            depth: self.depth,
        })
    }
}

struct De<'c, D> {
    d: D,
    ctx: &'c Ctx,
    depth: usize,
}

impl<'c, D> De<'c, D> {
    fn vis<V>(&self, v: V) -> Vis<'c, V> {
        Vis {
            v,
            ctx: self.ctx,
            depth: self.depth,
        }
    }
}

macro_rules! forward_de {
    ($($m:ident)*) => {$(
        fn $m<V: Visitor<'de>>(self, v: V) -> Result<V::Value, D::Error> {
            let vis = self.vis(v);
            self.d.$m(vis)
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for De<'_, D> {
    type Error = D::Error;

    forward_de! {
        deserialize_any deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32
        deserialize_i64 deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32
        deserialize_u64 deserialize_u128 deserialize_f32 deserialize_f64 deserialize_char
        deserialize_str deserialize_string deserialize_bytes deserialize_byte_buf
        deserialize_option deserialize_unit deserialize_seq deserialize_map
        deserialize_identifier
    }

    /// Ignored values are walked, not skipped, so duplicates inside them are still found.
    fn deserialize_ignored_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, D::Error> {
        let vis = self.vis(v);
        self.d.deserialize_any(vis)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        v: V,
    ) -> Result<V::Value, D::Error> {
        let vis = self.vis(v);
        self.d.deserialize_unit_struct(name, vis)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        v: V,
    ) -> Result<V::Value, D::Error> {
        let vis = self.vis(v);
        self.d.deserialize_newtype_struct(name, vis)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, v: V) -> Result<V::Value, D::Error> {
        let vis = self.vis(v);
        self.d.deserialize_tuple(len, vis)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        v: V,
    ) -> Result<V::Value, D::Error> {
        let vis = self.vis(v);
        self.d.deserialize_tuple_struct(name, len, vis)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, D::Error> {
        let vis = self.vis(v);
        self.d.deserialize_struct(name, fields, vis)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, D::Error> {
        let vis = self.vis(v);
        self.d.deserialize_enum(name, variants, vis)
    }

    fn is_human_readable(&self) -> bool {
        self.d.is_human_readable()
    }
}

struct Vis<'c, V> {
    v: V,
    ctx: &'c Ctx,
    depth: usize,
}

macro_rules! forward_visit {
    ($($m:ident: $t:ty)*) => {$(
        fn $m<E: de::Error>(self, x: $t) -> Result<V::Value, E> {
            self.v.$m(x)
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Vis<'_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.v.expecting(f)
    }

    forward_visit! {
        visit_bool: bool visit_i8: i8 visit_i16: i16 visit_i32: i32 visit_i64: i64
        visit_i128: i128 visit_u8: u8 visit_u16: u16 visit_u32: u32 visit_u64: u64
        visit_u128: u128 visit_f32: f32 visit_f64: f64 visit_char: char visit_str: &str
        visit_borrowed_str: &'de str visit_string: String visit_bytes: &[u8]
        visit_borrowed_bytes: &'de [u8] visit_byte_buf: Vec<u8>
    }

    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.v.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.v.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        self.v.visit_some(De {
            d,
            ctx: self.ctx,
            depth: self.depth,
        })
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        self.v.visit_newtype_struct(De {
            d,
            ctx: self.ctx,
            depth: self.depth,
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        let depth = self.ctx.deeper(self.depth)?;
        self.v.visit_seq(Seq {
            seq,
            ctx: self.ctx,
            depth,
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        let depth = self.ctx.deeper(self.depth)?;
        self.v.visit_map(Map {
            map,
            ctx: self.ctx,
            depth,
            names: Names::new(),
        })
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
        self.v.visit_enum(Enum {
            data,
            ctx: self.ctx,
            depth: self.depth,
        })
    }
}

struct Seq<'c, A> {
    seq: A,
    ctx: &'c Ctx,
    depth: usize,
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Seq<'_, A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        self.seq.next_element_seed(Seed {
            seed,
            ctx: self.ctx,
            depth: self.depth,
        })
    }

    fn size_hint(&self) -> Option<usize> {
        self.seq.size_hint()
    }
}

struct Map<'c, 'de, A> {
    map: A,
    ctx: &'c Ctx,
    depth: usize,
    names: Names<'de>,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Map<'_, 'de, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        let Some(key) = self.map.next_key_seed(KeyCapture)? else {
            return Ok(None);
        };
        if !self.names.insert(key.clone()) {
            return Err(self.ctx.fail(Error::DuplicateMember {
                part: self.ctx.part,
                name: truncate(&key),
            }));
        }
        key_to_seed(key, seed).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.map.next_value_seed(Seed {
            seed,
            ctx: self.ctx,
            depth: self.depth,
        })
    }

    fn size_hint(&self) -> Option<usize> {
        self.map.size_hint()
    }
}

struct Enum<'c, A> {
    data: A,
    ctx: &'c Ctx,
    depth: usize,
}

impl<'c, 'de, A: EnumAccess<'de>> EnumAccess<'de> for Enum<'c, A> {
    type Error = A::Error;
    type Variant = Enum<'c, A::Variant>;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Self::Variant), A::Error> {
        let (value, variant) = self.data.variant_seed(seed)?;
        Ok((
            value,
            Enum {
                data: variant,
                ctx: self.ctx,
                depth: self.depth,
            },
        ))
    }
}

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for Enum<'_, A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        self.data.unit_variant()
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        self.data.newtype_variant_seed(Seed {
            seed,
            ctx: self.ctx,
            depth: self.depth,
        })
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, v: V) -> Result<V::Value, A::Error> {
        self.data.tuple_variant(
            len,
            Vis {
                v,
                ctx: self.ctx,
                depth: self.depth,
            },
        )
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, A::Error> {
        self.data.struct_variant(
            fields,
            Vis {
                v,
                ctx: self.ctx,
                depth: self.depth,
            },
        )
    }
}

// ---------------------------------------------------------------------------------------------
// The protected header

/// Parses protected-header JSON with the same strict machinery as the claims set (so that one
/// JSON parser, serde_json's, is on the verification path): duplicate members rejected at
/// every depth, nesting bounded by `max_depth`, `none` and unknown algorithms refused,
/// key-carrying parameters and `crit` rejected.
#[cold]
pub(crate) fn parse_header(bytes: &[u8], max_depth: usize) -> Result<Header, Error> {
    let first = bytes
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    if first != Some(&b'{') {
        return Err(Error::InvalidJson {
            part: Part::Header,
            reason: "not a JSON object".into(),
        });
    }
    let ctx = Ctx {
        err: RefCell::new(None),
        max_depth,
        part: Part::Header,
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let result = de
        .deserialize_map(HeaderVisitor { ctx: &ctx })
        .and_then(|v| de.end().map(|()| v));
    match result {
        Ok(Ok(h)) => Ok(h),
        Ok(Err(e)) => Err(e),
        Err(e) => Err(ctx.err.into_inner().unwrap_or_else(|| Error::InvalidJson {
            part: Part::Header,
            reason: e.to_string(),
        })),
    }
}

struct HeaderVisitor<'c> {
    ctx: &'c Ctx,
}

impl<'de> Visitor<'de> for HeaderVisitor<'_> {
    /// The inner result carries an unknown `alg`, reported only once the whole header parsed
    /// (so that a duplicate `alg` is still found).
    type Value = Result<Header, Error>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JOSE header (a JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let ctx = self.ctx;
        let mut names = Names::new();
        let mut header = Header::default();
        let mut alg_err = None;
        while let Some(key) = map.next_key_seed(KeyCapture)? {
            if !names.insert(key.clone()) {
                return Err(ctx.fail(Error::DuplicateMember {
                    part: Part::Header,
                    name: truncate(&key),
                }));
            }
            let text = |what| HeaderStr { what, ctx };
            match &*key {
                "alg" => match map.next_value_seed(text("alg"))?.parse::<Algorithm>() {
                    Ok(a) => header.alg = Some(a),
                    Err(e) => alg_err = Some(e),
                },
                "typ" => header.typ = Some(map.next_value_seed(text("typ"))?.into_owned()),
                "kid" => header.kid = Some(map.next_value_seed(text("kid"))?.into_owned()),
                "cty" => header.cty = Some(map.next_value_seed(text("cty"))?.into_owned()),
                // RFC 8725 §3.10 / RFC 7515 §4.1.2-4.1.6: the token must never supply or point
                // to its own verification key.
                "jku" => return Err(ctx.fail(Error::ForbiddenHeader("jku"))),
                "jwk" => return Err(ctx.fail(Error::ForbiddenHeader("jwk"))),
                "x5u" => return Err(ctx.fail(Error::ForbiddenHeader("x5u"))),
                "x5c" => return Err(ctx.fail(Error::ForbiddenHeader("x5c"))),
                // RFC 7797: an unencoded payload changes the signing input; not supported.
                "b64" => {
                    if !map.next_value_seed(IsTrue)? {
                        return Err(ctx.fail(Error::ForbiddenHeader("b64")));
                    }
                }
                // RFC 7515 §4.1.11: we implement no extensions, so any `crit` must be refused.
                "crit" => {
                    let first = map.next_value_seed(FirstName)?;
                    return Err(ctx.fail(Error::UnsupportedCritical(
                        first.unwrap_or_else(|| "(not a non-empty array of names)".into()),
                    )));
                }
                // Other parameters are ignored (RFC 7515 §4: unless listed in `crit`), but
                // walked, so that duplicates and excess nesting inside them are still found.
                _ => {
                    map.next_value_seed(Seed {
                        seed: std::marker::PhantomData::<de::IgnoredAny>,
                        ctx,
                        depth: 1,
                    })?;
                }
            }
        }
        if let Some(e) = alg_err {
            return Ok(Err(e));
        }
        if header.alg.is_none() {
            return Ok(Err(Error::MissingAlgorithm));
        }
        Ok(Ok(header))
    }
}

/// A header parameter that must be a string.
struct HeaderStr<'c> {
    what: &'static str,
    ctx: &'c Ctx,
}

impl HeaderStr<'_> {
    #[cold]
    fn wrong<E: de::Error>(&self) -> E {
        self.ctx.fail(Error::InvalidJson {
            part: Part::Header,
            reason: format!("{} must be a string", self.what),
        })
    }
}

impl<'de> DeserializeSeed<'de> for HeaderStr<'_> {
    type Value = Cow<'de, str>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Cow<'de, str>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for HeaderStr<'_> {
    type Value = Cow<'de, str>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Err(self.wrong())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Err(self.wrong())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Err(self.wrong())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Err(self.wrong())
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Err(self.wrong())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(self.wrong())
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(self.wrong())
    }
}

/// `b64`: true when the value is the literal `true` (anything else is refused by the caller
/// without looking further).
struct IsTrue;

impl<'de> DeserializeSeed<'de> for IsTrue {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for IsTrue {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("true")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
        Ok(v)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<bool, A::Error> {
        Ok(false)
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<bool, A::Error> {
        Ok(false)
    }
}

/// `crit`: the first name of a non-empty array of strings, else `None` (the caller refuses
/// `crit` either way; this only picks the message).
struct FirstName;

impl<'de> DeserializeSeed<'de> for FirstName {
    type Value = Option<String>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<String>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for FirstName {
    type Value = Option<String>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of names")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        // Only the shape of the first element matters; the caller stops at once.
        Ok(seq
            .next_element::<String>()
            .ok()
            .flatten()
            .map(|s| truncate(&s)))
    }
}
