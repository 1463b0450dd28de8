//! Just enough DER (X.690) reading and PEM (RFC 7468) armour to move keys between the forms
//! JOSE uses (JWK members) and the forms aws-lc-rs takes (SPKI, PKCS#8).
//!
//! This is not a general ASN.1 parser: it reads definite-length TLVs, rejects everything it
//! does not expect, and never panics on any input.

use base64::Engine as _;
use zeroize::Zeroizing;

use crate::Error;

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const OCTET_STRING: u8 = 0x04;

/// A cursor over DER bytes.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    /// Reads one TLV with the expected tag and returns its contents.
    pub(crate) fn read(&mut self, tag: u8) -> Result<&'a [u8], Error> {
        const BAD: Error = Error::InvalidKey("malformed DER");
        let (&t, rest) = self.buf.split_first().ok_or(BAD)?;
        if t != tag {
            return Err(BAD);
        }
        let (&l0, mut rest) = rest.split_first().ok_or(BAD)?;
        let len = if l0 < 0x80 {
            usize::from(l0)
        } else {
            let n = usize::from(l0 & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return Err(BAD);
            }
            let mut len = 0usize;
            for &b in &rest[..n] {
                len = (len << 8) | usize::from(b);
            }
            rest = &rest[n..];
            len
        };
        if rest.len() < len {
            return Err(BAD);
        }
        let (contents, rest) = rest.split_at(len);
        self.buf = rest;
        Ok(contents)
    }

    /// Reads an INTEGER and returns it big-endian without leading zero octets (the
    /// Base64urlUInt form of RFC 7518 §2).
    pub(crate) fn unsigned(&mut self) -> Result<&'a [u8], Error> {
        let mut v = self.read(INTEGER)?;
        if v.first().is_some_and(|b| b & 0x80 != 0) {
            return Err(Error::InvalidKey("negative integer in key"));
        }
        while v.len() > 1 && v[0] == 0 {
            v = &v[1..];
        }
        Ok(v)
    }
}

/// Returns the subjectPublicKey bits of a SubjectPublicKeyInfo (RFC 5280 §4.1).
pub(crate) fn spki_key_bits(spki: &[u8]) -> Result<&[u8], Error> {
    let mut outer = Reader::new(spki);
    let mut seq = Reader::new(outer.read(SEQUENCE)?);
    seq.read(SEQUENCE)?; // AlgorithmIdentifier; the crypto backend already checked it
    let bits = seq.read(BIT_STRING)?;
    match bits.split_first() {
        Some((0, key)) => Ok(key),
        _ => Err(Error::InvalidKey("malformed SPKI")),
    }
}

/// `(n, e)` of a PKCS#1 `RSAPublicKey` (RFC 8017 §A.1.1).
pub(crate) fn rsa_public(der: &[u8]) -> Result<(&[u8], &[u8]), Error> {
    let mut outer = Reader::new(der);
    let mut seq = Reader::new(outer.read(SEQUENCE)?);
    let n = seq.unsigned()?;
    let e = seq.unsigned()?;
    Ok((n, e))
}

/// The eight integers of an RSA private key inside PKCS#8 (RFC 5208, RFC 8017 §A.1.2):
/// `n, e, d, p, q, dp, dq, qi`.
pub(crate) fn rsa_private_from_pkcs8(pkcs8: &[u8]) -> Result<[&[u8]; 8], Error> {
    let mut outer = Reader::new(pkcs8);
    let mut info = Reader::new(outer.read(SEQUENCE)?);
    info.read(INTEGER)?; // version
    info.read(SEQUENCE)?; // algorithm
    let inner = info.read(OCTET_STRING)?;
    let mut r = Reader::new(inner);
    let mut seq = Reader::new(r.read(SEQUENCE)?);
    seq.read(INTEGER)?; // version 0 (two-prime)
    let mut out: [&[u8]; 8] = [&[]; 8];
    for slot in &mut out {
        *slot = seq.unsigned()?;
    }
    Ok(out)
}

/// A decoded PEM block; the DER is zeroized on drop since it may be a private key.
pub(crate) struct Pem {
    pub label: String,
    pub der: Zeroizing<Vec<u8>>,
}

/// Parses the first PEM block of `text` (RFC 7468 §2, lax about whitespace).
pub(crate) fn pem_decode(text: &str) -> Result<Pem, Error> {
    const BAD: Error = Error::InvalidKey("malformed PEM");
    let start = text.find("-----BEGIN ").ok_or(BAD)?;
    let after = &text[start + 11..];
    let label_end = after.find("-----").ok_or(BAD)?;
    let label = &after[..label_end];
    let body_and_rest = &after[label_end + 5..];
    let end_marker = format!("-----END {label}-----");
    let body_end = body_and_rest.find(&end_marker).ok_or(BAD)?;
    let body = &body_and_rest[..body_end];
    let mut b64 = Zeroizing::new(String::with_capacity(body.len()));
    for c in body.chars() {
        if !c.is_ascii_whitespace() {
            b64.push(c);
        }
    }
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64.as_bytes())
        .map_err(|_| BAD)?;
    Ok(Pem {
        label: label.to_owned(),
        der: Zeroizing::new(der),
    })
}

/// Armours `der` with `label`, 64 columns.
pub(crate) fn pem_encode(label: &str, der: &[u8]) -> Zeroizing<String> {
    let b64 = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(der));
    let mut out = Zeroizing::new(String::with_capacity(b64.len() + b64.len() / 64 + 64));
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        // base64 output is ASCII, so every chunk is valid UTF-8.
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}
