#!/usr/bin/env bash
# Transactions per second for plain transfers and JobMarket.bid, the embedded
# devchain vs anvil (node_modules/.bin/anvil), same client code, one run.
# Usage: scripts/bench-devchain.sh [--txs N] [--bids N] [--senders S]
# Prints a markdown table (see docs/benchmarks.md, section "Devchain").
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x node_modules/.bin/anvil ]; then
    echo "bench-devchain: node_modules/.bin/anvil is missing; run 'scripts/setup.sh'" >&2
    exit 1
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/shoal-target}"
exec cargo run --release -q -p shoal-devchain --example bench -- "$@"
