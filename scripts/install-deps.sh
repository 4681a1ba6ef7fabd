#!/usr/bin/env bash
# Installs the system libraries the build links against (Debian/Ubuntu). Safe to re-run.
# OpenBLAS and oneDNN (libdnnl-dev: the bfloat16 and float32 products) for matrix products,
# libjpeg-turbo, libpng, libwebp and libtiff for images, FFmpeg's libavformat/libavcodec/libswresample for audio
# (MP3, FLAC, Ogg/Opus, M4A; WAV needs none) and libswscale for video frames, pkg-config so SwiftPM finds OpenBLAS. On macOS:
# Accelerate ships with the OS (no oneDNN there); `brew install jpeg-turbo libpng` for images
# (audio there reads WAV only unless FFmpeg's headers and libraries are on the compiler's paths).
# `--with-browser` adds Debian's chromium, which the chat page's tests drive headless (scripts/test.sh
# passes it; the build and the demo need no browser).
set -euo pipefail
if [[ "$(uname -s)" != "Linux" ]]; then
    exit 0
fi
packages=(libopenblas-dev libdnnl-dev libjpeg62-turbo-dev libpng-dev libwebp-dev libtiff-dev libavformat-dev libavcodec-dev libswresample-dev libswscale-dev libavutil-dev pkg-config)
if [[ "${1:-}" == "--with-browser" ]]; then
    packages+=(chromium)
fi
missing=()
for p in "${packages[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
    exit 0
fi
sudo=""
if [[ $(id -u) -ne 0 ]]; then
    sudo="sudo"
fi
echo "installing: ${missing[*]}"
$sudo apt-get update
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${missing[@]}"
