//! Arbitrary bytes as a JWK and as a JWK Set: parsing and key import must never panic, and an
//! imported key's JWK must re-import to the same key. The property lives in
//! `fuzz/common/jwk_parse.rs`, shared with the corpus replay.
#![no_main]

#[path = "../common/jwk_parse.rs"]
mod jwk_parse;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| jwk_parse::run(data));
