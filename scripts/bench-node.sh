#!/usr/bin/env bash
# Submit-to-verified latency and sustained verified jobs per second for a hello-world WASM job
# on an in-process devstack of NODES nodes (embedded devchain): a few jobs one after another,
# then JOBS jobs posted at RATE per second from CREATORS wallets.
# Usage: scripts/bench-node.sh [--nodes 10] [--jobs 1000] [--rate 20] [--creators 4]
#                              [--latency-jobs 5] [--bid-window 5] [--poll-ms 100] [--distinct true]
# Prints its figures; docs/benchmarks.md, section "Node", holds the latest.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/shoal-target}"
exec cargo run --release -q -p shoal-devstack --example bench_node -- "$@"
