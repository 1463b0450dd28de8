#!/usr/bin/env bash
# Soak: SOAK_SECS (default 600) of mixed load against a release `tessera serve`, then checks
# that nothing failed and nothing grew. A correctness run, not a benchmark: it is not part of
# the test command and times nothing; run it with the machine as quiet as you can.
#
#   bench/soak/soak.sh                      # SQLite in a temporary data dir
#   SOAK_DB=postgres bench/soak/soak.sh     # a fresh database on PG_URL_BASE (dropped after)
#
# Load (wrk over loopback, one process per stream, all at once for the whole run):
#   flow      register -> native login -> /auth/me -> refresh -> /auth/sessions -> logout ->
#             the logged-out token is refused (401), on new accounts over and over
#   refresh   refresh-token rotation chains at /oauth/token (every token used once)
#   cc        client_credentials grants (HTTP Basic)
#   intro     introspection of a user's access token (client Basic)
#   jwks      GET /.well-known/jwks.json
#   me        protected GET /auth/me with a bearer token
#   admin     protected GET /admin/users?limit=20 with an admin token
#
# Sampled every SAMPLE_SECS (default 5) from /proc/PID: VmRSS, RssAnon, RssFile, open file
# descriptors, threads; and the database size. Checks, written to $OUT/summary.md:
#   - zero 5xx: from the server's own /metrics (every answer it sent) and from wrk's counts;
#     zero socket errors; no flow step answered other than expected, no refresh but 200;
#   - memory flat: the RSS floor (lowest sample) and the RssAnon (heap) floor of minute 10
#     are within RSS_TOLERANCE_KB (default 5 MiB) of minute 2's. Argon2id's 19 MiB working
#     memory per login in flight quantizes the samples (SQLite, 2026-12-02: ~21 / 40 / 59 MB),
#     so the median only says how often a login was in flight at a sample, i.e. how slow
#     logins were on a busy machine (that run: median 21.2 MB in minute 2, 40.5 MB in
#     minute 10, floors 20.7 and 21.5 MB); median and peaks are reported, not compared;
#   - no fd growth: the most fds open in minute 10 is at most minute 2's + FD_TOLERANCE (2).
# Minutes are scaled when SOAK_SECS is not 600: "minute 2" is the second tenth of the run,
# "minute 10" the last tenth. Exit status 1 when a check fails.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=$ROOT/target/release/tessera
LUA=$ROOT/bench/soak/lua
SOAK_SECS=${SOAK_SECS:-600}
SAMPLE_SECS=${SAMPLE_SECS:-5}
SOAK_DB=${SOAK_DB:-sqlite}
OUT=${OUT:-$ROOT/bench/soak/out/$SOAK_DB}
RSS_TOLERANCE_KB=${RSS_TOLERANCE_KB:-5120}
FD_TOLERANCE=${FD_TOLERANCE:-2}
PG_URL_BASE=${PG_URL_BASE:-postgres://postgres@127.0.0.1:5432}
PORT=${PORT:-18490}
PASSWORD='correct horse battery staple'
BASE=http://127.0.0.1:$PORT

log() { echo "[soak $(date -u +%H:%M:%S)] $*" >&2; }

if [ ! -x "$BIN" ] || [ -n "${SOAK_BUILD:-}" ]; then
  log "building the release binary"
  (cd "$ROOT" && cargo build --release -p tessera-cli --quiet)
fi
command -v wrk >/dev/null || { echo "wrk is needed (apt-get install wrk)" >&2; exit 1; }

mkdir -p "$OUT"
rm -f "$OUT"/*
TMP=$(mktemp -d /tmp/tessera-soak.XXXXXX)
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

envs=(TESSERA_BIND=127.0.0.1:$PORT TESSERA_ISSUER=$BASE TESSERA_DATA_DIR=$TMP/data
  TESSERA_COOKIE_SECURE=false
  # Every flow registers a new account from the same address, and the load logs in far more
  # often than a person: the throttles would (rightly) stop it.
  TESSERA_THROTTLE_REGISTER_FREE=100000000 TESSERA_THROTTLE_IP_FREE=100000000
  TESSERA_THROTTLE_ACCOUNT_FREE=100000000
  # The me/admin/intro streams reuse one token for the whole run.
  TESSERA_ACCESS_TOKEN_TTL=$((SOAK_SECS + 600)))
if [ "$SOAK_DB" = postgres ]; then
  PG_DB=tessera_soak_$$
  psql "$PG_URL_BASE/postgres" -qc "CREATE DATABASE $PG_DB" >/dev/null
  envs+=(TESSERA_DATABASE_URL=$PG_URL_BASE/$PG_DB)
fi
mkdir -p "$TMP/data"
echo "$PASSWORD" | env "${envs[@]}" "$BIN" user add --email admin@soak.test --role admin >/dev/null
env "${envs[@]}" nice -n 19 "$BIN" serve >"$OUT/server.log" 2>&1 &
PID=$!
PIDS+=("$PID")
for _ in $(seq 1 200); do curl -fs -o /dev/null "$BASE/healthz" && break; sleep 0.1; done
curl -fs -o /dev/null "$BASE/healthz" || { cat "$OUT/server.log"; exit 1; }

sample() { # ELAPSED -> one TSV line
  local st fds threads db
  st=$(cat "/proc/$PID/status")
  fds=$(find "/proc/$PID/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
  threads=$(awk '/^Threads:/ {print $2}' <<<"$st")
  if [ "$SOAK_DB" = postgres ]; then
    db=$(psql "$PG_URL_BASE/$PG_DB" -Atqc "SELECT pg_database_size(current_database())/1024" 2>/dev/null || echo 0)
  else
    db=$(du -sk "$TMP/data" | cut -f1)
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" \
    "$(awk '/^VmRSS:/ {print $2}' <<<"$st")" "$(awk '/^RssAnon:/ {print $2}' <<<"$st")" \
    "$(awk '/^RssFile:/ {print $2}' <<<"$st")" "$fds" "$threads" "$db"
}
printf 'secs\trss_kb\tanon_kb\tfile_kb\tfds\tthreads\tdb_kb\n' >"$OUT/samples.tsv"
IDLE=$(sample idle)

login() { curl -fs "$BASE/auth/login" -H 'content-type: application/json' \
  -d "{\"email\":\"$1\",\"password\":\"$PASSWORD\",\"native\":true}"; }
ADMIN=$(login admin@soak.test | jq -r .access_token)
CLIENT=$(curl -fs "$BASE/admin/clients" -H "authorization: Bearer $ADMIN" \
  -H 'content-type: application/json' -d '{"name":"soak","scope":"revocations:read"}')
BASIC="Basic $(printf '%s:%s' "$(jq -r .client_id <<<"$CLIENT")" "$(jq -r .client_secret <<<"$CLIENT")" | base64 -w0)"
curl -fs -o /dev/null "$BASE/auth/register" -H 'content-type: application/json' \
  -d "{\"email\":\"user@soak.test\",\"password\":\"$PASSWORD\"}"
USER_AT=$(login user@soak.test | jq -r .access_token)
: >"$TMP/chains.txt"
for _ in $(seq 1 32); do login user@soak.test | jq -r .refresh_token >>"$TMP/chains.txt"; done
READY=$(sample ready)

log "$SOAK_DB: ${SOAK_SECS}s of mixed load on pid $PID (idle: $IDLE)"
export SOAK_LUA=$LUA SOAK_COUNTS=$OUT/counts.tsv
: >"$SOAK_COUNTS"
W=(nice -n 19 wrk -d"${SOAK_SECS}s" --timeout 10s)
run() { local name=$1; shift; SOAK_NAME=$name "${W[@]}" "$@" >"$OUT/wrk-$name.txt" 2>&1 & PIDS+=($!); }
run flow -t2 -c2 -s "$LUA/flow.lua" "$BASE" -- "$$-$(date +%s)" "$PASSWORD"
run refresh -t2 -c8 -s "$LUA/refresh.lua" "$BASE" -- "$TMP/chains.txt" 2
run cc -t1 -c4 -s "$LUA/fixed.lua" "$BASE" -- POST /oauth/token "$BASIC" \
  application/x-www-form-urlencoded grant_type=client_credentials
run intro -t1 -c4 -s "$LUA/fixed.lua" "$BASE" -- POST /oauth/introspect "$BASIC" \
  application/x-www-form-urlencoded "token=$USER_AT"
run jwks -t1 -c4 -s "$LUA/fixed.lua" "$BASE" -- GET /.well-known/jwks.json
run me -t1 -c4 -s "$LUA/fixed.lua" "$BASE" -- GET /auth/me "Bearer $USER_AT"
run admin -t1 -c2 -s "$LUA/fixed.lua" "$BASE" -- GET "/admin/users?limit=20" "Bearer $ADMIN"

t0=$(date +%s)
while (( $(date +%s) - t0 < SOAK_SECS )); do
  sample "$(( $(date +%s) - t0 ))" >>"$OUT/samples.tsv"
  sleep "$SAMPLE_SECS"
done
wait "${PIDS[@]:1}" 2>/dev/null || true
PIDS=("$PID")
AFTER=$(sample after)
sleep 10
AFTER10=$(sample after+10s)
curl -fs "$BASE/metrics" >"$OUT/metrics.txt"
kill "$PID"; wait "$PID" 2>/dev/null || true
PIDS=()

python3 - "$OUT" "$SOAK_SECS" "$RSS_TOLERANCE_KB" "$FD_TOLERANCE" "$SOAK_DB" \
  "$IDLE" "$READY" "$AFTER" "$AFTER10" <<'PY'
import re, statistics, sys, datetime, subprocess
out, secs, rss_tol, fd_tol, db = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
idle, ready, after, after10 = (l.split("\t") for l in sys.argv[6:10])
rows = [l.rstrip("\n").split("\t") for l in open(f"{out}/samples.tsv")][1:]
rows = [(int(r[0]),) + tuple(int(x) for x in r[1:]) for r in rows]
tenth = secs / 10
m2 = [r for r in rows if tenth <= r[0] < 2 * tenth]
m10 = [r for r in rows if 9 * tenth <= r[0] < secs]
mb = lambda kb: f"{kb / 1024:.1f} MB"
def win(rs, i):
    v = [r[i] for r in rs]
    return min(v), statistics.median(v), max(v)
fail = []
r2, r10 = win(m2, 1), win(m10, 1)
a2, a10 = win(m2, 2), win(m10, 2)
f2, f10 = win(m2, 4), win(m10, 4)
if r10[0] - r2[0] > rss_tol: fail.append(f"RSS floor grew {mb(r2[0])} -> {mb(r10[0])}")
if a10[0] - a2[0] > rss_tol: fail.append(f"RssAnon floor grew {mb(a2[0])} -> {mb(a10[0])}")
if f10[2] - f2[2] > fd_tol: fail.append(f"fds grew {f2[2]} -> {f10[2]}")
# Every answer the server sent, by route and status (its own counter).
by_status, five = {}, 0
for line in open(f"{out}/metrics.txt"):
    m = re.match(r'tessera_http_requests_total\{(.*)\} (\d+)', line)
    if not m: continue
    labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
    key = (labels.get("route", "?"), labels.get("status", "?"))
    by_status[key] = by_status.get(key, 0) + int(m.group(2))
    if labels.get("status", "").startswith("5"): five += int(m.group(2))
if not by_status: fail.append("no tessera_http_requests_total in /metrics")
if five: fail.append(f"{five} answers with a 5xx status (server metrics)")
counts = {}
for line in open(f"{out}/counts.tsv"):
    name, status, n = line.rstrip("\n").split("\t")
    counts.setdefault(name, {})[status] = int(n)
wrk5 = sum(n for c in counts.values() for s, n in c.items() if s.isdigit() and s.startswith("5"))
sock = sum(c.get("socket_errors", 0) for c in counts.values())
unexpected = sum(counts.get(n, {}).get("unexpected", 0) for n in ("flow", "refresh"))
if wrk5: fail.append(f"{wrk5} 5xx seen by wrk")
if sock: fail.append(f"{sock} socket errors")
if unexpected: fail.append(f"{unexpected} flow steps or refreshes with an unexpected status")
if len(counts) < 7: fail.append(f"only {len(counts)} of 7 load streams reported")
total = sum(n for c in counts.values() for s, n in c.items() if s.isdigit())
def stream(name):
    c = counts.get(name, {})
    return ", ".join(f"{s}: {n:,}" for s, n in sorted(c.items()) if s.isdigit())
fds_all = [r[4] for r in rows]
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
try:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
except OSError:
    commit = "?"
lines = [
    f"Soak ({db}): {now} (end), commit {commit}, `{'SOAK_DB=postgres ' if db == 'postgres' else ''}bench/soak/soak.sh`, "
    f"{secs} s of mixed load, samples every {rows[1][0] - rows[0][0] if len(rows) > 1 else '?'} s; "
    f"**{'PASS' if not fail else 'FAIL: ' + '; '.join(fail)}**.",
    "",
    f"- Requests answered: {total:,} ({total / secs:,.0f}/s); 5xx: {five} (server metrics), {wrk5} (wrk); "
    f"socket errors: {sock}; unexpected statuses in flow and refresh: {unexpected}.",
]
for name in ["flow", "refresh", "cc", "intro", "jwks", "me", "admin"]:
    lines.append(f"  - {name}: {stream(name)}")
lines += [
    f"- RSS: idle {mb(int(idle[1]))}, after setup {mb(int(ready[1]))}; "
    f"minute 2 min/median/max {mb(r2[0])} / {mb(r2[1])} / {mb(r2[2])}; "
    f"minute 10 {mb(r10[0])} / {mb(r10[1])} / {mb(r10[2])}; "
    f"right after the load {mb(int(after[1]))}, 10 s later {mb(int(after10[1]))}.",
    f"- RssAnon (heap) minute 2 min/median/max {mb(a2[0])} / {mb(a2[1])} / {mb(a2[2])}, "
    f"minute 10 {mb(a10[0])} / {mb(a10[1])} / {mb(a10[2])}.",
    f"- Open fds: idle {idle[4]}, under load {min(fds_all)}-{max(fds_all)} "
    f"(minute 2 max {f2[2]}, minute 10 max {f10[2]}), after {after[4]}; threads {rows[-1][5]}.",
    f"- Database: {mb(int(ready[6]))} after setup, {mb(rows[-1][6])} at the end.",
]
open(f"{out}/summary.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
sys.exit(1 if fail else 0)
PY
