#!/usr/bin/env python3
"""WebP fixtures (Tests/Fixtures/images/webp/): files written by Pillow (lossy and lossless, with
and without alpha) and the pixels Pillow decodes from them — `Image.open(f).convert("RGB")` (alpha
dropped) and, for the files with alpha, the image alpha-composited over opaque white (what
`DecodeOptions.alphaOnWhite` gives). expected.safetensors holds each as U8 [H, W, 3] named
"<file>.rgb" and "<file>.on_white".

Run: /work/benchvenv/bin/python scripts/reference/webp_reference.py (Pillow, numpy, safetensors).
"""
import os

import numpy as np
from PIL import Image
from safetensors.numpy import save_file

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
INPUTS = os.path.join(ROOT, "Tests", "Fixtures", "images", "inputs")
OUT = os.path.join(ROOT, "Tests", "Fixtures", "images", "webp")


def main():
    os.makedirs(OUT, exist_ok=True)
    photo = Image.open(os.path.join(INPUTS, "rgb_101x77_444.jpg")).convert("RGB")
    rgba = Image.open(os.path.join(INPUTS, "rgba_97x61.png")).convert("RGBA")
    odd = Image.open(os.path.join(INPUTS, "rgb_7x5.jpg")).convert("RGB")
    files = {
        "lossy.webp": (photo, dict(quality=80)),
        "lossless.webp": (photo, dict(lossless=True)),
        "lossy_alpha.webp": (rgba, dict(quality=70)),
        "lossless_alpha.webp": (rgba, dict(lossless=True)),
        "odd_7x5.webp": (odd, dict(quality=90)),
    }
    expected = {}
    for name, (image, options) in files.items():
        path = os.path.join(OUT, name)
        image.save(path, "WEBP", **options)
        decoded = Image.open(path)
        expected[name + ".rgb"] = np.asarray(decoded.convert("RGB"), dtype=np.uint8)
        if decoded.mode == "RGBA":
            white = Image.new("RGBA", decoded.size, (255, 255, 255, 255))
            expected[name + ".on_white"] = np.asarray(Image.alpha_composite(white, decoded.convert("RGBA")).convert("RGB"), dtype=np.uint8)
        print(name, decoded.mode, decoded.size, os.path.getsize(path))
    save_file(expected, os.path.join(OUT, "expected.safetensors"))


if __name__ == "__main__":
    main()
