#!/usr/bin/env python3
"""TIFF fixtures (Tests/Fixtures/images/tiff/): files Pillow writes in the layouts people have —
uncompressed, LZW, Deflate, PackBits and JPEG compression; RGB, greyscale, bilevel, palette, RGBA and
LA (unassociated alpha); strips of several rows and tiles; a two-page file — with the pixels
Pillow decodes from each: `Image.open(f).convert("RGB")` in expected.safetensors (U8 [H, W, 3]
named by file) and transformers 5's convert_to_rgb (transparency onto white) in
on_white.safetensors for the files with alpha.

Pillow does not write tiles or predictors, so libtiff's own tiffcp (Debian: libtiff-tools) rewrites
copies: tiles of 16 x 16 (Deflate), LZW with the horizontal predictor, planar (separate) RGB.

Run: /work/hubvenv/bin/python scripts/reference/tiff_reference.py (Pillow 13 with libtiff, numpy,
safetensors, transformers; requirements-images.txt; tiffcp on the PATH).
"""
import os
import subprocess

import numpy as np
from PIL import Image
from safetensors.numpy import save_file
from transformers.image_transforms import convert_to_rgb

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "Tests", "Fixtures", "images", "tiff")


def content(w, h, seed):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([(x * 255 // max(w - 1, 1)), (y * 255 // max(h - 1, 1)), ((x * 3 + y * 5) * 7) % 256], -1)
    return np.clip(base + rng.integers(-25, 26, (h, w, 3)), 0, 255).astype(np.uint8)


def main():
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        os.remove(os.path.join(OUT, f))
    w, h = 45, 31
    rgb = Image.fromarray(content(w, h, 1))
    alpha = Image.fromarray(((np.mgrid[0:h, 0:w][1] * 13 + np.mgrid[0:h, 0:w][0] * 7) % 256).astype(np.uint8), "L")
    rgba = rgb.copy()
    rgba.putalpha(alpha)
    grey = rgb.convert("L")
    files = {
        "rgb_raw.tif": (rgb, {"compression": "raw"}),
        "rgb_lzw.tif": (rgb, {"compression": "tiff_lzw"}),
        "rgb_deflate.tif": (rgb, {"compression": "tiff_adobe_deflate"}),
        "rgb_packbits.tif": (rgb, {"compression": "packbits"}),
        "rgb_jpeg.tif": (rgb, {"compression": "jpeg", "quality": 90}),
        "rgb_strips.tif": (rgb, {"compression": "tiff_lzw", "strip_size": w * 3 * 4}),
        "grey_lzw.tif": (grey, {"compression": "tiff_lzw"}),
        "grey_raw.tif": (grey, {"compression": "raw"}),
        "bilevel_raw.tif": (grey.point(lambda v: 255 if v > 120 else 0).convert("1"), {"compression": "raw"}),
        "bilevel_group4.tif": (grey.point(lambda v: 255 if v > 120 else 0).convert("1"), {"compression": "group4"}),
        "palette_lzw.tif": (rgb.quantize(24), {"compression": "tiff_lzw"}),
        "rgba_lzw.tif": (rgba, {"compression": "tiff_lzw"}),
        "rgba_raw.tif": (rgba, {"compression": "raw"}),
        "la_deflate.tif": (Image.merge("LA", (grey, alpha)), {"compression": "tiff_adobe_deflate"}),
    }
    for name, (image, options) in files.items():
        image.save(os.path.join(OUT, name), **options)
    source = os.path.join(OUT, "rgb_raw.tif")
    for name, flags in [("rgb_tiled.tif", ["-t", "-w", "16", "-l", "16", "-c", "zip"]),
                        ("rgb_predictor.tif", ["-c", "lzw:2"]),
                        ("rgba_tiled.tif", ["-t", "-w", "16", "-l", "16", "-c", "lzw"]),
                        ("rgb_planar.tif", ["-p", "separate", "-c", "lzw"])]:
        subprocess.run(["tiffcp"] + flags + [os.path.join(OUT, "rgba_raw.tif") if name.startswith("rgba") else source,
                                             os.path.join(OUT, name)], check=True)
    # Two pages: the first is the image (Image.open gives frame 0).
    rgb.save(os.path.join(OUT, "two_pages.tif"), compression="tiff_lzw", save_all=True, append_images=[grey])
    expected, on_white, modes = {}, {}, {}
    for name in sorted(os.listdir(OUT)):
        if not name.endswith(".tif"):
            continue
        with Image.open(os.path.join(OUT, name)) as im:
            modes[name] = (im.mode, im.info.get("compression"), getattr(im, "n_frames", 1))
            expected[name] = np.ascontiguousarray(np.array(im.convert("RGB")))
            if "A" in im.getbands():
                im.load()
                on_white[name] = np.ascontiguousarray(convert_to_rgb(im, return_numpy=True))
    save_file(expected, os.path.join(OUT, "expected.safetensors"))
    save_file(on_white, os.path.join(OUT, "on_white.safetensors"))
    for name, mode in modes.items():
        print(name, mode)


if __name__ == "__main__":
    main()
