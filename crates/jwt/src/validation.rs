//! The validation policy and the verification entry points: a policy value in, a
//! [`Verified`] out.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;

use crate::claims::{self, registered_bit, Claims, RegisteredClaims};
use crate::error::{truncate, Part};
use crate::jws::{self, Compact, Header, DEFAULT_MAX_TOKEN_LEN};
use crate::{json, strict, Error, KeySet, VerifyingKey};

/// Default clock-skew allowance for `exp`, `nbf` and `iat`, in seconds (DESIGN §3).
pub const DEFAULT_LEEWAY: u64 = 30;

/// The current system time in Unix seconds.
pub fn now() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(_) => 0,
    }
}

/// Where validation takes the time from. Tests use `Fixed`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Clock {
    /// The system clock.
    #[default]
    System,
    /// A fixed instant, in Unix seconds.
    Fixed(i64),
}

impl Clock {
    /// The current time of this clock, in Unix seconds.
    pub fn now(&self) -> i64 {
        match self {
            Clock::System => now(),
            Clock::Fixed(t) => *t,
        }
    }
}

/// One validation policy: which claims are required, what they must say, the expected `typ`,
/// the leeway, the size cap and the clock.
///
/// Defaults ([`Validation::new`]): `exp`, `iss` and `aud` required; leeway 30 s; tokens up to
/// 8 KiB; system clock; no `typ` check. A token carrying `aud` is rejected unless the policy
/// names at least one audience (RFC 8725 §3.9: a token for another service must not be
/// accepted here); `iss` is compared when [`Validation::issuer`] was given.
#[derive(Clone, Debug)]
pub struct Validation {
    required: u8,
    required_custom: Vec<String>,
    issuer: Option<String>,
    audiences: Vec<String>,
    typ: Option<String>,
    leeway: u64,
    max_token_len: usize,
    max_depth: usize,
    clock: Clock,
}

impl Default for Validation {
    fn default() -> Self {
        Validation::new()
    }
}

impl Validation {
    /// The default policy (see the type docs).
    pub fn new() -> Validation {
        let bit = |n| registered_bit(n).unwrap_or(0);
        Validation {
            required: bit("exp") | bit("iss") | bit("aud"),
            required_custom: Vec::new(),
            issuer: None,
            audiences: Vec::new(),
            typ: None,
            leeway: DEFAULT_LEEWAY,
            max_token_len: DEFAULT_MAX_TOKEN_LEN,
            max_depth: json::MAX_DEPTH,
            clock: Clock::System,
        }
    }

    /// The RFC 9068 access-token profile: the default policy plus issuer, audiences and
    /// `typ` `at+jwt`.
    pub fn access_token(issuer: &str, audiences: &[&str]) -> Validation {
        Validation::new()
            .issuer(issuer)
            .audience(audiences)
            .typ(Some("at+jwt"))
    }

    /// The expected issuer; `iss` must equal it exactly.
    pub fn issuer(mut self, iss: &str) -> Validation {
        self.issuer = Some(iss.to_owned());
        self
    }

    /// The accepted audiences; the token's `aud` must name at least one of them.
    pub fn audience(mut self, aud: &[&str]) -> Validation {
        self.audiences = aud.iter().map(|a| (*a).to_owned()).collect();
        self
    }

    /// The expected header `typ`, compared case-insensitively with an optional
    /// `application/` prefix (RFC 7515 §4.1.9); `None` disables the check.
    pub fn typ(mut self, typ: Option<&str>) -> Validation {
        self.typ = typ.map(str::to_owned);
        self
    }

    /// Clock-skew allowance in seconds for `exp`, `nbf` and `iat`.
    pub fn leeway(mut self, secs: u64) -> Validation {
        self.leeway = secs.min(MAX_LEEWAY);
        self
    }

    /// The size cap for the whole compact token, checked before any decoding.
    pub fn max_token_len(mut self, n: usize) -> Validation {
        self.max_token_len = n;
        self
    }

    /// Makes claims required, e.g. `["sub", "jti"]`; names other than the registered ones are
    /// application claims, which must then be present too.
    pub fn require(mut self, claims: &[&str]) -> Validation {
        for c in claims {
            match registered_bit(c) {
                Some(b) => self.required |= b,
                None => {
                    if !self.required_custom.iter().any(|x| x == c) {
                        self.required_custom.push((*c).to_owned());
                    }
                }
            }
        }
        self
    }

    /// Stops requiring claims, by name (an explicit, visible opt-out, e.g. `["aud"]`).
    pub fn without_required(mut self, claims: &[&str]) -> Validation {
        for c in claims {
            match registered_bit(c) {
                Some(b) => self.required &= !b,
                None => self.required_custom.retain(|x| x != c),
            }
        }
        self
    }

    /// The clock to validate against.
    pub fn clock(mut self, clock: Clock) -> Validation {
        self.clock = clock;
        self
    }

    /// The configured size cap.
    pub fn max_len(&self) -> usize {
        self.max_token_len
    }

    fn check_typ(&self, header: &Header) -> Result<(), Error> {
        let Some(expected) = &self.typ else {
            return Ok(());
        };
        match &header.typ {
            Some(found) if found == expected || typ_eq(expected, found) => Ok(()),
            found => Err(wrong_type(expected, found.as_deref())),
        }
    }

    fn check_claims(&self, r: &RegisteredClaims, custom_present: &[bool]) -> Result<(), Error> {
        let present = u8::from(r.iss.is_some())
            | u8::from(r.sub.is_some()) << 1
            | u8::from(r.aud.is_some()) << 2
            | u8::from(r.exp.is_some()) << 3
            | u8::from(r.nbf.is_some()) << 4
            | u8::from(r.iat.is_some()) << 5
            | u8::from(r.jti.is_some()) << 6;
        if self.required & !present != 0 {
            return Err(missing_registered(self.required & !present));
        }
        if custom_present.iter().any(|here| !here) {
            return Err(missing_custom(&self.required_custom, custom_present));
        }
        // The one clock read of a verification.
        let now = self.clock.now();
        let leeway = self.leeway as i64; // bounded by MAX_LEEWAY
        if let Some(exp) = r.exp {
            // RFC 7519 §4.1.4: valid only *before* exp.
            if now >= exp + leeway {
                return Err(Error::Expired {
                    exp,
                    now,
                    leeway: self.leeway,
                });
            }
        }
        if let Some(nbf) = r.nbf {
            if now + leeway < nbf {
                return Err(Error::NotYetValid {
                    nbf,
                    now,
                    leeway: self.leeway,
                });
            }
        }
        if let Some(iat) = r.iat {
            if iat > now + leeway {
                return Err(Error::IssuedInFuture {
                    iat,
                    now,
                    leeway: self.leeway,
                });
            }
        }
        if let Some(expected) = &self.issuer {
            match &r.iss {
                Some(iss) if iss == expected => {}
                found => return Err(wrong_issuer(found.as_deref())),
            }
        }
        if let Some(aud) = &r.aud {
            if self.audiences.is_empty() {
                return Err(Error::InvalidAudience(
                    "the token has aud but the validation policy names no audience",
                ));
            }
            if !aud.iter().any(|a| self.audiences.iter().any(|e| e == a)) {
                return Err(Error::InvalidAudience("no accepted audience in aud"));
            }
        }
        Ok(())
    }
}

// Error construction is kept out of line (`#[cold]`) so that the accepting path of a
// verification stays compact: in HS256 profiles, instruction-cache misses, not instruction
// counts, were what separated this crate from the floor.

#[cold]
fn wrong_type(expected: &str, found: Option<&str>) -> Error {
    Error::InvalidType {
        expected: expected.to_owned(),
        found: found.map(truncate),
    }
}

#[cold]
fn missing_registered(missing: u8) -> Error {
    let i = missing.trailing_zeros() as usize;
    Error::MissingClaim(claims::REGISTERED.get(i).copied().unwrap_or("?").to_owned())
}

#[cold]
fn missing_custom(names: &[String], present: &[bool]) -> Error {
    let name = names
        .iter()
        .zip(present)
        .find(|(_, here)| !**here)
        .map_or("?", |(n, _)| n.as_str());
    Error::MissingClaim(truncate(name))
}

#[cold]
fn wrong_issuer(found: Option<&str>) -> Error {
    match found {
        Some(iss) => Error::InvalidIssuer {
            found: truncate(iss),
        },
        None => Error::MissingClaim("iss".to_owned()),
    }
}

/// Stack buffers for decoded claims sets (see [`verify_parsed`]): a small one for typical
/// access tokens and a larger one, so that the usual case zeroes only half a kilobyte.
const PAYLOAD_SMALL_LEN: usize = 512;
const PAYLOAD_STACK_LEN: usize = 1024;

/// Longest base64url payload decoded into each buffer: the base64 engine's conservative
/// output estimate, `ceil(n / 4) * 3`, must fit in it.
const PAYLOAD_SMALL_B64_LEN: usize = PAYLOAD_SMALL_LEN / 3 * 4;
const PAYLOAD_STACK_B64_LEN: usize = PAYLOAD_STACK_LEN / 3 * 4;

/// Upper bound on the leeway (one day) so that time arithmetic cannot overflow.
const MAX_LEEWAY: u64 = 86_400;

/// `typ` comparison per RFC 7515 §4.1.9: case-insensitive, `application/` prefix optional
/// when the rest has no `/`.
fn typ_eq(expected: &str, found: &str) -> bool {
    fn strip(t: &str) -> &str {
        match (t.get(..12), t.get(12..)) {
            (Some(p), Some(rest))
                if p.eq_ignore_ascii_case("application/") && !rest.contains('/') =>
            {
                rest
            }
            _ => t,
        }
    }
    strip(expected).eq_ignore_ascii_case(strip(found))
}

/// A token whose signature verified and whose claims passed the policy. Only this crate can
/// build one.
#[derive(Clone, Debug)]
pub struct Verified<T> {
    header: Header,
    claims: Claims<T>,
}

impl<T> Verified<T> {
    /// The protected header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The claims.
    pub fn claims(&self) -> &Claims<T> {
        &self.claims
    }

    /// The claims, by value.
    pub fn into_claims(self) -> Claims<T> {
        self.claims
    }
}

/// Verifies a compact JWS with one key and validates its claims.
///
/// Order: size cap; three segments; header (base64url, strict JSON, `alg` must be the key's,
/// no `crit`/`jku`/`x5u`/`jwk`/`x5c`); `typ`; signature; then the payload (base64url, strict
/// JSON, registered claim types) and the policy. `T` receives the whole claims object (it
/// may ignore the registered members).
pub fn verify<T: DeserializeOwned>(
    token: &str,
    key: &VerifyingKey,
    validation: &Validation,
) -> Result<Verified<T>, Error> {
    let c = jws::split(token, validation.max_token_len)?;
    let header = jws::parse_header(c.header)?;
    verify_parsed(c, header, key, validation)
}

/// Like [`verify`], picking the key by the header's `kid`. A token without `kid` is accepted
/// only when the set holds exactly one key and that key has no `kid` either (otherwise
/// [`Error::MissingKid`]); an unknown `kid` is [`Error::UnknownKid`].
pub fn verify_with_keys<T: DeserializeOwned>(
    token: &str,
    keys: &KeySet,
    validation: &Validation,
) -> Result<Verified<T>, Error> {
    let c = jws::split(token, validation.max_token_len)?;
    let header = jws::parse_header(c.header)?;
    let key = keys.select(header.kid.as_deref())?;
    verify_parsed(c, header, key, validation)
}

fn verify_parsed<T: DeserializeOwned>(
    c: Compact<'_>,
    header: Header,
    key: &VerifyingKey,
    validation: &Validation,
) -> Result<Verified<T>, Error> {
    jws::check_alg(&header, key)?;
    validation.check_typ(&header)?;
    jws::check_signature(&c, key)?;
    // Typical claims sets (a few hundred bytes) decode on the stack, as the header and the
    // signature do: it saves an allocation and a free per token. Same strict base64url engine
    // either way; the size cap was already checked in `jws::split`.
    let mut small;
    let mut stack;
    let heap;
    let payload: &[u8] = if c.payload.len() <= PAYLOAD_SMALL_B64_LEN {
        small = [0u8; PAYLOAD_SMALL_LEN];
        let n = jws::b64_decode_slice(c.payload, &mut small, Part::Payload)?;
        &small[..n]
    } else if c.payload.len() <= PAYLOAD_STACK_B64_LEN {
        stack = [0u8; PAYLOAD_STACK_LEN];
        let n = jws::b64_decode_slice(c.payload, &mut stack, Part::Payload)?;
        &stack[..n]
    } else {
        heap = jws::b64_decode(c.payload, Part::Payload)?;
        &heap
    };
    // One pass: strict JSON, duplicates rejected at every depth, registered claims typed,
    // the rest deserialized into `T`. Claim rules are checked before `T` is handed out.
    let mut registered = RegisteredClaims::default();
    let mut custom_present = vec![false; validation.required_custom.len()];
    let custom = strict::parse_claims::<T>(
        payload,
        &validation.required_custom,
        validation.max_depth,
        &mut registered,
        &mut custom_present,
    )?;
    validation.check_claims(&registered, &custom_present)?;
    Ok(Verified {
        header,
        claims: Claims { registered, custom },
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    //! The payload decodes on the stack or on the heap depending on its length; both paths
    //! must accept the same canonical base64url and refuse the same non-canonical text.

    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;

    use super::*;
    use crate::{Algorithm, SigningKey};

    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    /// Signs `payload_b64` exactly as transmitted (even when it is not canonical).
    fn token(key: &SigningKey, payload_b64: &str) -> String {
        let input = format!(
            "{}.{payload_b64}",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256"}"#)
        );
        let sig = key.sign_raw(input.as_bytes()).unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }

    #[test]
    fn payload_decoding_is_strict_on_both_sides_of_the_stack_buffer() {
        let key = SigningKey::from_hmac_secret(Algorithm::HS256, &[7u8; 32]).unwrap();
        let vk = key.verifying_key();
        let policy = Validation::new()
            .without_required(&["exp", "iss", "aud"])
            .clock(Clock::Fixed(0));
        // Encoded lengths around the buffer limit, plus a small and a large payload.
        let mut lengths = vec![20, 1000, 3000];
        lengths.extend(PAYLOAD_SMALL_B64_LEN - 4..=PAYLOAD_SMALL_B64_LEN + 4);
        lengths.extend(PAYLOAD_STACK_B64_LEN - 4..=PAYLOAD_STACK_B64_LEN + 4);
        let mut tested_noncanonical = 0;
        for target in lengths {
            // `{"p":"xxx"}`: 8 bytes of frame, the rest padding.
            let raw_len = target * 3 / 4;
            let json = format!(r#"{{"p":"{}"}}"#, "x".repeat(raw_len - 8));
            let b64 = URL_SAFE_NO_PAD.encode(&json);
            let t = token(&key, &b64);
            assert!(
                verify::<serde::de::IgnoredAny>(&t, &vk, &policy).is_ok(),
                "len {}",
                b64.len()
            );
            // A last character with non-zero spare bits decodes to the same bytes in a
            // lenient decoder; it must be refused, signed or not.
            if b64.len() % 4 != 0 {
                let last = *b64.as_bytes().last().unwrap();
                let idx = ALPHABET.iter().position(|&c| c == last).unwrap();
                let twin = char::from(ALPHABET[idx | 1]);
                let forged = format!("{}{twin}", &b64[..b64.len() - 1]);
                assert_eq!(
                    verify::<serde::de::IgnoredAny>(&token(&key, &forged), &vk, &policy)
                        .map(|_| ()),
                    Err(Error::InvalidBase64(Part::Payload)),
                    "len {}",
                    b64.len()
                );
                tested_noncanonical += 1;
            }
        }
        assert!(tested_noncanonical >= 8);
    }
}
