//! Arbitrary bytes as a compact token against a fixed key set and the access-token policy:
//! `tessera-jwt` must never panic, and must never accept a token whose signature it did not
//! make. The property lives in `fuzz/common/token_verify.rs`, shared with the corpus replay.
#![no_main]

#[path = "../common/token_verify.rs"]
mod token_verify;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| token_verify::run(data));
