#!/usr/bin/env bash
# Runs every test of Tessera: the Rust workspace (SQLite and PostgreSQL), the fuzz corpus
# replay, and the browser end-to-end tests. Installs or starts what the tests need, so it
# works on a fresh machine. Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

# --- PostgreSQL (tests use 127.0.0.1:5432, user postgres, trust auth, one schema per test) ---
pg_up() { (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; }
if ! pg_up; then
  log "PostgreSQL is not reachable on 127.0.0.1:5432; trying to start it"
  if ! command -v pg_ctlcluster >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) || true
  fi
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    ver="$(ls /etc/postgresql 2>/dev/null | sort -V | tail -1)"
    [ -n "$ver" ] && pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
    for _ in $(seq 1 30); do pg_up && break; sleep 1; done
  fi
fi
if pg_up; then
  psql -h 127.0.0.1 -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='test'" 2>/dev/null | grep -q 1 \
    || psql -h 127.0.0.1 -U postgres -d postgres -c "CREATE DATABASE test" >/dev/null 2>&1 || true
else
  echo "!!! PostgreSQL unavailable: PostgreSQL tests will SKIP (fail if TESSERA_REQUIRE_POSTGRES=1)" >&2
fi

# --- Rust workspace -----------------------------------------------------------------------
log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
# cargo-nextest runs every test in its own process, kills a hung one (.config/nextest.toml)
# and reports a test that passed only on retry as FLAKY; plain cargo test is the fallback.
if cargo nextest --version >/dev/null 2>&1; then
  profile=default
  [ "${CI:-}" = true ] && profile=ci
  log "cargo nextest run (workspace, profile $profile)"
  cargo nextest run --workspace --profile "$profile"
  log "cargo test --doc"
  cargo test --workspace --doc --quiet
else
  log "cargo test (workspace; cargo-nextest not installed)"
  cargo test --workspace --no-fail-fast
fi

# --- Extra suites, each owns its installer ----------------------------------------------------
for suite in fuzz/replay.sh web/e2e/run.sh tests/schemathesis/run.sh; do
  if [ -x "$suite" ]; then
    log "$suite"
    "$suite"
  fi
done
log "all test suites passed"
