#!/usr/bin/env bash
# Builds and tests Shoal's contracts offline: forge (npm @foundry-rs/forge) drives solcjs
# (npm solc) through contracts/solc-wrapper.cjs.
#
#   scripts/contracts.sh build     compile and refresh contracts/artifacts/*.json (commit them)
#   scripts/contracts.sh test      artifact drift check, then the forge suite (unit, fuzz, invariant)
#   scripts/contracts.sh snapshot  refresh contracts/.gas-snapshot
#   scripts/contracts.sh check     artifact drift check, gas snapshot check and forge fmt --check
#   scripts/contracts.sh deploy --rpc-url URL --private-key KEY
#                                  run script/Deploy.s.sol with --broadcast; writes
#                                  contracts/deployments/<chainId>.json (see docs/protocol.md)
#
# Extra arguments after the command go to forge (e.g. `test --match-test test_Honest -vvv`).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
FORGE="$ROOT/node_modules/.bin/forge"
WRAPPER="$ROOT/contracts/solc-wrapper.cjs"
CONTRACTS=(OperatorRegistry JobMarket ShardMarket PipelineMarket)

if [ ! -x "$FORGE" ] || [ ! -d "$ROOT/node_modules/solc" ]; then
    echo "contracts: node_modules/.bin/forge or node_modules/solc is missing; run 'scripts/setup.sh'" >&2
    exit 1
fi

# The installed tools must be the versions contracts/package.json pins.
node -e '
const fs = require("fs");
const [root] = process.argv.slice(1);
const want = JSON.parse(fs.readFileSync(`${root}/contracts/package.json`, "utf8")).devDependencies;
const bad = [];
for (const [name, version] of Object.entries(want)) {
  let have = "missing";
  try { have = JSON.parse(fs.readFileSync(`${root}/node_modules/${name}/package.json`, "utf8")).version; } catch {}
  if (have !== version) bad.push(`${name}: installed ${have}, contracts/package.json pins ${version}`);
}
if (bad.length) {
  console.error("contracts: tool versions differ from contracts/package.json:\n  " + bad.join("\n  ") +
    "\nalign the root package.json with contracts/package.json and run scripts/setup.sh");
  process.exit(1);
}' "$ROOT"

forge() {
    (cd "$ROOT/contracts" && "$FORGE" "$@" --offline --use "$WRAPPER")
}

# Writes the deployable part of forge's output for contract $1 (abi, bytecode, deployedBytecode,
# methodIdentifiers) from output dir $2 to file $3, with stable formatting.
extract() {
    node -e '
const fs = require("fs");
const [name, out, dest] = process.argv.slice(1);
const a = JSON.parse(fs.readFileSync(`${out}/${name}.sol/${name}.json`, "utf8"));
const keep = {
  contractName: name,
  abi: a.abi,
  bytecode: { object: a.bytecode.object },
  deployedBytecode: { object: a.deployedBytecode.object },
  methodIdentifiers: a.methodIdentifiers,
};
fs.writeFileSync(dest, JSON.stringify(keep, null, 2) + "\n");
' "$1" "$2" "$3"
}

build() {
    forge build --skip test --skip script "$@"
    mkdir -p "$ROOT/contracts/artifacts"
    for c in "${CONTRACTS[@]}"; do
        extract "$c" "$ROOT/contracts/out" "$ROOT/contracts/artifacts/$c.json"
    done
    echo "contracts: artifacts written to contracts/artifacts/ (${CONTRACTS[*]})" >&2
}

drift_check() {
    local tmp
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' RETURN
    forge build --skip test --skip script --out "$tmp/out" >/dev/null
    local bad=0
    for c in "${CONTRACTS[@]}"; do
        extract "$c" "$tmp/out" "$tmp/$c.json"
        if ! cmp -s "$tmp/$c.json" "$ROOT/contracts/artifacts/$c.json"; then
            echo "contracts: contracts/artifacts/$c.json is out of date with contracts/src (abi or bytecode differ); run 'scripts/contracts.sh build' and commit contracts/artifacts/" >&2
            bad=1
        fi
    done
    if [ "$bad" != 0 ]; then exit 1; fi
    echo "contracts: committed artifacts match the sources" >&2
}

cmd="${1:-}"
shift || true
case "$cmd" in
    build) build "$@" ;;
    test)
        drift_check
        forge test "$@"
        ;;
    snapshot) forge snapshot --match-test 'test_Gas' "$@" ;;
    check)
        drift_check
        forge snapshot --match-test 'test_Gas' --check "$@"
        # This forge prints the diff but exits 0 on unformatted files: fail on the diff.
        fmt_out=$(cd "$ROOT/contracts" && "$FORGE" fmt --check 2>&1) || { echo "$fmt_out" >&2; exit 1; }
        if grep -q "^Diff in" <<<"$fmt_out"; then
            echo "$fmt_out" >&2
            echo "contracts: unformatted Solidity (above); run 'cd contracts && ../node_modules/.bin/forge fmt'" >&2
            exit 1
        fi
        ;;
    deploy) forge script script/Deploy.s.sol --broadcast "$@" ;;
    *)
        echo "usage: scripts/contracts.sh build|test|snapshot|check|deploy [forge args...]" >&2
        exit 2
        ;;
esac
