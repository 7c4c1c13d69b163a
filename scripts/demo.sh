#!/usr/bin/env bash
# The main job: a local Shoal network on the embedded devchain runs a real
# verified job end to end.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/shoal-target}"
cargo run --release -p shoal-cli -- --version
