#!/usr/bin/env bash
# Regenerates every file in Tests/Fixtures/video/ (the fixtures of the FFmpeg video decoders,
# Sources/CVideoCodecsSupport) except frames_expected.safetensors, which
# scripts/reference/video_reference.py writes from these clips with PyAV afterwards.
# Needs the ffmpeg CLI with libx264 and libvpx (Debian 12's ffmpeg 5.1 has both). Re-runnable:
# every file is overwritten; with the same ffmpeg build the output is byte-identical (bitexact
# muxing and encoding, no metadata, single-threaded encoders, x264's SEI with its version and
# options string removed).
#
# The clip: FFmpeg's testsrc2 pattern (moving colour bars, a gradient, a frame counter), 64x48,
# 12 frames at 6 fps (2 s), encoded five ways:
#   clip.mp4   H.264 (libx264, yuv420p, B-frames, keyframe every 6 frames), MP4 with the moov
#              atom first (+faststart), so a truncated copy still opens
#   clip.webm  VP9 (libvpx-vp9, crf 30, keyframe every 6 frames), WebM
#   clip.mkv   H.264 as in clip.mp4, Matroska (timestamps in ms, no dts stored)
#   clip.avi   Motion JPEG (q 3, full-range yuvj420p), AVI: every frame a keyframe
#   clip.gif   animated GIF (one 256-colour palette from palettegen; GIF delays are 1/100 s,
#              so the times are 0, 0.17, 0.33, 0.5, ...)
# and the damaged inputs:
#   truncated.mp4  clip.mp4 cut after 75% of its bytes: the moov lists 12 frames, the data of
#                  the last ones is missing
#   corrupt.avi    clip.avi with 200 bytes inside the JPEG data of frame 5 overwritten
#                  (0xA5 0x5A ...): the container is intact, one frame decodes damaged
#   empty.mp4      0 bytes
# An audio-only file for KVID_NO_VIDEO is Tests/Fixtures/audio/tone.m4a (not copied here).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=Tests/Fixtures/video
mkdir -p "$out"

ff() { ffmpeg -nostdin -hide_banner -loglevel error -y "$@"; }
src=(-f lavfi -i "testsrc2=size=64x48:rate=6:duration=2")
clean=(-map_metadata -1 -fflags +bitexact -flags:v +bitexact -threads 1)
x264=(-c:v libx264 -preset medium -crf 23 -pix_fmt yuv420p -g 6 -keyint_min 6 -sc_threshold 0
      -bf 3 -bsf:v filter_units=remove_types=6)

ff "${src[@]}" "${clean[@]}" "${x264[@]}" -movflags +faststart "$out/clip.mp4"
ff "${src[@]}" "${clean[@]}" -c:v libvpx-vp9 -pix_fmt yuv420p -b:v 0 -crf 30 -g 6 \
   -deadline good -cpu-used 4 -row-mt 0 "$out/clip.webm"
ff "${src[@]}" "${clean[@]}" "${x264[@]}" "$out/clip.mkv"
ff "${src[@]}" "${clean[@]}" -c:v mjpeg -q:v 3 -pix_fmt yuvj420p "$out/clip.avi"
ff "${src[@]}" "${clean[@]}" -vf "split[a][b];[a]palettegen[p];[b][p]paletteuse" "$out/clip.gif"

# The damaged and empty inputs.
size=$(wc -c < "$out/clip.mp4" | tr -d " ")
head -c $((size * 75 / 100)) "$out/clip.mp4" > "$out/truncated.mp4"
cp "$out/clip.avi" "$out/corrupt.avi"
# Frame 5's JPEG data starts somewhere after its chunk header; 600 bytes into the chunk is well
# inside the entropy-coded data (each frame is about 2 KB).
offset=$(ffprobe -v error -select_streams v:0 -show_entries packet=pos -of csv=p=0 "$out/clip.avi" | sed -n 6p)
for _ in $(seq 100); do printf '\245\132'; done | dd of="$out/corrupt.avi" bs=1 seek=$((offset + 600)) conv=notrunc 2>/dev/null
: > "$out/empty.mp4"
ls -l "$out"

# A WebDataset shard of video pairs (Tests/KosmosDataTests/AudioDataTests.swift, VideoDataTests):
# 000.mp4 + .txt, 001.gif + .json caption, 002.avi without a caption.
tmp=$(mktemp -d)
cp "$out/clip.mp4" "$tmp/000.mp4"; printf 'testsrc2 bars' > "$tmp/000.txt"
cp "$out/clip.gif" "$tmp/001.gif"; printf '{"caption": "a gif"}' > "$tmp/001.json"
cp "$out/clip.avi" "$tmp/002.avi"
(cd "$tmp" && tar --mtime=@0 --owner=0 --group=0 --numeric-owner --format=ustar \
    -cf - 000.mp4 000.txt 001.gif 001.json 002.avi) > "$out/clips.tar"
rm -rf "$tmp"
