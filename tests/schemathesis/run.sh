#!/usr/bin/env bash
# Schema-driven API testing: schemathesis generates requests from the server's own
# /openapi.json and checks that no answer is a 5xx (not_a_server_error) and that every
# answer matches the documented schema (response_schema_conformance).
#
# Installs schemathesis (pinned) into a venv under target/, starts `tessera serve` on a free
# port with a throwaway data directory, runs two bounded passes (anonymous, then
# authenticated with tests/schemathesis/auth.toml; about 45 s in all), stops the
# server. Exit status: non-zero on any server error or schema contradiction.
# Usage: tests/schemathesis/run.sh   (MAX_EXAMPLES=N to change the per-operation budget)
set -euo pipefail
cd "$(dirname "$0")/../.."

SCHEMATHESIS_VERSION=4.32.5
MAX_EXAMPLES="${MAX_EXAMPLES:-50}"
venv=target/schemathesis-venv
log() { printf '==> %s\n' "$*"; }

if ! "$venv/bin/st" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  log "installing schemathesis $SCHEMATHESIS_VERSION into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "schemathesis==$SCHEMATHESIS_VERSION"
fi

log "building tessera"
cargo build -p tessera-cli --quiet
bin=target/debug/tessera

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"
data="$(mktemp -d)"
server_log="$data/server.log"
cleanup() {
  if [ -n "${pid:-}" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$data"
}
trap cleanup EXIT

# Registration open and generous throttles so generated calls reach the handlers; the
# cookie is not Secure because this runs over plain loopback HTTP.
TESSERA_BIND="127.0.0.1:$port" TESSERA_ISSUER="$base" TESSERA_DATA_DIR="$data/tessera" \
TESSERA_THROTTLE_REGISTER_FREE=100000 TESSERA_THROTTLE_IP_FREE=100000 \
TESSERA_THROTTLE_ACCOUNT_FREE=100000 TESSERA_COOKIE_SECURE=false \
  "$bin" serve >"$server_log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  curl -fsS "$base/healthz" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -fsS "$base/healthz" >/dev/null || { cat "$server_log"; echo "tessera did not start" >&2; exit 1; }

code="$(curl -s -o /dev/null -w '%{http_code}' "$base/openapi.json")"
if [ "$code" = 404 ]; then
  echo "!!! /openapi.json is 404: the OpenAPI document is not served yet; schemathesis SKIPPED" >&2
  exit 0
fi

# An admin and an OAuth client with the feed scope, so the authenticated operations are
# exercised too. The setup link is printed just after the listener is up: wait for it.
setup_token=""
for _ in $(seq 1 50); do
  setup_token="$(grep -o 'token=[A-Za-z0-9_-]*' "$server_log" | head -1 | cut -d= -f2 || true)"
  [ -n "$setup_token" ] && break
  sleep 0.1
done
[ -n "$setup_token" ] || { cat "$server_log"; echo "!!! no setup token found" >&2; exit 1; }
export ST_ADMIN_EMAIL=admin@example.com ST_ADMIN_PASSWORD='correct horse battery staple'
curl -fsS -H 'content-type: application/json' \
  -d "{\"token\":\"$setup_token\",\"email\":\"$ST_ADMIN_EMAIL\",\"password\":\"$ST_ADMIN_PASSWORD\"}" \
  "$base/auth/setup" >/dev/null
access="$(curl -fsS -H 'content-type: application/json' \
  -d "{\"email\":\"$ST_ADMIN_EMAIL\",\"password\":\"$ST_ADMIN_PASSWORD\"}" \
  "$base/auth/login" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')"
client="$(curl -fsS -H "authorization: Bearer $access" -H 'content-type: application/json' \
  -d '{"name":"schemathesis","scope":"revocations:read"}' "$base/admin/clients")"
ST_CLIENT_ID="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["client_id"])' "$client")"
ST_CLIENT_SECRET="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["client_secret"])' "$client")"
export ST_CLIENT_ID ST_CLIENT_SECRET

log "schemathesis $SCHEMATHESIS_VERSION against $base/openapi.json (max $MAX_EXAMPLES examples per operation)"
st_run() {
  timeout 240 "$venv/bin/st" "$@" run "$base/openapi.json" \
    --url "$base" \
    --checks not_a_server_error,response_schema_conformance \
    --max-examples "$MAX_EXAMPLES" \
    --phases examples,coverage,fuzzing \
    --exclude-path /revocations/stream \
    --request-timeout 10 \
    --no-color
}
# schemathesis only warns when an operation never got past 401/403 ("Authentication
# failed"): in the authenticated pass that means the credentials stopped working, so fail.
auth_failed() { grep -q 'Authentication failed' "$1"; }
status=0
out="$data/st-anonymous.txt"
# 1. Anonymous: every operation, as an attacker without credentials sees it.
st_run >"$out" 2>&1 || status=1
cat "$out"
# 2. Authenticated (tests/schemathesis/auth.toml): `bearer` operations with an admin token
#    fetched by logging in, fetched again after any 401 (the run itself logs out, revokes
#    its own session and changes its own roles, each of which ends the token);
#    `client_basic` operations (introspection, revocation, the feed) as the feed client.
log "again, authenticated (admin bearer token, feed client)"
out="$data/st-authenticated.txt"
st_run --config-file tests/schemathesis/auth.toml >"$out" 2>&1 || status=1
cat "$out"
if auth_failed "$out"; then
  echo "!!! the authenticated pass did not get past 401/403 on some operations:" >&2
  sed -n '/Authentication failed/,/💡/p' "$out" >&2
  status=1
fi

if grep -q 'panicked' "$server_log"; then
  echo "!!! the server panicked:" >&2
  grep -A3 'panicked' "$server_log" >&2
  status=1
fi
exit "$status"
