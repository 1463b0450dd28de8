//! Shared by the `token_verify` fuzz target and its stable-Rust corpus replay
//! (`crates/server/tests/fuzz_replay.rs`): arbitrary bytes as a compact token against a fixed
//! key set and the access-token policy. `tessera-jwt` must never panic, and must never accept
//! a token whose signature it did not make (the fuzzer cannot forge Ed25519 or guess the HMAC
//! secret, so any `Ok` is a bug).

use std::sync::LazyLock;

use tessera_jwt::{Algorithm, Clock, KeySet, SigningKey, Validation, VerifyingKey};

static KEYS: LazyLock<KeySet> = LazyLock::new(|| {
    let ed = SigningKey::from_secret_bytes(Algorithm::EdDSA, &ED25519_PKCS8)
        .map(|k| k.with_kid("ed"))
        .map(|k| k.verifying_key());
    let hs =
        VerifyingKey::from_hmac_secret(Algorithm::HS256, &[0x5a; 32]).map(|k| k.with_kid("hs"));
    match (ed, hs) {
        (Ok(ed), Ok(hs)) => KeySet::from_keys([ed, hs]).unwrap_or_default(),
        _ => KeySet::new(),
    }
});

/// A fixed Ed25519 PKCS#8 v1 key (seed 0x01..0x20), so runs are reproducible.
const ED25519_PKCS8: [u8; 48] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26,
    27, 28, 29, 30, 31, 32,
];

/// One input: verify (must fail), decode unverified and check the signature alone (must not
/// panic).
pub fn run(data: &[u8]) {
    assert_eq!(KEYS.len(), 2, "fixed key set did not build");
    let text = String::from_utf8_lossy(data);
    let policy = Validation::access_token("http://tessera.test", &["api"])
        .clock(Clock::Fixed(1_700_000_000));
    let r = tessera_jwt::verify_with_keys::<serde_json::Value>(&text, &KEYS, &policy);
    assert!(r.is_err(), "accepted a token nobody signed: {text:?}");
    let _ = tessera_jwt::dangerous::decode_unverified(&text);
    if let Some(k) = KEYS.get("hs") {
        let _ = tessera_jwt::verify_signature_only(&text, k, 8192);
    }
}
