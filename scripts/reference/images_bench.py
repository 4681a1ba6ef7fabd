"""Python baseline for `kosmos bench data`: PIL decode + transformers CLIPImageProcessorPil on 640x480 JPEGs
(or, with --backend torchvision, transformers 5's default torchvision-backed CLIPImageProcessor, with torch
limited to the same number of threads).

Run: /work/venv/bin/python scripts/reference/images_bench.py [--threads 2] [--images 32] [--repeats 8] [--backend pil|torchvision]
Images are made like the Swift benchmark's (shapes over a gradient, quality 90) but with PIL's encoder,
so sizes are similar, not byte-identical. Threads: a ThreadPool (PIL releases the GIL while decoding and
resizing; NumPy while normalising), and a process pool for comparison.
"""
import argparse
import io
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import numpy as np
from PIL import Image, ImageDraw
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil


def make_jpegs(count, width=640, height=480):
    out = []
    x = np.linspace(0, 255, width)[None, :].repeat(height, 0)
    y = np.linspace(0, 255, height)[:, None].repeat(width, 1)
    for i in range(count):
        arr = np.stack([x, y, ((np.arange(width)[None, :] + np.arange(height)[:, None] + i * 37) * 3) % 256], -1)
        im = Image.fromarray(arr.astype(np.uint8))
        d = ImageDraw.Draw(im)
        r = min(width, height) // 8
        d.ellipse((width // 4 - r, height // 2 - r, width // 4 + r, height // 2 + r), fill=(220, 30, 30))
        d.rectangle((3 * width // 4 - r, height // 2 - r, 3 * width // 4 + r, height // 2 + r), fill=(30, 60, 220))
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=90)
        out.append(buf.getvalue())
    return out


PROCESSOR = None
BACKEND = "pil"


def work(data):
    global PROCESSOR
    if PROCESSOR is None:
        if BACKEND == "torchvision":
            from transformers.models.clip.image_processing_clip import CLIPImageProcessor
            PROCESSOR = CLIPImageProcessor()
        else:
            PROCESSOR = CLIPImageProcessorPil()
    im = Image.open(io.BytesIO(data)).convert("RGB")
    return PROCESSOR(images=im, return_tensors="np")["pixel_values"].shape


def timed(pool_cls, workers, items):
    with pool_cls(max_workers=workers) as pool:
        list(pool.map(work, items[: workers * 2]))  # warm-up (process start, imports)
        t = time.perf_counter()
        list(pool.map(work, items, chunksize=4) if pool_cls is ProcessPoolExecutor else pool.map(work, items))
        return len(items) / (time.perf_counter() - t)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--images", type=int, default=32)
    p.add_argument("--repeats", type=int, default=8)
    p.add_argument("--backend", choices=["pil", "torchvision"], default="pil")
    a = p.parse_args()
    global BACKEND
    BACKEND = a.backend
    if a.backend == "torchvision":
        import torch
        torch.set_num_threads(a.threads)
    jpegs = make_jpegs(a.images)
    items = jpegs * a.repeats
    name = "CLIPImageProcessor (torchvision)" if a.backend == "torchvision" else "CLIPImageProcessorPil"
    print(f"PIL + {name}, {a.images} JPEGs 640x480 q90, {sum(map(len, jpegs)) // len(jpegs)} bytes each")
    work(jpegs[0])
    t = time.perf_counter()
    for d in items[: len(items) // 2]:
        work(d)
    print(f"1 thread: {len(items) // 2 / (time.perf_counter() - t):.1f} images/s")
    print(f"{a.threads} threads: {timed(ThreadPoolExecutor, a.threads, items):.1f} images/s")
    if a.backend == "pil":  # torch in forked workers would need its own thread settings
        print(f"{a.threads} processes: {timed(ProcessPoolExecutor, a.threads, items):.1f} images/s")


if __name__ == "__main__":
    main()
