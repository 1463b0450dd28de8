#!/usr/bin/env bash
# System benchmarks of the release `tessera` server over loopback, driven by wrk.
# Called by bench/run.sh (which builds the binaries first); writes raw figures to
# $OUT/results.tsv (one line per round: name, round, value, p99_ms, errors) and
# $OUT/facts.tsv (single measurements), then bench/system/report.py turns them into the table.
#
# Every figure is measured next to its baseline in the same round (alternating), because the
# machine is shared and noisy: the ratio is what is compared, not the absolute number.
#
# Environment: RUNS (rounds per point, default 3), DUR (seconds per point, default 5),
# CONNS (default 32), RSS_SECS (mixed-load duration for the memory figure, default 120),
# SKIP (space-separated sections to skip: cc introspect jwks refresh login pg rss session;
# within session: cold), COLD_MINT_SECS (seconds of client_credentials minting per round for
# the cold-cache point, default 3 x DUR), NOTES_API_OLD (another notes-api binary, measured in
# the same rounds as notes_jwt_old: a same-run A/B of a verifier change).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=$ROOT/target/release
LUA=$ROOT/bench/system/lua
OUT=${OUT:-$ROOT/bench/system/out}
RUNS=${RUNS:-3}
DUR=${DUR:-5}
CONNS=${CONNS:-32}
THREADS=2
RSS_SECS=${RSS_SECS:-120}
SKIP=${SKIP:-}
PG_URL_BASE=${PG_URL_BASE:-postgres://postgres@127.0.0.1:5432}
PASSWORD='correct horse battery staple'
P_AUTH=18480
P_PG=18481
P_HELLO=18482
P_NOTES=18483
P_SESS=18484
P_SESS_PG=18485
P_NOTES_OPEN=18487
P_NOTES_OLD=18488
COLD_MINT_SECS=${COLD_MINT_SECS:-$((DUR * 3))}

mkdir -p "$OUT"
: >"$OUT/results.tsv"
: >"$OUT/facts.tsv"
TMP=$(mktemp -d /tmp/tessera-bench.XXXXXX)
PIDS=()
PG_DB=""
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "$PG_DB" ]; then
    psql "$PG_URL_BASE/postgres" -qc "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null 2>&1 || true
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT

skip() { [[ " $SKIP " == *" $1 "* ]]; }
log() { echo "[system $(date -u +%H:%M:%S)] $*" >&2; }
fact() { printf '%s\t%s\n' "$1" "$2" >>"$OUT/facts.tsv"; }

# wrk_point NAME ROUND [wrk args...]: runs wrk, appends "name round req/s p99_ms errors".
wrk_point() {
  local name=$1 round=$2
  shift 2
  local out
  out=$(wrk -t"$THREADS" -c"$CONNS" -d"${DUR}s" --timeout 10s --latency "$@" 2>&1)
  echo "$out" >"$OUT/wrk-$name-$round.txt"
  local rps p99 errs
  rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub(/us$/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v=v*1000}; print v}' <<<"$out")
  errs=$(awk '/Non-2xx or 3xx responses:/ {n+=$NF} /Socket errors:/ {gsub(/,/,""); n+=$4+$6+$8+$10} END {print n+0}' <<<"$out")
  printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$round" "${rps:-0}" "${p99:-0}" "$errs" >>"$OUT/results.tsv"
  log "$name #$round: ${rps:-0} req/s, p99 ${p99:-?} ms, errors $errs"
}

wait_http() { # URL
  for _ in $(seq 1 200); do
    curl -fs -o /dev/null "$1" && return 0
    sleep 0.1
  done
  echo "timeout waiting for $1" >&2
  return 1
}

# start_auth PORT DATA_DIR [DATABASE_URL]: a release tessera server, admin user created first.
start_auth() {
  local port=$1 data=$2 db=${3:-}
  mkdir -p "$data"
  local envs=(TESSERA_BIND=127.0.0.1:$port TESSERA_ISSUER=http://127.0.0.1:$port
    TESSERA_DATA_DIR=$data TESSERA_COOKIE_SECURE=false)
  [ -n "$db" ] && envs+=(TESSERA_DATABASE_URL=$db)
  echo "$PASSWORD" | env "${envs[@]}" "$BIN/tessera" user add --email admin@bench.test --role admin >/dev/null
  env "${envs[@]}" "$BIN/tessera" serve >"$data/server.log" 2>&1 &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
  wait_http "http://127.0.0.1:$port/healthz"
}

login_native() { # BASE EMAIL -> JSON
  curl -fs "$1/auth/login" -H 'content-type: application/json' \
    -d "{\"email\":\"$2\",\"password\":\"$PASSWORD\",\"native\":true}"
}

# make_sessions BASE N FILE: N native sessions of admin@bench.test, refresh tokens to FILE.
make_sessions() {
  : >"$3"
  local i lp=()
  for i in $(seq 1 "$2"); do
    login_native "$1" admin@bench.test | jq -r .refresh_token >>"$3" &
    lp+=($!)
    if (( i % 4 == 0 )); then wait "${lp[@]}"; lp=(); fi
  done
  [ ${#lp[@]} -eq 0 ] || wait "${lp[@]}"
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# ---------------------------------------------------------------- setup (SQLite server)
log "starting tessera (SQLite) and the helper baselines"
start_auth $P_AUTH "$TMP/auth"
AUTH_PID=$LAST_PID
BASE=http://127.0.0.1:$P_AUTH
sleep 1
fact rss_idle_start_kb "$(rss_kb $AUTH_PID)"
ADMIN_JSON=$(login_native $BASE admin@bench.test)
ADMIN=$(jq -r .access_token <<<"$ADMIN_JSON")
CLIENT=$(curl -fs $BASE/admin/clients -H "authorization: Bearer $ADMIN" -H 'content-type: application/json' \
  -d '{"name":"bench","scope":"revocations:read"}')
CID=$(jq -r .client_id <<<"$CLIENT")
CSECRET=$(jq -r .client_secret <<<"$CLIENT")
BASIC="Basic $(printf '%s:%s' "$CID" "$CSECRET" | base64 -w0)"
# The token introspected: a user's access token (session-bound, so introspection checks the
# session, the user and the jti).
USER_AT=$ADMIN

if ! skip jwks; then
  "$BIN/tessera-system-bench" hello 127.0.0.1:$P_HELLO &
  PIDS+=($!)
  wait_http http://127.0.0.1:$P_HELLO/hello
fi

# Sanity: each request shape answers 200 before it is timed.
curl -fs -o /dev/null $BASE/oauth/token -H "authorization: $BASIC" -d grant_type=client_credentials
curl -fs -o /dev/null $BASE/oauth/introspect -H "authorization: $BASIC" -d "token=$USER_AT"
curl -fs -o /dev/null $BASE/.well-known/jwks.json

for r in $(seq 1 "$RUNS"); do
  skip cc || wrk_point client_credentials "$r" -s "$LUA/post.lua" $BASE -- /oauth/token \
    application/x-www-form-urlencoded grant_type=client_credentials "$BASIC"
  skip introspect || wrk_point introspect "$r" -s "$LUA/post.lua" $BASE -- /oauth/introspect \
    application/x-www-form-urlencoded "token=$USER_AT" "$BASIC"
  if ! skip jwks; then
    wrk_point hello "$r" http://127.0.0.1:$P_HELLO/hello
    wrk_point jwks "$r" $BASE/.well-known/jwks.json
    # Tessera's own cheapest route: separates the router's layers from the JWKS handler.
    wrk_point healthz "$r" $BASE/healthz
  fi
  if ! skip refresh; then
    make_sessions $BASE 64 "$TMP/rt-$r.txt"
    wrk_point refresh_sqlite "$r" -s "$LUA/refresh.lua" $BASE -- "$TMP/rt-$r.txt" $THREADS
  fi
  if ! skip login; then
    wrk_point login "$r" -s "$LUA/post.lua" $BASE -- /auth/login application/json \
      "{\"email\":\"admin@bench.test\",\"password\":\"$PASSWORD\",\"native\":true}"
    v=$("$BIN/tessera-system-bench" argon2 $THREADS "$DUR")
    printf 'argon2_raw\t%s\t%s\t0\t0\n' "$r" "$v" >>"$OUT/results.tsv"
    log "argon2_raw #$r: $v hashes/s"
  fi
done

# ---------------------------------------------------------------- refresh on PostgreSQL
# Baseline: refresh on the SQLite server in the same round.
if ! skip pg; then
  if pg_isready -h 127.0.0.1 -p 5432 -q; then
    PG_DB=tessera_bench_$$
    psql "$PG_URL_BASE/postgres" -qc "CREATE DATABASE $PG_DB" >/dev/null
    log "starting tessera (PostgreSQL, database $PG_DB)"
    start_auth $P_PG "$TMP/auth-pg" "$PG_URL_BASE/$PG_DB"
    PG_PID=$LAST_PID
    for r in $(seq 1 "$RUNS"); do
      make_sessions $BASE 64 "$TMP/rtb-$r.txt"
      make_sessions http://127.0.0.1:$P_PG 64 "$TMP/rtpg-$r.txt"
      wrk_point refresh_sqlite_pground "$r" -s "$LUA/refresh.lua" $BASE -- "$TMP/rtb-$r.txt" $THREADS
      wrk_point refresh_postgres "$r" -s "$LUA/refresh.lua" http://127.0.0.1:$P_PG -- "$TMP/rtpg-$r.txt" $THREADS
    done
    kill $PG_PID 2>/dev/null || true
  else
    log "PostgreSQL not reachable on 127.0.0.1:5432: skipping refresh_postgres"
  fi
fi

# ---------------------------------------------------------------- stateless vs session lookup
if ! skip session; then
  log "notes-api (tessera-verify) vs a session-id lookup resource server"
  NOTES_BIND=127.0.0.1:$P_NOTES NOTES_ISSUER=$BASE NOTES_CLIENT_ID=$CID NOTES_CLIENT_SECRET=$CSECRET \
    "$BIN/notes-api" >"$TMP/notes.log" 2>&1 &
  PIDS+=($!)
  wait_http http://127.0.0.1:$P_NOTES/healthz
  # The same GET /notes through notes-api's own stack (notes_api::with_limits + serve) with no
  # authentication: the baseline of the verifier rows, which then differ only by the auth check.
  "$BIN/feed-latency" notes-open 127.0.0.1:$P_NOTES_OPEN &
  PIDS+=($!)
  wait_http http://127.0.0.1:$P_NOTES_OPEN/notes
  if [ -n "${NOTES_API_OLD:-}" ]; then
    NOTES_BIND=127.0.0.1:$P_NOTES_OLD NOTES_ISSUER=$BASE NOTES_CLIENT_ID=$CID NOTES_CLIENT_SECRET=$CSECRET \
      "$NOTES_API_OLD" >"$TMP/notes-old.log" 2>&1 &
    PIDS+=($!)
    wait_http http://127.0.0.1:$P_NOTES_OLD/healthz
  fi
  "$BIN/tessera-system-bench" sessions 127.0.0.1:$P_SESS "sqlite://$TMP/sessions.db?mode=rwc" 10000 "$TMP/sids.txt" &
  PIDS+=($!)
  wait_http http://127.0.0.1:$P_SESS/open/notes
  HAVE_PG_SESS=0
  if [ -n "$PG_DB" ]; then
    "$BIN/tessera-system-bench" sessions 127.0.0.1:$P_SESS_PG "$PG_URL_BASE/$PG_DB" 10000 "$TMP/sids-pg.txt" &
    PIDS+=($!)
    wait_http http://127.0.0.1:$P_SESS_PG/open/notes && HAVE_PG_SESS=1
  fi
  SID=$(head -1 "$TMP/sids.txt")
  curl -fs -o /dev/null http://127.0.0.1:$P_NOTES/notes -H "authorization: Bearer $ADMIN"
  curl -fs -o /dev/null http://127.0.0.1:$P_SESS/notes -H "cookie: sid=$SID"
  if ! skip cold; then
    # Cold cache: every request carries a token the verifier has never seen, minted before the
    # round by the real server (client_credentials grant). The token core's own rate on one
    # thread (jwt-rate: tessera_jwt verify + the verifier's policy, same tokens) is measured in
    # the same round as its baseline.
    for r in $(seq 1 "$RUNS"); do
      wrk -t"$THREADS" -c"$CONNS" -d"${COLD_MINT_SECS}s" --timeout 10s -s "$LUA/mint.lua" $BASE -- \
        "$TMP/cold-$r" "$BASIC" >"$OUT/wrk-mint-$r.txt" 2>&1
      cat "$TMP/cold-$r".[0-9]* >"$TMP/cold-$r.txt"
      rm -f "$TMP/cold-$r".[0-9]*
      log "minted $(wc -l <"$TMP/cold-$r.txt") client_credentials tokens for round $r"
    done
    curl -fs -o /dev/null http://127.0.0.1:$P_NOTES/notes -H "authorization: Bearer $(head -1 "$TMP/cold-1.txt")"
  fi
  for r in $(seq 1 "$RUNS"); do
    wrk_point open_notes "$r" http://127.0.0.1:$P_SESS/open/notes
    wrk_point notes_open "$r" http://127.0.0.1:$P_NOTES_OPEN/notes
    # The header is wrk's own (-H), not a Lua request() (which wrk calls for every request on
    # the cores the servers use), so the row differs from notes_open only by the header's
    # bytes and the check.
    wrk_point notes_jwt "$r" -H "Authorization: Bearer $ADMIN" http://127.0.0.1:$P_NOTES/notes
    # The unauthenticated twin sent the very same request bytes (token ignored): what the
    # ~560-byte header costs by itself, apart from the check.
    wrk_point notes_open_hdr "$r" -H "Authorization: Bearer $ADMIN" http://127.0.0.1:$P_NOTES_OPEN/notes
    [ -n "${NOTES_API_OLD:-}" ] && wrk_point notes_jwt_old "$r" -H "Authorization: Bearer $ADMIN" http://127.0.0.1:$P_NOTES_OLD/notes
    if ! skip cold; then
      # The first token of the file was sent in the sanity check above: skip it.
      [ "$r" = 1 ] && sed -i 1d "$TMP/cold-1.txt"
      wrk_point notes_cold "$r" -s "$LUA/cold.lua" http://127.0.0.1:$P_NOTES -- /notes "$TMP/cold-$r.txt" $THREADS
      v=$("$BIN/feed-latency" jwt-rate $BASE "$TMP/cold-$r.txt" "$DUR")
      printf 'jwt_verify_1core\t%s\t%s\t0\t0\n' "$r" "$v" >>"$OUT/results.tsv"
      log "jwt_verify_1core #$r: $v verifications/s"
    fi
    wrk_point notes_session_sqlite "$r" -s "$LUA/cookie.lua" http://127.0.0.1:$P_SESS -- /notes "$TMP/sids.txt"
    [ $HAVE_PG_SESS = 1 ] && wrk_point notes_session_postgres "$r" -s "$LUA/cookie.lua" http://127.0.0.1:$P_SESS_PG -- /notes "$TMP/sids-pg.txt"
  done
  # Bytes on the wire: the whole request as curl sends it (request line + headers).
  fact bytes_request_jwt "$(curl -s -o /dev/null -w '%{size_request}' http://127.0.0.1:$P_NOTES/notes -H "authorization: Bearer $ADMIN")"
  fact bytes_request_session "$(curl -s -o /dev/null -w '%{size_request}' http://127.0.0.1:$P_SESS/notes -H "cookie: sid=$SID")"
  fact bytes_access_token "${#ADMIN}"
  fact bytes_session_id "${#SID}"
  # Tessera's own browser refresh cookie (name=value as sent back in Cookie:).
  COOKIE=$(curl -s -D - -o /dev/null $BASE/auth/login -H 'content-type: application/json' \
    -d "{\"email\":\"admin@bench.test\",\"password\":\"$PASSWORD\"}" | awk -F'[:;] ?' 'tolower($1)=="set-cookie" {print $2; exit}')
  fact bytes_refresh_cookie "${#COOKIE}"
fi

# ---------------------------------------------------------------- memory under mixed load
if ! skip rss; then
  log "RSS: fresh server, idle, then ${RSS_SECS}s of mixed load"
  start_auth 18486 "$TMP/auth-rss"
  RPID=$LAST_PID
  RB=http://127.0.0.1:18486
  sleep 2
  fact rss_idle_fresh_kb "$(rss_kb $RPID)"
  AJ=$(login_native $RB admin@bench.test)
  AT=$(jq -r .access_token <<<"$AJ")
  C2=$(curl -fs $RB/admin/clients -H "authorization: Bearer $AT" -H 'content-type: application/json' -d '{"name":"rss"}')
  B2="Basic $(printf '%s:%s' "$(jq -r .client_id <<<"$C2")" "$(jq -r .client_secret <<<"$C2")" | base64 -w0)"
  make_sessions $RB 32 "$TMP/rt-rss.txt"
  sleep 1
  fact rss_idle_ready_kb "$(rss_kb $RPID)"
  : >"$OUT/rss.tsv"
  W="wrk -t1 -c8 -d${RSS_SECS}s --timeout 10s"
  WP=()
  $W -s "$LUA/post.lua" $RB -- /oauth/token application/x-www-form-urlencoded grant_type=client_credentials "$B2" >"$OUT/rss-cc.txt" 2>&1 &
  WP+=($!)
  $W -s "$LUA/post.lua" $RB -- /oauth/introspect application/x-www-form-urlencoded "token=$AT" "$B2" >"$OUT/rss-introspect.txt" 2>&1 &
  WP+=($!)
  $W $RB/.well-known/jwks.json >"$OUT/rss-jwks.txt" 2>&1 &
  WP+=($!)
  wrk -t2 -c8 -d${RSS_SECS}s --timeout 10s -s "$LUA/refresh.lua" $RB -- "$TMP/rt-rss.txt" 2 >"$OUT/rss-refresh.txt" 2>&1 &
  WP+=($!)
  wrk -t1 -c2 -d${RSS_SECS}s --timeout 10s -s "$LUA/post.lua" $RB -- /auth/login application/json \
    "{\"email\":\"admin@bench.test\",\"password\":\"$PASSWORD\",\"native\":true}" >"$OUT/rss-login.txt" 2>&1 &
  WP+=($!)
  t0=$(date +%s)
  while (( $(date +%s) - t0 < RSS_SECS )); do
    printf '%s\t%s\n' "$(( $(date +%s) - t0 ))" "$(rss_kb $RPID)" >>"$OUT/rss.tsv"
    sleep 2
  done
  wait "${WP[@]}" || true
  sleep 3
  fact rss_after_load_kb "$(rss_kb $RPID)"
  sleep 10
  fact rss_after_load_idle10_kb "$(rss_kb $RPID)"
  for f in cc introspect jwks refresh login; do
    fact "rss_load_rps_$f" "$(awk '/^Requests\/sec:/ {print $2}' "$OUT/rss-$f.txt")"
  done
fi
log "done"
