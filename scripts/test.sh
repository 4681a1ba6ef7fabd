#!/usr/bin/env bash
# The test command: installs system libraries, builds the package and its tests, runs them.
# Tests are XCTest; the closing line is a plain "N passed, N failed" summary of the run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
swift build --build-tests
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
swift test --skip-build --disable-swift-testing 2>&1 | tee "$log" || status=$?
# XCTest prints "Executed N tests, with F failures" per suite and for the whole run (last).
summary=$(grep -E "^[[:space:]]*Executed [0-9]+ tests?, with [0-9]+ failures?" "$log" | tail -n 1 || true)
if [[ -z "$summary" ]]; then
    echo "no XCTest summary found: the tests did not run" >&2
    exit 1
fi
total=$(sed -E 's/.*Executed ([0-9]+) tests?.*/\1/' <<<"$summary")
failed=$(sed -E 's/.*with ([0-9]+) failures?.*/\1/' <<<"$summary")
echo "tests: $((total - failed)) passed, $failed failed"
if [[ $status -ne 0 || $failed -ne 0 ]]; then
    exit 1
fi
