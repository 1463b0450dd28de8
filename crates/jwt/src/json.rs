//! A strict, allocation-light JSON scanner for JWKs and unverified decoding, and the
//! member-name set ([`Names`]) that every strict parse uses.
//!
//! serde_json accepts duplicate member names (the last one wins), which RFC 7515 §5.2 and
//! RFC 8725 §3.6 ask us to reject: two parsers could otherwise disagree about what a token
//! says. This scanner validates the grammar of RFC 8259 in one pass, rejects duplicate names in
//! every object at every depth, bounds the nesting depth, and hands the caller each top-level
//! member as (decoded name, raw value text). It allocates only for names that contain escapes
//! and for very wide objects. Token verification does not use it: headers and claims sets go
//! through `strict.rs`, so that one JSON parser (serde_json's) is on the hot path.

use std::borrow::Cow;
use std::collections::HashSet;

use crate::error::{truncate, Part};
use crate::Error;

/// Default bound on nesting depth: claims sets and headers are flat in practice.
pub(crate) const MAX_DEPTH: usize = 32;

/// Scans `input`, which must be exactly one JSON object (surrounding whitespace allowed), and
/// calls `on_member` for each of its top-level members with the decoded name and the exact
/// text of the value.
pub(crate) fn scan_object<'a, F>(
    input: &'a [u8],
    part: Part,
    max_depth: usize,
    mut on_member: F,
) -> Result<(), Error>
where
    F: FnMut(&str, &'a str) -> Result<(), Error>,
{
    let text = std::str::from_utf8(input).map_err(|_| Error::InvalidJson {
        part,
        reason: "invalid UTF-8".to_owned(),
    })?;
    let mut s = Scanner {
        text,
        b: text.as_bytes(),
        i: 0,
        part,
        max_depth,
    };
    s.ws();
    if s.peek() != Some(b'{') {
        return Err(s.err("not a JSON object"));
    }
    s.object(1, &mut on_member)?;
    s.ws();
    if s.i != s.b.len() {
        return Err(s.err("trailing characters"));
    }
    Ok(())
}

struct Scanner<'a> {
    text: &'a str,
    b: &'a [u8],
    i: usize,
    part: Part,
    max_depth: usize,
}

/// Member names seen in one object. Names borrowed from the input (the normal case) sit in a
/// small inline array that needs no allocation and no drop; names with escapes go to a vector;
/// wide objects switch to a hash set so that a token full of members stays linear.
pub(crate) struct Names<'a> {
    small: [&'a str; INLINE_NAMES],
    len: usize,
    owned: Vec<String>,
    big: Option<HashSet<Cow<'a, str>>>,
}

const INLINE_NAMES: usize = 16;

/// String equality that settles most mismatches of short claim names on the first byte,
/// before calling memcmp.
#[inline]
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.as_bytes().first() == b.as_bytes().first() && a == b
}

impl<'a> Names<'a> {
    pub(crate) fn new() -> Self {
        Names {
            small: [""; INLINE_NAMES],
            len: 0,
            owned: Vec::new(),
            big: None,
        }
    }

    /// Records `name`; false if it was already there.
    pub(crate) fn insert(&mut self, name: Cow<'a, str>) -> bool {
        if let Some(set) = &mut self.big {
            return set.insert(name);
        }
        let n: &str = &name;
        if self.small[..self.len].iter().any(|s| same(s, n))
            || self.owned.iter().any(|s| same(s, n))
        {
            return false;
        }
        if self.len + self.owned.len() >= INLINE_NAMES {
            let mut set: HashSet<Cow<'a, str>> = self.small[..self.len]
                .iter()
                .map(|s| Cow::Borrowed(*s))
                .chain(self.owned.drain(..).map(Cow::Owned))
                .collect();
            set.insert(name);
            self.big = Some(set);
            return true;
        }
        match name {
            Cow::Borrowed(s) => {
                self.small[self.len] = s;
                self.len += 1;
            }
            Cow::Owned(s) => self.owned.push(s),
        }
        true
    }
}

type Cb<'c, 'a> = &'c mut dyn FnMut(&str, &'a str) -> Result<(), Error>;

impl<'a> Scanner<'a> {
    fn err(&self, what: &str) -> Error {
        Error::InvalidJson {
            part: self.part,
            reason: format!("{what} at byte {}", self.i),
        }
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    #[inline]
    fn expect(&mut self, c: u8, what: &str) -> Result<(), Error> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.err(what))
        }
    }

    /// Parses an object starting at `{`. Top-level members go to `cb` when given.
    fn object(&mut self, depth: usize, cb: Cb<'_, 'a>) -> Result<(), Error> {
        self.object_inner(depth, Some(cb))
    }

    fn object_inner(&mut self, depth: usize, mut cb: Option<Cb<'_, 'a>>) -> Result<(), Error> {
        if depth > self.max_depth {
            return Err(self.err("nesting too deep"));
        }
        self.i += 1; // '{'
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(());
        }
        let mut names = Names::new();
        loop {
            self.ws();
            if self.peek() != Some(b'"') {
                return Err(self.err("expected member name"));
            }
            let name = self.string()?;
            let name = decode_string(name).ok_or_else(|| self.err("invalid escape"))?;
            if !names.insert(name.clone()) {
                return Err(Error::DuplicateMember {
                    part: self.part,
                    name: truncate(&name),
                });
            }
            self.ws();
            self.expect(b':', "expected ':'")?;
            self.ws();
            let start = self.i;
            self.value(depth)?;
            let raw = &self.text[start..self.i];
            if let Some(cb) = cb.as_mut() {
                cb(&name, raw)?;
            }
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(self.err("expected ',' or '}'")),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<(), Error> {
        if depth > self.max_depth {
            return Err(self.err("nesting too deep"));
        }
        self.i += 1; // '['
        self.ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.ws();
            self.value(depth)?;
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(self.err("expected ',' or ']'")),
            }
        }
    }

    /// Parses any value at the current position (whitespace already skipped).
    fn value(&mut self, depth: usize) -> Result<(), Error> {
        match self.peek() {
            Some(b'{') => self.object_inner(depth + 1, None),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => self.string().map(|_| ()),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(self.err("expected a value")),
        }
    }

    fn literal(&mut self, lit: &[u8]) -> Result<(), Error> {
        if self.b[self.i..].starts_with(lit) {
            self.i += lit.len();
            Ok(())
        } else {
            Err(self.err("invalid literal"))
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
        self.i - start
    }

    /// RFC 8259 §6: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    fn number(&mut self) -> Result<(), Error> {
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.err("invalid number")),
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return Err(self.err("invalid number"));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if self.digits() == 0 {
                return Err(self.err("invalid number"));
            }
        }
        Ok(())
    }

    /// Parses a string starting at `"`; returns its raw text including the quotes.
    fn string(&mut self) -> Result<&'a str, Error> {
        let start = self.i;
        self.i += 1;
        loop {
            match self.peek() {
                None => return Err(self.err("unterminated string")),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(&self.text[start..self.i]);
                }
                Some(b'\\') => {
                    self.i += 1;
                    match self.peek() {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.i += 1,
                        Some(b'u') => {
                            let hex = self.b.get(self.i + 1..self.i + 5);
                            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                                return Err(self.err("invalid \\u escape"));
                            }
                            self.i += 5;
                        }
                        _ => return Err(self.err("invalid escape")),
                    }
                }
                Some(c) if c < 0x20 => return Err(self.err("control character in string")),
                Some(_) => self.i += 1,
            }
        }
    }
}

/// Decodes the raw text of a string the scanner accepted (quotes included). Borrows when there
/// are no escapes. `None` for lone surrogates.
pub(crate) fn decode_string(raw: &str) -> Option<Cow<'_, str>> {
    let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
    if !inner.contains('\\') {
        return Some(Cow::Borrowed(inner));
    }
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            '"' => out.push('"'),
            '\\' => out.push('\\'),
            '/' => out.push('/'),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'u' => {
                let hi = hex4(&mut chars)?;
                let cp = if (0xD800..0xDC00).contains(&hi) {
                    // A high surrogate must be followed by an escaped low surrogate.
                    if chars.next()? != '\\' || chars.next()? != 'u' {
                        return None;
                    }
                    let lo = hex4(&mut chars)?;
                    if !(0xDC00..0xE000).contains(&lo) {
                        return None;
                    }
                    0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                } else {
                    hi
                };
                out.push(char::from_u32(cp)?);
            }
            _ => return None,
        }
    }
    Some(Cow::Owned(out))
}

fn hex4(chars: &mut std::str::Chars<'_>) -> Option<u32> {
    let mut v = 0u32;
    for _ in 0..4 {
        v = (v << 4) | chars.next()?.to_digit(16)?;
    }
    Some(v)
}
