#!/usr/bin/env bash
# In-process A/B of HS256 (or another algorithm) verify+validate: the floor, this tree's
# tessera-jwt and an earlier revision's, compiled side by side as two crates and timed in
# interleaved rounds, so that machine load cancels out of "base/new".
#
#   bench/jwt/ab/run.sh REV [ROUNDS [ALG]]      e.g. bench/jwt/ab/run.sh main~3 2001 HS256
#
# Prints: floor/new, floor/base and base/new (> 1: this tree is faster than REV).
# ONLY=floor|new|base N=iterations runs one contender alone (for perf / callgrind).
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
rev=${1:?usage: run.sh REV [ROUNDS [ALG]]}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git -C "$root" archive "$rev" crates/jwt | tar -x -C "$work"
rm -rf "$work/crates/jwt/tests"
cat > "$work/crates/jwt/Cargo.toml" <<TOML
[package]
name = "tessera-jwt-base"
version = "0.0.0"
edition = "2021"

[dependencies]
aws-lc-rs = "1"
base64 = "0.22"
memchr = "2"
serde = { version = "1", features = ["derive"] }
serde_json = "1"
thiserror = "2"
zeroize = { version = "1", features = ["derive"] }
TOML
mkdir -p "$work/h/src"
cp "$root/bench/jwt/ab/main.rs" "$work/h/src/main.rs"
cat > "$work/h/Cargo.toml" <<TOML
[package]
name = "abx"
version = "0.0.0"
edition = "2021"

[workspace]

[dependencies]
tessera-jwt = { path = "$root/crates/jwt" }
tessera-jwt-base = { path = "$work/crates/jwt" }
tessera-jwt-bench = { path = "$root/bench/jwt" }

[profile.bench]
debug = 1
lto = "thin"
codegen-units = 4
TOML
export CARGO_TARGET_DIR="$root/target/bench"
(cd "$work/h" && cargo build --quiet --profile bench)
for _ in 1 2 3; do "$CARGO_TARGET_DIR/release/abx" "${2:-2001}" "${3:-HS256}"; done
