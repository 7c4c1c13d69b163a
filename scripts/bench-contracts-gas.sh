#!/usr/bin/env bash
# Per-transaction gas of one verified 3-node deterministic job on a fresh anvil:
# deploys from contracts/artifacts/*.json (the same bytes the Rust side deploys), registers three
# operators, then post, 3 bids, closeBidding after the bid window (exactly 3 bids for 3 deals:
# selects them, nothing to draw), 3 commits over the sealed hash keccak256(abi.encode(jobId,
# resultHash)), 3 reveals of the sealed hash (the 3rd settles: the job must be Verified), and
# publishResult of the plain hash by one winner, each its own transaction, and sums the receipts'
# gasUsed (21,000 intrinsic + calldata + execution). Runs the job twice: the first on fresh
# accounts, the repeat with the same creator and operators (payouts not yet claimed).
# Prints a markdown table.
#
#   scripts/bench-contracts-gas.sh            (anvil on 127.0.0.1, a free port)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
ANVIL="$ROOT/node_modules/.bin/anvil"
CAST="$ROOT/node_modules/.bin/cast"
for t in "$ANVIL" "$CAST"; do
    [ -x "$t" ] || { echo "bench: $t is missing; run 'scripts/setup.sh'" >&2; exit 1; }
done

PORT="${SHOAL_BENCH_PORT:-$((20000 + RANDOM % 20000))}"
RPC="http://127.0.0.1:$PORT"
"$ANVIL" --host 127.0.0.1 --port "$PORT" --silent &
ANVIL_PID=$!
trap 'kill "$ANVIL_PID" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
    "$CAST" chain-id --rpc-url "$RPC" >/dev/null 2>&1 && break
    sleep 0.1
done

# accounts 0..4 of anvil's default development mnemonic
MNEMONIC="test test test test test test test test test test test junk"
KEYS=()
for i in 0 1 2 3 4; do
    KEYS+=("$("$CAST" wallet private-key --mnemonic "$MNEMONIC" --mnemonic-index "$i")")
done
addr() { "$CAST" wallet address --private-key "$1"; }
bytecode() { node -e 'process.stdout.write(require(process.argv[1]).bytecode.object)' "$ROOT/contracts/artifacts/$1.json"; }

# send KEY TO SIG ARGS... -> prints gasUsed; dies on failure
send() {
    local key="$1"; shift
    local out
    out="$("$CAST" send --rpc-url "$RPC" --private-key "$key" --json "$@")"
    node -e '
const r = JSON.parse(process.argv[1]);
if (r.status !== "0x1" && r.status !== 1 && r.status !== "1") { console.error("bench: transaction reverted: " + process.argv[1]); process.exit(1); }
process.stdout.write(String(Number(r.gasUsed)));' "$out"
}
deploy() {
    local key="$1" name="$2" args="$3"
    local out
    out="$("$CAST" send --rpc-url "$RPC" --private-key "$key" --json --create "$(bytecode "$name")$args")"
    node -e 'process.stdout.write(JSON.parse(process.argv[1]).contractAddress)' "$out"
}

DEPLOYER="${KEYS[0]}"
REG=$(deploy "$DEPLOYER" OperatorRegistry "$("$CAST" abi-encode 'c(uint64,uint96)' 604800 1000000000000000000 | cut -c3-)")
MARKET=$(deploy "$DEPLOYER" JobMarket "$("$CAST" abi-encode 'c(address,uint8,uint96,uint32,uint32,uint32,uint16,uint16,uint32)' "$REG" 3 100000000000000000 1 2 2 20 100 0 | cut -c3-)")
send "$DEPLOYER" "$REG" 'setMarket(address)' "$MARKET" >/dev/null

OPS=("${KEYS[1]}" "${KEYS[2]}" "${KEYS[3]}")
CREATOR="${KEYS[4]}"
for i in 0 1 2; do
    send "${OPS[$i]}" "$REG" 'register(bytes,(uint32,uint32,uint32,uint32,uint32))' \
        "0x0024080112201234" "(3,4000,8192,100,0)" --value 10ether >/dev/null
done

SPEC_CID=0x01551220aabbccddeeff00112233445566778899aabbccddeeff00112233445566778899
SPEC_HASH=$("$CAST" keccak spec)
RESULT=$("$CAST" keccak "the right result")
PARAMS="($SPEC_CID,$SPEC_HASH,3,3,3,100000000000000000,1000000000000000000,3600,3600,3600,0,0,false,0,0x0000000000000000000000000000000000000000)"
JOB_SIG='postJob((bytes,bytes32,uint8,uint8,uint8,uint96,uint96,uint32,uint32,uint32,uint32,uint8,bool,uint8,address))'
GETJOB_SIG='getJob(uint256)((address,uint8,uint8,bool,uint8,uint8,uint8,uint8,uint8,uint8,uint8,uint96,uint96,uint32,uint32,uint32,uint64,uint64,bytes32,bytes32,address,uint256))'

# run_job JOBID: one verified job, its result published; fills GAS[] (12 receipts, in order)
run_job() {
    local job="$1" i op salt c sealed
    sealed=$("$CAST" keccak "$("$CAST" abi-encode 'f(uint256,bytes32)' "$job" "$RESULT")")
    GAS=()
    GAS+=("$(send "$CREATOR" "$MARKET" "$JOB_SIG" "$PARAMS" --value 0.3ether)")
    for i in 0 1 2; do
        GAS+=("$(send "${OPS[$i]}" "$MARKET" 'bid(uint256,uint96)' "$job" 80000000000000000)")
    done
    "$CAST" rpc --rpc-url "$RPC" evm_increaseTime 3601 >/dev/null
    GAS+=("$(send "$CREATOR" "$MARKET" 'closeBidding(uint256)' "$job")")
    for i in 0 1 2; do
        op=$(addr "${OPS[$i]}")
        salt=$("$CAST" keccak "salt-$job-$i")
        c=$("$CAST" keccak "$("$CAST" abi-encode 'f(uint256,address,bytes32,bytes32)' "$job" "$op" "$sealed" "$salt")")
        GAS+=("$(send "${OPS[$i]}" "$MARKET" 'commitResult(uint256,bytes32)' "$job" "$c")")
    done
    for i in 0 1 2; do
        salt=$("$CAST" keccak "salt-$job-$i")
        GAS+=("$(send "${OPS[$i]}" "$MARKET" 'revealResult(uint256,bytes32,bytes32)' "$job" "$sealed" "$salt")")
    done
    local state
    state=$("$CAST" call --rpc-url "$RPC" "$MARKET" "$GETJOB_SIG" "$job" | tr -d '() ' | cut -d, -f2)
    if [ "$state" != 9 ]; then
        echo "bench: job $job ended in state $state, expected 9 (Verified)" >&2
        exit 1
    fi
    GAS+=("$(send "${OPS[0]}" "$MARKET" 'publishResult(uint256,bytes32)' "$job" "$RESULT")")
}

LABELS=(
    "postJob"
    "bid"
    "bid"
    "bid"
    "closeBidding (after the bid window: 3 bids, 3 deals, 3 locks)"
    "commitResult (over the sealed hash)"
    "commitResult (over the sealed hash)"
    "commitResult (over the sealed hash; 3rd: opens reveal)"
    "revealResult (sealed hash)"
    "revealResult (sealed hash)"
    "revealResult (sealed hash; 3rd: tally, pay, settle)"
    "publishResult (a winner: the plain hash)"
)
run_job 1
FIRST=("${GAS[@]}")
run_job 2
REPEAT=("${GAS[@]}")

echo "| transaction | first job: gasUsed | repeat job: gasUsed |"
echo "| --- | ---: | ---: |"
T1=0
T2=0
for i in "${!LABELS[@]}"; do
    echo "| ${LABELS[$i]} | ${FIRST[$i]} | ${REPEAT[$i]} |"
    T1=$((T1 + FIRST[i]))
    T2=$((T2 + REPEAT[i]))
done
echo "| **total, 12 transactions, 6 sequential rounds** | **$T1** | **$T2** |"

# Batching: one operator's bids on 10 open jobs, 10 transactions against one `batch` of 10
# calls (the node sends this way under load; docs/chain.md, Batching).
JOBS=()
for _ in $(seq 1 20); do
    send "$CREATOR" "$MARKET" "$JOB_SIG" "$PARAMS" --value 0.3ether >/dev/null
    JOBS+=("$(( $("$CAST" call --rpc-url "$RPC" "$MARKET" 'nextJobId()(uint256)') - 1 ))")
done
ALONE=0
for job in "${JOBS[@]:0:10}"; do
    ALONE=$((ALONE + $(send "${OPS[0]}" "$MARKET" 'bid(uint256,uint96)' "$job" 80000000000000000)))
done
CALLS=()
for job in "${JOBS[@]:10:10}"; do
    CALLS+=("$("$CAST" calldata 'bid(uint256,uint96)' "$job" 80000000000000000)")
done
BATCHED=$(send "${OPS[0]}" "$MARKET" 'batch(bytes[])' "[$(IFS=,; echo "${CALLS[*]}")]")
for job in "${JOBS[@]:10:10}"; do
    n=$("$CAST" call --rpc-url "$RPC" "$MARKET" 'getBids(uint256)((address,uint96)[])' "$job" | tr -cd '(' | wc -c)
    if [ "$n" -ne 1 ]; then
        echo "bench: the batched bid on job $job is missing" >&2
        exit 1
    fi
done
echo
echo "| one operator's bids on 10 jobs | gasUsed | per bid |"
echo "| --- | ---: | ---: |"
echo "| 10 transactions | $ALONE | $((ALONE / 10)) |"
echo "| one \`batch\` of 10 calls | $BATCHED | $((BATCHED / 10)) |"
