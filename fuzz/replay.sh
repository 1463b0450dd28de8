#!/usr/bin/env bash
# Replays every fuzz target's committed corpus once (seconds), on stable Rust, as part of
# scripts/test.sh. The replay shares the fuzz targets' decoders (fuzz/common/) and runs as
# an ordinary integration test in the shared target dir: crates/server/tests/fuzz_replay.rs.
# Continuous fuzzing (nightly + cargo-fuzz) is described in fuzz/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
for dir in fuzz/corpus/*/; do
  printf '  corpus %-16s %s inputs\n' "$(basename "$dir")" "$(find "$dir" -type f | wc -l)"
done
cargo test -p tessera-server --test fuzz_replay --quiet
