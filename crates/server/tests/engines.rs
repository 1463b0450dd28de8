//! The single-engine server suites again, with every server on PostgreSQL.
//!
//! `auth.rs` (accounts, sessions, refresh rotation and its races, logout, cutoffs, expiry,
//! throttling, bad input) and `keys.rs` (JWKS, staged and immediate rotation, restarts,
//! algorithms) start their servers on SQLite; included here, the harness
//! (`common::all_on_postgres`, true in this target) puts each of those servers on a fresh
//! PostgreSQL schema instead, so the same assertions hold on both engines without a copy
//! of any test. The OAuth, admin and feed suites already run on both engines themselves
//! (`engine_tests!`), and `multinode.rs` covers several nodes on one database.
//!
//! PostgreSQL unreachable: the servers stay on SQLite after a loud skip line, or every test
//! fails under `TESSERA_REQUIRE_POSTGRES=1`.

// Each included suite declares the harness module itself.
#![allow(clippy::duplicate_mod)]

#[path = "auth.rs"]
mod auth;
#[path = "keys.rs"]
mod keys;
