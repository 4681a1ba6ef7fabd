#!/usr/bin/env bash
# The video demo: installs system libraries, builds the release binary, trains a small Kosmos from
# scratch on synthetic clips of a shape moving left, right, up or down (some changing colour
# midway), each clip encoded to an MJPEG AVI through FFmpeg and decoded back by the loader
# (docs/video.md); then captions 200 held-out clips (seeds never used in training), prints the
# exact match beside the same model's on one frame repeated (the motion is not in one frame), and
# draws the loss curve. The model ends up in runs/video-demo/latest; a few held-out clips are kept
# as AVI files to try with `kosmos generate --video`. Extra arguments go to `kosmos train` (e.g.
# --set train.steps=300 for a quick look). Each run starts afresh: runs/video-demo is removed first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
swift build -c release --product kosmos
bin="$(swift build -c release --show-bin-path)/kosmos"
rm -rf runs/video-demo
start=$(date +%s)
"$bin" train --config configs/video-demo.json "$@"
"$bin" eval motion --model runs/video-demo/latest --count 200 --show 8 --save-videos runs/video-demo/heldout \
    --out runs/video-demo/heldout.json
"$bin" plot runs/video-demo/metrics.jsonl -o runs/video-demo/loss.svg --title "video demo"
echo "train + evaluate: $(( $(date +%s) - start )) s; loss curve: runs/video-demo/loss.svg"
first=$(ls runs/video-demo/heldout/*.avi | head -1)
echo "try: $bin generate --model runs/video-demo/latest --video $first --prompt '<video>A video of'"
