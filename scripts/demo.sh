#!/usr/bin/env bash
# The main job: installs system libraries, builds the release binary, trains a small Kosmos (its
# vision tower from scratch) on synthetic shapes scenes on the CPU, captions 200 held-out scenes
# (seeds never used in training) and prints the exact-match accuracy, and draws the loss curve.
# The model ends up in runs/shapes-demo/latest (a model folder `kosmos caption` accepts).
# Extra arguments go to `kosmos train` (e.g. --set train.steps=200 for a quick look). Each run
# starts afresh: runs/shapes-demo from a previous run is removed first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
swift build -c release --product kosmos
bin="$(swift build -c release --show-bin-path)/kosmos"
rm -rf runs/shapes-demo
start=$(date +%s)
"$bin" train --config configs/shapes-demo.json "$@"
"$bin" eval shapes --model runs/shapes-demo/latest --count 200 --show 12 --save-images runs/shapes-demo/heldout
"$bin" plot runs/shapes-demo/metrics.jsonl -o runs/shapes-demo/loss.svg --title "shapes demo"
echo "train + evaluate: $(( $(date +%s) - start )) s; loss curve: runs/shapes-demo/loss.svg"
echo "try: $bin caption --model runs/shapes-demo/latest --beams 1 runs/shapes-demo/heldout/*.png"
