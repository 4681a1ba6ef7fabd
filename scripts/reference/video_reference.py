"""Video reference frames: what PyAV decodes from the video fixtures, for the FFmpeg video decoders
(Sources/CVideoCodecsSupport, kv_video.h) to be compared against.

Run from the repository root, after scripts/reference/video_codec_fixtures.sh:
    venv/bin/python scripts/reference/video_reference.py
Writes Tests/Fixtures/video/frames_expected.safetensors.

For each clip NAME in CLIPS (clip.mp4, clip.webm, clip.mkv, clip.avi, clip.gif):
  * every frame of the first video stream is decoded with PyAV (container.decode(video=0)); the
    count is NAME.frame_count (int64, shape [1]);
  * the sampled indices are numpy's round(linspace(0, frame_count - 1, N)) for N = 4 (np.round:
    half to even), NAME.indices (int64, [4]): [0, 4, 7, 11] for the 12-frame clips;
  * those frames as frame.to_ndarray(format="rgb24"), NAME.frames (uint8, [4, height, width, 3]),
    and their frame.time (pts * time_base, seconds), NAME.pts_seconds (float64, [4]).
to_ndarray(format="rgb24") runs PyAV's VideoReformatter with its defaults: SWS_BILINEAR, the
frame's own colour matrix (BT.601 when unspecified) and range (limited unless the frame says full /
the format is yuvj*). kv_video.c converts with the same settings (see kv_video.h); with FFmpeg 5.1
(Debian 12) on this side and PyAV's bundled FFmpeg on the other, the frames agree byte for byte
for these clips. The safetensors metadata key "reference" (JSON) records the PyAV/FFmpeg versions
used ("pyav", "pyav_libraries"), this recipe ("recipe") and a summary per clip ("clips").
"""

import json
import os
import sys

import av
import numpy as np
from safetensors.numpy import save_file

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
DIRECTORY = os.path.join(ROOT, "Tests", "Fixtures", "video")
CLIPS = ["clip.mp4", "clip.webm", "clip.mkv", "clip.avi", "clip.gif"]
SAMPLES = 4


def decode_all(path):
    frames, times = [], []
    with av.open(path) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            times.append(frame.time)
    return frames, times


def main():
    tensors = {}
    summary = {}
    for name in CLIPS:
        path = os.path.join(DIRECTORY, name)
        if not os.path.exists(path):
            sys.exit(f"{path} is missing: run scripts/reference/video_codec_fixtures.sh first")
        frames, times = decode_all(path)
        count = len(frames)
        indices = np.round(np.linspace(0, count - 1, SAMPLES)).astype(np.int64)
        picked = np.stack([frames[i] for i in indices]).astype(np.uint8)
        seconds = np.array([times[i] for i in indices], dtype=np.float64)
        tensors[f"{name}.frame_count"] = np.array([count], dtype=np.int64)
        tensors[f"{name}.indices"] = indices
        tensors[f"{name}.frames"] = np.ascontiguousarray(picked)
        tensors[f"{name}.pts_seconds"] = seconds
        summary[name] = {"frame_count": count, "indices": indices.tolist(),
                         "shape": list(picked.shape), "pts_seconds": seconds.tolist()}
        print(name, summary[name])
    # One metadata key: safetensors keeps the metadata in a hash map, so with several keys their
    # order (and the file's bytes) would change from run to run.
    metadata = {"reference": json.dumps({
        "generator": "scripts/reference/video_reference.py",
        "pyav": av.__version__,
        "pyav_libraries": {k: ".".join(map(str, v)) for k, v in sorted(av.library_versions.items())},
        "numpy": np.__version__,
        "recipe": "PyAV container.decode(video=0); indices np.round(np.linspace(0, n - 1, 4)); "
                  "frame.to_ndarray(format='rgb24'); frame.time",
        "clips": summary,
    }, sort_keys=True)}
    out = os.path.join(DIRECTORY, "frames_expected.safetensors")
    save_file(tensors, out, metadata=metadata)
    os.chmod(out, 0o644)   # safetensors creates it 0600
    print("wrote", out, os.path.getsize(out), "bytes")


if __name__ == "__main__":
    main()
