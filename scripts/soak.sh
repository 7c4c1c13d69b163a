#!/usr/bin/env bash
# Reliability and trust soak (docs/benchmarks.md, "Soak"): N node processes, JOBS jobs of mixed
# kinds from several wallets, a node SIGKILLed every K s and restarted, B colluding bad nodes.
#
#   scripts/soak.sh [--nodes 10] [--jobs 10000] [--rate 5] [--kill-every 10] [--down-for 4]
#                   [--bad-nodes 1] [--creators 4] [--docker-every 50] [--wait 600]
#
# SOAK_PROFILE=dev builds without optimisations (faster to build, slower to run); the default
# is release. The figures are printed as a Markdown table; with SOAK_WRITE=1 they also replace
# the "Soak" table in docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/shoal-target}"
PROFILE="${SOAK_PROFILE:-release}"
DIR=$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")
cargo build --profile "$PROFILE" -q -p shoal-e2e --bin shoal-e2e-node --example soak >&2
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$CARGO_TARGET_DIR/$DIR/examples/soak" --node-bin "$CARGO_TARGET_DIR/$DIR/shoal-e2e-node" "$@" | tee "$out"
if [ "${SOAK_WRITE:-0}" = 1 ]; then
    python3 - "$out" "$PROFILE" "$*" <<'PY'
import sys, re, datetime
table, profile, args = open(sys.argv[1]).read().strip(), sys.argv[2], sys.argv[3]
doc = open("docs/benchmarks.md").read()
block = (f"<!-- soak:begin -->\n`scripts/soak.sh {args}` ({profile} build, "
         f"{datetime.date.today()}, 2 cores):\n\n{table}\n<!-- soak:end -->")
if "<!-- soak:begin -->" in doc:
    doc = re.sub(r"<!-- soak:begin -->.*?<!-- soak:end -->", lambda _: block, doc, flags=re.S)
else:
    doc = doc.rstrip() + "\n\n## Soak\n\n" + block + "\n"
open("docs/benchmarks.md", "w").write(doc)
PY
fi
