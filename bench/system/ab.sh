#!/usr/bin/env bash
# A/B of two tessera server binaries in the same rounds (alternating), over loopback with wrk:
#
#   bench/system/ab.sh OLD_BINARY NEW_BINARY [POINTS...]
#
# POINTS (default: healthz jwks): healthz, jwks, introspect, refresh. Each round runs the axum
# hello baseline (when healthz or jwks is asked for), then every point on A, then on B.
# Prints one line per measurement and the medians of the per-round figures and of B/A.
# Environment: RUNS (default 5), DUR (seconds, default 5), CONNS (default 32),
# HELLO (the helper binary, default target/release/tessera-system-bench),
# DB=postgres: each server on a fresh database on PG_URL_BASE (default
# postgres://postgres@127.0.0.1:5432; CREATE DATABASE, DROP ... WITH (FORCE) afterwards)
# instead of SQLite in its data dir.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
A=$1 B=$2
shift 2
POINTS=${*:-healthz jwks}
RUNS=${RUNS:-5} DUR=${DUR:-5} CONNS=${CONNS:-32}
HELLO=${HELLO:-$ROOT/target/release/tessera-system-bench}
LUA=$ROOT/bench/system/lua
PASSWORD='correct horse battery staple'
DB=${DB:-sqlite}
PG_URL_BASE=${PG_URL_BASE:-postgres://postgres@127.0.0.1:5432}
TMP=$(mktemp -d /tmp/tessera-ab.XXXXXX)
PIDS=()
PG_DBS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true
  for d in "${PG_DBS[@]}"; do psql "$PG_URL_BASE/postgres" -qc "DROP DATABASE IF EXISTS $d WITH (FORCE)" >/dev/null 2>&1 || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT
wait_http() { for _ in $(seq 1 200); do curl -fs -o /dev/null "$1" && return 0; sleep 0.1; done; return 1; }
start() { # NAME BIN PORT
  local d=$TMP/$1 envs
  if curl -s -o /dev/null "http://127.0.0.1:$3/"; then echo "port $3 is in use" >&2; exit 1; fi
  mkdir -p "$d"
  envs=(TESSERA_BIND=127.0.0.1:$3 TESSERA_ISSUER=http://127.0.0.1:$3 TESSERA_DATA_DIR=$d TESSERA_COOKIE_SECURE=false)
  if [ "$DB" = postgres ]; then
    local db=tessera_ab_$$_${1,,}
    psql "$PG_URL_BASE/postgres" -qc "CREATE DATABASE $db" >/dev/null
    PG_DBS+=("$db")
    envs+=(TESSERA_DATABASE_URL=$PG_URL_BASE/$db)
  fi
  echo "$PASSWORD" | env "${envs[@]}" "$2" user add --email admin@bench.test --role admin >/dev/null
  env "${envs[@]}" "$2" serve >"$d/server.log" 2>&1 &
  PIDS+=($!)
  wait_http "http://127.0.0.1:$3/healthz"
}
login() { curl -fs "$1/auth/login" -H 'content-type: application/json' -d "{\"email\":\"admin@bench.test\",\"password\":\"$PASSWORD\",\"native\":true}"; }
sessions() { # BASE N FILE (a failed login is retried, its status shown)
  local i j out
  : >"$3"
  for i in $(seq 1 "$2"); do
    for j in 1 2 3 4 5; do
      if out=$(login "$1"); then break; fi
      echo "login failed: $(curl -s -o /dev/null -w '%{http_code}' "$1/healthz") (healthz), retrying" >&2
      sleep 1
    done
    jq -r .refresh_token <<<"$out" >>"$3"
  done
}
point() { # LABEL wrk-args... -> "req/s p99ms"
  shift
  local out rps p99
  out=$(wrk -t2 -c"$CONNS" -d"${DUR}s" --timeout 10s --latency "$@" 2>&1)
  rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub(/us$/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v=v*1000}; print v}' <<<"$out")
  grep -q 'Non-2xx' <<<"$out" && echo "non-2xx answers: $(grep Non-2xx <<<"$out")" >&2
  echo "$rps $p99"
}
start A "$A" 18520
start B "$B" 18521
need_hello=0
[[ " $POINTS " == *" healthz "* || " $POINTS " == *" jwks "* ]] && need_hello=1
if [ $need_hello = 1 ]; then curl -s -o /dev/null http://127.0.0.1:18522/ && { echo "port 18522 is in use" >&2; exit 1; }; "$HELLO" hello 127.0.0.1:18522 & PIDS+=($!); wait_http http://127.0.0.1:18522/hello; fi
declare -A AT BASIC
for s in A B; do
  port=$([ $s = A ] && echo 18520 || echo 18521)
  base=http://127.0.0.1:$port
  AT[$s]=$(login $base | jq -r .access_token)
  c=$(curl -fs $base/admin/clients -H "authorization: Bearer ${AT[$s]}" -H 'content-type: application/json' -d '{"name":"ab"}')
  BASIC[$s]="Basic $(printf '%s:%s' "$(jq -r .client_id <<<"$c")" "$(jq -r .client_secret <<<"$c")" | base64 -w0)"
done
RES=$TMP/res.tsv
: >"$RES"
for r in $(seq 1 "$RUNS"); do
  if [ $need_hello = 1 ]; then
    read -r v p <<<"$(point x http://127.0.0.1:18522/hello)"; printf 'hello\t-\t%s\t%s\t%s\n' "$r" "$v" "$p" | tee -a "$RES"
  fi
  for pt in $POINTS; do
    for s in A B; do
      port=$([ $s = A ] && echo 18520 || echo 18521)
      base=http://127.0.0.1:$port
      case $pt in
        healthz) read -r v p <<<"$(point x $base/healthz)" ;;
        jwks) read -r v p <<<"$(point x $base/.well-known/jwks.json)" ;;
        introspect) read -r v p <<<"$(point x -s "$LUA/post.lua" $base -- /oauth/introspect application/x-www-form-urlencoded "token=${AT[$s]}" "${BASIC[$s]}")" ;;
        refresh) sessions $base 64 "$TMP/rt-$s-$r.txt"
                 read -r v p <<<"$(point x -s "$LUA/refresh.lua" $base -- "$TMP/rt-$s-$r.txt" 2)" ;;
      esac
      printf '%s\t%s\t%s\t%s\t%s\n' "$pt" "$s" "$r" "$v" "$p" | tee -a "$RES"
    done
  done
done
python3 - "$RES" <<'PY'
import sys, statistics as st, collections
rows=[l.split('\t') for l in open(sys.argv[1]).read().split('\n') if l]
d=collections.defaultdict(dict)
for pt,s,r,v,p in rows: d[(pt,s)][int(r)]=(float(v),float(p))
hello=d.get(('hello','-'),{})
print("\nmedians over %d rounds" % len({int(r[2]) for r in rows}))
for (pt,s),byr in sorted(d.items()):
    if pt=='hello': continue
    vs=[v for v,_ in byr.values()]; ps=[p for _,p in byr.values()]
    line="%-10s %s: %9.0f req/s  p99 med %.1f ms (max %.1f)" % (pt,s,st.median(vs),st.median(ps),max(ps))
    if hello: line+="  /hello med %.3f" % st.median([byr[r][0]/hello[r][0] for r in byr if r in hello])
    if s=='B' and (pt,'A') in d:
        a=d[(pt,'A')]; line+="  B/A med %.3f" % st.median([byr[r][0]/a[r][0] for r in byr if r in a])
    print(line)
if hello: print("hello       : %9.0f req/s  p99 med %.1f ms" % (st.median([v for v,_ in hello.values()]), st.median([p for _,p in hello.values()])))
PY
