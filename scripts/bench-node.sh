#!/usr/bin/env bash
# Submit-to-verified latency (p50, p95), verified jobs per second and chain rounds per job for
# a hello-world WASM job on an in-process devstack of NODES nodes (embedded devchain).
# Usage: scripts/bench-node.sh [NODES] [JOBS] [CREATORS]   (defaults 3, 20 and 1 wallet posting)
# Prints its figures; docs/benchmarks.md, section "Node", holds the latest.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/shoal-target}"
exec cargo run --release -q -p shoal-devstack --example bench_node -- "$@"
