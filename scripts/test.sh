#!/usr/bin/env bash
# Runs every Shoal test: the quality gate (rustfmt, clippy with warnings as
# errors), the contracts' Foundry suite, then the Rust workspace (unit,
# integration, devchain/anvil conformance, Docker and helia interop).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/shoal-target}"
# Everything the tests need is installed and dockerd runs (quick when already done).
[ "${SHOAL_SETUP_DONE:-0}" = 1 ] || scripts/setup.sh
export PATH="$PWD/node_modules/.bin:$PATH"

echo "test: cargo fmt --check" >&2
cargo fmt --all --check
echo "test: cargo clippy -D warnings" >&2
cargo clippy --workspace --all-targets -q -- -D warnings

if [ -x scripts/contracts.sh ]; then
    scripts/contracts.sh test
fi
cargo test --workspace --no-fail-fast
