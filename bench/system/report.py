#!/usr/bin/env python3
"""Turns bench/system/out/{results,facts,rss}.tsv into the markdown of the "System" results.

Every row is a median over the rounds; the ratio is the median of the per-round ratios
(figure / baseline measured in the same round), so a noisy round moves it little.
Usage: report.py OUT_DIR  (prints markdown on stdout)
"""
import statistics
import sys
from collections import defaultdict
from pathlib import Path

out = Path(sys.argv[1])
rows = defaultdict(dict)  # name -> round -> (value, p99, errors)
for line in (out / "results.tsv").read_text().splitlines():
    if not line.strip():
        continue
    name, rnd, val, p99, errs = line.split("\t")
    rows[name][int(rnd)] = (float(val or 0), float(p99 or 0), int(float(errs or 0)))
facts = {}
if (out / "facts.tsv").exists():
    for line in (out / "facts.tsv").read_text().splitlines():
        if "\t" in line:
            k, v = line.split("\t", 1)
            facts[k] = v.strip()


def med(name, idx=0):
    vals = [v[idx] for v in rows.get(name, {}).values()]
    return statistics.median(vals) if vals else None


def ratio(name, base):
    rs = [
        rows[name][r][0] / rows[base][r][0]
        for r in rows.get(name, {})
        if r in rows.get(base, {}) and rows[base][r][0] > 0
    ]
    return statistics.median(rs) if rs else None


def errors(name):
    return sum(v[2] for v in rows.get(name, {}).values())


def fmt(x, unit="", digits=0):
    if x is None:
        return "—"
    return f"{x:,.{digits}f}{unit}"


def verdict(ok):
    return "—" if ok is None else ("yes" if ok else "**no**")


# (figure, label, baseline, baseline label, target text, check(figure, ratio, p99))
spec = [
    ("client_credentials", "POST /oauth/token client_credentials", "hello", "axum hello",
     "≥ 5,000/s", lambda f, r, p: f >= 5000),
    ("introspect", "POST /oauth/introspect (user token)", "hello", "axum hello",
     "≥ 25,000/s", lambda f, r, p: f >= 25000),
    ("jwks", "GET /.well-known/jwks.json", "hello", "axum hello",
     "ratio ≥ 0.8", lambda f, r, p: r is not None and r >= 0.8),
    ("healthz", "GET /healthz (Tessera's layers, trivial handler)", "hello", "axum hello",
     "—", None),
    ("refresh_sqlite", "refresh rotation, SQLite", "hello", "axum hello",
     "≥ 1,500/s, p99 < 50 ms", lambda f, r, p: f >= 1500 and p < 50),
    ("login", "POST /auth/login (Argon2id)", "argon2_raw", "raw Argon2id, 2 threads",
     "ratio ≥ 0.90", lambda f, r, p: r is not None and r >= 0.90),
    ("refresh_postgres", "refresh rotation, PostgreSQL", "refresh_sqlite_pground",
     "refresh, SQLite (same round)", "bound by one round trip", None),
    ("notes_jwt", "protected request through crates/verify (notes-api GET /notes, repeat token)",
     "notes_open", "same endpoint, notes-api's stack, no auth", "ratio ≥ 0.90",
     lambda f, r, p: r is not None and r >= 0.90),
    ("notes_jwt", "the same, against the unauthenticated twin sent the same Authorization header",
     "notes_open_hdr", "same endpoint, no auth, same request bytes", "—", None),
    ("notes_jwt_old", "the same, NOTES_API_OLD binary (A/B)", "notes_open",
     "same endpoint, notes-api's stack, no auth", "—", None),
    ("notes_cold", "protected request, every token new (cache cold)", "jwt_verify_1core",
     "tessera_jwt verify+validate, 1 thread", "ratio ≥ 0.90",
     lambda f, r, p: r is not None and r >= 0.90),
    ("notes_open", "GET /notes through notes-api's stack, no auth", "open_notes",
     "same body, plain axum, no auth check", "—", None),
    ("notes_session_sqlite", "GET /notes, session-id lookup, SQLite", "open_notes",
     "same body, no auth check", "—", None),
    ("notes_session_postgres", "GET /notes, session-id lookup, PostgreSQL", "open_notes",
     "same body, no auth check", "—", None),
]

print("| benchmark | median | p99 | baseline (same rounds) | baseline median | baseline p99 | ratio | target | met |")
print("|---|---:|---:|---|---:|---:|---:|---|---|")
rounds = []
for name, label, base, blabel, target, check in spec:
    if name not in rows:
        continue
    f, p, r = med(name), med(name, 1), ratio(name, base)
    unit = "/s"
    e = errors(name)
    lbl = label + (f" ({e} non-2xx/socket errors)" if e else "")
    ok = check(f, r, p) if check else None
    print(f"| {lbl} | {fmt(f, unit)} | {fmt(p, ' ms', 1)} | {blabel} | "
          f"{fmt(med(base), unit)} | {fmt(med(base, 1) if base not in ('argon2_raw', 'jwt_verify_1core') else None, ' ms', 1)} | {fmt(r, '', 3)} | {target} | "
          f"{verdict(ok)} |")
    if name in ("refresh_sqlite", "refresh_postgres"):
        rounds.append(f"{label}: p99 per round " + ", ".join(
            f"{rows[name][k][1]:.0f} ms" for k in sorted(rows[name])))

if rounds:
    print()
    print("; ".join(rounds) + ".")

# Stateless vs stateful, head to head.
if "notes_jwt" in rows and "notes_session_sqlite" in rows:
    print()
    print("Stateless vs session lookup (median of per-round ratios): JWT / SQLite lookup = "
          f"{fmt(ratio('notes_jwt', 'notes_session_sqlite'), '', 2)}"
          + (f", JWT / PostgreSQL lookup = {fmt(ratio('notes_jwt', 'notes_session_postgres'), '', 2)}"
             if "notes_session_postgres" in rows else "") + ".")

if "bytes_request_jwt" in facts:
    print()
    print("Bytes on the wire (one `GET /notes` request as curl sends it, request line + headers): "
          f"with the access token {facts['bytes_request_jwt']} B "
          f"(token {facts.get('bytes_access_token', '?')} B), with a session cookie "
          f"{facts.get('bytes_request_session', '?')} B (128-bit id as "
          f"{facts.get('bytes_session_id', '?')} hex chars); Tessera's browser refresh cookie "
          f"`name=value` is {facts.get('bytes_refresh_cookie', '?')} B.")

rss = []
if (out / "rss.tsv").exists():
    rss = [int(l.split("\t")[1]) for l in (out / "rss.tsv").read_text().splitlines()
           if "\t" in l and l.split("\t")[1].strip()]
if "rss_idle_fresh_kb" in facts:
    mb = lambda kb: f"{int(kb) / 1024:.1f} MB"  # noqa: E731
    print()
    line = f"Server RSS (from /proc/PID/status VmRSS, fresh SQLite server): idle {mb(facts['rss_idle_fresh_kb'])} (target ≤ 30 MB)"
    if "rss_idle_ready_kb" in facts:
        line += f", {mb(facts['rss_idle_ready_kb'])} after setup"
    if rss:
        q = max(1, len(rss) // 4)
        line += (f"; under mixed load ({len(rss)} samples, 2 s apart): min {mb(min(rss))}, "
                 f"max {mb(max(rss))}; floor (lowest sample) of the first quarter "
                 f"{mb(min(rss[:q]))}, of the last quarter {mb(min(rss[-q:]))}; peak of the "
                 f"first quarter {mb(max(rss[:q]))}, of the last quarter {mb(max(rss[-q:]))}")
    if "rss_after_load_idle10_kb" in facts:
        line += f"; 10 s after the load {mb(facts['rss_after_load_idle10_kb'])}"
    loads = [(k[len('rss_load_rps_'):], v) for k, v in facts.items() if k.startswith("rss_load_rps_") and v]
    if loads:
        line += ". Mixed load req/s: " + ", ".join(f"{k} {float(v):,.0f}" for k, v in loads)
    print(line + ".")
