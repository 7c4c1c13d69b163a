#!/usr/bin/env bash
# Replicated pinning figures (docs/benchmarks.md, "Pinning"): pins/s accepted and the time to
# re-replicate the data of a SIGKILLed node, on node processes.
#
#   scripts/bench-pinning.sh [--nodes 4] [--pins 300] [--concurrency 8] [--mib 1024]
#                            [--chunk-mib 64] [--grace 5]
#
# BENCH_PROFILE=release builds with optimisations (slow to build); the default is the dev
# profile (dependencies at opt-level 1).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/shoal-target}"
PROFILE="${BENCH_PROFILE:-dev}"
DIR=$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")
cargo build --profile "$PROFILE" -q -p shoal-e2e --bin shoal-e2e-node --example bench_pinning >&2
exec "$CARGO_TARGET_DIR/$DIR/examples/bench_pinning" --node-bin "$CARGO_TARGET_DIR/$DIR/shoal-e2e-node" "$@"
