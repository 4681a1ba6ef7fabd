#!/usr/bin/env bash
# The test command: installs system libraries, builds the package and its tests, runs them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
swift build --build-tests
swift test --skip-build
