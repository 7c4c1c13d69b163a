#!/usr/bin/env bash
# The main job: a local Shoal network on the embedded devchain runs a real WASM job
# (word count over an input folder) through bidding, commit-reveal and verification,
# then prints the verified output, its CID and the deal's on-chain history.
#
# Builds `shoal` in the debug profile (the workspace's dependencies are built with
# opt-level 1, which keeps WASM execution fast and the build shorter than release).
# Exits non-zero if any step fails.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/shoal-target}"
# Everything the demo needs is installed (quick when already done).
[ "${SHOAL_SETUP_DONE:-0}" = 1 ] || scripts/setup.sh

echo "==> building shoal (debug profile)" >&2
cargo build -q -p shoal-cli
SHOAL="$CARGO_TARGET_DIR/debug/shoal"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/shoal-demo.XXXXXX")
DEVSTACK_PID=""
cleanup() {
  status=$?
  if [ -n "$DEVSTACK_PID" ] && kill -0 "$DEVSTACK_PID" 2>/dev/null; then
    echo "==> stopping the devstack" >&2
    kill "$DEVSTACK_PID" 2>/dev/null || true
    wait "$DEVSTACK_PID" 2>/dev/null || true
  fi
  if [ "$status" -ne 0 ]; then
    echo "demo FAILED (exit $status); devstack log: $WORK/devstack.log" >&2
    tail -n 30 "$WORK/devstack.log" >&2 || true
  else
    rm -rf "$WORK"
  fi
  exit "$status"
}
trap cleanup EXIT

echo "==> starting a devstack: embedded devchain, contracts, 3 staked nodes" >&2
"$SHOAL" devstack --nodes 3 --port 0 --base-dir "$WORK/devstack" >"$WORK/devstack.out" 2>"$WORK/devstack.log" &
DEVSTACK_PID=$!
for _ in $(seq 1 120); do
  [ -f "$WORK/devstack/devstack.env" ] && break
  kill -0 "$DEVSTACK_PID" 2>/dev/null || { echo "the devstack exited early" >&2; exit 1; }
  sleep 0.5
done
[ -f "$WORK/devstack/devstack.env" ] || { echo "the devstack did not come up within 60s" >&2; exit 1; }
cat "$WORK/devstack.out" >&2
# SHOAL_NODE, SHOAL_RPC_URL, SHOAL_DEPLOYMENT and the devstack creator's dev key.
# shellcheck disable=SC1091
. "$WORK/devstack/devstack.env"

echo "==> input: two text files" >&2
mkdir -p "$WORK/input"
printf 'Shoal runs compute next to the data.\nStaked operators agree on results by commit-reveal.\n' >"$WORK/input/a.txt"
printf 'verified outputs are published content-addressed\n' >"$WORK/input/b.txt"

# --min-bids 3: all three nodes must bid (the default floor is twice the concurrency, more
# operators than this devstack has).
echo "==> shoal wasm run wordcount.wasm -i input:/inputs (3 nodes, 2 must agree)" >&2
"$SHOAL" wasm run "$ROOT/node/executor/testdata/wasm/wordcount.wasm" \
  -i "$WORK/input:/inputs" \
  --concurrency 3 --confidence 2 --min-bids 3 --bid-window 5s --exec-window 60s --reveal-window 30s \
  --wait-timeout 5m --download "$WORK/results" \
  -- /inputs | tee "$WORK/run.out"

JOB=$(awk '/^job:/ {print $2}' "$WORK/run.out")
CID=$(awk '/^result:/ {print $2}' "$WORK/run.out")
[ -n "$JOB" ] && [ -n "$CID" ] || { echo "no job id or result CID in the output" >&2; exit 1; }
grep -q "a.txt" "$WORK/results/stdout" || { echo "the verified stdout does not list a.txt" >&2; exit 1; }

echo
echo "==> verified result CID: $CID"
echo "==> on-chain history of job $JOB (read from the chain's event logs):"
"$SHOAL" deal show "$JOB"
echo
echo "demo OK: job $JOB verified, result ipfs://$CID" >&2
