#!/usr/bin/env python3
"""GIF fixtures (Tests/Fixtures/images/gif/): GIFs written by Pillow — a photo quantised to 256
and to 13 colours, greyscale, interlaced (Pillow's default) and not, an animation (its first frame is read), one
with a transparent index, a 7 × 5 one — and the first frame as Pillow
gives it (`Image.open(f).convert("RGB")`), in expected.safetensors as U8 [H, W, 3] named by file.

Run: /work/benchvenv/bin/python scripts/reference/gif_reference.py (Pillow, numpy, safetensors).
"""
import os

import numpy as np
from PIL import Image
from safetensors.numpy import save_file

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
INPUTS = os.path.join(ROOT, "Tests", "Fixtures", "images", "inputs")
OUT = os.path.join(ROOT, "Tests", "Fixtures", "images", "gif")


def main():
    os.makedirs(OUT, exist_ok=True)
    photo = Image.open(os.path.join(INPUTS, "rgb_101x77_444.jpg")).convert("RGB")
    photo.save(os.path.join(OUT, "photo256.gif"))
    photo.quantize(13).save(os.path.join(OUT, "photo13.gif"))
    photo.convert("L").save(os.path.join(OUT, "gray.gif"))
    photo.save(os.path.join(OUT, "noninterlaced.gif"), interlace=False)  # Pillow interlaces by default
    frames = [photo.rotate(a) for a in (0, 90, 180)]
    frames[0].save(os.path.join(OUT, "animated.gif"), save_all=True, append_images=frames[1:], duration=100, loop=0)
    p = photo.quantize(16)
    p.info["transparency"] = 3
    p.save(os.path.join(OUT, "transparent.gif"), transparency=3)
    small = Image.open(os.path.join(INPUTS, "rgb_7x5.jpg")).convert("RGB")
    small.save(os.path.join(OUT, "odd_7x5.gif"))
    expected = {}
    for name in sorted(os.listdir(OUT)):
        if name.endswith(".gif"):
            im = Image.open(os.path.join(OUT, name))
            expected[name] = np.asarray(im.convert("RGB"), dtype=np.uint8)
            print(name, im.mode, im.size, getattr(im, "n_frames", 1), os.path.getsize(os.path.join(OUT, name)))
    save_file(expected, os.path.join(OUT, "expected.safetensors"))


if __name__ == "__main__":
    main()
