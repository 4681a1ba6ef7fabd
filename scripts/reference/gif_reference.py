#!/usr/bin/env python3
"""GIF fixtures (Tests/Fixtures/images/gif/): GIFs written by Pillow — a photo quantised to 256
and to 13 colours, greyscale, interlaced (Pillow's default) and not, an animation (its first frame is read), one
with a transparent index, a 7 × 5 one, and two written here whose first frame is smaller than the
screen — and the first frame as Pillow
gives it (`Image.open(f).convert("RGB")`), in expected.safetensors as U8 [H, W, 3] named by file.

Run: /work/benchvenv/bin/python scripts/reference/gif_reference.py (Pillow, numpy, safetensors).
"""
import os
import struct

import numpy as np
from PIL import Image
from safetensors.numpy import save_file

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
INPUTS = os.path.join(ROOT, "Tests", "Fixtures", "images", "inputs")
OUT = os.path.join(ROOT, "Tests", "Fixtures", "images", "gif")


def lzw_literals(indices, minimum=2):
    """GIF LZW data that only ever emits literals, with a clear code after every two so the
    code size stays minimum + 1 bits (a valid, if unhelpful, encoding)."""
    clear, end, size = 1 << minimum, (1 << minimum) + 1, minimum + 1
    codes = [clear]
    for i, v in enumerate(indices):
        if i and i % 2 == 0:
            codes.append(clear)
        codes.append(v)
    codes.append(end)
    bits = "".join(format(c, "0%db" % size)[::-1] for c in codes)
    bits += "0" * (-len(bits) % 8)
    data = bytes(int(bits[i:i + 8][::-1], 2) for i in range(0, len(bits), 8))
    blocks = b"".join(bytes([len(data[i:i + 255])]) + data[i:i + 255] for i in range(0, len(data), 255))
    return bytes([minimum]) + blocks + b"\0"


def offset_frame_gif(transparent):
    """An 8 x 6 screen (background index 2) whose first frame is 4 x 3 at (2, 1)."""
    palette = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (240, 240, 240)]
    header = b"GIF89a" + struct.pack("<HHBBB", 8, 6, 0x81, 2, 0) + b"".join(bytes(c) for c in palette)
    gce = b""
    if transparent is not None:
        gce = b"\x21\xf9\x04" + bytes([0x01, 0, 0, transparent, 0])
    indices = [0, 1, 3, 0, 3, 0, 1, 1, 0, 3, 3, 1]
    image = b"\x2c" + struct.pack("<HHHHB", 2, 1, 4, 3, 0) + lzw_literals(indices)
    return header + gce + image + b"\x3b"


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
    # First frames smaller than the logical screen, written byte by byte (Pillow does not write
    # those): what Pillow shows around the frame, with and without a transparent index.
    for name, transparent in (("offset_frame.gif", None), ("offset_frame_transparent.gif", 1)):
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(offset_frame_gif(transparent))
    expected = {}
    for name in sorted(os.listdir(OUT)):
        if name.endswith(".gif"):
            im = Image.open(os.path.join(OUT, name))
            expected[name] = np.asarray(im.convert("RGB"), dtype=np.uint8)
            print(name, im.mode, im.size, getattr(im, "n_frames", 1), os.path.getsize(os.path.join(OUT, name)))
    save_file(expected, os.path.join(OUT, "expected.safetensors"))


if __name__ == "__main__":
    main()
