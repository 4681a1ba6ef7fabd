#!/usr/bin/env bash
# Runs some test classes N times in a row on the built tests and counts the runs that failed: a
# check for flaky tests (docs/testing.md). Build first (`swift build --build-tests`).
#   bash scripts/repeat-tests.sh 20 'ServerTests|KosmosCLITests'
set -uo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
filter=${2:-ServerTests|KosmosCLITests}
failed=0
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
for ((i = 1; i <= runs; i++)); do
    if swift test --skip-build --disable-swift-testing --filter "$filter" >"$log" 2>&1; then
        echo "run $i: $(grep -E '^[[:space:]]*Executed [0-9]+ tests?' "$log" | tail -n 1 | sed -E 's/^[[:space:]]+//')"
    else
        failed=$((failed + 1))
        echo "run $i: FAILED"
        grep -E "error:|Fatal" "$log" | head -n 20
    fi
done
echo "repeat: $((runs - failed)) passed, $failed failed"
((failed == 0))
