#!/usr/bin/env python3
"""BMP fixtures (Tests/Fixtures/images/bmp/): bitmaps Pillow writes (24-bit RGB, 8-bit grey and
palette, 1-bit, 32-bit from RGBA) and a few written here byte by byte in layouts Pillow reads but
does not write (4-bit palette, top-down rows, 32-bit BI_BITFIELDS, the OS/2 12-byte header), with
the pixels Pillow decodes from each (`Image.open(f).convert("RGB")`) in expected.safetensors as
U8 [H, W, 3] named by file.

Run: /work/benchvenv/bin/python scripts/reference/bmp_reference.py (Pillow, numpy, safetensors).
"""
import os
import struct

import numpy as np
from PIL import Image
from safetensors.numpy import save_file

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
INPUTS = os.path.join(ROOT, "Tests", "Fixtures", "images", "inputs")
OUT = os.path.join(ROOT, "Tests", "Fixtures", "images", "bmp")


def bitmap(width, height, bits, rows, palette=(), compression=0, masks=None, header=40, top_down=False):
    """A bitmap file: rows top to bottom as bytes (unpadded); palette as (r, g, b)."""
    stride = (width * bits + 31) // 32 * 4
    data = b"".join(r + b"\0" * (stride - len(r)) for r in (rows if top_down else rows[::-1]))
    if header == 12:
        dib = struct.pack("<IHHHH", 12, width, height, 1, bits)
        pal = b"".join(bytes([b, g, r]) for r, g, b in palette)
    else:
        dib = struct.pack("<IiiHHIIiiII", 40, width, -height if top_down else height, 1, bits, compression, len(data), 2835, 2835,
                          len(palette), 0)
        pal = b"".join(bytes([b, g, r, 0]) for r, g, b in palette)
        if masks:
            pal = struct.pack("<III", *masks) + pal
    offset = 14 + len(dib) + len(pal)
    return b"BM" + struct.pack("<IHHI", offset + len(data), 0, 0, offset) + dib + pal + data


def main():
    os.makedirs(OUT, exist_ok=True)
    photo = Image.open(os.path.join(INPUTS, "rgb_101x77_444.jpg")).convert("RGB")
    rgba = Image.open(os.path.join(INPUTS, "rgba_97x61.png")).convert("RGBA")
    written = {
        "rgb24.bmp": photo,
        "gray8.bmp": photo.convert("L"),
        "palette8.bmp": photo.convert("P", palette=Image.ADAPTIVE, colors=37),
        "bilevel1.bmp": photo.convert("1"),
        "rgba32.bmp": rgba,
        "odd_7x5.bmp": Image.open(os.path.join(INPUTS, "rgb_7x5.jpg")).convert("RGB"),
    }
    for name, image in written.items():
        image.save(os.path.join(OUT, name), "BMP")
    w, h = 7, 3
    pal16 = [(i * 16, 255 - i * 16, (i * 37) % 256) for i in range(16)]
    rows4 = [bytes(((2 * x + y) % 16) << 4 | ((2 * x + 1 + y) % 16) for x in range((w + 1) // 2)) for y in range(h)]
    crafted = {
        "palette4.bmp": bitmap(w, h, 4, rows4, pal16),
        "topdown24.bmp": bitmap(w, h, 24, [bytes((x * 30 + c * 70 + y * 11) % 256 for x in range(w) for c in range(3)) for y in range(h)], top_down=True),
        "bitfields32.bmp": bitmap(w, h, 32, [bytes((x * 13 + c * 50 + y * 7) % 256 for x in range(w) for c in range(4)) for y in range(h)],
                                  compression=3, masks=(0x00FF0000, 0x0000FF00, 0x000000FF)),
        "os2_8.bmp": bitmap(w, h, 8, [bytes((x + y * w) % 16 for x in range(w)) for y in range(h)], pal16, header=12),
    }
    for name, data in crafted.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    expected = {}
    for name in sorted(os.listdir(OUT)):
        if name.endswith(".bmp"):
            im = Image.open(os.path.join(OUT, name))
            expected[name] = np.asarray(im.convert("RGB"), dtype=np.uint8)
            print(name, im.mode, im.size, os.path.getsize(os.path.join(OUT, name)))
    save_file(expected, os.path.join(OUT, "expected.safetensors"))


if __name__ == "__main__":
    main()
