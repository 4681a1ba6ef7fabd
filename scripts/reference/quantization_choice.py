"""Which q4 variant and group size: the relative reconstruction error ||W - Q(W)|| / ||W|| over a
trained model's Linear weights (those whose rows 64 divides, so every variant sees the same
weights), for q8 and q4 at groups 32 and 64, q4 with minimums (ours) and without (symmetric,
llama.cpp's Q4_0: d = signed max / -8, w = (n - 8) d). Bits per weight include the float16 scales
(and minimums). docs/benchmarks.md has the result.

Run: venv/bin/python scripts/reference/quantization_choice.py DIR...
"""
import sys

import numpy as np
from safetensors.numpy import load_file

from quantization_reference import q4_dequantize, q4_quantize, q8_dequantize, q8_quantize

f32 = np.float32


def q4_symmetric(w, group):
    rows, k = w.shape
    g = w.reshape(rows, k // group, group).astype(f32)
    idx = np.abs(g).argmax(axis=2)
    signed = np.take_along_axis(g, idx[:, :, None], axis=2)[:, :, 0]
    d = (signed / f32(-8)).astype(np.float16).astype(f32)[:, :, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        n = np.where(d == 0, f32(8), np.clip(np.rint(g / np.where(d == 0, f32(1), d)) + 8, 0, 15))
    return ((n - 8) * d).reshape(rows, k)


def variants():
    for group in (32, 64):
        yield f"q8 g{group}", 8 + 16 / group, lambda w, g=group: q8_dequantize(*q8_quantize(w, g), g)
        yield f"q4 g{group} with minimums", 4 + 32 / group, lambda w, g=group: q4_dequantize(*q4_quantize(w, g), g)
        yield f"q4 g{group} symmetric", 4 + 16 / group, lambda w, g=group: q4_symmetric(w, g)


def main():
    for directory in sys.argv[1:]:
        tensors = load_file(f"{directory}/model.safetensors")
        names = [n for n, t in tensors.items() if n.endswith(".weight") and t.ndim == 2 and t.shape[1] % 64 == 0
                 and "embed" not in n and "output_projection" not in n and "lm_head" not in n]
        total = sum(float((tensors[n].astype(np.float64) ** 2).sum()) for n in names)
        print(f"{directory}: {len(names)} Linear weights, {sum(tensors[n].size for n in names):,} values")
        for label, bits, fn in variants():
            err = sum(float(((tensors[n].astype(np.float64) - fn(tensors[n].astype(f32))) ** 2).sum()) for n in names)
            print(f"  {label:26s} {bits:5.2f} bits/weight  relative error {np.sqrt(err / total):.5f}")


if __name__ == "__main__":
    main()
