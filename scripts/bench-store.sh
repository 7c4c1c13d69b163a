#!/usr/bin/env bash
# Content-store benchmarks (docs/benchmarks.md, "Content store"):
#  1. UnixFS import (unixfs-v1-2025) of a 1 GiB file vs `sha256sum` on the
#     same file, in one run, file in the page cache;
#  2. Bitswap transfer of 256 MiB between two Shoal nodes on loopback.
# Usage: scripts/bench-store.sh [SIZE_MIB] [BITSWAP_MIB]
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MIB=${1:-1024}
BITSWAP_MIB=${2:-256}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/shoal-target}

cargo build --release -q -p shoal-store --example bench_import
cargo build --release -q -p shoal-p2p --example bench_bitswap

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
file="$work/data.bin"
head -c "$((SIZE_MIB * 1024 * 1024))" /dev/urandom > "$file"
cat "$file" > /dev/null # warm the page cache for both contenders

sha_secs=$(python3 -c 'import subprocess, sys, time
t = time.perf_counter()
subprocess.run(["sha256sum", sys.argv[1]], check=True, stdout=subprocess.DEVNULL)
print(time.perf_counter() - t)' "$file")

# For context: OpenSSL uses the CPU's SHA extensions, coreutils does not.
openssl_secs=0
if command -v openssl > /dev/null; then
  openssl_secs=$(python3 -c 'import subprocess, sys, time
t = time.perf_counter()
subprocess.run(["openssl", "dgst", "-sha256", sys.argv[1]], check=True, stdout=subprocess.DEVNULL)
print(time.perf_counter() - t)' "$file")
fi

import_json=$("$CARGO_TARGET_DIR/release/examples/bench_import" "$file" "$work/store")
bitswap_json=$("$CARGO_TARGET_DIR/release/examples/bench_bitswap" "$BITSWAP_MIB")

python3 - "$SIZE_MIB" "$sha_secs" "$import_json" "$bitswap_json" "$openssl_secs" <<'PY'
import json, sys
mib, sha_secs = float(sys.argv[1]), float(sys.argv[2])
imp, bs = json.loads(sys.argv[3]), json.loads(sys.argv[4])
openssl_secs = float(sys.argv[5])
sha = mib / sha_secs
oh = imp["only_hash"]["mib_per_s"]
st = imp["into_store"]["mib_per_s"]
print(f"sha256sum                 {sha:8.0f} MiB/s")
if openssl_secs > 0:
    print(f"openssl dgst -sha256      {mib / openssl_secs:8.0f} MiB/s  (context only)")
print(f"import --only-hash        {oh:8.0f} MiB/s  ({100 * oh / sha:.0f} % of sha256sum)")
print(f"import into the store     {st:8.0f} MiB/s  ({100 * st / sha:.0f} % of sha256sum)")
print(f"bitswap {bs['mib']} MiB, 2 nodes  {bs['mib_per_s']:8.0f} MiB/s  ({bs['blocks']} blocks, {bs['secs']:.2f} s)")
PY
