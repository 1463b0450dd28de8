#!/usr/bin/env bash
# End-to-end tests of the browser app in headless Chromium against a real `tessera serve`.
#
#   web/e2e/run.sh            # everything: browser, deps, server build, tests
#
# Uses Debian's chromium (never downloads a browser) driven by playwright-core, and node's
# built-in test runner. The server gets a fresh temporary data directory and a free port;
# its first-run setup link is read from its output.
set -euo pipefail

WEB="$(cd "$(dirname "$0")/.." && pwd)"
ROOT="$(cd "$WEB/.." && pwd)"

if [ ! -x /usr/bin/chromium ]; then
  echo "e2e: installing chromium from Debian" >&2
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
fi

if [ ! -d "$WEB/node_modules/playwright-core" ]; then
  (cd "$WEB" && npm ci --no-audit --no-fund)
fi

# TESSERA_BIN=path skips the build (e.g. to re-run against an already built binary).
if [ -n "${TESSERA_BIN:-}" ]; then
  BIN="$TESSERA_BIN"
else
  (cd "$ROOT" && cargo build -p tessera-cli)
  BIN="$ROOT/target/debug/tessera"
fi

PORT="$(node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')"
DATA="$(mktemp -d -t tessera-e2e.XXXXXX)"
OUT="$DATA/stdout.log"
ERR="$DATA/stderr.log"

# Short access tokens so the silent refresh timer fires during the run.
TESSERA_DATA_DIR="$DATA" \
TESSERA_BIND="127.0.0.1:$PORT" \
TESSERA_ISSUER="http://127.0.0.1:$PORT" \
TESSERA_ACCESS_TOKEN_TTL="${TESSERA_ACCESS_TOKEN_TTL:-20}" \
TESSERA_REGISTRATION_OPEN=true \
TESSERA_LOG="${TESSERA_LOG:-warn}" \
  "$BIN" serve >"$OUT" 2>"$ERR" &
SERVER_PID=$!

cleanup() {
  kill "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  if [ "${KEEP_DATA:-0}" = 1 ]; then echo "e2e: server data and logs kept in $DATA" >&2; else rm -rf "$DATA"; fi
}
trap cleanup EXIT

BASE="http://127.0.0.1:$PORT"
SETUP_URL=""
for _ in $(seq 1 150); do
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "e2e: tessera serve exited early" >&2
    cat "$OUT" "$ERR" >&2
    exit 1
  fi
  # The link may be printed with any host; keep its token and use our address.
  TOKEN="$(grep -aoE '/setup#token=[A-Za-z0-9_.~%-]+' "$OUT" "$ERR" 2>/dev/null | head -n1 | sed 's/.*#token=//' || true)"
  if [ -n "$TOKEN" ] && curl -fsS -o /dev/null "$BASE/healthz" 2>/dev/null; then
    SETUP_URL="$BASE/setup#token=$TOKEN"
    break
  fi
  sleep 0.2
done
if [ -z "$SETUP_URL" ]; then
  echo "e2e: no setup link from tessera serve within 30 s" >&2
  cat "$OUT" "$ERR" >&2
  exit 1
fi

mkdir -p "$WEB/e2e/artifacts"
cd "$WEB"
TESSERA_URL="$BASE" TESSERA_SETUP_URL="$SETUP_URL" TESSERA_SERVER_LOG="$ERR" \
  node --test --test-concurrency=1 e2e/
