//! The integration tests of tessera-jwt: one binary, one module per concern.

// Test code: a failed expectation is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod attacks;
mod common;
mod jwk;
mod proptests;
mod rfc;
mod roundtrip;
mod validation;
