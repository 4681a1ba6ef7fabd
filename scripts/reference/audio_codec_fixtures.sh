#!/usr/bin/env bash
# Regenerates every file in Tests/Fixtures/audio/ (the fixtures of the FFmpeg audio decoders,
# Sources/CAudioCodecsSupport). Needs the ffmpeg CLI with libmp3lame and libopus (Debian 12's
# ffmpeg 5.1 has both). Re-runnable: every file is overwritten; with the same ffmpeg build the
# output is byte-identical (bitexact muxing, no metadata, fixed Ogg serial numbers).
#
# The signal: 0.5 s of stereo at 44100 Hz, left = 0.5*sin(2*pi*440*t), right = 0.25*sin(2*pi*660*t),
# quantised once to 16-bit (tone_s16.wav); every encoded file is made from that WAV, so tone.flac
# decodes bit-exactly to tone_s16.wav's samples.
#
# The *.16k.f32 files are the ffmpeg CLI's decodes, resampled to 16000 Hz with exactly the
# libswresample settings of ka_audio.c (see ka_audio.h), kept stereo, raw interleaved float32
# little-endian: 8000 frames * 2 channels * 4 bytes = 64000 bytes each.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=Tests/Fixtures/audio
mkdir -p "$out"

ff() { ffmpeg -nostdin -hide_banner -loglevel error -y "$@"; }
# No tags, no encoder/version strings, so the files do not change with the FFmpeg version string.
clean=(-map_metadata -1 -fflags +bitexact -flags:a +bitexact)

ff -f lavfi -i "aevalsrc=0.5*sin(2*PI*440*t)|0.25*sin(2*PI*660*t):c=stereo:s=44100:d=0.5" \
   "${clean[@]}" -c:a pcm_s16le "$out/tone_s16.wav"
# metadata_header_padding 0: no 8 KiB PADDING block, so bytes 200..599 lie in the first audio frame.
ff -i "$out/tone_s16.wav" "${clean[@]}" -metadata_header_padding 0 -c:a flac -compression_level 8 "$out/tone.flac"
ff -i "$out/tone_s16.wav" "${clean[@]}" -c:a libmp3lame -b:a 128k "$out/tone.mp3"
# libopus encodes at 48 kHz: ffmpeg resamples 44100 -> 48000 before the encoder.
ff -i "$out/tone_s16.wav" "${clean[@]}" -c:a libopus -b:a 96k "$out/tone.ogg"
ff -i "$out/tone_s16.wav" "${clean[@]}" -c:a aac -b:a 128k "$out/tone.m4a"

# The damaged and non-audio inputs.
size=$(wc -c < "$out/tone.mp3" | tr -d " ")
head -c $((size * 40 / 100)) "$out/tone.mp3" > "$out/truncated.mp3"
cp "$out/tone.flac" "$out/corrupt.flac"
# Bytes 200..599 (400 bytes) become the repeating pattern 0xA5 0x5A.
for _ in $(seq 200); do printf '\245\132'; done | dd of="$out/corrupt.flac" bs=1 seek=200 conv=notrunc 2>/dev/null
: > "$out/empty.wav"
printf 'This is a text file, not a WAV file.\nKosmos audio fixture.\n' > "$out/notaudio.wav"

# Reference decodes: aresample with every option ka_audio.c sets.
swr="resampler=swr:filter_size=32:phase_shift=10:linear_interp=1:exact_rational=1:cutoff=0.97"
swr="$swr:filter_type=kaiser:kaiser_beta=9:dither_method=none:internal_sample_fmt=fltp"
for name in tone.flac tone.mp3 tone.ogg tone.m4a; do
    ff -i "$out/$name" -map 0:a:0 -af "aresample=$swr:osr=16000:osf=flt" \
       -c:a pcm_f32le -f f32le "$out/$name.16k.f32"
done
# A WebDataset shard of audio pairs (Tests/KosmosDataTests/AudioDataTests.swift): 000.wav + .txt,
# 001.flac + .json caption, 002.wav that is not audio + .txt, 003.wav without a caption.
tmp=$(mktemp -d)
ff -i "$out/tone_s16.wav" -t 0.1 -ac 1 -ar 16000 "${clean[@]}" -c:a pcm_s16le "$tmp/000.wav"
printf 'high low' > "$tmp/000.txt"
cp "$out/tone.flac" "$tmp/001.flac"
printf '{"caption": "a tone"}' > "$tmp/001.json"
cp "$out/notaudio.wav" "$tmp/002.wav"
printf 'broken' > "$tmp/002.txt"
cp "$tmp/000.wav" "$tmp/003.wav"
(cd "$tmp" && tar --mtime=@0 --owner=0 --group=0 --numeric-owner --format=ustar \
    -cf - 000.wav 000.txt 001.flac 001.json 002.wav 002.txt 003.wav) > "$out/sounds.tar"
rm -rf "$tmp"
ls -l "$out"
