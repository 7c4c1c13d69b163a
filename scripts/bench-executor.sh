#!/usr/bin/env bash
# Executor overhead benchmark: warm WASM jobs vs bare wasmtime in the same
# process, Docker jobs vs `docker run --rm`. Prints a markdown table (the one
# in docs/benchmarks.md). Needs dockerd and the test image
# (scripts/setup.d/executor.sh). WASM_RUNS / DOCKER_RUNS set the sample sizes.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/shoal-target}"
cargo build --release -p shoal-executor --example bench_executor >&2
"$CARGO_TARGET_DIR/release/examples/bench_executor"
