#!/usr/bin/env bash
# Installs the system libraries the build links against (Debian/Ubuntu). Safe to re-run.
# OpenBLAS for matrix products; pkg-config so SwiftPM finds it. (libjpeg/libpng join when the
# image target lands.) On macOS nothing is needed: Accelerate ships with the OS.
set -euo pipefail
if [[ "$(uname -s)" != "Linux" ]]; then
    exit 0
fi
packages=(libopenblas-dev pkg-config)
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
