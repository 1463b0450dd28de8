//! The server's one seam over the crypto crate (aws-lc-rs), outside the token core.
//!
//! AES-256-GCM for private keys at rest, HMAC-SHA256 for derived secrets and refresh-token
//! successors, SHA-256 for stored token hashes, and the system CSPRNG.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::{digest, hmac};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use zeroize::Zeroizing;

/// A cryptographic operation failed (the CSPRNG or an AEAD seal/open).
#[derive(Debug, thiserror::Error)]
#[error("cryptographic operation failed: {0}")]
pub struct CryptoError(pub &'static str);

/// Fills `buf` from the system CSPRNG.
pub fn fill_random(buf: &mut [u8]) -> Result<(), CryptoError> {
    SystemRandom::new()
        .fill(buf)
        .map_err(|_| CryptoError("random number generator"))
}

/// `N` random bytes.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut buf = [0u8; N];
    fill_random(&mut buf)?;
    Ok(buf)
}

/// A random 256-bit value as unpadded base64url (43 characters): refresh tokens, setup
/// tokens, client secrets.
pub fn random_token() -> Result<String, CryptoError> {
    let bytes = Zeroizing::new(random_bytes::<32>()?);
    Ok(URL_SAFE_NO_PAD.encode(bytes.as_ref()))
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> Vec<u8> {
    digest::digest(&digest::SHA256, data).as_ref().to_vec()
}

/// SHA-256 of `data` as an array (a map key).
pub fn sha256_array(data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, data).as_ref());
    out
}

/// HMAC-SHA256 of `data` under `key`.
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let tag = hmac::sign(&key, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

/// Constant-time equality of two byte strings (secrets, token hashes).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq as _;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Encrypts `plaintext` with AES-256-GCM under `key`, binding `aad` (the kid, so an encrypted
/// key cannot be swapped onto another record). Output: `nonce || ciphertext || tag`.
pub fn seal(key: &[u8; 32], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let unbound = UnboundKey::new(&AES_256_GCM, key).map_err(|_| CryptoError("aes key"))?;
    let key = LessSafeKey::new(unbound);
    let nonce_bytes = random_bytes::<NONCE_LEN>()?;
    let nonce = Nonce::assume_unique_for_key(nonce_bytes);
    let mut in_out = plaintext.to_vec();
    key.seal_in_place_append_tag(nonce, Aad::from(aad), &mut in_out)
        .map_err(|_| CryptoError("aes-gcm seal"))?;
    let mut out = Vec::with_capacity(NONCE_LEN + in_out.len());
    out.extend_from_slice(&nonce_bytes);
    out.extend_from_slice(&in_out);
    zeroize::Zeroize::zeroize(&mut in_out);
    Ok(out)
}

/// Decrypts the output of [`seal`]; fails when the key, the AAD or the data do not match.
pub fn open(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    if sealed.len() < NONCE_LEN {
        return Err(CryptoError("sealed data too short"));
    }
    let (nonce_bytes, ct) = sealed.split_at(NONCE_LEN);
    let nonce =
        Nonce::try_assume_unique_for_key(nonce_bytes).map_err(|_| CryptoError("aes-gcm nonce"))?;
    let unbound = UnboundKey::new(&AES_256_GCM, key).map_err(|_| CryptoError("aes key"))?;
    let key = LessSafeKey::new(unbound);
    let mut in_out = Zeroizing::new(ct.to_vec());
    let len = key
        .open_in_place(nonce, Aad::from(aad), &mut in_out)
        .map_err(|_| CryptoError("aes-gcm open"))?
        .len();
    in_out.truncate(len);
    Ok(in_out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_roundtrip_and_aad_binding() {
        let key = [7u8; 32];
        let sealed = seal(&key, b"kid-1", b"secret").unwrap();
        assert_eq!(open(&key, b"kid-1", &sealed).unwrap().as_slice(), b"secret");
        assert!(open(&key, b"kid-2", &sealed).is_err());
        assert!(open(&[8u8; 32], b"kid-1", &sealed).is_err());
    }

    #[test]
    fn random_token_is_43_chars() {
        assert_eq!(random_token().unwrap().len(), 43);
        assert_ne!(random_token().unwrap(), random_token().unwrap());
    }
}
