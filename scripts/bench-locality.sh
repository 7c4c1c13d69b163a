#!/usr/bin/env bash
# Data locality of sharded jobs (docs/benchmarks.md, "Sharded jobs"): the same sharded job with
# and without nodes declaring the batches whose files they hold, the bytes fetched between
# nodes and the wall time, on a fresh in-process devstack each.
#
#   scripts/bench-locality.sh [--nodes 5] [--files 1000] [--batch 100] [--kib 16] [--mode both|on|off]
#   scripts/bench-locality.sh --nodes 10 --files 10000 --kib 1 --mode on     (the 10,000-file run)
#
# BENCH_PROFILE=release builds with optimisations (slow to build); the default is the dev
# profile (dependencies at opt-level 1).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/shoal-target}"
PROFILE="${BENCH_PROFILE:-dev}"
DIR=$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")
cargo build --profile "$PROFILE" -q -p shoal-e2e --example bench_locality >&2
exec "$CARGO_TARGET_DIR/$DIR/examples/bench_locality" "$@"
