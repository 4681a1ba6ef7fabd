#!/usr/bin/env bash
# The audio demo: installs system libraries, builds the release binary, trains a small Kosmos with
# a Whisper encoder from scratch on synthetic sound clips (sequences of beeps, chirps and noise
# bursts, docs/audio.md) on the CPU, captions 200 held-out clips (seeds never used in training),
# prints the exact-match accuracy beside the best an order-blind model could score, and draws the
# loss curve. The model ends up in runs/audio-demo/latest; a few held-out clips are written as WAV
# files to try with `kosmos generate --audio`. Extra arguments go to `kosmos train` (e.g.
# --set train.steps=300 for a quick look). Each run starts afresh: runs/audio-demo is removed first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
swift build -c release --product kosmos
bin="$(swift build -c release --show-bin-path)/kosmos"
rm -rf runs/audio-demo
start=$(date +%s)
"$bin" train --config configs/audio-demo.json "$@"
"$bin" eval sounds --model runs/audio-demo/latest --count 200 --show 12 --save-audio runs/audio-demo/heldout \
    --out runs/audio-demo/heldout.json
"$bin" plot runs/audio-demo/metrics.jsonl -o runs/audio-demo/loss.svg --title "audio demo"
echo "train + evaluate: $(( $(date +%s) - start )) s; loss curve: runs/audio-demo/loss.svg"
first=$(ls runs/audio-demo/heldout/*.wav | head -1)
echo "try: $bin generate --model runs/audio-demo/latest --audio $first --prompt '<audio>Sounds:'"
