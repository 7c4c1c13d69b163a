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

# A long-lived target dir grows with every build (incremental caches above all); when the
# disk runs low, drop those caches rather than fail a link with "No space left on device".
mkdir -p "$CARGO_TARGET_DIR"
free_kb=$(df -Pk "$CARGO_TARGET_DIR" | awk 'NR == 2 {print $4}')
if [ "${free_kb:-0}" -lt $((10 * 1024 * 1024)) ]; then
    echo "test: less than 10 GB free; removing $CARGO_TARGET_DIR/*/incremental" >&2
    rm -rf "$CARGO_TARGET_DIR"/*/incremental
fi

echo "test: cargo fmt --check" >&2
cargo fmt --all --check
echo "test: cargo clippy -D warnings" >&2
cargo clippy --workspace --all-targets -q -- -D warnings

if [ -x scripts/contracts.sh ]; then
    scripts/contracts.sh test
fi
cargo test --workspace --no-fail-fast
