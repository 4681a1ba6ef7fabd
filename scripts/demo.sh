#!/usr/bin/env bash
# The main job: installs system libraries, builds the release binary, shows the CLI and measures
# matrix-product throughput. (Becomes the train-and-caption demo when training lands.)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
swift build -c release --product kosmos
bin="$(swift build -c release --show-bin-path)/kosmos"
"$bin" --help
"$bin" bench gemm
