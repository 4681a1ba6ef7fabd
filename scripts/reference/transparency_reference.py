"""Transparent images in every format we read, and what transformers 5's CLIP processors make of them.

transformers 5's convert_to_rgb (both backends) composites an image with alpha, or with a
transparency entry (a palette's tRNS, an RGB or L colour key, a GIF's transparent index), onto
opaque white before anything else; transformers 4 (and PIL's convert("RGB")) dropped the alpha.
Writes Tests/Fixtures/images/transparency/:
  *.png|gif|webp|bmp     small images (Pillow 13) with partial and full transparency
  config.json            the CLIPImageProcessor configuration (shortest edge 20, crop 20)
  pixel_values.safetensors   CLIPImageProcessorPil(images=Image.open(f)) pixel_values [3,20,20] float32
  composited.safetensors     convert_to_rgb(Image.open(f)) as uint8 [H,W,3] (before the resize)
Run: /work/hubvenv/bin/python scripts/reference/transparency_reference.py   (pillow, numpy, transformers, safetensors)
"""
import json
import os

import numpy as np
from PIL import Image
from safetensors.numpy import save_file
from transformers.image_transforms import convert_to_rgb
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "Tests", "Fixtures", "images", "transparency")
CONFIG = {
    "do_resize": True, "size": {"shortest_edge": 20}, "resample": 3, "do_center_crop": True,
    "crop_size": 20, "do_rescale": True, "rescale_factor": 0.00392156862745098, "do_normalize": True,
    "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
    "do_convert_rgb": True, "image_processor_type": "CLIPImageProcessor",
}


def content(w, h, seed):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([(x * 255 // max(w - 1, 1)), (y * 255 // max(h - 1, 1)), ((x + y) * 7) % 256], -1)
    return np.clip(base + rng.integers(-20, 21, (h, w, 3)), 0, 255).astype(np.uint8)


def alpha(w, h):
    # Every level from 0 to 255 across the image, with fully opaque and fully clear corners.
    y, x = np.mgrid[0:h, 0:w]
    a = ((x * 16 + y * 9) % 256).astype(np.uint8)
    a[:3, :3] = 0
    a[-3:, -3:] = 255
    return a


def main():
    os.makedirs(ROOT, exist_ok=True)
    for f in os.listdir(ROOT):
        os.remove(os.path.join(ROOT, f))
    w, h = 31, 23
    rgb, a = content(w, h, 1), alpha(w, h)
    rgba = Image.fromarray(np.dstack([rgb, a]), "RGBA")
    files = {}

    def save(name, im, **kw):
        im.save(os.path.join(ROOT, name), **kw)
        files[name] = im.mode

    save("rgba.png", rgba)
    save("la.png", Image.fromarray(np.dstack([rgb[..., 0], a]), "LA"))
    # A palette whose tRNS gives several entries partial alpha.
    pal = Image.fromarray(content(w, h, 2)).quantize(16)
    save("palette_trns.png", pal, transparency=bytes([0, 64, 128, 200, 255, 10, 255, 0] + [255] * 8))
    # Colour keys: the pixels equal to the key are transparent.
    keyed = rgb.copy()
    keyed[::4, ::3] = (10, 20, 30)
    save("rgb_key.png", Image.fromarray(keyed), transparency=(10, 20, 30))
    grey = rgb[..., 1].copy()
    grey[1::5, ::2] = 77
    save("l_key.png", Image.fromarray(grey, "L"), transparency=77)
    save("gif_transparent.gif", pal, transparency=5)
    save("webp_alpha.webp", rgba, lossless=True)
    save("webp_alpha_lossy.webp", rgba, quality=80)
    save("bmp_rgba.bmp", rgba)
    # Opaque controls: no alpha, nothing composited.
    save("rgb_opaque.png", Image.fromarray(rgb))
    save("palette_opaque.gif", pal)

    with open(os.path.join(ROOT, "config.json"), "w") as f:
        json.dump(CONFIG, f, indent=2)
    processor = CLIPImageProcessorPil(**{k: v for k, v in CONFIG.items() if k != "image_processor_type"})
    values, composited, modes = {}, {}, {}
    for name in sorted(files):
        im = Image.open(os.path.join(ROOT, name))
        im.load()
        modes[name] = {"mode": im.mode, "transparency": "transparency" in im.info}
        values[name] = np.ascontiguousarray(processor(images=im, return_tensors="np")["pixel_values"][0].astype(np.float32))
        composited[name] = np.ascontiguousarray(convert_to_rgb(im, return_numpy=True))
    save_file(values, os.path.join(ROOT, "pixel_values.safetensors"))
    save_file(composited, os.path.join(ROOT, "composited.safetensors"))
    with open(os.path.join(ROOT, "index.json"), "w") as f:
        json.dump(modes, f, indent=1, sort_keys=True)
    print("wrote", len(files), "images:", modes)


if __name__ == "__main__":
    main()
