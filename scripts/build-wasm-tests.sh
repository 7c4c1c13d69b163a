#!/usr/bin/env bash
# Builds the executor's WASM test programs (node/executor/testdata/wasm/src/*.c)
# into node/executor/testdata/wasm/*.wasm with Debian's clang + lld + wasi-libc.
# The built modules are committed; run this after changing a source.
# Needs: clang lld wasi-libc libclang-rt-14-dev-wasm32 (scripts/setup.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/../node/executor/testdata/wasm"
CC="${CC:-clang}"
for src in src/*.c; do
    name="$(basename "$src" .c)"
    "$CC" --target=wasm32-wasi -O2 -Wall -Wextra -Werror \
        -Wl,--strip-all -o "$name.wasm" "$src"
    echo "built $name.wasm ($(wc -c <"$name.wasm") bytes)" >&2
done
