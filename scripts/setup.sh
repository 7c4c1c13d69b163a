#!/usr/bin/env bash
# Installs everything Shoal's builds and tests need on a fresh Debian machine
# and starts the services they use (dockerd). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(docker.io clang lld wasi-libc libclang-rt-14-dev-wasm32 busybox-static chromium chromium-driver)
missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}" >&2
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

echo "setup: npm tooling (foundry, solcjs, openzeppelin, helia, viem)" >&2
# `npm install` (not `npm ci`): the lock file pins every package this registry
# serves, but the Foundry packages' optional binaries for other platforms are
# not served here, and `npm ci` refuses a lock without them.
if [ ! -x node_modules/.bin/forge ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm install --no-audit --no-fund --loglevel=error
fi

scripts/start-dockerd.sh

for s in scripts/setup.d/*.sh; do
    [ -e "$s" ] || continue
    echo "setup: $s" >&2
    bash "$s"
done
echo "setup: done" >&2
