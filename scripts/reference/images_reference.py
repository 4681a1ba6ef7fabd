"""Writes the image fixtures for KosmosVisionTests and what PIL / transformers make of them.

Run: /work/venv/bin/python scripts/reference/images_reference.py   (needs pillow, transformers, numpy, safetensors)
Writes Tests/Fixtures/images/:
  inputs/*.jpg|png          the fixture images (odd sizes, extreme aspect ratios, every JPEG/PNG flavour)
  bad/*                     truncated / garbage / empty / huge-header / non-image inputs
  expected/<name>.decoded.png   PIL's Image.open(f).convert("RGB"), stored losslessly as 8-bit RGB PNG
  expected/<name>.<cfg>.resized.png   PIL's BICUBIC resize to the size transformers computes, stored as the
                            region the center crop keeps (crop_top/crop_left in index.json) to keep fixtures small
  expected/pixel_values.safetensors   CLIPImageProcessorPil pixel_values [3,H,W] float32: every
                            `stride`-th element (flattened) for each fixture and config, plus the full tensor
                            for the "padcrop" config on the PADCROP_FULL fixtures
  configs/*.json            preprocessor_config.json variants used
  index.json                what every file is and the parameters used
The default transformers 5 CLIPImageProcessor is torchvision-backed; the PIL-backed CLIPImageProcessorPil is
the one whose arithmetic is PIL's, so it is the reference here. The decode fixtures (*.decoded.png, *.resized.png) are PIL's convert("RGB") (alpha dropped); pixel_values
are what the processor makes of the image as Image.open gives it, so transformers 5's convert_to_rgb
composites RGBA, LA and transparent-palette images onto white there, as it does for a user.
"""
import io
import json
import os
import struct
import zlib

import numpy as np
from PIL import Image, ImageOps
from safetensors.numpy import save_file
from transformers.image_transforms import get_resize_output_image_size
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "Tests", "Fixtures", "images")
STRIDE = 97
SQUARE_RESIZED = {"rgb8_3x500.png", "rgb8_500x3.png", "rgb_7x5.jpg", "rgb_150x100_422.jpg"}
PADCROP_FULL = {"rgb_7x5.jpg", "rgb8_3x500.png", "rgb8_500x3.png", "rgb8_1x1.png", "rgb_640x480.jpg"}
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
CONFIGS = {
    "clip": {
        "do_resize": True, "size": {"shortest_edge": 224}, "resample": 3, "do_center_crop": True,
        "crop_size": 224, "do_rescale": True, "rescale_factor": 0.00392156862745098, "do_normalize": True,
        "image_mean": CLIP_MEAN, "image_std": CLIP_STD, "do_convert_rgb": True,
        "image_processor_type": "CLIPImageProcessor",
    },
    # Kosmos-2 style: squash to a fixed height x width (no aspect preservation).
    "square": {
        "do_resize": True, "size": {"height": 224, "width": 224}, "resample": 3, "do_center_crop": True,
        "crop_size": {"height": 224, "width": 224}, "do_rescale": True, "rescale_factor": 0.00392156862745098,
        "do_normalize": True, "image_mean": CLIP_MEAN, "image_std": CLIP_STD, "do_convert_rgb": True,
        "image_processor_type": "CLIPImageProcessor",
    },
    # Crop larger than the resize: exercises transformers' zero padding in center_crop.
    "padcrop": {
        "do_resize": True, "size": {"shortest_edge": 20}, "resample": 3, "do_center_crop": True,
        "crop_size": {"height": 30, "width": 26}, "do_rescale": True, "rescale_factor": 0.00392156862745098,
        "do_normalize": True, "image_mean": CLIP_MEAN, "image_std": CLIP_STD, "do_convert_rgb": True,
        "image_processor_type": "CLIPImageProcessor",
    },
}


def content(w, h, seed):
    """Smooth gradients + blocks + mild noise: realistic enough for JPEG, compresses well as PNG."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.zeros((h, w, 3))
    for c in range(3):
        fx, fy, ph = rng.uniform(0.5, 4.0), rng.uniform(0.5, 4.0), rng.uniform(0, 6.28)
        img[..., c] = 127.5 + 110 * np.sin(fx * 6.28 * x / max(w, 2) + ph) * np.cos(fy * 6.28 * y / max(h, 2))
    for _ in range(4):
        x0, y0 = rng.integers(0, w), rng.integers(0, h)
        img[y0:y0 + max(1, h // 5), x0:x0 + max(1, w // 5)] = rng.integers(0, 256, 3)
    img += rng.normal(0, 1.0, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def exif_with_orientation(o):
    # Minimal little-endian TIFF header with one IFD entry: Orientation (0x0112, SHORT, 1).
    ifd = struct.pack("<H", 1) + struct.pack("<HHIHH", 0x0112, 3, 1, o, 0) + struct.pack("<I", 0)
    return b"Exif\x00\x00" + b"II*\x00" + struct.pack("<I", 8) + ifd


def make_inputs(d):
    specs = []

    def save(name, im, **kw):
        path = os.path.join(d, name)
        im.save(path, **kw)
        specs.append(name)

    save("rgb_640x480.jpg", Image.fromarray(content(640, 480, 1)), quality=90)
    save("rgb_1000x333_progressive.jpg", Image.fromarray(content(1000, 333, 2)), quality=85, progressive=True)
    save("rgb_7x5.jpg", Image.fromarray(content(7, 5, 3)), quality=95)
    save("rgb_101x77_444.jpg", Image.fromarray(content(101, 77, 4)), quality=92, subsampling=0)
    save("rgb_150x100_422.jpg", Image.fromarray(content(150, 100, 13)), quality=80, subsampling=1)
    save("gray_301x199.jpg", Image.fromarray(content(301, 199, 5)[..., 0], "L"), quality=88)
    save("cmyk_120x90.jpg", Image.fromarray(content(120, 90, 6)).convert("CMYK"), quality=90)
    for o in range(2, 9):
        save(f"exif{o}_{64 if o == 6 else 9}x{48 if o == 6 else 5}.jpg",
             Image.fromarray(content(64, 48, 7) if o == 6 else content(9, 5, 30 + o)), quality=90,
             exif=exif_with_orientation(o))
    save("rgb8_3x500.png", Image.fromarray(content(3, 500, 8)))
    save("rgb8_500x3.png", Image.fromarray(content(500, 3, 9)))
    save("rgb8_1x1.png", Image.fromarray(content(1, 1, 10)))
    save("rgb8_224x224.png", Image.fromarray(content(224, 224, 11)))
    save("rgb8_100x150_interlaced.png", Image.fromarray(content(100, 150, 12)), optimize=False, interlace=1)
    # 16-bit RGB: PIL keeps the high byte of each sample.
    rgb16 = (content(50, 37, 14).astype(np.uint16) * 257 + np.random.default_rng(14).integers(0, 200, (37, 50, 3))).astype(">u2")
    save_png16_rgb(os.path.join(d, "rgb16_50x37.png"), rgb16)
    specs.append("rgb16_50x37.png")
    # 16-bit grayscale: PIL opens as I;16 and convert("RGB") clips values above 255.
    g16 = np.random.default_rng(15).integers(0, 600, (30, 40)).astype(np.uint16)
    save("gray16_40x30.png", Image.frombytes("I;16", (40, 30), g16.astype("<u2").tobytes()))
    pal = Image.fromarray(content(63, 41, 16)).quantize(colors=37)
    save("palette_63x41.png", pal, transparency=3)
    save("gray8_33x65.png", Image.fromarray(content(33, 65, 17)[..., 1], "L"))
    la = np.stack([content(45, 23, 18)[..., 0], content(45, 23, 19)[..., 2]], axis=-1)
    save("graya_45x23.png", Image.fromarray(la, "LA"))
    rgba = np.concatenate([content(97, 61, 20), content(97, 61, 21)[..., :1]], axis=-1)
    save("rgba_97x61.png", Image.fromarray(rgba, "RGBA"))
    bits = (content(17, 9, 22)[..., 0] > 127)
    save("bilevel_17x9.png", Image.fromarray(bits))
    return specs


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def save_png16_rgb(path, arr):
    h, w, _ = arr.shape
    raw = b"".join(b"\x00" + arr[y].tobytes() for y in range(h))
    data = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
    data += png_chunk(b"IDAT", zlib.compress(raw, 9)) + png_chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(data)


def make_bad(d, inputs):
    with open(os.path.join(inputs, "rgb_640x480.jpg"), "rb") as f:
        jpg = f.read()
    with open(os.path.join(inputs, "rgba_97x61.png"), "rb") as f:
        png = f.read()
    files = {
        "truncated.jpg": jpg[: len(jpg) * 6 // 10],
        "truncated_header.jpg": jpg[:40],
        "truncated.png": png[: len(png) * 6 // 10],
        "garbage.jpg": bytes((i * 7919 + 13) % 251 for i in range(3000)),
        "empty.png": b"",
        "notimage.txt": b"This is a text file, not an image.\n" * 20,
        "huge.png": b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0))
        + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + png_chunk(b"IEND", b""),
    }
    for name, data in files.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
    outcome = {}
    for name in files:
        try:
            with Image.open(os.path.join(d, name)) as im:
                im.convert("RGB")
            outcome[name] = "decoded"
        except Exception as e:  # record what PIL does, for the report
            outcome[name] = type(e).__name__
    return outcome


def main():
    inputs, bad, expected, configs = (os.path.join(ROOT, s) for s in ("inputs", "bad", "expected", "configs"))
    for p in (inputs, bad, expected, configs):
        os.makedirs(p, exist_ok=True)
        for f in os.listdir(p):
            os.remove(os.path.join(p, f))
    names = make_inputs(inputs)
    bad_outcome = make_bad(bad, inputs)
    for cname, cfg in CONFIGS.items():
        with open(os.path.join(configs, cname + ".json"), "w") as f:
            json.dump(cfg, f, indent=2)
    processors = {c: CLIPImageProcessorPil(**{k: v for k, v in cfg.items() if k != "image_processor_type"})
                  for c, cfg in CONFIGS.items()}
    tensors = {}
    full = []
    index = {"stride": STRIDE, "full_pixel_values": full, "fixtures": [], "bad": bad_outcome,
             "configs": sorted(CONFIGS)}
    for name in names:
        opened = Image.open(os.path.join(inputs, name))
        opened.load()
        with Image.open(os.path.join(inputs, name)) as im:
            mode = im.mode
            rgb = im.convert("RGB")
        # convert("RGB") of a palette image with a transparent index keeps info["transparency"] as an
        # RGB triple, and transformers 5's convert_to_rgb would then composite those pixels onto white.
        # The pipeline we mirror drops alpha/transparency (PIL's convert("RGB")), so clear it.
        rgb.info.pop("transparency", None)
        stem = name.rsplit(".", 1)[0]
        rgb.save(os.path.join(expected, stem + ".decoded.png"))
        if name.startswith("exif"):
            with Image.open(os.path.join(inputs, name)) as im:
                ImageOps.exif_transpose(im).convert("RGB").save(os.path.join(expected, stem + ".transposed.png"))
        entry = {"file": name, "mode": mode, "width": rgb.width, "height": rgb.height, "configs": {}}
        arr = np.array(rgb)
        for cname, cfg in CONFIGS.items():
            size = cfg["size"]
            chw = np.moveaxis(arr, -1, 0)
            if "shortest_edge" in size:
                h, w = get_resize_output_image_size(chw, size["shortest_edge"], default_to_square=False,
                                                    input_data_format="channels_first")
            else:
                h, w = size["height"], size["width"]
            resized = rgb.resize((w, h), Image.BICUBIC)
            crop_h, crop_w = 224, 224
            top, left = max(0, (h - crop_h) // 2), max(0, (w - crop_w) // 2)
            keep = cname == "clip" or (cname == "square" and name in SQUARE_RESIZED)
            keep = keep and not (w == rgb.width and h == rgb.height)  # identity resize: compare to decoded
            if keep:
                resized.crop((left, top, min(w, left + crop_w), min(h, top + crop_h))).save(
                    os.path.join(expected, f"{stem}.{cname}.resized.png"))
            pv = processors[cname](images=opened, return_tensors="np")["pixel_values"][0].astype(np.float32)
            tensors[f"{stem}.{cname}.sample"] = np.ascontiguousarray(pv.reshape(-1)[::STRIDE])
            if cname == "clip" and name in full:
                tensors[f"{stem}.{cname}.full"] = np.ascontiguousarray(pv)
            if cname == "padcrop" and name in PADCROP_FULL:
                tensors[f"{stem}.{cname}.full"] = np.ascontiguousarray(pv)
            entry["configs"][cname] = {"resized_height": int(h), "resized_width": int(w),
                                       "pixel_values_shape": list(pv.shape),
                                       "crop_top": int(top), "crop_left": int(left),
                                       "resized_png": keep}
            if name.startswith("exif") and not name.startswith("exif6"):
                break  # orientation fixtures only need their decode checked
        index["fixtures"].append(entry)
    save_file(tensors, os.path.join(expected, "pixel_values.safetensors"))
    with open(os.path.join(ROOT, "index.json"), "w") as f:
        json.dump(index, f, indent=1)
    total = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(ROOT) for f in fs)
    print(f"wrote {len(names)} fixtures, total {total / 1e6:.2f} MB; PIL on bad inputs: {bad_outcome}")


if __name__ == "__main__":
    main()
