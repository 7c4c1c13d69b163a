#!/usr/bin/env bash
# Runs every Shoal test: the contracts' Foundry suite, then the Rust workspace
# (unit, integration, devchain/anvil conformance, Docker and helia interop).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/shoal-target}"
export PATH="$PWD/node_modules/.bin:$PATH"

if [ -x scripts/contracts.sh ]; then
    scripts/contracts.sh test
fi
cargo test --workspace --no-fail-fast
