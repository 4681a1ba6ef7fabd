"""The frame-sampling rule's expected indices (Tests/Fixtures/video/frame_indices.json): numpy's
round(linspace(0, frames - 1, N)) (halves to even), duplicates removed, for awkward frame counts.

Run from the repository root: venv/bin/python scripts/reference/frame_indices_reference.py"""
import json
import os

import numpy as np

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
CASES = [(12, 4), (12, 8), (9, 4), (100, 8), (3, 8), (2, 5), (17, 6), (1, 8), (7200, 8), (50, 12), (10, 4), (6, 4),
         (172800, 8), (5, 1), (8, 8), (33, 16)]
out = [{"frames": c, "n": n, "indices": sorted(set(np.round(np.linspace(0, c - 1, n)).astype(int).tolist()))} for c, n in CASES]
path = os.path.join(ROOT, "Tests", "Fixtures", "video", "frame_indices.json")
os.makedirs(os.path.dirname(path), exist_ok=True)
with open(path, "w") as f:
    json.dump({"generator": "scripts/reference/frame_indices_reference.py", "numpy": np.__version__, "cases": out}, f, indent=1)
print("wrote", path)
